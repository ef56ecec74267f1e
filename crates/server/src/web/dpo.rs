//! The DPO's console (role `dpo`, spec/web.md): the journal's state and its alerts
//! (`/dpo`), a person's Art. 15 report in French, printable and as PDF
//! (`/dpo/personne/{handle}`, found by the conseillers' search across every
//! organisation), the journal and its anchors (`/dpo/journal`), the Art. 30 register of
//! the running configuration (`/dpo/registre`), exports for a French spreadsheet
//! (`/dpo/exports`) and the purge with its dry run (`/dpo/purge`).
//!
//! Every page view is journaled (`consulted`, with the person's pseudonyms on the
//! report), every refusal too (`denied`); each alert raised is journaled once
//! (`alerted`, its key first in the reason) and counted in `/metrics`.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, NaiveTime, Timelike, Utc};
use passerelle_audit::alerts::{self, Alert, AlertKind};
use passerelle_audit::{Anchor, Event, Filter, NewEntry, Outcome, anchor};
use passerelle_crypto::AnchorKey;
use passerelle_hub::{Role, TransferStatus};
use passerelle_policy::Policy;
use serde::{Deserialize, Serialize};

use super::html::{self, layout};
use super::pages::{csrf_ok, csrf_refused, refuse, timeline, to_login, who};
use super::pdf::Document;
use super::{Current, WebApp, page};
use crate::metrics::{CounterVec, GaugeVec, Metrics};
use crate::page::escape_html as esc;

/// The hours an organisation declares its accounts work, Europe/Paris (`[server.web.
/// declared_hours.59350S00]`): from `start_hour` to `end_hour`, Monday to Friday, and
/// on Saturday or Sunday when said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredHours {
    pub start_hour: u32,
    pub end_hour: u32,
    #[serde(default)]
    pub saturday: bool,
    #[serde(default)]
    pub sunday: bool,
}

impl DeclaredHours {
    /// Whether a local time falls within the declared hours.
    pub fn allows(&self, local: chrono::NaiveDateTime) -> bool {
        let day_ok = match local.weekday() {
            chrono::Weekday::Sat => self.saturday,
            chrono::Weekday::Sun => self.sunday,
            _ => true,
        };
        day_ok && local.hour() >= self.start_hour && local.hour() < self.end_hour
    }
}

/// What the console needs of the running hub (given by the cli).
#[derive(Clone)]
pub struct DpoSetup {
    /// The flows the hub runs with, and where they come from (said on the register).
    pub policy: Arc<Policy>,
    pub flows_source: String,
    /// The security measures of the running configuration, for the register.
    pub measures: Vec<String>,
    /// The hub's anchor key: its public half checks the anchors; the purge signs with it.
    pub anchor_key: Option<AnchorKey>,
    /// The anchor file kept outside the journal's database.
    pub anchor_file: Option<PathBuf>,
    /// The time-stamping authority's certificate (`[audit] tsa_certificate`): each
    /// anchor's RFC 3161 token is checked against it at every verification.
    pub tsa_certificate: Option<passerelle_audit::TsaCertificate>,
    /// The time-stamping authority's client (the cli's), so that the anchor a purge
    /// from the console makes is stamped like `audit anchor`'s.
    pub stamper: Option<Arc<dyn Stamper>>,
}

/// Asks a time-stamping authority for an RFC 3161 token (hex DER) over a statement.
#[async_trait::async_trait]
pub trait Stamper: Send + Sync {
    async fn stamp(&self, statement: &[u8]) -> Result<String, String>;
}

impl std::fmt::Debug for DpoSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpoSetup")
            .field("flows_source", &self.flows_source)
            .finish_non_exhaustive()
    }
}

/// The last verification of the journal, as the console shows it.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    at: DateTime<Utc>,
    entries: u64,
    last_seq: i64,
    anchors: usize,
    last_anchor: Option<Anchor>,
    stamped: usize,
    /// What is wrong, in the verifier's words (no personal data); empty when intact.
    problems: Vec<String>,
}

pub(crate) struct DpoState {
    setup: DpoSetup,
    last: Mutex<Option<Checked>>,
    active: Mutex<Vec<Alert>>,
    metrics: std::sync::OnceLock<(CounterVec, GaugeVec)>,
}

impl WebApp {
    /// Opens the DPO's console; set once. Alerts are also evaluated every ten minutes
    /// (so that `/metrics` counts them without anyone looking at the console).
    pub fn with_dpo(self, setup: DpoSetup) -> Self {
        let _ = self.0.dpo.set(Arc::new(DpoState {
            setup,
            last: Mutex::new(None),
            active: Mutex::new(Vec::new()),
            metrics: std::sync::OnceLock::new(),
        }));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&self.0);
            rt.spawn(async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let Some(inner) = weak.upgrade() else { return };
                    let app = WebApp(inner);
                    let _ = evaluate(&app).await;
                }
            });
        }
        self
    }

    /// Counts the alerts in `metrics`: `passerelle_alerts_raised_total{kind}` and
    /// `passerelle_alerts_active{kind}`.
    pub fn with_alert_metrics(self, metrics: &Metrics) -> Self {
        if let Some(d) = self.0.dpo.get() {
            let raised = metrics.counter(
                "passerelle_alerts_raised_total",
                "Alerts raised for the DPO (each once), by kind.",
                &["kind"],
            );
            let active = metrics.gauge(
                "passerelle_alerts_active",
                "Alerts standing at the last evaluation, by kind.",
                &["kind"],
            );
            if let (Ok(r), Ok(a)) = (raised, active) {
                for k in AlertKind::ALL {
                    r.with(&[k.as_str()]);
                    a.with(&[k.as_str()]).set(0.0);
                }
                let _ = d.metrics.set((r, a));
            }
        }
        self
    }

    fn dpo(&self) -> Option<Arc<DpoState>> {
        self.0.dpo.get().cloned()
    }
}

/// The day a request was received, from the form (`AAAA-MM-JJ` or `JJ/MM/AAAA`); `today`
/// when absent or unreadable.
pub(super) fn received_day(s: &str, today: NaiveDate) -> String {
    parse_day(s).unwrap_or(today).format("%Y-%m-%d").to_string()
}

