//! Periodic load balancing between children (SEMANTICS §4.4).
//!
//! Every object sits in a due-date queue. A pass handles the objects due within the next 100 ms
//! and reschedules each one `average / 2 + uniform[0, 1) · average` later, so checks are spread
//! out and an exchange with many objects moves them gradually. Handling an object: if it is
//! needed but unassigned (a load limit left no room earlier) the election runs again; if a child
//! exposes it, it moves to a better child only when that child's load after taking it would be
//! lower than the current child's load by more than `threshold`.

use std::cmp::Reverse;
use std::time::{Duration, Instant};

use super::records::Exposer;
use super::{Engine, ObjectId};

/// Objects due within this much of now are handled in the same pass.
const HORIZON: Duration = Duration::from_millis(100);
/// The shortest average interval accepted (a zero one would never finish a pass).
const MIN_INTERVAL: Duration = Duration::from_millis(10);

impl Engine {
    /// Runs the load-balancing checks that are due and returns when to call it next. `random`
    /// yields numbers in `[0, 1)` (the jitter of the schedule; a test can fix it).
    pub fn rebalance(
        &mut self,
        now: Instant,
        average_interval: Duration,
        threshold: f64,
        random: &mut dyn FnMut() -> f64,
    ) -> Instant {
        let average = average_interval.max(MIN_INTERVAL);
        for object in self.rebalance_new.drain(..) {
            self.rebalance_queue.push(Reverse((now, object)));
        }
        let horizon = now + HORIZON;
        while let Some(Reverse((due, object))) = self.rebalance_queue.peek().copied() {
            if due > horizon {
                break;
            }
            self.rebalance_queue.pop();
            if !self.objects.contains_key(&object) {
                continue;
            }
            self.rebalance_object(object, threshold, now);
            // Catch up with the schedule instead of replaying every missed slot.
            let base = if due + average < now { now } else { due };
            let next = base + average / 2 + average.mul_f64(random().clamp(0.0, 1.0));
            self.rebalance_queue.push(Reverse((next, object)));
        }
        self.finish_input();
        self.rebalance_queue.peek().map_or(now + Duration::from_secs(1), |Reverse((due, _))| *due)
    }

    fn rebalance_object(&mut self, object: ObjectId, threshold: f64, now: Instant) {
        let Some(rec) = self.objects.get(&object) else { return };
        if !rec.needed {
            return;
        }
        let current = match rec.exposer {
            None => {
                self.refresh(object, now);
                return;
            }
            Some(Exposer::Downstream(link)) => link,
            Some(_) => return,
        };
        let children = self.downstream_interests(object);
        if !children.iter().any(|c| c.link == current && c.exposes) {
            self.refresh(object, now);
            return;
        }
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
    }
}
