//! Random sequences of contract creation and drop, handle take and drop, and state sends on one
//! exchange. After every step the engine's self-check passes and an accepted state is the newest
//! version; at the end every open stream has caught up with its object's state, and once all is
//! dropped (in random order) the exchange holds nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::task::noop_waker;
use futures::{Stream, StreamExt};
use hakuban_core::{
    DataSynchronized, Exchange, ObjectDescriptor, ObjectExposeContract, ObjectObserveContract, ObjectState,
    ObjectStateSink, ObjectStateStream, TagExposeContract, TagObserveContract,
};
use proptest::prelude::*;

const TAGS: [&str; 2] = ["a", "b"];

fn object(index: usize) -> ObjectDescriptor {
    match index % 4 {
        0 => ObjectDescriptor::from((["a"], 0)),
        1 => ObjectDescriptor::from((["a", "b"], 1)),
        2 => ObjectDescriptor::from((["b"], 2)),
        _ => ObjectDescriptor::from((Vec::<&str>::new(), 3)),
    }
}

#[derive(Clone, Debug)]
enum Op {
    ObserveObject(usize),
    ExposeObject(usize, u32),
    ObserveTag(usize),
    ExposeTag(usize, u32),
    DropContract(usize),
    Take(usize),
    DropStream(usize),
    DropSink(usize),
    Send { sink: usize, version: i64, stale: bool },
    Read(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..4usize).prop_map(Op::ObserveObject),
        (0..4usize, 0..3u32).prop_map(|(o, c)| Op::ExposeObject(o, c)),
        (0..2usize).prop_map(Op::ObserveTag),
        (0..2usize, 0..3u32).prop_map(|(t, c)| Op::ExposeTag(t, c)),
        any::<usize>().prop_map(Op::DropContract),
        any::<usize>().prop_map(Op::Take),
        any::<usize>().prop_map(Op::Take),
        any::<usize>().prop_map(Op::DropStream),
        any::<usize>().prop_map(Op::DropSink),
        (any::<usize>(), 0..6i64, prop::bool::weighted(0.2)).prop_map(|(sink, version, stale)| Op::Send {
            sink,
            version,
            stale
        }),
        (any::<usize>(), 0..6i64, Just(false)).prop_map(|(sink, version, stale)| Op::Send { sink, version, stale }),
        any::<usize>().prop_map(Op::Read),
    ]
}

enum Contract {
    ObserveObject(ObjectObserveContract),
    ExposeObject(ObjectExposeContract),
    ObserveTag(TagObserveContract),
    ExposeTag(TagExposeContract),
}

enum Handle {
    Stream(ObjectStateStream),
    Sink(ObjectStateSink),
}

fn poll_once<S: Stream + Unpin>(stream: &mut S) -> Poll<Option<S::Item>> {
    let waker = noop_waker();
    stream.poll_next_unpin(&mut Context::from_waker(&waker))
}

impl Contract {
    fn take(&mut self) -> Option<Handle> {
        match self {
            Contract::ObserveObject(c) => poll_handle(c).map(Handle::Stream),
            Contract::ObserveTag(c) => poll_handle(c).map(Handle::Stream),
            Contract::ExposeObject(c) => poll_handle(c).map(Handle::Sink),
            Contract::ExposeTag(c) => poll_handle(c).map(Handle::Sink),
        }
    }
}

fn poll_handle<S: Stream + Unpin>(contract: &mut S) -> Option<S::Item> {
    match poll_once(contract) {
        Poll::Ready(Some(handle)) => Some(handle),
        Poll::Ready(None) => panic!("a contract's stream never ends"),
        Poll::Pending => None,
    }
}

fn current_version(exchange: &Exchange, descriptor: &ObjectDescriptor) -> Option<Vec<i64>> {
    exchange
        .snapshot()
        .objects
        .into_iter()
        .find(|o| &o.descriptor == descriptor)
        .and_then(|o| o.data_state.map(|d| d.version))
}

struct World {
    exchange: Exchange,
    contracts: Vec<Contract>,
    streams: Vec<(ObjectStateStream, Option<Vec<i64>>)>,
    sinks: Vec<ObjectStateSink>,
}

