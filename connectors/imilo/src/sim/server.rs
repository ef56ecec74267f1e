//! The simulator's HTTP side: the routes of imilo.md and `/sim/*`, a gate middleware
//! (latency, injected faults, keys, rate limit), and an accept loop on hyper that can
//! close a connection without answering (the "reset" fault).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

use super::state::{KeyCheck, SimState, WriteResult};
use super::{Faults, SimStats};
use crate::config::MAX_PAGE_SIZE;
use crate::http::KEY_HEADER;
use crate::key::Family;
use crate::wire::{
    DossierPage, EVENEMENT_TYPES, ErrorBody, EvenementRequest, MESURES, OrientationRequest,
    SituationRequest,
};

type St = State<Arc<SimState>>;

/// Marks a response whose connection must be dropped instead of answered.
#[derive(Debug, Clone, Copy)]
struct DropConnection;

#[derive(Debug)]
struct ResetConnection;

impl std::fmt::Display for ResetConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("simulated connection reset")
    }
}

impl std::error::Error for ResetConnection {}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(ErrorBody {
            code: code.to_owned(),
            message: message.into(),
        }),
    )
        .into_response()
}

fn json_with(status: StatusCode, body: &impl serde::Serialize) -> Response {
    (status, axum::Json(body)).into_response()
}

fn dropped() -> Response {
    let mut r = StatusCode::INTERNAL_SERVER_ERROR.into_response();
    r.extensions_mut().insert(DropConnection);
    r
}

fn too_many(retry_after_s: u64) -> Response {
    let mut r = error(
        StatusCode::TOO_MANY_REQUESTS,
        "TOO_MANY_REQUESTS",
        "rate limit exceeded",
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
    r
}

/// The family an API path belongs to; `None` for `/sim/*` and unknown paths.
fn family_of(method: &Method, path: &str) -> Option<Family> {
    if path.starts_with("/sue/dossiers/") {
        if method == Method::POST && path.ends_with("/situation") {
            Some(Family::Situations)
        } else {
            Some(Family::Dossiers)
        }
    } else if path.starts_with("/sue/structures/") {
        Some(Family::Dossiers)
    } else if path.starts_with("/operateurs/events") {
        Some(Family::Events)
    } else if path.starts_with("/partenaires/") {
        Some(Family::Partenaires)
    } else {
        None
    }
}

async fn gate(State(st): St, req: Request, next: Next) -> Response {
    let Some(family) = family_of(req.method(), req.uri().path()) else {
        return next.run(req).await;
    };
    st.with_stats(|s| {
        s.requests += 1;
        *s.requests_by_family
            .entry(family.as_str().to_owned())
            .or_default() += 1;
    });
    let faults = st.faults();
    if let Some(ms) = faults.latency_ms.filter(|ms| *ms > 0) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let roll: f64 = rand::random();
    let reset = faults.rate_reset.unwrap_or(0.0);
    let r503 = reset + faults.rate_503.unwrap_or(0.0);
    let r429 = r503 + faults.rate_429.unwrap_or(0.0);
    let mut reset_after = false;
    if roll < reset {
        st.with_stats(|s| s.faults.resets += 1);
        if req.method() == Method::POST && rand::random::<bool>() {
            reset_after = true;
        } else {
            return dropped();
        }
    } else if roll < r503 {
        st.with_stats(|s| s.faults.http_503 += 1);
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            "maintenance en cours",
        );
    } else if roll < r429 {
        st.with_stats(|s| s.faults.http_429 += 1);
        return too_many(faults.retry_after_s.unwrap_or(1));
    }
    let key = req.headers().get(KEY_HEADER).and_then(|v| v.to_str().ok());
    match st.check_key(family, key) {
        KeyCheck::Ok => {}
        KeyCheck::Unauthorized => {
            st.with_stats(|s| s.unauthorized += 1);
            return error(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "missing or unknown api key",
            );
        }
        KeyCheck::Forbidden => {
            st.with_stats(|s| s.forbidden += 1);
            return error(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                format!("this api key does not open the {family} endpoints"),
            );
        }
    }
    if !st.rate_limit_ok(family) {
        st.with_stats(|s| s.faults.rate_limited += 1);
        return too_many(1);
    }
    let resp = next.run(req).await;
    if reset_after {
        // The write is applied; only its answer is lost.
        return dropped();
    }
    resp
}

fn parse_id(raw: &str) -> Option<u64> {
    raw.parse().ok()
}

fn unknown_dossier() -> Response {
    error(StatusCode::NOT_FOUND, "DOSSIER_INCONNU", "no such dossier")
}

