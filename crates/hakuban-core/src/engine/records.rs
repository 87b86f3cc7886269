//! The engine's records: what it knows about each object, tag, contract, stream and sink.
//! Plain data; the rules that change them live in the sibling modules.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use hashbrown::HashSet;
use smallvec::SmallVec;

use super::{ContractId, LinkId, ObjectId, SinkId, StreamId, TagId};
use crate::descriptor::{ObjectDescriptor, TagDescriptor};
use crate::state::{DataBytes, DataSynchronized, ObjectState};
use hakuban_proto::DeclarationState;

/// Who produces an object's states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Exposer {
    /// A local object or tag expose contract.
    Contract(ContractId),
    /// The upstream link streams the object to us.
    Upstream(LinkId),
    /// A downstream link was assigned the object and sends its states up.
    Downstream(LinkId),
}

/// A short list kept inline: most objects have one or two of each (one tag, one observer, one
/// downstream link), so a record costs no allocation for them. With smallvec's `union` layout a
/// two-id list takes a `Vec`'s 24 bytes.
pub(crate) type Few<T, const N: usize = 2> = SmallVec<[T; N]>;

/// A list that is usually empty (in a router, always): one pointer, and no allocation, while
/// empty, where a [`Few`] is three words. A router holds one object record per object, so this is
/// paid a million times (S9 a).
pub(crate) type Sparse<T> = thin_vec::ThinVec<T>;

pub(crate) struct ObjectRec {
    pub descriptor: ObjectDescriptor,
    pub tags: Few<TagId>,
    /// Local object observe contracts, in creation order.
    pub observers: Sparse<ContractId>,
    /// Local object expose contracts, in creation order.
    pub exposers: Sparse<ContractId>,
    /// Stream and sink records (queued or held) that pin this object.
    pub handles: u32,
    /// `should_exist`: object-level interest exists here.
    pub live: bool,
    /// `data_needed`: live and observed, so an exposer must be elected.
    pub needed: bool,
    pub exposer: Option<Exposer>,
    /// The latest accepted state; every change is announced as [`Event::StateChanged`](super::Event).
    pub state: Option<Arc<ObjectState<DataBytes>>>,
    /// Sinks whose last word was "synchronised now". Inline, not [`Sparse`]: it is read on
    /// every state a sink sends, and the record still fits jemalloc's 192-byte class.
    pub synced: Few<SinkId>,
    /// When the aggregate last fell to "stale", the latest such moment.
    pub last_at: Option<Instant>,
    /// Open (not closed) streams on this object, closed with it.
    pub streams: Sparse<StreamId>,
    /// The upstream streams this object's states to us.
    pub up_receiving: bool,
    /// The upstream elected us as this object's exposer: we send its states up.
    pub up_sending: bool,
    /// Out of the balancing schedule: its last check found nothing a later one could move (not
    /// needed, exposed here or upstream, or by its only exposing child). [`refresh`] puts it
    /// back, since only what refreshes an object can change that.
    ///
    /// [`refresh`]: super::Engine::refresh
    pub balance_parked: bool,
    /// Object-level declarations of downstream links.
    pub down: Few<(LinkId, DeclarationState), 1>,
    /// Downstream links we stream this object's states to.
    pub down_streaming: Few<LinkId>,
}

impl ObjectRec {
    pub fn new(descriptor: ObjectDescriptor, tags: Few<TagId>) -> Self {
        ObjectRec {
            descriptor,
            tags,
            observers: Sparse::new(),
            exposers: Sparse::new(),
            handles: 0,
            live: false,
            needed: false,
            exposer: None,
            state: None,
            synced: Few::new(),
            last_at: None,
            streams: Sparse::new(),
            up_receiving: false,
            up_sending: false,
            balance_parked: false,
            down: Few::new(),
            down_streaming: Few::new(),
        }
    }

    /// Records what `sink` said about its synchronisation (SEMANTICS §5.2) and returns the
    /// aggregate: `Now` while any producer is synchronised, else stale since the latest moment.
    pub fn record_sync(&mut self, sink: SinkId, synchronized: DataSynchronized, now: Instant) -> DataSynchronized {
        match synchronized {
            DataSynchronized::Now => {
                if !self.synced.contains(&sink) {
                    self.synced.push(sink);
                }
            }
            DataSynchronized::LastAt(at) => {
                self.synced.retain(|s| *s != sink);
                self.last_at = Some(self.last_at.map_or(at, |last| last.max(at)));
            }
        }
        self.aggregate_sync(now)
    }

    /// The synchronisation flag aggregated over this object's sinks.
    pub fn aggregate_sync(&self, now: Instant) -> DataSynchronized {
        if self.synced.is_empty() {
            DataSynchronized::LastAt(self.last_at.unwrap_or(now))
        } else {
            DataSynchronized::Now
        }
    }

    pub fn is_unreferenced(&self) -> bool {
        self.observers.is_empty()
            && self.exposers.is_empty()
            && self.handles == 0
            && !self.up_receiving
            && !self.up_sending
            && self.down.is_empty()
            && self.down_streaming.is_empty()
            && !matches!(self.exposer, Some(Exposer::Downstream(_)))
    }

    pub fn state(&self) -> Option<Arc<ObjectState<DataBytes>>> {
        self.state.clone()
    }
}

pub(crate) struct TagRec {
    pub descriptor: TagDescriptor,
    /// Every object record carrying this tag (live or not). Tags never pin objects.
    pub objects: HashSet<ObjectId>,
    pub observers: Vec<ContractId>,
    pub exposers: Vec<ContractId>,
    /// Tag-level declarations of downstream links.
    pub down: Few<(LinkId, DeclarationState), 1>,
}

impl TagRec {
    pub fn is_unreferenced(&self) -> bool {
        self.objects.is_empty() && self.observers.is_empty() && self.exposers.is_empty() && self.down.is_empty()
    }
}

/// The four kinds of contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContractKind {
    /// Observe one object: emits one state stream.
    ObjectObserve,
    /// Offer to expose one object: emits a sink while elected.
    ObjectExpose,
    /// Observe every live object with a tag: one stream per object.
    TagObserve,
    /// Offer to expose every object with a tag: one sink per object it is elected for.
    TagExpose,
}

impl ContractKind {
    /// `true` for the two observe kinds.
    pub fn observes(self) -> bool {
        matches!(self, ContractKind::ObjectObserve | ContractKind::TagObserve)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Object(ObjectId),
    Tag(TagId),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HandleRef {
    Stream(StreamId),
    Sink(SinkId),
}

pub(crate) struct ContractRec {
    pub kind: ContractKind,
    pub target: Target,
    pub capacity: u32,
    /// Emitted handles not yet taken, oldest first. Entries whose record is gone are skipped
    /// when taken and swept out once they outnumber the live ones.
    pub queue: VecDeque<HandleRef>,
    pub queue_dead: usize,
    /// The one handle per object this contract currently owes its user (queued or held).
    pub current: super::owed::Owed,
}

pub(crate) struct StreamRec {
    pub object: ObjectId,
    /// `None` once the stream stopped being its contract's current stream.
    pub contract: Option<ContractId>,
    pub closed: bool,
    pub taken: bool,
}

pub(crate) struct SinkRec {
    pub object: ObjectId,
    pub contract: Option<ContractId>,
    pub closed: bool,
    pub taken: bool,
    pub params_yielded: bool,
}
