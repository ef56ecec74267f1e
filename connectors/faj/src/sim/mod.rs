//! The FAJ platform simulator: token endpoint, requests with the platform's validation
//! and idempotency, reads, the `modifie_depuis` listing, a commission that decides
//! each request after a delay (deterministically from the seed and the request) and
//! signed decision webhooks that faults can lose, duplicate, delay and reorder.
//!
//! `spawn` starts it on any address (port 0 for tests) and returns a `SimHandle` whose
//! `shutdown` stops accepting, cancels pending commissions and webhooks, and waits.

pub mod commission;
pub mod rules;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use chrono::{DateTime, Datelike, Utc};
use passerelle_model::FajStatut;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

use crate::mapping::{AideBody, ErreurChamp, PlatformDecision, statut_to_platform};

/// Faults to inject; `POST /sim/faults` replaces them (absent fields take defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Share of API and token calls answered 503.
    pub rate_503: f64,
    /// Share of API calls answered 401 although the token is valid.
    pub rate_401: f64,
    /// Share of decisions whose webhook is never sent.
    pub webhook_loss: f64,
    /// Share of sent webhooks sent twice (same `evenement_id`).
    pub webhook_duplicate: f64,
    /// Each webhook copy waits a random time up to this before its first attempt,
    /// which also reorders them.
    pub webhook_delay_ms: u64,
    /// The commission decides a request this long after it was filed.
    pub commission_delay_ms: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            rate_503: 0.0,
            rate_401: 0.0,
            webhook_loss: 0.0,
            webhook_duplicate: 0.0,
            webhook_delay_ms: 0,
            commission_delay_ms: 1_000,
        }
    }
}

/// The simulator's configuration.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub addr: SocketAddr,
    pub seed: u64,
    pub client_id: String,
    pub client_secret: String,
    pub webhook_secret: String,
    /// Where decisions are pushed (none: only visible by reading).
    pub webhook_url: Option<String>,
    /// A token's life; `expires_in` says it in whole seconds (at least 1).
    pub token_ttl: Duration,
    /// The département in request ids (`FAJ-059-2026-000123`).
    pub departement: String,
    pub faults: Faults,
    /// How many times a webhook copy is attempted before the platform gives up on it.
    pub webhook_attempts: u32,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            seed: 1,
            client_id: "sim-client".into(),
            client_secret: "sim-secret".into(),
            webhook_secret: "sim-webhook".into(),
            webhook_url: None,
            token_ttl: Duration::from_secs(3600),
            departement: "059".into(),
            faults: Faults::default(),
            webhook_attempts: 6,
        }
    }
}

/// Counters, as `GET /sim/stats` returns them.
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub tokens_issued: AtomicU64,
    pub token_refusals: AtomicU64,
    pub unauthorized: AtomicU64,
    pub faults_503: AtomicU64,
    pub faults_401: AtomicU64,
    pub demandes_created: AtomicU64,
    pub idempotent_replays: AtomicU64,
    pub validation_failures: AtomicU64,
    pub reads: AtomicU64,
    pub listings: AtomicU64,
    pub decisions: AtomicU64,
    pub webhooks_lost: AtomicU64,
    pub webhooks_duplicated: AtomicU64,
    pub webhook_attempts: AtomicU64,
    pub webhooks_delivered: AtomicU64,
    pub webhook_failures: AtomicU64,
    pub webhooks_abandoned: AtomicU64,
}

impl Stats {
    /// A snapshot as JSON.
    pub fn snapshot(&self) -> Value {
        let g = |a: &AtomicU64| a.load(Ordering::SeqCst);
        json!({
            "requests": g(&self.requests),
            "tokens_issued": g(&self.tokens_issued),
            "token_refusals": g(&self.token_refusals),
            "unauthorized": g(&self.unauthorized),
            "faults_503": g(&self.faults_503),
            "faults_401": g(&self.faults_401),
            "demandes_created": g(&self.demandes_created),
            "idempotent_replays": g(&self.idempotent_replays),
            "validation_failures": g(&self.validation_failures),
            "reads": g(&self.reads),
            "listings": g(&self.listings),
            "decisions": g(&self.decisions),
            "webhooks_lost": g(&self.webhooks_lost),
            "webhooks_duplicated": g(&self.webhooks_duplicated),
            "webhook_attempts": g(&self.webhook_attempts),
            "webhooks_delivered": g(&self.webhooks_delivered),
            "webhook_failures": g(&self.webhook_failures),
            "webhooks_abandoned": g(&self.webhooks_abandoned),
        })
    }
}

fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::SeqCst);
}

