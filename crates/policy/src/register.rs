//! The register of processing activities (GDPR Art. 30(1)) generated from the flows
//! file: one entry per flow, as Markdown and as HTML (every text escaped).

use std::fmt::Write as _;

use passerelle_model::{FIELDS, FieldClass};

use crate::Policy;
use crate::flow::{Endpoint, Flow};

/// A readable label of a field class.
pub fn class_label(class: FieldClass) -> &'static str {
    match class {
        FieldClass::Identifiant => "identifiers (CAF, I-MILO, SOLIS, France Travail, INE)",
        FieldClass::Nir => "NIR (social security number)",
        FieldClass::Identite => "identity (civility, names, birth date and place)",
        FieldClass::Contact => "contact details (address, telephone, e-mail)",
        FieldClass::Social => "social situation (RSA entitlement, housing)",
        FieldClass::Parcours => "pathway (orientation, accompaniment, situations, training)",
        FieldClass::Financier => "financial aid (FAJ requests and decisions)",
        FieldClass::Mineur => "minors' data (legal representatives, child welfare)",
        FieldClass::Art9 => "special categories, GDPR Art. 9 (health, disability)",
        FieldClass::Art10 => "criminal-law data, GDPR Art. 10",
        FieldClass::Meta => "technical metadata (record source, hub id)",
    }
}

/// One value of a register item: text, then field paths shown as code.
struct Value {
    text: String,
    paths: Vec<&'static str>,
}

impl From<String> for Value {
    fn from(text: String) -> Self {
        Value {
            text,
            paths: Vec::new(),
        }
    }
}

