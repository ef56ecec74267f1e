//! `SolisSink`: delivers `brsa-suivi` and `of-signalement` records as SOLIS import
//! files, one file per (flux, département, emitter) for a whole batch.
//!
//! A written record's receipt is `Delivered`: SOLIS says later, in its ACK file, whether
//! it applied it (see `SolisAckSource`). The file name holds a stamp to the second, so
//! two batches in the same second would collide: the sink bumps the stamp by a second
//! until the name is free (in memory and on disk, `traites/` included), rather than
//! wait, so a burst of batches never stalls the engine.
//!
//! Idempotent on the transfer id while SOLIS has not answered: a transfer already in
//! an import still waiting in the folder (written in this run or found there at start)
//! is answered `Delivered` again without a second element, so a batch redelivered
//! after a crash does not make SOLIS answer it twice. Once the import is answered and
//! set aside, SOLIS's own idempotency on `referenceExterne` takes over.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{Datelike, NaiveDate, NaiveDateTime, TimeDelta, Timelike};
use passerelle_connector::feed::{DONE_DIR, REFUSED_DIR};
use passerelle_connector::{ConnectorError, Delivery, Receipt, ReceiptStatus, Sink};
use passerelle_model::{CdCode, Departement};

use crate::config::{SolisPeerConfig, existing_dir};
use crate::import::{
    ImportFlux, ack_file_name, elements, import_file_name, read_import_refs, write_elements,
};

/// The clock that stamps import files (Paris time by default: SOLIS reads times
/// without zone as Paris time).
pub type Clock = Arc<dyn Fn() -> NaiveDateTime + Send + Sync>;

/// The last stamp used per (folder, flux, département), for the whole process: names
/// never repeat within a run, even when the files are already gone or when several
/// sinks write into the same folder.
static LAST_STAMPS: Mutex<BTreeMap<(PathBuf, ImportFlux, String), NaiveDateTime>> =
    Mutex::new(BTreeMap::new());

/// What the sink needs, built from `SolisPeerConfig`.
struct Inner {
    import_dir: PathBuf,
    ack_dir: PathBuf,
    clock: Clock,
    /// Transfer ids of each import still waiting in the folder, by file name.
    pending: Mutex<HashMap<String, Vec<String>>>,
}

/// A `Sink` writing SOLIS import files (see the module doc).
#[derive(Clone)]
pub struct SolisSink {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SolisSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SolisSink")
            .field("import_dir", &self.inner.import_dir)
            .finish_non_exhaustive()
    }
}

impl SolisPeerConfig {
    /// Builds the import sink: checks `import_dir` (and `ack_dir`) exist.
    pub fn build_sink(&self) -> Result<SolisSink, ConnectorError> {
        self.validate()?;
        let import_dir = existing_dir("import_dir", self.import_dir.as_deref())?;
        let ack_dir = existing_dir("ack_dir", self.ack_folder())?;
        Ok(SolisSink::new(import_dir, ack_dir))
    }
}

