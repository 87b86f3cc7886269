//! Hostile input through the real router: messages built to make a decoder allocate far more
//! than they weigh. Each is refused with its typed reason, the router's peak memory stays under
//! a stated bound, and a healthy pair keeps exchanging throughout.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use async_tungstenite::tungstenite::Message;
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use common::Router;
use common::peers::{HealthyPair, hello, raw_websocket};
use futures::StreamExt;
use hakuban_proto::{Frame, LoadLimitPoint, Payload, encode_batch};

/// Far below what the unbounded decoder needed for these messages (gigabytes), far above what a
/// router with a few 16 MiB messages in flight needs.
const PEAK_RSS_BOUND: u64 = 600 << 20;

/// postcard's unsigned varint.
fn varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Sends `message` on a fresh connection and returns the close code the router answers with.
async fn refused(router: &Router, message: Vec<u8>) -> CloseCode {
    let (mut ws, _) = raw_websocket(router).await;
    let _ = ws.send(Message::Binary(message.into())).await;
    close_code(&mut ws).await
}

/// Waits (bounded) for the router's close frame and returns its code.
async fn close_code<S>(ws: &mut S) -> CloseCode
where
    S: futures::Stream<Item = Result<Message, async_tungstenite::tungstenite::Error>> + Unpin,
{
    let wait = async {
        while let Some(Ok(message)) = ws.next().await {
            if let Message::Close(frame) = message {
                return frame.map(|f| f.code);
            }
        }
        None
    };
    let code = tokio::time::timeout(common::PATIENCE, wait).await.expect("the router closes the hostile peer");
    code.expect("with a close frame saying why")
}

