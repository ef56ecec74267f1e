//! The HTTP client stack the API connectors (I-MILO, FAJ) share: secrets read from the
//! environment or a file and never printed (`Secret`, `SecretSource`), one retry
//! policy with a time limit and an overall budget of retry tokens (`RetryConfig`,
//! `Retrier`), a token bucket that paces requests (`TokenBucket`), and the reqwest
//! client built the same way everywhere (`HttpSettings::client`: rustls on ring,
//! timeouts, extra roots). What a status means stays with each connector: that is
//! its peer's protocol.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::ConnectorError;

/// A secret value (API key, client secret, bearer token, webhook key). `Debug` and
/// `Display` print `<redacted>`; the value is reached only through [`Secret::expose`],
/// so that a stray `?config` in a log line leaks nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where a secret comes from. The secret itself is never written in the config file.
///
/// TOML: `client_secret = { env = "FAJ_CLIENT_SECRET" }` or
/// `client_secret = { file = "/run/secrets/faj_client" }`.
///
/// A secret written in clear (`client_secret = "…"`) is refused with a message that
/// never holds it: serde's own would quote the string it did not expect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretSource {
    /// An environment variable's name.
    Env(String),
    /// A file holding the secret (a mounted secret; surrounding whitespace is trimmed).
    File(PathBuf),
}

