//! The local scenarios of SEMANTICS.md §12 (basic 12, 13, 18, 19, 20 and the browser suite's local
//! cases), each run on a single-threaded and on a multi-threaded executor.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{FutureExt, SinkExt, StreamExt};
use hakuban_core::{
    DataSynchronized, Exchange, HakubanStreamExt, JsonDeserializeError, JsonDeserializeState, JsonSerializeState,
    ObjectState,
};

/// Fails the test instead of hanging when an awaited event never comes.
async fn within_limit(scenario: impl Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(20), scenario).await.expect("scenario did not finish in time");
}

/// Whether a future is ready right now (without waiting).
fn ready_now<F: Future + Unpin>(future: &mut F) -> Option<F::Output> {
    future.now_or_never()
}

macro_rules! on_both_executors {
    ($($scenario:ident),* $(,)?) => {
        mod single_threaded {
            $(
                #[tokio::test(flavor = "current_thread")]
                async fn $scenario() {
                    super::within_limit(super::$scenario()).await
                }
            )*
        }
        mod multi_threaded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::within_limit(super::$scenario()).await
                }
            )*
        }
    };
}

on_both_executors!(
    seed_local_example,
    object_observe_contract_drop_stops_object_state_stream,
    object_observe_contract_termination_causes_unassign,
    local_instant_object_state_sink_drop_panic,
    local_desynchronize_on_object_state_sink_drop,
    local_tag_observer_object_exposer_propagation,
    local_object_observer_tag_exposer_propagation,
    local_object_object_propagation,
    synchronized_age_is_preserved,
    sink_params_then_desynchronize_on_drop,
    object_state_stream_reemit_new_stream_on_drop,
    tag_stream_ends_when_the_object_stops_being_live,
    exposer_produces_until_revoked_with_for_each_till_next,
    format_change_is_propagated,
    never_materialised_state_can_be_dropped,
);

/// The seed's example, with both halves spawned on the executor.
async fn seed_local_example() {
    let exchange = Exchange::new();
    let mut observe_contract = exchange.object_observe_contract((["some-tag"], "xxx")).build();
    let mut expose_contract = exchange.object_expose_contract((["some-tag"], "xxx")).build();
    let exposer = tokio::spawn(async move {
        let mut object_state_sink = expose_contract.next().await.unwrap();
        let object_state = ObjectState::new("my data").json_serialize();
        object_state_sink.send(object_state).await.unwrap();
        // Hold on until the observer is gone (the sink is then revoked).
        while object_state_sink.next().await.is_some() {}
    });
    let observer = tokio::spawn(async move {
        let mut object_state_stream = observe_contract.next().await.unwrap();
        let object_state = object_state_stream.next().await.unwrap().json_deserialize::<String>();
        object_state.data
    });
    assert_eq!(observer.await.unwrap(), "my data");
    exposer.await.unwrap();
}

/// basic 12: dropping the contract in one task ends the stream another task is waiting on.
async fn object_observe_contract_drop_stops_object_state_stream() {
    let exchange = Exchange::new();
    let mut contract = exchange.object_observe_contract((["t"], "xxx")).build();
    let mut stream = contract.next().await.unwrap();
    let (waiting_tx, waiting_rx) = tokio::sync::oneshot::channel();
    let reader = tokio::spawn(async move {
        let mut next = stream.next();
        assert!(ready_now(&mut next).is_none(), "no state yet: the stream must be pending");
        waiting_tx.send(()).unwrap();
        next.await
    });
    waiting_rx.await.unwrap();
    tokio::spawn(async move { drop(contract) }).await.unwrap();
    assert!(reader.await.unwrap().is_none());
}

/// basic 13: a local sink's params yield while an observer exists and end after it leaves.
async fn object_observe_contract_termination_causes_unassign() {
    let exchange = Exchange::new();
    let observe = exchange.object_observe_contract((["t"], "xxx")).build();
    let mut expose = exchange.object_expose_contract((["t"], "xxx")).build();
    let mut sink = expose.next().await.unwrap();
    assert!(sink.next().await.is_some());
    tokio::spawn(async move { drop(observe) }).await.unwrap();
    assert!(sink.next().await.is_none());
}

