//! Giving memory back: hash maps and queues never shrink by themselves, so a router that held a
//! million objects would keep their tables after the clients left. Each container is shrunk when
//! it is at most a quarter full; the rehash that costs is paid for by the removals that led to
//! it, so the amortised cost per removal stays constant.

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hash};

/// Below this capacity, containers are left alone (not worth a rehash).
const MIN_CAPACITY: usize = 256;

/// Shrinks `map` to twice its length when it is at most a quarter full.
pub(crate) fn map<K: Eq + Hash, V, S: BuildHasher>(map: &mut hashbrown::HashMap<K, V, S>) {
    if map.capacity() >= MIN_CAPACITY && map.len() * 4 <= map.capacity() {
        map.shrink_to(map.len() * 2);
    }
}

/// As [`map`], for a set.
pub(crate) fn set<K: Eq + Hash, S: BuildHasher>(set: &mut hashbrown::HashSet<K, S>) {
    if set.capacity() >= MIN_CAPACITY && set.len() * 4 <= set.capacity() {
        set.shrink_to(set.len() * 2);
    }
}

/// As [`map`], for a queue.
pub(crate) fn deque<T>(queue: &mut VecDeque<T>) {
    if queue.capacity() >= MIN_CAPACITY && queue.len() * 4 <= queue.capacity() {
        queue.shrink_to(queue.len() * 2);
    }
}

/// As [`map`], for a vector.
pub(crate) fn vec<T>(vec: &mut Vec<T>) {
    if vec.capacity() >= MIN_CAPACITY && vec.len() * 4 <= vec.capacity() {
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
}
