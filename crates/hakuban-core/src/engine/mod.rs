//! The engine: Hakuban's state machine, sans IO.
//!
//! [`Engine`] holds every object, tag, contract, stream and sink of one exchange and applies the
//! rules of liveness, exposer election, synchronisation and version ordering. It is a plain,
//! single-threaded, deterministic struct: it never reads a clock (time comes in as `now`), never
//! spawns, never blocks and never calls user code. The async [`Exchange`](crate::Exchange) facade
//! wraps it in a mutex; a test or another runtime can drive it directly.
//!
//! # The rule
//!
//! Every input is a method call (`create_*_contract`, `drop_*`, `take_handle`, `sink_send`,
//! `poll_sink_params`, the `link_*` inputs, [`Engine::handle_timeout`]). Every output is data the
//! caller drains:
//!
//! * [`Engine::poll_event`]: what changed for the user's handles and for transports (a contract
//!   has a handle ready, an object's state changed, a stream or sink was closed, a link has
//!   something to send or was closed). **After any input, drain `poll_event` until it returns
//!   `None`.** Events accumulate until drained; draining when nothing happened is harmless.
//! * [`Engine::link_transmit`]: a link's next frames, when its transport can take them (after a
//!   [`Event::Transmit`], or any time: an empty answer is harmless).
//! * [`Engine::poll_timeout`]: the earliest deadline of any link (receive timeout, keep-alive,
//!   write timeout) and of load balancing; call [`Engine::handle_timeout`] when it passes.
//!   Calling it early is harmless; after any input the deadline may have moved earlier.
//!
//! The engine holds no wakers and calls nothing back: the async [`Exchange`](crate::Exchange)
//! turns events into wakes (after unlocking), a C event loop may turn them into file descriptor
//! writes, a test reads them.
//!
//! ```
//! use std::time::Instant;
//! use hakuban_core::engine::{Engine, Event, TakenHandle};
//! use hakuban_core::{ObjectDescriptor, ObjectState};
//!
//! let mut engine = Engine::new();
//! let now = Instant::now();
//! let desc = ObjectDescriptor::from((["some-tag"], "xxx"));
//! let observe = engine.create_object_observe_contract(desc.clone(), now);
//! let expose = engine.create_object_expose_contract(desc, 1, now);
//! let Some(TakenHandle::Stream(_stream, _, object)) = engine.take_handle(observe) else { panic!() };
//! let Some(TakenHandle::Sink(sink, _)) = engine.take_handle(expose) else { panic!() };
//! while engine.poll_event().is_some() {} // handles became ready: taken above
//! engine.sink_send(sink, ObjectState::new(std::sync::Arc::new(b"hi".to_vec())), now);
//! let mut published = None;
//! while let Some(event) = engine.poll_event() {
//!     if let Event::StateChanged(changed, state) = event {
//!         assert_eq!(changed, object);
//!         published = state;
//!     }
//! }
//! assert_eq!(published.unwrap().data.as_slice(), b"hi");
//! ```

mod due_queue;
mod election;
mod handles;
mod invariants;
pub mod link;
mod object;
mod owed;
mod rebalance;
mod records;
mod snapshot;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use hashbrown::HashMap;

use crate::close::CloseReason;
use crate::descriptor::{ObjectDescriptor, TagDescriptor};
use crate::state::{DataBytes, ObjectState};
pub use link::{LinkConfig, LinkInfo, LinkInput, LinkOutput, LinkRole};
pub use rebalance::RebalanceConfig;
pub(crate) use rebalance::splitmix;
pub use records::ContractKind;
use records::{ContractRec, ObjectRec, SinkRec, StreamRec, TagRec, Target};

/// Events the drained queue keeps room for (a few tens of KiB): a round of states to a
/// thousand objects reuses it instead of growing it again.
const EVENTS_KEPT: usize = 1024;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u64);
    };
}
id_type!(
    /// An object record's id, unique within one engine (never reused).
    ObjectId
);
id_type!(
    /// A tag record's id, unique within one engine.
    TagId
);
id_type!(
    /// A contract's id, unique within one engine across all four kinds.
    ContractId
);
id_type!(
    /// A state stream's id, unique within one engine.
    StreamId
);
id_type!(
    /// A state sink's id, unique within one engine (links' receiving channels get one too).
    SinkId
);
id_type!(
    /// A link's id, unique within one engine.
    LinkId
);

