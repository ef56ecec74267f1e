//! The shared bilan's page (`/bilans`, issue 23) and its files: the indicators of
//! `passerelle_hub::bilan` for an organisation and its partners, as charts drawn on the
//! server in SVG (readable without JavaScript) each beside the table of its numbers,
//! twelve months to see the trend, a filter by partner, the definitions; and the same
//! figures as CSV (`;`, UTF-8 with BOM, for a French spreadsheet) and XLSX, which
//! `passerelle bilan` writes too, byte for byte.
//!
//! Who sees what: a conseiller or an operateur their organisation's bilan (with one of
//! its partners, or all), a dpo and an admin any organisation's or the whole hub's.
//! Nothing here is about a person: the figures are counts, delays and sums, those made
//! of fewer than five masked (`< 5`).

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use passerelle_hub::bilan::{self, Bilan, Bilans, Figure, Scope, Unite};

use super::html::{self, layout};
use super::pages::{refuse, to_login, who};
use super::{WebApp, page};
use crate::page::escape_html as esc;

/// Months of the trend on the page.
pub const TREND_MONTHS: usize = 12;

/// The columns of the CSV and XLSX files.
const COLUMNS: [&str; 9] = [
    "mois",
    "organisation",
    "partenaire",
    "section",
    "indicateur",
    "libelle",
    "detail",
    "valeur",
    "unite",
];

/// One line of a file: the nine columns, as text (`valeur` as `Figure::text`).
fn file_lines(b: &Bilan) -> Vec<[String; 9]> {
    let org = b.scope.org.clone().unwrap_or_else(|| "toutes".into());
    let partner = b.scope.partner.clone().unwrap_or_else(|| "tous".into());
    // In the definitions' order, then by month and detail.
    let mut out = Vec::new();
    for d in bilan::definitions() {
        for m in &b.mois {
            for f in b.of(&d.id, m) {
                out.push([
                    f.mois.clone(),
                    org.clone(),
                    partner.clone(),
                    d.section.clone(),
                    d.id.clone(),
                    d.libelle.clone(),
                    f.detail.clone(),
                    f.text(),
                    d.unite.as_str().to_owned(),
                ]);
            }
        }
    }
    out
}

