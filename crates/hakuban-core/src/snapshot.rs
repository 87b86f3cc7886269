//! Introspection snapshots (SEMANTICS §8): plain serde structures describing an exchange at one
//! moment, for monitor objects, debug dumps and tests. Building them is the engine's job.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::descriptor::{ObjectDescriptor, TagDescriptor};
use crate::state::{DataFormat, DataVersion};

/// Everything one exchange holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExchangeSnapshot {
    /// Object records, by id.
    pub objects: Vec<ObjectSnapshot>,
    /// Tag records, by id.
    pub tags: Vec<TagSnapshot>,
    /// Whether an upstream link is attached.
    pub upstream_connection: bool,
}

/// Who is elected to produce an object's states.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AssignedExposerSnapshot {
    /// A local object expose contract, by contract id.
    ObjectExposeContract(u64),
    /// A local tag expose contract, by contract id.
    TagExposeContract(u64),
    /// The upstream link, by link id.
    UpstreamConnection(u64),
    /// A downstream link, by link id.
    DownstreamConnection(u64),
}

/// The cached state of an object, without its data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataStateSnapshot {
    /// Version of the cached state.
    pub version: DataVersion,
    /// Format stack of the cached state.
    pub format: DataFormat,
    /// Size of the data in bytes.
    pub size: u64,
    /// Microseconds since the state was last known current; `0` means synchronised now.
    /// (0.8.5 called this field `synchronized_ms_ago` although it held microseconds.)
    pub synchronized_us_ago: u64,
}

/// What the upstream link does with an object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectUpstreamLinkSnapshot {
    /// Channels receiving this object's states from upstream (0 or 1).
    pub sinks_receiving_from_upstream_count: u64,
    /// Channels sending this object's states upstream (0 or 1).
    pub streams_sending_to_upstream_count: u64,
    /// What the parent refused of our declaration on this object (its access rights).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<crate::access::Refusal>,
}

/// What one downstream link declared for an object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectDownstreamLinkSnapshot {
    /// The downstream link's id.
    pub downstream_connection_id: u64,
    /// It observes the object itself.
    pub object_observer: bool,
    /// It exposes the object itself.
    pub object_exposer: bool,
    /// Its object-level expose capacity.
    pub object_exposer_capacity: u32,
    /// How many of the object's tags it observes.
    pub tag_observer_count: u32,
    /// How many of the object's tags it exposes.
    pub tag_exposer_count: u32,
    /// A state channel towards it is open.
    pub stream: bool,
    /// It is the elected exposer and a channel from it is open.
    pub sink: bool,
}

/// One object record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectSnapshot {
    /// The record's id.
    pub id: u64,
    /// The object's descriptor.
    pub descriptor: ObjectDescriptor,
    /// The object is live here.
    pub should_exist: bool,
    /// Someone observes it, so an exposer is wanted.
    pub data_needed: bool,
    /// Who produces its states, if anyone.
    pub assigned_exposer: Option<AssignedExposerSnapshot>,
    /// Local object observe contracts.
    pub object_observe_contract_count: u64,
    /// Local object expose contracts.
    pub object_expose_contract_count: u64,
    /// Local tag observe contracts on its tags.
    pub tag_observe_contract_count: u64,
    /// Local tag expose contracts on its tags.
    pub tag_expose_contract_count: u64,
    /// Upstream link activity, when an upstream is attached.
    pub upstream_link: Option<ObjectUpstreamLinkSnapshot>,
    /// Downstream links' declarations, by link id.
    pub downstream_links: Vec<ObjectDownstreamLinkSnapshot>,
    /// Σ capacity of local and downstream object expose contracts (tag exposers excluded).
    pub cumulative_object_exposer_capacity: u64,
    /// The cached state, if any.
    pub data_state: Option<DataStateSnapshot>,
}

/// What the upstream link knows of a tag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagUpstreamLinkSnapshot {
    /// What the parent refused of our declaration on this tag (its access rights).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<crate::access::Refusal>,
}

/// What one downstream link declared for a tag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagDownstreamLinkSnapshot {
    /// The downstream link's id.
    pub downstream_connection_id: u64,
    /// It observes the tag.
    pub tag_observer: bool,
    /// It exposes the tag.
    pub tag_exposer: bool,
    /// Its tag expose capacity.
    pub tag_exposer_capacity: u32,
}

/// One tag record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TagSnapshot {
    /// The record's id.
    pub id: u64,
    /// The tag's descriptor.
    pub descriptor: TagDescriptor,
    /// Ids of the object records carrying it, sorted.
    pub objects: Vec<u64>,
    /// Local tag observe contracts.
    pub tag_observe_contract_count: u64,
    /// Local tag expose contracts.
    pub tag_expose_contract_count: u64,
    /// Upstream link activity, when an upstream is attached.
    pub upstream_link: Option<TagUpstreamLinkSnapshot>,
    /// Downstream links' declarations, by link id.
    pub downstream_links: Vec<TagDownstreamLinkSnapshot>,
    /// Σ capacity of local and downstream tag expose contracts.
    pub cumulative_tag_exposer_capacity: u64,
}

impl fmt::Display for ExchangeSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "┌ exchange: {} objects, {} tags, upstream: {}",
            self.objects.len(),
            self.tags.len(),
            self.upstream_connection
        )?;
        for object in &self.objects {
            writeln!(
                f,
                "├─ object #{} {:?}: live {}, needed {}, exposer {:?}, observers {}+{} (object+tag), exposers {}+{}",
                object.id,
                object.descriptor,
                object.should_exist,
                object.data_needed,
                object.assigned_exposer,
                object.object_observe_contract_count,
                object.tag_observe_contract_count,
                object.object_expose_contract_count,
                object.tag_expose_contract_count,
            )?;
            if let Some(data) = &object.data_state {
                writeln!(
                    f,
                    "│    state: version {:?}, format {:?}, {} bytes, synchronised {} µs ago",
                    data.version, data.format, data.size, data.synchronized_us_ago
                )?;
            }
            for link in &object.downstream_links {
                writeln!(f, "│    downstream {link:?}")?;
            }
        }
        for tag in &self.tags {
            writeln!(
                f,
                "├─ tag #{} {:?}: objects {:?}, observers {}, exposers {}",
                tag.id, tag.descriptor, tag.objects, tag.tag_observe_contract_count, tag.tag_expose_contract_count
            )?;
        }
        write!(f, "└")
    }
}
