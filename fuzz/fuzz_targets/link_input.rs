//! The whole input path of a link: hello, declarations, interests, assignments, streams and
//! states in any order (mostly well-formed frames, so the fuzzer gets past decoding), plus raw
//! bytes, into a real `Link` of either role on an exchange that observes and exposes things.
//! Never a panic; the engine's self-check holds after every message; once the link and the
//! contracts are gone, nothing is left.
#![no_main]

use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use hakuban_core::{Exchange, LinkConfig, LinkRole};
use hakuban_proto::{DeclarationState, Frame, LoadLimitPoint, Payload, encode_batch};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    upstream: bool,
    messages: Vec<Message>,
}

#[derive(Arbitrary, Debug)]
enum Message {
    Frames(Vec<Fuzzed>),
    Raw(Vec<u8>),
    /// The clock moves this many milliseconds and the link's deadlines run.
    Wait(u16),
}

#[derive(Arbitrary, Debug)]
enum Fuzzed {
    Hello { version: u8, points: Vec<(f32, u32)> },
    DeclareObject { id: u8, object: u8, tagged: bool },
    DeclareTag { id: u8 },
    ForgetObject { id: u8 },
    ForgetTag { id: u8 },
    ObjectInterest { id: u8, observe: bool, expose: Option<u8> },
    TagInterest { id: u8, observe: bool, expose: Option<u8> },
    AssignExposer { id: u8 },
    RevokeExposer { id: u8 },
    StreamStart { id: u8 },
    StreamEnd { id: u8 },
    State { id: u8, version: Vec<i8>, format: bool, data: Vec<u8>, delta: Option<(u8, u8)>, us_ago: u16 },
    Synchronized { id: u8, us_ago: u16 },
    KeepAlive,
    Close,
}

fn id(raw: u8) -> u32 {
    u32::from(raw % 6)
}

fn frame(fuzzed: Fuzzed) -> Frame {
    match fuzzed {
        Fuzzed::Hello { version, points } => Frame::Hello {
            version: u32::from(version % 3),
            name: "fuzz".into(),
            load_limit: points
                .into_iter()
                .map(|(after_seconds, limit)| LoadLimitPoint { after_seconds, limit })
                .collect(),
            token: None,
        },
        Fuzzed::DeclareObject { id: i, object, tagged } => Frame::DeclareObject {
            id: id(i),
            tags: if tagged { vec!["\"t\"".into()] } else { vec![] },
            json: format!("{}", object % 4),
        },
        Fuzzed::DeclareTag { id: i } => Frame::DeclareTag { id: id(i), json: "\"t\"".into() },
        Fuzzed::ForgetObject { id: i } => Frame::ForgetObject { id: id(i) },
        Fuzzed::ForgetTag { id: i } => Frame::ForgetTag { id: id(i) },
        Fuzzed::ObjectInterest { id: i, observe, expose } => {
            Frame::ObjectInterest { object: id(i), state: DeclarationState { observe, expose: expose.map(u32::from) } }
        }
        Fuzzed::TagInterest { id: i, observe, expose } => {
            Frame::TagInterest { tag: id(i), state: DeclarationState { observe, expose: expose.map(u32::from) } }
        }
        Fuzzed::AssignExposer { id: i } => Frame::AssignExposer { object: id(i) },
        Fuzzed::RevokeExposer { id: i } => Frame::RevokeExposer { object: id(i) },
        Fuzzed::StreamStart { id: i } => Frame::StreamStart { object: id(i) },
        Fuzzed::StreamEnd { id: i } => Frame::StreamEnd { object: id(i) },
        Fuzzed::State { id: i, version, format, data, delta, us_ago } => Frame::State {
            object: id(i),
            version: version.into_iter().map(i64::from).collect(),
            format: format.then(|| vec!["raw".to_string()]),
            payload: match delta {
                Some((prefix, suffix)) => {
                    Payload::Delta { prefix: u64::from(prefix), suffix: u64::from(suffix), middle: data }
                }
                None => Payload::Full(data),
            },
            synchronized_us_ago: u64::from(us_ago),
        },
        Fuzzed::Synchronized { id: i, us_ago } => Frame::Synchronized { object: id(i), us_ago: u64::from(us_ago) },
        Fuzzed::KeepAlive => Frame::KeepAlive,
        Fuzzed::Close => Frame::Close { reason: "bye".into() },
    }
}

fuzz_target!(|input: Input| {
    let exchange = Exchange::new();
    // Local interest on some of the objects the peer may name, so channels open both ways.
    let observe = exchange.object_observe_contract((["t"], 0)).build();
    let expose = exchange.object_expose_contract((["t"], 1)).build();
    let tag_observe = exchange.tag_observe_contract("t").build();
    let tag_expose = exchange.tag_expose_contract("t").build();
    let role = if input.upstream { LinkRole::Upstream } else { LinkRole::Downstream };
    let config =
        LinkConfig { timeout: Duration::from_secs(5), keep_alive: Duration::from_secs(1), ..LinkConfig::default() };
    let mut link = exchange.open_link(role, config).expect("one link");
    let mut now = Instant::now();
    for message in input.messages.into_iter().take(64) {
        match message {
            Message::Frames(frames) => {
                let frames: Vec<Frame> = frames.into_iter().take(32).map(frame).collect();
                let _ = link.receive(&encode_batch(&frames), now);
            }
            Message::Raw(bytes) => {
                let _ = link.receive(&bytes, now);
            }
            Message::Wait(ms) => {
                now += Duration::from_millis(u64::from(ms));
                link.handle_timeout(now);
            }
        }
        while link.poll_transmit(now).is_some() {}
        exchange.check_invariants().expect("the engine's self-check holds");
    }
    drop(link);
    drop((observe, expose, tag_observe, tag_expose));
    let counts = exchange.counts();
    assert_eq!(
        (counts.objects, counts.tags, counts.contracts, counts.streams, counts.sinks, counts.links),
        (0, 0, 0, 0, 0, 0)
    );
    assert_eq!(exchange.waiter_counts(), 0);
});
