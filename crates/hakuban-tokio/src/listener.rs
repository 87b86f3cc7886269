//! [`WebsocketListener`]: accepts children (clients or other routers) on a TCP port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use hakuban_core::{Exchange, LinkRole};
use registry::Registry;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::WebsocketError;
use crate::params::ConnectionParameters;
use crate::tls::Socket;
use crate::transport::drive;

/// One accepted connection, as [`WebsocketListener::snapshot`] shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DownstreamConnectionSnapshot {
    /// The link's id in the exchange.
    pub downstream_connection_id: u64,
    /// The peer's address.
    pub remote_address: String,
    /// Our name on this connection.
    pub local_name: String,
    /// The peer's name, once its hello arrived.
    pub remote_name: Option<String>,
    /// Σ 1/capacity of the objects assigned to the peer.
    pub load: f32,
    /// The peer's load limit in force, if it set one.
    pub load_limit: Option<f32>,
}

/// What a listener is doing, for monitoring.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WebsocketListenerSnapshot {
    /// The URL it listens on (with the real port).
    pub url: String,
    /// Its open connections.
    pub downstream_connections: Vec<DownstreamConnectionSnapshot>,
}

/// Accepts WebSocket connections and attaches each as a downstream link of an exchange.
///
/// Dropping the listener stops accepting; connections already open keep running until they end.
pub struct WebsocketListener {
    exchange: Exchange,
    url: String,
    local_addr: SocketAddr,
    registry: Arc<Registry>,
    accept_task: JoinHandle<()>,
}

impl WebsocketListener {
    /// Binds `url` (`ws://host:port`, port 0 for an ephemeral one; fragment parameters apply to
    /// every accepted connection) and starts accepting. Must be called inside a tokio runtime.
    ///
    /// A `wss://` URL serves TLS with the PEM files of its `tls-cert` and `tls-key` parameters
    /// (`wss://0.0.0.0:3001#tls-cert=/etc/hakuban/cert.pem,tls-key=/etc/hakuban/key.pem`).
    pub async fn new(exchange: Exchange, url: &str) -> Result<WebsocketListener, WebsocketError> {
        let parsed = url::Url::parse(url).map_err(|e| WebsocketError::InvalidUrl(format!("{url}: {e}")))?;
        let tls = match parsed.scheme() {
            "ws" => false,
            "wss" => true,
            _ => return Err(WebsocketError::InvalidUrl(format!("{url}: a listener needs a ws:// or wss:// URL"))),
        };
        let host = parsed.host_str().ok_or_else(|| WebsocketError::InvalidUrl(format!("{url}: no host")))?;
        let port = parsed.port().ok_or_else(|| WebsocketError::InvalidUrl(format!("{url}: no port")))?;
        let parameters = ConnectionParameters::parse(parsed.fragment()).map_err(WebsocketError::InvalidUrl)?;
        let tls = match (tls, &parameters.tls_cert, &parameters.tls_key) {
            (true, Some(cert), Some(key)) => Some(crate::tls::acceptor(cert, key)?),
            (true, _, _) => {
                return Err(WebsocketError::InvalidUrl(format!("{url}: wss:// needs tls-cert=FILE and tls-key=FILE")));
            }
            (false, None, None) => None,
            (false, _, _) => {
                return Err(WebsocketError::InvalidUrl(format!("{url}: tls-cert and tls-key need a wss:// URL")));
            }
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let listener =
            TcpListener::bind((host, port)).await.map_err(|e| WebsocketError::Bind(format!("{host}:{port}: {e}")))?;
        let local_addr = listener.local_addr().map_err(|e| WebsocketError::Bind(e.to_string()))?;
        let mut real = parsed.clone();
        let _ = real.set_port(Some(local_addr.port()));
        let registry = Arc::new(Registry::default());
        let accept_task = tokio::spawn(accept_loop(listener, exchange.clone(), parameters, tls, registry.clone()));
        tracing::info!(url = %real, "listening");
        Ok(WebsocketListener { exchange, url: real.to_string(), local_addr, registry, accept_task })
    }

    /// The URL it listens on, with the real port.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The bound socket address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The open connections.
    pub fn snapshot(&self) -> WebsocketListenerSnapshot {
        WebsocketListenerSnapshot {
            url: self.url.clone(),
            downstream_connections: self.registry.snapshot(&self.exchange),
        }
    }
}

impl Drop for WebsocketListener {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

impl std::fmt::Debug for WebsocketListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebsocketListener").field("url", &self.url).finish()
    }
}

