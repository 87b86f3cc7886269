//! The four contracts and their builders.
//!
//! A contract is a `Stream` of handles that never ends by itself: observe contracts yield
//! [`ObjectStateStream`]s, expose contracts yield [`ObjectStateSink`]s. Dropping the contract is
//! how it ends; that closes every handle it gave out. Contracts are deliberately not `Clone`.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;

use crate::descriptor::{ObjectDescriptor, TagDescriptor};
use crate::engine::ContractId;
use crate::facade::{Shared, Taken};
use crate::sink::ObjectStateSink;
use crate::stream::ObjectStateStream;

/// The part every contract shares: its id in the engine, and dropping it.
struct ContractHandle {
    shared: Arc<Shared>,
    id: ContractId,
}

impl ContractHandle {
    fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Taken> {
        let id = self.id;
        match self.shared.run(|inner| inner.take_handle(id, cx.waker())) {
            Some(handle) => Poll::Ready(handle),
            None => Poll::Pending,
        }
    }

    fn poll_stream(&self, cx: &mut Context<'_>) -> Poll<Option<ObjectStateStream>> {
        match self.poll_take(cx) {
            Poll::Ready(Taken::Stream(id, descriptor, reader)) => {
                Poll::Ready(Some(ObjectStateStream::new(self.shared.clone(), id, descriptor, reader)))
            }
            // An observe contract only ever queues streams.
            Poll::Ready(Taken::Sink(..)) | Poll::Pending => Poll::Pending,
        }
    }

