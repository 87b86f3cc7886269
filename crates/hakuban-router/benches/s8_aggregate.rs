//! BENCHMARKS.md S8, aggregate throughput through the real `hakuban-router` process: an exposer
//! exchange (one tag expose contract on `"t"`) and an observer exchange (1,000 object observe
//! contracts on `(["t"], {"id": i})`) each connected to it. Once every object shows version [0] at
//! the observer, the producer sends 100 rounds, each a new small payload [r] to every object's
//! sink, yielding to the executor after each round (100,000 states). Measured: distinct (object,
//! version) states received per second, first send to all objects at [100]; the share of the
//! 100,000 states received; last send to all final versions; the router process's CPU seconds
//! per 100,000 states. One JSON line per run, for each of two places the producer's loop can run
//! (see [`Producer`]). Run with `cargo xtask bench S8`; `S8_ROUNDS=N` sends
//! N rounds instead of 100, to profile the steady state.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "../../hakuban-tokio/benches/common/mod.rs"]
mod common;
mod router_process;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hakuban_tokio::{Exchange, WebsocketConnector};
use serde_json::json;
use tokio::sync::Notify;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Progress {
    at_zero: AtomicUsize,
    at_final: AtomicUsize,
    distinct: AtomicUsize,
    objects: usize,
    zero: Notify,
    finished: Notify,
}

fn main() {
    let (objects, rounds): (usize, i64) = if common::quick() { (100, 10) } else { (1_000, 100) };
    // More rounds for profiling the steady state (`S8_ROUNDS=3000 perf record ...`).
    let rounds = std::env::var("S8_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(rounds);
    println!("{}", run(objects, rounds, Producer::BlockOn));
    println!("{}", run(objects, rounds, Producer::Task));
}

/// Where the producer's loop runs.
#[derive(Clone, Copy, PartialEq)]
enum Producer {
    /// In the future given to `block_on` (as in `#[tokio::main]`), on the calling thread: its
    /// yield gives the runtime's tasks no turn, they run beside it on the two workers.
    BlockOn,
    /// As a task on the runtime's workers, as an application's would: its yield lets the tasks
    /// it woke run first.
    Task,
}

/// One run on a fresh router and fresh exchanges; its JSON line.
fn run(objects: usize, rounds: i64, producer: Producer) -> String {
    let router = router_process::RouterProcess::start();
    let (pid, url) = (router.pid(), router.url.clone());
    let clients = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let line = clients.block_on(async move {
        let (exposer, observer) = (Exchange::new(), Exchange::new());
        let _up_exposer = WebsocketConnector::new(exposer.clone(), &url).unwrap();
        let _up_observer = WebsocketConnector::new(observer.clone(), &url).unwrap();
        let progress = Arc::new(Progress {
            at_zero: AtomicUsize::new(0),
            at_final: AtomicUsize::new(0),
            distinct: AtomicUsize::new(0),
            objects,
            zero: Notify::new(),
            finished: Notify::new(),
        });
        let mut contracts = Vec::new();
        for id in 0..objects {
            let mut contract = observer.object_observe_contract((["t"], json!({ "id": id }))).build();
            let progress = progress.clone();
            let mut stream = contract.next().await.unwrap();
            contracts.push(contract);
            tokio::spawn(async move {
                let mut last = -1;
                while let Some(seen) = stream.next().await {
                    let version = seen.version.first().copied().unwrap_or(-1);
                    if version <= last {
                        continue;
                    }
                    last = version;
                    if version == 0 {
                        if progress.at_zero.fetch_add(1, Ordering::SeqCst) + 1 == progress.objects {
                            progress.zero.notify_one();
                        }
                        continue;
                    }
                    progress.distinct.fetch_add(1, Ordering::Relaxed);
                    if version == rounds {
                        if progress.at_final.fetch_add(1, Ordering::SeqCst) + 1 == progress.objects {
                            progress.finished.notify_one();
                        }
                        break;
                    }
                }
            });
        }
        let mut tag = exposer.tag_expose_contract("t").build();
        let mut sinks = Vec::new();
        while sinks.len() < objects {
            let sink = tag.next().await.unwrap();
            sink.publish(common::small_state(0));
            sinks.push(sink);
        }
        progress.zero.notified().await;
        let cpu_before = common::cpu_seconds(&pid);
        let started = Instant::now();
        let produce = async move {
            for round in 1..=rounds {
                for sink in &sinks {
                    sink.publish(common::small_state(round));
                }
                tokio::task::yield_now().await;
            }
            (Instant::now(), sinks)
        };
        let (last_send, sinks) = if producer == Producer::Task {
            tokio::spawn(produce).await.expect("the producer finishes")
        } else {
            produce.await
        };
        tokio::time::timeout(Duration::from_secs(120), progress.finished.notified()).await.expect("all final versions");
        let done = Instant::now();
        let cpu = common::cpu_seconds(&pid) - cpu_before;
        let sent = objects as f64 * rounds as f64;
        let received = progress.distinct.load(Ordering::SeqCst) as f64;
        let line = format!(
            "{{\"scenario\":\"S8\",\"params\":{{\"objects\":{objects},\"rounds\":{rounds},\"producer\":\"{}\"}},\"results\":{{\"states_received_per_s\":{:.0},\"share_received\":{:.3},\"last_send_to_final_ms\":{:.2},\"router_cpu_s_per_100k\":{:.3}{}}}}}",
            if producer == Producer::Task { "task" } else { "block_on" },
            received / (done - started).as_secs_f64(),
            received / sent,
            (done - last_send).as_secs_f64() * 1e3,
            cpu * 100_000.0 / sent,
            // The process's own figures are whole-process, so they belong to the first run only.
            if producer == Producer::BlockOn { format!(",{}", common::process_figures()) } else { String::new() }
        );
        drop((sinks, tag, contracts));
        line
    });
    clients.shutdown_background();
    drop(router);
    line
}
