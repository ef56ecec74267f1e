//! No personal value in errors, log lines or `Debug` output: a record with distinctive
//! values goes through rejection, filing, a failure and a webhook while every log line
//! of this crate is captured.

use passerelle_connector::Sink;
use passerelle_faj::mapping::demande_body;
use passerelle_faj::sim::{Faults, SimConfig};
use passerelle_faj::webhook::sign;
use passerelle_faj::{FajSink, Secret};
use passerelle_model::{Date, Jeune};

use crate::support::*;

const PERSONAL: &[&str] = &[
    "Zébulonnière",
    "Anatolie",
    "1990-02-03",
    "2004-02-03",
    "impasse des Secrets",
    "Honorine Vasseur",
    "612345678",
    "anatolie.z@example.org",
    "déjà aidée",
];

fn personal_record(naissance: &str) -> Jeune {
    let json = format!(
        r#"{{"schema": "passerelle.jeune/1",
            "identifiants": {{"imilo_dossier": "777"}},
            "etat_civil": {{"nom_naissance": "Zébulonnière", "prenoms": ["Anatolie"], "date_naissance": "{naissance}"}},
            "contact": {{"adresse": {{"numero": "3", "voie": "impasse des Secrets", "code_postal": "59790", "commune": "Ronchin"}},
                         "telephones": ["+33612345678"], "email": "anatolie.z@example.org"}},
            "accompagnement": {{"structure": "59350S00", "conseiller": {{"nom": "Honorine Vasseur"}}}},
            "faj": [{{"date_depot": "2026-11-21", "aides": [{{"type": "urgence", "montant_demande": 15000}}]}}]}}"#
    );
    serde_json::from_str(&json).unwrap()
}

fn assert_clean(what: &str, text: &str) {
    for p in PERSONAL {
        assert!(
            !text.contains(p),
            "{what} holds a personal value ({p}): {text}"
        );
    }
}

#[tokio::test]
async fn no_personal_value_in_errors_logs_or_debug() {
    // The connector's own lines, and the kit's it runs on (retries).
    let (logs, _guard) =
        passerelle_testkit::LogCapture::start("passerelle_faj=trace,passerelle_connector=trace");

    let rx = Receiver::start("sim-webhook").await;
    let (addr, sim) = sim(SimConfig {
        webhook_url: Some(rx.url()),
        faults: Faults {
            commission_delay_ms: 3_600_000,
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .await;
    let sink = FajSink::new(client(addr));

    let too_old = delivery("tr-1", personal_record("1990-02-03"));
    assert_clean("Delivery debug", &format!("{too_old:?}"));
    let body = demande_body(&too_old.record, Date::parse("2026-11-21").unwrap()).unwrap();
    assert_clean("DemandeBody debug", &format!("{body:?}"));
    let rejected = sink.deliver(too_old).await.unwrap();
    assert_clean(
        "rejected receipt",
        &serde_json::to_string(&rejected).unwrap(),
    );
    assert_clean("rejected receipt debug", &format!("{rejected:?}"));

    let ok = sink
        .deliver(delivery("tr-2", personal_record("2004-02-03")))
        .await
        .unwrap();
    assert_clean("applied receipt", &format!("{ok:?}"));

    sim.set_faults(Faults {
        rate_503: 1.0,
        ..Faults::default()
    });
    let e = sink
        .deliver(delivery("tr-3", personal_record("2004-02-03")))
        .await
        .unwrap_err();
    assert_clean("error", &format!("{e} {e:?}"));

    // A decision whose motif names the person: received, never logged.
    let hook = serde_json::to_vec(&serde_json::json!({
        "id_demande": "FAJ-059-2026-000001", "statut": "REFUSEE",
        "decision": {"date_commission": "2026-12-03", "montant_accorde": 0,
                     "motif": "Anatolie Zébulonnière déjà aidée"},
        "evenement_id": "EVT-1",
        "horodatage": chrono::Utc::now().to_rfc3339()
    }))
    .unwrap();
    let status = reqwest::Client::new()
        .post(rx.url())
        .header("X-FAJ-Signature", sign(&Secret::new("sim-webhook"), &hook))
        .body(hook.clone())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    let decision = rx.recorder.decisions.lock().unwrap()[0].clone();
    assert_clean("Decision debug", &format!("{decision:?}"));
    // A refused one is logged too, without its body.
    let status = reqwest::Client::new()
        .post(rx.url())
        .header("X-FAJ-Signature", "sha256=00")
        .body(hook)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);

    sim.shutdown().await;
    rx.stop().await;
    let logs = logs.text();
    assert!(logs.contains("request refused by the platform"), "{logs}");
    assert!(logs.contains("request filed"), "{logs}");
    assert!(logs.contains("webhook refused"), "{logs}");
    assert_clean("logs", &logs);
}
