//! The [`Exchange`] facade: the engine behind one mutex, plus the wakers of whoever waits on it.
//!
//! Every operation locks, calls the engine, drains the wakers it produced, unlocks and only then
//! wakes them: no user code and no waking ever runs under the lock. Streams read states without
//! the lock (see [`StreamReader`](crate::engine::StreamReader)).

use std::sync::Arc;
use std::task::Waker;
use std::time::Instant;

use parking_lot::Mutex;
use smallvec::SmallVec;

use crate::contract::{
    ObjectExposeContractBuilder, ObjectObserveContractBuilder, TagExposeContractBuilder, TagObserveContractBuilder,
};
use crate::descriptor::{ObjectDescriptor, TagDescriptor};
use crate::engine::{Engine, EngineCounts};
use crate::snapshot::ExchangeSnapshot;

/// The state shared by an exchange and every handle it gave out.
pub(crate) struct Shared {
    engine: Mutex<Engine>,
}

impl Shared {
    /// Runs one engine input, then (after unlocking) wakes whoever it made ready.
    pub(crate) fn run<R>(&self, input: impl FnOnce(&mut Engine) -> R) -> R {
        // Most inputs wake a handful of tasks at most: keep them on the stack.
        let mut woken: SmallVec<[Waker; 8]> = SmallVec::new();
        let result = {
            let mut engine = self.engine.lock();
            let result = input(&mut engine);
            while let Some(waker) = engine.poll_wake() {
                woken.push(waker);
            }
            result
        };
        woken.into_iter().for_each(Waker::wake);
        result
    }
}

/// One Hakuban node: creates contracts, elects exposers, propagates states.
///
/// Cheap to clone (clones share the node) and usable from any executor or thread. Handles
/// (contracts, streams, sinks) keep the node alive, so dropping every `Exchange` clone while
/// handles live is fine.
#[derive(Clone)]
pub struct Exchange {
    shared: Arc<Shared>,
}

impl Default for Exchange {
    fn default() -> Self {
        Exchange::new()
    }
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let counts = self.counts();
        f.debug_struct("Exchange")
            .field("objects", &counts.objects)
            .field("tags", &counts.tags)
            .field("contracts", &counts.contracts)
            .finish()
    }
}

impl Exchange {
    /// A new, empty, unconnected exchange.
    pub fn new() -> Self {
        Exchange { shared: Arc::new(Shared { engine: Mutex::new(Engine::new()) }) }
    }

    /// Starts declaring interest in observing one object.
    pub fn object_observe_contract(&self, descriptor: impl Into<ObjectDescriptor>) -> ObjectObserveContractBuilder {
        ObjectObserveContractBuilder::new(self.shared.clone(), descriptor.into())
    }

    /// Starts offering to expose one object (capacity 1 unless set).
    pub fn object_expose_contract(&self, descriptor: impl Into<ObjectDescriptor>) -> ObjectExposeContractBuilder {
        ObjectExposeContractBuilder::new(self.shared.clone(), descriptor.into())
    }

    /// Starts declaring interest in every live object carrying a tag.
    pub fn tag_observe_contract(&self, tag: impl Into<TagDescriptor>) -> TagObserveContractBuilder {
        TagObserveContractBuilder::new(self.shared.clone(), tag.into())
    }

    /// Starts offering to expose every object carrying a tag (capacity 1 unless set).
    pub fn tag_expose_contract(&self, tag: impl Into<TagDescriptor>) -> TagExposeContractBuilder {
        TagExposeContractBuilder::new(self.shared.clone(), tag.into())
    }

    /// What the exchange holds now: objects, tags, their flags, exposers and cached states.
    pub fn snapshot(&self) -> ExchangeSnapshot {
        let now = Instant::now();
        self.shared.run(|engine| engine.snapshot(now))
    }

    /// How many records the engine holds (all zero once every handle is dropped).
    pub fn counts(&self) -> EngineCounts {
        self.shared.run(|engine| engine.counts())
    }

    /// Runs the engine's self-check ([`Engine::check_invariants`]); for tests.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        self.shared.run(|engine| engine.check_invariants())
    }
}
