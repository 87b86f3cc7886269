//! Engine tests: no async, explicit time, exact outcomes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Waker;
use std::time::{Duration, Instant};

use super::*;
use crate::facade::{Inner, StreamPoll, StreamReader, Taken, Woken};
use crate::state::DataSynchronized;

/// The engine with the facade's waiter table around it: inputs, then `drain` turns the events
/// into wakes, as the async handles do.
type Harness = Inner;

fn desc(name: &str) -> ObjectDescriptor {
    ObjectDescriptor::from((["t"], name))
}

fn state(version: i64, data: &str) -> ObjectState<DataBytes> {
    ObjectState::new(Arc::new(data.as_bytes().to_vec())).with_version(vec![version])
}

fn noop() -> Waker {
    futures::task::noop_waker()
}

/// A waker that counts how often it was woken.
struct Counter(AtomicUsize);

impl futures::task::ArcWake for Counter {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting_waker() -> (Arc<Counter>, Waker) {
    let counter = Arc::new(Counter(AtomicUsize::new(0)));
    (counter.clone(), futures::task::waker(counter))
}

fn take_stream(engine: &mut Harness, contract: ContractId) -> (StreamId, StreamReader) {
    match engine.take_handle(contract, &noop()) {
        Some(Taken::Stream(id, _, reader)) => (id, reader),
        other => panic!("expected a stream, got {other:?}"),
    }
}

fn take_sink(engine: &mut Harness, contract: ContractId) -> SinkId {
    match engine.take_handle(contract, &noop()) {
        Some(Taken::Sink(id, _)) => id,
        other => panic!("expected a sink, got {other:?}"),
    }
}

// The reading helpers drain first: the facade does so at the end of every input.
fn ready(engine: &mut Harness, reader: &mut StreamReader) -> Arc<ObjectState<DataBytes>> {
    drain(engine);
    match reader.poll(&noop()) {
        StreamPoll::Ready(state) => state,
        other => panic!("expected a state, got {other:?}"),
    }
}

fn pending(engine: &mut Harness, reader: &mut StreamReader) -> bool {
    drain(engine);
    matches!(reader.poll(&noop()), StreamPoll::Pending)
}

fn closed(engine: &mut Harness, reader: &mut StreamReader) -> bool {
    drain(engine);
    matches!(reader.poll(&noop()), StreamPoll::Closed)
}

fn drain(engine: &mut Harness) -> usize {
    let mut woken = Woken::new();
    engine.drain(&mut woken);
    woken.into_iter().map(Waker::wake).count()
}

#[test]
fn observe_contract_queues_a_stream_at_once_without_state() {
    let mut engine = Harness::new();
    let now = Instant::now();
    let observe = engine.create_object_observe_contract(desc("a"), now);
    let (_, mut reader) = take_stream(&mut engine, observe);
    assert!(pending(&mut engine, &mut reader));
    assert!(engine.take_handle(observe, &noop()).is_none(), "one stream per contract at a time");
}

#[test]
fn expose_contract_gets_a_sink_only_while_observed() {
    let mut engine = Harness::new();
    let now = Instant::now();
    let expose = engine.create_object_expose_contract(desc("a"), 1, now);
    let (contract_wakes, contract_waker) = counting_waker();
    assert!(engine.take_handle(expose, &contract_waker).is_none());
    let observe = engine.create_object_observe_contract(desc("a"), now);
    assert_eq!(drain(&mut engine), 1);
    assert_eq!(contract_wakes.0.load(Ordering::SeqCst), 1, "the waiting contract is woken");
    let sink = take_sink(&mut engine, expose);
    let (sink_wakes, sink_waker) = counting_waker();
    assert_eq!(engine.poll_sink_params(sink, &sink_waker), SinkPoll::Ready);
    assert_eq!(engine.poll_sink_params(sink, &sink_waker), SinkPoll::Pending);
    engine.drop_contract(observe, now);
    assert_eq!(drain(&mut engine), 1);
    assert_eq!(sink_wakes.0.load(Ordering::SeqCst), 1, "the waiting sink is woken when closed");
    assert_eq!(engine.poll_sink_params(sink, &noop()), SinkPoll::Closed);
    assert!(engine.take_handle(expose, &noop()).is_none());
}

#[test]
fn highest_capacity_wins_ties_go_to_the_earliest_and_the_incumbent_stays() {
    let mut engine = Harness::new();
    let now = Instant::now();
    let low = engine.create_object_expose_contract(desc("a"), 1, now);
    let high = engine.create_object_expose_contract(desc("a"), 5, now);
    let tie = engine.create_object_expose_contract(desc("a"), 5, now);
    engine.create_object_observe_contract(desc("a"), now);
    assert!(engine.take_handle(low, &noop()).is_none());
    assert!(engine.take_handle(tie, &noop()).is_none());
    take_sink(&mut engine, high);
    // A newcomer with more capacity does not displace the incumbent.
    let bigger = engine.create_object_expose_contract(desc("a"), 100, now);
    assert!(engine.take_handle(bigger, &noop()).is_none());
    // When the incumbent goes, the best remaining one takes over.
    engine.drop_contract(high, now);
    take_sink(&mut engine, bigger);
    assert!(engine.take_handle(tie, &noop()).is_none());
}

#[test]
fn object_exposers_beat_tag_exposers_but_an_incumbent_tag_exposer_stays() {
    let mut engine = Harness::new();
    let now = Instant::now();
    let tag_expose = engine.create_tag_expose_contract(TagDescriptor::from("t"), 10, now);
    let object_expose = engine.create_object_expose_contract(desc("a"), 1, now);
    engine.create_object_observe_contract(desc("a"), now);
    take_sink(&mut engine, object_expose);
    assert!(engine.take_handle(tag_expose, &noop()).is_none());

    engine.create_object_observe_contract(desc("b"), now);
    take_sink(&mut engine, tag_expose);
    let object_expose_b = engine.create_object_expose_contract(desc("b"), 1, now);
    assert!(engine.take_handle(object_expose_b, &noop()).is_none(), "incumbent tag exposer keeps b");
}

#[test]
fn versions_only_move_forward_and_streams_skip_to_the_latest() {
    let mut engine = Harness::new();
    let now = Instant::now();
    let observe = engine.create_object_observe_contract(desc("a"), now);
    let expose = engine.create_object_expose_contract(desc("a"), 1, now);
    let (_, mut stream) = take_stream(&mut engine, observe);
    let sink = take_sink(&mut engine, expose);
    for version in 1..=5 {
        engine.sink_send(sink, state(version, "x"), now);
    }
    assert_eq!(ready(&mut engine, &mut stream).version, vec![5], "intermediate versions are skipped");
    engine.sink_send(sink, state(3, "old"), now);
    engine.sink_send(sink, state(5, "same"), now);
    assert!(pending(&mut engine, &mut stream));
    engine.sink_send(sink, state(6, "new").with_version(vec![5, 0]), now);
    let latest = ready(&mut engine, &mut stream);
    assert_eq!((latest.version.clone(), latest.data.as_slice()), (vec![5, 0], &b"new"[..]));
}

#[test]
fn events_name_only_handles_that_were_found_pending() {
    let mut engine = Harness::new();
    let now = Instant::now();
    let observe = engine.create_object_observe_contract(desc("a"), now);
    let expose = engine.create_object_expose_contract(desc("a"), 1, now);
    let (_, mut stream) = take_stream(&mut engine, observe);
    let sink = take_sink(&mut engine, expose);
    drain(&mut engine);
    engine.sink_send(sink, state(1, "x"), now);
    assert_eq!(drain(&mut engine), 0, "nobody polled the stream yet");
    ready(&mut engine, &mut stream);
    let (wakes, waker) = counting_waker();
    assert!(matches!(stream.poll(&waker), StreamPoll::Pending));
    engine.sink_send(sink, state(2, "x"), now);
    engine.sink_send(sink, state(3, "x"), now);
    assert_eq!(drain(&mut engine), 1);
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "one wake for many updates");
    assert_eq!(ready(&mut engine, &mut stream).version, vec![3]);
}