/// Copies an error for every delivery of a group (`ConnectorError` is not `Clone`),
/// keeping its kind.
fn copy_error(e: &ConnectorError) -> ConnectorError {
    use ConnectorError as E;
    match e {
        E::Io { what, source } => E::Io {
            what: what.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        E::Unavailable {
            peer,
            reason,
            retry_after,
        } => E::Unavailable {
            peer: peer.clone(),
            reason: reason.clone(),
            retry_after: *retry_after,
        },
        E::Unauthorized { peer, reason } => E::Unauthorized {
            peer: peer.clone(),
            reason: reason.clone(),
        },
        E::NotFound { peer, what } => E::NotFound {
            peer: peer.clone(),
            what: what.clone(),
        },
        E::Rejected { peer, reason } => E::Rejected {
            peer: peer.clone(),
            reason: reason.clone(),
        },
        E::FileRefused { file, reason } => E::FileRefused {
            file: file.clone(),
            reason: reason.clone(),
        },
        E::Invalid { location, reason } => E::Invalid {
            location: location.clone(),
            reason: reason.clone(),
        },
        E::Protocol { peer, reason } => E::Protocol {
            peer: peer.clone(),
            reason: reason.clone(),
        },
        E::Config(m) => E::Config(m.clone()),
    }
}

/// Local time in Europe/Paris: SOLIS reads times without zone as Paris time, whatever
/// the host's zone. CET, and CEST from the last Sunday of March to the last Sunday of
/// October, 01:00 UTC both (the EU rule).
pub fn paris_from_utc(utc: NaiveDateTime) -> NaiveDateTime {
    let year = utc.year();
    let switch = |month: u32| {
        // March and October both have 31 days.
        let last = NaiveDate::from_ymd_opt(year, month, 31).unwrap_or_default();
        let sunday = last - chrono::Days::new(u64::from(last.weekday().num_days_from_sunday()));
        sunday.and_hms_opt(1, 0, 0).unwrap_or_default()
    };
    let summer = utc >= switch(3) && utc < switch(10);
    utc + TimeDelta::hours(if summer { 2 } else { 1 })
}

/// Now, in Europe/Paris.
pub fn paris_now() -> NaiveDateTime {
    paris_from_utc(chrono::Utc::now().naive_utc())
}

fn departement_of(recipient: &str) -> Result<Departement, ConnectorError> {
    let invalid = || ConnectorError::Invalid {
        location: "delivery.recipient".into(),
        reason: format!("{recipient} is not a département (CDnnn), SOLIS imports need one"),
    };
    let cd = CdCode::parse(recipient).map_err(|_| invalid())?;
    Departement::parse(&cd.as_str()[2..]).map_err(|_| invalid())
}

impl SolisSink {
    /// The flows this sink takes, one import flux each (`ImportFlux::for_flow`).
    pub const FLOWS: &[&str] = &["brsa-suivi", "of-signalement"];

    /// A sink writing into `import_dir`; `ack_dir` is where SOLIS answers (checked so a
    /// new import never takes the name of an answered one).
    pub fn new(import_dir: impl Into<PathBuf>, ack_dir: impl Into<PathBuf>) -> Self {
        Self::with_clock(import_dir, ack_dir, Arc::new(paris_now))
    }

    /// The same with a given clock (tests: many batches in one second).
    pub fn with_clock(
        import_dir: impl Into<PathBuf>,
        ack_dir: impl Into<PathBuf>,
        clock: Clock,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                import_dir: import_dir.into(),
                ack_dir: ack_dir.into(),
                clock,
                pending: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The folder imports are written into.
    pub fn import_dir(&self) -> &Path {
        &self.inner.import_dir
    }

    /// Delivers a batch synchronously (what `deliver_batch` runs on a blocking thread).
    pub fn deliver_batch_blocking(
        &self,
        deliveries: &[Delivery],
    ) -> Vec<Result<Receipt, ConnectorError>> {
        self.inner.deliver(deliveries)
    }
}

impl Inner {
    /// A free stamp for (flux, département): now, or one second after the last used,
    /// bumped further while a file of that name exists.
    fn stamp(&self, flux: ImportFlux, dept: &Departement) -> NaiveDateTime {
        let mut last = LAST_STAMPS.lock().unwrap_or_else(|p| p.into_inner());
        let key = (self.import_dir.clone(), flux, dept.as_str().to_owned());
        let now = (self.clock)()
            .with_nanosecond(0)
            .unwrap_or_else(|| (self.clock)());
        let mut at = match last.get(&key) {
            Some(prev) if *prev >= now => *prev + TimeDelta::seconds(1),
            _ => now,
        };
        while self.taken(&import_file_name(flux, dept, at)) {
            at += TimeDelta::seconds(1);
        }
        last.insert(key, at);
        at
    }

    /// Whether an import of this name exists, or was answered, or set aside.
    fn taken(&self, name: &str) -> bool {
        let ack = ack_file_name(name);
        let imports = &self.import_dir;
        let acks = &self.ack_dir;
        [
            imports.join(name),
            imports.join(DONE_DIR).join(name),
            acks.join(&ack),
            acks.join(DONE_DIR).join(&ack),
            acks.join(REFUSED_DIR).join(&ack),
        ]
        .iter()
        .any(|p| p.exists())
    }

    /// The transfer ids in imports still waiting in the folder: the cache follows the
    /// folder (answered imports leave it; imports found at start are read once).
    fn waiting_transfers(&self) -> Result<HashSet<String>, ConnectorError> {
        let what = || self.import_dir.display().to_string();
        let mut present = HashSet::new();
        for entry in
            std::fs::read_dir(&self.import_dir).map_err(|e| ConnectorError::io(what(), e))?
        {
            let entry = entry.map_err(|e| ConnectorError::io(what(), e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("SOLIS_IMPORT_") && name.ends_with(".xml") {
                present.insert(name);
            }
        }
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.retain(|name, _| present.contains(name));
        for name in present {
            if let std::collections::hash_map::Entry::Vacant(slot) = pending.entry(name) {
                match read_import_refs(&self.import_dir.join(slot.key())) {
                    Ok(refs) => {
                        slot.insert(refs);
                    }
                    // Not ours to judge: SOLIS will answer it; only deduplication is lost.
                    Err(e) => {
                        tracing::warn!(file = %slot.key(), error = %e, "unreadable pending import");
                    }
                }
            }
        }
        Ok(pending.values().flatten().cloned().collect())
    }

    fn deliver(&self, deliveries: &[Delivery]) -> Vec<Result<Receipt, ConnectorError>> {
        let mut out: Vec<Option<Result<Receipt, ConnectorError>>> =
            deliveries.iter().map(|_| None).collect();
        let waiting = match self.waiting_transfers() {
            Ok(w) => w,
            Err(e) => return deliveries.iter().map(|_| Err(copy_error(&e))).collect(),
        };
        // Groups by file: (flux, département, emitter), in first-seen order.
        let mut groups: Vec<((ImportFlux, Departement, String), Vec<usize>)> = Vec::new();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut copies = Vec::new();
        for (i, d) in deliveries.iter().enumerate() {
            if let Some(&first) = seen.get(d.transfer_id.as_str()) {
                // Twice in this batch: the second shares the first's fate.
                copies.push((i, first));
                continue;
            }
            seen.insert(&d.transfer_id, i);
            if waiting.contains(&d.transfer_id) {
                // Already in an import waiting for its answer: once is enough.
                out[i] = Some(Ok(Receipt {
                    transfer_id: d.transfer_id.clone(),
                    status: ReceiptStatus::Delivered,
                }));
                continue;
            }
            let Some(flux) = ImportFlux::for_flow(&d.flow) else {
                out[i] = Some(Err(ConnectorError::Invalid {
                    location: "delivery.flow".into(),
                    reason: format!("flow {} has no SOLIS import", d.flow),
                }));
                continue;
            };
            let dept = match departement_of(&d.recipient) {
                Ok(dept) => dept,
                Err(e) => {
                    out[i] = Some(Err(e));
                    continue;
                }
            };
            let key = (flux, dept, d.sender.clone());
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, members)) => members.push(i),
                None => groups.push((key, vec![i])),
            }
        }
        for ((flux, dept, sender), members) in groups {
            let xml = elements(flux, members.iter().map(|&i| &deliveries[i]));
            let ready: Vec<&str> = xml.iter().filter_map(|x| x.as_deref().ok()).collect();
            let written = if ready.is_empty() {
                // Nothing SOLIS can carry: no empty file.
                Ok(())
            } else {
                // Another process may write into this folder too (a `serve` beside a
                // manual `sync` on another data folder): a name it took between our
                // look and our write is never overwritten, the next stamp is taken.
                let mut tries = 0;
                let (at, path, r) = loop {
                    let at = self.stamp(flux, &dept);
                    let path = self.import_dir.join(import_file_name(flux, &dept, at));
                    let r = write_elements(&path, flux, &dept, &sender, &ready, at);
                    tries += 1;
                    match &r {
                        Err(ConnectorError::Io { source, .. })
                            if source.kind() == std::io::ErrorKind::AlreadyExists && tries < 64 => {
                        }
                        _ => break (at, path, r),
                    }
                };
                if r.is_ok() {
                    let refs = members
                        .iter()
                        .zip(&xml)
                        .filter(|(_, x)| x.is_ok())
                        .map(|(&i, _)| deliveries[i].transfer_id.clone())
                        .collect();
                    let name = import_file_name(flux, &dept, at);
                    self.pending
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(name, refs);
                    tracing::info!(
                        file = %path.display(),
                        elements = ready.len(),
                        "solis import written"
                    );
                }
                r
            };
            for (&i, x) in members.iter().zip(&xml) {
                let transfer_id = deliveries[i].transfer_id.clone();
                out[i] = Some(match (x, &written) {
                    (Err(reason), _) => Ok(Receipt {
                        transfer_id,
                        status: ReceiptStatus::Rejected {
                            reasons: vec![reason.clone()],
                        },
                    }),
                    (Ok(_), Ok(())) => Ok(Receipt {
                        transfer_id,
                        status: ReceiptStatus::Delivered,
                    }),
                    (Ok(_), Err(e)) => Err(copy_error(e)),
                });
            }
        }
        for (i, first) in copies {
            out[i] = match &out[first] {
                Some(Ok(r)) => Some(Ok(r.clone())),
                Some(Err(e)) => Some(Err(copy_error(e))),
                None => None,
            };
        }
        out.into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(ConnectorError::Config(
                        "solis sink left a delivery unanswered".into(),
                    ))
                })
            })
            .collect()
    }
}

