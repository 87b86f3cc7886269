//! Bad peers and the healthy pair that must keep exchanging while they misbehave.

use async_tungstenite::tungstenite::Message;
use futures::StreamExt;
use hakuban_proto::Frame;
use hakuban_tokio::{ObjectStateSink, ObjectStateStream};
use tokio::net::TcpStream;

use super::{Client, PATIENCE, Router, next, publish_until_seen};

/// A healthy pair through `router`; `check(n)` publishes version n and waits until it arrives.
pub struct HealthyPair {
    _clients: (Client, Client),
    _observe: hakuban_tokio::ObjectObserveContract,
    _expose: hakuban_tokio::ObjectExposeContract,
    sink: ObjectStateSink,
    stream: ObjectStateStream,
}

impl HealthyPair {
    pub async fn start(router: &Router) -> HealthyPair {
        let (a, b) = (Client::connect(&router.url), Client::connect(&router.url));
        let mut observe = a.exchange.object_observe_contract((["t"], "healthy")).build();
        let mut expose = b.exchange.object_expose_contract((["t"], "healthy")).build();
        let sink = next(&mut expose).await.unwrap();
        let stream = next(&mut observe).await.unwrap();
        HealthyPair { _clients: (a, b), _observe: observe, _expose: expose, sink, stream }
    }

    pub async fn check(&mut self, version: i64) {
        publish_until_seen(&self.sink, &mut self.stream, version).await;
    }
}

/// Opens a WebSocket to the router and returns it with its local address.
pub async fn raw_websocket(
    router: &Router,
) -> (async_tungstenite::WebSocketStream<async_tungstenite::tokio::TokioAdapter<TcpStream>>, String) {
    let socket = TcpStream::connect(router.address()).await.unwrap();
    let local = socket.local_addr().unwrap().to_string();
    let (ws, _) = async_tungstenite::tokio::client_async(router.url.as_str(), socket).await.unwrap();
    (ws, local)
}

/// Waits until the peer closes the WebSocket (a close frame, an error or the end).
pub async fn closed_by_router<S>(ws: &mut S)
where
    S: futures::Stream<Item = Result<Message, async_tungstenite::tungstenite::Error>> + Unpin,
{
    let wait = async {
        while let Some(Ok(message)) = ws.next().await {
            if message.is_close() {
                return;
            }
        }
    };
    tokio::time::timeout(PATIENCE, wait).await.expect("the router closed the bad peer");
}

/// One log line names the bad peer.
pub async fn logged_once(router: &Router, peer: &str) {
    super::eventually(|| router.log_lines(peer).len() == 1).await;
}

pub fn hello() -> Frame {
    Frame::Hello { version: hakuban_proto::PROTOCOL_VERSION, name: "rogue".into(), load_limit: vec![], token: None }
}
