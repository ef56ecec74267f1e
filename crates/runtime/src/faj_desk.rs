//! The FAJ form's desk (`passerelle_server::FajDesk`) over this hub: reads an I-MILO
//! dossier live through the I-MILO client, hands the conseiller's request to the engine
//! under `faj-demande` (identity, policy, seal, publish, journal like any transfer),
//! and reads the platform's answer live by the request id the platform gave.
//!
//! The platform's request id comes back as the receipt's `peer_ref`, which the engine
//! does not keep: the FAJ sink is wrapped ([`FajDesk::observe`]) so that the desk
//! remembers which transfer became which request in the hub's state (a `PeerStore`:
//! the transfer id and the platform's request number; nothing about the person), so
//! that a request's page shows its decision after a restart too, and on any instance
//! sharing a PostgreSQL state. An earlier data folder's `faj_requests.tsv` is taken
//! in once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use passerelle_connector::{
    ConnectorError, Delivery, ErrorKind, PeerStore, PeerStoreError, Receipt, ReceiptStatus, Sink,
};
use passerelle_faj::FajClient;
use passerelle_hub::{Engine, ItemFate, Org, Routed};
use passerelle_imilo::ImiloClient;
use passerelle_model::{Jeune, StructureCode};
use passerelle_policy::{OrgKind, System};
use passerelle_server::web::{DeskError, Filed, Suivi};
use uuid::Uuid;

use crate::config::HubConfig;
use crate::wiring::Hub;

/// The file, in the data folder, where the desk kept which transfer became which
/// request on the platform, before the hub's state kept it: taken in once, then
/// renamed `faj_requests.tsv.migrated`.
pub const REQUESTS_FILE: &str = "faj_requests.tsv";

/// The namespace of the request ids in the hub's `PeerStore`.
pub const REQUESTS_NAMESPACE: &str = "faj/requests";

/// Transfer id → the platform's request id, in the hub's state (`PeerStore`: every
/// instance on a PostgreSQL state shows the decision of a request another one filed).
#[derive(Clone)]
struct Requests {
    store: Arc<dyn PeerStore>,
    /// The earlier [`REQUESTS_FILE`], taken in at the first use.
    old_file: Option<PathBuf>,
    taken_in: Arc<tokio::sync::OnceCell<()>>,
}

impl Requests {
    fn new(store: Arc<dyn PeerStore>, old_file: Option<&Path>) -> Self {
        Self {
            store,
            old_file: old_file.map(Path::to_owned),
            taken_in: Arc::new(tokio::sync::OnceCell::new()),
        }
    }

    /// Takes the earlier file in once (lines that do not read are skipped: a line
    /// cut by a crash), a pair already in the store left as it is. Until that
    /// succeeds it is tried again at each use.
    async fn take_in(&self) -> Result<(), PeerStoreError> {
        let Some(path) = &self.old_file else {
            return Ok(());
        };
        self.taken_in
            .get_or_try_init(|| async {
                let Ok(text) = std::fs::read_to_string(path) else {
                    return Ok(());
                };
                for line in text.lines() {
                    if let Some((t, id)) = line.split_once('\t')
                        && let Ok(t) = Uuid::parse_str(t)
                        && !id.is_empty()
                    {
                        self.store
                            .insert_if_absent(REQUESTS_NAMESPACE, &t.to_string(), id)
                            .await?;
                    }
                }
                let mut to = path.as_os_str().to_owned();
                to.push(".migrated");
                // Another instance may have moved it first.
                let _ = std::fs::rename(path, PathBuf::from(to));
                Ok(())
            })
            .await
            .map(|_| ())
    }

    async fn get(&self, t: &Uuid) -> Result<Option<String>, PeerStoreError> {
        self.take_in().await?;
        self.store.get(REQUESTS_NAMESPACE, &t.to_string()).await
    }

    /// Keeps a pair (the transfer id and the platform's request number: nothing about
    /// the person). A failed write is logged: the page then shows that request's
    /// receipt only, not its decision.
    async fn insert(&self, t: Uuid, id: &str) {
        let kept = match self.take_in().await {
            Ok(()) => self.store.put(REQUESTS_NAMESPACE, &t.to_string(), id).await,
            Err(e) => Err(e),
        };
        if let Err(e) = kept {
            tracing::warn!("FAJ request number not kept: {e}");
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
    async fn note(&self, r: &Result<Receipt, ConnectorError>) {
        if let Ok(Receipt {
            transfer_id,
            status: ReceiptStatus::Applied { peer_ref: Some(id) },
        }) = r
            && let Ok(t) = Uuid::parse_str(transfer_id)
        {
            self.requests.insert(t, id).await;
        }
    }
}

#[async_trait]
impl Sink for Observed {
    async fn deliver(&self, delivery: Delivery) -> Result<Receipt, ConnectorError> {
        let r = self.inner.deliver(delivery).await;
        self.note(&r).await;
        r
    }

    async fn deliver_batch(
        &self,
        deliveries: Vec<Delivery>,
    ) -> Vec<Result<Receipt, ConnectorError>> {
        let out = self.inner.deliver_batch(deliveries).await;
        for r in &out {
            self.note(r).await;
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
            requests: Requests::new(hub.peer_store(), Some(&hub.data_dir.join(REQUESTS_FILE))),
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
        let id = self.requests.get(&transfer_id).await.map_err(unavailable)?;
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
    use std::io::Write;

    use super::*;

    #[tokio::test]
    async fn request_numbers_outlive_the_desk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(REQUESTS_FILE);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        // What an earlier desk left in the data folder, its last line cut by a crash.
        let mut f = std::fs::File::create(&path).unwrap();
        writeln!(f, "{a}\tFAJ-059-2026-000123").unwrap();
        write!(f, "not-a-uuid").unwrap();
        drop(f);
        let state = dir.path().join("state.sqlite");
        let store: Arc<dyn PeerStore> =
            Arc::new(passerelle_hub::HubState::open(&state).await.unwrap());
        let r = Requests::new(store, Some(&path));
        assert_eq!(r.get(&b).await.unwrap(), None);
        assert_eq!(
            r.get(&a).await.unwrap().as_deref(),
            Some("FAJ-059-2026-000123")
        );
        assert!(!path.exists(), "the file is taken in once");
        r.insert(a, "FAJ-059-2026-000123").await;
        r.insert(b, "FAJ-059-2026-000124").await;
        // A restart (or another instance): the same state, nothing lost.
        let store: Arc<dyn PeerStore> =
            Arc::new(passerelle_hub::HubState::open(&state).await.unwrap());
        let again = Requests::new(store.clone(), Some(&path));
        assert_eq!(
            again.get(&a).await.unwrap().as_deref(),
            Some("FAJ-059-2026-000123")
        );
        assert_eq!(
            again.get(&b).await.unwrap().as_deref(),
            Some("FAJ-059-2026-000124")
        );
        let c = Uuid::new_v4();
        again.insert(c, "FAJ-059-2026-000125").await;
        let third = Requests::new(store.clone(), None);
        assert_eq!(
            third.get(&c).await.unwrap().as_deref(),
            Some("FAJ-059-2026-000125")
        );
        // One pair per transfer: ids and request numbers only.
        let kept = store.list(REQUESTS_NAMESPACE, "").await.unwrap();
        assert_eq!(kept.len(), 3);
        assert!(
            kept.iter()
                .all(|(k, v)| Uuid::parse_str(k).is_ok() && v.starts_with("FAJ-"))
        );
    }
}
