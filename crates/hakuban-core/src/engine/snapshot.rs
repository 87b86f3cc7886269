//! Building introspection snapshots from the engine's records.

use std::time::Instant;

use super::records::{ContractKind, Exposer};
use hakuban_proto::DeclarationState;

use super::{ContractId, Engine, LinkId, ObjectId, TagId};
use crate::snapshot::{
    AssignedExposerSnapshot, DataStateSnapshot, ExchangeSnapshot, ObjectDownstreamLinkSnapshot, ObjectSnapshot,
    ObjectUpstreamLinkSnapshot, TagDownstreamLinkSnapshot, TagSnapshot, TagUpstreamLinkSnapshot,
};

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
            upstream_connection: self.upstream.is_some(),
        }
    }

    fn object_snapshot(&self, id: ObjectId, now: Instant) -> Option<ObjectSnapshot> {
        let rec = self.objects.get(&id)?;
        let tags: Vec<_> = rec.tags.iter().filter_map(|t| self.tags.get(t)).collect();
        let capacity = self.cumulative_capacity(&rec.exposers, &rec.down);
        let downstream_links = self
            .downstream_interests(id)
            .into_iter()
            .map(|interest| {
                let object_level =
                    rec.down.iter().find(|(l, _)| *l == interest.link).map(|(_, d)| *d).unwrap_or_default();
                let tag_levels: Vec<_> = tags
                    .iter()
                    .filter_map(|t| t.down.iter().find(|(l, _)| *l == interest.link).map(|(_, d)| *d))
                    .collect();
                ObjectDownstreamLinkSnapshot {
                    downstream_connection_id: interest.link.0,
                    object_observer: object_level.observe,
                    object_exposer: object_level.expose.is_some(),
                    object_exposer_capacity: object_level.expose.unwrap_or(0),
                    tag_observer_count: tag_levels.iter().filter(|d| d.observe).count() as u32,
                    tag_exposer_count: tag_levels.iter().filter(|d| d.expose.is_some()).count() as u32,
                    stream: rec.down_streaming.contains(&interest.link),
                    sink: rec.exposer == Some(Exposer::Downstream(interest.link)),
                }
            })
            .collect();
        let upstream_link = self.upstream.map(|_| ObjectUpstreamLinkSnapshot {
            sinks_receiving_from_upstream_count: u64::from(rec.up_receiving),
            streams_sending_to_upstream_count: u64::from(rec.up_sending),
            refused: self.upstream_refusal(&rec.descriptor),
        });
        let assigned_exposer = rec.exposer.and_then(|exposer| match exposer {
            Exposer::Contract(contract) => Some(match self.contracts.get(&contract)?.kind {
                ContractKind::TagExpose => AssignedExposerSnapshot::TagExposeContract(contract.0),
                _ => AssignedExposerSnapshot::ObjectExposeContract(contract.0),
            }),
            Exposer::Upstream(link) => Some(AssignedExposerSnapshot::UpstreamConnection(link.0)),
            Exposer::Downstream(link) => Some(AssignedExposerSnapshot::DownstreamConnection(link.0)),
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
            upstream_link,
            downstream_links,
            cumulative_object_exposer_capacity: capacity,
            data_state: rec.state().map(|state| DataStateSnapshot {
                version: state.version.clone(),
                format: state.format.clone(),
                size: state.data.len() as u64,
                synchronized_us_ago: state.synchronized.to_micros_ago(now),
            }),
        })
    }

    /// Σ capacity of local expose contracts and children's declarations.
    fn cumulative_capacity(&self, exposers: &[ContractId], children: &[(LinkId, DeclarationState)]) -> u64 {
        let local = exposers.iter().filter_map(|c| self.contracts.get(c)).map(|c| u64::from(c.capacity));
        local.chain(children.iter().filter_map(|(_, d)| d.expose.map(u64::from))).sum()
    }

    fn tag_snapshot(&self, id: TagId) -> Option<TagSnapshot> {
        let rec = self.tags.get(&id)?;
        let mut objects: Vec<u64> = rec.objects.iter().map(|o| o.0).collect();
        objects.sort_unstable();
        let capacity = self.cumulative_capacity(&rec.exposers, &rec.down);
        let downstream_links = rec
            .down
            .iter()
            .map(|(link, d)| TagDownstreamLinkSnapshot {
                downstream_connection_id: link.0,
                tag_observer: d.observe,
                tag_exposer: d.expose.is_some(),
                tag_exposer_capacity: d.expose.unwrap_or(0),
            })
            .collect();
        Some(TagSnapshot {
            id: id.0,
            descriptor: rec.descriptor.clone(),
            objects,
            tag_observe_contract_count: rec.observers.len() as u64,
            tag_expose_contract_count: rec.exposers.len() as u64,
            upstream_link: self
                .upstream
                .map(|_| TagUpstreamLinkSnapshot { refused: self.upstream_tag_refusal(&rec.descriptor) }),
            downstream_links,
            cumulative_tag_exposer_capacity: capacity,
        })
    }
}