async fn get_dossier(State(st): St, Path(id): Path<String>) -> Response {
    match parse_id(&id).and_then(|id| st.dossier(id)) {
        Some(d) => {
            st.with_stats(|s| s.dossiers_served += 1);
            json_with(StatusCode::OK, &d)
        }
        None => unknown_dossier(),
    }
}

async fn list_dossiers(
    State(st): St,
    Path(code): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(s) = st.population().structure_index(&code) else {
        return error(
            StatusCode::NOT_FOUND,
            "STRUCTURE_INCONNUE",
            "no such structure",
        );
    };
    let page: u32 = match q.get("page").map(|p| p.parse()) {
        None => 1,
        Some(Ok(p)) if p >= 1 => p,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "page must be a number from 1",
            );
        }
    };
    let size: u32 = match q.get("taillePage").map(|p| p.parse()) {
        None => MAX_PAGE_SIZE,
        Some(Ok(t)) if (1..=MAX_PAGE_SIZE).contains(&t) => t,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "taillePage must be from 1 to 150",
            );
        }
    };
    let since = match q
        .get("modifieDepuis")
        .map(|t| DateTime::parse_from_rfc3339(t))
    {
        None => None,
        Some(Ok(t)) => Some(t.with_timezone(&Utc)),
        Some(Err(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "modifieDepuis must be an RFC 3339 instant",
            );
        }
    };
    let pop = st.population();
    let start = u64::from(page - 1) * u64::from(size);
    let (total, ids): (u64, Vec<u64>) = match st.listing(s, since) {
        None => {
            let total = pop.count_in(s);
            let end = (start + u64::from(size)).min(total);
            (
                total,
                (start.min(end)..end).map(|i| pop.id_at(s, i)).collect(),
            )
        }
        Some(all) => {
            let total = all.len() as u64;
            let ids = all
                .into_iter()
                .skip(start as usize)
                .take(size as usize)
                .collect();
            (total, ids)
        }
    };
    let dossiers: Vec<_> = ids.into_iter().filter_map(|id| st.dossier(id)).collect();
    st.with_stats(|x| x.dossiers_served += dossiers.len() as u64);
    json_with(
        StatusCode::OK,
        &DossierPage {
            page,
            taille_page: size,
            total,
            dossiers,
        },
    )
}

async fn events(State(st): St) -> Response {
    json_with(StatusCode::OK, &st.pending_events(MAX_PAGE_SIZE as usize))
}

async fn ack(State(st): St, Path(identifiant): Path<String>) -> Response {
    if st.ack(&identifiant) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        error(StatusCode::NOT_FOUND, "EVENEMENT_INCONNU", "no such event")
    }
}

fn bad_body(what: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "BAD_REQUEST",
        format!("body is not a valid {what}"),
    )
}

fn missing_reference() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "BAD_REQUEST",
        "referenceExterne is required",
    )
}

async fn post_situation(State(st): St, Path(id): Path<String>, body: Bytes) -> Response {
    let Some(id) = parse_id(&id).filter(|id| st.dossier(*id).is_some()) else {
        return unknown_dossier();
    };
    let Ok(req) = serde_json::from_slice::<SituationRequest>(&body) else {
        return bad_body("situation");
    };
    if !MESURES.contains(&req.mesure.as_str()) {
        return error(StatusCode::BAD_REQUEST, "BAD_REQUEST", "unknown mesure");
    }
    if passerelle_model::Date::parse(&req.date_debut).is_err() {
        return error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "dateDebut must be a date",
        );
    }
    match st.write_situation(id, req.reference_externe.as_deref()) {
        WriteResult::Created(()) => StatusCode::CREATED.into_response(),
        WriteResult::Replayed(()) => StatusCode::OK.into_response(),
    }
}

async fn post_orientation(State(st): St, body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<OrientationRequest>(&body) else {
        return bad_body("orientation");
    };
    if req.reference_externe.trim().is_empty() {
        return missing_reference();
    }
    let motif = req.motif.as_deref().unwrap_or("BRSA_ORIENTATION");
    if !matches!(motif, "BRSA_ORIENTATION" | "ASE_MAJORITE") {
        return error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "motif must be BRSA_ORIENTATION or ASE_MAJORITE",
        );
    }
    let j = &req.jeune;
    if (j.nom_naissance.is_none() && j.nom_usage.is_none())
        || j.prenom.is_none()
        || j.date_naissance.is_none()
    {
        return error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "jeune needs nomNaissance or nomUsage, prenom and dateNaissance",
        );
    }
    if !st.knows_structure(&req.code_structure) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "STRUCTURE_INCONNUE",
            "codeStructure is not a known Mission Locale",
        );
    }
    match st.write_orientation(&req) {
        WriteResult::Created(r) => json_with(StatusCode::CREATED, &r),
        WriteResult::Replayed(r) => json_with(StatusCode::OK, &r),
    }
}

