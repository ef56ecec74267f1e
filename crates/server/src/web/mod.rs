//! The web application (spec/web.md): accounts and sessions, the conseillers' search
//! and "parcours des échanges", "Mes envois", the operators' dashboard. Server-rendered
//! French HTML, usable without JavaScript.
//!
//! The server knows no connector: the cli hands it a [`WebDeps`] (the hub's web store,
//! the audit journal, the pseudonym key). What it keeps in memory only: the login
//! throttle and the person handles of each session (a search is a POST; the person is
//! then named in URLs by a random handle valid for that session, never by a value).
//!
//! Invariant: no route under this module shows anything about a person without a
//! session; every view or search that touches a person is journaled (`consulted`),
//! every refusal too (`denied`), with the account as actor and pseudonyms only.

pub mod auth;
pub mod bilans;
mod dpo;
mod faj;
pub mod html;
mod pages;
pub mod pdf;
mod relance;
mod revues;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use passerelle_audit::{Event, Journal, NewEntry, Outcome, Subject};
use passerelle_crypto::PseudonymKey;
use passerelle_hub::{Account, Role, WebStore};
use serde::{Deserialize, Serialize};

use crate::status::SharedStatus;
use crate::tz::Timezone;

pub use auth::{PasswordError, check_password, hash_password, verify_password};
pub use dpo::{DeclaredHours, DpoSetup, Stamper};
pub use faj::{DeskError, FajDesk, Filed, Suivi};
pub use relance::ReplayDesk;
pub use revues::ReviewDesk;

/// `[server.web]`: sessions, the login throttle and the organisations' names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// A proxy terminates TLS in front of the hub: cookies get `Secure`.
    pub behind_tls: bool,
    /// A session unused this long ends, in minutes (default 30).
    pub idle_minutes: u64,
    /// A session ends this long after login whatever its use, in hours (default 10).
    pub absolute_hours: u64,
    /// Failed logins allowed per account and per address within the window (default 5).
    pub login_attempts: u32,
    /// The throttle's window, in minutes (default 15).
    pub login_window_minutes: u64,
    /// Organisation code → name shown on pages (`59350S00 = "Mission Locale de Lille"`).
    pub organisations: BTreeMap<String, String>,
    /// Organisation code → the hours its accounts work (Europe/Paris); a consultation
    /// outside them raises an alert on the DPO's console.
    pub declared_hours: BTreeMap<String, DeclaredHours>,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            behind_tls: false,
            idle_minutes: 30,
            absolute_hours: 10,
            login_attempts: 5,
            login_window_minutes: 15,
            organisations: BTreeMap::new(),
            declared_hours: BTreeMap::new(),
        }
    }
}

impl WebConfig {
    /// An organisation's name; for one without a configured name, its kind and code
    /// (never a code alone).
    pub fn org_name(&self, code: &str) -> String {
        if let Some(n) = self.organisations.get(code) {
            return n.clone();
        }
        let b = code.as_bytes();
        if let Some(dep) = code.strip_prefix("CD") {
            format!("Conseil départemental ({dep})")
        } else if b.len() == 8 && b[5] == b'S' {
            format!("Mission Locale {code}")
        } else {
            format!("plateforme {code}")
        }
    }
}

/// What the cli gives the web application.
#[derive(Clone)]
pub struct WebDeps {
    pub store: WebStore,
    pub journal: Journal,
    /// The hub's pseudonym and blind-index key (the journal's and the identity index's).
    pub pseudonyms: PseudonymKey,
    pub config: WebConfig,
    pub timezone: Timezone,
}

impl std::fmt::Debug for WebDeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebDeps").finish_non_exhaustive()
    }
}

/// A person found by a search, for the session that searched.
#[derive(Debug, Clone)]
struct Handle {
    session: String,
    /// Journal pseudonyms of the person (one, or several when the search was ambiguous).
    subjects: Vec<String>,
    /// What the account typed, shown back (never stored).
    typed: String,
    /// How it was searched (`NIR`, `numéro allocataire`, `nom, prénom et date de naissance`).
    how: &'static str,
    at: Instant,
}

