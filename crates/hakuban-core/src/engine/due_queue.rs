//! [`DueQueue`]: the balancing schedule, every object with the instant its next check is due.
//!
//! The router checks each object about once a second, so with a million objects the schedule
//! takes a million entries out and puts a million back every second. A binary heap paid twenty
//! cache-missing levels for each, and that alone kept a router busy (74% of its CPU in
//! `BinaryHeap::pop` with 1,000,000 objects). Entries here go into buckets of [`BUCKET`] by due
//! instant: taking and putting back cost O(1), and since a balancing pass handles every entry due
//! within its 100 ms horizon anyway, the order inside a bucket does not matter.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::ObjectId;

/// The width of one bucket.
const BUCKET: Duration = Duration::from_millis(10);

#[derive(Default)]
pub(crate) struct DueQueue {
    /// The instant bucket 0 starts at: a second before the first instant ever scheduled (an
    /// entry due before it shares bucket 0, the first to be handled).
    origin: Option<Instant>,
    buckets: BTreeMap<u64, Vec<(Instant, ObjectId)>>,
}

impl DueQueue {
    fn bucket(&mut self, due: Instant) -> u64 {
        let origin = *self.origin.get_or_insert_with(|| due.checked_sub(Duration::from_secs(1)).unwrap_or(due));
        let nanos = due.saturating_duration_since(origin).as_nanos() / BUCKET.as_nanos();
        u64::try_from(nanos).unwrap_or(u64::MAX)
    }

    /// Schedules `object` at `due`.
    pub fn push(&mut self, due: Instant, object: ObjectId) {
        let bucket = self.bucket(due);
        self.buckets.entry(bucket).or_default().push((due, object));
    }

    /// Takes out the bucket holding the earliest entries if they may be due by `horizon` (its
    /// entries can be due up to one bucket after it: handle them early, as a pass does anyway).
    pub fn pop_due(&mut self, horizon: Instant) -> Option<Vec<(Instant, ObjectId)>> {
        let limit = self.bucket(horizon);
        let first = self.buckets.first_key_value().map(|(bucket, _)| *bucket)?;
        if first > limit {
            return None;
        }
        self.buckets.remove(&first)
    }

    /// The start of the earliest bucket (never after its entries' due instants).
    pub fn next_due(&self) -> Option<Instant> {
        let origin = self.origin?;
        let (bucket, entries) = self.buckets.first_key_value()?;
        let start = u32::try_from(*bucket).ok().and_then(|b| BUCKET.checked_mul(b)).and_then(|d| origin.checked_add(d));
        // Past u32 buckets (over a year ahead) the earliest entry itself tells.
        start.or_else(|| entries.iter().map(|(due, _)| *due).min())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_out_by_bucket_and_none_early_past_the_horizon() {
        let start = Instant::now();
        let mut queue = DueQueue::default();
        for (ms, id) in [(250, 1), (5, 2), (0, 3), (120, 4), (1000, 5)] {
            queue.push(start + Duration::from_millis(ms), ObjectId(id));
        }
        assert_eq!(queue.next_due(), Some(start));
        let mut taken = Vec::new();
        while let Some(bucket) = queue.pop_due(start + Duration::from_millis(130)) {
            taken.extend(bucket.into_iter().map(|(_, o)| o.0));
        }
        taken.sort_unstable();
        assert_eq!(taken, vec![2, 3, 4]);
        let next = queue.next_due().expect("entries remain");
        assert!(next <= start + Duration::from_millis(250) && next > start + Duration::from_millis(239));
    }
}
