//! Test harness: the real router binary as a child process, the three topologies of the
//! reference suite, and clients connected to them. Waiting is always for an event, bounded by a
//! timeout that fails the test.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use futures::{Stream, StreamExt};
use hakuban_tokio::{
    Exchange, JsonSerializeState, ObjectState, ObjectStateSink, ObjectStateStream, WebsocketConnector,
};

pub mod peers;

/// Longest wait for anything in these tests.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A running `hakuban-router` process.
pub struct Router {
    child: Child,
    stdin: Option<ChildStdin>,
    /// The URL it listens on (real port), without fragment.
    pub url: String,
    /// Every line it wrote to stderr so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Router {
    /// Starts a router listening on an ephemeral port with `bind_parameters` (URL fragment) and
    /// extra arguments; returns once it listens.
    pub fn start(bind_parameters: &str, args: &[&str]) -> Router {
        Router::start_on("127.0.0.1:0", bind_parameters, args)
    }

    /// Like [`Router::start`], on a given address (to restart a killed router in place).
    pub fn start_on(address: &str, bind_parameters: &str, args: &[&str]) -> Router {
        Router::start_url(&format!("ws://{address}#{bind_parameters}"), args)
    }

    /// Like [`Router::start`], binding the whole URL `bind` (a `wss://` one, say).
    pub fn start_url(bind: &str, args: &[&str]) -> Router {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hakuban-router"))
            .arg("--bind")
            .arg(bind)
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the router binary starts");
        let stdin = child.stdin.take();
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (url_tx, url_rx) = mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("router started")
                    && let Some(url) = line.split("url=").nth(1).and_then(|rest| rest.split_whitespace().next())
                {
                    let _ = url_tx.send(url.trim_matches('"').split('#').next().unwrap_or_default().to_string());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let url = url_rx.recv_timeout(PATIENCE).unwrap_or_else(|_| {
            panic!("router did not start: {:?}", log.lock().unwrap());
        });
        Router { child, stdin, url, log }
    }

    /// `host:port` it listens on.
    pub fn address(&self) -> String {
        self.url.trim_start_matches("wss://").trim_start_matches("ws://").trim_end_matches('/').to_string()
    }

    /// Asks for a debug dump (a line on stdin).
    pub fn print_all(&mut self) {
        if let Some(stdin) = &mut self.stdin {
            let _ = stdin.write_all(b"\n");
            let _ = stdin.flush();
        }
    }

    /// Lines of its log containing `needle`.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        self.log.lock().unwrap().iter().filter(|line| line.contains(needle)).cloned().collect()
    }

    /// Asserts it is still running, stops it with SIGTERM and asserts a successful exit.
    pub fn exit(mut self) {
        assert!(self.child.try_wait().unwrap().is_none(), "router died early: {:?}", self.log.lock().unwrap());
        signal(&self.child, "TERM");
        let status = wait_exit(&mut self.child);
        assert!(status.success(), "router exited with {status:?}");
    }

    /// Sends it a signal (`USR1`, `USR2`...).
    pub fn signal(&self, name: &str) {
        signal(&self.child, name);
    }

