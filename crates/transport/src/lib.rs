//! Transport trait with RabbitMQ (lapin) and embedded (SQLite) implementations
//!
//! A [`Transport`] carries [`Envelope`]s (an opaque, already encrypted payload plus a
//! small clear header) to one recipient's queue, confirms each publish only once the
//! broker or store holds it durably, and hands them to consumers as [`Delivery`]s that
//! must be settled explicitly: [`Delivery::ack`], [`Delivery::retry`] (delayed) or
//! [`Delivery::dead_letter`]. Dead letters can be listed, inspected and replayed.
//!
//! # What every implementation promises (checked by [`conformance`])
//! - **Confirmed means stored**: `publish` returns `Ok` only after the broker confirmed
//!   (publisher confirm, persistent message, quorum queue) or the store committed. A
//!   refusal, a lost confirm or an unknown recipient is an error; nothing is reported
//!   as published without a confirm.
//! - **At least once**: a delivery that is not acked (consumer crash, dropped
//!   subscription, lost connection, broker or store restart) is delivered again, with
//!   its [`Delivery::delivery_count`] increased. Consumers must be idempotent on the
//!   transfer id.
//! - **Bounded attempts**: a message is handed to consumers at most
//!   `max_deliveries` times; `retry` on the last allowed delivery, or a new delivery
//!   beyond the limit (repeated crashes), moves it to the recipient's dead letters.
//!   On RabbitMQ 3.10 a message prefetched by a subscription that closes or crashes
//!   before handing it out also counts as a delivery (quorum queues count every
//!   return); the embedded store does not count those. Keep `prefetch` modest and
//!   `max_deliveries` at 5 or more in production.
//! - **Ordering**: for one recipient, messages published one after another (each
//!   publish awaited before the next starts) are first delivered in publish order to
//!   a single consumer. This holds per recipient, hence for every ordering key of that
//!   recipient. Nothing is promised about concurrent publishes, about messages being
//!   retried or redelivered (they come back after later ones), or about processing
//!   order across several consumers of one recipient. The ordering key is carried in
//!   the header for the consumer's use; the transport does not partition on it.

pub mod amqp;
pub mod conformance;
pub mod embedded;
mod error;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use error::{ErrorKind, Result, TransportError};

/// The clear part of an envelope: who sends what to whom under which flow. It holds
/// identifiers only, never personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Idempotency key of the transfer, kept across retries and replays.
    pub transfer_id: Uuid,
    /// Flow id from the policy file.
    pub flow: String,
    /// Sending organisation/system.
    pub sender: String,
    /// Receiving organisation/system; names the queue.
    pub recipient: String,
    /// Optional key for ordering (see the crate documentation for what is promised).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordering_key: Option<String>,
    /// Small extra headers (key ids, schema…).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// A message: a header and an opaque payload.
#[derive(Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The clear header.
    pub header: Header,
    /// Opaque bytes (encrypted for the recipient by the caller).
    pub payload: Bytes,
}

impl fmt::Debug for Envelope {
    // The payload is never printed: it may be personal data if a caller forgot to
    // encrypt it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("header", &self.header)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

impl Envelope {
    /// Builds an envelope with a fresh transfer id.
    pub fn new(
        flow: impl Into<String>,
        sender: impl Into<String>,
        recipient: impl Into<String>,
        payload: impl Into<Bytes>,
    ) -> Self {
        Self {
            header: Header {
                transfer_id: Uuid::now_v7(),
                flow: flow.into(),
                sender: sender.into(),
                recipient: recipient.into(),
                ordering_key: None,
                headers: BTreeMap::new(),
            },
            payload: payload.into(),
        }
    }

    /// Sets the ordering key.
    #[must_use]
    pub fn with_ordering_key(mut self, key: impl Into<String>) -> Self {
        self.header.ordering_key = Some(key.into());
        self
    }

    /// Adds one extra header.
    #[must_use]
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.header.headers.insert(key.into(), value.into());
        self
    }

