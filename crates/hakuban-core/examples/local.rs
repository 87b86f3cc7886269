//! A local exchange at work: one exposer publishes a counter while two observers (one by object,
//! one by tag) print what they see; the exposer stops when the observers are gone.
//!
//! Run with `cargo run -p hakuban-core --example local`.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use hakuban_core::{Exchange, JsonDeserializeState, JsonSerializeState, ObjectState};

fn main() {
    futures::executor::block_on(async {
        let exchange = Exchange::new();
        let mut expose = exchange.object_expose_contract((["counters"], "ticks")).build();
        let mut observe = exchange.object_observe_contract((["counters"], "ticks")).build();
        let mut tag_observe = exchange.tag_observe_contract("counters").build();

        let exposer = async move {
            // The sink comes once someone observes; its params stream ends when nobody does.
            let Some(mut sink) = expose.next().await else { return };
            let mut tick = 0u32;
            loop {
                tick += 1;
                sink.send(ObjectState::new(tick).json_serialize()).await.ok();
                let pause = futures::future::select(Box::pin(sleep(Duration::from_millis(100))), sink.next());
                if let futures::future::Either::Right((None, _)) = pause.await {
                    println!("exposer: nobody observes any more, stopping after tick {tick}");
                    return;
                }
            }
        };
        let observer = async move {
            let Some(mut stream) = observe.next().await else { return };
            while let Some(state) = stream.next().await {
                let state = state.json_deserialize::<u32>();
                println!("object observer: tick {} (version {:?})", state.data, state.version);
                if state.data == 5 {
                    break;
                }
            }
        };
        let tag_observer = async move {
            let Some(mut stream) = tag_observe.next().await else { return };
            println!("tag observer: found {:?}", stream.descriptor());
            if let Some(state) = stream.next().await {
                println!("tag observer: first state {}", state.json_deserialize::<u32>().data);
            }
        };
        futures::join!(exposer, async {
            futures::join!(observer, tag_observer);
        });
    });
}

/// A runtime-free sleep, so the example needs no async runtime.
async fn sleep(duration: Duration) {
    let (tx, rx) = futures::channel::oneshot::channel::<()>();
    std::thread::spawn(move || {
        std::thread::sleep(duration);
        let _ = tx.send(());
    });
    let _ = rx.await;
}
