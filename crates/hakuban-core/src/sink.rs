//! [`ObjectStateSink`]: how an elected exposer publishes states.

use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

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
///   replace older ones; see [`DataVersion`](crate::DataVersion)). It is ready except after
///   1,024 states in a row or 4 ms of them, when it yields to the executor once so that a
///   producer sending back to back cannot starve the tasks delivering its states.
///   [`publish`](Self::publish) applies a state without ever yielding.
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
    /// When the first of those states was sent, and how long ago (at the latest send) that was.
    slice: Option<(Instant, Duration)>,
}

/// A producer sending through the `Sink` interface yields to its executor after this many states
/// in a row, or after [`SLICE`] of them, so a busy producer never starves the tasks that carry
/// its states to the network (on tokio, a task it wakes may otherwise wait behind it on the same
/// worker). Each yield puts the producer behind every task it woke meanwhile, so yielding often
/// costs it. S1 (100 local observers), medians of ~300 alternating samples in each of three
/// rounds: 19.8, 21.8 and 23.5 ms at 256 states a slice, 18.1, 18.4 and 20.5 ms at 1,024;
/// 2,048 and 8,192 were no faster than 1,024.
const SENDS_PER_YIELD: u32 = 1024;

/// The longest run of sends between two yields, for states slow to apply (each waking many
/// local readers, say). Looser than what 1,024 quick sends take (~1 ms in S1), so that the count
/// decides in the common case: a 1 ms bound made S1 slower again (median 19.3 against 18.4 ms),
/// 4 ms did not (21.0 against 20.5).
const SLICE: Duration = Duration::from_millis(4);

impl ObjectStateSink {
    pub(crate) fn new(shared: Arc<Shared>, id: SinkId, descriptor: ObjectDescriptor) -> Self {
        ObjectStateSink { shared, id, descriptor, sends_since_yield: 0, slice: None }
    }

    /// The object this sink produces.
    pub fn descriptor(&self) -> &ObjectDescriptor {
        &self.descriptor
    }

    /// Applies `state` at once, without going through the `Sink` machinery.
    pub fn publish(&self, state: ObjectState<DataBytes>) {
        self.publish_at(state, self.shared.now());
    }

    fn publish_at(&self, state: ObjectState<DataBytes>, now: Instant) {
        let id = self.id;
        self.shared.engine(|engine| engine.sink_send(id, state, now));
    }
}

impl Sink<ObjectState<DataBytes>> for ObjectStateSink {
    type Error = Infallible;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        let slice_over = self.slice.is_some_and(|(_, elapsed)| elapsed >= SLICE);
        if self.sends_since_yield >= SENDS_PER_YIELD || slice_over {
            self.sends_since_yield = 0;
            self.slice = None;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(mut self: Pin<&mut Self>, state: ObjectState<DataBytes>) -> Result<(), Infallible> {
        self.sends_since_yield += 1;
        // The clock read the state needs anyway also times the slice.
        let now = self.shared.now();
        let started = self.slice.map_or(now, |(started, _)| started);
        self.slice = Some((started, now.saturating_duration_since(started)));
        self.publish_at(state, now);
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