impl<'de> Deserialize<'de> for SecretSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        const HOW: &str = "a secret must come from { env = \"NAME\" } or { file = \"/path\" }, never be written in the configuration";
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = SecretSource;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("{ env = \"NAME\" } or { file = \"/path\" }")
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Err(E::custom(HOW))
            }
            fn visit_string<E: serde::de::Error>(self, _: String) -> Result<Self::Value, E> {
                Err(E::custom(HOW))
            }
            fn visit_bytes<E: serde::de::Error>(self, _: &[u8]) -> Result<Self::Value, E> {
                Err(E::custom(HOW))
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Err(E::custom(HOW))
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Err(E::custom(HOW))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = None;
                while let Some(key) = map.next_key::<String>()? {
                    if out.is_some() {
                        return Err(serde::de::Error::custom(
                            "a secret names one source: env or file",
                        ));
                    }
                    out = Some(match key.as_str() {
                        "env" => SecretSource::Env(map.next_value()?),
                        "file" => SecretSource::File(map.next_value()?),
                        _ => {
                            // The value is not read back into the message.
                            let _ = map.next_value::<serde::de::IgnoredAny>()?;
                            return Err(serde::de::Error::custom(HOW));
                        }
                    });
                }
                out.ok_or_else(|| serde::de::Error::custom(HOW))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl SecretSource {
    /// Checks the source's shape without reading it. `what` names it in errors
    /// (`client_secret`, `keys.dossiers`).
    pub fn validate(&self, what: &str) -> Result<(), ConnectorError> {
        match self {
            Self::Env(name) => {
                let ok = !name.is_empty()
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    && !name.as_bytes()[0].is_ascii_digit();
                if !ok {
                    return Err(ConnectorError::Config(format!(
                        "{what}: env must name an environment variable (letters, digits, _)"
                    )));
                }
            }
            Self::File(path) => {
                if path.as_os_str().is_empty() {
                    return Err(ConnectorError::Config(format!(
                        "{what}: file must not be empty"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Reads the secret, trimmed. Errors name the variable or file, never the value.
    pub fn resolve(&self, what: &str) -> Result<Secret, ConnectorError> {
        let value = match self {
            Self::Env(name) => std::env::var(name).map_err(|_| {
                ConnectorError::Config(format!(
                    "{what}: environment variable {name} is not set or not unicode"
                ))
            })?,
            Self::File(path) => std::fs::read_to_string(path)
                .map_err(|e| ConnectorError::io(format!("{what} file {}", path.display()), e))?,
        };
        let value = value.trim();
        if value.is_empty() {
            return Err(ConnectorError::Config(format!(
                "{what}: the secret is empty"
            )));
        }
        Ok(Secret::new(value))
    }
}

/// Retries of one request on what its connector calls retryable (429, 5xx, timeouts,
/// connection errors): attempts, backoff, the peer's `Retry-After`, a time limit, and
/// an overall budget shared by every request of a client.
///
/// Deserialised field by field over defaults (`deserialize_over` lets a connector
/// choose its own); FAJ's former names (`initial_backoff_ms`, `max_backoff_ms`,
/// `budget_ms`) are still read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetryConfig {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// Backoff: a random wait in `[0, min(max, base·2^n))` (full jitter).
    pub base_delay_ms: u64,
    pub max_delay_ms: u64,
    /// The longest `Retry-After` the client waits for; above it, the request fails
    /// as retryable and the engine schedules it later.
    pub max_retry_after_ms: u64,
    /// Wall-clock limit for one request and its retries: no attempt starts after it.
    pub max_elapsed_ms: u64,
    /// Overall budget: a bucket of retry tokens, each request adds `budget_ratio`
    /// (capped at `budget_capacity`), each retry takes one. An outage then costs a
    /// bounded number of retries instead of multiplying the load.
    pub budget_capacity: f64,
    pub budget_ratio: f64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay_ms: 100,
            max_delay_ms: 5_000,
            max_retry_after_ms: 60_000,
            max_elapsed_ms: 120_000,
            budget_capacity: 200.0,
            budget_ratio: 0.5,
        }
    }
}

/// The fields of a `[retry]` table, each optional, laid over defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryFields {
    max_attempts: Option<u32>,
    #[serde(alias = "initial_backoff_ms")]
    base_delay_ms: Option<u64>,
    #[serde(alias = "max_backoff_ms")]
    max_delay_ms: Option<u64>,
    max_retry_after_ms: Option<u64>,
    #[serde(alias = "budget_ms")]
    max_elapsed_ms: Option<u64>,
    budget_capacity: Option<f64>,
    budget_ratio: Option<f64>,
}

impl RetryConfig {
    /// Reads a `[retry]` table, taking what it leaves out from `base`: for a
    /// connector whose defaults are not [`RetryConfig::default`]
    /// (`#[serde(deserialize_with = …)]`).
    pub fn deserialize_over<'de, D: serde::Deserializer<'de>>(
        d: D,
        base: RetryConfig,
    ) -> Result<Self, D::Error> {
        let f = RetryFields::deserialize(d)?;
        Ok(Self {
            max_attempts: f.max_attempts.unwrap_or(base.max_attempts),
            base_delay_ms: f.base_delay_ms.unwrap_or(base.base_delay_ms),
            max_delay_ms: f.max_delay_ms.unwrap_or(base.max_delay_ms),
            max_retry_after_ms: f.max_retry_after_ms.unwrap_or(base.max_retry_after_ms),
            max_elapsed_ms: f.max_elapsed_ms.unwrap_or(base.max_elapsed_ms),
            budget_capacity: f.budget_capacity.unwrap_or(base.budget_capacity),
            budget_ratio: f.budget_ratio.unwrap_or(base.budget_ratio),
        })
    }

    /// Checks the policy without I/O; `max_attempts` at most `max_attempts_cap`.
    pub fn validate(&self, max_attempts_cap: u32) -> Result<(), ConnectorError> {
        let bad = |m: String| Err(ConnectorError::Config(m));
        if self.max_attempts == 0 || self.max_attempts > max_attempts_cap {
            return bad(format!(
                "retry.max_attempts must be from 1 to {max_attempts_cap}"
            ));
        }
        if self.base_delay_ms > self.max_delay_ms {
            return bad("retry.base_delay_ms must not exceed retry.max_delay_ms".into());
        }
        if self.max_elapsed_ms == 0 {
            return bad("retry.max_elapsed_ms must be above 0".into());
        }
        let non_negative = |x: f64| x.is_finite() && x >= 0.0;
        if !non_negative(self.budget_capacity) || !non_negative(self.budget_ratio) {
            return bad("retry.budget_capacity and retry.budget_ratio must be 0 or more".into());
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for RetryConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::deserialize_over(d, Self::default())
    }
}

/// Counters of a [`Retrier`], for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryStats {
    pub requests: u64,
    pub retries: u64,
    pub budget_exhausted: u64,
}

/// How a retried request ended without success: the last error, and the attempts.
#[derive(Debug)]
pub struct GaveUp {
    pub error: ConnectorError,
    pub attempts: u32,
}

#[derive(Debug)]
struct Budget {
    tokens: f64,
    stats: RetryStats,
}

/// Runs requests under a [`RetryConfig`]: what fails retryably (`is_retryable`) is
/// tried again with full-jitter exponential backoff, waiting at least the peer's
/// `Retry-After` (`ConnectorError::Unavailable::retry_after`), within the attempts,
/// the time limit and the overall budget. One per client, shared by its requests.
#[derive(Debug)]
pub struct Retrier {
    /// The peer, in logs (`imilo retry`).
    peer: &'static str,
    policy: RetryConfig,
    budget: Mutex<Budget>,
}

impl Retrier {
    pub fn new(peer: &'static str, policy: RetryConfig) -> Self {
        let tokens = policy.budget_capacity;
        Self {
            peer,
            policy,
            budget: Mutex::new(Budget {
                tokens,
                stats: RetryStats::default(),
            }),
        }
    }

    pub fn policy(&self) -> &RetryConfig {
        &self.policy
    }

    pub fn stats(&self) -> RetryStats {
        self.lock().stats
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Budget> {
        self.budget.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let cap = self
            .policy
            .base_delay_ms
            .saturating_mul(1u64 << attempt.min(30))
            .min(self.policy.max_delay_ms);
        if cap == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(rand::random_range(0..=cap))
    }

    /// Runs `attempt` until it succeeds, fails for good, or the policy says stop.
    /// `what` (a route, never a URL with ids) names the request in logs.
    pub async fn run<T, F, Fut>(&self, what: &str, mut attempt: F) -> Result<T, GaveUp>
    where
        F: FnMut() -> Fut + Send,
        Fut: Future<Output = Result<T, ConnectorError>> + Send,
    {
        {
            let mut b = self.lock();
            b.stats.requests += 1;
            b.tokens = (b.tokens + self.policy.budget_ratio).min(self.policy.budget_capacity);
        }
        let started = Instant::now();
        let max_elapsed = Duration::from_millis(self.policy.max_elapsed_ms);
        let max_retry_after = Duration::from_millis(self.policy.max_retry_after_ms);
        let mut attempts = 0u32;
        loop {
            let error = match attempt().await {
                Ok(r) => return Ok(r),
                Err(e) => e,
            };
            attempts += 1;
            let gave_up = |error| Err(GaveUp { error, attempts });
            if !error.is_retryable() || attempts >= self.policy.max_attempts {
                return gave_up(error);
            }
            let hint = match &error {
                ConnectorError::Unavailable { retry_after, .. } => *retry_after,
                _ => None,
            };
            if hint.is_some_and(|h| h > max_retry_after) {
                // The peer asks for a long pause: let the engine schedule it.
                return gave_up(error);
            }
            let wait = match hint {
                // Honour the peer's pause, plus a little jitter so callers spread out.
                Some(h) => h + self.backoff(0),
                None => self.backoff(attempts - 1),
            };
            if started.elapsed() + wait > max_elapsed {
                return gave_up(error);
            }
            {
                let mut b = self.lock();
                if b.tokens < 1.0 {
                    b.stats.budget_exhausted += 1;
                    let peer = self.peer;
                    tracing::warn!(peer, what, "{peer} retry budget exhausted");
                    return gave_up(error);
                }
                b.tokens -= 1.0;
                b.stats.retries += 1;
            }
            let peer = self.peer;
            tracing::debug!(peer, what, attempt = attempts, wait_ms = wait.as_millis() as u64, %error, "{peer} retry");
            tokio::time::sleep(wait).await;
        }
    }
}

/// A token bucket that paces by reservation: a caller takes a token even when the
/// bucket is empty and sleeps until its token would have been there, so waiting
/// callers are served in order at exactly the configured rate.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    pub fn new(rate_per_s: f64, burst: u32) -> Self {
        Self {
            rate: rate_per_s,
            burst: f64::from(burst),
            state: Mutex::new((f64::from(burst), Instant::now())),
        }
    }

    /// A bucket at `rate_per_s`, or none when it is 0 (no pacing).
    pub fn optional(rate_per_s: f64, burst: u32) -> Option<Self> {
        (rate_per_s > 0.0).then(|| Self::new(rate_per_s, burst))
    }

    /// How long the caller must wait for its token (zero when one is there).
    pub fn reserve(&self) -> Duration {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let elapsed = now.duration_since(st.1).as_secs_f64();
        st.0 = (st.0 + elapsed * self.rate).min(self.burst);
        st.1 = now;
        st.0 -= 1.0;
        if st.0 >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-st.0 / self.rate)
        }
    }

    pub async fn acquire(&self) {
        let wait = self.reserve();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// What paces a connector's requests: a `TokenBucket` in this process, or one shared
/// by every hub instance (`passerelle_hub::state::coord::SharedBucket`, a row in
/// PostgreSQL) so that all of them together stay within the peer's limit. Taking a
/// token reserves it: the caller waits the returned time, then sends.
#[async_trait::async_trait]
pub trait Bucket: Send + Sync + std::fmt::Debug {
    /// Takes one token; how long the caller must wait before its request. A shared
    /// bucket that cannot be reached fails the call (retryable): requests are never
    /// sent unpaced.
    async fn take(&self) -> Result<Duration, crate::ConnectorError>;

    /// Takes one token and waits for it.
    async fn pace(&self) -> Result<(), crate::ConnectorError> {
        let wait = self.take().await?;
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Bucket for TokenBucket {
    async fn take(&self) -> Result<Duration, crate::ConnectorError> {
        Ok(self.reserve())
    }
}

/// `Retry-After` in seconds (the peers never send an HTTP date).
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// How the reqwest client of a connector is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// Timeout of one HTTP exchange, connection included.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// Idle connections kept per host (reqwest's default when `None`).
    pub pool_max_idle_per_host: Option<usize>,
    /// PEM certificates trusted on top of the system's roots (a peer under a private
    /// CA); nothing ever accepts an invalid certificate.
    pub extra_roots: Option<PathBuf>,
}

impl HttpSettings {
    pub fn new(request_timeout: Duration, connect_timeout: Duration) -> Self {
        Self {
            request_timeout,
            connect_timeout,
            pool_max_idle_per_host: None,
            extra_roots: None,
        }
    }

    /// The client: rustls on ring (reqwest is built without a provider of its own;
    /// ring is installed unless the binary installed one), the timeouts, the roots.
    pub fn client(&self) -> Result<reqwest::Client, ConnectorError> {
        install_tls_provider();
        let mut b = reqwest::Client::builder()
            .timeout(self.request_timeout)
            .connect_timeout(self.connect_timeout);
        if let Some(n) = self.pool_max_idle_per_host {
            b = b.pool_max_idle_per_host(n);
        }
        if let Some(path) = &self.extra_roots {
            let pem = std::fs::read(path)
                .map_err(|e| ConnectorError::io(format!("extra roots {}", path.display()), e))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|_| {
                ConnectorError::Config(format!(
                    "extra roots {}: not PEM certificates",
                    path.display()
                ))
            })?;
            if certs.is_empty() {
                return Err(ConnectorError::Config(format!(
                    "extra roots {}: no certificate",
                    path.display()
                )));
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        b.build()
            .map_err(|_| ConnectorError::Config("the http client could not be made".into()))
    }
}

/// Installs ring as the process's rustls provider unless one is installed already.
pub fn install_tls_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn unavailable() -> ConnectorError {
        ConnectorError::Unavailable {
            peer: "p".into(),
            reason: "http 503".into(),
            retry_after: None,
        }
    }

    fn fast() -> RetryConfig {
        RetryConfig {
            base_delay_ms: 1,
            max_delay_ms: 2,
            ..RetryConfig::default()
        }
    }

    async fn failing(
        r: &Retrier,
        calls: &AtomicU32,
        fail_first: u32,
        retryable: bool,
    ) -> Result<(), GaveUp> {
        r.run("/x", || async {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            if n >= fail_first {
                Ok(())
            } else if retryable {
                Err(unavailable())
            } else {
                Err(ConnectorError::Rejected {
                    peer: "p".into(),
                    reason: "http 422".into(),
                })
            }
        })
        .await
    }

    #[tokio::test]
    async fn retries_until_success_and_never_a_refusal() {
        let r = Retrier::new("p", fast());
        let calls = AtomicU32::new(0);
        failing(&r, &calls, 3, true).await.unwrap();
        assert_eq!(r.stats().retries, 3);
        let calls = AtomicU32::new(0);
        let e = failing(&r, &calls, 1, false).await.unwrap_err();
        assert_eq!((e.attempts, calls.load(Ordering::SeqCst)), (1, 1));
    }

    #[tokio::test]
    async fn attempts_time_and_budget_are_bounded() {
        let r = Retrier::new(
            "p",
            RetryConfig {
                max_attempts: 4,
                ..fast()
            },
        );
        let calls = AtomicU32::new(0);
        let e = failing(&r, &calls, u32::MAX, true).await.unwrap_err();
        assert_eq!((e.attempts, calls.load(Ordering::SeqCst)), (4, 4));
        assert!(e.error.is_retryable());

        let tight = Retrier::new(
            "p",
            RetryConfig {
                budget_capacity: 2.0,
                budget_ratio: 0.0,
                ..fast()
            },
        );
        let calls = AtomicU32::new(0);
        assert!(failing(&tight, &calls, u32::MAX, true).await.is_err());
        assert!(failing(&tight, &calls, u32::MAX, true).await.is_err());
        // Two retries in the bucket for both requests together, then none.
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        assert_eq!(tight.stats().budget_exhausted, 2);

        // A Retry-After longer than the policy waits for: given back at once.
        let r = Retrier::new(
            "p",
            RetryConfig {
                max_retry_after_ms: 100,
                ..fast()
            },
        );
        let calls = AtomicU32::new(0);
        let e = r
            .run("/x", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(ConnectorError::Unavailable {
                    peer: "p".into(),
                    reason: "http 429".into(),
                    retry_after: Some(Duration::from_secs(5)),
                })
            })
            .await
            .unwrap_err();
        assert_eq!(e.attempts, 1);
    }

    #[test]
    fn bucket_paces_after_burst() {
        let b = TokenBucket::new(10.0, 2);
        assert_eq!(b.reserve(), Duration::ZERO);
        assert_eq!(b.reserve(), Duration::ZERO);
        let w = b.reserve();
        assert!(
            w > Duration::from_millis(80) && w <= Duration::from_millis(100),
            "{w:?}"
        );
        let w2 = b.reserve();
        assert!(w2 > Duration::from_millis(180), "{w2:?}");
        assert!(TokenBucket::optional(0.0, 4).is_none());
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn retry_tables_lay_over_defaults_and_read_the_former_names() {
        let c: RetryConfig = serde_json::from_str(r#"{"max_attempts":3}"#).unwrap();
        assert_eq!(c.max_attempts, 3);
        assert_eq!(c.max_elapsed_ms, RetryConfig::default().max_elapsed_ms);
        let base = RetryConfig {
            max_attempts: 5,
            max_elapsed_ms: 30_000,
            ..RetryConfig::default()
        };
        let mut de = serde_json::Deserializer::from_str(
            r#"{"initial_backoff_ms":7,"max_backoff_ms":70,"budget_ms":700}"#,
        );
        let c = RetryConfig::deserialize_over(&mut de, base.clone()).unwrap();
        assert_eq!(
            (
                c.max_attempts,
                c.base_delay_ms,
                c.max_delay_ms,
                c.max_elapsed_ms
            ),
            (5, 7, 70, 700)
        );
        assert!(serde_json::from_str::<RetryConfig>(r#"{"retries":3}"#).is_err());
        assert!(c.validate(20).is_ok());
        assert!(
            RetryConfig {
                max_attempts: 0,
                ..base.clone()
            }
            .validate(20)
            .is_err()
        );
        assert!(
            RetryConfig {
                max_attempts: 21,
                ..base
            }
            .validate(20)
            .is_err()
        );
    }

    #[test]
    fn secrets_come_from_env_or_file_and_never_show() {
        let s = Secret::new("hunter2-very-secret");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2-very-secret");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, "file-key-123\n").unwrap();
        let got = SecretSource::File(path).resolve("keys.events").unwrap();
        assert_eq!(got.expose(), "file-key-123");
        let missing = SecretSource::Env("PASSERELLE_KIT_SURELY_UNSET".into());
        let e = missing.resolve("client_secret").unwrap_err().to_string();
        assert!(
            e.contains("PASSERELLE_KIT_SURELY_UNSET") && e.contains("client_secret"),
            "{e}"
        );
        assert!(SecretSource::Env("1BAD".into()).validate("x").is_err());
        assert!(SecretSource::Env("BAD-NAME".into()).validate("x").is_err());
        assert!(SecretSource::Env("GOOD_NAME".into()).validate("x").is_ok());
        assert!(SecretSource::File(PathBuf::new()).validate("x").is_err());

        // Written in clear: refused, and the refusal does not hold it.
        for text in [
            r#""hunter2""#,
            r#"{"value":"hunter2"}"#,
            r#"{"env":"A","file":"/b"}"#,
        ] {
            let e = serde_json::from_str::<SecretSource>(text)
                .unwrap_err()
                .to_string();
            assert!(!e.contains("hunter2"), "{e}");
        }
        let ok: SecretSource = serde_json::from_str(r#"{"env":"A"}"#).unwrap();
        assert_eq!(ok, SecretSource::Env("A".into()));
    }

    #[test]
    fn the_client_is_made_with_or_without_extra_roots() {
        let s = HttpSettings::new(Duration::from_secs(5), Duration::from_secs(1));
        s.client().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("roots.pem");
        std::fs::write(&bad, "not a certificate").unwrap();
        let with = |p: PathBuf| HttpSettings {
            extra_roots: Some(p),
            ..s.clone()
        };
        let e = with(bad).client().unwrap_err().to_string();
        assert!(e.contains("roots.pem"), "{e}");
        let e = with(dir.path().join("absent.pem")).client().unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::NotFound);
    }
}
