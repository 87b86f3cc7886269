//! [`WebsocketConnector`]: keeps an exchange connected to its parent, reconnecting forever.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hakuban_core::{Exchange, UpstreamReservation};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::WebsocketError;
use crate::params::ConnectionParameters;
use crate::transport::drive;

/// First reconnection delay; it grows by [`BACKOFF_GROWTH`] each failed attempt, up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(50);
/// Growth of the delay per failed attempt: slow at first, so a router restarting within a second
/// is found again within about a hundred milliseconds.
const BACKOFF_GROWTH: f64 = 1.25;
/// Longest reconnection delay.
const MAX_BACKOFF: Duration = Duration::from_secs(3);
/// A connection that lasted this long resets the delay to [`MIN_BACKOFF`].
const STABLE_AFTER: Duration = Duration::from_secs(1);

/// The connector's current upstream connection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpstreamConnectionSnapshot {
    /// The link's id in the exchange (grows with every reconnection).
    pub upstream_connection_id: u64,
    /// Our socket address.
    pub local_address: String,
    /// Our name.
    pub local_name: String,
    /// The parent's name, once its hello arrived.
    pub remote_name: Option<String>,
}

/// What a connector is doing, for monitoring.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WebsocketConnectorSnapshot {
    /// The URL it connects to.
    pub url: String,
    /// The connection, while one is up.
    pub upstream_connection: Option<UpstreamConnectionSnapshot>,
}

#[derive(Default)]
struct Current {
    link: Option<(u64, String)>,
}

/// Connects an exchange to its parent and keeps it connected: after any disconnection it
/// reconnects with jittered exponential backoff (50 ms growing to 3 s), and the exchange
/// resynchronises by itself. An exchange has one connector at most. Dropping it disconnects.
pub struct WebsocketConnector {
    exchange: Exchange,
    url: String,
    local_name: String,
    current: Arc<Mutex<Current>>,
    reservation: Arc<UpstreamReservation>,
    task: JoinHandle<()>,
}

impl WebsocketConnector {
    /// Starts connecting `exchange` to `url` (`ws://host:port/path#parameters`). Must be called
    /// inside a tokio runtime. Fails on a bad URL or parameter, outside a runtime, or if the
    /// exchange already has an upstream.
    pub fn new(exchange: Exchange, url: &str) -> Result<WebsocketConnector, WebsocketError> {
        let mut parsed = url::Url::parse(url).map_err(|e| WebsocketError::InvalidUrl(format!("{url}: {e}")))?;
        match parsed.scheme() {
            "ws" => {}
            "wss" => return Err(WebsocketError::InvalidUrl(format!("{url}: wss:// (TLS) is not supported yet"))),
            other => return Err(WebsocketError::InvalidUrl(format!("{url}: unsupported scheme `{other}`"))),
        }
        let parameters = ConnectionParameters::parse(parsed.fragment()).map_err(WebsocketError::InvalidUrl)?;
        parsed.set_fragment(None);
        let host = parsed.host_str().unwrap_or("localhost").trim_start_matches('[').trim_end_matches(']').to_string();
        let port = parsed.port_or_known_default().unwrap_or(80);
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| WebsocketError::NoRuntime)?;
        let reservation = Arc::new(exchange.reserve_upstream().map_err(|_| WebsocketError::UpstreamTaken)?);
        let current = Arc::new(Mutex::new(Current::default()));
        let local_name = parameters.link_config("rust-client").name;
        let target = Target { request: parsed.to_string(), host, port, parameters };
        let task = runtime.spawn(connect_forever(reservation.clone(), target, current.clone()));
        Ok(WebsocketConnector { exchange, url: url.to_string(), local_name, current, reservation, task })
    }

    /// The URL it connects to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The connection, while one is up.
    pub fn snapshot(&self) -> WebsocketConnectorSnapshot {
        let link = self.current.lock().ok().and_then(|c| c.link.clone());
        let upstream_connection = link.map(|(id, local_address)| UpstreamConnectionSnapshot {
            upstream_connection_id: id,
            local_address,
            local_name: self.local_name.clone(),
            remote_name: self.exchange.link_info(id).and_then(|info| info.peer_name),
        });
        WebsocketConnectorSnapshot { url: self.url.clone(), upstream_connection }
    }
}

impl Drop for WebsocketConnector {
    fn drop(&mut self) {
        // Released now, not when the aborted task is next scheduled: the exchange is
        // disconnected at once and may get a new connector immediately.
        self.reservation.release();
        self.task.abort();
    }
}

impl std::fmt::Debug for WebsocketConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebsocketConnector").field("url", &self.url).finish()
    }
}

struct Target {
    request: String,
    host: String,
    port: u16,
    parameters: ConnectionParameters,
}

async fn connect_forever(reservation: Arc<UpstreamReservation>, target: Target, current: Arc<Mutex<Current>>) {
    let mut backoff = MIN_BACKOFF;
    let mut last_warning: Option<Instant> = None;
    loop {
        let started = Instant::now();
        match connect_once(&reservation, &target, &current).await {
            Ok(reason) => tracing::info!(url = %target.request, %reason, "upstream connection ended"),
            Err(error) => {
                // Say it loudly once in a while, quietly otherwise: a parent may be down for long.
                if last_warning.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!(url = %target.request, %error, "cannot connect upstream, will retry");
                    last_warning = Some(Instant::now());
                } else {
                    tracing::debug!(url = %target.request, %error, "cannot connect upstream");
                }
            }
        }
        if let Ok(mut current) = current.lock() {
            current.link = None;
        }
        if started.elapsed() >= STABLE_AFTER {
            backoff = MIN_BACKOFF;
        }
        let jitter = 0.75 + fastrand::f64() * 0.5;
        tokio::time::sleep(backoff.mul_f64(jitter)).await;
        backoff = backoff.mul_f64(BACKOFF_GROWTH).min(MAX_BACKOFF);
    }
}

/// One connection attempt; `Ok(reason)` once an established connection ended.
async fn connect_once(
    reservation: &UpstreamReservation,
    target: &Target,
    current: &Arc<Mutex<Current>>,
) -> Result<String, String> {
    let socket = TcpStream::connect((target.host.as_str(), target.port)).await.map_err(|e| e.to_string())?;
    let _ = socket.set_nodelay(target.parameters.nodelay);
    let local_address = socket.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let config = target.parameters.link_config("rust-client");
    let ws_config = crate::transport::websocket_config(&config.limits);
    let (socket, wrote) = crate::progress::Progress::new(socket);
    let handshake =
        async_tungstenite::tokio::client_async_with_config(target.request.as_str(), socket, Some(ws_config));
    let (ws, _response) = tokio::time::timeout(Duration::from_secs(30), handshake)
        .await
        .map_err(|_| "WebSocket handshake timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let link = reservation.open_link(config).map_err(|e| e.to_string())?;
    if let Ok(mut current) = current.lock() {
        current.link = Some((link.id(), local_address));
    }
    tracing::info!(url = %target.request, link = link.id(), "connected upstream");
    let span = tracing::info_span!("link", link = link.id(), peer = %target.request, name = tracing::field::Empty);
    Ok(tracing::Instrument::instrument(drive(ws, link, wrote), span).await.to_string())
}
