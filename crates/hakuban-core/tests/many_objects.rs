//! Scale: 100,000 object observe contracts under one tag, served by one tag expose contract on
//! the same exchange. Every state reaches its observer, and the exchange is empty afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use hakuban_core::{Exchange, ObjectDescriptor, ObjectState};
use serde_json::json;

const OBJECTS: usize = 100_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tag_exposer_serves_100k_observed_objects() {
    tokio::time::timeout(Duration::from_secs(300), scenario()).await.expect("did not finish in time");
}

async fn scenario() {
    let exchange = Exchange::new();
    let mut exposer = exchange.tag_expose_contract("many").build();
    let mut observers = Vec::with_capacity(OBJECTS);
    for i in 0..OBJECTS {
        let mut contract =
            exchange.object_observe_contract(ObjectDescriptor::from((["many"], json!({"id": i})))).build();
        let stream = contract.next().await.unwrap();
        observers.push((contract, stream));
    }
    assert_eq!(exchange.counts().objects, OBJECTS);

    // The exposer gets one sink per observed object and answers each with the object's id.
    let producer = tokio::spawn(async move {
        let mut sinks = Vec::with_capacity(OBJECTS);
        while sinks.len() < OBJECTS {
            let sink = exposer.next().await.unwrap();
            let id = sink.descriptor().json()["id"].as_u64().unwrap();
            sink.publish(ObjectState::new(Arc::new(id.to_le_bytes().to_vec())).with_version(vec![1, id as i64]));
            sinks.push(sink);
        }
        (exposer, sinks)
    });

    for (i, (_, stream)) in observers.iter_mut().enumerate() {
        let state = stream.next().await.unwrap();
        assert_eq!(state.version, vec![1, i as i64]);
        assert_eq!(state.data.as_slice(), (i as u64).to_le_bytes());
    }
    let (exposer, sinks) = producer.await.unwrap();
    assert!(exchange.check_invariants().is_ok());

    drop(observers);
    drop(sinks);
    drop(exposer);
    assert_eq!(exchange.counts(), Default::default(), "the engine returns to empty");
}
