//! BENCHMARKS.md S2 run on the published hakuban 0.8.5, the same way `s2_router_pingpong` runs
//! it on Hakuban: exchanges A and B each connected to an in-process router (a listener on a
//! single-worker runtime of its own); A exposes `a` and observes `b`, B the reverse; round trip
//! i: A sends `a` [i], B answers `b` [i] when it sees `a` >= i, A waits for `b` >= i. 200 warm-up
//! round trips, then 20,000 measured, with the same 64-byte payload. The S0 floor (a plain TCP
//! relay thread) runs first in each of 3 runs. One JSON line per scenario and run.

#[path = "../../../crates/hakuban-tokio/benches/floor/mod.rs"]
mod floor;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use hakuban::tokio_runtime::{WebsocketConnector, WebsocketListener};
use hakuban::{Exchange, ObjectState};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const WARM_UP: i64 = 200;
const MEASURED: i64 = 20_000;

/// The 64-byte payload of BENCHMARKS.md, version [n].
fn small_state(n: i64) -> ObjectState<Arc<Vec<u8>>> {
    let mut payload = format!("{{\"seq\":{n},\"pad\":\"").into_bytes();
    payload.resize(62, b'x');
    payload.extend_from_slice(b"\"}");
    ObjectState::new(Arc::new(payload)).with_version(vec![n]).with_format(vec!["JSON".to_string()])
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)].as_secs_f64() * 1e6
}

fn main() {
    // The router: a free port, then a listener on a runtime of its own.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("ws://127.0.0.1:{port}#nodelay=true");
    let router_runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let router_exchange = Exchange::new();
    let listener_url = url.clone();
    let _listener = router_runtime
        .block_on(async move { WebsocketListener::new(router_exchange, listener_url.as_str()).await })
        .unwrap();
    let clients = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    for _ in 0..3 {
        let (floor_p50, floor_rate) = floor::s0_floor(WARM_UP, MEASURED);
        println!(
            "{{\"scenario\":\"S0\",\"implementation\":\"hakuban 0.8.5 run\",\"results\":{{\"round_trips_per_s\":{floor_rate:.0},\"rtt_p50_us\":{floor_p50:.0}}}}}"
        );
        let url = url.clone();
        let mut rtts = clients.block_on(async move {
            let (a, b) = (Exchange::new(), Exchange::new());
            let _ca = WebsocketConnector::new(a.clone(), url.as_str()).unwrap();
            let _cb = WebsocketConnector::new(b.clone(), url.as_str()).unwrap();
            let mut a_expose = a.object_expose_contract((vec!["-"], "a")).build();
            let mut a_observe = a.object_observe_contract((vec!["-"], "b")).build();
            let mut b_expose = b.object_expose_contract((vec!["-"], "b")).build();
            let mut b_observe = b.object_observe_contract((vec!["-"], "a")).build();
            let answerer = tokio::spawn(async move {
                let mut sink = b_expose.next().await.unwrap();
                let mut stream = b_observe.next().await.unwrap();
                while let Some(seen) = stream.next().await {
                    let version = seen.version[0];
                    sink.send(small_state(version)).await.unwrap();
                    if version >= WARM_UP + MEASURED {
                        break;
                    }
                }
                (b_expose, b_observe, sink)
            });
            let mut sink = a_expose.next().await.unwrap();
            let mut stream = a_observe.next().await.unwrap();
            let mut rtts = Vec::with_capacity(MEASURED as usize);
            for i in 1..=WARM_UP + MEASURED {
                let start = Instant::now();
                sink.send(small_state(i)).await.unwrap();
                loop {
                    let seen = stream.next().await.unwrap();
                    if seen.version.first().copied().unwrap_or(-1) >= i {
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
        rtts.sort();
        let p50 = percentile(&rtts, 0.5);
        println!(
            "{{\"scenario\":\"S2\",\"implementation\":\"hakuban 0.8.5\",\"results\":{{\"round_trips_per_s\":{:.0},\"rtt_p50_us\":{p50:.0},\"rtt_p99_us\":{:.0},\"p50_vs_s0\":{:.2}}}}}",
            MEASURED as f64 / total.as_secs_f64(),
            percentile(&rtts, 0.99),
            p50 / floor_p50
        );
    }
    clients.shutdown_background();
    router_runtime.shutdown_background();
}
