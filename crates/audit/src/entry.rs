//! Journal entries, their canonical bytes and the chain hash.
//!
//! # Canonical encoding (version 1)
//!
//! The hash of entry *n* is `SHA-256(hash(n-1) ‖ canonical(n))`, where `hash(0)` (before
//! the first entry) is 32 zero bytes and, after a purge, the checkpoint's hash.
//! `canonical(n)` is, in this order:
//!
//! 1. the 26 ASCII bytes `passerelle/audit-entry/v1` followed by one `0x00` byte;
//! 2. the sequence number as an unsigned 64-bit big-endian integer;
//! 3. the text fields `at`, `event`, `actor`, `flow`, `sender`, `recipient`, `subject`,
//!    each as one tag byte, `0x00` when absent (SQL `NULL`) or `0x01` when present,
//!    followed when present by its UTF-8 length as an unsigned 32-bit big-endian integer
//!    and its UTF-8 bytes;
//! 4. the field paths transferred: their count as an unsigned 32-bit big-endian integer,
//!    then each path as length (u32 big-endian) and UTF-8 bytes, in the stored order;
//! 5. the text fields `legal_basis`, `ciphertext_digest`, `outcome`, `reason`, encoded as
//!    in 3.
//!
//! Every part is either fixed-size or length-prefixed, so two different entries never
//! have the same bytes. `at` is always written as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC,
//! microseconds), so that it sorts as text and survives both engines unchanged.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::subject::Subject;

/// The chain hash before the first entry.
pub const GENESIS_HASH: [u8; 32] = [0u8; 32];

const DOMAIN: &[u8] = b"passerelle/audit-entry/v1\0";

/// What happened. The journal stores the snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A record was read from a source and entered the hub.
    Received,
    /// A message was published to the transport for a recipient.
    Published,
    /// A message was handed to the recipient's sink.
    Delivered,
    /// The recipient applied the message.
    Applied,
    /// The recipient or a validation step rejected the message.
    Rejected,
    /// The message exhausted its retries.
    DeadLettered,
    /// No flow allows the transfer, or the policy refused it.
    Denied,
    /// A person consulted a record through the API or the UI.
    Consulted,
    /// Entries past retention were removed (the checkpoint is in the reason).
    Purged,
    /// An alert for the DPO was raised (its key and words in the reason; see `alerts`).
    Alerted,
}

impl Event {
    pub const ALL: [Event; 10] = [
        Event::Received,
        Event::Published,
        Event::Delivered,
        Event::Applied,
        Event::Rejected,
        Event::DeadLettered,
        Event::Denied,
        Event::Consulted,
        Event::Purged,
        Event::Alerted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::Received => "received",
            Event::Published => "published",
            Event::Delivered => "delivered",
            Event::Applied => "applied",
            Event::Rejected => "rejected",
            Event::DeadLettered => "dead_lettered",
            Event::Denied => "denied",
            Event::Consulted => "consulted",
            Event::Purged => "purged",
            Event::Alerted => "alerted",
        }
    }

    pub fn parse(s: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    /// Refused on purpose (policy, validation).
    Refused,
    /// Failed for a technical reason.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
        }
    }
}

/// An entry to append. The journal gives it its sequence number and time.
///
/// `reason` and `actor` are stored in clear: callers must put no personal data about the
/// subject in them (say "nir key does not match", not the NIR). The subject itself is
/// only ever stored as its pseudonym and blind indexes.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub event: Event,
    /// `system` for the hub itself, or the login of the person acting.
    pub actor: String,
    pub flow: Option<String>,
    pub sender: Option<String>,
    pub recipient: Option<String>,
    pub subject: Option<Subject>,
    /// Canonical field paths transferred (e.g. `etat_civil.nom_naissance`), never values.
    pub fields: Vec<String>,
    pub legal_basis: Option<String>,
    /// Hex SHA-256 of the ciphertext that was transferred.
    pub ciphertext_digest: Option<String>,
    pub outcome: Outcome,
    pub reason: Option<String>,
}

impl NewEntry {
    /// An entry with only the event, actor and outcome set; fill the rest by field.
    pub fn new(event: Event, actor: impl Into<String>, outcome: Outcome) -> Self {
        Self {
            event,
            actor: actor.into(),
            flow: None,
            sender: None,
            recipient: None,
            subject: None,
            fields: Vec::new(),
            legal_basis: None,
            ciphertext_digest: None,
            outcome,
            reason: None,
        }
    }
}