/// One filed request.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub id: String,
    /// The body as filed (returned by reads).
    pub body: Value,
    pub aides: Vec<AideBody>,
    pub statut: FajStatut,
    pub decision: Option<PlatformDecision>,
    pub modifie_le: DateTime<Utc>,
}

impl Stored {
    /// The request as reads and the listing show it.
    fn to_json(&self) -> Value {
        let mut v = self.body.clone();
        if let Some(o) = v.as_object_mut() {
            o.insert("id_demande".into(), json!(self.id));
            o.insert("statut".into(), json!(statut_to_platform(self.statut)));
            if let Some(d) = &self.decision {
                o.insert("decision".into(), json!(d));
            }
            o.insert(
                "modifie_le".into(),
                json!(
                    self.modifie_le
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                ),
            );
        }
        v
    }
}

#[derive(Debug, Default)]
pub(crate) struct Store {
    /// Ordered by id, which the listing pages over.
    pub demandes: BTreeMap<String, Stored>,
    /// Idempotency-Key → id.
    pub by_key: HashMap<String, String>,
    pub seq: u64,
}

/// A decision the commission took: the ground truth tests compare against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub id_demande: String,
    pub statut: FajStatut,
    pub montant_accorde: Option<u64>,
}

pub(crate) struct Sim {
    pub cfg: SimConfig,
    pub faults: Mutex<Faults>,
    pub rng: Mutex<StdRng>,
    /// Token → expiry.
    pub tokens: Mutex<HashMap<String, Instant>>,
    pub store: Mutex<Store>,
    pub stats: Stats,
    pub http: reqwest::Client,
    pub tasks: TaskTracker,
    pub cancel: CancellationToken,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The simulator's maps stay consistent under a panic: each update is one insert.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Sim {
    pub(crate) fn faults(&self) -> Faults {
        lock(&self.faults).clone()
    }

    pub(crate) fn chance(&self, p: f64) -> bool {
        p > 0.0 && lock(&self.rng).random::<f64>() < p
    }

    pub(crate) fn random_below(&self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            lock(&self.rng).random_range(0..n)
        }
    }

    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    fn maybe_503(&self) -> Option<Response> {
        if self.chance(self.faults().rate_503) {
            bump(&self.stats.faults_503);
            Some(
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(json!({"erreur": "indisponible"})),
                )
                    .into_response(),
            )
        } else {
            None
        }
    }

    /// Checks the bearer token; the 401 answer otherwise.
    #[allow(clippy::result_large_err)] // an axum handler's early answer, built once
    fn check_auth(&self, headers: &HeaderMap) -> Result<(), Response> {
        let unauthorized = |why: &str| {
            bump(&self.stats.unauthorized);
            let mut r = (
                StatusCode::UNAUTHORIZED,
                Json(json!({"erreur": "invalid_token", "message": why})),
            )
                .into_response();
            r.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
            r
        };
        let token = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let Some(token) = token else {
            return Err(unauthorized("jeton absent"));
        };
        let valid = lock(&self.tokens)
            .get(token)
            .is_some_and(|exp| Instant::now() < *exp);
        if !valid {
            return Err(unauthorized("jeton inconnu ou expiré"));
        }
        if self.chance(self.faults().rate_401) {
            bump(&self.stats.faults_401);
            return Err(unauthorized("jeton refusé"));
        }
        Ok(())
    }

    /// The ids and decisions taken so far.
    pub(crate) fn verdicts(&self) -> Vec<Verdict> {
        self.store()
            .demandes
            .values()
            .filter(|s| s.decision.is_some())
            .map(|s| Verdict {
                id_demande: s.id.clone(),
                statut: s.statut,
                montant_accorde: s.decision.as_ref().and_then(|d| d.montant_accorde),
            })
            .collect()
    }
}

/// A running simulator.
pub struct SimHandle {
    sim: Arc<Sim>,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle").finish_non_exhaustive()
    }
}

impl SimHandle {
    /// The counters, as `GET /sim/stats` shows them.
    pub fn stats(&self) -> Value {
        self.sim.stats.snapshot()
    }

    /// One counter by name (0 if unknown).
    pub fn stat(&self, name: &str) -> u64 {
        self.stats()[name].as_u64().unwrap_or(0)
    }

    /// Every decision taken so far.
    pub fn verdicts(&self) -> Vec<Verdict> {
        self.sim.verdicts()
    }

    /// How many requests are filed.
    pub fn demandes(&self) -> usize {
        self.sim.store().demandes.len()
    }