fn parse_day(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(s, "%d/%m/%Y"))
        .ok()
}

fn day_fr(d: NaiveDate) -> String {
    const MOIS: [&str; 12] = [
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ];
    format!("{} {} {}", d.day(), MOIS[d.month0() as usize], d.year())
}

/// The session of a DPO, or the answer to give: the login page, a refusal (journaled)
/// for another role, or a page saying the console is not set up.
async fn guard(
    app: &WebApp,
    headers: &HeaderMap,
    path: &str,
) -> Result<(Current, Arc<DpoState>), Response> {
    let Some(c) = app.current(headers).await else {
        return Err(to_login());
    };
    if c.account.role != Role::Dpo {
        return Err(refuse(
            app,
            &c,
            StatusCode::FORBIDDEN,
            "Cette page est réservée au délégué à la protection des données (DPO) : votre compte ne peut pas l'ouvrir.",
            &format!("page {path} refusée au rôle {}", c.account.role.as_str()),
        )
        .await);
    }
    let Some(d) = app.dpo() else {
        return Err(page(
            StatusCode::SERVICE_UNAVAILABLE,
            layout(
                "Console du DPO",
                Some(&who(app, &c)),
                path,
                "<p class=\"erreur\" role=\"alert\">La console du DPO n'est pas configurée sur ce serveur.</p>",
            ),
        ));
    };
    Ok((c, d))
}

/// Verifies the journal and its anchors now, and keeps the result.
async fn check(app: &WebApp, d: &DpoState) -> Checked {
    let journal = &app.deps().journal;
    let public = d.setup.anchor_key.as_ref().map(AnchorKey::public_hex);
    let outside = d
        .setup
        .anchor_file
        .as_deref()
        .map(anchor::read_file)
        .transpose();
    let mut problems = Vec::new();
    let outside = match outside {
        Ok(o) => o.unwrap_or_default(),
        Err(e) => {
            problems.push(format!("fichier des ancres illisible ({e})"));
            Vec::new()
        }
    };
    let checked = match journal.verify_anchored(public.as_deref(), &outside).await {
        Ok(v) => {
            if let Some(p) = &v.chain.problem {
                problems.push(format!("chaîne rompue à l'entrée {} ({p})", p.seq()));
            }
            problems.extend(v.problems.iter().map(ToString::to_string));
            let mut anchors = journal.anchors().await.unwrap_or_default();
            for a in &outside {
                if !anchors.contains(a) {
                    anchors.push(a.clone());
                }
            }
            let stamped = match &d.setup.tsa_certificate {
                Some(cert) => {
                    let t = anchor::check_timestamps(&anchors, cert);
                    problems.extend(t.problems.iter().map(ToString::to_string));
                    t.good
                }
                None => anchors.iter().filter(|a| a.timestamp.is_some()).count(),
            };
            Checked {
                at: Utc::now(),
                entries: v.chain.entries,
                last_seq: v.chain.last_seq,
                anchors: v.anchors,
                last_anchor: v.last,
                stamped,
                problems,
            }
        }
        Err(e) => {
            problems.push(format!("le journal n'a pas pu être lu ({e})"));
            Checked {
                at: Utc::now(),
                entries: 0,
                last_seq: 0,
                anchors: 0,
                last_anchor: None,
                stamped: 0,
                problems,
            }
        }
    };
    *d.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(checked.clone());
    checked
}

/// Verifies, computes the alerts, journals the new ones once, updates the metrics.
async fn evaluate(app: &WebApp) -> Option<(Checked, Vec<Alert>)> {
    let d = app.dpo()?;
    let checked = check(app, &d).await;
    let now = Utc::now();
    let rules = alerts::Rules::default();
    let journal = &app.deps().journal;
    let since = now - rules.window - Duration::days(rules.baseline_days.max(30));
    let entries = journal
        .entries(&Filter {
            from: Some(since),
            ..Filter::default()
        })
        .await
        .unwrap_or_default();
    let tz = app.tz();
    let hours = &app.deps().config.declared_hours;
    let within = |org: &str, t: DateTime<Utc>| hours.get(org).map(|h| h.allows(tz.to_local(t)));
    let mut raised = alerts::compute(&entries, now, &rules, &within);
    if !checked.problems.is_empty() {
        raised.insert(
            0,
            alerts::verification_failed(&checked.problems.join(" ; "), now),
        );
    }
    // Journaled once: an alert whose key already starts an `alerted` entry is not again.
    let known: BTreeSet<String> = entries
        .iter()
        .filter(|e| e.event == Event::Alerted.as_str())
        .filter_map(|e| e.reason.as_deref())
        .filter_map(|r| r.split(" — ").next())
        .map(ToOwned::to_owned)
        .collect();
    let fresh: Vec<&Alert> = raised.iter().filter(|a| !known.contains(&a.key)).collect();
    if !fresh.is_empty() {
        let batch = fresh
            .iter()
            .map(|a| {
                let mut e = NewEntry::new(Event::Alerted, "system", Outcome::Ok);
                e.reason = Some(format!("{} — {}", a.key, a.message));
                e
            })
            .collect();
        if let Err(e) = journal.append_batch(batch).await {
            tracing::warn!("cannot journal an alert: {e}");
        }
    }
    if let Some((r, g)) = d.metrics.get() {
        for a in &fresh {
            r.with(&[a.kind.as_str()]).inc();
        }
        for k in AlertKind::ALL {
            let n = raised.iter().filter(|a| a.kind == k).count();
            g.with(&[k.as_str()]).set(n as f64);
        }
    }
    *d.active.lock().unwrap_or_else(|p| p.into_inner()) = raised.clone();
    Some((checked, raised))
}