fn assert_bounded(router: &Router) {
    let peak = router.peak_rss();
    assert!(peak > 0, "the router's peak RSS is readable");
    eprintln!("router peak RSS: {} MiB (bound {} MiB)", peak >> 20, PEAK_RSS_BOUND >> 20);
    assert!(peak < PEAK_RSS_BOUND, "router peak RSS {} MiB", peak >> 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_16_mib_message_claiming_2_pow_28_one_byte_frames_for_each_byte_value() {
    let router = Router::start("name=router", &[]);
    let mut pair = HealthyPair::start(&router).await;
    pair.check(1).await;
    for chunk in (0..=255u8).collect::<Vec<_>>().chunks(4) {
        let sends = chunk.iter().map(|byte| {
            let mut message = Vec::with_capacity(16 << 20);
            varint(1 << 28, &mut message);
            message.resize(16 << 20, *byte);
            let router = &router;
            async move { (*byte, refused(router, message).await) }
        });
        for (byte, code) in futures::future::join_all(sends).await {
            // Runs of small valid frames reach the frame limit (one-byte keep-alives surely);
            // anything else is malformed first. Either way the peer is at fault.
            assert!(matches!(code, CloseCode::Policy | CloseCode::Protocol), "byte {byte}: {code:?}");
            if byte == 13 {
                assert_eq!(code, CloseCode::Policy, "keep-alives reach the frame limit");
            }
        }
        pair.check(i64::from(chunk[0]) + 2).await;
    }
    assert_bounded(&router);
    // The keep-alive run (and runs of other small frames) are named by the frame limit.
    common::eventually(|| !router.log_lines("frames in a message announced").is_empty()).await;
    router.exit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hello_with_a_million_load_limit_points() {
    let router = Router::start("name=router", &[]);
    let mut pair = HealthyPair::start(&router).await;
    let points = vec![LoadLimitPoint { after_seconds: 1.0, limit: 1 }; 1_000_000];
    let message = encode_batch(&[Frame::Hello { version: 1, name: "rogue".into(), load_limit: points, token: None }]);
    assert_eq!(refused(&router, message).await, CloseCode::Policy);
    pair.check(1).await;
    assert_bounded(&router);
    common::eventually(|| router.log_lines("load-limit points announced").len() == 1).await;
    router.exit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_format_stacks_and_tag_lists_with_millions_of_elements() {
    let router = Router::start("name=router", &[]);
    let mut pair = HealthyPair::start(&router).await;
    let state = |version: Vec<i64>, format: Option<Vec<String>>| Frame::State {
        object: 1,
        version,
        format,
        payload: Payload::Full(Vec::new().into()),
        synchronized_us_ago: 0,
    };
    let declare = Frame::DeclareObject { id: 1, tags: vec![], json: "1".into() };
    let cases = [
        ("version elements", vec![hello(), declare.clone(), state(vec![0; 4_000_000], None)]),
        ("format entries", vec![hello(), declare.clone(), state(vec![1], Some(vec![String::new(); 4_000_000]))]),
        (
            "tags of a descriptor",
            vec![hello(), Frame::DeclareObject { id: 2, tags: vec![String::new(); 4_000_000], json: "2".into() }],
        ),
    ];
    for (i, (what, frames)) in cases.into_iter().enumerate() {
        assert_eq!(refused(&router, encode_batch(&frames)).await, CloseCode::Policy, "{what}");
        common::eventually(|| router.log_lines(&format!("{what} announced")).len() == 1).await;
        pair.check(i as i64 + 1).await;
    }
    assert_bounded(&router);
    router.exit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn states_for_channels_that_do_not_exist() {
    let router = Router::start("name=router", &[]);
    let mut pair = HealthyPair::start(&router).await;
    // Declared objects nobody assigned to this peer: its states are dropped, and their
    // baselines are not kept. 1,008 states of 1 MiB would hold a gigabyte if they were.
    let (mut ws, _) = raw_websocket(&router).await;
    let mut frames = vec![hello()];
    frames.extend((1..=1008u32).map(|id| Frame::DeclareObject { id, tags: vec![], json: format!("{id}") }));
    ws.send(Message::Binary(encode_batch(&frames).into())).await.unwrap();
    for batch in 0..63u32 {
        let states: Vec<Frame> = (0..16u32)
            .map(|i| Frame::State {
                object: batch * 16 + i + 1,
                version: vec![1],
                format: Some(vec![]),
                payload: Payload::Full(vec![batch as u8; 1 << 20].into()),
                synchronized_us_ago: 0,
            })
            .collect();
        ws.send(Message::Binary(encode_batch(&states).into())).await.unwrap();
        if batch % 16 == 0 {
            pair.check(i64::from(batch) + 1).await;
        }
    }
    pair.check(100).await;
    assert_bounded(&router);
    // A state for an id never declared is a protocol violation.
    let state = Frame::State {
        object: 4242,
        version: vec![1],
        format: Some(vec![]),
        payload: Payload::Full(vec![0; 1 << 20].into()),
        synchronized_us_ago: 0,
    };
    assert_eq!(refused(&router, encode_batch(&[hello(), state])).await, CloseCode::Protocol);
    common::eventually(|| router.log_lines("undeclared object id 4242").len() == 1).await;
    pair.check(101).await;
    router.exit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_per_address_limit_are_refused_until_one_closes() {
    let router = Router::start("name=router,max-connections-per-address=5", &[]);
    let mut pair = HealthyPair::start(&router).await;
    pair.check(1).await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(raw_websocket(&router).await);
    }
    // The sixth from this address: the router closes the socket before the WebSocket handshake.
    let socket = tokio::net::TcpStream::connect(router.address()).await.unwrap();
    let handshake = async_tungstenite::tokio::client_async(router.url.as_str(), socket);
    let refused = tokio::time::timeout(common::PATIENCE, handshake).await.expect("answered at once");
    assert!(refused.is_err(), "over the limit, no WebSocket");
    common::eventually(|| router.log_lines("too many connections").len() == 1).await;
    pair.check(2).await;
    // A place freed is a place taken.
    drop(idle.pop());
    // The router frees the place when it notices the close: retried, bounded (10 s) by the test.
    let mut accepted = None;
    for _ in 0..500 {
        let socket = tokio::net::TcpStream::connect(router.address()).await.unwrap();
        if let Ok((ws, _)) = async_tungstenite::tokio::client_async(router.url.as_str(), socket).await {
            accepted = Some(ws);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(accepted.is_some(), "the freed place is given to a new connection");
    pair.check(3).await;
    router.exit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_says_hello_is_dropped_at_the_hello_timeout() {
    let router = Router::start("name=router,hello-timeout=500ms", &[]);
    let mut pair = HealthyPair::start(&router).await;
    let (mut ws, local) = raw_websocket(&router).await;
    // Say nothing; the router closes with the hello timeout's code.
    assert_eq!(close_code(&mut ws).await, CloseCode::Library(4002));
    common::eventually(|| router.log_lines(&local).iter().any(|line| line.contains("no hello within"))).await;
    pair.check(1).await;
    router.exit();
}
