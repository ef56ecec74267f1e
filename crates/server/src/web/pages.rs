//! The pages: connexion, accueil, recherche and "le parcours des échanges", envois,
//! exploitation. Each handler checks the session and the role first, and journals
//! what touches a person.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;

use axum::Form;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, NaiveDate, Utc};
use passerelle_audit::{Filter, Lookup};
use passerelle_hub::{Role, SentFilter, TransferStatus};
use passerelle_identity::KeyKind;
use passerelle_model::{Date, Nir, NumeroAllocataire};

use super::html::{self, Who, layout};
use super::{Current, Handle, WebApp, auth, cookie, page};
use crate::page::escape_html as esc;

type Fields = Form<HashMap<String, String>>;

pub(super) fn who<'a>(app: &WebApp, c: &'a Current) -> Who<'a> {
    Who {
        login: &c.account.login,
        role: c.account.role,
        org_name: c.account.org.as_deref().map(|o| app.org_name(o)),
        csrf: &c.csrf,
    }
}

pub(super) fn to_login() -> Response {
    Redirect::to("/connexion").into_response()
}

/// A refusal page, journaled.
pub(super) async fn refuse(
    app: &WebApp,
    c: &Current,
    code: StatusCode,
    message: &str,
    what: &str,
) -> Response {
    app.journal_denied(Some(&c.account), what).await;
    let body = format!(
        "<p class=\"erreur\" role=\"alert\">{}</p><p><a href=\"/\">Retour à l'accueil</a></p>",
        esc(message)
    );
    page(code, layout("Accès refusé", Some(&who(app, c)), "", &body))
}

/// Whether the form carries the session's CSRF token.
pub(super) fn csrf_ok(c: &Current, form: &HashMap<String, String>) -> bool {
    form.get("csrf")
        .is_some_and(|t| auth::same_token(t, &c.csrf))
}

pub(super) async fn csrf_refused(app: &WebApp, c: &Current, path: &str) -> Response {
    refuse(
        app,
        c,
        StatusCode::FORBIDDEN,
        "Ce formulaire a expiré ou ne vient pas de Passerelle : rechargez la page et recommencez.",
        &format!("formulaire {path} sans jeton CSRF valide"),
    )
    .await
}

// ---------------------------------------------------------------- connexion

fn login_form(token: &str, message: Option<&str>) -> String {
    let mut body = String::new();
    if let Some(m) = message {
        let _ = write!(
            body,
            "<p class=\"erreur\" role=\"alert\" id=\"erreur\">{}</p>",
            esc(m)
        );
    }
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/connexion\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <label for=\"identifiant\">Identifiant</label>\
         <input id=\"identifiant\" name=\"identifiant\" autocomplete=\"username\" required{}>\
         <label for=\"mot_de_passe\">Mot de passe</label>\
         <input id=\"mot_de_passe\" name=\"mot_de_passe\" type=\"password\" autocomplete=\"current-password\" required>\
         <p><button class=\"principal\" type=\"submit\">Se connecter</button></p></form>\
         <p class=\"aide\">Compte oublié ou bloqué ? Adressez-vous à l'administrateur de Passerelle de votre organisation.</p>",
        esc(token),
        if message.is_some() {
            " aria-describedby=\"erreur\""
        } else {
            ""
        },
    );
    layout("Connexion", None, "/connexion", &body)
}

/// A fresh login form, with its pre-session CSRF token in a cookie and in the form.
fn login_page(app: &WebApp, code: StatusCode, message: Option<&str>) -> Response {
    let token = auth::random_token();
    let mut resp = page(code, login_form(&token, message));
    resp.headers_mut().append(
        header::SET_COOKIE,
        app.set_cookie(app.login_cookie_name(), &token, Some(3600)),
    );
    resp
}

pub(super) async fn connexion(State(app): State<WebApp>, headers: HeaderMap) -> Response {
    if app.current(&headers).await.is_some() {
        return Redirect::to("/").into_response();
    }
    login_page(&app, StatusCode::OK, None)
}

pub(super) async fn connexion_post(
    State(app): State<WebApp>,
    addr: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(form): Fields,
) -> Response {
    let pre = cookie(&headers, app.login_cookie_name()).unwrap_or("");
    let sent = form.get("csrf").map(String::as_str).unwrap_or("");
    if pre.is_empty() || !auth::same_token(pre, sent) {
        app.journal_denied(None, "formulaire /connexion sans jeton CSRF valide")
            .await;
        return login_page(
            &app,
            StatusCode::FORBIDDEN,
            Some(
                "Ce formulaire a expiré : saisissez à nouveau votre identifiant et votre mot de passe.",
            ),
        );
    }
    let login = form.get("identifiant").map(|s| s.trim()).unwrap_or("");
    let password = form.get("mot_de_passe").map(String::as_str).unwrap_or("");
    let ip = addr.map_or_else(|| "inconnue".to_owned(), |a| a.0.0.ip().to_string());
    const WRONG: &str = "Identifiant ou mot de passe incorrect, ou trop d'essais récents. \
                         Vérifiez votre saisie ; après plusieurs échecs, attendez quelques minutes.";
    if login.is_empty() || login.len() > 128 || password.len() > 1024 {
        return login_page(&app, StatusCode::UNAUTHORIZED, Some(WRONG));
    }
    if !app.throttle().allowed(login, &ip) {
        app.journal_denied(
            None,
            "connexion refusée : trop d'essais pour ce compte ou cette adresse",
        )
        .await;
        // Same words as a wrong password: the answer never says which was wrong.
        return login_page(&app, StatusCode::TOO_MANY_REQUESTS, Some(WRONG));
    }
    let account = app.deps().store.account(login).await.ok().flatten();
    let ok = match &account {
        Some(a) => auth::verify_password(password, &a.password_hash) && !a.disabled,
        None => {
            let _ = auth::verify_password(password, auth::dummy_hash());
            false
        }
    };
    if !ok {
        app.throttle().failed(login, &ip);
        app.journal_denied(
            None,
            "connexion refusée : identifiant ou mot de passe incorrect",
        )
        .await;
        return login_page(&app, StatusCode::UNAUTHORIZED, Some(WRONG));
    }
    app.throttle().succeeded(login);
    let Some(token) = app.open_session(login).await else {
        return login_page(
            &app,
            StatusCode::SERVICE_UNAVAILABLE,
            Some("La connexion n'a pas pu être ouverte : réessayez dans un instant."),
        );
    };
    let mut resp = Redirect::to("/").into_response();
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        app.set_cookie(app.session_cookie_name(), &token, None),
    );
    h.append(
        header::SET_COOKIE,
        app.set_cookie(app.login_cookie_name(), "", Some(0)),
    );
    resp
}

