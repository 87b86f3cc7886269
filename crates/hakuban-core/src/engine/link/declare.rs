//! Declarations up the tree: what a node tells its parent it observes and exposes (the aggregate
//! of its local contracts and its children's declarations), coalesced so that several changes
//! between two transmissions send only the net result; and the parent's record of its children's
//! declarations.

use std::time::Instant;

use hakuban_proto::{DeclarationState, Frame};
use hashbrown::{HashMap, HashSet};

use crate::engine::{ContractId, Engine, LinkId, ObjectId, TagId, next};

impl Engine {
    /// What this node declares upward for `object`: local object contracts and children's
    /// object-level declarations (tag contracts travel as tag declarations).
    fn object_declaration(&self, object: ObjectId) -> DeclarationState {
        let Some(rec) = self.objects.get(&object) else { return DeclarationState::default() };
        self.aggregate_declaration(!rec.observers.is_empty(), &rec.exposers, &rec.down)
    }

    fn tag_declaration(&self, tag: TagId) -> DeclarationState {
        let Some(rec) = self.tags.get(&tag) else { return DeclarationState::default() };
        self.aggregate_declaration(!rec.observers.is_empty(), &rec.exposers, &rec.down)
    }

    /// Local contracts plus children's declarations: observed if anyone observes; exposed with
    /// the saturating sum of capacities if anyone exposes.
    fn aggregate_declaration(
        &self,
        observed_here: bool,
        exposers: &[ContractId],
        children: &[(LinkId, DeclarationState)],
    ) -> DeclarationState {
        let observe = observed_here || children.iter().any(|(_, d)| d.observe);
        let local = exposers.iter().map(|c| self.contracts.get(c).map_or(0, |c| c.capacity));
        let capacities: Vec<u32> = local.chain(children.iter().filter_map(|(_, d)| d.expose)).collect();
        let expose = (!capacities.is_empty()).then(|| capacities.iter().fold(0u32, |sum, c| sum.saturating_add(*c)));
        DeclarationState { observe, expose }
    }

    /// The object's declaration may have changed: the upstream link re-checks it before sending.
    pub(crate) fn declaration_may_change(&mut self, object: ObjectId) {
        let Some(link) = self.upstream else { return };
        if let Some(rec) = self.links.get_mut(&link)
            && rec.dirty_objects.insert(object)
        {
            super::signal(rec, &mut self.events, link);
        }
    }

    pub(crate) fn tag_declaration_may_change(&mut self, tag: TagId) {
        let Some(link) = self.upstream else { return };
        if let Some(rec) = self.links.get_mut(&link)
            && rec.dirty_tags.insert(tag)
        {
            super::signal(rec, &mut self.events, link);
        }
    }

    /// A new upstream: everything is declared anew (the contract half of resynchronisation).
    pub(super) fn redeclare_everything(&mut self, link: LinkId) {
        let objects: Vec<ObjectId> = self.objects.keys().copied().collect();
        let tags: Vec<TagId> = self.tags.keys().copied().collect();
        if let Some(rec) = self.links.get_mut(&link) {
            rec.dirty_objects.extend(objects);
            rec.dirty_tags.extend(tags);
        }
    }

    /// Turns the upstream link's changed declarations into frames (tags after objects, each in
    /// id order so transcripts are deterministic).
    pub(super) fn flush_declarations(&mut self, link: LinkId) {
        let Some(rec) = self.links.get_mut(&link) else { return };
        if rec.dirty_objects.is_empty() && rec.dirty_tags.is_empty() {
            return;
        }
        let mut objects: Vec<ObjectId> = rec.dirty_objects.drain().collect();
        let mut tags: Vec<TagId> = rec.dirty_tags.drain().collect();
        objects.sort_unstable();
        tags.sort_unstable();
        for object in objects {
            let state = self.object_declaration(object);
            let changed = self.links.get_mut(&link).is_some_and(|r| record_sent(&mut r.sent_objects, object, state));
            if changed && let Some(id) = self.my_object_id(link, object) {
                self.push_control(link, Frame::ObjectInterest { object: id, state });
            }
        }
        for tag in tags {
            let state = self.tag_declaration(tag);
            let changed = self.links.get_mut(&link).is_some_and(|r| record_sent(&mut r.sent_tags, tag, state));
            if changed && let Some(id) = self.my_tag_id(link, tag) {
                self.push_control(link, Frame::TagInterest { tag: id, state });
            }
        }
    }

    /// Appends a frame to the link's queue (the transmitter is running already).
    fn push_control(&mut self, link: LinkId, frame: Frame) {
        if let Some(rec) = self.links.get_mut(&link) {
            rec.control.push_back(super::Control::frame(frame));
        }
    }

    /// Parent side: a child's object-level declaration.
    pub(super) fn set_downstream_object_declaration(
        &mut self,
        link: LinkId,
        object: ObjectId,
        state: DeclarationState,
        now: Instant,
    ) {
        let Some(rec) = self.objects.get_mut(&object) else { return };
        replace_declaration(&mut rec.down, link, state);
        let stamp = next(&mut self.ids.declaration);
        if let Some(link_rec) = self.links.get_mut(&link) {
            note_declaration(
                &mut link_rec.declared_objects,
                &mut link_rec.exposing_since_objects,
                object,
                state,
                stamp,
            );
        }
        self.refresh(object, now);
        self.gc_objects.push(object);
    }

    /// Parent side: a child's tag-level declaration.
    pub(super) fn set_downstream_tag_declaration(
        &mut self,
        link: LinkId,
        tag: TagId,
        state: DeclarationState,
        now: Instant,
    ) {
        let objects = self.tag_objects(tag, |rec| replace_declaration(&mut rec.down, link, state));
        let stamp = next(&mut self.ids.declaration);
        if let Some(link_rec) = self.links.get_mut(&link) {
            note_declaration(&mut link_rec.declared_tags, &mut link_rec.exposing_since_tags, tag, state, stamp);
        }
        self.tag_declaration_may_change(tag);
        for object in objects {
            self.refresh(object, now);
        }
        self.remove_tag_if_unreferenced(tag);
    }
}

/// Puts a child's declaration in a record's list (kept in link order); an empty one removes it.
fn replace_declaration<const N: usize>(
    list: &mut smallvec::SmallVec<[(LinkId, DeclarationState); N]>,
    link: LinkId,
    state: DeclarationState,
) {
    list.retain(|(l, _)| *l != link);
    if !state.is_empty() {
        list.push((link, state));
        list.sort_by_key(|(l, _)| *l);
    }
}

/// Updates a child link's index of what it declared, and since when it exposes it.
fn note_declaration<K: std::hash::Hash + Eq + Copy>(
    declared: &mut HashSet<K>,
    exposing_since: &mut HashMap<K, u64>,
    key: K,
    state: DeclarationState,
    stamp: u64,
) {
    if state.is_empty() {
        declared.remove(&key);
    } else {
        declared.insert(key);
    }
    if state.expose.is_some() {
        exposing_since.entry(key).or_insert(stamp);
    } else {
        exposing_since.remove(&key);
    }
}

/// Records `state` as the last one sent for `key`; `false` if it was already what the peer has.
fn record_sent<K: std::hash::Hash + Eq>(
    sent: &mut HashMap<K, DeclarationState>,
    key: K,
    state: DeclarationState,
) -> bool {
    if sent.get(&key).copied().unwrap_or_default() == state {
        return false;
    }
    if state.is_empty() {
        sent.remove(&key);
    } else {
        sent.insert(key, state);
    }
    true
}
