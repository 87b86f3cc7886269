//! Access rights, with exchanges joined by in-memory links: a parent with a policy admits children
//! by token, refuses what their rights do not cover (telling them why), never takes a state from
//! a child without the right to expose, re-checks open links when the policy is reloaded, and a
//! child router passes its parent's refusals on to its own children.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::StreamExt;
use futures::task::noop_waker;
use hakuban_core::{
    AccessPolicy, AccessToken, CloseReason, Exchange, Link, LinkConfig, LinkRole, ObjectState, ObjectStateSink,
    ObjectStateStream, Refusal,
};

const READER: &str = "reader-token-0123456789";
const WRITER: &str = "writer-token-0123456789";
const CHILD: &str = "child-router-token-0123";

/// The reader may observe objects tagged "public" and the object "clock"; the writer may expose
/// anything; the child router may observe anything.
fn policy(reader_may_observe_public: bool) -> AccessPolicy {
    let public = if reader_may_observe_public { r#""public""# } else { "" };
    AccessPolicy::from_json(&format!(
        r#"{{"tokens": [
            {{"name": "reader", "token": "{READER}", "observe": {{"tags": [{public}], "objects": ["clock"]}}}},
            {{"name": "writer", "token": "{WRITER}", "expose": {{"objects": ["*"]}}}},
            {{"name": "child", "token": "{CHILD}", "observe": {{"objects": ["*"]}}}}
        ]}}"#
    ))
    .unwrap()
}

struct Wire {
    up: Link,
    down: Link,
}

fn connect(child: &Exchange, parent: &Exchange, token: Option<&str>) -> Wire {
    let up = LinkConfig { name: "child".into(), token: token.map(AccessToken::new), ..LinkConfig::default() };
    let down = LinkConfig { name: "parent".into(), ..LinkConfig::default() };
    Wire {
        up: child.open_link(LinkRole::Upstream, up).unwrap(),
        down: parent.open_link(LinkRole::Downstream, down).unwrap(),
    }
}

