//! Shared helpers: a simulator, a client, a recording decision handler, a receiver
//! mounted on a local port, canonical records.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use passerelle_connector::Delivery;
use passerelle_faj::sim::{SimConfig, SimHandle, spawn};
use passerelle_faj::webhook::{RefusalWindow, WebhookAudit, WebhookLimits};
use passerelle_faj::{
    Decision, DecisionHandler, DecisionIntake, FajClient, FajConfig, HandlerError, MemorySeenStore,
    Secret, SeenStore, WebhookState,
};
use passerelle_model::Jeune;
use tokio_util::sync::CancellationToken;

pub fn tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub async fn sim(cfg: SimConfig) -> (SocketAddr, SimHandle) {
    tls();
    spawn(cfg).await.expect("simulator starts")
}

/// A config pointing at a simulator, with short backoffs so that tests stay quick.
pub fn config(addr: SocketAddr) -> FajConfig {
    let mut c = passerelle_faj::sim::client_config(addr);
    c.retry.base_delay_ms = 10;
    c.retry.max_delay_ms = 100;
    c.retry.max_attempts = 8;
    c.retry.max_elapsed_ms = 5_000;
    c
}

pub fn client(addr: SocketAddr) -> FajClient {
    tls();
    let c = config(addr);
    c.validate().unwrap();
    FajClient::new(&c, Secret::new("sim-secret")).unwrap()
}

/// A valid canonical record for `faj-demande`: 21 at filing, one aid.
pub fn record(montant: u64) -> Jeune {
    record_with("2005-07-14", montant)
}

pub fn record_with(naissance: &str, montant: u64) -> Jeune {
    let json = format!(
        r#"{{"schema": "passerelle.jeune/1",
            "identifiants": {{"imilo_dossier": "6282"}},
            "etat_civil": {{"nom_naissance": "Martin", "prenoms": ["Yanis"], "date_naissance": "{naissance}"}},
            "contact": {{"adresse": {{"numero": "12", "voie": "rue des Tanneurs", "code_postal": "59000", "commune": "Lille"}}}},
            "accompagnement": {{"structure": "59350S00", "conseiller": {{"nom": "Claire Durand"}}}},
            "faj": [{{"date_depot": "2026-11-21", "aides": [{{"type": "mobilite", "montant_demande": {montant}}}]}}]}}"#
    );
    serde_json::from_str(&json).unwrap()
}

pub fn delivery(transfer_id: &str, record: Jeune) -> Delivery {
    Delivery {
        transfer_id: transfer_id.into(),
        flow: "faj-demande".into(),
        sender: "59350S00".into(),
        recipient: "CD059".into(),
        record,
    }
}

/// Records every decision handed on; can fail on demand.
#[derive(Default)]
pub struct Recorder {
    pub decisions: Mutex<Vec<Decision>>,
    pub calls: AtomicUsize,
    /// Fails the first call for these ids (then succeeds).
    pub fail_first: Mutex<HashMap<String, bool>>,
    /// Fails every call while set.
    pub fail_all: std::sync::atomic::AtomicBool,
    /// When set, each call waits for this token to be cancelled before succeeding.
    pub gate: Mutex<Option<CancellationToken>>,
}

impl Recorder {
    pub fn per_id(&self) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for d in self.decisions.lock().unwrap().iter() {
            *m.entry(d.id_demande.clone()).or_insert(0) += 1;
        }
        m
    }

    pub fn len(&self) -> usize {
        self.decisions.lock().unwrap().len()
    }
}

#[async_trait]
impl DecisionHandler for Recorder {
    async fn handle(&self, decision: Decision) -> Result<(), HandlerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let gate = self.gate.lock().unwrap().clone();
        if let Some(g) = gate {
            g.cancelled().await;
        }
        if self.fail_all.load(Ordering::SeqCst) {
            return Err("router unavailable".into());
        }
        if let Some(first) = self
            .fail_first
            .lock()
            .unwrap()
            .get_mut(&decision.id_demande)
            && *first
        {
            *first = false;
            return Err("router unavailable".into());
        }
        self.decisions.lock().unwrap().push(decision);
        Ok(())
    }
}

/// Collects the windows of refused webhooks.
#[derive(Default)]
pub struct Audit {
    pub refused: Mutex<Vec<RefusalWindow>>,
}

#[async_trait]
impl WebhookAudit for Audit {
    async fn refused(&self, window: RefusalWindow) {
        self.refused.lock().unwrap().push(window);
    }
}

/// A receiver mounted at `/hooks/faj` on a local port, as the server will mount it.
pub struct Receiver {
    pub addr: SocketAddr,
    pub recorder: Arc<Recorder>,
    pub seen: Arc<MemorySeenStore>,
    pub audit: Arc<Audit>,
    pub intake: DecisionIntake,
    pub state: WebhookState,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start(secret: &str) -> Self {
        Self::start_with(secret, WebhookLimits::default(), None).await
    }

    /// A receiver with given limits and, when given, another seen-store (durable).
    pub async fn start_with(
        secret: &str,
        limits: WebhookLimits,
        store: Option<Arc<dyn SeenStore>>,
    ) -> Self {
        let recorder = Arc::new(Recorder::default());
        let seen = Arc::new(MemorySeenStore::new());
        let audit = Arc::new(Audit::default());
        let store: Arc<dyn SeenStore> = store.unwrap_or_else(|| seen.clone());
        let intake = DecisionIntake::new(recorder.clone(), store);
        let state =
            WebhookState::with_limits(Secret::new(secret), intake.clone(), audit.clone(), limits);
        let app = axum::Router::new().nest("/hooks/faj", state.clone().router());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let s = stop.clone();
        let task = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(s.cancelled_owned())
            .await
            .unwrap();
        });
        Self {
            addr,
            recorder,
            seen,
            audit,
            intake,
            state,
            stop,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hooks/faj", self.addr)
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
pub async fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}
