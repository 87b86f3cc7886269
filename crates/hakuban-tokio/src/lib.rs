//! # hakuban-tokio
//!
//! Hakuban's transport on tokio: `WebsocketListener` and `WebsocketConnector` move frames between
//! sockets and the core's links, and own the timers. It decides nothing itself (who exposes, what
//! to send, when a link is dead: the core does). It re-exports the whole core API, so
//! `use hakuban_tokio::*` serves the seed's examples.
//!
//! The transport arrives with the networking work; today the crate re-exports the core.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use hakuban_core::*;
