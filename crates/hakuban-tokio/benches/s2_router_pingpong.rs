//! BENCHMARKS.md S2, router ping-pong: exchanges A and B each connected to an in-process router
//! (its own single-worker runtime); A exposes `a` and observes `b`, B the reverse. Round trip i:
//! A sends `a` [i], B answers `b` [i] when it sees `a` >= i, A waits for `b` >= i. 200 warm-up
//! round trips, then 20,000 measured. Prints one JSON line per run: round trips per second and
//! RTT percentiles in microseconds. Run with `cargo xtask bench S2`.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use hakuban_tokio::{DataSynchronized, Exchange, ObjectState, WebsocketConnector, WebsocketListener};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const WARM_UP: i64 = 200;
const MEASURED: i64 = 20_000;

fn state(version: i64) -> ObjectState<hakuban_tokio::DataBytes> {
    let mut payload = format!("{{\"seq\":{version},\"pad\":\"").into_bytes();
    payload.resize(62, b'x');
    payload.extend_from_slice(b"\"}");
    ObjectState {
        data: Arc::new(payload),
        format: vec!["JSON".into()],
        version: vec![version],
        synchronized: DataSynchronized::Now,
    }
}

fn main() {
    let runs: usize = std::env::var("RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(3);
    let router_runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let router_exchange = Exchange::new();
    let listener = router_runtime
        .block_on(WebsocketListener::new(router_exchange.clone(), "ws://127.0.0.1:0#nodelay=true"))
        .unwrap();
    let url = listener.url().to_string();
    let clients = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    for _ in 0..runs {
        let url = url.clone();
        let rtts = clients.block_on(async move {
            let (a, b) = (Exchange::new(), Exchange::new());
            let _ca = WebsocketConnector::new(a.clone(), &url).unwrap();
            let _cb = WebsocketConnector::new(b.clone(), &url).unwrap();
            let mut a_expose = a.object_expose_contract((["-"], "a")).build();
            let mut a_observe = a.object_observe_contract((["-"], "b")).build();
            let mut b_expose = b.object_expose_contract((["-"], "b")).build();
            let mut b_observe = b.object_observe_contract((["-"], "a")).build();
            let answerer = tokio::spawn(async move {
                let sink = b_expose.next().await.unwrap();
                let mut stream = b_observe.next().await.unwrap();
                while let Some(seen) = stream.next().await {
                    let version = seen.version[0];
                    sink.publish(state(version));
                    if version >= WARM_UP + MEASURED {
                        break;
                    }
                }
                (b_expose, b_observe, sink)
            });
            let sink = a_expose.next().await.unwrap();
            let mut stream = a_observe.next().await.unwrap();
            let mut rtts = Vec::with_capacity(MEASURED as usize);
            for i in 1..=WARM_UP + MEASURED {
                let start = Instant::now();
                sink.publish(state(i));
                loop {
                    let seen = stream.next().await.unwrap();
                    if seen.version[0] >= i {
                        break;
                    }
                }
                if i > WARM_UP {
                    rtts.push(start.elapsed());
                }
            }
            drop(answerer.await.unwrap());
            rtts
        });
        let total: Duration = rtts.iter().sum();
        let mut sorted = rtts.clone();
        sorted.sort();
        let pct = |p: f64| sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)].as_secs_f64() * 1e6;
        println!(
            "{{\"scenario\":\"S2\",\"params\":{{\"round_trips\":{MEASURED}}},\"results\":{{\"round_trips_per_s\":{:.0},\"rtt_p50_us\":{:.0},\"rtt_p99_us\":{:.0},\"rtt_p999_us\":{:.0}}}}}",
            MEASURED as f64 / total.as_secs_f64(),
            pct(0.5),
            pct(0.99),
            pct(0.999)
        );
    }
    drop(listener);
}
