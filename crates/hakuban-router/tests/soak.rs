//! Soak, through the real router: 500 client links and 50,000 objects with updates flowing, plus
//! a client that never reads. Every observer gets every object's last version (no link stalled),
//! the router's memory stays bounded while the non-reader sits on its socket, and after all
//! clients leave the router's resident memory (from /proc) comes back near where it started.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::Message;
use common::peers::{hello, raw_websocket};
use common::{Client, PATIENCE, Router, next, until};
use hakuban_proto::{DeclarationState, Frame, encode_batch};
use hakuban_tokio::{ObjectState, ObjectStateSink};
use serde_json::json;

/// Exposer/observer client pairs: 500 links.
const PAIRS: usize = 250;
/// Objects per pair: 50,000 in all.
const PER_PAIR: usize = 200;
const ROUNDS: i64 = 3;

fn state(version: i64) -> ObjectState<hakuban_tokio::DataBytes> {
    // A few hundred bytes, different every round.
    ObjectState::new(std::sync::Arc::new(vec![version as u8; 300])).with_version([version]).with_format(["raw"])
}

/// Waits (bounded) until the router's resident memory is at most `limit` bytes.
async fn rss_falls_to(router: &Router, limit: u64) -> u64 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let rss = router.rss();
        if rss <= limit || Instant::now() > deadline {
            return rss;
        }
        // Memory has no event to wait on; the allocator returns pages over time.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_links_and_fifty_thousand_objects_then_memory_comes_back() {
    let started = Instant::now();
    let router = Router::start("", &[]);
    // The baseline: the router with its runtime up and one connection served.
    {
        let warm = Client::connect(&router.url);
        let mut observe = warm.exchange.object_observe_contract("warm-up").build();
        let mut expose = warm.exchange.object_expose_contract("warm-up").build();
        let sink = next(&mut expose).await.unwrap();
        let mut stream = next(&mut observe).await.unwrap();
        common::publish_until_seen(&sink, &mut stream, 1).await;
    }
    let baseline = router.rss();

    // A client that never reads, observing the first pair's objects.
    let (mut never_reads, _) = raw_websocket(&router).await;
    let frames = vec![
        hello(),
        Frame::DeclareTag { id: 1, json: "\"soak-0\"".into() },
        Frame::TagInterest { tag: 1, state: DeclarationState { observe: true, expose: None } },
    ];
    never_reads.send(Message::binary(encode_batch(&frames))).await.unwrap();

    let mut clients = Vec::new();
    let mut tag_contracts = Vec::new();
    let mut expose_contracts = Vec::new();
    for pair in 0..PAIRS {
        let (exposer, observer) = (Client::connect(&router.url), Client::connect(&router.url));
        let tag = format!("soak-{pair}");
        tag_contracts.push(observer.exchange.tag_observe_contract(tag.as_str()).build());
        for i in 0..PER_PAIR {
            let descriptor = ([tag.as_str()], json!({"pair": pair, "object": i}));
            expose_contracts.push(exposer.exchange.object_expose_contract(descriptor).build());
        }
        clients.push((exposer, observer));
    }
    let mut sinks: Vec<ObjectStateSink> = Vec::with_capacity(PAIRS * PER_PAIR);
    for contract in &mut expose_contracts {
        sinks.push(next(contract).await.expect("every object is observed, so every exposer is elected"));
    }
    for round in 1..=ROUNDS {
        for sink in &sinks {
            sink.publish(state(round));
        }
        tokio::task::yield_now().await;
    }
    let mut received = 0;
    for contract in &mut tag_contracts {
        for _ in 0..PER_PAIR {
            let mut stream = next(contract).await.expect("a stream per object of the tag");
            until(&mut stream, |s| s.version == vec![ROUNDS]).await;
            received += 1;
        }
    }
    assert_eq!(received, PAIRS * PER_PAIR, "every observer has every object's last version");
    let peak = router.peak_rss();
    let busy = router.rss();
    assert!(router.log_lines("timeout").is_empty(), "no link timed out: {:?}", router.log_lines("timeout"));
    // The non-reader holds at most the latest state of its 200 objects at the router.
    assert!(peak < 1024 << 20, "router peak RSS {} MiB", peak >> 20);

    drop(sinks);
    drop(expose_contracts);
    drop(tag_contracts);
    drop(clients);
    drop(never_reads);
    // Near the start: within 24 MiB of it, or an eighth of what the load added.
    let limit = baseline + (24 << 20).max((peak - baseline) / 8);
    let after = rss_falls_to(&router, limit).await;
    println!(
        "soak: {} links, {} objects, {ROUNDS} rounds in {:?}; router RSS baseline {} MiB, busy {} MiB, peak {} MiB, after {} MiB",
        2 * PAIRS + 1,
        PAIRS * PER_PAIR,
        started.elapsed(),
        baseline >> 20,
        busy >> 20,
        peak >> 20,
        after >> 20
    );
    assert!(after <= limit, "router RSS after the clients left: {} MiB, limit {} MiB", after >> 20, limit >> 20);
    router.exit();
}
