//! The simulator's own surface: `/sim/faults`, `/sim/stats`, the token endpoint's
//! refusals, and a shutdown that cancels pending commissions.

use std::time::Duration;

use passerelle_faj::sim::{Faults, SimConfig};
use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn faults_and_stats_over_http() {
    let (addr, sim) = sim(SimConfig::default()).await;
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");
    let set = http
        .post(format!("{base}/sim/faults"))
        .json(&json!({"webhook_loss": 0.3, "commission_delay_ms": 50}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    let f: Faults = http
        .get(format!("{base}/sim/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(f.webhook_loss, 0.3);
    assert_eq!(f.commission_delay_ms, 50);
    assert_eq!(f.rate_503, 0.0);
    // An unknown fault is refused, not ignored.
    let bad = http
        .post(format!("{base}/sim/faults"))
        .json(&json!({"rate_42": 1}))
        .send()
        .await
        .unwrap();
    assert!(bad.status().is_client_error());
    // `{}` goes back to the defaults.
    http.post(format!("{base}/sim/faults"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        http.get(format!("{base}/sim/faults"))
            .send()
            .await
            .unwrap()
            .json::<Faults>()
            .await
            .unwrap(),
        Faults::default()
    );

    // Token endpoint: a wrong secret and a wrong grant are refused and counted.
    let refused = http
        .post(format!("{base}/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "sim-client"),
            ("client_secret", "nope"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let grant = http
        .post(format!("{base}/oauth/token"))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(grant.status(), 400);
    let ok: Value = http
        .post(format!("{base}/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "sim-client"),
            ("client_secret", "sim-secret"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ok["token_type"], "Bearer");
    assert_eq!(ok["expires_in"], 3600);
    // No token, no API; no Idempotency-Key, no filing.
    let anon = http
        .get(format!("{base}/api/v1/demandes/FAJ-059-2026-000001"))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);
    let no_key = http
        .post(format!("{base}/api/v1/demandes"))
        .bearer_auth(ok["access_token"].as_str().unwrap())
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), 400);

    let stats: Value = http
        .get(format!("{base}/sim/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["token_refusals"], 2);
    assert_eq!(stats["tokens_issued"], 1);
    assert_eq!(stats["unauthorized"], 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn shutdown_cancels_pending_commissions() {
    let (addr, sim) = sim(SimConfig {
        faults: Faults {
            commission_delay_ms: 3_600_000,
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .await;
    let c = client(addr);
    let body = passerelle_faj::mapping::demande_body(
        &record(1_000),
        passerelle_model::Date::parse("2026-11-21").unwrap(),
    )
    .unwrap();
    c.file_demande("t-1", &body).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), sim.shutdown())
        .await
        .expect("shutdown waits for nothing that never ends");
    // The port is closed.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