    /// Kills it at once (SIGKILL).
    pub fn kill(mut self) {
        signal(&self.child, "KILL");
        let _ = wait_exit(&mut self.child);
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill").arg(format!("-{name}")).arg(child.id().to_string()).status();
    assert!(status.is_ok_and(|s| s.success()), "kill -{name} failed");
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(std::time::Instant::now() < deadline, "router did not exit");
        // Polling a child process for exit has no event to wait on in std.
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The reference suite's three topologies.
#[derive(Clone, Copy, Debug)]
pub enum Topology {
    /// One router; every client connects to it.
    SingleRouter,
    /// A root router and a main router connected to it; clients connect to the main one.
    TwoStackedRouters,
    /// A root router and one spoke router per client.
    StarOfRouters,
}

/// Routers of a topology, and the URL each client (1-based) connects to.
pub struct Network {
    pub routers: Vec<Router>,
    urls: Vec<String>,
}

impl Network {
    pub fn start(topology: Topology, clients: usize) -> Network {
        match topology {
            Topology::SingleRouter => {
                let root = Router::start("name=root", &["--monitor-tag", "monitor"]);
                let url = root.url.clone();
                Network { routers: vec![root], urls: vec![url; clients] }
            }
            Topology::TwoStackedRouters => {
                let root = Router::start("name=root", &["--monitor-tag", "monitor"]);
                let main = Router::start("name=main", &["--connect", &root.url]);
                let url = main.url.clone();
                Network { routers: vec![root, main], urls: vec![url; clients] }
            }
            Topology::StarOfRouters => {
                let root = Router::start("name=root", &["--monitor-tag", "monitor"]);
                let mut routers = vec![];
                let mut urls = vec![];
                for i in 1..=clients {
                    let spoke = Router::start(
                        &format!("name=spoke-{i}"),
                        &["--connect", &root.url, "--monitor-tag", &format!("monitor-{i}")],
                    );
                    urls.push(spoke.url.clone());
                    routers.push(spoke);
                }
                routers.insert(0, root);
                Network { routers, urls }
            }
        }
    }

    /// The URL client `i` (1-based) connects to.
    pub fn url(&self, client: usize) -> &str {
        &self.urls[client - 1]
    }

    /// Stops every router, asserting each was alive and exits cleanly.
    pub fn exit(self) {
        for router in self.routers.into_iter().rev() {
            router.exit();
        }
    }
}

/// An exchange connected upstream.
pub struct Client {
    pub exchange: Exchange,
    pub connector: Option<WebsocketConnector>,
}

impl Client {
    pub fn connect(url: &str) -> Client {
        let exchange = Exchange::new();
        let connector = WebsocketConnector::new(exchange.clone(), url).expect("valid URL");
        Client { exchange, connector: Some(connector) }
    }

    pub fn disconnect(&mut self) {
        self.connector = None;
    }

    pub fn reconnect(&mut self, url: &str) {
        self.connector = None;
        self.connector = Some(WebsocketConnector::new(self.exchange.clone(), url).expect("valid URL"));
    }
}

/// The next item, failing the test if none comes in time.
pub async fn next<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    tokio::time::timeout(PATIENCE, stream.next()).await.expect("timed out waiting for the next item")
}

/// Items until one satisfies `accept`, failing the test if it does not come in time.
pub async fn until<S, F>(stream: &mut S, mut accept: F) -> S::Item
where
    S: Stream + Unpin,
    F: FnMut(&S::Item) -> bool,
{
    let wait = async {
        loop {
            match stream.next().await {
                Some(item) if accept(&item) => return item,
                Some(_) => continue,
                None => panic!("the stream ended before the awaited item"),
            }
        }
    };
    tokio::time::timeout(PATIENCE, wait).await.expect("timed out waiting for an item")
}

/// Waits until `condition` holds, checking every 20 ms, failing the test after [`PATIENCE`].
/// For state that has no event to wait on (snapshots of another exchange).
pub async fn eventually(mut condition: impl FnMut() -> bool) {
    let wait = async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(PATIENCE, wait).await.expect("condition not reached in time");
}

/// Publishes `version` through `sink` and waits until `stream` shows it.
pub async fn publish_until_seen(sink: &ObjectStateSink, stream: &mut ObjectStateStream, version: i64) -> Vec<i64> {
    sink.publish(ObjectState::new(version).with_version([version]).json_serialize());
    let state = until(stream, |s| s.version == vec![version]).await;
    state.version
}

impl Router {
    /// The process id of the router.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The router process's peak resident set size so far (VmHWM), in bytes.
    pub fn peak_rss(&self) -> u64 {
        self.status_bytes("VmHWM:")
    }

    /// The router process's resident set size now (VmRSS), in bytes.
    pub fn rss(&self) -> u64 {
        self.status_bytes("VmRSS:")
    }

    fn status_bytes(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let kib = status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|rest| rest.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()));
        kib.unwrap_or(0) * 1024
    }
}
