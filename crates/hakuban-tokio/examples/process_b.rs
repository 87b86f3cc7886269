//! The seed's "Connecting somewhere", process B: exposes `(["some-tag"], "xxx")` through the
//! router at ws://127.0.0.1:3001 and exits once process A has received it and gone.
//!
//! `cargo run -p hakuban-tokio --example process_b`

use futures::{SinkExt, StreamExt};
use hakuban_tokio::{Exchange, JsonSerializeState, ObjectState, WebsocketConnector};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let exchange = Exchange::new();
    let _upstream = WebsocketConnector::new(exchange.clone(), "ws://127.0.0.1:3001")?;
    let mut expose_contract = exchange.object_expose_contract((["some-tag"], "xxx")).build();
    let object_state = ObjectState::new("🦀").json_serialize();
    let mut object_state_sink = expose_contract.next().await.ok_or("contracts never end")?;
    object_state_sink.send(object_state).await?;
    // Waiting for process A to receive the goods and exit.
    while object_state_sink.next().await.is_some() {}
    Ok(())
}
