//! What the benchmarks share: the process's peak RSS and CPU time from /proc, whether this is a
//! `--quick` smoke run (`HAKUBAN_BENCH_QUICK=1`), the small payload and waiting for clients to
//! connect.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use hakuban_tokio::{Exchange, ObjectState};

/// BENCHMARKS.md's small payload: `{"seq":<n>,"pad":"xxx…"}`, exactly 64 bytes, version [n].
pub fn small_state(n: i64) -> ObjectState<hakuban_tokio::DataBytes> {
    let mut payload = format!("{{\"seq\":{n},\"pad\":\"").into_bytes();
    payload.resize(62, b'x');
    payload.extend_from_slice(b"\"}");
    ObjectState::new(Arc::new(payload)).with_version([n]).with_format(["JSON"])
}

/// Waits until every exchange has an upstream connection (a minute at most).
pub async fn connected(exchanges: &[&Exchange]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !exchanges.iter().all(|e| e.snapshot().upstream_connection) {
        assert!(Instant::now() < deadline, "the clients did not connect");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A smoke run: smaller sizes, figures not meant to be compared. Either asked for
/// (`cargo xtask bench --quick`), or the bench runs as a test (`cargo test --all-targets` passes
/// no `--bench`).
pub fn quick() -> bool {
    std::env::var("HAKUBAN_BENCH_QUICK").is_ok_and(|v| v == "1") || !std::env::args().any(|a| a == "--bench")
}

/// A `/proc/<pid>/status` field in KiB (`self` for this process).
fn status_kib(pid: &str, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Peak resident set size (VmHWM), bytes.
pub fn peak_rss() -> u64 {
    status_kib("self", "VmHWM:") * 1024
}

/// Resident set size now (VmRSS), bytes.
pub fn rss() -> u64 {
    rss_of("self")
}

/// Resident set size of process `pid` now, bytes.
pub fn rss_of(pid: &str) -> u64 {
    status_kib(pid, "VmRSS:") * 1024
}

/// Resets the peak RSS to the current RSS (Linux `clear_refs` 5).
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// CPU seconds (user + system) of process `pid` (`self` for this one).
pub fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the command name; the clock
    // tick is 100 Hz on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

/// The process figures as JSON members, to append to a result object.
pub fn process_figures() -> String {
    format!("\"peak_rss_bytes\":{},\"cpu_s\":{:.3}", peak_rss(), cpu_seconds("self"))
}

/// A router in the bench process: its exchange behind a plain WebSocket listener, on a
/// single-worker runtime of its own, as in BENCHMARKS.md's in-process scenarios.
pub struct InProcessRouter {
    /// The router's exchange.
    pub exchange: Exchange,
    listener: Option<hakuban_tokio::WebsocketListener>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl InProcessRouter {
    /// Starts one on a free port of 127.0.0.1.
    pub fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let exchange = Exchange::new();
        let listener = runtime
            .block_on(hakuban_tokio::WebsocketListener::new(exchange.clone(), "ws://127.0.0.1:0#nodelay=true"))
            .unwrap();
        InProcessRouter { exchange, listener: Some(listener), runtime: Some(runtime) }
    }

    /// The URL clients connect to.
    pub fn url(&self) -> String {
        self.listener.as_ref().map(|l| l.url().to_string()).unwrap_or_default()
    }

    /// The listening address.
    pub fn address(&self) -> std::net::SocketAddr {
        self.listener.as_ref().map(|l| l.local_addr()).unwrap()
    }
}

impl Drop for InProcessRouter {
    fn drop(&mut self) {
        drop(self.listener.take());
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The clients' runtime of the in-process scenarios: two workers.
pub fn clients_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}
