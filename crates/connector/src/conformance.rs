//! The one conformance suite every connector runs against its simulator.
//!
//! [`Source`] and [`Sink`] document promises the engine relies on; this module checks
//! them, as `passerelle_transport::conformance` does for the transports. A connector
//! provides a [`SourceHarness`] and/or a [`SinkHarness`] over its simulator (make a
//! source or sink, inject a fault, observe the peer) and expands
//! [`connector_conformance_tests!`] in a test file of its
//! own, naming the checks that apply (a peer without files has no file to refuse). The
//! functions panic on failure, like assertions.

use std::collections::BTreeSet;

use async_trait::async_trait;

use crate::{ConnectorError, Delivery, ErrorKind, ReceiptStatus, Sink, Source, SourceItem};

/// How many calls in a row may come back empty before a source counts as drained
/// (a source may answer empty once while it settles what it handed out).
const EMPTY_CALLS: usize = 2;

/// The most `next_batch` calls one drain makes: a source that never runs dry fails.
const MAX_CALLS: usize = 10_000;

/// Gives the suite sources over one simulated peer and its state.
#[async_trait]
pub trait SourceHarness: Send + Sync {
    /// A new source over the same peer and the same state: called again, a restart.
    /// The peer must hold some items when the harness is made.
    async fn source(&self) -> Box<dyn Source>;
    /// Puts on the peer a file the source must refuse whole (truncated, failing its
    /// checks); its records must never be served. Only for peers that send files.
    async fn plant_refused_file(&self) {
        panic!("this harness has no file to refuse; leave refused_file_is_reported_once out")
    }
    /// Refusals the peer has been told of, for a source that reports a refused file
    /// to its peer (a box's ACK file) rather than as `FileRefused` to the engine;
    /// `None` (the default) for the others.
    async fn refusals_told_to_peer(&self) -> Option<usize> {
        None
    }
    /// Turns a fault the source should meet as retryable on (`true`) or off.
    async fn transient_fault(&self, on: bool);
    /// Faults the peer has injected so far (0 when it cannot count them).
    async fn faults_seen(&self) -> u64 {
        0
    }
    /// What names an item across restarts; its acknowledgement token by default.
    fn key(&self, item: &SourceItem) -> String {
        item.ack.0.clone()
    }
}

/// Gives the suite sinks over one simulated peer.
#[async_trait]
pub trait SinkHarness: Send + Sync {
    /// A new sink to the same peer: called again, a restart of the hub.
    async fn sink(&self) -> Box<dyn Sink>;
    /// `n` deliveries the peer accepts, each with a transfer id never used before by
    /// this harness.
    fn deliveries(&self, n: usize) -> Vec<Delivery>;
    /// Makes the peer refuse `d` for good (or changes `d` so that it must), and
    /// returns the delivery to send.
    async fn permanent_fault(&self, d: Delivery) -> Delivery;
    /// Turns a fault the sink should meet as retryable on (`true`) or off.
    async fn transient_fault(&self, on: bool);
    /// The transfer ids the peer holds, one entry per copy (a duplicate shows twice).
    async fn held(&self) -> Vec<String>;
    /// The write requests the peer received, when it can count them.
    async fn attempts(&self) -> Option<u64> {
        None
    }
    /// Faults the peer has injected so far (0 when it cannot count them).
    async fn faults_seen(&self) -> u64 {
        0
    }
}

/// What a drain read: the items, and every error in order.
#[derive(Debug, Default)]
pub struct Drained {
    pub items: Vec<SourceItem>,
    pub errors: Vec<ConnectorError>,
    /// The size of each batch that was not empty, in order.
    pub batches: Vec<usize>,
}

/// Reads a source until it answers empty [`EMPTY_CALLS`] times in a row.
pub async fn drain(source: &mut dyn Source) -> Drained {
    let mut out = Drained::default();
    let mut empty = 0;
    for _ in 0..MAX_CALLS {
        match source.next_batch().await {
            Ok(batch) if batch.is_empty() => {
                empty += 1;
                if empty >= EMPTY_CALLS {
                    return out;
                }
            }
            Ok(batch) => {
                empty = 0;
                out.batches.push(batch.len());
                out.items.extend(batch);
            }
            Err(e) => {
                empty = 0;
                out.errors.push(e);
            }
        }
    }
    panic!("the source did not run dry within {MAX_CALLS} calls");
}

fn keys(h: &dyn SourceHarness, items: &[SourceItem]) -> BTreeSet<String> {
    items.iter().map(|i| h.key(i)).collect()
}

