//! The routed scenarios of SEMANTICS.md §12.2 (all but load balancing and leader election),
//! each over the three topologies, through real router processes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{Client, Network, Topology, next, until};
use futures::{SinkExt, StreamExt};
use hakuban_tokio::{DataSynchronized, JsonDeserializeError, JsonDeserializeState, JsonSerializeState, ObjectState};
use serde_json::json;

macro_rules! on_every_topology {
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                use super::*;
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn single_router() { super::$scenario(Topology::SingleRouter).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn two_stacked_routers() { super::$scenario(Topology::TwoStackedRouters).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn star_of_routers() { super::$scenario(Topology::StarOfRouters).await }
            }
        )*
    };
}

on_every_topology!(
    object_object_desynchronize_on_sink_drop,
    data_format_change_gets_propagated,
    object_object_terminate_by_object_observer_drop,
    tag_object_terminate_by_tag_observer_drop,
    object_object_termination,
    object_object_reassignment_on_reobserve,
    object_tag_reassignment_on_reexpose,
    object_tag_reassignment_on_unexpose,
    tag_delivery,
    tag_object_delivery,
    known_state_gets_delivered_even_if_exposer_doesnt_exist,
    tag_delivery_with_reconnection,
    tag_delivery_with_reconnection_and_a_new_exchange,
    tag_delivery_with_late_connection,
    drop_data_when_object_is_no_more_data_needed,
);

fn state(data: &str, version: i64) -> ObjectState<hakuban_tokio::DataBytes> {
    ObjectState::new(data).with_version([version]).json_serialize()
}

fn text(state: &ObjectState<hakuban_tokio::DataBytes>) -> String {
    state.clone().json_deserialize::<String>().data
}

/// §12.2 1.
async fn object_object_desynchronize_on_sink_drop(topology: Topology) {
    let network = Network::start(topology, 2);
    let (a, b) = (Client::connect(network.url(1)), Client::connect(network.url(2)));
    let mut observe = a.exchange.object_observe_contract((["t"], "xxx")).build();
    let mut expose = b.exchange.object_expose_contract((["t"], "xxx")).build();
    let mut sink = next(&mut expose).await.unwrap();
    sink.send(state("xxx", 1)).await.unwrap();
    let mut stream = next(&mut observe).await.unwrap();
    until(&mut stream, |s| s.version == vec![1]).await;
    sink.send(state("xxxy", 2)).await.unwrap();
    let second = until(&mut stream, |s| s.version == vec![2]).await;
    assert_eq!((text(&second), second.synchronized), ("xxxy".to_string(), DataSynchronized::Now));
    drop(sink);
    let stale = until(&mut stream, |s| !s.synchronized.is_now()).await;
    assert_eq!(stale.version, vec![2]);
    // Still observed: the exposer is offered a fresh sink, which ends once the observer leaves.
    let mut fresh = next(&mut expose).await.unwrap();
    drop((stream, observe));
    while next(&mut fresh).await.is_some() {}
    network.exit();
}

/// §12.2 2.
async fn data_format_change_gets_propagated(topology: Topology) {
    let network = Network::start(topology, 2);
    let (a, b) = (Client::connect(network.url(1)), Client::connect(network.url(2)));
    let mut observe = a.exchange.object_observe_contract((["t"], "xxx")).build();
    let mut expose = b.exchange.object_expose_contract((["t"], "xxx")).build();
    let mut sink = next(&mut expose).await.unwrap();
    sink.send(state("xxx", 1)).await.unwrap();
    let mut stream = next(&mut observe).await.unwrap();
    until(&mut stream, |s| s.version == vec![1]).await;
    sink.send(ObjectState::new(Arc::new(b"raw".to_vec())).with_version([2]).with_format(["abc"])).await.unwrap();
    let changed = until(&mut stream, |s| s.version == vec![2]).await;
    assert_eq!(changed.format, vec!["abc".to_string()]);
    assert!(matches!(changed.try_json_deserialize::<String>(), Err(JsonDeserializeError::WrongFormat(_))));
    network.exit();
}

/// §12.2 3.
async fn object_object_terminate_by_object_observer_drop(topology: Topology) {
    let network = Network::start(topology, 2);
    let (a, b) = (Client::connect(network.url(1)), Client::connect(network.url(2)));
    let observe = a.exchange.object_observe_contract((["t"], "xxx")).build();
    let mut expose = b.exchange.object_expose_contract((["t"], "xxx")).build();
    let mut sink = next(&mut expose).await.unwrap();
    assert!(next(&mut sink).await.is_some());
    drop(observe);
    assert!(next(&mut sink).await.is_none(), "the sink is revoked once nobody observes");
    network.exit();
}

