//! [`WebsocketConnector`]: keeps an exchange connected to its parent, reconnecting forever.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hakuban_core::{Exchange, UpstreamReservation};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::WebsocketError;
use crate::params::{ConnectionParameters, redacted};
use crate::tls::Socket;
use crate::transport::drive;

/// First reconnection delay.
const MIN_BACKOFF: Duration = Duration::from_millis(20);
/// For this long into an outage, attempts stay at most [`FAST_MAX_BACKOFF`] apart: a router that
/// restarts within a second or two (an upgrade, a crash and a supervisor) is found again within
/// about 25 ms on average (S6). A refused connection attempt costs next to nothing.
const FAST_RETRY_FOR: Duration = Duration::from_secs(2);
/// The longest delay during the first [`FAST_RETRY_FOR`] of an outage.
const FAST_MAX_BACKOFF: Duration = Duration::from_millis(50);
/// Growth of the delay per failed attempt, before and after [`FAST_RETRY_FOR`].
const FAST_GROWTH: f64 = 1.25;
const SLOW_GROWTH: f64 = 1.5;
/// How long a TCP connection attempt may take during the first [`FAST_RETRY_FOR`] of an outage,
/// and after.
const FAST_CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
const SLOW_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest reconnection delay, for long outages.
const MAX_BACKOFF: Duration = Duration::from_secs(3);
/// A connection that lasted this long ends an outage: the next one starts from [`MIN_BACKOFF`].
/// Shorter ones (a parent that accepts and drops us) keep backing off.
const STABLE_AFTER: Duration = Duration::from_millis(500);

/// The delay (before jitter) after `previous`, `outage` into an outage.
fn next_backoff(previous: Duration, outage: Duration) -> Duration {
    if outage < FAST_RETRY_FOR {
        previous.mul_f64(FAST_GROWTH).clamp(MIN_BACKOFF, FAST_MAX_BACKOFF)
    } else {
        previous.mul_f64(SLOW_GROWTH).clamp(MIN_BACKOFF, MAX_BACKOFF)
    }
}

/// A delay spread over ±25%, so clients of one restarted router do not reconnect in lockstep.
fn jittered(delay: Duration) -> Duration {
    delay.mul_f64(0.75 + fastrand::f64() * 0.5)
}

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
    /// Why the last attempt failed or the last connection ended, when that was an error
    /// (refused, TLS, unauthorized...); cleared by a connection that stays up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

