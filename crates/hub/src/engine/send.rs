//! The send path, in two steps a night can overlap: `prepare` (who is it, what may
//! leave, has it changed, seal) and `publish` (confirmed publish, record, journal).
//! `send_routed` runs both, chunk after chunk.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use passerelle_audit::{Event, NewEntry, Outcome, Subject};
use passerelle_identity::{IdentityKeys, KeyKind, Resolution};
use passerelle_model::{FieldClass, Identifiants, Jeune, class_of};
use passerelle_policy::{Decision, Flow, Party};
use passerelle_transport::{Envelope, Header};
use sha2::{Digest, Sha256};
use tracing::{debug, info, instrument};
use uuid::Uuid;

use super::journal::keep;
use super::{Engine, EngineError, Org, Result, Routed, SUBJECT_HEADER, ref_header};
use crate::change::transfer_id;
use crate::report::SendSummary;
use crate::seal::SealError;
use crate::state::{PublishedRow, TransferRow, TransferStatus};

/// Records per chunk in `send_routed`: one identity transaction, one pipelined
/// publish, one journal batch and one state transaction each.
pub const SEND_CHUNK: usize = 512;

/// Persons the engine's identity index holds at most before it is emptied (about
/// 730 bytes each: some 70 MB).
pub const IDENTITY_CACHE_PERSONS: usize = 100_000;

/// What became of one record offered to `prepare`, in the order offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemFate {
    /// Published (once `publish` returned).
    Sent,
    /// The same content was sent before.
    Unchanged,
    /// Refused by policy.
    Denied,
    /// Sent to identity review.
    Review,
    /// A reply about someone the recipient never sent.
    NotKnown,
}

/// A person resolved, with their parties.
struct Resolved {
    /// Its place in the chunk.
    at: usize,
    from: Org,
    to: Org,
    hub_id: Uuid,
    record: Jeune,
    /// Still to be checked: the recipient must know the person (see `Routed`).
    only_if_known: bool,
}

/// A sealed transfer waiting for its confirm, with what to record once confirmed.
struct Outgoing {
    envelope: Envelope,
    /// Its journal entries: `published`, and the special fields projected away.
    entries: Vec<NewEntry>,
    hub_id: Uuid,
    stream: String,
    hash: [u8; 32],
    /// The record's place among those offered to `prepare`.
    at: usize,
    /// What a FAJ transfer adds to the bilan's aggregates (`bilan::faj_figure`).
    faj: Option<crate::bilan::FajFigure>,
}

/// A chunk ready to publish.
pub struct Prepared {
    flow: String,
    outgoing: Vec<Outgoing>,
    /// What became of each record offered; `Sent` ones wait for `publish`.
    pub fates: Vec<ItemFate>,
    summary: SendSummary,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("flow", &self.flow)
            .field("outgoing", &self.outgoing.len())
            .finish_non_exhaustive()
    }
}

impl Prepared {
    /// For each transfer to publish: the place of its record among those offered to
    /// `prepare`, its id and its sender (to record the sender's reference).
    pub fn transfers(&self) -> Vec<(usize, Uuid, String)> {
        self.outgoing
            .iter()
            .map(|o| {
                let h = &o.envelope.header;
                (o.at, h.transfer_id, h.sender.clone())
            })
            .collect()
    }

    /// The recipients this chunk publishes to.
    pub fn recipients(&self) -> BTreeSet<String> {
        self.outgoing
            .iter()
            .map(|o| o.envelope.header.recipient.clone())
            .collect()
    }
}

/// What change detection compares against: the last content sent to a recipient under
/// a flow *from the same kind of source*. Two sources describing one person (a SOLIS
/// export and a CNAF file) would otherwise replace each other's hash every night and
/// send both again and again.
fn stream(to: &Org, from: &Org) -> String {
    format!("{}#{}", to.org, from.system.as_str())
}

/// The identifiers an organisation gives its own records.
fn own_refs(ids: &Identifiants) -> Identifiants {
    Identifiants {
        solis: ids.solis.clone(),
        imilo_dossier: ids.imilo_dossier.clone(),
        ..Identifiants::default()
    }
}

impl Engine {
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