/// §12.2 4.
async fn tag_object_terminate_by_tag_observer_drop(topology: Topology) {
    let network = Network::start(topology, 2);
    let (a, b) = (Client::connect(network.url(1)), Client::connect(network.url(2)));
    let observe = a.exchange.tag_observe_contract(json!({})).build();
    let mut expose = b.exchange.object_expose_contract((vec![json!({})], json!({}))).build();
    let mut sink = next(&mut expose).await.unwrap();
    assert!(next(&mut sink).await.is_some());
    drop(observe);
    assert!(next(&mut sink).await.is_none());
    network.exit();
}

/// §12.2 5.
async fn object_object_termination(topology: Topology) {
    let network = Network::start(topology, 2);
    let (a, b) = (Client::connect(network.url(1)), Client::connect(network.url(2)));
    let mut observe = a.exchange.object_observe_contract((["t"], "xxx")).build();
    let mut expose = b.exchange.object_expose_contract((["t"], "xxx")).build();
    let mut sink = next(&mut expose).await.unwrap();
    sink.send(state("xxx", 1)).await.unwrap();
    let mut stream = next(&mut observe).await.unwrap();
    assert_eq!(text(&until(&mut stream, |s| s.version == vec![1]).await), "xxx");
    drop(observe);
    assert!(next(&mut stream).await.is_none());
    drop(expose);
    assert!(next(&mut sink).await.is_none());
    network.exit();
}

/// §12.2 6.
async fn object_object_reassignment_on_reobserve(topology: Topology) {
    let network = Network::start(topology, 2);
    let (a, b) = (Client::connect(network.url(1)), Client::connect(network.url(2)));
    let mut observe = a.exchange.object_observe_contract((["t"], "xxx")).build();
    let mut expose = b.exchange.object_expose_contract((["t"], "xxx")).build();
    let mut sink = next(&mut expose).await.unwrap();
    sink.send(state("xxx", 1)).await.unwrap();
    let mut stream = next(&mut observe).await.unwrap();
    until(&mut stream, |s| s.version == vec![1]).await;
    drop((stream, observe));
    while next(&mut sink).await.is_some() {}
    let mut observe = a.exchange.object_observe_contract((["t"], "xxx")).build();
    let mut sink = next(&mut expose).await.unwrap();
    assert!(next(&mut sink).await.is_some());
    sink.send(state("xxxy", 2)).await.unwrap();
    let mut stream = next(&mut observe).await.unwrap();
    assert_eq!(text(&until(&mut stream, |s| s.version == vec![2]).await), "xxxy");
    network.exit();
}

/// §12.2 7.
async fn object_tag_reassignment_on_reexpose(topology: Topology) {
    let network = Network::start(topology, 2);
    let (a, b) = (Client::connect(network.url(1)), Client::connect(network.url(2)));
    let mut observe = a.exchange.object_observe_contract((["t"], "xxx")).build();
    let mut expose = b.exchange.tag_expose_contract("t").build();
    let mut sink = next(&mut expose).await.unwrap();
    sink.send(state("xxx", 1)).await.unwrap();
    let mut stream = next(&mut observe).await.unwrap();
    until(&mut stream, |s| s.version == vec![1]).await;
    drop((sink, expose));
    let mut expose = b.exchange.tag_expose_contract("t").build();
    let mut sink = next(&mut expose).await.unwrap();
    assert!(next(&mut sink).await.is_some());
    sink.send(state("xxxy", 2)).await.unwrap();
    assert_eq!(text(&until(&mut stream, |s| s.version == vec![2]).await), "xxxy");
    network.exit();
}

/// §12.2 8: a second tag exposer takes over when the first one leaves.
async fn object_tag_reassignment_on_unexpose(topology: Topology) {
    let network = Network::start(topology, 3);
    let (nanachi, regu, riko) =
        (Client::connect(network.url(1)), Client::connect(network.url(2)), Client::connect(network.url(3)));
    let mut observe = nanachi.exchange.object_observe_contract((["t"], "xxx")).build();
    let mut regu_expose = regu.exchange.tag_expose_contract("t").build();
    let mut regu_sink = next(&mut regu_expose).await.unwrap();
    regu_sink.send(state("xxx", 1)).await.unwrap();
    let mut stream = next(&mut observe).await.unwrap();
    until(&mut stream, |s| s.version == vec![1]).await;
    let mut riko_expose = riko.exchange.tag_expose_contract("t").build();
    // Riko's declaration must reach the root before regu leaves, or nobody is left to elect.
    wait_for_tag_capacity(&network, 2).await;
    drop((regu_sink, regu_expose));
    let mut riko_sink = next(&mut riko_expose).await.unwrap();
    riko_sink.send(state("xxxy", 2)).await.unwrap();
    assert_eq!(text(&until(&mut stream, |s| s.version == vec![2]).await), "xxxy");
    network.exit();
}

