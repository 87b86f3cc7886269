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
use hakuban_proto::{Payload, encode_payload};

/// Payloads smaller than this are encoded directly.
const CACHE_FROM: usize = 4096;
/// Entries kept (oldest replaced first): enough for the updates in flight at once.
const ENTRIES: usize = 32;

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
    entries: Vec<Entry>,
    next: usize,
    hits: u64,
}

impl PayloadCache {
    /// The payload carrying `data` to a peer holding `baseline`, encoded once per pair.
    pub fn encode(&self, baseline: Option<&DataBytes>, data: &DataBytes) -> Payload {
        if data.len() < CACHE_FROM {
            return encode_payload(baseline.map(|b| b.as_slice()), data);
        }
        let same = |entry: &Entry| {
            std::sync::Arc::ptr_eq(&entry.data, data)
                && match (&entry.baseline, baseline) {
                    (Some(a), Some(b)) => std::sync::Arc::ptr_eq(a, b),
                    (None, None) => true,
                    _ => false,
                }
        };
        {
            let mut inner = self.inner.lock();
            if let Some(entry) = inner.entries.iter().find(|e| same(e)) {
                let payload = entry.payload.clone();
                inner.hits += 1;
                return payload;
            }
        }
        // Encoded outside the lock: links encoding other payloads do not wait for this one.
        let payload = encode_payload(baseline.map(|b| b.as_slice()), data);
        let entry = Entry { baseline: baseline.cloned(), data: data.clone(), payload: payload.clone() };
        let mut inner = self.inner.lock();
        if inner.entries.len() < ENTRIES {
            inner.entries.push(entry);
        } else {
            let slot = inner.next;
            inner.entries[slot] = entry;
            inner.next = (slot + 1) % ENTRIES;
        }
        payload
    }

    /// How many encodings were served from the cache.
    pub fn hits(&self) -> u64 {
        self.inner.lock().hits
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
}
