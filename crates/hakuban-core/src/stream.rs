//! [`ObjectStateStream`]: the latest-state stream an observe contract hands out.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;

use crate::descriptor::ObjectDescriptor;
use crate::engine::StreamId;
use crate::facade::{Shared, StreamPoll, StreamReader};
use crate::state::{DataBytes, ObjectState};

/// The states of one object, latest first-class: each item is the object's current state when
/// polled, so a slow reader skips intermediate versions instead of queueing them.
///
/// Yields whenever the version or the synchronisation flag differs from what it yielded last (a
/// change of the flag alone yields the same data again). Pending while no state exists. Ends
/// (`None`) when closed: its contract was dropped, or (tag observers) the object stopped being
/// live here. Closing wins over a state not yet yielded. Dropping the stream while its contract
/// still observes makes the contract emit a fresh stream, which starts with the current state.
pub struct ObjectStateStream {
    shared: Arc<Shared>,
    id: StreamId,
    descriptor: ObjectDescriptor,
    reader: StreamReader,
}

impl ObjectStateStream {
    pub(crate) fn new(shared: Arc<Shared>, id: StreamId, descriptor: ObjectDescriptor, reader: StreamReader) -> Self {
        ObjectStateStream { shared, id, descriptor, reader }
    }

    /// The object this stream reports.
    pub fn descriptor(&self) -> &ObjectDescriptor {
        &self.descriptor
    }
}

impl Stream for ObjectStateStream {
    type Item = ObjectState<DataBytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // No engine lock here: the reader looks at the object's published state.
        match self.reader.poll(cx.waker()) {
            StreamPoll::Ready(state) => Poll::Ready(Some(Arc::unwrap_or_clone(state))),
            StreamPoll::Closed => Poll::Ready(None),
            StreamPoll::Pending => Poll::Pending,
        }
    }
}

impl Drop for ObjectStateStream {
    fn drop(&mut self) {
        let id = self.id;
        let now = self.shared.now();
        self.shared.run(|inner| inner.drop_stream(id, now));
    }
}

impl fmt::Debug for ObjectStateStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectStateStream:{}", self.descriptor)
    }
}
