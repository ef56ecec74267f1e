//! Nothing personal that reaches the server (a NIR or an e-mail in a path or query, a
//! personal-looking metrics label) comes out again in logs, metrics or the status page.

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use passerelle_server::{AppState, Metrics, Status, app};
use tower::ServiceExt;

const PERSONAL: [&str; 3] = ["1850578006048", "jeune@example.org", "0612345678"];

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, String) {
    let resp = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let code = resp.status();
    let body = to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    (code, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn no_personal_value_in_logs_metrics_or_pages() {
    let buf = Buffer::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let metrics = Metrics::new();
    let state = AppState::new(Status::new("0.1.0", 7).shared(), metrics.clone());
    let app = app(state, None);

    // A careless caller puts personal values in paths, queries and labels.
    for uri in [
        "/jeunes/1850578006048",
        "/health?email=jeune@example.org",
        "/api/status?tel=0612345678",
    ] {
        let _ = get(&app, uri).await;
    }
    let counter = metrics
        .counter("passerelle_test_total", "t", &["flow"])
        .unwrap();
    for v in PERSONAL {
        counter.with(&[v]).inc();
    }

    let mut outputs = vec![("logs", String::new())];
    outputs.push(("/metrics", get(&app, "/metrics").await.1));
    outputs.push(("/", get(&app, "/").await.1));
    outputs.push(("/api/status", get(&app, "/api/status").await.1));
    outputs[0].1 = String::from_utf8_lossy(&buf.0.lock().unwrap()).into_owned();
    assert!(
        outputs[0].1.contains("label value looks personal"),
        "the redaction is logged: {}",
        outputs[0].1
    );
    assert!(outputs[1].1.contains("route=\"unmatched\",status=\"404\""));
    for (what, text) in outputs {
        for p in PERSONAL {
            assert!(
                !text.contains(p),
                "{what} holds a personal value ({p}): {text}"
            );
        }
    }
}
