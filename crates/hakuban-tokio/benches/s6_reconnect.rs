//! BENCHMARKS.md S6, reconnection: an exposer ticks every millisecond through an in-process
//! router (its own single-worker runtime) to an observer; the router is killed (runtime shut
//! down, sockets closed) and restarted on the same port after 500 ms, and in a second variant
//! after 550 ms, three cycles each. Measured per cycle: kill -> the observer sees a
//! not-synchronised state; restart -> the first version published after the restart reaches the
//! observer. Prints one JSON line per variant with the per-cycle figures and their median. A
//! third variant, `spread`, restarts a router with 1,000 clients after 500 ms and reports when
//! they reconnect (first, p50, p90, last, and the most in any 10 ms): the jitter must spread
//! them. Run with `cargo xtask bench S6`.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hakuban_tokio::{DataSynchronized, Exchange, ObjectState, WebsocketConnector, WebsocketListener};

const CYCLES: usize = 3;

/// A router on its own runtime, killable.
struct Router {
    runtime: Option<tokio::runtime::Runtime>,
    _listener: Option<WebsocketListener>,
}

impl Router {
    fn start(address: &str) -> Router {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let url = format!("ws://{address}");
        let listener = runtime.block_on(async {
            // The old socket may linger for a moment after a kill.
            for _ in 0..200 {
                if let Ok(listener) = WebsocketListener::new(Exchange::new(), &url).await {
                    return listener;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            panic!("cannot listen on {url} again");
        });
        Router { runtime: Some(runtime), _listener: Some(listener) }
    }

    fn kill(mut self) {
        drop(self._listener.take());
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_millis(100));
        }
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// What the observer saw: the newest version and when it last saw a stale state.
#[derive(Default)]
struct Seen {
    version: i64,
    stale_at: Option<Instant>,
    /// (version, instant) of every state received.
    log: Vec<(i64, Instant)>,
}

fn variant(outage: Duration, clients: &tokio::runtime::Runtime) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let address = format!("127.0.0.1:{port}");
    let url = format!("ws://{address}");
    let mut router = Some(Router::start(&address));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let published = Arc::new(Mutex::new(Vec::<(i64, Instant)>::new()));
    let (observer, exposer) = (Exchange::new(), Exchange::new());
    let _guard = clients.enter();
    let _connectors = (
        WebsocketConnector::new(observer.clone(), &url).unwrap(),
        WebsocketConnector::new(exposer.clone(), &url).unwrap(),
    );
    let mut observe = observer.object_observe_contract((["s6"], "tick")).build();
    let seen_by_task = seen.clone();
    clients.spawn(async move {
        while let Some(mut stream) = observe.next().await {
            while let Some(state) = stream.next().await {
                let mut seen = seen_by_task.lock().unwrap();
                let now = Instant::now();
                if state.synchronized != DataSynchronized::Now {
                    seen.stale_at.get_or_insert(now);
                }
                let version = state.version.first().copied().unwrap_or(0);
                seen.version = seen.version.max(version);
                seen.log.push((version, now));
            }
        }
    });
    let mut expose = exposer.object_expose_contract((["s6"], "tick")).build();
    let published_by_task = published.clone();
    clients.spawn(async move {
        let mut version = 0i64;
        // The first sink keeps applying after reconnections (a held sink is never discarded),
        // which is what an exposer that ignores revocations does.
        if let Some(sink) = expose.next().await {
            let mut ticks = tokio::time::interval(Duration::from_millis(1));
            loop {
                ticks.tick().await;
                version += 1;
                published_by_task.lock().unwrap().push((version, Instant::now()));
                sink.publish(ObjectState::new(Arc::new(version.to_le_bytes().to_vec())).with_version([version]));
            }
        }
    });
    let wait_until = |what: &str, condition: &dyn Fn(&Seen) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !condition(&seen.lock().unwrap()) {
            assert!(Instant::now() < deadline, "S6: timed out waiting for {what}");
            std::thread::sleep(Duration::from_micros(200));
        }
    };
    wait_until("the first version", &|s| s.version > 0);
    let (mut to_first, mut to_stale) = (Vec::new(), Vec::new());
    for _ in 0..CYCLES {
        std::thread::sleep(Duration::from_secs(1)); // run for a while between outages
        seen.lock().unwrap().stale_at = None;
        let killed_at = Instant::now();
        router.take().unwrap().kill();
        wait_until("the stale notice", &|s| s.stale_at.is_some());
        to_stale.push(seen.lock().unwrap().stale_at.unwrap().duration_since(killed_at).as_secs_f64() * 1e3);
        std::thread::sleep(outage.saturating_sub(killed_at.elapsed()));
        let restarted_at = Instant::now();
        router = Some(Router::start(&address));
        // The first version published after the restart (the exposer's first tick once back).
        let before = seen.lock().unwrap().log.len();
        wait_until("a version published after the restart", &|s| {
            let published = published.lock().unwrap();
            s.log[before.min(s.log.len())..].iter().any(|(version, _)| {
                published.iter().rev().find(|(v, _)| v == version).is_some_and(|(_, at)| *at >= restarted_at)
            })
        });
        let arrival = {
            let seen = seen.lock().unwrap();
            let published = published.lock().unwrap();
            seen.log[before..]
                .iter()
                .find(|(version, _)| {
                    published.iter().rev().find(|(v, _)| v == version).is_some_and(|(_, at)| *at >= restarted_at)
                })
                .map(|(_, at)| *at)
                .unwrap()
        };
        to_first.push(arrival.duration_since(restarted_at).as_secs_f64() * 1e3);
    }
    let round = |values: &[f64]| values.iter().map(|v| (v * 10.0).round() / 10.0).collect::<Vec<_>>();
    println!(
        "{{\"scenario\":\"S6\",\"params\":{{\"outage_ms\":{},\"cycles\":{CYCLES}}},\"results\":{{\"restart_to_first_version_ms\":{:?},\"median_restart_to_first_version_ms\":{:.1},\"kill_to_stale_ms\":{:?},\"median_kill_to_stale_ms\":{:.1}}}}}",
        outage.as_millis(),
        round(&to_first),
        median(to_first.clone()),
        round(&to_stale),
        median(to_stale.clone()),
    );
    if let Some(router) = router {
        router.kill();
    }
}

