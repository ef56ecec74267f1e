//! The engine: sends records from a source to a recipient under one flow (identity,
//! policy, change detection, seal, confirmed publish, journal, state), and delivers a
//! recipient's queue through its sink (open, re-check, deliver, receipt, journal).
//!
//! Order matters for crash safety: a transfer is published (confirmed) before it is
//! journaled and recorded, and recorded before its source is acknowledged; its id is
//! derived from its content, so a rerun after a crash republishes the same id and the
//! target's idempotency makes the second delivery a no-op.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use passerelle_audit::{Event, Journal, NewEntry, Outcome, Subject};
use passerelle_connector::{Delivery as SinkDelivery, Receipt, ReceiptSource, ReceiptStatus, Sink};
use passerelle_crypto::PseudonymKey;
use passerelle_identity::{IdentityIndex, IdentityKeys, IndexEntry, Resolution};
use passerelle_model::{FieldClass, Identifiants, Jeune, class_of};
use passerelle_policy::{Decision, Flow, OrgKind, Party, Policy, System};
use passerelle_transport::{Delivery as TransportDelivery, Envelope, Header, Settled, Transport};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;
use tracing::{debug, info, instrument, warn};
use uuid::Uuid;

use crate::change::{content_hash, transfer_id};
use crate::seal::{SealError, Sealer};
use crate::state::{HubState, TransferRow, TransferStatus};

/// The header that carries the subject's pseudonym, so the recipient side can journal
/// without reading the payload.
const SUBJECT_HEADER: &str = "subject";

/// Records per chunk in `send`: one identity transaction, one pipelined publish, one
/// journal batch and one state transaction each.
const SEND_CHUNK: usize = 512;

/// Messages handed to a sink at once (a file peer writes them as one file). Kept at
/// the transports' default prefetch so a batch fills without waiting.
const DELIVER_BATCH: usize = 64;

/// The least `deliver` waits for a queue's first message.
const FIRST_WAIT: Duration = Duration::from_secs(1);

/// How long `deliver` waits for one more message before handing a partial batch on.
const GATHER: Duration = Duration::from_millis(20);

/// A party to a transfer, owned (a routed record names its sender and recipient).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Org {
    pub kind: OrgKind,
    /// ML structure code, CD code, platform id.
    pub org: String,
    pub system: System,
}

impl Org {
    pub fn new(kind: OrgKind, org: impl Into<String>, system: System) -> Self {
        Self {
            kind,
            org: org.into(),
            system,
        }
    }

    /// The owned form of a party.
    pub fn of(party: &Party<'_>) -> Self {
        Self::new(party.kind, party.org, party.system)
    }

    /// As the policy sees it.
    pub fn party(&self) -> Party<'_> {
        Party::new(self.kind, &self.org, self.system)
    }
}

/// The identifiers an organisation gives its own records.
fn own_refs(ids: &Identifiants) -> Identifiants {
    Identifiants {
        solis: ids.solis.clone(),
        imilo_dossier: ids.imilo_dossier.clone(),
        ..Identifiants::default()
    }
}

/// The header a stored reference is sealed under: bound to the person and the
/// organisation, so a reference cannot be moved to another row.
fn ref_header(hub_id: &Uuid, org: &str) -> Header {
    Header {
        transfer_id: *hub_id,
        flow: "peer-ref".to_owned(),
        sender: org.to_owned(),
        recipient: org.to_owned(),
        ordering_key: None,
        headers: BTreeMap::new(),
    }
}

/// A digest of an identity entry (already a blind index), to remember it is stored.
fn entry_digest(e: &IndexEntry) -> u128 {
    let mut h = Sha256::new();
    h.update(e.kind.as_str().as_bytes());
    h.update([0]);
    h.update(e.key.as_bytes());
    h.update([0]);
    h.update(e.hub_id.as_bytes());
    let d = h.finalize();
    u128::from_le_bytes(d[..16].try_into().expect("16 bytes"))
}

