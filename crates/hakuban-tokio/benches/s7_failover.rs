//! BENCHMARKS.md S7, failover: two exposer processes of one object (this bench binary run again
//! as a child with `S7_EXPOSER=<id>`), and one observer, through an in-process router. Both
//! exposers publish every millisecond while elected, versions from the wall clock they share (so
//! the survivor's states are newer). The elected exposer's process is killed with SIGKILL.
//! Measured: kill -> the first state from the other exposer at the observer, 5 times (the killed
//! one is started again in between), and the median. One JSON line. Run with
//! `cargo xtask bench S7`.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use hakuban_tokio::{Exchange, ObjectState, WebsocketConnector};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An exposer process: this binary again, with `S7_EXPOSER` and `S7_URL` set.
struct Exposer {
    child: Child,
}

impl Exposer {
    fn start(id: u8, url: &str) -> Exposer {
        let child = Command::new(std::env::current_exe().unwrap())
            .env("S7_EXPOSER", id.to_string())
            .env("S7_URL", url)
            // Its stdin is how it notices this process is gone (see `exposer_process`).
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        Exposer { child }
    }

    /// SIGKILL, as BENCHMARKS.md asks: the kernel closes its sockets, nothing of it says goodbye.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child's life: an exchange, a connector and a sink ticking every millisecond while this
/// process is the elected exposer. Ends when the parent's end of stdin closes.
fn exposer_process(id: u8, url: String) {
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    runtime.block_on(async move {
        let exchange = Exchange::new();
        let _upstream = WebsocketConnector::new(exchange.clone(), &url).unwrap();
        let mut expose = exchange.object_expose_contract((["s7"], "failover")).build();
        while let Some(mut sink) = expose.next().await {
            let _params = sink.next().await;
            let mut ticks = tokio::time::interval(Duration::from_millis(1));
            // Until the sink ends (the election moved), then wait for the next one.
            loop {
                tokio::select! {
                    end = sink.next() => if end.is_none() { break },
                    _ = ticks.tick() => {
                        let version = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_micros() as i64;
                        sink.publish(ObjectState::new(Arc::new(vec![id])).with_version([version]));
                    }
                }
            }
        }
    });
}

/// The exposer whose state the observer saw last, and when.
type Last = Arc<Mutex<Option<(u8, Instant)>>>;

fn wait_for(last: &Last, what: &str, condition: impl Fn(Option<(u8, Instant)>) -> bool) -> (u8, Instant) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = *last.lock().unwrap();
        if condition(seen) {
            return seen.unwrap();
        }
        assert!(Instant::now() < deadline, "S7: timed out waiting for {what}");
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn main() {
    if let (Ok(id), Ok(url)) = (std::env::var("S7_EXPOSER"), std::env::var("S7_URL")) {
        return exposer_process(id.parse().unwrap(), url);
    }
    let cycles = if common::quick() { 2 } else { 5 };
    let router = common::InProcessRouter::start();
    let url = router.url();
    let clients = common::clients_runtime();
    let last: Last = Arc::new(Mutex::new(None));
    let seen = last.clone();
    let observer_url = url.clone();
    clients.spawn(async move {
        let exchange = Exchange::new();
        let _upstream = WebsocketConnector::new(exchange.clone(), &observer_url).unwrap();
        let mut observe = exchange.object_observe_contract((["s7"], "failover")).build();
        while let Some(mut stream) = observe.next().await {
            while let Some(state) = stream.next().await {
                if let Some(id) = state.data.first() {
                    *seen.lock().unwrap() = Some((*id, Instant::now()));
                }
            }
        }
    });
    let mut exposers: [Option<Exposer>; 2] = [Some(Exposer::start(0, &url)), Some(Exposer::start(1, &url))];
    let mut failovers = Vec::new();
    for _ in 0..cycles {
        let (elected, _) = wait_for(&last, "a state", |s| s.is_some());
        // Run for a while with both up, then kill the one the observer hears from.
        std::thread::sleep(Duration::from_millis(300));
        let (elected, _) = wait_for(&last, "a state", |s| s.is_some_and(|(id, _)| id == elected));
        let killed_at = Instant::now();
        exposers[usize::from(elected)].take().unwrap().kill();
        let (_, at) =
            wait_for(&last, "the other exposer's state", |s| s.is_some_and(|(id, at)| id != elected && at > killed_at));
        failovers.push(at.duration_since(killed_at).as_secs_f64() * 1e3);
        exposers[usize::from(elected)] = Some(Exposer::start(elected, &url));
    }
    let mut sorted = failovers.clone();
    sorted.sort_by(f64::total_cmp);
    let rounded: Vec<f64> = failovers.iter().map(|v| (v * 10.0).round() / 10.0).collect();
    println!(
        "{{\"scenario\":\"S7\",\"params\":{{\"cycles\":{cycles}}},\"results\":{{\"kill_to_other_exposer_ms\":{rounded:?},\"median_kill_to_other_exposer_ms\":{:.1},{}}}}}",
        sorted[sorted.len() / 2],
        common::process_figures()
    );
    for exposer in exposers.into_iter().flatten() {
        exposer.kill();
    }
    clients.shutdown_background();
}