async fn accept_loop(
    listener: TcpListener,
    exchange: Exchange,
    parameters: ConnectionParameters,
    tls: Option<TlsAcceptor>,
    registry: Arc<Registry>,
) {
    let admission = Arc::new(admission::Admission::new(&parameters));
    loop {
        match listener.accept().await {
            Ok((socket, peer)) => {
                // Over a limit: the socket is closed at once, before any handshake work.
                let Some(ticket) = admission.admit(peer.ip()) else { continue };
                let serving = serve(socket, peer, exchange.clone(), parameters.clone(), tls.clone(), registry.clone());
                tokio::spawn(async move {
                    serving.await;
                    drop(ticket);
                });
            }
            Err(error) => {
                // Out of descriptors and the like: wait a little instead of spinning or dying.
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve(
    socket: TcpStream,
    peer: SocketAddr,
    exchange: Exchange,
    parameters: ConnectionParameters,
    tls: Option<TlsAcceptor>,
    registry: Arc<Registry>,
) {
    let _ = socket.set_nodelay(parameters.nodelay);
    let config = parameters.link_config("router");
    let ws_config = crate::transport::websocket_config(&config.limits);
    // The whole handshake (TLS and WebSocket) has one deadline.
    let handshake = async {
        let (socket, wrote) = handshake_socket(socket, tls).await?;
        let ws = async_tungstenite::tokio::accept_async_with_config(socket, Some(ws_config))
            .await
            .map_err(|error| format!("WebSocket handshake failed: {error}"))?;
        Ok::<_, String>((ws, wrote))
    };
    let (ws, wrote) = match tokio::time::timeout(parameters.handshake_timeout, handshake).await {
        Ok(Ok(done)) => done,
        Ok(Err(error)) => {
            tracing::warn!(%peer, %error, "connection refused");
            return;
        }
        Err(_) => {
            tracing::warn!(%peer, "handshake timed out");
            return;
        }
    };
    let local_name = config.name.clone();
    let link = match exchange.open_link(LinkRole::Downstream, config) {
        Ok(link) => link,
        Err(error) => {
            tracing::error!(%peer, %error, "cannot open a downstream link");
            return;
        }
    };
    let guard = registry.add(link.id(), peer, local_name);
    let span = tracing::info_span!("link", link = link.id(), %peer, name = tracing::field::Empty);
    let reason = tracing::Instrument::instrument(drive(ws, link, wrote), span).await;
    drop(guard);
    // One line per connection: a peer's misbehaviour or failure is a warning.
    if reason.is_violation() || reason.is_timeout() {
        tracing::warn!(%peer, %reason, "downstream connection ended");
    } else {
        tracing::info!(%peer, %reason, "downstream connection ended");
    }
}

/// The connection's stream once TLS (if any) is up. A client speaking the other protocol (plain
/// WebSocket on a TLS port, TLS on a plain one) is told so and refused before any handshake.
async fn handshake_socket(
    mut socket: TcpStream,
    tls: Option<TlsAcceptor>,
) -> Result<(Box<dyn Socket>, Arc<AtomicBool>), String> {
    let mut first = [0u8; 1];
    let seen = socket.peek(&mut first).await.map_err(|e| format!("reading failed: {e}"))?;
    if seen == 0 {
        return Err("closed before the handshake".to_string());
    }
    let speaks_tls = first[0] == crate::tls::TLS_HANDSHAKE_RECORD;
    match tls {
        Some(_) if !speaks_tls => {
            let body = "this port speaks TLS: connect with wss://";
            let response = format!(
                "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
            Err("a plain (ws://) client on this TLS port".to_string())
        }
        Some(acceptor) => {
            // Under TLS: write progress is measured on the raw socket.
            let (socket, wrote) = crate::progress::Progress::new(socket);
            match acceptor.accept(socket).await {
                Ok(tls) => Ok((Box::new(tls), wrote)),
                Err(error) => Err(format!("TLS handshake failed: {error}")),
            }
        }
        None if speaks_tls => Err("a TLS (wss://) client on this plain port".to_string()),
        None => {
            let (socket, wrote) = crate::progress::Progress::new(socket);
            Ok((Box::new(socket), wrote))
        }
    }
}

/// Connections a listener has open, for snapshots.
mod registry {
    use std::collections::BTreeMap;
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use hakuban_core::Exchange;

    use super::DownstreamConnectionSnapshot;

    struct Entry {
        remote_address: SocketAddr,
        local_name: String,
    }

    /// By connection id, so snapshots list connections in the order they were accepted, and a
    /// closing connection is removed in O(log n) and gives its memory back (10,000 connections
    /// closing at once would be quadratic in a vector, whose capacity would also stay).
    #[derive(Default)]
    pub(super) struct Registry {
        entries: Mutex<BTreeMap<u64, Entry>>,
    }

    /// Removes its connection from the registry when the connection ends.
    pub(super) struct Guard {
        registry: Arc<Registry>,
        id: u64,
    }

    impl Registry {
        pub fn add(self: &Arc<Self>, id: u64, remote_address: SocketAddr, local_name: String) -> Guard {
            if let Ok(mut entries) = self.entries.lock() {
                entries.insert(id, Entry { remote_address, local_name });
            }
            Guard { registry: self.clone(), id }
        }

        pub fn snapshot(&self, exchange: &Exchange) -> Vec<DownstreamConnectionSnapshot> {
            let Ok(entries) = self.entries.lock() else { return Vec::new() };
            entries
                .iter()
                .map(|(&id, entry)| {
                    let info = exchange.link_info(id);
                    DownstreamConnectionSnapshot {
                        downstream_connection_id: id,
                        remote_address: entry.remote_address.to_string(),
                        local_name: entry.local_name.clone(),
                        remote_name: info.as_ref().and_then(|i| i.peer_name.clone()),
                        load: info.as_ref().map_or(0.0, |i| i.load as f32),
                        load_limit: info.as_ref().and_then(|i| i.load_limit.map(|l| l as f32)),
                    }
                })
                .collect()
        }
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            if let Ok(mut entries) = self.registry.entries.lock() {
                entries.remove(&self.id);
            }
        }
    }
}

/// Connection limits of a listener: in total and per source address.
mod admission {
    use std::collections::HashMap;
    use std::net::IpAddr;
    use std::sync::{Arc, Mutex, PoisonError};
    use std::time::{Duration, Instant};

    use crate::params::ConnectionParameters;

    #[derive(Default)]
    struct Counts {
        total: usize,
        by_address: HashMap<IpAddr, usize>,
        last_warning: Option<Instant>,
        refused_since_warning: u64,
    }

    /// Counts open connections; refuses those over `max-connections` or
    /// `max-connections-per-address`.
    pub(super) struct Admission {
        max_total: usize,
        max_per_address: usize,
        counts: Arc<Mutex<Counts>>,
    }

    /// One admitted connection; dropping it gives its place back.
    pub(super) struct Ticket {
        address: IpAddr,
        counts: Arc<Mutex<Counts>>,
    }

    impl Admission {
        pub fn new(parameters: &ConnectionParameters) -> Self {
            Admission {
                max_total: parameters.max_connections,
                max_per_address: parameters.max_connections_per_address,
                counts: Arc::default(),
            }
        }

        /// A place for a connection from `address`, or `None` (logged at most once a second).
        pub fn admit(&self, address: IpAddr) -> Option<Ticket> {
            let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
            let from_address = counts.by_address.get(&address).copied().unwrap_or(0);
            if counts.total >= self.max_total || from_address >= self.max_per_address {
                counts.refused_since_warning += 1;
                if counts.last_warning.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                    tracing::warn!(
                        peer = %address,
                        open = counts.total,
                        from_address,
                        max_connections = self.max_total,
                        max_connections_per_address = self.max_per_address,
                        refused = counts.refused_since_warning,
                        "connection refused: too many connections"
                    );
                    counts.last_warning = Some(Instant::now());
                    counts.refused_since_warning = 0;
                }
                return None;
            }
            counts.total += 1;
            *counts.by_address.entry(address).or_insert(0) += 1;
            Some(Ticket { address, counts: self.counts.clone() })
        }
    }

    impl Drop for Ticket {
        fn drop(&mut self) {
            let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
            counts.total = counts.total.saturating_sub(1);
            if let Some(count) = counts.by_address.get_mut(&self.address) {
                *count -= 1;
                if *count == 0 {
                    counts.by_address.remove(&self.address);
                }
            }
        }
    }
}