/// A stored entry, as read back (and exported).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub seq: i64,
    /// RFC 3339 UTC, microseconds.
    pub at: String,
    pub event: String,
    pub actor: String,
    pub flow: Option<String>,
    pub sender: Option<String>,
    pub recipient: Option<String>,
    /// The subject's pseudonym (hex), never an identifier in clear.
    pub subject: Option<String>,
    pub fields: Vec<String>,
    pub legal_basis: Option<String>,
    pub ciphertext_digest: Option<String>,
    pub outcome: String,
    pub reason: Option<String>,
    /// Hex SHA-256 chain hash.
    #[serde(serialize_with = "hex_hash")]
    pub hash: Vec<u8>,
}

fn hex_hash<S: serde::Serializer>(h: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(h))
}

impl Entry {
    /// The canonical bytes of this entry (see the module documentation).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.view().encode(&mut out);
        out
    }

    /// `SHA-256(prev ‖ canonical bytes)`: what `hash` must be when the entry is intact.
    pub fn chain_hash(&self, prev: &[u8]) -> [u8; 32] {
        self.view().chain_hash(prev)
    }

    pub(crate) fn view(&self) -> EntryView<'_> {
        EntryView {
            seq: self.seq,
            head: [
                Some(self.at.as_str()),
                Some(self.event.as_str()),
                Some(self.actor.as_str()),
                self.flow.as_deref(),
                self.sender.as_deref(),
                self.recipient.as_deref(),
                self.subject.as_deref(),
            ],
            fields: self.fields.iter().map(String::as_str).collect(),
            tail: [
                self.legal_basis.as_deref(),
                self.ciphertext_digest.as_deref(),
                Some(self.outcome.as_str()),
                self.reason.as_deref(),
            ],
        }
    }
}