#[test]
fn synchronisation_aggregates_over_sinks() {
    let mut engine = Harness::new();
    let t0 = Instant::now();
    let observe = engine.create_object_observe_contract(desc("a"), t0);
    let expose = engine.create_object_expose_contract(desc("a"), 1, t0);
    let (_, mut reader) = take_stream(&mut engine, observe);
    let sink = take_sink(&mut engine, expose);

    let stale_at = t0 + Duration::from_millis(5);
    engine.sink_send(sink, state(1, "x").with_synchronized(DataSynchronized::LastAt(stale_at)), t0);
    assert_eq!(ready(&mut engine, &mut reader).synchronized, DataSynchronized::LastAt(stale_at));

    engine.sink_send(sink, state(1, "x"), t0);
    let now_again = ready(&mut engine, &mut reader);
    assert_eq!((now_again.version.clone(), now_again.synchronized), (vec![1], DataSynchronized::Now));

    let t1 = t0 + Duration::from_millis(10);
    engine.drop_sink(sink, t1);
    let stale = ready(&mut engine, &mut reader);
    assert_eq!((stale.version.clone(), stale.synchronized), (vec![1], DataSynchronized::LastAt(t1)));

    // The contract is still elected, so a new sink was queued; publishing through it revives Now.
    let sink = take_sink(&mut engine, expose);
    engine.sink_send(sink, state(1, "x"), t1);
    assert_eq!(ready(&mut engine, &mut reader).synchronized, DataSynchronized::Now);
}

