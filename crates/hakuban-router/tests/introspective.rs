//! SEMANTICS.md §12.3 1-11: what the router's monitor objects and the connector's snapshot
//! show, capacity aggregation, names, and receive timeouts against keep-alives.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Client, Router, eventually, next, until};
use hakuban_tokio::{ExchangeSnapshot, JsonDeserializeState, ObjectStateStream, WebsocketListenerSnapshot};
use serde_json::json;

/// A stream of the router's `exchange` monitor object, observed through `client`.
async fn exchange_monitor(client: &Client) -> (hakuban_tokio::ObjectObserveContract, ObjectStateStream) {
    let mut contract = client.exchange.object_observe_contract((["monitor"], "exchange")).build();
    let stream = next(&mut contract).await.unwrap();
    (contract, stream)
}

async fn snapshot_until(
    stream: &mut ObjectStateStream,
    accept: impl Fn(&ExchangeSnapshot) -> bool,
) -> ExchangeSnapshot {
    let state = until(stream, |s| accept(&s.clone().json_deserialize::<ExchangeSnapshot>().data)).await;
    state.json_deserialize::<ExchangeSnapshot>().data
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_publishes_monitoring_objects() {
    let router = Router::start("name=root", &["--monitor-tag", "monitor"]);
    let client = Client::connect(&router.url);
    let (_contract, mut stream) = exchange_monitor(&client).await;
    let snapshot = next(&mut stream).await.unwrap().json_deserialize::<ExchangeSnapshot>().data;
    assert_eq!((snapshot.objects.len(), snapshot.tags.len()), (2, 1));
    router.exit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_get_propagated() {
    let router = Router::start("name=router-name-xxx", &["--monitor-tag", "monitor"]);
    let client = Client::connect(&format!("{}#name=regu", router.url));
    let connector = client.connector.as_ref().unwrap();
    eventually(|| {
        connector
            .snapshot()
            .upstream_connection
            .is_some_and(|c| c.local_name == "regu" && c.remote_name.as_deref() == Some("router-name-xxx"))
    })
    .await;
    let mut contract = client.exchange.object_observe_contract((["monitor"], "websocket-listener")).build();
    let mut stream = next(&mut contract).await.unwrap();
    until(&mut stream, |s| {
        let listener = s.clone().json_deserialize::<WebsocketListenerSnapshot>().data;
        listener.downstream_connections.iter().any(|c| c.remote_name.as_deref() == Some("regu"))
    })
    .await;
    router.exit();
}

/// §12.3 3-5: a remote pairing adds one object to the router, which goes when both sides do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_gets_dropped_when_no_more_needed() {
    let router = Router::start("name=root", &["--monitor-tag", "monitor"]);
    let (a, b, probe) = (Client::connect(&router.url), Client::connect(&router.url), Client::connect(&router.url));
    let (_contract, mut monitor) = exchange_monitor(&probe).await;
    for pairing in ["object-object", "object-tag", "tag-object"] {
        let observer: Box<dyn Send> = match pairing {
            "tag-object" => Box::new(a.exchange.tag_observe_contract("t").build()),
            _ => Box::new(a.exchange.object_observe_contract((["t"], "o")).build()),
        };
        let exposer: Box<dyn Send> = match pairing {
            "object-tag" => Box::new(b.exchange.tag_expose_contract("t").build()),
            _ => Box::new(b.exchange.object_expose_contract((["t"], "o")).build()),
        };
        snapshot_until(&mut monitor, |s| s.objects.len() == 3).await;
        drop((observer, exposer));
        snapshot_until(&mut monitor, |s| s.objects.len() == 2).await;
    }
    router.exit();
}

/// §12.3 6.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_expose_capacity_gets_propagated_upstream() {
    let router = Router::start("name=root", &["--monitor-tag", "monitor"]);
    let (a, mut b, probe) = (Client::connect(&router.url), Client::connect(&router.url), Client::connect(&router.url));
    let (_contract, mut monitor) = exchange_monitor(&probe).await;
    let capacity = |s: &ExchangeSnapshot| {
        s.objects
            .iter()
            .find(|o| o.descriptor == (["tag"], "object").into())
            .map_or(0, |o| o.cumulative_object_exposer_capacity)
    };
    let first = a.exchange.object_expose_contract((["tag"], "object")).build();
    snapshot_until(&mut monitor, |s| capacity(s) == 1).await;
    let second = b.exchange.object_expose_contract((["tag"], "object")).build();
    snapshot_until(&mut monitor, |s| capacity(s) == 2).await;
    let third = b.exchange.object_expose_contract((["tag"], "object")).build();
    snapshot_until(&mut monitor, |s| capacity(s) == 3).await;
    drop(first);
    snapshot_until(&mut monitor, |s| capacity(s) == 2).await;
    b.disconnect();
    snapshot_until(&mut monitor, |s| capacity(s) == 0).await;
    drop((second, third));
    router.exit();
}

/// §12.3 7.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_expose_capacity_gets_propagated_upstream() {
    let router = Router::start("name=root", &["--monitor-tag", "monitor"]);
    let (a, b, probe) = (Client::connect(&router.url), Client::connect(&router.url), Client::connect(&router.url));
    let (_contract, mut monitor) = exchange_monitor(&probe).await;
    let capacity = |s: &ExchangeSnapshot| {
        s.tags.iter().find(|t| t.descriptor == json!("tag").into()).map_or(0, |t| t.cumulative_tag_exposer_capacity)
    };
    let first = a.exchange.tag_expose_contract("tag").build();
    snapshot_until(&mut monitor, |s| capacity(s) == 1).await;
    let second = b.exchange.tag_expose_contract("tag").build();
    snapshot_until(&mut monitor, |s| capacity(s) == 2).await;
    drop(first);
    snapshot_until(&mut monitor, |s| capacity(s) == 1).await;
    drop(second);
    snapshot_until(&mut monitor, |s| capacity(s) == 0).await;
    router.exit();
}

fn connection_id(client: &Client) -> Option<u64> {
    client.connector.as_ref()?.snapshot().upstream_connection.map(|c| c.upstream_connection_id)
}

/// §12.3 8: a client whose keep-alive is too slow for the router's timeout is cut and reconnects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_can_time_out_client() {
    let router = Router::start("name=root,timeout=1", &[]);
    let client = Client::connect(&router.url);
    eventually(|| connection_id(&client).is_some_and(|id| id >= 2)).await;
    router.exit();
}

/// §12.3 10.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_can_time_out_router() {
    let router = Router::start("name=root", &[]);
    let client = Client::connect(&format!("{}#timeout=1s", router.url));
    eventually(|| connection_id(&client).is_some_and(|id| id >= 2)).await;
    router.exit();
}

/// §12.3 9 and 11: adequate keep-alives keep the first connection for several timeouts. This is
/// an absence of events, so it is observed over a window of 2.5 timeouts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adequate_keep_alives_prevent_timeouts() {
    let router = Router::start("name=root,timeout=1,keep-alive=250ms", &[]);
    let client = Client::connect(&format!("{}#keep-alive=250ms,timeout=1s", router.url));
    eventually(|| connection_id(&client) == Some(0)).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(connection_id(&client), Some(0), "the connection was never replaced");
    router.exit();
}
