//! Where a FAJ decision goes back: the ML that filed the request and its I-MILO
//! dossier, read from the platform's copy of the request (the webhook carries
//! neither), so that the engine can route `faj-decision` and the I-MILO sink can post
//! the `FAJ_DECISION` événement.

use std::sync::Arc;
use std::time::Duration;

use passerelle_connector::{ReceiptStatus, Sink};
use passerelle_faj::sim::{Faults, SimConfig};
use passerelle_faj::{
    Decision, DecisionIntake, DecisionVia, FajSink, HandOnOutcome, MemorySeenStore,
    PlatformDecision, reconcile,
};
use passerelle_model::FajStatut;

use crate::support::*;

async fn filed(sink: &FajSink, tid: &str) -> String {
    let r = sink.deliver(delivery(tid, record(20_000))).await.unwrap();
    match r.status {
        ReceiptStatus::Applied { peer_ref: Some(id) } => id,
        other => panic!("{other:?}"),
    }
}

fn webhook_decision(id: &str) -> Decision {
    Decision {
        id_demande: id.to_owned(),
        statut: FajStatut::Accordee,
        decision: PlatformDecision::default(),
        evenement_id: Some(format!("EVT-{id}")),
        horodatage: None,
        date_depot: None,
        aides: vec![],
        via: DecisionVia::Webhook,
        instructeur: None,
        imilo_dossier: None,
    }
}

fn assert_routed(d: &Decision) {
    assert_eq!(d.route(), Some("59350S00"));
    assert!(!d.needs_origin());
    let j = d.to_record("FAJ059").unwrap();
    assert_eq!(
        j.identifiants.imilo_dossier.as_ref().unwrap().as_str(),
        "6282"
    );
    assert_eq!(j.faj.len(), 1);
    assert_eq!(j.sources[0].record_id.as_str(), d.id_demande);
}

#[tokio::test]
async fn reconciled_decisions_name_the_ml_and_the_dossier() {
    let (addr, sim) = sim(SimConfig {
        faults: Faults {
            commission_delay_ms: 10,
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .await;
    let since = chrono::Utc::now() - chrono::Duration::seconds(5);
    let sink = FajSink::new(client(addr));
    filed(&sink, "route-1").await;
    let decided = wait_until(Duration::from_secs(10), || sim.stat("decisions") == 1).await;
    assert!(decided);
    let recorder = Arc::new(Recorder::default());
    let intake = DecisionIntake::new(recorder.clone(), Arc::new(MemorySeenStore::new()));
    let report = reconcile(sink.client(), &intake, since).await.unwrap();
    assert_eq!(report.handed_on, 1);
    let got = recorder.decisions.lock().unwrap().clone();
    assert_routed(&got[0]);
    // No read back was needed: the listing carries the filed request.
    assert_eq!(sim.stat("reads"), 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn webhook_decisions_are_completed_from_the_platform() {
    let (addr, sim) = sim(SimConfig {
        faults: Faults {
            commission_delay_ms: 3_600_000,
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .await;
    let sink = FajSink::new(client(addr));
    let id = filed(&sink, "route-2").await;
    let recorder = Arc::new(Recorder::default());
    let intake = DecisionIntake::new(recorder.clone(), Arc::new(MemorySeenStore::new()))
        .with_origin_lookup(client(addr));

    // A webhook about a request the platform does not know: not handed on, released.
    let out = intake
        .hand_on(webhook_decision("FAJ-UNKNOWN"))
        .await
        .unwrap();
    assert_eq!(out, HandOnOutcome::Failed);
    assert_eq!(recorder.calls.load(std::sync::atomic::Ordering::SeqCst), 0);

    // Without a decision's origin the webhook is completed by one read.
    let d = webhook_decision(&id);
    assert_eq!(d.route(), None);
    assert!(d.needs_origin());
    assert_eq!(
        intake.hand_on(d.clone()).await.unwrap(),
        HandOnOutcome::HandedOn
    );
    assert_routed(&recorder.decisions.lock().unwrap()[0]);
    let reads = sim.stat("reads");
    assert!(reads >= 1);
    // A repeat is done before any read.
    assert_eq!(intake.hand_on(d).await.unwrap(), HandOnOutcome::AlreadyDone);
    assert_eq!(sim.stat("reads"), reads);
    sim.shutdown().await;
}
