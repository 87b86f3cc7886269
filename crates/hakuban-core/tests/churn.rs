//! No growth on churn: after streams, contracts and objects come and go, nothing they touched is
//! kept, counted by the engine's records, by the facade's waiters and by the strong counts of
//! the wakers handed in.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures::StreamExt;
use hakuban_core::Exchange;

struct Quiet;

impl Wake for Quiet {
    fn wake(self: Arc<Self>) {}
}

/// Resident set size of this process, in bytes (Linux; 0 elsewhere).
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// One round: observe an object nobody exposes, take its stream, poll it once more (pending, so
/// it registers the waker and waits on the object), drop everything.
fn round(exchange: &Exchange, waker: &Waker, i: u64) {
    let mut cx = Context::from_waker(waker);
    let mut contract = exchange.object_observe_contract((["churn"], i)).build();
    let Poll::Ready(Some(mut stream)) = contract.poll_next_unpin(&mut cx) else { panic!("a stream at once") };
    assert!(stream.poll_next_unpin(&mut cx).is_pending());
    assert!(contract.poll_next_unpin(&mut cx).is_pending(), "the contract waits with the waker too");
    drop(stream);
    drop(contract);
}

#[test]
fn a_hundred_thousand_observe_rounds_leave_nothing_behind() {
    let exchange = Exchange::new();
    let waker_arc = Arc::new(Quiet);
    let waker = Waker::from(waker_arc.clone());
    assert_eq!(Arc::strong_count(&waker_arc), 2);
    for i in 0..2_000 {
        round(&exchange, &waker, i);
    }
    let baseline = rss();
    for i in 2_000..100_000 {
        round(&exchange, &waker, i);
    }
    assert!(exchange.counts() == Default::default(), "engine records left: {:?}", exchange.counts());
    assert_eq!(exchange.waiter_counts(), 0, "wakers or cells left in the facade");
    assert_eq!(Arc::strong_count(&waker_arc), 2, "a clone of the waker survived a dropped stream");
    let grown = rss().saturating_sub(baseline);
    // A leak of one stream cell (~300 bytes) per round would be ~30 MB.
    assert!(grown < 8 << 20, "memory grew by {grown} bytes over 98,000 rounds");
}

#[test]
fn a_stream_waiting_on_an_object_that_goes_away_without_a_state_is_freed() {
    // The object is exposed and observed; the stream waits; the object then loses its last
    // holder without ever getting a state (the Arc cycle a waiting list could keep).
    let exchange = Exchange::new();
    let waker_arc = Arc::new(Quiet);
    let waker = Waker::from(waker_arc.clone());
    let mut cx = Context::from_waker(&waker);
    for i in 0..100u64 {
        let mut observe = exchange.object_observe_contract((["t"], i)).build();
        let mut expose = exchange.object_expose_contract((["t"], i)).build();
        let Poll::Ready(Some(mut stream)) = observe.poll_next_unpin(&mut cx) else { panic!() };
        let Poll::Ready(Some(sink)) = expose.poll_next_unpin(&mut cx) else { panic!() };
        assert!(stream.poll_next_unpin(&mut cx).is_pending());
        drop(expose);
        drop(sink);
        drop(observe);
        // Closed: the stream ends, then goes.
        assert!(matches!(stream.poll_next_unpin(&mut cx), Poll::Ready(None)));
        drop(stream);
    }
    assert!(exchange.counts() == Default::default());
    assert_eq!(exchange.waiter_counts(), 0);
    assert_eq!(Arc::strong_count(&waker_arc), 2);
}

#[test]
fn rounds_on_one_long_lived_object_keep_no_waiting_streams() {
    // The object outlives every stream (an expose contract holds it), so nothing but the drop
    // of each stream can take it off the object's waiting list.
    let exchange = Exchange::new();
    let _expose = exchange.object_expose_contract((["t"], "kept")).build();
    let waker_arc = Arc::new(Quiet);
    let waker = Waker::from(waker_arc.clone());
    let mut cx = Context::from_waker(&waker);
    for _ in 0..10_000 {
        let mut contract = exchange.object_observe_contract((["t"], "kept")).build();
        let Poll::Ready(Some(mut stream)) = contract.poll_next_unpin(&mut cx) else { panic!("a stream at once") };
        assert!(stream.poll_next_unpin(&mut cx).is_pending());
        drop(stream);
        drop(contract);
        assert_eq!(Arc::strong_count(&waker_arc), 2, "a dropped stream's waker is still held");
    }
    assert_eq!(exchange.counts().objects, 1);
}
