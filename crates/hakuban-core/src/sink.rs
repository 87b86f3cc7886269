//! [`ObjectStateSink`]: how an elected exposer publishes states.

use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::{Sink, Stream};

use crate::descriptor::ObjectDescriptor;
use crate::engine::{SinkId, SinkPoll};
use crate::facade::Shared;
use crate::state::{DataBytes, ObjectState};

/// Parameters an observer side may ask a producer for. Empty today; the type exists so that
/// `sink.next().await` reads as "wait until I may produce".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectStateSinkParams {}

/// Where an elected exposer sends an object's states. Both a `Sink` of states and a `Stream` of
/// [`ObjectStateSinkParams`].
///
/// * As a stream: yields one params item as soon as it is polled, then stays pending while the
///   sink is elected, then ends (`None`) when the election is lost (nobody observes any more,
///   another exposer took over, or the contract was dropped). `None` means "stop producing and
///   drop me".
/// * As a sink: never fails; `send` applies the state to the object at once (newer versions
///   replace older ones; see [`DataVersion`](crate::DataVersion)). It is ready except once every
///   256 states in a row, when it yields to the executor so that a producer sending back to back
///   cannot starve the tasks delivering its states. [`publish`](Self::publish) applies a state
///   without ever yielding.
///
/// **Closed sinks.** A sink whose election was lost is *closed*, yet a sink the user still holds
/// keeps applying what is sent into it: version ordering arbitrates between producers, and an
/// exposer that was briefly revoked (say, while its observer reconnected) can carry on with the
/// handle it has. A closed sink never becomes active again: when its contract is re-elected, the
/// contract emits a *new* sink. A sink closed before the user took it out of its contract is
/// discarded and never handed out. Dropping a sink tells observers its data is no longer kept
/// current (their next state says `LastAt`), and makes a still-elected contract emit a new sink.
pub struct ObjectStateSink {
    shared: Arc<Shared>,
    id: SinkId,
    descriptor: ObjectDescriptor,
    /// States sent through the `Sink` interface since the sink last yielded to the executor.
    sends_since_yield: u32,
}

/// A producer sending through the `Sink` interface yields to its executor after this many states
/// in a row, so a busy producer never starves the tasks that carry its states to the network
/// (on tokio, a task it wakes may otherwise wait behind it on the same worker).
const SENDS_PER_YIELD: u32 = 256;

impl ObjectStateSink {
    pub(crate) fn new(shared: Arc<Shared>, id: SinkId, descriptor: ObjectDescriptor) -> Self {
        ObjectStateSink { shared, id, descriptor, sends_since_yield: 0 }
    }

    /// The object this sink produces.
    pub fn descriptor(&self) -> &ObjectDescriptor {
        &self.descriptor
    }

    /// Applies `state` at once, without going through the `Sink` machinery.
    pub fn publish(&self, state: ObjectState<DataBytes>) {
        let (id, now) = (self.id, self.shared.now());
        self.shared.engine(|engine| engine.sink_send(id, state, now));
    }
}

impl Sink<ObjectState<DataBytes>> for ObjectStateSink {
    type Error = Infallible;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        if self.sends_since_yield >= SENDS_PER_YIELD {
            self.sends_since_yield = 0;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(mut self: Pin<&mut Self>, state: ObjectState<DataBytes>) -> Result<(), Infallible> {
        self.sends_since_yield += 1;
        self.publish(state);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
}

impl Stream for ObjectStateSink {
    type Item = ObjectStateSinkParams;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ObjectStateSinkParams>> {
        let id = self.id;
        match self.shared.run(|inner| inner.poll_sink_params(id, cx.waker())) {
            SinkPoll::Ready => Poll::Ready(Some(ObjectStateSinkParams::default())),
            SinkPoll::Closed => Poll::Ready(None),
            SinkPoll::Pending => Poll::Pending,
        }
    }
}

impl Drop for ObjectStateSink {
    fn drop(&mut self) {
        let id = self.id;
        let now = self.shared.now();
        self.shared.run(|inner| inner.drop_sink(id, now));
    }
}

impl fmt::Debug for ObjectStateSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectStateSink:{}", self.descriptor)
    }
}