#[test]
fn stale_data_nobody_needs_is_dropped() {
    let mut engine = Harness::new();
    let now = Instant::now();
    let observe = engine.create_object_observe_contract(desc("a"), now);
    let expose = engine.create_object_expose_contract(desc("a"), 1, now);
    let sink = take_sink(&mut engine, expose);
    engine.sink_send(sink, state(1, "x"), now);
    engine.drop_sink(sink, now);
    engine.drop_contract(observe, now);
    assert!(engine.snapshot(now).objects[0].data_state.is_none());

    let observe = engine.create_object_observe_contract(desc("a"), now);
    let (_, mut reader) = take_stream(&mut engine, observe);
    assert!(pending(&mut engine, &mut reader), "no stale v1 after re-observing");
    let sink = take_sink(&mut engine, expose);
    engine.sink_send(sink, state(2, "y"), now);
    assert_eq!(ready(&mut engine, &mut reader).version, vec![2]);
}

#[test]
fn a_synchronised_state_survives_without_observers() {
    let mut engine = Harness::new();
    let now = Instant::now();
    let observe = engine.create_object_observe_contract(desc("a"), now);
    let expose = engine.create_object_expose_contract(desc("a"), 1, now);
    let sink = take_sink(&mut engine, expose);
    engine.sink_send(sink, state(1, "x"), now);
    engine.drop_contract(observe, now);
    assert_eq!(engine.poll_sink_params(sink, &noop()), SinkPoll::Closed);
    let snapshot = engine.snapshot(now);
    assert_eq!(snapshot.objects[0].data_state.as_ref().map(|d| d.version.clone()), Some(vec![1]));
}

#[test]
fn closed_sinks_keep_applying_and_re_election_emits_a_new_sink() {
    let mut engine = Harness::new();
    let now = Instant::now();
    let observe = engine.create_object_observe_contract(desc("a"), now);
    let expose = engine.create_object_expose_contract(desc("a"), 1, now);
    let old_sink = take_sink(&mut engine, expose);
    engine.drop_contract(observe, now);
    assert_eq!(engine.poll_sink_params(old_sink, &noop()), SinkPoll::Closed);

    let observe = engine.create_object_observe_contract(desc("a"), now);
    let (_, mut reader) = take_stream(&mut engine, observe);
    let new_sink = take_sink(&mut engine, expose);
    assert_ne!(new_sink, old_sink);
    engine.sink_send(old_sink, state(3, "via closed sink"), now);
    assert_eq!(ready(&mut engine, &mut reader).data.as_slice(), b"via closed sink");
}

#[test]
fn a_sink_closed_while_queued_is_never_handed_out() {
    let mut engine = Harness::new();
    let now = Instant::now();
    let observe = engine.create_object_observe_contract(desc("a"), now);
    let expose = engine.create_object_expose_contract(desc("a"), 1, now);
    engine.drop_contract(observe, now);
    assert!(engine.take_handle(expose, &noop()).is_none());
    assert_eq!(engine.counts().sinks, 0);
}

