//! "Saisir une fois": the FAJ request form (`faj-demande`). The conseiller types an
//! I-MILO dossier number; the hub reads that dossier live (never stored) and shows
//! identity, contact and situation; the conseiller adds what the FAJ platform needs
//! (aids and amounts, the project, the date, a minor's derogation); the request goes
//! through the engine like any transfer, and its page follows the platform's decision.
//!
//! The server knows no connector: the cli gives it a [`FajDesk`] (I-MILO read, engine
//! send, the platform's answer). The form re-reads the dossier when it is sent: what
//! leaves is what I-MILO holds, never what a browser posted back.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use async_trait::async_trait;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use passerelle_hub::{Role, TransferStatus};
use passerelle_identity::IdentityKeys;
use passerelle_model::{Date, Faj, FajAide, FajAideType, FajStatut, Jeune};
use uuid::Uuid;

use super::html::{self, layout};
use super::pages::{csrf_ok, csrf_refused, refuse, to_login, who};
use super::{Current, WebApp, page};
use crate::page::escape_html as esc;

/// Why the desk could not answer (shown in French, never with a personal value).
#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    /// The peer (I-MILO, the FAJ platform) or the engine cannot be reached now.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The dossier cannot be read as a record (its fields named, not its values).
    #[error("invalid dossier: {0}")]
    Invalid(String),
}

/// What became of a request handed to the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filed {
    /// Published under this transfer id.
    Sent(Uuid),
    /// The same request was sent before, unchanged.
    Unchanged,
    /// Refused by the policy (its reason code).
    Denied(String),
    /// The young person's identity is uncertain: kept for an identity review.
    Review,
}

/// What the platform says of a filed request, read live.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Suivi {
    /// The platform's request id, once filed.
    pub id_demande: Option<String>,
    /// The request as the platform holds it (status, amounts, commission, motif).
    pub faj: Option<Faj>,
}

/// What the FAJ form needs from the rest of the hub (implemented by the cli).
#[async_trait]
pub trait FajDesk: Send + Sync {
    /// The I-MILO dossier `id`, read now, as a canonical record (`None`: no such dossier).
    async fn dossier(&self, id: u64) -> Result<Option<Jeune>, DeskError>;
    /// Hands the request, filed by `ml`, to the engine (`faj-demande`).
    async fn file(&self, ml: &str, record: Jeune) -> Result<Filed, DeskError>;
    /// What the platform says of the transfer's request, now.
    async fn follow(&self, transfer_id: Uuid) -> Result<Suivi, DeskError>;
}

/// Whether an organisation code is a Mission Locale's structure code.
pub(super) fn is_ml(code: &str) -> bool {
    let b = code.as_bytes();
    b.len() == 8 && b[5] == b'S'
}

/// The ML of a conseiller or operateur who may file FAJ requests.
fn filing_ml(c: &Current) -> Option<&str> {
    matches!(c.account.role, Role::Conseiller | Role::Operateur)
        .then_some(c.account.org.as_deref())
        .flatten()
        .filter(|o| is_ml(o))
}

async fn not_allowed(app: &WebApp, c: &Current) -> Response {
    refuse(
        app,
        c,
        StatusCode::FORBIDDEN,
        "Seul un conseiller ou un opérateur d'une Mission Locale peut déposer une demande FAJ.",
        "page /faj refusée : le compte n'est pas d'une Mission Locale",
    )
    .await
}

fn unconfigured(app: &WebApp, c: &Current) -> Response {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        layout(
            "Nouvelle demande FAJ",
            Some(&who(app, c)),
            "/faj/nouvelle",
            "<p class=\"erreur\" role=\"alert\">Le dépôt des demandes FAJ n'est pas configuré sur ce hub \
             (il faut I-MILO et une plateforme FAJ dans sa configuration) : adressez-vous à l'administrateur.</p>",
        ),
    )
}

const AIDES: [(FajAideType, &str); 7] = [
    (FajAideType::Subsistance, "Subsistance"),
    (FajAideType::Urgence, "Urgence"),
    (FajAideType::Projet, "Projet"),
    (FajAideType::Permis, "Permis de conduire"),
    (FajAideType::Mobilite, "Mobilité"),
    (FajAideType::Logement, "Logement"),
    (FajAideType::Formation, "Formation"),
];

/// Aid lines on the form.
const LINES: usize = 3;
/// The platform's ceiling per request, in cents (spec/peers/faj.md).
const CEILING: u64 = 100_000;
const MAX_PROJET: usize = 2000;