async fn ack_all(source: &mut dyn Source, items: &[SourceItem]) {
    let tokens: Vec<_> = items.iter().map(|i| i.ack.clone()).collect();
    if !tokens.is_empty() {
        source.ack(&tokens).await.expect("ack of served items");
    }
}

fn no_errors(what: &str, d: &Drained) {
    assert!(
        d.errors.is_empty(),
        "{what}: unexpected errors {:?}",
        d.errors
    );
}

/// Acknowledged items are never served again, by the same source or after a restart.
pub async fn acked_items_are_never_served_again(h: &dyn SourceHarness) {
    let mut source = h.source().await;
    let first = drain(source.as_mut()).await;
    no_errors("first read", &first);
    assert!(!first.items.is_empty(), "the harness's peer holds no item");
    ack_all(source.as_mut(), &first.items).await;
    let same = drain(source.as_mut()).await;
    no_errors("read after the acks", &same);
    assert!(
        same.items.is_empty(),
        "acknowledged items served again by the same source: {:?}",
        keys(h, &same.items)
    );
    drop(source);
    let mut restarted = h.source().await;
    let again = drain(restarted.as_mut()).await;
    no_errors("read after a restart", &again);
    assert!(
        again.items.is_empty(),
        "acknowledged items served again after a restart: {:?}",
        keys(h, &again.items)
    );
}

/// Items served but not acknowledged are served again by a new source (a restart);
/// once acknowledged there, they are gone.
pub async fn unacked_items_are_served_again_after_restart(h: &dyn SourceHarness) {
    let mut source = h.source().await;
    let first = drain(source.as_mut()).await;
    no_errors("first read", &first);
    let all = keys(h, &first.items);
    assert!(
        all.len() >= 2,
        "the harness's peer must hold two items or more"
    );
    // Half acknowledged, the others dropped with the source: a crash mid-night.
    let (acked, _) = first.items.split_at(first.items.len() / 2);
    ack_all(source.as_mut(), acked).await;
    let acked = keys(h, acked);
    drop(source);
    let mut restarted = h.source().await;
    let again = drain(restarted.as_mut()).await;
    no_errors("read after a restart", &again);
    let served = keys(h, &again.items);
    let missing: Vec<_> = all
        .difference(&acked)
        .filter(|k| !served.contains(*k))
        .collect();
    assert!(
        missing.is_empty(),
        "unacknowledged items lost at the restart: {missing:?}"
    );
    assert!(
        served.is_subset(&all),
        "a restart served items never read before: {:?}",
        served.difference(&all).collect::<Vec<_>>()
    );
    ack_all(restarted.as_mut(), &again.items).await;
    drop(restarted);
    let mut third = h.source().await;
    let rest = drain(third.as_mut()).await;
    no_errors("read after every ack", &rest);
    assert!(rest.items.is_empty(), "acknowledged items served again");
}

/// A file the source refuses whole yields no item and is reported once: as one
/// `FileRefused` on the read that meets it (or, for a source that answers its peer,
/// one refusal told to the peer), never again after a restart.
pub async fn refused_file_is_reported_once(h: &dyn SourceHarness) {
    let mut source = h.source().await;
    let good = drain(source.as_mut()).await;
    no_errors("first read", &good);
    ack_all(source.as_mut(), &good.items).await;
    drop(source);

    h.plant_refused_file().await;
    let told_before = h.refusals_told_to_peer().await;
    let mut source = h.source().await;
    let read = drain(source.as_mut()).await;
    assert!(
        read.items.is_empty(),
        "a refused file yielded items: {:?}",
        keys(h, &read.items)
    );
    match told_before {
        None => {
            assert_eq!(read.errors.len(), 1, "reported once: {:?}", read.errors);
            assert!(
                matches!(read.errors[0], ConnectorError::FileRefused { .. }),
                "reported as FileRefused, got {}",
                read.errors[0]
            );
            assert_eq!(read.errors[0].kind(), ErrorKind::InvalidInput);
        }
        Some(before) => {
            no_errors("a refusal told to the peer", &read);
            let told = h.refusals_told_to_peer().await.unwrap_or(0);
            assert_eq!(told - before, 1, "the refusal told to the peer once");
        }
    }
    let told = h.refusals_told_to_peer().await;
    drop(source);
    let mut restarted = h.source().await;
    let again = drain(restarted.as_mut()).await;
    assert!(
        again.items.is_empty() && again.errors.is_empty(),
        "{again:?}"
    );
    assert_eq!(
        h.refusals_told_to_peer().await,
        told,
        "told again after a restart"
    );
}

