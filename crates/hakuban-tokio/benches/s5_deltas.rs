//! BENCHMARKS.md S5, deltas: a JSON array of 10,000 records (about 1 MiB) exposed through an
//! in-process router, with a byte-counting TCP proxy on each side of it (exposer -> proxy ->
//! router -> proxy -> observer). Update u increments one record's `value` and re-sends the whole
//! document as version [u]; 200 updates in lock step (the next is sent once the observer has the
//! last). Variant `one_field`: record u × 7,919 mod 10,000 changes (anywhere in the document);
//! variant `scattered`: the first and the last record change.
//!
//! Measured: the WebSocket bytes (both directions) on each hop for the initial full state and per
//! update, and the update latency (publish -> the observer's stream yields it) p50 and p99. The
//! documents are serialised before the clock starts: the latency is the library's. Run with
//! `cargo xtask bench S5`.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hakuban_tokio::{DataBytes, Exchange, ObjectState, WebsocketConnector};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RECORDS: usize = 10_000;

/// A TCP proxy in front of `target`, counting the bytes it relays (both directions, all
/// connections together). Returns its address and the counter.
async fn counting_proxy(target: std::net::SocketAddr) -> (std::net::SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let bytes = Arc::new(AtomicU64::new(0));
    let counter = bytes.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(target).await else { continue };
            let _ = (client.set_nodelay(true), server.set_nodelay(true));
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::spawn(relay(client_read, server_write, counter.clone()));
            tokio::spawn(relay(server_read, client_write, counter.clone()));
        }
    });
    (address, bytes)
}

async fn relay(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    counter: Arc<AtomicU64>,
) {
    let mut buffer = vec![0u8; 64 << 10];
    while let Ok(n) = from.read(&mut buffer).await {
        if n == 0 || to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// The document with `values` as the records' values.
fn document(values: &[u64], version: i64) -> ObjectState<DataBytes> {
    let records: Vec<serde_json::Value> = values
        .iter()
        .enumerate()
        .map(|(i, value)| {
            serde_json::json!({
                "id": i,
                "name": format!("record number {i}"),
                "group": format!("group {}", i % 100),
                "tags": ["alpha", "beta"],
                "note": "an unchanging text",
                "value": value,
            })
        })
        .collect();
    let bytes = serde_json::to_vec(&records).unwrap();
    ObjectState::new(Arc::new(bytes)).with_version([version]).with_format(["JSON"])
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let at = ((sorted.len() as f64 * p) as usize).min(sorted.len() - 1);
    sorted[at].as_secs_f64() * 1e3
}

async fn run(router: std::net::SocketAddr, relay: Exchange, scattered: bool, updates: i64) -> String {
    let (exposer_proxy, exposer_bytes) = counting_proxy(router).await;
    let (observer_proxy, observer_bytes) = counting_proxy(router).await;
    let (exposer, observer) = (Exchange::new(), Exchange::new());
    let _up_exposer = WebsocketConnector::new(exposer.clone(), &format!("ws://{exposer_proxy}")).unwrap();
    let _up_observer = WebsocketConnector::new(observer.clone(), &format!("ws://{observer_proxy}")).unwrap();
    let mut observe = observer.object_observe_contract((["t"], "s5")).build();
    let mut expose = exposer.object_expose_contract((["t"], "s5")).build();
    // The documents, made before the clock starts.
    let mut values: Vec<u64> = (0..RECORDS as u64).map(|i| i % 7).collect();
    let mut documents = vec![document(&values, 0)];
    for u in 1..=updates {
        let changed = if scattered { vec![0, RECORDS - 1] } else { vec![(u as usize * 7_919) % RECORDS] };
        for record in changed {
            values[record] += 1;
        }
        documents.push(document(&values, u));
    }
    let sink = expose.next().await.unwrap();
    let mut stream = observe.next().await.unwrap();
    let counts = || (exposer_bytes.load(Ordering::Relaxed), observer_bytes.load(Ordering::Relaxed));
    let mut latencies = Vec::with_capacity(updates as usize);
    let mut initial = (0, 0);
    let mut before = counts();
    for (u, state) in documents.into_iter().enumerate() {
        let expected = state.data.clone();
        let started = Instant::now();
        sink.publish(state);
        let seen = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let seen = stream.next().await.expect("the stream goes on");
                if seen.version == vec![u as i64] {
                    return seen;
                }
            }
        })
        .await
        .expect("each update arrives");
        let elapsed = started.elapsed();
        assert_eq!(seen.data, expected, "version {u} arrived changed");
        if u == 0 {
            let now = counts();
            initial = (now.0 - before.0, now.1 - before.1);
            before = now;
        } else {
            latencies.push(elapsed);
        }
    }
    let after = counts();
    let per_update = |at: u64, from: u64| (at - from) as f64 / updates as f64;
    latencies.sort();
    let variant = if scattered { "scattered" } else { "one_field" };
    format!(
        "{{\"scenario\":\"S5\",\"params\":{{\"variant\":\"{variant}\",\"records\":{RECORDS},\"updates\":{updates},\"document_bytes\":{}}},\"results\":{{\"bytes_per_update_exposer_hop\":{:.1},\"bytes_per_update_observer_hop\":{:.1},\"initial_bytes_exposer_hop\":{},\"initial_bytes_observer_hop\":{},\"latency_p50_ms\":{:.3},\"latency_p99_ms\":{:.3},\"router_forwarded_as_received\":{},{}}}}}",
        document(&values, 0).data.len(),
        per_update(after.0, before.0),
        per_update(after.1, before.1),
        initial.0,
        initial.1,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        relay.payload_cache_hits(),
        common::process_figures()
    )
}

fn main() {
    let updates = if common::quick() { 20 } else { 200 };
    for scattered in [false, true] {
        let router = common::InProcessRouter::start();
        let clients = common::clients_runtime();
        println!("{}", clients.block_on(run(router.address(), router.exchange.clone(), scattered, updates)));
        clients.shutdown_background();
    }
}
