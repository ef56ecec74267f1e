//! Identity reviews (`/revues`): the records the matcher could not place, listed to the
//! accounts of the organisation that sent them; one opened shows the record received
//! beside each candidate (which identifiers agree, which differ, their exchanges); the
//! reviewer says "même personne" or "personnes différentes" and the held transfer goes
//! on. Each opening and each verdict is journaled; the record stays sealed in the hub
//! until then (the cli's [`ReviewDesk`] reaches the engine).

use std::collections::HashMap;
use std::fmt::Write as _;

use async_trait::async_trait;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use passerelle_hub::{HeldReview, OpenedReview, Role, Verdict};
use passerelle_identity::{IdentityKeys, KeyKind};
use uuid::Uuid;

use super::faj::DeskError;
use super::html::{self, layout};
use super::pages::{csrf_ok, csrf_refused, refuse, to_login, who};
use super::{Current, WebApp, page};
use crate::page::escape_html as esc;

/// What the review pages need from the engine (implemented by the cli).
#[async_trait]
pub trait ReviewDesk: Send + Sync {
    /// The open reviews of records `sender` sent.
    async fn list(&self, sender: &str) -> Result<Vec<HeldReview>, DeskError>;
    /// One review, its record unsealed while it is open.
    async fn open(&self, id: Uuid) -> Result<Option<OpenedReview>, DeskError>;
    /// The verdict: how many transfers went on (`None`: settled already or expired).
    async fn settle(&self, id: Uuid, verdict: Verdict) -> Result<Option<u64>, DeskError>;
}

fn reason_fr(r: &str) -> &'static str {
    match r {
        "IdentifiersDisagree" => "ses identifiants désignent plusieurs personnes connues",
        "SeveralCandidates" => {
            "son nom, son prénom et sa date de naissance sont ceux de plusieurs personnes connues"
        }
        "ConflictingIdentifier" => {
            "il ressemble à une personne connue, mais porte un autre identifiant du même type (un autre NIR, par exemple)"
        }
        _ => "identité incertaine",
    }
}

fn kind_fr(k: KeyKind) -> &'static str {
    match k {
        KeyKind::Nir => "NIR",
        KeyKind::CafRole => "numéro allocataire et rôle",
        KeyKind::ImiloDossier => "dossier I-MILO",
        KeyKind::Solis => "identifiant SOLIS",
        KeyKind::FranceTravailIde => "identifiant France Travail",
        KeyKind::FranceTravailId => "identifiant national France Travail",
        KeyKind::Ine => "INE",
        KeyKind::SourceRecord => "fiche du logiciel d'origine",
        KeyKind::Identite => "nom, prénom et date de naissance",
    }
}

/// The organisation whose reviews this account settles.
fn reviewer_org(c: &Current) -> Option<&str> {
    matches!(c.account.role, Role::Conseiller | Role::Operateur)
        .then_some(c.account.org.as_deref())
        .flatten()
}

async fn not_allowed(app: &WebApp, c: &Current) -> Response {
    refuse(
        app,
        c,
        StatusCode::FORBIDDEN,
        "Les revues d'identité sont réglées par les conseillers et opérateurs de l'organisation qui a envoyé la fiche.",
        "page /revues refusée",
    )
    .await
}

fn unconfigured(app: &WebApp, c: &Current) -> Response {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        layout(
            "Revues d'identité",
            Some(&who(app, c)),
            "/revues",
            "<p class=\"erreur\" role=\"alert\">Les revues d'identité ne sont pas disponibles sur ce hub.</p>",
        ),
    )
}

pub(super) async fn liste(State(app): State<WebApp>, headers: HeaderMap) -> Response {
    let Some(c) = app.current(&headers).await else {
        return to_login();
    };
    let Some(org) = reviewer_org(&c).map(str::to_owned) else {
        return not_allowed(&app, &c).await;
    };
    let Some(desk) = app.review_desk() else {
        return unconfigured(&app, &c);
    };
    let tz = app.tz();
    let mut body = String::from(
        "<p>Passerelle n'a pas su dire à qui correspondent ces fiches envoyées par votre organisation : \
         elles attendent votre décision, scellées, sans être transmises. Ouvrir une revue est journalisé.</p>",
    );
    match desk.list(&org).await {
        Ok(list) if list.is_empty() => body.push_str("<p>Aucune revue d'identité en attente.</p>"),
        Ok(list) => {
            body.push_str("<div class=\"tableau\"><table><caption>Les revues en attente, des plus anciennes aux plus récentes</caption><thead><tr>\
                <th scope=\"col\">Reçue le</th><th scope=\"col\">Échange</th><th scope=\"col\">Destinataire</th>\
                <th scope=\"col\">Pourquoi</th><th scope=\"col\">Expire le</th><th scope=\"col\">Revue</th></tr></thead><tbody>");
            for (i, r) in list.iter().enumerate() {
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} ({} candidat(s))</td><td>{}</td>\
                     <td><a href=\"/revues/{}\">Ouvrir la revue {}</a></td></tr>",
                    html::time_fr(r.created_at, tz),
                    html::flow_label(&r.flow),
                    esc(&app.org_name(&r.recipient)),
                    reason_fr(&r.reason),
                    r.candidates.len(),
                    html::time_fr(r.expires_at, tz),
                    r.id,
                    i + 1,
                );
            }
            body.push_str("</tbody></table></div>");
        }
        Err(e) => {
            tracing::warn!("reviews not listed: {e}");
            body.push_str("<p class=\"erreur\" role=\"alert\">Les revues ne peuvent pas être lues pour l'instant.</p>");
        }
    }
    page(
        StatusCode::OK,
        layout("Revues d'identité", Some(&who(&app, &c)), "/revues", &body),
    )
}