    fn poll_sink(&self, cx: &mut Context<'_>) -> Poll<Option<ObjectStateSink>> {
        match self.poll_take(cx) {
            Poll::Ready(Taken::Sink(id, descriptor)) => {
                Poll::Ready(Some(ObjectStateSink::new(self.shared.clone(), id, descriptor)))
            }
            Poll::Ready(Taken::Stream(..)) | Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for ContractHandle {
    fn drop(&mut self) {
        let id = self.id;
        let now = self.shared.now();
        self.shared.run(|inner| inner.drop_contract(id, now));
    }
}

macro_rules! contract_type {
    ($(#[$doc:meta])* $name:ident, $descriptor:ty, $item:ty, $poll:ident, $label:literal) => {
        $(#[$doc])*
        pub struct $name {
            handle: ContractHandle,
            descriptor: $descriptor,
        }

        impl $name {
            /// What this contract is about.
            pub fn descriptor(&self) -> &$descriptor {
                &self.descriptor
            }
        }

        impl Stream for $name {
            type Item = $item;

            fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<$item>> {
                self.handle.$poll(cx)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($label, ":{}"), self.descriptor)
            }
        }
    };
}

contract_type!(
    /// Interest in one object's states. Emits one [`ObjectStateStream`] at once (even before any
    /// state exists) and a fresh one whenever the user drops the previous one.
    ObjectObserveContract, ObjectDescriptor, ObjectStateStream, poll_stream, "ObjectObserveContract"
);
contract_type!(
    /// An offer to produce one object's states. Emits an [`ObjectStateSink`] while elected, which
    /// requires someone to observe the object; the sink closes when the election is lost.
    ObjectExposeContract, ObjectDescriptor, ObjectStateSink, poll_sink, "ObjectExposeContract"
);
contract_type!(
    /// Interest in every live object with a tag: one [`ObjectStateStream`] per object, ending when
    /// the object stops being live here.
    TagObserveContract, TagDescriptor, ObjectStateStream, poll_stream, "TagObserveContract"
);
contract_type!(
    /// An offer to produce the states of every object with a tag: one [`ObjectStateSink`] per
    /// object it is elected for.
    TagExposeContract, TagDescriptor, ObjectStateSink, poll_sink, "TagExposeContract"
);

/// Builds an [`ObjectObserveContract`]; see [`Exchange::object_observe_contract`](crate::Exchange::object_observe_contract).
#[must_use = "a builder does nothing until .build()"]
pub struct ObjectObserveContractBuilder {
    shared: Arc<Shared>,
    descriptor: ObjectDescriptor,
}

impl ObjectObserveContractBuilder {
    pub(crate) fn new(shared: Arc<Shared>, descriptor: ObjectDescriptor) -> Self {
        ObjectObserveContractBuilder { shared, descriptor }
    }

    /// Creates the contract; its stream is ready to be taken at once.
    pub fn build(self) -> ObjectObserveContract {
        let descriptor = self.descriptor.clone();
        let now = self.shared.now();
        let id = self.shared.engine(|engine| engine.create_object_observe_contract(descriptor, now));
        ObjectObserveContract { handle: ContractHandle { shared: self.shared, id }, descriptor: self.descriptor }
    }
}

/// Builds a [`TagObserveContract`]; see [`Exchange::tag_observe_contract`](crate::Exchange::tag_observe_contract).
#[must_use = "a builder does nothing until .build()"]
pub struct TagObserveContractBuilder {
    shared: Arc<Shared>,
    descriptor: TagDescriptor,
}

impl TagObserveContractBuilder {
    pub(crate) fn new(shared: Arc<Shared>, descriptor: TagDescriptor) -> Self {
        TagObserveContractBuilder { shared, descriptor }
    }

    /// Creates the contract; streams of already-live objects are ready at once.
    pub fn build(self) -> TagObserveContract {
        let descriptor = self.descriptor.clone();
        let now = self.shared.now();
        let id = self.shared.engine(|engine| engine.create_tag_observe_contract(descriptor, now));
        TagObserveContract { handle: ContractHandle { shared: self.shared, id }, descriptor: self.descriptor }
    }
}

/// Builds an [`ObjectExposeContract`]; see [`Exchange::object_expose_contract`](crate::Exchange::object_expose_contract).
#[must_use = "a builder does nothing until .build()"]
pub struct ObjectExposeContractBuilder {
    shared: Arc<Shared>,
    descriptor: ObjectDescriptor,
    capacity: u32,
}

impl ObjectExposeContractBuilder {
    pub(crate) fn new(shared: Arc<Shared>, descriptor: ObjectDescriptor) -> Self {
        ObjectExposeContractBuilder { shared, descriptor, capacity: 1 }
    }

    /// How much this exposer can take, relative to others (default 1). Among local contracts
    /// the highest capacity wins; a network parent never delegates to capacity 0.
    pub fn with_capacity(mut self, capacity: u32) -> Self {
        self.capacity = capacity;
        self
    }

    /// Creates the contract.
    pub fn build(self) -> ObjectExposeContract {
        let (descriptor, capacity) = (self.descriptor.clone(), self.capacity);
        let now = self.shared.now();
        let id = self.shared.engine(|engine| engine.create_object_expose_contract(descriptor, capacity, now));
        ObjectExposeContract { handle: ContractHandle { shared: self.shared, id }, descriptor: self.descriptor }
    }
}

/// Builds a [`TagExposeContract`]; see [`Exchange::tag_expose_contract`](crate::Exchange::tag_expose_contract).
#[must_use = "a builder does nothing until .build()"]
pub struct TagExposeContractBuilder {
    shared: Arc<Shared>,
    descriptor: TagDescriptor,
    capacity: u32,
}

impl TagExposeContractBuilder {
    pub(crate) fn new(shared: Arc<Shared>, descriptor: TagDescriptor) -> Self {
        TagExposeContractBuilder { shared, descriptor, capacity: 1 }
    }

    /// How much this exposer can take, relative to others (default 1).
    pub fn with_capacity(mut self, capacity: u32) -> Self {
        self.capacity = capacity;
        self
    }

    /// Creates the contract.
    pub fn build(self) -> TagExposeContract {
        let (descriptor, capacity) = (self.descriptor.clone(), self.capacity);
        let now = self.shared.now();
        let id = self.shared.engine(|engine| engine.create_tag_expose_contract(descriptor, capacity, now));
        TagExposeContract { handle: ContractHandle { shared: self.shared, id }, descriptor: self.descriptor }
    }
}
