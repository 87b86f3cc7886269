//! Transcripts: the exact frames links exchange for the hello, declarations, an election
//! hand-over and the resynchronisation after a reconnection. They pin the protocol's behaviour
//! (docs/protocol.md); a change here is a change of the wire protocol.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::task::{Context, Poll};
use std::time::Instant;

use futures::StreamExt;
use hakuban_core::{Exchange, Link, LinkConfig, LinkRole, ObjectState};
use hakuban_proto::{DeclarationState, Frame, Limits, PROTOCOL_VERSION, Payload, decode_batch};

/// Both ends of one connection, and what each sent.
struct Wire {
    up: Link,
    down: Link,
}

fn connect(child: &Exchange, parent: &Exchange, name: &str) -> Wire {
    let config = |name: &str| LinkConfig { name: name.to_string(), ..LinkConfig::default() };
    Wire {
        up: child.open_link(LinkRole::Upstream, config(name)).unwrap(),
        down: parent.open_link(LinkRole::Downstream, config("router")).unwrap(),
    }
}

/// Moves everything across until quiet; returns the frames sent (child to parent, parent to child).
fn exchange(wire: &mut Wire) -> (Vec<Frame>, Vec<Frame>) {
    let now = Instant::now();
    let (mut up, mut down) = (Vec::new(), Vec::new());
    for _ in 0..100 {
        let mut moved = false;
        while let Some(message) = wire.up.poll_transmit(now) {
            up.extend(decode_batch(&message, &Limits::default()).unwrap());
            wire.down.receive(&message, now).unwrap();
            moved = true;
        }
        while let Some(message) = wire.down.poll_transmit(now) {
            down.extend(decode_batch(&message, &Limits::default()).unwrap());
            wire.up.receive(&message, now).unwrap();
            moved = true;
        }
        if !moved {
            return (up, down);
        }
    }
    panic!("never quiet");
}

fn hello(name: &str) -> Frame {
    Frame::Hello { version: PROTOCOL_VERSION, name: name.to_string(), load_limit: vec![], token: None }
}

fn declare(id: u32) -> Frame {
    Frame::DeclareObject { id, tags: vec!["\"t\"".to_string()], json: "\"x\"".to_string() }
}

fn interest(object: u32, observe: bool, expose: Option<u32>) -> Frame {
    Frame::ObjectInterest { object, state: DeclarationState { observe, expose } }
}

fn state(object: u32, version: i64, data: &[u8], format: Option<Vec<String>>) -> Frame {
    Frame::State {
        object,
        version: vec![version],
        format,
        payload: Payload::Full(data.to_vec().into()),
        synchronized_us_ago: 0,
    }
}

fn take<S: futures::Stream + Unpin>(stream: &mut S) -> S::Item {
    match stream.poll_next_unpin(&mut Context::from_waker(&futures::task::noop_waker())) {
        Poll::Ready(Some(item)) => item,
        _ => panic!("nothing ready"),
    }
}

#[test]
fn hello_and_declarations() {
    let (router, child) = (Exchange::new(), Exchange::new());
    let _observe = child.object_observe_contract((["t"], "x")).build();
    let mut wire = connect(&child, &router, "child");
    let (up, down) = exchange(&mut wire);
    assert_eq!(up, vec![hello("child"), declare(1), interest(1, true, None)]);
    assert_eq!(down, vec![hello("router")]);
    // A second contract on the same object changes the declaration once, coalesced.
    let _expose = child.object_expose_contract((["t"], "x")).with_capacity(3).build();
    let (up, down) = exchange(&mut wire);
    assert_eq!(up, vec![interest(1, true, Some(3))]);
    assert_eq!(down, vec![]);
}

