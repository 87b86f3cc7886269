//! [`DirtySet`]: the channels of a link with a state to send, taken about in the order marked.
//!
//! A set alone would do for coalescing, but taking a budget's worth out of a hash set means
//! draining it all and putting the rest back: with a million channels dirty, every transmit call
//! cost a million hash operations. Here a queue keeps the order and the set the membership; an
//! entry removed from the set stays in the queue until it is reached (or a compaction drops it).

use std::collections::VecDeque;

use hashbrown::HashSet;

use crate::engine::ObjectId;

#[derive(Default)]
pub(crate) struct DirtySet {
    members: HashSet<ObjectId>,
    /// Every member once, plus entries removed (or queued twice) since: skipped when reached.
    queue: VecDeque<ObjectId>,
}

impl DirtySet {
    /// Marks `object`; a member already keeps its place.
    pub fn insert(&mut self, object: ObjectId) {
        if self.members.insert(object) {
            self.queue.push_back(object);
        }
    }

    /// Unmarks `object` (its channel closed).
    pub fn remove(&mut self, object: ObjectId) {
        if self.members.remove(&object) && self.queue.len() > 2 * self.members.len() + 64 {
            self.compact();
        }
    }

    /// A member, unmarked: the oldest, unless one removed and marked again took an earlier place.
    pub fn pop(&mut self) -> Option<ObjectId> {
        while let Some(object) = self.queue.pop_front() {
            if self.members.remove(&object) {
                return Some(object);
            }
        }
        None
    }

    /// How many objects are marked.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn clear(&mut self) {
        self.members.clear();
        self.queue.clear();
    }

    /// Gives memory back once the set is mostly empty (see [`crate::shrink`]).
    pub fn shrink(&mut self) {
        crate::shrink::set(&mut self.members);
        crate::shrink::deque(&mut self.queue);
    }

    /// Keeps each member's first entry only, so the queue stays within twice the set.
    fn compact(&mut self) {
        let mut kept: HashSet<ObjectId> = HashSet::with_capacity(self.members.len());
        let members = &self.members;
        self.queue.retain(|object| members.contains(object) && kept.insert(*object));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_come_out_once_in_order() {
        let mut set = DirtySet::default();
        for id in [3, 1, 3, 2, 1] {
            set.insert(ObjectId(id));
        }
        set.remove(ObjectId(1));
        set.insert(ObjectId(1));
        set.insert(ObjectId(4));
        let taken: Vec<u64> = std::iter::from_fn(|| set.pop()).map(|o| o.0).collect();
        assert_eq!(taken, vec![3, 1, 2, 4]);
        assert!(set.is_empty());
    }

    #[test]
    fn channels_opened_and_closed_without_sending_do_not_grow_the_queue() {
        let mut set = DirtySet::default();
        set.insert(ObjectId(0));
        for round in 0..10_000 {
            set.insert(ObjectId(1 + round % 7));
            set.remove(ObjectId(1 + round % 7));
        }
        assert!(set.queue.len() <= 2 * set.members.len() + 65, "queue of {}", set.queue.len());
        assert_eq!(set.pop(), Some(ObjectId(0)));
        assert_eq!(set.pop(), None);
    }
}
