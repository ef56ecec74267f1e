//! The engine: sends records from a source to a recipient under one flow (identity,
//! policy, change detection, seal, confirmed publish, journal, state), and delivers a
//! recipient's queue through its sink (open, re-check, deliver, receipt, journal).
//! One module per path: `send`, `deliver`, `settle` (receipts, now or later), and
//! `journal` (how a step is journaled once).
//!
//! Order matters for crash safety: a transfer is published (confirmed) before it is
//! recorded and journaled, and both happen before its source is acknowledged; its id is
//! derived from its content, so a rerun after a crash republishes the same id and the
//! target's idempotency makes the second delivery a no-op. The journal entry of a step
//! is kept pending in the state store in the transaction that records the step, so a
//! crash between the two is finished at the next start and never journaled twice.

mod deliver;
pub use review::{OpenedReview, Verdict};
mod journal;
mod review;
mod send;
mod sender_ref;
mod settle;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use passerelle_audit::{Event, Journal, NewEntry, Outcome};
use passerelle_crypto::PseudonymKey;
use passerelle_identity::IdentityIndex;
use passerelle_policy::Policy;
use passerelle_transport::{Header, Transport};
use tokio::sync::Mutex;
use uuid::Uuid;

pub use crate::org::{Org, Routed};
pub use crate::report::{DeliverSummary, LateSummary, SendSummary};
pub use deliver::{DELIVER_BATCH, DeliverLimits};
pub use send::{ItemFate, Prepared};
pub use sender_ref::{OpenedRef, RefKind, SenderRef, open_sender_ref, open_sender_ref_full};

use crate::seal::Sealer;
use crate::state::{HubState, Pending};

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
    #[error("connector: {0}")]
    Connector(#[from] passerelle_connector::ConnectorError),
    /// What the caller ran between two phases of a night failed.
    #[error("between the phases of the night: {0}")]
    Interlude(String),
    /// A review's verdict does not fit the review (a person who is not a candidate).
    #[error("identity review: {0}")]
    Review(String),
    /// The night lock or the night's claims (another night running: `is_busy`).
    #[error("{0}")]
    Coord(#[from] crate::state::coord::CoordError),
}

type Result<T> = std::result::Result<T, EngineError>;

/// The engine and what it holds.
pub struct Engine {
    policy: Arc<Policy>,
    state: HubState,
    journal: Journal,
    transport: Arc<dyn Transport>,
    sealer: Arc<dyn Sealer>,
    pseudonyms: PseudonymKey,
    /// Held from a chunk's resolution until its new keys are stored: a person's keys
    /// are in the store before anything about them is published, whichever source
    /// meets them first.
    identity: Mutex<IdentityIndex>,
    declared: Mutex<HashSet<String>>,
    /// Pending journal entries journaled since: dropped by the next state write.
    journaled: std::sync::Mutex<Pending>,
    /// Transfers published by this engine and not recorded yet, with a signal each
    /// time some are: a delivery that meets one waits for its record.
    in_flight: std::sync::Mutex<HashSet<Uuid>>,
    recorded: tokio::sync::Notify,
    /// Per recipient, messages this engine published and deliveries it handled: a
    /// delivery that has not seen what was published waits longer for it (a broker
    /// just restarted is slow to hand out its first messages).
    traffic: std::sync::Mutex<std::collections::HashMap<String, (u64, u64)>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    /// Builds the engine, then journals what a crash left pending.
    pub async fn new(
        policy: Arc<Policy>,
        state: HubState,
        journal: Journal,
        transport: Arc<dyn Transport>,
        sealer: Arc<dyn Sealer>,
        pseudonyms: PseudonymKey,
    ) -> Result<Self> {
        // Nothing is loaded at start: each chunk loads what the store holds about its
        // keys (`HubState::decide_identities`), so the index is a cache of the persons
        // met lately, emptied past `IDENTITY_CACHE_PERSONS`.
        let identity = IdentityIndex::new();
        let engine = Self {
            policy,
            state,
            journal,
            transport,
            sealer,
            pseudonyms,
            identity: Mutex::new(identity),
            declared: Mutex::new(HashSet::new()),
            journaled: std::sync::Mutex::new(Pending::default()),
            in_flight: std::sync::Mutex::new(HashSet::new()),
            recorded: tokio::sync::Notify::new(),
            traffic: std::sync::Mutex::new(std::collections::HashMap::new()),
        };
        engine.recover_journal().await?;
        Ok(engine)
    }

    /// The state store (receipts, counts).
    pub fn state(&self) -> &HubState {
        &self.state
    }

    /// The journal.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// What seals for the organisations (the web pages open senders' references with it).
    pub fn sealer(&self) -> Arc<dyn Sealer> {
        self.sealer.clone()
    }

    /// The flows file.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// How many persons the identity index holds now (a cache: see `Engine::new`).
    pub async fn persons(&self) -> usize {
        self.identity.lock().await.len()
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

    /// The pending entries journaled since the last write, to drop with the next.
    fn take_journaled(&self) -> Pending {
        std::mem::take(&mut *self.journaled.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Remembers pending entries that are now in the journal.
    fn mark_journaled(&self, ids: Pending) {
        self.journaled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .extend(ids.0);
    }

    /// Counts messages published to (`published`) and delivered from (`handled`) a
    /// recipient's queue.
    fn count_traffic(&self, recipient: &str, published: u64, handled: u64) {
        let mut t = self.traffic.lock().unwrap_or_else(|e| e.into_inner());
        let e = t.entry(recipient.to_owned()).or_default();
        e.0 += published;
        e.1 += handled;
    }

    /// Whether this engine has handled as many deliveries from a recipient's queue as
    /// it published to it.
    fn caught_up(&self, recipient: &str) -> bool {
        let t = self.traffic.lock().unwrap_or_else(|e| e.into_inner());
        t.get(recipient).is_none_or(|(p, h)| h >= p)
    }

    /// Marks transfers as being published (not recorded yet).
    fn publishing(&self, ids: impl IntoIterator<Item = Uuid>) {
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(ids);
    }

    /// Marks transfers as recorded (or given up), waking the deliveries waiting.
    fn published(&self, ids: impl IntoIterator<Item = Uuid>) {
        {
            let mut f = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            for id in ids {
                f.remove(&id);
            }
        }
        self.recorded.notify_waiters();
    }

    /// Waits until none of `ids` is being published by this engine.
    async fn wait_recorded(&self, ids: &[Uuid]) {
        loop {
            let notified = self.recorded.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let waiting = {
                let f = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
                ids.iter().any(|id| f.contains(id))
            };
            if !waiting {
                return;
            }
            notified.await;
        }
    }

    /// Drops the pending entries already journaled (at the end of a night).
    pub async fn flush(&self) -> Result<()> {
        let done = self.take_journaled();
        if let Err(e) = self.state.drop_pending(&done).await {
            self.mark_journaled(done);
            return Err(e.into());
        }
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
