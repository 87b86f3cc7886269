//! A deterministic network simulator: four exchanges in a tree, joined by the real [`Link`]s (the
//! type hakuban-tokio drives) over in-memory pipes, on a virtual clock, with message delivery,
//! link kills and restores, frozen peers and clock jumps chosen by proptest.
//!
//! A frozen child neither reads nor writes nor runs its timers; once its "socket" holds a few
//! messages its parent's transport is blocked and says so (`write_blocked`), so the parent fails
//! the link at its timeout, exactly as hakuban-tokio does. A clock jump past the timeout (a paused
//! VM) fails links whose keep-alives did not arrive. A failed link is dropped on both sides, as a
//! transport drops its connection, until a restore reconnects it.
//!
//! After each history every link is restored and the network is driven until quiet (a bound on
//! steps fails a livelock). Then, for every object observed anywhere with an exposer somewhere:
//! exactly one sink in the whole network is open, and a final state sent through it reaches every
//! observer, synchronised. Once everything is dropped no exchange holds an object, tag, stream,
//! sink or waiter, and every clone of the waker handed to the handles is gone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hakuban_core::{
    DataBytes, DataSynchronized, Exchange, Link, LinkConfig, LinkRole, ObjectDescriptor, ObjectExposeContract,
    ObjectObserveContract, ObjectState, ObjectStateSink, ObjectStateStream,
};
use proptest::prelude::*;

/// Parent of each node (node 0 is the root).
const PARENTS: [Option<usize>; 4] = [None, Some(0), Some(0), Some(1)];
const OBJECTS: usize = 3;
/// Messages a pipe holds before the sender's transport is blocked.
const SOCKET_MESSAGES: usize = 4;
const TIMEOUT: Duration = Duration::from_secs(2);
const KEEP_ALIVE: Duration = Duration::from_millis(500);
/// Steps of driving before the network must be quiet.
const MAX_STEPS: usize = 10_000;

fn object(index: usize) -> ObjectDescriptor {
    ObjectDescriptor::from((["sim"], index as u64))
}

struct Quiet;

impl Wake for Quiet {
    fn wake(self: Arc<Self>) {}
}

struct Wire {
    child: usize,
    parent: usize,
    /// The child's upstream link and the parent's downstream link, while connected.
    links: Option<(Link, Link)>,
    /// Messages in flight: child to parent, parent to child.
    up: VecDeque<Vec<u8>>,
    down: VecDeque<Vec<u8>>,
    /// The child process is frozen: it reads, writes and times nothing.
    frozen: bool,
    /// The parent told its link that writing is blocked.
    blocked: bool,
}

enum Contract {
    Observe(ObjectObserveContract, usize),
    Expose(ObjectExposeContract, usize),
}

impl Contract {
    fn object(&self) -> usize {
        match self {
            Contract::Observe(_, o) | Contract::Expose(_, o) => *o,
        }
    }
}

struct HeldStream {
    stream: ObjectStateStream,
    object: usize,
    last: Option<ObjectState<DataBytes>>,
    closed: bool,
}

struct Node {
    exchange: Exchange,
    contracts: Vec<Contract>,
    streams: Vec<HeldStream>,
    sinks: Vec<(ObjectStateSink, usize)>,
}

struct Network {
    clock: Arc<Mutex<Instant>>,
    nodes: Vec<Node>,
    wires: Vec<Wire>,
    version: i64,
    waker_arc: Arc<Quiet>,
    waker: Waker,
}

#[derive(Clone, Debug)]
enum Op {
    Observe(usize, usize),
    Expose(usize, usize, u32),
    DropContract(usize, usize),
    Take(usize, usize),
    Publish(usize, usize),
    DropSink(usize, usize),
    DropStream(usize, usize),
    Deliver(usize, bool),
    Kill(usize),
    Restore(usize),
    Freeze(usize),
    Thaw(usize),
    /// The clock jumps this many milliseconds (up to past the timeout).
    Jump(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..4usize, 0..OBJECTS).prop_map(|(n, o)| Op::Observe(n, o)),
        (0..4usize, 0..OBJECTS, 1..3u32).prop_map(|(n, o, c)| Op::Expose(n, o, c)),
        (0..4usize, any::<usize>()).prop_map(|(n, i)| Op::DropContract(n, i)),
        (0..4usize, any::<usize>()).prop_map(|(n, i)| Op::Take(n, i)),
        (0..4usize, any::<usize>()).prop_map(|(n, i)| Op::Take(n, i)),
        (0..4usize, any::<usize>()).prop_map(|(n, i)| Op::Publish(n, i)),
        (0..4usize, any::<usize>()).prop_map(|(n, i)| Op::DropSink(n, i)),
        (0..4usize, any::<usize>()).prop_map(|(n, i)| Op::DropStream(n, i)),
        (0..3usize, any::<bool>()).prop_map(|(w, up)| Op::Deliver(w, up)),
        (0..3usize, any::<bool>()).prop_map(|(w, up)| Op::Deliver(w, up)),
        (0..3usize, any::<bool>()).prop_map(|(w, up)| Op::Deliver(w, up)),
        (0..3usize).prop_map(Op::Kill),
        (0..3usize).prop_map(Op::Restore),
        (0..3usize).prop_map(Op::Freeze),
        (0..3usize).prop_map(Op::Thaw),
        (1..3000u64).prop_map(Op::Jump),
    ]
}

