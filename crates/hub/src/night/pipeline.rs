//! The night as a pipeline. Sources are read side by side (a bounded number at once,
//! those that reply after the others);
//! each reads its next batch and prepares it (identity, policy, change, seal) while the
//! previous batch is published, recorded, journaled and acknowledged, the two steps
//! joined by a channel of one batch, so memory does not grow with the night. Every
//! recipient's queue is delivered meanwhile (once the sources that read its system are
//! read), until the sources are read and the queue stays quiet.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use passerelle_connector::{AckToken, ItemOutcome, Settled};
use tracing::{info, warn};

use super::work::SourceWork;
use super::{Limits, Progress, SinkPlan, SourcePlan};
use crate::engine::{Engine, EngineError, ItemFate, Prepared, Routed, SenderRef};
use crate::report::{DeliverSummary, FlowReport, NightReport};

type Result<T> = std::result::Result<T, EngineError>;

/// One recipient's delivery counted per flow, and why it stopped early, if it did.
type Delivered = Result<(BTreeMap<String, DeliverSummary>, Option<String>)>;

/// One flow's share of a batch read from a source, prepared.
struct FlowBatch {
    flow: String,
    prepared: Prepared,
    /// For each record offered to `prepare`, its place in the batch.
    at: Vec<usize>,
    /// Records the flow does not take, with why.
    unrouted: Vec<(usize, crate::org::Unrouted)>,
}

/// A batch read from a source, prepared for each flow it feeds.
struct ReadBatch {
    tokens: Vec<AckToken>,
    /// Each item's reference as its sender knows it (see `sender_ref`).
    refs: Vec<Option<SenderRef>>,
    /// Items the source's reader refused.
    refused: Vec<bool>,
    flows: Vec<FlowBatch>,
}

/// What one source did.
#[derive(Default)]
struct SourceRun {
    flows: BTreeMap<String, FlowReport>,
    /// Recipients something was published to.
    recipients: BTreeSet<String>,
}

/// How much a `NotSent` reason says: the most telling one is kept when the flows of
/// one item disagree.
fn weight(code: &str) -> u8 {
    match code {
        "DENIED" => 4,
        "IDENTITY_REVIEW" => 3,
        "NOT_KNOWN" => 2,
        _ => 1,
    }
}

fn not_sent(code: &str, reason: &str) -> ItemOutcome {
    ItemOutcome::NotSent {
        code: code.to_owned(),
        reason: reason.to_owned(),
    }
}

/// What became of one item under one flow, as its source hears it.
fn outcome_of(fate: ItemFate) -> ItemOutcome {
    match fate {
        ItemFate::Sent => ItemOutcome::Sent,
        ItemFate::Unchanged => ItemOutcome::Unchanged,
        ItemFate::Denied => not_sent("DENIED", "refused by the policy of the flow"),
        ItemFate::Review => not_sent("IDENTITY_REVIEW", "uncertain identity, kept for review"),
        ItemFate::NotKnown => not_sent(
            "NOT_KNOWN",
            "the recipient has not sent this person to the hub",
        ),
    }
}

/// How the sender of an item finds it again in a receipt. File peers (box, CNAF,
/// SOLIS) acknowledge by place in the file (`{file}:{line}`, `{file}#{n}`): that place
/// is the reference, and it is not personal. API peers (I-MILO, FAJ) name the record
/// by their own id for the person (a dossier number): personal, kept sealed.
fn sender_ref(ack: &AckToken, record: &passerelle_model::Jeune) -> SenderRef {
    use passerelle_model::SourceSystem;
    let r = match record.sources.first() {
        Some(s) if matches!(s.system, SourceSystem::Imilo | SourceSystem::Faj) => {
            SenderRef::own(s.record_id.as_str())
        }
        _ => SenderRef::place(ack.0.clone()),
    };
    r.with_initiales(record.etat_civil.initiales())
}

/// The outcome of an item over every flow it went through: sent under one flow is
/// sent; else unchanged under one; else the most telling reason it was not sent.
fn merge(a: Option<ItemOutcome>, b: ItemOutcome) -> ItemOutcome {
    use ItemOutcome::*;
    match (a, b) {
        (None, b) => b,
        (Some(Sent), _) | (_, Sent) => Sent,
        (Some(Unchanged), _) | (_, Unchanged) => Unchanged,
        (Some(Refused), b) => b,
        (Some(a), Refused) => a,
        (
            Some(NotSent {
                code: ca,
                reason: ra,
            }),
            NotSent {
                code: cb,
                reason: rb,
            },
        ) => {
            if weight(&cb) > weight(&ca) {
                NotSent {
                    code: cb,
                    reason: rb,
                }
            } else {
                NotSent {
                    code: ca,
                    reason: ra,
                }
            }
        }
    }
}

