//! The conformance suite on the embedded (SQLite) transport.

use std::sync::Arc;

use async_trait::async_trait;
use passerelle_transport::conformance::{self, Harness, MAX_DELIVERIES};
use passerelle_transport::embedded::EmbeddedConfig;
use passerelle_transport::{Transport, conformance_tests};

struct Embedded {
    dir: tempfile::TempDir,
}

impl Embedded {
    fn config(&self) -> EmbeddedConfig {
        let mut c = EmbeddedConfig::new(self.dir.path().join("transport.sqlite"));
        c.max_deliveries = MAX_DELIVERIES;
        c.lease_ms = 1_000;
        c.poll_ms = 50;
        c
    }
}

#[async_trait]
impl Harness for Embedded {
    async fn transport(&self) -> Arc<dyn Transport> {
        Arc::new(self.config().build().await.expect("open the store"))
    }
    async fn stop(&self, current: &Arc<dyn Transport>) {
        current.close().await.expect("close the store");
    }
    async fn start(&self, _current: Arc<dyn Transport>) -> Arc<dyn Transport> {
        self.transport().await
    }
}

async fn harness() -> Option<Embedded> {
    Some(Embedded {
        dir: tempfile::tempdir().expect("temp dir"),
    })
}

conformance_tests!(harness());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_loses_nothing() {
    let h = harness().await.unwrap();
    conformance::restart_loses_nothing(&h).await;
}

#[test]
fn config_refuses_unknown_fields() {
    let r: Result<EmbeddedConfig, _> = serde_json::from_str(r#"{"path":"x","lease":5}"#);
    assert!(r.is_err());
    let c: EmbeddedConfig = serde_json::from_str(r#"{"path":"x"}"#).unwrap();
    c.validate().unwrap();
    let mut bad = c.clone();
    bad.max_deliveries = 0;
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .contains("max_deliveries")
    );
}