/// Waits until the root router sees tag "t" exposed with at least `capacity`, through its
/// monitor object.
async fn wait_for_tag_capacity(network: &Network, capacity: u64) {
    let probe = Client::connect(&network.routers[0].url);
    let mut monitor = probe.exchange.object_observe_contract((["monitor"], "exchange")).build();
    let mut stream = next(&mut monitor).await.unwrap();
    until(&mut stream, |s| {
        let snapshot: hakuban_tokio::ExchangeSnapshot = s.clone().json_deserialize().data;
        snapshot.tags.iter().any(|t| t.descriptor == "t".into() && t.cumulative_tag_exposer_capacity >= capacity)
    })
    .await;
}

/// §12.2 9.
async fn tag_delivery(topology: Topology) {
    let network = Network::start(topology, 2);
    let (a, b) = (Client::connect(network.url(1)), Client::connect(network.url(2)));
    let mut observe = a.exchange.tag_observe_contract(json!({})).build();
    let mut expose = b.exchange.object_expose_contract((vec![json!({})], json!({}))).build();
    let mut sink = next(&mut expose).await.unwrap();
    sink.send(state("xxx", 1)).await.unwrap();
    let mut stream = next(&mut observe).await.unwrap();
    until(&mut stream, |s| s.version == vec![1]).await;
    sink.send(state("xxxy", 2)).await.unwrap();
    until(&mut stream, |s| s.version == vec![2]).await;
    drop((sink, expose));
    let ended = tokio::time::timeout(common::PATIENCE, async { while stream.next().await.is_some() {} }).await;
    assert!(ended.is_ok(), "the tag observer's stream ends once the exposer is gone");
    network.exit();
}

/// §12.2 10.
async fn tag_object_delivery(topology: Topology) {
    let network = Network::start(topology, 2);
    let (a, b) = (Client::connect(network.url(1)), Client::connect(network.url(2)));
    let mut observe = a.exchange.object_observe_contract((["t"], "xxx")).build();
    let mut expose = b.exchange.tag_expose_contract("t").build();
    let mut sink = next(&mut expose).await.unwrap();
    sink.send(state("xxx", 1)).await.unwrap();
    let mut stream = next(&mut observe).await.unwrap();
    until(&mut stream, |s| s.version == vec![1]).await;
    sink.send(state("xxxy", 2)).await.unwrap();
    assert_eq!(text(&until(&mut stream, |s| s.version == vec![2]).await), "xxxy");
    network.exit();
}

/// §12.2 11.
async fn known_state_gets_delivered_even_if_exposer_doesnt_exist(topology: Topology) {
    let network = Network::start(topology, 3);
    let (nanachi, regu, riko) =
        (Client::connect(network.url(1)), Client::connect(network.url(2)), Client::connect(network.url(3)));
    let mut regu_observe = regu.exchange.object_observe_contract((["t"], "xxx")).build();
    let mut expose = nanachi.exchange.object_expose_contract((["t"], "xxx")).build();
    let mut sink = next(&mut expose).await.unwrap();
    sink.send(state("xxx", 1)).await.unwrap();
    let mut regu_stream = next(&mut regu_observe).await.unwrap();
    assert!(until(&mut regu_stream, |s| s.version == vec![1]).await.synchronized.is_now());
    drop(sink);
    until(&mut regu_stream, |s| !s.synchronized.is_now()).await;
    let mut riko_observe = riko.exchange.object_observe_contract((["t"], "xxx")).build();
    let mut riko_stream = next(&mut riko_observe).await.unwrap();
    let known = next(&mut riko_stream).await.unwrap();
    assert_eq!((text(&known), known.version.clone()), ("xxx".to_string(), vec![1]));
    assert!(!known.synchronized.is_now());
    network.exit();
}

/// §12.2 21, keeping the observer's exchange.
async fn tag_delivery_with_reconnection(topology: Topology) {
    reconnection_scenario(topology, false).await;
}

/// §12.2 21, with a fresh exchange for the reconnected observer.
async fn tag_delivery_with_reconnection_and_a_new_exchange(topology: Topology) {
    reconnection_scenario(topology, true).await;
}

