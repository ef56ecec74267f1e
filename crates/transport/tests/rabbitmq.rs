//! The conformance suite on the RabbitMQ transport, against the broker named by
//! `PASSERELLE_TEST_AMQP_URL`; the restart check runs its own private broker.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use passerelle_transport::amqp::topology::Names;
use passerelle_transport::amqp::{AmqpConfig, TlsConfig};
use passerelle_transport::conformance::{self, Harness, MAX_DELIVERIES, RECIPIENTS};
use passerelle_transport::{Transport, conformance_tests};

const RETRY_DELAYS_MS: [u64; 2] = [100, 1_000];

struct Rabbit {
    url: String,
    prefix: String,
    /// TLS options for an `amqps://` URL.
    tls: TlsConfig,
    /// A private broker (DIR, PORT) this harness started and must stop.
    own: Option<(tempfile::TempDir, u16)>,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/rabbitmq/rabbitmq.sh")
}

fn run_script(action: &str, dir: &std::path::Path, port: u16) {
    let status = std::process::Command::new(script())
        .arg(action)
        .arg(dir)
        .arg(port.to_string())
        .status()
        .expect("run deploy/rabbitmq/rabbitmq.sh");
    assert!(status.success(), "rabbitmq.sh {action} failed: {status}");
}

impl Rabbit {
    fn config(&self) -> AmqpConfig {
        let mut c = AmqpConfig::new(&self.url);
        c.tls = self.tls.clone();
        c.prefix = self.prefix.clone();
        c.max_deliveries = MAX_DELIVERIES;
        c.retry_delays_ms = RETRY_DELAYS_MS.to_vec();
        // Short, so that a publish while the broker is down fails quickly.
        c.reconnect_timeout_ms = 3_000;
        c.backoff_max_ms = 500;
        c
    }
}

impl Drop for Rabbit {
    fn drop(&mut self) {
        if let Some((dir, port)) = &self.own {
            run_script("stop", dir.path(), *port);
        }
    }
}

#[async_trait]
impl Harness for Rabbit {
    async fn transport(&self) -> Arc<dyn Transport> {
        Arc::new(self.config().build().await.expect("connect to rabbitmq"))
    }
    async fn stop(&self, _current: &Arc<dyn Transport>) {
        let (dir, port) = self.own.as_ref().expect("only a private broker is stopped");
        run_script("stop", dir.path(), *port);
    }
    async fn start(&self, current: Arc<dyn Transport>) -> Arc<dyn Transport> {
        let (dir, port) = self.own.as_ref().expect("only a private broker is started");
        run_script("start", dir.path(), *port);
        // The same transport: it must reconnect by itself.
        current
    }
    async fn cleanup(&self) {
        if self.own.is_some() {
            // A private broker goes away with its folder: nothing to clean.
            return;
        }
        let Ok(conn) =
            lapin::Connection::connect(&self.url, lapin::ConnectionProperties::default()).await
        else {
            return;
        };
        let Ok(ch) = conn.create_channel().await else {
            return;
        };
        let n = Names::new(&self.prefix);
        let mut queues: Vec<String> = RETRY_DELAYS_MS.iter().map(|ms| n.retry(*ms)).collect();
        for r in RECIPIENTS {
            queues.push(n.queue(r));
            queues.push(n.dead_queue(r));
        }
        for q in &queues {
            let _ = ch
                .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        let mut exchanges = vec![n.work(), n.requeue(), n.dead()];
        exchanges.extend(RETRY_DELAYS_MS.iter().map(|ms| n.retry(*ms)));
        for e in &exchanges {
            let _ = ch
                .exchange_delete(e.as_str().into(), ExchangeDeleteOptions::default())
                .await;
        }
        let _ = conn.close(200, "OK".into()).await;
    }
}

// Printing is how a test says why it returned early without a broker.
#[allow(clippy::print_stderr)]
fn shared_url() -> Option<String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match std::env::var("PASSERELLE_TEST_AMQP_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "PASSERELLE_TEST_AMQP_URL is required when CI is set"
            );
            eprintln!(
                "skipped: PASSERELLE_TEST_AMQP_URL is not set (start one with deploy/rabbitmq/rabbitmq.sh)"
            );
            None
        }
    }
}

