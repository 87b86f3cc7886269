//! The frames of a link and their batch encoding.

use serde::{Deserialize, Serialize};

use crate::bounded::{self, Collection};
use crate::delta::Payload;
use crate::{DecodeError, Limits};

/// One point of a load-limit schedule: from `after_seconds` after the hello on, the limit is
/// `limit` (linear in between points).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoadLimitPoint {
    /// Seconds after the hello.
    pub after_seconds: f32,
    /// Most objects (weighted by 1/capacity) the parent may assign to this link.
    pub limit: u32,
}

/// What a node declares upward for one object or tag: the aggregate of its local contracts and
/// its children's declarations. Both `false`/`None` means "no longer declared".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeclarationState {
    /// Something at or below the sender observes it.
    pub observe: bool,
    /// Something at or below the sender exposes it, with this total capacity.
    pub expose: Option<u32>,
}

impl DeclarationState {
    /// Neither observed nor exposed.
    pub fn is_empty(&self) -> bool {
        !self.observe && self.expose.is_none()
    }
}

/// One frame of the link protocol. Object and tag ids are per link and per direction: the sender
/// of `DeclareObject`/`DeclareTag` chooses them, later frames in the same direction refer to them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Frame {
    /// First frame in each direction.
    Hello {
        /// [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION) of the sender.
        version: u32,
        /// The sender's name, for logs and snapshots.
        name: String,
        /// Load-limit schedule the child asks its parent to respect (empty: unlimited).
        #[serde(deserialize_with = "bounded::load_limit")]
        load_limit: Vec<LoadLimitPoint>,
        /// The child's access token (child to parent; the parent checks it against its policy).
        token: Option<String>,
    },
    /// Binds `id` to an object descriptor: its JSON text and its tags' JSON texts.
    DeclareObject {
        /// Sender-chosen id.
        id: u32,
        /// Compact JSON text of each tag.
        #[serde(deserialize_with = "bounded::tags")]
        tags: Vec<String>,
        /// Compact JSON text of the object's identifier.
        json: String,
    },
    /// Binds `id` to a tag descriptor's JSON text.
    DeclareTag {
        /// Sender-chosen id.
        id: u32,
        /// Compact JSON text of the tag.
        json: String,
    },
    /// The sender will not use this object id again (until it declares it anew).
    ForgetObject {
        /// The id.
        id: u32,
    },
    /// The sender will not use this tag id again.
    ForgetTag {
        /// The id.
        id: u32,
    },
    /// Child to parent: its aggregated contracts on one object.
    ObjectInterest {
        /// Object id (sender's).
        object: u32,
        /// The declaration; empty withdraws it.
        state: DeclarationState,
    },
    /// Child to parent: its aggregated contracts on one tag.
    TagInterest {
        /// Tag id (sender's).
        tag: u32,
        /// The declaration; empty withdraws it.
        state: DeclarationState,
    },
    /// Parent to child: you are this object's exposer, send its states up.
    AssignExposer {
        /// Object id (sender's, i.e. the parent's).
        object: u32,
    },
    /// Parent to child: you are no longer this object's exposer.
    RevokeExposer {
        /// Object id (parent's).
        object: u32,
    },
    /// Parent to child: states of this object follow.
    StreamStart {
        /// Object id (parent's).
        object: u32,
    },
    /// Parent to child: no more states of this object.
    StreamEnd {
        /// Object id (parent's).
        object: u32,
    },
    /// A state of an object, on a channel opened by `AssignExposer` (child to parent) or
    /// `StreamStart` (parent to child). The object id is the sender's, as in every frame.
    State {
        /// Object id (the sender's).
        object: u32,
        /// The state's version.
        #[serde(deserialize_with = "bounded::version")]
        version: Vec<i64>,
        /// The format stack, present when it differs from the previous state on this channel.
        #[serde(deserialize_with = "bounded::format")]
        format: Option<Vec<String>>,
        /// The data, full or as a delta against the previous state on this channel.
        payload: Payload,
        /// Microseconds since the data was last known current (0: synchronised now).
        synchronized_us_ago: u64,
    },
    /// Only the synchronisation of the last state on the channel changed.
    Synchronized {
        /// Object id (the sender's).
        object: u32,
        /// Microseconds since last known current (0: now).
        us_ago: u64,
    },
    /// Nothing to say: keeps an idle link alive.
    KeepAlive,
    /// The sender closes the link, for this reason.
    Close {
        /// Human-readable reason.
        reason: String,
    },
    /// Parent to child: the parts of the child's declaration on this object that its access
    /// rights do not cover were refused and have no effect; both `false` lifts an earlier
    /// refusal.
    ObjectRefused {
        /// Object id (the parent's).
        object: u32,
        /// The observe part was refused.
        observe: bool,
        /// The expose part was refused.
        expose: bool,
        /// Why, for the child's logs and snapshot.
        reason: String,
    },
    /// Parent to child: as [`Frame::ObjectRefused`], for a tag declaration.
    TagRefused {
        /// Tag id (the parent's).
        tag: u32,
        /// The observe part was refused.
        observe: bool,
        /// The expose part was refused.
        expose: bool,
        /// Why.
        reason: String,
    },
}