/// The review of `id` if this account may see it, else the refusal.
async fn entitled(
    app: &WebApp,
    c: &Current,
    id: &str,
) -> Result<(std::sync::Arc<dyn ReviewDesk>, OpenedReview), Response> {
    let Some(org) = reviewer_org(c).map(str::to_owned) else {
        return Err(not_allowed(app, c).await);
    };
    let Some(desk) = app.review_desk() else {
        return Err(unconfigured(app, c));
    };
    let opened = match Uuid::parse_str(id) {
        Ok(u) => desk.open(u).await.ok().flatten(),
        Err(_) => None,
    };
    let Some(o) = opened else {
        return Err(refuse(
            app,
            c,
            StatusCode::NOT_FOUND,
            "Aucune revue ne porte ce numéro.",
            "page /revues : revue inconnue",
        )
        .await);
    };
    if o.review.sender != org {
        return Err(refuse(
            app,
            c,
            StatusCode::FORBIDDEN,
            "Cette revue porte sur une fiche d'une autre organisation : vous ne pouvez pas l'ouvrir.",
            "revue d'identité d'une autre organisation refusée",
        )
        .await);
    }
    Ok((desk, o))
}

pub(super) async fn revue(
    State(app): State<WebApp>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Some(c) = app.current(&headers).await else {
        return to_login();
    };
    let (_, o) = match entitled(&app, &c, &id).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let key = &app.deps().pseudonyms;
    let pseudonyms: Vec<String> = o
        .review
        .candidates
        .iter()
        .map(|h| key.pseudonym(&h.to_string()))
        .collect();
    app.journal_consulted(
        &c.account,
        &pseudonyms,
        &format!("revue d'identité {} ouverte", &o.review.id.to_string()[..8]),
    )
    .await;
    let tz = app.tz();
    let Some(record) = &o.record else {
        let body = format!(
            "<p class=\"info\" role=\"status\">Cette revue est close ({}) : la fiche n'est plus conservée.</p>\
             <p><a href=\"/revues\">Retour aux revues</a></p>",
            match o.review.outcome.as_deref() {
                Some(s) if s.starts_with("meme") => "même personne",
                Some(s) if s.starts_with("differente") => "personnes différentes",
                Some("expiree") => "expirée",
                _ => "réglée",
            }
        );
        return page(
            StatusCode::OK,
            layout("Revue d'identité", Some(&who(&app, &c)), "/revues", &body),
        );
    };
    let ec = &record.etat_civil;
    let mut body = format!(
        "<p>Fiche envoyée par {} le {} pour l'échange « {} » vers {} : {}.</p>\
         <h2>La fiche reçue</h2><dl class=\"fiche\"><dt>Nom</dt><dd>{}</dd><dt>Prénoms</dt><dd>{}</dd><dt>Date de naissance</dt><dd>{}</dd></dl>",
        esc(&app.org_name(&o.review.sender)),
        html::time_fr(o.review.created_at, tz),
        html::flow_label(&o.review.flow),
        esc(&app.org_name(&o.review.recipient)),
        reason_fr(&o.review.reason),
        esc(ec
            .nom_naissance
            .as_deref()
            .or(ec.nom_usage.as_deref())
            .unwrap_or("")),
        esc(&ec.prenoms.join(", ")),
        ec.date_naissance
            .map(|d| esc(&d.to_french()))
            .unwrap_or_default(),
    );
    // Side by side: for each kind of key the record carries, does each candidate
    // carry the same one, another one of that kind, or none?
    let keys = IdentityKeys::of(record, key);
    let mut rows: Vec<(KeyKind, Vec<String>)> = keys
        .identifiers
        .iter()
        .map(|(k, v)| (*k, vec![v.clone()]))
        .collect();
    let mut ident: Vec<String> = keys.identites.clone();
    ident.sort();
    ident.dedup();
    if !ident.is_empty() {
        rows.push((KeyKind::Identite, ident));
    }
    let store = &app.deps().store;
    body.push_str("<h2>Les personnes connues qui lui ressemblent</h2><div class=\"tableau\"><table><caption>La fiche reçue et chaque candidat, côte à côte</caption><thead><tr><th scope=\"col\">Ce qui est comparé</th>");
    for i in 0..o.review.candidates.len() {
        let _ = write!(body, "<th scope=\"col\">Candidat {}</th>", i + 1);
    }
    body.push_str("</tr></thead><tbody>");
    let mut known: Vec<Vec<(KeyKind, String)>> = Vec::new();
    for h in &o.review.candidates {
        known.push(store.keys_of(h).await.unwrap_or_default());
    }
    for (kind, values) in &rows {
        let _ = write!(body, "<tr><th scope=\"row\">{}</th>", kind_fr(*kind));
        for k in &known {
            let same = k.iter().any(|(kk, v)| kk == kind && values.contains(v));
            let other = k.iter().any(|(kk, _)| kk == kind);
            let _ = write!(
                body,
                "<td class=\"{}\">{}</td>",
                if same {
                    "applique"
                } else if other {
                    "refuse"
                } else {
                    ""
                },
                if same {
                    "le même"
                } else if other {
                    "un autre"
                } else {
                    "inconnu"
                }
            );
        }
        body.push_str("</tr>");
    }
    body.push_str("<tr><th scope=\"row\">Échanges connus</th>");
    for h in &o.review.candidates {
        let t = store.transfers_about(&[*h]).await.unwrap_or_default();
        let flows: Vec<String> = {
            let mut f: Vec<String> = t.iter().map(|t| html::flow_label(&t.row.flow)).collect();
            f.sort();
            f.dedup();
            f
        };
        let _ = write!(
            body,
            "<td>{} échange(s){}{}</td>",
            t.len(),
            if flows.is_empty() {
                String::new()
            } else {
                format!(" : {}", flows.join(", "))
            },
            t.last()
                .map(|l| format!(" ; le dernier le {}", html::date_fr(l.created_at, tz)))
                .unwrap_or_default(),
        );
    }
    body.push_str("</tr></tbody></table></div>");
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/revues/{}\"><fieldset><legend>Votre décision</legend>\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        o.review.id,
        esc(&c.csrf)
    );
    for (i, h) in o.review.candidates.iter().enumerate() {
        let _ = write!(
            body,
            "<p><button class=\"principal\" type=\"submit\" name=\"verdict\" value=\"meme:{h}\">Même personne que le candidat {}</button></p>",
            i + 1
        );
    }
    body.push_str(
        "<p><button class=\"principal\" type=\"submit\" name=\"verdict\" value=\"differentes\">Personnes différentes</button></p>\
         <p class=\"aide\">La fiche part alors vers son destinataire, rattachée à la personne choisie ou comme une nouvelle personne.</p>\
         </fieldset></form><p><a href=\"/revues\">Retour aux revues</a></p>",
    );
    page(
        StatusCode::OK,
        layout("Revue d'identité", Some(&who(&app, &c)), "/revues", &body),
    )
}