fn unique_prefix() -> String {
    format!("pt-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

async fn harness() -> Option<Rabbit> {
    Some(Rabbit {
        url: shared_url()?,
        prefix: unique_prefix(),
        tls: TlsConfig::default(),
        own: None,
    })
}

conformance_tests!(harness());

fn free_port() -> u16 {
    // The broker also needs PORT+20000 for Erlang distribution.
    for _ in 0..200 {
        let port = 20_000 + (rand::random::<u16>() % 20_000);
        let ok = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        if ok(port) && ok(port + 20_000) {
            return port;
        }
    }
    panic!("no free port pair found");
}

/// Stops and starts a real broker mid-test. It uses a private broker, so tests running
/// at the same time against the shared one are not disturbed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_loses_nothing() {
    if shared_url().is_none() {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("pt-rabbit-")
        .tempdir()
        .unwrap();
    let port = free_port();
    run_script("start", dir.path(), port);
    let h = Rabbit {
        url: format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
        prefix: unique_prefix(),
        tls: TlsConfig::default(),
        own: Some((dir, port)),
    };
    conformance::restart_loses_nothing(&h).await;
}

#[tokio::test]
async fn build_fails_clearly_without_a_broker() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut c = AmqpConfig::new("amqp://guest:guest@127.0.0.1:1/%2f");
    c.reconnect_timeout_ms = 300;
    let e = c.build().await.unwrap_err();
    assert!(e.is_retryable());
    assert!(e.to_string().contains("cannot reach rabbitmq"), "{e}");
}

/// A broker loaded from `deploy/rabbitmq/definitions.json` accepts the code's own
/// declarations (RabbitMQ refuses a redeclaration with other arguments), and works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_json_is_what_the_code_declares() {
    if shared_url().is_none() {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("pt-rabbit-")
        .tempdir()
        .unwrap();
    let port = free_port();
    run_script("start", dir.path(), port);
    let h = Rabbit {
        url: format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
        prefix: "passerelle".into(),
        tls: TlsConfig::default(),
        own: Some((dir, port)),
    };
    let definitions =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/rabbitmq/definitions.json");
    let status = std::process::Command::new(script())
        .arg("import")
        .arg(h.own.as_ref().unwrap().0.path())
        .arg(port.to_string())
        .arg(&definitions)
        .status()
        .unwrap();
    assert!(status.success());
    let mut cfg = AmqpConfig::new(&h.url);
    cfg.recipients = vec!["hub".into(), "cd-059".into(), "ml-059-lille".into()];
    let t = cfg
        .build()
        .await
        .expect("the code's declarations match the file");
    let e = passerelle_transport::Envelope::new("flow", "cd-059", "hub", b"x".to_vec());
    t.publish(e.clone()).await.unwrap();
    let mut sub = t.subscribe("hub").await.unwrap();
    let d = sub.next().await.unwrap();
    assert_eq!(d.envelope, e);
    d.ack().await.unwrap();
    t.close().await.unwrap();
}

/// One subscription and one transport live through a broker restart: both reconnect
/// by themselves and nothing confirmed is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_reconnects_after_restart() {
    if shared_url().is_none() {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("pt-rabbit-")
        .tempdir()
        .unwrap();
    let port = free_port();
    run_script("start", dir.path(), port);
    let h = Rabbit {
        url: format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
        prefix: unique_prefix(),
        tls: TlsConfig::default(),
        own: Some((dir, port)),
    };
    let mut cfg = h.config();
    cfg.reconnect_timeout_ms = 30_000;
    let t = cfg.build().await.unwrap();
    t.declare_recipient("alpha").await.unwrap();
    let mut want = std::collections::BTreeSet::new();
    for _ in 0..3 {
        let e = passerelle_transport::Envelope::new("flow", "s", "alpha", b"x".to_vec());
        want.insert(t.publish(e).await.unwrap().transfer_id);
    }
    let mut sub = t.subscribe("alpha").await.unwrap();
    let d = sub.next().await.unwrap();
    want.remove(&d.envelope.header.transfer_id);
    d.ack().await.unwrap();
    let held = sub.next().await.unwrap();
    run_script("stop", h.own.as_ref().unwrap().0.path(), port);
    // Settling on the dead channel fails with a retryable error; the message comes back.
    let e = held.ack().await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    run_script("start", h.own.as_ref().unwrap().0.path(), port);
    for _ in 0..2 {
        let e = passerelle_transport::Envelope::new("flow", "s", "alpha", b"y".to_vec());
        want.insert(t.publish(e).await.unwrap().transfer_id);
    }
    let mut got = std::collections::BTreeSet::new();
    while got.len() < want.len() {
        let d = tokio::time::timeout(std::time::Duration::from_secs(30), sub.next())
            .await
            .expect("delivery after restart")
            .unwrap();
        got.insert(d.envelope.header.transfer_id);
        d.ack().await.unwrap();
    }
    assert_eq!(got, want);
    sub.close(std::time::Duration::from_secs(5)).await.unwrap();
    t.close().await.unwrap();
}

/// Runs the `openssl` command line tool (Debian package `openssl`) in `dir`.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl (install the Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl {} failed: {}",
        args.first().copied().unwrap_or_default(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A throw-away CA (`ca.pem`) and a server certificate for the name `localhost` only
/// (`server.pem`, `server.key`), ECDSA P-256, valid two days.
fn throwaway_pki(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=passerelle test ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
}

/// Conformance over AMQPS: a private broker with a TLS listener serving a certificate
/// from a throw-away CA; the client trusts that CA through `tls.ca_file` and nothing
/// else. Also checks that verification is real: without the CA, or under a name the
/// certificate does not carry, the connection is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqps_conformance_with_a_verified_server() {
    if shared_url().is_none() {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("pt-rabbit-tls-")
        .tempdir()
        .unwrap();
    let pki = dir.path().join("pki");
    throwaway_pki(&pki);
    let (port, tls_port) = loop {
        let port = free_port();
        let tls_port = port + 1;
        if std::net::TcpListener::bind(("127.0.0.1", tls_port)).is_ok() {
            break (port, tls_port);
        }
    };
    let status = std::process::Command::new(script())
        .arg("start")
        .arg(dir.path())
        .arg(port.to_string())
        .env("RABBITMQ_TLS_PORT", tls_port.to_string())
        .env("RABBITMQ_TLS_CERT", pki.join("server.pem"))
        .env("RABBITMQ_TLS_KEY", pki.join("server.key"))
        .env("RABBITMQ_TLS_CACERT", pki.join("ca.pem"))
        .status()
        .expect("run deploy/rabbitmq/rabbitmq.sh");
    assert!(
        status.success(),
        "rabbitmq.sh start with tls failed: {status}"
    );
    let tls = TlsConfig {
        ca_file: Some(pki.join("ca.pem")),
        ..TlsConfig::default()
    };
    // Owns the broker: stops it when the test ends, passed or failed.
    let _broker = Rabbit {
        url: String::new(),
        prefix: unique_prefix(),
        tls: tls.clone(),
        own: Some((dir, port)),
    };
    let harness = |host: &str, tls: TlsConfig| Rabbit {
        url: format!("amqps://guest:guest@{host}:{tls_port}/%2f"),
        prefix: unique_prefix(),
        tls,
        own: None,
    };

    // Verification is on: an unknown CA and a wrong name are both refused.
    for (host, tls, why, rule) in [
        (
            "localhost",
            TlsConfig::default(),
            "a server certificate from an unknown ca",
            "UnknownIssuer",
        ),
        (
            "127.0.0.1",
            tls.clone(),
            "a certificate for another name",
            "not valid for name",
        ),
    ] {
        let mut cfg = harness(host, tls).config();
        cfg.reconnect_timeout_ms = 300;
        let e = cfg
            .build()
            .await
            .expect_err(&format!("connected despite {why}"));
        assert!(e.to_string().contains(rule), "{why}: {e}");
    }

    let ok = |host: &str| harness(host, tls.clone());
    conformance::round_trip(&ok("localhost")).await;
    conformance::pipelined_publishes(&ok("localhost")).await;
    conformance::dead_letter_and_replay(&ok("localhost")).await;
}

/// Messages in the format used before the header moved into the body (JSON header in an
/// AMQP headers table, payload alone in the body) may still sit in retry or dead-letter
/// queues after an upgrade: they are delivered, dead-lettered, listed and replayed like
/// the others. A foreign body (no header at all) is refused to the dead letters and
/// never handed out nor listed as one of ours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn former_header_format_still_works() {
    use futures::StreamExt as _;
    use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
    use lapin::types::{AMQPValue, FieldTable};
    use passerelle_transport::Envelope;

    let Some(h) = harness().await else {
        return;
    };
    let recipient = RECIPIENTS[0];
    let t = h.transport().await;
    t.declare_recipient(recipient).await.unwrap();
    let names = Names::new(&h.prefix);
    let conn = lapin::Connection::connect(&h.url, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let publish = |body: Vec<u8>, props: lapin::BasicProperties| {
        let ch = ch.clone();
        let exchange = names.work();
        async move {
            let confirm = ch
                .basic_publish(
                    exchange.as_str().into(),
                    recipient.into(),
                    BasicPublishOptions {
                        mandatory: true,
                        immediate: false,
                    },
                    &body,
                    props,
                )
                .await
                .unwrap()
                .await
                .unwrap();
            assert!(matches!(confirm, lapin::Confirmation::Ack(None)));
        }
    };
    // First a foreign message, then one in the former format.
    publish(
        b"not ours".to_vec(),
        lapin::BasicProperties::default()
            .with_message_id("foreign".into())
            .with_delivery_mode(2),
    )
    .await;
    let old = Envelope::new(
        "flux",
        "sender",
        recipient,
        b"PSR\x01 looks framed".to_vec(),
    )
    .with_ordering_key("k1")
    .with_header("key-id", "7");
    let mut table = FieldTable::default();
    table.insert(
        "x-passerelle-header".into(),
        AMQPValue::LongString(serde_json::to_string(&old.header).unwrap().into()),
    );
    publish(
        old.payload.to_vec(),
        lapin::BasicProperties::default()
            .with_message_id("former-1".into())
            .with_content_type("application/octet-stream".into())
            .with_delivery_mode(2)
            .with_timestamp(0)
            .with_headers(table),
    )
    .await;

    let mut sub = t.subscribe(recipient).await.unwrap();
    let d = sub.next().await.unwrap();
    assert_eq!(d.message_id, "former-1");
    assert_eq!(d.envelope, old);
    assert_eq!(d.delivery_count, 1);
    d.dead_letter("checked by a test").await.unwrap();

    let listed = t.dead_letters(recipient).await.unwrap();
    assert_eq!(listed.len(), 1, "the foreign message is not listed as ours");
    assert_eq!(listed[0].envelope, old);
    assert_eq!(listed[0].reason, "checked by a test");
    let confirmed = t.replay(&listed[0].id).await.unwrap();
    assert_eq!(confirmed.transfer_id, old.header.transfer_id);
    let d = sub.next().await.unwrap();
    assert_eq!(
        d.envelope, old,
        "the replayed copy, now framed, reads the same"
    );
    assert_eq!(d.message_id, confirmed.message_id);
    d.ack().await.unwrap();
    assert_eq!(
        sub.close(std::time::Duration::from_secs(5)).await.unwrap(),
        0
    );

    // The foreign message was refused to the dead-letter queue, not lost.
    let mut in_dead = 0;
    for _ in 0..50 {
        in_dead = ch
            .queue_declare(
                names.dead_queue(recipient).as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap()
            .message_count();
        if in_dead == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(in_dead, 1);
    let mut consumer = ch
        .basic_consume(
            names.dead_queue(recipient).as_str().into(),
            "check".into(),
            lapin::options::BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let foreign = consumer.next().await.unwrap().unwrap();
    assert_eq!(foreign.data, b"not ours");
    let _ = conn.close(200, "OK".into()).await;
    t.close().await.unwrap();
    h.cleanup().await;
}

/// A recipient queue declared by an earlier version, without single active consumer:
/// the transport uses it as it is (RabbitMQ would refuse a redeclaration with the new
/// argument), says so, and works; with the option off nothing changes either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_from_before_single_active_consumer_is_used_as_it_is() {
    let Some(h) = harness().await else { return };
    let mut old = h.config();
    old.single_active_consumer = false;
    let before = old.build().await.unwrap();
    before.declare_recipient("alpha").await.unwrap();
    let kept = passerelle_transport::Envelope::new("flow", "s", "alpha", b"old".to_vec());
    before.publish(kept.clone()).await.unwrap();
    before.close().await.unwrap();

    let t = h
        .config()
        .build()
        .await
        .expect("the hub starts on the old queue");
    t.declare_recipient("beta").await.unwrap();
    assert!(!t.is_legacy_queue("beta"), "a new queue gets the argument");
    t.declare_recipient("alpha").await.unwrap();
    assert!(t.is_legacy_queue("alpha"), "the old queue is recognised");
    let mut sub = t.subscribe("alpha").await.unwrap();
    let d = sub.next().await.unwrap();
    assert_eq!(d.envelope, kept, "what the old queue held is delivered");
    d.ack().await.unwrap();
    let e = passerelle_transport::Envelope::new("flow", "s", "alpha", b"new".to_vec());
    t.publish(e.clone()).await.unwrap();
    assert_eq!(sub.next().await.unwrap().envelope, e);
    sub.close(std::time::Duration::from_secs(5)).await.unwrap();
    t.close().await.unwrap();
    h.cleanup().await;
}

/// The migration of such a queue: refused while it has a consumer; then every message
/// moves to a queue declared with single active consumer, where one consumer at a time
/// receives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_from_before_single_active_consumer_migrates_without_loss() {
    let Some(h) = harness().await else { return };
    let mut old = h.config();
    old.single_active_consumer = false;
    let before = old.build().await.unwrap();
    before.declare_recipient("alpha").await.unwrap();
    let mut want = std::collections::BTreeSet::new();
    for i in 0..7 {
        let e = passerelle_transport::Envelope::new("flow", "s", "alpha", vec![i]);
        want.insert(before.publish(e).await.unwrap().transfer_id);
    }
    let t = h.config().build().await.unwrap();
    t.declare_recipient("alpha").await.unwrap();
    assert!(t.is_legacy_queue("alpha"));
    // An old instance still consuming: refused, nothing changed.
    let sub_old = before.subscribe("alpha").await.unwrap();
    let e = t.migrate_to_single_active("alpha").await.unwrap_err();
    assert!(e.to_string().contains("consumers"), "{e}");
    sub_old
        .close(std::time::Duration::from_secs(5))
        .await
        .unwrap();
    before.close().await.unwrap();

    // The broker counts a cancelled consumer out within a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let moved = loop {
        match t.migrate_to_single_active("alpha").await {
            Ok(n) => break n,
            Err(e)
                if std::time::Instant::now() < deadline && e.to_string().contains("consumers") =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert!(moved >= 2 * want.len(), "moved {moved}");
    assert!(!t.is_legacy_queue("alpha"));
    // Publishing goes on, and a fresh transport finds the new queue as it declares it.
    let e = passerelle_transport::Envelope::new("flow", "s", "alpha", b"after".to_vec());
    want.insert(t.publish(e).await.unwrap().transfer_id);
    let other = h.config().build().await.unwrap();
    other.declare_recipient("alpha").await.unwrap();
    assert!(
        !other.is_legacy_queue("alpha"),
        "declared with the argument now"
    );
    let mut first = t.subscribe("alpha").await.unwrap();
    let mut second = other.subscribe("alpha").await.unwrap();
    let mut got = std::collections::BTreeSet::new();
    while got.len() < want.len() {
        let d = conformance::next_within(&mut first, std::time::Duration::from_secs(30))
            .await
            .expect("every message after the migration");
        got.insert(d.envelope.header.transfer_id);
        d.ack().await.unwrap();
    }
    assert_eq!(got, want, "nothing lost");
    assert!(
        conformance::next_within(&mut second, std::time::Duration::from_millis(700))
            .await
            .is_none(),
        "one active consumer"
    );
    // Migrating again is harmless.
    first
        .close(std::time::Duration::from_secs(5))
        .await
        .unwrap();
    second
        .close(std::time::Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(t.migrate_to_single_active("alpha").await.unwrap(), 0);
    t.close().await.unwrap();
    other.close().await.unwrap();
    h.cleanup().await;
}
