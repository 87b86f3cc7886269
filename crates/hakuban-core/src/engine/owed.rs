//! The handles a contract owes its user, one per object (queued or held).
//!
//! An object contract owes at most one, and an exchange may hold a million of them (S9 a's
//! observer): a hash map would cost each an allocation of ~128 bytes for that one entry. So the
//! first entry is kept inline, and a map is made only when a second object comes (a tag contract).

use hashbrown::HashMap;

use super::ObjectId;
use super::records::HandleRef;

pub(crate) enum Owed {
    /// At most one entry, inline.
    One(Option<(ObjectId, HandleRef)>),
    /// Two entries or more at some point (a tag contract); back to `One` once empty.
    Many(HashMap<ObjectId, HandleRef>),
}

impl Default for Owed {
    fn default() -> Self {
        Owed::One(None)
    }
}

impl Owed {
    pub fn get(&self, object: &ObjectId) -> Option<&HandleRef> {
        match self {
            Owed::One(entry) => entry.as_ref().filter(|(owed, _)| owed == object).map(|(_, handle)| handle),
            Owed::Many(map) => map.get(object),
        }
    }

    pub fn contains_key(&self, object: &ObjectId) -> bool {
        self.get(object).is_some()
    }

    /// Records (or replaces) the handle owed for `object`.
    pub fn insert(&mut self, object: ObjectId, handle: HandleRef) {
        match self {
            Owed::One(entry @ None) => *entry = Some((object, handle)),
            Owed::One(Some((owed, owed_handle))) if *owed == object => *owed_handle = handle,
            Owed::One(Some(first)) => {
                let mut map = HashMap::with_capacity(2);
                map.insert(first.0, first.1);
                map.insert(object, handle);
                *self = Owed::Many(map);
            }
            Owed::Many(map) => {
                map.insert(object, handle);
            }
        }
    }

    pub fn remove(&mut self, object: &ObjectId) -> Option<HandleRef> {
        match self {
            Owed::One(entry) => {
                if entry.as_ref().is_some_and(|(owed, _)| owed == object) {
                    entry.take().map(|(_, handle)| handle)
                } else {
                    None
                }
            }
            Owed::Many(map) => {
                let removed = map.remove(object);
                if map.is_empty() {
                    *self = Owed::default();
                } else {
                    crate::shrink::map(map);
                }
                removed
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&ObjectId, &HandleRef)> {
        let (one, many) = match self {
            Owed::One(entry) => (entry.as_ref(), None),
            Owed::Many(map) => (None, Some(map)),
        };
        one.map(|(object, handle)| (object, handle)).into_iter().chain(many.into_iter().flatten())
    }

    pub fn values(&self) -> impl Iterator<Item = &HandleRef> {
        self.iter().map(|(_, handle)| handle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{SinkId, StreamId};

    #[test]
    fn one_entry_inline_then_a_map_then_inline_again() {
        let mut owed = Owed::default();
        let (a, b, c) = (ObjectId(1), ObjectId(2), ObjectId(3));
        owed.insert(a, HandleRef::Stream(StreamId(10)));
        assert!(matches!(owed, Owed::One(Some(_))));
        owed.insert(a, HandleRef::Stream(StreamId(11)));
        assert_eq!(owed.get(&a), Some(&HandleRef::Stream(StreamId(11))), "replaced in place");
        assert!(!owed.contains_key(&b));
        assert_eq!(owed.remove(&b), None);
        owed.insert(b, HandleRef::Sink(SinkId(20)));
        owed.insert(c, HandleRef::Sink(SinkId(30)));
        assert!(matches!(owed, Owed::Many(_)));
        let mut all: Vec<_> = owed.iter().map(|(object, handle)| (*object, *handle)).collect();
        all.sort_by_key(|(object, _)| object.0);
        assert_eq!(
            all,
            vec![
                (a, HandleRef::Stream(StreamId(11))),
                (b, HandleRef::Sink(SinkId(20))),
                (c, HandleRef::Sink(SinkId(30)))
            ]
        );
        assert_eq!(owed.remove(&b), Some(HandleRef::Sink(SinkId(20))));
        assert_eq!(owed.values().count(), 2);
        owed.remove(&a);
        owed.remove(&c);
        assert!(matches!(owed, Owed::One(None)), "an emptied map is given back");
        assert_eq!(owed.iter().count(), 0);
    }
}
