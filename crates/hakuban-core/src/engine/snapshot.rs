//! Building introspection snapshots from the engine's records.

use std::time::Instant;

use super::records::{ContractKind, Exposer};
use super::{Engine, ObjectId, TagId};
use crate::snapshot::{AssignedExposerSnapshot, DataStateSnapshot, ExchangeSnapshot, ObjectSnapshot, TagSnapshot};

impl Engine {
    /// Everything the engine holds, objects and tags sorted by id.
    pub fn snapshot(&self, now: Instant) -> ExchangeSnapshot {
        let mut object_ids: Vec<ObjectId> = self.objects.keys().copied().collect();
        object_ids.sort_unstable();
        let mut tag_ids: Vec<TagId> = self.tags.keys().copied().collect();
        tag_ids.sort_unstable();
        ExchangeSnapshot {
            objects: object_ids.into_iter().filter_map(|id| self.object_snapshot(id, now)).collect(),
            tags: tag_ids.into_iter().filter_map(|id| self.tag_snapshot(id)).collect(),
            upstream_connection: false,
        }
    }

    fn object_snapshot(&self, id: ObjectId, now: Instant) -> Option<ObjectSnapshot> {
        let rec = self.objects.get(&id)?;
        let tags: Vec<_> = rec.tags.iter().filter_map(|t| self.tags.get(t)).collect();
        let capacity: u64 =
            rec.exposers.iter().filter_map(|c| self.contracts.get(c)).map(|c| u64::from(c.capacity)).sum();
        let assigned_exposer = rec.exposer.and_then(|Exposer::Contract(contract)| {
            let kind = self.contracts.get(&contract)?.kind;
            Some(match kind {
                ContractKind::TagExpose => AssignedExposerSnapshot::TagExposeContract(contract.0),
                _ => AssignedExposerSnapshot::ObjectExposeContract(contract.0),
            })
        });
        Some(ObjectSnapshot {
            id: id.0,
            descriptor: rec.descriptor.clone(),
            should_exist: rec.live,
            data_needed: rec.needed,
            assigned_exposer,
            object_observe_contract_count: rec.observers.len() as u64,
            object_expose_contract_count: rec.exposers.len() as u64,
            tag_observe_contract_count: tags.iter().map(|t| t.observers.len() as u64).sum(),
            tag_expose_contract_count: tags.iter().map(|t| t.exposers.len() as u64).sum(),
            upstream_link: None,
            downstream_links: Vec::new(),
            cumulative_object_exposer_capacity: capacity,
            data_state: rec.state().map(|state| DataStateSnapshot {
                version: state.version.clone(),
                format: state.format.clone(),
                size: state.data.len() as u64,
                synchronized_us_ago: state.synchronized.to_micros_ago(now),
            }),
        })
    }

    fn tag_snapshot(&self, id: TagId) -> Option<TagSnapshot> {
        let rec = self.tags.get(&id)?;
        let mut objects: Vec<u64> = rec.objects.iter().map(|o| o.0).collect();
        objects.sort_unstable();
        let capacity: u64 =
            rec.exposers.iter().filter_map(|c| self.contracts.get(c)).map(|c| u64::from(c.capacity)).sum();
        Some(TagSnapshot {
            id: id.0,
            descriptor: rec.descriptor.clone(),
            objects,
            tag_observe_contract_count: rec.observers.len() as u64,
            tag_expose_contract_count: rec.exposers.len() as u64,
            upstream_link: None,
            downstream_links: Vec::new(),
            cumulative_tag_exposer_capacity: capacity,
        })
    }
}
