//! Handing FAJ decisions on exactly once, whether they come by webhook or by the
//! nightly reconciliation: `DecisionHandler` (the engine's side), `SeenStore` (which
//! events and decisions are done) and `DecisionIntake`, which ties them.
//!
//! Two keys guard a hand-on: the webhook's `evenement_id` (a repeated event is already
//! done) and the decision itself, `id_demande` + `statut` (a decision reconciled
//! before its late webhook arrives, or the reverse, is handed on once). A key is
//! reserved before the hand-on and marked done only after the handler succeeded;
//! on failure it is released so that the platform's retry or the next reconciliation
//! hands it on. Delivery is therefore at least once if marking done fails after the
//! handler succeeded; the engine's router is idempotent on the decision key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use passerelle_connector::ConnectorError;
use passerelle_model::{
    Date, Faj, FajStatut, ImiloDossier, Jeune, RecordId, Source, SourceSystem, StructureCode,
};
use serde::Serialize;
use tracing::{debug, warn};

use crate::client::FajClient;
use crate::mapping::{
    AideBody, DemandePlateforme, MappingError, PlatformDecision, faj_from_platform,
};

/// How a decision reached the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionVia {
    Webhook,
    Reconciliation,
}

/// One decision (or status change) of the platform about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub id_demande: String,
    pub statut: FajStatut,
    /// Date, amount granted for the whole request (cents) and motif.
    pub decision: PlatformDecision,
    /// The webhook's event id (none when found by reconciliation).
    pub evenement_id: Option<String>,
    pub horodatage: Option<DateTime<Utc>>,
    /// Known when read from the platform (reconciliation); a webhook does not carry them.
    pub date_depot: Option<Date>,
    pub aides: Vec<AideBody>,
    pub via: DecisionVia,
    /// The structure that filed the request (`instructeur.code_structure`): the
    /// Mission Locale the decision goes back to. Read from the platform's copy of the
    /// request; a webhook does not carry it (see `fill_origin`).
    pub instructeur: Option<StructureCode>,
    /// The I-MILO dossier the request was filed for (`jeune.imilo_id_dossier`), where
    /// the `FAJ_DECISION` événement lands. Same source as `instructeur`.
    pub imilo_dossier: Option<ImiloDossier>,
}

impl Decision {
    /// The key that makes a decision unique: `decision:{id_demande}:{statut}`.
    pub fn key(&self) -> String {
        format!("decision:{}:{}", self.id_demande, self.statut.as_str())
    }

    /// The Mission Locale (structure code) the decision must go to under flow
    /// `faj-decision`; `None` until the origin is known (`fill_origin`).
    pub fn route(&self) -> Option<&str> {
        self.instructeur.as_ref().map(StructureCode::as_str)
    }

    /// Whether the ML or the I-MILO dossier is still unknown.
    pub fn needs_origin(&self) -> bool {
        self.instructeur.is_none() || self.imilo_dossier.is_none()
    }

    /// Takes the ML and the I-MILO dossier from the platform's copy of the request.
    /// A value that does not parse is left out (and logged by field, not by value).
    pub fn set_origin(&mut self, d: &DemandePlateforme) {
        if let Some(code) = d
            .instructeur
            .as_ref()
            .and_then(|i| i.code_structure.as_deref())
        {
            match StructureCode::parse(code) {
                Ok(c) => self.instructeur = Some(c),
                Err(_) => {
                    warn!(id_demande = %self.id_demande, "instructeur.code_structure is not a structure code")
                }
            }
        }
        if let Some(id) = d.jeune.as_ref().and_then(|j| j.imilo_id_dossier.as_deref()) {
            match ImiloDossier::parse(id) {
                Ok(v) => self.imilo_dossier = Some(v),
                Err(_) => {
                    warn!(id_demande = %self.id_demande, "jeune.imilo_id_dossier is not a dossier number")
                }
            }
        }
    }

    /// Reads the request back from the platform (`GET /api/v1/demandes/{id}`) to learn
    /// the ML and the I-MILO dossier, which a webhook does not carry. No call when
    /// both are known.
    pub async fn fill_origin(&mut self, client: &FajClient) -> Result<(), ConnectorError> {
        if !self.needs_origin() {
            return Ok(());
        }
        let d = client.get_demande(&self.id_demande).await?;
        self.set_origin(&d);
        if self.date_depot.is_none() {
            self.date_depot = d.date_depot;
        }
        if self.aides.is_empty() {
            self.aides = d.aides;
        }
        Ok(())
    }

