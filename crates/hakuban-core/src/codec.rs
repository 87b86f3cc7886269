//! [`LinkCodec`]: bytes to link inputs and link outputs to bytes, outside the engine's lock.
//!
//! Decoding checks the protocol version and limits, parses descriptors and rebuilds states from
//! deltas against what this side last received per object; encoding computes deltas against what
//! the peer last received and omits an unchanged format. One codec per link and direction pair.
//!
//! States name objects by the sender's ids (its declarations). A state the engine does not take
//! (its channel is not open: in flight while it closed, or made up by a hostile peer) has its
//! baseline released at once by [`Link`](crate::Link) ([`LinkCodec::release`]), so a peer cannot
//! make the codec hold baselines for channels that do not exist.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use hakuban_proto::{
    Frame, Limits, OutgoingFrame, PROTOCOL_VERSION, Payload, apply_shared_payload, decode_batch, encode_outgoing,
    encode_shared_payload,
};
use hashbrown::HashMap;

use crate::close::CloseReason;
use crate::descriptor::{ObjectDescriptor, TagDescriptor};
use crate::engine::{LinkInput, LinkOutput};
use crate::payload_cache::PayloadCache;
use crate::state::{DataBytes, DataSynchronized, ObjectState};

/// Messages are cut once they hold this many bytes, so one busy link cannot build huge batches.
const BATCH_BYTES: usize = 1 << 20;
/// Messages are cut at this many frames (well under the default decode limit).
const BATCH_FRAMES: usize = 4096;
/// Tags the decoder remembers (by their JSON text) to share one descriptor between the objects
/// that carry them; past this many distinct tags it starts over, and it keeps no tag longer than
/// [`TAG_REMEMBERED_BYTES`], so a peer cannot grow it past about 64 KiB.
const TAGS_REMEMBERED: usize = 256;
const TAG_REMEMBERED_BYTES: usize = 256;

/// Encoder and decoder of one link's transport messages.
pub struct LinkCodec {
    limits: Limits,
    hello_seen: bool,
    /// Per peer object id: the last state received for it (the engine holds the same one).
    received: HashMap<u32, Arc<ObjectState<DataBytes>>>,
    /// Tag descriptors decoded lately, by JSON text (at most [`TAGS_REMEMBERED`]).
    tags: HashMap<Box<str>, TagDescriptor>,
}

impl LinkCodec {
    /// A codec enforcing `limits` on what it decodes.
    pub fn new(limits: Limits) -> Self {
        LinkCodec { limits, hello_seen: false, received: HashMap::new(), tags: HashMap::new() }
    }

    /// Forgets the baseline of the peer's object `id` (its state was not taken: no channel).
    pub fn release(&mut self, id: u32) {
        self.received.remove(&id);
    }

    /// How many baselines the codec holds (for tests).
    pub fn baselines(&self) -> usize {
        self.received.len()
    }

    /// Decodes one transport message received at `now`: one input per frame. The payloads the
    /// message rebuilds are bounded all together by `max_decoded_bytes_per_message`.
    pub fn decode(&mut self, message: &[u8], now: Instant) -> Result<Vec<LinkInput>, CloseReason> {
        self.decode_with(message, now, None)
    }

    /// As [`decode`](Self::decode), keeping the large payloads received in a cache shared between
    /// links, so that forwarding them to peers with the same baseline needs no new encoding.
    pub(crate) fn decode_with(
        &mut self,
        message: &[u8],
        now: Instant,
        cache: Option<&PayloadCache>,
    ) -> Result<Vec<LinkInput>, CloseReason> {
        let frames = decode_batch(message, &self.limits).map_err(CloseReason::from_decode)?;
        let mut inputs = Vec::with_capacity(frames.len());
        let mut budget = self.limits.max_decoded_bytes_per_message;
        for frame in frames {
            if !self.hello_seen && !matches!(frame, Frame::Hello { .. }) {
                return Err(CloseReason::ProtocolViolation("the first frame must be a hello".to_string()));
            }
            inputs.push(self.decode_frame(frame, now, &mut budget, cache)?);
        }
        Ok(inputs)
    }

