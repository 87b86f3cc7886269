//! BENCHMARKS.md S9, scale, each part through a fresh `hakuban-router` process:
//! (a) S4 tag-expose with many objects (100,000 by default; `S9_OBJECTS=1000000` for the full
//!     scenario): time to all delivered, router RSS growth per object;
//! (b) 1,000 client exchanges, each with its own connector, observing one object updated every
//!     10 ms for 10 s: send to the last of the 1,000 observers, p50 and p99; router CPU;
//! (c) 10,000 idle client connections, then all closed: router RSS per connection, and RSS
//!     after they close.
//! One JSON line per part. Run with `cargo xtask bench S9`.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "../../hakuban-tokio/benches/common/mod.rs"]
mod common;
mod router_process;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hakuban_tokio::{Exchange, WebsocketConnector};
use router_process::RouterProcess;
use serde_json::json;
use tokio::sync::Notify;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// (a) Many objects: one tag expose contract, `n` object observe contracts.
async fn many_objects(n: usize) -> String {
    let router = RouterProcess::start();
    let (exposer, observer) = (Exchange::new(), Exchange::new());
    let _up = (
        WebsocketConnector::new(exposer.clone(), &router.url).unwrap(),
        WebsocketConnector::new(observer.clone(), &router.url).unwrap(),
    );
    common::connected(&[&exposer, &observer]).await;
    let before = common::rss_of(&router.pid());
    let cpu_before = common::cpu_seconds(&router.pid());
    let started = Instant::now();
    let mut tag = exposer.tag_expose_contract("t").build();
    let exposing = tokio::spawn(async move {
        let mut sinks = Vec::new();
        while let Some(sink) = tag.next().await {
            sink.publish(common::small_state(1));
            sinks.push(sink);
        }
        drop(sinks);
    });
    let arrived = Arc::new(AtomicUsize::new(0));
    let all = Arc::new(Notify::new());
    let mut contracts = Vec::with_capacity(n);
    for id in 0..n {
        let mut contract = observer.object_observe_contract((["t"], json!({ "id": id }))).build();
        let (arrived, all) = (arrived.clone(), all.clone());
        let mut stream = contract.next().await.unwrap();
        tokio::spawn(async move {
            if stream.next().await.is_some() && arrived.fetch_add(1, Ordering::SeqCst) + 1 == n {
                all.notify_one();
            }
            std::future::pending::<()>().await;
            drop(stream);
        });
        contracts.push(contract);
    }
    tokio::time::timeout(Duration::from_secs(300), all.notified()).await.expect("all delivered");
    let elapsed = started.elapsed();
    let per_object = common::rss_of(&router.pid()).saturating_sub(before) / n as u64;
    let cpu_delivered = common::cpu_seconds(&router.pid());
    // Then idle for a while: what holding this many objects costs the router per second
    // (keep-alives and the balancing checks, nothing moves).
    let idle = Duration::from_secs(3);
    tokio::time::sleep(idle).await;
    let idle_cpu = (common::cpu_seconds(&router.pid()) - cpu_delivered) / idle.as_secs_f64();
    exposing.abort();
    format!(
        "{{\"scenario\":\"S9\",\"params\":{{\"part\":\"a\",\"objects\":{n}}},\"results\":{{\"all_delivered_ms\":{:.0},\"router_rss_per_object_bytes\":{per_object},\"router_cpu_s\":{:.2},\"router_idle_cpu_per_s\":{idle_cpu:.3},{}}}}}",
        elapsed.as_secs_f64() * 1e3,
        cpu_delivered - cpu_before,
        common::process_figures()
    )
}

/// Per version: how many observers saw it, and when the last of them did.
type Seen = (usize, Option<Instant>);