/// basic 18: handles dropped at the end of a scope, in any order, never panic.
async fn local_instant_object_state_sink_drop_panic() {
    for order in 0..4 {
        let exchange = Exchange::new();
        let observe = exchange.object_observe_contract((["t"], "xxx")).build();
        let mut expose = exchange.object_expose_contract((["t"], "xxx")).build();
        let sink = expose.next().await.unwrap();
        match order {
            0 => drop((observe, expose, sink)),
            1 => drop((sink, expose, observe)),
            2 => {
                drop(exchange.clone());
                drop((expose, observe, sink));
            }
            _ => {
                drop(exchange);
                drop((observe, sink, expose));
                continue;
            }
        }
        assert!(exchange.counts() == Default::default(), "everything released (order {order})");
    }
}

/// basic 19: when the exposer drops its sink and contract, the observer sees a stale state.
async fn local_desynchronize_on_object_state_sink_drop() {
    let exchange = Exchange::new();
    let mut observe = exchange.object_observe_contract((["t"], "xxx")).build();
    let mut expose = exchange.object_expose_contract((["t"], "xxx")).build();
    let mut stream = observe.next().await.unwrap();
    let mut sink = expose.next().await.unwrap();
    sink.send(ObjectState::new("xxx").json_serialize()).await.unwrap();
    let first = stream.next().await.unwrap();
    assert_eq!(first.synchronized, DataSynchronized::Now);
    assert_eq!(first.clone().json_deserialize::<String>().data, "xxx");
    drop(sink);
    drop(expose);
    let stale = stream.next().await.unwrap();
    assert!(matches!(stale.synchronized, DataSynchronized::LastAt(_)));
    assert_eq!(stale.version, first.version);
    assert_eq!(stale.data, first.data);
}

/// basic 20: a tag observer and an object exposer meet in either order; when the exposer leaves,
/// the stream ends or turns stale.
async fn local_tag_observer_object_exposer_propagation() {
    for observer_first in [true, false] {
        let exchange = Exchange::new();
        let (mut tag_observe, mut expose) = if observer_first {
            let observe = exchange.tag_observe_contract("t").build();
            (observe, exchange.object_expose_contract((["t"], "xxx")).build())
        } else {
            let expose = exchange.object_expose_contract((["t"], "xxx")).build();
            (exchange.tag_observe_contract("t").build(), expose)
        };
        let mut sink = expose.next().await.unwrap();
        sink.send(ObjectState::new("xxx").json_serialize()).await.unwrap();
        let mut stream = tag_observe.next().await.unwrap();
        assert_eq!(stream.descriptor(), &(["t"], "xxx").into());
        let state = stream.next().await.unwrap().json_deserialize::<String>();
        assert_eq!((state.data.as_str(), state.synchronized), ("xxx", DataSynchronized::Now));
        drop(sink);
        drop(expose);
        match stream.next().await {
            None => {}
            Some(state) => assert!(!state.synchronized.is_now()),
        }
    }
}

/// basic 20, the other pairing: an object observer served by a tag exposer, in either order.
async fn local_object_observer_tag_exposer_propagation() {
    for observer_first in [true, false] {
        let exchange = Exchange::new();
        let (mut observe, mut tag_expose) = if observer_first {
            let observe = exchange.object_observe_contract((["t"], "xxx")).build();
            (observe, exchange.tag_expose_contract("t").build())
        } else {
            let expose = exchange.tag_expose_contract("t").build();
            (exchange.object_observe_contract((["t"], "xxx")).build(), expose)
        };
        let mut sink = tag_expose.next().await.unwrap();
        assert_eq!(sink.descriptor(), &(["t"], "xxx").into());
        sink.send(ObjectState::new("xxx").with_version([1]).json_serialize()).await.unwrap();
        let mut stream = observe.next().await.unwrap();
        assert_eq!(stream.next().await.unwrap().version, vec![1]);
        drop(sink);
        drop(tag_expose);
        let stale = stream.next().await.unwrap();
        assert!(!stale.synchronized.is_now());
    }
}

/// Browser suite: object to object propagation, including an update seen after the first.
async fn local_object_object_propagation() {
    let exchange = Exchange::new();
    let mut observe = exchange.object_observe_contract((["t"], "xxx")).build();
    let mut expose = exchange.object_expose_contract((["t"], "xxx")).build();
    let mut stream = observe.next().await.unwrap();
    let mut sink = expose.next().await.unwrap();
    sink.send(ObjectState::new("xxx").with_version([1]).json_serialize()).await.unwrap();
    assert_eq!(stream.next().await.unwrap().json_deserialize::<String>().data, "xxx");
    sink.send(ObjectState::new("xxxy").with_version([2]).json_serialize()).await.unwrap();
    let second = stream.next().await.unwrap();
    assert_eq!((second.version.clone(), second.json_deserialize::<String>().data), (vec![2], "xxxy".to_string()));
}

