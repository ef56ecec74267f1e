//! One night, whatever the wiring, in named phases: late answers; the sources, read
//! side by side and sent while every recipient's queue is delivered; then the sources
//! that answer what was just delivered (FAJ decisions) and their delivery; late answers
//! again; the cursors stored. Each source is acknowledged only after its batch is sent
//! (published, recorded, journaled), and hears what became of each item.
//!
//! What to read and where things go is the caller's (the configuration, the demo's
//! simulators): a [`Night`] holds boxed sources, routes, sinks and receipt sources, and
//! knows nothing of any peer.

mod pipeline;
mod plan;
mod work;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use passerelle_connector::ReceiptSource;
use tracing::warn;

use crate::engine::{Engine, EngineError};
use crate::report::{DeliverSummary, FlowReport, LateSummary, NightReport};

pub use crate::org::Route;
pub use crate::report::{add_delivered, add_late, add_sent};
pub use plan::{Cursor, FlowRoute, SinkByFlow, SinkPlan, SourcePlan};
pub use work::Coordination;

/// What a night runs between its first deliveries and the sources that answer them
/// (a test or the demo lets file peers and the FAJ commission answer there).
pub type Interlude<'a> =
    dyn Fn() -> Result<(), Box<dyn std::error::Error + Send + Sync>> + Sync + 'a;

/// Sources read at once by default: one. Sources about the same persons (a SOLIS
/// export and a CNAF file) resolve identities in the order they read them, and a night
/// must give the same hub ids, reviews and replies however fast each source goes; each
/// source is still pipelined (its next batch prepared while the last is published) and
/// delivered while it reads.
const SOURCES_AT_ONCE: usize = 1;

/// How long a night may take, in all and per peer, and how many failed batches in a
/// row a recipient may give before its delivery stops: past them, what is left waits
/// in its queue (or at its source) for the next night, and the report names the peer.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// Each source's read and each recipient's delivery, from its start.
    pub peer: Option<Duration>,
    /// The whole night, from its start.
    pub night: Option<Duration>,
    /// Batches in a row a recipient may fail (unreachable) before it is left for the
    /// next night; 0: no limit.
    pub failures: u32,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self {
            peer: None,
            night: None,
            failures: 3,
        }
    }
}

/// `Deadlines` for one run: the night's end fixed at its start.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Limits {
    peer: Option<Duration>,
    end: Option<Instant>,
    failures: u32,
}

impl Limits {
    fn new(d: &Deadlines, started: Instant) -> Self {
        Self {
            peer: d.peer,
            end: d.night.map(|n| started + n),
            failures: d.failures,
        }
    }