/// (b) Fan-out: `clients` exchanges observe one object updated every 10 ms for `seconds`.
async fn fan_out(clients: usize, seconds: u64) -> String {
    let router = RouterProcess::start();
    let exposer = Exchange::new();
    let _up = WebsocketConnector::new(exposer.clone(), &router.url).unwrap();
    let observers: Vec<(Exchange, WebsocketConnector)> = (0..clients)
        .map(|_| {
            let exchange = Exchange::new();
            let connector = WebsocketConnector::new(exchange.clone(), &router.url).unwrap();
            (exchange, connector)
        })
        .collect();
    let refs: Vec<&Exchange> = observers.iter().map(|(e, _)| e).chain([&exposer]).collect();
    common::connected(&refs).await;
    // Per version: when it was sent, and how many observers have seen it (and when the last did).
    let sent: Arc<Mutex<Vec<Instant>>> = Arc::new(Mutex::new(Vec::new()));
    let last_seen: Arc<Mutex<Vec<Seen>>> = Arc::new(Mutex::new(Vec::new()));
    let ready = Arc::new(AtomicUsize::new(0));
    let mut contracts = Vec::new();
    for (exchange, _) in &observers {
        let mut contract = exchange.object_observe_contract((["t"], "fan-out")).build();
        let (last_seen, ready) = (last_seen.clone(), ready.clone());
        let mut stream = contract.next().await.unwrap();
        contracts.push(contract);
        tokio::spawn(async move {
            ready.fetch_add(1, Ordering::SeqCst);
            while let Some(state) = stream.next().await {
                let version = state.version.first().copied().unwrap_or(0);
                let Ok(index) = usize::try_from(version) else { continue };
                let mut seen = last_seen.lock().unwrap();
                if let Some(entry) = seen.get_mut(index) {
                    entry.0 += 1;
                    entry.1 = Some(Instant::now());
                }
            }
        });
    }
    let mut expose = exposer.object_expose_contract((["t"], "fan-out")).build();
    let sink = expose.next().await.unwrap();
    let updates = (seconds * 100) as usize;
    last_seen.lock().unwrap().resize(updates + 1, (0, None));
    sink.publish(common::small_state(0));
    let cpu_before = common::cpu_seconds(&router.pid());
    let mut ticks = tokio::time::interval(Duration::from_millis(10));
    for version in 1..=updates {
        ticks.tick().await;
        sent.lock().unwrap().push(Instant::now());
        sink.publish(common::small_state(version as i64));
    }
    // The last version reaches everyone, then the figures.
    let deadline = Instant::now() + Duration::from_secs(30);
    while last_seen.lock().unwrap()[updates].0 < clients {
        assert!(Instant::now() < deadline, "S9 b: the last version did not reach every observer");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cpu = common::cpu_seconds(&router.pid()) - cpu_before;
    let sent = sent.lock().unwrap().clone();
    let seen = last_seen.lock().unwrap().clone();
    // Versions every observer saw: send -> the last of them.
    let mut latencies: Vec<f64> = (1..=updates)
        .filter(|v| seen[*v].0 == clients)
        .filter_map(|v| seen[v].1.map(|at| at.duration_since(sent[v - 1]).as_secs_f64() * 1e3))
        .collect();
    let complete = latencies.len();
    latencies.sort_by(f64::total_cmp);
    let at = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    drop((sink, expose, contracts));
    format!(
        "{{\"scenario\":\"S9\",\"params\":{{\"part\":\"b\",\"clients\":{clients},\"updates\":{updates}}},\"results\":{{\"last_observer_p50_ms\":{:.2},\"last_observer_p99_ms\":{:.2},\"versions_seen_by_all\":{complete},\"router_cpu_s\":{cpu:.2},{}}}}}",
        at(0.5),
        at(0.99),
        common::process_figures()
    )
}

/// (c) Idle connections: `n` connected clients, then all closed.
async fn idle(n: usize, quiet: Duration) -> String {
    let router = RouterProcess::start();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let baseline = common::rss_of(&router.pid());
    let connected_rss = connect_and_close(&router, n).await;
    let after = settled_rss(&router.pid(), quiet).await;
    // A second round shows whether what stayed is held for good (it would grow again) or is the
    // allocator's and the code's one-off cost (it does not).
    connect_and_close(&router, n).await;
    let after_second = settled_rss(&router.pid(), quiet).await;
    format!(
        "{{\"scenario\":\"S9\",\"params\":{{\"part\":\"c\",\"connections\":{n}}},\"results\":{{\"router_rss_per_connection_bytes\":{},\"router_baseline_rss_bytes\":{baseline},\"router_rss_after_close_bytes\":{after},\"router_rss_after_second_close_bytes\":{after_second},{}}}}}",
        connected_rss.saturating_sub(baseline) / n as u64,
        common::process_figures()
    )
}

/// Opens `n` client connections to the router, waits until all are connected, closes them; the
/// router's RSS while they were open.
async fn connect_and_close(router: &RouterProcess, n: usize) -> u64 {
    let clients: Vec<(Exchange, WebsocketConnector)> = (0..n)
        .map(|_| {
            let exchange = Exchange::new();
            let connector = WebsocketConnector::new(exchange.clone(), &router.url).unwrap();
            (exchange, connector)
        })
        .collect();
    let refs: Vec<&Exchange> = clients.iter().map(|(e, _)| e).collect();
    common::connected(&refs).await;
    let connected_rss = common::rss_of(&router.pid());
    drop(refs);
    drop(clients);
    connected_rss
}

/// The router's RSS once it has stopped falling (no new low for `quiet`; 45 s at most): it gives
/// memory back in steps over ~20 s (jemalloc's background purge decays dirty pages over 10 s).
async fn settled_rss(pid: &str, quiet: Duration) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(45);
    let mut low = common::rss_of(pid);
    let mut low_since = Instant::now();
    while Instant::now() < deadline && low_since.elapsed() < quiet {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = common::rss_of(pid);
        if now < low {
            low = now;
            low_since = Instant::now();
        }
    }
    low
}

fn main() {
    let quick = common::quick();
    let objects =
        std::env::var("S9_OBJECTS").ok().and_then(|v| v.parse().ok()).unwrap_or(if quick { 1_000 } else { 100_000 });
    let (clients, seconds) = if quick { (50, 1) } else { (1_000, 10) };
    let connections = if quick { 200 } else { 10_000 };
    let parts: Vec<String> = std::env::var("S9_PARTS")
        .map(|p| p.split(',').map(str::to_string).collect())
        .unwrap_or_else(|_| vec!["a".into(), "b".into(), "c".into()]);
    for part in parts {
        // A fresh client runtime per part, like the router process.
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let line = match part.as_str() {
            "a" => runtime.block_on(many_objects(objects)),
            "b" => runtime.block_on(fan_out(clients, seconds)),
            "c" => runtime.block_on(idle(connections, Duration::from_secs(if quick { 1 } else { 10 }))),
            other => panic!("S9_PARTS: unknown part `{other}`"),
        };
        println!("{line}");
        runtime.shutdown_background();
    }
}
