//! Exposer election (SEMANTICS §4.2): which contract produces an object's states.
//!
//! Rules, first match wins, only while the object's data is needed:
//! 1. keep the incumbent object expose contract, then the incumbent tag expose contract;
//! 2. else the object expose contract with the highest capacity;
//! 3. else the tag expose contract (over the object's tags) with the highest capacity.
//!
//! Ties go to the earliest created contract, so the outcome never depends on hash order.

use std::time::Instant;

use super::records::{ContractKind, Exposer, HandleRef, Target};
use super::{ContractId, Engine, ObjectId};

impl Engine {
    /// Runs the election for `object` and moves the sink if the winner changed.
    pub(super) fn elect(&mut self, object: ObjectId, now: Instant) {
        let Some(rec) = self.objects.get(&object) else { return };
        let incumbent = rec.exposer;
        let winner = if rec.needed { self.choose_exposer(object, incumbent) } else { None };
        if winner != incumbent {
            if let Some(Exposer::Contract(old)) = incumbent {
                self.revoke_sink(old, object, now);
            }
            if let Some(rec) = self.objects.get_mut(&object) {
                rec.exposer = winner;
            }
        }
        if let Some(Exposer::Contract(contract)) = winner {
            self.ensure_sink(contract, object);
        }
    }

    fn choose_exposer(&self, object: ObjectId, incumbent: Option<Exposer>) -> Option<Exposer> {
        let rec = self.objects.get(&object)?;
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
        best(&mut rec.exposers.iter().copied()).or_else(|| {
            best(&mut rec.tags.iter().filter_map(|tag| self.tags.get(tag)).flat_map(|tag| tag.exposers.iter().copied()))
        })
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