pub(super) async fn deconnexion(
    State(app): State<WebApp>,
    headers: HeaderMap,
    Form(form): Fields,
) -> Response {
    let Some(c) = app.current(&headers).await else {
        return to_login();
    };
    if !csrf_ok(&c, &form) {
        return csrf_refused(&app, &c, "/deconnexion").await;
    }
    let _ = app.deps().store.end_session(&c.id_hash).await;
    app.forget_handles(&c.id_hash);
    let mut resp = Redirect::to("/connexion").into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        app.set_cookie(app.session_cookie_name(), "", Some(0)),
    );
    resp
}

// ---------------------------------------------------------------- accueil

pub(super) async fn accueil(State(app): State<WebApp>, headers: HeaderMap) -> Response {
    let Some(c) = app.current(&headers).await else {
        return to_login();
    };
    let mut body = String::new();
    let role = c.account.role;
    body.push_str("<h2>Ce que vous pouvez faire</h2><ul>");
    if WebApp::may_search(role) {
        body.push_str("<li><a href=\"/recherche\">Rechercher une personne</a> et voir le parcours de ses échanges");
        if role.scoped() {
            body.push_str(" avec votre organisation");
        }
        body.push_str("</li>");
        body.push_str(
            "<li><a href=\"/envois\">Voir ce qui a été envoyé</a> et ce qu'il en est advenu</li>",
        );
    }
    if role.scoped() {
        body.push_str(
            "<li><a href=\"/revues\">Régler les revues d'identité</a> des fiches envoyées par votre organisation</li>",
        );
    }
    if role.scoped() && c.account.org.as_deref().is_some_and(super::faj::is_ml) {
        body.push_str(
            "<li><a href=\"/faj/nouvelle\">Déposer une demande FAJ</a> à partir d'un dossier I-MILO</li>",
        );
    }
    if role == Role::Dpo {
        body.push_str(
            "<li><a href=\"/dpo\">Ouvrir la console du DPO</a> : état du journal et alertes, demandes d'accès (article 15), registre, exports et purge</li>",
        );
    }
    if matches!(role, Role::Operateur | Role::Admin) {
        body.push_str(
            "<li><a href=\"/exploitation\">Suivre les nuits d'échanges</a> (tableau de bord)</li>",
        );
    }
    body.push_str("</ul>");
    let last = {
        let s = app.status().read().unwrap_or_else(|p| p.into_inner());
        s.last_night().cloned()
    };
    body.push_str("<h2>Dernière nuit d'échanges</h2>");
    match last {
        Some(n) => {
            let sent: u64 = n.flows.iter().map(|f| f.sent).sum();
            let applied: u64 = n.flows.iter().map(|f| f.applied).sum();
            let rejected: u64 = n.flows.iter().map(|f| f.rejected).sum();
            let _ = write!(
                body,
                "<p>Commencée le {}{}. {sent} envoi(s), {applied} appliqué(s), {rejected} refusé(s).</p>",
                html::time_fr(n.started_at, app.tz()),
                n.ended_at
                    .map(|e| format!(", terminée le {}", html::time_fr(e, app.tz())))
                    .unwrap_or_else(|| ", en cours".into()),
            );
        }
        None => body.push_str("<p>Aucune nuit d'échanges depuis le démarrage.</p>"),
    }
    page(
        StatusCode::OK,
        layout("Accueil", Some(&who(&app, &c)), "/", &body),
    )
}

// ---------------------------------------------------------------- recherche

