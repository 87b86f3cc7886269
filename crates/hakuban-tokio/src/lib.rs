//! # hakuban-tokio
//!
//! Hakuban's transport on tokio: [`WebsocketListener`] accepts children, [`WebsocketConnector`]
//! keeps an exchange connected to its parent. Both move WebSocket messages between sockets and
//! the core's [`Link`]s and own the timers; every decision (who exposes, what to send, when a link
//! is dead, what is a violation) is the core's.
//!
//! It re-exports the whole core API, so `use hakuban_tokio::*` serves the seed's examples:
//!
//! ```no_run
//! use futures::StreamExt;
//! use hakuban_tokio::{Exchange, WebsocketConnector};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let exchange = Exchange::new();
//! let _upstream = WebsocketConnector::new(exchange.clone(), "ws://127.0.0.1:3001")?;
//! let mut observe_contract = exchange.object_observe_contract((["some-tag"], "xxx")).build();
//! let object_state = observe_contract.next().await.unwrap().next().await.unwrap();
//! println!("{:?}", object_state.data);
//! # Ok(())
//! # }
//! ```
//!
//! URL fragments carry connection parameters (`ws://host:port#timeout=1s,name=regu`); see
//! [`ConnectionParameters`].
//!
//! `wss://` URLs use TLS (rustls): a listener needs `tls-cert=FILE,tls-key=FILE` (PEM), a
//! connector trusts the platform's root certificates, or only those of `ca=FILE`. A connector
//! sends an access token with `token=...` (never logged); see `docs/security.md`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod connector;
mod listener;
mod params;
mod progress;
mod tls;
mod transport;
mod woken;

pub use connector::{UpstreamConnectionSnapshot, WebsocketConnector, WebsocketConnectorSnapshot};
pub use hakuban_core::*;
pub use listener::{DownstreamConnectionSnapshot, WebsocketListener, WebsocketListenerSnapshot};
pub use params::ConnectionParameters;

/// The README's examples, compiled (and the local one run) as doc tests so they cannot rot.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// The seed's module path for the transport types.
pub mod tokio_runtime {
    pub use crate::{WebsocketConnector, WebsocketListener};
}

/// Why a listener or connector could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebsocketError {
    /// The URL or one of its fragment parameters is invalid; the text says which.
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// The listener could not bind its address (in use, not permitted...).
    #[error("cannot listen on {0}")]
    Bind(String),
    /// The exchange already has an upstream (another connector or an upstream link).
    #[error("this exchange already has an upstream connector")]
    UpstreamTaken,
    /// Not called inside a tokio runtime.
    #[error("must be called inside a tokio runtime")]
    NoRuntime,
    /// TLS could not be set up: a certificate, key or CA file is missing or unusable.
    #[error("TLS: {0}")]
    Tls(String),
}
