//! `BoxOfSink`: the engine's `Sink` for flow `of-signalement` (ML → CD) where the CD
//! uses its box. A batch becomes one `JEUNES_OF` file per (CD, ML) pair, written with
//! the completeness protocol into `{ML}/retour/` of the CD's box; each record gets a
//! `Delivered` receipt (the CD answers later, by `OF_SUIVI`), or `Rejected` when the
//! file cannot carry it. Idempotent on the transfer id through a `SentLedger`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::NaiveDateTime;
use passerelle_connector::{ConnectorError, Delivery, Receipt, ReceiptStatus, Sink};
use passerelle_model::{CdCode, StructureCode};
use tracing::{info, instrument};

use crate::folder::BoxFolder;
use crate::of::{Signalement, reference_of, write_jeunes_of};
use crate::protocol::write_complete;
use crate::sent::{SentLedger, SentStage};

/// The flow this sink serves.
pub const FLOW_OF_SIGNALEMENT: &str = "of-signalement";

/// Writes `of-signalement` deliveries as `JEUNES_OF` files into the CDs' boxes.
#[derive(Debug)]
pub struct BoxOfSink {
    /// The box of each CD (`CD059` → its root), and its département (`059`).
    boxes: HashMap<String, (Arc<dyn BoxFolder>, String)>,
    inner: Arc<Mutex<Inner>>,
    clock: fn() -> NaiveDateTime,
}

#[derive(Debug)]
struct Inner {
    sent: SentLedger,
    /// The last file time used per (CD, ML), so that two batches in the same second
    /// never share a name.
    last: HashMap<(String, String), NaiveDateTime>,
}

fn now_utc() -> NaiveDateTime {
    chrono::Utc::now().naive_utc()
}

fn config_error(reason: String) -> ConnectorError {
    ConnectorError::Config(reason)
}

fn poisoned() -> ConnectorError {
    ConnectorError::Protocol {
        peer: "box".to_owned(),
        reason: "the box sink lock was poisoned by an earlier panic".to_owned(),
    }
}

impl BoxOfSink {
    /// A sink remembering what it wrote in `sent` (`SentLedger::open` in production).
    pub fn new(sent: SentLedger) -> Self {
        Self {
            boxes: HashMap::new(),
            inner: Arc::new(Mutex::new(Inner {
                sent,
                last: HashMap::new(),
            })),
            clock: now_utc,
        }
    }

    /// Adds (or replaces) the box of a CD (`CD059`), e.g. from `BoxConfig::folder`.
    pub fn with_box(
        mut self,
        cd: &str,
        folder: Arc<dyn BoxFolder>,
    ) -> Result<Self, ConnectorError> {
        let code =
            CdCode::parse(cd).map_err(|e| config_error(format!("box sink cd {}", e.reason)))?;
        let dept = code.departement().as_str().to_owned();
        self.boxes.insert(code.as_str().to_owned(), (folder, dept));
        Ok(self)
    }

    /// Replaces the clock that names files (tests).
    pub fn with_clock(mut self, clock: fn() -> NaiveDateTime) -> Self {
        self.clock = clock;
        self
    }

    /// The CDs this sink can write to.
    pub fn cds(&self) -> Vec<String> {
        let mut v: Vec<String> = self.boxes.keys().cloned().collect();
        v.sort();
        v
    }
}

fn delivered(transfer_id: &str) -> Receipt {
    Receipt {
        transfer_id: transfer_id.to_owned(),
        status: ReceiptStatus::Delivered,
    }
}

/// One (CD, ML) pair's deliveries, by index in the batch.
struct Group {
    folder: Arc<dyn BoxFolder>,
    dept: String,
    cd: String,
    ml: String,
    members: Vec<usize>,
}

#[async_trait]
impl Sink for BoxOfSink {
    async fn deliver(&self, delivery: Delivery) -> Result<Receipt, ConnectorError> {
        self.deliver_batch(vec![delivery])
            .await
            .pop()
            .unwrap_or_else(|| Err(poisoned()))
    }