fn search_forms(csrf: &str) -> String {
    let csrf = esc(csrf);
    format!(
        "<p>Saisissez un identifiant de la personne. Passerelle ne conserve aucune donnée \
         personnelle en clair : elle retrouve la personne par des empreintes, et n'affiche \
         d'elle que ce que vous avez saisi.</p>\
         <form method=\"post\" action=\"/recherche\"><fieldset><legend>Par NIR</legend>\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"mode\" value=\"nir\">\
         <label for=\"nir\">NIR (numéro de sécurité sociale)</label>\
         <p class=\"aide\" id=\"nir-aide\">13 ou 15 caractères, espaces permis.</p>\
         <input id=\"nir\" name=\"nir\" inputmode=\"numeric\" autocomplete=\"off\" aria-describedby=\"nir-aide\" required>\
         <p><button class=\"principal\" type=\"submit\">Rechercher par NIR</button></p></fieldset></form>\
         <form method=\"post\" action=\"/recherche\"><fieldset><legend>Par numéro allocataire</legend>\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"mode\" value=\"caf\">\
         <label for=\"caf\">Numéro allocataire CAF ou MSA</label>\
         <p class=\"aide\" id=\"caf-aide\">7 chiffres.</p>\
         <input id=\"caf\" name=\"caf\" inputmode=\"numeric\" autocomplete=\"off\" aria-describedby=\"caf-aide\" required>\
         <p><button class=\"principal\" type=\"submit\">Rechercher par numéro allocataire</button></p></fieldset></form>\
         <form method=\"post\" action=\"/recherche\"><fieldset><legend>Par nom, prénom et date de naissance</legend>\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"mode\" value=\"identite\">\
         <label for=\"nom\">Nom de naissance ou d'usage</label><input id=\"nom\" name=\"nom\" autocomplete=\"off\" required>\
         <label for=\"prenom\">Prénom</label><input id=\"prenom\" name=\"prenom\" autocomplete=\"off\" required>\
         <label for=\"naissance\">Date de naissance</label>\
         <p class=\"aide\" id=\"naissance-aide\">Au format jj/mm/aaaa.</p>\
         <input id=\"naissance\" name=\"naissance\" autocomplete=\"off\" aria-describedby=\"naissance-aide\" required>\
         <p><button class=\"principal\" type=\"submit\">Rechercher par identité</button></p></fieldset></form>"
    )
}

pub(super) async fn recherche(State(app): State<WebApp>, headers: HeaderMap) -> Response {
    let Some(c) = app.current(&headers).await else {
        return to_login();
    };
    if !WebApp::may_search(c.account.role) {
        return refuse(
            &app,
            &c,
            StatusCode::FORBIDDEN,
            "Un compte administrateur ne peut pas rechercher une personne.",
            "page /recherche refusée au rôle admin",
        )
        .await;
    }
    page(
        StatusCode::OK,
        layout(
            "Rechercher une personne",
            Some(&who(&app, &c)),
            "/recherche",
            &search_forms(&c.csrf),
        ),
    )
}

fn search_error(app: &WebApp, c: &Current, message: &str) -> Response {
    let body = format!(
        "<p class=\"erreur\" role=\"alert\">{}</p>{}",
        esc(message),
        search_forms(&c.csrf)
    );
    page(
        StatusCode::UNPROCESSABLE_ENTITY,
        layout(
            "Rechercher une personne",
            Some(&who(app, c)),
            "/recherche",
            &body,
        ),
    )
}

pub(super) async fn recherche_post(
    State(app): State<WebApp>,
    headers: HeaderMap,
    Form(form): Fields,
) -> Response {
    let Some(c) = app.current(&headers).await else {
        return to_login();
    };
    if !csrf_ok(&c, &form) {
        return csrf_refused(&app, &c, "/recherche").await;
    }
    if !WebApp::may_search(c.account.role) {
        return refuse(
            &app,
            &c,
            StatusCode::FORBIDDEN,
            "Un compte administrateur ne peut pas rechercher une personne.",
            "recherche refusée au rôle admin",
        )
        .await;
    }
    let get = |k: &str| form.get(k).map(|s| s.trim()).unwrap_or("");
    let key = &app.deps().pseudonyms;
    // The identity index's keys (the hub's matching) and the journal's lookup.
    let (lookup, keys, typed, how) = match get("mode") {
        "nir" => match Nir::parse(get("nir")) {
            Ok(n) => {
                let k = vec![(
                    KeyKind::Nir,
                    key.blind_index(KeyKind::Nir.as_str(), n.as_str()),
                )];
                let typed = get("nir").to_owned();
                (Lookup::Nir(n), k, typed, "NIR")
            }
            Err(_) => {
                return search_error(
                    &app,
                    &c,
                    "Ce NIR n'est pas valide : saisissez ses 13 chiffres (ou 15 avec la clé), par exemple 2 04 03 59 350 123.",
                );
            }
        },
        "caf" => match NumeroAllocataire::parse(get("caf")) {
            Ok(n) => (
                Lookup::Caf(n),
                Vec::new(),
                get("caf").to_owned(),
                "numéro allocataire",
            ),
            Err(_) => {
                return search_error(
                    &app,
                    &c,
                    "Ce numéro allocataire n'est pas valide : il compte 7 chiffres.",
                );
            }
        },
        "identite" => {
            let (nom, prenom) = (get("nom"), get("prenom"));
            if nom.is_empty() || prenom.is_empty() {
                return search_error(&app, &c, "Saisissez le nom et le prénom de la personne.");
            }
            let Ok(date) = Date::parse(get("naissance")) else {
                return search_error(
                    &app,
                    &c,
                    "Cette date de naissance n'est pas valide : saisissez-la au format jj/mm/aaaa, par exemple 12/03/2004.",
                );
            };
            let l = Lookup::Identite {
                nom: nom.to_owned(),
                prenom: prenom.to_owned(),
                date_naissance: date,
            };
            let k = l
                .normalised()
                .iter()
                .map(|v| {
                    (
                        KeyKind::Identite,
                        key.blind_index(KeyKind::Identite.as_str(), v),
                    )
                })
                .collect();
            let typed = format!("{} {}, né(e) le {}", prenom, nom, get("naissance"));
            (l, k, typed, "nom, prénom et date de naissance")
        }
        _ => return search_error(&app, &c, "Choisissez comment rechercher la personne."),
    };
    let mut subjects: Vec<String> = match app.deps().store.hub_ids_for(&keys).await {
        Ok(ids) => ids.iter().map(|h| key.pseudonym(&h.to_string())).collect(),
        Err(e) => {
            tracing::warn!("identity lookup failed: {e}");
            Vec::new()
        }
    };
    match app
        .deps()
        .journal
        .subjects_for(&lookup.blind_indexes(key))
        .await
    {
        Ok(s) => subjects.extend(s),
        Err(e) => tracing::warn!("journal lookup failed: {e}"),
    }
    subjects.sort();
    subjects.dedup();
    let what = format!(
        "recherche par {how}{}",
        if subjects.is_empty() {
            " : aucune personne trouvée"
        } else {
            ""
        }
    );
    app.journal_consulted(&c.account, &subjects, &what).await;
    if subjects.is_empty() {
        return search_error(
            &app,
            &c,
            "Aucune personne trouvée : Passerelle n'a encore transmis aucun échange à son sujet, ou la saisie diffère de celle des logiciels (vérifiez l'orthographe et la date).",
        );
    }
    let id = app.new_handle(Handle {
        session: c.id_hash.clone(),
        subjects,
        typed,
        how,
        at: std::time::Instant::now(),
    });
    // The DPO's search (from /dpo) goes on to the Art. 15 report, with the day the
    // request was received (a date, not a personal value).
    if c.account.role == Role::Dpo && get("suite") == "dpo" {
        return Redirect::to(&format!(
            "/dpo/personne/{id}?recue={}",
            super::dpo::received_day(get("recue_le"), app.today())
        ))
        .into_response();
    }
    Redirect::to(&format!("/personne/{id}")).into_response()
}