    /// Checks the header's names (pure).
    pub fn validate(&self) -> Result<()> {
        validate_name("recipient", &self.header.recipient)?;
        validate_name("flow", &self.header.flow)?;
        validate_name("sender", &self.header.sender)?;
        if self.header.headers.len() > 32 {
            return Err(TransportError::invalid("headers", "at most 32 headers"));
        }
        let size: usize = self
            .header
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
            + self.header.ordering_key.as_ref().map_or(0, String::len);
        if size > 8 * 1024 {
            return Err(TransportError::invalid(
                "headers",
                "headers and ordering key must total at most 8 KiB",
            ));
        }
        Ok(())
    }
}

/// Checks a recipient, flow or sender name: 1 to 100 characters among ASCII letters,
/// digits, `_`, `-` and `.`, not starting with `.`. Such names are safe as queue names
/// and routing keys.
pub fn validate_name(what: &'static str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(TransportError::invalid(
            what,
            "must be 1 to 100 characters among letters, digits, '_', '-' and '.', not starting with '.'",
        ))
    }
}

/// Proof that the broker or store holds a message durably.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmed {
    /// Transport-level id of this copy (a replay gets a new one).
    pub message_id: String,
    /// The transfer id from the header.
    pub transfer_id: Uuid,
}

/// Identifies one dead-lettered message: its recipient and its message id.
/// Written `recipient/message_id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeadLetterId {
    /// The recipient whose dead letters hold it.
    pub recipient: String,
    /// The message id.
    pub message_id: String,
}

impl fmt::Display for DeadLetterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.recipient, self.message_id)
    }
}

impl FromStr for DeadLetterId {
    type Err = TransportError;
    fn from_str(s: &str) -> Result<Self> {
        let (recipient, message_id) = s.split_once('/').ok_or_else(|| {
            TransportError::invalid("dead letter id", "expected recipient/message_id")
        })?;
        validate_name("recipient", recipient)?;
        if message_id.is_empty() {
            return Err(TransportError::invalid(
                "dead letter id",
                "empty message id",
            ));
        }
        Ok(Self {
            recipient: recipient.to_owned(),
            message_id: message_id.to_owned(),
        })
    }
}

/// A dead-lettered message, as listed or inspected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Where it is.
    pub id: DeadLetterId,
    /// The message as it was published.
    pub envelope: Envelope,
    /// Why it was dead-lettered (a rule, never a payload).
    pub reason: String,
    /// How many times it had been delivered.
    pub delivery_count: u32,
}

/// How a delivery was settled by [`Delivery::retry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// It will be delivered again after the delay.
    Retried,
    /// It reached the delivery limit and went to the dead letters instead.
    DeadLettered,
}

/// Implementation side of a delivery's settlement. Exactly one method is called, once.
#[async_trait]
pub trait Settle: Send + Sync + fmt::Debug {
    /// The message is done: remove it.
    async fn ack(self: Box<Self>) -> Result<()>;
    /// Deliver it again after at least `delay` (the implementation may round the delay
    /// up to its next retry level), or dead-letter it when the limit is reached.
    async fn retry(self: Box<Self>, delay: Duration) -> Result<Settled>;
    /// Move it to the recipient's dead letters with a reason.
    async fn dead_letter(self: Box<Self>, reason: &str) -> Result<()>;
}

/// One delivery of a message to a consumer. Dropping it unsettled leaves the message
/// to come back (on channel close for RabbitMQ, on lease expiry for the embedded store).
#[derive(Debug)]
pub struct Delivery {
    /// The message.
    pub envelope: Envelope,
    /// Transport-level id of this copy.
    pub message_id: String,
    /// 1 on the first delivery, then counts every earlier delivery (crashes and retries).
    pub delivery_count: u32,
    settle: Box<dyn Settle>,
}

impl Delivery {
    /// Builds a delivery (for implementations and wrappers).
    pub fn new(
        envelope: Envelope,
        message_id: String,
        delivery_count: u32,
        settle: Box<dyn Settle>,
    ) -> Self {
        Self {
            envelope,
            message_id,
            delivery_count,
            settle,
        }
    }

    /// Acknowledges: the message is removed for good. Like AMQP's basic.ack this does
    /// not wait for the removal to be durable (RabbitMQ: the ack is sent; embedded: it is
    /// queued for the next grouped commit, the message staying leased meanwhile); an ack
    /// lost to a crash only makes the message come back.
    pub async fn ack(self) -> Result<()> {
        self.settle.ack().await
    }

