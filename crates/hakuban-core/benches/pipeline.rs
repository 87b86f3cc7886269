//! The engine's cost per state, without a runtime, sockets or threads: an exposer exchange, a
//! router exchange and an observer exchange joined by in-memory [`Link`]s on one thread, S8's
//! shape (1,000 objects under one tag expose contract, each observed by its own contract), each
//! round a new state for every object, pumped until the observer holds them all. Every state is
//! encoded, decoded and applied on each of the two hops, as through a real router, so this is
//! the CPU S8 spends per state minus the transport.
//!
//! Prints one JSON line: nanoseconds per state delivered. Under valgrind's callgrind
//! (`valgrind --tool=callgrind target/release/deps/pipeline-* --bench`) the instruction count is
//! repeatable on a noisy machine; divide by the states printed to compare two builds.
//! `PIPELINE_ROUNDS=N` sends N rounds instead of 200.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use futures::{FutureExt, StreamExt};
use hakuban_core::{Exchange, Link, LinkConfig, LinkRole, ObjectState, ObjectStateStream};
use serde_json::json;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A child's upstream link and its parent's downstream link for it.
struct Wire {
    up: Link,
    down: Link,
}

fn connect(child: &Exchange, parent: &Exchange) -> Wire {
    Wire {
        up: child.open_link(LinkRole::Upstream, LinkConfig::default()).unwrap(),
        down: parent.open_link(LinkRole::Downstream, LinkConfig::default()).unwrap(),
    }
}

/// Moves messages both ways until every link is quiet.
fn pump(wires: &mut [&mut Wire], now: Instant) {
    loop {
        let mut moved = false;
        for wire in wires.iter_mut() {
            while let Some(message) = wire.up.poll_transmit(now) {
                moved = true;
                wire.down.receive(&message, now).unwrap();
            }
            while let Some(message) = wire.down.poll_transmit(now) {
                moved = true;
                wire.up.receive(&message, now).unwrap();
            }
        }
        if !moved {
            return;
        }
    }
}

/// The stream's or contract's next item if it is ready now.
fn poll_next<S: futures::Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    stream.next().now_or_never().flatten()
}

/// The newest version the stream has, reading everything it holds.
fn latest_version(stream: &mut ObjectStateStream) -> Option<i64> {
    let mut last = None;
    while let Some(state) = poll_next(stream) {
        last = state.version.first().copied();
    }
    last
}

fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let (objects, rounds) = if full { (1_000, 200) } else { (50, 5) };
    let rounds = std::env::var("PIPELINE_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(rounds);
    let (exposer, router, observer) = (Exchange::new(), Exchange::new(), Exchange::new());
    let (mut exposing, mut observing) = (connect(&exposer, &router), connect(&observer, &router));
    let now = Instant::now();
    let mut contracts = Vec::new();
    let mut streams = Vec::new();
    for id in 0..objects {
        let mut contract = observer.object_observe_contract((["t"], json!({ "id": id }))).build();
        streams.push(poll_next(&mut contract).expect("a stream at once"));
        contracts.push(contract);
    }
    let mut expose = exposer.tag_expose_contract("t").build();
    pump(&mut [&mut exposing, &mut observing], now);
    let mut sinks = Vec::new();
    while let Some(sink) = poll_next(&mut expose) {
        sinks.push(sink);
    }
    assert_eq!(sinks.len(), objects, "every observed object reached the tag exposer");
    let publish_round = |round: i64| {
        for sink in &sinks {
            sink.publish(ObjectState::new(Arc::new(format!("[{round}]").into_bytes())).with_version([round]));
        }
    };
    publish_round(0);
    pump(&mut [&mut exposing, &mut observing], now);
    let start = Instant::now();
    for round in 1..=rounds {
        publish_round(round);
        pump(&mut [&mut exposing, &mut observing], now);
        for stream in &mut streams {
            assert_eq!(latest_version(stream), Some(round), "each round reaches every observer");
        }
    }
    let elapsed = start.elapsed();
    let states = objects as u64 * rounds as u64;
    println!(
        "{}",
        json!({
            "scenario": "pipeline",
            "params": { "objects": objects, "rounds": rounds, "hops": 2 },
            "results": {
                "states": states,
                "ns_per_state": (elapsed.as_nanos() as f64 / states as f64).round(),
            }
        })
    );
}