/// A handle taken out of a contract's queue, with its object's descriptor.
#[derive(Debug)]
pub enum TakenHandle {
    /// From an observe contract: the stream and the object whose states it reports (announced
    /// by [`Event::StateChanged`]; the current one is [`Engine::object_state`]).
    Stream(StreamId, ObjectDescriptor, ObjectId),
    /// From an expose contract.
    Sink(SinkId, ObjectDescriptor),
}

/// An output of the engine, drained with [`Engine::poll_event`].
#[derive(Clone, Debug)]
pub enum Event {
    /// The contract has a handle queued: [`Engine::take_handle`] will return it.
    HandleReady(ContractId),
    /// The object's state changed (a newer version, a changed synchronisation, or dropped):
    /// every open stream of the object has something new to report.
    StateChanged(ObjectId, Option<Arc<ObjectState<DataBytes>>>),
    /// The stream was closed: after its last state, it ends.
    StreamClosed(StreamId),
    /// The sink was closed (its election was lost): its producer should stop and drop it.
    SinkClosed(SinkId),
    /// The object's record is gone (nothing holds it); its id is never reused.
    ObjectRemoved(ObjectId),
    /// The link has frames to send: call [`Engine::link_transmit`]. Announced once until then.
    Transmit(LinkId),
    /// The link was closed, for this reason (reported once).
    LinkClosed(LinkId, CloseReason),
}

/// What [`Engine::poll_sink_params`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkPoll {
    /// The sink may produce (yielded once per sink).
    Ready,
    /// Still open; [`Event::SinkClosed`] will announce when it closes.
    Pending,
    /// The sink was revoked (or is unknown): stop producing and drop it.
    Closed,
}

/// Record counts, for tests and introspection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineCounts {
    /// Object records.
    pub objects: usize,
    /// Tag records.
    pub tags: usize,
    /// Contracts of all kinds.
    pub contracts: usize,
    /// Stream records (queued or held).
    pub streams: usize,
    /// Sink records (queued or held).
    pub sinks: usize,
    /// Links, open or closed but not yet removed.
    pub links: usize,
}

#[derive(Default)]
struct Sequences {
    object: u64,
    tag: u64,
    contract: u64,
    stream: u64,
    sink: u64,
    link: u64,
    declaration: u64,
}

fn next(counter: &mut u64) -> u64 {
    let id = *counter;
    *counter += 1;
    id
}

/// Hakuban's state machine for one exchange. See the [module documentation](self) for the rule.
#[derive(Default)]
pub struct Engine {
    /// Boxed, so the table holds 16 bytes per slot and its growth slack (up to half of it
    /// empty right after doubling) costs little with a million objects.
    objects: HashMap<ObjectId, Box<ObjectRec>>,
    object_index: HashMap<ObjectDescriptor, ObjectId>,
    tags: HashMap<TagId, TagRec>,
    tag_index: HashMap<TagDescriptor, TagId>,
    /// Boxed: an object contract per object is common (S9 a's observer holds a million), and a
    /// 104-byte record inline paid for every empty slot of the table as well.
    contracts: HashMap<ContractId, Box<ContractRec>>,
    streams: HashMap<StreamId, StreamRec>,
    sinks: HashMap<SinkId, SinkRec>,
    events: VecDeque<Event>,
    /// Objects and tags that may have lost their last holder during the current input.
    gc_objects: Vec<ObjectId>,
    /// Boxed: a record is over a kilobyte, and a table of them inline would keep that per
    /// empty slot.
    links: HashMap<LinkId, Box<link::LinkRec>>,
    upstream: Option<LinkId>,
    /// Links by the instant their deadlines must be checked (never later than the real one; each
    /// link's earliest entry is its `check_at`, other entries are stale and skipped).
    link_deadlines: BinaryHeap<Reverse<(Instant, LinkId)>>,
    /// Objects by the instant their next load-balancing check is due.
    rebalance_queue: due_queue::DueQueue,
    /// Objects created since the last rebalancing pass (scheduled at its start).
    rebalance_new: Vec<ObjectId>,
    /// Parked objects refreshed since the last pass (rescheduled by it, spread over an interval).
    rebalance_woken: Vec<ObjectId>,
    /// Periodic load balancing run by [`Engine::handle_timeout`], if enabled.
    rebalance_config: Option<RebalanceConfig>,
    /// When that balancing pass is due next.
    rebalance_at: Option<Instant>,
    /// State of the generator that jitters the balancing schedule (seeded; tests fix it).
    random: u64,
    ids: Sequences,
    /// Tokens and rights downstream links are checked against (`None`: everyone may do all).
    access: Option<Arc<crate::access::AccessPolicy>>,
}