/// A CSV cell: quoted when it holds the separator, a quote or a line break; a cell a
/// spreadsheet would read as a formula is neutralised with a leading `'`.
fn cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([';', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// The bilan as CSV: `;`-separated, UTF-8 with a BOM, CRLF line ends (what a French
/// spreadsheet opens as is).
pub fn csv(b: &Bilan) -> Vec<u8> {
    let mut out = String::from("\u{feff}");
    out.push_str(&COLUMNS.join(";"));
    out.push_str("\r\n");
    for line in file_lines(b) {
        let cells: Vec<String> = line.iter().map(|c| cell(c)).collect();
        out.push_str(&cells.join(";"));
        out.push_str("\r\n");
    }
    out.into_bytes()
}

/// The bilan as an XLSX workbook: a sheet `Bilan` (numbers as numbers, masked figures
/// as the text `< 5`) and a sheet `Définitions`.
pub fn xlsx(b: &Bilan) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    use rust_xlsxwriter::{Format, Workbook};
    let mut book = Workbook::new();
    let bold = Format::new().set_bold();
    let sheet = book.add_worksheet();
    sheet.set_name("Bilan")?;
    for (c, h) in COLUMNS.iter().enumerate() {
        sheet.write_string_with_format(0, c as u16, *h, &bold)?;
    }
    let mut row = 1u32;
    for d in bilan::definitions() {
        for m in &b.mois {
            for f in b.of(&d.id, m) {
                let line = &file_lines_one(b, d, f);
                for (c, v) in line.iter().enumerate() {
                    if c == 7 {
                        match f.value() {
                            Some(x) if d.unite == Unite::Jours => {
                                sheet.write_number(row, 7, (x * 10.0).round() / 10.0)?
                            }
                            Some(x) => sheet.write_number(row, 7, x.round())?,
                            None => sheet.write_string(row, 7, "< 5")?,
                        };
                    } else {
                        sheet.write_string(row, c as u16, v)?;
                    }
                }
                row += 1;
            }
        }
    }
    sheet.autofit();
    let defs = book.add_worksheet();
    defs.set_name("Définitions")?;
    for (c, h) in ["indicateur", "section", "libelle", "formule", "unite"]
        .iter()
        .enumerate()
    {
        defs.write_string_with_format(0, c as u16, *h, &bold)?;
    }
    for (r, d) in bilan::definitions().iter().enumerate() {
        let r = r as u32 + 1;
        defs.write_string(r, 0, &d.id)?;
        defs.write_string(r, 1, &d.section)?;
        defs.write_string(r, 2, &d.libelle)?;
        defs.write_string(r, 3, &d.formule)?;
        defs.write_string(r, 4, d.unite.as_str())?;
    }
    book.save_to_buffer()
}

/// The one-page bilan of a convention (an organisation and a partner) for the last
/// month of `b`, as PDF: each indicator's value, details on one line; `names` gives
/// organisations' names.
pub fn pdf(b: &Bilan, names: &dyn Fn(&str) -> String) -> Vec<u8> {
    let mois = b.mois.last().cloned().unwrap_or_default();
    let whose = match (&b.scope.org, &b.scope.partner) {
        (Some(o), Some(p)) => format!("{} et {}", names(o), names(p)),
        (Some(o), None) => format!("{} et ses partenaires", names(o)),
        (None, Some(p)) => format!("toutes les organisations avec {}", names(p)),
        (None, None) => "toutes les organisations du hub".into(),
    };
    // One line a figure: a detailed indicator gets a line per detail, so that the
    // labels keep the width and the page holds the whole bilan.
    let mut rows = Vec::new();
    for d in bilan::definitions() {
        let figs: Vec<&Figure> = b.of(&d.id, &mois).collect();
        if d.detail.is_some() {
            if figs.is_empty() {
                rows.push(vec![d.libelle.clone(), "aucun".to_owned()]);
            }
            for f in figs {
                rows.push(vec![
                    format!("{} — {}", d.libelle, plain_detail(&d.id, &f.detail)),
                    shown(f),
                ]);
            }
        } else {
            let v = figs.first().map_or("0".into(), |f| shown(f));
            rows.push(vec![d.libelle.clone(), v]);
        }
    }
    super::pdf::Document::new(format!("Bilan partagé de {}", month_plain(&mois)))
        .paragraph(format!(
            "Convention : {whose}. Chiffres calculés par Passerelle à partir des échanges \
             (aucune donnée personnelle) ; un chiffre qui porte sur moins de cinq jeunes ou \
             échanges est noté « < 5 ». Définitions : passerelle bilan --list."
        ))
        .table(&["Indicateur", "Valeur"], rows)
        .to_pdf()
}

/// `month_fr` without HTML escaping (for the PDF).
fn month_plain(m: &str) -> String {
    month_fr(m).replace("&amp;", "&")
}

/// `detail_fr` without HTML escaping (for the PDF).
fn plain_detail(id: &str, d: &str) -> String {
    detail_fr(id, d)
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn file_lines_one(b: &Bilan, d: &bilan::Indicateur, f: &Figure) -> [String; 9] {
    [
        f.mois.clone(),
        b.scope.org.clone().unwrap_or_else(|| "toutes".into()),
        b.scope.partner.clone().unwrap_or_else(|| "tous".into()),
        d.section.clone(),
        d.id.clone(),
        d.libelle.clone(),
        f.detail.clone(),
        f.text(),
        d.unite.as_str().to_owned(),
    ]
}

/// `2026-12` → `décembre 2026`.
pub fn month_fr(m: &str) -> String {
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
    match m.split_once('-') {
        Some((y, mm)) => match mm.parse::<usize>() {
            Ok(i @ 1..=12) => format!("{} {y}", MOIS[i - 1]),
            _ => esc(m),
        },
        None => esc(m),
    }
}

/// Short month for the chart's axis: `déc. 26`.
fn month_short(m: &str) -> String {
    const M: [&str; 12] = [
        "janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.",
        "déc.",
    ];
    match m.split_once('-') {
        Some((y, mm)) => match mm.parse::<usize>() {
            Ok(i @ 1..=12) => format!("{} {}", M[i - 1], &y[y.len().saturating_sub(2)..]),
            _ => esc(m),
        },
        None => esc(m),
    }
}

/// A number with French digit grouping (a narrow no-break space).
fn grouped(n: i64) -> String {
    let s = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// A figure as the page shows it: `< 5`, `12`, `1,5 j`, `2 500,00 €`.
pub fn shown(f: &Figure) -> String {
    match f.value() {
        None => "< 5".into(),
        Some(v) => match f.unite() {
            Unite::Jours => format!("{} j", format!("{v:.1}").replace('.', ",")),
            Unite::Centimes => {
                let c = v.round() as i64;
                format!("{},{:02} €", grouped(c / 100), (c % 100).abs())
            }
            _ => grouped(v.round() as i64),
        },
    }
}

/// A detail in words: an outcome, a flow or a reason code.
fn detail_fr(id: &str, d: &str) -> String {
    if d.is_empty() {
        return String::new();
    }
    match bilan::definition(id).and_then(|x| x.detail.as_deref()) {
        Some("flux") => html::flow_label(d),
        Some("issue") => match d {
            "accordee" => "accordée".into(),
            "refusee" => "refusée".into(),
            "ajournee" => "ajournée".into(),
            "payee" => "payée".into(),
            "en_commission" => "en commission".into(),
            "deposee" => "déposée".into(),
            "incomplete" => "incomplète".into(),
            other => esc(other),
        },
        _ => esc(d),
    }
}

/// One series of a chart: a label and one figure (or none) per month.
struct Series<'a> {
    label: String,
    values: Vec<Option<&'a Figure>>,
}

const COLOURS: [&str; 3] = ["#0b4f8a", "#c35a00", "#2e7d32"];

/// A bar chart of months × series, in SVG with a title and a description; masked
/// figures drawn as no bar with `< 5` written, so the picture never shows them.
fn chart(id: &str, title: &str, mois: &[String], series: &[Series<'_>]) -> String {
    // The legend goes under the axis, one line a series.
    let legend = 18.0 * series.len() as f64;
    let (w, left, bottom, top) = (720.0f64, 48.0f64, 28.0 + legend, 16.0f64);
    let h = 220.0 + bottom;
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .filter_map(|f| f.value())
        .fold(0.0f64, f64::max);
    let scale_max = nice_max(max);
    let plot_h = h - bottom - top;
    let slot = (w - left - 8.0) / mois.len().max(1) as f64;
    let bar = (slot * 0.8) / series.len().max(1) as f64;
    let mut svg = format!(
        "<svg class=\"graphique\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-labelledby=\"{id}-t {id}-d\" xmlns=\"http://www.w3.org/2000/svg\">\
         <title id=\"{id}-t\">{}</title><desc id=\"{id}-d\">Histogramme par mois ; les valeurs sont dans le tableau qui suit.</desc>",
        esc(title)
    );
    // Axis and a few grid lines.
    for i in 0..=4 {
        let v = scale_max * i as f64 / 4.0;
        let y = top + plot_h - plot_h * i as f64 / 4.0;
        let _ = write!(
            svg,
            "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#ccc\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#333\">{}</text>",
            w - 8.0,
            left - 4.0,
            y + 4.0,
            if v.fract() == 0.0 {
                format!("{}", v as i64)
            } else {
                format!("{v:.1}").replace('.', ",")
            }
        );
    }
    for (mi, m) in mois.iter().enumerate() {
        let x0 = left + slot * mi as f64 + slot * 0.1;
        for (si, s) in series.iter().enumerate() {
            let x = x0 + bar * si as f64;
            match s.values.get(mi).copied().flatten() {
                Some(f) if f.masked() => {
                    let _ = write!(
                        svg,
                        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\" fill=\"#333\">&lt;5</text>",
                        x + bar / 2.0,
                        top + plot_h - 4.0
                    );
                }
                Some(f) => {
                    let v = f.value().unwrap_or(0.0);
                    let bh = plot_h * v / scale_max;
                    let _ = write!(
                        svg,
                        "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{}\"/>",
                        top + plot_h - bh,
                        (bar - 1.0).max(1.0),
                        COLOURS[si % COLOURS.len()]
                    );
                }
                None => {}
            }
        }
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#333\">{}</text>",
            left + slot * mi as f64 + slot / 2.0,
            h - bottom + 16.0,
            month_short(m)
        );
    }
    // The legend.
    for (si, s) in series.iter().enumerate() {
        let (x, y) = (left, h - legend + 18.0 * si as f64);
        let _ = write!(
            svg,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#333\">{}</text>",
            y,
            COLOURS[si % COLOURS.len()],
            x + 16.0,
            y + 10.0,
            esc(&truncate(&s.label, 100))
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The top of the axis: four steps of 1, 2, 2.5 or 5 times a power of ten.
fn nice_max(max: f64) -> f64 {
    if max <= 0.0 {
        return 4.0;
    }
    let raw = max / 4.0;
    let pow = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * pow)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * pow);
    step * 4.0
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

/// The table beside a chart: one row a month, one column a series.
fn chart_table(caption: &str, mois: &[String], series: &[Series<'_>]) -> String {
    let mut t = format!(
        "<div class=\"tableau\"><table><caption>{}</caption><thead><tr><th scope=\"col\">Mois</th>",
        esc(caption)
    );
    for s in series {
        let _ = write!(t, "<th scope=\"col\">{}</th>", esc(&s.label));
    }
    t.push_str("</tr></thead><tbody>");
    for (mi, m) in mois.iter().enumerate() {
        let _ = write!(t, "<tr><th scope=\"row\">{}</th>", month_fr(m));
        for s in series {
            let v = s
                .values
                .get(mi)
                .copied()
                .flatten()
                .map_or("0".into(), shown);
            let _ = write!(t, "<td>{v}</td>");
        }
        t.push_str("</tr>");
    }
    t.push_str("</tbody></table></div>");
    t
}

/// The charts of the page: (title, indicators drawn together).
const CHARTS: [(&str, &[&str]); 5] = [
    (
        "Orientation BRSA et retours de suivi",
        &["brsa_orientes", "brsa_orientes_suivis"],
    ),
    (
        "Délai de l'orientation au premier suivi (jours)",
        &["brsa_delai_suivi_median", "brsa_delai_suivi_p90"],
    ),
    (
        "Sortie de l'ASE : annonces et jeunes connus de la ML",
        &["ase_annonces", "ase_accueillis", "ase_connus_ml"],
    ),
    ("Fonds d'aide aux jeunes : demandes", &["faj_demandes"]),
    (
        "Obligation de formation : signalements et réponses",
        &["of_signalements", "of_reponses"],
    ),
];

/// What the page was asked.
struct Asked {
    mois: String,
    org: Option<String>,
    partner: Option<String>,
    months: usize,
}

/// Reads and checks the query against the account: a scoped account sees its own
/// organisation only.
async fn asked(
    app: &WebApp,
    c: &super::Current,
    q: &HashMap<String, String>,
    bilans: &Bilans,
) -> Result<Asked, Response> {
    let role = c.account.role;
    let mois = q
        .get("mois")
        .filter(|m| bilan::months_ending(m, 1).is_ok())
        .cloned()
        .unwrap_or_else(|| bilan::month_of(chrono::Utc::now()));
    let wanted_org = q.get("organisation").filter(|s| !s.is_empty()).cloned();
    let org = if role.scoped() {
        let own = c.account.org.clone();
        // A scoped account without an organisation sees no bilan, never the whole hub's.
        if own.is_none() {
            return Err(refuse(
                app,
                c,
                StatusCode::FORBIDDEN,
                "Votre compte n'est rattaché à aucune organisation : il ne voit aucun bilan.",
                "page /bilans refusée : compte sans organisation",
            )
            .await);
        }
        if let (Some(o), Some(w)) = (&own, &wanted_org)
            && o != w
        {
            return Err(refuse(
                app,
                c,
                StatusCode::FORBIDDEN,
                &format!(
                    "Vous ne pouvez pas voir le bilan de {} : votre compte est rattaché à {}.",
                    app.org_name(w),
                    app.org_name(o)
                ),
                &format!("page /bilans de l'organisation {w} refusée"),
            )
            .await);
        }
        own
    } else {
        wanted_org
    };
    let partner = q.get("partenaire").filter(|s| !s.is_empty()).cloned();
    if let Some(p) = &partner {
        let known = bilans
            .partners(org.as_deref())
            .await
            .map(|v| v.contains(p))
            .unwrap_or(false);
        if !known {
            return Err(refuse(
                app,
                c,
                StatusCode::NOT_FOUND,
                "Ce partenaire n'a échangé avec aucune organisation de ce bilan.",
                "page /bilans : partenaire inconnu",
            )
            .await);
        }
    }
    let months = match q.get("periode").map(String::as_str) {
        Some("12") => TREND_MONTHS,
        _ => 1,
    };
    Ok(Asked {
        mois,
        org,
        partner,
        months,
    })
}

/// `GET /bilans`.
pub(super) async fn bilans(
    State(app): State<WebApp>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(c) = app.current(&headers).await else {
        return to_login();
    };
    let Some(source) = app.bilans() else {
        return page(
            StatusCode::SERVICE_UNAVAILABLE,
            layout(
                "Bilans",
                Some(&who(&app, &c)),
                "/bilans",
                "<p class=\"info\">Les bilans ne sont pas disponibles sur ce hub.</p>",
            ),
        );
    };
    let a = match asked(&app, &c, &q, &source).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Ok(trend) = bilan::months_ending(&a.mois, TREND_MONTHS) else {
        return to_login();
    };
    let scope = Scope {
        org: a.org.clone(),
        partner: a.partner.clone(),
    };
    let b = match source.bilan(&scope, &trend).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!("bilan failed: {e}");
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                layout(
                    "Bilans",
                    Some(&who(&app, &c)),
                    "/bilans",
                    "<p class=\"erreur\" role=\"alert\">Le bilan ne peut pas être calculé pour l'instant : réessayez dans quelques minutes.</p>",
                ),
            );
        }
    };
    let partners = source.partners(a.org.as_deref()).await.unwrap_or_default();
    let body = render(&app, &c, &a, &b, &partners);
    page(
        StatusCode::OK,
        layout("Bilans partagés", Some(&who(&app, &c)), "/bilans", &body),
    )
}

fn render(app: &WebApp, c: &super::Current, a: &Asked, b: &Bilan, partners: &[String]) -> String {
    let whose = match (&a.org, &a.partner) {
        (Some(o), Some(p)) => format!("{} avec {}", esc(&app.org_name(o)), esc(&app.org_name(p))),
        (Some(o), None) => format!("{} avec tous ses partenaires", esc(&app.org_name(o))),
        (None, Some(p)) => format!("toutes les organisations avec {}", esc(&app.org_name(p))),
        (None, None) => "toutes les organisations du hub".into(),
    };
    let mut body = format!(
        "<p>Bilan de {whose}, {} et les onze mois qui le précèdent. Aucune donnée personnelle : \
         des nombres de jeunes et d'échanges, des délais et des montants ; un chiffre qui porte \
         sur moins de cinq jeunes ou échanges est affiché « &lt; 5 » (secret statistique).</p>",
        month_fr(&a.mois)
    );
    // The filter (GET: the URL carries codes and a month, never a person).
    body.push_str("<form method=\"get\" action=\"/bilans\" class=\"filtre\"><fieldset><legend>Choisir le bilan</legend><div class=\"ligne\">");
    body.push_str("<div><label for=\"mois\">Mois</label><select id=\"mois\" name=\"mois\">");
    if let Ok(months) = bilan::months_ending(&bilan::month_of(chrono::Utc::now()), 24) {
        let mut months = months;
        if !months.contains(&a.mois) {
            months.push(a.mois.clone());
        }
        for m in months.iter().rev() {
            let sel = if *m == a.mois { " selected" } else { "" };
            let _ = write!(body, "<option value=\"{m}\"{sel}>{}</option>", month_fr(m));
        }
    }
    body.push_str("</select></div>");
    if !c.account.role.scoped() {
        let _ = write!(
            body,
            "<div><label for=\"organisation\">Organisation (code, vide pour toutes)</label>\
             <input id=\"organisation\" name=\"organisation\" value=\"{}\"></div>",
            esc(a.org.as_deref().unwrap_or(""))
        );
    }
    body.push_str("<div><label for=\"partenaire\">Partenaire</label><select id=\"partenaire\" name=\"partenaire\"><option value=\"\">Tous les partenaires</option>");
    for p in partners {
        let sel = if a.partner.as_deref() == Some(p) {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            body,
            "<option value=\"{}\"{sel}>{}</option>",
            esc(p),
            esc(&app.org_name(p))
        );
    }
    body.push_str("</select></div></div><button type=\"submit\" class=\"principal\">Afficher</button></fieldset></form>");

    // Exports of what is shown.
    let mut q = format!("mois={}", a.mois);
    if let Some(o) = &a.org
        && !c.account.role.scoped()
    {
        let _ = write!(q, "&amp;organisation={}", esc(o));
    }
    if let Some(p) = &a.partner {
        let _ = write!(q, "&amp;partenaire={}", esc(p));
    }
    let _ = write!(
        body,
        "<nav aria-label=\"Exporter le bilan\" class=\"exports\"><p>Exporter le bilan de {m} : \
         <a href=\"/bilans/export.csv?{q}\">tableur CSV (point-virgule)</a> · \
         <a href=\"/bilans/export.xlsx?{q}\">classeur XLSX</a> · \
         <a href=\"/bilans/bilan.pdf?{q}\">bilan d'une page (PDF)</a>. Sur douze mois : \
         <a href=\"/bilans/export.csv?{q}&amp;periode=12\">CSV</a> · \
         <a href=\"/bilans/export.xlsx?{q}&amp;periode=12\">XLSX</a>.</p></nav>",
        m = month_fr(&a.mois)
    );

    // The month's figures, section by section, with the definition read beside each.
    let _ = write!(body, "<h2>Les chiffres de {}</h2>", month_fr(&a.mois));
    let mut section = "";
    let mut open = false;
    for d in bilan::definitions() {
        if d.section != section {
            if open {
                body.push_str("</tbody></table></div>");
            }
            section = &d.section;
            open = true;
            let _ = write!(
                body,
                "<div class=\"tableau\"><table><caption>{}</caption><thead><tr>\
                 <th scope=\"col\">Indicateur</th><th scope=\"col\">Valeur</th>\
                 <th scope=\"col\">Définition</th></tr></thead><tbody>",
                esc(section)
            );
        }
        let figs: Vec<&Figure> = b.of(&d.id, &a.mois).collect();
        let value = if d.detail.is_some() {
            if figs.is_empty() {
                "aucun".to_owned()
            } else {
                let mut v = String::from("<ul class=\"detail\">");
                for f in &figs {
                    let _ = write!(v, "<li>{} : {}</li>", detail_fr(&d.id, &f.detail), shown(f));
                }
                v.push_str("</ul>");
                v
            }
        } else {
            figs.first().map_or("0".into(), |f| shown(f))
        };
        let _ = write!(
            body,
            "<tr><th scope=\"row\">{}</th><td>{value}</td><td class=\"aide\">{}</td></tr>",
            esc(&d.libelle),
            esc(&d.formule)
        );
    }
    if open {
        body.push_str("</tbody></table></div>");
    }

    // The trends: a chart, and its numbers in a table beside it.
    body.push_str("<h2>D'un mois à l'autre</h2>");
    for (i, (title, ids)) in CHARTS.iter().enumerate() {
        let series: Vec<Series<'_>> = ids
            .iter()
            .map(|id| Series {
                label: bilan::definition(id).map_or((*id).to_owned(), |d| d.libelle.clone()),
                values: b.mois.iter().map(|m| b.one(id, m)).collect(),
            })
            .collect();
        let _ = write!(
            body,
            "<section class=\"graphe\" aria-labelledby=\"g{i}\"><h3 id=\"g{i}\">{}</h3><div class=\"cote\"><figure>{}</figure>{}</div></section>",
            esc(title),
            chart(&format!("c{i}"), title, &b.mois, &series),
            chart_table(title, &b.mois, &series)
        );
    }
    body.push_str("<p class=\"aide\">Les mêmes chiffres : <code>passerelle bilan --month MOIS --org ORGANISATION --format csv|json|xlsx</code>, et la liste des définitions : <code>passerelle bilan --list</code>.</p>");
    body
}

/// Which file an export is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Csv,
    Xlsx,
    Pdf,
}

/// `GET /bilans/export.csv`, `/bilans/export.xlsx` and `/bilans/bilan.pdf`.
async fn export(
    app: WebApp,
    headers: HeaderMap,
    q: HashMap<String, String>,
    kind: Kind,
) -> Response {
    let Some(c) = app.current(&headers).await else {
        return to_login();
    };
    let Some(source) = app.bilans() else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let a = match asked(&app, &c, &q, &source).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    // The PDF is one month's page.
    let months = if kind == Kind::Pdf { 1 } else { a.months };
    let Ok(mois) = bilan::months_ending(&a.mois, months) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let scope = Scope {
        org: a.org.clone(),
        partner: a.partner.clone(),
    };
    let b = match source.bilan(&scope, &mois).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!("bilan failed: {e}");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let name = format!(
        "bilan-{}{}-{}{}",
        a.org.as_deref().unwrap_or("hub"),
        a.partner
            .as_deref()
            .map(|p| format!("-{p}"))
            .unwrap_or_default(),
        a.mois,
        if months > 1 { "-12mois" } else { "" }
    );
    // Codes and a month only: safe in a header.
    let name: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    let (mime, ext, bytes) = match kind {
        Kind::Csv => ("text/csv; charset=utf-8", "csv", csv(&b)),
        Kind::Pdf => (
            "application/pdf",
            "pdf",
            pdf(&b, &|o: &str| app.org_name(o)),
        ),
        Kind::Xlsx => match xlsx(&b) {
            Ok(bytes) => (
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "xlsx",
                bytes,
            ),
            Err(e) => {
                tracing::warn!("bilan workbook failed: {e}");
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
        },
    };
    (
        [
            (header::CONTENT_TYPE, mime.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.{ext}\""),
            ),
        ],
        bytes,
    )
        .into_response()
}

pub(super) async fn export_csv(
    State(app): State<WebApp>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    export(app, headers, q, Kind::Csv).await
}

pub(super) async fn export_xlsx(
    State(app): State<WebApp>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    export(app, headers, q, Kind::Xlsx).await
}

pub(super) async fn export_pdf(
    State(app): State<WebApp>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    export(app, headers, q, Kind::Pdf).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use passerelle_hub::TransferStatus;
    use passerelle_hub::bilan::{TransferFact, compute};

    fn sample() -> Bilan {
        let t = chrono::DateTime::parse_from_rfc3339("2026-11-03T10:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let mut facts = Vec::new();
        for i in 0..7u128 {
            facts.push(TransferFact {
                flow: "brsa-orientation".into(),
                sender: "CD059".into(),
                recipient: "59350S00".into(),
                hub_id: uuid::Uuid::from_u128(i),
                status: if i < 2 {
                    TransferStatus::Rejected
                } else {
                    TransferStatus::Applied
                },
                reason: (i < 2).then(|| "=DOSSIER_INCONNU: cause".into()),
                at: t,
            });
        }
        compute(
            &Scope {
                org: Some("59350S00".into()),
                partner: None,
            },
            &["2026-10".into(), "2026-11".into()],
            &facts,
            &[],
        )
    }

    #[test]
    fn csv_is_french_spreadsheet_ready_and_masks_small_counts() {
        let bytes = csv(&sample());
        assert!(bytes.starts_with("\u{feff}".as_bytes()));
        let text = String::from_utf8(bytes).unwrap();
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines[0].trim_start_matches('\u{feff}'), COLUMNS.join(";"));
        let orient = lines
            .iter()
            .find(|l| l.starts_with("2026-11;") && l.contains(";brsa_orientes;"))
            .unwrap();
        assert!(orient.ends_with(";;7;jeunes"), "{orient}");
        // Two refusals: masked; their reason, a would-be formula, neutralised.
        let refused = lines
            .iter()
            .find(|l| l.contains(";echanges_refuses;"))
            .unwrap();
        assert!(refused.contains(";'=DOSSIER_INCONNU;< 5;"), "{refused}");
        assert!(!text.contains(";2;echanges"), "{text}");
    }

    #[test]
    fn xlsx_is_a_workbook() {
        let bytes = xlsx(&sample()).unwrap();
        assert!(bytes.starts_with(b"PK"));
        assert!(bytes.len() > 2000);
    }

    #[test]
    fn charts_draw_no_masked_bar_and_say_their_title() {
        let b = sample();
        let series = vec![Series {
            label: "Refus".into(),
            values: b
                .mois
                .iter()
                .map(|m| b.of("echanges_refuses", m).next())
                .collect(),
        }];
        let svg = chart("x", "Refus", &b.mois, &series);
        assert!(svg.contains("<title id=\"x-t\">Refus</title>"));
        assert!(svg.contains("&lt;5"));
        // No bar for the masked month: the legend's square only.
        assert_eq!(svg.matches("<rect").count(), 1, "{svg}");
        let series = vec![Series {
            label: "Orientés".into(),
            values: b.mois.iter().map(|m| b.one("brsa_orientes", m)).collect(),
        }];
        let svg = chart("y", "Orientés", &b.mois, &series);
        // One bar for November (7), the October one of height zero, the legend.
        assert_eq!(svg.matches("<rect").count(), 3, "{svg}");
    }

    #[test]
    fn the_pdf_is_one_page_with_every_indicator_and_masks_small_counts() {
        let b = sample();
        let bytes = pdf(&b, &|o: &str| format!("org {o}"));
        assert!(bytes.starts_with(b"%PDF-"));
        let raw = String::from_utf8_lossy(&bytes).into_owned();
        let pages = raw.matches("/Type /Page").count() - raw.matches("/Type /Pages").count();
        assert_eq!(pages, 1, "one page");
        let text = super::super::pdf::text_of(&bytes).join("\n");
        assert!(text.contains("Bilan partagé de novembre 2026"), "{text}");
        assert!(text.contains("org 59350S00 et ses partenaires"), "{text}");
        assert!(text.contains("< 5"), "{text}");
        for d in bilan::definitions() {
            let start: String = d.libelle.chars().take(20).collect();
            assert!(text.contains(&start), "{} missing from {text}", d.id);
        }
    }

    #[test]
    fn axes_end_on_round_numbers() {
        assert_eq!(nice_max(199.0), 200.0);
        assert_eq!(nice_max(7.0), 8.0);
        assert!((nice_max(0.3) - 0.4).abs() < 1e-9);
        assert_eq!(nice_max(0.0), 4.0);
    }

    #[test]
    fn figures_read_in_french() {
        let b = sample();
        assert_eq!(shown(b.one("brsa_orientes", "2026-11").unwrap()), "7");
        assert_eq!(month_fr("2026-12"), "décembre 2026");
        assert_eq!(grouped(1234567), "1\u{202f}234\u{202f}567");
    }
}
