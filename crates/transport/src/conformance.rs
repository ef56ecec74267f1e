//! The one conformance suite every [`Transport`] implementation runs.
//!
//! An implementation provides a [`Harness`] (a fresh namespace per test, and a way to
//! stop and start the broker or store) and expands [`conformance_tests!`] in an
//! integration test. The functions panic on failure, like assertions.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use crate::{Delivery, Envelope, ErrorKind, Settled, Subscription, Transport, TransportError};

/// The delivery limit a harness must configure.
pub const MAX_DELIVERIES: u32 = 3;

/// The recipients the suite uses; a harness may clean them up afterwards.
pub const RECIPIENTS: &[&str] = &["alpha", "beta"];

/// How long the suite waits for a delivery that must come (leases, TTLs and a broker
/// restart included).
const PATIENCE: Duration = Duration::from_secs(30);

/// Gives the suite transports on the system under test.
#[async_trait]
pub trait Harness: Send + Sync {
    /// A transport in this harness's namespace, configured with `max_deliveries =`
    /// [`MAX_DELIVERIES`], retry delays of at most 1 s and (embedded) a lease of
    /// about 1 s. Every call shares the same namespace.
    async fn transport(&self) -> Arc<dyn Transport>;
    /// Stops the broker, or closes the store. `current` is the transport in use.
    async fn stop(&self, current: &Arc<dyn Transport>);
    /// Starts it again and returns the transport to use from now on (the same one when
    /// it reconnects by itself).
    async fn start(&self, current: Arc<dyn Transport>) -> Arc<dyn Transport>;
    /// Removes what the test created, when the system under test is shared.
    async fn cleanup(&self) {}
}

fn envelope(recipient: &str, n: usize) -> Envelope {
    Envelope::new(
        "flow-test",
        "sender-test",
        recipient,
        format!("payload {n}").into_bytes(),
    )
    .with_header("key-id", "k1")
}

/// Waits up to `wait` for a delivery.
pub async fn next_within(sub: &mut Box<dyn Subscription>, wait: Duration) -> Option<Delivery> {
    match tokio::time::timeout(wait, sub.next()).await {
        Ok(Ok(d)) => Some(d),
        Ok(Err(e)) => panic!("subscription failed: {e}"),
        Err(_) => None,
    }
}

async fn must_next(sub: &mut Box<dyn Subscription>) -> Delivery {
    next_within(sub, PATIENCE)
        .await
        .expect("a delivery was expected within the patience")
}

async fn assert_quiet(sub: &mut Box<dyn Subscription>, wait: Duration) {
    if let Some(d) = next_within(sub, wait).await {
        panic!(
            "no delivery was expected, got transfer {} (count {})",
            d.envelope.header.transfer_id, d.delivery_count
        );
    }
}

/// Published messages come back intact, in order, delivered once, then are gone.
pub async fn round_trip(h: &dyn Harness) {
    let t = h.transport().await;
    t.declare_recipient("alpha").await.unwrap();
    let mut sent = Vec::new();
    for i in 0..10 {
        let e = envelope("alpha", i).with_ordering_key("k");
        let c = t.publish(e.clone()).await.unwrap();
        assert_eq!(c.transfer_id, e.header.transfer_id);
        sent.push(e);
    }
    let mut sub = t.subscribe("alpha").await.unwrap();
    for e in &sent {
        let d = must_next(&mut sub).await;
        assert_eq!(&d.envelope, e, "message changed in transit or out of order");
        assert_eq!(d.delivery_count, 1);
        d.ack().await.unwrap();
    }
    assert_quiet(&mut sub, Duration::from_millis(700)).await;
    assert_eq!(sub.close(Duration::from_secs(5)).await.unwrap(), 0);
    let mut again = t.subscribe("alpha").await.unwrap();
    assert_quiet(&mut again, Duration::from_millis(700)).await;
    assert!(t.dead_letters("alpha").await.unwrap().is_empty());
}

/// A publish that cannot be stored is an error, never a confirmation.
pub async fn refuses_what_it_cannot_store(h: &dyn Harness) {
    let t = h.transport().await;
    let e = t.publish(envelope("beta", 0)).await.unwrap_err();
    assert!(
        matches!(e, TransportError::Unroutable { .. }),
        "undeclared recipient must be unroutable, got {e}"
    );
    assert_eq!(e.kind(), ErrorKind::Permanent);
    let e = t.publish(envelope("no such queue", 0)).await.unwrap_err();
    assert!(matches!(e, TransportError::Invalid { .. }), "got {e}");
    t.declare_recipient("beta").await.unwrap();
    t.publish(envelope("beta", 1)).await.unwrap();
    t.close().await.unwrap();
    let e = t.publish(envelope("beta", 2)).await.unwrap_err();
    assert!(matches!(e, TransportError::Closed), "got {e}");
}