    fn decode_frame(
        &mut self,
        frame: Frame,
        now: Instant,
        budget: &mut usize,
        cache: Option<&PayloadCache>,
    ) -> Result<LinkInput, CloseReason> {
        let malformed = |what: String| CloseReason::Malformed(hakuban_proto::DecodeError::Malformed(what));
        Ok(match frame {
            Frame::Hello { version, name, load_limit, token } => {
                if version != PROTOCOL_VERSION {
                    return Err(CloseReason::VersionMismatch { ours: PROTOCOL_VERSION, theirs: version });
                }
                self.hello_seen = true;
                LinkInput::Hello { name, load_limit, token: token.map(crate::access::AccessToken::new) }
            }
            Frame::DeclareObject { id, tags, json } => {
                let tags = tags
                    .iter()
                    .map(|tag| self.tag(tag))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| malformed(format!("object {id}: {e}")))?;
                let descriptor = ObjectDescriptor::from_tags_and_json_string(tags, &json)
                    .map_err(|e| malformed(format!("object {id}: {e}")))?;
                LinkInput::DeclareObject(id, descriptor)
            }
            Frame::DeclareTag { id, json } => {
                let descriptor = self.tag(&json).map_err(|e| malformed(format!("tag {id}: {e}")))?;
                LinkInput::DeclareTag(id, descriptor)
            }
            Frame::ForgetObject { id } => {
                self.received.remove(&id);
                LinkInput::ForgetObject(id)
            }
            Frame::ForgetTag { id } => LinkInput::ForgetTag(id),
            Frame::ObjectInterest { object, state } => LinkInput::ObjectInterest(object, state),
            Frame::TagInterest { tag, state } => LinkInput::TagInterest(tag, state),
            Frame::AssignExposer { object } => LinkInput::AssignExposer(object),
            Frame::RevokeExposer { object } => LinkInput::RevokeExposer(object),
            Frame::StreamStart { object } => LinkInput::StreamStart(object),
            Frame::StreamEnd { object } => {
                // The parent's id, as its states to us: that channel's baseline goes with it.
                self.received.remove(&object);
                LinkInput::StreamEnd(object)
            }
            Frame::State { object, version, format, payload, synchronized_us_ago } => {
                // One lookup: the channel's baseline is read, then replaced, in its slot.
                let slot = self.received.entry(object);
                let previous = match &slot {
                    hashbrown::hash_map::Entry::Occupied(entry) => Some(entry.get()),
                    hashbrown::hash_map::Entry::Vacant(_) => None,
                };
                let limit = self.limits.max_payload_bytes;
                let max = limit.min(*budget);
                let received = cache.filter(|_| PayloadCache::worth_seeding(&payload)).map(|c| (c, payload.clone()));
                let data = apply_shared_payload(previous.map(|state| state.data.as_slice()), payload, max).map_err(
                    |error| match error {
                        hakuban_proto::DecodeError::BadDelta(_) if max < limit => {
                            CloseReason::LimitExceeded(hakuban_proto::DecodeError::DecodedTooLarge {
                                limit: self.limits.max_decoded_bytes_per_message,
                            })
                        }
                        other => CloseReason::from_decode(other),
                    },
                )?;
                *budget -= data.len();
                let format = match (format, previous) {
                    (Some(format), _) => format,
                    (None, Some(previous)) => previous.format.clone(),
                    (None, None) => return Err(malformed(format!("object {object}: first state without a format"))),
                };
                if let Some((cache, payload)) = received {
                    cache.keep(previous.map(|state| &state.data), &data, payload);
                }
                let state = Arc::new(ObjectState {
                    data,
                    format,
                    version,
                    synchronized: DataSynchronized::from_micros_ago(synchronized_us_ago, now),
                });
                slot.insert(state.clone());
                LinkInput::State(object, state)
            }
            Frame::Synchronized { object, us_ago } => LinkInput::Synchronized(object, us_ago),
            Frame::KeepAlive => LinkInput::KeepAlive,
            Frame::Close { reason } => LinkInput::Close(reason),
            Frame::ObjectRefused { object, observe, expose, reason } => {
                LinkInput::ObjectRefused(object, crate::access::Refusal { observe, expose, reason })
            }
            Frame::TagRefused { tag, observe, expose, reason } => {
                LinkInput::TagRefused(tag, crate::access::Refusal { observe, expose, reason })
            }
        })
    }

    /// The tag named by JSON `text`: the one decoded before if it is remembered.
    fn tag(&mut self, text: &str) -> Result<TagDescriptor, crate::descriptor::DescriptorError> {
        if let Some(tag) = self.tags.get(text) {
            return Ok(tag.clone());
        }
        let tag = TagDescriptor::from_json_string(text)?;
        if text.len() > TAG_REMEMBERED_BYTES {
            return Ok(tag);
        }
        if self.tags.len() >= TAGS_REMEMBERED {
            self.tags.clear();
        }
        self.tags.insert(text.into(), tag.clone());
        Ok(tag)
    }

    /// Encodes outputs into transport messages (several if there is much to send).
    pub fn encode(&mut self, outputs: Vec<LinkOutput>, messages: &mut VecDeque<Vec<u8>>) {
        self.encode_with(outputs, messages, None);
    }

    /// As [`encode`](Self::encode), taking large payloads from a cache shared between links.
    pub(crate) fn encode_with(
        &mut self,
        outputs: Vec<LinkOutput>,
        messages: &mut VecDeque<Vec<u8>>,
        cache: Option<&PayloadCache>,
    ) {
        // Frames borrow each state's version and format from `outputs` instead of copying them.
        let mut batch: Vec<OutgoingFrame<'_>> = Vec::with_capacity(outputs.len().min(BATCH_FRAMES));
        let mut bytes = 0usize;
        for output in &outputs {
            let frame = match output {
                LinkOutput::Frame(frame) => OutgoingFrame::Frame(frame),
                LinkOutput::State { object, state, baseline, synchronized_us_ago } => {
                    let format = match baseline {
                        Some(baseline) if baseline.format == state.format => None,
                        _ => Some(state.format.as_slice()),
                    };
                    let base = baseline.as_ref().map(|b| &b.data);
                    let payload = match cache {
                        Some(cache) => cache.encode(base, &state.data),
                        None => encode_shared_payload(base.map(|b| b.as_slice()), &state.data),
                    };
                    OutgoingFrame::State {
                        object: *object,
                        version: &state.version,
                        format,
                        payload,
                        synchronized_us_ago: *synchronized_us_ago,
                    }
                }
            };
            bytes += frame_size_hint(&frame);
            batch.push(frame);
            if bytes >= BATCH_BYTES || batch.len() >= BATCH_FRAMES {
                messages.push_back(encode_outgoing(&batch));
                batch.clear();
                bytes = 0;
            }
        }
        if !batch.is_empty() {
            messages.push_back(encode_outgoing(&batch));
        }
    }
}

