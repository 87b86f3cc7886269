//! Connection parameters carried in a URL's fragment: `ws://host:port#timeout=1s,name=regu`.
//!
//! Items are comma-separated `key=value` pairs; empty items are ignored; an item without `=` or
//! with an unknown key is an error, so a typo never silently falls back to a default.

use std::path::PathBuf;
use std::time::Duration;

use hakuban_core::{AccessToken, Limits, LinkConfig, LoadLimitPoint};

/// Settings parsed from a URL fragment.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectionParameters {
    /// `timeout`: the link fails if nothing arrives for this long (default 120 s).
    pub timeout: Duration,
    /// `keep-alive`: idle time before a keep-alive is sent (default 60 s).
    pub keep_alive: Duration,
    /// `nodelay`: TCP_NODELAY on the socket (default true).
    pub nodelay: bool,
    /// `name`: our name, sent to the peer.
    pub name: Option<String>,
    /// `load-limit`: schedule sent to the parent (connector only), e.g. `2:0-2:5-5:7` or `3`.
    pub load_limit: Vec<LoadLimitPoint>,
    /// `max-declarations`: most descriptors a peer may declare on one link.
    pub max_declarations: Option<usize>,
    /// `max-message-bytes`: largest message accepted from a peer.
    pub max_message_bytes: Option<usize>,
    /// `hello-timeout`: the peer's hello must arrive within this long (default 10 s).
    pub hello_timeout: Duration,
    /// `handshake-timeout`: a listener drops a connection that has not completed its WebSocket
    /// handshake within this long (default 10 s).
    pub handshake_timeout: Duration,
    /// `max-connections`: a listener refuses connections beyond this many open (default 100,000).
    pub max_connections: usize,
    /// `max-connections-per-address`: a listener refuses connections beyond this many open from
    /// one IP address (default 10,000).
    pub max_connections_per_address: usize,
    /// `token`: the access token a connector sends in its hello (never logged or shown).
    pub token: Option<AccessToken>,
    /// `tls-cert`: a `wss://` listener's certificate chain (PEM file).
    pub tls_cert: Option<PathBuf>,
    /// `tls-key`: a `wss://` listener's private key (PEM file).
    pub tls_key: Option<PathBuf>,
    /// `ca`: a `wss://` connector trusts only the CA certificates in this PEM file instead of
    /// the platform's roots.
    pub ca: Option<PathBuf>,
}

impl Default for ConnectionParameters {
    fn default() -> Self {
        ConnectionParameters {
            timeout: Duration::from_secs(120),
            keep_alive: Duration::from_secs(60),
            nodelay: true,
            name: None,
            load_limit: Vec::new(),
            max_declarations: None,
            max_message_bytes: None,
            hello_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            max_connections: 100_000,
            max_connections_per_address: 10_000,
            token: None,
            tls_cert: None,
            tls_key: None,
            ca: None,
        }
    }
}

impl ConnectionParameters {
    /// Parses a fragment (the part after `#`, without it).
    pub fn parse(fragment: Option<&str>) -> Result<Self, String> {
        let mut parameters = ConnectionParameters::default();
        for item in fragment.unwrap_or("").split(',') {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let (key, value) = item.split_once('=').ok_or_else(|| format!("parameter `{item}` has no `=`"))?;
            match key {
                "timeout" => parameters.timeout = parse_duration(value)?,
                "keep-alive" => parameters.keep_alive = parse_duration(value)?,
                "nodelay" => {
                    parameters.nodelay =
                        value.parse().map_err(|_| format!("nodelay must be true or false, not `{value}`"))?
                }
                "name" => parameters.name = Some(value.to_string()),
                "load-limit" => parameters.load_limit = parse_load_limit(value)?,
                "max-declarations" => {
                    parameters.max_declarations =
                        Some(value.parse().map_err(|_| format!("max-declarations must be a number, not `{value}`"))?)
                }
                "max-message-bytes" => {
                    parameters.max_message_bytes =
                        Some(value.parse().map_err(|_| format!("max-message-bytes must be a number, not `{value}`"))?)
                }
                "hello-timeout" => parameters.hello_timeout = parse_duration(value)?,
                "handshake-timeout" => parameters.handshake_timeout = parse_duration(value)?,
                "max-connections" => parameters.max_connections = parse_count("max-connections", value)?,
                "max-connections-per-address" => {
                    parameters.max_connections_per_address = parse_count("max-connections-per-address", value)?
                }
                "token" if value.is_empty() => return Err("token is empty".to_string()),
                "token" => parameters.token = Some(AccessToken::new(value)),
                "tls-cert" => parameters.tls_cert = Some(path("tls-cert", value)?),
                "tls-key" => parameters.tls_key = Some(path("tls-key", value)?),
                "ca" => parameters.ca = Some(path("ca", value)?),
                other => return Err(format!("unknown connection parameter `{other}`")),
            }
        }
        Ok(parameters)
    }

