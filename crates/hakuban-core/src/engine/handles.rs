//! Streams and sinks: emitting them into contract queues, handing them out, closing and
//! forgetting them. Which contract deserves a handle is decided elsewhere (object.rs, election.rs).

use std::collections::VecDeque;
use std::time::Instant;

use super::records::{Exposer, HandleRef, SinkRec, StreamRec, Target};
use super::{ContractId, Engine, Event, ObjectId, SinkId, StreamId, TakenHandle, next};

/// Sweep a contract's queue of dead entries once they are this many and outnumber live ones.
const QUEUE_SWEEP_MIN: usize = 32;

impl Engine {
    /// Queues a stream of `object` for observe contract `contract`, unless it already owes one.
    pub(super) fn ensure_stream(&mut self, contract: ContractId, object: ObjectId) {
        let Some(rec) = self.contracts.get_mut(&contract) else { return };
        if rec.current.contains_key(&object) {
            return;
        }
        let Some(object_rec) = self.objects.get_mut(&object) else { return };
        let id = StreamId(next(&mut self.ids.stream));
        object_rec.handles += 1;
        object_rec.streams.push(id);
        self.streams.insert(id, StreamRec { object, contract: Some(contract), closed: false, taken: false });
        rec.current.insert(object, HandleRef::Stream(id));
        rec.queue.push_back(HandleRef::Stream(id));
        self.events.push_back(Event::HandleReady(contract));
    }

    /// Queues a sink of `object` for expose contract `contract`, unless it already owes an open one.
    pub(super) fn ensure_sink(&mut self, contract: ContractId, object: ObjectId) {
        let Some(rec) = self.contracts.get_mut(&contract) else { return };
        if rec.current.contains_key(&object) {
            return;
        }
        let Some(object_rec) = self.objects.get_mut(&object) else { return };
        let id = SinkId(next(&mut self.ids.sink));
        object_rec.handles += 1;
        self.sinks.insert(
            id,
            SinkRec { object, contract: Some(contract), closed: false, taken: false, params_yielded: false },
        );
        rec.current.insert(object, HandleRef::Sink(id));
        rec.queue.push_back(HandleRef::Sink(id));
        self.events.push_back(Event::HandleReady(contract));
    }

    /// After the user dropped a stream: queue a new one if the contract still observes the object.
    pub(super) fn ensure_stream_if_wanted(&mut self, contract: ContractId, object: ObjectId) {
        let Some(rec) = self.contracts.get(&contract) else { return };
        let Some(object_rec) = self.objects.get(&object) else { return };
        let wanted = object_rec.live
            && match rec.target {
                Target::Object(target) => target == object,
                Target::Tag(tag) => object_rec.tags.contains(&tag),
            };
        if wanted && rec.kind.observes() {
            self.ensure_stream(contract, object);
        }
    }

    /// After the user dropped a sink: queue a new one if the contract is still the exposer.
    pub(super) fn ensure_sink_if_elected(&mut self, contract: ContractId, object: ObjectId) {
        let elected = self.objects.get(&object).is_some_and(|rec| rec.exposer == Some(Exposer::Contract(contract)));
        if elected {
            self.ensure_sink(contract, object);
        }
    }

    /// Pops the contract's oldest live queued handle and marks it taken.
    pub(super) fn take_queued(&mut self, contract: ContractId) -> Option<TakenHandle> {
        let rec = self.contracts.get_mut(&contract)?;
        while let Some(handle) = rec.queue.pop_front() {
            let taken = match handle {
                HandleRef::Stream(id) => match self.streams.get_mut(&id) {
                    Some(stream) if !stream.closed && !stream.taken => {
                        stream.taken = true;
                        let object = stream.object;
                        let descriptor = self.objects.get(&object).map(|o| o.descriptor.clone());
                        descriptor.map(|d| TakenHandle::Stream(id, d, object))
                    }
                    _ => None,
                },
                HandleRef::Sink(id) => match self.sinks.get_mut(&id) {
                    Some(sink) if !sink.closed && !sink.taken => {
                        sink.taken = true;
                        let descriptor = self.objects.get(&sink.object).map(|o| o.descriptor.clone());
                        descriptor.map(|d| TakenHandle::Sink(id, d))
                    }
                    _ => None,
                },
            };
            if taken.is_some() {
                if rec.queue.is_empty() {
                    // Most contracts are handed one handle at a time: an empty queue keeps no room.
                    rec.queue = VecDeque::new();
                }
                return taken;
            }
            rec.queue_dead = rec.queue_dead.saturating_sub(1);
        }
        rec.queue = VecDeque::new();
        None
    }