    #[instrument(skip_all, fields(n = deliveries.len()))]
    async fn deliver_batch(
        &self,
        deliveries: Vec<Delivery>,
    ) -> Vec<Result<Receipt, ConnectorError>> {
        let mut out: Vec<Option<Result<Receipt, ConnectorError>>> =
            (0..deliveries.len()).map(|_| None).collect();
        let mut groups: Vec<Group> = Vec::new();
        for (i, d) in deliveries.iter().enumerate() {
            if d.flow != FLOW_OF_SIGNALEMENT {
                out[i] = Some(Err(config_error(format!(
                    "the box sink serves flow {FLOW_OF_SIGNALEMENT}, not {}",
                    d.flow
                ))));
                continue;
            }
            let cd = CdCode::parse(&d.recipient).map(|c| c.as_str().to_owned());
            let Some((folder, dept)) = cd.as_ref().ok().and_then(|cd| self.boxes.get(cd)) else {
                out[i] = Some(Err(config_error(format!(
                    "the box sink has no box for recipient {}",
                    d.recipient
                ))));
                continue;
            };
            // The sender's folder in the CD's box: a structure code, never a path.
            let Ok(ml) = StructureCode::parse(&d.sender) else {
                out[i] = Some(Err(ConnectorError::Invalid {
                    location: "delivery.sender".to_owned(),
                    reason: "must be a Mission Locale structure code".to_owned(),
                }));
                continue;
            };
            // A record the file cannot carry is refused alone, by rule, without values.
            let reference = reference_of(&d.transfer_id, &d.record);
            let one = Signalement {
                reference: &reference,
                structure: ml.as_str(),
                record: &d.record,
            };
            if let Err(e) = write_jeunes_of(std::slice::from_ref(&one)) {
                out[i] = Some(Ok(Receipt {
                    transfer_id: d.transfer_id.clone(),
                    status: ReceiptStatus::Rejected {
                        reasons: vec![format!("JEUNES_OF: {}", e.reason)],
                    },
                }));
                continue;
            }
            let cd = cd.unwrap_or_default();
            match groups
                .iter_mut()
                .find(|g| g.cd == cd && g.ml == ml.as_str())
            {
                Some(g) => g.members.push(i),
                None => groups.push(Group {
                    folder: folder.clone(),
                    dept: dept.clone(),
                    cd,
                    ml: ml.as_str().to_owned(),
                    members: vec![i],
                }),
            }
        }

        let deliveries = Arc::new(deliveries);
        for g in groups {
            let members = g.members.clone();
            let inner = self.inner.clone();
            let clock = self.clock;
            let ds = deliveries.clone();
            // Folder operations block (files, sftp processes): keep them off the workers.
            let result = tokio::task::spawn_blocking(move || write_group(&inner, clock, &ds, &g))
                .await
                .map_err(|e| ConnectorError::Protocol {
                    peer: "box".to_owned(),
                    reason: format!("the box writing task failed: {e}"),
                })
                .and_then(|r| r);
            for i in members {
                let tid = &deliveries[i].transfer_id;
                out[i] = Some(match &result {
                    Ok(()) => Ok(delivered(tid)),
                    Err(e) => Err(clone_error(e)),
                });
            }
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err(poisoned())))
            .collect()
    }
}