async fn post_evenement(State(st): St, Path(id): Path<String>, body: Bytes) -> Response {
    if parse_id(&id).and_then(|id| st.dossier(id)).is_none() {
        return unknown_dossier();
    }
    let Ok(req) = serde_json::from_slice::<EvenementRequest>(&body) else {
        return bad_body("evenement");
    };
    if req.reference_externe.trim().is_empty() {
        return missing_reference();
    }
    if !EVENEMENT_TYPES.contains(&req.kind.as_str()) {
        return error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "type must be FAJ_DECISION, OF_SUIVI or ASE_MAJORITE",
        );
    }
    match st.write_evenement(&req.reference_externe) {
        WriteResult::Created(r) => json_with(StatusCode::CREATED, &r),
        WriteResult::Replayed(r) => json_with(StatusCode::OK, &r),
    }
}

async fn sim_structures(State(st): St) -> Response {
    let pop = st.population();
    let list: Vec<_> = pop
        .structures()
        .iter()
        .enumerate()
        .map(|(i, s)| json!({"codeStructure": s.code, "nomOfficiel": s.nom_officiel, "dossiers": st.count_in(i)}))
        .collect();
    json_with(StatusCode::OK, &list)
}

async fn sim_set_faults(State(st): St, body: Bytes) -> Response {
    let faults: Faults = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(_) => return bad_body("faults object"),
    };
    match st.set_faults(faults) {
        Ok(()) => json_with(StatusCode::OK, &st.faults()),
        Err(m) => error(StatusCode::BAD_REQUEST, "BAD_REQUEST", m),
    }
}

async fn sim_get_faults(State(st): St) -> Response {
    json_with(StatusCode::OK, &st.faults())
}

async fn sim_stats(State(st): St) -> Response {
    let s: SimStats = st.stats();
    json_with(StatusCode::OK, &s)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Touch {
    id_dossier: u64,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    action: Option<String>,
}

async fn sim_touch(State(st): St, body: Bytes) -> Response {
    let Ok(t) = serde_json::from_slice::<Touch>(&body) else {
        return bad_body("touch ({\"idDossier\": N})");
    };
    let kind = t.kind.as_deref().unwrap_or("DOSSIER");
    let action = t.action.as_deref().unwrap_or("UPDATE");
    if !matches!(kind, "DOSSIER" | "RDV" | "SESSION")
        || !matches!(action, "CREATE" | "UPDATE" | "DELETE" | "ARCHIVE")
    {
        return error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "unknown type or action",
        );
    }
    match st.touch(t.id_dossier, kind, action) {
        Some(identifiant) => json_with(StatusCode::OK, &json!({"identifiant": identifiant})),
        None => unknown_dossier(),
    }
}

async fn fallback() -> Response {
    error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route")
}

/// The routes of imilo.md and the simulator conventions.
pub fn router(state: Arc<SimState>) -> Router {
    Router::new()
        .route("/sue/dossiers/{id}", get(get_dossier))
        .route("/sue/dossiers/{id}/situation", post(post_situation))
        .route("/sue/structures/{code}/dossiers", get(list_dossiers))
        .route("/operateurs/events", get(events))
        .route("/operateurs/events/{identifiant}/ack", post(ack))
        .route("/partenaires/orientations", post(post_orientation))
        .route(
            "/partenaires/dossiers/{id}/evenements",
            post(post_evenement),
        )
        .route("/sim/structures", get(sim_structures))
        .route("/sim/faults", post(sim_set_faults).get(sim_get_faults))
        .route("/sim/stats", get(sim_stats))
        .route("/sim/touch", post(sim_touch))
        .fallback(fallback)
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .with_state(state)
}

/// Accepts connections until `shutdown` turns true, then waits (5 s at most) for
/// the requests in flight.
pub async fn serve(listener: TcpListener, router: Router, mut shutdown: watch::Receiver<bool>) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let router = router.clone();
                let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let router = router.clone();
                    async move {
                        let resp = match router.oneshot(req.map(Body::new)).await {
                            Ok(r) => r,
                            Err(e) => match e {},
                        };
                        // An error from the service makes hyper close the connection
                        // without writing anything: the client sees a reset.
                        if resp.extensions().get::<DropConnection>().is_some() {
                            Err(ResetConnection)
                        } else {
                            Ok::<_, ResetConnection>(resp)
                        }
                    }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
}
