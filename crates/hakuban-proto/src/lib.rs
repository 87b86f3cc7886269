//! # hakuban-proto
//!
//! Hakuban's wire protocol, and nothing else: the [`Frame`]s exchanged over a link, their postcard
//! encoding, batching of several frames into one transport message, payload deltas, and the
//! [`Limits`] a decoder enforces on untrusted bytes. It knows bytes and messages, not objects'
//! lifecycles: what a frame *means* is the core's business.
//!
//! A transport message (one WebSocket binary message) is a [`Batch`]: a sequence of frames.
//! Decoding never panics and never allocates more than the input's size allows: every length
//! prefix is checked against the bytes actually present, and the limits bound descriptor sizes,
//! frames per batch and reconstructed payloads. See `docs/protocol.md` for the full description.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod bounded;
mod delta;
mod frame;
mod hunks;
mod limits;
mod outgoing;

pub use bounded::Collection;
pub use delta::{Payload, apply_payload, apply_shared_payload, encode_payload, encode_shared_payload};
pub use frame::{Batch, DeclarationState, Frame, LoadLimitPoint, decode_batch, encode_batch};
pub use hunks::{Hunk, MAX_HUNKS_ON_WIRE};
pub use limits::Limits;
pub use outgoing::{OutgoingFrame, encode_outgoing};

/// The protocol version this crate speaks; a peer with another version is refused at hello.
pub const PROTOCOL_VERSION: u32 = 4;

/// Why bytes from a peer were refused. Every variant closes the link that sent them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The message is larger than [`Limits::max_message_bytes`].
    #[error("message of {size} bytes exceeds the limit of {limit}")]
    MessageTooLarge {
        /// Bytes received.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The bytes are not a valid postcard batch of frames.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A descriptor's JSON text is longer than [`Limits::max_descriptor_bytes`].
    #[error("descriptor of {size} bytes exceeds the limit of {limit}")]
    DescriptorTooLarge {
        /// Bytes of JSON text.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A peer-announced collection is longer than its limit in [`Limits`]
    /// (`max_frames_per_message`, `max_version_len`, `max_format_len`,
    /// `max_tags_per_descriptor`, `max_load_limit_points`, or all inner collections of the message
    /// together: `max_elements_per_message`). Refused before anything is allocated for it.
    #[error("{count} {what} announced, the limit is {limit}")]
    TooManyElements {
        /// Which collection.
        what: Collection,
        /// How many elements the peer announced.
        count: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The states of one message rebuild to more than [`Limits::max_decoded_bytes_per_message`].
    #[error("the states of one message rebuild to more than {limit} bytes")]
    DecodedTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// A delta does not fit the state it claims to patch, or its result would exceed
    /// [`Limits::max_payload_bytes`].
    #[error("bad delta: {0}")]
    BadDelta(String),
}