#[test]
fn dropping_a_stream_re_emits_one_with_the_current_state() {
    let mut engine = Harness::new();
    let now = Instant::now();
    let observe = engine.create_object_observe_contract(desc("a"), now);
    let expose = engine.create_object_expose_contract(desc("a"), 1, now);
    let (stream, mut reader) = take_stream(&mut engine, observe);
    let sink = take_sink(&mut engine, expose);
    engine.sink_send(sink, state(1, "x"), now);
    ready(&mut engine, &mut reader);
    engine.drop_stream(stream, now);
    let (_, mut again) = take_stream(&mut engine, observe);
    assert_eq!(ready(&mut engine, &mut again).version, vec![1]);
}

#[test]
fn dropping_the_contract_closes_its_held_stream() {
    let mut engine = Harness::new();
    let now = Instant::now();
    let observe = engine.create_object_observe_contract(desc("a"), now);
    let (stream, mut reader) = take_stream(&mut engine, observe);
    let (wakes, waker) = counting_waker();
    assert!(matches!(reader.poll(&waker), StreamPoll::Pending));
    engine.drop_contract(observe, now);
    assert_eq!(drain(&mut engine), 1);
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
    assert!(closed(&mut engine, &mut reader));
    engine.drop_stream(stream, now);
    assert!(engine.is_empty());
}

#[test]
fn tag_observers_follow_live_objects() {
    let mut engine = Harness::new();
    let now = Instant::now();
    let tag_observe = engine.create_tag_observe_contract(TagDescriptor::from("t"), now);
    assert!(engine.take_handle(tag_observe, &noop()).is_none(), "tag contracts alone make nothing live");
    let expose = engine.create_object_expose_contract(desc("a"), 1, now);
    let (stream, mut reader) = take_stream(&mut engine, tag_observe);
    let sink = take_sink(&mut engine, expose);
    engine.sink_send(sink, state(1, "x"), now);
    assert_eq!(ready(&mut engine, &mut reader).version, vec![1]);
    engine.drop_sink(sink, now);
    engine.drop_contract(expose, now);
    assert!(closed(&mut engine, &mut reader), "object no longer live");
    engine.drop_stream(stream, now);
    engine.drop_contract(tag_observe, now);
    assert!(engine.is_empty());
}

#[test]
fn tag_expose_plus_tag_observe_materialises_nothing() {
    let mut engine = Harness::new();
    let now = Instant::now();
    let observe = engine.create_tag_observe_contract(TagDescriptor::from("t"), now);
    let expose = engine.create_tag_expose_contract(TagDescriptor::from("t"), 1, now);
    assert!(engine.take_handle(observe, &noop()).is_none());
    assert!(engine.take_handle(expose, &noop()).is_none());
    assert_eq!(engine.counts().objects, 0);
}

#[test]
fn tag_index_grows_and_empties() {
    let mut engine = Harness::new();
    let now = Instant::now();
    let tag_expose = engine.create_tag_expose_contract(TagDescriptor::from("t"), 1, now);
    let observers: Vec<ContractId> =
        (0..50).map(|i| engine.create_object_observe_contract(desc(&format!("o{i}")), now)).collect();
    let snapshot = engine.snapshot(now);
    assert_eq!(snapshot.tags.len(), 1);
    assert_eq!(snapshot.tags[0].objects.len(), 50);
    let mut sinks = Vec::new();
    while let Some(Taken::Sink(id, _)) = engine.take_handle(tag_expose, &noop()) {
        sinks.push(id);
    }
    assert_eq!(sinks.len(), 50, "one sink per observed object");
    for observer in observers {
        engine.drop_contract(observer, now);
    }
    assert_eq!(engine.counts().objects, 50, "held sinks pin their objects");
    for sink in sinks {
        engine.drop_sink(sink, now);
    }
    assert_eq!(engine.counts().objects, 0);
    engine.drop_contract(tag_expose, now);
    assert!(engine.is_empty());
}