#[async_trait]
impl Sink for SolisSink {
    #[tracing::instrument(skip_all, fields(flow = %delivery.flow))]
    async fn deliver(&self, delivery: Delivery) -> Result<Receipt, ConnectorError> {
        let mut out = self.deliver_batch(vec![delivery]).await;
        out.pop().unwrap_or_else(|| {
            Err(ConnectorError::Config(
                "solis sink gave no receipt for a delivery".into(),
            ))
        })
    }

    #[tracing::instrument(skip_all, fields(n = deliveries.len()))]
    async fn deliver_batch(
        &self,
        deliveries: Vec<Delivery>,
    ) -> Vec<Result<Receipt, ConnectorError>> {
        let n = deliveries.len();
        let inner = Arc::clone(&self.inner);
        match tokio::task::spawn_blocking(move || inner.deliver(&deliveries)).await {
            Ok(out) => out,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => (0..n)
                .map(|_| {
                    Err(ConnectorError::Unavailable {
                        peer: "solis".into(),
                        reason: "the runtime is shutting down".into(),
                        retry_after: None,
                    })
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flow_it_takes_has_its_import_flux() {
        for flow in SolisSink::FLOWS {
            assert!(ImportFlux::for_flow(flow).is_some(), "{flow}");
        }
    }

    #[test]
    fn paris_time_follows_eu_summer_time() {
        let utc = |d: &str| NaiveDateTime::parse_from_str(d, "%Y-%m-%d %H:%M").unwrap();
        let paris = |d: &str| paris_from_utc(utc(d)).format("%Y-%m-%d %H:%M").to_string();
        assert_eq!(paris("2026-01-15 12:00"), "2026-01-15 13:00");
        assert_eq!(paris("2026-07-15 12:00"), "2026-07-15 14:00");
        // 2026: summer time from Sunday 29 March to Sunday 25 October, 01:00 UTC.
        assert_eq!(paris("2026-03-29 00:59"), "2026-03-29 01:59");
        assert_eq!(paris("2026-03-29 01:00"), "2026-03-29 03:00");
        assert_eq!(paris("2026-10-25 00:59"), "2026-10-25 02:59");
        assert_eq!(paris("2026-10-25 01:00"), "2026-10-25 02:00");
        assert_eq!(paris("2026-12-31 23:30"), "2027-01-01 00:30");
    }

    #[test]
    fn copied_errors_keep_their_kind() {
        let e = ConnectorError::Invalid {
            location: "delivery.flow".into(),
            reason: "x".into(),
        };
        assert_eq!(copy_error(&e).kind(), e.kind());
        let io = ConnectorError::io("d", std::io::Error::from(std::io::ErrorKind::NotFound));
        assert_eq!(copy_error(&io).kind(), io.kind());
    }

    #[test]
    fn recipients_name_a_departement() {
        assert_eq!(departement_of("CD059").unwrap().as_str(), "059");
        assert_eq!(departement_of("cd2a").unwrap().as_str(), "02A");
        let e = departement_of("59350S00").unwrap_err();
        assert_eq!(e.kind(), passerelle_connector::ErrorKind::InvalidInput);
    }
}
