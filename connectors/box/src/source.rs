//! The box as a `Source` for the engine: one complete file per batch, each row an
//! item acknowledged by `{file}:{line}`. A file's ACK is written, and the file removed
//! from `depot/`, only once every one of its rows is acknowledged: until then a
//! restart serves the file again (at least once, never lost).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use passerelle_connector::{AckToken, ConnectorError, ItemOutcome, Settled, Source, SourceItem};
use passerelle_model::{Jeune, RecordId, Source as RecordSource, SourceSystem};

use crate::brsa::parse_name;
use crate::protocol::{BoxHub, PendingAck, Processed, Received};
use crate::state::BoxState;

/// A box read by the engine.
#[derive(Debug)]
pub struct BoxSource<S: BoxState + 'static> {
    hub: Arc<Mutex<BoxHub<S>>>,
    /// Files served and not yet fully acknowledged: their ACK, outstanding lines, and
    /// what the hub did with the lines acknowledged so far (for the ACK file).
    inflight: HashMap<String, InFlight>,
}

#[derive(Debug)]
struct InFlight {
    pending: PendingAck,
    lines: HashSet<u64>,
    outcomes: HashMap<u64, ItemOutcome>,
}

impl<S: BoxState + 'static> BoxSource<S> {
    pub fn new(hub: BoxHub<S>) -> Self {
        Self {
            hub: Arc::new(Mutex::new(hub)),
            inflight: HashMap::new(),
        }
    }

    /// The partner's code (its folder in the box): for `OF_SUIVI` items, the Mission
    /// Locale the follow-up goes to (flow `of-suivi`).
    pub fn partenaire(&self) -> Result<String, ConnectorError> {
        Ok(self
            .hub
            .lock()
            .map_err(|_| poisoned())?
            .partenaire()
            .to_owned())
    }

    /// Files served and awaiting acknowledgement.
    pub fn in_flight(&self) -> usize {
        self.inflight.len()
    }
}

fn poisoned() -> ConnectorError {
    ConnectorError::Protocol {
        peer: "box".to_owned(),
        reason: "the box state lock was poisoned by an earlier panic".to_owned(),
    }
}

fn joined(e: tokio::task::JoinError) -> ConnectorError {
    ConnectorError::Protocol {
        peer: "box".to_owned(),
        reason: format!("the box reading task failed: {e}"),
    }
}

/// One received row as a source item. `OF_SUIVI` updates become records holding
/// only `obligation_formation`, identified by the reference the CD quoted back:
/// `sources[0].record_id` is the whole reference, and `identifiants.imilo_dossier`
/// the dossier it carries (see `of::reference_of`). The ML is the box's partenaire.
fn to_item(file: &str, received: Received) -> (u64, SourceItem) {
    match received {
        Received::Brsa(row) => (
            row.line,
            SourceItem {
                ack: AckToken(format!("{file}:{}", row.line)),
                outcome: row.outcome,
                warnings: row.warnings,
            },
        ),
        Received::OfSuivi(Ok(update)) => {
            let organisation =
                parse_name(file).map_or_else(|| "inconnu".to_owned(), |n| n.emetteur);
            let outcome = RecordId::parse(&update.reference)
                .map(|record_id| {
                    let mut j = Jeune::from_source(RecordSource {
                        system: SourceSystem::Box,
                        organisation,
                        record_id,
                    });
                    j.identifiants.imilo_dossier = crate::of::split_reference(&update.reference).1;
                    j.obligation_formation = Some(update.obligation_formation());
                    j
                })
                .map_err(|e| {
                    vec![passerelle_connector::RecordIssue {
                        reference: format!("ligne-{}", update.line),
                        line: Some(update.line),
                        field: "Référence".to_owned(),
                        reason: e.reason,
                    }]
                });
            (
                update.line,
                SourceItem {
                    ack: AckToken(format!("{file}:{}", update.line)),
                    outcome,
                    warnings: Vec::new(),
                },
            )
        }
        Received::OfSuivi(Err(issue)) => {
            let line = issue.line.unwrap_or(0);
            (
                line,
                SourceItem {
                    ack: AckToken(format!("{file}:{line}")),
                    outcome: Err(vec![issue]),
                    warnings: Vec::new(),
                },
            )
        }
    }
}

#[async_trait]
impl<S: BoxState + 'static> Source for BoxSource<S> {
    async fn next_batch(&mut self) -> Result<Vec<SourceItem>, ConnectorError> {
        let hub = self.hub.clone();
        let mut skip: HashSet<String> = self.inflight.keys().cloned().collect();
        // Folder operations block (files, sftp processes): keep them off the workers.
        let served = tokio::task::spawn_blocking(move || {
            let mut hub = hub.lock().map_err(|_| poisoned())?;
            loop {
                let mut items = Vec::new();
                let next = hub.read_next(&skip, &mut |file, r| items.push(to_item(file, r)))?;
                match next {
                    None => return Ok::<_, ConnectorError>(None),
                    Some(Processed::Done(outcome)) => {
                        // Refused or duplicate: already answered and removed.
                        if let crate::protocol::FileOutcome::Refused { name, .. }
                        | crate::protocol::FileOutcome::Duplicate { name, .. }
                        | crate::protocol::FileOutcome::Finished { name } = outcome
                        {
                            skip.insert(name);
                        }
                    }
                    Some(Processed::Read { pending, .. }) if items.is_empty() => {
                        hub.complete(pending)?;
                    }
                    Some(Processed::Read { pending, .. }) => return Ok(Some((items, pending))),
                }
            }
        })
        .await
        .map_err(joined)??;
        let Some((items, pending)) = served else {
            return Ok(Vec::new());
        };
        let lines = items.iter().map(|(line, _)| *line).collect();
        self.inflight.insert(
            pending.name.clone(),
            InFlight {
                pending,
                lines,
                outcomes: HashMap::new(),
            },
        );
        Ok(items.into_iter().map(|(_, item)| item).collect())
    }

    async fn ack(&mut self, tokens: &[AckToken]) -> Result<(), ConnectorError> {
        let settled: Vec<Settled> = tokens
            .iter()
            .map(|t| Settled {
                ack: t.clone(),
                // Told nothing more: the reader's verdict stands.
                outcome: ItemOutcome::Sent,
            })
            .collect();
        self.ack_settled(&settled).await
    }

    /// Each row's fate is kept until its file is done; the ACK then says, line by
    /// line, what the hub did (a row read but not sent is `KO` with the reason).
    async fn ack_settled(&mut self, items: &[Settled]) -> Result<(), ConnectorError> {
        for Settled { ack, outcome } in items {
            let Some((file, line)) = ack.0.rsplit_once(':') else {
                continue;
            };
            if let (Some(f), Ok(line)) = (self.inflight.get_mut(file), line.parse()) {
                f.lines.remove(&line);
                f.outcomes.insert(line, outcome.clone());
            }
        }
        let done: Vec<String> = self
            .inflight
            .iter()
            .filter(|(_, f)| f.lines.is_empty())
            .map(|(name, _)| name.clone())
            .collect();
        for name in done {
            let Some(InFlight {
                pending, outcomes, ..
            }) = self.inflight.remove(&name)
            else {
                continue;
            };
            let hub = self.hub.clone();
            tokio::task::spawn_blocking(move || {
                hub.lock()
                    .map_err(|_| poisoned())?
                    .complete_with(pending, &outcomes)
            })
            .await
            .map_err(joined)??;
        }
        Ok(())
    }
}
