//! The connector against its simulator (spawned in-process on 127.0.0.1:0): keys,
//! pagination, the event queue, idempotent writes, refusals without retry,
//! `Retry-After`, connection resets, and a run under 20 % injected faults.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use passerelle_connector::{Delivery, ErrorKind, ReceiptStatus, Sink, Source};
use passerelle_imilo::sim::{self, Faults, SimConfig, SimHandle, SimKeys, SimStats};
use passerelle_imilo::{
    EventSource, FamilyKeys, ImiloClient, ImiloConfig, ImiloSink, ReconcileSource, RetryConfig,
};
use passerelle_model::Jeune;

async fn start(jeunes: u64, keys: SimKeys) -> (SocketAddr, SimHandle) {
    sim::spawn(SimConfig {
        jeunes,
        seed: 7,
        keys,
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

fn config(addr: SocketAddr) -> ImiloConfig {
    let mut c = sim::client_config(addr);
    c.concurrency = 16;
    c.request_timeout_ms = 10_000;
    c.retry = RetryConfig {
        base_delay_ms: 5,
        max_delay_ms: 100,
        ..RetryConfig::default()
    };
    c
}

fn keys_of(k: &SimKeys) -> FamilyKeys {
    k.family_keys().unwrap()
}

fn client(addr: SocketAddr, tweak: impl FnOnce(&mut ImiloConfig)) -> ImiloClient {
    let mut c = config(addr);
    tweak(&mut c);
    ImiloClient::with_keys(&c, keys_of(&SimKeys::default())).unwrap()
}

fn raw() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn set_faults(addr: SocketAddr, faults: serde_json::Value) {
    let r = raw()
        .post(format!("http://{addr}/sim/faults"))
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

async fn stats(addr: SocketAddr) -> SimStats {
    raw()
        .get(format!("http://{addr}/sim/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn structures(addr: SocketAddr) -> Vec<(String, u64)> {
    let v: serde_json::Value = raw()
        .get(format!("http://{addr}/sim/structures"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["codeStructure"].as_str().unwrap().to_owned(),
                s["dossiers"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn orientation(transfer_id: &str, recipient: &str) -> Delivery {
    let record: Jeune = serde_json::from_value(serde_json::json!({
        "schema": "passerelle.jeune/1",
        "etat_civil": {"nom_naissance": "Le Guével", "prenoms": ["Maïwenn"], "date_naissance": "2005-04-01"},
        "rsa": {"etat_droit": "2", "soumis_droits_devoirs": true},
        "orientation": {"type": "professionnelle", "date": "2026-10-02"}
    }))
    .unwrap();
    Delivery {
        transfer_id: transfer_id.into(),
        flow: "brsa-orientation".into(),
        sender: "CD059".into(),
        recipient: recipient.into(),
        record,
    }
}

fn faj_decision(transfer_id: &str, dossier: u64) -> Delivery {
    let record: Jeune = serde_json::from_value(serde_json::json!({
        "schema": "passerelle.jeune/1",
        "identifiants": {"imilo_dossier": dossier.to_string()},
        "faj": [{"statut": "accordee", "date_commission": "2026-10-20", "aides": [{"type": "urgence", "montant_accorde": 15000}]}]
    }))
    .unwrap();
    Delivery {
        transfer_id: transfer_id.into(),
        flow: "faj-decision".into(),
        sender: "CD059".into(),
        recipient: "59350S00".into(),
        record,
    }
}

#[tokio::test]
async fn keys_are_checked_per_family() {
    let (addr, sim) = start(100, SimKeys::default()).await;
    let good = client(addr, |_| {});
    assert_eq!(good.dossier(1).await.unwrap().id_dossier, 1);

    // A wrong key: 401, not retried.
    let wrong = SimKeys {
        dossiers: "not-a-key".into(),
        ..SimKeys::default()
    };
    let c = ImiloClient::with_keys(&config(addr), keys_of(&wrong)).unwrap();
    let e = c.dossier(1).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    assert!(e.to_string().contains("401"), "{e}");

    // The events key on a dossiers endpoint: 403.
    let other = SimKeys {
        dossiers: "sim-events".into(),
        ..SimKeys::default()
    };
    let c = ImiloClient::with_keys(&config(addr), keys_of(&other)).unwrap();
    let e = c.dossier(1).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    assert!(e.to_string().contains("403"), "{e}");

    // No key at all: 401 with the contract's error body.
    let r = raw()
        .get(format!("http://{addr}/operateurs/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "UNAUTHORIZED");

    let s = stats(addr).await;
    assert_eq!((s.unauthorized, s.forbidden), (2, 1));
    assert_eq!(s.requests, 4, "refusals are not retried");
    sim.shutdown().await;
}

#[tokio::test]
async fn listings_paginate_and_filter() {
    let (addr, sim) = start(6_000, SimKeys::default()).await;
    let list = structures(addr).await;
    assert_eq!(list.len(), 3);
    assert_eq!(list.iter().map(|s| s.1).sum::<u64>(), 6_000);
    let c = client(addr, |c| c.page_size = 150);
    let mut ids = BTreeSet::new();
    for (code, count) in &list {
        let mut pages = c.structure_dossiers(code.clone(), None);
        let mut n = 0;
        while let Some(page) = pages.next().await {
            let page = page.unwrap();
            assert!(page.len() <= 150);
            n += page.len() as u64;
            ids.extend(page.iter().map(|d| d.id_dossier));
        }
        assert_eq!(n, *count);
    }
    assert_eq!(ids, (1..=6_000).collect());

    // taillePage above 150 is refused.
    let r = raw()
        .get(format!(
            "http://{addr}/sue/structures/59350S00/dossiers?page=1&taillePage=151"
        ))
        .header("X-Gravitee-Api-Key", "sim-dossiers")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // modifieDepuis: only what changed after the instant.
    let since = (chrono::Utc::now() - chrono::Duration::seconds(5)).to_rfc3339();
    let r = raw()
        .post(format!("http://{addr}/sim/touch"))
        .json(&serde_json::json!({"idDossier": 4}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page = c.structure_page("59350S00", 1, Some(&since)).await.unwrap();
    assert_eq!(page.total, 1);
    assert_eq!(page.dossiers[0].id_dossier, 4);

    // Reconciliation as a source reads everything.
    let mut src = ReconcileSource::new(c.clone(), list.iter().map(|s| s.0.clone()).collect(), None);
    let mut n = 0;
    loop {
        let batch = src.next_batch().await.unwrap();
        if batch.is_empty() {
            break;
        }
        assert!(batch.iter().all(|i| i.outcome.is_ok()));
        n += batch.len();
    }
    assert_eq!(n, 6_000);
    sim.shutdown().await;
}

#[tokio::test]
async fn events_are_served_again_until_acked() {
    let (addr, sim) = start(400, SimKeys::default()).await;
    let c = client(addr, |_| {});
    let mut src = EventSource::new(c.clone());
    let first = src.next_batch().await.unwrap();
    assert_eq!(first.len(), 150);
    // Handed out and not acked: this source does not hand them out twice...
    assert!(src.next_batch().await.unwrap().is_empty());
    // ...but the API serves them again, so a restarted source gets them back.
    let mut restarted = EventSource::new(c.clone());
    let again = restarted.next_batch().await.unwrap();
    let ids = |b: &[passerelle_connector::SourceItem]| -> Vec<String> {
        b.iter().map(|i| i.ack.0.clone()).collect()
    };
    assert_eq!(ids(&first), ids(&again));
    assert_eq!(stats(addr).await.events_pending, 400);

    let mut seen = BTreeSet::new();
    let mut batch = again;
    loop {
        for item in &batch {
            let j = item.outcome.as_ref().unwrap();
            seen.insert(
                j.identifiants
                    .imilo_dossier
                    .as_ref()
                    .unwrap()
                    .as_str()
                    .parse::<u64>()
                    .unwrap(),
            );
        }
        let tokens: Vec<_> = batch.iter().map(|i| i.ack.clone()).collect();
        restarted.ack(&tokens).await.unwrap();
        batch = restarted.next_batch().await.unwrap();
        if batch.is_empty() {
            break;
        }
    }
    assert_eq!(seen, (1..=400).collect());
    assert_eq!(stats(addr).await.events_pending, 0);

    // An update is read; an archive and an appointment are settled by the source.
    let http = raw();
    for body in [
        serde_json::json!({"idDossier": 5}),
        serde_json::json!({"idDossier": 5}),
        serde_json::json!({"idDossier": 6, "action": "ARCHIVE"}),
        serde_json::json!({"idDossier": 7, "type": "RDV", "action": "CREATE"}),
    ] {
        let r = http
            .post(format!("http://{addr}/sim/touch"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let batch = restarted.next_batch().await.unwrap();
    assert_eq!(batch.len(), 1, "two updates of one dossier give one item");
    assert_eq!(batch[0].ack.0.split(',').count(), 2);
    assert_eq!(restarted.take_removed(), vec![6]);
    assert_eq!(stats(addr).await.events_pending, 2);
    restarted.ack(&[batch[0].ack.clone()]).await.unwrap();
    assert_eq!(stats(addr).await.events_pending, 0);
    // The archived dossier is gone.
    assert_eq!(c.dossier(6).await.unwrap_err().kind(), ErrorKind::NotFound);
    sim.shutdown().await;
}

#[tokio::test]
async fn writes_are_idempotent_and_refusals_not_retried() {
    let (addr, sim) = start(100, SimKeys::default()).await;
    let sink = ImiloSink::new(client(addr, |_| {}));
    let a = sink.deliver(orientation("tr-1", "59350S00")).await.unwrap();
    let b = sink.deliver(orientation("tr-1", "59350S00")).await.unwrap();
    assert!(
        matches!(&a.status, ReceiptStatus::Applied { peer_ref: Some(p) } if p.starts_with("PRE-"))
    );
    assert_eq!(a, b, "same referenceExterne, same first answer");
    let e1 = sink.deliver(faj_decision("tr-2", 42)).await.unwrap();
    let e2 = sink.deliver(faj_decision("tr-2", 42)).await.unwrap();
    assert_eq!(e1, e2);
    let s = stats(addr).await;
    assert_eq!(
        (s.writes.orientations, s.writes.evenements, s.replays),
        (1, 1, 2)
    );

    // 422: unknown structure → rejected receipt, one request only.
    let before = stats(addr).await.requests_by_family["partenaires"];
    let r = sink.deliver(orientation("tr-3", "99999S99")).await.unwrap();
    match r.status {
        ReceiptStatus::Rejected { reasons } => {
            assert!(reasons[0].contains("422 STRUCTURE_INCONNUE"), "{reasons:?}")
        }
        other => panic!("expected rejected, got {other:?}"),
    }
    assert_eq!(
        stats(addr).await.requests_by_family["partenaires"],
        before + 1
    );

    // 400: a malformed événement is refused at once, not retried.
    let c = client(addr, |_| {});
    let body = passerelle_imilo::wire::EvenementRequest {
        reference_externe: "tr-4".into(),
        kind: "INCONNU".into(),
        date: "2026-11-01".into(),
        contenu: serde_json::json!({}),
    };
    let e = c.post_evenement(3, &body).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(
        stats(addr).await.requests_by_family["partenaires"],
        before + 2
    );
    // 404 on the dossier: a rejected receipt too.
    let r = sink.deliver(faj_decision("tr-5", 100_000)).await.unwrap();
    assert!(matches!(r.status, ReceiptStatus::Rejected { .. }));

    // Situations: idempotent with a referenceExterne.
    let situation = passerelle_imilo::wire::SituationRequest {
        reference_externe: Some("tr-6".into()),
        date_debut: "2026-11-02".into(),
        date_fin_reelle: None,
        commentaire: None,
        mesure: "FORMATION".into(),
        login_conseiller: Some("jdupont".into()),
    };
    assert_eq!(
        c.post_situation(9, &situation).await.unwrap(),
        passerelle_imilo::WriteOutcome::Created
    );
    assert_eq!(
        c.post_situation(9, &situation).await.unwrap(),
        passerelle_imilo::WriteOutcome::Replayed
    );
    assert_eq!(stats(addr).await.writes.situations, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let (addr, sim) = start(100, SimKeys::default()).await;
    set_faults(addr, serde_json::json!({"rate_limit_per_s": 1})).await;
    // Backoff alone would give up after a few milliseconds: only honouring the
    // peer's `Retry-After: 1` gets the second request through.
    let c = client(addr, |c| {
        c.retry.base_delay_ms = 1;
        c.retry.max_delay_ms = 2;
        c.retry.max_attempts = 4;
    });
    c.dossier(1).await.unwrap();
    let t = Instant::now();
    c.dossier(2).await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    assert!(stats(addr).await.faults.rate_limited >= 1);
    assert!(c.retry_stats().retries >= 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_reset_is_a_retryable_connection_error() {
    let (addr, sim) = start(100, SimKeys::default()).await;
    set_faults(addr, serde_json::json!({"rate_reset": 1.0})).await;
    let c = client(addr, |c| c.retry.max_attempts = 1);
    let e = c.dossier(1).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Retryable);
    assert!(e.to_string().contains("connection error"), "{e}");
    assert_eq!(stats(addr).await.faults.resets, 1);
    // 503 too is retryable, and the client gets through once faults stop.
    set_faults(addr, serde_json::json!({"rate_503": 1.0})).await;
    let e = c.dossier(1).await.unwrap_err();
    assert!(e.is_retryable() && e.to_string().contains("503"), "{e}");
    set_faults(addr, serde_json::json!({})).await;
    c.dossier(1).await.unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn everything_read_and_written_exactly_once_under_faults() {
    let n = 500u64;
    let (addr, sim) = start(n, SimKeys::default()).await;
    let c = client(addr, |c| {
        c.concurrency = 32;
        c.retry.max_attempts = 12;
        c.retry.base_delay_ms = 10;
        c.retry.max_delay_ms = 200;
        c.retry.budget_capacity = 2_000.0;
    });
    // 20 % of API requests fail: 429 with Retry-After, 503, or a dropped connection.
    set_faults(
        addr,
        serde_json::json!({"rate_429": 0.05, "rate_503": 0.08, "rate_reset": 0.07, "retry_after_s": 1}),
    )
    .await;

    // The event queue, acked batch by batch.
    let mut src = EventSource::new(c.clone());
    let mut seen = BTreeSet::new();
    loop {
        let batch = src.next_batch().await.unwrap();
        if batch.is_empty() {
            break;
        }
        for item in &batch {
            let j = item.outcome.as_ref().unwrap();
            assert!(
                seen.insert(
                    j.identifiants
                        .imilo_dossier
                        .as_ref()
                        .unwrap()
                        .as_str()
                        .to_owned()
                )
            );
        }
        let tokens: Vec<_> = batch.iter().map(|i| i.ack.clone()).collect();
        src.ack(&tokens).await.unwrap();
    }
    assert_eq!(seen.len() as u64, n);

    // The reconciliation.
    let list = structures(addr).await;
    let mut rec = ReconcileSource::new(c.clone(), list.into_iter().map(|s| s.0).collect(), None);
    let mut read = 0;
    loop {
        let b = rec.next_batch().await.unwrap();
        if b.is_empty() {
            break;
        }
        read += b.len() as u64;
    }
    assert_eq!(read, n);

    // Writes, 32 at a time.
    let sink = Arc::new(ImiloSink::new(c.clone()));
    let deliveries: Vec<Delivery> = (0..150)
        .map(|i| orientation(&format!("or-{i}"), "59350S00"))
        .chain((0..60).map(|i| faj_decision(&format!("faj-{i}"), 1 + i)))
        .collect();
    let receipts: Vec<_> = futures::stream::iter(deliveries.into_iter().map(|d| {
        let sink = sink.clone();
        async move { sink.deliver(d).await }
    }))
    .buffer_unordered(32)
    .collect()
    .await;
    for r in &receipts {
        let r = r.as_ref().unwrap();
        assert!(matches!(r.status, ReceiptStatus::Applied { .. }), "{r:?}");
    }

    let s = stats(addr).await;
    // Each orientation applied once opened one dossier, announced by one event.
    assert_eq!(s.events_pending, 150);
    assert_eq!(
        structures(addr).await.iter().map(|s| s.1).sum::<u64>(),
        n + 150
    );
    assert_eq!(
        (s.writes.orientations, s.writes.evenements),
        (150, 60),
        "{s:?}"
    );
    assert!(
        s.faults.http_429 > 0 && s.faults.http_503 > 0 && s.faults.resets > 0,
        "{s:?}"
    );
    let rate = s.faults.injected() as f64 / s.requests as f64;
    assert!((0.12..0.28).contains(&rate), "fault rate {rate}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn keys_never_reach_debug_logs_or_errors() {
    let (capture, _guard) = passerelle_testkit::LogCapture::start("trace");

    let keys = SimKeys {
        dossiers: "KEY-dossiers-3f9a61c2".into(),
        events: "KEY-events-77b0e4d1".into(),
        situations: "KEY-situations-0c5e2a98".into(),
        partenaires: "KEY-partenaires-d41f0b37".into(),
    };
    let secrets = [
        keys.dossiers.clone(),
        keys.events.clone(),
        keys.situations.clone(),
        keys.partenaires.clone(),
        "KEY-wrong-9e8d7c6b".into(),
    ];
    let (addr, sim) = start(50, keys.clone()).await;
    let cfg = config(addr);
    let c = ImiloClient::with_keys(&cfg, keys_of(&keys)).unwrap();
    let mut texts = vec![
        format!("{c:?}"),
        format!("{cfg:?}"),
        format!("{:?}", keys_of(&keys)),
        format!("{keys:?}"),
    ];
    c.dossier(1).await.unwrap();
    c.events().await.unwrap();
    // Errors: 401 with an unknown key, 403 with another family's, retries after faults.
    let mut wrong = keys.clone();
    wrong.dossiers = "KEY-wrong-9e8d7c6b".into();
    wrong.events = keys.partenaires.clone();
    let bad = ImiloClient::with_keys(&cfg, keys_of(&wrong)).unwrap();
    texts.push(bad.dossier(1).await.unwrap_err().to_string());
    texts.push(format!("{:?}", bad.events().await.unwrap_err()));
    sim.set_faults(Faults {
        rate_503: Some(0.5),
        ..Faults::default()
    })
    .unwrap();
    for id in 1..=10 {
        let _ = c.dossier(id).await;
    }
    let logs = capture.text();
    assert!(
        logs.contains("imilo retry"),
        "the capture saw no retry log: {logs}"
    );
    texts.push(logs);
    for text in &texts {
        for s in &secrets {
            assert!(!text.contains(s.as_str()), "a key leaked into: {text}");
        }
    }
    sim.shutdown().await;
}

/// `deliver_batch` under every fault the simulator injects (timeouts from latency, 429
/// with `Retry-After`, 503, connections closed before or after the write): the batch
/// is retried whole, as the engine does after a failure, and every transfer is still
/// applied exactly once, with receipts in the batch's order.
#[tokio::test]
async fn batches_retried_whole_are_applied_exactly_once() {
    let (addr, sim) = start(200, SimKeys::default()).await;
    // The first attempt gives up quickly; the retry is another sink over the same
    // simulator, as after an engine restart.
    let impatient = ImiloSink::new(client(addr, |c| {
        c.concurrency = 8;
        c.request_timeout_ms = 150;
        c.retry.max_attempts = 2;
    }));
    let c = client(addr, |c| {
        c.concurrency = 8;
        c.retry.max_attempts = 12;
        c.retry.base_delay_ms = 10;
        c.retry.max_delay_ms = 200;
        c.retry.budget_capacity = 5_000.0;
    });
    let sink = ImiloSink::new(c);
    let batch = || -> Vec<Delivery> {
        (0..60)
            .map(|i| orientation(&format!("batch-or-{i}"), "59350S00"))
            .chain((0..40).map(|i| faj_decision(&format!("batch-faj-{i}"), 1 + i)))
            .collect()
    };
    let order: Vec<String> = batch().into_iter().map(|d| d.transfer_id).collect();

    // Every answer slower than the client's timeout: the whole batch fails, retryably.
    set_faults(addr, serde_json::json!({"latency_ms": 400})).await;
    let first = impatient.deliver_batch(batch()).await;
    assert_eq!(first.len(), order.len());
    for r in &first {
        let e = r.as_ref().unwrap_err();
        assert!(e.is_retryable(), "{e}");
    }

    // Then a quarter of the requests fail; the batch is sent again, whole, twice.
    set_faults(
        addr,
        serde_json::json!({"rate_429": 0.06, "rate_503": 0.08, "rate_reset": 0.11, "retry_after_s": 1}),
    )
    .await;
    for round in 0..2 {
        let receipts = sink.deliver_batch(batch()).await;
        let ids: Vec<&str> = receipts
            .iter()
            .map(|r| r.as_ref().unwrap().transfer_id.as_str())
            .collect();
        assert_eq!(ids, order, "round {round}: receipts follow the batch order");
        for r in &receipts {
            let r = r.as_ref().unwrap();
            assert!(matches!(r.status, ReceiptStatus::Applied { .. }), "{r:?}");
        }
    }
    let s = stats(addr).await;
    assert_eq!(
        (s.writes.orientations, s.writes.evenements),
        (60, 40),
        "each transfer applied once: {s:?}"
    );
    assert!(
        s.replays >= 100,
        "the second round replays every write: {s:?}"
    );
    assert!(
        s.faults.http_429 > 0 && s.faults.http_503 > 0 && s.faults.resets > 0,
        "{s:?}"
    );
    sim.shutdown().await;
}

/// `deliver_batch` keeps at most `concurrency` calls in flight, and does use them.
#[tokio::test]
async fn batch_concurrency_is_bounded() {
    let (addr, sim) = start(50, SimKeys::default()).await;
    let c = client(addr, |c| c.concurrency = 4);
    let sink = ImiloSink::new(c);
    set_faults(addr, serde_json::json!({"latency_ms": 200})).await;
    let batch: Vec<Delivery> = (0..16)
        .map(|i| orientation(&format!("bound-{i}"), "59350S00"))
        .collect();
    let t = Instant::now();
    let receipts = sink.deliver_batch(batch).await;
    let took = t.elapsed();
    assert!(receipts.iter().all(Result::is_ok));
    // 16 calls of at least 200 ms, 4 at a time: no less than 4 rounds; one at a time
    // would take 3.2 s, so well under that proves they overlapped.
    assert!(took >= Duration::from_millis(800), "{took:?}");
    assert!(took < Duration::from_millis(3_000), "{took:?}");
    sim.shutdown().await;
}

fn orientation_with_caf(transfer_id: &str, recipient: &str) -> Delivery {
    let record: Jeune = serde_json::from_value(serde_json::json!({
        "schema": "passerelle.jeune/1",
        "identifiants": {"caf": {"organisme": "CAF", "numero_allocataire": "7654321"}},
        "etat_civil": {"nom_naissance": "de La Fontaine", "nom_usage": "Lecœur", "prenoms": ["Anaïs", "Marie"], "date_naissance": "2004-12-31"},
        "contact": {
            "email": "anais.lafontaine@example.org",
            "telephones": ["06 12 34 56 78"],
            "adresse": {"numero": "3", "voie": "rue Sainte-Thérèse", "code_postal": "59000", "commune": "Lille"}
        },
        "rsa": {"etat_droit": "2", "soumis_droits_devoirs": true},
        "orientation": {"type": "socio_professionnelle", "date": "2026-10-02"}
    }))
    .unwrap();
    Delivery {
        transfer_id: transfer_id.into(),
        flow: "brsa-orientation".into(),
        sender: "CD059".into(),
        recipient: recipient.into(),
        record,
    }
}

/// Every dossier of a structure, through the client's pagination.
async fn all_dossiers(
    c: &ImiloClient,
    code: &str,
    since: Option<String>,
) -> Vec<passerelle_imilo::wire::Dossier> {
    let mut out = Vec::new();
    let mut pages = c.structure_dossiers(code.to_owned(), since);
    while let Some(page) = pages.next().await {
        out.extend(page.unwrap());
    }
    out
}

#[tokio::test]
async fn an_accepted_orientation_opens_a_dossier() {
    let n = 3_000u64;
    let (addr, sim) = start(n, SimKeys::default()).await;
    let before_orientation = chrono::Utc::now() - chrono::Duration::seconds(1);
    let c = client(addr, |_| {});
    let list = structures(addr).await;
    let (code, count) = list[1].clone();

    let body =
        passerelle_imilo::orientation_request(&orientation_with_caf("tr-caf", &code)).unwrap();
    let (outcome, first) = c.post_orientation(&body).await.unwrap();
    assert_eq!(outcome, passerelle_imilo::WriteOutcome::Created);
    let id = first.id_dossier.expect("a new orientation opens a dossier");
    assert_eq!(
        id,
        n + 1,
        "opened dossiers are numbered after the population"
    );

    // The structure lists it, also when asked for what changed since before now.
    let all = all_dossiers(&c, &code, None).await;
    assert_eq!(all.len() as u64, count + 1);
    let recent = all_dossiers(&c, &code, Some(before_orientation.to_rfc3339())).await;
    assert_eq!(
        recent.iter().map(|d| d.id_dossier).collect::<Vec<_>>(),
        vec![id]
    );
    let d = &recent[0];
    assert_eq!(d.numero_allocataire.as_deref(), Some("7654321"));
    assert_eq!(d.nom_naissance.as_deref(), Some("de La Fontaine"));
    assert_eq!(d.nom_usage.as_deref(), Some("Lecœur"));
    assert_eq!(d.prenom.as_deref(), Some("Anaïs Marie"));
    assert_eq!(d.date_naissance.as_deref(), Some("2004-12-31"));
    assert_eq!(d.mail.as_deref(), Some("anais.lafontaine@example.org"));
    assert!(d.telephone.is_some());
    assert_eq!(
        d.structure_rattachement
            .as_ref()
            .unwrap()
            .code_structure
            .as_deref(),
        Some(code.as_str())
    );
    assert_eq!(
        d.accompagnement_cej
            .as_ref()
            .unwrap()
            .premier_accompagnement
            .as_deref(),
        Some("2026-10-02")
    );
    // Other structures did not get it; GET by id serves it; /sim/structures counts it.
    let other = &list[0].0;
    assert!(
        all_dossiers(&c, other, Some(before_orientation.to_rfc3339()))
            .await
            .is_empty()
    );
    assert_eq!(c.dossier(id).await.unwrap(), *d);
    assert_eq!(structures(addr).await[1].1, count + 1);

    // Its mapping carries the CAF number, identity and accompaniment, cleanly.
    let m = passerelle_imilo::dossier_to_jeune(d);
    assert!(
        m.rejects.is_empty() && m.warnings.is_empty(),
        "{:?} {:?}",
        m.rejects,
        m.warnings
    );
    let j = m.record.expect("a record");
    let caf = j.identifiants.caf.as_ref().expect("identifiants.caf");
    assert_eq!(caf.numero_allocataire.as_str(), "7654321");
    assert_eq!(
        j.identifiants.imilo_dossier.as_ref().unwrap().as_str(),
        id.to_string()
    );
    assert_eq!(
        j.etat_civil.prenoms,
        vec!["Anaïs".to_owned(), "Marie".to_owned()]
    );
    assert_eq!(
        j.etat_civil.date_naissance.unwrap().to_string(),
        "2004-12-31"
    );
    let acc = j.accompagnement.as_ref().expect("accompagnement");
    assert_eq!(acc.date_debut.unwrap().to_string(), "2026-10-02");
    assert!(acc.dispositif.is_some());

    // The event feed announces it after the initial events.
    let mut src = EventSource::new(c.clone());
    let mut created = Vec::new();
    loop {
        let batch = src.next_batch().await.unwrap();
        if batch.is_empty() {
            break;
        }
        for item in &batch {
            let j = item.outcome.as_ref().unwrap();
            let dossier = j
                .identifiants
                .imilo_dossier
                .as_ref()
                .unwrap()
                .as_str()
                .to_owned();
            if dossier == id.to_string() {
                created.push(j.identifiants.caf.clone());
            }
        }
        let tokens: Vec<_> = batch.iter().map(|i| i.ack.clone()).collect();
        src.ack(&tokens).await.unwrap();
    }
    assert_eq!(created.len(), 1);
    assert!(created[0].is_some());

    // A replay answers the first answer and opens nothing.
    let (outcome, again) = c.post_orientation(&body).await.unwrap();
    assert_eq!(outcome, passerelle_imilo::WriteOutcome::Replayed);
    assert_eq!(again, first);
    assert_eq!(all_dossiers(&c, &code, None).await.len() as u64, count + 1);
    let s = stats(addr).await;
    assert_eq!(
        (s.writes.orientations, s.replays, s.events_pending),
        (1, 1, 0)
    );

    // A second person gets the next id.
    let second = passerelle_imilo::orientation_request(&orientation("tr-2", &code)).unwrap();
    assert_eq!(
        c.post_orientation(&second).await.unwrap().1.id_dossier,
        Some(n + 2)
    );

    // Situations and événements reach an opened dossier like any other.
    let e = c
        .post_evenement(
            id,
            &passerelle_imilo::wire::EvenementRequest {
                reference_externe: "ev-1".into(),
                kind: "OF_SUIVI".into(),
                date: "2026-11-01".into(),
                contenu: serde_json::json!({}),
            },
        )
        .await;
    assert!(e.is_ok(), "{e:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn opening_dossiers_can_be_turned_off_and_is_deterministic() {
    let (addr, sim) = start(100, SimKeys::default()).await;
    sim.set_orientation_dossiers(false);
    let c = client(addr, |_| {});
    let body =
        passerelle_imilo::orientation_request(&orientation_with_caf("tr-off", "59350S00")).unwrap();
    assert_eq!(c.post_orientation(&body).await.unwrap().1.id_dossier, None);
    assert_eq!(structures(addr).await[0].1, 100);
    assert_eq!(stats(addr).await.events_pending, 100);
    sim.shutdown().await;

    // Same seed, same requests in the same order: the same dossier (but its date).
    let mut seen = Vec::new();
    for _ in 0..2 {
        let (addr, sim) = start(100, SimKeys::default()).await;
        let c = client(addr, |_| {});
        let (_, r) = c.post_orientation(&body).await.unwrap();
        let d = c.dossier(r.id_dossier.unwrap()).await.unwrap();
        seen.push(serde_json::to_value(&d).unwrap());
        sim.shutdown().await;
    }
    assert_eq!(seen[0], seen[1]);
}

#[tokio::test]
async fn opened_dossiers_survive_a_restart_through_save_and_restore() {
    let dir = std::env::temp_dir().join(format!("imilo-sim-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("imilo-sim.json");
    let _ = std::fs::remove_file(&path);
    let since = (chrono::Utc::now() - chrono::Duration::seconds(1)).to_rfc3339();
    let body =
        passerelle_imilo::orientation_request(&orientation_with_caf("tr-night-1", "59350S00"))
            .unwrap();

    // First night: the orientation opens dossier 201, then the simulator stops.
    let (addr, sim) = start(200, SimKeys::default()).await;
    assert!(!sim.restore(&path).unwrap(), "no file yet: a first start");
    let c = client(addr, |_| {});
    let (_, first) = c.post_orientation(&body).await.unwrap();
    assert_eq!(first.id_dossier, Some(201));
    sim.save(&path).unwrap();
    sim.shutdown().await;

    // Second night, a new simulator on the same seed and size.
    let (addr, sim) = start(200, SimKeys::default()).await;
    assert!(sim.restore(&path).unwrap());
    let c = client(addr, |_| {});
    let recent = all_dossiers(&c, "59350S00", Some(since)).await;
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0].id_dossier, 201);
    assert_eq!(recent[0].numero_allocataire.as_deref(), Some("7654321"));
    let (outcome, again) = c.post_orientation(&body).await.unwrap();
    assert_eq!(outcome, passerelle_imilo::WriteOutcome::Replayed);
    assert_eq!(again, first);
    let next =
        passerelle_imilo::orientation_request(&orientation("tr-night-2", "59350S00")).unwrap();
    let (_, r) = c.post_orientation(&next).await.unwrap();
    assert_eq!(r.id_dossier, Some(202));
    assert_ne!(r.id_prescription, first.id_prescription);
    sim.shutdown().await;

    // Another population cannot take it: the ids would clash.
    let (_, other) = start(300, SimKeys::default()).await;
    let e = other.restore(&path).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    let msg = e.to_string();
    assert!(msg.contains("seed 7 and 200 dossiers"), "{msg}");
    assert!(
        !msg.contains("7654321") && !msg.contains("Fontaine"),
        "{msg}"
    );
    other.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
