//! BENCHMARKS.md S2, router ping-pong: exchanges A and B each connected to an in-process router
//! (its own single-worker runtime); A exposes `a` and observes `b`, B the reverse. Round trip i:
//! A sends `a` [i], B answers `b` [i] when it sees `a` >= i, A waits for `b` >= i. 200 warm-up
//! round trips, then 20,000 measured. Prints one JSON line per run: round trips per second and
//! RTT percentiles in microseconds. Run with `cargo xtask bench S2`.
//!
//! With `HAKUBAN_ROUTER_URL` set, the clients use that router instead (a real `hakuban-router`
//! process, to compare builds of it).
//!
//! S0 runs first in the same process, as the floor: two clients ping-pong 32-byte messages
//! through a plain TCP byte relay (its own thread, nothing but copying), 20,000 round trips; S2's
//! p50 is reported as a ratio to S0's.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;
mod floor;

use std::time::{Duration, Instant};

use futures::StreamExt;
use hakuban_tokio::{Exchange, WebsocketConnector};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const WARM_UP: i64 = 200;
/// Measured round trips (a smoke run measures fewer).
fn measured() -> i64 {
    if common::quick() { 1_000 } else { 20_000 }
}

fn main() {
    let default_runs = if common::quick() { 1 } else { 3 };
    let runs: usize = std::env::var("RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(default_runs);
    let router = common::InProcessRouter::start();
    let url = std::env::var("HAKUBAN_ROUTER_URL").unwrap_or_else(|_| router.url());
    let clients = common::clients_runtime();
    for _ in 0..runs {
        let (floor_p50, floor_rate) = floor::s0_floor(WARM_UP, measured());
        println!(
            "{{\"scenario\":\"S0\",\"params\":{{\"round_trips\":{}}},\"results\":{{\"round_trips_per_s\":{floor_rate:.0},\"rtt_p50_us\":{floor_p50:.0}}}}}",
            measured()
        );
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
                    sink.publish(common::small_state(version));
                    if version >= WARM_UP + measured() {
                        break;
                    }
                }
                (b_expose, b_observe, sink)
            });
            // The measuring side is a spawned task too (BENCHMARKS.md: producers and consumers
            // are spawned tasks), so a round trip wakes no thread outside the clients' runtime.
            let asker = tokio::spawn(async move {
                let sink = a_expose.next().await.unwrap();
                let mut stream = a_observe.next().await.unwrap();
                let mut rtts = Vec::with_capacity(measured() as usize);
                for i in 1..=WARM_UP + measured() {
                    let start = Instant::now();
                    sink.publish(common::small_state(i));
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
                (rtts, a_expose, a_observe, sink)
            });
            let (rtts, a_expose, a_observe, sink) = asker.await.unwrap();
            drop(answerer.await.unwrap());
            drop((a_expose, a_observe, sink));
            rtts
        });
        let total: Duration = rtts.iter().sum();
        let mut sorted = rtts.clone();
        sorted.sort();
        let pct = |p: f64| sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)].as_secs_f64() * 1e6;
        println!(
            "{{\"scenario\":\"S2\",\"params\":{{\"round_trips\":{}}},\"results\":{{\"round_trips_per_s\":{:.0},\"rtt_p50_us\":{:.0},\"rtt_p99_us\":{:.0},\"rtt_p999_us\":{:.0},\"p50_vs_s0\":{:.2},{}}}}}",
            measured(),
            measured() as f64 / total.as_secs_f64(),
            pct(0.5),
            pct(0.99),
            pct(0.999),
            pct(0.5) / floor_p50,
            common::process_figures()
        );
    }
    drop(router);
}
