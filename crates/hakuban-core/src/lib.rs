//! # hakuban-core
//!
//! Hakuban shares data objects between processes. A process **exposes** an object (a
//! latest-state variable named by a JSON descriptor and a set of tags); others **observe** it.
//! The network of exchanges elects one exposer per object, activates it only while someone
//! observes, and resynchronises after disconnections.
//!
//! This crate is the runtime-free core: descriptors ([`ObjectDescriptor`], [`TagDescriptor`]),
//! states ([`ObjectState`]), the sans-IO [`engine`] and the async facade ([`Exchange`], the four
//! contracts, [`ObjectStateStream`], [`ObjectStateSink`]). It has no async runtime, no sockets and
//! no threads of its own, and the engine never reads a clock: every input carries the time it
//! needs. The handles implement `futures`' `Stream` and `Sink`, so they run on any executor.
//! Networking lives in `hakuban-tokio`.
//!
//! # Concepts
//!
//! * An **object** is a shared variable. Among the expose contracts offered for it, the exchange
//!   elects one; that one gets an [`ObjectStateSink`] and produces states. Observers get an
//!   [`ObjectStateStream`] that always reports the most recent state they have not seen.
//! * **Tags** are wildcards: a tag contract applies to every *live* object carrying the tag. An
//!   object is live while an object contract exists for it; it needs data while something
//!   observes it (object- or tag-level). Tag contracts alone never make an object exist.
//! * Versions ([`DataVersion`]) order states: an object keeps the highest version it has seen.
//!   [`DataSynchronized`] tells observers whether a producer is still keeping the data current.
//!
//! # Example
//!
//! ```
//! use futures::{SinkExt, StreamExt};
//! use hakuban_core::{Exchange, JsonDeserializeState, JsonSerializeState, ObjectState};
//!
//! # futures::executor::block_on(async {
//! let exchange = Exchange::new();
//! let mut observe_contract = exchange.object_observe_contract((["some-tag"], "xxx")).build();
//! let mut expose_contract = exchange.object_expose_contract((["some-tag"], "xxx")).build();
//!
//! let exposer = async move {
//!     // The expose contract emits a sink once an observer exists.
//!     let mut object_state_sink = expose_contract.next().await.unwrap();
//!     let object_state = ObjectState::new("my data").json_serialize();
//!     object_state_sink.send(object_state).await.unwrap();
//!     // Keep the sink (and the contract) until the observer has what it wanted.
//!     (expose_contract, object_state_sink)
//! };
//! let observer = async move {
//!     // The observe contract emits a stream at once.
//!     let mut object_state_stream = observe_contract.next().await.unwrap();
//!     let object_state = object_state_stream.next().await.unwrap().json_deserialize::<String>();
//!     object_state.data
//! };
//! let (_exposer, data) = futures::join!(exposer, observer);
//! assert_eq!(data, "my data");
//! # });
//! ```
//!
//! # Closed sinks
//!
//! See [`ObjectStateSink`]: a held sink keeps applying states after its election is lost, and a
//! re-elected contract always emits a new sink.
//!
//! # Driving the engine yourself
//!
//! [`engine::Engine`] is public for custom runtimes and tests: call an input, then drain
//! [`engine::Engine::poll_event`]; its outputs are data (events, frames, deadlines), never
//! callbacks or wakers. Its module documentation shows a complete loop. Transports connect
//! exchanges through [`Link`], which is sans IO (every call that needs time takes `now`); its
//! documentation has a synchronous run loop over in-memory pipes. The async facade reads time
//! from one [`Clock`] ([`Exchange::with_clock`] swaps it: a virtual clock in tests, another
//! time source where `Instant::now` is unavailable).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod access;
mod close;
mod codec;
mod contract;
mod descriptor;
pub mod engine;
mod exchange;
mod facade;
mod link;
mod payload_cache;
mod shrink;
mod sink;
pub mod snapshot;
mod state;
mod stream;
mod stream_ext;

pub use access::{AccessPolicy, AccessToken, Refusal, Rights};
pub use close::CloseReason;
pub use codec::LinkCodec;
pub use contract::{
    ObjectExposeContract, ObjectExposeContractBuilder, ObjectObserveContract, ObjectObserveContractBuilder,
    TagExposeContract, TagExposeContractBuilder, TagObserveContract, TagObserveContractBuilder,
};
pub use descriptor::{DescriptorError, ObjectDescriptor, TagDescriptor};
pub use engine::{LinkConfig, LinkInfo, LinkRole};
pub use exchange::{Exchange, UpstreamReservation};
pub use facade::{Clock, system_clock};
pub use hakuban_proto::{Collection, DecodeError, Limits, LoadLimitPoint};
pub use link::{Link, LinkError};
pub use sink::{ObjectStateSink, ObjectStateSinkParams};
pub use snapshot::ExchangeSnapshot;
pub use state::{
    DataBytes, DataFormat, DataSynchronized, DataVersion, JSON_FORMAT, JsonDeserializeError, JsonDeserializeState,
    JsonSerializeError, JsonSerializeState, ObjectState,
};
pub use stream::ObjectStateStream;
pub use stream_ext::{HakubanStreamExt, Lent};