#[test]
fn election_hand_over_between_two_children() {
    let (router, a, b) = (Exchange::new(), Exchange::new(), Exchange::new());
    let _observe = router.object_observe_contract((["t"], "x")).build();
    let mut wa = connect(&a, &router, "a");
    let mut wb = connect(&b, &router, "b");
    exchange(&mut wa);
    exchange(&mut wb);
    let expose_a = a.object_expose_contract((["t"], "x")).build();
    let (up, down) = exchange(&mut wa);
    assert_eq!(up, vec![declare(1), interest(1, false, Some(1))]);
    assert_eq!(down, vec![declare(1), Frame::AssignExposer { object: 1 }]);
    let mut expose_b = b.object_expose_contract((["t"], "x")).build();
    let (up, down) = exchange(&mut wb);
    assert_eq!(up, vec![declare(1), interest(1, false, Some(1))]);
    assert_eq!(down, vec![], "the incumbent keeps the object");
    // a leaves: its declaration is withdrawn, b is assigned.
    drop(expose_a);
    let (up, down) = exchange(&mut wa);
    assert_eq!(up, vec![interest(1, false, None), Frame::ForgetObject { id: 1 }]);
    assert_eq!(down, vec![Frame::RevokeExposer { object: 1 }]);
    let (up, down) = exchange(&mut wb);
    assert_eq!(down, vec![declare(1), Frame::AssignExposer { object: 1 }], "ids are per link");
    assert_eq!(up, vec![]);
    let sink = take(&mut expose_b);
    sink.publish(ObjectState::new(std::sync::Arc::new(b"from b".to_vec())).with_version([1]));
    let (up, _) = exchange(&mut wb);
    assert_eq!(up, vec![state(1, 1, b"from b", Some(vec![]))]);
}

#[test]
fn resynchronisation_after_a_reconnection() {
    let (router, producer, consumer) = (Exchange::new(), Exchange::new(), Exchange::new());
    let mut wp = connect(&producer, &router, "producer");
    let mut wc = connect(&consumer, &router, "consumer");
    let mut expose = producer.object_expose_contract((["t"], "x")).build();
    let mut observe = consumer.object_observe_contract((["t"], "x")).build();
    exchange(&mut wp);
    // The observer's interest elects the producer: its stream opens at once, the assignment
    // goes to the producer.
    let (_, down) = exchange(&mut wc);
    assert_eq!(down, vec![hello("router"), declare(1), Frame::StreamStart { object: 1 }]);
    let (_, down) = exchange(&mut wp);
    assert_eq!(down, vec![declare(1), Frame::AssignExposer { object: 1 }]);
    let sink = take(&mut expose);
    sink.publish(ObjectState::new(std::sync::Arc::new(b"first".to_vec())).with_version([1]));
    let (up, _) = exchange(&mut wp);
    assert_eq!(up, vec![state(1, 1, b"first", Some(vec![]))]);
    let (_, down) = exchange(&mut wc);
    assert_eq!(down, vec![state(1, 1, b"first", Some(vec![]))]);
    // The consumer's connection drops and comes back: everything is declared and sent anew.
    drop(wc);
    let mut wc = connect(&consumer, &router, "consumer");
    let (up, down) = exchange(&mut wc);
    assert_eq!(up, vec![hello("consumer"), declare(1), interest(1, true, None)]);
    assert_eq!(down, vec![hello("router"), declare(1), Frame::StreamStart { object: 1 }]);
    // While nobody observed, the router kept no stale data and revoked the producer; observed
    // again, it re-assigns it, and the producer's new channel starts with the full state.
    let (up, down) = exchange(&mut wp);
    assert_eq!(down, vec![Frame::RevokeExposer { object: 1 }, Frame::AssignExposer { object: 1 }]);
    assert_eq!(up, vec![state(1, 1, b"first", Some(vec![]))]);
    let (_, down) = exchange(&mut wc);
    assert_eq!(down, vec![state(1, 1, b"first", Some(vec![]))], "the consumer's new channel starts full");
    let mut stream = take(&mut observe);
    assert_eq!(take(&mut stream).data.as_slice(), b"first");
}
