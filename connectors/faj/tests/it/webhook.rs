//! The webhook receiver mounted at `/hooks/faj` on a local port: signatures, repeats,
//! 200 only after the hand-on, and the hostile cases of issue 16 (refusals journaled
//! per window, a rate per client, the timestamp window, replays after a restart).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use passerelle_faj::webhook::{RefusalReason, WebhookLimits, sign};
use passerelle_faj::{FileSeenStore, Secret, webhook::WebhookBody};
use passerelle_model::FajStatut;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::support::*;

fn hook_at(id: &str, evt: &str, at: chrono::DateTime<chrono::Utc>) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id_demande": id,
        "statut": "ACCORDEE",
        "decision": {"date_commission": "2026-12-03", "montant_accorde": 20000},
        "evenement_id": evt,
        "horodatage": at.to_rfc3339()
    }))
    .unwrap()
}

fn hook(id: &str, evt: &str) -> Vec<u8> {
    hook_at(id, evt, chrono::Utc::now())
}

async fn post(url: &str, body: &[u8], signature: Option<&str>) -> reqwest::StatusCode {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(s) = signature {
        req = req.header("X-FAJ-Signature", s);
    }
    req.send().await.unwrap().status()
}

#[tokio::test]
async fn a_good_signature_is_handed_on() {
    tls();
    let rx = Receiver::start("sim-webhook").await;
    let body = hook("FAJ-059-2026-000001", "EVT-1");
    let sig = sign(&Secret::new("sim-webhook"), &body);
    assert_eq!(post(&rx.url(), &body, Some(&sig)).await, 200);
    let got = rx.recorder.decisions.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].statut, FajStatut::Accordee);
    assert_eq!(got[0].decision.montant_accorde, Some(20_000));
    assert_eq!(got[0].evenement_id.as_deref(), Some("EVT-1"));
    let faj = got[0].to_faj().unwrap();
    assert_eq!(faj.date_commission.unwrap().to_string(), "2026-12-03");
    assert!(rx.audit.refused.lock().unwrap().is_empty());
    rx.stop().await;
}

#[tokio::test]
async fn bad_and_missing_signatures_are_refused_and_audited() {
    tls();
    let rx = Receiver::start("sim-webhook").await;
    let body = hook("FAJ-059-2026-000001", "EVT-1");
    let wrong_key = sign(&Secret::new("another-secret"), &body);
    assert_eq!(post(&rx.url(), &body, Some(&wrong_key)).await, 401);
    assert_eq!(post(&rx.url(), &body, None).await, 401);
    assert_eq!(post(&rx.url(), &body, Some("sha1=abcd")).await, 401);
    // A signature of another body.
    let other = sign(
        &Secret::new("sim-webhook"),
        &hook("FAJ-059-2026-000002", "EVT-1"),
    );
    assert_eq!(post(&rx.url(), &body, Some(&other)).await, 401);

    // Counted, then handed to the audit as one window.
    assert!(rx.audit.refused.lock().unwrap().is_empty());
    rx.state.flush_refusals().await;
    let refused = rx.audit.refused.lock().unwrap().clone();
    assert_eq!(refused.len(), 1);
    let by: Vec<_> = refused[0].by_reason.iter().map(|(r, n)| (*r, *n)).collect();
    assert_eq!(
        by,
        vec![
            (RefusalReason::MissingSignature, 1),
            (RefusalReason::MalformedSignature, 1),
            (RefusalReason::BadSignature, 2),
        ]
    );
    assert_eq!(refused[0].bytes, 4 * body.len() as u64);
    assert_eq!(refused[0].clients, 1);
    assert_eq!(rx.recorder.calls.load(Ordering::SeqCst), 0);
    // A refused event is not remembered: the genuine one still goes through.
    let good = sign(&Secret::new("sim-webhook"), &body);
    assert_eq!(post(&rx.url(), &body, Some(&good)).await, 200);
    assert_eq!(rx.recorder.len(), 1);
    rx.stop().await;
}