fn add_flow(total: &mut FlowReport, r: &FlowReport) {
    total.read += r.read;
    total.refused_at_source += r.refused_at_source;
    total.unrouted += r.unrouted;
    for (why, n) in &r.unrouted_reasons {
        *total.unrouted_reasons.entry(why.clone()).or_default() += n;
    }
    total.sent += &r.sent;
    total.delivered += &r.delivered;
    total.late += &r.late;
}

/// Adds what `other` counted to `report`.
fn add_report(report: &mut NightReport, other: &BTreeMap<String, FlowReport>) {
    for (flow, r) in other {
        add_flow(report.flow(flow), r);
    }
}

/// The sources, read side by side and sent, while `sinks` deliver until the sources
/// are all read and their queues stay quiet for `idle`.
// The night's parts, each borrowed as it is: a struct of them would only move them.
#[allow(clippy::too_many_arguments)]
pub(super) async fn sources_and_deliveries(
    engine: &Engine,
    sources: &mut [SourcePlan],
    sinks: &[SinkPlan],
    idle: Duration,
    at_once: usize,
    limits: &Limits,
    report: &mut NightReport,
    progress: &(dyn Fn(Progress<'_>) + Sync),
    work: Option<&SourceWork>,
) -> Result<()> {
    let read_all = AtomicBool::new(false);
    // The sources each recipient's delivery waits for: those that read its system.
    let waits: Vec<Vec<usize>> = sinks
        .iter()
        .map(|s| {
            sources
                .iter()
                .enumerate()
                .filter(|(_, p)| p.reads.contains(&s.recipient))
                .map(|(i, _)| i)
                .collect()
        })
        .collect();
    let finished: Vec<AtomicBool> = sources.iter().map(|_| AtomicBool::new(false)).collect();
    // Sources that failed leave the deliveries behind them closed: a night run again
    // must read those peers as this one would have.
    let source_failed: Vec<AtomicBool> = sources.iter().map(|_| AtomicBool::new(false)).collect();
    let read = tokio::sync::Notify::new();
    let on_read = |i: usize, ok: bool| {
        if ok {
            finished[i].store(true, Ordering::SeqCst);
        } else {
            source_failed[i].store(true, Ordering::SeqCst);
        }
        read.notify_waiters();
    };
    let failed = AtomicBool::new(false);
    let mut sent = NightReport::default();
    let send = async {
        let r = send_sources_then(
            engine, sources, at_once, limits, &mut sent, progress, &on_read, work,
        )
        .await;
        failed.store(r.is_err(), Ordering::SeqCst);
        read_all.store(true, Ordering::SeqCst);
        read.notify_waiters();
        r
    };
    let done = || read_all.load(Ordering::SeqCst);
    let mut delivered = NightReport::default();
    let deliver = async {
        let results = futures::future::join_all(sinks.iter().zip(&waits).map(|(plan, wait)| {
            let (finished, read, done, failed) = (&finished, &read, &done, &failed);
            let source_failed = &source_failed;
            async move {
                loop {
                    let notified = read.notified();
                    tokio::pin!(notified);
                    notified.as_mut().enable();
                    if wait
                        .iter()
                        .any(|i| source_failed[*i].load(Ordering::SeqCst))
                    {
                        return Ok((
                            BTreeMap::new(),
                            Some("not delivered: a source that reads it failed".to_owned()),
                        ));
                    }
                    if wait.iter().all(|i| finished[*i].load(Ordering::SeqCst)) {
                        break;
                    }
                    if done() {
                        if failed.load(Ordering::SeqCst) {
                            return Ok((BTreeMap::new(), None));
                        }
                        break;
                    }
                    notified.await;
                }
                let within = limits.deliver(Instant::now());
                engine
                    .deliver_within(&plan.recipient, plan.sink.as_ref(), idle, done, &within)
                    .await
            }
        }))
        .await;
        let plans: Vec<&SinkPlan> = sinks.iter().collect();
        count_deliveries(&plans, results, &mut delivered, progress)
    };
    let (s, d) = tokio::join!(send, deliver);
    add_report(report, &sent.flows);
    add_report(report, &delivered.flows);
    report.failed.extend(sent.failed);
    report.failed.extend(delivered.failed);
    s?;
    d
}

/// Reads the sources side by side (at most `at_once`), each dry; returns the
/// recipients something was published to.
pub(super) async fn send_sources(
    engine: &Engine,
    sources: &mut [SourcePlan],
    at_once: usize,
    limits: &Limits,
    report: &mut NightReport,
    progress: &(dyn Fn(Progress<'_>) + Sync),
    work: Option<&SourceWork>,
) -> Result<BTreeSet<String>> {
    send_sources_then(
        engine,
        sources,
        at_once,
        limits,
        report,
        progress,
        &|_, _| {},
        work,
    )
    .await
}

/// `send_sources`, calling `on_read` with each source's place once it is read. With
/// `work`, each source is read only if this instance claims it (a source another
/// instance read tonight counts as read).
// The night's parts, each borrowed as it is.
#[allow(clippy::too_many_arguments)]
async fn send_sources_then(
    engine: &Engine,
    sources: &mut [SourcePlan],
    at_once: usize,
    limits: &Limits,
    report: &mut NightReport,
    progress: &(dyn Fn(Progress<'_>) + Sync),
    on_read: &(dyn Fn(usize, bool) + Sync),
    work: Option<&SourceWork>,
) -> Result<BTreeSet<String>> {
    // Sources that reply (a follow-up goes only about persons the recipient sent)
    // come after the others: what the others send tonight is what they answer, however
    // fast each reads.
    let (replies, first): (Vec<_>, Vec<_>) = sources
        .iter_mut()
        .enumerate()
        .partition(|(_, p)| p.replies());
    let mut runs = Vec::new();
    for wave in [first, replies] {
        // The futures are made before they are streamed: a closure inside the
        // stream's type would keep the night's future from being `Send`
        // (rust-lang/rust#102211).
        let reads: Vec<_> = wave
            .into_iter()
            .map(|(i, plan)| async move {
                // Each source within its own deadline, and the night's.
                let deadline = limits.deadline_from(Instant::now());
                let name = plan.name.clone();
                let read = read_source(engine, plan, progress, deadline);
                let (run, end) = match work {
                    None => read.await,
                    Some(w) => match w
                        .read(&name, read, |(_, end)| matches!(end, Ok(None)))
                        .await
                    {
                        Ok(Some(r)) => r,
                        Ok(None) => (SourceRun::default(), Ok(None)),
                        Err(e) => (SourceRun::default(), Err(e)),
                    },
                };
                on_read(i, matches!(end, Ok(None)));
                (name, run, end)
            })
            .collect();
        let done: Vec<(String, SourceRun, SourceEnd)> = futures::stream::iter(reads)
            .buffer_unordered(at_once.max(1))
            .collect()
            .await;
        // A peer that failed fails its own source only; the hub failing stops all.
        let fatal = done.iter().any(|(_, _, r)| r.is_err());
        runs.extend(done);
        if fatal {
            break;
        }
    }
    let mut recipients = BTreeSet::new();
    let mut first_error = None;
    for (name, run, end) in runs {
        add_report(report, &run.flows);
        recipients.extend(run.recipients);
        match end {
            Ok(None) => {}
            Ok(Some(reason)) => report.fail(&format!("source {name}"), reason),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(recipients),
    }
}

/// Reads one source dry: the next batch is read and prepared while the previous one is
/// published, recorded, journaled and acknowledged.
/// What stopped a source before its end: its peer (unreachable, past its deadline),
/// or the hub itself (state, journal, transport: the night cannot go on).
type SourceEnd = Result<Option<String>>;

async fn read_source(
    engine: &Engine,
    plan: &mut SourcePlan,
    progress: &(dyn Fn(Progress<'_>) + Sync),
    deadline: Option<Instant>,
) -> (SourceRun, SourceEnd) {
    let SourcePlan {
        name,
        source,
        flows,
        ..
    } = plan;
    let (name, flows) = (&*name, &*flows);
    let source = tokio::sync::Mutex::new(source);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<ReadBatch>(1);
    // Batches handed to the consumer, and acknowledged by it: a source whose next
    // items wait on the acks of those before (an event queue serving only its oldest
    // unacknowledged page) is read again once they are acknowledged.
    let handed = std::sync::atomic::AtomicU64::new(0);
    let acked = std::sync::atomic::AtomicU64::new(0);
    let consumer_gone = AtomicBool::new(false);
    let acked_notify = tokio::sync::Notify::new();
    let produce = async {
        loop {
            let pending_at_read = handed.load(Ordering::SeqCst) > acked.load(Ordering::SeqCst);
            // The lock is held for the read only: the other side acknowledges meanwhile.
            let next = async { source.lock().await.next_batch().await };
            let next = match deadline {
                Some(d) => match tokio::time::timeout_at(d.into(), next).await {
                    Ok(n) => n,
                    Err(_) => {
                        return Ok(Some(
                            "its deadline passed; the rest is read by the next night".to_owned(),
                        ));
                    }
                },
                None => next.await,
            };
            let batch = match next {
                Ok(batch) => batch,
                // A file refused whole is set aside by its source and reported once;
                // the rest of the source, and the night, go on.
                Err(e @ passerelle_connector::ConnectorError::FileRefused { .. }) => {
                    warn!(source = %name, error = %e, "source file refused");
                    continue;
                }
                // The peer failed (unreachable past its retries, refused our
                // credentials): this source ends here, the night goes on.
                Err(e) => return Ok(Some(e.to_string())),
            };
            if batch.is_empty() {
                if !pending_at_read {
                    break;
                }
                // Empty while acks were pending: perhaps only for want of them. Wait
                // until what was handed on is acknowledged, then read again; the end
                // is an empty read with nothing pending.
                let caught_up = async {
                    loop {
                        let n = acked_notify.notified();
                        tokio::pin!(n);
                        n.as_mut().enable();
                        if consumer_gone.load(Ordering::SeqCst)
                            || acked.load(Ordering::SeqCst) >= handed.load(Ordering::SeqCst)
                        {
                            break;
                        }
                        n.await;
                    }
                };
                match deadline {
                    Some(d) => {
                        if tokio::time::timeout_at(d.into(), caught_up).await.is_err() {
                            return Ok(Some(
                                "its deadline passed; the rest is read by the next night"
                                    .to_owned(),
                            ));
                        }
                    }
                    None => caught_up.await,
                }
                if consumer_gone.load(Ordering::SeqCst) {
                    break;
                }
                continue;
            }
            let mut tokens = Vec::with_capacity(batch.len());
            let mut records = Vec::with_capacity(batch.len());
            let mut refused = Vec::with_capacity(batch.len());
            let mut refs = Vec::with_capacity(batch.len());
            for item in batch {
                refs.push(item.outcome.as_ref().ok().map(|j| sender_ref(&item.ack, j)));
                tokens.push(item.ack);
                refused.push(item.outcome.is_err());
                records.push(item.outcome.ok());
            }
            let mut per_flow = Vec::with_capacity(flows.len());
            for fr in flows {
                let mut routed = Vec::new();
                let mut at = Vec::new();
                let mut unrouted = Vec::new();
                for (i, record) in records.iter().enumerate() {
                    let Some(record) = record else { continue };
                    match (fr.route)(record) {
                        Ok((from, to)) => {
                            at.push(i);
                            routed.push(Routed {
                                from,
                                to,
                                record: record.clone(),
                                known_to_recipient: fr.known_to_recipient,
                            });
                        }
                        Err(why) => unrouted.push((i, why)),
                    }
                }
                let prepared = engine.prepare(&fr.flow, routed).await?;
                per_flow.push(FlowBatch {
                    flow: fr.flow.clone(),
                    prepared,
                    at,
                    unrouted,
                });
            }
            let read = ReadBatch {
                tokens,
                refs,
                refused,
                flows: per_flow,
            };
            // Counted before it is handed: the consumer may ack it at once.
            handed.fetch_add(1, Ordering::SeqCst);
            if tx.send(read).await.is_err() {
                // The other side stopped on an error: it is returned below.
                break;
            }
        }
        drop(tx);
        Ok::<_, EngineError>(None)
    };
    let consume = async {
        // However the consumer ends, a producer waiting on its acks is let go.
        struct Gone<'a>(&'a AtomicBool, &'a tokio::sync::Notify);
        impl Drop for Gone<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
                self.1.notify_waiters();
            }
        }
        let _gone = Gone(&consumer_gone, &acked_notify);
        let mut run = SourceRun::default();
        let mut read = 0u64;
        while let Some(batch) = rx.recv().await {
            match send_batch(engine, batch, &mut run).await {
                Ok((n, settled)) => {
                    read += n;
                    // Only now: the batch is published, recorded and journaled. A
                    // source that cannot take its acknowledgement serves the batch
                    // again next night (unchanged by then).
                    if let Err(e) = source.lock().await.ack_settled(&settled).await {
                        rx.close();
                        return (run, read, Ok(Some(e.to_string())));
                    }
                    acked.fetch_add(1, Ordering::SeqCst);
                    acked_notify.notify_waiters();
                }
                Err(e) => {
                    rx.close();
                    return (run, read, Err(e));
                }
            }
            for fr in flows {
                progress(Progress::Read {
                    source: name,
                    flow: &fr.flow,
                    read,
                });
            }
        }
        (run, read, Ok(None))
    };
    let (produced, (run, read, consumed)) = tokio::join!(produce, consume);
    let end = match (consumed, produced) {
        (Err(e), _) | (_, Err(e)) => Err(e),
        (Ok(Some(r)), _) | (_, Ok(Some(r))) => Ok(Some(r)),
        _ => Ok(None),
    };
    match &end {
        Ok(None) => info!(source = %name, read, "source read"),
        Ok(Some(reason)) => warn!(source = %name, read, "source stopped: {reason}"),
        Err(e) => warn!(source = %name, read, "source stopped the night: {e}"),
    }
    for fr in flows {
        if let Some(report) = run.flows.get(&fr.flow) {
            progress(Progress::SourceDone {
                source: name,
                flow: &fr.flow,
                report,
            });
        }
    }
    (run, end)
}

/// Publishes a read batch for each of its flows; returns how many items it held and
/// what became of each.
async fn send_batch(
    engine: &Engine,
    batch: ReadBatch,
    run: &mut SourceRun,
) -> Result<(u64, Vec<Settled>)> {
    let n = batch.tokens.len();
    let mut outcomes: Vec<Option<ItemOutcome>> = batch
        .refused
        .iter()
        .map(|r| r.then_some(ItemOutcome::Refused))
        .collect();
    let refused = batch.refused.iter().filter(|r| **r).count() as u64;
    for fb in batch.flows {
        let r = run.flows.entry(fb.flow.clone()).or_default();
        r.read += n as u64;
        r.refused_at_source += refused;
        r.unrouted += fb.unrouted.len() as u64;
        for (i, why) in &fb.unrouted {
            *r.unrouted_reasons.entry(why.to_string()).or_default() += 1;
            let o = not_sent("NO_ROUTE", &format!("{}: {why}", fb.flow));
            outcomes[*i] = Some(merge(outcomes[*i].take(), o));
        }
        run.recipients.extend(fb.prepared.recipients());
        let fates = fb.prepared.fates.clone();
        let refs: Vec<_> = fb
            .prepared
            .transfers()
            .into_iter()
            .filter_map(|(at, id, sender)| {
                let r = batch.refs.get(*fb.at.get(at)?)?.clone()?;
                Some((id, sender, r))
            })
            .collect();
        let s = engine.publish(fb.prepared).await?;
        engine.keep_sender_refs(refs).await?;
        r.sent += &s;
        for (i, fate) in fb.at.iter().zip(fates) {
            outcomes[*i] = Some(merge(outcomes[*i].take(), outcome_of(fate)));
        }
    }
    let settled = batch
        .tokens
        .into_iter()
        .zip(outcomes)
        .map(|(ack, o)| Settled {
            ack,
            outcome: o.unwrap_or_else(|| {
                not_sent(
                    "NO_ROUTE",
                    "no declared flow takes this record to an organisation the hub serves",
                )
            }),
        })
        .collect();
    Ok((n as u64, settled))
}

/// Delivers the sinks' queues side by side, each until `done` and quiet for `idle`.
/// Every delivery runs to its end: what was delivered is counted before an error of
/// another recipient is returned.
pub(super) async fn deliveries(
    engine: &Engine,
    sinks: &[&SinkPlan],
    idle: Duration,
    done: &(dyn Fn() -> bool + Sync),
    limits: &Limits,
    report: &mut NightReport,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> Result<()> {
    let results = futures::future::join_all(sinks.iter().map(|plan| async move {
        let within = limits.deliver(Instant::now());
        engine
            .deliver_within(&plan.recipient, plan.sink.as_ref(), idle, done, &within)
            .await
    }))
    .await;
    count_deliveries(sinks, results, report, progress)
}

fn count_deliveries(
    sinks: &[&SinkPlan],
    results: Vec<Delivered>,
    report: &mut NightReport,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> Result<()> {
    let mut first_error = None;
    for (plan, result) in sinks.iter().zip(results) {
        let by_flow = match result {
            Ok((b, stopped)) => {
                if let Some(reason) = stopped {
                    report.fail(&format!("delivery to {}", plan.recipient), reason);
                }
                b
            }
            Err(e) => {
                first_error.get_or_insert(e);
                continue;
            }
        };
        let mut total = DeliverSummary::default();
        for (flow, d) in by_flow {
            report.flow(&flow).delivered += &d;
            total += &d;
        }
        progress(Progress::Delivered {
            recipient: &plan.recipient,
            summary: &total,
        });
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