impl World {
    fn apply(&mut self, op: Op) {
        let exchange = &self.exchange;
        match op {
            Op::ObserveObject(o) => {
                self.contracts.push(Contract::ObserveObject(exchange.object_observe_contract(object(o)).build()))
            }
            Op::ExposeObject(o, c) => self
                .contracts
                .push(Contract::ExposeObject(exchange.object_expose_contract(object(o)).with_capacity(c).build())),
            Op::ObserveTag(t) => {
                self.contracts.push(Contract::ObserveTag(exchange.tag_observe_contract(TAGS[t]).build()))
            }
            Op::ExposeTag(t, c) => {
                self.contracts.push(Contract::ExposeTag(exchange.tag_expose_contract(TAGS[t]).with_capacity(c).build()))
            }
            Op::DropContract(i) if !self.contracts.is_empty() => {
                let index = i % self.contracts.len();
                drop(self.contracts.swap_remove(index));
            }
            Op::Take(i) if !self.contracts.is_empty() => {
                let index = i % self.contracts.len();
                match self.contracts[index].take() {
                    Some(Handle::Stream(stream)) => self.streams.push((stream, None)),
                    Some(Handle::Sink(sink)) => self.sinks.push(sink),
                    None => {}
                }
            }
            Op::DropStream(i) if !self.streams.is_empty() => {
                let index = i % self.streams.len();
                drop(self.streams.swap_remove(index));
            }
            Op::DropSink(i) if !self.sinks.is_empty() => {
                let index = i % self.sinks.len();
                drop(self.sinks.swap_remove(index));
            }
            Op::Send { sink, version, stale } if !self.sinks.is_empty() => {
                let sink = &self.sinks[sink % self.sinks.len()];
                let descriptor = sink.descriptor().clone();
                let before = current_version(exchange, &descriptor);
                let synchronized = if stale {
                    DataSynchronized::LastAt(Instant::now() - Duration::from_millis(5))
                } else {
                    DataSynchronized::Now
                };
                let state = ObjectState::new(Arc::new(version.to_le_bytes().to_vec()))
                    .with_version(vec![version])
                    .with_synchronized(synchronized);
                sink.publish(state);
                if let Some(after) = current_version(exchange, &descriptor) {
                    let expected = before.map_or(vec![version], |b| b.max(vec![version]));
                    assert_eq!(after, expected, "the object keeps the highest version it accepted");
                }
            }
            Op::Read(i) if !self.streams.is_empty() => {
                let index = i % self.streams.len();
                let (stream, last) = &mut self.streams[index];
                if let Poll::Ready(Some(state)) = poll_once(stream) {
                    *last = Some(state.version);
                }
            }
            _ => {}
        }
        if let Err(problem) = self.exchange.check_invariants() {
            panic!("engine invariant broken: {problem}");
        }
    }

    /// Every open stream, read until pending, ends on its object's current version.
    fn check_streams_caught_up(&mut self) {
        for (stream, last) in &mut self.streams {
            let mut closed = false;
            loop {
                match poll_once(stream) {
                    Poll::Ready(Some(state)) => *last = Some(state.version),
                    Poll::Ready(None) => {
                        closed = true;
                        break;
                    }
                    Poll::Pending => break,
                }
            }
            if closed {
                continue;
            }
            if let Some(current) = current_version(&self.exchange, stream.descriptor()) {
                assert_eq!(last.as_ref(), Some(&current), "an observer did not reach the newest version");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn random_sequences_keep_the_engine_consistent(
        ops in prop::collection::vec(op(), 1..120),
        drop_order in any::<u64>(),
    ) {
        let exchange = Exchange::new();
        let mut world = World { exchange: exchange.clone(), contracts: Vec::new(), streams: Vec::new(), sinks: Vec::new() };
        for op in ops {
            world.apply(op);
        }
        world.check_streams_caught_up();

        // Drop everything, interleaving the three kinds in an order chosen by the test case.
        let World { contracts, streams, sinks, .. } = world;
        let mut contracts: Vec<Option<Contract>> = contracts.into_iter().map(Some).collect();
        let mut streams: Vec<Option<ObjectStateStream>> = streams.into_iter().map(|(s, _)| Some(s)).collect();
        let mut sinks: Vec<Option<ObjectStateSink>> = sinks.into_iter().map(Some).collect();
        let mut seed = drop_order;
        let total = contracts.len() + streams.len() + sinks.len();
        for step in 0..total * 4 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let pick = (seed >> 33) as usize + step;
            match pick % 3 {
                0 if !contracts.is_empty() => { let n = contracts.len(); drop(contracts[pick % n].take()); }
                1 if !streams.is_empty() => { let n = streams.len(); drop(streams[pick % n].take()); }
                _ if !sinks.is_empty() => { let n = sinks.len(); drop(sinks[pick % n].take()); }
                _ => {}
            }
            prop_assert!(exchange.check_invariants().is_ok(), "{:?}", exchange.check_invariants());
        }
        drop((contracts, streams, sinks));
        prop_assert_eq!(exchange.counts(), Default::default());
    }
}
