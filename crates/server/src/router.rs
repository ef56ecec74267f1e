//! The HTTP routes: `/health`, `/ready`, `/metrics`, `/api/status`, `/`, and the place
//! where webhook routers are nested (a [`Webhook`] each: `/hooks/faj`, …).

use std::sync::Arc;
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

/// A webhook receiver a peer calls (a FAJ platform's decisions): the server nests its
/// routes under its path and counts its requests, and knows nothing else of it (the
/// runtime implements it over the connector's receiver).
pub trait Webhook: Send + Sync {
    /// Where its routes are nested (`/hooks/faj`).
    fn path(&self) -> &str;
    /// Its routes, answered under [`Webhook::path`].
    fn router(&self) -> Router;
}

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

/// Nests `hooks` under `path` (a [`Webhook`]'s path and router), then counts every request of the whole
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

/// Each webhook's path and routes, for [`with_hooks`].
fn mounted(hooks: &[Arc<dyn Webhook>]) -> Vec<(&str, Router)> {
    hooks.iter().map(|h| (h.path(), h.router())).collect()
}

/// The usual assembly: the routes, the webhooks (none, or the FAJ platform's), request
/// metrics.
pub fn app(state: AppState, hooks: impl IntoIterator<Item = Arc<dyn Webhook>>) -> Router {
    let hooks: Vec<_> = hooks.into_iter().collect();
    with_hooks(router(state.clone()), mounted(&hooks), &state)
}

/// [`app`] with the web application: its pages replace the status page at `/` (which
/// becomes `/exploitation`, behind a session), and every response carries the
/// security headers (CSP, `nosniff`, `no-referrer`, no framing).
pub fn app_with_web(
    state: AppState,
    hooks: impl IntoIterator<Item = Arc<dyn Webhook>>,
    web: crate::web::WebApp,
) -> Router {
    let hooks: Vec<_> = hooks.into_iter().collect();
    let open = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/api/status", get(api_status))
        .with_state(state.clone());
    // The DPO's alerts are counted in /metrics (when the console is set up).
    let web = web.with_alert_metrics(&state.metrics);
    let base = open.merge(crate::web::routes(web));
    with_hooks(base, mounted(&hooks), &state)
        .layer(middleware::from_fn(crate::web::security_headers))
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

    /// A webhook of a test: answers its path, counting its calls.
    struct Echo(Arc<std::sync::atomic::AtomicUsize>);

    impl Webhook for Echo {
        fn path(&self) -> &str {
            "/hooks/echo"
        }
        fn router(&self) -> Router {
            let calls = self.0.clone();
            Router::new().route(
                "/",
                axum::routing::post(move || {
                    calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    async { "recu" }
                }),
            )
        }
    }

    #[tokio::test]
    async fn webhooks_are_mounted_under_their_path_and_counted() {
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let hook: Arc<dyn Webhook> = Arc::new(Echo(calls.clone()));
        let app = app(state(), Some(hook));
        let resp = app
            .clone()
            .oneshot(Request::post("/hooks/echo").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        let (_, _, metrics) = get_it(app, "/metrics").await;
        assert!(
            metrics.contains(
                "passerelle_http_requests_total{route=\"/hooks/echo\",status=\"200\"} 1\n"
            ),
            "{metrics}"
        );
    }
}