// ---------------------------------------------------------------- personne

/// One transfer on the timeline, as the journal tells it.
#[derive(Debug)]
pub(super) struct Line {
    pub(super) at: DateTime<Utc>,
    pub(super) flow: String,
    pub(super) sender: String,
    pub(super) recipient: String,
    pub(super) subject: String,
    pub(super) fields: Vec<String>,
    pub(super) status: TransferStatus,
    pub(super) reason: Option<String>,
    pub(super) answered: Option<DateTime<Utc>>,
    /// Refused by the policy before leaving: nothing was sent.
    pub(super) denied: bool,
}

fn rank(s: TransferStatus) -> u8 {
    match s {
        TransferStatus::Published => 0,
        TransferStatus::Delivered => 1,
        TransferStatus::Rejected | TransferStatus::DeadLettered => 2,
        TransferStatus::Applied => 3,
    }
}

pub(super) fn timeline(entries: Vec<passerelle_audit::Entry>) -> Vec<Line> {
    let mut lines: Vec<Line> = Vec::new();
    for e in entries {
        let Ok(at) = DateTime::parse_from_rfc3339(&e.at).map(|t| t.with_timezone(&Utc)) else {
            continue;
        };
        let (Some(flow), Some(sender), Some(recipient), Some(subject)) = (
            e.flow.clone(),
            e.sender.clone(),
            e.recipient.clone(),
            e.subject.clone(),
        ) else {
            continue;
        };
        let status = match e.event.as_str() {
            "published" => None,
            "delivered" => Some(TransferStatus::Delivered),
            "applied" => Some(TransferStatus::Applied),
            "rejected" => Some(TransferStatus::Rejected),
            "dead_lettered" => Some(TransferStatus::DeadLettered),
            "denied" => {
                // Special data projected away rides with its published transfer.
                if e.reason
                    .as_deref()
                    .is_some_and(|r| r.starts_with("special-data"))
                {
                    continue;
                }
                lines.push(Line {
                    at,
                    flow,
                    sender,
                    recipient,
                    subject,
                    fields: e.fields,
                    status: TransferStatus::Rejected,
                    reason: e.reason,
                    answered: None,
                    denied: true,
                });
                continue;
            }
            _ => continue,
        };
        match status {
            None => lines.push(Line {
                at,
                flow,
                sender,
                recipient,
                subject,
                fields: e.fields,
                status: TransferStatus::Published,
                reason: None,
                answered: None,
                denied: false,
            }),
            Some(s) => {
                // A receipt answers the latest transfer of the same flow between the same parties.
                if let Some(l) = lines.iter_mut().rev().find(|l| {
                    !l.denied
                        && l.flow == flow
                        && l.sender == sender
                        && l.recipient == recipient
                        && l.subject == subject
                }) && rank(s) >= rank(l.status)
                {
                    l.status = s;
                    l.reason = e.reason.clone();
                    l.answered = Some(at);
                }
            }
        }
    }
    lines.reverse();
    lines
}