    /// The canonical `faj[]` entry of this decision.
    pub fn to_faj(&self) -> Result<Faj, MappingError> {
        faj_from_platform(
            &self.id_demande,
            self.statut,
            self.date_depot,
            &self.aides,
            Some(&self.decision),
        )
    }

    /// A canonical record carrying this decision, sourced from the platform
    /// (`platform` is its id in `sources[].organisation`, `record_id` the request id)
    /// with `identifiants.imilo_dossier` when known.
    pub fn to_record(&self, platform: &str) -> Result<Jeune, MappingError> {
        let record_id = RecordId::parse(&self.id_demande).map_err(|_| MappingError {
            champ: "id_demande".into(),
            reason: "not a usable record id".into(),
        })?;
        let mut j = Jeune::from_source(Source {
            system: SourceSystem::Faj,
            organisation: platform.to_owned(),
            record_id,
        });
        // The dossier lets the I-MILO sink post the événement; it is in the flow's
        // allowed paths. The ML is not a record field: the engine routes by `route()`.
        j.identifiants.imilo_dossier = self.imilo_dossier.clone();
        j.faj.push(self.to_faj()?);
        Ok(j)
    }
}

/// Whether a status is a commission's decision (what reconciliation hands on).
pub fn is_decided(s: FajStatut) -> bool {
    matches!(
        s,
        FajStatut::Accordee | FajStatut::Refusee | FajStatut::Ajournee | FajStatut::Payee
    )
}

/// The error a handler returns; its text is not logged (it may come from anywhere).
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// The engine's side: takes a decision and makes it safe (publishes it to the router).
/// Must return only once the decision is safely handed on.
#[async_trait]
pub trait DecisionHandler: Send + Sync {
    async fn handle(&self, decision: Decision) -> Result<(), HandlerError>;
}

/// What reserving a key found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// Not seen: the caller now holds it and must `complete` or `release` it.
    Fresh,
    /// Already handed on.
    Done,
    /// Someone else holds it right now.
    InFlight,
}

/// The seen-store failed (a durable one lost its database, say).
#[derive(Debug, thiserror::Error)]
#[error("seen store failed: {0}")]
pub struct SeenStoreError(pub String);

/// Which event ids and decision keys are done. A durable implementation keeps `Done`
/// keys durably and reservations in memory only, so that a crash never leaves a key
/// held.
#[async_trait]
pub trait SeenStore: Send + Sync {
    async fn reserve(&self, key: &str) -> Result<Reservation, SeenStoreError>;
    async fn complete(&self, key: &str) -> Result<(), SeenStoreError>;
    async fn release(&self, key: &str) -> Result<(), SeenStoreError>;
}

/// An in-memory `SeenStore` (tests, the simulator, one-process demos).
#[derive(Debug, Default)]
pub struct MemorySeenStore {
    /// key → done (false: reserved, in flight).
    keys: Mutex<HashMap<String, bool>>,
}

impl MemorySeenStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many keys are done.
    pub fn done_count(&self) -> usize {
        self.lock().values().filter(|d| **d).count()
    }

    pub fn is_done(&self, key: &str) -> bool {
        self.lock().get(key).copied().unwrap_or(false)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, bool>> {
        // A panic while holding this lock cannot leave the map half-written.
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl SeenStore for MemorySeenStore {
    async fn reserve(&self, key: &str) -> Result<Reservation, SeenStoreError> {
        let mut keys = self.lock();
        Ok(match keys.get(key) {
            Some(true) => Reservation::Done,
            Some(false) => Reservation::InFlight,
            None => {
                keys.insert(key.to_owned(), false);
                Reservation::Fresh
            }
        })
    }

    async fn complete(&self, key: &str) -> Result<(), SeenStoreError> {
        self.lock().insert(key.to_owned(), true);
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), SeenStoreError> {
        let mut keys = self.lock();
        if keys.get(key) == Some(&false) {
            keys.remove(key);
        }
        Ok(())
    }
}

/// What happened to one decision offered to the intake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HandOnOutcome {
    /// Handed on now.
    HandedOn,
    /// Already handed on before (repeated event, or decision already known).
    AlreadyDone,
    /// Being handed on by another delivery right now: try again later.
    Busy,
    /// The handler failed: try again later.
    Failed,
}

/// Ties a handler and a seen-store; shared by the webhook receiver and reconciliation.
#[derive(Clone)]
pub struct DecisionIntake {
    handler: Arc<dyn DecisionHandler>,
    seen: Arc<dyn SeenStore>,
    /// Reads the request back when a decision lacks its ML or dossier (webhooks).
    origin: Option<FajClient>,
}

impl std::fmt::Debug for DecisionIntake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionIntake").finish_non_exhaustive()
    }
}

