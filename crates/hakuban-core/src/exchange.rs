//! The [`Exchange`] facade: the engine behind one mutex, plus the wakers of whoever waits on it.
//!
//! Every operation locks, calls the engine, drains the wakers it produced, unlocks and only then
//! wakes them: no user code and no waking ever runs under the lock. Streams read states without
//! the lock (see [`StreamReader`](crate::engine::StreamReader)).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Waker;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use smallvec::SmallVec;

use crate::contract::{
    ObjectExposeContractBuilder, ObjectObserveContractBuilder, TagExposeContractBuilder, TagObserveContractBuilder,
};
use crate::descriptor::{ObjectDescriptor, TagDescriptor};
use crate::engine::{Engine, EngineCounts, LinkConfig, LinkId, LinkInfo, LinkRole};
use crate::link::{Link, LinkError};
use crate::snapshot::ExchangeSnapshot;

/// The state shared by an exchange and every handle it gave out.
pub(crate) struct Shared {
    engine: Mutex<Engine>,
    /// State of the generator that jitters the load-balancing schedule.
    random: AtomicU64,
    /// Set while an [`UpstreamReservation`] (a connector) owns the right to the upstream.
    upstream_reserved: AtomicBool,
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
        Exchange {
            shared: Arc::new(Shared {
                engine: Mutex::new(Engine::new()),
                random: AtomicU64::new(seed()),
                upstream_reserved: AtomicBool::new(false),
            }),
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

    /// Opens a link for a transport to drive (see [`Link`]). An exchange has at most one
    /// upstream: opening a second one, or one while a connector holds the
    /// [reservation](Self::reserve_upstream), fails with [`LinkError::UpstreamTaken`].
    pub fn open_link(&self, role: LinkRole, config: LinkConfig) -> Result<Link, LinkError> {
        if role == LinkRole::Upstream && self.shared.upstream_reserved.load(Ordering::SeqCst) {
            return Err(LinkError::UpstreamTaken);
        }
        Link::open(self.shared.clone(), role, config)
    }

    /// Reserves the exchange's one upstream for a connector that will open (and re-open, after
    /// each disconnection) its links through the reservation. Fails if another reservation or an
    /// upstream link exists. Dropping the reservation releases it.
    pub fn reserve_upstream(&self) -> Result<UpstreamReservation, LinkError> {
        if self.shared.upstream_reserved.swap(true, Ordering::SeqCst) {
            return Err(LinkError::UpstreamTaken);
        }
        if self.shared.run(|engine| engine.has_upstream()) {
            self.shared.upstream_reserved.store(false, Ordering::SeqCst);
            return Err(LinkError::UpstreamTaken);
        }
        Ok(UpstreamReservation { shared: self.shared.clone(), released: AtomicBool::new(false) })
    }

    /// What the exchange knows about one of its links (by [`Link::id`]), if it exists.
    pub fn link_info(&self, id: u64) -> Option<LinkInfo> {
        let now = Instant::now();
        self.shared.run(|engine| engine.link_info(LinkId(id), now))
    }

    /// Runs the periodic load balancing between children that is due, moving objects from
    /// busier to less busy exposers when the difference exceeds `threshold` (see
    /// [`Engine::rebalance`]), and returns when to call it next. The router calls it in a loop
    /// with an average interval of one second; an exchange serving its own listener may too.
    pub fn rebalance(&self, average_interval: Duration, threshold: f64) -> Instant {
        let now = Instant::now();
        let random = &self.shared.random;
        let mut next_random = || {
            // splitmix64: enough to spread checks over time; not for anything secret.
            let mut z = random.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed).wrapping_add(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) as f64 / u64::MAX as f64
        };
        self.shared.run(|engine| engine.rebalance(now, average_interval, threshold, &mut next_random))
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

/// The right to an exchange's one upstream, held by a connector; see
/// [`Exchange::reserve_upstream`].
pub struct UpstreamReservation {
    shared: Arc<Shared>,
    released: AtomicBool,
}

impl UpstreamReservation {
    /// Opens the upstream link (one at a time: the previous one must be dropped first).
    pub fn open_link(&self, config: LinkConfig) -> Result<Link, LinkError> {
        if self.released.load(Ordering::SeqCst) {
            return Err(LinkError::Closed("the upstream reservation was released".to_string()));
        }
        Link::open(self.shared.clone(), LinkRole::Upstream, config)
    }

    /// Gives the upstream back at once: the current upstream link (if any) is closed and the
    /// exchange may be connected elsewhere, even while a task still holds this reservation.
    pub fn release(&self) {
        if self.released.swap(true, Ordering::SeqCst) {
            return;
        }
        let now = Instant::now();
        self.shared.run(|engine| engine.close_upstream("upstream connector dropped", now));
        self.shared.upstream_reserved.store(false, Ordering::SeqCst);
    }
}

impl Drop for UpstreamReservation {
    fn drop(&mut self) {
        self.release();
    }
}

impl std::fmt::Debug for UpstreamReservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UpstreamReservation")
    }
}

/// A seed for the load-balancing jitter that differs between exchanges and runs.
fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher
        .write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    hasher.finish()
}