pub(super) async fn personne(
    State(app): State<WebApp>,
    headers: HeaderMap,
    Path(handle): Path<String>,
) -> Response {
    let Some(c) = app.current(&headers).await else {
        return to_login();
    };
    let Some(h) = app.handle(&c.id_hash, &handle) else {
        return refuse(
            &app,
            &c,
            StatusCode::NOT_FOUND,
            "Cette page n'existe pas ou n'est plus valable : les personnes se recherchent à nouveau à chaque connexion.",
            "page /personne inconnue de cette session",
        )
        .await;
    };
    let role = c.account.role;
    let org = c.account.org.clone();
    app.journal_consulted(
        &c.account,
        &h.subjects,
        "page /personne (parcours des échanges)",
    )
    .await;
    let entries = app
        .deps()
        .journal
        .entries(&Filter {
            subjects: Some(h.subjects.clone()),
            ..Filter::default()
        })
        .await
        .unwrap_or_default();
    let mut lines = timeline(entries);
    if role.scoped() {
        let o = org.as_deref().unwrap_or("");
        lines.retain(|l| l.sender == o || l.recipient == o);
    }
    let tz = app.tz();
    let mut body = format!(
        "<p class=\"info\">Personne recherchée par {} : <strong>{}</strong>{}</p>",
        esc(h.how),
        esc(&h.typed),
        if h.subjects.len() > 1 {
            format!(
                " — attention, cette saisie correspond à {} personnes distinctes pour Passerelle.",
                h.subjects.len()
            )
        } else {
            String::new()
        }
    );
    if role.scoped() {
        let _ = write!(
            body,
            "<p>Les échanges ci-dessous sont ceux dont {} est l'expéditeur ou le destinataire. \
             Seuls les noms des informations transmises sont affichés, jamais leur contenu.</p>",
            esc(&app.org_name(org.as_deref().unwrap_or("")))
        );
    }
    if lines.is_empty() {
        body.push_str("<p>Aucun échange de votre organisation au sujet de cette personne.</p>");
    } else {
        body.push_str(
            "<div class=\"tableau\"><table><caption>Le parcours des échanges, du plus récent au plus ancien</caption>\
             <thead><tr><th scope=\"col\">Date</th><th scope=\"col\">Échange</th><th scope=\"col\">Sens</th>\
             <th scope=\"col\">Informations transmises</th><th scope=\"col\">Accusé de réception</th></tr></thead><tbody>",
        );
        for l in &lines {
            let sens = match org.as_deref() {
                Some(o) if role.scoped() && l.sender == o => {
                    format!("envoyé à {}", esc(&app.org_name(&l.recipient)))
                }
                Some(o) if role.scoped() && l.recipient == o => {
                    format!("reçu de {}", esc(&app.org_name(&l.sender)))
                }
                _ => format!(
                    "de {} à {}",
                    esc(&app.org_name(&l.sender)),
                    esc(&app.org_name(&l.recipient))
                ),
            };
            let (status, class) = if l.denied {
                (
                    format!(
                        "non envoyé : refusé par les règles d'échange{}",
                        l.reason
                            .as_deref()
                            .map(|r| format!(" ({})", esc(r)))
                            .unwrap_or_default()
                    ),
                    "refuse",
                )
            } else {
                let (s, class) = html::status_fr(l.status, l.reason.as_deref());
                let when = l
                    .answered
                    .map(|a| format!(", le {}", html::date_fr(a, tz)))
                    .unwrap_or_default();
                (format!("{s}{when}"), class)
            };
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{sens}</td><td>{}</td><td class=\"{class}\">{status}</td></tr>",
                html::time_fr(l.at, tz),
                html::flow_label(&l.flow),
                html::fields_fr(&l.fields),
            );
        }
        body.push_str("</tbody></table></div>");
    }
    body.push_str("<p><a href=\"/recherche\">Nouvelle recherche</a></p>");
    page(
        StatusCode::OK,
        layout("Le parcours des échanges", Some(&who(&app, &c)), "", &body),
    )
}

// ---------------------------------------------------------------- envois

fn day(s: Option<&String>) -> Option<NaiveDate> {
    s.filter(|s| !s.is_empty())
        .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
}