#[test]
fn unknown_and_repeated_ids_are_harmless() {
    let mut engine = Harness::new();
    let now = Instant::now();
    engine.drop_contract(ContractId(42), now);
    engine.drop_stream(StreamId(42), now);
    engine.drop_sink(SinkId(42), now);
    engine.sink_send(SinkId(42), state(1, "x"), now);
    assert_eq!(engine.poll_sink_params(SinkId(42), &noop()), SinkPoll::Closed);
    assert!(engine.take_handle(ContractId(42), &noop()).is_none());
    assert!(engine.is_empty());
}

#[test]
fn a_queue_of_dead_handles_is_swept() {
    let mut engine = Harness::new();
    let now = Instant::now();
    let tag_expose = engine.create_tag_expose_contract(TagDescriptor::from("t"), 1, now);
    for round in 0..10 {
        let observers: Vec<ContractId> =
            (0..100).map(|i| engine.create_object_observe_contract(desc(&format!("{round}-{i}")), now)).collect();
        for observer in observers {
            engine.drop_contract(observer, now);
        }
    }
    let queued = engine.contracts.get(&tag_expose).map(|c| c.queue.len());
    assert!(queued.is_some_and(|len| len < 64), "queue kept {queued:?} dead entries");
    assert_eq!(engine.counts().objects, 0);
}

/// A router holds one record per object: it must stay small (docs/performance.md, S9 a).
#[test]
fn an_object_record_stays_compact() {
    let size = std::mem::size_of::<records::ObjectRec>();
    assert!(size <= 192, "ObjectRec grew to {size} bytes");
}

/// Balancing checks each object about once per interval, but at most 100,000 objects a second:
/// with 200,000 objects and a 1 s interval, each is checked every 2 s on average, so after the
/// first pass (new objects are due at once) nothing is due for at least a second.
#[test]
fn balancing_checks_at_most_100k_objects_a_second() {
    let now = Instant::now();
    let rebalance_next = |objects: usize| {
        let mut engine = Engine::new();
        for i in 0..objects {
            engine.create_object_observe_contract(ObjectDescriptor::from((["t"], serde_json::json!(i))), now);
        }
        while engine.poll_event().is_some() {}
        let mut random = || 0.0;
        engine.rebalance(now, Duration::from_secs(1), 0.1, &mut random);
        engine.rebalance(now + Duration::from_millis(100), Duration::from_secs(1), 0.1, &mut random)
    };
    // Few objects: the next check is half an interval after the first (random() = 0).
    assert!(rebalance_next(10) < now + Duration::from_millis(600));
    assert!(rebalance_next(200_000) >= now + Duration::from_millis(990));
}

/// A check that finds nothing to move parks its object (out of the schedule), and any refresh of
/// the object puts it back: an idle exchange of many settled objects does no balancing work, and
/// a change (here the local exposer going away) still gets a check.
#[test]
fn balancing_parks_settled_objects_until_they_change() {
    let now = Instant::now();
    let mut engine = Engine::new();
    let object = desc("a");
    let _observe = engine.create_object_observe_contract(object.clone(), now);
    let expose = engine.create_object_expose_contract(object.clone(), 1, now);
    while engine.poll_event().is_some() {}
    let mut random = || 0.5;
    let second = Duration::from_secs(1);
    engine.rebalance(now, second, 0.1, &mut random);
    assert!(engine.rebalance_queue.next_due().is_none(), "exposed here: parked after its first check");
    let id = engine.object_index.get(&object).copied().expect("the object exists");
    assert!(engine.objects.get(&id).is_some_and(|rec| rec.balance_parked));
    assert_eq!(
        engine.rebalance(now + second, second, 0.1, &mut random),
        now + 2 * second,
        "nothing due: ask again in an interval"
    );

    // Unassigned once its exposer is gone: back in the schedule, due within an interval.
    engine.drop_contract(expose, now + second);
    assert!(engine.objects.get(&id).is_some_and(|rec| !rec.balance_parked));
    engine.rebalance(now + 2 * second, second, 0.1, &mut random);
    let due = engine.rebalance_queue.next_due().expect("needed and unassigned: checked again");
    assert!(due <= now + 4 * second, "due at {:?}", due - now);
}
