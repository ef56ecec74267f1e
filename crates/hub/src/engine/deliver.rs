//! The delivery path: a recipient's queue in batches, each opened and re-checked
//! against its flow, handed to the sink, then journaled, recorded and acknowledged.
//! Batches are pipelined: the next batch goes to the sink while the previous one is
//! journaled, recorded and acknowledged.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use passerelle_connector::{Delivery as SinkDelivery, ReceiptStatus, Sink};
use passerelle_model::Jeune;
use passerelle_transport::{Delivery as TransportDelivery, Header, Settled};
use tracing::{instrument, warn};

use super::settle::Receipted;
use super::{Engine, EngineError, Result};
use crate::report::DeliverSummary;
use crate::state::TransferStatus;

/// Messages handed to a sink at once (a file peer writes them as one file).
pub const DELIVER_BATCH: usize = 64;

/// The least `deliver` waits for a queue's first message.
const FIRST_WAIT: Duration = Duration::from_secs(1);

/// How long a delivery waits, once the queue is quiet, for messages this engine
/// published and has not seen delivered yet.
const CATCH_UP: Duration = Duration::from_secs(15);

/// How long `deliver` waits for one more message before handing a partial batch on.
const GATHER: Duration = Duration::from_millis(20);

/// What becomes of a delivered message once its receipt is recorded.
enum After {
    Ack,
    Retry(Duration, Header, String),
    DeadLetter(String),
}

/// A batch the sink has answered, waiting to be journaled, recorded and settled.
struct Answered {
    receipts: Vec<Receipted>,
    then: Vec<(TransportDelivery, After)>,
    redelivered: BTreeMap<String, u64>,
    /// Why the peer could not be reached, when every delivery of the batch failed
    /// with a retryable error.
    unreachable: Option<String>,
}

/// How far one delivery run may go (see `Engine::deliver_within`).
#[derive(Debug, Clone, Copy, Default)]
pub struct DeliverLimits {
    /// When the delivery stops, whatever is left.
    pub deadline: Option<Instant>,
    /// Batches in a row the peer may fail (unreachable) before the delivery stops;
    /// 0: no limit.
    pub failures: u32,
}

/// Per-flow counts of one delivery run.
type ByFlow = BTreeMap<String, DeliverSummary>;

impl Engine {
    /// Delivers what waits in `recipient`'s queue through `sink`, in batches, until the
    /// queue stays quiet for `idle`. Each batch's receipts are journaled and recorded
    /// before its messages are acknowledged: a crash in between delivers them again,
    /// which is then acknowledged without a second receipt.
    pub async fn deliver(
        &self,
        recipient: &str,
        sink: &dyn Sink,
        idle: Duration,
    ) -> Result<DeliverSummary> {
        let mut total = DeliverSummary::default();
        for d in self.deliver_by_flow(recipient, sink, idle).await?.values() {
            total += d;
        }
        Ok(total)
    }

    /// `deliver`, counted per flow (a recipient's queue carries several flows).
    pub async fn deliver_by_flow(
        &self,
        recipient: &str,
        sink: &dyn Sink,
        idle: Duration,
    ) -> Result<ByFlow> {
        self.deliver_until(recipient, sink, idle, &|| true).await
    }

    /// `deliver_by_flow`, going on while `done` says false: a queue quiet for `idle`
    /// ends the delivery only once `done` (the night's sources have all been read, the
    /// shutdown of a long-running consumer).
    pub async fn deliver_until(
        &self,
        recipient: &str,
        sink: &dyn Sink,
        idle: Duration,
        done: &(dyn Fn() -> bool + Sync),
    ) -> Result<ByFlow> {
        let limits = DeliverLimits::default();
        Ok(self
            .deliver_within(recipient, sink, idle, done, &limits)
            .await?
            .0)
    }

