//! One night, whatever the wiring: every planned source is read in batches, each
//! record routed to its parties and sent; each source is acknowledged only after its
//! batch is sent (published, journaled, recorded); every recipient's queue is then
//! delivered through its sink, and late answers (ACK files) settled.
//!
//! What to read and where things go is the caller's (the `sync` command's config, the
//! demo's simulators): a [`Night`] holds boxed sources, routes, sinks and receipt
//! sources, and knows nothing of any peer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use passerelle_connector::{ConnectorError, Delivery, Receipt, ReceiptSource, Sink, Source};
use passerelle_model::Jeune;
use serde::Serialize;
use tracing::{info, warn};

use crate::engine::{DeliverSummary, Engine, EngineError, LateSummary, Org, Routed, SendSummary};

/// Where a record goes under a flow: its sender and recipient, or `None` when the
/// record is not for this flow (oriented elsewhere, not a BRSA, no ML known).
pub type Route = Arc<dyn Fn(&Jeune) -> Option<(Org, Org)> + Send + Sync>;

/// A flow a source feeds, and how its records are routed.
#[derive(Clone)]
pub struct FlowRoute {
    pub flow: String,
    pub route: Route,
    /// Send only about persons the recipient sent us first (see `Routed`).
    pub known_to_recipient: bool,
}

impl std::fmt::Debug for FlowRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowRoute")
            .field("flow", &self.flow)
            .field("known_to_recipient", &self.known_to_recipient)
            .finish_non_exhaustive()
    }
}

impl FlowRoute {
    pub fn new(flow: &str, route: Route) -> Self {
        Self {
            flow: flow.to_owned(),
            route,
            known_to_recipient: false,
        }
    }

    /// Only about persons the recipient sent us first.
    pub fn replies_only(mut self) -> Self {
        self.known_to_recipient = true;
        self
    }
}

/// One source, read once, feeding one or more flows (an I-MILO listing feeds
/// `brsa-suivi` and `of-signalement`).
pub struct SourcePlan {
    /// A name for progress lines and reports (`solis:RSA`, `imilo:dossiers`).
    pub name: String,
    pub source: Box<dyn Source>,
    pub flows: Vec<FlowRoute>,
}

impl std::fmt::Debug for SourcePlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let flows: Vec<&str> = self.flows.iter().map(|f| f.flow.as_str()).collect();
        f.debug_struct("SourcePlan")
            .field("name", &self.name)
            .field("flows", &flows)
            .finish_non_exhaustive()
    }
}

/// A recipient whose queue the night delivers, and the sink that reaches it.
pub struct SinkPlan {
    pub recipient: String,
    pub sink: Arc<dyn Sink>,
}

impl std::fmt::Debug for SinkPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkPlan")
            .field("recipient", &self.recipient)
            .finish_non_exhaustive()
    }
}

/// What a night does.
#[derive(Default)]
pub struct Night {
    pub sources: Vec<SourcePlan>,
    pub sinks: Vec<SinkPlan>,
    pub receipts: Vec<Box<dyn ReceiptSource>>,
    /// How long a queue must stay quiet before its delivery ends.
    pub idle: Option<Duration>,
}

/// What moved under one flow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FlowReport {
    /// Records read from the sources.
    pub read: u64,
    /// Records the sources refused (bad input, reported by the connector).
    pub refused_at_source: u64,
    /// Records read that the flow does not carry (no route).
    pub unrouted: u64,
    pub sent: SendSummary,
    pub delivered: DeliverSummary,
    pub late: LateSummary,
}

impl std::fmt::Debug for Night {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Night")
            .field("sources", &self.sources)
            .field("sinks", &self.sinks)
            .field("receipts", &self.receipts.len())
            .finish()
    }
}

impl FlowReport {
    /// Transfers of this night that have no final answer yet (delivered to a file
    /// peer, its ACK still to come).
    pub fn awaiting(&self) -> u64 {
        self.delivered
            .delivered
            .saturating_sub(self.late.applied + self.late.rejected)
    }

