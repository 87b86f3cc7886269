//! The whole input path of a link: hello, declarations, interests, assignments, streams and
//! states in any order (mostly well-formed frames, so the fuzzer gets past decoding), plus raw
//! bytes, into a real `Link` of either role on an exchange that observes and exposes things.
//! Access policies too: the exchange may check a downstream peer's token against a policy,
//! reloaded mid-run, and refusal frames come from an upstream peer.
//! Never a panic; the engine's self-check holds after every message; once the link and the
//! contracts are gone, nothing is left.
#![no_main]

use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use hakuban_core::{AccessPolicy, Exchange, LinkConfig, LinkRole};
use hakuban_proto::{DeclarationState, Frame, LoadLimitPoint, Payload, encode_batch};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    upstream: bool,
    /// Which access policy the exchange starts with (see [`policy`]).
    policy: u8,
    messages: Vec<Message>,
}

#[derive(Arbitrary, Debug)]
enum Message {
    Frames(Vec<Fuzzed>),
    Raw(Vec<u8>),
    /// The clock moves this many milliseconds and the link's deadlines run.
    Wait(u16),
    /// The access policy is replaced (a reload).
    Reload(u8),
}

const READER: &str = "reader-token-0123456789";
const WRITER: &str = "writer-token-0123456789";

/// No policy, or one of two: a reader, a writer and (in the second) anonymous rights.
fn policy(choice: u8) -> Option<AccessPolicy> {
    let text = match choice % 3 {
        0 => return None,
        1 => format!(
            r#"{{"tokens": [{{"name": "r", "token": "{READER}", "observe": {{"tags": ["t"], "objects": [2]}}}},
                {{"name": "w", "token": "{WRITER}", "expose": {{"objects": ["*"]}}}}]}}"#
        ),
        _ => format!(
            r#"{{"anonymous": {{"observe": {{"objects": [3]}}}},
                "tokens": [{{"name": "w", "token": "{WRITER}", "expose": {{"tags": ["t"]}}, "observe": {{"objects": [0, 1]}}}}]}}"#
        ),
    };
    AccessPolicy::from_json(&text).ok()
}

#[derive(Arbitrary, Debug)]
enum Fuzzed {
    Hello { version: u8, points: Vec<(f32, u32)>, token: u8 },
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
    ObjectRefused { id: u8, observe: bool, expose: bool },
    TagRefused { id: u8, observe: bool, expose: bool },
}

fn id(raw: u8) -> u32 {
    u32::from(raw % 6)
}

fn frame(fuzzed: Fuzzed) -> Frame {
    match fuzzed {
        Fuzzed::Hello { version, points, token } => Frame::Hello {
            version: u32::from(version % 4),
            name: "fuzz".into(),
            load_limit: points
                .into_iter()
                .map(|(after_seconds, limit)| LoadLimitPoint { after_seconds, limit })
                .collect(),
            token: match token % 4 {
                0 => None,
                1 => Some(READER.into()),
                2 => Some(WRITER.into()),
                _ => Some("an-unknown-token-0000".into()),
            },
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
        Fuzzed::ObjectRefused { id: i, observe, expose } => {
            Frame::ObjectRefused { object: id(i), observe, expose, reason: "no".into() }
        }
        Fuzzed::TagRefused { id: i, observe, expose } => {
            Frame::TagRefused { tag: id(i), observe, expose, reason: "no".into() }
        }
    }
}

fuzz_target!(|input: Input| {
    let exchange = Exchange::new();
    exchange.set_access_policy(policy(input.policy));
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
            Message::Reload(choice) => exchange.set_access_policy(policy(choice)),
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