/// A record with its sender and recipient.
#[derive(Debug, Clone)]
pub struct Routed {
    pub from: Org,
    pub to: Org,
    pub record: Jeune,
    /// Send only if the recipient already knows the person (it sent us its own
    /// reference earlier): a `brsa-suivi` goes back only about those the CD oriented.
    pub known_to_recipient: bool,
}

/// A sealed transfer waiting for its confirm, with what to record once confirmed.
struct Outgoing {
    envelope: Envelope,
    entry: NewEntry,
    hub_id: Uuid,
    stream: String,
    hash: [u8; 32],
}

/// What change detection compares against: the last content sent to a recipient under
/// a flow *from the same kind of source*. Two sources describing one person (a SOLIS
/// export and a CNAF file) would otherwise replace each other's hash every night and
/// send both again and again.
fn stream(to: &Org, from: &Org) -> String {
    format!("{}#{}", to.org, from.system.as_str())
}

/// What becomes of a delivered message once its receipt is recorded.
enum After {
    Ack,
    Retry(Duration, Header, String),
    DeadLetter(String),
}

/// What `settle_late` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LateSummary {
    pub applied: u64,
    pub rejected: u64,
    /// Receipts naming a transfer this hub does not know.
    pub unknown: u64,
}

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
    #[error("connector: {0}")]
    Connector(#[from] passerelle_connector::ConnectorError),
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
    /// Replies not sent: the recipient never sent us this person.
    pub not_known: u64,
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
    /// Digests of the identity entries already in the state store: a night that
    /// meets the same people again writes none of their keys.
    stored_keys: Mutex<HashSet<u128>>,
    declared: Mutex<HashSet<String>>,
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
        let entries = state.identity_entries().await?;
        let stored_keys = entries.iter().map(entry_digest).collect();
        let identity = IdentityIndex::from_entries(entries);
        Ok(Self {
            policy,
            state,
            journal,
            transport,
            sealer,
            pseudonyms,
            identity: Mutex::new(identity),
            stored_keys: Mutex::new(stored_keys),
            declared: Mutex::new(HashSet::new()),
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
    pub async fn send(
        &self,
        flow_id: &str,
        from: Party<'_>,
        to: Party<'_>,
        records: impl IntoIterator<Item = Jeune>,
    ) -> Result<SendSummary> {
        let (from, to) = (Org::of(&from), Org::of(&to));
        self.send_routed(
            flow_id,
            records.into_iter().map(|record| Routed {
                from: from.clone(),
                to: to.clone(),
                record,
                known_to_recipient: false,
            }),
        )
        .await
    }

    /// Sends records under `flow_id`, each from and to its own party, in chunks:
    /// one identity transaction, one pipelined publish, one journal batch and one state
    /// transaction per chunk. Returns once every sent record is published, journaled
    /// and recorded.
    #[instrument(skip(self, records), fields(flow = flow_id))]
    pub async fn send_routed(
        &self,
        flow_id: &str,
        records: impl IntoIterator<Item = Routed>,
    ) -> Result<SendSummary> {
        let flow = self
            .policy
            .flow(flow_id)
            .ok_or_else(|| EngineError::UnknownFlow(flow_id.to_owned()))?;
        let mut summary = SendSummary::default();
        let mut chunk = Vec::with_capacity(SEND_CHUNK);
        for item in records {
            chunk.push(item);
            if chunk.len() == SEND_CHUNK {
                self.send_chunk(flow, std::mem::take(&mut chunk), &mut summary)
                    .await?;
            }
        }
        if !chunk.is_empty() {
            self.send_chunk(flow, chunk, &mut summary).await?;
        }
        info!(
            sent = summary.sent,
            unchanged = summary.unchanged,
            denied = summary.denied,
            review = summary.review,
            "flow sent"
        );
        Ok(summary)
    }

    async fn send_chunk(
        &self,
        flow: &Flow,
        items: Vec<Routed>,
        summary: &mut SendSummary,
    ) -> Result<()> {
        let flow_id = flow.id.as_str();
        // 1. Who is it? Keys are stored before anything is published: a rerun after a
        //    crash must find the same hub ids, hence the same transfer ids.
        let mut known = Vec::with_capacity(items.len());
        let mut entries = Vec::new();
        let mut reviews = Vec::new();
        {
            let mut index = self.identity.lock().await;
            for Routed {
                from,
                to,
                mut record,
                known_to_recipient,
            } in items
            {
                summary.read += 1;
                let keys = IdentityKeys::of(&record, &self.pseudonyms);
                match index.resolve(&keys, Uuid::new_v4) {
                    Resolution::Review { reason, candidates } => {
                        summary.review += 1;
                        debug!(?reason, "record sent to identity review");
                        reviews.push((format!("{reason:?}"), candidates));
                    }
                    r => {
                        let hub_id = r.hub_id().expect("matched or new");
                        entries.extend(keys.entries(hub_id));
                        record.hub_id = Some(hub_id.to_string());
                        known.push((from, to, hub_id, record, known_to_recipient));
                    }
                }
            }
        }
        // Only entries not stored yet (the index attached them in `resolve`); marked
        // as stored once the transaction committed.
        let mut stored = self.stored_keys.lock().await;
        let mut digests = Vec::new();
        entries.retain(|e| {
            let d = entry_digest(e);
            let new = !stored.contains(&d);
            if new {
                digests.push(d);
            }
            new
        });
        self.state.save_identity_entries(&entries).await?;
        stored.extend(digests);
        drop(stored);
        for (reason, candidates) in &reviews {
            self.state.save_review(flow_id, reason, candidates).await?;
        }
        self.remember_and_fill_refs(&mut known).await?;
        let before = known.len();
        known.retain(|(.., required)| !required);
        summary.not_known += (before - known.len()) as u64;

        // 2. What may leave, and has it changed since last sent?
        let mut journal = Vec::new();
        let mut outgoing = Vec::new();
        let mut hub_ids: BTreeMap<String, Vec<Uuid>> = BTreeMap::new();
        for (from, to, hub_id, ..) in &known {
            hub_ids.entry(stream(to, from)).or_default().push(*hub_id);
        }
        let mut last: HashMap<(String, Uuid), [u8; 32]> = HashMap::new();
        for (key, ids) in hub_ids {
            for (id, hash) in self.state.last_hashes(flow_id, &key, &ids).await? {
                last.insert((key.clone(), id), hash);
            }
        }
        for (from, to, hub_id, record, _) in known {
            let (from_party, to_party) = (from.party(), to.party());
            let subject = Subject::of_jeune(&self.pseudonyms, &hub_id.to_string(), &record);
            let (projection, dropped) =
                match self
                    .policy
                    .decide(Some(flow_id), &from_party, &to_party, &record)
                {
                    Decision::Denied { reason } => {
                        summary.denied += 1;
                        let mut e = self.entry(
                            Event::Denied,
                            flow_id,
                            &from.org,
                            &to.org,
                            Outcome::Refused,
                        );
                        e.subject = Some(subject);
                        e.reason = Some(format!("{}: {reason}", reason.code()));
                        journal.push(e);
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
                let mut e =
                    self.entry(Event::Denied, flow_id, &from.org, &to.org, Outcome::Refused);
                e.subject = Some(subject.clone());
                e.fields = special.iter().map(|p| (*p).to_owned()).collect();
                e.reason = Some(
                    "special-data: projected away, the flow does not name these classes".into(),
                );
                journal.push(e);
            }
            let hash = content_hash(&projection);
            let stream = stream(&to, &from);
            if last.get(&(stream.clone(), hub_id)) == Some(&hash) {
                summary.unchanged += 1;
                continue;
            }
            let header = Header {
                transfer_id: transfer_id(flow_id, &to.org, &hub_id, &hash),
                flow: flow_id.to_owned(),
                sender: from.org.clone(),
                recipient: to.org.clone(),
                ordering_key: Some(subject.pseudonym.clone()),
                headers: [(SUBJECT_HEADER.to_owned(), subject.pseudonym.clone())].into(),
            };
            let sealed = self
                .sealer
                .seal(&header, projection.to_json_line().as_bytes())?;
            let digest = hex::encode(Sha256::digest(&sealed));
            let mut e = self.entry(Event::Published, flow_id, &from.org, &to.org, Outcome::Ok);
            e.subject = Some(subject);
            e.fields = projection.paths().iter().map(|p| (*p).to_owned()).collect();
            e.legal_basis = Some(format!(
                "{} ({})",
                flow.legal_basis.gdpr, flow.legal_basis.reference
            ));
            e.ciphertext_digest = Some(digest);
            outgoing.push(Outgoing {
                envelope: Envelope {
                    header,
                    payload: sealed.into(),
                },
                entry: e,
                hub_id,
                stream,
                hash,
            });
        }

        // 3. Publish (every confirm awaited), then journal, then record.
        for org in outgoing
            .iter()
            .map(|o| o.envelope.header.recipient.clone())
            .collect::<BTreeSet<_>>()
        {
            self.declare(&org).await?;
        }
        let envelopes: Vec<Envelope> = outgoing.iter().map(|o| o.envelope.clone()).collect();
        let results = self.transport.publish_batch(envelopes).await;
        // A refused publish stops the run: nothing after it is recorded, and the
        // rerun publishes the chunk again under the same transfer ids.
        let mut first_error = None;
        let mut rows = Vec::with_capacity(outgoing.len());
        for (o, r) in outgoing.into_iter().zip(results) {
            match r {
                Ok(_) => {
                    journal.push(o.entry);
                    let h = &o.envelope.header;
                    rows.push((
                        TransferRow {
                            transfer_id: h.transfer_id,
                            flow: h.flow.clone(),
                            sender: h.sender.clone(),
                            recipient: h.recipient.clone(),
                            hub_id: o.hub_id,
                            status: TransferStatus::Published,
                            reason: None,
                        },
                        o.stream,
                        o.hash,
                    ));
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if !journal.is_empty() {
            self.journal.append_batch(journal).await?;
        }
        self.state.record_published_streams(&rows).await?;
        summary.sent += rows.len() as u64;
        match first_error {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// A sender's own references (SOLIS id, I-MILO dossier) are kept, sealed for that
    /// sender, so that a later transfer *to* it can name its own record: a `brsa-suivi`
    /// built from I-MILO must carry the idSolis the CD sent with the orientation, an
    /// `of-suivi` or `faj-decision` the ML's dossier number.
    ///
    /// A record whose recipient holds a reference is marked as known (its last field
    /// set to `false`, "nothing more required").
    async fn remember_and_fill_refs(
        &self,
        known: &mut [(Org, Org, Uuid, Jeune, bool)],
    ) -> Result<()> {
        // What each sender already has stored: a reference that did not change is not
        // sealed and written again (a night mostly meets the same people).
        let mut senders: BTreeMap<&str, Vec<Uuid>> = BTreeMap::new();
        for (from, _, hub_id, record, _) in known.iter() {
            if !own_refs(&record.identifiants).is_empty() {
                senders.entry(from.org.as_str()).or_default().push(*hub_id);
            }
        }
        let mut stored: HashMap<(String, Uuid), Vec<u8>> = HashMap::new();
        for (org, ids) in senders {
            for (id, sealed) in self.state.peer_refs(org, &ids).await? {
                stored.insert((org.to_owned(), id), sealed);
            }
        }
        let mut refs = Vec::new();
        for (from, _, hub_id, record, _) in known.iter() {
            let own = own_refs(&record.identifiants);
            if own.is_empty() {
                continue;
            }
            let plain = serde_json::to_vec(&own).expect("identifiers serialise");
            let header = ref_header(hub_id, &from.org);
            let unchanged = stored
                .get(&(from.org.clone(), *hub_id))
                .and_then(|sealed| self.sealer.open(&header, sealed).ok())
                .is_some_and(|old| *old == plain);
            if unchanged {
                continue;
            }
            // A sender with no keys here never receives anything: nothing to fill later.
            match self.sealer.seal(&header, &plain) {
                Ok(sealed) => refs.push((*hub_id, from.org.clone(), sealed)),
                Err(e) => debug!(org = %from.org, "reference not kept: {e}"),
            }
        }
        self.state.save_peer_refs(&refs).await?;
        let mut wanted: BTreeMap<&str, Vec<Uuid>> = BTreeMap::new();
        for (_, to, hub_id, record, _) in known.iter() {
            let ids = &record.identifiants;
            if ids.solis.is_none() || ids.imilo_dossier.is_none() {
                wanted.entry(to.org.as_str()).or_default().push(*hub_id);
            }
        }
        let mut found: HashMap<(String, Uuid), Vec<u8>> = HashMap::new();
        for (org, ids) in wanted {
            for (id, sealed) in self.state.peer_refs(org, &ids).await? {
                found.insert((org.to_owned(), id), sealed);
            }
        }
        for (_, to, hub_id, record, required) in known.iter_mut() {
            let Some(sealed) = found.get(&(to.org.clone(), *hub_id)) else {
                continue;
            };
            *required = false;
            let plain = self.sealer.open(&ref_header(hub_id, &to.org), sealed)?;
            let own: Identifiants = serde_json::from_slice(&plain)
                .map_err(|_| SealError("a stored reference is not readable".into()))?;
            let ids = &mut record.identifiants;
            if ids.solis.is_none() {
                ids.solis = own.solis;
            }
            if ids.imilo_dossier.is_none() {
                ids.imilo_dossier = own.imilo_dossier;
            }
        }
        Ok(())
    }

    async fn declare(&self, recipient: &str) -> Result<()> {
        // Once per engine and recipient: on RabbitMQ a declaration is a round trip.
        if self.declared.lock().await.contains(recipient) {
            return Ok(());
        }
        self.transport.declare_recipient(recipient).await?;
        self.declared.lock().await.insert(recipient.to_owned());
        Ok(())
    }

    /// Delivers what waits in `recipient`'s queue through `sink`, in batches, until the
    /// queue stays quiet for `idle`. Each batch's receipts are journaled and recorded
    /// before its messages are acknowledged: a crash in between delivers them again,
    /// which the peer's idempotency absorbs.
    pub async fn deliver(
        &self,
        recipient: &str,
        sink: &dyn Sink,
        idle: Duration,
    ) -> Result<DeliverSummary> {
        let mut total = DeliverSummary::default();
        for d in self.deliver_by_flow(recipient, sink, idle).await?.values() {
            crate::night::add_delivered(&mut total, d);
        }
        Ok(total)
    }

    /// `deliver`, counted per flow (a recipient's queue carries several flows).
    #[instrument(skip(self, sink))]
    pub async fn deliver_by_flow(
        &self,
        recipient: &str,
        sink: &dyn Sink,
        idle: Duration,
    ) -> Result<BTreeMap<String, DeliverSummary>> {
        let mut summary = BTreeMap::new();
        self.declare(recipient).await?;
        let mut sub = self.transport.subscribe(recipient).await?;
        // The first message may take a while to come on a busy broker (a consumer is
        // being set up beside dozens of others): wait at least a second for it.
        let mut wait = idle.max(FIRST_WAIT);
        loop {
            let first = match tokio::time::timeout(wait, sub.next()).await {
                Err(_) => break,
                Ok(d) => d?,
            };
            wait = idle;
            let mut batch = vec![first];
            // Gather what is already there, without waiting for more.
            while batch.len() < DELIVER_BATCH {
                match tokio::time::timeout(GATHER, sub.next()).await {
                    Err(_) => break,
                    Ok(d) => batch.push(d?),
                }
            }
            self.deliver_batch(batch, sink, &mut summary).await?;
        }
        sub.close(Duration::from_secs(5)).await?;
        Ok(summary)
    }

    async fn deliver_batch(
        &self,
        batch: Vec<TransportDelivery>,
        sink: &dyn Sink,
        summary: &mut BTreeMap<String, DeliverSummary>,
    ) -> Result<()> {
        let mut refused = Vec::new();
        let mut accepted = Vec::new();
        for delivery in batch {
            let header = &delivery.envelope.header;
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
        let mut settled: Vec<(Header, TransferStatus, Option<String>)> = Vec::new();
        // What to do with each message once the receipts are recorded.
        let mut then = Vec::with_capacity(refused.len() + accepted.len());
        // Nothing a retry can fix: kept aside for a person.
        for (delivery, reason) in refused {
            let header = delivery.envelope.header.clone();
            warn!(transfer = %header.transfer_id, "refusing a message: {reason}");
            settled.push((header, TransferStatus::DeadLettered, Some(reason.clone())));
            then.push((delivery, After::DeadLetter(reason)));
        }
        let requests = accepted
            .iter()
            .map(|(d, record)| {
                let h = &d.envelope.header;
                SinkDelivery {
                    transfer_id: h.transfer_id.to_string(),
                    flow: h.flow.clone(),
                    sender: h.sender.clone(),
                    recipient: h.recipient.clone(),
                    record: record.clone(),
                }
            })
            .collect();
        let outcomes = if accepted.is_empty() {
            Vec::new()
        } else {
            sink.deliver_batch(requests).await
        };
        for ((delivery, _), outcome) in accepted.into_iter().zip(outcomes) {
            let header = delivery.envelope.header.clone();
            match outcome {
                Ok(receipt) => {
                    let (status, reason) = match receipt.status {
                        ReceiptStatus::Delivered => (TransferStatus::Delivered, None),
                        ReceiptStatus::Applied { .. } => (TransferStatus::Applied, None),
                        ReceiptStatus::Rejected { reasons } => {
                            (TransferStatus::Rejected, Some(reasons.join("; ")))
                        }
                    };
                    settled.push((header, status, reason));
                    then.push((delivery, After::Ack));
                }
                Err(e) if e.is_retryable() => {
                    let delay = Duration::from_secs(1 << delivery.delivery_count.min(6));
                    then.push((delivery, After::Retry(delay, header, e.to_string())));
                }
                Err(e) => {
                    settled.push((header, TransferStatus::DeadLettered, Some(e.to_string())));
                    then.push((delivery, After::DeadLetter(e.to_string())));
                }
            }
        }
        // The receipts are journaled and recorded before their messages are settled on
        // the transport: a crash in between delivers them again (the peer's idempotency
        // absorbs it) rather than losing a receipt.
        self.count_and_settle(settled, summary).await?;
        // A retry may turn out to be the last one allowed: that receipt is known only now.
        let mut exhausted = Vec::new();
        for (delivery, after) in then {
            match after {
                After::Ack => delivery.ack().await?,
                After::DeadLetter(reason) => delivery.dead_letter(&reason).await?,
                After::Retry(delay, header, reason) => match delivery.retry(delay).await? {
                    Settled::Retried => {
                        summary.entry(header.flow.clone()).or_default().retried += 1
                    }
                    Settled::DeadLettered => {
                        exhausted.push((header, TransferStatus::DeadLettered, Some(reason)))
                    }
                },
            }
        }
        self.count_and_settle(exhausted, summary).await
    }

    async fn count_and_settle(
        &self,
        settled: Vec<(Header, TransferStatus, Option<String>)>,
        summary: &mut BTreeMap<String, DeliverSummary>,
    ) -> Result<()> {
        for (header, status, _) in &settled {
            summary
                .entry(header.flow.clone())
                .or_default()
                .count(*status);
        }
        self.settle(settled).await
    }

    /// Settles receipts a peer gave after the delivery (a SOLIS ACK file): each moves
    /// its transfer forward and is journaled. Unknown transfer ids are counted apart.
    pub async fn settle_late(&self, receipts: &[Receipt]) -> Result<BTreeMap<String, LateSummary>> {
        let mut by_flow: BTreeMap<String, LateSummary> = BTreeMap::new();
        let mut unknown = 0;
        let mut wanted = Vec::new();
        for r in receipts {
            match Uuid::from_str(&r.transfer_id) {
                Ok(id) => wanted.push((id, r)),
                Err(_) => unknown += 1,
            }
        }
        let ids: Vec<Uuid> = wanted.iter().map(|(id, _)| *id).collect();
        let rows: HashMap<Uuid, TransferRow> = self
            .state
            .transfers(&ids)
            .await?
            .into_iter()
            .map(|r| (r.transfer_id, r))
            .collect();
        let mut settled = Vec::new();
        for (id, receipt) in wanted {
            let Some(row) = rows.get(&id) else {
                unknown += 1;
                continue;
            };
            let summary = by_flow.entry(row.flow.clone()).or_default();
            let (status, reason) = match &receipt.status {
                ReceiptStatus::Delivered => (TransferStatus::Delivered, None),
                ReceiptStatus::Applied { .. } => {
                    summary.applied += 1;
                    (TransferStatus::Applied, None)
                }
                ReceiptStatus::Rejected { reasons } => {
                    summary.rejected += 1;
                    (TransferStatus::Rejected, Some(reasons.join("; ")))
                }
            };
            let pseudonym = Subject::new(&self.pseudonyms, &row.hub_id.to_string()).pseudonym;
            let header = Header {
                transfer_id: id,
                flow: row.flow.clone(),
                sender: row.sender.clone(),
                recipient: row.recipient.clone(),
                ordering_key: None,
                headers: [(SUBJECT_HEADER.to_owned(), pseudonym)].into(),
            };
            settled.push((header, status, reason));
        }
        self.settle(settled).await?;
        if unknown > 0 {
            warn!(unknown, "receipts naming no known transfer");
            by_flow.entry(String::new()).or_default().unknown += unknown;
        }
        Ok(by_flow)
    }

    /// Reads a late-receipt source dry: settles each answer, then acknowledges it.
    pub async fn collect_receipts(&self, source: &mut dyn ReceiptSource) -> Result<LateSummary> {
        let mut total = LateSummary::default();
        for s in self.collect_receipts_by_flow(source).await?.values() {
            crate::night::add_late(&mut total, s);
        }
        Ok(total)
    }

    /// `collect_receipts`, counted per flow (receipts naming no known transfer are
    /// counted under the empty flow id).
    pub async fn collect_receipts_by_flow(
        &self,
        source: &mut dyn ReceiptSource,
    ) -> Result<BTreeMap<String, LateSummary>> {
        let mut total: BTreeMap<String, LateSummary> = BTreeMap::new();
        for group in source.next_receipts().await? {
            for (flow, s) in self.settle_late(&group.receipts).await? {
                crate::night::add_late(total.entry(flow).or_default(), &s);
            }
            source.ack(&group.ack).await?;
        }
        Ok(total)
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

    /// Journals receipts (one batch) and moves their transfers forward (one
    /// transaction).
    async fn settle(&self, settled: Vec<(Header, TransferStatus, Option<String>)>) -> Result<()> {
        if settled.is_empty() {
            return Ok(());
        }
        let mut entries = Vec::with_capacity(settled.len());
        let mut rows = Vec::with_capacity(settled.len());
        for (header, status, reason) in settled {
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
            e.subject = header.headers.get(SUBJECT_HEADER).map(|p| Subject {
                pseudonym: p.clone(),
                identifiers: Vec::new(),
            });
            e.reason = reason.clone();
            entries.push(e);
            rows.push((header.transfer_id, status, reason));
        }
        self.journal.append_batch(entries).await?;
        self.state.set_statuses(&rows).await?;
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
