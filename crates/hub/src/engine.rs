//! The engine: sends records from a source to a recipient under one flow (identity,
//! policy, change detection, seal, confirmed publish, journal, state), and delivers a
//! recipient's queue through its sink (open, re-check, deliver, receipt, journal).
//!
//! Order matters for crash safety: a transfer is published (confirmed) before it is
//! journaled and recorded, and recorded before its source is acknowledged; its id is
//! derived from its content, so a rerun after a crash republishes the same id and the
//! target's idempotency makes the second delivery a no-op.

use std::sync::Arc;
use std::time::Duration;

use passerelle_audit::{Event, Journal, NewEntry, Outcome, Subject};
use passerelle_connector::{Delivery as SinkDelivery, ReceiptStatus, Sink};
use passerelle_crypto::PseudonymKey;
use passerelle_identity::{IdentityIndex, IdentityKeys, Resolution};
use passerelle_model::{FieldClass, Jeune, class_of};
use passerelle_policy::{Decision, Party, Policy};
use passerelle_transport::{Envelope, Header, Settled, Transport};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;
use tracing::{debug, info, instrument, warn};
use uuid::Uuid;

use crate::change::{content_hash, transfer_id};
use crate::seal::Sealer;
use crate::state::{HubState, TransferRow, TransferStatus};

/// The header that carries the subject's pseudonym, so the recipient side can journal
/// without reading the payload.
const SUBJECT_HEADER: &str = "subject";

