//! The connector conformance suite (`passerelle_connector::conformance`) on I-MILO,
//! against its simulator spawned in-process: `EventSource` over the change-event queue
//! and `ImiloSink` writing prescriptions, with 503s and connection resets injected
//! (a reset after the write is applied loses the answer, not the write) and a
//! structure the API does not know as the permanent refusal.
//!
//! I-MILO is an API, not a folder: it sends no file to refuse, so
//! `refused_file_is_reported_once` does not apply. `ReconcileSource` re-reads every
//! listing by design (each reconciliation serves everything again, its `ack` only
//! lets the engine go on), so the source checks run on `EventSource`, the source
//! whose acknowledgements reach the peer.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use passerelle_connector::conformance::{SinkHarness, SourceHarness};
use passerelle_connector::{Delivery, Sink, Source, connector_conformance_tests};
use passerelle_imilo::sim::{self, Faults, SimConfig, SimHandle, SimKeys};
use passerelle_imilo::{EventSource, ImiloClient, ImiloSink, RetryConfig};
use passerelle_model::Jeune;

struct Imilo {
    addr: SocketAddr,
    sim: SimHandle,
    next: AtomicUsize,
}

async fn harness() -> Imilo {
    // Fewer dossiers than a page of events (150): one read serves them all.
    let (addr, sim) = sim::spawn(SimConfig {
        jeunes: 40,
        seed: 11,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    Imilo {
        addr,
        sim,
        next: AtomicUsize::new(0),
    }
}

impl Imilo {
    fn client(&self) -> ImiloClient {
        let mut c = sim::client_config(self.addr);
        c.retry = RetryConfig {
            base_delay_ms: 2,
            max_delay_ms: 20,
            max_attempts: 4,
            ..RetryConfig::default()
        };
        let keys = SimKeys::default().family_keys().unwrap();
        ImiloClient::with_keys(&c, keys).unwrap()
    }

    fn faults(&self, on: bool) {
        let faults = if on {
            Faults {
                rate_503: Some(0.3),
                rate_reset: Some(0.2),
                ..Faults::default()
            }
        } else {
            Faults::default()
        };
        self.sim.set_faults(faults).unwrap();
    }
}

#[async_trait]
impl SourceHarness for Imilo {
    async fn source(&self) -> Box<dyn Source> {
        Box::new(EventSource::new(self.client()))
    }

    async fn transient_fault(&self, on: bool) {
        self.faults(on);
    }

    async fn faults_seen(&self) -> u64 {
        self.sim.stats().faults.injected()
    }
}

fn orientation(n: usize) -> Delivery {
    let record: Jeune = serde_json::from_value(serde_json::json!({
        "schema": "passerelle.jeune/1",
        "etat_civil": {"nom_naissance": "Témoin", "prenoms": ["Zoé"], "date_naissance": "2005-04-01"},
        "rsa": {"etat_droit": "2", "soumis_droits_devoirs": true},
        "orientation": {"type": "professionnelle", "date": "2026-10-02"}
    }))
    .unwrap();
    Delivery {
        transfer_id: format!("conformance-{n}"),
        flow: "brsa-orientation".into(),
        sender: "CD059".into(),
        recipient: "59350S00".into(),
        record,
    }
}

#[async_trait]
impl SinkHarness for Imilo {
    async fn sink(&self) -> Box<dyn Sink> {
        Box::new(ImiloSink::new(self.client()))
    }

    fn deliveries(&self, n: usize) -> Vec<Delivery> {
        let first = self.next.fetch_add(n, Ordering::SeqCst);
        (first..first + n).map(orientation).collect()
    }

    async fn permanent_fault(&self, mut d: Delivery) -> Delivery {
        // 422 STRUCTURE_INCONNUE: no retry makes the structure known.
        d.recipient = "99999S99".into();
        d
    }

    async fn transient_fault(&self, on: bool) {
        self.faults(on);
    }

    async fn held(&self) -> Vec<String> {
        self.sim.state().written_references()
    }

    async fn attempts(&self) -> Option<u64> {
        let s = self.sim.stats();
        Some(
            s.requests_by_family
                .get("partenaires")
                .copied()
                .unwrap_or(0),
        )
    }

    async fn faults_seen(&self) -> u64 {
        self.sim.stats().faults.injected()
    }
}

connector_conformance_tests!(harness(); api_source, sink);