fn aide_label(t: FajAideType) -> &'static str {
    AIDES
        .iter()
        .find(|(k, _)| *k == t)
        .map_or("autre", |(_, l)| l)
}

/// `250`, `250,50`, `1 250.5` (euros) → cents.
pub fn parse_euros(s: &str) -> Option<u64> {
    let s: String = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '€' && *c != '\u{202f}')
        .collect();
    let s = s.replace(',', ".");
    let (e, c) = s.split_once('.').unwrap_or((&s, ""));
    if e.is_empty() || e.len() > 7 || !e.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if c.len() > 2 || !c.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let cents = match c.len() {
        0 => 0,
        1 => c.parse::<u64>().ok()? * 10,
        _ => c.parse::<u64>().ok()?,
    };
    Some(e.parse::<u64>().ok()? * 100 + cents)
}

/// Cents → `250,00 €`.
pub fn euros(cents: u64) -> String {
    format!("{},{:02} €", cents / 100, cents % 100)
}

fn today(app: &WebApp) -> Date {
    Date::from(app.tz().to_local(Utc::now()).date())
}

fn categorie_fr(s: &str) -> &'static str {
    match s {
        "emploi" => "emploi",
        "alternance" => "contrat en alternance",
        "formation" => "formation",
        "immersion" => "immersion en entreprise",
        "pmsmp" => "période de mise en situation en milieu professionnel",
        "volontariat" => "volontariat ou bénévolat",
        "scolarite" => "scolarité",
        "demandeur_emploi" => "demandeur d'emploi",
        _ => "autre situation",
    }
}

fn statut_fr(s: FajStatut) -> (&'static str, &'static str) {
    match s {
        FajStatut::Deposee => ("déposée, en attente de la commission", "attente"),
        FajStatut::Incomplete => ("incomplète : la plateforme attend des pièces", "refuse"),
        FajStatut::EnCommission => ("en commission", "attente"),
        FajStatut::Accordee => ("accordée", "applique"),
        FajStatut::Refusee => ("refusée", "refuse"),
        FajStatut::Ajournee => ("ajournée", "attente"),
        FajStatut::Payee => ("accordée et payée", "applique"),
    }
}

