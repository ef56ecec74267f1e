//! The simulator's mutable state: only what changed since start (touched or deleted
//! dossiers, dossiers opened by accepted orientations, acked events, writes), faults,
//! rate-limit buckets and counters.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Instant;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::population::Population;
use super::{Faults, SimConfig, SimKeys, SimStats};
use crate::key::Family;
use crate::wire::{Dossier, EvenementResponse, Event, OrientationRequest, OrientationResponse};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Debug, Clone, Copy)]
struct Mutation {
    version: u32,
    modified: DateTime<Utc>,
    deleted: bool,
}

/// The event queue: one initial `DOSSIER/CREATE` per dossier (a bit set of acked
/// ones, and a cursor past the acked prefix), then the events queued since.
#[derive(Debug)]
struct EventQueue {
    acked_initial: Vec<u64>,
    cursor: u64,
    extra: BTreeMap<u64, Event>,
    next_seq: u64,
    initial_acked: u64,
}

const INITIAL: u32 = 0;
const QUEUED: u32 = 1;

fn event_id(kind: u32, n: u64) -> String {
    format!("{kind:08x}{n:016x}")
}

fn parse_event_id(s: &str) -> Option<(u32, u64)> {
    if s.len() != 24 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((
        u32::from_str_radix(&s[..8], 16).ok()?,
        u64::from_str_radix(&s[8..], 16).ok()?,
    ))
}

fn epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

impl EventQueue {
    fn is_acked(&self, id: u64) -> bool {
        let i = (id - 1) as usize;
        self.acked_initial[i / 64] & (1 << (i % 64)) != 0
    }

    fn set_acked(&mut self, id: u64) -> bool {
        let i = (id - 1) as usize;
        let was = self.acked_initial[i / 64] & (1 << (i % 64)) != 0;
        self.acked_initial[i / 64] |= 1 << (i % 64);
        !was
    }
}

/// A stored write: its answer, replayed on the same `referenceExterne`.
#[derive(Debug, Default)]
struct Writes {
    orientations: HashMap<String, OrientationResponse>,
    evenements: HashMap<String, EvenementResponse>,
    situations: HashMap<String, ()>,
    counter: u64,
}

/// A dossier opened by an accepted orientation.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Opened {
    structure: usize,
    dossier: Dossier,
    modified: DateTime<Utc>,
}

/// The dossiers opened by orientations: ids `N+1, N+2…` in order of acceptance, so
/// the same requests in the same order give the same ids.
#[derive(Debug, Default)]
struct OpenedDossiers {
    by_id: BTreeMap<u64, Opened>,
    /// Ids per structure, ascending.
    by_structure: HashMap<usize, Vec<u64>>,
}

/// What `save`/`restore` keep across restarts: the writes (so that replays stay
/// idempotent) and the opened dossiers with their modification dates (so that a
/// `modifieDepuis` listing after a restart still finds them).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedState {
    seed: u64,
    jeunes: u64,
    counter: u64,
    orientations: HashMap<String, OrientationResponse>,
    evenements: HashMap<String, EvenementResponse>,
    situations: Vec<String>,
    opened: Vec<(u64, Opened)>,
}

/// Token buckets per family, for `rate_limit_per_s`.
#[derive(Debug)]
struct Limiter {
    rate: f64,
    buckets: [(f64, Instant); 4],
}

/// Why a key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCheck {
    Ok,
    Unauthorized,
    Forbidden,
}

/// The outcome of a write.
#[derive(Debug)]
pub enum WriteResult<T> {
    Created(T),
    Replayed(T),
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct SimState {
    pub(crate) pop: Population,
    keys: SimKeys,
    mutations: RwLock<HashMap<u64, Mutation>>,
    deleted: std::sync::atomic::AtomicU64,
    events: Mutex<EventQueue>,
    writes: Mutex<Writes>,
    opened: RwLock<OpenedDossiers>,
    open_dossiers: AtomicBool,
    faults: RwLock<Faults>,
    limiter: Mutex<Option<Limiter>>,
    stats: Mutex<SimStats>,
}

impl SimState {
    pub fn new(config: &SimConfig) -> Self {
        let n = config.jeunes;
        let state = Self {
            pop: Population::new(config.seed, n),
            keys: config.keys.clone(),
            mutations: RwLock::new(HashMap::new()),
            deleted: std::sync::atomic::AtomicU64::new(0),
            events: Mutex::new(EventQueue {
                acked_initial: vec![0; n.div_ceil(64) as usize],
                cursor: 1,
                extra: BTreeMap::new(),
                next_seq: 0,
                initial_acked: 0,
            }),
            writes: Mutex::new(Writes::default()),
            opened: RwLock::new(OpenedDossiers::default()),
            open_dossiers: AtomicBool::new(true),
            faults: RwLock::new(Faults::default()),
            limiter: Mutex::new(None),
            stats: Mutex::new(SimStats::default()),
        };
        // Validated by `spawn`.
        let _ = state.set_faults(config.faults.clone());
        state
    }

