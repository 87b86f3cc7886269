//! The router's command line: clear one-line errors and exit codes, never a panic; the debug dump.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::{Client, Router, eventually};

fn router(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hakuban-router")).args(args).output().expect("the router binary runs")
}

#[test]
fn help_and_version_work() {
    let help = router(&["--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for option in ["--bind", "--connect", "--threads", "--monitor-tag", "--rebalance-threshold"] {
        assert!(text.contains(option), "--help lists {option}");
    }
    assert!(router(&["--version"]).status.success());
}

#[test]
fn every_option_in_help_is_documented_in_operations_md() {
    let help = String::from_utf8_lossy(&router(&["--help"]).stdout).to_string();
    let operations = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/operations.md")).unwrap();
    let options: Vec<&str> = help
        .split_whitespace()
        .filter(|word| word.starts_with("--") && word.len() > 2)
        .map(|word| word.trim_end_matches(','))
        .collect();
    assert!(options.len() >= 7, "options found in --help: {options:?}");
    for option in options {
        assert!(operations.contains(&format!("`{option}")), "docs/operations.md does not describe {option}");
    }
}

#[test]
fn bad_options_fail_with_one_clear_line() {
    for args in [
        &["--threads", "0"][..],
        &["--bind", "not a url"][..],
        &["--bind", "http://127.0.0.1:0"][..],
        &["--bind", "ws://127.0.0.1:0#colour=blue"][..],
        &["--bind", "ws://127.0.0.1:0", "--connect", "ws://127.0.0.1:1#timeout=soon"][..],
    ] {
        let output = router(args);
        assert!(!output.status.success(), "{args:?} accepted");
        assert_ne!(output.status.code(), Some(101), "{args:?} panicked");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(stderr.lines().any(|l| l.contains("error") || l.contains("hakuban-router:")), "{args:?}: {stderr}");
    }
}

#[test]
fn an_address_in_use_fails_cleanly() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let output = router(&["--bind", &format!("ws://{address}")]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("hakuban-router:")).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("cannot listen"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_on_stdin_prints_a_debug_dump() {
    let mut router = Router::start("name=root", &["--monitor-tag", "monitor"]);
    let _client = Client::connect(&router.url);
    router.print_all();
    eventually(|| {
        !router.log_lines("exchange:").is_empty() && !router.log_lines("WebsocketListenerSnapshot").is_empty()
    })
    .await;
    router.exit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_connector_on_one_exchange_is_refused() {
    let router = Router::start("name=root", &[]);
    let client = Client::connect(&router.url);
    let second = hakuban_tokio::WebsocketConnector::new(client.exchange.clone(), &router.url);
    assert!(matches!(second, Err(hakuban_tokio::WebsocketError::UpstreamTaken)));
    router.exit();
}
