//! The HTTP layers, each wrapping the next: `Retrying` (backoff, `Retry-After`,
//! budget) around `RateLimited` (a token bucket per key) around `Plain` (one reqwest
//! exchange, status mapped to a `ConnectorError`). The retry policy, the bucket and
//! the client's making are the kit's (`passerelle_connector::http`); what is I-MILO's
//! is the key per family and what each status means.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use passerelle_connector::ConnectorError;
use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue, RETRY_AFTER};

pub use passerelle_connector::http::{Bucket, RetryStats, TokenBucket, parse_retry_after};
use passerelle_connector::http::{HttpSettings, Retrier, RetryConfig};

use crate::key::{Family, FamilyKeys};
use crate::wire::ErrorBody;

/// The peer name used in errors.
pub const PEER: &str = "imilo";
/// The authentication header of the API gateway.
pub const KEY_HEADER: &str = "X-Gravitee-Api-Key";

/// One API call. `route` is the path template (`/sue/dossiers/{id}`), used in logs
/// and errors so that they carry no identifiers.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub family: Family,
    pub method: Method,
    pub route: &'static str,
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<Bytes>,
}

impl ApiRequest {
    pub fn get(family: Family, route: &'static str, path: String) -> Self {
        Self {
            family,
            method: Method::GET,
            route,
            path,
            query: Vec::new(),
            body: None,
        }
    }

    pub fn post(family: Family, route: &'static str, path: String, body: Option<Bytes>) -> Self {
        Self {
            family,
            method: Method::POST,
            route,
            path,
            query: Vec::new(),
            body,
        }
    }

    fn what(&self) -> String {
        format!("{} {}", self.method, self.route)
    }
}

/// A successful answer (2xx).
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub body: Bytes,
}

/// One layer of the stack.
#[async_trait]
pub trait Exchange: Send + Sync + std::fmt::Debug {
    async fn exchange(&self, req: &ApiRequest) -> Result<ApiResponse, ConnectorError>;
}

/// One plain exchange with reqwest: no retry, no pacing.
pub struct Plain {
    http: reqwest::Client,
    base_url: String,
    keys: FamilyKeys,
    timeout: Duration,
}