/// `ConnectorError` is not `Clone` (it holds an `io::Error`): one copy per member,
/// keeping the kind the engine decides on.
fn clone_error(e: &ConnectorError) -> ConnectorError {
    match e {
        ConnectorError::Io { what, source } => ConnectorError::Io {
            what: what.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        ConnectorError::Unavailable {
            peer,
            reason,
            retry_after,
        } => ConnectorError::Unavailable {
            peer: peer.clone(),
            reason: reason.clone(),
            retry_after: *retry_after,
        },
        ConnectorError::Unauthorized { peer, reason } => ConnectorError::Unauthorized {
            peer: peer.clone(),
            reason: reason.clone(),
        },
        ConnectorError::NotFound { peer, what } => ConnectorError::NotFound {
            peer: peer.clone(),
            what: what.clone(),
        },
        ConnectorError::Rejected { peer, reason } => ConnectorError::Rejected {
            peer: peer.clone(),
            reason: reason.clone(),
        },
        ConnectorError::FileRefused { file, reason } => ConnectorError::FileRefused {
            file: file.clone(),
            reason: reason.clone(),
        },
        ConnectorError::Invalid { location, reason } => ConnectorError::Invalid {
            location: location.clone(),
            reason: reason.clone(),
        },
        ConnectorError::Protocol { peer, reason } => ConnectorError::Protocol {
            peer: peer.clone(),
            reason: reason.clone(),
        },
        ConnectorError::Config(m) => ConnectorError::Config(m.clone()),
    }
}

/// Writes one (CD, ML) pair's file. Transfers already in a complete file are skipped;
/// the ledger names the file before it is written, so a crash halfway is found out
/// (no sentinel) and the transfer written again.
fn write_group(
    inner: &Mutex<Inner>,
    clock: fn() -> NaiveDateTime,
    deliveries: &[Delivery],
    g: &Group,
) -> Result<(), ConnectorError> {
    let mut inner = inner.lock().map_err(|_| poisoned())?;
    let retour = format!("{}/retour", g.ml);
    let now = clock();
    let unix = now.and_utc().timestamp();
    let mut todo: Vec<usize> = Vec::new();
    let mut done_now: Vec<&str> = Vec::new();
    for &i in &g.members {
        let tid = deliveries[i].transfer_id.as_str();
        if todo.iter().any(|&j| deliveries[j].transfer_id == tid) || done_now.contains(&tid) {
            continue;
        }
        match inner.sent.get(tid)? {
            Some(e) if e.stage == SentStage::Written => {}
            Some(e) if g.folder.exists(&format!("{}.ok", e.file))? => done_now.push(tid),
            _ => todo.push(i),
        }
    }
    if !done_now.is_empty() {
        inner.sent.written(done_now.iter().copied(), unix)?;
    }
    if todo.is_empty() {
        return Ok(());
    }
    let refs: Vec<String> = todo
        .iter()
        .map(|&i| reference_of(&deliveries[i].transfer_id, &deliveries[i].record))
        .collect();
    let items: Vec<Signalement<'_>> = todo
        .iter()
        .zip(&refs)
        .map(|(&i, r)| Signalement {
            reference: r,
            structure: &g.ml,
            record: &deliveries[i].record,
        })
        .collect();
    let text = write_jeunes_of(&items).map_err(|e| ConnectorError::Invalid {
        location: "JEUNES_OF record".to_owned(),
        reason: e.reason,
    })?;

    // A free name: never replace a file the CD has not taken yet.
    let key = (g.cd.clone(), g.ml.clone());
    let mut at = match inner.last.get(&key) {
        Some(last) if *last >= now => *last + chrono::Duration::seconds(1),
        _ => now,
    };
    let name = loop {
        let name = format!(
            "JEUNES_OF_{}_{}_{}.csv",
            g.dept,
            g.ml,
            at.format("%Y%m%d%H%M%S")
        );
        let path = format!("{retour}/{name}");
        if !g.folder.exists(&path)? && !g.folder.exists(&format!("{path}.ok"))? {
            break name;
        }
        at += chrono::Duration::seconds(1);
    };
    let path = format!("{retour}/{name}");
    let ids: Vec<&str> = todo
        .iter()
        .map(|&i| deliveries[i].transfer_id.as_str())
        .collect();
    inner.sent.writing(ids.iter().copied(), &path, unix)?;
    g.folder.create_dir_all(&retour)?;
    write_complete(g.folder.as_ref(), &retour, &name, text.as_bytes())?;
    inner.sent.written(ids.iter().copied(), unix)?;
    // Only a written file uses up its second: a failed attempt's name stays free.
    inner.last.insert(key, at);
    info!(cd = %g.cd, ml = %g.ml, file = %name, rows = ids.len(), "JEUNES_OF written");
    Ok(())
}