/// The spread of reconnections: `n` clients of one router that is killed and restarted after
/// 500 ms. Each client's reconnection instant after the restart (polled every millisecond).
fn spread(n: usize, clients: &tokio::runtime::Runtime) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let address = format!("127.0.0.1:{port}");
    let url = format!("ws://{address}");
    let router = Router::start(&address);
    let _guard = clients.enter();
    let connectors: Vec<(Exchange, WebsocketConnector)> = (0..n)
        .map(|_| {
            let exchange = Exchange::new();
            let connector = WebsocketConnector::new(exchange.clone(), &url).unwrap();
            (exchange, connector)
        })
        .collect();
    let all_up = || connectors.iter().all(|(_, c)| c.snapshot().upstream_connection.is_some());
    let deadline = Instant::now() + Duration::from_secs(60);
    while !all_up() {
        assert!(Instant::now() < deadline, "S6 spread: the clients did not all connect");
        std::thread::sleep(Duration::from_millis(5));
    }
    router.kill();
    let down = || connectors.iter().all(|(_, c)| c.snapshot().upstream_connection.is_none());
    while !down() {
        assert!(Instant::now() < deadline, "S6 spread: the clients did not all see the kill");
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(500));
    let restarted_at = Instant::now();
    let router = Router::start(&address);
    let mut back: Vec<Option<f64>> = vec![None; n];
    let deadline = Instant::now() + Duration::from_secs(60);
    while back.iter().any(Option::is_none) {
        assert!(Instant::now() < deadline, "S6 spread: the clients did not all reconnect");
        for (slot, (_, connector)) in back.iter_mut().zip(&connectors) {
            if slot.is_none() && connector.snapshot().upstream_connection.is_some() {
                *slot = Some(restarted_at.elapsed().as_secs_f64() * 1e3);
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut back: Vec<f64> = back.into_iter().flatten().collect();
    back.sort_by(f64::total_cmp);
    let at = |p: f64| back[((back.len() as f64 * p) as usize).min(back.len() - 1)];
    // The busiest 10 ms: how many clients reconnected in it.
    let busiest = back.iter().map(|t| back.iter().filter(|u| **u >= *t && **u < t + 10.0).count()).max().unwrap_or(0);
    println!(
        "{{\"scenario\":\"S6\",\"params\":{{\"variant\":\"spread\",\"clients\":{n},\"outage_ms\":500}},\"results\":{{\"first_reconnect_ms\":{:.1},\"p50_reconnect_ms\":{:.1},\"p90_reconnect_ms\":{:.1},\"last_reconnect_ms\":{:.1},\"spread_ms\":{:.1},\"busiest_10ms\":{busiest}}}}}",
        at(0.0),
        at(0.5),
        at(0.9),
        at(1.0),
        at(1.0) - at(0.0),
    );
    drop(connectors);
    router.kill();
}

fn main() {
    let clients = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    for outage in [Duration::from_millis(500), Duration::from_millis(550)] {
        variant(outage, &clients);
    }
    spread(if common::quick() { 100 } else { 1_000 }, &clients);
}
