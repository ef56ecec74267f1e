//! `FajClient`: the platform's REST API behind OAuth2 client credentials.
//!
//! One token is cached and renewed ahead of its `expires_in`; a 401 on a call drops it,
//! fetches one new token and retries that call exactly once. 503, 429, other 5xx,
//! timeouts and connection errors are retried by the kit's `Retrier`
//! (`passerelle_connector::http`: full-jitter backoff, the peer's `Retry-After`, an
//! attempt count, a time limit and an overall budget), paced by its `TokenBucket` when
//! a rate limit is set; every failure ends as a
//! `ConnectorError` whose kind the engine decides on. Retrying a `POST` is safe because
//! it carries `Idempotency-Key`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use passerelle_connector::ConnectorError;
use passerelle_connector::http::{
    HttpSettings, Retrier, RetryStats, Secret, TokenBucket, parse_retry_after,
};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tracing::{debug, instrument, warn};

use crate::PEER;
use crate::config::FajConfig;
use crate::mapping::{DemandeBody, DemandePlateforme, ErreurChamp, Erreurs};

/// A token and when to renew it.
struct CachedToken {
    value: Secret,
    renew_at: Instant,
    /// Counts tokens fetched, so that a 401 drops only the token it was answered to.
    generation: u64,
}

struct Inner {
    http: reqwest::Client,
    /// Base URL without a trailing slash.
    base: String,
    client_id: String,
    client_secret: Secret,
    platform: String,
    margin: Duration,
    retry: Retrier,
    /// Paces every call when the configuration sets a rate.
    limiter: Option<TokenBucket>,
    concurrency: usize,
    token: Mutex<Option<CachedToken>>,
    generation: std::sync::atomic::AtomicU64,
}

/// The platform client; cheap to clone (one connection pool and token cache shared).
#[derive(Clone)]
pub struct FajClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FajClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FajClient")
            .field("base", &self.inner.base)
            .field("client_id", &self.inner.client_id)
            .finish_non_exhaustive()
    }
}

/// What filing a request gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutcome {
    /// 201 (first time) or 200 (`replayed`: the same Idempotency-Key was seen before).
    Filed {
        id_demande: String,
        statut: String,
        replayed: bool,
    },
    /// 422: the platform's field errors, for the conseiller.
    Invalid(Vec<ErreurChamp>),
}

/// One page of the `modifie_depuis` listing.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ListPage {
    #[serde(default)]
    pub page: u32,
    #[serde(default)]
    pub par_page: Option<usize>,
    #[serde(default)]
    pub total: Option<u64>,
    pub demandes: Vec<DemandePlateforme>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct FiledAnswer {
    id_demande: String,
    #[serde(default)]
    statut: String,
}

fn unavailable(reason: impl Into<String>, retry_after: Option<Duration>) -> ConnectorError {
    ConnectorError::Unavailable {
        peer: PEER.into(),
        reason: reason.into(),
        retry_after,
    }
}

fn protocol(reason: impl Into<String>) -> ConnectorError {
    ConnectorError::Protocol {
        peer: PEER.into(),
        reason: reason.into(),
    }
}

/// Statuses worth another attempt.
fn retryable_status(s: StatusCode) -> bool {
    s == StatusCode::TOO_MANY_REQUESTS
        || s == StatusCode::INTERNAL_SERVER_ERROR
        || s == StatusCode::BAD_GATEWAY
        || s == StatusCode::SERVICE_UNAVAILABLE
        || s == StatusCode::GATEWAY_TIMEOUT
}

/// The `Retry-After` header in seconds, when present.
fn retry_after(resp: &Response) -> Option<Duration> {
    parse_retry_after(
        resp.headers()
            .get(reqwest::header::RETRY_AFTER)?
            .to_str()
            .ok()?,
    )
}

/// Describes a transport error without its URL or body.
fn describe(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "the answer body could not be read"
    } else {
        "the request failed"
    }
}