struct Inner {
    deps: WebDeps,
    status: SharedStatus,
    throttle: auth::Throttle,
    handles: Mutex<HashMap<String, Handle>>,
    /// The FAJ form's reach into I-MILO, the engine and the platform (set by the cli).
    faj: std::sync::OnceLock<Arc<dyn FajDesk>>,
    /// The identity reviews' reach into the engine (set by the cli).
    reviews: std::sync::OnceLock<Arc<dyn ReviewDesk>>,
    /// The dead letters' replay (set by the cli).
    replay: std::sync::OnceLock<Arc<dyn ReplayDesk>>,
    /// Opens the senders' references and initials "Mes envois" shows (set by the cli).
    sealer: std::sync::OnceLock<Arc<dyn passerelle_hub::Sealer>>,
    /// The DPO's console: the policy, the anchors, the alerts (set by the cli).
    dpo: std::sync::OnceLock<Arc<dpo::DpoState>>,
    /// The shared bilan's reach into the hub's state (set by the cli).
    bilans: std::sync::OnceLock<passerelle_hub::bilan::Bilans>,
}

/// The web application; clone it freely.
#[derive(Clone)]
pub struct WebApp(Arc<Inner>);

impl std::fmt::Debug for WebApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebApp").finish_non_exhaustive()
    }
}

/// The signed-in account of a request.
#[derive(Debug, Clone)]
pub(crate) struct Current {
    pub id_hash: String,
    pub account: Account,
    pub csrf: String,
}

/// The cookie names: `__Host-` ones need `Secure`, so only behind TLS.
fn cookie_names(secure: bool) -> (&'static str, &'static str) {
    if secure {
        ("__Host-passerelle", "__Host-passerelle-connexion")
    } else {
        ("passerelle", "passerelle-connexion")
    }
}