    pub fn population(&self) -> &Population {
        &self.pop
    }

    /// Whether an accepted orientation opens a dossier (on by default). Off, the
    /// simulator only stores prescriptions and answers `idDossier: null`.
    pub fn set_orientation_dossiers(&self, on: bool) {
        self.open_dossiers.store(on, Ordering::Relaxed);
    }

    pub fn orientation_dossiers(&self) -> bool {
        self.open_dossiers.load(Ordering::Relaxed)
    }

    fn opened(&self) -> std::sync::RwLockReadGuard<'_, OpenedDossiers> {
        self.opened.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Generated or opened by an orientation (deleted ones included).
    pub fn exists(&self, id: u64) -> bool {
        self.pop.contains(id) || self.opened().by_id.contains_key(&id)
    }

    /// The dossiers of structure `s`, generated and opened, deleted ones included.
    pub fn count_in(&self, s: usize) -> u64 {
        self.pop.count_in(s)
            + self
                .opened()
                .by_structure
                .get(&s)
                .map_or(0, |v| v.len() as u64)
    }

    pub fn stats(&self) -> SimStats {
        let mut s = lock(&self.stats).clone();
        let q = lock(&self.events);
        s.events_pending = self.pop.len() - q.initial_acked + q.extra.len() as u64;
        s
    }

    pub(crate) fn with_stats(&self, f: impl FnOnce(&mut SimStats)) {
        f(&mut lock(&self.stats));
    }

