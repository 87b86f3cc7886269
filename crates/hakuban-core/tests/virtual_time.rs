//! Deadlines on a virtual clock: no sleeps, exact instants. Exchanges read time from a clock the
//! test moves; links are the real [`Link`]s, joined by in-memory pipes and given the same instants.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use hakuban_core::{CloseReason, Exchange, Link, LinkConfig, LinkRole, LoadLimitPoint};

/// A clock the test moves by hand.
#[derive(Clone)]
struct VirtualClock(Arc<Mutex<Instant>>);

impl VirtualClock {
    fn new() -> Self {
        VirtualClock(Arc::new(Mutex::new(Instant::now())))
    }
    fn now(&self) -> Instant {
        *self.0.lock().unwrap()
    }
    fn advance(&self, by: Duration) -> Instant {
        let mut now = self.0.lock().unwrap();
        *now += by;
        *now
    }
    fn exchange(&self) -> Exchange {
        let clock = self.0.clone();
        Exchange::with_clock(Arc::new(move || *clock.lock().unwrap()))
    }
}

/// A child's upstream link and the parent's downstream link for it.
struct Wire {
    up: Link,
    down: Link,
}

fn config(timeout: Duration, keep_alive: Duration) -> LinkConfig {
    LinkConfig { timeout, keep_alive, ..LinkConfig::default() }
}

fn connect(child: &Exchange, parent: &Exchange, up: LinkConfig) -> Wire {
    let up = child.open_link(LinkRole::Upstream, up).unwrap();
    let down = parent.open_link(LinkRole::Downstream, LinkConfig::default()).unwrap();
    Wire { up, down }
}

/// Moves messages both ways until quiet, then honours due deadlines; bounded, so a livelock fails.
fn drive(wires: &mut [&mut Wire], now: Instant) {
    for _ in 0..1000 {
        let mut moved = false;
        for wire in wires.iter_mut() {
            for link in [&mut wire.up, &mut wire.down] {
                if link.poll_timeout().is_some_and(|deadline| deadline <= now) {
                    link.handle_timeout(now);
                }
            }
            while let Some(message) = wire.up.poll_transmit(now) {
                moved = true;
                let _ = wire.down.receive(&message, now);
            }
            while let Some(message) = wire.down.poll_transmit(now) {
                moved = true;
                let _ = wire.up.receive(&message, now);
            }
        }
        if !moved {
            return;
        }
    }
    panic!("links never went quiet");
}

fn poll_now<S: Stream + Unpin>(stream: &mut S) -> Poll<Option<S::Item>> {
    stream.poll_next_unpin(&mut Context::from_waker(&futures::task::noop_waker()))
}

#[test]
fn a_silent_peer_is_closed_exactly_at_its_receive_timeout() {
    let clock = VirtualClock::new();
    let router = clock.exchange();
    let timeout = Duration::from_secs(2);
    let mut link = router.open_link(LinkRole::Downstream, config(timeout, Duration::from_secs(1))).unwrap();
    let opened = clock.now();
    // Our hello and keep-alives go out, but nothing ever comes back.
    while link.poll_transmit(opened).is_some() {}
    let mut now = opened;
    while let Some(deadline) = link.poll_timeout() {
        assert!(deadline <= opened + timeout, "no deadline past the timeout");
        now = deadline;
        link.handle_timeout(now);
        while link.poll_transmit(now).is_some() {}
    }
    assert_eq!(now, opened + timeout, "closed at the receive timeout, not before, not after");
    assert_eq!(link.closed_reason(), Some(CloseReason::ReceiveTimeout(timeout)));
}

#[test]
fn keep_alives_keep_an_idle_link_up() {
    let clock = VirtualClock::new();
    let (router, client) = (clock.exchange(), clock.exchange());
    let timeout = Duration::from_secs(3);
    let mut wire = Wire {
        up: client.open_link(LinkRole::Upstream, config(timeout, Duration::from_secs(1))).unwrap(),
        down: router.open_link(LinkRole::Downstream, config(timeout, Duration::from_secs(1))).unwrap(),
    };
    drive(&mut [&mut wire], clock.now());
    // Jump from deadline to deadline for ten timeouts: keep-alives arrive in time every time.
    let end = clock.now() + timeout * 10;
    let mut steps = 0;
    while clock.now() < end {
        let next = [wire.up.poll_timeout(), wire.down.poll_timeout()].into_iter().flatten().min().unwrap();
        assert!(next > clock.now(), "a deadline in the past was not handled");
        *clock.0.lock().unwrap() = next;
        drive(&mut [&mut wire], next);
        steps += 1;
        assert!(steps < 1000, "deadlines must move forward");
    }
    assert_eq!((wire.up.closed_reason(), wire.down.closed_reason()), (None, None));
    // Silence on one side: the other closes at its timeout.
    let silent_from = clock.now();
    let mut down = wire.down;
    while let Some(deadline) = down.poll_timeout() {
        down.handle_timeout(deadline);
        while down.poll_transmit(deadline).is_some() {}
        assert!(deadline <= silent_from + timeout);
    }
    assert_eq!(down.closed_reason(), Some(CloseReason::ReceiveTimeout(timeout)));
}

