//! The RabbitMQ transport on a 3-node cluster (started by `scripts/test` with
//! `deploy/rabbitmq/rabbitmq.sh cluster-start`, named by `PASSERELLE_TEST_AMQP_CLUSTER_URLS`,
//! `PASSERELLE_TEST_RABBITMQ_CLUSTER_DIR` and `PASSERELLE_TEST_RABBITMQ_CLUSTER_PORT`):
//! the conformance suite, a kill -9 of the node the transport is connected to in the
//! middle of a stream, and single active consumer on a recipient queue.
//!
//! Tests of one binary run in parallel processes: the ones that kill a node hold an
//! exclusive lock on a file of the cluster's folder, the others a shared one, so no test
//! sees a node die that did not ask for it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use passerelle_transport::amqp::AmqpConfig;
use passerelle_transport::conformance::{Harness, MAX_DELIVERIES};
use passerelle_transport::{Envelope, Subscription, Transport, conformance_tests};
use uuid::Uuid;

struct Cluster {
    urls: Vec<String>,
    dir: PathBuf,
    base: u16,
    prefix: String,
    /// Held for the test's life: shared, or exclusive for a test that kills a node.
    _lock: std::fs::File,
}

// Printing is how a test says why it returned early without a cluster.
#[allow(clippy::print_stderr)]
fn cluster(exclusive: bool) -> Option<Cluster> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let (Some(urls), Some(dir), Some(base)) = (
        var("PASSERELLE_TEST_AMQP_CLUSTER_URLS"),
        var("PASSERELLE_TEST_RABBITMQ_CLUSTER_DIR"),
        var("PASSERELLE_TEST_RABBITMQ_CLUSTER_PORT"),
    ) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "PASSERELLE_TEST_AMQP_CLUSTER_URLS, PASSERELLE_TEST_RABBITMQ_CLUSTER_DIR and \
             PASSERELLE_TEST_RABBITMQ_CLUSTER_PORT are required when CI is set (run through scripts/test)"
        );
        eprintln!("skipped: no RabbitMQ cluster (run the tests through scripts/test)");
        return None;
    };
    let dir = PathBuf::from(dir);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("tests.lock"))
        .expect("open the cluster's lock file");
    if exclusive {
        lock.lock().unwrap();
    } else {
        lock.lock_shared().unwrap();
    }
    let urls: Vec<String> = urls.split(',').map(str::to_owned).collect();
    assert_eq!(urls.len(), 3, "a 3-node cluster is expected");
    Some(Cluster {
        urls,
        dir,
        base: base.parse().expect("a port"),
        prefix: format!("pc-{}", &Uuid::new_v4().simple().to_string()[..12]),
        _lock: lock,
    })
}

impl Cluster {
    /// A transport over the three nodes, connecting to `first` (0-based) first.
    fn config(&self, first: usize) -> AmqpConfig {
        let mut nodes = self.urls.clone();
        nodes.rotate_left(first);
        let mut c = AmqpConfig::new(nodes.remove(0));
        c.urls = nodes;
        c.prefix = self.prefix.clone();
        c.max_deliveries = MAX_DELIVERIES;
        c.retry_delays_ms = vec![100, 1_000];
        // A quorum queue whose leader died elects another within seconds; a publish
        // waits for that rather than failing.
        c.reconnect_timeout_ms = 60_000;
        c.backoff_max_ms = 500;
        c
    }

    fn script(&self, action: &str, node: Option<usize>) {
        let mut cmd = std::process::Command::new(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/rabbitmq/rabbitmq.sh"),
        );
        cmd.arg(action).arg(&self.dir).arg(self.base.to_string());
        if let Some(n) = node {
            cmd.arg(n.to_string());
        }
        let status = cmd.status().expect("run rabbitmq.sh");
        assert!(status.success(), "rabbitmq.sh {action} {node:?}: {status}");
    }