#[derive(Default)]
struct Current {
    link: Option<(u64, String)>,
    last_error: Option<String>,
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
        let shown = redacted(url);
        let mut parsed = url::Url::parse(url).map_err(|e| WebsocketError::InvalidUrl(format!("{shown}: {e}")))?;
        let tls = match parsed.scheme() {
            "ws" => false,
            "wss" => true,
            other => return Err(WebsocketError::InvalidUrl(format!("{shown}: unsupported scheme `{other}`"))),
        };
        let parameters = ConnectionParameters::parse(parsed.fragment()).map_err(WebsocketError::InvalidUrl)?;
        parsed.set_fragment(None);
        let host = parsed.host_str().unwrap_or("localhost").trim_start_matches('[').trim_end_matches(']').to_string();
        let port = parsed.port_or_known_default().unwrap_or(80);
        let tls = match tls {
            true => Some((crate::tls::connector(parameters.ca.as_deref())?, crate::tls::server_name(&host)?)),
            false if parameters.ca.is_some() => {
                return Err(WebsocketError::InvalidUrl(format!("{shown}: `ca` applies to wss:// URLs only")));
            }
            false => None,
        };
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| WebsocketError::NoRuntime)?;
        let reservation = Arc::new(exchange.reserve_upstream().map_err(|_| WebsocketError::UpstreamTaken)?);
        let current = Arc::new(Mutex::new(Current::default()));
        let local_name = parameters.link_config("rust-client").name;
        let target = Target { request: parsed.to_string(), host, port, tls, parameters };
        let task = runtime.spawn(connect_forever(reservation.clone(), target, current.clone()));
        Ok(WebsocketConnector { exchange, url: shown, local_name, current, reservation, task })
    }

    /// The URL it connects to (a `token` parameter's value hidden).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The connection, while one is up.
    pub fn snapshot(&self) -> WebsocketConnectorSnapshot {
        let (link, last_error) =
            self.current.lock().map(|c| (c.link.clone(), c.last_error.clone())).unwrap_or_default();
        let upstream_connection = link.map(|(id, local_address)| UpstreamConnectionSnapshot {
            upstream_connection_id: id,
            local_address,
            local_name: self.local_name.clone(),
            remote_name: self.exchange.link_info(id).and_then(|info| info.peer_name),
        });
        WebsocketConnectorSnapshot { url: self.url.clone(), upstream_connection, last_error }
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
    tls: Option<(tokio_rustls::TlsConnector, tokio_rustls::rustls::pki_types::ServerName<'static>)>,
    parameters: ConnectionParameters,
}

async fn connect_forever(reservation: Arc<UpstreamReservation>, target: Target, current: Arc<Mutex<Current>>) {
    let mut backoff = MIN_BACKOFF;
    let mut last_warning: Option<Instant> = None;
    let mut down_since = Instant::now();
    loop {
        let started = Instant::now();
        // Early in an outage a connection attempt that hangs (its SYN dropped by a restarting
        // router's full queue, retried by the kernel only after a second) is given up for a new
        // one; later, slow networks get all the time they need.
        let connect_timeout =
            if down_since.elapsed() < FAST_RETRY_FOR { FAST_CONNECT_TIMEOUT } else { SLOW_CONNECT_TIMEOUT };
        let outcome = connect_once(&reservation, &target, &current, connect_timeout).await;
        let stable = started.elapsed() >= STABLE_AFTER;
        if let Ok(mut current) = current.lock() {
            current.link = None;
            current.last_error = match &outcome {
                Ok(reason) if reason.is_violation() || reason.is_timeout() || is_refusal(reason) => {
                    Some(reason.to_string())
                }
                Ok(_) if stable => None,
                Ok(_) => current.last_error.take(),
                Err(error) => Some(error.clone()),
            };
        }
        match outcome {
            Ok(reason) if reason.is_violation() || is_refusal(&reason) => {
                tracing::warn!(url = %target.request, %reason, "upstream connection ended")
            }
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
        if stable {
            backoff = MIN_BACKOFF;
            down_since = Instant::now();
        }
        tokio::time::sleep(jittered(backoff)).await;
        backoff = next_backoff(backoff, down_since.elapsed());
    }
}

/// The parent closed the link with a reason of its own (it names a refusal: a policy, a
/// limit, a violation it saw).
fn is_refusal(reason: &hakuban_core::CloseReason) -> bool {
    matches!(reason, hakuban_core::CloseReason::PeerClosed(text) if !text.is_empty())
}

/// A failed WebSocket handshake, with the body of an HTTP refusal (the listener says why).
fn handshake_error(error: async_tungstenite::tungstenite::Error) -> String {
    if let async_tungstenite::tungstenite::Error::Http(response) = &error
        && let Some(body) = response.body()
    {
        let body = String::from_utf8_lossy(&body[..body.len().min(200)]).trim().to_string();
        return format!("WebSocket handshake failed: {error}: {body}");
    }
    format!("WebSocket handshake failed: {error}")
}

/// How long the TLS handshake may take.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// One connection attempt; `Ok(reason)` once an established connection ended.
async fn connect_once(
    reservation: &UpstreamReservation,
    target: &Target,
    current: &Arc<Mutex<Current>>,
    connect_timeout: Duration,
) -> Result<hakuban_core::CloseReason, String> {
    let connect = TcpStream::connect((target.host.as_str(), target.port));
    let socket = tokio::time::timeout(connect_timeout, connect)
        .await
        .map_err(|_| format!("TCP connection not established within {connect_timeout:?}"))?
        .map_err(|e| e.to_string())?;
    let _ = socket.set_nodelay(target.parameters.nodelay);
    let local_address = socket.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let config = target.parameters.link_config("rust-client");
    let ws_config = crate::transport::websocket_config(&config.limits);
    let (socket, wrote) = crate::progress::Progress::new(socket);
    let socket: Box<dyn Socket> = match &target.tls {
        None => Box::new(socket),
        Some((connector, name)) => {
            let handshake = connector.connect(name.clone(), socket);
            let tls = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake)
                .await
                .map_err(|_| "TLS handshake timed out".to_string())?
                .map_err(|e| {
                    format!("TLS handshake failed: {e} (is it a wss:// port, with a certificate for this host?)")
                })?;
            Box::new(tls)
        }
    };
    let handshake =
        async_tungstenite::tokio::client_async_with_config(target.request.as_str(), socket, Some(ws_config));
    let (ws, _response) = tokio::time::timeout(Duration::from_secs(30), handshake)
        .await
        .map_err(|_| "WebSocket handshake timed out".to_string())?
        .map_err(handshake_error)?;
    let link = reservation.open_link(config).map_err(|e| e.to_string())?;
    if let Ok(mut current) = current.lock() {
        current.link = Some((link.id(), local_address));
    }
    tracing::info!(url = %target.request, link = link.id(), "connected upstream");
    let span = tracing::info_span!("link", link = link.id(), peer = %target.request, name = tracing::field::Empty);
    Ok(tracing::Instrument::instrument(drive(ws, link, wrote), span).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schedule an outage of `until` sees, before jitter: (attempt instant, delay after it).
    fn schedule(until: Duration) -> Vec<(Duration, Duration)> {
        let (mut at, mut delay, mut out) = (Duration::ZERO, MIN_BACKOFF, Vec::new());
        while at < until {
            at += delay;
            out.push((at, delay));
            delay = next_backoff(delay, at);
        }
        out
    }

    #[test]
    fn a_router_back_within_two_seconds_is_retried_at_least_every_50_ms() {
        let attempts = schedule(FAST_RETRY_FOR);
        assert_eq!(attempts[0].0, MIN_BACKOFF, "the first attempt comes quickly");
        // With ±25% jitter a gap is at most 62 ms: a restart at any instant of the first two
        // seconds waits about 25 ms on average (500 ms and 550 ms outages alike).
        assert!(attempts.iter().all(|(_, delay)| *delay <= FAST_MAX_BACKOFF));
        assert!(attempts.len() < 60, "about 45 attempts in two seconds, not a busy loop: {}", attempts.len());
    }

    #[test]
    fn long_outages_back_off_to_three_seconds() {
        let attempts = schedule(Duration::from_secs(60));
        let last = attempts.last().map(|(_, delay)| *delay);
        assert_eq!(last, Some(MAX_BACKOFF));
        let after_fast: Vec<Duration> =
            attempts.iter().filter(|(at, _)| *at > FAST_RETRY_FOR).map(|(_, delay)| *delay).collect();
        assert!(after_fast.windows(2).all(|pair| pair[1] >= pair[0]), "never shorter again");
        assert!(attempts.len() < 100, "a minute of outage costs few attempts: {}", attempts.len());
    }
}