    /// Applied by the target, now or through a late answer.
    pub fn applied(&self) -> u64 {
        self.delivered.applied + self.late.applied
    }

    /// Rejected by the target, now or through a late answer.
    pub fn rejected(&self) -> u64 {
        self.delivered.rejected + self.late.rejected
    }
}

/// What a night did, per flow.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NightReport {
    pub flows: BTreeMap<String, FlowReport>,
    pub seconds: f64,
}

impl NightReport {
    fn flow(&mut self, flow: &str) -> &mut FlowReport {
        self.flows.entry(flow.to_owned()).or_default()
    }

    /// Whether every transfer the night sent has an answer and none was dead-lettered.
    pub fn completed(&self) -> bool {
        self.flows.values().all(|r| {
            r.delivered.dead_lettered == 0
                && r.sent.sent <= r.delivered.applied + r.delivered.rejected + r.delivered.delivered
        })
    }
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
    /// Collects late answers, sends every source, delivers every queue, collects again.
    pub async fn run(
        &mut self,
        engine: &Engine,
        progress: &(dyn Fn(Progress<'_>) + Sync),
    ) -> Result<NightReport, EngineError> {
        let started = Instant::now();
        let mut report = NightReport::default();
        self.collect(engine, &mut report, progress).await?;
        self.send(engine, &mut report, progress).await?;
        self.deliver(engine, &mut report, progress).await?;
        self.collect(engine, &mut report, progress).await?;
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// Reads every source dry, sending each batch before acknowledging it.
    pub async fn send(
        &mut self,
        engine: &Engine,
        report: &mut NightReport,
        progress: &(dyn Fn(Progress<'_>) + Sync),
    ) -> Result<(), EngineError> {
        for plan in &mut self.sources {
            let mut read = 0u64;
            loop {
                let batch = match plan.source.next_batch().await {
                    Ok(batch) => batch,
                    // A file refused whole is set aside by its source and reported
                    // once; the rest of the source, and the night, go on.
                    Err(e @ ConnectorError::FileRefused { .. }) => {
                        warn!(source = %plan.name, error = %e, "source file refused");
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                };
                if batch.is_empty() {
                    break;
                }
                read += batch.len() as u64;
                let mut tokens = Vec::with_capacity(batch.len());
                let mut records = Vec::with_capacity(batch.len());
                let mut refused = 0u64;
                for item in batch {
                    tokens.push(item.ack);
                    match item.outcome {
                        Ok(record) => records.push(record),
                        Err(_) => refused += 1,
                    }
                }
                for fr in &plan.flows {
                    let r = report.flow(&fr.flow);
                    r.read += records.len() as u64 + refused;
                    r.refused_at_source += refused;
                    let mut routed = Vec::new();
                    for record in &records {
                        match (fr.route)(record) {
                            Some((from, to)) => routed.push(Routed {
                                from,
                                to,
                                record: record.clone(),
                                known_to_recipient: fr.known_to_recipient,
                            }),
                            None => r.unrouted += 1,
                        }
                    }
                    let s = engine.send_routed(&fr.flow, routed).await?;
                    add_sent(&mut report.flow(&fr.flow).sent, &s);
                }
                // Only now: the batch is published, journaled and recorded.
                plan.source.ack(&tokens).await?;
                for fr in &plan.flows {
                    progress(Progress::Read {
                        source: &plan.name,
                        flow: &fr.flow,
                        read,
                    });
                }
            }
            info!(source = %plan.name, read, "source read");
            for fr in &plan.flows {
                progress(Progress::SourceDone {
                    source: &plan.name,
                    flow: &fr.flow,
                    report: report.flow(&fr.flow),
                });
            }
        }
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
        let idle = self.idle.unwrap_or(Duration::from_millis(300));
        let results = futures::future::join_all(self.sinks.iter().map(|plan| async move {
            engine
                .deliver_by_flow(&plan.recipient, plan.sink.as_ref(), idle)
                .await
        }))
        .await;
        // Every delivery ran to its end: what was delivered is counted before an error
        // of another recipient is returned.
        let mut first_error = None;
        for (plan, result) in self.sinks.iter().zip(results) {
            let by_flow = match result {
                Ok(b) => b,
                Err(e) => {
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            let mut total = DeliverSummary::default();
            for (flow, d) in by_flow {
                add_delivered(&mut report.flow(&flow).delivered, &d);
                add_delivered(&mut total, &d);
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
                add_late(&mut report.flow(&flow).late, &s);
                add_late(&mut total, &s);
            }
            progress(Progress::Receipts { summary: &total });
        }
        Ok(())
    }
}

pub fn add_sent(total: &mut SendSummary, s: &SendSummary) {
    total.read += s.read;
    total.sent += s.sent;
    total.unchanged += s.unchanged;
    total.denied += s.denied;
    total.review += s.review;
    total.special_dropped += s.special_dropped;
    total.not_known += s.not_known;
}

pub fn add_delivered(total: &mut DeliverSummary, d: &DeliverSummary) {
    total.delivered += d.delivered;
    total.applied += d.applied;
    total.rejected += d.rejected;
    total.retried += d.retried;
    total.dead_lettered += d.dead_lettered;
}

pub fn add_late(total: &mut LateSummary, s: &LateSummary) {
    total.applied += s.applied;
    total.rejected += s.rejected;
    total.unknown += s.unknown;
}

/// A sink that hands each flow to its own sink: a CD may take `brsa-suivi` as SOLIS
/// imports and `of-signalement` through its box. Results keep the batch's order.
#[derive(Default)]
pub struct SinkByFlow {
    sinks: BTreeMap<String, Arc<dyn Sink>>,
}

impl std::fmt::Debug for SinkByFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkByFlow")
            .field("flows", &self.sinks.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SinkByFlow {
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes `flow` to `sink` (a later call for the same flow replaces it).
    pub fn with(mut self, flow: &str, sink: Arc<dyn Sink>) -> Self {
        self.sinks.insert(flow.to_owned(), sink);
        self
    }

    pub fn flows(&self) -> impl Iterator<Item = &str> {
        self.sinks.keys().map(String::as_str)
    }

    fn unrouted(flow: &str) -> ConnectorError {
        ConnectorError::Invalid {
            location: "delivery.flow".into(),
            reason: format!("no sink takes flow {flow} for this recipient"),
        }
    }
}

#[async_trait::async_trait]
impl Sink for SinkByFlow {
    async fn deliver(&self, delivery: Delivery) -> Result<Receipt, ConnectorError> {
        match self.sinks.get(&delivery.flow) {
            Some(s) => s.deliver(delivery).await,
            None => Err(Self::unrouted(&delivery.flow)),
        }
    }

    async fn deliver_batch(
        &self,
        deliveries: Vec<Delivery>,
    ) -> Vec<Result<Receipt, ConnectorError>> {
        let n = deliveries.len();
        let mut groups: BTreeMap<String, Vec<(usize, Delivery)>> = BTreeMap::new();
        for (i, d) in deliveries.into_iter().enumerate() {
            groups.entry(d.flow.clone()).or_default().push((i, d));
        }
        let mut out: Vec<Option<Result<Receipt, ConnectorError>>> = (0..n).map(|_| None).collect();
        for (flow, items) in groups {
            let (idx, ds): (Vec<usize>, Vec<Delivery>) = items.into_iter().unzip();
            match self.sinks.get(&flow) {
                Some(s) => {
                    for (i, r) in idx.into_iter().zip(s.deliver_batch(ds).await) {
                        out[i] = Some(r);
                    }
                }
                None => {
                    for i in idx {
                        out[i] = Some(Err(Self::unrouted(&flow)));
                    }
                }
            }
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Self::unrouted("?"))))
            .collect()
    }
}
