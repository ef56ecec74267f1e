//! The FAJ form's desk (`passerelle_server::FajDesk`) over this hub: reads an I-MILO
//! dossier live through the I-MILO client, hands the conseiller's request to the engine
//! under `faj-demande` (identity, policy, seal, publish, journal like any transfer),
//! and reads the platform's answer live by the request id the platform gave.
//!
//! The platform's request id comes back as the receipt's `peer_ref`, which the engine
//! does not keep: the FAJ sink is wrapped ([`FajDesk::observe`]) so that the desk
//! remembers which transfer became which request, in memory and in `faj_requests.tsv`
//! in the data folder (a transfer id and the platform's request number a line, mode
//! 0600; nothing about the person), so that a request's page shows its decision after
//! a restart too.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use passerelle_connector::{ConnectorError, Delivery, ErrorKind, Receipt, ReceiptStatus, Sink};
use passerelle_faj::FajClient;
use passerelle_hub::{Engine, ItemFate, Org, Routed};
use passerelle_imilo::ImiloClient;
use passerelle_model::{Jeune, StructureCode};
use passerelle_policy::{OrgKind, System};
use passerelle_server::web::{DeskError, Filed, Suivi};
use uuid::Uuid;

use crate::config::HubConfig;
use crate::wiring::Hub;

/// The file, in the data folder, where the desk keeps which transfer became which
/// request on the platform.
pub const REQUESTS_FILE: &str = "faj_requests.tsv";

/// Transfer id → the platform's request id, kept in [`REQUESTS_FILE`] as well.
#[derive(Clone, Default)]
struct Requests {
    map: Arc<Mutex<HashMap<Uuid, String>>>,
    file: Option<PathBuf>,
}

impl Requests {
    /// What `path` holds (lines that do not read are skipped: a line cut by a crash).
    fn open(path: &Path) -> Self {
        let mut map = HashMap::new();
        if let Ok(text) = std::fs::read_to_string(path) {
            if !text.is_empty() && !text.ends_with('\n') {
                // A line cut by a crash: the next one starts on its own line.
                let _ = std::fs::OpenOptions::new()
                    .append(true)
                    .open(path)
                    .and_then(|mut f| f.write_all(b"\n"));
            }
            for line in text.lines() {
                if let Some((t, id)) = line.split_once('\t')
                    && let Ok(t) = Uuid::parse_str(t)
                    && !id.is_empty()
                {
                    map.insert(t, id.to_owned());
                }
            }
        }
        Self {
            map: Arc::new(Mutex::new(map)),
            file: Some(path.to_owned()),
        }
    }

    fn get(&self, t: &Uuid) -> Option<String> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(t)
            .cloned()
    }

    /// Keeps a new pair; one already known is not written again. A failed write is
    /// logged: the page then shows that request's receipt only after a restart.
    fn insert(&self, t: Uuid, id: &str) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(&t).is_some_and(|known| known == id) {
            return;
        }
        map.insert(t, id.to_owned());
        let Some(path) = &self.file else { return };
        let written = (|| {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)?;
            writeln!(f, "{t}\t{id}")
        })();
        if let Err(e) = written {
            tracing::warn!(file = %path.display(), "FAJ request number not kept: {e}");
        }
    }
}

/// The desk of one hub and its first FAJ platform.
pub struct FajDesk {
    engine: Arc<Engine>,
    imilo: ImiloClient,
    faj: FajClient,
    platform: String,
    requests: Requests,
    /// Delivers the platform's queue right after a request is published, through this
    /// sink: for a hub with no consumer running (`demo`); `serve`'s consumer delivers.
    deliver_now: Option<Arc<dyn Sink>>,
}

impl std::fmt::Debug for FajDesk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FajDesk")
            .field("platform", &self.platform)
            .finish_non_exhaustive()
    }
}

/// A sink that remembers the request id of each filed transfer.
struct Observed {
    inner: Arc<dyn Sink>,
    requests: Requests,
}

impl Observed {
    fn note(&self, r: &Result<Receipt, ConnectorError>) {
        if let Ok(Receipt {
            transfer_id,
            status: ReceiptStatus::Applied { peer_ref: Some(id) },
        }) = r
            && let Ok(t) = Uuid::parse_str(transfer_id)
        {
            self.requests.insert(t, id);
        }
    }
}

#[async_trait]
impl Sink for Observed {
    async fn deliver(&self, delivery: Delivery) -> Result<Receipt, ConnectorError> {
        let r = self.inner.deliver(delivery).await;
        self.note(&r);
        r
    }

    async fn deliver_batch(
        &self,
        deliveries: Vec<Delivery>,
    ) -> Vec<Result<Receipt, ConnectorError>> {
        let out = self.inner.deliver_batch(deliveries).await;
        for r in &out {
            self.note(r);
        }
        out
    }
}

fn unavailable(e: impl std::fmt::Display) -> DeskError {
    DeskError::Unavailable(e.to_string())
}

impl FajDesk {
    /// The desk for `config`'s I-MILO and first FAJ platform; `None` when the
    /// configuration has either missing.
    pub fn new(config: &HubConfig, hub: &Hub) -> anyhow::Result<Option<Self>> {
        let (Some(imilo), Some(faj)) = (&config.imilo, config.faj.first()) else {
            return Ok(None);
        };
        hub.ensure_keys(&faj.platform)?;
        // The MLs that file through the form: their references (dossier numbers,
        // initials) are kept sealed for them, before any night has made their keys.
        for ml in &imilo.structures {
            hub.ensure_keys(ml)?;
        }
        Ok(Some(Self {
            engine: hub.engine.clone(),
            imilo: imilo.client.build()?,
            faj: faj.build()?.client,
            platform: faj.platform.clone(),
            requests: Requests::open(&hub.data_dir.join(REQUESTS_FILE)),
            deliver_now: None,
        }))
    }