    /// Asks for a new delivery after `delay`; on the last allowed delivery the message
    /// goes to the dead letters instead, which the result says.
    pub async fn retry(self, delay: Duration) -> Result<Settled> {
        self.settle.retry(delay).await
    }

    /// Moves the message to the dead letters with a reason (a rule, never personal data).
    pub async fn dead_letter(self, reason: &str) -> Result<()> {
        self.settle.dead_letter(reason).await
    }
}

/// A consumer of one recipient's queue.
#[async_trait]
pub trait Subscription: Send + fmt::Debug {
    /// Waits for the next delivery. Reconnects by itself after a broker restart; errors
    /// only when closed or when reconnection keeps failing past the configured timeout.
    async fn next(&mut self) -> Result<Delivery>;

    /// Graceful shutdown: stops receiving, returns deliveries received but not yet
    /// handed out, and waits (up to `timeout`) until handed-out deliveries are settled.
    /// Returns how many handed-out deliveries were still unsettled at the end.
    async fn close(self: Box<Self>, timeout: Duration) -> Result<usize>;
}

/// A durable, confirmed, at-least-once message transport. See the crate documentation
/// for the promises.
#[async_trait]
pub trait Transport: Send + Sync + fmt::Debug {
    /// Creates the recipient's queue (and dead letters) if missing. Idempotent.
    async fn declare_recipient(&self, recipient: &str) -> Result<()>;

    /// Publishes to `envelope.header.recipient` and returns once it is durably stored.
    /// Concurrent calls are pipelined (many confirms in flight).
    async fn publish(&self, envelope: Envelope) -> Result<Confirmed>;

    /// Publishes many envelopes with all confirms in flight at once; one result each,
    /// in order.
    async fn publish_batch(&self, envelopes: Vec<Envelope>) -> Vec<Result<Confirmed>> {
        futures::future::join_all(envelopes.into_iter().map(|e| self.publish(e))).await
    }

    /// Starts consuming the recipient's queue (declaring it if missing).
    async fn subscribe(&self, recipient: &str) -> Result<Box<dyn Subscription>>;

    /// Lists the recipient's dead letters, oldest first.
    async fn dead_letters(&self, recipient: &str) -> Result<Vec<DeadLetter>>;

    /// Inspects one dead letter.
    async fn dead_letter(&self, id: &DeadLetterId) -> Result<DeadLetter>;

    /// Publishes a dead letter again to its recipient (delivery count starting afresh,
    /// same transfer id) and removes it from the dead letters once confirmed.
    async fn replay(&self, id: &DeadLetterId) -> Result<Confirmed>;

    /// Closes connections or the store; later calls fail with [`TransportError::Closed`].
    async fn close(&self) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rule() {
        assert!(validate_name("recipient", "ml-059.lille_1").is_ok());
        for bad in ["", ".x", "a b", "a*", "a#b", "é", &"x".repeat(101)] {
            assert!(validate_name("recipient", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dead_letter_id_round_trips() {
        let id: DeadLetterId = "ml-059/abc".parse().unwrap();
        assert_eq!(id.recipient, "ml-059");
        assert_eq!(id.to_string(), "ml-059/abc");
        assert!("nope".parse::<DeadLetterId>().is_err());
    }

    #[test]
    fn debug_and_errors_never_show_the_payload() {
        let e = Envelope::new("f", "s", "r", b"Jean Dupont 1850575123456".to_vec());
        let dbg = format!("{e:?}");
        assert!(!dbg.contains("Dupont"), "{dbg}");
        let errors = [
            TransportError::invalid("recipient", "rule"),
            TransportError::NotConfirmed {
                transfer_id: e.header.transfer_id,
                reason: "nack".into(),
            },
            TransportError::Unroutable {
                recipient: "r".into(),
            },
        ];
        for err in errors {
            let text = err.to_string();
            assert!(!text.contains("Dupont"));
            assert_eq!(text, text.to_lowercase());
            assert!(!text.ends_with('.'));
        }
    }

    #[test]
    fn kinds() {
        assert!(TransportError::Unavailable("x".into()).is_retryable());
        assert_eq!(
            TransportError::NotFound("x".into()).kind(),
            ErrorKind::Permanent
        );
    }
}