#[test]
fn a_peer_that_stops_reading_is_closed_at_the_write_timeout_and_fails_over() {
    let clock = VirtualClock::new();
    let (router, frozen, standby, observer) = (clock.exchange(), clock.exchange(), clock.exchange(), clock.exchange());
    let timeout = Duration::from_secs(2);
    let long = config(Duration::from_secs(3600), Duration::from_secs(1800));
    let mut w_frozen = connect(&frozen, &router, long.clone());
    let mut w_standby = connect(&standby, &router, long.clone());
    let mut w_observer = connect(&observer, &router, long);
    w_frozen.down = router.open_link(LinkRole::Downstream, config(timeout, Duration::from_secs(1))).unwrap();
    let mut observe = observer.object_observe_contract((["t"], "x")).build();
    let mut expose_frozen = frozen.object_expose_contract((["t"], "x")).build();
    drive(&mut [&mut w_frozen, &mut w_standby, &mut w_observer], clock.now());
    let mut expose_standby = standby.object_expose_contract((["t"], "x")).build();
    drive(&mut [&mut w_frozen, &mut w_standby, &mut w_observer], clock.now());
    assert!(matches!(poll_now(&mut expose_frozen), Poll::Ready(Some(_))), "the first exposer is elected");
    assert!(poll_now(&mut expose_standby).is_pending());

    // The frozen peer's socket is full: the router's transport cannot write to it any more.
    let blocked_at = clock.now();
    w_frozen.down.write_blocked(blocked_at);
    assert_eq!(w_frozen.down.poll_timeout(), Some(blocked_at + timeout).min(w_frozen.down.poll_timeout()));
    let now = clock.advance(timeout - Duration::from_millis(1));
    w_frozen.down.handle_timeout(now);
    assert_eq!(w_frozen.down.closed_reason(), None, "not before the timeout");
    let now = clock.advance(Duration::from_millis(1));
    w_frozen.down.handle_timeout(now);
    assert_eq!(w_frozen.down.closed_reason(), Some(CloseReason::WriteTimeout(timeout)));
    drive(&mut [&mut w_standby, &mut w_observer], now);
    let Poll::Ready(Some(sink)) = poll_now(&mut expose_standby) else { panic!("the standby takes over") };
    sink.publish(hakuban_core::JsonSerializeState::json_serialize(hakuban_core::ObjectState::new("standby")));
    drive(&mut [&mut w_standby, &mut w_observer], now);
    let Poll::Ready(Some(mut stream)) = poll_now(&mut observe) else { panic!("a stream") };
    let Poll::Ready(Some(state)) = poll_now(&mut stream) else { panic!("the standby's state") };
    assert_eq!(state.data.as_slice(), b"\"standby\"");
}

/// Names of the objects a tag expose contract holds sinks for, taking new ones as they come.
fn exposing(contract: &mut hakuban_core::TagExposeContract, held: &mut Vec<hakuban_core::ObjectStateSink>) -> usize {
    while let Poll::Ready(Some(sink)) = poll_now(contract) {
        held.push(sink);
    }
    held.retain_mut(|sink| !matches!(poll_now(sink), Poll::Ready(None)));
    held.len()
}