impl Network {
    fn new() -> Network {
        let clock = Arc::new(Mutex::new(Instant::now()));
        let nodes = (0..PARENTS.len())
            .map(|_| {
                let clock = clock.clone();
                let exchange = Exchange::with_clock(Arc::new(move || *clock.lock().unwrap()));
                Node { exchange, contracts: vec![], streams: vec![], sinks: vec![] }
            })
            .collect();
        let wires = PARENTS
            .iter()
            .enumerate()
            .filter_map(|(child, parent)| {
                parent.map(|parent| Wire {
                    child,
                    parent,
                    links: None,
                    up: VecDeque::new(),
                    down: VecDeque::new(),
                    frozen: false,
                    blocked: false,
                })
            })
            .collect();
        let waker_arc = Arc::new(Quiet);
        let waker = Waker::from(waker_arc.clone());
        let mut network = Network { clock, nodes, wires, version: 0, waker_arc, waker };
        for wire in 0..network.wires.len() {
            network.restore(wire);
        }
        network
    }

    fn now(&self) -> Instant {
        *self.clock.lock().unwrap()
    }

    fn advance(&self, by: Duration) {
        *self.clock.lock().unwrap() += by;
    }

    fn restore(&mut self, index: usize) {
        let wire = &mut self.wires[index];
        wire.frozen = false;
        if wire.links.is_some() {
            return;
        }
        let config = LinkConfig {
            name: format!("node-{}", wire.child),
            timeout: TIMEOUT,
            keep_alive: KEEP_ALIVE,
            ..Default::default()
        };
        let up = self.nodes[wire.child].exchange.open_link(LinkRole::Upstream, config.clone()).unwrap();
        let down = self.nodes[wire.parent].exchange.open_link(LinkRole::Downstream, config).unwrap();
        wire.links = Some((up, down));
        wire.blocked = false;
    }

    fn kill(&mut self, index: usize) {
        let wire = &mut self.wires[index];
        wire.links = None;
        wire.up.clear();
        wire.down.clear();
        wire.blocked = false;
    }

    /// One step of every transport: timers, then whatever each link has to send into its pipe.
    /// Returns whether anything moved; a link that failed has its connection dropped.
    fn step(&mut self) -> bool {
        let now = self.now();
        let mut moved = false;
        for index in 0..self.wires.len() {
            let wire = &mut self.wires[index];
            let Some((up, down)) = &mut wire.links else { continue };
            if !wire.frozen && up.poll_timeout().is_some_and(|at| at <= now) {
                up.handle_timeout(now);
            }
            if down.poll_timeout().is_some_and(|at| at <= now) {
                down.handle_timeout(now);
            }
            if up.closed_reason().is_some() || down.closed_reason().is_some() {
                self.kill(index);
                moved = true;
                continue;
            }
            if !wire.frozen {
                while let Some(message) = up.poll_transmit(now) {
                    wire.up.push_back(message);
                    moved = true;
                }
            }
            if wire.down.len() >= SOCKET_MESSAGES {
                if !wire.blocked {
                    down.write_blocked(now);
                    wire.blocked = true;
                }
            } else {
                if wire.blocked {
                    down.write_progress();
                    wire.blocked = false;
                }
                while wire.down.len() < SOCKET_MESSAGES {
                    let Some(message) = down.poll_transmit(now) else { break };
                    wire.down.push_back(message);
                    moved = true;
                }
            }
        }
        moved
    }

    /// Delivers the oldest message in flight on a wire in one direction.
    fn deliver(&mut self, index: usize, upward: bool) -> bool {
        let now = self.now();
        let wire = &mut self.wires[index];
        let Some((up, down)) = &mut wire.links else { return false };
        let (message, link) = if upward {
            (wire.up.pop_front(), down)
        } else if wire.frozen {
            (None, up)
        } else {
            (wire.down.pop_front(), up)
        };
        let Some(message) = message else { return false };
        link.receive(&message, now).expect("our own peers never violate the protocol");
        true
    }

