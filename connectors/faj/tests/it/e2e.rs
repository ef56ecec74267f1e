//! The whole flow under faults: 200 requests filed through the sink, the commission
//! decides them, webhooks are lost, duplicated, delayed and reordered, some hand-ons
//! fail once; webhooks plus one reconciliation still end with every decision known
//! exactly once.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use passerelle_connector::{ReceiptStatus, Sink};
use passerelle_faj::sim::{Faults, SimConfig};
use passerelle_faj::{FajSink, reconcile};

use crate::support::*;

const N: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_decision_known_exactly_once_despite_lost_and_repeated_webhooks() {
    tls();
    let rx = Receiver::start("sim-webhook").await;
    let (addr, sim) = sim(SimConfig {
        seed: 2026,
        webhook_url: Some(rx.url()),
        faults: Faults {
            // 30 % of webhooks lost or duplicated, all delayed up to 300 ms (reordered).
            webhook_loss: 0.15,
            webhook_duplicate: 0.15,
            webhook_delay_ms: 300,
            commission_delay_ms: 100,
            rate_503: 0.05,
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .await;
    let since = chrono::Utc::now() - chrono::Duration::seconds(5);
    let sink = FajSink::new(client(addr));

    // Every 10th request's first hand-on fails: the receiver answers 503 and the
    // platform sends it again (or reconciliation catches it).
    let receipts: Vec<_> = futures::stream::iter(0..N)
        .map(|i| {
            let sink = sink.clone();
            async move {
                let montant = 5_000 + (i as u64 * 397) % 90_000;
                sink.deliver(delivery(&format!("tr-{i:04}"), record(montant)))
                    .await
                    .unwrap()
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut ids = Vec::new();
    for r in &receipts {
        let ReceiptStatus::Applied { peer_ref: Some(id) } = &r.status else {
            panic!("not applied: {r:?}")
        };
        ids.push(id.clone());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), N);
    {
        let mut fail = rx.recorder.fail_first.lock().unwrap();
        for id in ids.iter().step_by(10) {
            fail.insert(id.clone(), true);
        }
    }

    // Let the commission decide everything and the webhooks settle: every copy sent
    // is either delivered or abandoned.
    let settled = wait_until(Duration::from_secs(60), || {
        let sent =
            sim.stat("decisions") - sim.stat("webhooks_lost") + sim.stat("webhooks_duplicated");
        sim.stat("decisions") == N as u64
            && sim.stat("webhooks_delivered") + sim.stat("webhooks_abandoned") == sent
    })
    .await;
    assert!(settled, "webhooks did not settle: {}", sim.stats());
    let lost = sim.stat("webhooks_lost");
    let duplicated = sim.stat("webhooks_duplicated");
    assert!(lost > 10 && duplicated > 10, "{}", sim.stats());
    // Webhooks alone miss the lost ones.
    let by_webhook = rx.recorder.len();
    assert!(by_webhook < N, "{by_webhook}");

    // Reconciliation runs with a healthy router.
    rx.recorder.fail_first.lock().unwrap().clear();
    let report = reconcile(sink.client(), &rx.intake, since).await.unwrap();
    assert_eq!(report.listed, N as u64);
    assert_eq!(report.pages, 2);
    assert_eq!(report.handed_on as usize, N - by_webhook);
    assert_eq!(report.already_done as usize, by_webhook);

    // Exactly one decision per request, equal to the commission's.
    let per_id = rx.recorder.per_id();
    assert_eq!(per_id.len(), N);
    assert!(
        per_id.values().all(|n| *n == 1),
        "a decision handed on twice"
    );
    let truth: HashMap<_, _> = sim
        .verdicts()
        .into_iter()
        .map(|v| (v.id_demande.clone(), v))
        .collect();
    for d in rx.recorder.decisions.lock().unwrap().iter() {
        let v = &truth[&d.id_demande];
        assert_eq!(d.statut, v.statut, "{}", d.id_demande);
        assert_eq!(d.decision.montant_accorde, v.montant_accorde);
    }
    // The duplicates reached the receiver and were ignored; the failed hand-ons were
    // not counted as done.
    assert!(sim.stat("webhook_failures") > 0, "{}", sim.stats());

    // A second reconciliation, and late copies, change nothing.
    let again = reconcile(sink.client(), &rx.intake, since).await.unwrap();
    assert_eq!(again.handed_on, 0);
    assert_eq!(rx.recorder.len(), N);
    sim.shutdown().await;
    rx.stop().await;
}