    /// The deadline of a peer's part starting at `now`.
    pub(crate) fn deadline_from(&self, now: Instant) -> Option<Instant> {
        match (self.peer.map(|p| now + p), self.end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The limits of a delivery starting at `now`.
    pub(crate) fn deliver(&self, now: Instant) -> crate::engine::DeliverLimits {
        crate::engine::DeliverLimits {
            deadline: self.deadline_from(now),
            failures: self.failures,
        }
    }
}

/// What a night does.
#[derive(Default)]
pub struct Night {
    pub sources: Vec<SourcePlan>,
    /// Sources read once the first deliveries are done: they answer what was just
    /// delivered (a FAJ platform's decisions on the requests it was sent).
    pub replies: Vec<SourcePlan>,
    pub sinks: Vec<SinkPlan>,
    pub receipts: Vec<Box<dyn ReceiptSource>>,
    /// How long a queue must stay quiet, once the sources are read, before its
    /// delivery ends.
    pub idle: Option<Duration>,
    /// How many sources are read at once (default 1: see `SOURCES_AT_ONCE`).
    pub sources_at_once: Option<usize>,
    /// How long the night and each peer may take (none by default).
    pub deadlines: Deadlines,
    /// How long a file peer may keep a transfer `delivered` without its answer; past
    /// it, the night settles it (see `Engine::settle_unanswered`). None: never.
    pub answer_within: Option<Duration>,
    /// Files in a source's folder that its name patterns do not take, by source: they
    /// are never read, and the night's report names them (set when planned).
    pub not_read: std::collections::BTreeMap<String, Vec<String>>,
    /// Peers the plan could not set up tonight (a folder not there: a share not
    /// mounted), by the name the report gives a failed peer (`source …`, `delivery to
    /// …`), with why: the night runs without them and says so; what they would have
    /// taken waits in its queue.
    pub unplanned: std::collections::BTreeMap<String, String>,
    /// One night at a time across the instances on this state, and the sources
    /// claimed when the night is named (see `work`).
    pub coordination: Coordination,
}

impl std::fmt::Debug for Night {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Night")
            .field("sources", &self.sources)
            .field("replies", &self.replies)
            .field("sinks", &self.sinks)
            .field("receipts", &self.receipts.len())
            .finish()
    }
}

/// Delivers the queues of `sinks` (`only` those named, when given) until quiet.
async fn deliver_to(
    sinks: &[SinkPlan],
    idle: Duration,
    engine: &Engine,
    limits: &Limits,
    report: &mut NightReport,
    progress: &(dyn Fn(Progress<'_>) + Sync),
    only: Option<&BTreeSet<String>>,
) -> Result<(), EngineError> {
    // A recipient that already failed tonight is not tried again.
    let sinks: Vec<&SinkPlan> = sinks
        .iter()
        .filter(|s| only.is_none_or(|o| o.contains(&s.recipient)))
        .filter(|s| {
            !report
                .failed
                .contains_key(&format!("delivery to {}", s.recipient))
        })
        .collect();
    pipeline::deliveries(engine, &sinks, idle, &|| true, limits, report, progress).await
}

/// A line of progress, for a bar or a log.
#[derive(Debug, Clone)]
pub enum Progress<'a> {
    Read {
        source: &'a str,
        flow: &'a str,
        read: u64,
    },
    SourceDone {
        source: &'a str,
        flow: &'a str,
        report: &'a FlowReport,
    },
    Delivered {
        recipient: &'a str,
        summary: &'a DeliverSummary,
    },
    Receipts {
        summary: &'a LateSummary,
    },
}

impl Night {
    /// The whole night (see the module documentation).
    pub async fn run(
        &mut self,
        engine: &Engine,
        progress: &(dyn Fn(Progress<'_>) + Sync),
    ) -> Result<NightReport, EngineError> {
        self.run_with(engine, progress, None).await
    }

    /// `run`, with `interlude` run between the first deliveries and the replies.
    pub async fn run_with(
        &mut self,
        engine: &Engine,
        progress: &(dyn Fn(Progress<'_>) + Sync),
        interlude: Option<&Interlude<'_>>,
    ) -> Result<NightReport, EngineError> {
        // Held for the whole run, dropped (so released) however it ends.
        let lock = engine
            .state()
            .night_lock(&self.coordination.instance, self.coordination.wait)
            .await?;
        let work = self.coordination.night.as_ref().map(|n| {
            work::SourceWork::new(
                engine.state().claims(n, &self.coordination.instance),
                self.coordination.lease,
            )
        });
        let started = Instant::now();
        let limits = Limits::new(&self.deadlines, started);
        let mut report = NightReport {
            not_read: self.not_read.clone(),
            ..NightReport::default()
        };
        for (peer, why) in &self.unplanned {
            report.fail(peer, why.clone());
        }
        let t = Instant::now();
        self.collect(engine, &mut report, progress).await?;
        if let Some(within) = self.answer_within {
            // Never left stuck: what a peer never answered is settled and named.
            for (recipient, n) in engine.settle_unanswered(within).await? {
                report.fail(
                    &format!("answers from {recipient}"),
                    format!(
                        "{n} transfers had no answer within {} h: dead-lettered, sent again when their source gives them again",
                        within.as_secs() / 3600
                    ),
                );
            }
        }
        report.phases.answers_before = t.elapsed().as_secs_f64();

        let t = Instant::now();
        let idle = self.idle();
        let at_once = self.sources_at_once.unwrap_or(SOURCES_AT_ONCE);
        pipeline::sources_and_deliveries(
            engine,
            &mut self.sources,
            &self.sinks,
            idle,
            at_once,
            &limits,
            &mut report,
            progress,
            work.as_ref(),
        )
        .await?;
        report.phases.sources = t.elapsed().as_secs_f64();

        if let Some(f) = interlude {
            f().map_err(|e| EngineError::Interlude(e.to_string()))?;
        }

        let t = Instant::now();
        if !self.replies.is_empty() {
            let to = pipeline::send_sources(
                engine,
                &mut self.replies,
                at_once,
                &limits,
                &mut report,
                progress,
                work.as_ref(),
            )
            .await?;
            // Only the queues the replies went to: the others were emptied above.
            deliver_to(
                &self.sinks,
                self.idle(),
                engine,
                &limits,
                &mut report,
                progress,
                Some(&to),
            )
            .await?;
        }
        report.phases.replies = t.elapsed().as_secs_f64();

        let t = Instant::now();
        self.collect(engine, &mut report, progress).await?;
        report.phases.answers_after = t.elapsed().as_secs_f64();
        // A source that failed tonight keeps its cursor: the next night reads on
        // from where this one started.
        let cursors: Vec<(String, String)> = self
            .sources
            .iter()
            .chain(&self.replies)
            .filter(|p| !report.failed.contains_key(&format!("source {}", p.name)))
            .filter_map(|p| p.cursor.as_ref())
            .filter_map(|c| Some((c.key.clone(), c.value()?)))
            .collect();
        for (key, value) in cursors {
            engine.state().set_cursor(&key, &value).await?;
        }
        engine.flush().await?;
        report.seconds = started.elapsed().as_secs_f64();
        lock.release().await;
        Ok(report)
    }

    fn idle(&self) -> Duration {
        self.idle.unwrap_or(Duration::from_millis(300))
    }

    /// Reads every source dry (side by side), sending each batch before acknowledging
    /// it; delivers nothing.
    pub async fn send(
        &mut self,
        engine: &Engine,
        report: &mut NightReport,
        progress: &(dyn Fn(Progress<'_>) + Sync),
    ) -> Result<(), EngineError> {
        let at_once = self.sources_at_once.unwrap_or(SOURCES_AT_ONCE);
        let limits = Limits::new(&self.deadlines, Instant::now());
        pipeline::send_sources(
            engine,
            &mut self.sources,
            at_once,
            &limits,
            report,
            progress,
            None,
        )
        .await?;
        Ok(())
    }

    /// Delivers every planned recipient's queue until it stays quiet. Recipients are
    /// delivered side by side: each waits `idle` for its queue to stay quiet and for
    /// its peer to answer, and those waits overlap instead of adding up.
    pub async fn deliver(
        &mut self,
        engine: &Engine,
        report: &mut NightReport,
        progress: &(dyn Fn(Progress<'_>) + Sync),
    ) -> Result<(), EngineError> {
        let limits = Limits::new(&self.deadlines, Instant::now());
        deliver_to(
            &self.sinks,
            self.idle(),
            engine,
            &limits,
            report,
            progress,
            None,
        )
        .await
    }

    /// Settles the answers waiting in every receipt source.
    pub async fn collect(
        &mut self,
        engine: &Engine,
        report: &mut NightReport,
        progress: &(dyn Fn(Progress<'_>) + Sync),
    ) -> Result<(), EngineError> {
        for source in &mut self.receipts {
            let by_flow = match engine.collect_receipts_by_flow(source.as_mut()).await {
                Ok(s) => s,
                // One unreadable answer folder must not stop the night's sending.
                Err(EngineError::Connector(e)) => {
                    warn!("receipts not collected: {e}");
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut total = LateSummary::default();
            for (flow, s) in by_flow {
                report.flow(&flow).late += &s;
                total += &s;
            }
            progress(Progress::Receipts { summary: &total });
        }
        Ok(())
    }
}
