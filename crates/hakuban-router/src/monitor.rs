//! Monitor objects: the router's own snapshots, exposed under a tag while someone observes them.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::{Either, select};
use hakuban_tokio::{Exchange, JsonSerializeState, ObjectState, WebsocketConnector, WebsocketListener};

/// How often a monitor object is republished while observed.
const PERIOD: Duration = Duration::from_secs(1);

/// Exposes `([tag], "exchange")`, `([tag], "websocket-listener")` and, with a connector,
/// `([tag], "websocket-connector")`.
pub fn spawn(
    tag: &str,
    exchange: &Exchange,
    listener: Arc<WebsocketListener>,
    connector: Option<Arc<WebsocketConnector>>,
) {
    let of_exchange = exchange.clone();
    publish(exchange, tag, "exchange", move || serde_json::to_value(of_exchange.snapshot()));
    publish(exchange, tag, "websocket-listener", move || serde_json::to_value(listener.snapshot()));
    if let Some(connector) = connector {
        publish(exchange, tag, "websocket-connector", move || serde_json::to_value(connector.snapshot()));
    }
}

fn publish<F>(exchange: &Exchange, tag: &str, name: &str, snapshot: F)
where
    F: Fn() -> Result<serde_json::Value, serde_json::Error> + Send + 'static,
{
    let mut contract = exchange.object_expose_contract(([tag], name)).build();
    tokio::spawn(async move {
        // A sink arrives whenever someone observes; publish until it is revoked.
        while let Some(mut sink) = contract.next().await {
            loop {
                match snapshot() {
                    Ok(value) => sink.publish(ObjectState::new(value).json_serialize()),
                    Err(error) => tracing::error!(%error, "cannot serialise a monitor snapshot"),
                }
                let tick = Box::pin(tokio::time::sleep(PERIOD));
                if let Either::Right((None, _)) = select(tick, sink.next()).await {
                    break;
                }
            }
        }
    });
}
