//! # hakuban-router
//!
//! A WebSocket server that routes Hakuban objects and tags between clients: an exchange, a
//! listener, optionally a connector to a parent router (making this one a child in the tree),
//! monitor objects, a debug dump on SIGUSR2 or on any line read from stdin, and a clean exit on
//! SIGINT, SIGTERM or SIGHUP.

mod monitor;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use hakuban_tokio::{Exchange, WebsocketConnector, WebsocketListener};
use tokio::io::AsyncBufReadExt;
use tokio::signal::unix::{SignalKind, signal};

/// Like 0.8.5 (which linked jemalloc), the router picks a fast allocator for its many small
/// per-message allocations.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// WebSocket server that routes Hakuban objects and tags between clients.
#[derive(Parser, Debug)]
#[command(name = "hakuban-router", version, about)]
struct Options {
    /// Address to listen on; fragment parameters (#timeout=..,keep-alive=..,name=..) apply to
    /// every accepted connection.
    #[arg(short, long, default_value = "ws://127.0.0.1:3001")]
    bind: String,
    /// Parent router to connect to, making this router a child in the tree.
    #[arg(short, long)]
    connect: Option<String>,
    /// Tokio worker threads (default: the number of cores).
    #[arg(short, long, value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    /// Expose monitor objects ("exchange", "websocket-listener", "websocket-connector") under
    /// this tag.
    #[arg(long)]
    monitor_tag: Option<String>,
    /// Load difference needed before an object is moved between downstream exposers.
    #[arg(long, default_value_t = 0.1)]
    rebalance_threshold: f64,
}

fn main() -> ExitCode {
    let options = Options::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).init();

    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = options.threads {
        builder.worker_threads(usize::from(threads));
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("hakuban-router: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(options));
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hakuban-router: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(options: Options) -> Result<(), String> {
    if !(options.rebalance_threshold.is_finite() && options.rebalance_threshold >= 0.0) {
        return Err(format!("--rebalance-threshold must be a number >= 0, not {}", options.rebalance_threshold));
    }
    // Signal handlers come first: a supervisor may signal as soon as the router says it started.
    let mut interrupt = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut terminate = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut hangup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    let mut dump_signal = signal(SignalKind::user_defined2()).map_err(|e| e.to_string())?;
    let exchange = Exchange::new();
    let listener = Arc::new(WebsocketListener::new(exchange.clone(), &options.bind).await.map_err(|e| e.to_string())?);
    let connector = match &options.connect {
        Some(url) => Some(Arc::new(WebsocketConnector::new(exchange.clone(), url).map_err(|e| e.to_string())?)),
        None => None,
    };
    tracing::info!(url = listener.url(), rebalance_threshold = options.rebalance_threshold, "router started");
    let balancer = exchange.clone();
    let threshold = options.rebalance_threshold;
    tokio::spawn(async move {
        loop {
            let next = balancer.rebalance(Duration::from_secs(1), threshold);
            tokio::time::sleep_until(next.into()).await;
        }
    });
    if let Some(tag) = &options.monitor_tag {
        monitor::spawn(tag, &exchange, listener.clone(), connector.clone());
    }

    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    let dump = || {
        eprintln!("{}", exchange.snapshot());
        eprintln!("{:#?}", listener.snapshot());
        if let Some(connector) = &connector {
            eprintln!("{:#?}", connector.snapshot());
        }
    };
    loop {
        tokio::select! {
            _ = interrupt.recv() => { tracing::info!("Got SIGINT, exiting"); return Ok(()); }
            _ = terminate.recv() => { tracing::info!("Got SIGTERM, exiting"); return Ok(()); }
            _ = hangup.recv() => { tracing::info!("Got SIGHUP, exiting"); return Ok(()); }
            _ = dump_signal.recv() => dump(),
            line = stdin.next_line(), if stdin_open => match line {
                Ok(Some(_)) => dump(),
                Ok(None) | Err(_) => stdin_open = false,
            },
        }
    }
}