    /// `deliver_until`, within `limits`: past the deadline, or once the peer failed
    /// `limits.failures` batches in a row (every delivery of each a retryable error:
    /// unreachable, timing out), the delivery stops and says why; what is left waits
    /// in the queue for the next night (the failed batches are retried as usual).
    #[instrument(skip(self, sink, done, limits))]
    pub async fn deliver_within(
        &self,
        recipient: &str,
        sink: &dyn Sink,
        idle: Duration,
        done: &(dyn Fn() -> bool + Sync),
        limits: &DeliverLimits,
    ) -> Result<(ByFlow, Option<String>)> {
        self.declare(recipient).await?;
        let sub = self.transport.subscribe(recipient).await?;
        // A subscription's `next` is not cancel-safe (the embedded store leases rows
        // as it reads them), and this loop waits with timeouts while the sources fill
        // the queue: a task of its own reads, and the waits are on a channel.
        let (dtx, mut drx) = tokio::sync::mpsc::channel(DELIVER_BATCH);
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let reader = tokio::spawn(async move {
            let mut sub = sub;
            loop {
                tokio::select! {
                    biased;
                    _ = stopped.changed() => break,
                    d = sub.next() => {
                        let end = d.is_err();
                        if dtx.send(d).await.is_err() || end {
                            break;
                        }
                    }
                }
            }
            sub
        });
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Answered>(1);
        // Gathers batches and hands them to the sink.
        let gather = async {
            // The first message may take a while to come on a busy broker (a consumer
            // is being set up beside dozens of others): wait at least a second for it.
            let mut wait = idle.max(FIRST_WAIT);
            let mut quiet = Duration::ZERO;
            let mut failed_in_a_row = 0u32;
            let mut stopped: Option<String> = None;
            loop {
                if let Some(d) = limits.deadline
                    && Instant::now() >= d
                {
                    stopped = Some("its deadline passed; the rest waits in its queue".into());
                    break;
                }
                let this_wait = match limits.deadline {
                    Some(d) => wait.min(d.saturating_duration_since(Instant::now())),
                    None => wait,
                };
                let first = match tokio::time::timeout(this_wait, drx.recv()).await {
                    Err(_) if done() => {
                        quiet += this_wait;
                        if self.caught_up(recipient) || quiet >= CATCH_UP {
                            break;
                        }
                        continue;
                    }
                    Err(_) => continue,
                    Ok(None) => break,
                    Ok(Some(d)) => d?,
                };
                wait = idle;
                quiet = Duration::ZERO;
                let mut batch = vec![first];
                // Gather what is already there, without waiting for more.
                while batch.len() < DELIVER_BATCH {
                    match tokio::time::timeout(GATHER, drx.recv()).await {
                        Err(_) | Ok(None) => break,
                        Ok(Some(d)) => batch.push(d?),
                    }
                }
                self.count_traffic(recipient, 0, batch.len() as u64);
                // A peer that hangs past the deadline: the batch is left unsettled and
                // comes back to the queue (lease or channel closed) for the next night.
                let answered = match limits.deadline {
                    Some(d) => {
                        match tokio::time::timeout_at(d.into(), self.hand_to_sink(batch, sink))
                            .await
                        {
                            Ok(a) => a?,
                            Err(_) => {
                                stopped = Some(
                                    "its deadline passed while it was answering; \
                                     the rest waits in its queue"
                                        .into(),
                                );
                                break;
                            }
                        }
                    }
                    None => self.hand_to_sink(batch, sink).await?,
                };
                let unreachable = answered.unreachable.clone();
                if tx.send(answered).await.is_err() {
                    // The settling side stopped on an error: it is returned below.
                    break;
                }
                match unreachable {
                    Some(reason) => {
                        failed_in_a_row += 1;
                        if limits.failures > 0 && failed_in_a_row >= limits.failures {
                            stopped = Some(format!(
                                "{failed_in_a_row} batches in a row failed ({reason}); \
                                 its transfers wait in their queue"
                            ));
                            break;
                        }
                    }
                    None => failed_in_a_row = 0,
                }
            }
            drop(tx);
            Ok::<_, EngineError>(stopped)
        };
        // Journals, records and settles each answered batch, in order.
        let settle = async {
            let mut summary = ByFlow::new();
            while let Some(a) = rx.recv().await {
                if let Err(e) = self.settle_answered(a, &mut summary).await {
                    rx.close();
                    return Err(e);
                }
            }
            Ok(summary)
        };
        let (gathered, settled) = tokio::join!(gather, settle);
        let _ = stop.send(true);
        drop(drx);
        let closed = match reader.await {
            Ok(sub) => sub.close(Duration::from_secs(5)).await.map(|_| ()),
            Err(_) => Ok(()),
        };
        let summary = settled?;
        let stopped = gathered?;
        closed?;
        Ok((summary, stopped))
    }