    /// The `Idempotency-Key` of every request filed, one each: what the conformance
    /// suite sees of the platform.
    pub fn idempotency_keys(&self) -> Vec<String> {
        self.sim.store().by_key.keys().cloned().collect()
    }

    /// Replaces the faults.
    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.sim.faults) = faults;
    }

    /// Expires every token issued so far (the next call with one gets 401).
    pub fn expire_tokens(&self) {
        lock(&self.sim.tokens).clear();
    }

    /// Stops accepting connections, cancels pending commissions and webhooks, and
    /// waits for the server and every task to finish.
    pub async fn shutdown(self) {
        self.sim.cancel.cancel();
        self.sim.tasks.close();
        let _ = self.server.await;
        self.sim.tasks.wait().await;
    }
}

/// A client configuration for a simulator at `addr` with its default client id; the
/// secret sources name nothing (give the secret to `FajClient::new`), every other
/// setting its default.
pub fn client_config(addr: SocketAddr) -> crate::FajConfig {
    let unused = || crate::SecretSource::Env("UNUSED_SIM_SECRET".into());
    crate::FajConfig::new(
        format!("http://{addr}"),
        SimConfig::default().client_id,
        unused(),
        unused(),
    )
}

/// Starts the simulator; returns the address it listens on and its handle.
pub async fn spawn(config: SimConfig) -> std::io::Result<(SocketAddr, SimHandle)> {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|_| std::io::Error::other("the webhook http client could not be made"))?;
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    let addr = listener.local_addr()?;
    let sim = Arc::new(Sim {
        faults: Mutex::new(config.faults.clone()),
        rng: Mutex::new(StdRng::seed_from_u64(config.seed)),
        tokens: Mutex::new(HashMap::new()),
        store: Mutex::new(Store::default()),
        stats: Stats::default(),
        http,
        tasks: TaskTracker::new(),
        cancel: CancellationToken::new(),
        cfg: config,
    });
    let app = router(sim.clone());
    let cancel = sim.cancel.clone();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(cancel.cancelled_owned())
            .await;
    });
    info!(%addr, "faj simulator listening");
    Ok((addr, SimHandle { sim, server }))
}

fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/oauth/token", post(token))
        .route("/api/v1/demandes", post(create).get(list))
        .route("/api/v1/demandes/{id}", get(read))
        .route("/sim/faults", post(set_faults).get(get_faults))
        .route("/sim/stats", get(stats))
        .route("/sim/tokens/expire", post(expire_tokens))
        .route("/sim/decisions", get(decisions))
        .with_state(sim)
}

async fn token(State(sim): State<Arc<Sim>>, Form(form): Form<HashMap<String, String>>) -> Response {
    bump(&sim.stats.requests);
    if let Some(r) = sim.maybe_503() {
        return r;
    }
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if field("grant_type") != "client_credentials" {
        bump(&sim.stats.token_refusals);
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type"})),
        )
            .into_response();
    }
    if field("client_id") != sim.cfg.client_id || field("client_secret") != sim.cfg.client_secret {
        bump(&sim.stats.token_refusals);
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let bytes: [u8; 24] = lock(&sim.rng).random();
    let token = hex::encode(bytes);
    lock(&sim.tokens).insert(token.clone(), Instant::now() + sim.cfg.token_ttl);
    bump(&sim.stats.tokens_issued);
    let expires_in = sim.cfg.token_ttl.as_secs().max(1);
    Json(json!({"access_token": token, "token_type": "Bearer", "expires_in": expires_in}))
        .into_response()
}

fn erreurs(status: StatusCode, list: Vec<ErreurChamp>) -> Response {
    (status, Json(json!({ "erreurs": list }))).into_response()
}

