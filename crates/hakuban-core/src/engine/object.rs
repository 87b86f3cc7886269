//! Per-object rules: the live / data-needed flags and their effects, applying states (version
//! ordering), synchronisation aggregation and dropping stale data nobody needs.

use std::sync::Arc;
use std::time::Instant;

use super::{Engine, ObjectId, SinkId};
use crate::state::{DataBytes, DataSynchronized, ObjectState};

impl Engine {
    /// Recomputes the object's flags and applies their effects: streams opened or closed,
    /// exposer (re)elected, stale data dropped. Cheap and idempotent; call after any change.
    pub(super) fn refresh(&mut self, object: ObjectId, now: Instant) {
        let Some(rec) = self.objects.get(&object) else { return };
        let live = !rec.observers.is_empty()
            || !rec.exposers.is_empty()
            || !rec.down.is_empty()
            || rec.up_receiving
            || rec.up_sending;
        let observed_by_tag = rec.tags.iter().any(|tag| self.tags.get(tag).is_some_and(|t| !t.observers.is_empty()));
        let children = self.downstream_interests(object);
        let observing_children = children.iter().filter(|c| c.observes).count();
        let child_needs_data = children.iter().any(|c| c.observes && !c.exposes) || observing_children >= 2;
        let needed = live
            && (rec.up_receiving || rec.up_sending || !rec.observers.is_empty() || observed_by_tag || child_needs_data);
        let was_live = rec.live;
        if let Some(rec) = self.objects.get_mut(&object) {
            rec.live = live;
            rec.needed = needed;
            if std::mem::take(&mut rec.balance_parked) {
                self.rebalance_woken.push(object);
            }
        }
        if live && !was_live {
            self.open_observer_streams(object);
        } else if !live && was_live {
            self.close_all_streams(object);
        }
        self.elect(object, now);
        self.update_downstream_streams(object);
        self.drop_stale_state(object, now);
        self.declaration_may_change(object);
    }

    /// A newly live object gets a stream for each of its object and tag observers.
    fn open_observer_streams(&mut self, object: ObjectId) {
        let Some(rec) = self.objects.get(&object) else { return };
        let mut observers = rec.observers.clone();
        for tag in &rec.tags {
            if let Some(tag) = self.tags.get(tag) {
                observers.extend_from_slice(&tag.observers);
            }
        }
        for contract in observers {
            self.ensure_stream(contract, object);
        }
    }

    /// Every open stream of the object (queued or held) is recorded in `streams`.
    fn close_all_streams(&mut self, object: ObjectId) {
        let Some(rec) = self.objects.get(&object) else { return };
        let streams = rec.streams.clone();
        for stream in streams {
            self.close_stream(stream);
        }
    }

    /// Applies a state sent through `sink` (SEMANTICS §5.1): the sink's synchronisation is
    /// recorded, then the state replaces the cached one if its version is strictly higher, or
    /// only the synchronisation flag changes, or (data not needed and stale) the cache is dropped.
    /// A state whose flag already is the aggregate is kept as it came (a link's codec holds the
    /// same one as its baseline).
    pub(super) fn apply_state(
        &mut self,
        object: ObjectId,
        sink: SinkId,
        state: Arc<ObjectState<DataBytes>>,
        now: Instant,
    ) {
        let Some(rec) = self.objects.get_mut(&object) else { return };
        let aggregate = rec.record_sync(sink, state.synchronized, now);
        if !rec.needed && !aggregate.is_now() {
            if rec.state.is_some() {
                self.publish(object, None);
            }
            return;
        }
        let newer = rec.state.as_ref().is_none_or(|current| state.version > current.version);
        if newer {
            let state = if state.synchronized == aggregate {
                state
            } else {
                Arc::new(ObjectState { synchronized: aggregate, ..(*state).clone() })
            };
            self.publish(object, Some(state));
            self.notify_links(object);
        } else {
            self.set_synchronized(object, aggregate);
        }
    }

    /// Applies a change of a producer's synchronisation alone (the network's `Synchronized`).
    pub(super) fn apply_synchronized(
        &mut self,
        object: ObjectId,
        sink: SinkId,
        synchronized: DataSynchronized,
        now: Instant,
    ) {
        let Some(rec) = self.objects.get_mut(&object) else { return };
        let aggregate = rec.record_sync(sink, synchronized, now);
        self.set_synchronized(object, aggregate);
        self.drop_stale_state(object, now);
    }

    /// The sink's producer is gone: it leaves the synchronised set, and the state turns stale
    /// (and is dropped if nobody needs it) when no synchronised producer remains.
    pub(super) fn desynchronize(&mut self, object: ObjectId, sink: SinkId, now: Instant) {
        let Some(rec) = self.objects.get_mut(&object) else { return };
        let before = rec.synced.len();
        rec.synced.retain(|s| *s != sink);
        if rec.synced.len() == before || !rec.synced.is_empty() {
            return;
        }
        let at = rec.last_at.map_or(now, |last| last.max(now));
        rec.last_at = Some(at);
        self.set_synchronized(object, DataSynchronized::LastAt(at));
        self.drop_stale_state(object, now);
    }

    fn set_synchronized(&mut self, object: ObjectId, synchronized: DataSynchronized) {
        let Some(rec) = self.objects.get(&object) else { return };
        let Some(current) = rec.state() else { return };
        if current.synchronized == synchronized {
            return;
        }
        self.publish(object, Some(Arc::new(ObjectState { synchronized, ..(*current).clone() })));
        self.notify_links(object);
    }

    /// SEMANTICS §5.3: an object nobody needs keeps no stale data.
    pub(super) fn drop_stale_state(&mut self, object: ObjectId, now: Instant) {
        if let Some(rec) = self.objects.get(&object)
            && !rec.needed
            && !rec.aggregate_sync(now).is_now()
            && rec.state.is_some()
        {
            self.publish(object, None);
        }
    }

    /// Replaces the object's state and announces it (streams read it from the event).
    fn publish(&mut self, object: ObjectId, state: Option<Arc<ObjectState<DataBytes>>>) {
        if let Some(rec) = self.objects.get_mut(&object) {
            rec.state.clone_from(&state);
            self.events.push_back(super::Event::StateChanged(object, state));
        }
    }
}
