//! Giving memory back: hash maps and queues never shrink by themselves, so a router that held a
//! million objects would keep their tables after the clients left. Each container is shrunk when
//! it is at most a quarter full; the rehash that costs is paid for by the removals that led to
//! it, so the amortised cost per removal stays constant.

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hash};

/// Below this many bytes of table, containers are left alone (not worth a rehash). Counted in
/// bytes, not entries: 256 empty slots of a link record are a third of a megabyte.
const MIN_BYTES: usize = 4096;

/// Whether a container of `capacity` slots of `T`, holding `len`, is worth shrinking: big
/// enough to matter and at most a quarter full.
fn worth<T>(len: usize, capacity: usize) -> bool {
    capacity.saturating_mul(std::mem::size_of::<T>().max(1)) >= MIN_BYTES && len.saturating_mul(4) <= capacity
}

/// Shrinks `map` to twice its length when it is at most a quarter full.
pub(crate) fn map<K: Eq + Hash, V, S: BuildHasher>(map: &mut hashbrown::HashMap<K, V, S>) {
    if worth::<(K, V)>(map.len(), map.capacity()) {
        map.shrink_to(map.len() * 2);
    }
}

/// Bytes of slots `map` keeps allocated (its capacity, not its length).
pub(crate) fn map_bytes<K, V, S>(map: &hashbrown::HashMap<K, V, S>) -> usize {
    map.capacity().saturating_mul(std::mem::size_of::<(K, V)>())
}

/// As [`map`], for a set.
pub(crate) fn set<K: Eq + Hash, S: BuildHasher>(set: &mut hashbrown::HashSet<K, S>) {
    if worth::<K>(set.len(), set.capacity()) {
        set.shrink_to(set.len() * 2);
    }
}

/// As [`map`], for a queue.
pub(crate) fn deque<T>(queue: &mut VecDeque<T>) {
    if worth::<T>(queue.len(), queue.capacity()) {
        queue.shrink_to(queue.len() * 2);
    }
}

/// As [`map`], for a vector.
pub(crate) fn vec<T>(vec: &mut Vec<T>) {
    if worth::<T>(vec.len(), vec.capacity()) {
        vec.shrink_to(vec.len() * 2);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_map_emptied_gives_its_table_back_and_a_full_one_keeps_it() {
        let mut m: hashbrown::HashMap<u32, u32> = (0..100_000).map(|i| (i, i)).collect();
        super::map(&mut m);
        let full = m.capacity();
        assert!(full >= 100_000, "a full map is left alone");
        m.retain(|k, _| *k < 10);
        super::map(&mut m);
        assert!(m.capacity() < 1_000, "{}", m.capacity());
        assert_eq!(m.len(), 10);
    }

    #[test]
    fn a_table_of_large_records_is_given_back_even_when_it_has_few_slots() {
        let mut m: hashbrown::HashMap<u32, [u8; 1024]> = (0..200).map(|i| (i, [0; 1024])).collect();
        assert!(m.capacity() < 256, "the case the entry-count threshold missed");
        m.clear();
        super::map(&mut m);
        assert_eq!(m.capacity(), 0);
    }

    #[test]
    fn a_small_table_of_small_entries_is_left_alone() {
        let mut m: hashbrown::HashMap<u32, u32> = (0..100).map(|i| (i, i)).collect();
        let capacity = m.capacity();
        m.clear();
        super::map(&mut m);
        assert_eq!(m.capacity(), capacity);
    }
}