pub(super) async fn envois(
    State(app): State<WebApp>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(c) = app.current(&headers).await else {
        return to_login();
    };
    let role = c.account.role;
    if !WebApp::may_search(role) {
        return refuse(
            &app,
            &c,
            StatusCode::FORBIDDEN,
            "Un compte administrateur ne voit pas les envois des organisations.",
            "page /envois refusée au rôle admin",
        )
        .await;
    }
    let asked = q.get("organisation").filter(|s| !s.is_empty()).cloned();
    let org = match (role.scoped(), &c.account.org, asked) {
        (true, Some(own), Some(other)) if &other != own => {
            return refuse(
                &app,
                &c,
                StatusCode::FORBIDDEN,
                &format!(
                    "Vous ne pouvez pas voir les envois de {} : votre compte est rattaché à {}.",
                    app.org_name(&other),
                    app.org_name(own)
                ),
                &format!("page /envois de l'organisation {other} refusée"),
            )
            .await;
        }
        (true, Some(own), _) => own.clone(),
        (false, _, Some(other)) => other,
        _ => String::new(),
    };
    let flow = q
        .get("flux")
        .filter(|s| html::FLOWS.contains(&s.as_str()))
        .cloned();
    let status = q.get("statut").and_then(|s| TransferStatus::parse_name(s));
    let from = day(q.get("du"));
    let to = day(q.get("au"));
    let bad_date = (q.get("du").is_some_and(|s| !s.is_empty()) && from.is_none())
        || (q.get("au").is_some_and(|s| !s.is_empty()) && to.is_none());
    let mut body = String::new();
    if bad_date {
        body.push_str("<p class=\"erreur\" role=\"alert\">Une date de la période n'est pas valide : choisissez-la dans le calendrier ou saisissez-la au format aaaa-mm-jj.</p>");
    }
    let _ = write!(
        body,
        "<form method=\"get\" action=\"/envois\"><fieldset><legend>Filtrer</legend>"
    );
    if !role.scoped() {
        let _ = write!(
            body,
            "<label for=\"organisation\">Organisation expéditrice (code)</label>\
             <input id=\"organisation\" name=\"organisation\" value=\"{}\">",
            esc(&org)
        );
    }
    body.push_str("<label for=\"flux\">Échange</label><select id=\"flux\" name=\"flux\"><option value=\"\">Tous</option>");
    for f in html::FLOWS {
        let sel = if flow.as_deref() == Some(f) {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            body,
            "<option value=\"{f}\"{sel}>{}</option>",
            html::flow_label(f)
        );
    }
    body.push_str("</select><label for=\"statut\">Statut</label><select id=\"statut\" name=\"statut\"><option value=\"\">Tous</option>");
    for s in [
        TransferStatus::Published,
        TransferStatus::Delivered,
        TransferStatus::Applied,
        TransferStatus::Rejected,
        TransferStatus::DeadLettered,
    ] {
        let sel = if status == Some(s) { " selected" } else { "" };
        let _ = write!(
            body,
            "<option value=\"{}\"{sel}>{}</option>",
            s.as_str(),
            html::status_fr(s, None).0
        );
    }
    let _ = write!(
        body,
        "</select><label for=\"du\">Du</label><input id=\"du\" name=\"du\" type=\"date\" value=\"{}\">\
         <label for=\"au\">Au (inclus)</label><input id=\"au\" name=\"au\" type=\"date\" value=\"{}\">\
         <p><button class=\"principal\" type=\"submit\">Afficher</button></p></fieldset></form>",
        from.map(|d| d.to_string()).unwrap_or_default(),
        to.map(|d| d.to_string()).unwrap_or_default(),
    );
    if org.is_empty() {
        body.push_str("<p>Saisissez le code d'une organisation expéditrice.</p>");
    } else {
        let tz = app.tz();
        let local_midnight = |d: NaiveDate| -> Option<DateTime<Utc>> {
            Some(match tz.from_local(d.and_hms_opt(0, 0, 0)?) {
                crate::tz::LocalTime::Single(t)
                | crate::tz::LocalTime::Twice(t, _)
                | crate::tz::LocalTime::Skipped(t) => t,
            })
        };
        let filter = SentFilter {
            flow,
            status,
            from: from.and_then(local_midnight),
            to: to.and_then(|d| d.succ_opt()).and_then(local_midnight),
            limit: 500,
        };
        let rows = app
            .deps()
            .store
            .sent_by(&org, &filter)
            .await
            .unwrap_or_default();
        let _ = write!(
            body,
            "<h2>Envois de {} ({} affiché(s), 500 au plus)</h2>",
            esc(&app.org_name(&org)),
            rows.len()
        );
        if rows.is_empty() {
            body.push_str("<p>Aucun envoi ne correspond à ces filtres.</p>");
        } else {
            body.push_str("<div class=\"tableau\"><table><caption>Les envois, du plus récent au plus ancien</caption><thead><tr>\
                <th scope=\"col\">Date</th><th scope=\"col\">Échange</th><th scope=\"col\">Destinataire</th>\
                <th scope=\"col\">Votre référence</th><th scope=\"col\">Personne (initiales)</th><th scope=\"col\">Accusé de réception</th><th scope=\"col\">Que faire</th></tr></thead><tbody>");
            for t in &rows {
                let (s, class) = html::status_fr(t.row.status, t.row.reason.as_deref());
                let opened = t.sender_ref.as_deref().and_then(|stored| {
                    passerelle_hub::engine::open_sender_ref_full(
                        app.sealer(),
                        &t.row.transfer_id,
                        &t.row.sender,
                        stored,
                    )
                });
                let reference = match &opened {
                    Some(o) => format!("<code>{}</code>", esc(&o.reference)),
                    None => format!(
                        "transfert <code>{}</code>",
                        &t.row.transfer_id.to_string()[..8]
                    ),
                };
                let initiales = opened
                    .as_ref()
                    .and_then(|o| o.initiales.as_deref())
                    .map(esc)
                    .unwrap_or_else(|| "—".to_owned());
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{reference}</td><td>{initiales}</td><td class=\"{class}\">{s}</td><td>{}</td></tr>",
                    html::time_fr(t.created_at, tz),
                    html::flow_label(&t.row.flow),
                    esc(&app.org_name(&t.row.recipient)),
                    super::relance::what_to_do(&app, &c, t),
                );
            }
            body.push_str("</tbody></table></div>");
        }
    }
    let title = if role == Role::Conseiller {
        "Mes envois"
    } else {
        "Envois"
    };
    page(
        StatusCode::OK,
        layout(title, Some(&who(&app, &c)), "/envois", &body),
    )
}

// ---------------------------------------------------------------- exploitation