fn checked_html(app: &WebApp, c: &Checked) -> String {
    let tz = app.tz();
    let mut s = String::from("<dl class=\"fiche\">");
    let _ = write!(
        s,
        "<dt>Dernière vérification</dt><dd>{}</dd>\
         <dt>Résultat</dt><dd class=\"{}\">{}</dd>\
         <dt>Entrées vérifiées</dt><dd>{} (dernière : n° {})</dd>\
         <dt>Ancres signées</dt><dd>{}{}</dd>\
         <dt>Dernière ancre</dt><dd>{}</dd>",
        html::time_fr(c.at, tz),
        if c.problems.is_empty() {
            "applique"
        } else {
            "refuse"
        },
        if c.problems.is_empty() {
            "journal intact".to_owned()
        } else {
            format!("journal altéré : {}", esc(&c.problems.join(" ; ")))
        },
        c.entries,
        c.last_seq,
        c.anchors,
        if c.stamped > 0 {
            format!(
                ", dont {} horodatée(s) par l'autorité d'horodatage",
                c.stamped
            )
        } else {
            String::new()
        },
        match &c.last_anchor {
            Some(a) => format!(
                "entrée n° {}, le {}{}",
                a.seq,
                DateTime::parse_from_rfc3339(&a.at)
                    .map(|t| html::time_fr(t.with_timezone(&Utc), tz))
                    .unwrap_or_else(|_| esc(&a.at)),
                if a.seq < c.last_seq {
                    format!(
                        " ({} entrée(s) depuis, à ancrer avec <code>passerelle audit anchor</code>)",
                        c.last_seq - a.seq
                    )
                } else {
                    String::new()
                }
            ),
            None => "aucune : une coupe de la fin du journal passerait inaperçue".to_owned(),
        }
    );
    s.push_str("</dl>");
    s
}

fn search_form(csrf: &str, today: NaiveDate) -> String {
    let csrf = esc(csrf);
    let today = today.format("%Y-%m-%d");
    let common = |mode: &str, id: &str| {
        format!(
            "<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"mode\" value=\"{mode}\">\
             <input type=\"hidden\" name=\"suite\" value=\"dpo\">\
             <label for=\"recue-{id}\">Date de réception de la demande</label>\
             <input id=\"recue-{id}\" name=\"recue_le\" type=\"date\" value=\"{today}\" required>"
        )
    };
    format!(
        "<p>La personne est recherchée dans toutes les organisations. La recherche et le rapport sont journalisés.</p>\
         <form method=\"post\" action=\"/recherche\"><fieldset><legend>Par NIR</legend>{}\
         <label for=\"dpo-nir\">NIR (numéro de sécurité sociale)</label>\
         <input id=\"dpo-nir\" name=\"nir\" inputmode=\"numeric\" autocomplete=\"off\" required>\
         <p><button class=\"principal\" type=\"submit\">Rechercher par NIR</button></p></fieldset></form>\
         <form method=\"post\" action=\"/recherche\"><fieldset><legend>Par numéro allocataire</legend>{}\
         <label for=\"dpo-caf\">Numéro allocataire CAF ou MSA</label>\
         <input id=\"dpo-caf\" name=\"caf\" inputmode=\"numeric\" autocomplete=\"off\" required>\
         <p><button class=\"principal\" type=\"submit\">Rechercher par numéro allocataire</button></p></fieldset></form>\
         <form method=\"post\" action=\"/recherche\"><fieldset><legend>Par nom, prénom et date de naissance</legend>{}\
         <label for=\"dpo-nom\">Nom de naissance ou d'usage</label><input id=\"dpo-nom\" name=\"nom\" autocomplete=\"off\" required>\
         <label for=\"dpo-prenom\">Prénom</label><input id=\"dpo-prenom\" name=\"prenom\" autocomplete=\"off\" required>\
         <label for=\"dpo-naissance\">Date de naissance (jj/mm/aaaa)</label>\
         <input id=\"dpo-naissance\" name=\"naissance\" autocomplete=\"off\" required>\
         <p><button class=\"principal\" type=\"submit\">Rechercher par identité</button></p></fieldset></form>",
        common("nir", "nir"),
        common("caf", "caf"),
        common("identite", "identite"),
    )
}

pub(super) async fn accueil(State(app): State<WebApp>, headers: HeaderMap) -> Response {
    let (c, _d) = match guard(&app, &headers, "/dpo").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    app.journal_consulted(&c.account, &[], "page /dpo (état du journal et alertes)")
        .await;
    let Some((checked, raised)) = evaluate(&app).await else {
        return to_login();
    };
    let tz = app.tz();
    let mut body = String::from("<h2>État du journal d'audit</h2>");
    body.push_str(&checked_html(&app, &checked));
    body.push_str("<p><a href=\"/dpo/journal\">Voir le journal et ses ancres</a></p>");
    let _ = write!(body, "<h2>Alertes ({})</h2>", raised.len());
    if raised.is_empty() {
        body.push_str("<p>Aucune alerte.</p>");
    } else {
        body.push_str("<ul class=\"alertes\">");
        for a in &raised {
            let _ = write!(
                body,
                "<li><strong class=\"refuse\">{}</strong> ({}) : {}</li>",
                esc(a.kind.label_fr()),
                html::time_fr(a.at, tz),
                esc(&a.message)
            );
        }
        body.push_str("</ul>");
    }
    body.push_str("<h2>Répondre à une demande d'accès (article 15 du RGPD)</h2>");
    body.push_str(&search_form(&c.csrf, app.today()));
    body.push_str(
        "<h2>Autres outils</h2><ul>\
         <li><a href=\"/dpo/registre\">Registre des activités de traitement (article 30)</a></li>\
         <li><a href=\"/dpo/exports\">Exporter le journal</a> (tableur)</li>\
         <li><a href=\"/dpo/purge\">Purger les entrées anciennes</a> (avec aperçu)</li></ul>",
    );
    page(
        StatusCode::OK,
        layout("Console du DPO", Some(&who(&app, &c)), "/dpo", &body),
    )
}

// ---------------------------------------------------------------- Art. 15

