//! A self-check of the engine's bookkeeping, for property tests and simulators: every rule the
//! other modules maintain incrementally, recomputed from scratch.

use super::records::{ContractKind, Exposer, HandleRef};
use hashbrown::HashMap;

use super::{Engine, ObjectId, SinkId};

impl Engine {
    /// Recomputes the engine's derived facts from its records and reports the first mismatch:
    /// flags, election, one open sink per object, handle counts, tag index. Costs a full scan;
    /// meant for tests, never needed in production.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut handles: HashMap<ObjectId, usize> = HashMap::new();
        let mut open_sinks: HashMap<ObjectId, Vec<SinkId>> = HashMap::new();
        for stream in self.streams.values() {
            *handles.entry(stream.object).or_default() += 1;
        }
        for (id, sink) in &self.sinks {
            *handles.entry(sink.object).or_default() += 1;
            if !sink.closed {
                open_sinks.entry(sink.object).or_default().push(*id);
            }
        }
        for (id, object) in &self.objects {
            let counted = handles.get(id).copied().unwrap_or(0);
            if counted != object.handles as usize {
                return Err(format!("object {id:?}: {} handles counted, {counted} exist", object.handles));
            }
            self.check_object(*id, open_sinks.get(id).map_or(&[][..], Vec::as_slice))?;
            if self.object_index.get(&object.descriptor) != Some(id) {
                return Err(format!("object {id:?} missing from the descriptor index"));
            }
        }
        for (id, tag) in &self.tags {
            for object in &tag.objects {
                let carries = self.objects.get(object).is_some_and(|o| o.tags.contains(id));
                if !carries {
                    return Err(format!("tag {id:?} lists object {object:?} that does not carry it"));
                }
            }
            if tag.is_unreferenced() {
                return Err(format!("tag {id:?} is kept although nothing references it"));
            }
        }
        for (id, contract) in &self.contracts {
            for (object, handle) in contract.current.iter() {
                let open = match handle {
                    HandleRef::Stream(s) => self.streams.get(s).is_some_and(|r| !r.closed && r.object == *object),
                    HandleRef::Sink(s) => self.sinks.get(s).is_some_and(|r| !r.closed && r.object == *object),
                };
                if !open {
                    return Err(format!("contract {id:?} owes a handle for {object:?} that is not open"));
                }
            }
        }
        if self.object_index.len() != self.objects.len() || self.tag_index.len() != self.tags.len() {
            return Err("descriptor indexes and records differ in size".to_string());
        }
        Ok(())
    }

    fn check_object(&self, id: ObjectId, open_sinks: &[SinkId]) -> Result<(), String> {
        let Some(object) = self.objects.get(&id) else { return Ok(()) };
        let tags: Vec<_> = object.tags.iter().filter_map(|t| self.tags.get(t)).collect();
        if tags.len() != object.tags.len() || tags.iter().any(|t| !t.objects.contains(&id)) {
            return Err(format!("object {id:?} and its tags disagree"));
        }
        let children = self.downstream_interests(id);
        let linked = object.up_receiving || object.up_sending || !children.is_empty();
        let live = !object.observers.is_empty()
            || !object.exposers.is_empty()
            || !object.down.is_empty()
            || object.up_receiving
            || object.up_sending;
        let tag_observed = tags.iter().any(|t| !t.observers.is_empty());
        let observing_children = children.iter().filter(|c| c.observes).count();
        let child_needs = children.iter().any(|c| c.observes && !c.exposes) || observing_children >= 2;
        let needed = live
            && (object.up_receiving
                || object.up_sending
                || !object.observers.is_empty()
                || tag_observed
                || child_needs);
        if (object.live, object.needed) != (live, needed) {
            return Err(format!(
                "object {id:?}: flags {:?} should be {:?}",
                (object.live, object.needed),
                (live, needed)
            ));
        }
        let any_exposer = !object.exposers.is_empty() || tags.iter().any(|t| !t.exposers.is_empty());
        if object.exposer.is_some() && !needed {
            return Err(format!("object {id:?}: exposer {:?} although not needed", object.exposer));
        }
        // Without links, an exposer must be elected exactly when one is needed and available
        // (children may be left unassigned by load limits, so only the local case is exact).
        if !linked && object.exposer.is_some() != (needed && any_exposer) {
            return Err(format!("object {id:?}: exposer {:?} but needed {needed}", object.exposer));
        }
        if open_sinks.len() > 1 {
            return Err(format!("object {id:?} has {} open sinks", open_sinks.len()));
        }
        if let Some(sink) = open_sinks.first()
            && self.sinks.get(sink).and_then(|record| record.contract).map(Exposer::Contract) != object.exposer
        {
            return Err(format!("object {id:?}: open sink {sink:?} is not the elected exposer's"));
        }
        if let Some(Exposer::Contract(contract)) = object.exposer
            && !self.contracts.get(&contract).is_some_and(|c| c.current.contains_key(&id))
        {
            return Err(format!("object {id:?}: elected contract {contract:?} holds no sink"));
        }
        if live {
            let mut observers = object.observers.clone();
            observers.extend(tags.iter().flat_map(|t| t.observers.iter().copied()));
            for contract in observers {
                let owes =
                    self.contracts.get(&contract).is_some_and(|c| c.kind.observes() && c.current.contains_key(&id));
                if !owes {
                    return Err(format!("live object {id:?}: observer {contract:?} has no stream"));
                }
            }
        } else if !object.streams.is_empty() {
            return Err(format!("object {id:?} is not live but has open streams"));
        }
        for contract in &object.exposers {
            if self.contracts.get(contract).map(|c| c.kind) != Some(ContractKind::ObjectExpose) {
                return Err(format!("object {id:?} lists {contract:?} as an object exposer"));
            }
        }
        Ok(())
    }
}
