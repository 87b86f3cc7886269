//! A deterministic network simulator: four engines in a tree joined by in-memory links, on
//! virtual time, with message delivery order, link kills and restores chosen by proptest.
//!
//! After each generated history every link is restored and the network is pumped until quiet.
//! Then, for every object observed anywhere with an exposer somewhere: exactly one sink in the
//! whole network is open, a final state sent through it reaches every observer, synchronised;
//! and once everything is dropped no engine holds an object, tag, stream or sink.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hakuban_core::engine::{ContractId, Engine, LinkId, ObjectId, SinkId, SinkPoll, StreamId, TakenHandle};
use hakuban_core::{DataSynchronized, LinkCodec, LinkConfig, LinkRole, ObjectDescriptor, ObjectState};
use proptest::prelude::*;

/// Parent of each node (node 0 is the root).
const PARENTS: [Option<usize>; 4] = [None, Some(0), Some(0), Some(1)];
const OBJECTS: usize = 3;

fn object(index: usize) -> ObjectDescriptor {
    ObjectDescriptor::from((["sim"], index as u64))
}

struct Wire {
    child: usize,
    parent: usize,
    links: Option<(LinkId, LinkId)>,
    codecs: (LinkCodec, LinkCodec),
    /// Messages in flight: child to parent, parent to child.
    up: VecDeque<Vec<u8>>,
    down: VecDeque<Vec<u8>>,
}

/// A stream held by a node: id, object, its engine object id, last state read, closed.
type HeldStream = (StreamId, usize, ObjectId, Option<Arc<ObjectState<hakuban_core::DataBytes>>>, bool);

fn codecs() -> (LinkCodec, LinkCodec) {
    (LinkCodec::new(Default::default()), LinkCodec::new(Default::default()))
}

struct Node {
    engine: Engine,
    contracts: Vec<(ContractId, usize, bool)>,
    streams: Vec<HeldStream>,
    sinks: Vec<(SinkId, usize)>,
}

struct Network {
    nodes: Vec<Node>,
    wires: Vec<Wire>,
    start: Instant,
    step: u64,
    version: i64,
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
    ]
}

impl Network {
    fn new() -> Network {
        let nodes = (0..PARENTS.len())
            .map(|_| Node { engine: Engine::new(), contracts: vec![], streams: vec![], sinks: vec![] })
            .collect();
        let wires = PARENTS
            .iter()
            .enumerate()
            .filter_map(|(child, parent)| {
                parent.map(|parent| Wire {
                    child,
                    parent,
                    links: None,
                    codecs: codecs(),
                    up: VecDeque::new(),
                    down: VecDeque::new(),
                })
            })
            .collect();
        let mut network = Network { nodes, wires, start: Instant::now(), step: 0, version: 0 };
        for wire in 0..network.wires.len() {
            network.restore(wire);
        }
        network
    }

    fn now(&self) -> Instant {
        self.start + Duration::from_millis(self.step)
    }

    fn restore(&mut self, index: usize) {
        let now = self.now();
        let wire = &mut self.wires[index];
        if wire.links.is_some() {
            return;
        }
        let config = LinkConfig { name: format!("node-{}", wire.child), ..LinkConfig::default() };
        let up = self.nodes[wire.child].engine.open_link(LinkRole::Upstream, config.clone(), now).unwrap();
        let down = self.nodes[wire.parent].engine.open_link(LinkRole::Downstream, config, now).unwrap();
        wire.links = Some((up, down));
        wire.codecs = codecs();
    }

    fn kill(&mut self, index: usize) {
        let now = self.now();
        let wire = &mut self.wires[index];
        if let Some((up, down)) = wire.links.take() {
            self.nodes[wire.child].engine.remove_link(up, now);
            self.nodes[wire.parent].engine.remove_link(down, now);
        }
        wire.up.clear();
        wire.down.clear();
    }

    /// Moves everything the engines want to send into the wires.
    fn collect(&mut self) {
        let now = self.now();
        for wire in &mut self.wires {
            let Some((up, down)) = wire.links else { continue };
            let outputs = self.nodes[wire.child].engine.link_transmit(up, now, usize::MAX);
            wire.codecs.0.encode(outputs, &mut wire.up);
            let outputs = self.nodes[wire.parent].engine.link_transmit(down, now, usize::MAX);
            wire.codecs.1.encode(outputs, &mut wire.down);
        }
    }

    /// Delivers the oldest message in flight on a wire in one direction.
    fn deliver(&mut self, index: usize, upward: bool) -> bool {
        let now = self.now();
        let wire = &mut self.wires[index];
        let Some((up, down)) = wire.links else { return false };
        let (message, node, link, codec) = if upward {
            (wire.up.pop_front(), wire.parent, down, &mut wire.codecs.1)
        } else {
            (wire.down.pop_front(), wire.child, up, &mut wire.codecs.0)
        };
        let Some(message) = message else { return false };
        let inputs = codec.decode(&message, now).expect("our own messages decode");
        for input in inputs {
            self.nodes[node].engine.link_receive(link, input, now).expect("our own peers never violate the protocol");
        }
        true
    }

