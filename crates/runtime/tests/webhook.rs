//! The FAJ decision webhook, mounted through the server's `Webhook` trait, answers under
//! `/hooks/faj`: unsigned refused, signed handed on once, both counted by route.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use passerelle_runtime::hooks::{FAJ_HOOK_PATH, FajHook};
use passerelle_server::{AppState, Metrics, Status, Webhook};
use tower::ServiceExt;

fn state() -> AppState {
    let status = Status::new("0.1.0", 7).shared();
    AppState::new(status, Metrics::new())
}

async fn get_it(app: Router, uri: &str) -> (StatusCode, String, String) {
    let resp = app
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let code = resp.status();
    let ctype = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    (code, ctype, String::from_utf8(body.to_vec()).unwrap())
}

#[derive(Default)]
struct Collect(std::sync::Mutex<Vec<String>>);

#[async_trait::async_trait]
impl passerelle_faj::DecisionHandler for Collect {
    async fn handle(
        &self,
        d: passerelle_faj::Decision,
    ) -> Result<(), passerelle_faj::HandlerError> {
        self.0.lock().unwrap().push(d.id_demande);
        Ok(())
    }
}

#[tokio::test]
async fn faj_webhook_is_mounted_under_hooks_faj() {
    use passerelle_faj::webhook::{LogAudit, SIGNATURE_HEADER};
    use passerelle_faj::{DecisionIntake, MemorySeenStore, Secret, WebhookState, sign};

    let handler = Arc::new(Collect::default());
    let intake = DecisionIntake::new(handler.clone(), Arc::new(MemorySeenStore::new()));
    let secret = Secret::new("hook-secret");
    let webhook = WebhookState::new(secret.clone(), intake, Arc::new(LogAudit));
    let st = state();
    let app = passerelle_server::app(st, Some(Arc::new(FajHook(webhook)) as Arc<dyn Webhook>));
    // The webhook refuses a `horodatage` outside its window: now.
    let body = format!(
        r#"{{"id_demande":"D-42","statut":"ACCORDEE","evenement_id":"E-1","horodatage":"{}"}}"#,
        chrono::Utc::now().to_rfc3339()
    );
    let body = body.into_bytes();

    let unsigned = app
        .clone()
        .oneshot(
            Request::post(FAJ_HOOK_PATH)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.clone()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(unsigned.status(), StatusCode::UNAUTHORIZED);

    let signed = app
        .clone()
        .oneshot(
            Request::post(FAJ_HOOK_PATH)
                .header(header::CONTENT_TYPE, "application/json")
                .header(SIGNATURE_HEADER, sign(&secret, &body))
                .body(Body::from(body.clone()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(signed.status(), StatusCode::OK);
    let answer = to_bytes(signed.into_body(), 1 << 16).await.unwrap();
    assert_eq!(&answer[..], br#"{"resultat":"recu"}"#);
    assert_eq!(*handler.0.lock().unwrap(), ["D-42"]);

    let (_, _, metrics) = get_it(app, "/metrics").await;
    assert!(
        metrics.contains("passerelle_http_requests_total{route=\"/hooks/faj\",status=\"401\"} 1\n"),
        "{metrics}"
    );
}