impl DecisionIntake {
    pub fn new(handler: Arc<dyn DecisionHandler>, seen: Arc<dyn SeenStore>) -> Self {
        Self {
            handler,
            seen,
            origin: None,
        }
    }

    /// Before handing a decision on, completes its ML and I-MILO dossier from the
    /// platform when they are missing (`Decision::fill_origin`); if that read fails,
    /// the decision is released like a handler failure (the platform retries the
    /// webhook, reconciliation finds it again).
    pub fn with_origin_lookup(mut self, client: FajClient) -> Self {
        self.origin = Some(client);
        self
    }

    /// Hands a decision on unless its event or the decision itself is already done.
    pub async fn hand_on(&self, decision: Decision) -> Result<HandOnOutcome, SeenStoreError> {
        let seen = &self.seen;
        let event_key = decision
            .evenement_id
            .as_ref()
            .map(|e| format!("evenement:{e}"));
        if let Some(k) = &event_key {
            match seen.reserve(k).await? {
                Reservation::Fresh => {}
                Reservation::Done => return Ok(HandOnOutcome::AlreadyDone),
                Reservation::InFlight => return Ok(HandOnOutcome::Busy),
            }
        }
        let decision_key = decision.key();
        let reserved = seen.reserve(&decision_key).await;
        let early = match reserved {
            Err(e) => Some(Err(e)),
            Ok(Reservation::Fresh) => None,
            Ok(Reservation::Done) => Some(Ok(HandOnOutcome::AlreadyDone)),
            Ok(Reservation::InFlight) => Some(Ok(HandOnOutcome::Busy)),
        };
        if let Some(result) = early {
            if let Some(k) = &event_key {
                // A repeat of a decision already done: its event is done too.
                if matches!(result, Ok(HandOnOutcome::AlreadyDone)) {
                    seen.complete(k).await?;
                } else {
                    seen.release(k).await?;
                }
            }
            return result;
        }
        let id = decision.id_demande.clone();
        let via = decision.via;
        let mut decision = decision;
        let ready = match &self.origin {
            Some(client) => decision.fill_origin(client).await.map_err(|e| {
                warn!(id_demande = %id, kind = ?e.kind(), "the request could not be read back for its origin");
            }),
            None => Ok(()),
        };
        let handled = match ready {
            Ok(()) => self.handler.handle(decision).await.map_err(drop),
            Err(()) => Err(()),
        };
        match handled {
            Ok(()) => {
                seen.complete(&decision_key).await?;
                if let Some(k) = &event_key {
                    seen.complete(k).await?;
                }
                debug!(id_demande = %id, ?via, "decision handed on");
                Ok(HandOnOutcome::HandedOn)
            }
            Err(_) => {
                warn!(id_demande = %id, ?via, "the decision handler failed; released for a retry");
                seen.release(&decision_key).await?;
                if let Some(k) = &event_key {
                    seen.release(k).await?;
                }
                Ok(HandOnOutcome::Failed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    #[derive(Default)]
    struct Counting {
        calls: AtomicUsize,
        fail: AtomicBool,
    }

    #[async_trait]
    impl DecisionHandler for Counting {
        async fn handle(&self, _d: Decision) -> Result<(), HandlerError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.fail.load(Ordering::SeqCst) {
                Err("router down".into())
            } else {
                Ok(())
            }
        }
    }

    fn decision(evt: Option<&str>, via: DecisionVia) -> Decision {
        Decision {
            id_demande: "FAJ-059-2026-000001".into(),
            statut: FajStatut::Accordee,
            decision: PlatformDecision::default(),
            evenement_id: evt.map(str::to_owned),
            horodatage: None,
            date_depot: None,
            aides: vec![],
            via,
            instructeur: None,
            imilo_dossier: None,
        }
    }

    #[test]
    fn origin_is_taken_only_when_it_parses() {
        let read = |code: &str, dossier: &str| -> DemandePlateforme {
            serde_json::from_value(serde_json::json!({
                "id_demande": "FAJ-1", "statut": "ACCORDEE",
                "instructeur": {"type": "ML", "code_structure": code, "conseiller": "Claire Durand"},
                "jeune": {"nom": "Martin", "imilo_id_dossier": dossier}
            }))
            .unwrap()
        };
        let mut d = decision(None, DecisionVia::Reconciliation);
        d.set_origin(&read("ML de Lille", "62a"));
        assert_eq!(d.route(), None);
        assert!(d.imilo_dossier.is_none() && d.needs_origin());
        d.set_origin(&read("59350S00", "6282"));
        assert_eq!(d.route(), Some("59350S00"));
        let j = d.to_record("FAJ059").unwrap();
        assert_eq!(j.identifiants.imilo_dossier.unwrap().as_str(), "6282");
        // Only the routing parts of the filed request are kept.
        let kept = serde_json::to_string(&read("59350S00", "6282")).unwrap();
        assert!(
            !kept.contains("Martin") && !kept.contains("Durand"),
            "{kept}"
        );
    }

    #[tokio::test]
    async fn once_per_event_and_per_decision() {
        let h = Arc::new(Counting::default());
        let seen = Arc::new(MemorySeenStore::new());
        let intake = DecisionIntake::new(h.clone(), seen.clone());

        h.fail.store(true, Ordering::SeqCst);
        let d = decision(Some("e1"), DecisionVia::Webhook);
        assert_eq!(
            intake.hand_on(d.clone()).await.unwrap(),
            HandOnOutcome::Failed
        );
        assert!(!seen.is_done("evenement:e1"), "a failure must be retryable");

        h.fail.store(false, Ordering::SeqCst);
        assert_eq!(
            intake.hand_on(d.clone()).await.unwrap(),
            HandOnOutcome::HandedOn
        );
        assert_eq!(intake.hand_on(d).await.unwrap(), HandOnOutcome::AlreadyDone);
        // Same decision, another event id (a platform re-sending it), then reconciliation.
        let other = decision(Some("e2"), DecisionVia::Webhook);
        assert_eq!(
            intake.hand_on(other).await.unwrap(),
            HandOnOutcome::AlreadyDone
        );
        assert!(seen.is_done("evenement:e2"));
        let rec = decision(None, DecisionVia::Reconciliation);
        assert_eq!(
            intake.hand_on(rec).await.unwrap(),
            HandOnOutcome::AlreadyDone
        );
        assert_eq!(h.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_held_key_is_busy() {
        let seen = MemorySeenStore::new();
        assert_eq!(seen.reserve("k").await.unwrap(), Reservation::Fresh);
        assert_eq!(seen.reserve("k").await.unwrap(), Reservation::InFlight);
        seen.release("k").await.unwrap();
        assert_eq!(seen.reserve("k").await.unwrap(), Reservation::Fresh);
        seen.complete("k").await.unwrap();
        seen.release("k").await.unwrap();
        assert_eq!(seen.reserve("k").await.unwrap(), Reservation::Done);
    }

    #[test]
    fn record_of_a_decision() {
        let mut d = decision(None, DecisionVia::Reconciliation);
        d.decision.montant_accorde = Some(20_000);
        d.aides = vec![AideBody {
            kind: "PERMIS".into(),
            montant_demande: Some(25_000),
            paye_a: None,
        }];
        let j = d.to_record("FAJ059").unwrap();
        assert_eq!(j.sources[0].record_id.as_str(), "FAJ-059-2026-000001");
        assert_eq!(j.faj[0].aides[0].montant_accorde, Some(20_000));
        assert_eq!(j.faj[0].statut, Some(FajStatut::Accordee));
    }
}
