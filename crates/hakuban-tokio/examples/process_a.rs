//! The seed's "Connecting somewhere", process A: observes `(["some-tag"], "xxx")` through the
//! router at ws://127.0.0.1:3001 (start the router, A and B in any order) and prints the state.
//!
//! `cargo run -p hakuban-tokio --example process_a`

use futures::StreamExt;
use hakuban_tokio::{Exchange, JsonDeserializeState, WebsocketConnector};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let exchange = Exchange::new();
    let _upstream = WebsocketConnector::new(exchange.clone(), "ws://127.0.0.1:3001")?;
    let mut observe_contract = exchange.object_observe_contract((["some-tag"], "xxx")).build();
    let mut stream = observe_contract.next().await.ok_or("contracts never end")?;
    let object_state = stream.next().await.ok_or("stream ended")?;
    println!("{:?}", object_state.json_deserialize::<String>().data);
    Ok(())
}