impl Engine {
    /// An empty engine.
    pub fn new() -> Self {
        Engine::default()
    }

    /// Declares interest in observing one object. Its stream is queued at once.
    pub fn create_object_observe_contract(&mut self, descriptor: ObjectDescriptor, now: Instant) -> ContractId {
        let object = self.object_for(&descriptor);
        let id = self.new_contract(ContractKind::ObjectObserve, Target::Object(object), 0);
        if let Some(rec) = self.objects.get_mut(&object) {
            rec.observers.push(id);
        }
        self.refresh(object, now);
        self.ensure_stream(id, object);
        self.finish_input();
        id
    }

    /// Offers to expose one object with `capacity`; a sink is queued whenever it is elected.
    pub fn create_object_expose_contract(
        &mut self,
        descriptor: ObjectDescriptor,
        capacity: u32,
        now: Instant,
    ) -> ContractId {
        let object = self.object_for(&descriptor);
        let id = self.new_contract(ContractKind::ObjectExpose, Target::Object(object), capacity);
        if let Some(rec) = self.objects.get_mut(&object) {
            rec.exposers.push(id);
        }
        self.refresh(object, now);
        self.finish_input();
        id
    }

    /// Declares interest in every live object carrying `tag`.
    pub fn create_tag_observe_contract(&mut self, tag: TagDescriptor, now: Instant) -> ContractId {
        let tag_id = self.tag_for(&tag);
        let id = self.new_contract(ContractKind::TagObserve, Target::Tag(tag_id), 0);
        let objects = self.tag_objects(tag_id, |rec| rec.observers.push(id));
        self.tag_declaration_may_change(tag_id);
        for object in objects {
            self.refresh(object, now);
            if self.objects.get(&object).is_some_and(|rec| rec.live) {
                self.ensure_stream(id, object);
            }
        }
        self.finish_input();
        id
    }

    /// Offers to expose every object carrying `tag`, with `capacity`.
    pub fn create_tag_expose_contract(&mut self, tag: TagDescriptor, capacity: u32, now: Instant) -> ContractId {
        let tag_id = self.tag_for(&tag);
        let id = self.new_contract(ContractKind::TagExpose, Target::Tag(tag_id), capacity);
        let objects = self.tag_objects(tag_id, |rec| rec.exposers.push(id));
        self.tag_declaration_may_change(tag_id);
        for object in objects {
            self.refresh(object, now);
        }
        self.finish_input();
        id
    }

    /// Drops a contract: closes its streams or sinks, withdraws it, re-elects. Unknown ids are
    /// ignored, so a late drop is harmless.
    pub fn drop_contract(&mut self, id: ContractId, now: Instant) {
        let Some(contract) = self.contracts.remove(&id) else { return };
        for handle in contract.current.values() {
            self.close_handle(*handle, now);
        }
        match contract.target {
            Target::Object(object) => {
                if let Some(rec) = self.objects.get_mut(&object) {
                    rec.observers.retain(|c| *c != id);
                    rec.exposers.retain(|c| *c != id);
                    if rec.exposer == Some(records::Exposer::Contract(id)) {
                        rec.exposer = None;
                    }
                }
                self.refresh(object, now);
                self.gc_objects.push(object);
            }
            Target::Tag(tag) => {
                let objects = self.tag_objects(tag, |rec| {
                    rec.observers.retain(|c| *c != id);
                    rec.exposers.retain(|c| *c != id);
                });
                self.tag_declaration_may_change(tag);
                for object in objects {
                    if let Some(rec) = self.objects.get_mut(&object)
                        && rec.exposer == Some(records::Exposer::Contract(id))
                    {
                        rec.exposer = None;
                    }
                    self.refresh(object, now);
                }
                self.remove_tag_if_unreferenced(tag);
            }
        }
        self.finish_input();
    }