fn status_text(l: &super::pages::Line) -> String {
    if l.denied {
        return format!(
            "non envoyé : refusé par les règles d'échange{}",
            l.reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
    }
    let reason = l
        .reason
        .as_deref()
        .map(|r| format!(" : {r}"))
        .unwrap_or_default();
    match l.status {
        TransferStatus::Published => "en attente de réponse".into(),
        TransferStatus::Delivered => "remis, en attente de traitement".into(),
        TransferStatus::Applied => "appliqué".into(),
        TransferStatus::Rejected => format!("refusé{reason}"),
        TransferStatus::DeadLettered => format!("non remis après plusieurs essais{reason}"),
    }
}

/// The data of a transfer, by category, in words (`Identité : nom de naissance, prénoms`).
fn data_text(fields: &[String]) -> String {
    passerelle_audit::art15::data_of(fields).join(" ; ")
}

/// The report, once, for the page and for the PDF.
struct Report {
    typed: String,
    how: &'static str,
    received: NaiveDate,
    due: NaiveDate,
    made: String,
    transfers: Vec<[String; 6]>,
    flows: Vec<(String, Vec<(String, String)>)>,
    recipients: Vec<String>,
    sources: Vec<String>,
    consultations: Vec<[String; 4]>,
}

const RIGHTS: [&str; 4] = [
    "Vous pouvez demander la rectification des données inexactes, leur effacement, la limitation de leur traitement, et vous opposer à leur traitement (articles 16, 17, 18 et 21 du RGPD), auprès du délégué à la protection des données de l'organisation qui les détient ou de Passerelle.",
    "Les données dont l'échange repose sur une obligation légale ou une mission d'intérêt public ne peuvent pas toujours être effacées ; la réponse à votre demande vous dira pourquoi.",
    "Si vous estimez que vos droits ne sont pas respectés, vous pouvez adresser une réclamation à la Commission nationale de l'informatique et des libertés (CNIL), 3 place de Fontenoy, TSA 80715, 75334 Paris Cedex 07, ou sur www.cnil.fr.",
    "Passerelle ne conserve pas le contenu de vos données dans son journal : il dit seulement quelles catégories de données ont circulé, entre qui, quand et pourquoi.",
];

async fn build_report(
    app: &WebApp,
    d: &DpoState,
    c: &Current,
    h: &super::Handle,
    received: NaiveDate,
) -> Report {
    let tz = app.tz();
    let entries = app
        .deps()
        .journal
        .entries(&Filter {
            subjects: Some(h.subjects.clone()),
            ..Filter::default()
        })
        .await
        .unwrap_or_default();
    let consults: Vec<_> = entries
        .iter()
        .filter(|e| e.event == "consulted")
        .cloned()
        .collect();
    let lines = timeline(entries);
    let policy = &d.setup.policy;
    let mut flows = BTreeSet::new();
    let mut recipients = BTreeSet::new();
    let mut sources = BTreeSet::new();
    let transfers = lines
        .iter()
        .map(|l| {
            flows.insert(l.flow.clone());
            if !l.denied {
                recipients.insert(app.org_name(&l.recipient));
            }
            sources.insert(app.org_name(&l.sender));
            [
                html::date_fr(l.at, tz),
                plain_flow(policy, &l.flow),
                app.org_name(&l.sender),
                app.org_name(&l.recipient),
                data_text(&l.fields),
                status_text(l),
            ]
        })
        .collect();
    let flows = flows
        .iter()
        .map(|id| match policy.flow(id) {
            Some(f) => (
                plain_flow(policy, &f.id),
                vec![
                    ("Finalité".to_owned(), f.purpose.clone()),
                    (
                        "Base légale".to_owned(),
                        format!(
                            "article {} du RGPD ; {}",
                            f.legal_basis.gdpr, f.legal_basis.reference
                        ),
                    ),
                    (
                        "Conservation".to_owned(),
                        format!(
                            "{} jours chez le destinataire ; {} jours dans le journal d'audit de Passerelle",
                            f.retention_days.recipient, f.retention_days.audit
                        ),
                    ),
                    (
                        "Consentement requis".to_owned(),
                        if f.consent { "oui" } else { "non" }.to_owned(),
                    ),
                ],
            ),
            None => (
                plain_flow(policy, id),
                vec![(
                    "Finalité".to_owned(),
                    "flux absent du fichier des flux en service".to_owned(),
                )],
            ),
        })
        .collect();
    let consultations = consults
        .iter()
        .map(|e| {
            let at = DateTime::parse_from_rfc3339(&e.at)
                .map(|t| html::date_fr(t.with_timezone(&Utc), tz))
                .unwrap_or_else(|_| e.at.clone());
            [
                at,
                e.actor.clone(),
                e.sender
                    .as_deref()
                    .map(|o| app.org_name(o))
                    .unwrap_or_else(|| "Passerelle (DPO, administration)".to_owned()),
                e.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    Report {
        typed: h.typed.clone(),
        how: h.how,
        received,
        due: received
            .checked_add_months(Months::new(1))
            .unwrap_or(received),
        made: format!(
            "Établi le {} (heure de Paris) par {}, à partir du journal d'audit de Passerelle ; les finalités, bases légales et durées sont celles que déclare {}.",
            html::date_fr(Utc::now(), tz),
            c.account.login,
            d.setup.flows_source
        ),
        transfers,
        flows,
        recipients: recipients.into_iter().collect(),
        sources: sources.into_iter().collect(),
        consultations,
    }
}

/// A flow as the person reads it: its French label (spec/domain.md), else the flows
/// file's own name.
fn plain_flow(policy: &Policy, id: &str) -> String {
    let label = html::flow_label(id);
    if label != crate::page::escape_html(id) {
        return label;
    }
    policy
        .flow(id)
        .map(|f| f.name.clone())
        .unwrap_or_else(|| id.to_owned())
}

const TRANSFER_HEADERS: [&str; 6] = [
    "Date",
    "Flux",
    "Expéditeur (source)",
    "Destinataire",
    "Données transmises",
    "Résultat",
];
const CONSULT_HEADERS: [&str; 4] = ["Date", "Compte", "Organisation", "Motif"];

fn report_html(r: &Report, pdf_href: &str) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<p class=\"info\">Personne recherchée par {} : <strong>{}</strong></p>\
         <dl class=\"fiche\"><dt>Demande reçue le</dt><dd>{}</dd>\
         <dt>Réponse due au plus tard le</dt><dd>{} (un mois, article 12(3) du RGPD)</dd></dl>\
         <p>{}</p>\
         <p class=\"ecran\"><a href=\"{}\">Télécharger le rapport en PDF</a> · pour l'imprimer, utilisez l'impression du navigateur (la page s'imprime sans le menu).</p>",
        esc(r.how),
        esc(&r.typed),
        day_fr(r.received),
        day_fr(r.due),
        esc(&r.made),
        esc(pdf_href),
    );
    let table = |s: &mut String, caption: &str, headers: &[&str], rows: &[Vec<String>]| {
        if rows.is_empty() {
            let _ = write!(s, "<p>{}</p>", esc(caption));
            return;
        }
        let _ = write!(
            s,
            "<div class=\"tableau\"><table><caption>{}</caption><thead><tr>",
            esc(caption)
        );
        for h in headers {
            let _ = write!(s, "<th scope=\"col\">{}</th>", esc(h));
        }
        s.push_str("</tr></thead><tbody>");
        for row in rows {
            s.push_str("<tr>");
            for cell in row {
                let _ = write!(s, "<td>{}</td>", esc(cell));
            }
            s.push_str("</tr>");
        }
        s.push_str("</tbody></table></div>");
    };
    let _ = write!(
        s,
        "<h2>1. Qui a reçu quoi, et quand ({} transmission(s))</h2>",
        r.transfers.len()
    );
    let rows: Vec<Vec<String>> = r.transfers.iter().map(|t| t.to_vec()).collect();
    table(
        &mut s,
        if rows.is_empty() {
            "Aucune transmission enregistrée dans le journal."
        } else {
            "Les transmissions vous concernant, de la plus récente à la plus ancienne"
        },
        &TRANSFER_HEADERS,
        &rows,
    );
    s.push_str("<h2>2. Pourquoi : finalités, bases légales et durées de conservation</h2>");
    if r.flows.is_empty() {
        s.push_str("<p>Sans objet.</p>");
    }
    for (title, items) in &r.flows {
        let _ = write!(s, "<h3>{}</h3><dl class=\"fiche\">", esc(title));
        for (k, v) in items {
            let _ = write!(s, "<dt>{}</dt><dd>{}</dd>", esc(k), esc(v));
        }
        s.push_str("</dl>");
    }
    s.push_str("<h2>3. Les destinataires et la source des données</h2>");
    let _ = write!(
        s,
        "<dl class=\"fiche\"><dt>Destinataires</dt><dd>{}</dd><dt>Source (systèmes d'origine)</dt><dd>{}</dd></dl>",
        esc(&none_or(&r.recipients)),
        esc(&none_or(&r.sources))
    );
    let _ = write!(
        s,
        "<h2>4. Les consultations de vos données ({})</h2>",
        r.consultations.len()
    );
    let rows: Vec<Vec<String>> = r.consultations.iter().map(|t| t.to_vec()).collect();
    table(
        &mut s,
        if rows.is_empty() {
            "Aucune consultation enregistrée."
        } else {
            "Qui a consulté vos données, quand et pourquoi"
        },
        &CONSULT_HEADERS,
        &rows,
    );
    s.push_str("<h2>5. Vos droits</h2>");
    for p in RIGHTS {
        let _ = write!(s, "<p>{}</p>", esc(p));
    }
    s
}

fn none_or(v: &[String]) -> String {
    if v.is_empty() {
        "aucun".to_owned()
    } else {
        v.join(", ")
    }
}

fn report_pdf(r: &Report) -> Vec<u8> {
    let mut doc = Document::new("Rapport d'accès aux données personnelles (article 15 du RGPD)")
        .key_value(
            "Personne",
            format!("{} (recherchée par {})", r.typed, r.how),
        )
        .key_value("Demande reçue le", day_fr(r.received))
        .key_value(
            "Réponse due au plus tard le",
            format!("{} (un mois, article 12(3) du RGPD)", day_fr(r.due)),
        )
        .paragraph(r.made.clone())
        .heading(format!(
            "1. Qui a reçu quoi, et quand ({} transmission(s))",
            r.transfers.len()
        ));
    doc = if r.transfers.is_empty() {
        doc.paragraph("Aucune transmission enregistrée dans le journal.")
    } else {
        doc.table(
            &TRANSFER_HEADERS,
            r.transfers.iter().map(|t| t.to_vec()).collect(),
        )
    };
    doc = doc.heading("2. Pourquoi : finalités, bases légales et durées de conservation");
    for (title, items) in &r.flows {
        doc = doc.paragraph(title.clone());
        for (k, v) in items {
            doc = doc.key_value(k.clone(), v.clone());
        }
    }
    doc = doc
        .heading("3. Les destinataires et la source des données")
        .key_value("Destinataires", none_or(&r.recipients))
        .key_value("Source (systèmes d'origine)", none_or(&r.sources))
        .heading(format!(
            "4. Les consultations de vos données ({})",
            r.consultations.len()
        ));
    doc = if r.consultations.is_empty() {
        doc.paragraph("Aucune consultation enregistrée.")
    } else {
        doc.table(
            &CONSULT_HEADERS,
            r.consultations.iter().map(|t| t.to_vec()).collect(),
        )
    };
    doc = doc.heading("5. Vos droits");
    for p in RIGHTS {
        doc = doc.paragraph(p);
    }
    doc.to_pdf()
}

pub(super) async fn personne(
    State(app): State<WebApp>,
    headers: HeaderMap,
    Path(handle): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (c, d) = match guard(&app, &headers, "/dpo/personne").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(h) = app.handle(&c.id_hash, &handle) else {
        return refuse(
            &app,
            &c,
            StatusCode::NOT_FOUND,
            "Cette page n'existe pas ou n'est plus valable : recherchez la personne à nouveau depuis la console.",
            "page /dpo/personne inconnue de cette session",
        )
        .await;
    };
    let received = q
        .get("recue")
        .and_then(|s| parse_day(s))
        .unwrap_or_else(|| app.today());
    let pdf = q.get("format").is_some_and(|f| f == "pdf");
    app.journal_consulted(
        &c.account,
        &h.subjects,
        if pdf {
            "page /dpo/personne (rapport article 15, PDF)"
        } else {
            "page /dpo/personne (rapport article 15)"
        },
    )
    .await;
    let report = build_report(&app, &d, &c, &h, received).await;
    if pdf {
        return (
            [
                (header::CONTENT_TYPE, "application/pdf"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"rapport-article-15.pdf\"",
                ),
            ],
            report_pdf(&report),
        )
            .into_response();
    }
    let href = format!(
        "/dpo/personne/{handle}?recue={}&format=pdf",
        received.format("%Y-%m-%d")
    );
    let body = report_html(&report, &href);
    page(
        StatusCode::OK,
        layout(
            "Rapport d'accès (article 15 du RGPD)",
            Some(&who(&app, &c)),
            "",
            &body,
        ),
    )
}

// ---------------------------------------------------------------- journal

pub(super) async fn journal(State(app): State<WebApp>, headers: HeaderMap) -> Response {
    let (c, d) = match guard(&app, &headers, "/dpo/journal").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    app.journal_consulted(&c.account, &[], "page /dpo/journal")
        .await;
    let checked = check(&app, &d).await;
    let tz = app.tz();
    let mut body = checked_html(&app, &checked);
    if let Some(k) = &d.setup.anchor_key {
        let _ = write!(
            body,
            "<p>Clé publique d'ancrage du hub (Ed25519) : <code>{}</code></p>",
            esc(&k.public_hex())
        );
    }
    let anchors = app.deps().journal.anchors().await.unwrap_or_default();
    body.push_str("<h2>Ancres</h2>");
    if anchors.is_empty() {
        body.push_str("<p>Aucune ancre.</p>");
    } else {
        body.push_str(
            "<div class=\"tableau\"><table><caption>Les ancres signées du journal</caption><thead><tr>\
             <th scope=\"col\">Entrée</th><th scope=\"col\">Nature</th><th scope=\"col\">Date</th>\
             <th scope=\"col\">Horodatage RFC 3161</th></tr></thead><tbody>",
        );
        for a in anchors.iter().rev().take(50) {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                a.seq,
                if a.kind == anchor::HEAD {
                    "tête du journal"
                } else {
                    "purge"
                },
                DateTime::parse_from_rfc3339(&a.at)
                    .map(|t| html::time_fr(t.with_timezone(&Utc), tz))
                    .unwrap_or_else(|_| esc(&a.at)),
                if a.timestamp.is_some() { "oui" } else { "non" }
            );
        }
        body.push_str("</tbody></table></div>");
    }
    let entries = app
        .deps()
        .journal
        .entries(&Filter {
            from: Some(Utc::now() - Duration::days(7)),
            ..Filter::default()
        })
        .await
        .unwrap_or_default();
    body.push_str("<h2>Entrées des sept derniers jours</h2>");
    body.push_str(
        "<p>Les personnes n'y figurent que par un pseudonyme ; aucune donnée personnelle n'est écrite dans le journal.</p>\
         <div class=\"tableau\"><table><caption>Les 200 dernières entrées</caption><thead><tr>\
         <th scope=\"col\">N°</th><th scope=\"col\">Date</th><th scope=\"col\">Événement</th><th scope=\"col\">Compte</th>\
         <th scope=\"col\">Flux</th><th scope=\"col\">Expéditeur</th><th scope=\"col\">Destinataire</th><th scope=\"col\">Motif</th></tr></thead><tbody>",
    );
    for e in entries.iter().rev().take(200) {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            e.seq,
            DateTime::parse_from_rfc3339(&e.at)
                .map(|t| html::time_fr(t.with_timezone(&Utc), tz))
                .unwrap_or_else(|_| esc(&e.at)),
            esc(passerelle_audit::art15::event_label(&e.event)),
            esc(&e.actor),
            e.flow.as_deref().map(html::flow_label).unwrap_or_default(),
            esc(&e
                .sender
                .as_deref()
                .map(|o| app.org_name(o))
                .unwrap_or_default()),
            esc(&e
                .recipient
                .as_deref()
                .map(|o| app.org_name(o))
                .unwrap_or_default()),
            esc(e.reason.as_deref().unwrap_or("")),
        );
    }
    body.push_str("</tbody></table></div>");
    page(
        StatusCode::OK,
        layout(
            "Journal d'audit",
            Some(&who(&app, &c)),
            "/dpo/journal",
            &body,
        ),
    )
}

