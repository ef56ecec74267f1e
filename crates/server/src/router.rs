//! The HTTP routes: `/health`, `/ready`, `/metrics`, `/api/status`, `/`, and the place
//! where webhook routers are nested (`/hooks/faj`, …).

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::metrics::{CounterVec, Metrics};
use crate::page;
use crate::readiness::{Readiness, ReadinessReport};
use crate::status::{SharedStatus, Status};

/// Where the FAJ decision webhook is mounted.
pub const FAJ_HOOK_PATH: &str = "/hooks/faj";

/// The Prometheus text format's content type.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the routes read. Cloning shares everything.
#[derive(Debug, Clone)]
pub struct AppState {
    pub metrics: Metrics,
    pub status: SharedStatus,
    pub readiness: Readiness,
    /// When cancelled, `/ready` answers 503 so that balancers stop sending work.
    pub draining: CancellationToken,
    requests: Option<CounterVec>,
}

impl AppState {
    /// State with the given status and metrics, no readiness checks, never draining.
    pub fn new(status: SharedStatus, metrics: Metrics) -> Self {
        let requests = metrics
            .counter(
                "passerelle_http_requests_total",
                "HTTP requests answered, by route pattern and status code.",
                &["route", "status"],
            )
            .ok();
        Self {
            metrics,
            status,
            readiness: Readiness::default(),
            draining: CancellationToken::new(),
            requests,
        }
    }

    pub fn with_readiness(mut self, readiness: Readiness) -> Self {
        self.readiness = readiness;
        self
    }

    /// `/ready` fails once `token` is cancelled (pass the shutdown token).
    pub fn draining_on(mut self, token: CancellationToken) -> Self {
        self.draining = token;
        self
    }
}

/// The routes, without request metrics: [`with_hooks`] (or [`app`]) nests the webhook
/// routers and adds the request counter over everything.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/api/status", get(api_status))
        .with_state(state)
}

/// Nests `hooks` under `path` (for instance [`FAJ_HOOK_PATH`] and
/// `passerelle_faj::WebhookState::router()`), then counts every request of the whole
/// router in `passerelle_http_requests_total{route,status}`.
pub fn with_hooks(base: Router, hooks: Vec<(&str, Router)>, state: &AppState) -> Router {
    let mut r = base;
    for (path, sub) in hooks {
        r = r.nest(path, sub);
    }
    match &state.requests {
        Some(counter) => r.layer(middleware::from_fn_with_state(counter.clone(), count)),
        None => r,
    }
}

/// The usual assembly: the routes, the FAJ webhook when there is one, request metrics.
pub fn app(state: AppState, faj: Option<passerelle_faj::WebhookState>) -> Router {
    let hooks = faj
        .map(|w| (FAJ_HOOK_PATH, w.router()))
        .into_iter()
        .collect();
    with_hooks(router(state.clone()), hooks, &state)
}

/// [`app`] with the web application: its pages replace the status page at `/` (which
/// becomes `/exploitation`, behind a session), and every response carries the
/// security headers (CSP, `nosniff`, `no-referrer`, no framing).
pub fn app_with_web(
    state: AppState,
    faj: Option<passerelle_faj::WebhookState>,
    web: crate::web::WebApp,
) -> Router {
    let open = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/api/status", get(api_status))
        .with_state(state.clone());
    // The DPO's alerts are counted in /metrics (when the console is set up).
    let web = web.with_alert_metrics(&state.metrics);
    let base = open.merge(crate::web::routes(web));
    let hooks = faj
        .map(|w| (FAJ_HOOK_PATH, w.router()))
        .into_iter()
        .collect();
    with_hooks(base, hooks, &state).layer(middleware::from_fn(crate::web::security_headers))
}

async fn count(State(counter): State<CounterVec>, req: Request, next: Next) -> Response {
    // The route pattern, never the raw path: paths and queries may carry identifiers.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let t0 = Instant::now();
    let resp = next.run(req).await;
    counter.with(&[&route, resp.status().as_str()]).inc();
    tracing::debug!(
        route,
        status = resp.status().as_u16(),
        elapsed_ms = t0.elapsed().as_millis() as u64,
        "request"
    );
    resp
}

async fn health() -> &'static str {
    "ok"
}

async fn ready(State(st): State<AppState>) -> Response {
    let report = if st.draining.is_cancelled() {
        ReadinessReport {
            ready: false,
            draining: true,
            checks: Vec::new(),
        }
    } else {
        st.readiness.run().await
    };
    let code = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(report)).into_response()
}

async fn metrics(State(st): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        st.metrics.render(),
    )
        .into_response()
}

fn snapshot(st: &AppState) -> Status {
    st.status.read().unwrap_or_else(|p| p.into_inner()).clone()
}

async fn api_status(State(st): State<AppState>) -> Response {
    axum::Json(snapshot(&st)).into_response()
}

