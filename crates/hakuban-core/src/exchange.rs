//! The [`Exchange`] facade: the engine behind one mutex, plus the wakers of whoever waits on it.
//!
//! Every operation locks, calls the engine, drains its events into a list of wakers, unlocks and
//! only then wakes them: no user code and no waking ever runs under the lock.

use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use hashbrown::HashMap;
use hashbrown::hash_map::Entry;
use parking_lot::Mutex;

use crate::contract::{
    ObjectExposeContractBuilder, ObjectObserveContractBuilder, TagExposeContractBuilder, TagObserveContractBuilder,
};
use crate::descriptor::{ObjectDescriptor, TagDescriptor};
use crate::engine::{Engine, EngineCounts, Waitable};
use crate::snapshot::ExchangeSnapshot;

struct Core {
    engine: Engine,
    wakers: HashMap<Waitable, Waker>,
}

impl Core {
    fn drain(&mut self, woken: &mut Vec<Waker>) {
        while let Some(waitable) = self.engine.poll_event() {
            if let Some(waker) = self.wakers.remove(&waitable) {
                woken.push(waker);
            }
        }
    }
}

/// The state shared by an exchange and every handle it gave out.
pub(crate) struct Shared {
    core: Mutex<Core>,
}

impl Shared {
    /// Runs one engine input, then wakes whoever it made ready.
    pub(crate) fn run<R>(&self, input: impl FnOnce(&mut Engine) -> R) -> R {
        let mut woken = Vec::new();
        let result = {
            let mut core = self.core.lock();
            let result = input(&mut core.engine);
            core.drain(&mut woken);
            result
        };
        woken.into_iter().for_each(Waker::wake);
        result
    }

    /// Polls the engine on behalf of `waitable`; if the answer is pending, remembers the waker.
    pub(crate) fn poll<R>(
        &self,
        waitable: Waitable,
        cx: &mut Context<'_>,
        poll: impl FnOnce(&mut Engine) -> Poll<R>,
    ) -> Poll<R> {
        let mut woken = Vec::new();
        let result = {
            let mut core = self.core.lock();
            let result = poll(&mut core.engine);
            if result.is_pending() {
                match core.wakers.entry(waitable) {
                    Entry::Occupied(mut entry) => {
                        if !entry.get().will_wake(cx.waker()) {
                            entry.insert(cx.waker().clone());
                        }
                    }
                    Entry::Vacant(entry) => {
                        entry.insert(cx.waker().clone());
                    }
                }
            }
            core.drain(&mut woken);
            result
        };
        woken.into_iter().for_each(Waker::wake);
        result
    }

    /// Runs the input that drops `waitable`'s handle and forgets its waker.
    pub(crate) fn release(&self, waitable: Waitable, input: impl FnOnce(&mut Engine, Instant)) {
        let now = Instant::now();
        let mut woken = Vec::new();
        let stale_waker = {
            let mut core = self.core.lock();
            input(&mut core.engine, now);
            core.drain(&mut woken);
            core.wakers.remove(&waitable)
        };
        // Dropped outside the lock: a waker's drop is executor code.
        drop(stale_waker);
        woken.into_iter().for_each(Waker::wake);
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
        Exchange {
            shared: Arc::new(Shared { core: Mutex::new(Core { engine: Engine::new(), wakers: HashMap::new() }) }),
        }
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

    /// Number of wakers remembered for pending handles (for leak tests).
    #[doc(hidden)]
    pub fn pending_waker_count(&self) -> usize {
        self.shared.core.lock().wakers.len()
    }
}