/// One register entry as plain items, shared by both renderings.
struct Entry {
    title: String,
    items: Vec<(&'static str, Vec<Value>)>,
}

fn endpoint_text(e: &Endpoint) -> String {
    let kinds: Vec<&str> = e.kinds.iter().map(|k| k.label()).collect();
    let systems: Vec<&str> = e.systems.iter().map(|s| s.as_str()).collect();
    let mut s = format!("{} via {}", kinds.join(" or "), systems.join(", "));
    if e.org != "*" {
        let _ = write!(s, ", organisation code matching {}", e.org);
    }
    if e.same_departement {
        s.push_str(", same département as the other party");
    }
    s
}

fn categories(flow: &Flow) -> Vec<Value> {
    categories_in(
        flow,
        class_label,
        "none: aggregated, anonymous indicators only",
    )
}

/// The flow's fields by class, each class named by `label`; `none` when it carries no
/// personal field. Shared by the English and the French register.
fn categories_in(flow: &Flow, label: fn(FieldClass) -> &'static str, none: &str) -> Vec<Value> {
    let paths = flow.effective_paths();
    let mut out = Vec::new();
    for class in FieldClass::ALL {
        let of_class: Vec<&str> = FIELDS
            .iter()
            .filter(|(p, c)| c == class && paths.contains(p) && *p != "schema")
            .map(|(p, _)| *p)
            .collect();
        if !of_class.is_empty() {
            out.push(Value {
                text: label(*class).to_owned(),
                paths: of_class,
            });
        }
    }
    if out.is_empty() {
        out.push(none.to_owned().into());
    }
    out
}

/// One entry's items as a Markdown list, `colon` after each label (`:` in English,
/// ` :` in French).
fn md_items(s: &mut String, items: Vec<(&'static str, Vec<Value>)>, colon: &str) {
    for (label, values) in items {
        if values.len() == 1 {
            let _ = writeln!(s, "- **{label}**{colon} {}", md_value(&values[0]));
        } else {
            let _ = writeln!(s, "- **{label}**{colon}");
            for v in values {
                let _ = writeln!(s, "  - {}", md_value(&v));
            }
        }
    }
}

fn entry(policy: &Policy, flow: &Flow) -> Entry {
    let info = &policy.file().register;
    let special: Vec<String> = flow
        .special_classes()
        .into_iter()
        .map(|c| {
            format!(
                "{}: {}",
                class_label(c),
                flow.special.for_class(c).unwrap_or("")
            )
        })
        .collect();
    let mut items = vec![
        (
            "Controller",
            vec![
                info.controller.clone(),
                format!("DPO: {}", info.dpo_contact),
            ],
        ),
        ("Purpose", vec![flow.purpose.clone()]),
        (
            "Legal basis",
            vec![format!(
                "GDPR Art. {}; {}",
                flow.legal_basis.gdpr, flow.legal_basis.reference
            )],
        ),
        (
            "Consent required",
            vec![if flow.consent { "yes" } else { "no" }.to_owned()],
        ),
        (
            "Categories of data subjects",
            vec![flow.data_subjects.clone()],
        ),
        ("Categories of personal data", Vec::new()),
        (
            "Special categories (Art. 9, Art. 10, NIR)",
            if special.is_empty() {
                vec!["none".to_owned()]
            } else {
                special
            },
        ),
        ("Source", vec![endpoint_text(&flow.from)]),
        ("Recipients", vec![endpoint_text(&flow.to)]),
        ("Direction", vec![flow.direction.as_str().to_owned()]),
        (
            "Transfers to third countries",
            vec![info.third_country_transfers.clone()],
        ),
        (
            "Retention",
            vec![
                format!("recipient's copy: {} days", flow.retention_days.recipient),
                format!("audit entries: {} days", flow.retention_days.audit),
            ],
        ),
    ];
    items.push(("Security measures", info.security_measures.clone()));
    let items = items
        .into_iter()
        .map(|(label, values)| {
            let values = if label == "Categories of personal data" {
                categories(flow)
            } else {
                values.into_iter().map(Value::from).collect()
            };
            (label, values)
        })
        .collect();
    Entry {
        title: format!("{} ({})", flow.name, flow.id),
        items,
    }
}

/// Escapes text for Markdown so that no file content turns into markup or HTML.
fn md(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(
            c,
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '|' | '!'
        ) {
            out.push('\\');
        }
        if c == '\n' {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out
}

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Paths are canonical field paths (letters, digits, `_`, `.`, `[]`), never file
/// text, so a code span holds them without escaping.
fn md_value(v: &Value) -> String {
    let mut out = md(&v.text);
    if !v.paths.is_empty() {
        let paths: Vec<String> = v.paths.iter().map(|p| format!("`{p}`")).collect();
        let _ = write!(out, ": {}", paths.join(", "));
    }
    out
}

fn html_value(v: &Value) -> String {
    let mut out = html_escape(&v.text);
    if !v.paths.is_empty() {
        let paths: Vec<String> = v
            .paths
            .iter()
            .map(|p| format!("<code>{}</code>", html_escape(p)))
            .collect();
        let _ = write!(out, ": {}", paths.join(", "));
    }
    out
}

/// The register as Markdown.
pub fn to_markdown(policy: &Policy) -> String {
    let info = &policy.file().register;
    let mut s = String::new();
    let _ = writeln!(s, "# {}\n", md(&info.title));
    let _ = writeln!(
        s,
        "Generated from the flows file (version {}); {} processing activities.\n",
        policy.file().version,
        policy.flows().len()
    );
    for flow in policy.flows() {
        let e = entry(policy, flow);
        let _ = writeln!(s, "## {}\n", md(&e.title));
        md_items(&mut s, e.items, ":");
        s.push('\n');
    }
    s
}

/// The register as a standalone HTML page.
pub fn to_html(policy: &Policy) -> String {
    let info = &policy.file().register;
    let mut s = String::new();
    let title = html_escape(&info.title);
    let _ = writeln!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n</head>\n<body>\n<h1>{title}</h1>"
    );
    let _ = writeln!(
        s,
        "<p>Generated from the flows file (version {}); {} processing activities.</p>",
        policy.file().version,
        policy.flows().len()
    );
    for flow in policy.flows() {
        let e = entry(policy, flow);
        let _ = writeln!(
            s,
            "<section id=\"flow-{}\">\n<h2>{}</h2>\n<dl>",
            html_escape(&flow.id),
            html_escape(&e.title)
        );
        for (label, values) in e.items {
            let _ = writeln!(s, "<dt>{}</dt>", html_escape(label));
            if values.len() == 1 {
                let _ = writeln!(s, "<dd>{}</dd>", html_value(&values[0]));
            } else {
                let _ = write!(s, "<dd><ul>");
                for v in values {
                    let _ = write!(s, "<li>{}</li>", html_value(&v));
                }
                let _ = writeln!(s, "</ul></dd>");
            }
        }
        let _ = writeln!(s, "</dl>\n</section>");
    }
    s.push_str("</body>\n</html>\n");
    s
}

/// What the French register says beyond the flows file: where the flows come from, and
/// the security measures true of the running configuration (given by the caller, who
/// knows it), instead of the file's own list.
#[derive(Debug, Clone)]
pub struct French<'a> {
    /// The flows' source, as a phrase (`le fichier des flux /etc/passerelle/flows.toml`).
    pub source: &'a str,
    pub measures: &'a [String],
}

/// The French name of a class of data, for the register.
pub fn class_label_fr(class: FieldClass) -> &'static str {
    match class {
        FieldClass::Identifiant => "identifiants (CAF, I-MILO, SOLIS, France Travail, INE)",
        FieldClass::Nir => "NIR (numéro de sécurité sociale)",
        FieldClass::Identite => "identité (civilité, noms, date et lieu de naissance)",
        FieldClass::Contact => "coordonnées (adresse, téléphone, courriel)",
        FieldClass::Social => "situation sociale (droit au RSA, logement)",
        FieldClass::Parcours => "parcours (orientation, accompagnement, situations, formation)",
        FieldClass::Financier => "aides financières (demandes et décisions FAJ)",
        FieldClass::Mineur => "données de mineurs (représentants légaux, aide sociale à l'enfance)",
        FieldClass::Art9 => "catégories particulières, art. 9 du RGPD (santé, handicap)",
        FieldClass::Art10 => "données pénales, art. 10 du RGPD",
        FieldClass::Meta => "métadonnées techniques (origine de la fiche, identifiant interne)",
    }
}