async fn index(State(st): State<AppState>) -> Html<String> {
    Html(page::render(&snapshot(&st)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{FlowOutcome, FlowStatus};
    use axum::body::{Body, to_bytes};
    use axum::http::Request;
    use std::time::Duration;
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

    #[tokio::test]
    async fn health_is_ok() {
        let (code, _, body) = get_it(router(state()), "/health").await;
        assert_eq!((code, body.as_str()), (StatusCode::OK, "ok"));
    }

    #[tokio::test]
    async fn ready_reports_which_check_failed() {
        let st = state();
        let ok = st.clone().with_readiness(
            Readiness::default().check("rabbitmq", || async { Ok::<_, String>(()) }),
        );
        let (code, ctype, body) = get_it(router(ok), "/ready").await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(ctype, "application/json");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["ready"], true);
        assert_eq!(v["checks"][0]["name"], "rabbitmq");

        let bad = st.clone().with_readiness(
            Readiness::new(Duration::from_secs(1))
                .check("rabbitmq", || async { Ok::<_, String>(()) })
                .check("postgresql", || async {
                    Err::<(), _>("connection refused")
                }),
        );
        let (code, _, body) = get_it(router(bad.clone()), "/ready").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["ready"], false);
        let failed: Vec<&str> = v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["ok"] == false)
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(failed, ["postgresql"]);
        assert_eq!(v["checks"][1]["error"], "connection refused");

        // Draining: not ready whatever the checks say, and health still answers.
        let token = CancellationToken::new();
        let draining = st
            .with_readiness(Readiness::default().check("x", || async { Ok::<_, String>(()) }))
            .draining_on(token.clone());
        token.cancel();
        let (code, _, body) = get_it(router(draining.clone()), "/ready").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("\"draining\":true"), "{body}");
        assert_eq!(get_it(router(draining), "/health").await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn metrics_are_prometheus_text_and_count_requests() {
        let st = state();
        st.metrics
            .counter("passerelle_records_sent_total", "Records sent.", &["flow"])
            .unwrap()
            .with(&["brsa-orientation"])
            .inc_by(5);
        let app = app(st.clone(), None);
        assert_eq!(get_it(app.clone(), "/health").await.0, StatusCode::OK);
        assert_eq!(
            get_it(app.clone(), "/no/such/1850578006048").await.0,
            StatusCode::NOT_FOUND
        );
        let (code, ctype, body) = get_it(app, "/metrics").await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(ctype, METRICS_CONTENT_TYPE);
        assert!(
            body.contains("# TYPE passerelle_records_sent_total counter\n"),
            "{body}"
        );
        assert!(body.contains("passerelle_records_sent_total{flow=\"brsa-orientation\"} 5\n"));
        assert!(
            body.contains("passerelle_http_requests_total{route=\"/health\",status=\"200\"} 1\n"),
            "{body}"
        );
        assert!(
            body.contains("passerelle_http_requests_total{route=\"unmatched\",status=\"404\"} 1\n"),
            "{body}"
        );
        assert!(
            !body.contains("1850578006048"),
            "a raw path leaked into a label"
        );
    }

    #[tokio::test]
    async fn status_as_json_and_as_a_page() {
        let st = state();
        {
            let mut s = st.status.write().unwrap();
            s.begin_night(chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap());
            s.record_flow(FlowStatus {
                flow: "brsa-orientation".into(),
                outcome: FlowOutcome::Completed,
                read: 10,
                sent: 8,
                unchanged: 2,
                applied: 7,
                rejected: 1,
                ..FlowStatus::default()
            });
            s.record_flow(FlowStatus {
                flow: "<img src=x onerror=alert(1)>".into(),
                ..FlowStatus::default()
            });
        }
        let (code, ctype, body) = get_it(router(st.clone()), "/api/status").await;
        assert_eq!((code, ctype.as_str()), (StatusCode::OK, "application/json"));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["nights"][0]["flows"][0]["sent"], 8);
        assert_eq!(v["nights"][0]["flows"][0]["outcome"], "completed");
        assert_eq!(v["version"], "0.1.0");

        let (code, ctype, html) = get_it(router(st), "/").await;
        assert_eq!(code, StatusCode::OK);
        assert!(ctype.starts_with("text/html"), "{ctype}");
        assert!(html.contains("<td>brsa-orientation</td><td>completed</td><td>10</td><td>8</td><td>2</td><td>7</td><td>1</td>"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    }

    #[tokio::test]
    async fn nests_hook_routers() {
        let st = state();
        let extra = Router::new().route("/", axum::routing::post(|| async { "hook" }));
        let app = with_hooks(router(st.clone()), vec![("/hooks/test", extra)], &st);
        let resp = app
            .clone()
            .oneshot(Request::post("/hooks/test").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let (_, _, body) = get_it(app, "/metrics").await;
        assert!(
            body.contains(
                "passerelle_http_requests_total{route=\"/hooks/test\",status=\"200\"} 1\n"
            ),
            "{body}"
        );
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
        use std::sync::Arc;

        let handler = Arc::new(Collect::default());
        let intake = DecisionIntake::new(handler.clone(), Arc::new(MemorySeenStore::new()));
        let secret = Secret::new("hook-secret");
        let webhook = WebhookState::new(secret.clone(), intake, Arc::new(LogAudit));
        let st = state();
        let app = app(st, Some(webhook));
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
            metrics.contains(
                "passerelle_http_requests_total{route=\"/hooks/faj\",status=\"401\"} 1\n"
            ),
            "{metrics}"
        );
    }
}
