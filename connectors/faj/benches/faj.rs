//! Benchmarks of the FAJ connector's CPU work per message: checking a webhook's
//! signature and reading it, handing a decision through the in-memory intake, and
//! mapping a canonical record to a request body.

use std::hint::black_box;
use std::sync::Arc;

use async_trait::async_trait;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use passerelle_faj::mapping::demande_body;
use passerelle_faj::webhook::{WebhookBody, sign, verify_signature};
use passerelle_faj::{
    Decision, DecisionHandler, DecisionIntake, DecisionVia, HandlerError, MemorySeenStore, Secret,
};
use passerelle_model::{Date, FajStatut, Jeune};

struct Nothing;

#[async_trait]
impl DecisionHandler for Nothing {
    async fn handle(&self, _d: Decision) -> Result<(), HandlerError> {
        Ok(())
    }
}

fn hook(i: u64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "id_demande": format!("FAJ-059-2026-{i:06}"),
        "statut": "ACCORDEE",
        "decision": {"date_commission": "2026-12-03", "montant_accorde": 20000},
        "evenement_id": format!("EVT-{i}"),
        "horodatage": "2026-12-03T14:02:11Z"
    }))
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let key = Secret::new("sim-webhook");
    let body = hook(1);
    let sig = sign(&key, &body);

    let mut g = c.benchmark_group("webhook");
    g.throughput(Throughput::Elements(1));
    g.bench_function("verify_and_parse", |b| {
        b.iter(|| {
            verify_signature(&key, Some(sig.as_bytes()), black_box(&body)).unwrap();
            let w: WebhookBody = serde_json::from_slice(black_box(&body)).unwrap();
            black_box(w)
        })
    });

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let intake = DecisionIntake::new(Arc::new(Nothing), Arc::new(MemorySeenStore::new()));
    let mut i = 0u64;
    g.bench_function("intake_hand_on_new_decision", |b| {
        b.iter(|| {
            i += 1;
            let d = Decision {
                id_demande: format!("FAJ-059-2026-{i:06}"),
                statut: FajStatut::Accordee,
                decision: Default::default(),
                evenement_id: Some(format!("EVT-{i}")),
                horodatage: None,
                date_depot: None,
                aides: vec![],
                via: DecisionVia::Webhook,
                instructeur: None,
                imilo_dossier: None,
            };
            rt.block_on(intake.hand_on(d)).unwrap()
        })
    });
    g.finish();

    let record: Jeune = serde_json::from_str(include_str!(
        "../tests/fixtures/demande/martin-mobilite.canonical.json"
    ))
    .unwrap();
    let today = Date::parse("2026-11-21").unwrap();
    let mut g = c.benchmark_group("mapping");
    g.throughput(Throughput::Elements(1));
    g.bench_function("canonical_to_request_json", |b| {
        b.iter(|| {
            let body = demande_body(black_box(&record), today).unwrap();
            serde_json::to_vec(&body).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
