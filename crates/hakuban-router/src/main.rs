//! # hakuban-router
//!
//! A WebSocket server that routes Hakuban objects and tags between clients: an exchange, a
//! listener, optionally a connector to a parent router (making this one a child in the tree),
//! monitor objects, a debug dump on SIGUSR2 or on any line read from stdin, access tokens
//! (`--auth`, reloaded on SIGUSR1), TLS (`--tls-cert`, `--tls-key`) and a clean exit on SIGINT,
//! SIGTERM or SIGHUP.

mod monitor;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use hakuban_tokio::{Exchange, WebsocketConnector, WebsocketListener};
use tokio::io::AsyncBufReadExt;
use tokio::signal::unix::{SignalKind, signal};

/// jemalloc, with its background purge thread (turned on first thing in `main`): chosen by
/// measurement (docs/performance.md). After a load leaves, it gives the memory back to the
/// system within seconds, where mimalloc and glibc keep what idle threads freed.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    /// Access policy (JSON, see docs/security.md): tokens and what each may observe and expose.
    /// Once given, peers without a known token get the file's anonymous rights (none by
    /// default). Reloaded on SIGUSR1 without dropping connections.
    #[arg(long, value_name = "FILE")]
    auth: Option<std::path::PathBuf>,
    /// TLS certificate chain (PEM) for a wss:// --bind URL.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// TLS private key (PEM) for a wss:// --bind URL.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// File holding the access token this router sends to its parent (--connect).
    #[arg(long, value_name = "FILE", requires = "connect")]
    connect_token_file: Option<std::path::PathBuf>,
}

/// Reads and parses the access policy file.
fn load_policy(path: &std::path::Path) -> Result<hakuban_tokio::AccessPolicy, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("--auth {}: {e}", path.display()))?;
    hakuban_tokio::AccessPolicy::from_json(&text).map_err(|e| format!("--auth {}: {e}", path.display()))
}

/// `url` with more fragment parameters; a value may not be empty or hold a comma (the
/// parameter separator). The error names the key, never the value (it may be a token).
fn with_parameters(url: &str, items: &[(&str, &str)]) -> Result<String, String> {
    let mut parsed = url::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    let mut fragment: Vec<String> =
        parsed.fragment().filter(|f| !f.is_empty()).map(str::to_string).into_iter().collect();
    for (key, value) in items {
        if value.is_empty() || value.contains(',') {
            return Err(format!("{key}: empty, or holds a comma"));
        }
        fragment.push(format!("{key}={value}"));
    }
    parsed.set_fragment(Some(&fragment.join(",")));
    Ok(parsed.to_string())
}

/// A path option's text, for a URL parameter.
fn path_text<'a>(option: &str, path: &'a std::path::Path) -> Result<&'a str, String> {
    path.to_str().ok_or_else(|| format!("--{option}: the path must be UTF-8"))
}

fn main() -> ExitCode {
    // Freed memory goes back to the system within seconds even while the router is idle.
    let _ = tikv_jemalloc_ctl::background_thread::write(true);
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
    let mut reload = signal(SignalKind::user_defined1()).map_err(|e| e.to_string())?;
    let exchange = Exchange::new();
    if let Some(path) = &options.auth {
        exchange.set_access_policy(Some(load_policy(path)?));
    }
    let bind = match (&options.tls_cert, &options.tls_key) {
        (Some(cert), Some(key)) => with_parameters(
            &options.bind,
            &[("tls-cert", path_text("tls-cert", cert)?), ("tls-key", path_text("tls-key", key)?)],
        )
        .map_err(|e| format!("--bind with --tls-cert/--tls-key: {e}"))?,
        _ => options.bind.clone(),
    };
    let listener = Arc::new(WebsocketListener::new(exchange.clone(), &bind).await.map_err(|e| e.to_string())?);
    let connector = match &options.connect {
        Some(url) => {
            let url = match &options.connect_token_file {
                Some(path) => {
                    let token = std::fs::read_to_string(path)
                        .map_err(|e| format!("--connect-token-file {}: {e}", path.display()))?;
                    with_parameters(url, &[("token", token.trim())])
                        .map_err(|e| format!("--connect-token-file {}: {e}", path.display()))?
                }
                None => url.clone(),
            };
            Some(Arc::new(WebsocketConnector::new(exchange.clone(), &url).map_err(|e| e.to_string())?))
        }
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
            _ = reload.recv() => match &options.auth {
                Some(path) => match load_policy(path) {
                    Ok(policy) => {
                        exchange.set_access_policy(Some(policy));
                        tracing::info!(file = %path.display(), "Got SIGUSR1, access policy reloaded");
                    }
                    Err(error) => tracing::error!(%error, "Got SIGUSR1, access policy NOT reloaded, the previous one stays"),
                },
                None => tracing::info!("Got SIGUSR1, but no --auth file to reload"),
            },
            line = stdin.next_line(), if stdin_open => match line {
                Ok(Some(_)) => dump(),
                Ok(None) | Err(_) => stdin_open = false,
            },
        }
    }
}