impl FajClient {
    /// Makes the client; no call is made until the first request.
    pub fn new(config: &FajConfig, client_secret: Secret) -> Result<Self, ConnectorError> {
        let http =
            HttpSettings::new(config.request_timeout(), config.connect_timeout()).client()?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base: config.base_url.trim_end_matches('/').to_owned(),
                client_id: config.client_id.clone(),
                client_secret,
                platform: config.platform.clone(),
                margin: Duration::from_secs(config.token_refresh_margin_s),
                retry: Retrier::new(PEER, config.retry.clone()),
                limiter: TokenBucket::optional(config.rate_limit_per_s, config.rate_burst),
                concurrency: config.concurrency.max(1),
                token: Mutex::new(None),
                generation: std::sync::atomic::AtomicU64::new(0),
            }),
        })
    }

    /// How many requests a batch keeps in flight at once.
    pub fn concurrency(&self) -> usize {
        self.inner.concurrency
    }

    /// What the retry layer did so far.
    pub fn retry_stats(&self) -> RetryStats {
        self.inner.retry.stats()
    }

    /// The platform's id in `sources[].organisation`.
    pub fn platform(&self) -> &str {
        &self.inner.platform
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.inner.base)
    }

    /// Sends a request built by `build`, retrying retryable failures under the
    /// retry policy. Returns the first answer that is not worth retrying.
    async fn send_retrying(
        &self,
        what: &str,
        build: &(dyn Fn() -> RequestBuilder + Send + Sync),
    ) -> Result<Response, ConnectorError> {
        let attempt = || async {
            if let Some(limiter) = &self.inner.limiter {
                limiter.acquire().await;
            }
            match build().send().await {
                Ok(resp) if retryable_status(resp.status()) => Err(unavailable(
                    format!("{what}: http {}", resp.status().as_u16()),
                    retry_after(&resp),
                )),
                Ok(resp) => Ok(resp),
                Err(e) => Err(unavailable(format!("{what}: {}", describe(&e)), None)),
            }
        };
        self.inner.retry.run(what, attempt).await.map_err(|g| {
            warn!(
                peer = PEER,
                what,
                attempt = g.attempts,
                "giving up: {}",
                g.error
            );
            match g.error {
                ConnectorError::Unavailable {
                    reason,
                    retry_after,
                    ..
                } => unavailable(
                    format!("{reason} after {} attempts", g.attempts),
                    retry_after,
                ),
                other => other,
            }
        })
    }

    /// A valid token (cached, or fetched now) and its generation.
    async fn token(&self) -> Result<(Secret, u64), ConnectorError> {
        // Holding the lock while fetching makes concurrent callers wait for one fetch
        // instead of each asking for a token.
        let mut cached = self.inner.token.lock().await;
        if let Some(t) = cached.as_ref()
            && Instant::now() < t.renew_at
        {
            return Ok((t.value.clone(), t.generation));
        }
        let fetched = self.fetch_token().await?;
        let out = (fetched.value.clone(), fetched.generation);
        *cached = Some(fetched);
        Ok(out)
    }

    /// Drops the cached token if it is still the one a 401 was answered to.
    async fn invalidate(&self, generation: u64) {
        let mut cached = self.inner.token.lock().await;
        if cached.as_ref().is_some_and(|t| t.generation == generation) {
            *cached = None;
        }
    }

    async fn fetch_token(&self) -> Result<CachedToken, ConnectorError> {
        let url = self.url("/oauth/token");
        let inner = &self.inner;
        let build = || {
            inner.http.post(&url).form(&[
                ("grant_type", "client_credentials"),
                ("client_id", inner.client_id.as_str()),
                ("client_secret", inner.client_secret.expose()),
            ])
        };
        let resp = self.send_retrying("POST /oauth/token", &build).await?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED
            || status == StatusCode::BAD_REQUEST
            || status == StatusCode::FORBIDDEN
        {
            return Err(ConnectorError::Unauthorized {
                peer: PEER.into(),
                reason: format!(
                    "token endpoint refused the client credentials (http {})",
                    status.as_u16()
                ),
            });
        }
        if !status.is_success() {
            return Err(protocol(format!(
                "token endpoint answered http {}",
                status.as_u16()
            )));
        }
        let answer: TokenAnswer = resp
            .json()
            .await
            .map_err(|_| protocol("token endpoint answer is not the expected JSON"))?;
        if answer
            .token_type
            .as_deref()
            .is_some_and(|t| !t.eq_ignore_ascii_case("bearer"))
        {
            return Err(protocol(
                "token endpoint gave a token type other than bearer",
            ));
        }
        let life = Duration::from_secs(answer.expires_in.unwrap_or(3600));
        // Renew ahead of expiry, by the configured margin but never more than a
        // quarter of the token's life (short-lived tokens would otherwise never be used).
        let ahead = self.inner.margin.min(life / 4);
        let generation = self
            .inner
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        debug!(
            peer = PEER,
            generation,
            expires_in_s = life.as_secs(),
            "fetched a token"
        );
        Ok(CachedToken {
            value: Secret::new(answer.access_token),
            renew_at: Instant::now() + life - ahead,
            generation,
        })
    }

    /// Sends an authenticated call: on 401, one new token and one more try.
    async fn authorized(
        &self,
        what: &str,
        build: &(dyn Fn(&str) -> RequestBuilder + Send + Sync),
    ) -> Result<Response, ConnectorError> {
        let mut refreshed = false;
        loop {
            let (token, generation) = self.token().await?;
            let with_token = || build(token.expose());
            let resp = self.send_retrying(what, &with_token).await?;
            match resp.status() {
                StatusCode::UNAUTHORIZED if !refreshed => {
                    debug!(peer = PEER, what, "401, renewing the token once");
                    self.invalidate(generation).await;
                    refreshed = true;
                }
                StatusCode::UNAUTHORIZED => {
                    return Err(ConnectorError::Unauthorized {
                        peer: PEER.into(),
                        reason: format!("{what}: http 401 with a fresh token"),
                    });
                }
                StatusCode::FORBIDDEN => {
                    return Err(ConnectorError::Unauthorized {
                        peer: PEER.into(),
                        reason: format!("{what}: http 403"),
                    });
                }
                _ => return Ok(resp),
            }
        }
    }

    /// Files a request (`POST /api/v1/demandes`), idempotent on `transfer_id`.
    #[instrument(skip(self, body), fields(peer = PEER))]
    pub async fn file_demande(
        &self,
        transfer_id: &str,
        body: &DemandeBody,
    ) -> Result<FileOutcome, ConnectorError> {
        if transfer_id.is_empty() || reqwest::header::HeaderValue::from_str(transfer_id).is_err() {
            return Err(ConnectorError::Invalid {
                location: "transfer_id".into(),
                reason: "must be a non-empty header-safe string".into(),
            });
        }
        let what = "POST /api/v1/demandes";
        let url = self.url("/api/v1/demandes");
        let http = &self.inner.http;
        let build = |token: &str| {
            http.post(&url)
                .bearer_auth(token)
                .header("Idempotency-Key", transfer_id)
                .json(body)
        };
        let resp = self.authorized(what, &build).await?;
        let status = resp.status();
        match status {
            StatusCode::CREATED | StatusCode::OK => {
                let a: FiledAnswer = resp
                    .json()
                    .await
                    .map_err(|_| protocol(format!("{what}: answer is not the expected JSON")))?;
                Ok(FileOutcome::Filed {
                    id_demande: a.id_demande,
                    statut: a.statut,
                    replayed: status == StatusCode::OK,
                })
            }
            StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST => {
                let e: Erreurs = resp.json().await.map_err(|_| {
                    protocol(format!(
                        "{what}: http {} without a readable erreurs list",
                        status.as_u16()
                    ))
                })?;
                Ok(FileOutcome::Invalid(e.erreurs))
            }
            s => Err(protocol(format!("{what}: unexpected http {}", s.as_u16()))),
        }
    }

    /// Reads one request (`GET /api/v1/demandes/{id}`).
    #[instrument(skip(self), fields(peer = PEER))]
    pub async fn get_demande(&self, id_demande: &str) -> Result<DemandePlateforme, ConnectorError> {
        let mut url = reqwest::Url::parse(&self.url("/api/v1/demandes"))
            .map_err(|_| ConnectorError::Config("base_url: not a valid URL".into()))?;
        url.path_segments_mut()
            .map_err(|_| ConnectorError::Config("base_url: cannot hold a path".into()))?
            .push(id_demande);
        let http = &self.inner.http;
        let build = |token: &str| http.get(url.clone()).bearer_auth(token);
        let what = "GET /api/v1/demandes/{id}";
        let resp = self.authorized(what, &build).await?;
        match resp.status() {
            StatusCode::OK => resp
                .json()
                .await
                .map_err(|_| protocol(format!("{what}: answer is not the expected JSON"))),
            StatusCode::NOT_FOUND => Err(ConnectorError::NotFound {
                peer: PEER.into(),
                what: format!("demande {id_demande}"),
            }),
            s => Err(protocol(format!("{what}: unexpected http {}", s.as_u16()))),
        }
    }

    /// One page (from 1) of the requests modified since `since`.
    #[instrument(skip(self), fields(peer = PEER))]
    pub async fn list_modifiees(
        &self,
        since: DateTime<Utc>,
        page: u32,
    ) -> Result<ListPage, ConnectorError> {
        let url = self.url("/api/v1/demandes");
        let since = since.to_rfc3339_opts(SecondsFormat::Millis, true);
        let page_s = page.to_string();
        let http = &self.inner.http;
        let build = |token: &str| {
            http.get(&url).bearer_auth(token).query(&[
                ("modifie_depuis", since.as_str()),
                ("page", page_s.as_str()),
            ])
        };
        let what = "GET /api/v1/demandes?modifie_depuis";
        let resp = self.authorized(what, &build).await?;
        match resp.status() {
            StatusCode::OK => resp
                .json()
                .await
                .map_err(|_| protocol(format!("{what}: answer is not the expected JSON"))),
            s => Err(protocol(format!("{what}: unexpected http {}", s.as_u16()))),
        }
    }
}
