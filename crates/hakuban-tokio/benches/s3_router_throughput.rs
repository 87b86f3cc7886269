//! BENCHMARKS.md S3, router throughput: exposer exchange -> in-process router (its own
//! single-worker runtime) -> observer exchange, one object, 100,000 versions sent after a warm-up
//! version. Variant A: the producer yields to the executor after every send; variant B: it never
//! yields. Measured: distinct versions received per second (first send to last version seen),
//! versions received while the burst was still being sent, and the time from the last send to
//! the last version seen. One JSON line per variant. Run with `cargo xtask bench S3`.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hakuban_tokio::{Exchange, WebsocketConnector};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

async fn run(url: &str, yielding: bool, versions: i64) -> String {
    let (exposer, observer) = (Exchange::new(), Exchange::new());
    let _up_exposer = WebsocketConnector::new(exposer.clone(), url).unwrap();
    let _up_observer = WebsocketConnector::new(observer.clone(), url).unwrap();
    let mut observe = observer.object_observe_contract((["t"], "s3")).build();
    let mut expose = exposer.object_expose_contract((["t"], "s3")).build();
    let sink = expose.next().await.unwrap();
    let mut stream = observe.next().await.unwrap();
    // Warm-up version 0, seen before the burst starts.
    sink.publish(common::small_state(0));
    while stream.next().await.unwrap().version != vec![0] {}
    let sending = Arc::new(AtomicBool::new(true));
    let during_burst = Arc::new(AtomicUsize::new(0));
    let (sending_seen, during_seen) = (sending.clone(), during_burst.clone());
    let observer_task = tokio::spawn(async move {
        let (mut distinct, mut last) = (0u64, 0i64);
        while let Some(seen) = stream.next().await {
            let version = seen.version.first().copied().unwrap_or(0);
            if version > last {
                distinct += 1;
                last = version;
                if sending_seen.load(Ordering::Relaxed) {
                    during_seen.fetch_add(1, Ordering::Relaxed);
                }
            }
            if version == versions {
                return (distinct, Instant::now());
            }
        }
        panic!("the stream ended before the last version");
    });
    let started = Instant::now();
    for n in 1..=versions {
        sink.publish(common::small_state(n));
        if yielding {
            tokio::task::yield_now().await;
        }
    }
    let last_send = Instant::now();
    sending.store(false, Ordering::Relaxed);
    let (distinct, last_seen) =
        tokio::time::timeout(Duration::from_secs(60), observer_task).await.expect("the last version arrives").unwrap();
    let variant = if yielding { "A" } else { "B" };
    format!(
        "{{\"scenario\":\"S3\",\"params\":{{\"variant\":\"{variant}\",\"versions\":{versions}}},\"results\":{{\"distinct_versions_per_s\":{:.0},\"distinct_versions\":{distinct},\"received_during_burst\":{},\"last_send_to_last_seen_ms\":{:.2},\"send_ms\":{:.1},{}}}}}",
        distinct as f64 / (last_seen - started).as_secs_f64(),
        during_burst.load(Ordering::Relaxed),
        (last_seen.max(last_send) - last_send).as_secs_f64() * 1e3,
        (last_send - started).as_secs_f64() * 1e3,
        common::process_figures()
    )
}

fn main() {
    let versions = if common::quick() { 10_000 } else { 100_000 };
    for yielding in [true, false] {
        let router = common::InProcessRouter::start();
        let clients = common::clients_runtime();
        println!("{}", clients.block_on(run(&router.url(), yielding, versions)));
        clients.shutdown_background();
    }
}