impl std::fmt::Debug for Plain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plain")
            .field("base_url", &self.base_url)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl Plain {
    pub fn new(
        base_url: &str,
        keys: FamilyKeys,
        timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<Self, ConnectorError> {
        let http = HttpSettings {
            pool_max_idle_per_host: Some(64),
            ..HttpSettings::new(timeout, connect_timeout)
        }
        .client()?;
        Ok(Self {
            http,
            base_url: base_url.trim().trim_end_matches('/').to_owned(),
            keys,
            timeout,
        })
    }
}

#[async_trait]
impl Exchange for Plain {
    async fn exchange(&self, req: &ApiRequest) -> Result<ApiResponse, ConnectorError> {
        let url = format!("{}{}", self.base_url, req.path);
        let mut key = HeaderValue::from_str(self.keys.get(req.family).expose()).map_err(|_| {
            ConnectorError::Config(format!("keys.{}: not a header value", req.family))
        })?;
        // Marked sensitive so that hyper and reqwest never print it.
        key.set_sensitive(true);
        let mut builder = self
            .http
            .request(req.method.clone(), url)
            .header(KEY_HEADER, key)
            .header(ACCEPT, "application/json");
        if !req.query.is_empty() {
            builder = builder.query(&req.query);
        }
        if let Some(body) = &req.body {
            builder = builder
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let resp = builder
            .send()
            .await
            .map_err(|e| transport_error(req, &e, self.timeout))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = resp
            .bytes()
            .await
            .map_err(|e| transport_error(req, &e, self.timeout))?;
        if (200..300).contains(&status) {
            return Ok(ApiResponse { status, body });
        }
        Err(status_error(req, status, &body, retry_after))
    }
}

fn transport_error(req: &ApiRequest, e: &reqwest::Error, timeout: Duration) -> ConnectorError {
    // reqwest's own message holds the URL; ours names the route only.
    let reason = if e.is_timeout() {
        format!("timeout after {} ms on {}", timeout.as_millis(), req.what())
    } else if e.is_connect() {
        format!("cannot connect for {}", req.what())
    } else {
        format!("connection error on {}", req.what())
    };
    ConnectorError::Unavailable {
        peer: PEER.into(),
        reason,
        retry_after: None,
    }
}

/// Maps a non-2xx answer to an error with its kind. The peer's `{code, message}` is
/// kept for refusals (the sender needs the reason); other statuses keep the code only.
pub fn status_error(
    req: &ApiRequest,
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
) -> ConnectorError {
    let peer_err: Option<ErrorBody> = serde_json::from_slice(body).ok();
    // The peer's code is kept when it looks like one; its message is free text, kept
    // as digest and length only (`passerelle_connector::redact`): it reaches receipts.
    let code = peer_err
        .as_ref()
        .map(|e| passerelle_connector::redact::code(&e.code))
        .unwrap_or_else(|| "-".into());
    match status {
        429 | 500..=599 => ConnectorError::Unavailable {
            peer: PEER.into(),
            reason: format!("http {status} on {}", req.what()),
            retry_after,
        },
        401 | 403 => ConnectorError::Unauthorized {
            peer: PEER.into(),
            reason: format!(
                "http {status} {code} on {} with the {} key",
                req.what(),
                req.family
            ),
        },
        404 => ConnectorError::NotFound {
            peer: PEER.into(),
            what: format!("{} (http 404 {code})", req.route),
        },
        _ => {
            let message: String = peer_err
                .map(|e| passerelle_connector::redact::free_text(&e.message))
                .unwrap_or_default();
            ConnectorError::Rejected {
                peer: PEER.into(),
                reason: format!("http {status} {code} on {}: {message}", req.what()),
            }
        }
    }
}

/// Paces requests per key so the client stays under the API's limit: one bucket per
/// family, in this process or shared by every hub instance (`with_buckets`).
#[derive(Debug)]
pub struct RateLimited<E> {
    inner: E,
    buckets: Option<[Arc<dyn Bucket>; 4]>,
}

impl<E> RateLimited<E> {
    /// `rate_per_s == 0` means no pacing.
    pub fn new(inner: E, rate_per_s: f64, burst: u32) -> Self {
        let bucket = || Arc::new(TokenBucket::new(rate_per_s, burst)) as Arc<dyn Bucket>;
        let buckets = (rate_per_s > 0.0).then(|| [bucket(), bucket(), bucket(), bucket()]);
        Self { inner, buckets }
    }

    /// Paced by these buckets, one per family (`Family::index`): shared ones keep
    /// every instance together within the API's limit.
    pub fn with_buckets(inner: E, buckets: [Arc<dyn Bucket>; 4]) -> Self {
        Self {
            inner,
            buckets: Some(buckets),
        }
    }
}

#[async_trait]
impl<E: Exchange> Exchange for RateLimited<E> {
    async fn exchange(&self, req: &ApiRequest) -> Result<ApiResponse, ConnectorError> {
        if let Some(b) = &self.buckets {
            b[req.family.index()].pace().await?;
        }
        self.inner.exchange(req).await
    }
}

/// Retries what is retryable (429, 5xx, timeouts, connection errors) under the
/// kit's `Retrier`: full-jitter backoff, at least `Retry-After`, a per-request limit
/// and an overall budget of retry tokens.
#[derive(Debug)]
pub struct Retrying<E> {
    inner: E,
    retrier: Retrier,
}

impl<E> Retrying<E> {
    pub fn new(inner: E, policy: RetryConfig) -> Self {
        Self {
            inner,
            retrier: Retrier::new(PEER, policy),
        }
    }

    pub fn stats(&self) -> RetryStats {
        self.retrier.stats()
    }
}

#[async_trait]
impl<E: Exchange> Exchange for Retrying<E> {
    async fn exchange(&self, req: &ApiRequest) -> Result<ApiResponse, ConnectorError> {
        self.retrier
            .run(req.route, || self.inner.exchange(req))
            .await
            .map_err(|g| g.error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Debug)]
    struct Scripted {
        calls: AtomicU32,
        fail_first: u32,
        err: fn() -> ConnectorError,
    }

    #[async_trait]
    impl Exchange for Scripted {
        async fn exchange(&self, _req: &ApiRequest) -> Result<ApiResponse, ConnectorError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if n < self.fail_first {
                Err((self.err)())
            } else {
                Ok(ApiResponse {
                    status: 200,
                    body: Bytes::new(),
                })
            }
        }
    }

    fn unavailable() -> ConnectorError {
        ConnectorError::Unavailable {
            peer: PEER.into(),
            reason: "http 503".into(),
            retry_after: None,
        }
    }

    fn rejected() -> ConnectorError {
        ConnectorError::Rejected {
            peer: PEER.into(),
            reason: "http 422".into(),
        }
    }

    fn fast() -> RetryConfig {
        RetryConfig {
            base_delay_ms: 1,
            max_delay_ms: 2,
            ..RetryConfig::default()
        }
    }

    fn req() -> ApiRequest {
        ApiRequest::get(Family::Dossiers, "/x", "/x".into())
    }

    #[tokio::test]
    async fn retries_retryable_until_success() {
        let r = Retrying::new(
            Scripted {
                calls: AtomicU32::new(0),
                fail_first: 3,
                err: unavailable,
            },
            fast(),
        );
        r.exchange(&req()).await.unwrap();
        assert_eq!(r.stats().retries, 3);
    }

    #[tokio::test]
    async fn never_retries_a_refusal() {
        let r = Retrying::new(
            Scripted {
                calls: AtomicU32::new(0),
                fail_first: 1,
                err: rejected,
            },
            fast(),
        );
        assert!(r.exchange(&req()).await.is_err());
        assert_eq!(r.inner.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn attempts_and_budget_are_bounded() {
        let r = Retrying::new(
            Scripted {
                calls: AtomicU32::new(0),
                fail_first: u32::MAX,
                err: unavailable,
            },
            RetryConfig {
                max_attempts: 4,
                ..fast()
            },
        );
        assert!(r.exchange(&req()).await.is_err());
        assert_eq!(r.inner.calls.load(Ordering::SeqCst), 4);

        let tight = Retrying::new(
            Scripted {
                calls: AtomicU32::new(0),
                fail_first: u32::MAX,
                err: unavailable,
            },
            RetryConfig {
                budget_capacity: 2.0,
                budget_ratio: 0.0,
                ..fast()
            },
        );
        assert!(tight.exchange(&req()).await.is_err());
        assert!(tight.exchange(&req()).await.is_err());
        // Two retries in the bucket for both requests together, then none.
        assert_eq!(tight.inner.calls.load(Ordering::SeqCst), 4);
        assert_eq!(tight.stats().budget_exhausted, 2);
    }

    #[test]
    fn status_mapping() {
        let r = req();
        let body = br#"{"code":"STRUCTURE_INCONNUE","message":"codeStructure inconnu"}"#;
        let e = status_error(&r, 422, body, None);
        assert_eq!(e.kind(), passerelle_connector::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("STRUCTURE_INCONNUE"));
        let e = status_error(&r, 429, b"", Some(Duration::from_secs(2)));
        assert!(e.is_retryable());
        assert_eq!(
            status_error(&r, 403, b"", None).kind(),
            passerelle_connector::ErrorKind::Unauthorized
        );
        assert_eq!(
            status_error(&r, 404, b"", None).kind(),
            passerelle_connector::ErrorKind::NotFound
        );
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