#[tokio::test]
async fn a_repeated_event_is_answered_200_and_not_handed_on_again() {
    tls();
    let rx = Receiver::start("sim-webhook").await;
    let key = Secret::new("sim-webhook");
    let body = hook("FAJ-059-2026-000001", "EVT-1");
    let sig = sign(&key, &body);
    for _ in 0..3 {
        assert_eq!(post(&rx.url(), &body, Some(&sig)).await, 200);
    }
    // Same decision under another event id: known already.
    let again = hook("FAJ-059-2026-000001", "EVT-9");
    assert_eq!(
        post(&rx.url(), &again, Some(&sign(&key, &again))).await,
        200
    );
    assert_eq!(rx.recorder.len(), 1);
    assert_eq!(rx.recorder.calls.load(Ordering::SeqCst), 1);
    assert!(rx.seen.is_done("evenement:EVT-1"));
    assert!(rx.seen.is_done("evenement:EVT-9"));
    rx.stop().await;
}

#[tokio::test]
async fn a_failed_hand_on_is_not_200_and_the_retry_goes_through() {
    tls();
    let rx = Receiver::start("sim-webhook").await;
    let body = hook("FAJ-059-2026-000001", "EVT-1");
    let sig = sign(&Secret::new("sim-webhook"), &body);
    rx.recorder.fail_all.store(true, Ordering::SeqCst);
    assert_eq!(post(&rx.url(), &body, Some(&sig)).await, 503);
    assert_eq!(rx.recorder.len(), 0);
    rx.recorder.fail_all.store(false, Ordering::SeqCst);
    assert_eq!(post(&rx.url(), &body, Some(&sig)).await, 200);
    assert_eq!(rx.recorder.len(), 1);
    rx.stop().await;
}

#[tokio::test]
async fn the_answer_waits_for_the_hand_on() {
    tls();
    let rx = Receiver::start("sim-webhook").await;
    let gate = CancellationToken::new();
    *rx.recorder.gate.lock().unwrap() = Some(gate.clone());
    let body = hook("FAJ-059-2026-000001", "EVT-1");
    let sig = sign(&Secret::new("sim-webhook"), &body);
    let url = rx.url();
    let (b, s) = (body.clone(), sig.clone());
    let pending = tokio::spawn(async move { post(&url, &b, Some(&s)).await });
    // The handler has been called but has not finished: no answer yet.
    assert!(
        wait_until(Duration::from_secs(5), || rx
            .recorder
            .calls
            .load(Ordering::SeqCst)
            == 1)
        .await
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!pending.is_finished());
    // A copy arriving meanwhile is told to come back later, not 200.
    assert_eq!(post(&rx.url(), &body, Some(&sig)).await, 503);
    gate.cancel();
    assert_eq!(pending.await.unwrap(), 200);
    assert_eq!(rx.recorder.len(), 1);
    rx.stop().await;
}

#[tokio::test]
async fn a_signed_but_unreadable_body_is_400() {
    tls();
    let rx = Receiver::start("sim-webhook").await;
    let key = Secret::new("sim-webhook");
    let body = b"{\"id_demande\": 12}".to_vec();
    assert_eq!(post(&rx.url(), &body, Some(&sign(&key, &body))).await, 400);
    let mut v: WebhookBody = serde_json::from_slice(&hook("FAJ-1", "E")).unwrap();
    v.statut = "VALIDEE".into();
    let body = serde_json::to_vec(&v).unwrap();
    assert_eq!(post(&rx.url(), &body, Some(&sign(&key, &body))).await, 400);
    assert_eq!(rx.recorder.calls.load(Ordering::SeqCst), 0);
    rx.stop().await;
}

