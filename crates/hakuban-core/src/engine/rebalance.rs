//! Periodic load balancing between children (SEMANTICS §4.4).
//!
//! Every object sits in a due-date queue. A pass handles the objects due within the next 100 ms
//! and reschedules each one `average / 2 + uniform[0, 1) · average` later, so checks are spread
//! out and an exchange with many objects moves them gradually. Handling an object: if it is
//! needed but unassigned (a load limit left no room earlier) the election runs again; if a child
//! exposes it, it moves to a better child only when that child's load after taking it would be
//! lower than the current child's load by more than `threshold`.
//!
//! An object whose check finds nothing a later check could change (not needed; exposed here or
//! upstream; or exposed by the only child that offers to) is parked instead: out of the queue
//! until the next [`refresh`](Engine::refresh) of it, which is what every change of its
//! declarations, flags or exposer goes through. The next pass then schedules it within one
//! interval. A router of a million objects with one exposer each thus checks each once, not
//! every ten seconds forever.

use std::time::{Duration, Instant};

use super::records::{Exposer, ObjectRec};
use super::{Engine, LinkId, ObjectId};

/// Objects due within this much of now are handled in the same pass.
const HORIZON: Duration = Duration::from_millis(100);
/// The shortest average interval accepted (a zero one would never finish a pass).
const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// At most this many objects are checked per second on average: past 100,000 objects, each is
/// checked less often than asked. A check costs a couple of cache misses (about 0.6 µs with a
/// million objects), so at one check per object per second a router of a million objects spent
/// two thirds of a core on balancing alone, moving nothing.
const MAX_CHECKS_PER_SECOND: u32 = 100_000;

/// Periodic load balancing run by [`Engine::handle_timeout`] (see [`Engine::set_rebalance`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RebalanceConfig {
    /// Average time between two checks of one object (the router's default: 1 s).
    pub average_interval: Duration,
    /// An object moves only if the better child's load after taking it is lower than the
    /// current child's by more than this.
    pub threshold: f64,
}

impl Engine {
    /// An empty engine whose balancing jitter comes from `seed` (same seed, same schedule).
    pub fn with_seed(seed: u64) -> Self {
        Engine { random: seed, ..Engine::default() }
    }

    /// Enables (or, with `None`, disables) periodic load balancing as part of
    /// [`Engine::handle_timeout`]; the first pass is due at `now`.
    pub fn set_rebalance(&mut self, config: Option<RebalanceConfig>, now: Instant) {
        self.rebalance_config = config;
        self.rebalance_at = config.map(|_| now);
    }