/// A consumer that goes away without settling loses nothing: the messages come back.
pub async fn consumer_crash_redelivers(h: &dyn Harness) {
    let t = h.transport().await;
    t.declare_recipient("alpha").await.unwrap();
    let mut ids = BTreeSet::new();
    for i in 0..5 {
        ids.insert(t.publish(envelope("alpha", i)).await.unwrap().transfer_id);
    }
    let mut sub = t.subscribe("alpha").await.unwrap();
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(must_next(&mut sub).await);
    }
    // The crash: everything dropped at once, nothing settled.
    drop(sub);
    drop(held);
    let mut sub = t.subscribe("alpha").await.unwrap();
    let mut again = BTreeSet::new();
    while again.len() < 5 {
        let d = must_next(&mut sub).await;
        assert_eq!(
            d.delivery_count, 2,
            "a redelivery must count the first delivery"
        );
        again.insert(d.envelope.header.transfer_id);
        d.ack().await.unwrap();
    }
    assert_eq!(again, ids);
    assert_quiet(&mut sub, Duration::from_millis(700)).await;
}

/// `retry` on the last allowed delivery dead-letters, with the count and the reason.
pub async fn dead_letters_after_the_limit(h: &dyn Harness) {
    let t = h.transport().await;
    t.declare_recipient("alpha").await.unwrap();
    let sent = envelope("alpha", 7);
    t.publish(sent.clone()).await.unwrap();
    let mut sub = t.subscribe("alpha").await.unwrap();
    for attempt in 1..=MAX_DELIVERIES {
        let d = must_next(&mut sub).await;
        assert_eq!(d.envelope, sent);
        assert_eq!(d.delivery_count, attempt);
        let outcome = d.retry(Duration::from_millis(100)).await.unwrap();
        let want = if attempt == MAX_DELIVERIES {
            Settled::DeadLettered
        } else {
            Settled::Retried
        };
        assert_eq!(outcome, want, "attempt {attempt}");
    }
    assert_quiet(&mut sub, Duration::from_millis(1500)).await;
    let dead = t.dead_letters("alpha").await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].envelope, sent);
    assert_eq!(dead[0].delivery_count, MAX_DELIVERIES);
    assert!(
        dead[0].reason.contains("delivery limit"),
        "{}",
        dead[0].reason
    );
    let inspected = t.dead_letter(&dead[0].id).await.unwrap();
    assert_eq!(inspected, dead[0]);
    // Listing does not consume: a second listing sees the same.
    assert_eq!(t.dead_letters("alpha").await.unwrap().len(), 1);
}

/// Explicit dead-lettering keeps the reason; replay sends the message back once.
pub async fn dead_letter_and_replay(h: &dyn Harness) {
    let t = h.transport().await;
    t.declare_recipient("beta").await.unwrap();
    let bad = envelope("beta", 1);
    let good = envelope("beta", 2);
    t.publish(bad.clone()).await.unwrap();
    t.publish(good.clone()).await.unwrap();
    let mut sub = t.subscribe("beta").await.unwrap();
    let d = must_next(&mut sub).await;
    assert_eq!(d.envelope, bad);
    d.dead_letter("schema version unknown").await.unwrap();
    let d = must_next(&mut sub).await;
    assert_eq!(d.envelope, good);
    d.ack().await.unwrap();
    let dead = t.dead_letters("beta").await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, "schema version unknown");
    assert_eq!(dead[0].delivery_count, 1);
    let confirmed = t.replay(&dead[0].id).await.unwrap();
    assert_eq!(confirmed.transfer_id, bad.header.transfer_id);
    assert!(t.dead_letters("beta").await.unwrap().is_empty());
    let d = must_next(&mut sub).await;
    assert_eq!(d.envelope, bad);
    assert_eq!(d.delivery_count, 1, "a replay starts counting afresh");
    d.ack().await.unwrap();
    let e = t.replay(&dead[0].id).await.unwrap_err();
    assert!(matches!(e, TransportError::NotFound(_)), "got {e}");
    assert_quiet(&mut sub, Duration::from_millis(700)).await;
}

/// A message that crashes every consumer ends in the dead letters after the limit.
pub async fn crash_loop_dead_letters(h: &dyn Harness) {
    let t = h.transport().await;
    t.declare_recipient("alpha").await.unwrap();
    let sent = envelope("alpha", 3);
    t.publish(sent.clone()).await.unwrap();
    for attempt in 1..=MAX_DELIVERIES {
        let mut sub = t.subscribe("alpha").await.unwrap();
        let d = must_next(&mut sub).await;
        assert_eq!(d.delivery_count, attempt);
        // The crash: consumer and delivery go together, nothing settled.
        drop(sub);
        drop(d);
    }
    let mut sub = t.subscribe("alpha").await.unwrap();
    assert_quiet(&mut sub, Duration::from_secs(3)).await;
    let dead = t.dead_letters("alpha").await.unwrap();
    assert_eq!(dead.len(), 1, "the message must be dead-lettered");
    assert_eq!(dead[0].envelope, sent);
    assert!(
        dead[0].reason.contains("delivery limit"),
        "{}",
        dead[0].reason
    );
}