    /// Drives every link until nothing moves; a livelock fails.
    fn drive(&mut self) {
        for _ in 0..MAX_STEPS {
            let mut moved = self.step();
            for wire in 0..self.wires.len() {
                while self.deliver(wire, true) {
                    moved = true;
                }
                while self.deliver(wire, false) {
                    moved = true;
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the network never went quiet");
    }

    fn publish(&mut self, node: usize, sink: usize) -> i64 {
        self.version += 1;
        let state = ObjectState::new(Arc::new(self.version.to_le_bytes().to_vec())).with_version([self.version]);
        self.nodes[node].sinks[sink].0.publish(state);
        self.version
    }

    fn apply(&mut self, op: Op) {
        self.advance(Duration::from_millis(1));
        match op {
            Op::Observe(n, o) => {
                let contract = self.nodes[n].exchange.object_observe_contract(object(o)).build();
                self.nodes[n].contracts.push(Contract::Observe(contract, o));
            }
            Op::Expose(n, o, capacity) => {
                let contract = self.nodes[n].exchange.object_expose_contract(object(o)).with_capacity(capacity).build();
                self.nodes[n].contracts.push(Contract::Expose(contract, o));
            }
            Op::DropContract(n, i) if !self.nodes[n].contracts.is_empty() => {
                let len = self.nodes[n].contracts.len();
                self.nodes[n].contracts.swap_remove(i % len);
            }
            Op::Take(n, i) if !self.nodes[n].contracts.is_empty() => {
                let len = self.nodes[n].contracts.len();
                self.take(n, i % len);
            }
            Op::Publish(n, i) if !self.nodes[n].sinks.is_empty() => {
                let len = self.nodes[n].sinks.len();
                self.publish(n, i % len);
            }
            Op::DropSink(n, i) if !self.nodes[n].sinks.is_empty() => {
                let len = self.nodes[n].sinks.len();
                self.nodes[n].sinks.swap_remove(i % len);
            }
            Op::DropStream(n, i) if !self.nodes[n].streams.is_empty() => {
                let len = self.nodes[n].streams.len();
                self.nodes[n].streams.swap_remove(i % len);
            }
            Op::Deliver(w, upward) => {
                self.step();
                self.deliver(w, upward);
            }
            Op::Kill(w) => self.kill(w),
            Op::Restore(w) => self.restore(w),
            Op::Freeze(w) => self.wires[w].frozen = true,
            Op::Thaw(w) => self.wires[w].frozen = false,
            Op::Jump(ms) => {
                self.advance(Duration::from_millis(ms));
                self.step();
            }
            _ => {}
        }
        for node in &self.nodes {
            node.exchange.check_invariants().unwrap();
        }
    }

    /// Takes every handle contract `i` of node `n` has ready.
    fn take(&mut self, n: usize, i: usize) {
        let mut cx = Context::from_waker(&self.waker);
        let node = &mut self.nodes[n];
        match &mut node.contracts[i] {
            Contract::Observe(contract, o) => {
                while let Poll::Ready(Some(stream)) = contract.poll_next_unpin(&mut cx) {
                    node.streams.push(HeldStream { stream, object: *o, last: None, closed: false });
                }
            }
            Contract::Expose(contract, o) => {
                while let Poll::Ready(Some(sink)) = contract.poll_next_unpin(&mut cx) {
                    node.sinks.push((sink, *o));
                }
            }
        }
    }

    fn take_all(&mut self) {
        for n in 0..self.nodes.len() {
            for i in 0..self.nodes[n].contracts.len() {
                self.take(n, i);
            }
        }
    }

    /// Reads every stream to its latest state.
    fn read_all(&mut self) {
        let mut cx = Context::from_waker(&self.waker);
        for node in &mut self.nodes {
            for held in &mut node.streams {
                loop {
                    match held.stream.poll_next_unpin(&mut cx) {
                        Poll::Ready(Some(state)) => held.last = Some(state),
                        Poll::Ready(None) => {
                            held.closed = true;
                            break;
                        }
                        Poll::Pending => break,
                    }
                }
            }
        }
    }

    /// Open sinks (held, not revoked) of `o` across the network: (node, index).
    fn open_sinks(&mut self, o: usize) -> Vec<(usize, usize)> {
        let mut cx = Context::from_waker(&self.waker);
        let mut open = vec![];
        for (n, node) in self.nodes.iter_mut().enumerate() {
            for (i, (sink, object)) in node.sinks.iter_mut().enumerate() {
                if *object == o && !matches!(sink.poll_next_unpin(&mut cx), Poll::Ready(None)) {
                    open.push((n, i));
                }
            }
        }
        open
    }
}

fn converge_and_check(network: &mut Network) {
    // A peer thawed after its timeout is failed while the network settles; reconnect until every
    // link holds (time stands still while settling, so fresh links do not time out).
    for _ in 0..3 {
        for wire in 0..network.wires.len() {
            network.restore(wire);
        }
        network.drive();
        if network.wires.iter().all(|wire| wire.links.is_some()) {
            break;
        }
    }
    assert!(network.wires.iter().all(|wire| wire.links.is_some()), "links hold once restored");
    network.take_all();
    network.drive();
    network.take_all();
    for o in 0..OBJECTS {
        let has = |observe: bool| {
            network
                .nodes
                .iter()
                .any(|n| n.contracts.iter().any(|c| c.object() == o && matches!(c, Contract::Observe(..)) == observe))
        };
        let (observed, exposed) = (has(true), has(false));
        let open = network.open_sinks(o);
        if !observed {
            continue;
        }
        if !exposed {
            assert!(open.is_empty(), "object {o}: open sinks without expose contracts: {open:?}");
            continue;
        }
        assert_eq!(open.len(), 1, "object {o}: exactly one active exposer network-wide, found {open:?}");
        let (node, sink) = open[0];
        let version = network.publish(node, sink);
        network.drive();
        network.read_all();
        for (n, node) in network.nodes.iter().enumerate() {
            for held in &node.streams {
                // A closed stream (its contract was dropped) is not an observer any more.
                if held.object != o || held.closed {
                    continue;
                }
                let last = held.last.as_ref().unwrap_or_else(|| panic!("node {n}: observer of {o} got nothing"));
                assert_eq!(last.version, vec![version], "node {n}: observer of {o} is not on the newest version");
                assert_eq!(last.synchronized, DataSynchronized::Now, "node {n}: observer of {o} is not synchronised");
            }
        }
    }
    // Everything dropped: nothing may remain anywhere, not even a clone of the waker.
    for node in &mut network.nodes {
        node.streams.clear();
        node.sinks.clear();
        node.contracts.clear();
    }
    network.drive();
    for (n, node) in network.nodes.iter().enumerate() {
        let counts = node.exchange.counts();
        assert_eq!((counts.objects, counts.tags, counts.streams, counts.sinks), (0, 0, 0, 0), "node {n} leaked");
        assert_eq!(node.exchange.waiter_counts(), 0, "node {n} keeps waiters");
    }
    assert_eq!(Arc::strong_count(&network.waker_arc), 2, "a clone of the waker survived");
}

proptest! {
    // A fixed seed keeps the suite deterministic; PROPTEST_RNG_SEED / PROPTEST_CASES explore more.
    #![proptest_config(ProptestConfig {
        cases: 2000,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x0068_616b_7562_616e),
        ..ProptestConfig::default()
    })]

    #[test]
    fn networks_converge_after_any_history(ops in prop::collection::vec(op(), 1..80)) {
        let mut network = Network::new();
        for op in ops {
            network.apply(op);
        }
        converge_and_check(&mut network);
    }
}