    /// The earliest deadline of any link (receive timeout, write timeout, keep-alive) and of
    /// load balancing, if enabled. Call [`Engine::handle_timeout`] once it has passed; call this
    /// again after every input (an input may bring a deadline forward).
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.next_link_deadline(), self.rebalance_at].into_iter().flatten().min()
    }

    /// Handles every deadline due at `now`: silent and non-reading peers are closed, idle links
    /// get keep-alives, due balancing checks run. Calling it early is harmless. Drain the
    /// outputs afterwards.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.handle_link_deadlines(now);
        if let (Some(config), Some(at)) = (self.rebalance_config, self.rebalance_at)
            && at <= now
        {
            let mut seed = self.random;
            let next = self.rebalance(now, config.average_interval, config.threshold, &mut || splitmix(&mut seed));
            self.random = seed;
            self.rebalance_at = Some(next);
        }
        self.finish_input();
    }

    /// Runs the load-balancing checks that are due and returns when to call it next. `random`
    /// yields numbers in `[0, 1)` (the jitter of the schedule; a test can fix it). Each object is
    /// checked every `average_interval` on average, or less often with over 100,000 objects per
    /// second of interval (at most 100,000 checks a second), unless parked (see the module).
    /// With nothing scheduled it asks to be called again after the interval (at most a second).
    pub fn rebalance(
        &mut self,
        now: Instant,
        average_interval: Duration,
        threshold: f64,
        random: &mut dyn FnMut() -> f64,
    ) -> Instant {
        let floor = Duration::from_secs(1).mul_f64(self.objects.len() as f64 / f64::from(MAX_CHECKS_PER_SECOND));
        let average = average_interval.max(MIN_INTERVAL).max(floor);
        for object in std::mem::take(&mut self.rebalance_new) {
            self.rebalance_queue.push(now, object);
        }
        // Spread over an interval: a change to a tag wakes every object of it at once.
        for object in std::mem::take(&mut self.rebalance_woken) {
            self.rebalance_queue.push(now + average.mul_f64(random().clamp(0.0, 1.0)), object);
        }
        let horizon = now + HORIZON;
        while let Some(bucket) = self.rebalance_queue.pop_due(horizon) {
            for (due, object) in bucket {
                match self.rebalance_object(object, threshold, now) {
                    Check::Gone => {}
                    Check::Park => {
                        if let Some(rec) = self.objects.get_mut(&object) {
                            rec.balance_parked = true;
                        }
                    }
                    Check::Again => {
                        // Catch up with the schedule instead of replaying every missed slot.
                        let base = if due + average < now { now } else { due };
                        let next = base + average / 2 + average.mul_f64(random().clamp(0.0, 1.0));
                        self.rebalance_queue.push(next, object);
                    }
                }
            }
        }
        self.finish_input();
        // With every object parked, the queue is empty: a refresh may wake one at any time.
        let idle = if self.objects.is_empty() { Duration::from_secs(1) } else { average.min(Duration::from_secs(1)) };
        self.rebalance_queue.next_due().map_or(now + idle, |due| due.max(now))
    }

    /// Checks one object.
    fn rebalance_object(&mut self, object: ObjectId, threshold: f64, now: Instant) -> Check {
        let Some(rec) = self.objects.get(&object) else { return Check::Gone };
        if !rec.needed {
            return Check::Park;
        }
        let current = match rec.exposer {
            None => {
                // Needed but unassigned (a load limit left no room): retried every interval.
                self.refresh(object, now);
                return Check::Again;
            }
            Some(Exposer::Downstream(link)) => link,
            Some(_) => return Check::Park,
        };
        // Most objects have a single exposing child: that is settled from the declarations alone,
        // without the per-child lookups of `downstream_interests`.
        let (current_exposes, other_exposes) = self.exposing_children(rec, current);
        if !current_exposes {
            self.refresh(object, now);
            return Check::Again;
        }
        if !other_exposes {
            return Check::Park;
        }
        let children = self.downstream_interests(object);
        let current_load = self.links.get(&current).map_or(0.0, |l| l.load);
        let best = children
            .iter()
            .filter(|c| c.link != current && c.exposes && c.capacity > 0)
            .filter(|c| self.links.get(&c.link).is_some_and(|l| l.closed.is_none()))
            .filter(|c| self.downstream_has_room(c.link, c.capacity, now))
            .map(|c| {
                let load = self.links.get(&c.link).map_or(0.0, |l| l.load);
                (load + 1.0 / f64::from(c.capacity), c.exposing_since, c.link, c.capacity)
            })
            .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        if let Some((load_after, _, candidate, capacity)) = best
            && load_after < current_load - threshold
        {
            self.revoke_downstream(current, object, now);
            if let Some(rec) = self.objects.get_mut(&object) {
                rec.exposer = Some(Exposer::Downstream(candidate));
            }
            self.assign_downstream(candidate, object, capacity);
            self.update_downstream_streams(object);
        }
        // Loads change as other objects move: compared again next interval.
        Check::Again
    }

    /// Whether `current` declares exposing the object (object- or tag-level), and whether any
    /// other child does.
    fn exposing_children(&self, rec: &ObjectRec, current: LinkId) -> (bool, bool) {
        let mut current_exposes = false;
        let mut other_exposes = false;
        for (link, declaration) in self.downstream_declarations(rec) {
            if declaration.expose.is_some() {
                if *link == current {
                    current_exposes = true;
                } else {
                    other_exposes = true;
                }
            }
        }
        (current_exposes, other_exposes)
    }
}

/// What a check found.
enum Check {
    /// The object is gone: it leaves the schedule.
    Gone,
    /// Nothing to do until the object is refreshed: parked.
    Park,
    /// Checked again one interval later.
    Again,
}

/// One step of splitmix64, as a number in `[0, 1)`: enough to spread checks over time.
pub(crate) fn splitmix(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
}