async fn create(State(sim): State<Arc<Sim>>, headers: HeaderMap, body: Bytes) -> Response {
    bump(&sim.stats.requests);
    if let Some(r) = sim.maybe_503() {
        return r;
    }
    if let Err(r) = sim.check_auth(&headers) {
        return r;
    }
    let Some(key) = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
    else {
        return erreurs(
            StatusCode::BAD_REQUEST,
            vec![ErreurChamp {
                champ: "Idempotency-Key".into(),
                code: "REQUIS".into(),
                message: "en-tête obligatoire".into(),
            }],
        );
    };
    // A known key answers with the first answer, whatever the body says now.
    if let Some(first) = replay(&sim, &key) {
        return first;
    }
    let Ok(value) = serde_json::from_slice::<Value>(&body) else {
        return erreurs(
            StatusCode::BAD_REQUEST,
            vec![ErreurChamp {
                champ: String::new(),
                code: "CORPS_INVALIDE".into(),
                message: "JSON attendu".into(),
            }],
        );
    };
    let valid = match rules::validate(&value) {
        Ok(v) => v,
        Err(list) => {
            bump(&sim.stats.validation_failures);
            return erreurs(StatusCode::UNPROCESSABLE_ENTITY, list);
        }
    };
    let (id, delay) = {
        let mut store = sim.store();
        if let Some(id) = store.by_key.get(&key).cloned() {
            drop(store);
            bump(&sim.stats.idempotent_replays);
            return filed(StatusCode::OK, &id, FajStatut::Deposee);
        }
        store.seq += 1;
        let id = format!(
            "FAJ-{}-{}-{:06}",
            sim.cfg.departement,
            valid.date_depot.naive().year(),
            store.seq
        );
        store.by_key.insert(key.clone(), id.clone());
        store.demandes.insert(
            id.clone(),
            Stored {
                id: id.clone(),
                body: value,
                aides: valid.aides,
                statut: FajStatut::Deposee,
                decision: None,
                modifie_le: Utc::now(),
            },
        );
        (id, Duration::from_millis(sim.faults().commission_delay_ms))
    };
    bump(&sim.stats.demandes_created);
    debug!(id_demande = %id, "request filed");
    commission::schedule(&sim, id.clone(), key, body, delay);
    filed(StatusCode::CREATED, &id, FajStatut::Deposee)
}

/// The first answer of a known Idempotency-Key (its status is the one filed then).
fn replay(sim: &Sim, key: &str) -> Option<Response> {
    let store = sim.store();
    let id = store.by_key.get(key)?;
    bump(&sim.stats.idempotent_replays);
    Some(filed(StatusCode::OK, id, FajStatut::Deposee))
}

fn filed(status: StatusCode, id: &str, statut: FajStatut) -> Response {
    (
        status,
        Json(json!({"id_demande": id, "statut": statut_to_platform(statut)})),
    )
        .into_response()
}

async fn read(State(sim): State<Arc<Sim>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    bump(&sim.stats.requests);
    if let Some(r) = sim.maybe_503() {
        return r;
    }
    if let Err(r) = sim.check_auth(&headers) {
        return r;
    }
    bump(&sim.stats.reads);
    let found = sim.store().demandes.get(&id).map(Stored::to_json);
    match found {
        Some(v) => Json(v).into_response(),
        None => erreurs(
            StatusCode::NOT_FOUND,
            vec![ErreurChamp {
                champ: "id_demande".into(),
                code: "INTROUVABLE".into(),
                message: "demande inconnue".into(),
            }],
        ),
    }
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    modifie_depuis: Option<String>,
    page: Option<u32>,
}

async fn list(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    bump(&sim.stats.requests);
    if let Some(r) = sim.maybe_503() {
        return r;
    }
    if let Err(r) = sim.check_auth(&headers) {
        return r;
    }
    let since = q
        .modifie_depuis
        .as_deref()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc));
    let Some(since) = since else {
        return erreurs(
            StatusCode::BAD_REQUEST,
            vec![ErreurChamp {
                champ: "modifie_depuis".into(),
                code: "FORMAT_DATE".into(),
                message: "instant RFC 3339 attendu".into(),
            }],
        );
    };
    let page = q.page.unwrap_or(1).max(1);
    bump(&sim.stats.listings);
    let per_page = crate::PAGE_SIZE;
    let store = sim.store();
    let matching: Vec<&Stored> = store
        .demandes
        .values()
        .filter(|s| s.modifie_le >= since)
        .collect();
    let total = matching.len();
    let items: Vec<Value> = matching
        .iter()
        .skip((page as usize - 1) * per_page)
        .take(per_page)
        .map(|s| s.to_json())
        .collect();
    Json(json!({"page": page, "par_page": per_page, "total": total, "demandes": items}))
        .into_response()
}

async fn set_faults(State(sim): State<Arc<Sim>>, Json(f): Json<Faults>) -> Response {
    *lock(&sim.faults) = f.clone();
    Json(f).into_response()
}

async fn get_faults(State(sim): State<Arc<Sim>>) -> Response {
    Json(sim.faults()).into_response()
}

async fn stats(State(sim): State<Arc<Sim>>) -> Response {
    Json(sim.stats.snapshot()).into_response()
}

async fn expire_tokens(State(sim): State<Arc<Sim>>) -> Response {
    lock(&sim.tokens).clear();
    StatusCode::NO_CONTENT.into_response()
}

async fn decisions(State(sim): State<Arc<Sim>>) -> Response {
    Json(sim.verdicts()).into_response()
}
