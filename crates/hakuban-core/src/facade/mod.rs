//! What every handle shares: the engine behind one lock, the table of who waits for what, the
//! published cells streams read without the lock, and the clock.
//!
//! The engine speaks in [`Event`]s; this module turns them into wakes. Every operation of a
//! handle is `Shared::run`: lock, call the engine, drain its events into the wakers waiting for
//! them, unlock, and only then wake. No waking and no user code ever runs under the lock. The
//! handles (`exchange`, `contract`, `stream`, `sink`, `link`) depend on this module and never on
//! each other's internals; the exchange's "one upstream" rule lives here too.

mod cells;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Waker;
use std::time::Instant;

use hashbrown::HashMap;
use parking_lot::Mutex;
use smallvec::SmallVec;

use cells::{ObjectCell, StreamCell};
pub(crate) use cells::{StreamPoll, StreamReader};

use crate::descriptor::ObjectDescriptor;
use crate::engine::{ContractId, Engine, Event, LinkId, ObjectId, SinkId, SinkPoll, StreamId, TakenHandle};

/// Where the facade reads the time. The one place hakuban-core reads a clock: the engine and
/// [`Link`](crate::Link) take time as an argument. Swap it with
/// [`Exchange::with_clock`](crate::Exchange::with_clock) (a virtual clock in tests, another time
/// source on a platform without `Instant::now`).
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// The default [`Clock`]: the system's monotonic clock.
pub fn system_clock() -> Instant {
    Instant::now()
}

/// A handle taken from a contract, ready to wrap.
#[derive(Debug)]
pub(crate) enum Taken {
    Stream(StreamId, ObjectDescriptor, StreamReader),
    Sink(SinkId, ObjectDescriptor),
}

/// The engine and the waiters, under one lock.
pub(crate) struct Inner {
    pub engine: Engine,
    waiters: Waiters,
}

/// Who waits for which event. Each entry is taken when its event arrives, or dropped with its
/// handle, so nothing here outlives what it waits for.
#[derive(Default)]
struct Waiters {
    contracts: HashMap<ContractId, Waker>,
    sinks: HashMap<SinkId, Waker>,
    links: HashMap<LinkId, Waker>,
    /// Published states of objects that have (or had) streams taken.
    objects: HashMap<ObjectId, Arc<ObjectCell>>,
    /// The cells of streams the user holds.
    streams: HashMap<StreamId, Arc<StreamCell>>,
    /// Reused buffer for an object's waiting readers.
    scratch: Vec<Arc<StreamCell>>,
}

pub(crate) type Woken = SmallVec<[Waker; 8]>;

impl std::ops::Deref for Inner {
    type Target = Engine;

    fn deref(&self) -> &Engine {
        &self.engine
    }
}

impl std::ops::DerefMut for Inner {
    fn deref_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }
}

impl Inner {
    /// A fresh engine with nobody waiting.
    pub fn new() -> Self {
        Inner { engine: Engine::new(), waiters: Waiters::default() }
    }

    /// Drains the engine's events into `woken`.
    pub fn drain(&mut self, woken: &mut Woken) {
        let waiters = &mut self.waiters;
        while let Some(event) = self.engine.poll_event() {
            match event {
                Event::HandleReady(contract) => woken.extend(waiters.contracts.remove(&contract)),
                Event::StateChanged(object, state) => {
                    if let Some(cell) = waiters.objects.get(&object) {
                        cell.set(state);
                        cell.take_wakers(&mut waiters.scratch, woken);
                    }
                }
                Event::StreamClosed(stream) => {
                    woken.extend(waiters.streams.get(&stream).and_then(|cell| cell.close()));
                }
                Event::SinkClosed(sink) => woken.extend(waiters.sinks.remove(&sink)),
                Event::ObjectRemoved(object) => {
                    if let Some(cell) = waiters.objects.remove(&object) {
                        cell.clear();
                    }
                    crate::shrink::map(&mut waiters.objects);
                }
                Event::Transmit(link) | Event::LinkClosed(link, _) => woken.extend(waiters.links.remove(&link)),
            }
        }
    }

    /// Takes the contract's next handle, or registers `waker` for [`Event::HandleReady`].
    pub fn take_handle(&mut self, contract: ContractId, waker: &Waker) -> Option<Taken> {
        match self.engine.take_handle(contract) {
            None => {
                register(self.waiters.contracts.entry(contract).or_insert_with(|| waker.clone()), waker);
                None
            }
            Some(TakenHandle::Sink(sink, descriptor)) => Some(Taken::Sink(sink, descriptor)),
            Some(TakenHandle::Stream(stream, descriptor, object)) => {
                let engine = &self.engine;
                let cell = self.waiters.objects.entry(object).or_insert_with(|| {
                    // Created from the current state; later changes arrive as events.
                    Arc::new(ObjectCell::new(engine.object_state(object)))
                });
                let stream_cell = Arc::new(StreamCell::new(cell.clone()));
                self.waiters.streams.insert(stream, stream_cell.clone());
                Some(Taken::Stream(stream, descriptor, StreamReader::new(stream_cell)))
            }
        }
    }

    /// Whether the sink may produce; registers `waker` for [`Event::SinkClosed`] while pending.
    pub fn poll_sink_params(&mut self, sink: SinkId, waker: &Waker) -> SinkPoll {
        let poll = self.engine.poll_sink_params(sink);
        if poll == SinkPoll::Pending {
            register(self.waiters.sinks.entry(sink).or_insert_with(|| waker.clone()), waker);
        }
        poll
    }