pub(super) async fn exploitation(State(app): State<WebApp>, headers: HeaderMap) -> Response {
    let Some(c) = app.current(&headers).await else {
        return to_login();
    };
    if !matches!(c.account.role, Role::Operateur | Role::Admin) {
        return refuse(
            &app,
            &c,
            StatusCode::FORBIDDEN,
            "Le tableau de bord des nuits est réservé aux opérateurs et aux administrateurs.",
            "page /exploitation refusée",
        )
        .await;
    }
    let status = app
        .status()
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let tz = app.tz();
    let mut body = format!(
        "<p>Version {} · en service depuis le {}",
        esc(&status.version),
        html::time_fr(status.started_at, tz)
    );
    if let Some(n) = status.next_run {
        let _ = write!(body, " · prochaine nuit le {}", html::time_fr(n, tz));
    }
    body.push_str("</p><p class=\"aide\">« En attente de réponse » n'est pas une perte : le destinataire (un logiciel de CD qui importe la nuit, une commission FAJ) répond plus tard, et l'accusé arrive alors.</p>");
    if status.nights.is_empty() {
        body.push_str("<p>Aucune nuit d'échanges depuis le démarrage.</p>");
    }
    for night in &status.nights {
        let _ = write!(
            body,
            "<div class=\"tableau\"><table><caption>Nuit commencée le {}{}</caption><thead><tr>\
             <th scope=\"col\">Échange</th><th scope=\"col\">Résultat</th><th scope=\"col\">Lus</th>\
             <th scope=\"col\">Envoyés</th><th scope=\"col\">Inchangés</th><th scope=\"col\">Appliqués</th>\
             <th scope=\"col\">En attente de réponse</th><th scope=\"col\">Refusés</th>\
             <th scope=\"col\">Non autorisés</th><th scope=\"col\">Non remis</th><th scope=\"col\">Erreur</th></tr></thead><tbody>",
            html::date_fr(night.started_at, tz),
            night
                .ended_at
                .map(|e| format!(", terminée le {}", html::date_fr(e, tz)))
                .unwrap_or_else(|| " (en cours)".into()),
        );
        for f in &night.flows {
            let waiting = f
                .sent
                .saturating_sub(f.applied + f.rejected + f.dead_lettered);
            let outcome = match f.outcome.as_str() {
                "completed" => "terminé",
                "partial" => "terminé avec des refus",
                "failed" => "en échec",
                "running" => "en cours",
                other => other,
            };
            let _ = write!(
                body,
                "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{waiting}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                html::flow_label(&f.flow),
                esc(outcome),
                f.read,
                f.sent,
                f.unchanged,
                f.applied,
                f.rejected,
                f.denied,
                f.dead_lettered,
                esc(f.error.as_deref().unwrap_or("")),
            );
        }
        body.push_str("</tbody></table></div>");
    }
    body.push_str(
        "<p><a href=\"/api/status\">État en JSON</a> · <a href=\"/metrics\">Métriques</a></p>",
    );
    page(
        StatusCode::OK,
        layout("Exploitation", Some(&who(&app, &c)), "/exploitation", &body),
    )
}

// ---------------------------------------------------------------- admin

async fn comptes_page(
    app: &WebApp,
    c: &Current,
    code: StatusCode,
    message: Option<(&str, bool)>,
) -> Response {
    let mut body = String::new();
    if let Some((m, error)) = message {
        let _ = write!(
            body,
            "<p class=\"{}\" role=\"{}\">{}</p>",
            if error { "erreur" } else { "info" },
            if error { "alert" } else { "status" },
            esc(m)
        );
    }
    let accounts = app.deps().store.accounts().await.unwrap_or_default();
    body.push_str("<div class=\"tableau\"><table><caption>Les comptes</caption><thead><tr>\
        <th scope=\"col\">Identifiant</th><th scope=\"col\">Rôle</th><th scope=\"col\">Organisation</th>\
        <th scope=\"col\">État</th><th scope=\"col\">Action</th></tr></thead><tbody>");
    for a in &accounts {
        let mut action = if a.disabled || a.login == c.account.login {
            String::new()
        } else {
            format!(
                "<form method=\"post\" action=\"/admin/comptes\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                 <input type=\"hidden\" name=\"action\" value=\"desactiver\"><input type=\"hidden\" name=\"identifiant\" value=\"{}\">\
                 <button type=\"submit\">Désactiver {}</button></form>",
                esc(&c.csrf),
                esc(&a.login),
                esc(&a.login)
            )
        };
        // A new password (and the account enabled again), told to the person elsewhere.
        let field = format!("nouveau-{}", esc(&a.login));
        let _ = write!(
            action,
            "<form method=\"post\" action=\"/admin/comptes\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <input type=\"hidden\" name=\"action\" value=\"reinitialiser\"><input type=\"hidden\" name=\"identifiant\" value=\"{}\">\
             <label for=\"{field}\">Nouveau mot de passe pour {}</label>\
             <input id=\"{field}\" name=\"mot_de_passe\" type=\"password\" autocomplete=\"new-password\" required>\
             <button type=\"submit\">Réinitialiser le mot de passe de {}</button></form>",
            esc(&c.csrf),
            esc(&a.login),
            esc(&a.login),
            esc(&a.login)
        );
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{action}</td></tr>",
            esc(&a.login),
            html::role_label(a.role),
            a.org
                .as_deref()
                .map(|o| esc(&app.org_name(o)))
                .unwrap_or_else(|| "toutes".into()),
            if a.disabled { "désactivé" } else { "actif" },
        );
    }
    body.push_str("</tbody></table></div>");
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/admin/comptes\"><fieldset><legend>Créer un compte</legend>\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"action\" value=\"creer\">\
         <label for=\"identifiant\">Identifiant</label><input id=\"identifiant\" name=\"identifiant\" required autocomplete=\"off\">\
         <label for=\"role\">Rôle</label><select id=\"role\" name=\"role\">\
         <option value=\"conseiller\">conseiller</option><option value=\"operateur\">opérateur</option>\
         <option value=\"dpo\">délégué à la protection des données</option><option value=\"admin\">administrateur</option></select>\
         <label for=\"organisation\">Organisation (code de la structure ou du CD, pour un conseiller ou un opérateur)</label>\
         <input id=\"organisation\" name=\"organisation\" autocomplete=\"off\">\
         <label for=\"mot_de_passe\">Mot de passe initial</label>\
         <p class=\"aide\" id=\"mdp-aide\">Au moins {} caractères ; transmettez-le à la personne par un autre canal.</p>\
         <input id=\"mot_de_passe\" name=\"mot_de_passe\" type=\"password\" autocomplete=\"new-password\" aria-describedby=\"mdp-aide\" required>\
         <p><button class=\"principal\" type=\"submit\">Créer le compte</button></p></fieldset></form>",
        esc(&c.csrf),
        auth::MIN_PASSWORD_CHARS
    );
    page(
        code,
        layout("Comptes", Some(&who(app, c)), "/admin/comptes", &body),
    )
}