    fn pump(&mut self) {
        for _ in 0..10_000 {
            self.collect();
            let mut moved = false;
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

    fn publish(&mut self, node: usize, sink: SinkId) -> i64 {
        self.version += 1;
        let now = self.now();
        let state = ObjectState::new(Arc::new(self.version.to_le_bytes().to_vec())).with_version([self.version]);
        self.nodes[node].engine.sink_send(sink, state, now);
        self.version
    }

    fn apply(&mut self, op: Op) {
        self.step += 1;
        let now = self.now();
        match op {
            Op::Observe(n, o) => {
                let id = self.nodes[n].engine.create_object_observe_contract(object(o), now);
                self.nodes[n].contracts.push((id, o, true));
            }
            Op::Expose(n, o, capacity) => {
                let id = self.nodes[n].engine.create_object_expose_contract(object(o), capacity, now);
                self.nodes[n].contracts.push((id, o, false));
            }
            Op::DropContract(n, i) if !self.nodes[n].contracts.is_empty() => {
                let len = self.nodes[n].contracts.len();
                let (id, _, _) = self.nodes[n].contracts.swap_remove(i % len);
                self.nodes[n].engine.drop_contract(id, now);
            }
            Op::Take(n, i) if !self.nodes[n].contracts.is_empty() => {
                let len = self.nodes[n].contracts.len();
                let (id, o, _) = self.nodes[n].contracts[i % len];
                self.take(n, id, o);
            }
            Op::Publish(n, i) if !self.nodes[n].sinks.is_empty() => {
                let (sink, _) = self.nodes[n].sinks[i % self.nodes[n].sinks.len()];
                self.publish(n, sink);
            }
            Op::DropSink(n, i) if !self.nodes[n].sinks.is_empty() => {
                let len = self.nodes[n].sinks.len();
                let (sink, _) = self.nodes[n].sinks.swap_remove(i % len);
                self.nodes[n].engine.drop_sink(sink, now);
            }
            Op::DropStream(n, i) if !self.nodes[n].streams.is_empty() => {
                let len = self.nodes[n].streams.len();
                let (stream, ..) = self.nodes[n].streams.swap_remove(i % len);
                self.nodes[n].engine.drop_stream(stream, now);
            }
            Op::Deliver(w, upward) => {
                self.collect();
                self.deliver(w, upward);
            }
            Op::Kill(w) => self.kill(w),
            Op::Restore(w) => self.restore(w),
            _ => {}
        }
        for node in &mut self.nodes {
            node.engine.check_invariants().unwrap();
            while node.engine.poll_event().is_some() {}
        }
    }

    fn take(&mut self, n: usize, contract: ContractId, o: usize) {
        match self.nodes[n].engine.take_handle(contract) {
            Some(TakenHandle::Stream(id, _, object)) => self.nodes[n].streams.push((id, o, object, None, false)),
            Some(TakenHandle::Sink(id, _)) => self.nodes[n].sinks.push((id, o)),
            None => {}
        }
    }

    /// Takes every queued handle everywhere.
    fn take_all(&mut self) {
        for n in 0..self.nodes.len() {
            for (id, o, _) in self.nodes[n].contracts.clone() {
                self.take(n, id, o);
            }
        }
    }

    /// Reads every stream to its latest state.
    fn read_all(&mut self) {
        for node in &mut self.nodes {
            for (stream, _, object, last, closed) in &mut node.streams {
                if node.engine.stream_open(*stream) {
                    *last = node.engine.object_state(*object).or(last.take());
                } else {
                    *closed = true;
                }
            }
        }
    }

    /// Open sinks (held, not revoked) of `o` across the network.
    fn open_sinks(&mut self, o: usize) -> Vec<(usize, SinkId)> {
        let mut open = vec![];
        for (n, node) in self.nodes.iter_mut().enumerate() {
            for (sink, object) in &node.sinks {
                if *object == o && node.engine.poll_sink_params(*sink) != SinkPoll::Closed {
                    open.push((n, *sink));
                }
            }
        }
        open
    }
}

fn converge_and_check(network: &mut Network) {
    for wire in 0..network.wires.len() {
        network.restore(wire);
    }
    network.pump();
    network.take_all();
    network.pump();
    network.take_all();
    for o in 0..OBJECTS {
        let observed =
            network.nodes.iter().any(|n| n.contracts.iter().any(|(_, object, observe)| *object == o && *observe));
        let exposed =
            network.nodes.iter().any(|n| n.contracts.iter().any(|(_, object, observe)| *object == o && !*observe));
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
        network.pump();
        network.read_all();
        for (n, node) in network.nodes.iter().enumerate() {
            for (_, object, _, last, closed) in &node.streams {
                // A closed stream (its contract was dropped) is not an observer any more.
                if *object != o || *closed {
                    continue;
                }
                let last = last.as_ref().unwrap_or_else(|| panic!("node {n}: observer of {o} got nothing"));
                assert_eq!(last.version, vec![version], "node {n}: observer of {o} is not on the newest version");
                assert_eq!(last.synchronized, DataSynchronized::Now, "node {n}: observer of {o} is not synchronised");
            }
        }
    }
    // Everything dropped: nothing may remain anywhere.
    let now = network.now();
    for node in &mut network.nodes {
        for (id, ..) in node.streams.drain(..) {
            node.engine.drop_stream(id, now);
        }
        for (id, _) in node.sinks.drain(..) {
            node.engine.drop_sink(id, now);
        }
        for (id, ..) in node.contracts.drain(..) {
            node.engine.drop_contract(id, now);
        }
    }
    network.pump();
    for (n, node) in network.nodes.iter().enumerate() {
        let counts = node.engine.counts();
        assert_eq!((counts.objects, counts.tags, counts.streams, counts.sinks), (0, 0, 0, 0), "node {n} leaked");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn networks_converge_after_any_history(ops in prop::collection::vec(op(), 1..80)) {
        let mut network = Network::new();
        for op in ops {
            network.apply(op);
        }
        converge_and_check(&mut network);
    }
}
