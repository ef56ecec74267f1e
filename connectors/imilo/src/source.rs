//! Reading I-MILO as a `Source`: the change-event queue (`EventSource`, acked only
//! when the engine says the change was handed on) and the full reconciliation through
//! the structure listings (`ReconcileSource`).

use std::collections::{HashMap, HashSet, VecDeque};

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};
use passerelle_connector::{AckToken, ConnectorError, ErrorKind, Source, SourceItem};

use crate::client::ImiloClient;
use crate::mapping::dossier_to_jeune;

/// Counters of an `EventSource`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventSourceStats {
    pub events_seen: u64,
    pub dossiers_read: u64,
    /// Events with nothing to hand on (RDV, SESSION, DELETE, ARCHIVE, unknown types),
    /// acked by the source itself.
    pub settled: u64,
    pub acked: u64,
}

/// The change-event queue as a source.
///
/// - `DOSSIER` `CREATE`/`UPDATE`: the dossier is read and mapped; several events on
///   one dossier in a batch give one item whose ack token lists them all
///   (comma-separated identifiants). They are acked only through `ack`.
/// - `DOSSIER` `DELETE`/`ARCHIVE` (or a dossier gone by the time it is read, 404):
///   nothing is handed on. Each system stays the system of record of what it owns, so
///   an ML closing a dossier deletes nothing at the CD; the dossier id is kept for
///   `take_removed` (for the engine to journal) and the event is acked at once.
/// - `RDV`, `SESSION` and unknown types carry nothing the flows use: acked at once.
///
/// Events handed out but not yet acked are not handed out twice by the same source
/// (the API serves them again until acked); after a restart they are, as they must.
/// The API serves only the 150 oldest unacked events: once a page is all in flight
/// `next_batch` returns empty, and the night's pipeline, seeing acks pending, waits
/// for them and reads again (the next page), until a read with nothing pending is
/// empty.
#[derive(Debug)]
pub struct EventSource {
    client: ImiloClient,
    in_flight: HashSet<String>,
    removed: Vec<u64>,
    stats: EventSourceStats,
}

impl EventSource {
    pub fn new(client: ImiloClient) -> Self {
        Self {
            client,
            in_flight: HashSet::new(),
            removed: Vec::new(),
            stats: EventSourceStats::default(),
        }
    }

    pub fn stats(&self) -> EventSourceStats {
        self.stats
    }

    /// Dossier ids deleted or archived in I-MILO since the last call.
    pub fn take_removed(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.removed)
    }
}

#[async_trait]
impl Source for EventSource {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn next_batch(&mut self) -> Result<Vec<SourceItem>, ConnectorError> {
        loop {
            let events = self.client.events().await?;
            let fresh: Vec<_> = events
                .into_iter()
                .filter(|e| !self.in_flight.contains(&e.identifiant))
                .collect();
            if fresh.is_empty() {
                return Ok(Vec::new());
            }
            self.stats.events_seen += fresh.len() as u64;
            // Dossiers to read, in the order of their first event, with their events.
            let mut order: Vec<u64> = Vec::new();
            let mut by_dossier: HashMap<u64, Vec<String>> = HashMap::new();
            let mut settle: Vec<String> = Vec::new();
            for e in fresh {
                match (e.kind.as_str(), e.action.as_str(), e.id_dossier) {
                    ("DOSSIER", "CREATE" | "UPDATE", Some(id)) => {
                        by_dossier
                            .entry(id)
                            .or_insert_with(|| {
                                order.push(id);
                                Vec::new()
                            })
                            .push(e.identifiant);
                    }
                    ("DOSSIER", "DELETE" | "ARCHIVE", Some(id)) => {
                        self.removed.push(id);
                        settle.push(e.identifiant);
                    }
                    _ => settle.push(e.identifiant),
                }
            }
            let client = self.client.clone();
            let fetched: Vec<_> = stream::iter(order.into_iter().map(|id| {
                let client = client.clone();
                async move { (id, client.dossier(id).await) }
            }))
            .buffered(self.client.concurrency())
            .collect()
            .await;
            let mut items = Vec::new();
            // Marked in flight only once the whole batch is read: a failed read
            // returns nothing, so the next call must serve these events again.
            let mut served = Vec::new();
            for (id, result) in fetched {
                let idents = by_dossier.remove(&id).unwrap_or_default();
                match result {
                    Ok(d) => {
                        self.stats.dossiers_read += 1;
                        served.extend(idents.iter().cloned());
                        let token = AckToken(idents.join(","));
                        items.push(dossier_to_jeune(&d).into_item(&id.to_string(), token));
                    }
                    Err(e) if e.kind() == ErrorKind::NotFound => {
                        self.removed.push(id);
                        settle.extend(idents);
                    }
                    // Nothing acked: the API serves these events again next time.
                    Err(e) => return Err(e),
                }
            }
            if !settle.is_empty() {
                self.client
                    .ack_events(settle.iter().map(String::as_str))
                    .await?;
                self.stats.settled += settle.len() as u64;
            }
            self.in_flight.extend(served);
            if !items.is_empty() {
                return Ok(items);
            }
        }
    }

