//! [`CloseReason`]: why a link ended, typed, so that transports, logs and tests can tell a peer's
//! misbehaviour from a timeout, a clean close or our own decision.

use std::time::Duration;

use hakuban_proto::DecodeError;

/// Why a link was closed. Every link ends with exactly one reason, reported once.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer's hello named another protocol version. Remedy: run compatible versions.
    #[error("peer speaks protocol version {theirs}, we speak {ours}")]
    VersionMismatch {
        /// Our [`PROTOCOL_VERSION`](hakuban_proto::PROTOCOL_VERSION).
        ours: u32,
        /// The version in the peer's hello.
        theirs: u32,
    },
    /// The peer sent bytes that do not decode: not a batch of frames, a bad delta, a descriptor
    /// that is not JSON. A bug or an attack on the peer's side.
    #[error("malformed input: {0}")]
    Malformed(DecodeError),
    /// The peer sent more than one of our [`Limits`](hakuban_proto::Limits) allows (message size,
    /// collection lengths, rebuilt bytes). Raise the limit if the peer is legitimate.
    #[error("limit exceeded: {0}")]
    LimitExceeded(DecodeError),
    /// The peer declared more objects and tags than
    /// [`Limits::max_declarations`](hakuban_proto::Limits::max_declarations).
    #[error("more than {limit} declarations")]
    TooManyDeclarations {
        /// The configured limit.
        limit: usize,
    },
    /// A well-formed frame that is not legal here: before the hello, a second hello, an
    /// undeclared id, a frame the peer's role may not send.
    #[error("protocol violation: {0}")]
    ProtocolViolation(String),
    /// Nothing arrived from the peer for this long (the link's timeout): it is frozen or gone.
    #[error("nothing received for {0:?}")]
    ReceiveTimeout(Duration),
    /// The peer took none of our bytes for this long (the link's timeout): it stopped reading.
    #[error("peer took none of our bytes for {0:?}")]
    WriteTimeout(Duration),
    /// The peer's hello did not arrive within this long of the link opening (a connection that
    /// only holds a slot).
    #[error("no hello within {0:?}")]
    HelloTimeout(Duration),
    /// The peer closed the link, saying why (empty if it did not).
    #[error("peer closed the link{}{}", if .0.is_empty() { "" } else { ": " }, .0)]
    PeerClosed(String),
    /// The peer's access token is not in our policy (or no longer is, after a reload). Remedy:
    /// give the peer a valid token.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The connection failed or ended without a close (reset, end of stream, write error).
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    /// We closed the link: its handle was dropped, the connector was released, or the
    /// application asked.
    #[error("closed locally: {0}")]
    ClosedLocally(String),
}

impl CloseReason {
    /// The reason for a decoding error: a limit, or malformed input.
    pub fn from_decode(error: DecodeError) -> Self {
        match error {
            DecodeError::MessageTooLarge { .. }
            | DecodeError::TooManyElements { .. }
            | DecodeError::DescriptorTooLarge { .. }
            | DecodeError::DecodedTooLarge { .. } => CloseReason::LimitExceeded(error),
            DecodeError::Malformed(_) | DecodeError::BadDelta(_) => CloseReason::Malformed(error),
        }
    }

    /// `true` when the peer broke the protocol or a limit (worth a `warn` in the logs), as
    /// opposed to timeouts, clean closes and lost connections.
    pub fn is_violation(&self) -> bool {
        matches!(
            self,
            CloseReason::VersionMismatch { .. }
                | CloseReason::Malformed(_)
                | CloseReason::LimitExceeded(_)
                | CloseReason::TooManyDeclarations { .. }
                | CloseReason::ProtocolViolation(_)
                | CloseReason::Unauthorized(_)
        )
    }

    /// `true` for the timeouts: the peer stopped answering, stopped reading, or never said hello.
    pub fn is_timeout(&self) -> bool {
        matches!(self, CloseReason::ReceiveTimeout(_) | CloseReason::WriteTimeout(_) | CloseReason::HelloTimeout(_))
    }
}