fn endpoint_fr(e: &Endpoint) -> String {
    let kinds: Vec<&str> = e
        .kinds
        .iter()
        .map(|k| match k.as_str() {
            "ml" => "Mission Locale",
            "cd" => "Conseil départemental",
            "faj" => "plateforme FAJ",
            _ => "Passerelle (le hub)",
        })
        .collect();
    let systems: Vec<&str> = e.systems.iter().map(|s| s.as_str()).collect();
    let mut s = format!("{} par {}", kinds.join(" ou "), systems.join(", "));
    if e.org != "*" {
        let _ = write!(s, ", code d'organisation {}", e.org);
    }
    if e.same_departement {
        s.push_str(", du même département que l'autre partie");
    }
    s
}

fn entry_fr(policy: &Policy, flow: &Flow, fr: &French<'_>) -> Entry {
    let info = &policy.file().register;
    let categories = categories_in(
        flow,
        class_label_fr,
        "aucune : indicateurs agrégés et anonymes seulement",
    );
    let special: Vec<Value> = flow
        .special_classes()
        .into_iter()
        .map(|c| {
            format!(
                "{} : {}",
                class_label_fr(c),
                flow.special.for_class(c).unwrap_or("")
            )
            .into()
        })
        .collect();
    let v = |s: String| vec![Value::from(s)];
    let items = vec![
        (
            "Responsable du traitement",
            vec![
                info.controller.clone().into(),
                format!("Délégué à la protection des données : {}", info.dpo_contact).into(),
            ],
        ),
        ("Finalité", v(flow.purpose.clone())),
        (
            "Base légale",
            v(format!(
                "article {} du RGPD ; {}",
                flow.legal_basis.gdpr, flow.legal_basis.reference
            )),
        ),
        (
            "Consentement requis",
            v(if flow.consent { "oui" } else { "non" }.to_owned()),
        ),
        ("Personnes concernées", v(flow.data_subjects.clone())),
        ("Catégories de données", categories),
        (
            "Catégories particulières (art. 9, art. 10, NIR)",
            if special.is_empty() {
                v("aucune".to_owned())
            } else {
                special
            },
        ),
        ("Source", v(endpoint_fr(&flow.from))),
        ("Destinataires", v(endpoint_fr(&flow.to))),
        (
            "Sens",
            v(match flow.direction.as_str() {
                "one-way" => "unidirectionnel".to_owned(),
                "both-ways" => "dans les deux sens".to_owned(),
                other => other.to_owned(),
            }),
        ),
        (
            "Transferts hors de l'Union européenne",
            v(info.third_country_transfers.clone()),
        ),
        (
            "Durées de conservation",
            vec![
                format!(
                    "copie du destinataire : {} jours",
                    flow.retention_days.recipient
                )
                .into(),
                format!(
                    "entrées du journal d'audit : {} jours",
                    flow.retention_days.audit
                )
                .into(),
            ],
        ),
        (
            "Mesures de sécurité",
            fr.measures.iter().cloned().map(Value::from).collect(),
        ),
    ];
    Entry {
        title: format!("{} ({})", flow.name, flow.id),
        items,
    }
}

