//! The router under stress: clients started before it, a router killed and restarted, a 16 MiB
//! state across two routers, and bad peers of every kind while a healthy pair keeps exchanging.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use async_tungstenite::tungstenite::Message;
use common::peers::{HealthyPair, closed_by_router, hello, logged_once, raw_websocket};
use common::{Client, PATIENCE, Router, next, publish_until_seen, until};
use futures::SinkExt;
use hakuban_proto::{Frame, encode_batch};
use hakuban_tokio::{JsonDeserializeState, JsonSerializeState, ObjectState};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A free port on 127.0.0.1 (bound and released; the router binds it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The seed's "Connecting somewhere": A and B started in either order, the router last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_somewhere_with_the_router_started_last() {
    for observer_first in [true, false] {
        let port = free_port();
        let url = format!("ws://127.0.0.1:{port}");
        let start_a = || async {
            let a = Client::connect(&url);
            let contract = a.exchange.object_observe_contract((["some-tag"], "xxx")).build();
            (a, contract)
        };
        let start_b = || async {
            let b = Client::connect(&url);
            let contract = b.exchange.object_expose_contract((["some-tag"], "xxx")).build();
            (b, contract)
        };
        let ((_a, mut observe), (_b, mut expose)) = if observer_first {
            let a = start_a().await;
            (a, start_b().await)
        } else {
            let b = start_b().await;
            (start_a().await, b)
        };
        let router = Router::start_on(&format!("127.0.0.1:{port}"), "name=router", &[]);
        let mut sink = next(&mut expose).await.unwrap();
        sink.send(ObjectState::new("🦀").json_serialize()).await.unwrap();
        let mut stream = next(&mut observe).await.unwrap();
        let state = next(&mut stream).await.unwrap().json_deserialize::<String>();
        assert_eq!(state.data, "🦀");
        router.exit();
    }
}

/// Publishes versions until the stream has seen `version`, then returns what it saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observers_resynchronise_after_the_router_is_killed_and_restarted() {
    let router = Router::start("name=router", &[]);
    let address = router.address();
    let (a, b) = (Client::connect(&router.url), Client::connect(&router.url));
    let mut observe = a.exchange.object_observe_contract((["t"], "counter")).build();
    let mut expose = b.exchange.object_expose_contract((["t"], "counter")).build();
    let mut sink = next(&mut expose).await.unwrap();
    let mut stream = next(&mut observe).await.unwrap();
    publish_until_seen(&sink, &mut stream, 1).await;

    router.kill();
    until(&mut stream, |s| !s.synchronized.is_now()).await;
    sink.publish(ObjectState::new(2).with_version([2]).json_serialize());
    let router = Router::start_on(&address, "name=router", &[]);

    // The newest state arrives, and no version older than one already seen ever follows it.
    let observer = tokio::spawn(async move {
        let mut seen: Vec<i64> = Vec::new();
        loop {
            let state = next(&mut stream).await.unwrap();
            let version = state.version[0];
            assert!(seen.last().is_none_or(|last| *last <= version), "older {version} after {seen:?}");
            seen.push(version);
            if version == 3 && state.synchronized.is_now() {
                return seen;
            }
        }
    });
    // The exposer is elected anew once reconnected, and offered a new sink.
    sink = next(&mut expose).await.unwrap();
    sink.publish(ObjectState::new(3).with_version([3]).json_serialize());
    let seen = tokio::time::timeout(PATIENCE, observer).await.expect("observer caught up").unwrap();
    assert!(seen.contains(&3));
    drop(observe);
    router.exit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_16_mib_state_crosses_two_routers_intact() {
    let root = Router::start("name=root", &[]);
    let main = Router::start("name=main", &["--connect", &root.url]);
    let (a, b) = (Client::connect(&root.url), Client::connect(&main.url));
    let mut observe = a.exchange.object_observe_contract((["t"], "big")).build();
    let mut expose = b.exchange.object_expose_contract((["t"], "big")).build();
    let data: Vec<u8> = (0..16u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let data = Arc::new(data);
    let sink = next(&mut expose).await.unwrap();
    sink.publish(ObjectState::new(data.clone()).with_version([1]).with_format(["bytes"]));
    let mut stream = next(&mut observe).await.unwrap();
    let state = until(&mut stream, |s| s.version == vec![1]).await;
    assert_eq!(state.data.len(), 16 << 20);
    assert!(state.data == data, "the state arrived intact");
    // A one-byte change travels as a delta and still reconstructs exactly.
    let mut changed = (*data).clone();
    changed[12_345_678] ^= 0xff;
    sink.publish(ObjectState::new(Arc::new(changed.clone())).with_version([2]).with_format(["bytes"]));
    let state = until(&mut stream, |s| s.version == vec![2]).await;
    assert!(*state.data == changed);
    main.exit();
    root.exit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_on_the_tcp_port() {
    let router = Router::start("name=router", &[]);
    let mut pair = HealthyPair::start(&router).await;
    pair.check(1).await;
    let mut socket = TcpStream::connect(router.address()).await.unwrap();
    let local = socket.local_addr().unwrap().to_string();
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    socket.write_all(&garbage).await.unwrap();
    pair.check(2).await;
    logged_once(&router, &local).await;
    pair.check(3).await;
    router.exit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_binary_frames_after_the_handshake() {
    let router = Router::start("name=router", &[]);
    let mut pair = HealthyPair::start(&router).await;
    let (mut ws, local) = raw_websocket(&router).await;
    ws.send(Message::Binary(vec![0xde, 0xad, 0xbe, 0xef, 0x00, 0xff].into())).await.unwrap();
    closed_by_router(&mut ws).await;
    logged_once(&router, &local).await;
    pair.check(1).await;
    router.exit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_size_limit() {
    let router = Router::start("name=router,max-message-bytes=1048576", &[]);
    let mut pair = HealthyPair::start(&router).await;
    let (mut ws, local) = raw_websocket(&router).await;
    let _ = ws.send(Message::Binary(vec![0u8; 2 << 20].into())).await;
    closed_by_router(&mut ws).await;
    logged_once(&router, &local).await;
    pair.check(1).await;
    router.exit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_frames() {
    let router = Router::start("name=router", &[]);
    let mut pair = HealthyPair::start(&router).await;
    let (mut ws, local) = raw_websocket(&router).await;
    ws.send(Message::Text("hello?".into())).await.unwrap();
    closed_by_router(&mut ws).await;
    logged_once(&router, &local).await;
    pair.check(1).await;
    router.exit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declaration_flood_past_the_limit() {
    let router = Router::start("name=router,max-declarations=1000", &[]);
    let mut pair = HealthyPair::start(&router).await;
    let (mut ws, local) = raw_websocket(&router).await;
    let mut frames = vec![hello()];
    frames.extend((1..=2000u32).map(|id| Frame::DeclareObject { id, tags: vec![], json: format!("{id}") }));
    ws.send(Message::Binary(encode_batch(&frames).into())).await.unwrap();
    closed_by_router(&mut ws).await;
    logged_once(&router, &local).await;
    pair.check(1).await;
    router.exit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_connections() {
    let router = Router::start("name=router", &[]);
    let mut pair = HealthyPair::start(&router).await;
    let mut idle = Vec::with_capacity(1000);
    for i in 0..1000 {
        idle.push(raw_websocket(&router).await);
        if i % 250 == 0 {
            pair.check(i64::from(i) + 1).await;
        }
    }
    pair.check(2000).await;
    drop(idle);
    pair.check(2001).await;
    router.exit();
}
