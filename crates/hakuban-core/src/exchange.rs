//! The [`Exchange`]: the user's entry point. It creates contracts, opens links and answers
//! questions about the node; the engine, the lock and the waiters are in [`crate::facade`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::CloseReason;
use crate::contract::{
    ObjectExposeContractBuilder, ObjectObserveContractBuilder, TagExposeContractBuilder, TagObserveContractBuilder,
};
use crate::descriptor::{ObjectDescriptor, TagDescriptor};
use crate::engine::{EngineCounts, LinkConfig, LinkId, LinkInfo, LinkRole};
use crate::facade::{Clock, Shared};
use crate::link::{Link, LinkError};
use crate::snapshot::ExchangeSnapshot;

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
        Exchange::with_clock(Arc::new(crate::facade::system_clock))
    }

    /// A new exchange whose handles read the time from `clock` instead of the system's monotonic
    /// clock: a virtual clock in tests (links driven with the same clock's instants), or
    /// another time source where `Instant::now` is not available.
    pub fn with_clock(clock: Clock) -> Self {
        Exchange { shared: Arc::new(Shared::new(clock, seed())) }
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
        if role == LinkRole::Upstream && self.shared.upstream_reserved() {
            return Err(LinkError::UpstreamTaken);
        }
        Link::open(self.shared.clone(), role, config)
    }

    /// Reserves the exchange's one upstream for a connector that will open (and re-open, after
    /// each disconnection) its links through the reservation. Fails if another reservation or an
    /// upstream link exists. Dropping the reservation releases it.
    pub fn reserve_upstream(&self) -> Result<UpstreamReservation, LinkError> {
        if !self.shared.reserve_upstream() {
            return Err(LinkError::UpstreamTaken);
        }
        Ok(UpstreamReservation { shared: self.shared.clone(), released: AtomicBool::new(false) })
    }

    /// What the exchange knows about one of its links (by [`Link::id`]), if it exists.
    pub fn link_info(&self, id: u64) -> Option<LinkInfo> {
        let now = self.shared.now();
        self.shared.engine(|engine| engine.link_info(LinkId(id), now))
    }

    /// Runs the periodic load balancing between children that is due, moving objects from
    /// busier to less busy exposers when the difference exceeds `threshold` (see
    /// [`Engine::rebalance`](crate::engine::Engine::rebalance)), and returns when to call it next. The router calls it in a loop
    /// with an average interval of one second; an exchange serving its own listener may too.
    pub fn rebalance(&self, average_interval: Duration, threshold: f64) -> Instant {
        let now = self.shared.now();
        let random = &self.shared.random;
        let mut next_random = || {
            let mut state = random.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            crate::engine::splitmix(&mut state)
        };
        self.shared.engine(|engine| engine.rebalance(now, average_interval, threshold, &mut next_random))
    }

    /// Checks children (downstream links) against `policy` from now on: each must present a
    /// token the policy knows (or be granted the anonymous rights), and its declarations outside
    /// the token's rights are refused (see [`crate::access`]). Call it again to reload: open
    /// links are checked anew, keeping what they may still do. `None` lets everyone do all (the
    /// default).
    pub fn set_access_policy(&self, policy: Option<crate::access::AccessPolicy>) {
        let now = self.shared.now();
        let policy = policy.map(std::sync::Arc::new);
        self.shared.engine(|engine| engine.set_access_policy(policy, now));
    }

    /// What the exchange holds now: objects, tags, their flags, exposers and cached states.
    pub fn snapshot(&self) -> ExchangeSnapshot {
        let now = self.shared.now();
        self.shared.engine(|engine| engine.snapshot(now))
    }

    /// How many records the engine holds (all zero once every handle is dropped).
    pub fn counts(&self) -> EngineCounts {
        self.shared.engine(|engine| engine.counts())
    }

    /// The facade's time, from its [`Clock`].
    pub fn now(&self) -> Instant {
        self.shared.now()
    }

    /// How many wakers and published cells the facade holds for handles and links (zero once
    /// every handle is dropped); for tests that check nothing is kept.
    #[doc(hidden)]
    pub fn waiter_counts(&self) -> usize {
        self.shared.run(|inner| inner.waiter_counts())
    }

    /// Bytes of slots the exchange's tables keep allocated (capacity, not length); for tests that
    /// check the tables shrink once a load has left.
    #[doc(hidden)]
    pub fn table_bytes(&self) -> usize {
        self.shared.run(|inner| inner.table_bytes())
    }

    /// How many payload encodings this exchange's links took from their shared cache instead of
    /// encoding again; for tests of fan-out.
    #[doc(hidden)]
    pub fn payload_cache_hits(&self) -> u64 {
        self.shared.payloads().hits()
    }

    /// Runs the engine's self-check ([`Engine::check_invariants`]); for tests.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        self.shared.engine(|engine| engine.check_invariants())
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
            return Err(LinkError::Closed(CloseReason::ClosedLocally(
                "the upstream reservation was released".to_string(),
            )));
        }
        Link::open(self.shared.clone(), LinkRole::Upstream, config)
    }

    /// Gives the upstream back at once: the current upstream link (if any) is closed and the
    /// exchange may be connected elsewhere, even while a task still holds this reservation.
    pub fn release(&self) {
        if self.released.swap(true, Ordering::SeqCst) {
            return;
        }
        let now = self.shared.now();
        let reason = CloseReason::ClosedLocally("upstream connector dropped".to_string());
        self.shared.engine(|engine| engine.close_upstream(reason, now));
        self.shared.release_upstream();
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