async fn reconnection_scenario(topology: Topology, new_exchange: bool) {
    let network = Network::start(topology, 2);
    let (mut a, b) = (Client::connect(network.url(1)), Client::connect(network.url(2)));
    let mut observe = a.exchange.tag_observe_contract("t").build();
    let mut expose = b.exchange.object_expose_contract((["t"], "xxx")).build();
    let mut sink = next(&mut expose).await.unwrap();
    sink.send(state("xxx", 1)).await.unwrap();
    sink.send(state("xxxy", 2)).await.unwrap();
    let mut stream = next(&mut observe).await.unwrap();
    until(&mut stream, |s| s.version == vec![2]).await;
    drop((stream, observe));
    if new_exchange {
        a = Client::connect(network.url(1));
    } else {
        a.reconnect(network.url(1));
    }
    let mut observe = a.exchange.tag_observe_contract("t").build();
    let mut stream = next(&mut observe).await.unwrap();
    let first = next_following(&mut observe, &mut stream).await;
    assert_eq!((text(&first), first.version.clone()), ("xxxy".to_string(), vec![2]));
    // The exposer keeps using the sink it holds, even if it was revoked in between.
    sink.send(state("xxxz", 3)).await.unwrap();
    // While the tree settles after the reconnection the object may briefly stop being live at
    // the observer (its tag stream then ends and a new one is emitted): follow the contract.
    let third = loop {
        let state = next_following(&mut observe, &mut stream).await;
        if state.version == vec![3] {
            break state;
        }
    };
    assert_eq!(text(&third), "xxxz");
    network.exit();
}

/// The next state of a tag observer's object, following the contract to a new stream if the
/// current one ends meanwhile (the object may briefly stop being live while the tree settles).
async fn next_following(
    observe: &mut hakuban_tokio::TagObserveContract,
    stream: &mut hakuban_tokio::ObjectStateStream,
) -> ObjectState<hakuban_tokio::DataBytes> {
    loop {
        match next(stream).await {
            Some(state) => return state,
            None => *stream = next(observe).await.unwrap(),
        }
    }
}

/// §12.2 22: local observers and exposers set up before connecting find each other afterwards.
async fn tag_delivery_with_late_connection(topology: Topology) {
    let network = Network::start(topology, 2);
    let (one, two) = (hakuban_tokio::Exchange::new(), hakuban_tokio::Exchange::new());
    let mut observe_one = one.tag_observe_contract("t").build();
    let mut observe_two = two.tag_observe_contract("t").build();
    let mut expose_one = one.object_expose_contract((["t"], "1")).build();
    let mut expose_two = two.object_expose_contract((["t"], "2")).build();
    let mut own_one = next(&mut observe_one).await.unwrap();
    let mut sink_one = next(&mut expose_one).await.unwrap();
    sink_one.send(state("1", 1)).await.unwrap();
    let mut sink_two = next(&mut expose_two).await.unwrap();
    sink_two.send(state("2", 1)).await.unwrap();
    assert_eq!(text(&next(&mut own_one).await.unwrap()), "1");
    let _c1 = hakuban_tokio::WebsocketConnector::new(one.clone(), network.url(1)).unwrap();
    let _c2 = hakuban_tokio::WebsocketConnector::new(two.clone(), network.url(2)).unwrap();
    let mut other = until(&mut observe_one, |s| s.descriptor().json() == &json!("2")).await;
    assert_eq!(text(&next(&mut other).await.unwrap()), "2");
    let mut other = until(&mut observe_two, |s| s.descriptor().json() == &json!("1")).await;
    assert_eq!(text(&next(&mut other).await.unwrap()), "1");
    network.exit();
}

/// §12.2 25: no stale state anywhere on the path once nobody needed the object.
async fn drop_data_when_object_is_no_more_data_needed(topology: Topology) {
    let network = Network::start(topology, 2);
    let (a, b) = (Client::connect(network.url(1)), Client::connect(network.url(2)));
    let mut observe = a.exchange.object_observe_contract((["t"], "xxx")).build();
    let mut expose = b.exchange.object_expose_contract((["t"], "xxx")).build();
    let mut sink = next(&mut expose).await.unwrap();
    sink.send(state("xxx", 1)).await.unwrap();
    let mut stream = next(&mut observe).await.unwrap();
    until(&mut stream, |s| s.version == vec![1]).await;
    drop(sink);
    until(&mut stream, |s| !s.synchronized.is_now()).await;
    drop((stream, observe));
    // Wait until both ends know nobody observes: the exposer's offered sink is revoked and the
    // observer's exchange has let go of the object (the reference test pauses 400 ms instead).
    common::eventually(|| b.exchange.snapshot().objects.iter().all(|o| !o.data_needed)).await;
    common::eventually(|| a.exchange.counts().objects == 0).await;
    let mut observe = a.exchange.object_observe_contract((["t"], "xxx")).build();
    let mut stream = next(&mut observe).await.unwrap();
    let mut sink = next(&mut expose).await.unwrap();
    sink.send(state("xxxy", 2)).await.unwrap();
    let first = next(&mut stream).await.unwrap();
    assert_eq!((first.version.clone(), first.synchronized), (vec![2], DataSynchronized::Now), "no stale v1");
    network.exit();
}