/// A borrowed entry, so that `verify` hashes rows without copying them.
#[derive(Debug)]
pub(crate) struct EntryView<'a> {
    pub seq: i64,
    /// `at`, `event`, `actor`, `flow`, `sender`, `recipient`, `subject`.
    pub head: [Option<&'a str>; 7],
    pub fields: Vec<&'a str>,
    /// `legal_basis`, `ciphertext_digest`, `outcome`, `reason`.
    pub tail: [Option<&'a str>; 4],
}

/// Where canonical bytes go: a buffer, or straight into the hash.
trait Feed {
    fn feed(&mut self, bytes: &[u8]);
}

impl Feed for Vec<u8> {
    fn feed(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

impl Feed for Sha256 {
    fn feed(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

impl EntryView<'_> {
    fn encode(&self, out: &mut impl Feed) {
        out.feed(DOMAIN);
        out.feed(&(self.seq as u64).to_be_bytes());
        for t in self.head {
            put_opt(out, t);
        }
        out.feed(&(self.fields.len() as u32).to_be_bytes());
        for f in &self.fields {
            put_str(out, f);
        }
        for t in self.tail {
            put_opt(out, t);
        }
    }

    pub(crate) fn chain_hash(&self, prev: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(prev);
        self.encode(&mut h);
        h.finalize().into()
    }
}

fn put_str(out: &mut impl Feed, s: &str) {
    out.feed(&(s.len() as u32).to_be_bytes());
    out.feed(s.as_bytes());
}

fn put_opt(out: &mut impl Feed, s: Option<&str>) {
    match s {
        None => out.feed(&[0]),
        Some(s) => {
            out.feed(&[1]);
            put_str(out, s);
        }
    }
}

/// The one text form of an entry time: RFC 3339, UTC, `Z`, always six fractional digits.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Entry {
        Entry {
            seq: 7,
            at: "2025-03-01T10:00:00.000000Z".into(),
            event: "published".into(),
            actor: "system".into(),
            flow: Some("ml-to-cd".into()),
            sender: Some("ML59001".into()),
            recipient: Some("CD059".into()),
            subject: Some("ab".repeat(32)),
            fields: vec!["etat_civil.nom_naissance".into(), "contact.email".into()],
            legal_basis: Some("art. 6-1-e".into()),
            ciphertext_digest: Some("00".repeat(32)),
            outcome: "ok".into(),
            reason: None,
            hash: vec![],
        }
    }

    #[test]
    fn every_field_changes_the_hash() {
        let base = sample();
        let h0 = base.chain_hash(&GENESIS_HASH);
        let mut variants = Vec::new();
        let mut e = base.clone();
        e.seq = 8;
        variants.push(e);
        let mut e = base.clone();
        e.at.replace_range(0..4, "2026");
        variants.push(e);
        let mut e = base.clone();
        e.event = "denied".into();
        variants.push(e);
        let mut e = base.clone();
        e.actor = "jdoe".into();
        variants.push(e);
        let mut e = base.clone();
        e.flow = None;
        variants.push(e);
        let mut e = base.clone();
        e.sender = Some(String::new());
        variants.push(e);
        let mut e = base.clone();
        e.recipient = Some("CD062".into());
        variants.push(e);
        let mut e = base.clone();
        e.subject = None;
        variants.push(e);
        let mut e = base.clone();
        e.fields.pop();
        variants.push(e);
        let mut e = base.clone();
        e.fields.swap(0, 1);
        variants.push(e);
        let mut e = base.clone();
        e.legal_basis = None;
        variants.push(e);
        let mut e = base.clone();
        e.ciphertext_digest = Some("11".repeat(32));
        variants.push(e);
        let mut e = base.clone();
        e.outcome = "failed".into();
        variants.push(e);
        let mut e = base.clone();
        e.reason = Some("x".into());
        variants.push(e);
        for v in &variants {
            assert_ne!(v.chain_hash(&GENESIS_HASH), h0);
        }
        assert_ne!(base.chain_hash(&[1u8; 32]), h0);
    }

    #[test]
    fn length_prefixes_keep_boundaries_apart() {
        // "a" + "bc" and "ab" + "c" must not encode alike.
        let mut a = sample();
        a.sender = Some("a".into());
        a.recipient = Some("bc".into());
        let mut b = sample();
        b.sender = Some("ab".into());
        b.recipient = Some("c".into());
        assert_ne!(a.canonical_bytes(), b.canonical_bytes());
        // An absent value and an empty one differ.
        let mut c = sample();
        c.reason = Some(String::new());
        assert_ne!(c.canonical_bytes(), sample().canonical_bytes());
    }

    #[test]
    fn canonical_bytes_are_stable() {
        // Pins the documented encoding: a change here breaks every stored chain.
        let e = Entry {
            seq: 1,
            at: "2025-01-01T00:00:00.000000Z".into(),
            event: "denied".into(),
            actor: "system".into(),
            flow: None,
            sender: None,
            recipient: None,
            subject: None,
            fields: vec!["a".into()],
            legal_basis: None,
            ciphertext_digest: None,
            outcome: "refused".into(),
            reason: None,
            hash: vec![],
        };
        let mut expected = b"passerelle/audit-entry/v1\0".to_vec();
        expected.extend_from_slice(&1u64.to_be_bytes());
        for s in ["2025-01-01T00:00:00.000000Z", "denied", "system"] {
            expected.push(1);
            expected.extend_from_slice(&(s.len() as u32).to_be_bytes());
            expected.extend_from_slice(s.as_bytes());
        }
        expected.extend_from_slice(&[0, 0, 0, 0]);
        expected.extend_from_slice(&1u32.to_be_bytes());
        expected.extend_from_slice(&1u32.to_be_bytes());
        expected.push(b'a');
        expected.extend_from_slice(&[0, 0]);
        expected.push(1);
        expected.extend_from_slice(&7u32.to_be_bytes());
        expected.extend_from_slice(b"refused");
        expected.push(0);
        assert_eq!(e.canonical_bytes(), expected);
    }

    #[test]
    fn time_format_is_fixed_width() {
        let t = DateTime::parse_from_rfc3339("2025-06-01T12:34:56Z")
            .map(|t| t.with_timezone(&Utc))
            .ok();
        assert_eq!(
            t.map(format_time).as_deref(),
            Some("2025-06-01T12:34:56.000000Z")
        );
    }

    #[test]
    fn events_round_trip() {
        for e in Event::ALL {
            assert_eq!(Event::parse(e.as_str()), Some(e));
            assert_eq!(
                serde_json::to_value(e).ok(),
                Some(serde_json::Value::from(e.as_str()))
            );
        }
        assert_eq!(Event::parse("nope"), None);
    }
}