    /// The user dropped a contract.
    pub fn drop_contract(&mut self, contract: ContractId, now: Instant) {
        self.waiters.contracts.remove(&contract);
        crate::shrink::map(&mut self.waiters.contracts);
        self.engine.drop_contract(contract, now);
    }

    /// The user dropped a stream: its cell leaves every table and waiting list.
    pub fn drop_stream(&mut self, stream: StreamId, now: Instant) {
        let removed = self.waiters.streams.remove(&stream);
        crate::shrink::map(&mut self.waiters.streams);
        if let Some(cell) = removed {
            cell.object().forget(&cell);
        }
        self.engine.drop_stream(stream, now);
    }

    /// The user dropped a sink.
    pub fn drop_sink(&mut self, sink: SinkId, now: Instant) {
        self.waiters.sinks.remove(&sink);
        crate::shrink::map(&mut self.waiters.sinks);
        self.engine.drop_sink(sink, now);
    }

    /// Registers `waker` to be woken when the link may have something to send or closes; wakes
    /// it at once (returned in `woken`) if it already has.
    pub fn register_link(&mut self, link: LinkId, waker: &Waker, woken: &mut Woken) {
        if self.engine.link_wants_transmit(link) {
            woken.push(waker.clone());
        } else {
            register(self.waiters.links.entry(link).or_insert_with(|| waker.clone()), waker);
        }
    }

    /// The link's handle is gone.
    pub fn remove_link(&mut self, link: LinkId, now: Instant) {
        self.waiters.links.remove(&link);
        crate::shrink::map(&mut self.waiters.links);
        self.engine.remove_link(link, now);
    }

    /// How many wakers and cells are held (all zero once every handle is gone); for tests.
    pub fn waiter_counts(&self) -> usize {
        let w = &self.waiters;
        w.contracts.len() + w.sinks.len() + w.links.len() + w.objects.len() + w.streams.len()
    }

    /// Bytes of slots the facade's and the engine's tables keep allocated; for tests.
    pub fn table_bytes(&self) -> usize {
        use crate::shrink::map_bytes as bytes;
        let w = &self.waiters;
        bytes(&w.contracts)
            + bytes(&w.sinks)
            + bytes(&w.links)
            + bytes(&w.objects)
            + bytes(&w.streams)
            + self.engine.table_bytes()
    }
}

/// Replaces the waker in `slot` unless it would wake the same task.
fn register(slot: &mut Waker, waker: &Waker) {
    if !slot.will_wake(waker) {
        slot.clone_from(waker);
    }
}

/// The state shared by an exchange and every handle it gave out.
pub(crate) struct Shared {
    inner: Mutex<Inner>,
    clock: Clock,
    /// State of the generator that jitters the load-balancing schedule.
    pub random: AtomicU64,
    /// Set while an upstream reservation (a connector) owns the right to the upstream.
    upstream_reserved: AtomicBool,
    /// Encoded payloads shared by the links (fan-out encodes once per baseline).
    payloads: crate::payload_cache::PayloadCache,
}

impl Shared {
    pub fn new(clock: Clock, seed: u64) -> Self {
        Shared {
            inner: Mutex::new(Inner::new()),
            clock,
            random: AtomicU64::new(seed),
            upstream_reserved: AtomicBool::new(false),
            payloads: Default::default(),
        }
    }

    /// The payload encodings shared by this exchange's links.
    pub fn payloads(&self) -> &crate::payload_cache::PayloadCache {
        &self.payloads
    }

    /// The facade's time (see [`Clock`]).
    pub fn now(&self) -> Instant {
        (self.clock)()
    }

    /// Runs one input, then (after unlocking) wakes whoever its events made ready.
    pub fn run<R>(&self, input: impl FnOnce(&mut Inner) -> R) -> R {
        self.run_woken(|inner, _| input(inner))
    }

    /// As [`run`](Self::run), for inputs that wake someone themselves.
    pub fn run_woken<R>(&self, input: impl FnOnce(&mut Inner, &mut Woken) -> R) -> R {
        // Most inputs wake a handful of tasks at most: keep them on the stack.
        let mut woken = Woken::new();
        let result = {
            let mut inner = self.inner.lock();
            let result = input(&mut inner, &mut woken);
            inner.drain(&mut woken);
            result
        };
        woken.into_iter().for_each(Waker::wake);
        result
    }

    /// Runs an engine input.
    pub fn engine<R>(&self, input: impl FnOnce(&mut Engine) -> R) -> R {
        self.run(|inner| input(&mut inner.engine))
    }

    /// The one-upstream rule: takes the right to the upstream for a connector, unless a
    /// reservation or an upstream link exists.
    pub fn reserve_upstream(&self) -> bool {
        if self.upstream_reserved.swap(true, Ordering::SeqCst) {
            return false;
        }
        if self.engine(|engine| engine.has_upstream()) {
            self.upstream_reserved.store(false, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// Gives the reservation back.
    pub fn release_upstream(&self) {
        self.upstream_reserved.store(false, Ordering::SeqCst);
    }

    /// The one-upstream rule for a link opened directly: refused while a connector holds the
    /// reservation (the engine itself refuses a second upstream link).
    pub fn upstream_reserved(&self) -> bool {
        self.upstream_reserved.load(Ordering::SeqCst)
    }
}
