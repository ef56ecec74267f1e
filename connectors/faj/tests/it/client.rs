//! The client and the sink against the simulator: tokens, 401, retries, idempotency,
//! validation errors, reads, the paginated listing.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use passerelle_connector::{ErrorKind, ReceiptStatus, Sink};
use passerelle_faj::mapping::{AideBody, DemandeBody, demande_body};
use passerelle_faj::sim::{Faults, SimConfig};
use passerelle_faj::{
    DecisionIntake, FajClient, FajSink, FileOutcome, MemorySeenStore, Secret, reconcile,
};
use passerelle_model::Date;

use crate::support::*;

fn body() -> DemandeBody {
    demande_body(&record(25_000), Date::parse("2026-11-21").unwrap()).unwrap()
}

fn no_commission() -> SimConfig {
    SimConfig {
        faults: Faults {
            commission_delay_ms: 3_600_000,
            ..Faults::default()
        },
        ..SimConfig::default()
    }
}

#[tokio::test]
async fn token_is_cached_across_calls() {
    let (addr, sim) = sim(no_commission()).await;
    let c = client(addr);
    for i in 0..5 {
        let out = c.file_demande(&format!("t-{i}"), &body()).await.unwrap();
        let FileOutcome::Filed { id_demande, .. } = out else {
            panic!("not filed")
        };
        c.get_demande(&id_demande).await.unwrap();
    }
    assert_eq!(sim.stat("tokens_issued"), 1);
    assert_eq!(sim.stat("unauthorized"), 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn token_is_renewed_ahead_of_expiry() {
    let (addr, sim) = sim(SimConfig {
        token_ttl: Duration::from_secs(1),
        ..no_commission()
    })
    .await;
    let c = client(addr);
    c.file_demande("t-1", &body()).await.unwrap();
    // The token lives 1 s and is renewed a quarter of its life ahead: at 0.9 s the
    // client must fetch a new one before calling, so the platform never says 401.
    tokio::time::sleep(Duration::from_millis(900)).await;
    c.file_demande("t-2", &body()).await.unwrap();
    assert_eq!(sim.stat("tokens_issued"), 2);
    assert_eq!(sim.stat("unauthorized"), 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn an_expired_token_gets_one_refresh_and_the_call_succeeds() {
    let (addr, sim) = sim(no_commission()).await;
    let c = client(addr);
    c.file_demande("t-1", &body()).await.unwrap();
    sim.expire_tokens();
    let out = c.file_demande("t-2", &body()).await.unwrap();
    assert!(matches!(
        out,
        FileOutcome::Filed {
            replayed: false,
            ..
        }
    ));
    assert_eq!(sim.stat("unauthorized"), 1);
    assert_eq!(sim.stat("tokens_issued"), 2);
    assert_eq!(sim.stat("demandes_created"), 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_second_401_is_not_retried_again() {
    let (addr, sim) = sim(no_commission()).await;
    sim.set_faults(Faults {
        rate_401: 1.0,
        commission_delay_ms: 3_600_000,
        ..Faults::default()
    });
    let c = client(addr);
    let e = c.file_demande("t-1", &body()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    // The first token, then exactly one refresh.
    assert_eq!(sim.stat("tokens_issued"), 2);
    assert_eq!(sim.stat("unauthorized"), 2);
    assert_eq!(sim.stat("demandes_created"), 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn wrong_client_secret_is_unauthorized() {
    let (addr, sim) = sim(no_commission()).await;
    tls();
    let c = FajClient::new(&config(addr), Secret::new("not-the-secret")).unwrap();
    let e = c.file_demande("t-1", &body()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    assert!(!e.to_string().contains("not-the-secret"));
    assert_eq!(sim.stat("token_refusals"), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn the_secret_can_come_from_a_file() {
    let (addr, sim) = sim(no_commission()).await;
    let dir = tempfile::tempdir().unwrap();
    let (cs, ws) = (dir.path().join("client"), dir.path().join("hook"));
    std::fs::write(&cs, "sim-secret\n").unwrap();
    std::fs::write(&ws, "sim-webhook\n").unwrap();
    let mut cfg = config(addr);
    cfg.client_secret = passerelle_faj::SecretSource::File(cs);
    cfg.webhook_secret = passerelle_faj::SecretSource::File(ws);
    let built = cfg.build().unwrap();
    built.client.file_demande("t-1", &body()).await.unwrap();
    assert_eq!(built.webhook_secret.expose(), "sim-webhook");
    sim.shutdown().await;
}

#[tokio::test]
async fn retries_503_within_the_budget() {
    let (addr, sim) = sim(SimConfig {
        seed: 42,
        ..no_commission()
    })
    .await;
    sim.set_faults(Faults {
        rate_503: 0.4,
        commission_delay_ms: 3_600_000,
        ..Faults::default()
    });
    let c = client(addr);
    for i in 0..20 {
        c.file_demande(&format!("t-{i}"), &body()).await.unwrap();
    }
    assert!(sim.stat("faults_503") > 0);
    assert_eq!(sim.stat("demandes_created"), 20);

    // Always 503: the client gives up, as retryable, within its budget.
    sim.set_faults(Faults {
        rate_503: 1.0,
        ..Faults::default()
    });
    let started = std::time::Instant::now();
    let e = c.file_demande("t-x", &body()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Retryable);
    assert!(e.to_string().contains("503"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(6));
    sim.shutdown().await;
}

/// The kit's rate limit, off by default, paces every call once set; the kit's retry
/// counters see the 503s.
#[tokio::test]
async fn a_rate_limit_paces_the_calls() {
    let (addr, sim) = sim(no_commission()).await;
    let mut cfg = config(addr);
    cfg.rate_limit_per_s = 5.0;
    cfg.rate_burst = 1;
    cfg.validate().unwrap();
    let c = FajClient::new(&cfg, Secret::new("sim-secret")).unwrap();
    let started = std::time::Instant::now();
    // A token call and three filings: three waits of 200 ms after the first.
    for i in 0..3 {
        c.file_demande(&format!("t-{i}"), &body()).await.unwrap();
    }
    assert!(
        started.elapsed() >= Duration::from_millis(550),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(c.retry_stats().retries, 0);
    sim.set_faults(Faults {
        rate_503: 1.0,
        ..Faults::default()
    });
    assert!(c.file_demande("t-x", &body()).await.is_err());
    assert!(c.retry_stats().retries > 0);
    cfg.rate_limit_per_s = -1.0;
    assert!(cfg.validate().is_err());
    sim.shutdown().await;
}

#[tokio::test]
async fn connection_refused_is_retryable() {
    tls();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let mut cfg = config(addr);
    cfg.retry.max_attempts = 3;
    let c = FajClient::new(&cfg, Secret::new("sim-secret")).unwrap();
    let e = c.file_demande("t-1", &body()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Retryable);
    assert!(e.to_string().contains("after 3 attempts"), "{e}");
}

#[tokio::test]
async fn the_same_transfer_is_filed_once() {
    let (addr, sim) = sim(no_commission()).await;
    let sink = FajSink::new(client(addr));
    let first = sink
        .deliver(delivery("tr-1", record(25_000)))
        .await
        .unwrap();
    let again = sink
        .deliver(delivery("tr-1", record(25_000)))
        .await
        .unwrap();
    let ReceiptStatus::Applied { peer_ref: Some(id) } = &first.status else {
        panic!("not applied: {first:?}")
    };
    assert!(id.starts_with("FAJ-059-2026-"), "{id}");
    assert_eq!(first, again);
    assert_eq!(first.transfer_id, "tr-1");
    assert_eq!(sim.stat("demandes_created"), 1);
    assert_eq!(sim.stat("idempotent_replays"), 1);
    // The client says which answer was a replay.
    let c = sink.client();
    let out = c.file_demande("tr-1", &body()).await.unwrap();
    assert!(matches!(out, FileOutcome::Filed { replayed: true, .. }));
    sim.shutdown().await;
}

#[tokio::test]
async fn validation_errors_become_a_rejected_receipt_with_each_field() {
    let (addr, sim) = sim(no_commission()).await;
    let sink = FajSink::new(client(addr));

    // 30 years old and above the ceiling: two reasons.
    let r = sink
        .deliver(delivery("tr-1", record_with("1996-01-01", 100_001)))
        .await
        .unwrap();
    let ReceiptStatus::Rejected { reasons } = &r.status else {
        panic!("not rejected: {r:?}")
    };
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[0].starts_with("jeune.date_naissance: AGE_HORS_BORNES: "));
    assert!(reasons[1].starts_with("aides: PLAFOND_DEPASSE: "));

    // 17 without a derogation.
    let r = sink
        .deliver(delivery("tr-2", record_with("2009-06-01", 10_000)))
        .await
        .unwrap();
    assert!(matches!(&r.status, ReceiptStatus::Rejected { reasons }
        if reasons.len() == 1 && reasons[0].starts_with("jeune.date_naissance: AGE_HORS_BORNES")));

    // No aid at all, and no instructeur structure.
    let mut j = record(1);
    j.faj[0].aides.clear();
    j.accompagnement = None;
    let r = sink.deliver(delivery("tr-3", j)).await.unwrap();
    let ReceiptStatus::Rejected { reasons } = &r.status else {
        panic!("not rejected")
    };
    assert!(reasons.iter().any(|r| r.starts_with("aides: AUCUNE_AIDE")));
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("instructeur.code_structure: REQUIS"))
    );

    // Nothing to file: rejected without a call.
    let mut j = record(1);
    j.faj.clear();
    let before = sim.stat("requests");
    let r = sink.deliver(delivery("tr-4", j)).await.unwrap();
    assert!(matches!(r.status, ReceiptStatus::Rejected { .. }));
    assert_eq!(sim.stat("requests"), before);

    // A corrected request under the same transfer id goes through (422s are not kept).
    let r = sink
        .deliver(delivery("tr-2", record_with("2005-06-01", 10_000)))
        .await
        .unwrap();
    assert!(matches!(r.status, ReceiptStatus::Applied { .. }));
    assert_eq!(sim.stat("validation_failures"), 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_minor_with_a_derogation_is_accepted() {
    let (addr, sim) = sim(no_commission()).await;
    let c = client(addr);
    let mut b = demande_body(
        &record_with("2009-06-01", 10_000),
        Date::parse("2026-11-21").unwrap(),
    )
    .unwrap();
    b.derogation_mineur = Some(true);
    assert!(matches!(
        c.file_demande("t-1", &b).await.unwrap(),
        FileOutcome::Filed { .. }
    ));
    sim.shutdown().await;
}

#[tokio::test]
async fn the_sink_serves_only_its_flow() {
    let (addr, sim) = sim(no_commission()).await;
    let sink = FajSink::new(client(addr));
    let mut d = delivery("tr-1", record(1));
    d.flow = "brsa-orientation".into();
    let e = sink.deliver(d).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Permanent);
    sim.shutdown().await;
}

#[tokio::test]
async fn reads_by_id() {
    let (addr, sim) = sim(no_commission()).await;
    let c = client(addr);
    let mut b = body();
    b.aides.push(AideBody {
        kind: "PERMIS".into(),
        montant_demande: Some(30_000),
        paye_a: None,
    });
    let FileOutcome::Filed { id_demande, .. } = c.file_demande("t-1", &b).await.unwrap() else {
        panic!()
    };
    let d = c.get_demande(&id_demande).await.unwrap();
    assert_eq!(d.statut, "DEPOSEE");
    assert_eq!(d.aides.len(), 2);
    assert!(d.decision.is_none());
    let faj = passerelle_faj::mapping::demande_to_faj(&d).unwrap();
    assert_eq!(faj.id.as_deref(), Some(id_demande.as_str()));
    let e = c.get_demande("FAJ-059-2026-999999").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    sim.shutdown().await;
}

#[tokio::test]
async fn reconciliation_pages_through_the_listing() {
    let (addr, sim) = sim(SimConfig {
        faults: Faults {
            commission_delay_ms: 0,
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .await;
    let c = client(addr);
    let t0 = Utc::now() - chrono::Duration::seconds(1);
    for i in 0..250 {
        c.file_demande(&format!("t-{i}"), &body()).await.unwrap();
    }
    assert!(wait_until(Duration::from_secs(10), || sim.verdicts().len() == 250).await);

    let first = c.list_modifiees(t0, 1).await.unwrap();
    assert_eq!(first.demandes.len(), 100);
    assert_eq!(first.total, Some(250));
    let third = c.list_modifiees(t0, 3).await.unwrap();
    assert_eq!(third.demandes.len(), 50);
    assert!(first.demandes[0].id_demande < third.demandes[0].id_demande);

    let recorder = Arc::new(Recorder::default());
    let intake = DecisionIntake::new(recorder.clone(), Arc::new(MemorySeenStore::new()));
    let listings = sim.stat("listings");
    let report = reconcile(&c, &intake, t0).await.unwrap();
    assert_eq!(report.pages, 3);
    assert_eq!(sim.stat("listings") - listings, 3);
    assert_eq!(report.listed, 250);
    assert_eq!(report.decided, 250);
    assert_eq!(report.handed_on, 250);
    assert!(report.next_since.is_some());
    assert_eq!(recorder.per_id().len(), 250);
    for (id, n) in recorder.per_id() {
        assert_eq!(n, 1, "{id}");
    }
    // Every decision matches the commission's.
    let truth: std::collections::HashMap<_, _> = sim
        .verdicts()
        .into_iter()
        .map(|v| (v.id_demande.clone(), v))
        .collect();
    for d in recorder.decisions.lock().unwrap().iter() {
        let v = &truth[&d.id_demande];
        assert_eq!(d.statut, v.statut);
        assert_eq!(d.decision.montant_accorde, v.montant_accorde);
        assert!(d.to_faj().is_ok());
    }

    // A second run hands nothing on again.
    let again = reconcile(&c, &intake, t0).await.unwrap();
    assert_eq!(again.handed_on, 0);
    assert_eq!(again.already_done, 250);
    assert_eq!(recorder.len(), 250);

    // Nothing modified since a date in the future: one empty page.
    let future = Utc.with_ymd_and_hms(2199, 1, 1, 0, 0, 0).unwrap();
    let none = reconcile(&c, &intake, future).await.unwrap();
    assert_eq!((none.pages, none.listed), (1, 0));
    sim.shutdown().await;
}

#[tokio::test]
async fn a_failing_handler_leaves_the_cursor_where_it_was() {
    let (addr, sim) = sim(SimConfig {
        faults: Faults {
            commission_delay_ms: 0,
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .await;
    let c = client(addr);
    let t0 = Utc::now() - chrono::Duration::seconds(1);
    for i in 0..3 {
        c.file_demande(&format!("t-{i}"), &body()).await.unwrap();
    }
    assert!(wait_until(Duration::from_secs(10), || sim.verdicts().len() == 3).await);
    let recorder = Arc::new(Recorder::default());
    recorder
        .fail_all
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let intake = DecisionIntake::new(recorder.clone(), Arc::new(MemorySeenStore::new()));
    let r = reconcile(&c, &intake, t0).await.unwrap();
    assert_eq!((r.failed, r.handed_on), (3, 0));
    assert_eq!(r.next_since, None);
    recorder
        .fail_all
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let r = reconcile(&c, &intake, t0).await.unwrap();
    assert_eq!(r.handed_on, 3);
    sim.shutdown().await;
}