async fn admin_only(app: &WebApp, c: &Current) -> Option<Response> {
    (c.account.role != Role::Admin).then_some(())?;
    Some(
        refuse(
            app,
            c,
            StatusCode::FORBIDDEN,
            "La gestion des comptes est réservée aux administrateurs.",
            "page /admin/comptes refusée",
        )
        .await,
    )
}

pub(super) async fn comptes(State(app): State<WebApp>, headers: HeaderMap) -> Response {
    let Some(c) = app.current(&headers).await else {
        return to_login();
    };
    if let Some(r) = admin_only(&app, &c).await {
        return r;
    }
    comptes_page(&app, &c, StatusCode::OK, None).await
}

pub(super) async fn comptes_post(
    State(app): State<WebApp>,
    headers: HeaderMap,
    Form(form): Fields,
) -> Response {
    let Some(c) = app.current(&headers).await else {
        return to_login();
    };
    if !csrf_ok(&c, &form) {
        return csrf_refused(&app, &c, "/admin/comptes").await;
    }
    if let Some(r) = admin_only(&app, &c).await {
        return r;
    }
    let get = |k: &str| form.get(k).map(|s| s.trim()).unwrap_or("");
    let login = get("identifiant");
    let store = &app.deps().store;
    let bad = |m: String| (StatusCode::UNPROCESSABLE_ENTITY, m, true);
    let (code, message, error) = match get("action") {
        "reinitialiser" => {
            match auth::hash_password(form.get("mot_de_passe").map(String::as_str).unwrap_or("")) {
                Err(e) => bad(format!(
                    "Le mot de passe de {login} n'a pas été changé : {e}."
                )),
                Ok(h) => match store.set_password(login, &h).await {
                    Ok(()) => (
                        StatusCode::OK,
                        format!(
                            "Le mot de passe de {login} est réinitialisé ; ses sessions sont fermées et le compte est actif."
                        ),
                        false,
                    ),
                    Err(_) => bad(format!("Aucun compte {login}.")),
                },
            }
        }
        "desactiver" => match store.disable(login).await {
            Ok(()) => (
                StatusCode::OK,
                format!("Le compte {login} est désactivé ; ses sessions sont fermées."),
                false,
            ),
            Err(_) => bad(format!("Aucun compte {login}.")),
        },
        "creer" => {
            let role: Option<Role> = get("role").parse().ok();
            let org = Some(get("organisation")).filter(|o| !o.is_empty());
            let valid_login = !login.is_empty()
                && login.len() <= 64
                && login
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '-' | '_' | '@'));
            match role {
                _ if !valid_login => bad("L'identifiant compte de 1 à 64 lettres, chiffres, points, tirets ou @.".into()),
                None => bad("Choisissez un rôle.".into()),
                Some(r) if r.scoped() && org.is_none() => {
                    bad("Un conseiller ou un opérateur est rattaché à une organisation : saisissez son code.".into())
                }
                Some(r) if !r.scoped() && org.is_some() => {
                    bad("Ce rôle couvre toutes les organisations : laissez l'organisation vide.".into())
                }
                Some(r) => match auth::hash_password(form.get("mot_de_passe").map(String::as_str).unwrap_or("")) {
                    Err(e) => bad(format!("Le compte n'a pas été créé : {e}.")),
                    Ok(h) => match store.add_account(login, &h, r, org).await {
                        Ok(()) => (StatusCode::OK, format!("Le compte {login} est créé."), false),
                        Err(_) => bad(format!("Le compte {login} existe déjà.")),
                    },
                },
            }
        }
        _ => bad("Action inconnue.".into()),
    };
    if !error {
        // Who changed which account, how: the login and the action, never a password.
        let what = match get("action") {
            "creer" => format!(
                "administration des comptes : compte {login} créé (rôle {}{})",
                get("role"),
                Some(get("organisation"))
                    .filter(|o| !o.is_empty())
                    .map(|o| format!(", organisation {o}"))
                    .unwrap_or_default()
            ),
            "desactiver" => format!("administration des comptes : compte {login} désactivé"),
            _ => format!("administration des comptes : mot de passe de {login} réinitialisé"),
        };
        app.journal_consulted(&c.account, &[], &what).await;
    }
    comptes_page(&app, &c, code, Some((&message, error))).await
}