    /// The link configuration these parameters describe, with `default_name` if none is given.
    pub fn link_config(&self, default_name: &str) -> LinkConfig {
        let mut limits = Limits::default();
        if let Some(max) = self.max_declarations {
            limits.max_declarations = max;
        }
        if let Some(max) = self.max_message_bytes {
            limits.max_message_bytes = max;
        }
        LinkConfig {
            name: self.name.clone().unwrap_or_else(|| default_name.to_string()),
            timeout: self.timeout,
            keep_alive: self.keep_alive,
            hello_timeout: self.hello_timeout,
            load_limit: self.load_limit.clone(),
            limits,
            token: self.token.clone(),
        }
    }
}

/// A file path parameter (not empty).
fn path(name: &str, value: &str) -> Result<PathBuf, String> {
    if value.is_empty() { Err(format!("{name} needs a file path")) } else { Ok(PathBuf::from(value)) }
}

/// `url` with the value of a `token=` fragment parameter hidden, for logs and snapshots.
pub(crate) fn redacted(url: &str) -> String {
    let Some((base, fragment)) = url.split_once('#') else { return url.to_string() };
    let items: Vec<String> = fragment
        .split(',')
        .map(|item| match item.trim().split_once('=') {
            Some(("token", _)) => "token=<redacted>".to_string(),
            _ => item.to_string(),
        })
        .collect();
    format!("{base}#{}", items.join(","))
}

/// A whole number of at least 1.
fn parse_count(name: &str, value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(count) if count > 0 => Ok(count),
        _ => Err(format!("{name} must be a whole number of at least 1, not `{value}`")),
    }
}

/// `250ms`, `1s`, `2m`, `1h`, or a bare number of seconds (`0.5`).
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: f64 = number.trim().parse().map_err(|_| format!("`{text}` is not a duration"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("`{text}`: unknown duration unit `{unit}`")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{text}` is not a valid duration"))
}

/// `-`-separated items of `duration:limit` or a bare `limit` (from the start).
fn parse_load_limit(text: &str) -> Result<Vec<LoadLimitPoint>, String> {
    text.split('-')
        .filter(|item| !item.is_empty())
        .map(|item| {
            let (after, limit) = match item.split_once(':') {
                Some((after, limit)) => (parse_duration(after)?, limit),
                None => (Duration::ZERO, item),
            };
            let limit = limit.parse().map_err(|_| format!("load limit `{limit}` is not a whole number"))?;
            Ok(LoadLimitPoint { after_seconds: after.as_secs_f32(), limit })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_key() {
        let p = ConnectionParameters::parse(Some(
            "timeout=1s,keep-alive=250ms,,nodelay=false,name=regu,load-limit=2:0-2:5-5:7",
        ))
        .unwrap_or_default();
        assert_eq!(p.timeout, Duration::from_secs(1));
        assert_eq!(p.keep_alive, Duration::from_millis(250));
        assert!(!p.nodelay);
        assert_eq!(p.name.as_deref(), Some("regu"));
        assert_eq!(p.load_limit.len(), 3);
        assert_eq!(p.load_limit[2], LoadLimitPoint { after_seconds: 5.0, limit: 7 });
        let bare = ConnectionParameters::parse(Some("load-limit=3,timeout=2")).unwrap_or_default();
        assert_eq!(bare.load_limit, vec![LoadLimitPoint { after_seconds: 0.0, limit: 3 }]);
        assert_eq!(bare.timeout, Duration::from_secs(2));
        let limits = ConnectionParameters::parse(Some(
            "hello-timeout=3s,handshake-timeout=4s,max-connections=7,max-connections-per-address=2",
        ))
        .unwrap_or_default();
        assert_eq!((limits.hello_timeout, limits.handshake_timeout), (Duration::from_secs(3), Duration::from_secs(4)));
        assert_eq!((limits.max_connections, limits.max_connections_per_address), (7, 2));
        assert_eq!(limits.link_config("x").hello_timeout, Duration::from_secs(3));
        let tls = ConnectionParameters::parse(Some("token=0123456789abcdef,ca=/a.pem,tls-cert=/c.pem,tls-key=/k.pem"))
            .unwrap_or_default();
        assert_eq!(tls.link_config("x").token, Some(AccessToken::new("0123456789abcdef")));
        assert_eq!(tls.ca, Some(PathBuf::from("/a.pem")));
        assert_eq!((tls.tls_cert, tls.tls_key), (Some(PathBuf::from("/c.pem")), Some(PathBuf::from("/k.pem"))));
    }

    #[test]
    fn tokens_never_show_in_urls_we_print() {
        let url = "wss://h:1/#name=a,token=0123456789abcdef,timeout=1s";
        assert_eq!(redacted(url), "wss://h:1/#name=a,token=<redacted>,timeout=1s");
        assert_eq!(redacted("ws://h:1"), "ws://h:1");
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        for bad in [
            "timeout",
            "colour=blue",
            "timeout=soon",
            "nodelay=maybe",
            "load-limit=a:b",
            "timeout=-1s",
            "max-connections=0",
            "max-connections-per-address=many",
            "token=",
            "ca=",
        ] {
            assert!(ConnectionParameters::parse(Some(bad)).is_err(), "{bad} accepted");
        }
        assert_eq!(ConnectionParameters::parse(None), Ok(ConnectionParameters::default()));
    }
}