    /// Takes the oldest handle the contract has emitted, or `None`: then [`Event::HandleReady`]
    /// announces the next one. A contract never ends by itself.
    pub fn take_handle(&mut self, id: ContractId) -> Option<TakenHandle> {
        self.take_queued(id)
    }

    /// The object's current state, if it has one (what a new stream yields first).
    pub fn object_state(&self, object: ObjectId) -> Option<Arc<ObjectState<DataBytes>>> {
        self.objects.get(&object).and_then(|rec| rec.state.clone())
    }

    /// `true` while the stream exists and is open.
    pub fn stream_open(&self, stream: StreamId) -> bool {
        self.streams.get(&stream).is_some_and(|rec| !rec.closed)
    }

    /// Drops a stream handle. If its contract still wants a stream for the object, a fresh one
    /// is queued (it yields the current state first).
    pub fn drop_stream(&mut self, id: StreamId, now: Instant) {
        let Some(stream) = self.streams.remove(&id) else { return };
        self.forget_stream(id, &stream);
        if let Some(contract) = stream.contract {
            self.ensure_stream_if_wanted(contract, stream.object);
        }
        let _ = now;
        self.finish_input();
    }

    /// Whether the sink may produce: `Ready` once, then `Pending` until it is revoked
    /// ([`Event::SinkClosed`]), then `Closed`.
    pub fn poll_sink_params(&mut self, id: SinkId) -> SinkPoll {
        let Some(sink) = self.sinks.get_mut(&id) else { return SinkPoll::Closed };
        if sink.closed {
            SinkPoll::Closed
        } else if !sink.params_yielded {
            sink.params_yielded = true;
            SinkPoll::Ready
        } else {
            SinkPoll::Pending
        }
    }

    /// Applies a state sent into a sink (closed or not: see the crate docs on closed sinks).
    pub fn sink_send(&mut self, id: SinkId, state: ObjectState<DataBytes>, now: Instant) {
        let Some(sink) = self.sinks.get(&id) else { return };
        let object = sink.object;
        self.apply_state(object, id, Arc::new(state), now);
        self.finish_input();
    }

    /// Drops a sink handle: its producer is gone (the state turns stale if it was the last
    /// synchronised one) and, if its contract is still elected, a fresh sink is queued.
    pub fn drop_sink(&mut self, id: SinkId, now: Instant) {
        let Some(sink) = self.sinks.remove(&id) else { return };
        self.forget_sink(id, &sink, now);
        if let Some(contract) = sink.contract {
            self.ensure_sink_if_elected(contract, sink.object);
        }
        self.finish_input();
    }

    /// The next output event, oldest first, or `None` once drained. See the module docs: drain
    /// it after every input.
    pub fn poll_event(&mut self) -> Option<Event> {
        let event = self.events.pop_front();
        if event.is_none() && self.events.capacity() > EVENTS_KEPT {
            // Drained after every input: a queue given back each time would be grown again,
            // a doubling at a time, by the next burst. Only what a rare flood left is returned.
            self.events.shrink_to(EVENTS_KEPT);
        }
        event
    }

    /// Numbers of records held.
    pub fn counts(&self) -> EngineCounts {
        EngineCounts {
            objects: self.objects.len(),
            tags: self.tags.len(),
            contracts: self.contracts.len(),
            streams: self.streams.len(),
            sinks: self.sinks.len(),
            links: self.links.len(),
        }
    }

    /// Bytes of slots the engine's tables keep allocated (capacity, not length); for tests that
    /// check tables shrink after a load leaves.
    pub(crate) fn table_bytes(&self) -> usize {
        use crate::shrink::map_bytes as bytes;
        bytes(&self.objects)
            + bytes(&self.object_index)
            + bytes(&self.tags)
            + bytes(&self.tag_index)
            + bytes(&self.contracts)
            + bytes(&self.streams)
            + bytes(&self.sinks)
            + bytes(&self.links)
    }

    /// `true` when the engine holds no object, tag, contract, stream or sink.
    pub fn is_empty(&self) -> bool {
        self.counts() == EngineCounts::default()
    }