/// Roughly how many bytes a frame encodes to (only used to cut batches).
fn frame_size_hint(frame: &OutgoingFrame<'_>) -> usize {
    match frame {
        OutgoingFrame::State { payload, .. } => match payload {
            Payload::Full(data) => data.len() + 32,
            Payload::Compressed { data, .. } => data.len() + 40,
            Payload::Delta { middle, .. } => middle.len() + 48,
            Payload::DeltaCompressed { data, .. } => data.len() + 56,
            Payload::Patch { hunks } => hunks.iter().map(|h| h.insert.len() + 24).sum::<usize>() + 40,
        },
        OutgoingFrame::Frame(Frame::DeclareObject { tags, json, .. }) => {
            json.len() + tags.iter().map(String::len).sum::<usize>() + 16
        }
        OutgoingFrame::Frame(Frame::DeclareTag { json, .. }) => json.len() + 8,
        OutgoingFrame::Frame(_) => 16,
    }
}

#[cfg(test)]
mod tests {
    use hakuban_proto::encode_batch;

    use super::*;

    fn hello() -> Frame {
        Frame::Hello { version: PROTOCOL_VERSION, name: "peer".to_string(), load_limit: Vec::new(), token: None }
    }

    fn declare(id: u32, tag: &str) -> Frame {
        Frame::DeclareObject { id, tags: vec![tag.to_string()], json: format!("{{\"id\":{id}}}") }
    }

    fn decoded_descriptors(codec: &mut LinkCodec, frames: &[Frame]) -> Vec<ObjectDescriptor> {
        let inputs = codec.decode(&encode_batch(frames), Instant::now()).expect("a valid message");
        inputs
            .into_iter()
            .filter_map(|input| match input {
                LinkInput::DeclareObject(_, descriptor) => Some(descriptor),
                _ => None,
            })
            .collect()
    }

    /// Objects declared with the same tag share one tag descriptor: a router holding many objects
    /// of one tag keeps its value once.
    #[test]
    fn objects_declared_with_one_tag_share_its_descriptor() {
        let mut codec = LinkCodec::new(Limits::default());
        let descriptors = decoded_descriptors(&mut codec, &[hello(), declare(1, "\"t\""), declare(2, "\"t\"")]);
        let later = decoded_descriptors(&mut codec, &[declare(3, "\"t\"")]);
        let tag = |d: &ObjectDescriptor| d.tags()[0].json() as *const serde_json::Value;
        assert_eq!(descriptors.len(), 2);
        assert_eq!(tag(&descriptors[0]), tag(&descriptors[1]));
        assert_eq!(tag(&descriptors[0]), tag(&later[0]));
        assert_eq!(descriptors[0], ObjectDescriptor::from((["t"], serde_json::json!({"id": 1}))));
    }

    /// A peer declaring ever new tags cannot grow what the decoder remembers.
    #[test]
    fn remembered_tags_are_bounded() {
        let mut codec = LinkCodec::new(Limits::default());
        decoded_descriptors(&mut codec, &[hello()]);
        let long = format!("\"{}\"", "x".repeat(TAG_REMEMBERED_BYTES));
        for round in 0..10u32 {
            let frames: Vec<Frame> =
                (0..100).map(|i| declare(round * 100 + i, &format!("\"tag-{round}-{i}\""))).collect();
            assert_eq!(decoded_descriptors(&mut codec, &frames).len(), 100);
            decoded_descriptors(&mut codec, &[declare(5000 + round, &long)]);
            assert!(codec.tags.len() <= TAGS_REMEMBERED, "{} tags remembered", codec.tags.len());
            assert!(codec.tags.keys().all(|text| text.len() <= TAG_REMEMBERED_BYTES));
        }
    }
}