    /// The platform this desk files to.
    pub fn platform(&self) -> &str {
        &self.platform
    }

    /// `sink`, remembering the request id of what it files: the sink that delivers
    /// the platform's queue must go through this for the form to show decisions.
    pub fn observe(&self, sink: Arc<dyn Sink>) -> Arc<dyn Sink> {
        Arc::new(Observed {
            inner: sink,
            requests: self.requests.clone(),
        })
    }

    /// Delivers each request as soon as it is published, through `sink` (observed).
    pub fn delivering_now(mut self, sink: Arc<dyn Sink>) -> Self {
        self.deliver_now = Some(self.observe(sink));
        self
    }
}

#[async_trait]
impl passerelle_server::web::FajDesk for FajDesk {
    async fn dossier(&self, id: u64) -> Result<Option<Jeune>, DeskError> {
        let d = match self.imilo.dossier(id).await {
            Ok(d) => d,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(unavailable(e)),
        };
        let mapped = passerelle_imilo::mapping::dossier_to_jeune(&d);
        match mapped.record {
            Some(r) => Ok(Some(r)),
            None => Err(DeskError::Invalid(
                mapped
                    .rejects
                    .iter()
                    .map(|e| e.path.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            )),
        }
    }

    async fn file(&self, ml: &str, mut record: Jeune) -> Result<Filed, DeskError> {
        let acc = record.accompagnement.get_or_insert_with(Default::default);
        if acc.structure.is_none() {
            acc.structure =
                Some(StructureCode::parse(ml).map_err(|e| DeskError::Invalid(e.reason))?);
        }
        // The conseiller's own reference for the request: the I-MILO dossier (sealed).
        let dossier = record
            .identifiants
            .imilo_dossier
            .as_ref()
            .map(|d| d.as_str().to_owned());
        let initiales = record.etat_civil.initiales();
        let routed = Routed {
            // `hub`: typed in Passerelle's form (the flow allows it), not read by a night.
            from: Org::new(OrgKind::Ml, ml, System::Hub),
            to: Org::new(OrgKind::Faj, &self.platform, System::Faj),
            record,
            known_to_recipient: false,
        };
        let prepared = self
            .engine
            .prepare("faj-demande", vec![routed])
            .await
            .map_err(unavailable)?;
        let fate = prepared.fates.first().copied();
        let transfers = prepared.transfers();
        let ids: Vec<Uuid> = transfers.iter().map(|(_, id, _)| *id).collect();
        self.engine.publish(prepared).await.map_err(unavailable)?;
        if let Some(d) = dossier {
            let refs = transfers
                .into_iter()
                .map(|(_, id, sender)| {
                    (
                        id,
                        sender,
                        passerelle_hub::engine::SenderRef::own(d.clone())
                            .with_initiales(initiales.clone()),
                    )
                })
                .collect();
            self.engine
                .keep_sender_refs(refs)
                .await
                .map_err(unavailable)?;
        }
        let filed = match (fate, ids.first()) {
            (Some(ItemFate::Sent), Some(id)) => Filed::Sent(*id),
            (Some(ItemFate::Unchanged), _) => Filed::Unchanged,
            (Some(ItemFate::Review), _) => Filed::Review,
            _ => Filed::Denied("faj-demande".into()),
        };
        if let (Filed::Sent(_), Some(sink)) = (&filed, &self.deliver_now) {
            // A short idle: the request just published is first in the queue.
            if let Err(e) = self
                .engine
                .deliver(&self.platform, sink.as_ref(), Duration::from_millis(300))
                .await
            {
                tracing::warn!(platform = %self.platform, "FAJ delivery after the form failed: {e}");
            }
        }
        Ok(filed)
    }

    async fn follow(&self, transfer_id: Uuid) -> Result<Suivi, DeskError> {
        let id = self.requests.get(&transfer_id);
        let Some(id) = id else {
            return Ok(Suivi::default());
        };
        let d = self.faj.get_demande(&id).await.map_err(unavailable)?;
        let faj =
            passerelle_faj::mapping::demande_to_faj(&d).map_err(|e| DeskError::Invalid(e.champ))?;
        Ok(Suivi {
            id_demande: Some(id),
            faj: Some(faj),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_numbers_outlive_the_desk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(REQUESTS_FILE);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let r = Requests::open(&path);
        assert_eq!(r.get(&a), None);
        r.insert(a, "FAJ-059-2026-000123");
        r.insert(a, "FAJ-059-2026-000123");
        r.insert(b, "FAJ-059-2026-000124");
        // A line cut by a crash is skipped, the rest read.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"not-a-uuid")
            .unwrap();
        let again = Requests::open(&path);
        assert_eq!(again.get(&a).as_deref(), Some("FAJ-059-2026-000123"));
        assert_eq!(again.get(&b).as_deref(), Some("FAJ-059-2026-000124"));
        let c = Uuid::new_v4();
        again.insert(c, "FAJ-059-2026-000125");
        let third = Requests::open(&path);
        assert_eq!(third.get(&c).as_deref(), Some("FAJ-059-2026-000125"));
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 4);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