/// What the dossier says, as a description list (values escaped).
fn dossier_dl(j: &Jeune, on: Date) -> String {
    let ec = &j.etat_civil;
    let mut dl = String::from("<dl class=\"fiche\">");
    let mut row = |k: &str, v: String| {
        if !v.is_empty() {
            let _ = write!(dl, "<dt>{k}</dt><dd>{v}</dd>");
        }
    };
    row(
        "Nom de naissance",
        esc(ec.nom_naissance.as_deref().unwrap_or("")),
    );
    if ec.nom_usage.is_some() && ec.nom_usage != ec.nom_naissance {
        row("Nom d'usage", esc(ec.nom_usage.as_deref().unwrap_or("")));
    }
    row("Prénoms", esc(&ec.prenoms.join(", ")));
    if let Some(d) = ec.date_naissance {
        row(
            "Date de naissance",
            format!("{} ({} ans)", esc(&d.to_french()), d.age_on(on)),
        );
    }
    if let Some(a) = &j.contact.adresse {
        let mut parts = Vec::new();
        let street = [a.numero.as_deref(), a.voie.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        if !street.is_empty() {
            parts.push(street);
        }
        if let Some(c) = &a.complement {
            parts.push(c.clone());
        }
        let town = [
            a.code_postal.as_ref().map(|c| c.as_str().to_owned()),
            a.commune.clone(),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
        if !town.is_empty() {
            parts.push(town);
        }
        row("Adresse", esc(&parts.join(", ")));
    }
    if let Some(e) = &j.contact.email {
        row("Adresse électronique", esc(e.as_str()));
    }
    if !j.contact.telephones.is_empty() {
        row(
            "Téléphone",
            esc(&j
                .contact
                .telephones
                .iter()
                .map(|t| t.as_str().to_owned())
                .collect::<Vec<_>>()
                .join(", ")),
        );
    }
    let situations: Vec<String> = j
        .situations
        .iter()
        .filter(|s| {
            s.etat
                .is_none_or(|e| e == passerelle_model::SituationEtat::EnCours)
        })
        .map(|s| categorie_fr(s.categorie.as_str()).to_owned())
        .collect();
    row(
        "Situation en cours",
        if situations.is_empty() {
            "aucune situation en cours dans I-MILO".into()
        } else {
            esc(&situations.join(", "))
        },
    );
    if let Some(a) = &j.accompagnement
        && let Some(d) = a.dispositif
    {
        row("Accompagnement", esc(&d.as_str().to_uppercase()));
    }
    dl.push_str("</dl>");
    dl
}

/// What the conseiller typed in the form, kept to show it back with the errors.
#[derive(Debug, Default, Clone)]
struct Saisie {
    dossier: String,
    types: [String; LINES],
    montants: [String; LINES],
    projet: String,
    date_depot: String,
    derogation: bool,
}

impl Saisie {
    fn from_form(form: &HashMap<String, String>) -> Self {
        let get = |k: &str| form.get(k).map(|s| s.trim().to_owned()).unwrap_or_default();
        let mut s = Saisie {
            dossier: get("dossier"),
            projet: get("projet"),
            date_depot: get("date_depot"),
            derogation: form.get("derogation").is_some_and(|v| v == "oui"),
            ..Saisie::default()
        };
        for i in 0..LINES {
            s.types[i] = get(&format!("aide{}_type", i + 1));
            s.montants[i] = get(&format!("aide{}_montant", i + 1));
        }
        s
    }
}

/// Field id → French message, in the form's order.
type Erreurs = BTreeMap<&'static str, String>;

/// Checks what the conseiller added; the request's `faj[]` entry when all is well.
fn validate(s: &Saisie, j: &Jeune, on: Date) -> Result<Faj, Erreurs> {
    const IDS: [(&str, &str); LINES] = [
        ("aide1_type", "aide1_montant"),
        ("aide2_type", "aide2_montant"),
        ("aide3_type", "aide3_montant"),
    ];
    let mut errs = Erreurs::new();
    let mut aides = Vec::new();
    for (i, (tid, mid)) in IDS.into_iter().enumerate() {
        let (t, m) = (s.types[i].as_str(), s.montants[i].as_str());
        if t.is_empty() && m.is_empty() {
            continue;
        }
        let kind = AIDES.iter().find(|(k, _)| k.as_str() == t).map(|(k, _)| *k);
        let Some(kind) = kind else {
            errs.insert(tid, format!("Choisissez le type de l'aide {}.", i + 1));
            continue;
        };
        match parse_euros(m) {
            Some(c) if c > 0 => aides.push(FajAide {
                kind,
                montant_demande: Some(c),
                montant_accorde: None,
            }),
            Some(_) => {
                errs.insert(mid, "Le montant demandé doit être supérieur à 0 €.".into());
            }
            None => {
                errs.insert(
                    mid,
                    "Saisissez le montant en euros, par exemple 250 ou 250,50.".into(),
                );
            }
        }
    }
    if aides.is_empty() && !errs.contains_key("aide1_type") && !errs.contains_key("aide1_montant") {
        errs.insert(
            "aide1_type",
            "Indiquez au moins une aide demandée, avec son montant.".into(),
        );
    }
    let total: u64 = aides.iter().filter_map(|a| a.montant_demande).sum();
    if total > CEILING {
        errs.insert(
            "aide1_montant",
            format!(
                "Le total demandé ({}) dépasse le plafond d'une demande, {}.",
                euros(total),
                euros(CEILING)
            ),
        );
    }
    let projet = s.projet.trim();
    if projet.is_empty() {
        errs.insert(
            "projet",
            "Décrivez en quelques mots le projet que l'aide soutient.".into(),
        );
    } else if projet.chars().count() > MAX_PROJET {
        errs.insert(
            "projet",
            format!("Le projet tient en {MAX_PROJET} caractères au plus."),
        );
    }
    let date_depot = if s.date_depot.is_empty() {
        Some(on)
    } else {
        match Date::parse(&s.date_depot) {
            Ok(d) if d > on => {
                errs.insert(
                    "date_depot",
                    "La date de dépôt ne peut pas être dans le futur.".into(),
                );
                None
            }
            Ok(d) => Some(d),
            Err(_) => {
                errs.insert(
                    "date_depot",
                    "Cette date n'est pas valide : choisissez-la dans le calendrier ou saisissez-la au format jj/mm/aaaa.".into(),
                );
                None
            }
        }
    };
    let mut derogation = None;
    if let (Some(born), Some(d)) = (j.etat_civil.date_naissance, date_depot) {
        let age = born.age_on(d);
        if !(16..=25).contains(&age) {
            errs.insert(
                "dossier",
                format!("Le FAJ s'adresse aux jeunes de 18 à 25 ans (16 ou 17 ans par dérogation) : ce jeune a {age} ans à la date de dépôt."),
            );
        } else if age < 18 {
            if s.derogation {
                derogation = Some(true);
            } else {
                errs.insert(
                    "derogation",
                    format!("Ce jeune a {age} ans : une demande pour un mineur n'est possible que par dérogation ; cochez la case si elle est accordée."),
                );
            }
        }
    } else if j.etat_civil.date_naissance.is_none() {
        errs.insert(
            "dossier",
            "Le dossier I-MILO n'indique pas de date de naissance : complétez-le dans I-MILO, puis recommencez.".into(),
        );
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(Faj {
        date_depot,
        aides,
        projet_insertion: Some(projet.to_owned()),
        derogation_mineur: derogation,
        ..Faj::default()
    })
}

fn field_error(errs: &Erreurs, id: &str) -> (String, String) {
    match errs.get(id) {
        Some(m) => (
            format!(
                "<p class=\"erreur-champ\" id=\"{id}-erreur\">{}</p>",
                esc(m)
            ),
            format!(" aria-invalid=\"true\" aria-describedby=\"{id}-erreur\""),
        ),
        None => (String::new(), String::new()),
    }
}

/// The first step: the dossier number.
fn dossier_form(c: &Current, s: &Saisie, errs: &Erreurs) -> String {
    let (msg, aria) = field_error(errs, "dossier");
    format!(
        "<p>Saisissez le numéro du dossier I-MILO du jeune. Passerelle lit le dossier dans I-MILO \
         à l'instant, sans le conserver : vous n'avez à saisir que ce que la plateforme FAJ demande en plus.</p>\
         <form method=\"post\" action=\"/faj/nouvelle\"><fieldset><legend>Dossier I-MILO</legend>\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"etape\" value=\"lire\">\
         <label for=\"dossier\">Numéro de dossier I-MILO</label>\
         <p class=\"aide\" id=\"dossier-aide\">Des chiffres seulement, par exemple 6282.</p>{msg}\
         <input id=\"dossier\" name=\"dossier\" inputmode=\"numeric\" autocomplete=\"off\" value=\"{}\" required{}>\
         <p><button class=\"principal\" type=\"submit\">Lire le dossier dans I-MILO</button></p></fieldset></form>",
        esc(&c.csrf),
        esc(&s.dossier),
        if aria.is_empty() {
            " aria-describedby=\"dossier-aide\"".to_owned()
        } else {
            aria
        },
    )
}

/// The second step: the dossier as read, and what the platform needs.
fn request_form(app: &WebApp, c: &Current, j: &Jeune, s: &Saisie, errs: &Erreurs) -> String {
    let on = today(app);
    let mut body = String::new();
    if !errs.is_empty() {
        body.push_str("<div class=\"erreur\" role=\"alert\" id=\"erreurs\"><p>La demande n'a pas été envoyée : corrigez ");
        body.push_str(if errs.len() == 1 {
            "le champ signalé"
        } else {
            "les champs signalés"
        });
        body.push_str(".</p><ul>");
        for (id, m) in errs {
            let target = if *id == "dossier" { "contenu" } else { id };
            let _ = write!(body, "<li><a href=\"#{target}\">{}</a></li>", esc(m));
        }
        body.push_str("</ul></div>");
    }
    let _ = write!(
        body,
        "<h2>Dossier I-MILO n° {}</h2><p class=\"aide\">Lu dans I-MILO le {} ; Passerelle ne le conserve pas. \
         Une donnée inexacte se corrige dans I-MILO, puis relisez le dossier.</p>{}",
        esc(&s.dossier),
        html::date_fr(Utc::now(), app.tz()),
        dossier_dl(j, on)
    );
    if let Some(m) = errs.get("dossier") {
        let _ = write!(body, "<p class=\"erreur-champ\">{}</p>", esc(m));
    }
    let minor = j
        .etat_civil
        .date_naissance
        .is_some_and(|d| d.age_on(on) < 18);
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/faj/nouvelle\" novalidate>\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"etape\" value=\"deposer\">\
         <input type=\"hidden\" name=\"dossier\" value=\"{}\">\
         <fieldset><legend>Aides demandées</legend>\
         <p class=\"aide\">Une à trois aides ; montants en euros, {} au plus pour la demande.</p>",
        esc(&c.csrf),
        esc(&s.dossier),
        euros(CEILING),
    );
    for i in 0..LINES {
        let n = i + 1;
        let tid = format!("aide{n}_type");
        let mid = format!("aide{n}_montant");
        let (tmsg, taria) = field_error(errs, &tid);
        let (mmsg, maria) = field_error(errs, &mid);
        let _ = write!(
            body,
            "<div class=\"ligne\"><label for=\"{tid}\">Aide {n} : type</label>{tmsg}<select id=\"{tid}\" name=\"{tid}\"{taria}>\
             <option value=\"\">{}</option>",
            if n == 1 { "Choisissez" } else { "Aucune" }
        );
        for (k, l) in AIDES {
            let sel = if s.types[i] == k.as_str() {
                " selected"
            } else {
                ""
            };
            let _ = write!(body, "<option value=\"{}\"{sel}>{l}</option>", k.as_str());
        }
        let _ = write!(
            body,
            "</select><label for=\"{mid}\">Aide {n} : montant demandé (€)</label>{mmsg}\
             <input id=\"{mid}\" name=\"{mid}\" inputmode=\"decimal\" autocomplete=\"off\" value=\"{}\"{maria}></div>",
            esc(&s.montants[i])
        );
    }
    let (pmsg, paria) = field_error(errs, "projet");
    let (dmsg, daria) = field_error(errs, "date_depot");
    let _ = write!(
        body,
        "</fieldset><fieldset><legend>La demande</legend>\
         <label for=\"projet\">Projet d'insertion et motif de la demande</label>\
         <p class=\"aide\" id=\"projet-aide\">Ce que la commission lira : le projet du jeune et ce que l'aide permet ({MAX_PROJET} caractères au plus).</p>{pmsg}\
         <textarea id=\"projet\" name=\"projet\" rows=\"5\" cols=\"60\"{}>{}</textarea>\
         <label for=\"date_depot\">Date de dépôt</label>{dmsg}\
         <input id=\"date_depot\" name=\"date_depot\" type=\"date\" value=\"{}\"{daria}>",
        if paria.is_empty() {
            " aria-describedby=\"projet-aide\"".to_owned()
        } else {
            paria
        },
        esc(&s.projet),
        esc(if s.date_depot.is_empty() {
            on.to_string()
        } else {
            s.date_depot.clone()
        }
        .as_str()),
    );
    if minor || s.derogation || errs.contains_key("derogation") {
        let (gmsg, garia) = field_error(errs, "derogation");
        let _ = write!(
            body,
            "<p class=\"aide\">Ce jeune a moins de 18 ans : le FAJ ne l'aide que par dérogation.</p>{gmsg}\
             <p class=\"case\"><input type=\"checkbox\" id=\"derogation\" name=\"derogation\" value=\"oui\"{}{garia}>\
             <label for=\"derogation\">La dérogation pour un mineur de 16 ou 17 ans est accordée</label></p>",
            if s.derogation { " checked" } else { "" }
        );
    }
    body.push_str(
        "</fieldset><p><button class=\"principal\" type=\"submit\">Envoyer la demande à la plateforme FAJ</button></p></form>\
         <p><a href=\"/faj/nouvelle\">Changer de dossier</a></p>",
    );
    body
}

fn form_page(app: &WebApp, c: &Current, code: StatusCode, body: &str) -> Response {
    page(
        code,
        layout(
            "Nouvelle demande FAJ",
            Some(&who(app, c)),
            "/faj/nouvelle",
            body,
        ),
    )
}

pub(super) async fn nouvelle(State(app): State<WebApp>, headers: HeaderMap) -> Response {
    let Some(c) = app.current(&headers).await else {
        return to_login();
    };
    if filing_ml(&c).is_none() {
        return not_allowed(&app, &c).await;
    }
    if app.faj_desk().is_none() {
        return unconfigured(&app, &c);
    }
    form_page(
        &app,
        &c,
        StatusCode::OK,
        &dossier_form(&c, &Saisie::default(), &Erreurs::new()),
    )
}

/// Reads the dossier, checks it is the conseiller's ML's, journals the reading.
async fn read_dossier(
    app: &WebApp,
    c: &Current,
    ml: &str,
    desk: &dyn FajDesk,
    s: &Saisie,
) -> Result<Jeune, Response> {
    let one = |m: &str| {
        let mut e = Erreurs::new();
        e.insert("dossier", m.to_owned());
        e
    };
    let id = match s.dossier.parse::<u64>() {
        Ok(id) if !s.dossier.is_empty() && s.dossier.len() <= 19 => id,
        _ => {
            return Err(form_page(
                app,
                c,
                StatusCode::UNPROCESSABLE_ENTITY,
                &dossier_form(
                    c,
                    s,
                    &one(
                        "Ce numéro de dossier n'est pas valide : il ne compte que des chiffres, par exemple 6282.",
                    ),
                ),
            ));
        }
    };
    let record = match desk.dossier(id).await {
        Ok(Some(j)) => j,
        Ok(None) => {
            app.journal_consulted(
                &c.account,
                &[],
                "dossier I-MILO lu pour une demande FAJ : aucun dossier",
            )
            .await;
            return Err(form_page(
                app,
                c,
                StatusCode::UNPROCESSABLE_ENTITY,
                &dossier_form(
                    c,
                    s,
                    &one("Aucun dossier I-MILO ne porte ce numéro : vérifiez-le dans I-MILO."),
                ),
            ));
        }
        Err(e) => {
            tracing::warn!("I-MILO dossier read failed: {e}");
            let m = match e {
                DeskError::Invalid(_) => {
                    "Ce dossier I-MILO ne peut pas être lu (une date ou un code y est invalide) : corrigez-le dans I-MILO, puis recommencez."
                }
                DeskError::Unavailable(_) => {
                    "I-MILO ne répond pas pour l'instant : réessayez dans quelques minutes."
                }
            };
            return Err(form_page(
                app,
                c,
                StatusCode::SERVICE_UNAVAILABLE,
                &dossier_form(c, s, &one(m)),
            ));
        }
    };
    let structure = record
        .accompagnement
        .as_ref()
        .and_then(|a| a.structure.as_ref())
        .map(|s| s.as_str().to_owned());
    if structure.as_deref() != Some(ml) {
        return Err(refuse(
            app,
            c,
            StatusCode::FORBIDDEN,
            &format!(
                "Ce dossier I-MILO n'est pas suivi par {} : vous ne pouvez pas déposer de demande FAJ pour lui.",
                app.org_name(ml)
            ),
            "dossier I-MILO d'une autre structure refusé au formulaire FAJ",
        )
        .await);
    }
    let key = &app.deps().pseudonyms;
    let keys = IdentityKeys::of(&record, key);
    let subjects: Vec<String> = app
        .deps()
        .store
        .hub_ids_for(&keys.identifiers)
        .await
        .unwrap_or_default()
        .iter()
        .map(|h| key.pseudonym(&h.to_string()))
        .collect();
    app.journal_consulted(
        &c.account,
        &subjects,
        "dossier I-MILO lu pour une demande FAJ (page /faj/nouvelle)",
    )
    .await;
    Ok(record)
}

pub(super) async fn nouvelle_post(
    State(app): State<WebApp>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(c) = app.current(&headers).await else {
        return to_login();
    };
    if !csrf_ok(&c, &form) {
        return csrf_refused(&app, &c, "/faj/nouvelle").await;
    }
    let Some(ml) = filing_ml(&c).map(str::to_owned) else {
        return not_allowed(&app, &c).await;
    };
    let Some(desk) = app.faj_desk() else {
        return unconfigured(&app, &c);
    };
    let s = Saisie::from_form(&form);
    let mut record = match read_dossier(&app, &c, &ml, desk.as_ref(), &s).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if form.get("etape").map(String::as_str) != Some("deposer") {
        return form_page(
            &app,
            &c,
            StatusCode::OK,
            &request_form(&app, &c, &record, &s, &Erreurs::new()),
        );
    }
    let faj = match validate(&s, &record, today(&app)) {
        Ok(f) => f,
        Err(errs) => {
            return form_page(
                &app,
                &c,
                StatusCode::UNPROCESSABLE_ENTITY,
                &request_form(&app, &c, &record, &s, &errs),
            );
        }
    };
    // What the form sends: the dossier as I-MILO holds it, the request, nothing of
    // the dossier's special data (the flow would project it away anyway).
    record.faj = vec![faj];
    record.sensible = Default::default();
    match desk.file(&ml, record).await {
        Ok(Filed::Sent(id)) => Redirect::to(&format!("/faj/demande/{id}")).into_response(),
        Ok(other) => {
            let m = match other {
                Filed::Unchanged => {
                    "Cette demande, identique, a déjà été envoyée : retrouvez-la dans Mes envois.".to_owned()
                }
                Filed::Review => "L'identité de ce jeune est incertaine (elle ressemble à plusieurs personnes connues) : \
                     la demande attend une revue d'identité avant de partir (page Revues d'identité)."
                    .to_owned(),
                Filed::Denied(r) => format!(
                    "La demande n'est pas autorisée par les échanges déclarés ({}) : adressez-vous à l'administrateur.",
                    esc(&r)
                ),
                Filed::Sent(_) => unreachable!(),
            };
            form_page(
                &app,
                &c,
                StatusCode::OK,
                &format!(
                    "<p class=\"info\" role=\"status\">{}</p><p><a href=\"/faj/nouvelle\">Nouvelle demande</a></p>",
                    esc(&m)
                ),
            )
        }
        Err(e) => {
            tracing::warn!("FAJ request not handed to the engine: {e}");
            let mut errs = Erreurs::new();
            errs.insert(
                "dossier",
                "La demande n'a pas pu être envoyée (le hub ne peut pas publier pour l'instant) : réessayez dans quelques minutes.".into(),
            );
            form_page(
                &app,
                &c,
                StatusCode::SERVICE_UNAVAILABLE,
                &request_form(&app, &c, &Jeune::default(), &s, &errs),
            )
        }
    }
}

pub(super) async fn demande(
    State(app): State<WebApp>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Some(c) = app.current(&headers).await else {
        return to_login();
    };
    let Some(ml) = filing_ml(&c).map(str::to_owned) else {
        return not_allowed(&app, &c).await;
    };
    let tz = app.tz();
    let row = match Uuid::parse_str(&id) {
        Ok(u) => app.deps().store.transfer(&u).await.ok().flatten(),
        Err(_) => None,
    };
    let Some(t) = row.filter(|t| t.row.flow == "faj-demande") else {
        return refuse(
            &app,
            &c,
            StatusCode::NOT_FOUND,
            "Aucune demande FAJ ne porte ce numéro.",
            "page /faj/demande : demande inconnue",
        )
        .await;
    };
    if t.row.sender != ml {
        return refuse(
            &app,
            &c,
            StatusCode::FORBIDDEN,
            "Cette demande FAJ a été déposée par une autre organisation : vous ne pouvez pas la voir.",
            "page /faj/demande d'une autre organisation refusée",
        )
        .await;
    }
    let pseudonym = app.deps().pseudonyms.pseudonym(&t.row.hub_id.to_string());
    app.journal_consulted(
        &c.account,
        &[pseudonym],
        "suivi d'une demande FAJ (page /faj/demande)",
    )
    .await;
    let (status, class) = html::status_fr(t.row.status, t.row.reason.as_deref());
    let mut body = format!(
        "<p>Demande envoyée le {} à {}. Référence Passerelle : <code>{}</code>.</p>\
         <h2>Dépôt sur la plateforme</h2><p class=\"{class}\">{}</p>",
        html::time_fr(t.created_at, tz),
        esc(&app.org_name(&t.row.recipient)),
        &t.row.transfer_id.to_string()[..8],
        match t.row.status {
            TransferStatus::Applied => "déposée sur la plateforme".to_owned(),
            TransferStatus::Published =>
                "en cours d'envoi à la plateforme (quelques instants)".to_owned(),
            _ => status,
        },
    );
    if matches!(
        t.row.status,
        TransferStatus::Rejected | TransferStatus::DeadLettered
    ) {
        let _ = write!(body, "<p>{}</p>", esc(html::what_to_do(t.row.status)));
    }
    body.push_str("<h2>Décision de la commission</h2>");
    let suivi = match app.faj_desk() {
        Some(d) if t.row.status == TransferStatus::Applied => d.follow(t.row.transfer_id).await,
        _ => Ok(Suivi::default()),
    };
    match suivi {
        Ok(Suivi {
            id_demande,
            faj: Some(f),
        }) => {
            if let Some(n) = id_demande {
                let _ = write!(
                    body,
                    "<p>Numéro de la demande sur la plateforme : <strong>{}</strong>.</p>",
                    esc(&n)
                );
            }
            let (s, class) = f.statut.map_or(("déposée", "attente"), statut_fr);
            let _ = write!(
                body,
                "<p class=\"{class} decision\" role=\"status\">Demande {s}",
            );
            if let Some(d) = f.date_commission {
                let _ = write!(body, " (commission du {})", esc(&d.to_french()));
            }
            body.push_str(".</p>");
            if !f.aides.is_empty() {
                body.push_str("<div class=\"tableau\"><table><caption>Les aides</caption><thead><tr>\
                    <th scope=\"col\">Aide</th><th scope=\"col\">Demandé</th><th scope=\"col\">Accordé</th></tr></thead><tbody>");
                for a in &f.aides {
                    let _ = write!(
                        body,
                        "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                        aide_label(a.kind),
                        a.montant_demande.map(euros).unwrap_or_default(),
                        a.montant_accorde
                            .map(euros)
                            .unwrap_or_else(|| "—".into()),
                    );
                }
                body.push_str("</tbody></table></div>");
            }
            if let Some(m) = &f.motif {
                let _ = write!(body, "<p>Motif de la commission : {}</p>", esc(m));
            }
            body.push_str("<p class=\"aide\">Lu sur la plateforme FAJ à l'instant ; la décision est aussi portée au dossier I-MILO.</p>");
        }
        Ok(_) => body.push_str(
            "<p class=\"attente\">Pas encore de décision : la commission examine les demandes déposées.</p>",
        ),
        Err(e) => {
            tracing::warn!("FAJ platform read failed: {e}");
            body.push_str("<p class=\"attente\">La plateforme FAJ ne répond pas pour l'instant : réessayez dans quelques minutes.</p>");
        }
    }
    let _ = write!(
        body,
        "<p><a href=\"/faj/demande/{}\">Actualiser</a> · <a href=\"/faj/nouvelle\">Nouvelle demande</a> · <a href=\"/envois?flux=faj-demande\">Mes demandes FAJ</a></p>",
        t.row.transfer_id
    );
    page(
        StatusCode::OK,
        layout("Demande FAJ", Some(&who(&app, &c)), "/faj/nouvelle", &body),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn euros_are_read_as_people_type_them() {
        assert_eq!(parse_euros("250"), Some(25_000));
        assert_eq!(parse_euros("250,5"), Some(25_050));
        assert_eq!(parse_euros("1 250.05 €"), Some(125_005));
        assert_eq!(parse_euros("12,345"), None);
        assert_eq!(parse_euros("-3"), None);
        assert_eq!(parse_euros(""), None);
        assert_eq!(euros(25_050), "250,50 €");
    }

    fn jeune(born: &str) -> Jeune {
        serde_json::from_value(serde_json::json!({
            "schema": "passerelle.jeune/1",
            "etat_civil": {"nom_naissance": "Martin", "prenoms": ["Yanis"], "date_naissance": born}
        }))
        .unwrap()
    }

    fn saisie() -> Saisie {
        let mut s = Saisie {
            dossier: "6282".into(),
            projet: "Formation cariste".into(),
            date_depot: "2026-11-21".into(),
            ..Saisie::default()
        };
        s.types[0] = "mobilite".into();
        s.montants[0] = "250".into();
        s
    }

    #[test]
    fn a_request_is_checked_field_by_field() {
        let on = Date::parse("2026-12-01").unwrap();
        let f = validate(&saisie(), &jeune("2004-07-14"), on).unwrap();
        assert_eq!(f.aides[0].montant_demande, Some(25_000));
        assert_eq!(f.derogation_mineur, None);
        assert_eq!(f.date_depot, Some(Date::parse("2026-11-21").unwrap()));

        let mut s = saisie();
        s.types[0] = String::new();
        s.montants[0] = String::new();
        s.projet = String::new();
        s.date_depot = "31/02/2026".into();
        let e = validate(&s, &jeune("2004-07-14"), on).unwrap_err();
        assert_eq!(
            e.keys().copied().collect::<Vec<_>>(),
            ["aide1_type", "date_depot", "projet"]
        );

        let mut s = saisie();
        s.montants[0] = "900".into();
        s.types[1] = "permis".into();
        s.montants[1] = "200".into();
        let e = validate(&s, &jeune("2004-07-14"), on).unwrap_err();
        assert!(e["aide1_montant"].contains("1100,00 €"), "{e:?}");
    }

    #[test]
    fn a_minor_needs_the_derogation() {
        let on = Date::parse("2026-12-01").unwrap();
        let e = validate(&saisie(), &jeune("2009-07-14"), on).unwrap_err();
        assert!(e["derogation"].contains("17 ans"), "{e:?}");
        let mut s = saisie();
        s.derogation = true;
        let f = validate(&s, &jeune("2009-07-14"), on).unwrap();
        assert_eq!(f.derogation_mineur, Some(true));
        let e = validate(&saisie(), &jeune("1990-01-01"), on).unwrap_err();
        assert!(e["dossier"].contains("36 ans"), "{e:?}");
    }
}