pub(super) async fn revue_post(
    State(app): State<WebApp>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(c) = app.current(&headers).await else {
        return to_login();
    };
    if !csrf_ok(&c, &form) {
        return csrf_refused(&app, &c, "/revues").await;
    }
    let (desk, o) = match entitled(&app, &c, &id).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let verdict = match form.get("verdict").map(String::as_str) {
        Some("differentes") => Some(Verdict::Different),
        Some(v) => v
            .strip_prefix("meme:")
            .and_then(|h| Uuid::parse_str(h).ok())
            .filter(|h| o.review.candidates.contains(h))
            .map(Verdict::Same),
        None => None,
    };
    let Some(verdict) = verdict else {
        return refuse(
            &app,
            &c,
            StatusCode::UNPROCESSABLE_ENTITY,
            "Choisissez un des candidats, ou « personnes différentes ».",
            "revue d'identité : décision inconnue",
        )
        .await;
    };
    let key = &app.deps().pseudonyms;
    let subjects: Vec<String> = match verdict {
        Verdict::Same(h) => vec![key.pseudonym(&h.to_string())],
        Verdict::Different => Vec::new(),
    };
    let outcome = match desk.settle(o.review.id, verdict).await {
        Ok(Some(n)) => format!(
            "La revue est réglée ({}) : {n} envoi(s) repartent vers {}.",
            if matches!(verdict, Verdict::Same(_)) {
                "même personne"
            } else {
                "personnes différentes"
            },
            app.org_name(&o.review.recipient)
        ),
        Ok(None) => "Cette revue était déjà réglée ou a expiré.".to_owned(),
        Err(e) => {
            tracing::warn!("review not settled: {e}");
            "La revue n'a pas pu être réglée pour l'instant : réessayez dans quelques minutes."
                .to_owned()
        }
    };
    app.journal_consulted(
        &c.account,
        &subjects,
        &format!(
            "revue d'identité {} réglée : {}",
            &o.review.id.to_string()[..8],
            if matches!(verdict, Verdict::Same(_)) {
                "même personne"
            } else {
                "personnes différentes"
            }
        ),
    )
    .await;
    page(
        StatusCode::OK,
        layout(
            "Revues d'identité",
            Some(&who(&app, &c)),
            "/revues",
            &format!(
                "<p class=\"info\" role=\"status\">{}</p><p><a href=\"/revues\">Retour aux revues</a></p>",
                esc(&outcome)
            ),
        ),
    )
    .into_response()
}
