//! Exposer election (SEMANTICS §4.2): which contract produces an object's states.
//!
//! Rules, first match wins, only while the object's data is needed:
//! 1. the upstream, while it streams the object to us (the root-most node decides);
//! 2. keep the incumbent local contract (object or tag level);
//! 3. else the local object expose contract with the highest capacity, then the local tag expose
//!    contract with the highest capacity (local always beats children);
//! 4. keep the incumbent child while it still exposes;
//! 5. else the child with the lowest expected load (`load + 1/capacity`) among those exposing with
//!    capacity above zero whose load limit leaves room.
//!
//! Ties go to the earliest created contract, or the child that declared itself an exposer first
//! (then the earliest link), so incumbents keep their objects and the outcome never depends on
//! hash order.

use std::time::Instant;

use super::records::{ContractKind, Exposer, HandleRef, Target};
use super::{ContractId, Engine, ObjectId};

impl Engine {
    /// Runs the election for `object` and moves the sink if the winner changed.
    pub(super) fn elect(&mut self, object: ObjectId, now: Instant) {
        let Some(rec) = self.objects.get(&object) else { return };
        let incumbent = rec.exposer;
        let winner = if rec.needed { self.choose_exposer(object, incumbent, now) } else { None };
        if winner != incumbent {
            match incumbent {
                Some(Exposer::Contract(old)) => self.revoke_sink(old, object, now),
                Some(Exposer::Downstream(link)) => self.revoke_downstream(link, object, now),
                Some(Exposer::Upstream(_)) | None => {}
            }
            if let Some(rec) = self.objects.get_mut(&object) {
                rec.exposer = winner;
            }
            if let Some(Exposer::Downstream(link)) = winner {
                let capacity =
                    self.downstream_interests(object).iter().find(|i| i.link == link).map_or(1, |i| i.capacity);
                self.assign_downstream(link, object, capacity);
            }
        }
        if let Some(Exposer::Contract(contract)) = winner {
            self.ensure_sink(contract, object);
        }
    }

    fn choose_exposer(&self, object: ObjectId, incumbent: Option<Exposer>, now: Instant) -> Option<Exposer> {
        let rec = self.objects.get(&object)?;
        if rec.up_receiving
            && let Some(upstream) = self.upstream
        {
            return Some(Exposer::Upstream(upstream));
        }
        if let Some(Exposer::Contract(contract)) = incumbent
            && self.still_exposes(contract, object)
        {
            return incumbent;
        }
        let best = |candidates: &mut dyn Iterator<Item = ContractId>| {
            candidates
                .filter_map(|id| self.contracts.get(&id).map(|c| (c.capacity, id)))
                .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
                .map(|(_, id)| Exposer::Contract(id))
        };
        let local = best(&mut rec.exposers.iter().copied()).or_else(|| {
            best(&mut rec.tags.iter().filter_map(|tag| self.tags.get(tag)).flat_map(|tag| tag.exposers.iter().copied()))
        });
        if local.is_some() {
            return local;
        }
        let children = self.downstream_interests(object);
        if let Some(Exposer::Downstream(link)) = incumbent
            && children.iter().any(|c| c.link == link && c.exposes)
            && self.links.get(&link).is_some_and(|l| l.closed.is_none())
        {
            return incumbent;
        }
        children
            .iter()
            .filter(|c| c.exposes && c.capacity > 0 && self.links.get(&c.link).is_some_and(|l| l.closed.is_none()))
            .filter(|c| self.downstream_has_room(c.link, c.capacity, now))
            .map(|c| {
                let load = self.links.get(&c.link).map_or(0.0, |l| l.load);
                (load + 1.0 / f64::from(c.capacity), c.exposing_since, c.link)
            })
            .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)))
            .map(|(_, _, link)| Exposer::Downstream(link))
    }

    fn still_exposes(&self, contract: ContractId, object: ObjectId) -> bool {
        let (Some(contract), Some(rec)) = (self.contracts.get(&contract), self.objects.get(&object)) else {
            return false;
        };
        match (contract.kind, contract.target) {
            (ContractKind::ObjectExpose, Target::Object(target)) => target == object,
            (ContractKind::TagExpose, Target::Tag(tag)) => rec.tags.contains(&tag),
            _ => false,
        }
    }

    /// Closes the sink `contract` owes for `object`, if any.
    fn revoke_sink(&mut self, contract: ContractId, object: ObjectId, now: Instant) {
        let owed = self.contracts.get(&contract).and_then(|rec| rec.current.get(&object).copied());
        if let Some(HandleRef::Sink(sink)) = owed {
            self.close_sink(sink, now);
        }
    }
}
