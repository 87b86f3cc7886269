//! Exchanges joined by in-memory links, pumped by hand: declarations, election across the tree,
//! state channels, resynchronisation after a reconnection, protocol violations.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::StreamExt;
use futures::task::noop_waker;
use hakuban_core::{
    DataSynchronized, Exchange, Link, LinkConfig, LinkRole, ObjectState, ObjectStateSink, ObjectStateStream,
};

/// A child's upstream link and its parent's downstream link for it.
struct Wire {
    up: Link,
    down: Link,
}

fn connect(child: &Exchange, parent: &Exchange) -> Wire {
    let config = |name: &str| LinkConfig { name: name.to_string(), ..LinkConfig::default() };
    Wire {
        up: child.open_link(LinkRole::Upstream, config("child")).unwrap(),
        down: parent.open_link(LinkRole::Downstream, config("parent")).unwrap(),
    }
}

/// Moves messages both ways until both links are quiet; bounded, so a livelock fails.
fn pump(wires: &mut [&mut Wire]) {
    pump_counting(wires);
}

fn poll_next<S: futures::Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    let waker = noop_waker();
    match stream.poll_next_unpin(&mut Context::from_waker(&waker)) {
        Poll::Ready(item) => item,
        Poll::Pending => None,
    }
}

fn latest(stream: &mut ObjectStateStream) -> Option<ObjectState<hakuban_core::DataBytes>> {
    let mut last = None;
    while let Some(state) = poll_next(stream) {
        last = Some(state);
    }
    last
}

fn publish(sink: &ObjectStateSink, version: i64, data: &str) {
    sink.publish(ObjectState::new(Arc::new(data.as_bytes().to_vec())).with_version([version]).with_format(["raw"]));
}

#[test]
fn states_flow_from_one_child_to_another_through_the_parent() {
    let (router, a, b) = (Exchange::new(), Exchange::new(), Exchange::new());
    let (mut wa, mut wb) = (connect(&a, &router), connect(&b, &router));
    let mut observe = a.object_observe_contract((["t"], "xxx")).build();
    let mut expose = b.object_expose_contract((["t"], "xxx")).build();
    pump(&mut [&mut wa, &mut wb]);
    let sink = poll_next(&mut expose).expect("b is elected once a observes");
    publish(&sink, 1, "first");
    pump(&mut [&mut wa, &mut wb]);
    let mut stream = poll_next(&mut observe).unwrap();
    let state = latest(&mut stream).expect("a receives b's state");
    assert_eq!(
        (state.version.clone(), state.data.as_slice(), state.format.clone()),
        (vec![1], &b"first"[..], vec!["raw".to_string()])
    );
    assert_eq!(state.synchronized, DataSynchronized::Now);
    publish(&sink, 2, "firsu");
    pump(&mut [&mut wa, &mut wb]);
    assert_eq!(latest(&mut stream).unwrap().data.as_slice(), b"firsu");

    // The exposer's sink goes: a sees the same data, stale.
    drop(sink);
    pump(&mut [&mut wa, &mut wb]);
    let stale = latest(&mut stream).unwrap();
    assert_eq!(stale.version, vec![2]);
    assert!(!stale.synchronized.is_now());
}

#[test]
fn tag_observer_sees_objects_exposed_elsewhere_and_loses_them_on_disconnect() {
    let (router, a, b) = (Exchange::new(), Exchange::new(), Exchange::new());
    let (mut wa, mut wb) = (connect(&a, &router), connect(&b, &router));
    let mut tag_observe = a.tag_observe_contract("t").build();
    let mut expose = b.object_expose_contract((["t"], "xxx")).build();
    pump(&mut [&mut wa, &mut wb]);
    let sink = poll_next(&mut expose).expect("b is elected for a's tag observer");
    publish(&sink, 1, "x");
    pump(&mut [&mut wa, &mut wb]);
    let mut stream = poll_next(&mut tag_observe).expect("a's tag observer gets the object");
    assert_eq!(latest(&mut stream).unwrap().version, vec![1]);

    drop(wa);
    let ended = stream.poll_next_unpin(&mut Context::from_waker(&noop_waker()));
    assert!(matches!(ended, Poll::Ready(None)), "the object is no longer live at a");
    pump(&mut [&mut wb]);
    let mut sink = sink;
    let params = sink.poll_next_unpin(&mut Context::from_waker(&noop_waker()));
    assert!(matches!(params, Poll::Ready(None)), "b's sink is revoked when nobody observes");
    drop(sink);
    drop(tag_observe);
    drop(expose);
    pump(&mut [&mut wb]);
    assert_eq!(router.counts().objects, 0);
}