    /// Revokes a handle its contract no longer owes. A queued (never taken) handle disappears
    /// at once; a held one is marked closed and its holder is told.
    pub(super) fn close_handle(&mut self, handle: HandleRef, now: Instant) {
        match handle {
            HandleRef::Stream(id) => self.close_stream(id),
            HandleRef::Sink(id) => self.close_sink(id, now),
        }
    }

    pub(super) fn close_stream(&mut self, id: StreamId) {
        let Some(stream) = self.streams.get_mut(&id) else { return };
        if stream.closed {
            return;
        }
        if !stream.taken {
            if let Some(stream) = self.streams.remove(&id) {
                self.forget_stream(id, &stream);
                self.note_dead_queue_entry(stream.contract);
            }
            return;
        }
        stream.closed = true;
        let (object, contract) = (stream.object, stream.contract.take());
        self.unlink_current(contract, object, HandleRef::Stream(id));
        if let Some(rec) = self.objects.get_mut(&object) {
            rec.streams.retain(|s| *s != id);
        }
        self.events.push_back(Event::StreamClosed(id));
    }

    pub(super) fn close_sink(&mut self, id: SinkId, now: Instant) {
        let Some(sink) = self.sinks.get_mut(&id) else { return };
        if sink.closed {
            return;
        }
        if !sink.taken {
            if let Some(sink) = self.sinks.remove(&id) {
                self.forget_sink(id, &sink, now);
                self.note_dead_queue_entry(sink.contract);
            }
            return;
        }
        sink.closed = true;
        let (object, contract) = (sink.object, sink.contract.take());
        self.unlink_current(contract, object, HandleRef::Sink(id));
        self.events.push_back(Event::SinkClosed(id));
    }

    /// Bookkeeping for a stream record that was just removed from the map.
    pub(super) fn forget_stream(&mut self, id: StreamId, stream: &StreamRec) {
        self.unlink_current(stream.contract, stream.object, HandleRef::Stream(id));
        if let Some(rec) = self.objects.get_mut(&stream.object) {
            rec.streams.retain(|s| *s != id);
            rec.handles = rec.handles.saturating_sub(1);
        }
        self.gc_objects.push(stream.object);
    }

    /// Bookkeeping for a sink record that was just removed from the map: its producer is gone.
    pub(super) fn forget_sink(&mut self, id: SinkId, sink: &SinkRec, now: Instant) {
        self.unlink_current(sink.contract, sink.object, HandleRef::Sink(id));
        if let Some(rec) = self.objects.get_mut(&sink.object) {
            rec.handles = rec.handles.saturating_sub(1);
        }
        self.desynchronize(sink.object, id, now);
        self.gc_objects.push(sink.object);
    }

    fn unlink_current(&mut self, contract: Option<ContractId>, object: ObjectId, handle: HandleRef) {
        if let Some(rec) = contract.and_then(|c| self.contracts.get_mut(&c))
            && rec.current.get(&object) == Some(&handle)
        {
            rec.current.remove(&object);
        }
    }

    fn note_dead_queue_entry(&mut self, contract: Option<ContractId>) {
        let Some(rec) = contract.and_then(|c| self.contracts.get_mut(&c)) else { return };
        rec.queue_dead += 1;
        if rec.queue_dead >= QUEUE_SWEEP_MIN && rec.queue_dead * 2 > rec.queue.len() {
            let (streams, sinks) = (&self.streams, &self.sinks);
            rec.queue.retain(|handle| match handle {
                HandleRef::Stream(id) => streams.get(id).is_some_and(|s| !s.closed && !s.taken),
                HandleRef::Sink(id) => sinks.get(id).is_some_and(|s| !s.closed && !s.taken),
            });
            rec.queue_dead = 0;
        }
    }
}