/// Browser suite: a stale state's age survives the trip from sink to stream.
async fn synchronized_age_is_preserved() {
    let exchange = Exchange::new();
    let mut observe = exchange.object_observe_contract((["t"], "xxx")).build();
    let mut expose = exchange.object_expose_contract((["t"], "xxx")).build();
    let mut sink = expose.next().await.unwrap();
    let ago = DataSynchronized::from_micros_ago(100_000, Instant::now());
    sink.send(ObjectState::new("xxx").with_synchronized(ago).json_serialize()).await.unwrap();
    let state = observe.next().await.unwrap().next().await.unwrap();
    assert!(state.synchronized.to_micros_ago(Instant::now()) >= 100_000);
}

/// Browser suite: params first, then a stale state once the sink is dropped.
async fn sink_params_then_desynchronize_on_drop() {
    let exchange = Exchange::new();
    let mut observe = exchange.object_observe_contract((["t"], "xxx")).build();
    let mut expose = exchange.object_expose_contract((["t"], "xxx")).build();
    let mut stream = observe.next().await.unwrap();
    let mut sink = expose.next().await.unwrap();
    assert!(sink.next().await.is_some());
    sink.send(ObjectState::new("xxx").json_serialize()).await.unwrap();
    assert!(stream.next().await.unwrap().synchronized.is_now());
    drop(sink);
    assert!(!stream.next().await.unwrap().synchronized.is_now());
    // Still elected: the contract offers a fresh sink at once.
    let mut fresh = expose.next().await.unwrap();
    assert!(fresh.next().await.is_some());
}

/// Browser suite (`object_state_stream_reemit_new_stream_on_drop`).
async fn object_state_stream_reemit_new_stream_on_drop() {
    let exchange = Exchange::new();
    let mut observe = exchange.object_observe_contract((["t"], "xxx")).build();
    let mut expose = exchange.object_expose_contract((["t"], "xxx")).build();
    let mut sink = expose.next().await.unwrap();
    sink.send(ObjectState::new("xxx").with_version([7]).json_serialize()).await.unwrap();
    let mut stream = observe.next().await.unwrap();
    assert_eq!(stream.next().await.unwrap().version, vec![7]);
    drop(stream);
    let mut again = observe.next().await.unwrap();
    assert_eq!(again.next().await.unwrap().version, vec![7], "a new stream starts with the current state");
}

/// SEMANTICS §3.2: a tag observer's stream ends when its object stops being live.
async fn tag_stream_ends_when_the_object_stops_being_live() {
    let exchange = Exchange::new();
    let mut tag_observe = exchange.tag_observe_contract("t").build();
    let observe = exchange.object_observe_contract((["t"], "a")).build();
    let mut stream = tag_observe.next().await.unwrap();
    tokio::spawn(async move { drop(observe) }).await.unwrap();
    assert!(stream.next().await.is_none());
    drop(stream);
    let _observe_again = exchange.object_observe_contract((["t"], "a")).build();
    assert!(tag_observe.next().await.is_some(), "live again: a new stream");
}

/// `for_each_till_next` on a sink's params: produce until the sink is revoked.
async fn exposer_produces_until_revoked_with_for_each_till_next() {
    let exchange = Exchange::new();
    let mut observe = exchange.object_observe_contract((["t"], "ticks")).build();
    let mut expose = exchange.object_expose_contract((["t"], "ticks")).build();
    let producer = tokio::spawn(async move {
        let (states, params) = expose.next().await.unwrap().split();
        let (_states, produced) = params
            .for_each_till_next((states, 0u64), |mut context, _params| async move {
                loop {
                    let (states, count) = &mut *context;
                    *count += 1;
                    let state = ObjectState::new(*count).with_version([*count as i64]).json_serialize();
                    states.send(state).await.unwrap();
                    tokio::task::yield_now().await;
                }
            })
            .await;
        produced
    });
    let mut stream = observe.next().await.unwrap();
    while stream.next().await.unwrap().version < vec![10] {}
    drop(stream);
    drop(observe);
    assert!(producer.await.unwrap() >= 10, "the producer ran until revoked");
}