#[test]
fn a_frozen_child_is_failed_by_its_parent_and_its_object_fails_over() {
    let mut network = Network::new();
    // Node 3 (under 1) exposes first and is elected; node 2 (under the root) stands by.
    for op in [Op::Observe(0, 0), Op::Expose(3, 0, 1), Op::Take(3, 0), Op::Take(0, 0)] {
        network.apply(op);
        network.drive();
    }
    network.apply(Op::Expose(2, 0, 1));
    network.drive();
    network.take_all();
    assert_eq!(network.open_sinks(0), vec![(3, 0)]);
    // Node 3 freezes while its parent keeps sending to it (states of an object it observes).
    network.apply(Op::Observe(3, 1));
    network.apply(Op::Expose(0, 1, 1));
    network.drive();
    network.take_all();
    network.apply(Op::Freeze(2));
    for _ in 0..(SOCKET_MESSAGES + 2) {
        let sink = network.nodes[0].sinks.iter().position(|(_, o)| *o == 1).unwrap();
        network.publish(0, sink);
        network.drive();
    }
    assert!(network.wires[2].blocked, "the parent's transport is blocked by the frozen child");
    // (The exact instant is pinned in virtual_time.rs; here the silent child may also be failed
    // by its receive timeout first.)
    network.drive();
    assert!(network.wires[2].links.is_some(), "nothing fails before the timeout");
    // Time passes in small steps: keep-alives flow on the healthy links, not on the frozen one.
    for _ in 0..(TIMEOUT.as_millis() / 100 + 1) {
        network.advance(Duration::from_millis(100));
        network.drive();
    }
    assert!(network.wires[0].links.is_some() && network.wires[1].links.is_some(), "healthy links hold");
    assert!(network.wires[2].links.is_none(), "the frozen child's link failed");
    network.take_all();
    assert_eq!(network.open_sinks(0), vec![(2, 0)], "the standby exposes the object");
}