    /// rabbitmqctl on node `n` (1-based), its output.
    fn ctl(&self, n: usize, args: &[&str]) -> String {
        let out = std::process::Command::new("/usr/lib/rabbitmq/bin/rabbitmqctl")
            .env("HOME", self.dir.join(format!("node{n}")))
            .arg("-n")
            .arg(format!(
                "rabbit-{}@localhost",
                usize::from(self.base) + n - 1
            ))
            .args(args)
            .output()
            .expect("run rabbitmqctl");
        assert!(
            out.status.success(),
            "rabbitmqctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The 1-based node whose port is in `host:port`.
    fn node_of(&self, host_port: &str) -> usize {
        let port: u16 = host_port.rsplit(':').next().unwrap().parse().unwrap();
        usize::from(port - self.base) + 1
    }
}

#[async_trait]
impl Harness for Cluster {
    async fn transport(&self) -> Arc<dyn Transport> {
        Arc::new(
            self.config(0)
                .build()
                .await
                .expect("connect to the cluster"),
        )
    }
    async fn stop(&self, _current: &Arc<dyn Transport>) {
        // The suite's functions run here do not stop the broker; a node's death is
        // what `a_node_killed_mid_stream_loses_nothing` checks.
        panic!("the cluster suite does not stop the whole cluster");
    }
    async fn start(&self, _current: Arc<dyn Transport>) -> Arc<dyn Transport> {
        panic!("the cluster suite does not stop the whole cluster");
    }
}

async fn harness() -> Option<Cluster> {
    cluster(false)
}

conformance_tests!(harness());

/// Restarts a killed node when the test ends, even failing, so the next test finds
/// three nodes.
struct Revive<'a>(&'a Cluster, usize);

impl Drop for Revive<'_> {
    fn drop(&mut self) {
        self.0.script("node-start", Some(self.1));
    }
}

#[derive(Debug, Clone)]
struct Seen {
    message_id: String,
    transfer_id: Uuid,
    count: u32,
    /// When its ack returned Ok, if it did.
    acked_at: Option<Instant>,
}