// ---------------------------------------------------------------- registre

pub(super) async fn registre(State(app): State<WebApp>, headers: HeaderMap) -> Response {
    let (c, d) = match guard(&app, &headers, "/dpo/registre").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    app.journal_consulted(&c.account, &[], "page /dpo/registre")
        .await;
    let fr = passerelle_policy::register::French {
        source: &d.setup.flows_source,
        measures: &d.setup.measures,
    };
    let whole = passerelle_policy::register::to_html_fr(&d.setup.policy, &fr);
    // The register's body, under this page's own title: the standalone document's
    // head and heading are the CLI's.
    let body = whole
        .split_once("</h1>")
        .map(|(_, rest)| rest)
        .unwrap_or(&whole)
        .trim_end()
        .trim_end_matches("</html>")
        .trim_end()
        .trim_end_matches("</body>")
        .replace("<h2>", "<h2 class=\"traitement\">");
    page(
        StatusCode::OK,
        layout(
            "Registre des activités de traitement (article 30 du RGPD)",
            Some(&who(&app, &c)),
            "/dpo/registre",
            &body,
        ),
    )
}

// ---------------------------------------------------------------- exports

const CSV_HEADERS: [&str; 11] = [
    "N°",
    "Date (heure de Paris)",
    "Événement",
    "Compte",
    "Flux",
    "Expéditeur",
    "Destinataire",
    "Pseudonyme de la personne",
    "Données (catégories)",
    "Résultat",
    "Motif",
];