    /// Sends records under `flow_id`, each from and to its own party, in chunks.
    /// Returns once every sent record is published, journaled and recorded.
    #[instrument(skip(self, records), fields(flow = flow_id))]
    pub async fn send_routed(
        &self,
        flow_id: &str,
        records: impl IntoIterator<Item = Routed>,
    ) -> Result<SendSummary> {
        let mut summary = SendSummary::default();
        let mut chunk = Vec::with_capacity(SEND_CHUNK);
        let mut records = records.into_iter().peekable();
        if records.peek().is_none() {
            self.flow(flow_id)?;
        }
        for item in records {
            chunk.push(item);
            if chunk.len() == SEND_CHUNK {
                let p = self.prepare(flow_id, std::mem::take(&mut chunk)).await?;
                summary += &self.publish(p).await?;
            }
        }
        if !chunk.is_empty() {
            let p = self.prepare(flow_id, chunk).await?;
            summary += &self.publish(p).await?;
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

    fn flow(&self, flow_id: &str) -> Result<&Flow> {
        self.policy
            .flow(flow_id)
            .ok_or_else(|| EngineError::UnknownFlow(flow_id.to_owned()))
    }

    /// Who is each person (their keys stored), what may leave to whom, has it changed,
    /// sealed for the recipient: everything short of publishing.
    pub async fn prepare(&self, flow_id: &str, items: Vec<Routed>) -> Result<Prepared> {
        self.prepare_forced(flow_id, items, &[]).await
    }

    /// `prepare`, with the hub id of some records decided already (`forced[i]`, by
    /// an identity review): those are not matched again, their keys go to that id.
    pub(super) async fn prepare_forced(
        &self,
        flow_id: &str,
        items: Vec<Routed>,
        forced: &[Option<Uuid>],
    ) -> Result<Prepared> {
        let flow = self.flow(flow_id)?;
        let mut summary = SendSummary {
            read: items.len() as u64,
            ..SendSummary::default()
        };
        let mut fates = vec![ItemFate::Sent; items.len()];
        let mut known = self
            .resolve(flow_id, items, forced, &mut fates, &mut summary)
            .await?;
        self.remember_and_fill_refs(&mut known).await?;
        known.retain(|r| {
            if r.only_if_known {
                fates[r.at] = ItemFate::NotKnown;
                summary.not_known += 1;
            }
            !r.only_if_known
        });

        // What may leave, and has it changed since last sent?
        let mut ids_by_stream: BTreeMap<String, Vec<Uuid>> = BTreeMap::new();
        for r in &known {
            ids_by_stream
                .entry(stream(&r.to, &r.from))
                .or_default()
                .push(r.hub_id);
        }
        let mut last: HashMap<(String, Uuid), [u8; 32]> = HashMap::new();
        for (key, ids) in ids_by_stream {
            for (id, hash) in self.state.last_hashes(flow_id, &key, &ids).await? {
                last.insert((key.clone(), id), hash);
            }
        }
        let mut outgoing = Vec::new();
        let mut denials = Vec::new();
        for r in known {
            let (from_party, to_party) = (r.from.party(), r.to.party());
            let (projection, dropped) =
                match self
                    .policy
                    .decide(Some(flow_id), &from_party, &to_party, &r.record)
                {
                    Decision::Denied { reason } => {
                        summary.denied += 1;
                        fates[r.at] = ItemFate::Denied;
                        let reason = format!("{}: {reason}", reason.code());
                        denials.push((r, reason));
                        continue;
                    }
                    Decision::Allowed {
                        projection,
                        dropped,
                        ..
                    } => (projection, dropped),
                };
            // One serialisation for the hash and the seal.
            let json = projection.to_json_line();
            let hash: [u8; 32] = Sha256::digest(json.as_bytes()).into();
            let stream = stream(&r.to, &r.from);
            if last.get(&(stream.clone(), r.hub_id)) == Some(&hash) {
                summary.unchanged += 1;
                fates[r.at] = ItemFate::Unchanged;
                continue;
            }
            let subject = Subject::of_jeune(&self.pseudonyms, &r.hub_id.to_string(), &r.record);
            let header = Header {
                transfer_id: transfer_id(flow_id, &r.to.org, &r.hub_id, &hash),
                flow: flow_id.to_owned(),
                sender: r.from.org.clone(),
                recipient: r.to.org.clone(),
                ordering_key: Some(subject.pseudonym.clone()),
                headers: [(SUBJECT_HEADER.to_owned(), subject.pseudonym.clone())].into(),
            };
            let sealed = self.sealer.seal(&header, json.as_bytes())?;
            let digest = hex::encode(Sha256::digest(&sealed));
            let mut entries = Vec::with_capacity(2);
            let special: Vec<&str> = dropped
                .iter()
                .copied()
                .filter(|p| class_of(p).is_some_and(|c: FieldClass| c.is_special()))
                .collect();
            if !special.is_empty() {
                // The transfer goes on without them, but a DPO must see the attempt:
                // journaled with the transfer that was sent, never for one that was not.
                summary.special_dropped += special.len() as u64;
                let mut e = self.entry(
                    Event::Denied,
                    flow_id,
                    &r.from.org,
                    &r.to.org,
                    Outcome::Refused,
                );
                e.subject = Some(subject.clone());
                e.fields = special.iter().map(|p| (*p).to_owned()).collect();
                e.reason = Some(
                    "special-data: projected away, the flow does not name these classes".into(),
                );
                entries.push(e);
            }
            let mut e = self.entry(
                Event::Published,
                flow_id,
                &r.from.org,
                &r.to.org,
                Outcome::Ok,
            );
            e.subject = Some(subject);
            e.fields = projection.paths().iter().map(|p| (*p).to_owned()).collect();
            e.legal_basis = Some(format!(
                "{} ({})",
                flow.legal_basis.gdpr, flow.legal_basis.reference
            ));
            e.ciphertext_digest = Some(digest);
            entries.push(e);
            outgoing.push(Outgoing {
                envelope: Envelope {
                    header,
                    payload: sealed.into(),
                },
                entries,
                hub_id: r.hub_id,
                stream,
                hash,
                at: r.at,
                faj: crate::bilan::faj_figure(flow_id, &projection),
            });
        }
        self.journal_denials(flow_id, denials).await?;
        Ok(Prepared {
            flow: flow_id.to_owned(),
            outgoing,
            fates,
            summary,
        })
    }

    /// Publishes a prepared chunk (every confirm awaited), then records it with its
    /// journal entries pending, then journals them. Returns once all of it is done: the
    /// source may be acknowledged. A transfer recorded before (a night that crashed
    /// after recording it) is published again but not journaled again.
    pub async fn publish(&self, prepared: Prepared) -> Result<SendSummary> {
        let Prepared {
            outgoing, summary, ..
        } = prepared;
        for org in outgoing
            .iter()
            .map(|o| o.envelope.header.recipient.clone())
            .collect::<BTreeSet<_>>()
        {
            self.declare(&org).await?;
        }
        let envelopes: Vec<Envelope> = outgoing.iter().map(|o| o.envelope.clone()).collect();
        let ids: Vec<Uuid> = envelopes.iter().map(|e| e.header.transfer_id).collect();
        self.publishing(ids.iter().copied());
        let result = self.publish_and_record(outgoing, envelopes, summary).await;
        self.published(ids);
        result
    }

    async fn publish_and_record(
        &self,
        outgoing: Vec<Outgoing>,
        envelopes: Vec<Envelope>,
        mut summary: SendSummary,
    ) -> Result<SendSummary> {
        let results = self.transport.publish_batch(envelopes).await;
        // A refused publish stops the run: nothing after it is recorded, and the
        // rerun publishes the chunk again under the same transfer ids.
        let mut first_error = None;
        let mut rows = Vec::with_capacity(outgoing.len());
        let mut entries = Vec::with_capacity(outgoing.len());
        let mut faj = Vec::with_capacity(outgoing.len());
        for (o, r) in outgoing.into_iter().zip(results) {
            match r {
                Ok(_) => {
                    let h = &o.envelope.header;
                    self.count_traffic(&h.recipient, 1, 0);
                    rows.push(PublishedRow {
                        row: TransferRow {
                            transfer_id: h.transfer_id,
                            flow: h.flow.clone(),
                            sender: h.sender.clone(),
                            recipient: h.recipient.clone(),
                            hub_id: o.hub_id,
                            status: TransferStatus::Published,
                            reason: None,
                        },
                        stream: o.stream,
                        hash: o.hash,
                        entries: o.entries.iter().map(keep).collect(),
                    });
                    entries.push(o.entries);
                    faj.push(o.faj);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        let done = self.take_journaled();
        let (new, pending) = match self.state.record_published_rows(&rows, &done).await {
            Ok(r) => r,
            Err(e) => {
                self.mark_journaled(done);
                return Err(e.into());
            }
        };
        // The bilan's FAJ aggregates, for transfers recorded for the first time only;
        // a figure lost to an error never stops a transfer.
        let figures: Vec<_> = rows
            .iter()
            .zip(faj)
            .zip(&new)
            .filter(|(_, new)| **new)
            .filter_map(|((p, f), _)| {
                let r = &p.row;
                f.map(|f| (r.flow.clone(), r.sender.clone(), r.recipient.clone(), f))
            })
            .collect();
        if let Err(e) = crate::bilan::record_faj(&self.state, chrono::Utc::now(), &figures).await {
            tracing::warn!("cannot add FAJ figures to the bilan: {e}");
        }
        let entries: Vec<NewEntry> = entries
            .into_iter()
            .zip(new)
            .filter(|(_, new)| *new)
            .flat_map(|(e, _)| e)
            .collect();
        self.journal_kept(entries, pending).await?;
        summary.sent += rows.len() as u64;
        match first_error {
            Some(e) => Err(e.into()),
            None => Ok(summary),
        }
    }

    /// Who is each person: a hub id, or review. Keys are stored before anything is
    /// published: a rerun after a crash must find the same hub ids, hence the same
    /// transfer ids.
    async fn resolve(
        &self,
        flow_id: &str,
        items: Vec<Routed>,
        forced: &[Option<Uuid>],
        fates: &mut [ItemFate],
        summary: &mut SendSummary,
    ) -> Result<Vec<Resolved>> {
        let mut known = Vec::with_capacity(items.len());
        let mut reviews = Vec::new();
        let keys: Vec<IdentityKeys> = items
            .iter()
            .map(|i| IdentityKeys::of(&i.record, &self.pseudonyms))
            .collect();
        let touched: Vec<(KeyKind, String)> = keys
            .iter()
            .flat_map(|k| k.entries(Uuid::nil()))
            .map(|e| (e.kind, e.key))
            .collect();
        let mut index = self.identity.lock().await;
        // A cache, bounded: emptied, it is filled again from the store chunk by chunk
        // with what each chunk's keys name, which is all a resolution looks at.
        if index.len() > IDENTITY_CACHE_PERSONS {
            *index = passerelle_identity::IdentityIndex::new();
        }
        // Decided in the store, under its locks on these keys: what another instance
        // stored about them since this one loaded its index is taken first, so that a
        // new person gets one hub id whichever instance reads them. Keys are stored
        // before anything is published, and before the lock is released: another chunk
        // about the same person publishes only once these keys are stored.
        let resolutions = self
            .state
            .decide_identities(&touched, |stored| {
                for e in &stored {
                    index.insert(e);
                }
                let mut entries = Vec::new();
                let out: Vec<Resolution> = keys
                    .iter()
                    .enumerate()
                    .map(|(at, keys)| {
                        let (r, added) = match forced.get(at).copied().flatten() {
                            // A reviewer decided: the keys go to that person, whatever
                            // they match.
                            Some(hub_id) => {
                                let added: Vec<_> = keys.entries(hub_id);
                                for e in &added {
                                    index.insert(e);
                                }
                                (Resolution::New { hub_id }, added)
                            }
                            None => index.resolve_new(keys, Uuid::new_v4),
                        };
                        // Only keys the index did not hold: the others are stored.
                        if !matches!(r, Resolution::Review { .. }) {
                            entries.extend(added);
                        }
                        r
                    })
                    .collect();
                (out, entries)
            })
            .await?;
        drop(index);
        for ((at, item), resolution) in items.into_iter().enumerate().zip(resolutions) {
            let Routed {
                from,
                to,
                mut record,
                known_to_recipient,
            } = item;
            match resolution {
                Resolution::Review { reason, candidates } => {
                    summary.review += 1;
                    fates[at] = ItemFate::Review;
                    debug!(?reason, "record sent to identity review");
                    reviews.push((
                        format!("{reason:?}"),
                        candidates,
                        Routed {
                            from,
                            to,
                            record,
                            known_to_recipient,
                        },
                    ));
                }
                r => {
                    let hub_id = r.hub_id().expect("matched or new");
                    record.hub_id = Some(hub_id.to_string());
                    known.push(Resolved {
                        at,
                        from,
                        to,
                        hub_id,
                        record,
                        only_if_known: known_to_recipient,
                    });
                }
            }
        }
        for (reason, candidates, routed) in reviews {
            self.state
                .save_review(flow_id, &reason, &candidates)
                .await?;
            self.hold_for_review(flow_id, &reason, candidates, routed)
                .await?;
        }
        Ok(known)
    }

    /// Journals policy denials, once: a record read again and denied for the same
    /// reason with the same content is not journaled again.
    async fn journal_denials(&self, flow_id: &str, denials: Vec<(Resolved, String)>) -> Result<()> {
        if denials.is_empty() {
            return Ok(());
        }
        let mut by_recipient: BTreeMap<String, Vec<Uuid>> = BTreeMap::new();
        for (r, _) in &denials {
            by_recipient
                .entry(stream(&r.to, &r.from))
                .or_default()
                .push(r.hub_id);
        }
        let mut last = HashMap::new();
        for (key, ids) in by_recipient {
            for (id, hash) in self.state.denied_hashes(flow_id, &key, &ids).await? {
                last.insert((key.clone(), id), hash);
            }
        }
        let mut entries = Vec::new();
        let mut remembered = Vec::new();
        for (r, reason) in denials {
            let mut h = Sha256::new();
            h.update(reason.as_bytes());
            h.update([0]);
            h.update(r.record.to_json_line().as_bytes());
            let hash: [u8; 32] = h.finalize().into();
            let key = stream(&r.to, &r.from);
            if last.get(&(key.clone(), r.hub_id)) == Some(&hash) {
                continue;
            }
            let mut e = self.entry(
                Event::Denied,
                flow_id,
                &r.from.org,
                &r.to.org,
                Outcome::Refused,
            );
            e.subject = Some(Subject::of_jeune(
                &self.pseudonyms,
                &r.hub_id.to_string(),
                &r.record,
            ));
            e.reason = Some(reason);
            entries.push(e);
            remembered.push((flow_id.to_owned(), key, r.hub_id, hash));
        }
        if !entries.is_empty() {
            self.journal.append_batch(entries).await?;
        }
        self.state.save_denied(&remembered).await?;
        Ok(())
    }

    /// A sender's own references (SOLIS id, I-MILO dossier) are kept, sealed for that
    /// sender, so that a later transfer *to* it can name its own record: a `brsa-suivi`
    /// built from I-MILO must carry the idSolis the CD sent with the orientation, an
    /// `of-suivi` or `faj-decision` the ML's dossier number.
    ///
    /// A record whose recipient holds a reference is marked as known.
    async fn remember_and_fill_refs(&self, known: &mut [Resolved]) -> Result<()> {
        // What each sender already has stored: a reference that did not change is not
        // sealed and written again (a night mostly meets the same people).
        let mut senders: BTreeMap<&str, Vec<Uuid>> = BTreeMap::new();
        for r in known.iter() {
            if !own_refs(&r.record.identifiants).is_empty() {
                senders
                    .entry(r.from.org.as_str())
                    .or_default()
                    .push(r.hub_id);
            }
        }
        let mut stored: HashMap<(String, Uuid), Vec<u8>> = HashMap::new();
        for (org, ids) in senders {
            for (id, sealed) in self.state.peer_refs(org, &ids).await? {
                stored.insert((org.to_owned(), id), sealed);
            }
        }
        let mut refs = Vec::new();
        for r in known.iter() {
            let own = own_refs(&r.record.identifiants);
            if own.is_empty() {
                continue;
            }
            let plain = serde_json::to_vec(&own).expect("identifiers serialise");
            let header = ref_header(&r.hub_id, &r.from.org);
            let unchanged = stored
                .get(&(r.from.org.clone(), r.hub_id))
                .and_then(|sealed| self.sealer.open(&header, sealed).ok())
                .is_some_and(|old| *old == plain);
            if unchanged {
                continue;
            }
            // A sender with no keys here never receives anything: nothing to fill later.
            match self.sealer.seal(&header, &plain) {
                Ok(sealed) => refs.push((r.hub_id, r.from.org.clone(), sealed)),
                Err(e) => debug!(org = %r.from.org, "reference not kept: {e}"),
            }
        }
        self.state.save_peer_refs(&refs).await?;
        let mut wanted: BTreeMap<&str, Vec<Uuid>> = BTreeMap::new();
        for r in known.iter() {
            let ids = &r.record.identifiants;
            if ids.solis.is_none() || ids.imilo_dossier.is_none() {
                wanted.entry(r.to.org.as_str()).or_default().push(r.hub_id);
            }
        }
        let mut found: HashMap<(String, Uuid), Vec<u8>> = HashMap::new();
        for (org, ids) in wanted {
            for (id, sealed) in self.state.peer_refs(org, &ids).await? {
                found.insert((org.to_owned(), id), sealed);
            }
        }
        for r in known.iter_mut() {
            let Some(sealed) = found.get(&(r.to.org.clone(), r.hub_id)) else {
                continue;
            };
            r.only_if_known = false;
            let plain = self
                .sealer
                .open(&ref_header(&r.hub_id, &r.to.org), sealed)?;
            let own: Identifiants = serde_json::from_slice(&plain)
                .map_err(|_| SealError("a stored reference is not readable".into()))?;
            let ids = &mut r.record.identifiants;
            if ids.solis.is_none() {
                ids.solis = own.solis;
            }
            if ids.imilo_dossier.is_none() {
                ids.imilo_dossier = own.imilo_dossier;
            }
        }
        Ok(())
    }
}