/// Moves messages both ways until every link is quiet; bounded, so a livelock fails.
fn pump(wires: &mut [&mut Wire]) {
    let now = std::time::Instant::now();
    for _ in 0..1000 {
        let mut moved = false;
        for wire in wires.iter_mut() {
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

fn poll_next<S: futures::Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    let waker = noop_waker();
    match stream.poll_next_unpin(&mut Context::from_waker(&waker)) {
        Poll::Ready(item) => item,
        Poll::Pending => None,
    }
}

/// The newest version the stream reports now, if any.
fn latest_version(stream: &mut ObjectStateStream) -> Option<i64> {
    let mut last = None;
    while let Some(state) = poll_next(stream) {
        last = state.version.first().copied();
    }
    last
}

fn publish(sink: &ObjectStateSink, version: i64) {
    sink.publish(ObjectState::new(Arc::new(vec![1, 2, 3])).with_version([version]).with_format(["raw"]));
}

/// What the exchange's parent refused of its declaration on the object named `json`.
fn refusal(exchange: &Exchange, json: &str) -> Option<Refusal> {
    let snapshot = exchange.snapshot();
    let object = snapshot.objects.iter().find(|o| o.descriptor.json_to_string() == json)?;
    object.upstream_link.as_ref()?.refused.clone()
}

#[test]
fn rights_decide_who_observes_and_who_exposes() {
    let router = Exchange::new();
    router.set_access_policy(Some(policy(true)));
    let (reader, writer, intruder) = (Exchange::new(), Exchange::new(), Exchange::new());
    let mut wr = connect(&reader, &router, Some(READER));
    let mut ww = connect(&writer, &router, Some(WRITER));
    let mut wi = connect(&intruder, &router, None);

    // Allowed: the reader observes "clock", the writer exposes it.
    let mut observe_clock = reader.object_observe_contract("clock").build();
    let mut expose_clock = writer.object_expose_contract("clock").build();
    // Refused: anonymous peers may do nothing, the reader may not observe "secret".
    let mut forged = intruder.object_expose_contract("clock").with_capacity(1000).build();
    let _observe_secret = reader.object_observe_contract("secret").build();
    let _secret_exposer = writer.object_expose_contract("secret").build();
    pump(&mut [&mut wr, &mut ww, &mut wi]);

    let sink = poll_next(&mut expose_clock).expect("the writer is elected");
    assert!(poll_next(&mut forged).is_none(), "an exposer without the right is never elected");
    publish(&sink, 1);
    pump(&mut [&mut wr, &mut ww, &mut wi]);
    let mut clock = poll_next(&mut observe_clock).unwrap();
    assert_eq!(latest_version(&mut clock), Some(1));
    assert_eq!(refusal(&reader, "\"clock\""), None);

    let secret = refusal(&reader, "\"secret\"").expect("the reader is told");
    assert!(secret.observe && !secret.expose);
    assert!(secret.reason.contains("reader") && secret.reason.contains("observe"), "{}", secret.reason);
    let forged_refusal = refusal(&intruder, "\"clock\"").expect("the intruder is told");
    assert!(forged_refusal.expose && !forged_refusal.observe, "{forged_refusal:?}");
    assert!(forged_refusal.reason.contains("anonymous"), "{}", forged_refusal.reason);

    // Whatever version an unauthorised exposer sends never reaches an observer: a state on a
    // channel it was never given is dropped, as is its declaration.
    let snapshot = router.snapshot();
    let secret_record = snapshot.objects.iter().find(|o| o.descriptor.json_to_string() == "\"secret\"");
    assert!(secret_record.is_none_or(|o| !o.data_needed), "nobody may observe the secret: {secret_record:?}");
    publish(&sink, 2);
    pump(&mut [&mut wr, &mut ww, &mut wi]);
    assert_eq!(latest_version(&mut clock), Some(2));
}

#[test]
fn tag_rights_cover_tag_contracts_and_the_objects_carrying_the_tag() {
    let router = Exchange::new();
    router.set_access_policy(Some(policy(true)));
    let (reader, writer) = (Exchange::new(), Exchange::new());
    let mut wr = connect(&reader, &router, Some(READER));
    let mut ww = connect(&writer, &router, Some(WRITER));
    let mut public = reader.tag_observe_contract("public").build();
    let _private = reader.tag_observe_contract("private").build();
    let mut expose = writer.object_expose_contract((["public"], "weather")).build();
    let _observe = writer.object_observe_contract((["public"], "weather")).build();
    pump(&mut [&mut wr, &mut ww]);
    let sink = poll_next(&mut expose).unwrap();
    publish(&sink, 7);
    pump(&mut [&mut wr, &mut ww]);
    let mut weather = poll_next(&mut public).expect("objects of an allowed tag reach the tag observer");
    assert_eq!(latest_version(&mut weather), Some(7));
    let snapshot = reader.snapshot();
    let private = snapshot.tags.iter().find(|t| t.descriptor.json_to_string() == "\"private\"").unwrap();
    let refused = private.upstream_link.as_ref().and_then(|l| l.refused.clone()).expect("refused");
    assert!(refused.observe);
}

#[test]
fn a_reload_revokes_mid_stream_and_grants_again() {
    let router = Exchange::new();
    router.set_access_policy(Some(policy(true)));
    let (reader, writer) = (Exchange::new(), Exchange::new());
    let mut wr = connect(&reader, &router, Some(READER));
    let mut ww = connect(&writer, &router, Some(WRITER));
    let mut observe = reader.object_observe_contract((["public"], "news")).build();
    let mut expose = writer.object_expose_contract((["public"], "news")).build();
    pump(&mut [&mut wr, &mut ww]);
    let sink = poll_next(&mut expose).unwrap();
    publish(&sink, 1);
    pump(&mut [&mut wr, &mut ww]);
    let mut news = poll_next(&mut observe).unwrap();
    assert_eq!(latest_version(&mut news), Some(1));

    router.set_access_policy(Some(policy(false)));
    pump(&mut [&mut wr, &mut ww]);
    assert!(refusal(&reader, "\"news\"").is_some_and(|r| r.observe), "the reader is told");
    publish(&sink, 2);
    pump(&mut [&mut wr, &mut ww]);
    let seen: Vec<i64> =
        std::iter::from_fn(|| poll_next(&mut news)).filter_map(|s| s.version.first().copied()).collect();
    assert!(!seen.contains(&2), "no state after the revocation: {seen:?}");
    assert!(!router.snapshot().objects.iter().any(|o| o.data_needed), "nobody observes any more");

    router.set_access_policy(Some(policy(true)));
    pump(&mut [&mut wr, &mut ww]);
    assert_eq!(refusal(&reader, "\"news\""), None, "the refusal is lifted");
    publish(&sink, 3);
    pump(&mut [&mut wr, &mut ww]);
    let mut news = poll_next(&mut observe).unwrap_or(news);
    assert_eq!(latest_version(&mut news), Some(3));
}

#[test]
fn unknown_tokens_are_refused_at_hello_and_removed_tokens_on_reload() {
    let router = Exchange::new();
    router.set_access_policy(Some(policy(true)));
    let (stranger, reader) = (Exchange::new(), Exchange::new());
    let mut ws = connect(&stranger, &router, Some("not-a-known-token-at-all"));
    let mut wr = connect(&reader, &router, Some(READER));
    pump(&mut [&mut ws, &mut wr]);
    assert!(matches!(ws.down.closed_reason(), Some(CloseReason::Unauthorized(_))), "{:?}", ws.down.closed_reason());
    // (The transport sends the reason to the client in its close frame: tested through the router.)
    assert!(ws.down.closed_reason().is_some_and(|r| r.to_string().contains("unknown access token")));
    assert!(wr.down.closed_reason().is_none());

    router.set_access_policy(Some(AccessPolicy::from_json(r#"{"tokens": []}"#).unwrap()));
    pump(&mut [&mut wr]);
    assert!(matches!(wr.down.closed_reason(), Some(CloseReason::Unauthorized(_))));
    let token_shown = format!("{:?} {}", wr.down.closed_reason(), router.snapshot().objects.len());
    assert!(!token_shown.contains(READER), "tokens never show: {token_shown}");
}

#[test]
fn a_child_router_has_its_own_token_and_passes_refusals_on() {
    let (root, child, client, writer) = (Exchange::new(), Exchange::new(), Exchange::new(), Exchange::new());
    root.set_access_policy(Some(policy(true)));
    // The child lets its clients do anything; its parent lets it only observe.
    let mut up = connect(&child, &root, Some(CHILD));
    let mut wc = connect(&client, &child, None);
    let mut ww = connect(&writer, &root, Some(WRITER));
    let mut observe = client.object_observe_contract("clock").build();
    let mut expose = writer.object_expose_contract("clock").build();
    let _client_exposes = client.object_expose_contract("elsewhere").build();
    let _someone_observes = writer.object_observe_contract("elsewhere").build();
    let _root_observer = root.object_observe_contract("elsewhere").build();
    pump(&mut [&mut up, &mut wc, &mut ww]);
    let sink = poll_next(&mut expose).unwrap();
    publish(&sink, 5);
    pump(&mut [&mut up, &mut wc, &mut ww]);
    let mut clock = poll_next(&mut observe).unwrap();
    assert_eq!(latest_version(&mut clock), Some(5), "observing through the child is within both rights");

    let at_child = refusal(&child, "\"elsewhere\"").expect("the root refuses the child's expose");
    assert!(at_child.expose && at_child.reason.contains("child"));
    let at_client = refusal(&client, "\"elsewhere\"").expect("the child passes the refusal on");
    assert!(at_client.expose && at_client.reason.starts_with("refused upstream"), "{}", at_client.reason);
}

#[test]
fn the_policy_in_docs_security_md_parses_and_means_what_it_says() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/security.md")).unwrap();
    let example = doc.split("```json").nth(1).and_then(|rest| rest.split("```").next()).unwrap();
    let policy = AccessPolicy::from_json(example).unwrap();
    let sensor = policy.principal(Some("b2a19c5e0d7f3a4b8c1e6d2f9a0b7c45")).unwrap();
    let hall =
        hakuban_core::ObjectDescriptor::from(serde_json::json!({"type": "temperature", "room": "hall", "unit": "C"}));
    let kitchen = hakuban_core::ObjectDescriptor::from(serde_json::json!({"type": "temperature", "room": "kitchen"}));
    assert!(sensor.rights.expose.covers_object(&hall));
    assert!(!sensor.rights.expose.covers_object(&kitchen));
    let anonymous = policy.principal(None).unwrap();
    assert!(anonymous.rights.observe.covers_tag(&hakuban_core::TagDescriptor::from("public")));
    assert!(!anonymous.rights.expose.covers_tag(&hakuban_core::TagDescriptor::from("public")));
}
