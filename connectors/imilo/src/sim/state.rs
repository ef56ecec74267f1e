//! The simulator's mutable state: only what changed since start (touched or deleted
//! dossiers, acked events, writes), faults, rate-limit buckets and counters.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, RwLock};
use std::time::Instant;

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::population::Population;
use super::{Faults, SimConfig, SimKeys, SimStats};
use crate::key::Family;
use crate::wire::{Dossier, EvenementResponse, Event, OrientationResponse};

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
        if !self.pop.contains(id) {
            return None;
        }
        let m = self.mutation(id);
        if m.is_some_and(|m| m.deleted) {
            return None;
        }
        Some(self.pop.dossier(id, m.map_or(0, |m| m.version)))
    }

    fn modified(&self, id: u64, m: Option<Mutation>) -> DateTime<Utc> {
        m.map_or_else(|| self.pop.base_modified(id), |m| m.modified)
    }

    /// The ids of a structure's listing (after `since` when given), or `None` when
    /// the whole structure is listed and the page can be computed directly.
    pub fn listing(&self, s: usize, since: Option<DateTime<Utc>>) -> Option<Vec<u64>> {
        let any_deleted = self.deleted.load(std::sync::atomic::Ordering::Relaxed) > 0;
        if since.is_none() && !any_deleted {
            return None;
        }
        let muts = self.mutations.read().unwrap_or_else(|p| p.into_inner());
        Some(
            (0..self.pop.count_in(s))
                .map(|i| self.pop.id_at(s, i))
                .filter(|id| {
                    let m = muts.get(id).copied();
                    !m.is_some_and(|m| m.deleted)
                        && since.is_none_or(|t| self.modified(*id, m) >= t)
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
        if !self.pop.contains(id) {
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
                        self.deleted
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                _ => m.version += 1,
            }
        }
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
        Some(identifiant)
    }

    pub fn knows_structure(&self, code: &str) -> bool {
        self.pop.structure_index(code).is_some()
    }

    pub fn write_orientation(&self, reference: &str) -> WriteResult<OrientationResponse> {
        let mut w = lock(&self.writes);
        if let Some(r) = w.orientations.get(reference) {
            let r = r.clone();
            drop(w);
            self.with_stats(|s| s.replays += 1);
            return WriteResult::Replayed(r);
        }
        w.counter += 1;
        let r = OrientationResponse {
            id_prescription: format!("PRE-{:08}", w.counter),
            id_dossier: None,
        };
        w.orientations.insert(reference.to_owned(), r.clone());
        drop(w);
        self.with_stats(|s| s.writes.orientations += 1);
        WriteResult::Created(r)
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
}