    fn new_contract(&mut self, kind: ContractKind, target: Target, capacity: u32) -> ContractId {
        let id = ContractId(next(&mut self.ids.contract));
        self.contracts.insert(
            id,
            Box::new(ContractRec {
                kind,
                target,
                capacity,
                queue: VecDeque::new(),
                queue_dead: 0,
                current: Default::default(),
            }),
        );
        id
    }

    /// The object record for `descriptor`, created (with its tags) if missing.
    fn object_for(&mut self, descriptor: &ObjectDescriptor) -> ObjectId {
        if let Some(id) = self.object_index.get(descriptor) {
            return *id;
        }
        let id = ObjectId(next(&mut self.ids.object));
        let tags: records::Few<TagId> = descriptor.tags().iter().map(|tag| self.tag_for(tag)).collect();
        for tag in &tags {
            if let Some(rec) = self.tags.get_mut(tag) {
                rec.objects.insert(id);
            }
        }
        self.objects.insert(id, Box::new(ObjectRec::new(descriptor.clone(), tags)));
        self.object_index.insert(descriptor.clone(), id);
        self.rebalance_new.push(id);
        // Only a balancing pass drains this: on an exchange that never runs one, ids of objects
        // gone meanwhile are swept so it stays proportional to the live objects.
        if self.rebalance_new.len() > 2 * self.objects.len() + 64 {
            let objects = &self.objects;
            self.rebalance_new.retain(|id| objects.contains_key(id));
        }
        self.gc_objects.push(id);
        id
    }

    fn tag_for(&mut self, descriptor: &TagDescriptor) -> TagId {
        if let Some(id) = self.tag_index.get(descriptor) {
            return *id;
        }
        let id = TagId(next(&mut self.ids.tag));
        self.tags.insert(
            id,
            TagRec {
                descriptor: descriptor.clone(),
                objects: Default::default(),
                observers: Vec::new(),
                exposers: Vec::new(),
                down: records::Few::new(),
            },
        );
        self.tag_index.insert(descriptor.clone(), id);
        id
    }

    /// Applies `update` to the tag record and returns its objects, in id order for determinism.
    fn tag_objects(&mut self, tag: TagId, update: impl FnOnce(&mut TagRec)) -> Vec<ObjectId> {
        let Some(rec) = self.tags.get_mut(&tag) else { return Vec::new() };
        update(rec);
        let mut objects: Vec<ObjectId> = rec.objects.iter().copied().collect();
        objects.sort_unstable();
        objects
    }

    /// Ends an input: removes records nobody holds any more, and gives back the room of tables
    /// that emptied.
    fn finish_input(&mut self) {
        let removed_any = !self.gc_objects.is_empty();
        self.collect_garbage();
        if removed_any {
            crate::shrink::map(&mut self.objects);
            crate::shrink::map(&mut self.object_index);
            crate::shrink::map(&mut self.tags);
            crate::shrink::map(&mut self.tag_index);
            crate::shrink::map(&mut self.contracts);
            crate::shrink::map(&mut self.streams);
            crate::shrink::map(&mut self.sinks);
            crate::shrink::vec(&mut self.gc_objects);
        }
    }

    fn collect_garbage(&mut self) {
        while let Some(object) = self.gc_objects.pop() {
            let Some(rec) = self.objects.get(&object) else { continue };
            if !rec.is_unreferenced() {
                continue;
            }
            if let Some(rec) = self.objects.remove(&object) {
                self.events.push_back(Event::ObjectRemoved(object));
                self.object_index.remove(&rec.descriptor);
                self.forget_object_on_links(object);
                for tag in rec.tags {
                    if let Some(tag_rec) = self.tags.get_mut(&tag) {
                        tag_rec.objects.remove(&object);
                    }
                    self.remove_tag_if_unreferenced(tag);
                }
            }
        }
    }

    fn remove_tag_if_unreferenced(&mut self, tag: TagId) {
        if self.tags.get(&tag).is_some_and(TagRec::is_unreferenced)
            && let Some(rec) = self.tags.remove(&tag)
        {
            self.tag_index.remove(&rec.descriptor);
            self.forget_tag_on_links(tag);
        }
    }
}

#[cfg(test)]
mod tests;