    /// Opens and re-checks a batch, hands what may go to the sink, and says what to do
    /// with each message. A transfer whose receipt is already recorded (delivered again
    /// after a crash, before its ack) is acknowledged without calling the peer again.
    async fn hand_to_sink(
        &self,
        batch: Vec<TransportDelivery>,
        sink: &dyn Sink,
    ) -> Result<Answered> {
        let ids: Vec<_> = batch
            .iter()
            .map(|d| d.envelope.header.transfer_id)
            .collect();
        // Delivery runs while the sources are sent: a message may come before its
        // publisher recorded it. Its receipt must find the transfer: wait for it.
        self.wait_recorded(&ids).await;
        let statuses = self.state.statuses(&ids).await?;
        let mut refused = Vec::new();
        let mut accepted = Vec::new();
        let mut then = Vec::with_capacity(batch.len());
        let mut redelivered: BTreeMap<String, u64> = BTreeMap::new();
        for delivery in batch {
            let header = &delivery.envelope.header;
            if statuses.get(&header.transfer_id).is_some_and(|s| {
                matches!(
                    s,
                    TransferStatus::Delivered | TransferStatus::Applied | TransferStatus::Rejected
                )
            }) {
                *redelivered.entry(header.flow.clone()).or_default() += 1;
                then.push((delivery, After::Ack));
                continue;
            }
            let opened = self
                .sealer
                .open(header, &delivery.envelope.payload)
                .map_err(|e| e.to_string())
                .and_then(|plain| {
                    serde_json::from_slice::<Jeune>(&plain)
                        .map_err(|_| "payload is not a canonical record".to_owned())
                })
                .and_then(|record| self.recheck(header, record));
            match opened {
                Ok(record) => accepted.push((delivery, record)),
                Err(reason) => refused.push((delivery, reason)),
            }
        }
        let mut receipts = Vec::new();
        // Nothing a retry can fix: kept aside for a person.
        for (delivery, reason) in refused {
            let header = delivery.envelope.header.clone();
            warn!(transfer = %header.transfer_id, "refusing a message: {reason}");
            receipts.push(Receipted::new(
                header,
                TransferStatus::DeadLettered,
                Some(reason.clone()),
            ));
            then.push((delivery, After::DeadLetter(reason)));
        }
        let (deliveries, requests): (Vec<_>, Vec<_>) = accepted
            .into_iter()
            .map(|(d, record)| {
                let h = &d.envelope.header;
                let request = SinkDelivery {
                    transfer_id: h.transfer_id.to_string(),
                    flow: h.flow.clone(),
                    sender: h.sender.clone(),
                    recipient: h.recipient.clone(),
                    record,
                };
                (d, request)
            })
            .unzip();
        let outcomes = if deliveries.is_empty() {
            Vec::new()
        } else {
            sink.deliver_batch(requests).await
        };
        let sent_to_sink = outcomes.len();
        let mut retryable = 0usize;
        let mut last_error = None;
        for (delivery, outcome) in deliveries.into_iter().zip(outcomes) {
            let header = delivery.envelope.header.clone();
            if let Err(e) = &outcome
                && e.is_retryable()
            {
                retryable += 1;
                last_error = Some(e.to_string());
            }
            match outcome {
                Ok(receipt) => {
                    let (status, reason) = match receipt.status {
                        ReceiptStatus::Delivered => (TransferStatus::Delivered, None),
                        ReceiptStatus::Applied { .. } => (TransferStatus::Applied, None),
                        ReceiptStatus::Rejected { reasons } => {
                            (TransferStatus::Rejected, Some(reasons.join("; ")))
                        }
                    };
                    receipts.push(Receipted::new(header, status, reason));
                    then.push((delivery, After::Ack));
                }
                Err(e) if e.is_retryable() => {
                    let delay = Duration::from_secs(1 << delivery.delivery_count.min(6));
                    then.push((delivery, After::Retry(delay, header, e.to_string())));
                }
                Err(e) => {
                    receipts.push(Receipted::new(
                        header,
                        TransferStatus::DeadLettered,
                        Some(e.to_string()),
                    ));
                    then.push((delivery, After::DeadLetter(e.to_string())));
                }
            }
        }
        let unreachable =
            (sent_to_sink > 0 && retryable == sent_to_sink).then(|| last_error.unwrap_or_default());
        Ok(Answered {
            receipts,
            then,
            redelivered,
            unreachable,
        })
    }

    /// Journals and records a batch's receipts, then settles its messages on the
    /// transport: a crash in between delivers them again rather than losing a receipt.
    async fn settle_answered(&self, a: Answered, summary: &mut ByFlow) -> Result<()> {
        for (flow, n) in a.redelivered {
            summary.entry(flow).or_default().redelivered += n;
        }
        self.count_and_settle(a.receipts, summary).await?;
        // A retry may turn out to be the last one allowed: that receipt is known only now.
        let mut exhausted = Vec::new();
        let mut acks = Vec::new();
        for (delivery, after) in a.then {
            match after {
                After::Ack => acks.push(delivery),
                After::DeadLetter(reason) => delivery.dead_letter(&reason).await?,
                After::Retry(delay, header, reason) => match delivery.retry(delay).await? {
                    Settled::Retried => {
                        summary.entry(header.flow.clone()).or_default().retried += 1
                    }
                    Settled::DeadLettered => exhausted.push(Receipted::new(
                        header,
                        TransferStatus::DeadLettered,
                        Some(reason),
                    )),
                },
            }
        }
        // The acks of a batch go out together rather than one round trip each.
        for r in futures::future::join_all(acks.into_iter().map(TransportDelivery::ack)).await {
            r?;
        }
        self.count_and_settle(exhausted, summary).await
    }

    async fn count_and_settle(&self, receipts: Vec<Receipted>, summary: &mut ByFlow) -> Result<()> {
        for r in &receipts {
            summary
                .entry(r.header.flow.clone())
                .or_default()
                .count(r.status);
        }
        self.settle(receipts).await.map(|_| ())
    }

    /// The recipient side applies the flow's rule again: a payload built or altered
    /// elsewhere must not carry more than the flow allows.
    fn recheck(&self, header: &Header, record: Jeune) -> std::result::Result<Jeune, String> {
        let flow = self
            .policy
            .flow(&header.flow)
            .ok_or_else(|| format!("flow `{}` is not declared", header.flow))?;
        flow.check_payload(&record).map_err(|r| r.to_string())?;
        Ok(record)
    }
}
