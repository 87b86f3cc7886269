//! Access tokens and rights through the real router (`--auth`, reload on SIGUSR1, a child router
//! with its own token), and TLS end to end with a CA made in the test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use async_tungstenite::tungstenite::Message;
use common::peers::{HealthyPair, raw_websocket};
use common::{Client, Router, eventually, next, publish_until_seen, until};
use hakuban_proto::{DeclarationState, Frame, Payload, encode_batch};
use hakuban_tokio::{ExchangeSnapshot, JsonSerializeState, ObjectState, Refusal, WebsocketConnector};

const READER: &str = "reader-0123456789abcdef";
const WRITER: &str = "writer-0123456789abcdef";
const CHILD: &str = "child-router-0123456789";

/// A fresh directory for this test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hakuban-security-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The policy of these tests: the reader observes the tag "public" (when `public` is set) and
/// the object "clock"; the writer exposes anything; the child router observes and exposes
/// anything tagged "public"; the healthy pair ("t"-tagged objects) may do anything.
fn write_policy(path: &Path, public: bool) {
    let public = if public { r#""public""# } else { "" };
    let text = format!(
        r#"{{
          "anonymous": {{"observe": {{"tags": ["t"]}}, "expose": {{"tags": ["t"]}}}},
          "tokens": [
            {{"name": "reader", "token": "{READER}", "observe": {{"tags": [{public}], "objects": ["clock"]}}}},
            {{"name": "writer", "token": "{WRITER}", "expose": {{"objects": ["*"]}}}},
            {{"name": "child", "token": "{CHILD}", "observe": {{"tags": ["public"]}}, "expose": {{"tags": ["public"]}}}}
          ]
        }}"#
    );
    // Written to a temporary name and renamed: a reload never reads half a file.
    let temporary = path.with_extension("new");
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(temporary, path).unwrap();
}

fn with_token(router: &Router, token: &str) -> String {
    format!("{}#token={token}", router.url)
}

fn refusal_of(snapshot: &ExchangeSnapshot, json: &str) -> Option<Refusal> {
    let object = snapshot.objects.iter().find(|o| o.descriptor.json_to_string() == json)?;
    object.upstream_link.as_ref()?.refused.clone()
}

async fn refused(client: &Client, json: &str) -> Refusal {
    eventually(|| refusal_of(&client.exchange.snapshot(), json).is_some()).await;
    refusal_of(&client.exchange.snapshot(), json).unwrap()
}