#[test]
fn a_reconnected_observer_gets_the_latest_state_first() {
    let (router, a, b) = (Exchange::new(), Exchange::new(), Exchange::new());
    let (mut wa, mut wb) = (connect(&a, &router), connect(&b, &router));
    let mut observe = a.object_observe_contract((["t"], "xxx")).build();
    let mut expose = b.object_expose_contract((["t"], "xxx")).build();
    pump(&mut [&mut wa, &mut wb]);
    let sink = poll_next(&mut expose).unwrap();
    publish(&sink, 1, "v1");
    publish(&sink, 2, "v2");
    pump(&mut [&mut wa, &mut wb]);
    let mut stream = poll_next(&mut observe).unwrap();
    assert_eq!(latest(&mut stream).unwrap().version, vec![2]);

    drop(wa);
    pump(&mut [&mut wb]);
    let stale = latest(&mut stream).unwrap();
    assert!(!stale.synchronized.is_now(), "disconnected: the state is stale");

    let mut wa = connect(&a, &router);
    pump(&mut [&mut wa, &mut wb]);
    let mut sink = sink;
    if let Some(fresh) = poll_next(&mut expose) {
        sink = fresh;
    }
    publish(&sink, 3, "v3");
    pump(&mut [&mut wa, &mut wb]);
    let state = latest(&mut stream).unwrap();
    assert_eq!((state.version.clone(), state.synchronized), (vec![3], DataSynchronized::Now));
}

#[test]
fn capacity_aggregates_up_the_tree() {
    let (router, a, b) = (Exchange::new(), Exchange::new(), Exchange::new());
    let (mut wa, mut wb) = (connect(&a, &router), connect(&b, &router));
    let capacity =
        |router: &Exchange| router.snapshot().objects.first().map_or(0, |o| o.cumulative_object_exposer_capacity);
    let first = a.object_expose_contract((["tag"], "object")).build();
    pump(&mut [&mut wa, &mut wb]);
    assert_eq!(capacity(&router), 1);
    let second = b.object_expose_contract((["tag"], "object")).build();
    pump(&mut [&mut wa, &mut wb]);
    assert_eq!(capacity(&router), 2);
    let third = b.object_expose_contract((["tag"], "object")).with_capacity(1).build();
    pump(&mut [&mut wa, &mut wb]);
    assert_eq!(capacity(&router), 3);
    drop(first);
    pump(&mut [&mut wa, &mut wb]);
    assert_eq!(capacity(&router), 2);
    drop(wb);
    pump(&mut [&mut wa]);
    assert_eq!(router.counts().objects, 0, "nothing declares the object any more");
    drop((second, third));
}

#[test]
fn a_second_upstream_is_refused() {
    let exchange = Exchange::new();
    let _first = exchange.open_link(LinkRole::Upstream, LinkConfig::default()).unwrap();
    assert!(exchange.open_link(LinkRole::Upstream, LinkConfig::default()).is_err());
    assert!(exchange.reserve_upstream().is_err());
}

#[test]
fn garbage_closes_only_the_link_that_sent_it() {
    let (router, a, b) = (Exchange::new(), Exchange::new(), Exchange::new());
    let (mut wa, mut wb) = (connect(&a, &router), connect(&b, &router));
    let mut observe = a.object_observe_contract((["t"], "xxx")).build();
    let mut expose = b.object_expose_contract((["t"], "xxx")).build();
    pump(&mut [&mut wa, &mut wb]);
    let sink = poll_next(&mut expose).unwrap();

    let mut rogue = router.open_link(LinkRole::Downstream, LinkConfig::default()).unwrap();
    let error = rogue.receive(&[0xff, 0x00, 0x13, 0x37], std::time::Instant::now());
    assert!(
        matches!(error, Err(hakuban_core::LinkError::Closed(hakuban_core::CloseReason::Malformed(_)))),
        "{error:?}"
    );
    assert!(matches!(rogue.closed_reason(), Some(hakuban_core::CloseReason::Malformed(_))));

    publish(&sink, 1, "still flowing");
    pump(&mut [&mut wa, &mut wb]);
    let mut stream = poll_next(&mut observe).unwrap();
    assert_eq!(latest(&mut stream).unwrap().data.as_slice(), b"still flowing");
}