    async fn ack(&mut self, tokens: &[AckToken]) -> Result<(), ConnectorError> {
        let ids: Vec<&str> = tokens
            .iter()
            .flat_map(|t| t.0.split(','))
            .filter(|s| !s.is_empty())
            .collect();
        self.client.ack_events(ids.iter().copied()).await?;
        self.stats.acked += ids.len() as u64;
        for id in ids {
            self.in_flight.remove(id);
        }
        Ok(())
    }
}

/// The full reconciliation: every dossier of the given structures (modified since an
/// instant when given), one listing page per batch.
///
/// A listing has no upstream cursor to advance, so `ack` does nothing; the engine
/// keeps the instant the run started (`started_at`) as the next `modifieDepuis`.
pub struct ReconcileSource {
    client: ImiloClient,
    structures: VecDeque<String>,
    modifie_depuis: Option<String>,
    current: Option<BoxStream<'static, Result<Vec<crate::wire::Dossier>, ConnectorError>>>,
    started_at: chrono::DateTime<chrono::Utc>,
    read: u64,
}

impl std::fmt::Debug for ReconcileSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReconcileSource")
            .field("structures_left", &self.structures.len())
            .field("read", &self.read)
            .finish_non_exhaustive()
    }
}

impl ReconcileSource {
    pub fn new(
        client: ImiloClient,
        structures: Vec<String>,
        modifie_depuis: Option<String>,
    ) -> Self {
        Self {
            client,
            structures: structures.into(),
            modifie_depuis,
            current: None,
            started_at: chrono::Utc::now(),
            read: 0,
        }
    }

    /// When this run started: the `modifieDepuis` of the next one.
    pub fn started_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.started_at
    }

    /// Dossiers read so far.
    pub fn read(&self) -> u64 {
        self.read
    }
}

#[async_trait]
impl Source for ReconcileSource {
    async fn next_batch(&mut self) -> Result<Vec<SourceItem>, ConnectorError> {
        loop {
            if self.current.is_none() {
                let Some(code) = self.structures.pop_front() else {
                    return Ok(Vec::new());
                };
                self.current = Some(
                    self.client
                        .structure_dossiers(code, self.modifie_depuis.clone()),
                );
            }
            let Some(stream) = self.current.as_mut() else {
                continue;
            };
            match stream.next().await {
                None => self.current = None,
                Some(Err(e)) => {
                    self.current = None;
                    return Err(e);
                }
                Some(Ok(dossiers)) => {
                    if dossiers.is_empty() {
                        continue;
                    }
                    self.read += dossiers.len() as u64;
                    return Ok(dossiers
                        .iter()
                        .map(|d| {
                            let id = d.id_dossier.to_string();
                            let token = AckToken(format!("dossier:{id}"));
                            dossier_to_jeune(d).into_item(&id, token)
                        })
                        .collect());
                }
            }
        }
    }

    async fn ack(&mut self, _tokens: &[AckToken]) -> Result<(), ConnectorError> {
        Ok(())
    }
}
