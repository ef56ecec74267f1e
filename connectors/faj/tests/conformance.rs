//! The connector conformance suite (`passerelle_connector::conformance`) on
//! `FajSink` against the FAJ platform's simulator, spawned in-process, with 503s
//! injected on the token and filing calls and a request the platform refuses by rule
//! (the young person's age) as the permanent failure.
//!
//! The FAJ connector has no `Source`: the platform's decisions reach the hub through
//! the signed webhook and `reconcile`, both feeding `DecisionIntake` (checked in
//! `tests/it/webhook.rs` and `tests/it/e2e.rs`); the `Source` the engine reads them
//! from is `passerelle_runtime::decisions::FajDecisions`, outside this crate.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use passerelle_connector::conformance::SinkHarness;
use passerelle_connector::{Delivery, Sink, connector_conformance_tests};
use passerelle_faj::sim::{Faults, SimConfig, SimHandle, spawn};
use passerelle_faj::{FajClient, FajSink, Secret};
use passerelle_model::Jeune;

struct Faj {
    addr: SocketAddr,
    sim: SimHandle,
    next: AtomicUsize,
}

async fn harness() -> Faj {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (addr, sim) = spawn(SimConfig::default()).await.unwrap();
    Faj {
        addr,
        sim,
        next: AtomicUsize::new(0),
    }
}

fn record(naissance: &str) -> Jeune {
    let json = format!(
        r#"{{"schema": "passerelle.jeune/1",
            "identifiants": {{"imilo_dossier": "6282"}},
            "etat_civil": {{"nom_naissance": "Témoin", "prenoms": ["Zoé"], "date_naissance": "{naissance}"}},
            "contact": {{"adresse": {{"numero": "1", "voie": "rue de l'Essai", "code_postal": "59000", "commune": "Lille"}}}},
            "accompagnement": {{"structure": "59350S00", "conseiller": {{"nom": "Conseiller Essai"}}}},
            "faj": [{{"date_depot": "2026-11-21", "aides": [{{"type": "mobilite", "montant_demande": 10000}}]}}]}}"#
    );
    serde_json::from_str(&json).unwrap()
}

#[async_trait]
impl SinkHarness for Faj {
    async fn sink(&self) -> Box<dyn Sink> {
        let mut c = passerelle_faj::sim::client_config(self.addr);
        c.retry.max_attempts = 4;
        c.retry.base_delay_ms = 2;
        c.retry.max_delay_ms = 20;
        c.validate().unwrap();
        let client = FajClient::new(&c, Secret::new("sim-secret")).unwrap();
        Box::new(FajSink::new(client))
    }

    fn deliveries(&self, n: usize) -> Vec<Delivery> {
        let first = self.next.fetch_add(n, Ordering::SeqCst);
        (first..first + n)
            .map(|i| Delivery {
                transfer_id: format!("conformance-{i}"),
                flow: "faj-demande".into(),
                sender: "59350S00".into(),
                recipient: "CD059".into(),
                record: record("2005-07-14"),
            })
            .collect()
    }

    async fn permanent_fault(&self, mut d: Delivery) -> Delivery {
        // Too old for the FAJ (18 to 25): 422 AGE_HORS_BORNES, whatever the retries.
        d.record = record("1990-01-01");
        d
    }

    async fn transient_fault(&self, on: bool) {
        let rate_503 = if on { 0.4 } else { 0.0 };
        self.sim.set_faults(Faults {
            rate_503,
            ..Faults::default()
        });
    }

    async fn held(&self) -> Vec<String> {
        self.sim.idempotency_keys()
    }

    async fn attempts(&self) -> Option<u64> {
        // Every call but the tokens granted: filings, and token calls that failed.
        let s = &self.sim;
        Some(s.stat("requests") - s.stat("tokens_issued") - s.stat("token_refusals"))
    }

    async fn faults_seen(&self) -> u64 {
        self.sim.stat("faults_503")
    }
}

connector_conformance_tests!(harness(); sink);