/// Under a transient fault the source fails retryably or serves what it has; once the
/// fault is gone, what it serves and what it served meanwhile are every item once
/// more, and nothing is lost.
pub async fn transient_faults_lose_nothing(h: &dyn SourceHarness) {
    let mut source = h.source().await;
    let clean = drain(source.as_mut()).await;
    no_errors("clean read", &clean);
    let all = keys(h, &clean.items);
    assert!(!all.is_empty(), "the harness's peer holds no item");
    drop(source);

    let faults_before = h.faults_seen().await;
    // The source is running when the fault comes (a mount lost mid-night).
    let mut source = h.source().await;
    h.transient_fault(true).await;
    let mut served = BTreeSet::new();
    let mut failures = 0;
    // Items whose acknowledgement failed under the fault, acknowledged after it.
    let mut unacked = Vec::new();
    for _ in 0..4 {
        match source.next_batch().await {
            Ok(batch) => {
                served.extend(keys(h, &batch));
                let tokens: Vec<_> = batch.iter().map(|i| i.ack.clone()).collect();
                if tokens.is_empty() {
                    continue;
                }
                if let Err(e) = source.ack(&tokens).await {
                    assert!(e.is_retryable(), "a transient fault must be retryable: {e}");
                    failures += 1;
                    unacked.extend(batch);
                }
            }
            Err(e) => {
                assert!(e.is_retryable(), "a transient fault must be retryable: {e}");
                failures += 1;
            }
        }
    }
    h.transient_fault(false).await;
    ack_all(source.as_mut(), &unacked).await;
    let injected = h.faults_seen().await - faults_before;
    assert!(
        failures > 0 || injected > 0,
        "the fault was not met (no error, the peer injected none)"
    );
    // The engine calls again after a retryable failure: the same source goes on.
    let rest = drain(source.as_mut()).await;
    no_errors("read after the fault", &rest);
    served.extend(keys(h, &rest.items));
    ack_all(source.as_mut(), &rest.items).await;
    assert_eq!(served, all, "the items served across the fault");
    drop(source);
    let mut restarted = h.source().await;
    let after = drain(restarted.as_mut()).await;
    assert!(after.items.is_empty(), "acknowledged items served again");
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn applied_or_delivered(what: &str, r: &Result<crate::Receipt, ConnectorError>) {
    match r {
        Ok(receipt) => assert!(
            !matches!(receipt.status, ReceiptStatus::Rejected { .. }),
            "{what}: the peer rejected a delivery it should accept: {receipt:?}"
        ),
        Err(e) => panic!("{what}: delivery failed: {e}"),
    }
}

/// A write repeated with the same transfer id, by the same sink or after a restart,
/// one by one or in a batch, changes nothing at the peer.
pub async fn repeated_write_changes_nothing(h: &dyn SinkHarness) {
    let sink = h.sink().await;
    let ds = h.deliveries(3);
    let before = h.held().await;
    for r in sink.deliver_batch(ds.clone()).await {
        applied_or_delivered("first write", &r);
    }
    let held = sorted(h.held().await);
    let mut want = before.clone();
    want.extend(ds.iter().map(|d| d.transfer_id.clone()));
    assert_eq!(
        held,
        sorted(want),
        "each delivery held once after the first write"
    );

    for r in sink.deliver_batch(ds.clone()).await {
        applied_or_delivered("the same batch again", &r);
    }
    applied_or_delivered("one again", &sink.deliver(ds[1].clone()).await);
    assert_eq!(
        sorted(h.held().await),
        held,
        "a repeated write changed the peer"
    );
    drop(sink);
    let restarted = h.sink().await;
    for r in restarted.deliver_batch(ds).await {
        applied_or_delivered("the same batch after a restart", &r);
    }
    assert_eq!(
        sorted(h.held().await),
        held,
        "a write repeated after a restart changed the peer"
    );
}

/// A retryable failure is retried, by the sink itself (the peer saw more attempts than
/// deliveries) or by the engine (the sink answered a retryable error and a later
/// delivery goes through); either way each delivery is held once.
pub async fn retryable_failure_is_retried(h: &dyn SinkHarness) {
    let sink = h.sink().await;
    let ds = h.deliveries(6);
    let before = h.held().await;
    let attempts_before = h.attempts().await;
    let faults_before = h.faults_seen().await;
    h.transient_fault(true).await;
    let results = sink.deliver_batch(ds.clone()).await;
    h.transient_fault(false).await;
    let mut again = Vec::new();
    for (d, r) in ds.iter().zip(&results) {
        match r {
            Ok(_) => applied_or_delivered("under a transient fault", r),
            Err(e) => {
                assert!(e.is_retryable(), "a transient fault must be retryable: {e}");
                again.push(d.clone());
            }
        }
    }
    let retried_inside = match (attempts_before, h.attempts().await) {
        (Some(a), Some(b)) => b - a > (ds.len() - again.len()) as u64,
        _ => false,
    };
    assert!(
        !again.is_empty() || retried_inside,
        "the fault was met by no retry (attempts {attempts_before:?} → {:?}, faults injected {})",
        h.attempts().await,
        h.faults_seen().await - faults_before
    );
    // The engine's retry: the failed ones again, and the whole batch for good measure
    // (the transport redelivers what was not acknowledged).
    for r in sink.deliver_batch(again).await {
        applied_or_delivered("the engine's retry", &r);
    }
    for r in sink.deliver_batch(ds.clone()).await {
        applied_or_delivered("redelivery", &r);
    }
    let mut want = before;
    want.extend(ds.iter().map(|d| d.transfer_id.clone()));
    assert_eq!(
        sorted(h.held().await),
        sorted(want),
        "each delivery held once across the fault and the retries"
    );
}

/// A permanent failure is not retried: one attempt at the peer, a refusal the engine
/// will not try again (a rejected receipt or an error that is not retryable), and
/// nothing held.
pub async fn permanent_failure_is_not_retried(h: &dyn SinkHarness) {
    let sink = h.sink().await;
    let d = h.deliveries(1).remove(0);
    let d = h.permanent_fault(d).await;
    let before = h.attempts().await;
    let r = sink.deliver(d.clone()).await;
    match &r {
        Ok(receipt) => assert!(
            matches!(receipt.status, ReceiptStatus::Rejected { .. }),
            "a permanent failure must be a rejection, got {receipt:?}"
        ),
        Err(e) => assert!(!e.is_retryable(), "a permanent failure was retryable: {e}"),
    }
    if let (Some(a), Some(b)) = (before, h.attempts().await) {
        assert!(
            b - a <= 1,
            "a permanent failure was retried ({} attempts)",
            b - a
        );
    }
    assert!(
        !h.held().await.contains(&d.transfer_id),
        "a refused delivery is held by the peer"
    );
}

/// Expands to one `#[tokio::test]` per check. `$make` is an async expression giving
/// the harness (a [`SourceHarness`] for source checks, a [`SinkHarness`] for sink
/// checks). Name checks one by one, or by group: `file_source` (every source check),
/// `api_source` (all but the refused file: a peer that sends no files), `sink`
/// (every sink check). Say in the test file why a check is left out.
#[macro_export]
macro_rules! connector_conformance_tests {
    ($make:expr; $($group:ident),+ $(,)?) => {
        $( $crate::connector_conformance_tests!(@group $make; $group); )+
    };
    (@group $make:expr; file_source) => {
        $crate::connector_conformance_tests!(@group $make; api_source);
        $crate::connector_conformance_tests!(@test $make; refused_file_is_reported_once);
    };
    (@group $make:expr; api_source) => {
        $crate::connector_conformance_tests!(@test $make; acked_items_are_never_served_again);
        $crate::connector_conformance_tests!(@test $make; unacked_items_are_served_again_after_restart);
        $crate::connector_conformance_tests!(@test $make; transient_faults_lose_nothing);
    };
    (@group $make:expr; sink) => {
        $crate::connector_conformance_tests!(@test $make; repeated_write_changes_nothing);
        $crate::connector_conformance_tests!(@test $make; retryable_failure_is_retried);
        $crate::connector_conformance_tests!(@test $make; permanent_failure_is_not_retried);
    };
    (@group $make:expr; $name:ident) => {
        $crate::connector_conformance_tests!(@test $make; $name);
    };
    (@test $make:expr; $name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let h = $make.await;
            $crate::conformance::$name(&h).await;
        }
    };
}

/// The transient fault of a file peer, for harnesses: the folder goes away (a lost
/// mount) and a regular file stands at its path while `on`, so that reading or writing
/// there fails as retryable (not a directory); `false` puts the folder back whole.
pub fn folder_outage(dir: &std::path::Path, on: bool) {
    let mut away = dir.as_os_str().to_owned();
    away.push(".away");
    let away = std::path::PathBuf::from(away);
    if on && !away.exists() {
        std::fs::rename(dir, &away).expect("folder set aside");
        std::fs::write(dir, b"not a folder").expect("file in the folder's place");
    } else if !on && away.exists() {
        std::fs::remove_file(dir).expect("file in the folder's place removed");
        std::fs::rename(&away, dir).expect("folder put back");
    }
}
