//! [`PayloadCache`]: one encoding per (baseline, state) pair, shared by every link of an
//! exchange. When a router fans one update of a large object out to many children that all hold
//! the previous version, each link would otherwise diff and compress the same bytes again.
//!
//! Entries are keyed by the identity of the two data buffers (`Arc` pointers, not versions:
//! versions can repeat after a state is discarded) and hold those `Arc`s, so an address cannot be
//! reused while its entry exists. Small payloads bypass the cache: encoding them costs less than
//! the lookup.

use parking_lot::Mutex;

use crate::state::DataBytes;
use hakuban_proto::{Payload, encode_shared_payload};

/// Payloads smaller than this are encoded directly.
const CACHE_FROM: usize = 4096;
/// Entries kept (oldest replaced first): enough for the updates in flight at once.
const ENTRIES: usize = 32;
/// Most state bytes the entries may hold alive (baselines and states together), so that a few
/// huge states cannot keep their old versions in memory through the cache.
const HELD_BYTES: usize = 64 << 20;

struct Entry {
    baseline: Option<DataBytes>,
    data: DataBytes,
    payload: Payload,
}

/// A small shared cache of encoded payloads.
#[derive(Default)]
pub(crate) struct PayloadCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Oldest first.
    entries: std::collections::VecDeque<Entry>,
    /// State bytes the entries refer to.
    held: usize,
    hits: u64,
}

impl PayloadCache {
    /// The payload carrying `data` to a peer holding `baseline`, encoded once per pair.
    pub fn encode(&self, baseline: Option<&DataBytes>, data: &DataBytes) -> Payload {
        if data.len() < CACHE_FROM {
            return encode_shared_payload(baseline.map(|b| b.as_slice()), data);
        }
        {
            let mut inner = self.inner.lock();
            if let Some(entry) = inner.entries.iter().find(|e| e.is(baseline, data)) {
                let payload = entry.payload.clone();
                inner.hits += 1;
                return payload;
            }
        }
        // Encoded outside the lock: links encoding other payloads do not wait for this one.
        let payload = encode_shared_payload(baseline.map(|b| b.as_slice()), data);
        self.keep(baseline, data, payload.clone());
        payload
    }

    /// Whether `payload`, as received, may be worth keeping with [`keep`](Self::keep): a large
    /// state's delta or compressed form (a raw full payload is as cheap to make again as to keep,
    /// and a small state is not cached).
    pub fn worth_seeding(payload: &Payload) -> bool {
        match payload {
            Payload::Full(_) => false,
            Payload::Delta { prefix, suffix, middle } => {
                prefix.saturating_add(*suffix).saturating_add(middle.len() as u64) >= CACHE_FROM as u64
            }
            _ => true,
        }
    }

    /// Records that `payload` turns `baseline` into `data` (states under the caching size are
    /// not kept). Besides this cache's own encodings, a payload received from a peer: links that
    /// forward `data` to peers holding `baseline` send it as it came, without encoding again (a
    /// router relaying a large object's delta neither diffs nor compresses it).
    pub fn keep(&self, baseline: Option<&DataBytes>, data: &DataBytes, payload: Payload) {
        if data.len() < CACHE_FROM {
            return;
        }
        let entry = Entry { baseline: baseline.cloned(), data: data.clone(), payload };
        let size = entry.held();
        if size > HELD_BYTES {
            return;
        }
        let mut inner = self.inner.lock();
        while inner.entries.len() >= ENTRIES || inner.held + size > HELD_BYTES {
            let Some(oldest) = inner.entries.pop_front() else { break };
            inner.held -= oldest.held();
        }
        inner.held += size;
        inner.entries.push_back(entry);
    }

    /// How many encodings were served from the cache.
    pub fn hits(&self) -> u64 {
        self.inner.lock().hits
    }
}

impl Entry {
    /// State bytes this entry keeps alive.
    fn held(&self) -> usize {
        self.data.len() + self.baseline.as_ref().map_or(0, |b| b.len())
    }

    /// Whether this entry encodes `data` for a peer holding `baseline` (buffer identity).
    fn is(&self, baseline: Option<&DataBytes>, data: &DataBytes) -> bool {
        std::sync::Arc::ptr_eq(&self.data, data)
            && match (&self.baseline, baseline) {
                (Some(a), Some(b)) => std::sync::Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn one_encoding_serves_every_link_with_the_same_baseline() {
        let cache = PayloadCache::default();
        let old: DataBytes = Arc::new((0..100_000u32).flat_map(|i| i.to_le_bytes()).collect());
        let mut changed = (*old).clone();
        changed[50_000] ^= 1;
        let new: DataBytes = Arc::new(changed);
        let first = cache.encode(Some(&old), &new);
        for _ in 0..9 {
            assert_eq!(cache.encode(Some(&old), &new), first);
        }
        assert_eq!(cache.hits(), 9);
        // Same contents in another buffer, or another baseline: a different key.
        let copy: DataBytes = Arc::new((*new).clone());
        cache.encode(Some(&old), &copy);
        cache.encode(None, &new);
        assert_eq!(cache.hits(), 9);
        // Small payloads are not cached.
        let small: DataBytes = Arc::new(vec![1; 10]);
        cache.encode(None, &small);
        cache.encode(None, &small);
        assert_eq!(cache.hits(), 9);
    }

    #[test]
    fn a_received_payload_is_forwarded_as_it_came() {
        let cache = PayloadCache::default();
        let old: DataBytes = Arc::new(vec![0; 10_000]);
        let new: DataBytes = Arc::new(vec![1; 10_000]);
        let received = Payload::Compressed { size: 10_000, data: vec![1, 2, 3] };
        assert!(PayloadCache::worth_seeding(&received));
        cache.keep(Some(&old), &new, received.clone());
        assert_eq!(cache.encode(Some(&old), &new), received);
        assert_eq!(cache.hits(), 1);
        assert!(!PayloadCache::worth_seeding(&Payload::Full(vec![0; 10_000].into())));
        assert!(!PayloadCache::worth_seeding(&Payload::Delta { prefix: 10, suffix: 10, middle: vec![1] }));
    }

    #[test]
    fn the_cache_holds_a_bounded_amount_of_state() {
        let cache = PayloadCache::default();
        let big = |byte| -> DataBytes { Arc::new(vec![byte; 20 << 20]) };
        let states: Vec<DataBytes> = (0..5).map(big).collect();
        for pair in states.windows(2) {
            cache.encode(Some(&pair[0]), &pair[1]);
        }
        let inner = cache.inner.lock();
        assert!(inner.held <= HELD_BYTES, "{} bytes held", inner.held);
        assert_eq!(inner.entries.len(), 1);
    }
}