/// Errors that stop a run (per-record problems are counted, not raised).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("state: {0}")]
    State(#[from] crate::state::StateError),
    #[error("audit journal: {0}")]
    Journal(#[from] passerelle_audit::AuditError),
    #[error("transport: {0}")]
    Transport(#[from] passerelle_transport::TransportError),
    #[error("sealing: {0}")]
    Seal(#[from] crate::seal::SealError),
    #[error("flow `{0}` is not declared")]
    UnknownFlow(String),
}

type Result<T> = std::result::Result<T, EngineError>;

/// What one `send` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SendSummary {
    /// Records offered.
    pub read: u64,
    /// Published (new or changed content).
    pub sent: u64,
    /// Same content as last sent: nothing to do.
    pub unchanged: u64,
    /// Refused by policy (no flow, or outside the flow).
    pub denied: u64,
    /// Sent to identity review instead of being guessed.
    pub review: u64,
    /// Special-category fields (nir, art9, art10) projected away and journaled.
    pub special_dropped: u64,
}

/// What one `deliver` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeliverSummary {
    pub delivered: u64,
    pub applied: u64,
    pub rejected: u64,
    pub retried: u64,
    pub dead_lettered: u64,
}

impl DeliverSummary {
    fn count(&mut self, status: TransferStatus) {
        match status {
            TransferStatus::Applied => self.applied += 1,
            TransferStatus::Rejected => self.rejected += 1,
            TransferStatus::DeadLettered => self.dead_lettered += 1,
            TransferStatus::Published | TransferStatus::Delivered => self.delivered += 1,
        }
    }
}

/// The engine and what it holds.
pub struct Engine {
    policy: Arc<Policy>,
    state: HubState,
    journal: Journal,
    transport: Arc<dyn Transport>,
    sealer: Arc<dyn Sealer>,
    pseudonyms: PseudonymKey,
    identity: Mutex<IdentityIndex>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    /// Builds the engine, loading the identity index from the state store.
    pub async fn new(
        policy: Arc<Policy>,
        state: HubState,
        journal: Journal,
        transport: Arc<dyn Transport>,
        sealer: Arc<dyn Sealer>,
        pseudonyms: PseudonymKey,
    ) -> Result<Self> {
        let identity = IdentityIndex::from_entries(state.identity_entries().await?);
        Ok(Self {
            policy,
            state,
            journal,
            transport,
            sealer,
            pseudonyms,
            identity: Mutex::new(identity),
        })
    }

    /// The state store (receipts, counts).
    pub fn state(&self) -> &HubState {
        &self.state
    }

    /// The journal.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Sends records from `from` to `to` under `flow_id`. Returns once every sent
    /// record is published (confirmed), journaled and recorded: the caller may then
    /// acknowledge its source.
    #[instrument(skip(self, records), fields(flow = flow_id, to = to.org))]
    pub async fn send(
        &self,
        flow_id: &str,
        from: Party<'_>,
        to: Party<'_>,
        records: impl IntoIterator<Item = Jeune>,
    ) -> Result<SendSummary> {
        let flow = self
            .policy
            .flow(flow_id)
            .ok_or_else(|| EngineError::UnknownFlow(flow_id.to_owned()))?;
        let mut summary = SendSummary::default();
        // Declared before the first publish only: once per run (on RabbitMQ a declaration
        // is a round trip), and never for a recipient that receives nothing.
        let mut declared = false;
        for mut record in records {
            summary.read += 1;
            let keys = IdentityKeys::of(&record, &self.pseudonyms);
            let resolution = self.identity.lock().await.resolve(&keys, Uuid::new_v4);
            let Some(hub_id) = resolution.hub_id() else {
                summary.review += 1;
                if let Resolution::Review { reason, .. } = resolution {
                    debug!(?reason, "record sent to identity review");
                }
                continue;
            };
            // The person's keys are stored before anything is published: a rerun after
            // a crash must find the same hub id, hence the same transfer ids.
            self.state
                .save_identity_entries(&keys.entries(hub_id))
                .await?;
            record.hub_id = Some(hub_id.to_string());
            let subject = Subject::of_jeune(&self.pseudonyms, &hub_id.to_string(), &record);
            let (projection, dropped) = match self.policy.decide(Some(flow_id), &from, &to, &record)
            {
                Decision::Denied { reason } => {
                    summary.denied += 1;
                    let mut e =
                        self.entry(Event::Denied, flow_id, from.org, to.org, Outcome::Refused);
                    e.subject = Some(subject);
                    e.reason = Some(format!("{}: {reason}", reason.code()));
                    self.journal.append(e).await?;
                    continue;
                }
                Decision::Allowed {
                    projection,
                    dropped,
                    ..
                } => (projection, dropped),
            };
            let special: Vec<&str> = dropped
                .iter()
                .copied()
                .filter(|p| class_of(p).is_some_and(|c: FieldClass| c.is_special()))
                .collect();
            if !special.is_empty() {
                // The transfer goes on without them, but a DPO must see the attempt.
                summary.special_dropped += special.len() as u64;
                let mut e = self.entry(Event::Denied, flow_id, from.org, to.org, Outcome::Refused);
                e.subject = Some(subject.clone());
                e.fields = special.iter().map(|p| (*p).to_owned()).collect();
                e.reason = Some(
                    "special-data: projected away, the flow does not name these classes".into(),
                );
                self.journal.append(e).await?;
            }
            let hash = content_hash(&projection);
            if self.state.last_hash(flow_id, to.org, &hub_id).await? == Some(hash) {
                summary.unchanged += 1;
                continue;
            }
            let header = Header {
                transfer_id: transfer_id(flow_id, to.org, &hub_id, &hash),
                flow: flow_id.to_owned(),
                sender: from.org.to_owned(),
                recipient: to.org.to_owned(),
                ordering_key: Some(subject.pseudonym.clone()),
                headers: [(SUBJECT_HEADER.to_owned(), subject.pseudonym.clone())].into(),
            };
            let sealed = self
                .sealer
                .seal(&header, projection.to_json_line().as_bytes())?;
            let digest = hex::encode(Sha256::digest(&sealed));
            let envelope = Envelope {
                header: header.clone(),
                payload: sealed.into(),
            };
            if !declared {
                self.transport.declare_recipient(to.org).await?;
                declared = true;
            }
            self.transport.publish(envelope).await?;
            let mut e = self.entry(Event::Published, flow_id, from.org, to.org, Outcome::Ok);
            e.subject = Some(subject);
            e.fields = projection.paths().iter().map(|p| (*p).to_owned()).collect();
            e.legal_basis = Some(format!(
                "{} ({})",
                flow.legal_basis.gdpr, flow.legal_basis.reference
            ));
            e.ciphertext_digest = Some(digest);
            self.journal.append(e).await?;
            let row = TransferRow {
                transfer_id: header.transfer_id,
                flow: flow_id.to_owned(),
                sender: from.org.to_owned(),
                recipient: to.org.to_owned(),
                hub_id,
                status: TransferStatus::Published,
                reason: None,
            };
            self.state.record_published(&row, &hash).await?;
            summary.sent += 1;
        }
        info!(
            sent = summary.sent,
            unchanged = summary.unchanged,
            denied = summary.denied,
            "flow sent"
        );
        Ok(summary)
    }

    /// Delivers what waits in `recipient`'s queue through `sink`, until the queue stays
    /// quiet for `idle`. Receipts move the transfers' status and are journaled.
    #[instrument(skip(self, sink))]
    pub async fn deliver(
        &self,
        recipient: &str,
        sink: &dyn Sink,
        idle: Duration,
    ) -> Result<DeliverSummary> {
        let mut summary = DeliverSummary::default();
        let mut sub = self.transport.subscribe(recipient).await?;
        loop {
            let delivery = match tokio::time::timeout(idle, sub.next()).await {
                Err(_) => break,
                Ok(d) => d?,
            };
            let header = delivery.envelope.header.clone();
            let subject = header.headers.get(SUBJECT_HEADER).map(|p| Subject {
                pseudonym: p.clone(),
                identifiers: Vec::new(),
            });
            let opened = self
                .sealer
                .open(&header, &delivery.envelope.payload)
                .map_err(|e| e.to_string())
                .and_then(|plain| {
                    serde_json::from_slice::<Jeune>(&plain)
                        .map_err(|_| "payload is not a canonical record".to_owned())
                })
                .and_then(|record| self.recheck(&header, record));
            // What became of the message, as a receipt for its sender; `None` while it
            // waits for a retry.
            let receipt = match opened {
                Err(reason) => {
                    // Nothing a retry can fix: keep it aside for a person.
                    warn!(transfer = %header.transfer_id, "refusing a message: {reason}");
                    delivery.dead_letter(&reason).await?;
                    Some((TransferStatus::DeadLettered, Some(reason)))
                }
                Ok(record) => {
                    let outcome = sink
                        .deliver(SinkDelivery {
                            transfer_id: header.transfer_id.to_string(),
                            flow: header.flow.clone(),
                            sender: header.sender.clone(),
                            recipient: header.recipient.clone(),
                            record,
                        })
                        .await;
                    match outcome {
                        Ok(receipt) => {
                            delivery.ack().await?;
                            Some(match receipt.status {
                                ReceiptStatus::Delivered => (TransferStatus::Delivered, None),
                                ReceiptStatus::Applied { .. } => (TransferStatus::Applied, None),
                                ReceiptStatus::Rejected { reasons } => {
                                    (TransferStatus::Rejected, Some(reasons.join("; ")))
                                }
                            })
                        }
                        Err(e) if e.is_retryable() => {
                            let delay = Duration::from_secs(1 << delivery.delivery_count.min(6));
                            match delivery.retry(delay).await? {
                                Settled::Retried => {
                                    summary.retried += 1;
                                    None
                                }
                                Settled::DeadLettered => {
                                    Some((TransferStatus::DeadLettered, Some(e.to_string())))
                                }
                            }
                        }
                        Err(e) => {
                            delivery.dead_letter(&e.to_string()).await?;
                            Some((TransferStatus::DeadLettered, Some(e.to_string())))
                        }
                    }
                }
            };
            if let Some((status, reason)) = receipt {
                summary.count(status);
                self.settle(&header, subject, status, reason).await?;
            }
        }
        sub.close(Duration::from_secs(5)).await?;
        Ok(summary)
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

    async fn settle(
        &self,
        header: &Header,
        subject: Option<Subject>,
        status: TransferStatus,
        reason: Option<String>,
    ) -> Result<()> {
        let (event, outcome) = match status {
            TransferStatus::Published => (Event::Published, Outcome::Ok),
            TransferStatus::Delivered => (Event::Delivered, Outcome::Ok),
            TransferStatus::Applied => (Event::Applied, Outcome::Ok),
            TransferStatus::Rejected => (Event::Rejected, Outcome::Refused),
            TransferStatus::DeadLettered => (Event::DeadLettered, Outcome::Failed),
        };
        let mut e = self.entry(
            event,
            &header.flow,
            &header.sender,
            &header.recipient,
            outcome,
        );
        e.subject = subject;
        e.reason = reason.clone();
        self.journal.append(e).await?;
        self.state
            .set_status(&header.transfer_id, status, reason.as_deref())
            .await?;
        Ok(())
    }

    fn entry(
        &self,
        event: Event,
        flow: &str,
        sender: &str,
        recipient: &str,
        outcome: Outcome,
    ) -> NewEntry {
        let mut e = NewEntry::new(event, "system", outcome);
        e.flow = Some(flow.to_owned());
        e.sender = Some(sender.to_owned());
        e.recipient = Some(recipient.to_owned());
        e
    }
}
