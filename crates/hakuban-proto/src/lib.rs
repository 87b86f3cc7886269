//! # hakuban-proto
//!
//! Hakuban's wire protocol, and nothing else: the messages exchanged over a link (hello with
//! protocol version, contract declarations, exposer assignments, state frames with deltas), their
//! postcard encoding, batching of several frames per WebSocket message, and the size limits a
//! decoder enforces on untrusted bytes. It knows bytes and messages, not objects' lifecycles.
//!
//! The messages arrive with the networking work; today the crate only fixes the protocol version.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// The protocol version this crate speaks; a peer with another version is refused at hello.
pub const PROTOCOL_VERSION: u32 = 1;