/// A cookie's value from the request headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl WebApp {
    pub fn new(deps: WebDeps, status: SharedStatus) -> Self {
        let throttle = auth::Throttle::new(
            deps.config.login_attempts.max(1),
            Duration::from_secs(deps.config.login_window_minutes.max(1) * 60),
        );
        Self(Arc::new(Inner {
            deps,
            status,
            throttle,
            handles: Mutex::new(HashMap::new()),
            faj: std::sync::OnceLock::new(),
            reviews: std::sync::OnceLock::new(),
            replay: std::sync::OnceLock::new(),
            sealer: std::sync::OnceLock::new(),
            dpo: std::sync::OnceLock::new(),
            bilans: std::sync::OnceLock::new(),
        }))
    }

    /// Gives the FAJ form its desk (`/faj/nouvelle`); without one the form says it is
    /// not configured. Set once: a second desk is ignored.
    pub fn with_faj_desk(self, desk: Arc<dyn FajDesk>) -> Self {
        let _ = self.0.faj.set(desk);
        self
    }

    /// Gives the identity review pages (`/revues`) their desk; set once.
    pub fn with_review_desk(self, desk: Arc<dyn ReviewDesk>) -> Self {
        let _ = self.0.reviews.set(desk);
        self
    }

    pub(crate) fn review_desk(&self) -> Option<Arc<dyn ReviewDesk>> {
        self.0.reviews.get().cloned()
    }

    /// Lets operateurs replay their dead letters from "Mes envois"; set once.
    pub fn with_replay_desk(self, desk: Arc<dyn ReplayDesk>) -> Self {
        let _ = self.0.replay.set(desk);
        self
    }

    /// Lets "Mes envois" open each line's sender reference and the person's initials,
    /// kept sealed for the sender; without it the page shows the transfer's number.
    /// Set once.
    pub fn with_sealer(self, sealer: Arc<dyn passerelle_hub::Sealer>) -> Self {
        let _ = self.0.sealer.set(sealer);
        self
    }

    pub(crate) fn sealer(&self) -> Option<&dyn passerelle_hub::Sealer> {
        self.0.sealer.get().map(|s| s.as_ref())
    }

    pub(crate) fn replay_desk(&self) -> Option<Arc<dyn ReplayDesk>> {
        self.0.replay.get().cloned()
    }

    /// Gives the `/bilans` page its source; set once.
    pub fn with_bilans(self, bilans: passerelle_hub::bilan::Bilans) -> Self {
        let _ = self.0.bilans.set(bilans);
        self
    }

    pub(crate) fn bilans(&self) -> Option<passerelle_hub::bilan::Bilans> {
        self.0.bilans.get().cloned()
    }

    pub(crate) fn faj_desk(&self) -> Option<Arc<dyn FajDesk>> {
        self.0.faj.get().cloned()
    }

    pub(crate) fn deps(&self) -> &WebDeps {
        &self.0.deps
    }

    pub(crate) fn tz(&self) -> Timezone {
        self.0.deps.timezone
    }

    /// Today as the application's users count days (Europe/Paris), not in UTC: from
    /// 22:00 or 23:00 UTC, Paris is already on the next day.
    pub(crate) fn today(&self) -> chrono::NaiveDate {
        self.tz().to_local(Utc::now()).date()
    }

    pub(crate) fn org_name(&self, code: &str) -> String {
        self.0.deps.config.org_name(code)
    }

    fn secure(&self) -> bool {
        self.0.deps.config.behind_tls
    }

    pub(crate) fn session_cookie_name(&self) -> &'static str {
        cookie_names(self.secure()).0
    }

    pub(crate) fn login_cookie_name(&self) -> &'static str {
        cookie_names(self.secure()).1
    }

    /// `Set-Cookie` for `name=value`, HttpOnly, SameSite=Strict, Secure behind TLS.
    pub(crate) fn set_cookie(&self, name: &str, value: &str, max_age: Option<u64>) -> HeaderValue {
        let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
        if self.secure() {
            c.push_str("; Secure");
        }
        if let Some(a) = max_age {
            c.push_str(&format!("; Max-Age={a}"));
        }
        HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// The session of a request, when it has a live one (idle and absolute expiry
    /// checked; a live session's last use is moved to now).
    pub(crate) async fn current(&self, headers: &HeaderMap) -> Option<Current> {
        let token = cookie(headers, self.session_cookie_name())?;
        if token.len() != 64 {
            return None;
        }
        let id_hash = auth::token_hash(token);
        let store = &self.0.deps.store;
        let row = store.session(&id_hash).await.ok()??;
        let now = Utc::now();
        let c = &self.0.deps.config;
        let idle = chrono::Duration::minutes(c.idle_minutes as i64);
        let absolute = chrono::Duration::hours(c.absolute_hours as i64);
        if now - row.last_seen > idle || now - row.created_at > absolute {
            let _ = store.end_session(&id_hash).await;
            self.forget_handles(&id_hash);
            return None;
        }
        let account = store.account(&row.login).await.ok()??;
        if account.disabled {
            let _ = store.end_session(&id_hash).await;
            return None;
        }
        let _ = store.touch_session(&id_hash, now).await;
        Some(Current {
            id_hash,
            account,
            csrf: row.csrf,
        })
    }

    /// Opens a session for `login`: returns the cookie token (only its hash is stored).
    pub(crate) async fn open_session(&self, login: &str) -> Option<String> {
        let token = auth::random_token();
        let csrf = auth::random_token();
        let store = &self.0.deps.store;
        // Expired sessions go when someone logs in: no timer needed.
        let c = &self.0.deps.config;
        let now = Utc::now();
        let _ = store
            .purge_sessions(
                now - chrono::Duration::minutes(c.idle_minutes as i64),
                now - chrono::Duration::hours(c.absolute_hours as i64),
            )
            .await;
        store
            .create_session(&auth::token_hash(&token), login, &csrf)
            .await
            .ok()?;
        Some(token)
    }

    pub(crate) fn throttle(&self) -> &auth::Throttle {
        &self.0.throttle
    }

    pub(crate) fn status(&self) -> &SharedStatus {
        &self.0.status
    }

    fn new_handle(&self, h: Handle) -> String {
        let id = auth::random_token()[..32].to_owned();
        let mut map = self.0.handles.lock().unwrap_or_else(|p| p.into_inner());
        let max = Duration::from_secs(self.0.deps.config.absolute_hours * 3600);
        map.retain(|_, v| v.at.elapsed() < max);
        map.insert(id.clone(), h);
        id
    }

    fn handle(&self, session: &str, id: &str) -> Option<Handle> {
        let map = self.0.handles.lock().unwrap_or_else(|p| p.into_inner());
        map.get(id).filter(|h| h.session == session).cloned()
    }

    fn forget_handles(&self, session: &str) {
        let mut map = self.0.handles.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, v| v.session != session);
    }

    /// Journals a consultation by `who` (one entry per subject, or one without subject
    /// when the search found nobody).
    pub(crate) async fn journal_consulted(&self, who: &Account, subjects: &[String], what: &str) {
        let make = |subject: Option<&String>| {
            let mut e = NewEntry::new(Event::Consulted, who.login.clone(), Outcome::Ok);
            e.sender = who.org.clone();
            e.subject = subject.map(|p| Subject {
                pseudonym: p.clone(),
                identifiers: Vec::new(),
            });
            e.reason = Some(what.to_owned());
            e
        };
        let entries: Vec<NewEntry> = if subjects.is_empty() {
            vec![make(None)]
        } else {
            subjects.iter().map(|s| make(Some(s))).collect()
        };
        if let Err(e) = self.0.deps.journal.append_batch(entries).await {
            tracing::warn!("cannot journal a consultation: {e}");
        }
    }

    /// Journals a refusal of `who` (codes and pages only).
    pub(crate) async fn journal_denied(&self, who: Option<&Account>, what: &str) {
        let mut e = NewEntry::new(
            Event::Denied,
            who.map_or_else(|| "anonyme".to_owned(), |a| a.login.clone()),
            Outcome::Refused,
        );
        e.sender = who.and_then(|a| a.org.clone());
        e.reason = Some(what.to_owned());
        if let Err(err) = self.0.deps.journal.append(e).await {
            tracing::warn!("cannot journal a refusal: {err}");
        }
    }

    /// Whether `role` may search persons.
    pub(crate) fn may_search(role: Role) -> bool {
        role != Role::Admin
    }
}