fn state(version: i64) -> ObjectState<hakuban_tokio::DataBytes> {
    ObjectState::new(version).with_version([version]).json_serialize()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_decide_who_observes_and_exposes_what() {
    let dir = scratch("rights");
    let policy = dir.join("auth.json");
    write_policy(&policy, true);
    let router = Router::start("", &["--auth", policy.to_str().unwrap()]);
    let mut healthy = HealthyPair::start(&router).await;
    let reader = Client::connect(&with_token(&router, READER));
    let writer = Client::connect(&with_token(&router, WRITER));

    // Allowed observe (object-level right) and allowed expose.
    let mut observe_clock = reader.exchange.object_observe_contract("clock").build();
    let mut expose_clock = writer.exchange.object_expose_contract("clock").build();
    let sink = next(&mut expose_clock).await.unwrap();
    let mut clock = next(&mut observe_clock).await.unwrap();
    publish_until_seen(&sink, &mut clock, 1).await;

    // Tag-level right: the reader's tag contract gets the objects carrying the tag.
    let mut public = reader.exchange.tag_observe_contract("public").build();
    let mut expose_news = writer.exchange.object_expose_contract((["public"], "news")).build();
    let news_sink = next(&mut expose_news).await.unwrap();
    news_sink.publish(state(3));
    let mut news = next(&mut public).await.unwrap();
    until(&mut news, |s| s.version == vec![3]).await;

    // Refused observe: told why, and nothing of the object arrives.
    let _secret_observer = reader.exchange.object_observe_contract("secret").build();
    let mut secret_exposer = writer.exchange.object_expose_contract("secret").build();
    let secret = refused(&reader, "\"secret\"").await;
    assert!(secret.observe && secret.reason.contains("reader"), "{secret:?}");
    // The router writes the line on its own thread; the refusal may reach us first.
    eventually(|| !router.log_lines("refused observe").is_empty()).await;
    assert_eq!(router.log_lines("refused observe").len(), 1, "one log line: {:?}", router.log_lines("refused"));
    assert!(router.log_lines("refused observe")[0].contains("secret"));
    let snapshot = reader.exchange.snapshot();
    let record = snapshot.objects.iter().find(|o| o.descriptor.json_to_string() == "\"secret\"").unwrap();
    assert!(record.data_state.is_none(), "no state of a refused object");
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(1), futures::StreamExt::next(&mut secret_exposer))
            .await
            .is_err(),
        "with its only observer refused, the secret is not needed: no sink"
    );

    // Refused expose: the reader may not expose the clock; it is told.
    let _forger = reader.exchange.object_expose_contract("clock").with_capacity(1000).build();
    let forged = refused(&reader, "\"clock\"").await;
    assert!(forged.expose && !forged.observe, "{forged:?}");

    // An exposer without the right sends a forged, higher version anyway (a raw peer): the
    // observer never sees it, whatever the version.
    let (mut raw, _) = raw_websocket(&router).await;
    let frames = vec![
        Frame::Hello {
            version: hakuban_proto::PROTOCOL_VERSION,
            name: "forger".into(),
            load_limit: vec![],
            token: None,
        },
        Frame::DeclareObject { id: 1, tags: vec![], json: "\"clock\"".into() },
        Frame::ObjectInterest { object: 1, state: DeclarationState { observe: false, expose: Some(1000) } },
        Frame::State {
            object: 1,
            version: vec![1_000_000],
            format: Some(vec!["JSON".into()]),
            payload: Payload::Full(b"666".to_vec().into()),
            synchronized_us_ago: 0,
        },
    ];
    raw.send(Message::binary(encode_batch(&frames))).await.unwrap();
    let seen = publish_until_seen(&sink, &mut clock, 2).await;
    assert_eq!(seen, vec![2]);
    publish_until_seen(&sink, &mut clock, 3).await;
    let snapshot = reader.exchange.snapshot();
    let clock_state = snapshot.objects.iter().find(|o| o.descriptor.json_to_string() == "\"clock\"").unwrap();
    assert_eq!(clock_state.data_state.as_ref().map(|d| d.version.clone()), Some(vec![3]), "the forged version lost");

    // An unknown token: refused at hello, with the reason on the client's side.
    let stranger = Client::connect(&with_token(&router, "not-a-known-token-0000"));
    let connector = stranger.connector.as_ref().unwrap();
    eventually(|| connector.snapshot().last_error.is_some_and(|e| e.contains("unknown access token"))).await;
    assert!(!connector.url().contains("not-a-known-token"), "the token is not shown: {}", connector.url());
    healthy.check(1).await;
    for token in [READER, WRITER, "not-a-known-token-0000"] {
        assert!(router.log_lines(token).is_empty(), "a token in the router's log");
    }
    router.exit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_revokes_a_right_mid_stream_without_dropping_connections() {
    let dir = scratch("reload");
    let policy = dir.join("auth.json");
    write_policy(&policy, true);
    let router = Router::start("", &["--auth", policy.to_str().unwrap()]);
    let reader = Client::connect(&with_token(&router, READER));
    let writer = Client::connect(&with_token(&router, WRITER));
    let mut observe = reader.exchange.object_observe_contract((["public"], "news")).build();
    let mut expose = writer.exchange.object_expose_contract((["public"], "news")).build();
    let sink = next(&mut expose).await.unwrap();
    let mut news = next(&mut observe).await.unwrap();
    publish_until_seen(&sink, &mut news, 1).await;
    let link = reader.connector.as_ref().unwrap().snapshot().upstream_connection.unwrap().upstream_connection_id;

    write_policy(&policy, false);
    router.signal("USR1");
    let revoked = refused(&reader, "\"news\"").await;
    assert!(revoked.observe);
    eventually(|| router.log_lines("access policy reloaded").len() == 1).await;
    // The writer's sink closes: nobody may observe the object any more.
    eventually(|| !writer.exchange.snapshot().objects.iter().any(|o| o.data_needed)).await;
    sink.publish(state(2));
    let snapshot = reader.exchange.snapshot();
    let version = snapshot.objects.iter().find_map(|o| o.data_state.as_ref()).map(|d| d.version.clone());
    assert_ne!(version, Some(vec![2]), "nothing after the revocation");
    let same = reader.connector.as_ref().unwrap().snapshot().upstream_connection.unwrap().upstream_connection_id;
    assert_eq!(same, link, "the connection stayed");

    // A broken file keeps the previous policy.
    std::fs::write(&policy, "{ not json").unwrap();
    router.signal("USR1");
    eventually(|| router.log_lines("NOT reloaded").len() == 1).await;
    write_policy(&policy, true);
    router.signal("USR1");
    eventually(|| refusal_of(&reader.exchange.snapshot(), "\"news\"").is_none()).await;
    let sink = next(&mut expose).await.unwrap();
    publish_until_seen(&sink, &mut news, 10).await;
    router.exit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_router_authenticates_with_its_own_token_and_enforces_its_own_file() {
    let dir = scratch("tree");
    let policy = dir.join("auth.json");
    write_policy(&policy, true);
    let child_policy = dir.join("child.json");
    std::fs::write(
        &child_policy,
        format!(r#"{{"tokens": [{{"name": "local-reader", "token": "{READER}", "observe": {{"objects": ["*"]}}}}]}}"#),
    )
    .unwrap();
    let token_file = dir.join("child.token");
    std::fs::write(&token_file, format!("{CHILD}\n")).unwrap();
    let root = Router::start("", &["--auth", policy.to_str().unwrap()]);
    let child = Router::start(
        "",
        &[
            "--connect",
            &root.url,
            "--connect-token-file",
            token_file.to_str().unwrap(),
            "--auth",
            child_policy.to_str().unwrap(),
        ],
    );
    let writer = Client::connect(&with_token(&root, WRITER));
    let local_reader = Client::connect(&with_token(&child, READER));
    let anonymous = Client::connect(&child.url);

    // Within both files: the local reader observes a public object exposed at the root.
    let mut observe = local_reader.exchange.object_observe_contract((["public"], "weather")).build();
    let mut expose = writer.exchange.object_expose_contract((["public"], "weather")).build();
    let sink = next(&mut expose).await.unwrap();
    let mut weather = next(&mut observe).await.unwrap();
    publish_until_seen(&sink, &mut weather, 1).await;

    // The child's file refuses its anonymous client; the root's file refuses the child.
    let _anonymous = anonymous.exchange.object_observe_contract((["public"], "weather")).build();
    assert!(refused(&anonymous, "\"weather\"").await.observe);
    let _private = local_reader.exchange.object_observe_contract("private").build();
    let _private_exposer = writer.exchange.object_expose_contract("private").build();
    let upstream = refused(&local_reader, "\"private\"").await;
    assert!(upstream.observe && upstream.reason.starts_with("refused upstream"), "{upstream:?}");
    eventually(|| !child.log_lines("the parent refused").is_empty()).await;
    assert_eq!(child.log_lines("the parent refused").len(), 1);
    assert!(child.log_lines(CHILD).is_empty() && root.log_lines(CHILD).is_empty(), "the token is not logged");
    child.exit();
    root.exit();
}

/// A CA, and certificates it signs, written as PEM files in `dir`.
struct Pki {
    dir: PathBuf,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Pki {
    fn new(dir: &Path, name: &str) -> Pki {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        Pki { dir: dir.to_path_buf(), issuer: rcgen::Issuer::new(params, key) }
    }

    fn ca_file(&self, name: &str) -> String {
        self.dir.join(format!("{name}.pem")).to_str().unwrap().to_string()
    }

    /// A server certificate for `names`; (cert file, key file).
    fn server(&self, file: &str, names: &[&str], expired: bool) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (cert_file, key_file) = (self.dir.join(format!("{file}.crt")), self.dir.join(format!("{file}.key")));
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        (cert_file.to_str().unwrap().to_string(), key_file.to_str().unwrap().to_string())
    }
}

fn tls_router(cert: &str, key: &str) -> Router {
    Router::start_url("wss://127.0.0.1:0", &["--tls-cert", cert, "--tls-key", key])
}

/// Waits until a connector to `url` reports an error containing `needle`.
async fn refused_with(url: &str, needle: &str) -> String {
    let client = Client::connect(url);
    let connector: &WebsocketConnector = client.connector.as_ref().unwrap();
    let wait = async {
        while !connector.snapshot().last_error.is_some_and(|e| e.contains(needle)) {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    if tokio::time::timeout(common::PATIENCE, wait).await.is_err() {
        panic!("{url}: no error with `{needle}`: {:?}", connector.snapshot());
    }
    connector.snapshot().last_error.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_end_to_end_and_every_wrong_certificate_refused() {
    let dir = scratch("tls");
    let pki = Pki::new(&dir, "test-ca");
    let other = Pki::new(&dir, "other-ca");
    let (cert, key) = pki.server("router", &["localhost"], false);
    let router = tls_router(&cert, &key);
    let port = router.address().rsplit(':').next().unwrap().to_string();
    let ca = pki.ca_file("test-ca");

    // Routed observe/expose over wss://.
    let a = Client::connect(&format!("wss://localhost:{port}#ca={ca}"));
    let b = Client::connect(&format!("wss://localhost:{port}#ca={ca},name=b"));
    let mut observe = a.exchange.object_observe_contract((["t"], "secure")).build();
    let mut expose = b.exchange.object_expose_contract((["t"], "secure")).build();
    let sink = next(&mut expose).await.unwrap();
    let mut stream = next(&mut observe).await.unwrap();
    publish_until_seen(&sink, &mut stream, 1).await;

    // Wrong CA, platform roots (a self-signed test CA is not among them), wrong host, plain
    // ws:// on the TLS port: each refused with its reason, each one line in the router's log.
    let wrong_ca = refused_with(&format!("wss://localhost:{port}#ca={}", other.ca_file("other-ca")), "TLS").await;
    assert!(wrong_ca.contains("UnknownIssuer"), "{wrong_ca}");
    let untrusted = refused_with(&format!("wss://localhost:{port}"), "TLS").await;
    assert!(untrusted.contains("UnknownIssuer"), "{untrusted}");
    // The certificate names "localhost", not the address.
    let wrong_host = refused_with(&format!("wss://127.0.0.1:{port}#ca={ca}"), "TLS").await;
    assert!(wrong_host.contains("not valid for name"), "{wrong_host}");
    let plain = refused_with(&format!("ws://127.0.0.1:{port}"), "400").await;
    assert!(plain.contains("wss://"), "{plain}");
    eventually(|| !router.log_lines("a plain (ws://) client on this TLS port").is_empty()).await;
    eventually(|| !router.log_lines("TLS handshake failed").is_empty()).await;
    publish_until_seen(&sink, &mut stream, 2).await;

    // An expired certificate, and a TLS client on a plain port.
    let (old_cert, old_key) = pki.server("expired", &["localhost"], true);
    let expired = tls_router(&old_cert, &old_key);
    let expired_port = expired.address().rsplit(':').next().unwrap().to_string();
    let message = refused_with(&format!("wss://localhost:{expired_port}#ca={ca}"), "TLS").await;
    assert!(message.contains("certificate expired"), "{message}");
    let plain_router = Router::start("", &[]);
    let port = plain_router.address().rsplit(':').next().unwrap().to_string();
    refused_with(&format!("wss://127.0.0.1:{port}#ca={ca}"), "TLS handshake failed").await;
    eventually(|| !plain_router.log_lines("a TLS (wss://) client on this plain port").is_empty()).await;
    publish_until_seen(&sink, &mut stream, 3).await;
    plain_router.exit();
    expired.exit();
    router.exit();
}