#[test]
fn a_load_limit_ramp_admits_objects_at_the_right_instants() {
    let clock = VirtualClock::new();
    let (router, observer, riko) = (clock.exchange(), clock.exchange(), clock.exchange());
    let schedule = vec![
        LoadLimitPoint { after_seconds: 2.0, limit: 0 },
        LoadLimitPoint { after_seconds: 2.0, limit: 5 },
        LoadLimitPoint { after_seconds: 5.0, limit: 7 },
    ];
    let long = Duration::from_secs(3600);
    let mut w_observer = connect(&observer, &router, config(long, long / 2));
    let mut w_riko = connect(&riko, &router, LinkConfig { load_limit: schedule, ..config(long, long / 2) });
    let mut expose = riko.tag_expose_contract("x").build();
    let _observers: Vec<_> = (0..10).map(|i| observer.object_observe_contract((["x"], i)).build()).collect();
    let start = clock.now();
    let mut held = Vec::new();
    let mut at = |seconds: f64, held: &mut Vec<_>| {
        let now = start + Duration::from_secs_f64(seconds);
        *clock.0.lock().unwrap() = now;
        // Dense checks (every 10 ms on average): each pass sees every object.
        router.rebalance(Duration::from_millis(10), 0.5);
        drive(&mut [&mut w_observer, &mut w_riko], now);
        exposing(&mut expose, held)
    };
    assert_eq!(at(0.0, &mut held), 0, "limit 0 at first");
    assert_eq!(at(1.99, &mut held), 0, "still 0 just before 2 s");
    assert_eq!(at(2.0, &mut held), 5, "5 from 2 s on");
    assert_eq!(at(3.6, &mut held), 6, "5 + 2/3 * (3.6 - 2) = 6.07 at 3.6 s");
    assert_eq!(at(5.0, &mut held), 7, "7 at 5 s");
    assert_eq!(at(60.0, &mut held), 7, "never more than the final limit");
}

/// Ten objects on a first exposer, `passes_alone` balancing passes with it alone (each check
/// then finds nothing to move, so the objects leave the schedule), then a second exposer arrives
/// and balancing passes run for ten virtual seconds: the objects must spread between the two.
fn second_exposer_gets_objects_after(passes_alone: usize) {
    let clock = VirtualClock::new();
    let (router, observer, first, second) = (clock.exchange(), clock.exchange(), clock.exchange(), clock.exchange());
    let long = Duration::from_secs(3600);
    let mut w_observer = connect(&observer, &router, config(long, long / 2));
    let mut w_first = connect(&first, &router, config(long, long / 2));
    let mut expose_first = first.tag_expose_contract("x").build();
    let _observers: Vec<_> = (0..10).map(|i| observer.object_observe_contract((["x"], i)).build()).collect();
    drive(&mut [&mut w_observer, &mut w_first], clock.now());
    for _ in 0..passes_alone {
        let now = clock.advance(Duration::from_millis(500));
        router.rebalance(Duration::from_secs(1), 1.0);
        drive(&mut [&mut w_observer, &mut w_first], now);
    }
    let (mut held_first, mut held_second) = (Vec::new(), Vec::new());
    assert_eq!(exposing(&mut expose_first, &mut held_first), 10, "alone, the first exposes everything");

    let mut w_second = connect(&second, &router, config(long, long / 2));
    let mut expose_second = second.tag_expose_contract("x").build();
    drive(&mut [&mut w_observer, &mut w_first, &mut w_second], clock.now());
    assert_eq!(exposing(&mut expose_second, &mut held_second), 0, "incumbents keep their objects at first");
    // Balancing passes on the virtual clock, one second on average per object.
    for _ in 0..20 {
        let now = clock.advance(Duration::from_millis(500));
        router.rebalance(Duration::from_secs(1), 1.0);
        drive(&mut [&mut w_observer, &mut w_first, &mut w_second], now);
    }
    let (a, b) = (exposing(&mut expose_first, &mut held_first), exposing(&mut expose_second, &mut held_second));
    assert_eq!(a + b, 10, "every object has exactly one exposer");
    assert!(a.abs_diff(b) <= 2, "load spread to within the threshold: {a} and {b}");
}

#[test]
fn periodic_rebalancing_moves_objects_to_a_newly_arrived_exposer() {
    second_exposer_gets_objects_after(0);
}

/// Objects settled on their only exposer are out of the balancing schedule: a second exposer's
/// declaration must bring them back.
#[test]
fn objects_settled_on_one_exposer_still_move_when_a_second_arrives() {
    second_exposer_gets_objects_after(10);
}

#[test]
fn a_peer_that_never_says_hello_is_closed_at_the_hello_timeout() {
    let clock = VirtualClock::new();
    let router = clock.exchange();
    let config = LinkConfig {
        hello_timeout: Duration::from_secs(3),
        ..config(Duration::from_secs(3600), Duration::from_secs(1))
    };
    let mut link = router.open_link(LinkRole::Downstream, config).unwrap();
    let opened = clock.now();
    let mut now = opened;
    while let Some(deadline) = link.poll_timeout() {
        now = deadline;
        link.handle_timeout(now);
        while link.poll_transmit(now).is_some() {}
    }
    assert_eq!(now, opened + Duration::from_secs(3), "keep-alives go out meanwhile, but the hello never came");
    assert_eq!(link.closed_reason(), Some(CloseReason::HelloTimeout(Duration::from_secs(3))));
}