/// Nothing confirmed is lost across a broker or store restart; a publish while it is
/// down fails instead of being confirmed.
pub async fn restart_loses_nothing(h: &dyn Harness) {
    let t = h.transport().await;
    t.declare_recipient("alpha").await.unwrap();
    let mut confirmed = BTreeSet::new();
    for i in 0..20 {
        confirmed.insert(t.publish(envelope("alpha", i)).await.unwrap().transfer_id);
    }
    let mut sub = t.subscribe("alpha").await.unwrap();
    for _ in 0..5 {
        let d = must_next(&mut sub).await;
        assert!(confirmed.remove(&d.envelope.header.transfer_id));
        d.ack().await.unwrap();
    }
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(must_next(&mut sub).await);
    }
    h.stop(&t).await;
    let lost = envelope("alpha", 99);
    let r = t.publish(lost.clone()).await;
    assert!(r.is_err(), "a publish while down must not be confirmed");
    drop(held);
    let t = h.start(t).await;
    confirmed.insert(t.publish(envelope("alpha", 100)).await.unwrap().transfer_id);
    let mut seen = HashSet::new();
    // The old subscription either reconnects (RabbitMQ) or is replaced.
    drop(sub);
    let mut sub = t.subscribe("alpha").await.unwrap();
    while seen.len() < confirmed.len() {
        let d = must_next(&mut sub).await;
        let id = d.envelope.header.transfer_id;
        assert!(confirmed.contains(&id), "unexpected message after restart");
        seen.insert(id);
        d.ack().await.unwrap();
    }
    assert!(!seen.contains(&lost.header.transfer_id));
    assert_quiet(&mut sub, Duration::from_millis(1000)).await;
}

/// Messages published one after another are first delivered in publish order, for
/// every ordering key of the recipient.
pub async fn ordering_per_key(h: &dyn Harness) {
    let t = h.transport().await;
    t.declare_recipient("beta").await.unwrap();
    let mut sent = Vec::new();
    for i in 0..40 {
        let key = if i % 3 == 0 { "jeune-a" } else { "jeune-b" };
        let e = envelope("beta", i).with_ordering_key(key);
        t.publish(e.clone()).await.unwrap();
        sent.push(e.header.transfer_id);
    }
    let mut sub = t.subscribe("beta").await.unwrap();
    let mut got = Vec::new();
    while got.len() < sent.len() {
        let d = must_next(&mut sub).await;
        got.push(d.envelope.header.transfer_id);
        d.ack().await.unwrap();
    }
    assert_eq!(got, sent);
}

/// Concurrent publishes are all confirmed and each delivered.
pub async fn pipelined_publishes(h: &dyn Harness) {
    let t = h.transport().await;
    t.declare_recipient("alpha").await.unwrap();
    let batch: Vec<Envelope> = (0..300).map(|i| envelope("alpha", i)).collect();
    let want: BTreeSet<Uuid> = batch.iter().map(|e| e.header.transfer_id).collect();
    let results = t.publish_batch(batch).await;
    let mut message_ids = HashSet::new();
    for r in results {
        assert!(message_ids.insert(r.unwrap().message_id));
    }
    let mut sub = t.subscribe("alpha").await.unwrap();
    let mut got = BTreeSet::new();
    while got.len() < want.len() {
        let d = must_next(&mut sub).await;
        got.insert(d.envelope.header.transfer_id);
        d.ack().await.unwrap();
    }
    assert_eq!(got, want);
}

/// `close` waits for handed-out deliveries and returns the others.
pub async fn graceful_close(h: &dyn Harness) {
    let t = h.transport().await;
    t.declare_recipient("beta").await.unwrap();
    let mut ids = BTreeSet::new();
    for i in 0..10 {
        ids.insert(t.publish(envelope("beta", i)).await.unwrap().transfer_id);
    }
    let mut sub = t.subscribe("beta").await.unwrap();
    let d = must_next(&mut sub).await;
    ids.remove(&d.envelope.header.transfer_id);
    let acker = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        d.ack().await
    });
    let started = tokio::time::Instant::now();
    let left = sub.close(Duration::from_secs(10)).await.unwrap();
    assert_eq!(left, 0);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "close did not wait"
    );
    acker.await.unwrap().unwrap();
    let mut sub = t.subscribe("beta").await.unwrap();
    let mut got = BTreeSet::new();
    while got.len() < ids.len() {
        let d = must_next(&mut sub).await;
        got.insert(d.envelope.header.transfer_id);
        d.ack().await.unwrap();
    }
    assert_eq!(got, ids);
}

/// Expands to one `#[tokio::test]` per conformance check. `$make` is an async
/// expression giving `Option<impl Harness>` (`None`: the service is missing and the
/// test returns early, which the harness reports).
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@one $make;
            round_trip, refuses_what_it_cannot_store, consumer_crash_redelivers,
            dead_letters_after_the_limit, dead_letter_and_replay, crash_loop_dead_letters,
            ordering_per_key, pipelined_publishes, graceful_close);
    };
    (@one $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(h) = $make.await else { return };
                $crate::conformance::$name(&h).await;
                $crate::conformance::Harness::cleanup(&h).await;
            }
        )*
    };
}
