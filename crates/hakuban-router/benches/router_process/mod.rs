//! The real `hakuban-router` binary as a child process of a bench: started on an ephemeral port,
//! its log drained, killed when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub struct RouterProcess {
    child: Child,
    /// The URL it listens on, without fragment.
    pub url: String,
}

impl RouterProcess {
    pub fn start() -> RouterProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hakuban-router"))
            .args(["--bind", "ws://127.0.0.1:0"])
            // More router options for an experiment, e.g. `HAKUBAN_BENCH_ROUTER_ARGS="--threads 1"`.
            .args(std::env::var("HAKUBAN_BENCH_ROUTER_ARGS").unwrap_or_default().split_whitespace())
            .env("RUST_LOG", "warn,hakuban_router=info")
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let url = loop {
            let line = lines.next().expect("the router starts").unwrap();
            if let Some(rest) = line.split("url=").nth(1).filter(|_| line.contains("router started")) {
                break rest.split_whitespace().next().unwrap().trim_matches('"').split('#').next().unwrap().to_string();
            }
        };
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        RouterProcess { child, url }
    }

    /// Its process id, for /proc.
    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }
}

impl Drop for RouterProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