#[test]
fn the_earliest_exposer_keeps_the_object_when_a_second_one_arrives() {
    let (router, first, second) = (Exchange::new(), Exchange::new(), Exchange::new());
    let (mut w1, mut w2) = (connect(&first, &router), connect(&second, &router));
    let _o1 = first.object_observe_contract((["t"], "x")).build();
    let mut e1 = first.object_expose_contract((["t"], "x")).build();
    pump(&mut [&mut w1, &mut w2]);
    let s1 = poll_next(&mut e1).expect("alone, the first serves itself");
    let _o2 = second.object_observe_contract((["t"], "x")).build();
    let mut e2 = second.object_expose_contract((["t"], "x")).build();
    pump(&mut [&mut w1, &mut w2]);
    publish(&s1, 1, "from the first");
    pump(&mut [&mut w1, &mut w2]);
    let exposer = |exchange: &Exchange| exchange.snapshot().objects[0].assigned_exposer.clone();
    assert!(
        matches!(exposer(&router), Some(hakuban_core::snapshot::AssignedExposerSnapshot::DownstreamConnection(0))),
        "{:?}",
        exposer(&router)
    );
    assert!(matches!(exposer(&second), Some(hakuban_core::snapshot::AssignedExposerSnapshot::UpstreamConnection(_))));
    let fresh = poll_next(&mut e2);
    assert!(fresh.is_none(), "the newcomer is not elected");
}

/// Like [`pump`], returning the bytes moved.
fn pump_counting(wires: &mut [&mut Wire]) -> usize {
    let now = std::time::Instant::now();
    let mut bytes = 0;
    for _ in 0..1000 {
        let mut moved = false;
        for wire in wires.iter_mut() {
            while let Some(message) = wire.up.poll_transmit(now) {
                moved = true;
                bytes += message.len();
                let _ = wire.down.receive(&message, now);
            }
            while let Some(message) = wire.down.poll_transmit(now) {
                moved = true;
                bytes += message.len();
                let _ = wire.up.receive(&message, now);
            }
        }
        if !moved {
            return bytes;
        }
    }
    panic!("links never went quiet");
}

#[test]
fn large_documents_travel_compressed_then_as_small_deltas() {
    let (router, a, b) = (Exchange::new(), Exchange::new(), Exchange::new());
    let (mut wa, mut wb) = (connect(&a, &router), connect(&b, &router));
    let mut observe = a.object_observe_contract((["t"], "doc")).build();
    let mut expose = b.object_expose_contract((["t"], "doc")).build();
    pump(&mut [&mut wa, &mut wb]);
    let sink = poll_next(&mut expose).unwrap();
    let mut stream = poll_next(&mut observe).unwrap();
    // As in benchmark S5: each update increments one record's value in a ~0.5 MB JSON array.
    let mut values = vec![0u32; 10_000];
    let document = |values: &[u32]| -> Vec<u8> {
        let records: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, value)| format!("{{\"id\":{i},\"name\":\"record number {i}\",\"value\":{value}}}"))
            .collect();
        format!("[{}]", records.join(",")).into_bytes()
    };
    let initial = document(&values);
    assert!(initial.len() > 400_000);
    sink.publish(ObjectState::new(Arc::new(initial.clone())).with_version([0]).with_format(["JSON"]));
    let initial_bytes = pump_counting(&mut [&mut wa, &mut wb]);
    // Each of the two hops carries the compressed document: well under a quarter of its size.
    assert!(initial_bytes / 2 < initial.len() / 4, "initial state took {initial_bytes} bytes over two hops");
    assert_eq!(latest(&mut stream).unwrap().data.as_slice(), initial.as_slice());
    for update in 1..=20u32 {
        values[(update * 397 % 10_000) as usize] += 1;
        let changed = document(&values);
        sink.publish(
            ObjectState::new(Arc::new(changed.clone())).with_version([i64::from(update)]).with_format(["JSON"]),
        );
        let bytes = pump_counting(&mut [&mut wa, &mut wb]);
        assert!(bytes < 2 * 64, "update {update} took {bytes} bytes over two hops");
        assert_eq!(latest(&mut stream).unwrap().data.as_slice(), changed.as_slice());
    }
}

