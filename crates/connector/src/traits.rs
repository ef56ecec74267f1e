//! The `Source` and `Sink` traits the engine drives, kept small so that retries, rate
//! limits, metrics and encryption can wrap them rather than live inside each connector.

use async_trait::async_trait;
use passerelle_model::Jeune;
use serde::{Deserialize, Serialize};

use crate::error::ConnectorError;
use crate::report::RecordIssue;

/// What a source must be told to acknowledge one item upstream (an event id, a file
/// name and line, a cursor value). Opaque to the engine.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AckToken(pub String);

/// One item read from a source: a record, or a record rejected with its reasons.
#[derive(Debug, Clone)]
pub struct SourceItem {
    pub outcome: Result<Jeune, Vec<RecordIssue>>,
    /// Dropped values (contact data) reported as warnings.
    pub warnings: Vec<RecordIssue>,
    pub ack: AckToken,
}

/// What the hub did with one item a source served, told to the source with its
/// acknowledgement, so that a peer answered line by line (a box ACK file) hears the
/// truth about rows the hub refused after the reader accepted them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ItemOutcome {
    /// Refused by the reader itself (the source already knows why).
    Refused,
    /// Sent under at least one flow.
    Sent,
    /// Nothing new to send: the same content was sent before.
    Unchanged,
    /// Read but not sent under any flow: a short code (`NO_ROUTE`, `DENIED`,
    /// `IDENTITY_REVIEW`, `NOT_KNOWN`) and a reason without personal data.
    NotSent { code: String, reason: String },
}

/// One acknowledged item and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    pub ack: AckToken,
    pub outcome: ItemOutcome,
}

/// A peer the engine reads canonical records from.
///
/// The engine calls `ack` (or `ack_settled`) only after the item is safely handed on
/// (published with a confirm and journaled); a source must serve unacknowledged items
/// again after a restart.
#[async_trait]
pub trait Source: Send {
    /// The next batch of items; an empty batch means nothing more for now.
    async fn next_batch(&mut self) -> Result<Vec<SourceItem>, ConnectorError>;

    /// Acknowledges items upstream.
    async fn ack(&mut self, tokens: &[AckToken]) -> Result<(), ConnectorError>;

    /// Acknowledges items upstream with what the hub did with each. A source whose
    /// peer hears per-item answers overrides it; the default only acknowledges.
    async fn ack_settled(&mut self, items: &[Settled]) -> Result<(), ConnectorError> {
        let tokens: Vec<AckToken> = items.iter().map(|s| s.ack.clone()).collect();
        self.ack(&tokens).await
    }
}

/// One record to deliver to a peer under a flow.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The transfer id, used as the idempotency key at the peer
    /// (`referenceExterne`, `Idempotency-Key`).
    pub transfer_id: String,
    pub flow: String,
    /// The sending organisation (`CD059`, `59350S00`): a file peer names it as emitter.
    pub sender: String,
    /// The recipient organisation (`59350S00`, `CD059`).
    pub recipient: String,
    /// The record, already projected onto the flow's allowed fields.
    pub record: Jeune,
}

/// What happened to a delivery at the peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ReceiptStatus {
    /// Handed to the peer; its answer will come later (a file awaiting its ACK).
    Delivered,
    /// The peer applied it.
    Applied {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer_ref: Option<String>,
    },
    /// The peer refused it, with its reasons (field, code, message).
    Rejected { reasons: Vec<String> },
}

/// The answer to a delivery, sent back to the transfer's sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub transfer_id: String,
    #[serde(flatten)]
    pub status: ReceiptStatus,
}

/// A peer the engine delivers records to. Every delivery is idempotent on its
/// transfer id: delivering the same transfer twice has the effect of once.
#[async_trait]
pub trait Sink: Send + Sync {
    async fn deliver(&self, delivery: Delivery) -> Result<Receipt, ConnectorError>;

    /// Delivers several records at once: one result per delivery, in the same order.
    /// The engine acknowledges a batch's messages only after this returns, so a
    /// file-based peer may write the whole batch as one file; an API peer may send
    /// them concurrently. The default delivers one by one.
    async fn deliver_batch(
        &self,
        deliveries: Vec<Delivery>,
    ) -> Vec<Result<Receipt, ConnectorError>> {
        let mut out = Vec::with_capacity(deliveries.len());
        for d in deliveries {
            out.push(self.deliver(d).await);
        }
        out
    }
}

/// Receipts a peer gives later than the delivery (a SOLIS `AckSolis` file answering an
/// import): one group per answer, acknowledged once the engine has settled them.
#[derive(Debug, Clone)]
pub struct LateReceipts {
    pub receipts: Vec<Receipt>,
    /// What the source needs to set the answer aside (the ACK file's name).
    pub ack: AckToken,
}

/// A peer whose answers arrive after the delivery. The engine settles each group's
/// transfers, journals them, then calls `ack`; an unacknowledged group is served again.
#[async_trait]
pub trait ReceiptSource: Send {
    /// The answers that arrived and are not acknowledged yet; empty when none.
    async fn next_receipts(&mut self) -> Result<Vec<LateReceipts>, ConnectorError>;

    /// Sets an answer aside once its receipts are settled.
    async fn ack(&mut self, token: &AckToken) -> Result<(), ConnectorError>;
}
