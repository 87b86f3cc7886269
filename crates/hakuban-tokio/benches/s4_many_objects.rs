//! BENCHMARKS.md S4, many objects: exposer and observer exchanges through an in-process router
//! (its own single-worker runtime); 10,000 objects `(["t"], {"id": i})`, one state each (~25
//! bytes). Variant `obj-expose`: 10,000 object expose contracts, one tag observe contract;
//! variant `tag-expose`: one tag expose contract, 10,000 object observe contracts. The peak RSS
//! is reset once both clients are connected. Measured: time until all 10,000 states are at the
//! observer; the whole process's peak RSS growth per object (router, exposer and observer: three
//! exchanges hold each object). One JSON line per variant. Run with `cargo xtask bench S4`.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hakuban_tokio::{Exchange, ObjectState, WebsocketConnector};
use serde_json::json;
use tokio::sync::Notify;

/// jemalloc, as in the router: with mimalloc's defaults (eager arena commit, delayed purge) the
/// process's peak RSS was 2.5 times its heap (15.1 KB against 6.1 KB per object, measured
/// 2026-12-06), so the figure measured the allocator's settings rather than Hakuban.
#[cfg(not(feature = "dhat-heap"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[cfg(feature = "dhat-heap")]
#[global_allocator]
static GLOBAL: dhat::Alloc = dhat::Alloc;

/// The heap profile is written as soon as every state has arrived, so it shows the heap at the
/// moment S4 measures, not the teardown after it.
#[cfg(feature = "dhat-heap")]
static PROFILER: std::sync::Mutex<Option<dhat::Profiler>> = std::sync::Mutex::new(None);

fn state(id: usize) -> ObjectState<hakuban_tokio::DataBytes> {
    ObjectState::new(Arc::new(format!("{{\"id\":{id},\"value\":\"v\"}}").into_bytes()))
        .with_version([1])
        .with_format(["JSON"])
}

/// Counts first states at the observer; notifies when all `n` arrived.
struct Arrivals {
    count: AtomicUsize,
    n: usize,
    done: Notify,
}

impl Arrivals {
    fn arrived(&self) {
        if self.count.fetch_add(1, Ordering::SeqCst) + 1 == self.n {
            self.done.notify_one();
        }
    }
}

async fn run(url: &str, variant: &str, n: usize) -> (Duration, u64) {
    let (exposer, observer) = (Exchange::new(), Exchange::new());
    let _up_exposer = WebsocketConnector::new(exposer.clone(), url).unwrap();
    let _up_observer = WebsocketConnector::new(observer.clone(), url).unwrap();
    common::connected(&[&exposer, &observer]).await;
    let base = common::rss();
    common::reset_peak_rss();
    let arrivals = Arc::new(Arrivals { count: AtomicUsize::new(0), n, done: Notify::new() });
    let started = Instant::now();
    let mut keep = Vec::new();
    if variant == "obj-expose" {
        for id in 0..n {
            let mut contract = exposer.object_expose_contract((["t"], json!({ "id": id }))).build();
            keep.push(tokio::spawn(async move {
                let sink = contract.next().await.unwrap();
                sink.publish(state(id));
                (contract, sink)
            }));
        }
        let mut tag = observer.tag_observe_contract("t").build();
        let counter = arrivals.clone();
        keep.push(tokio::spawn(async move {
            while let Some(mut stream) = tag.next().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    if stream.next().await.is_some() {
                        counter.arrived();
                    }
                    // Held until the end of the process.
                    std::future::pending::<()>().await;
                    drop(stream);
                });
            }
            unreachable!("the tag contract lives on");
        }));
    } else {
        let mut tag = exposer.tag_expose_contract("t").build();
        keep.push(tokio::spawn(async move {
            let mut sinks = Vec::new();
            while let Some(sink) = tag.next().await {
                let id = sink.descriptor().json()["id"].as_u64().unwrap_or(0) as usize;
                sink.publish(state(id));
                sinks.push(sink);
            }
            unreachable!("the tag contract lives on");
        }));
        for id in 0..n {
            let mut contract = observer.object_observe_contract((["t"], json!({ "id": id }))).build();
            let counter = arrivals.clone();
            tokio::spawn(async move {
                let mut stream = contract.next().await.unwrap();
                if stream.next().await.is_some() {
                    counter.arrived();
                }
                std::future::pending::<()>().await;
                drop((contract, stream));
            });
        }
    }
    arrivals.done.notified().await;
    let elapsed = started.elapsed();
    #[cfg(feature = "dhat-heap")]
    drop(PROFILER.lock().unwrap().take());
    let per_object = common::peak_rss().saturating_sub(base) / n as u64;
    (elapsed, per_object)
}

fn main() {
    #[cfg(feature = "dhat-heap")]
    PROFILER.lock().unwrap().replace(dhat::Profiler::new_heap());
    let n = if common::quick() { 1_000 } else { 10_000 };
    let variant = match std::env::var("S4_VARIANT") {
        Ok(variant) => variant,
        Err(_) => {
            // Each variant in a fresh process of its own: memory freed by one would otherwise be
            // reused by the next and hide its growth.
            for variant in ["obj-expose", "tag-expose"] {
                let exe = std::env::current_exe().unwrap();
                let status = std::process::Command::new(exe)
                    .args(std::env::args().skip(1))
                    .env("S4_VARIANT", variant)
                    .status()
                    .unwrap();
                assert!(status.success(), "S4 {variant} failed");
            }
            return;
        }
    };
    {
        // A fresh router and clients per variant: nothing carried over.
        let router = common::InProcessRouter::start();
        // With HAKUBAN_ROUTER_URL (and HAKUBAN_ROUTER_PID), the clients use that router process
        // instead, and its RSS growth per object is reported too.
        let url = std::env::var("HAKUBAN_ROUTER_URL").unwrap_or_else(|_| router.url());
        let router_pid = std::env::var("HAKUBAN_ROUTER_PID").ok();
        let router_before = router_pid.as_deref().map(common::rss_of).unwrap_or(0);
        let clients = common::clients_runtime();
        let (elapsed, per_object) = clients.block_on(run(&url, &variant, n));
        let router = match router_pid.as_deref() {
            Some(pid) => format!(
                ",\"router_rss_per_object_bytes\":{}",
                common::rss_of(pid).saturating_sub(router_before) / n as u64
            ),
            None => String::new(),
        };
        println!(
            "{{\"scenario\":\"S4\",\"params\":{{\"variant\":\"{variant}\",\"objects\":{n}}},\"results\":{{\"all_delivered_ms\":{:.1},\"peak_rss_per_object_bytes\":{per_object}{router},{}}}}}",
            elapsed.as_secs_f64() * 1e3,
            common::process_figures()
        );
        clients.shutdown_background();
    }
}