fn intro_fr(policy: &Policy, fr: &French<'_>) -> String {
    format!(
        "Registre des activités de traitement (article 30 du RGPD) de Passerelle, établi à partir de {} (version {}) : {} traitements. Les textes libres (intitulés, finalités, personnes concernées, responsable) sont repris tels que ce fichier les déclare ; les mesures de sécurité sont celles de la configuration en service.",
        fr.source,
        policy.file().version,
        policy.flows().len()
    )
}

/// The register in French, as Markdown.
pub fn to_markdown_fr(policy: &Policy, fr: &French<'_>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Registre des activités de traitement : échanges Passerelle\n"
    );
    let _ = writeln!(s, "{}\n", md(&intro_fr(policy, fr)));
    for flow in policy.flows() {
        let e = entry_fr(policy, flow, fr);
        let _ = writeln!(s, "## {}\n", md(&e.title));
        md_items(&mut s, e.items, " :");
        s.push('\n');
    }
    s
}

/// The register in French, as a standalone HTML page.
pub fn to_html_fr(policy: &Policy, fr: &French<'_>) -> String {
    let mut s = String::new();
    let title = "Registre des activités de traitement : échanges Passerelle";
    let _ = writeln!(
        s,
        "<!DOCTYPE html>\n<html lang=\"fr\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n</head>\n<body>\n<h1>{title}</h1>"
    );
    let _ = writeln!(s, "<p>{}</p>", html_escape(&intro_fr(policy, fr)));
    for flow in policy.flows() {
        let e = entry_fr(policy, flow, fr);
        let _ = writeln!(
            s,
            "<section id=\"flow-{}\">\n<h2>{}</h2>\n<dl>",
            html_escape(&flow.id),
            html_escape(&e.title)
        );
        for (label, values) in e.items {
            let _ = writeln!(s, "<dt>{}</dt>", html_escape(label));
            let _ = write!(s, "<dd><ul>");
            for v in values {
                let _ = write!(s, "<li>{}</li>", html_value(&v));
            }
            let _ = writeln!(s, "</ul></dd>");
        }
        let _ = writeln!(s, "</dl>\n</section>");
    }
    s.push_str("</body>\n</html>\n");
    s
}