/// basic 2, locally: a format change replaces the old format.
async fn format_change_is_propagated() {
    let exchange = Exchange::new();
    let mut observe = exchange.object_observe_contract((["t"], "xxx")).build();
    let mut expose = exchange.object_expose_contract((["t"], "xxx")).build();
    let mut stream = observe.next().await.unwrap();
    let mut sink = expose.next().await.unwrap();
    sink.send(ObjectState::new("xxx").with_version([1]).json_serialize()).await.unwrap();
    assert_eq!(stream.next().await.unwrap().format, vec!["JSON".to_string()]);
    sink.send(ObjectState::new(Arc::new(b"raw".to_vec())).with_version([2]).with_format(["abc"])).await.unwrap();
    let state = stream.next().await.unwrap();
    assert_eq!(state.format, vec!["abc".to_string()]);
    assert!(matches!(state.try_json_deserialize::<String>(), Err(JsonDeserializeError::WrongFormat(_))));
}

/// Browser suite: a state that is built and dropped without ever being sent is harmless.
async fn never_materialised_state_can_be_dropped() {
    let exchange = Exchange::new();
    let state = ObjectState::new("never sent").json_serialize();
    drop(state);
    assert_eq!(exchange.counts(), Default::default());
}

/// Spawns a task counting the states `stream` yields before the returned flag is set, until it
/// sees version `last`.
fn count_during_burst(
    mut stream: hakuban_core::ObjectStateStream,
    last: i64,
) -> (Arc<std::sync::atomic::AtomicBool>, tokio::task::JoinHandle<u32>) {
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let finished = done.clone();
    let observer = tokio::spawn(async move {
        let mut seen_during_burst = 0u32;
        while let Some(state) = stream.next().await {
            if !finished.load(std::sync::atomic::Ordering::SeqCst) {
                seen_during_burst += 1;
            }
            if state.version == vec![last] {
                break;
            }
        }
        seen_during_burst
    });
    (done, observer)
}

/// A producer sending back to back through the `Sink` interface yields now and then, so on a
/// single-threaded executor the observer task sees versions during the burst, not only the last.
#[tokio::test(flavor = "current_thread")]
async fn a_busy_producer_does_not_starve_other_tasks() {
    within_limit(async {
        let exchange = Exchange::new();
        let mut observe = exchange.object_observe_contract((["t"], "burst")).build();
        let mut expose = exchange.object_expose_contract((["t"], "burst")).build();
        let stream = observe.next().await.unwrap();
        let mut sink = expose.next().await.unwrap();
        let (done, observer) = count_during_burst(stream, 10_000);
        for version in 1..=10_000i64 {
            sink.send(ObjectState::new(Arc::new(vec![0u8; 8])).with_version([version])).await.unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        let seen = observer.await.unwrap();
        // The sink yields at least once per 1,024 states: 9 chances or more in 10,000 sends.
        assert!(seen >= 8, "the observer ran only {seen} times during the burst");
    })
    .await;
}

/// States slow to apply make the sink yield by time as well as by count: with a clock that moves
/// 1 ms at each reading, a burst of 100 (far fewer than the count allows) still lets the observer
/// task in every few states.
#[tokio::test(flavor = "current_thread")]
async fn a_slow_producer_yields_by_time() {
    within_limit(async {
        let start = Instant::now();
        let ticks = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let clock_ticks = ticks.clone();
        let exchange = Exchange::with_clock(Arc::new(move || {
            start + Duration::from_millis(clock_ticks.fetch_add(1, std::sync::atomic::Ordering::SeqCst))
        }));
        let mut observe = exchange.object_observe_contract((["t"], "slow")).build();
        let mut expose = exchange.object_expose_contract((["t"], "slow")).build();
        let stream = observe.next().await.unwrap();
        let mut sink = expose.next().await.unwrap();
        let (done, observer) = count_during_burst(stream, 100);
        for version in 1..=100i64 {
            sink.send(ObjectState::new(Arc::new(vec![0u8; 8])).with_version([version])).await.unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        let seen = observer.await.unwrap();
        // A yield at least every 4 ms of the clock: one every 5 sends or so, 20 in the burst.
        assert!(seen >= 10, "the observer ran only {seen} times during the burst");
    })
    .await;
}