/// Headers every response carries (spec/web.md, "Rules").
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

/// The application's routes (to merge with the open ones: `/health`, `/ready`, …).
pub fn routes(app: WebApp) -> Router {
    Router::new()
        .route("/", get(pages::accueil))
        .route(
            "/connexion",
            get(pages::connexion).post(pages::connexion_post),
        )
        .route("/deconnexion", post(pages::deconnexion))
        .route(
            "/recherche",
            get(pages::recherche).post(pages::recherche_post),
        )
        .route("/personne/{handle}", get(pages::personne))
        .route("/envois", get(pages::envois))
        .route("/envois/relancer", post(relance::relancer))
        .route("/exploitation", get(pages::exploitation))
        .route(
            "/admin/comptes",
            get(pages::comptes).post(pages::comptes_post),
        )
        .route("/faj/nouvelle", get(faj::nouvelle).post(faj::nouvelle_post))
        .route("/faj/demande/{id}", get(faj::demande))
        .route("/revues", get(revues::liste))
        .route("/revues/{id}", get(revues::revue).post(revues::revue_post))
        .route("/dpo", get(dpo::accueil))
        .route("/dpo/personne/{handle}", get(dpo::personne))
        .route("/dpo/journal", get(dpo::journal))
        .route("/dpo/registre", get(dpo::registre))
        .route("/dpo/exports", get(dpo::exports))
        .route("/dpo/purge", get(dpo::purge).post(dpo::purge_post))
        .route("/bilans", get(bilans::bilans))
        .route("/bilans/export.csv", get(bilans::export_csv))
        .route("/bilans/export.xlsx", get(bilans::export_xlsx))
        .route("/bilans/bilan.pdf", get(bilans::export_pdf))
        .route("/style.css", get(style))
        .layer(axum::middleware::from_fn(no_store))
        .with_state(app)
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        html::STYLE,
    )
        .into_response()
}

/// Pages of the application are never cached (they may name a person's exchanges).
async fn no_store(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    if !resp.headers().contains_key(header::CACHE_CONTROL) {
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// A page answer with a status code.
pub(crate) fn page(code: StatusCode, html: String) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response()
}
