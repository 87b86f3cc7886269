//! Encoding without copies: a frame to send that borrows its state's version and format from the
//! state instead of owning copies of them. It encodes to exactly the bytes of the equivalent
//! [`Frame`], so the receiving side decodes it as one.

use serde::ser::{Serialize, SerializeStructVariant, Serializer};

use crate::delta::Payload;
use crate::frame::Frame;

/// [`Frame::State`]'s position among [`Frame`]'s variants: its tag on the wire. The test below
/// checks it against the derived encoding.
const STATE_VARIANT: u32 = 11;

/// A frame to encode: either a [`Frame`], or a state whose version and format are borrowed.
#[derive(Debug)]
pub enum OutgoingFrame<'a> {
    /// Any frame, as it is.
    Frame(&'a Frame),
    /// As [`Frame::State`], borrowing the version and the format.
    State {
        /// Object id (the sender's).
        object: u32,
        /// The state's version.
        version: &'a [i64],
        /// The format stack, present when it differs from the previous state on this channel.
        format: Option<&'a [String]>,
        /// The data, full or as a delta against the previous state on this channel.
        payload: Payload,
        /// Microseconds since the data was last known current (0: synchronised now).
        synchronized_us_ago: u64,
    },
}

impl Serialize for OutgoingFrame<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            OutgoingFrame::Frame(frame) => frame.serialize(serializer),
            OutgoingFrame::State { object, version, format, payload, synchronized_us_ago } => {
                let mut state = serializer.serialize_struct_variant("Frame", STATE_VARIANT, "State", 5)?;
                state.serialize_field("object", object)?;
                state.serialize_field("version", version)?;
                state.serialize_field("format", format)?;
                state.serialize_field("payload", payload)?;
                state.serialize_field("synchronized_us_ago", synchronized_us_ago)?;
                state.end()
            }
        }
    }
}

/// Encodes frames as one transport message, as [`encode_batch`](crate::encode_batch) does.
pub fn encode_outgoing(frames: &[OutgoingFrame<'_>]) -> Vec<u8> {
    // As in encode_batch: encoding into a Vec cannot fail for these types, and an empty message
    // would be refused by the peer.
    postcard::to_stdvec(frames).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{Limits, decode_batch, encode_batch};

    fn owned(format: Option<Vec<String>>, payload: Payload) -> Frame {
        Frame::State { object: 7, version: vec![3, -1, i64::MAX], format, payload, synchronized_us_ago: 12 }
    }

    #[test]
    fn a_borrowed_state_encodes_to_the_bytes_of_the_owned_frame() {
        let format = vec!["JSON".to_string(), "gzip".to_string()];
        let payloads =
            [Payload::Full(Arc::new(b"data".to_vec())), Payload::Delta { prefix: 2, suffix: 1, middle: b"x".to_vec() }];
        for payload in payloads {
            for format in [None, Some(format.clone())] {
                let frame = owned(format.clone(), payload.clone());
                let keep_alive = Frame::KeepAlive;
                let outgoing = [
                    OutgoingFrame::Frame(&keep_alive),
                    OutgoingFrame::State {
                        object: 7,
                        version: &[3, -1, i64::MAX],
                        format: format.as_deref(),
                        payload: payload.clone(),
                        synchronized_us_ago: 12,
                    },
                ];
                let bytes = encode_outgoing(&outgoing);
                assert_eq!(bytes, encode_batch(&[Frame::KeepAlive, frame.clone()]));
                assert_eq!(decode_batch(&bytes, &Limits::default()), Ok(vec![Frame::KeepAlive, frame]));
            }
        }
    }
}
