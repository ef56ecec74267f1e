//! Named asynchronous readiness checks (broker, database, peers), run together with a
//! time limit each, for `GET /ready`.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, join_all};
use serde::{Deserialize, Serialize};

type Probe = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// The checks. Cloning shares them.
#[derive(Clone)]
pub struct Readiness {
    checks: Vec<(String, Probe)>,
    timeout: Duration,
}

impl fmt::Debug for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Readiness")
            .field(
                "checks",
                &self.checks.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Default for Readiness {
    fn default() -> Self {
        Self::new(Duration::from_secs(2))
    }
}

/// The answer of `/ready`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadinessReport {
    pub ready: bool,
    /// The process is shutting down and takes no new work.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub draining: bool,
    pub checks: Vec<CheckResult>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    pub name: String,
    pub ok: bool,
    /// Why it failed. Comes from the dependency's client; holds no personal data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub elapsed_ms: u64,
}

impl Readiness {
    /// No checks yet; each check gets `timeout` before it counts as failed.
    pub fn new(timeout: Duration) -> Self {
        Self {
            checks: Vec::new(),
            timeout,
        }
    }

    /// Adds a check named `name` (shown in the report: `rabbitmq`, `postgresql`, `faj`).
    pub fn check<F, Fut, E>(mut self, name: impl Into<String>, probe: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: fmt::Display + 'static,
    {
        let probe: Probe = Arc::new(move || {
            let fut = probe();
            Box::pin(async move { fut.await.map_err(|e| e.to_string()) })
        });
        self.checks.push((name.into(), probe));
        self
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.checks.iter().map(|(n, _)| n.as_str())
    }

    /// Runs every check at once; ready when all pass within the time limit.
    pub async fn run(&self) -> ReadinessReport {
        let timeout = self.timeout;
        let results = join_all(self.checks.iter().map(|(name, probe)| {
            let fut = probe();
            async move {
                let t0 = Instant::now();
                let error = match tokio::time::timeout(timeout, fut).await {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(e),
                    Err(_) => Some(format!("no answer within {} ms", timeout.as_millis())),
                };
                CheckResult {
                    name: name.clone(),
                    ok: error.is_none(),
                    error,
                    elapsed_ms: u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX),
                }
            }
        }))
        .await;
        ReadinessReport {
            ready: results.iter().all(|r| r.ok),
            draining: false,
            checks: results,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reports_each_check_and_times_out() {
        let r = Readiness::new(Duration::from_millis(50))
            .check("rabbitmq", || async { Ok::<(), String>(()) })
            .check("postgresql", || async {
                Err::<(), _>("connection refused on 127.0.0.1:5432")
            })
            .check("faj", || async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok::<(), String>(())
            });
        assert_eq!(
            r.names().collect::<Vec<_>>(),
            ["rabbitmq", "postgresql", "faj"]
        );
        let t0 = Instant::now();
        let report = r.run().await;
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "checks run at once, bounded"
        );
        assert!(!report.ready);
        let by_name = |n: &str| report.checks.iter().find(|c| c.name == n).unwrap().clone();
        assert!(by_name("rabbitmq").ok);
        assert_eq!(
            by_name("postgresql").error.as_deref(),
            Some("connection refused on 127.0.0.1:5432")
        );
        assert_eq!(
            by_name("faj").error.as_deref(),
            Some("no answer within 50 ms")
        );
        assert!(Readiness::default().run().await.ready, "no checks: ready");
    }
}