/// The frames of one transport message.
pub type Batch = Vec<Frame>;

/// Encodes frames as one transport message.
pub fn encode_batch(frames: &[Frame]) -> Vec<u8> {
    // Encoding into a Vec cannot fail for these types (no maps with non-string keys, no
    // unsupported serde features); an empty message would be refused by the peer, so it is the
    // safe fallback.
    postcard::to_stdvec(frames).unwrap_or_default()
}

/// Decodes one transport message, enforcing `limits`: the frame count and every inner
/// collection are checked against them as they are read, before room is reserved for them.
pub fn decode_batch(bytes: &[u8], limits: &Limits) -> Result<Batch, DecodeError> {
    if bytes.len() > limits.max_message_bytes {
        return Err(DecodeError::MessageTooLarge { size: bytes.len(), limit: limits.max_message_bytes });
    }
    let (decoded, violation) = bounded::with_limits(limits, || {
        let mut deserializer = postcard::Deserializer::from_bytes(bytes);
        bounded::seq::<_, Frame>(&mut deserializer, Collection::Frames)
    });
    let frames = match (decoded, violation) {
        (_, Some(violation)) => return Err(violation),
        (Err(error), None) => return Err(DecodeError::Malformed(error.to_string())),
        (Ok(frames), None) => frames,
    };
    for frame in &frames {
        let size = match frame {
            Frame::DeclareObject { tags, json, .. } => json.len() + tags.iter().map(String::len).sum::<usize>(),
            Frame::DeclareTag { json, .. } => json.len(),
            Frame::ObjectRefused { reason, .. } | Frame::TagRefused { reason, .. } | Frame::Close { reason } => {
                reason.len()
            }
            Frame::Hello { name, token, .. } => name.len().max(token.as_ref().map_or(0, String::len)),
            _ => 0,
        };
        if size > limits.max_descriptor_bytes {
            return Err(DecodeError::DescriptorTooLarge { size, limit: limits.max_descriptor_bytes });
        }
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Batch {
        vec![
            Frame::Hello {
                version: crate::PROTOCOL_VERSION,
                name: "a".into(),
                load_limit: vec![LoadLimitPoint { after_seconds: 2.0, limit: 5 }],
                token: None,
            },
            Frame::DeclareObject { id: 1, tags: vec!["\"t\"".into()], json: "\"xxx\"".into() },
            Frame::ObjectInterest { object: 1, state: DeclarationState { observe: true, expose: Some(2) } },
            Frame::State {
                object: 1,
                version: vec![1, -2],
                format: Some(vec!["JSON".into()]),
                payload: Payload::Full(vec![1, 2, 3].into()),
                synchronized_us_ago: 0,
            },
            Frame::KeepAlive,
        ]
    }

    #[test]
    fn batches_round_trip() {
        let frames = sample();
        let bytes = encode_batch(&frames);
        assert_eq!(decode_batch(&bytes, &Limits::default()), Ok(frames));
    }

    #[test]
    fn limits_are_enforced() {
        let bytes = encode_batch(&sample());
        let small = Limits { max_message_bytes: 4, ..Limits::default() };
        assert!(matches!(decode_batch(&bytes, &small), Err(DecodeError::MessageTooLarge { .. })));
        let few = Limits { max_frames_per_message: 2, ..Limits::default() };
        assert!(matches!(
            decode_batch(&bytes, &few),
            Err(DecodeError::TooManyElements { what: Collection::Frames, count: 5, limit: 2 })
        ));
        let short = Limits { max_descriptor_bytes: 3, ..Limits::default() };
        assert!(matches!(decode_batch(&bytes, &short), Err(DecodeError::DescriptorTooLarge { .. })));
    }

    #[test]
    fn a_huge_length_prefix_is_refused_without_allocating() {
        // One frame claimed, a State whose version vector claims u32::MAX elements.
        let bytes = [1u8, 11, 1, 0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(matches!(decode_batch(&bytes, &Limits::default()), Err(DecodeError::Malformed(_))));
    }

    /// postcard's unsigned varint.
    fn varint(mut n: u64, out: &mut Vec<u8>) {
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }

    #[test]
    fn a_message_claiming_millions_of_one_byte_frames_stops_at_the_limit() {
        // 2^28 frames announced, then one byte per frame (KeepAlive is one byte), for each byte.
        for byte in 0..=255u8 {
            let mut bytes = Vec::new();
            varint(1 << 28, &mut bytes);
            bytes.resize(bytes.len() + 200_000, byte);
            match decode_batch(&bytes, &Limits::default()) {
                Err(DecodeError::TooManyElements { what: Collection::Frames, count, limit }) => {
                    assert!(count > limit, "byte {byte}: {count} of {limit}")
                }
                // KeepAlive is the one one-byte frame: that run must hit the frame limit.
                Err(DecodeError::Malformed(_)) if byte != 13 => {}
                other => panic!("byte {byte}: {other:?}"),
            }
        }
        // Within the frame limit, a run of keep-alives decodes.
        let mut bytes = Vec::new();
        varint(1000, &mut bytes);
        bytes.resize(bytes.len() + 1000, 13);
        assert_eq!(decode_batch(&bytes, &Limits::default()).map(|f| f.len()), Ok(1000));
    }

    fn one_frame(frame: &Frame) -> Vec<u8> {
        encode_batch(std::slice::from_ref(frame))
    }

    #[test]
    fn inner_collections_are_bounded_one_by_one() {
        let limits = Limits::default();
        let state = |version: Vec<i64>, format: Option<Vec<String>>| Frame::State {
            object: 1,
            version,
            format,
            payload: Payload::Full(Vec::new().into()),
            synchronized_us_ago: 0,
        };
        let cases = [
            (one_frame(&state(vec![0; 257], None)), Collection::Version, 257),
            (one_frame(&state(vec![0; 3], Some(vec![String::new(); 65]))), Collection::Format, 65),
            (
                one_frame(&Frame::DeclareObject { id: 1, tags: vec![String::new(); 257], json: "1".into() }),
                Collection::Tags,
                257,
            ),
            (
                one_frame(&Frame::Hello {
                    version: 1,
                    name: "x".into(),
                    load_limit: vec![LoadLimitPoint { after_seconds: 0.0, limit: 1 }; 257],
                    token: None,
                }),
                Collection::LoadLimit,
                257,
            ),
        ];
        for (bytes, what, count) in cases {
            match decode_batch(&bytes, &limits) {
                Err(DecodeError::TooManyElements { what: found, count: announced, .. }) => {
                    assert_eq!((found, announced), (what, count));
                }
                other => panic!("{what}: {other:?}"),
            }
        }
        // At the limit, each decodes.
        assert!(decode_batch(&one_frame(&state(vec![0; 256], Some(vec![String::new(); 64]))), &limits).is_ok());
    }

    #[test]
    fn a_claimed_million_element_version_is_refused_before_allocation() {
        // A State frame (variant 11) whose version announces 10^6 elements, with the bytes present.
        let mut bytes = vec![1u8, 11, 1];
        varint(1_000_000, &mut bytes);
        bytes.resize(bytes.len() + 1_000_000, 0);
        let limits = Limits { max_version_len: usize::MAX, ..Limits::default() };
        // Even with no per-version limit, the message-wide element budget holds.
        match decode_batch(&bytes, &limits) {
            Err(DecodeError::TooManyElements { what: Collection::Message, count, limit }) => assert!(count > limit),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_element_budget_spans_all_frames_of_a_message() {
        let frame = Frame::DeclareObject { id: 1, tags: vec!["1".into(); 200], json: "1".into() };
        let frames = vec![frame; 10];
        let limits = Limits { max_elements_per_message: 1999, ..Limits::default() };
        assert!(matches!(
            decode_batch(&encode_batch(&frames), &limits),
            Err(DecodeError::TooManyElements { what: Collection::Message, .. })
        ));
        let limits = Limits { max_elements_per_message: 2000, ..Limits::default() };
        assert!(decode_batch(&encode_batch(&frames), &limits).is_ok());
    }

    #[test]
    fn edit_scripts_of_more_than_the_hunk_limit_are_refused() {
        let hunk = crate::Hunk { keep: 1, remove: 1, insert: vec![1] };
        let script = |count| Frame::State {
            object: 1,
            version: vec![1],
            format: None,
            payload: Payload::Patch { hunks: vec![hunk.clone(); count] },
            synchronized_us_ago: 0,
        };
        let limits = Limits::default();
        assert!(decode_batch(&encode_batch(&[script(crate::MAX_HUNKS_ON_WIRE)]), &limits).is_ok());
        assert!(matches!(
            decode_batch(&encode_batch(&[script(crate::MAX_HUNKS_ON_WIRE + 1)]), &limits),
            Err(DecodeError::TooManyElements { what: Collection::Hunks, .. })
        ));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_batch(&bytes, &Limits::default());
        }

        #[test]
        fn truncated_messages_are_errors(cut in 0usize..64) {
            let bytes = encode_batch(&sample());
            let cut = cut.min(bytes.len() - 1);
            prop_assert!(decode_batch(&bytes[..cut], &Limits::default()).is_err());
        }
    }
}