/// A large state published twice (then changed in one byte) to four consumers of `router`, by
/// the router itself or by a producer connected to it (`relayed`): how many of the router's
/// encodings came from its payload cache.
fn fan_out_cache_hits(relayed: bool) -> u64 {
    let router = Exchange::new();
    let producer = if relayed { Exchange::new() } else { router.clone() };
    let consumers: Vec<Exchange> = (0..4).map(|_| Exchange::new()).collect();
    let mut wp = relayed.then(|| connect(&producer, &router));
    let mut wires: Vec<Wire> = consumers.iter().map(|c| connect(c, &router)).collect();
    let mut observes: Vec<_> = consumers.iter().map(|c| c.object_observe_contract((["t"], "big")).build()).collect();
    let mut expose = producer.object_expose_contract((["t"], "big")).build();
    let mut all: Vec<&mut Wire> = wires.iter_mut().chain(wp.as_mut()).collect();
    pump(&mut all);
    let sink = poll_next(&mut expose).unwrap();
    let big: Vec<u8> = (0..65_536u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8).collect();
    let mut changed = big.clone();
    changed[30_000] ^= 0xff;
    sink.publish(ObjectState::new(Arc::new(big)).with_version([1]));
    pump(&mut all);
    sink.publish(ObjectState::new(Arc::new(changed.clone())).with_version([2]));
    pump(&mut all);
    for observe in &mut observes {
        let mut stream = poll_next(observe).unwrap();
        assert_eq!(latest(&mut stream).unwrap().data.as_slice(), changed.as_slice());
    }
    router.payload_cache_hits()
}

#[test]
fn fan_out_of_a_large_state_the_router_makes_is_encoded_once_per_baseline() {
    // Four links, two updates: each update is encoded once and served three times from the cache.
    assert_eq!(fan_out_cache_hits(false), 6);
}

#[test]
fn fan_out_of_a_large_state_reuses_the_received_encoding() {
    // Both states are compressible: the router forwards each payload as the producer encoded it
    // (compressed, then a delta) to all four links and encodes nothing itself.
    assert_eq!(fan_out_cache_hits(true), 8);
}

/// A router connecting an observer of 10,000 objects to a tag exposer queues a declaration and
/// an assignment per object at once; they go out a part at a time, every declaration before the
/// states that use it, and every observer gets its object's state.
#[test]
fn ten_thousand_objects_declared_at_once_all_arrive() {
    const OBJECTS: usize = 10_000;
    let (router, a, b) = (Exchange::new(), Exchange::new(), Exchange::new());
    let (mut wa, mut wb) = (connect(&a, &router), connect(&b, &router));
    let mut tag_expose = b.tag_expose_contract("t").build();
    let mut observers: Vec<_> =
        (0..OBJECTS).map(|i| a.object_observe_contract((["t"], serde_json::json!({ "id": i }))).build()).collect();
    pump(&mut [&mut wa, &mut wb]);
    let mut sinks = Vec::new();
    while let Some(sink) = poll_next(&mut tag_expose) {
        let id = sink.descriptor().json()["id"].as_i64().unwrap();
        publish(&sink, id, &format!("state of {id}"));
        sinks.push(sink);
    }
    assert_eq!(sinks.len(), OBJECTS, "the exposer is assigned every object");
    pump(&mut [&mut wa, &mut wb]);
    for (i, contract) in observers.iter_mut().enumerate() {
        let mut stream = poll_next(contract).expect("a stream per observed object");
        let state = latest(&mut stream).expect("each object's state arrives");
        assert_eq!((state.version, state.data.as_slice()), (vec![i as i64], format!("state of {i}").as_bytes()));
    }
}