/// Hostile case 4: each badly signed POST appended one journal entry (66,867 in 10 s
/// from one client). Now a window's refusals make one audit entry, and the client is
/// held to its rate (429 past `burst`).
#[tokio::test]
async fn a_flood_of_bad_signatures_makes_one_entry_per_window_and_is_rate_limited() {
    tls();
    let limits = WebhookLimits {
        rate_per_second: 50,
        burst: 100,
        refusal_window_secs: 1,
        ..WebhookLimits::default()
    };
    let rx = Receiver::start_with("sim-webhook", limits, None).await;
    let body = hook("FAJ-059-2026-000001", "EVT-1");
    let client = reqwest::Client::new();
    let (mut unauthorized, mut limited) = (0, 0);
    for _ in 0..400 {
        let status = client
            .post(rx.url())
            .header("X-FAJ-Signature", "sha256=00")
            .body(body.clone())
            .send()
            .await
            .unwrap()
            .status();
        match status.as_u16() {
            401 => unauthorized += 1,
            429 => limited += 1,
            other => panic!("{other}"),
        }
    }
    assert!(
        limited > 0 && unauthorized >= 100,
        "{unauthorized} {limited}"
    );
    assert!(
        wait_until(Duration::from_secs(5), || !rx
            .audit
            .refused
            .lock()
            .unwrap()
            .is_empty())
        .await
    );
    let windows = rx.audit.refused.lock().unwrap().clone();
    assert!(windows.len() <= 2, "{windows:?}");
    let total: u64 = windows.iter().map(|w| w.total()).sum();
    rx.state.flush_refusals().await;
    let total = total
        + rx.audit.refused.lock().unwrap()[windows.len()..]
            .iter()
            .map(|w| w.total())
            .sum::<u64>();
    assert_eq!(total, 400);
    rx.stop().await;
}

/// Hostile case 4: timestamps far in the past or the future were accepted.
#[tokio::test]
async fn a_signed_hook_outside_the_time_window_is_refused() {
    tls();
    let rx = Receiver::start("sim-webhook").await;
    let key = Secret::new("sim-webhook");
    let now = chrono::Utc::now();
    for at in [
        now - chrono::Duration::days(30),
        now + chrono::Duration::hours(2),
    ] {
        let body = hook_at("FAJ-059-2026-000001", "EVT-1", at);
        assert_eq!(post(&rx.url(), &body, Some(&sign(&key, &body))).await, 400);
    }
    let mut v: serde_json::Value = serde_json::from_slice(&hook("FAJ-1", "EVT-2")).unwrap();
    v.as_object_mut().unwrap().remove("horodatage");
    let body = serde_json::to_vec(&v).unwrap();
    assert_eq!(post(&rx.url(), &body, Some(&sign(&key, &body))).await, 400);
    assert_eq!(rx.recorder.calls.load(Ordering::SeqCst), 0);
    // A body larger than the limit is refused before it is read.
    let big = vec![b' '; 70 * 1024];
    assert_eq!(post(&rx.url(), &big, Some(&sign(&key, &big))).await, 413);
    rx.state.flush_refusals().await;
    let w = rx.audit.refused.lock().unwrap()[0].clone();
    assert_eq!(w.by_reason[&RefusalReason::OutOfWindow], 3);
    assert_eq!(w.by_reason[&RefusalReason::TooLarge], 1);
    rx.stop().await;
}

/// Hostile case 4: replays after a restart were accepted (the seen-store was in
/// memory). With the durable store, a replay after a restart is answered `deja_recu`
/// and not handed on again.
#[tokio::test]
async fn a_replay_after_a_restart_is_known() {
    tls();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("faj-seen.log");
    let key = Secret::new("sim-webhook");
    let body = hook("FAJ-059-2026-000001", "EVT-1");
    let sig = sign(&key, &body);
    let store = Arc::new(FileSeenStore::open(&path).unwrap());
    let rx = Receiver::start_with("sim-webhook", WebhookLimits::default(), Some(store)).await;
    assert_eq!(post(&rx.url(), &body, Some(&sig)).await, 200);
    assert_eq!(rx.recorder.len(), 1);
    rx.stop().await;

    // The hub restarts: a new process, the same file.
    let store = Arc::new(FileSeenStore::open(&path).unwrap());
    let rx = Receiver::start_with("sim-webhook", WebhookLimits::default(), Some(store)).await;
    assert_eq!(post(&rx.url(), &body, Some(&sig)).await, 200);
    assert_eq!(rx.recorder.len(), 0, "the replay is not handed on again");
    rx.stop().await;
}