/// Publishes a stream with a consumer running, kills -9 the node both are connected to
/// in the middle, and checks: every confirmed message is consumed; a message delivered
/// that was not confirmed is one whose publish returned an error; a message delivered
/// twice is a redelivery (counted so) of a delivery whose ack had not been done
/// before the kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stderr)]
async fn a_node_killed_mid_stream_loses_nothing() {
    let Some(c) = cluster(true) else { return };
    let publisher = c.config(0).build().await.unwrap();
    let consumer = c.config(0).build().await.unwrap();
    publisher.declare_recipient("alpha").await.unwrap();
    let queue = format!("{}.q.alpha", c.prefix);
    // Replicated over the three nodes.
    let members = c.ctl(
        1,
        &["list_queues", "name", "members", "--formatter", "json"],
    );
    let row = members
        .lines()
        .flat_map(|l| l.split("},{"))
        .find(|r| r.contains(&format!("\"{queue}\"")))
        .unwrap_or_else(|| panic!("{queue} not listed: {members}"));
    for n in 0..3 {
        let node = format!("rabbit-{}@localhost", usize::from(c.base) + n);
        assert!(row.contains(&node), "{queue} not on {node}: {row}");
    }
    let killed = c.node_of(&publisher.connected_node().unwrap());
    assert_eq!(
        c.node_of(&consumer.connected_node().unwrap()),
        killed,
        "both start on the first node"
    );

    let seen = Arc::new(std::sync::Mutex::new(Vec::<Seen>::new()));
    let mut sub = consumer.subscribe("alpha").await.unwrap();
    let reader = {
        let seen = seen.clone();
        tokio::spawn(async move {
            loop {
                let d = match tokio::time::timeout(Duration::from_secs(90), sub.next()).await {
                    Ok(Ok(d)) => d,
                    Ok(Err(e)) => panic!("subscription failed: {e}"),
                    // The test aborts the reader once it has everything.
                    Err(_) => panic!("no delivery for 90 s"),
                };
                // Slower than the publisher, so deliveries are in the consumer's hands
                // when the node dies.
                tokio::time::sleep(Duration::from_millis(2)).await;
                let mut s = Seen {
                    message_id: d.message_id.clone(),
                    transfer_id: d.envelope.header.transfer_id,
                    count: d.delivery_count,
                    acked_at: None,
                };
                if d.ack().await.is_ok() {
                    s.acked_at = Some(Instant::now());
                }
                seen.lock().unwrap().push(s);
            }
        })
    };

    const TOTAL: usize = 3_000;
    let mut confirmed = BTreeMap::new();
    let mut failed_publishes: BTreeSet<Uuid> = BTreeSet::new();
    // The kill runs beside the publishes, so some are in flight when the node dies.
    let progress = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let killer = {
        let progress = progress.clone();
        let (dir, base) = (c.dir.clone(), c.base);
        std::thread::spawn(move || {
            while progress.load(std::sync::atomic::Ordering::SeqCst) < TOTAL / 3 {
                std::thread::sleep(Duration::from_millis(1));
            }
            let at = Instant::now();
            let status = std::process::Command::new(
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/rabbitmq/rabbitmq.sh"),
            )
            .args(["node-kill", &dir.display().to_string(), &base.to_string()])
            .arg(killed.to_string())
            .status()
            .unwrap();
            assert!(status.success());
            at
        })
    };
    let revive = Revive(&c, killed);
    let envelopes: Vec<Envelope> = (0..TOTAL)
        .map(|i| Envelope::new("flow", "sender", "alpha", format!("m{i}").into_bytes()))
        .collect();
    for chunk in envelopes.chunks(50) {
        let mut todo = chunk.to_vec();
        while !todo.is_empty() {
            let results = publisher.publish_batch(todo.clone()).await;
            let mut again = Vec::new();
            for (e, r) in todo.into_iter().zip(results) {
                match r {
                    Ok(ok) => {
                        confirmed.insert(ok.message_id, ok.transfer_id);
                        progress.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    Err(err) => {
                        // Reported, never silently lost: the caller publishes again,
                        // under the same transfer id, as the hub does.
                        assert!(err.is_retryable(), "{err}");
                        failed_publishes.insert(e.header.transfer_id);
                        again.push(e);
                    }
                }
            }
            todo = again;
        }
    }
    let kill_at = killer.join().unwrap();
    let after = c.node_of(&publisher.connected_node().unwrap());
    assert_ne!(after, killed, "the publisher moved to another node");

    // Wait until every confirmed message was consumed and acked.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let done: BTreeSet<String> = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.acked_at.is_some())
            .map(|s| s.message_id.clone())
            .collect();
        let missing = confirmed.keys().filter(|m| !done.contains(*m)).count();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} confirmed messages never consumed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Late redeliveries would show up now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    reader.abort();
    let seen = seen.lock().unwrap().clone();

    let mut by_message: HashMap<&str, Vec<&Seen>> = HashMap::new();
    for s in &seen {
        by_message.entry(&s.message_id).or_default().push(s);
    }
    let mut duplicates = 0;
    for (message_id, copies) in &by_message {
        if !confirmed.contains_key(*message_id) {
            assert!(
                failed_publishes.contains(&copies[0].transfer_id),
                "message {message_id} consumed but neither confirmed nor reported as failed"
            );
        }
        for pair in copies.windows(2) {
            duplicates += 1;
            assert!(
                pair[1].count > pair[0].count,
                "a second delivery of {message_id} that the broker did not count as a redelivery"
            );
            // An ack done well before the kill was applied by the queue: such a
            // message must not come back. (An ack in the last instants before the kill
            // may die with the node's leader, which only makes it come back.)
            if let Some(at) = pair[0].acked_at {
                assert!(
                    at + Duration::from_secs(1) > kill_at,
                    "message {message_id} acked {:?} before the kill came back",
                    kill_at - at
                );
            }
        }
    }
    let same_transfer: usize = {
        let mut per_transfer: HashMap<Uuid, BTreeSet<&str>> = HashMap::new();
        for s in &seen {
            per_transfer
                .entry(s.transfer_id)
                .or_default()
                .insert(&s.message_id);
        }
        per_transfer.values().filter(|m| m.len() > 1).count()
    };
    eprintln!(
        "{} confirmed, {} publishes reported failed and sent again, {} deliveries, \
         {duplicates} redeliveries, {same_transfer} transfers stored twice (a failed publish that \
         had reached the queue)",
        confirmed.len(),
        failed_publishes.len(),
        seen.len()
    );
    let transfers: BTreeSet<Uuid> = seen.iter().map(|s| s.transfer_id).collect();
    assert_eq!(transfers.len(), TOTAL, "every transfer consumed");
    publisher.close().await.unwrap();
    consumer.close().await.unwrap();
    drop(revive);
}

