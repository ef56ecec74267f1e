//! The webhook receiver mounted at `/hooks/faj` on a local port: signatures, repeats,
//! and 200 only after the hand-on.

use std::sync::atomic::Ordering;
use std::time::Duration;

use passerelle_faj::webhook::{RefusalReason, sign};
use passerelle_faj::{Secret, webhook::WebhookBody};
use passerelle_model::FajStatut;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::support::*;

fn hook(id: &str, evt: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id_demande": id,
        "statut": "ACCORDEE",
        "decision": {"date_commission": "2026-12-03", "montant_accorde": 20000},
        "evenement_id": evt,
        "horodatage": "2026-12-03T14:02:11Z"
    }))
    .unwrap()
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

    let refused = rx.audit.refused.lock().unwrap().clone();
    let reasons: Vec<_> = refused.iter().map(|r| r.reason).collect();
    assert_eq!(
        reasons,
        vec![
            RefusalReason::BadSignature,
            RefusalReason::MissingSignature,
            RefusalReason::MalformedSignature,
            RefusalReason::BadSignature
        ]
    );
    assert_eq!(refused[0].body_len, body.len());
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
