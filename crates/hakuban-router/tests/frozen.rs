//! A frozen exposer process (SIGSTOP) is timed out by the router and its object fails over to a
//! standby, even though the router has data queued for it: the router's transport never stalls
//! its reading or its timers on a write the frozen peer will not take.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Client, PATIENCE, Router, next, until};
use futures::StreamExt;
use hakuban_tokio::{JsonDeserializeState, JsonSerializeState, ObjectState};

const ROUTER_URL: &str = "HAKUBAN_FROZEN_TEST_ROUTER";

/// The exposer process. Runs only when started by the test below (it re-executes this test
/// binary with the router's URL in the environment); on its own it returns at once.
#[test]
#[ignore = "helper process of a_frozen_exposer_process_fails_over_to_a_standby"]
fn frozen_exposer_process() {
    let Ok(url) = std::env::var(ROUTER_URL) else { return };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async move {
        let client = Client::connect(&url);
        // It also observes a large object the router keeps sending, so data is queued for it.
        let mut big = client.exchange.object_observe_contract((["t"], "big")).build();
        tokio::spawn(async move {
            while let Some(mut stream) = big.next().await {
                while stream.next().await.is_some() {}
            }
        });
        let mut expose = client.exchange.object_expose_contract((["t"], "x")).build();
        let sink = next(&mut expose).await.unwrap();
        println!("elected");
        for version in 1.. {
            sink.publish(ObjectState::new("frozen").with_version([version]).json_serialize());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
}

/// 64 KiB that differ entirely from one version to the next (no delta, no compression helps).
fn noise(seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..64 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Exposes `(["t"], "big")`, a new 64 KiB of noise every millisecond (the scenario's load, not a
/// wait), until the task is aborted.
fn feed_big(router: &Router) -> (Client, tokio::task::JoinHandle<()>) {
    let feeder = Client::connect(&router.url);
    let mut big = feeder.exchange.object_expose_contract((["t"], "big")).build();
    let feeding = tokio::spawn(async move {
        let Some(sink) = next(&mut big).await else { return };
        for version in 1i64.. {
            sink.publish(ObjectState::new(std::sync::Arc::new(noise(version as u64))).with_version([version]));
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    (feeder, feeding)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_exposer_process_fails_over_to_a_standby() {
    let router = Router::start("name=router,timeout=2s,keep-alive=500ms", &[]);
    let observer = Client::connect(&router.url);
    let mut observe = observer.exchange.object_observe_contract((["t"], "x")).build();
    let mut stream = next(&mut observe).await.unwrap();

    let mut process = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "frozen_exposer_process", "--nocapture", "--test-threads=1"])
        .env(ROUTER_URL, &router.url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = process.stdout.take().unwrap();
    let (elected_tx, elected_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("elected") {
                let _ = elected_tx.send(());
            }
        }
    });
    let state = until(&mut stream, |state| state.data.as_slice() == b"\"frozen\"").await;
    assert!(elected_rx.recv_timeout(PATIENCE).is_ok(), "the process says it was elected");
    assert_eq!(state.json_deserialize::<String>().data, "frozen");

    // The large object, updated every millisecond, observed by the process.
    let (_feeder, feeding) = feed_big(&router);
    // A standby exposer; the incumbent keeps the object while it lives.
    let standby = Client::connect(&router.url);
    let mut standby_expose = standby.exchange.object_expose_contract((["t"], "x")).build();
    let standby_sink = async move {
        let sink = next(&mut standby_expose).await.unwrap();
        sink.publish(ObjectState::new("standby").with_version([i64::MAX]).json_serialize());
        (standby_expose, sink)
    };
    let standby_sink = tokio::spawn(standby_sink);

    let frozen = Command::new("kill").args(["-STOP", &process.id().to_string()]).status().unwrap();
    assert!(frozen.success());
    let state = until(&mut stream, |state| state.data.as_slice() == b"\"standby\"").await;
    assert_eq!(state.version, vec![i64::MAX], "the standby's data reached the observer");
    // The log line is written by the router's other thread and read by ours: wait for it.
    common::eventually(|| !router.log_lines("downstream connection ended").is_empty()).await;
    common::eventually(|| {
        router.log_lines("WARN").iter().any(|line| line.contains("nothing received") || line.contains("took none"))
    })
    .await;

    let _ = process.kill();
    let _ = process.wait();
    feeding.abort();
    drop(standby_sink);
    router.exit();
}

/// A peer that stays connected but never reads: the router's writer blocks on the full socket,
/// and the router must still end the connection (not only fail its objects over) at its timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_reads_is_disconnected_while_the_router_is_blocked_writing_to_it() {
    use hakuban_proto::{DeclarationState, Frame, PROTOCOL_VERSION, encode_batch};

    let router = Router::start("name=router,timeout=2s,keep-alive=500ms", &[]);
    let (_feeder, feeding) = feed_big(&router);
    let (mut ws, local) = common::peers::raw_websocket(&router).await;
    let hello =
        Frame::Hello { version: PROTOCOL_VERSION, name: "reader-never".into(), load_limit: vec![], token: None };
    let frames = vec![
        hello,
        Frame::DeclareObject { id: 1, tags: vec!["\"t\"".into()], json: "\"big\"".into() },
        Frame::ObjectInterest { object: 1, state: DeclarationState { observe: true, expose: None } },
    ];
    ws.send(async_tungstenite::tungstenite::Message::Binary(encode_batch(&frames).into())).await.unwrap();
    // From now on `ws` is never polled: nothing is read, the socket fills up.
    common::eventually(|| router.log_lines(&local).iter().any(|line| line.contains("downstream connection ended")))
        .await;
    let ended = router.log_lines(&local);
    assert!(
        ended.iter().any(|line| line.contains("nothing received") || line.contains("took none")),
        "ended by a timeout: {ended:?}"
    );
    feeding.abort();
    drop(ws);
    router.exit();
}