/// The broker's pid (`<rabbit@host.1.2.3>`) of the connection this transport named.
fn connection_pid(c: &Cluster, node: usize, name: &str) -> Option<String> {
    let out = c.ctl(
        node,
        &["list_connections", "pid", "client_properties", "-q"],
    );
    out.lines()
        .find(|l| l.contains(name))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_owned)
}

/// Two consumers on one recipient: only one receives. Its connection killed, the other
/// takes over, with what the first had not acked; nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_active_consumer_and_a_takeover() {
    let Some(c) = cluster(false) else { return };
    let a = c.config(0).build().await.unwrap();
    let b = c.config(1).build().await.unwrap();
    a.declare_recipient("beta").await.unwrap();
    assert!(!a.is_legacy_queue("beta"));
    let mut sub_a = a.subscribe("beta").await.unwrap();
    // Registered second: it waits.
    let mut sub_b = b.subscribe("beta").await.unwrap();
    let mut want = BTreeSet::new();
    for i in 0..20 {
        let e = Envelope::new("flow", "s", "beta", format!("m{i}").into_bytes());
        want.insert(a.publish(e).await.unwrap().transfer_id);
    }
    let mut done = BTreeSet::new();
    for _ in 0..10 {
        let d = next(&mut sub_a, 30)
            .await
            .expect("the active consumer receives");
        done.insert(d.envelope.header.transfer_id);
        d.ack().await.unwrap();
    }
    assert!(
        next(&mut sub_b, 1).await.is_none(),
        "the waiting consumer received while the active one was alive"
    );
    let held = next(&mut sub_a, 30).await.unwrap();
    let held_id = held.envelope.header.transfer_id;

    // Kill A's connection from the broker's side, as a dead instance's would go.
    let node_a = c.node_of(&a.connected_node().unwrap());
    let pid = connection_pid(&c, node_a, a.connection_name()).expect("A's connection listed");
    c.ctl(node_a, &["close_connection", &pid, "test: instance died"]);
    // Let the client read the close before it tries to ack.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        held.ack().await.is_err(),
        "an ack on a dead connection fails"
    );

    let mut got_held = false;
    while done.len() < want.len() {
        let d = next(&mut sub_b, 30)
            .await
            .expect("the other consumer takes over");
        let id = d.envelope.header.transfer_id;
        if id == held_id {
            assert!(d.delivery_count >= 2, "the unacked one comes back, counted");
            got_held = true;
        }
        assert!(
            done.insert(id) || id == held_id,
            "a message acked by A came back"
        );
        d.ack().await.unwrap();
    }
    assert!(got_held);
    assert_eq!(done, want);
    // A reconnected by itself and now waits behind B: it gets nothing.
    let e = Envelope::new("flow", "s", "beta", b"late".to_vec());
    let late = a.publish(e).await.unwrap().transfer_id;
    let d = next(&mut sub_b, 30).await.expect("B stays the active one");
    assert_eq!(d.envelope.header.transfer_id, late);
    d.ack().await.unwrap();
    assert!(next(&mut sub_a, 1).await.is_none());
    sub_a.close(Duration::from_secs(5)).await.unwrap();
    sub_b.close(Duration::from_secs(5)).await.unwrap();
    a.close().await.unwrap();
    b.close().await.unwrap();
}

async fn next(
    sub: &mut Box<dyn Subscription>,
    secs: u64,
) -> Option<passerelle_transport::Delivery> {
    match tokio::time::timeout(Duration::from_secs(secs), sub.next()).await {
        Ok(Ok(d)) => Some(d),
        Ok(Err(e)) => panic!("subscription failed: {e}"),
        Err(_) => None,
    }
}
