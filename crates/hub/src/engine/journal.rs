//! How a transfer's step is journaled once: its entry is kept pending in the state
//! store, in the transaction that records the step, then appended to the journal and
//! dropped. A crash in between leaves the entry pending; the next engine appends it
//! unless the journal already holds it. A step that moved nothing in the store (a
//! transfer recorded before the crash and published again, a receipt read twice) has
//! no entry at all.

use std::collections::BTreeMap;

use passerelle_audit::subject::{KIND_CAF, KIND_IDENTITE, KIND_NIR};
use passerelle_audit::{BlindIndex, Event, Filter, NewEntry, Outcome, Subject};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::{Engine, Result};
use crate::state::Pending;

/// A journal entry as kept pending (no personal data: pseudonyms and blind indexes).
#[derive(Serialize, Deserialize)]
struct Kept {
    event: String,
    actor: String,
    flow: Option<String>,
    sender: Option<String>,
    recipient: Option<String>,
    subject: Option<String>,
    #[serde(default)]
    identifiers: Vec<(String, String)>,
    #[serde(default)]
    fields: Vec<String>,
    legal_basis: Option<String>,
    ciphertext_digest: Option<String>,
    outcome: String,
    reason: Option<String>,
}

/// The bytes an entry is kept pending as.
pub(super) fn keep(e: &NewEntry) -> Vec<u8> {
    let kept = Kept {
        event: e.event.as_str().to_owned(),
        actor: e.actor.clone(),
        flow: e.flow.clone(),
        sender: e.sender.clone(),
        recipient: e.recipient.clone(),
        subject: e.subject.as_ref().map(|s| s.pseudonym.clone()),
        identifiers: e
            .subject
            .iter()
            .flat_map(|s| &s.identifiers)
            .map(|b| (b.kind.to_owned(), b.value.clone()))
            .collect(),
        fields: e.fields.clone(),
        legal_basis: e.legal_basis.clone(),
        ciphertext_digest: e.ciphertext_digest.clone(),
        outcome: e.outcome.as_str().to_owned(),
        reason: e.reason.clone(),
    };
    serde_json::to_vec(&kept).unwrap_or_default()
}

/// The entry kept as `bytes`, or `None` when they do not read.
fn unkeep(bytes: &[u8]) -> Option<NewEntry> {
    let k: Kept = serde_json::from_slice(bytes).ok()?;
    let outcome = match k.outcome.as_str() {
        "ok" => Outcome::Ok,
        "refused" => Outcome::Refused,
        "failed" => Outcome::Failed,
        _ => return None,
    };
    let mut e = NewEntry::new(Event::parse(&k.event)?, k.actor, outcome);
    e.flow = k.flow;
    e.sender = k.sender;
    e.recipient = k.recipient;
    e.subject = k.subject.map(|pseudonym| Subject {
        pseudonym,
        identifiers: k
            .identifiers
            .into_iter()
            .filter_map(|(kind, value)| {
                let kind = [KIND_NIR, KIND_CAF, KIND_IDENTITE]
                    .into_iter()
                    .find(|k| *k == kind)?;
                Some(BlindIndex { kind, value })
            })
            .collect(),
    });
    e.fields = k.fields;
    e.legal_basis = k.legal_basis;
    e.ciphertext_digest = k.ciphertext_digest;
    e.reason = k.reason;
    Some(e)
}

/// What makes two entries the same step, short of a transfer id (which the journal
/// does not hold): subject, flow, parties and event.
type StepKey = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
);

fn step_key(
    subject: Option<&str>,
    flow: Option<&str>,
    sender: Option<&str>,
    recipient: Option<&str>,
    event: &str,
) -> StepKey {
    (
        subject.map(str::to_owned),
        flow.map(str::to_owned),
        sender.map(str::to_owned),
        recipient.map(str::to_owned),
        event.to_owned(),
    )
}

impl Engine {
    /// Appends the journal entries, then remembers that their pending copies (`ids`)
    /// can go.
    pub(super) async fn journal_kept(&self, entries: Vec<NewEntry>, ids: Pending) -> Result<()> {
        if !entries.is_empty() {
            self.journal.append_batch(entries).await?;
        }
        self.mark_journaled(ids);
        Ok(())
    }

    /// Appends the pending entries a crash left and the journal does not hold: for each
    /// step (subject, flow, parties, event), as many as were kept minus those the
    /// journal holds since the oldest was kept.
    pub(super) async fn recover_journal(&self) -> Result<()> {
        let pending = self.state.pending_entries().await?;
        if pending.is_empty() {
            return Ok(());
        }
        let mut ids = Vec::with_capacity(pending.len());
        let mut steps: BTreeMap<StepKey, Vec<NewEntry>> = BTreeMap::new();
        let mut since = pending[0].since.clone();
        for p in pending {
            ids.push(p.id);
            if p.since < since {
                since = p.since.clone();
            }
            match unkeep(&p.entry) {
                Some(e) => {
                    let key = step_key(
                        e.subject.as_ref().map(|s| s.pseudonym.as_str()),
                        e.flow.as_deref(),
                        e.sender.as_deref(),
                        e.recipient.as_deref(),
                        e.event.as_str(),
                    );
                    steps.entry(key).or_default().push(e);
                }
                None => warn!(transfer = %p.transfer_id, "a pending journal entry does not read"),
            }
        }
        let from = chrono::DateTime::parse_from_rfc3339(&since)
            .map(|d| d.with_timezone(&chrono::Utc))
            .ok();
        let subjects: Vec<String> = steps
            .keys()
            .filter_map(|k| k.0.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut journaled: BTreeMap<StepKey, usize> = BTreeMap::new();
        for chunk in subjects.chunks(200) {
            let filter = Filter {
                from,
                subjects: Some(chunk.to_vec()),
                ..Filter::default()
            };
            self.journal
                .for_each(&filter, |e| {
                    let key = step_key(
                        e.subject.as_deref(),
                        e.flow.as_deref(),
                        e.sender.as_deref(),
                        e.recipient.as_deref(),
                        &e.event,
                    );
                    *journaled.entry(key).or_default() += 1;
                    Ok(())
                })
                .await?;
        }
        let mut missing = Vec::new();
        for (key, entries) in steps {
            let already = journaled.get(&key).copied().unwrap_or(0);
            missing.extend(entries.into_iter().skip(already));
        }
        if !missing.is_empty() {
            info!(
                entries = missing.len(),
                "journaling what a crash left pending"
            );
        }
        self.journal_kept(missing, Pending(ids)).await?;
        self.flush().await
    }
}
