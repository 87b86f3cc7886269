//! Load balancing, load limits and leader election through real routers (SEMANTICS.md §12.2
//! 14-17, 23, 24). Balancing happens in the router's periodic pass (about one object per
//! second per check), so these scenarios take a few seconds each.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Client, Network, Topology, eventually, next, until};
use hakuban_tokio::snapshot::AssignedExposerSnapshot;
use hakuban_tokio::{JsonDeserializeState, JsonSerializeState, ObjectState};

/// Whether this client's exchange has elected one of its own contracts for some object.
fn exposes_anything(client: &Client) -> bool {
    client.exchange.snapshot().objects.iter().any(|o| {
        matches!(
            o.assigned_exposer,
            Some(AssignedExposerSnapshot::TagExposeContract(_) | AssignedExposerSnapshot::ObjectExposeContract(_))
        )
    })
}

/// Objects (numbered ones) this client's exchange has elected one of its own contracts for.
fn exposing(client: &Client) -> Vec<u64> {
    let snapshot = client.exchange.snapshot();
    let mut held: Vec<u64> = snapshot
        .objects
        .iter()
        .filter(|o| {
            matches!(
                o.assigned_exposer,
                Some(AssignedExposerSnapshot::TagExposeContract(_) | AssignedExposerSnapshot::ObjectExposeContract(_))
            )
        })
        .filter_map(|o| o.descriptor.json().as_u64())
        .collect();
    held.sort_unstable();
    held
}

fn observe_ten(client: &Client) -> Vec<hakuban_tokio::ObjectObserveContract> {
    (0..10u64).map(|i| client.exchange.object_observe_contract((["x"], i)).build()).collect()
}

/// §12.2 14: a new exposer takes half of the objects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_balancing_on_new_exposer_appearance() {
    let network = Network::start(Topology::SingleRouter, 3);
    let (regu, riko, nanachi) =
        (Client::connect(network.url(1)), Client::connect(network.url(2)), Client::connect(network.url(3)));
    let _observers = observe_ten(&regu);
    let _riko_expose = riko.exchange.tag_expose_contract("x").build();
    eventually(|| exposing(&riko).len() == 10).await;
    let _nanachi_expose = nanachi.exchange.tag_expose_contract("x").build();
    eventually(|| exposing(&riko).len() == 5 && exposing(&nanachi).len() == 5).await;
    network.exit();
}

/// §12.2 15: after losing its objects, an exposer gets new ones until loads are within the
/// threshold (0 vs 5 ends at 2 vs 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_load_balancing() {
    let network = Network::start(Topology::SingleRouter, 3);
    let (regu, riko, nanachi) =
        (Client::connect(network.url(1)), Client::connect(network.url(2)), Client::connect(network.url(3)));
    let _riko_expose = riko.exchange.tag_expose_contract("x").build();
    let _nanachi_expose = nanachi.exchange.tag_expose_contract("x").build();
    let mut observers = observe_ten(&regu);
    eventually(|| exposing(&riko).len() == 5 && exposing(&nanachi).len() == 5).await;
    let dropped = exposing(&riko);
    observers.retain(|o| !dropped.contains(&o.descriptor().json().as_u64().unwrap()));
    eventually(|| exposing(&riko).len() == 2 && exposing(&nanachi).len() == 3).await;
    assert!(exposing(&riko).iter().all(|o| !dropped.contains(o)), "riko got objects it did not hold before");
    network.exit();
}

/// §12.2 16: a child with `load-limit=3` gets three objects and no more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_limit_simple() {
    let network = Network::start(Topology::SingleRouter, 2);
    let regu = Client::connect(network.url(1));
    let riko = Client::connect(&format!("{}#load-limit=3", network.url(2)));
    let _riko_expose = riko.exchange.tag_expose_contract("x").build();
    let _observers = observe_ten(&regu);
    eventually(|| exposing(&riko).len() == 3).await;
    // The limit holds through several balancing passes.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(exposing(&riko).len(), 3);
    network.exit();
}

/// §12.2 17: `load-limit=2:0-2:5-5:7`: nothing for two seconds, then a ramp up to seven.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_limit_gradual() {
    let network = Network::start(Topology::SingleRouter, 2);
    let regu = Client::connect(network.url(1));
    let riko = Client::connect(&format!("{}#load-limit=2:0-2:5-5:7", network.url(2)));
    let _riko_expose = riko.exchange.tag_expose_contract("x").build();
    eventually(|| riko.connector.as_ref().unwrap().snapshot().upstream_connection.is_some()).await;
    let _observers = observe_ten(&regu);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(exposing(&riko).len(), 0, "the limit is 0 for the first two seconds");
    eventually(|| exposing(&riko).len() >= 5).await;
    eventually(|| exposing(&riko).len() == 7).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(exposing(&riko).len(), 7, "never more than the final limit");
    network.exit();
}

/// §12.2 23 (object contracts) and 24 (tag contracts): two clients both observe and expose; the
/// first keeps the role when the second arrives; the second takes over when the first leaves.
async fn leader_election(topology: Topology, by_tag: bool) {
    let network = Network::start(topology, 2);
    let (mut first, second) = (Client::connect(network.url(1)), Client::connect(network.url(2)));
    let descriptor = (["leader"], "the-object");
    let expose = |client: &Client| -> Box<dyn futures::Stream<Item = hakuban_tokio::ObjectStateSink> + Send + Unpin> {
        if by_tag {
            Box::new(client.exchange.tag_expose_contract("leader").build())
        } else {
            Box::new(client.exchange.object_expose_contract(descriptor).build())
        }
    };
    let first_observe = first.exchange.object_observe_contract(descriptor).build();
    let mut first_expose = expose(&first);
    let mut first_sink = next(&mut first_expose).await.unwrap();
    assert!(next(&mut first_sink).await.is_some());

    // The incumbent is the one the network knows first: wait until the root has its declaration.
    let probe = Client::connect(&network.routers[0].url);
    let mut monitor = probe.exchange.object_observe_contract((["monitor"], "exchange")).build();
    let mut monitor = next(&mut monitor).await.unwrap();
    until(&mut monitor, |state| {
        let snapshot = state.clone().json_deserialize::<hakuban_tokio::ExchangeSnapshot>().data;
        snapshot.objects.iter().any(|o| o.descriptor == descriptor.into() && !o.downstream_links.is_empty())
            || (by_tag && snapshot.tags.iter().any(|t| t.cumulative_tag_exposer_capacity > 0))
    })
    .await;
    let mut second_observe = second.exchange.object_observe_contract(descriptor).build();
    let mut second_expose = expose(&second);
    let mut second_stream = next(&mut second_observe).await.unwrap();
    // The incumbent keeps producing and the newcomer receives its states.
    first_sink.publish(ObjectState::new("from the first").with_version([1]).json_serialize());
    until(&mut second_stream, |s| s.version == vec![1]).await;
    eventually(|| !exposes_anything(&second)).await;
    assert!(exposes_anything(&first), "the incumbent is still the exposer");

    // The first one leaves: the second takes over.
    drop((first_sink, first_expose, first_observe));
    first.disconnect();
    let mut taken_over = until(&mut second_expose, |_| true).await;
    assert!(next(&mut taken_over).await.is_some());
    network.exit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_election_pattern_object_object() {
    leader_election(Topology::SingleRouter, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_election_pattern_object_object_star() {
    leader_election(Topology::StarOfRouters, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_election_pattern_tag_object() {
    leader_election(Topology::SingleRouter, true).await;
}