/// One CSV line for a French spreadsheet: `;` between cells, quotes where needed,
/// formulas neutralised (`=`, `+`, `-`, `@` … at the start of a cell).
fn csv_line(cells: &[String]) -> String {
    let mut line = cells
        .iter()
        .map(|c| {
            let c = passerelle_audit::export::neutralise(c);
            if c.contains([';', '"', '\n', '\r']) {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                c.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(";");
    line.push_str("\r\n");
    line
}

pub(super) async fn exports(
    State(app): State<WebApp>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (c, _d) = match guard(&app, &headers, "/dpo/exports").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let tz = app.tz();
    let du = q.get("du").and_then(|s| parse_day(s));
    let au = q.get("au").and_then(|s| parse_day(s));
    let flux = q.get("flux").filter(|f| !f.is_empty()).cloned();
    if let (Some(du), Some(au)) = (du, au)
        && q.contains_key("telecharger")
        && du <= au
    {
        let what = format!(
            "export CSV du journal du {du} au {au}{}",
            flux.as_deref()
                .map(|f| format!(", flux {f}"))
                .unwrap_or_default()
        );
        app.journal_consulted(&c.account, &[], &what).await;
        let filter = Filter {
            from: Some(du.and_time(NaiveTime::MIN).and_utc() - Duration::hours(2)),
            to: Some(
                (au + Duration::days(1)).and_time(NaiveTime::MIN).and_utc() + Duration::hours(2),
            ),
            flow: flux.clone(),
            subjects: None,
        };
        let entries = app
            .deps()
            .journal
            .entries(&filter)
            .await
            .unwrap_or_default();
        // UTF-8 with a byte-order mark, so that a French spreadsheet reads the accents.
        let mut out = String::from("\u{feff}");
        out.push_str(&csv_line(&CSV_HEADERS.map(String::from)));
        for e in &entries {
            let Ok(t) = DateTime::parse_from_rfc3339(&e.at).map(|t| t.with_timezone(&Utc)) else {
                continue;
            };
            // The period is in Paris days: the filter above is wider by two hours.
            let local = tz.to_local(t).date();
            if local < du || local > au {
                continue;
            }
            out.push_str(&csv_line(&[
                e.seq.to_string(),
                html::date_fr(t, tz),
                passerelle_audit::art15::event_label(&e.event).to_owned(),
                e.actor.clone(),
                e.flow.clone().unwrap_or_default(),
                e.sender
                    .as_deref()
                    .map(|o| app.org_name(o))
                    .unwrap_or_default(),
                e.recipient
                    .as_deref()
                    .map(|o| app.org_name(o))
                    .unwrap_or_default(),
                e.subject.clone().unwrap_or_default(),
                data_text(&e.fields),
                e.outcome.clone(),
                e.reason.clone().unwrap_or_default(),
            ]));
        }
        return (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"journal-passerelle.csv\"",
                ),
            ],
            out,
        )
            .into_response();
    }
    app.journal_consulted(&c.account, &[], "page /dpo/exports")
        .await;
    let today = app.today();
    let mut body = String::new();
    if du.is_some() && au.is_some() && du > au {
        body.push_str(
            "<p class=\"erreur\" role=\"alert\">La date de fin précède la date de début : corrigez la période.</p>",
        );
    }
    let _ = write!(
        body,
        "<p>Le fichier s'ouvre dans un tableur en français (séparateur point-virgule, UTF-8). \
         Les personnes n'y figurent que par leur pseudonyme.</p>\
         <form method=\"get\" action=\"/dpo/exports\"><div class=\"ligne\">\
         <p><label for=\"du\">Du</label><input id=\"du\" name=\"du\" type=\"date\" value=\"{}\" required></p>\
         <p><label for=\"au\">Au</label><input id=\"au\" name=\"au\" type=\"date\" value=\"{}\" required></p>\
         <p><label for=\"flux\">Flux</label><select id=\"flux\" name=\"flux\"><option value=\"\">Tous les flux</option>",
        (today - Duration::days(30)).format("%Y-%m-%d"),
        today.format("%Y-%m-%d"),
    );
    for f in html::FLOWS {
        let _ = write!(
            body,
            "<option value=\"{f}\">{}</option>",
            html::flow_label(f)
        );
    }
    body.push_str(
        "</select></p></div><input type=\"hidden\" name=\"telecharger\" value=\"1\">\
         <p><button class=\"principal\" type=\"submit\">Télécharger l'export (CSV)</button></p></form>",
    );
    page(
        StatusCode::OK,
        layout(
            "Exporter le journal",
            Some(&who(&app, &c)),
            "/dpo/exports",
            &body,
        ),
    )
}

// ---------------------------------------------------------------- purge

/// The latest cut-off the flows' audit retentions allow today, and the flow that sets it.
fn latest_cutoff(policy: &Policy, now: DateTime<Utc>) -> Option<(NaiveDate, String, u32)> {
    let longest = policy
        .flows()
        .iter()
        .max_by_key(|f| f.retention_days.audit)?;
    let days = longest.retention_days.audit;
    Some((
        (now - Duration::days(i64::from(days))).date_naive(),
        longest.name.clone(),
        days,
    ))
}

fn purge_form(csrf: &str, before: &str, limit: Option<&(NaiveDate, String, u32)>) -> String {
    let mut s = String::new();
    if let Some((day, flow, days)) = limit {
        let _ = write!(
            s,
            "<p>Les entrées sont conservées {days} jours au plus (flux {}) : la date la plus récente permise aujourd'hui est le {}.</p>",
            esc(flow),
            day_fr(*day)
        );
    }
    let _ = write!(
        s,
        "<form method=\"post\" action=\"/dpo/purge\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <input type=\"hidden\" name=\"action\" value=\"apercu\">\
         <label for=\"avant\">Supprimer les entrées antérieures au</label>\
         <input id=\"avant\" name=\"avant\" type=\"date\" value=\"{}\" required>\
         <p><button class=\"principal\" type=\"submit\">Voir ce qui serait supprimé</button></p></form>",
        esc(csrf),
        esc(before)
    );
    s
}

pub(super) async fn purge(State(app): State<WebApp>, headers: HeaderMap) -> Response {
    let (c, d) = match guard(&app, &headers, "/dpo/purge").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    app.journal_consulted(&c.account, &[], "page /dpo/purge")
        .await;
    let limit = latest_cutoff(&d.setup.policy, Utc::now());
    let before = limit
        .as_ref()
        .map(|l| l.0.format("%Y-%m-%d").to_string())
        .unwrap_or_default();
    let body = purge_form(&c.csrf, &before, limit.as_ref());
    page(
        StatusCode::OK,
        layout(
            "Purger les entrées anciennes",
            Some(&who(&app, &c)),
            "/dpo/purge",
            &body,
        ),
    )
}

pub(super) async fn purge_post(
    State(app): State<WebApp>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let (c, d) = match guard(&app, &headers, "/dpo/purge").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if !csrf_ok(&c, &form) {
        return csrf_refused(&app, &c, "/dpo/purge").await;
    }
    let who_ = who(&app, &c);
    let show = |code, body: String| {
        page(
            code,
            layout(
                "Purger les entrées anciennes",
                Some(&who_),
                "/dpo/purge",
                &body,
            ),
        )
    };
    let limit = latest_cutoff(&d.setup.policy, Utc::now());
    let raw = form.get("avant").map(String::as_str).unwrap_or("");
    let Some(day) = parse_day(raw) else {
        let body = format!(
            "<p class=\"erreur\" role=\"alert\">Saisissez une date valide.</p>{}",
            purge_form(&c.csrf, raw, limit.as_ref())
        );
        return show(StatusCode::UNPROCESSABLE_ENTITY, body);
    };
    if let Some((latest, flow, days)) = &limit
        && day > *latest
    {
        app.journal_denied(
            Some(&c.account),
            &format!("purge au {day} refusée : dans la durée de conservation"),
        )
        .await;
        let body = format!(
            "<p class=\"erreur\" role=\"alert\">Le {} est dans la durée de conservation déclarée : le flux {} garde ses entrées {days} jours, la date la plus récente permise aujourd'hui est le {}. Rien n'a été supprimé.</p>{}",
            day_fr(day),
            esc(flow),
            day_fr(*latest),
            purge_form(&c.csrf, raw, limit.as_ref())
        );
        return show(StatusCode::UNPROCESSABLE_ENTITY, body);
    }
    let before = day.and_time(NaiveTime::MIN).and_utc();
    let journal = &app.deps().journal;
    let lines = journal.purge_preview(before).await.unwrap_or_default();
    let total: u64 = lines.iter().map(|l| l.entries).sum();
    let confirmed = form.get("action").is_some_and(|a| a == "purger")
        && form.get("confirmation").is_some_and(|v| v == "oui");
    if !confirmed {
        app.journal_consulted(
            &c.account,
            &[],
            &format!("aperçu de la purge avant le {day}"),
        )
        .await;
        let mut body = format!(
            "<p class=\"info\">Aperçu : {total} entrée(s) antérieure(s) au {} seraient supprimées. Rien n'a encore été supprimé.</p>",
            day_fr(day)
        );
        if !lines.is_empty() {
            body.push_str(
                "<div class=\"tableau\"><table><caption>Ce que la purge supprimerait, par mois et par flux</caption>\
                 <thead><tr><th scope=\"col\">Mois</th><th scope=\"col\">Flux</th><th scope=\"col\">Entrées</th></tr></thead><tbody>",
            );
            for l in &lines {
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&l.month),
                    l.flow
                        .as_deref()
                        .map(html::flow_label)
                        .unwrap_or_else(|| "(hors flux)".into()),
                    l.entries
                );
            }
            body.push_str("</tbody></table></div>");
        }
        if total > 0 {
            let _ = write!(
                body,
                "<form method=\"post\" action=\"/dpo/purge\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                 <input type=\"hidden\" name=\"action\" value=\"purger\"><input type=\"hidden\" name=\"avant\" value=\"{}\">\
                 <p class=\"case\"><input id=\"confirmation\" name=\"confirmation\" type=\"checkbox\" value=\"oui\" required>\
                 <label for=\"confirmation\">Je confirme la suppression définitive de ces {total} entrée(s)</label></p>\
                 <p><button class=\"principal\" type=\"submit\">Purger définitivement</button></p></form>",
                esc(&c.csrf),
                day.format("%Y-%m-%d")
            );
        }
        body.push_str(&purge_form(&c.csrf, raw, limit.as_ref()));
        return show(StatusCode::OK, body);
    }
    let Some(key) = &d.setup.anchor_key else {
        return show(
            StatusCode::SERVICE_UNAVAILABLE,
            "<p class=\"erreur\" role=\"alert\">La clé d'ancrage du hub n'est pas disponible : la purge ne peut pas être signée. Rien n'a été supprimé.</p>".into(),
        );
    };
    let report = match journal.purge_signed(before, &c.account.login, key).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("purge from the console failed: {e}");
            return show(
                StatusCode::CONFLICT,
                format!(
                    "<p class=\"erreur\" role=\"alert\">La purge a été refusée : {}. Rien n'a été supprimé.</p>",
                    esc(&e.to_string())
                ),
            );
        }
    };
    let mut kept: Vec<Anchor> = report.record.iter().cloned().collect();
    let anchored = match &d.setup.stamper {
        Some(t) => {
            journal
                .anchor_with(key, async |s: Vec<u8>| t.stamp(&s).await.map(Some))
                .await
        }
        None => journal.anchor(key).await,
    };
    match anchored {
        Ok(Some(a)) => kept.push(a),
        Ok(None) => {}
        // The purge itself is signed and recorded; the head is anchored at the next try.
        Err(e) => tracing::warn!("cannot anchor the journal after the purge: {e}"),
    }
    if let Some(path) = &d.setup.anchor_file {
        let known = anchor::read_file(path).unwrap_or_default();
        let new: Vec<Anchor> = kept.into_iter().filter(|a| !known.contains(a)).collect();
        if let Err(e) = anchor::append_file(path, &new) {
            tracing::warn!("cannot write the anchor file: {e}");
        }
    }
    let body = format!(
        "<p class=\"info\" role=\"status\">{} entrée(s) antérieure(s) au {} ont été supprimées par {} ; la purge est signée et consignée dans le journal.</p>\
         <p><a href=\"/dpo/journal\">Voir le journal</a></p>",
        report.removed,
        day_fr(day),
        esc(&c.account.login)
    );
    show(StatusCode::OK, body)
}