    pub fn faults(&self) -> Faults {
        self.faults
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_faults(&self, faults: Faults) -> Result<(), String> {
        faults.validate()?;
        *lock(&self.limiter) = faults.rate_limit_per_s.map(|rate| Limiter {
            rate,
            buckets: [(rate, Instant::now()); 4],
        });
        *self.faults.write().unwrap_or_else(|p| p.into_inner()) = faults;
        Ok(())
    }

    pub fn check_key(&self, family: Family, key: Option<&str>) -> KeyCheck {
        match key.and_then(|k| self.keys.family_of(k)) {
            None => KeyCheck::Unauthorized,
            Some(f) if f != family => KeyCheck::Forbidden,
            Some(_) => KeyCheck::Ok,
        }
    }

    /// Takes a token from the family's bucket (capacity: one second of requests).
    pub fn rate_limit_ok(&self, family: Family) -> bool {
        let mut guard = lock(&self.limiter);
        let Some(l) = guard.as_mut() else { return true };
        let rate = l.rate;
        let (tokens, last) = &mut l.buckets[family.index()];
        let now = Instant::now();
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(rate.max(1.0));
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn mutation(&self, id: u64) -> Option<Mutation> {
        self.mutations
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .copied()
    }

    /// The dossier as served now, `None` when unknown or deleted.
    pub fn dossier(&self, id: u64) -> Option<Dossier> {
        let m = self.mutation(id);
        if m.is_some_and(|m| m.deleted) {
            return None;
        }
        if self.pop.contains(id) {
            return Some(self.pop.dossier(id, m.map_or(0, |m| m.version)));
        }
        // An opened dossier keeps what the prescription said; a touch only moves its
        // modification date.
        self.opened().by_id.get(&id).map(|o| o.dossier.clone())
    }

    fn modified(&self, id: u64, m: Option<Mutation>, opened: &OpenedDossiers) -> DateTime<Utc> {
        m.map_or_else(
            || match opened.by_id.get(&id) {
                Some(o) => o.modified,
                None => self.pop.base_modified(id),
            },
            |m| m.modified,
        )
    }

    /// The ids of a structure's listing (after `since` when given), or `None` when
    /// the whole structure is listed and the page can be computed directly.
    pub fn listing(&self, s: usize, since: Option<DateTime<Utc>>) -> Option<Vec<u64>> {
        let any_deleted = self.deleted.load(Ordering::Relaxed) > 0;
        let opened = self.opened();
        let opened_here: &[u64] = opened.by_structure.get(&s).map_or(&[], |v| v);
        if since.is_none() && !any_deleted && opened_here.is_empty() {
            return None;
        }
        let muts = self.mutations.read().unwrap_or_else(|p| p.into_inner());
        Some(
            (0..self.pop.count_in(s))
                .map(|i| self.pop.id_at(s, i))
                .chain(opened_here.iter().copied())
                .filter(|id| {
                    let m = muts.get(id).copied();
                    !m.is_some_and(|m| m.deleted)
                        && since.is_none_or(|t| self.modified(*id, m, &opened) >= t)
                })
                .collect(),
        )
    }

    /// Up to `max` unacknowledged events, oldest first.
    pub fn pending_events(&self, max: usize) -> Vec<Event> {
        let mut q = lock(&self.events);
        let n = self.pop.len();
        while q.cursor <= n && q.is_acked(q.cursor) {
            q.cursor += 1;
        }
        let mut out = Vec::new();
        let mut id = q.cursor;
        while id <= n && out.len() < max {
            if !q.is_acked(id) {
                out.push(Event {
                    identifiant: event_id(INITIAL, id),
                    id_dossier: Some(id),
                    kind: "DOSSIER".into(),
                    action: "CREATE".into(),
                    id_type: Some(id.to_string()),
                    date: Some(
                        (epoch() + Duration::seconds(id as i64))
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    ),
                });
            }
            id += 1;
        }
        out.extend(q.extra.values().take(max - out.len()).cloned());
        drop(q);
        self.with_stats(|s| s.events_served += out.len() as u64);
        out
    }

    /// Acks an event; acking twice is fine (a retried ack). `false` when unknown.
    pub fn ack(&self, identifiant: &str) -> bool {
        let Some((kind, n)) = parse_event_id(identifiant) else {
            return false;
        };
        let mut q = lock(&self.events);
        let newly = match kind {
            INITIAL if self.pop.contains(n) => {
                let newly = q.set_acked(n);
                q.initial_acked += u64::from(newly);
                newly
            }
            QUEUED if n < q.next_seq => q.extra.remove(&n).is_some(),
            _ => return false,
        };
        if newly {
            drop(q);
            self.with_stats(|s| s.events_acked += 1);
        }
        true
    }

    /// Changes a dossier (or deletes/archives it) and queues its event.
    pub fn touch(&self, id: u64, kind: &str, action: &str) -> Option<String> {
        if !self.exists(id) {
            return None;
        }
        if kind == "DOSSIER" {
            let mut muts = self.mutations.write().unwrap_or_else(|p| p.into_inner());
            let m = muts.entry(id).or_insert(Mutation {
                version: 0,
                modified: Utc::now(),
                deleted: false,
            });
            m.modified = Utc::now();
            match action {
                "DELETE" | "ARCHIVE" => {
                    if !m.deleted {
                        m.deleted = true;
                        self.deleted.fetch_add(1, Ordering::Relaxed);
                    }
                }
                _ => m.version += 1,
            }
        }
        Some(self.queue_event(id, kind, action))
    }

    /// Queues an event after the initial ones; returns its identifiant.
    fn queue_event(&self, id: u64, kind: &str, action: &str) -> String {
        let mut q = lock(&self.events);
        let seq = q.next_seq;
        q.next_seq += 1;
        let identifiant = event_id(QUEUED, seq);
        q.extra.insert(
            seq,
            Event {
                identifiant: identifiant.clone(),
                id_dossier: Some(id),
                kind: kind.to_owned(),
                action: action.to_owned(),
                id_type: Some(id.to_string()),
                date: Some(Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            },
        );
        identifiant
    }

    pub fn knows_structure(&self, code: &str) -> bool {
        self.pop.structure_index(code).is_some()
    }

    /// The `referenceExterne` of every write stored (prescriptions, événements,
    /// situations): what the conformance suite sees of the peer.
    pub fn written_references(&self) -> Vec<String> {
        let w = lock(&self.writes);
        w.orientations
            .keys()
            .chain(w.evenements.keys())
            .chain(w.situations.keys())
            .cloned()
            .collect()
    }

    /// Stores a prescription, once per `referenceExterne`. A new one (not a replay)
    /// to a known structure also opens a dossier there, when that is on, and queues
    /// its `DOSSIER`/`CREATE` event: the Mission Locale took the young person in.
    pub fn write_orientation(&self, req: &OrientationRequest) -> WriteResult<OrientationResponse> {
        let mut w = lock(&self.writes);
        if let Some(r) = w.orientations.get(&req.reference_externe) {
            let r = r.clone();
            drop(w);
            self.with_stats(|s| s.replays += 1);
            return WriteResult::Replayed(r);
        }
        w.counter += 1;
        let structure = self.pop.structure_index(&req.code_structure);
        // Opened under the writes lock, so that a concurrent replay of the same
        // reference can only see the answer that carries the dossier.
        let id_dossier = structure
            .filter(|_| self.orientation_dossiers())
            .map(|s| self.open_dossier(s, req));
        let r = OrientationResponse {
            id_prescription: format!("PRE-{:08}", w.counter),
            id_dossier,
        };
        w.orientations
            .insert(req.reference_externe.clone(), r.clone());
        drop(w);
        self.with_stats(|s| s.writes.orientations += 1);
        if let Some(id) = id_dossier {
            let _ = self.queue_event(id, "DOSSIER", "CREATE");
        }
        WriteResult::Created(r)
    }

    fn open_dossier(&self, s: usize, req: &OrientationRequest) -> u64 {
        let now = Utc::now();
        let mut opened = self.opened.write().unwrap_or_else(|p| p.into_inner());
        let id = self.pop.len() + opened.by_id.len() as u64 + 1;
        let dossier = self
            .pop
            .dossier_from_orientation(id, s, req, now.date_naive());
        opened.by_id.insert(
            id,
            Opened {
                structure: s,
                dossier,
                modified: now,
            },
        );
        opened.by_structure.entry(s).or_default().push(id);
        id
    }

    pub fn write_evenement(&self, reference: &str) -> WriteResult<EvenementResponse> {
        let mut w = lock(&self.writes);
        if let Some(r) = w.evenements.get(reference) {
            let r = r.clone();
            drop(w);
            self.with_stats(|s| s.replays += 1);
            return WriteResult::Replayed(r);
        }
        w.counter += 1;
        let r = EvenementResponse {
            id_evenement: Some(format!("EVT-{:08}", w.counter)),
        };
        w.evenements.insert(reference.to_owned(), r.clone());
        drop(w);
        self.with_stats(|s| s.writes.evenements += 1);
        WriteResult::Created(r)
    }

    /// A situation write; idempotent when it carries a `referenceExterne`.
    pub fn write_situation(&self, id: u64, reference: Option<&str>) -> WriteResult<()> {
        if let Some(reference) = reference {
            let mut w = lock(&self.writes);
            if w.situations.contains_key(reference) {
                drop(w);
                self.with_stats(|s| s.replays += 1);
                return WriteResult::Replayed(());
            }
            w.situations.insert(reference.to_owned(), ());
        }
        self.with_stats(|s| s.writes.situations += 1);
        // The dossier changed: it shows a new version and queues an UPDATE.
        let _ = self.touch(id, "DOSSIER", "UPDATE");
        WriteResult::Created(())
    }

    /// Writes the writes and opened dossiers to `path` (JSON, replaced atomically),
    /// so that a simulator started again on the same seed and size can `restore`
    /// them: the demo's second night then finds the dossiers its first night opened.
    pub fn save(&self, path: &std::path::Path) -> std::io::Result<()> {
        let saved = {
            let w = lock(&self.writes);
            let opened = self.opened();
            SavedState {
                seed: self.pop.seed(),
                jeunes: self.pop.len(),
                counter: w.counter,
                orientations: w.orientations.clone(),
                evenements: w.evenements.clone(),
                situations: w.situations.keys().cloned().collect(),
                opened: opened
                    .by_id
                    .iter()
                    .map(|(id, o)| (*id, o.clone()))
                    .collect(),
            }
        };
        let text = serde_json::to_vec(&saved).map_err(std::io::Error::other)?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, path)
    }

    /// Restores what `save` wrote, before any write is received; a missing file is
    /// a first start (`Ok(false)`). A file of another seed or size is refused: its
    /// ids would clash with the generated ones.
    pub fn restore(&self, path: &std::path::Path) -> std::io::Result<bool> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
        let saved: SavedState = serde_json::from_slice(&text).map_err(|e| {
            invalid(format!(
                "simulator state file line {}: not a saved state",
                e.line()
            ))
        })?;
        if (saved.seed, saved.jeunes) != (self.pop.seed(), self.pop.len()) {
            return Err(invalid(format!(
                "simulator state file was saved for seed {} and {} dossiers, not seed {} and {}",
                saved.seed,
                saved.jeunes,
                self.pop.seed(),
                self.pop.len()
            )));
        }
        let k = self.pop.structures().len();
        if saved
            .opened
            .iter()
            .any(|(id, o)| *id <= self.pop.len() || o.structure >= k)
        {
            return Err(invalid(
                "simulator state file: an opened dossier has a generated id or an unknown structure"
                    .into(),
            ));
        }
        let mut w = lock(&self.writes);
        let mut opened = self.opened.write().unwrap_or_else(|p| p.into_inner());
        w.counter = saved.counter;
        w.orientations = saved.orientations;
        w.evenements = saved.evenements;
        w.situations = saved.situations.into_iter().map(|r| (r, ())).collect();
        *opened = OpenedDossiers::default();
        let mut list = saved.opened;
        list.sort_by_key(|(id, _)| *id);
        for (id, o) in list {
            opened.by_structure.entry(o.structure).or_default().push(id);
            opened.by_id.insert(id, o);
        }
        Ok(true)
    }
}
