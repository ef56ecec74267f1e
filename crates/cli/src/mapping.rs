//! `passerelle mapping draft` and `passerelle mapping check`: onboarding a
//! département's list. `draft` reads the header and a sample of rows and writes a
//! first mapping (`schemas/mappings/README.md`); `check` runs a list through a
//! mapping and reports per column, then shows the first records masked. Neither ever
//! prints a cell's value: counts, reasons, line numbers and shapes only.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use passerelle_box::mapping::{ColumnUse, Mapping, header_key};
use passerelle_connector::csv::{CsvReader, Row};
use passerelle_connector::xlsx::XlsxReader;
use passerelle_model::{Email, Nir, Telephone};

/// Arguments of `passerelle mapping`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// Write a draft mapping for a list (CSV or XLSX) from its header and a sample.
    Draft {
        /// The list.
        #[arg(long)]
        file: PathBuf,
        /// The XLSX sheet (default: the first).
        #[arg(long)]
        sheet: Option<String>,
        /// Where to write the mapping (default: stdout).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run a list through a mapping: a per-column report, then the first records masked.
    Check {
        #[arg(long)]
        file: PathBuf,
        #[arg(long)]
        mapping: PathBuf,
        /// How many records to show (masked).
        #[arg(long, default_value_t = 3)]
        show: usize,
    },
}

/// How many rows `draft` looks at.
const SAMPLE: usize = 500;

pub async fn run(_globals: &crate::Globals, args: Args) -> anyhow::Result<ExitCode> {
    tokio::task::spawn_blocking(move || match args.command {
        Sub::Draft { file, sheet, out } => draft_cmd(&file, sheet.as_deref(), out.as_deref()),
        Sub::Check {
            file,
            mapping,
            show,
        } => check_cmd(&file, &mapping, show),
    })
    .await
    .context("the mapping task stopped")?
}

/// A table read raw: its header and rows as text.
struct Raw {
    header: Vec<String>,
    rows: Box<dyn Iterator<Item = Row>>,
}

fn is_xlsx(path: &Path) -> anyhow::Result<bool> {
    let mut head = [0u8; 4];
    let n = File::open(path)
        .with_context(|| format!("cannot open {}", path.display()))?
        .read(&mut head)?;
    Ok(n == 4 && &head == b"PK\x03\x04")
}

fn open_raw(path: &Path, sheet: Option<&str>) -> anyhow::Result<Raw> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    if is_xlsx(path)? {
        let r = XlsxReader::new(BufReader::new(file), sheet)
            .with_context(|| format!("{} is not a readable workbook", path.display()))?;
        let header = r.header().to_vec();
        Ok(Raw {
            header,
            rows: Box::new(r.filter_map(Result::ok)),
        })
    } else {
        let mut r = CsvReader::new(file)
            .with_context(|| format!("{} is not a readable list", path.display()))?;
        r.accept_one_short(true);
        let header = r.header().to_vec();
        Ok(Raw {
            header,
            rows: Box::new(r.filter_map(Result::ok)),
        })
    }
}

/// Header spellings seen in the field, keyed by `header_key` without a trailing `*`.
fn known_header(key: &str) -> Option<&'static str> {
    const DATE: &str = "{ to = \"etat_civil.date_naissance\", formats = [FORMATS] }";
    let key = key.trim_end_matches('*').trim();
    Some(match key {
        "n° caf"
        | "numéro allocataire"
        | "numero allocataire"
        | "numero caf"
        | "n° allocataire"
        | "matricule"
        | "numéro allocataire caf/msa"
        | "numero allocataire caf/msa"
        | "num allocataire"
        | "numéro caf" => {
            "{ to = \"identifiants.caf.numero_allocataire\", normalise = \"allocataire\" }"
        }
        "nir" | "numéro de sécurité sociale" | "numero securite sociale" | "n° ss" => {
            "\"identifiants.nir\""
        }
        "id iodas"
        | "code individu iodas"
        | "identifiant dans le si"
        | "id solis"
        | "identifiant solis"
        | "identifiant iodas" => "\"identifiants.solis\"",
        "numero demande rsa" | "numéro demande rsa" | "n° demande rsa" => {
            "\"identifiants.numero_demande_rsa\""
        }
        "id pôle emploi"
        | "identifiant pôle emploi"
        | "identifiant pole emploi"
        | "identifiant france travail"
        | "id france travail" => "\"identifiants.france_travail_ide\"",
        "civilité" | "civilite" | "type personne" | "civ." => "\"etat_civil.civilite\"",
        "nom" | "nom bénéficiaire" | "nom usage" | "nom d'usage" | "nom responsable dossier" => {
            "\"etat_civil.nom_usage\""
        }
        "nom de naissance" | "nom naissance" => "\"etat_civil.nom_naissance\"",
        "prénom"
        | "prenom"
        | "prénoms"
        | "prenoms"
        | "prénom bénéficiaire"
        | "prenom responsable dossier" => "\"etat_civil.prenoms\"",
        "date de naissance" | "date naissance" | "date_naissance" | "né(e) le" => DATE,
        "adresse" | "adresse ligne 1" => "\"contact.adresse.voie\"",
        "complément adresse" | "adresse (complément)" | "complément" | "complement" => {
            "\"contact.adresse.complement\""
        }
        "code postal" | "cp" | "code_postal" => "\"contact.adresse.code_postal\"",
        "ville" | "commune" => "\"contact.adresse.commune\"",
        "cp ville" | "code postal ville" => {
            "{ split = \" \", into = [\"contact.adresse.code_postal\", \"contact.adresse.commune\"] }"
        }
        "téléphone"
        | "telephone"
        | "n° téléphones"
        | "n° téléphone"
        | "tél."
        | "portable"
        | "numero telephone dossier"
        | "numero telephone 2 dossier" => {
            "{ to = \"contact.telephones\", normalise = \"telephone\" }"
        }
        "email"
        | "e-mail"
        | "courriel"
        | "mail"
        | "adresses mails"
        | "adresse mail"
        | "adresse electronique dossier" => "\"contact.email\"",
        "rôle" | "role" | "role personne" | "qualité" => "\"rsa.role\"",
        "etat droit" | "état droit" | "etat du droit" => "\"rsa.etat_droit\"",
        "orientation" | "type d'orientation" => "\"orientation.type\"",
        "structure référente" | "structure" | "organisme référent" => {
            "\"orientation.organisme\""
        }
        "référent" | "referent" | "nom du référent" => "\"orientation.referent.nom\"",
        "référents" | "referents" | "accompagnateurs" | "mail référent" | "mail referent" => {
            "\"orientation.referent.email\""
        }
        _ => return None,
    })
}

/// Date formats a draft may propose, with a value they must read.
const DATE_FORMATS: &[&str] = &["%d/%m/%Y", "%d-%m-%Y", "%Y-%m-%d", "%Y-%m-%d %H:%M:%S%.f"];

/// What a column's sample values look like.
#[derive(Debug, Default)]
struct Shape {
    seen: usize,
    nir: usize,
    email: usize,
    phone: usize,
    postcode: usize,
    postcode_commune: usize,
    null: usize,
    dates: BTreeMap<&'static str, usize>,
    serial: usize,
}

fn shape_of(values: &[&str]) -> Shape {
    let mut s = Shape::default();
    for v in values.iter().map(|v| v.trim()).filter(|v| !v.is_empty()) {
        s.seen += 1;
        if v.eq_ignore_ascii_case("NULL") {
            s.null += 1;
            continue;
        }
        let digits = v.bytes().all(|b| b.is_ascii_digit());
        if Nir::parse(v).is_ok() {
            s.nir += 1;
        }
        if Email::parse(v).is_ok() {
            s.email += 1;
        }
        let restored =
            passerelle_box::brsa::telephone_candidates(v).all(|p| Telephone::parse(&p).is_ok());
        // Digits with separators, or 9 or 10 bare digits, that read as French numbers.
        let phone_like = if digits {
            v.len() == 9 || v.len() == 10
        } else {
            v.bytes().any(|b| b.is_ascii_digit())
        };
        if restored && phone_like {
            s.phone += 1;
        }
        if digits && v.len() == 5 {
            s.postcode += 1;
        }
        if v.len() > 6
            && v.as_bytes()[..5].iter().all(u8::is_ascii_digit)
            && v.as_bytes()[5] == b' '
        {
            s.postcode_commune += 1;
        }
        for f in DATE_FORMATS {
            if passerelle_box::mapping::parse_with_format(v, f).is_some() {
                *s.dates.entry(f).or_default() += 1;
            }
        }
        if digits
            && (v.len() == 5)
            && v.parse::<f64>()
                .ok()
                .and_then(passerelle_connector::xlsx::excel_serial_date)
                .is_some()
        {
            s.serial += 1;
        }
    }
    s
}

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

/// Writes a draft mapping; returns it and the notes for stderr.
pub fn draft(
    header: &[String],
    sample: &[Row],
    sheet: Option<&str>,
    name: &str,
) -> (String, Vec<String>) {
    let mut bound: Vec<(String, String, String)> = Vec::new();
    let mut ignored: Vec<(String, String)> = Vec::new();
    let mut any_null = false;
    let mut used_targets: Vec<String> = Vec::new();
    for (i, h) in header.iter().enumerate() {
        let values: Vec<&str> = sample
            .iter()
            .filter_map(|r| r.fields.get(i).map(String::as_str))
            .collect();
        let shape = shape_of(&values);
        any_null |= shape.null > 0;
        let real = shape.seen - shape.null;
        let most = |n: usize| real > 0 && n * 10 >= real * 8;
        let formats = || {
            let mut f: Vec<String> = shape
                .dates
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(f, _)| toml_str(f))
                .collect();
            if f.is_empty() {
                f.push(toml_str("%d/%m/%Y"));
                f.push(toml_str("%Y-%m-%d"));
            }
            f.join(", ")
        };
        let (rule, why) = match known_header(&header_key(h)) {
            Some(r) => (Some(r.replace("FORMATS", &formats())), "header".to_owned()),
            None if most(shape.nir) => (Some("\"identifiants.nir\"".to_owned()), "values look like NIRs".to_owned()),
            None if most(shape.email) => (Some("\"contact.email\"".to_owned()), "values look like e-mails".to_owned()),
            None if most(shape.postcode_commune) => (
                Some("{ split = \" \", into = [\"contact.adresse.code_postal\", \"contact.adresse.commune\"] }".to_owned()),
                "values look like a postcode and a commune".to_owned(),
            ),
            None if most(shape.postcode) => (Some("\"contact.adresse.code_postal\"".to_owned()), "values look like postcodes".to_owned()),
            None if most(shape.phone) => (
                Some("{ to = \"contact.telephones\", normalise = \"telephone\" }".to_owned()),
                "values look like phone numbers".to_owned(),
            ),
            None if most(shape.dates.values().copied().max().unwrap_or(0)) => (None, "values look like dates: map to a date target if it is one".to_owned()),
            None => (None, if real == 0 { "empty in the sample".to_owned() } else { "not recognised".to_owned() }),
        };
        // A referent column holding e-mails is the referent's e-mail.
        let rule = match rule {
            Some(r) if r.contains("orientation.referent.nom") && most(shape.email) => {
                Some("\"orientation.referent.email\"".to_owned())
            }
            other => other,
        };
        match rule {
            Some(r) => {
                // One column per target (phones aside): a second candidate is left for
                // the data officer to decide.
                let target = r
                    .split('"')
                    .find(|p| p.contains('.') && !p.contains('%'))
                    .unwrap_or_default()
                    .to_owned();
                if target != "contact.telephones" && used_targets.contains(&target) {
                    ignored.push((
                        h.clone(),
                        format!("also looks like {target}, already bound"),
                    ));
                } else {
                    used_targets.push(target);
                    if r.contains("split") {
                        used_targets.push("contact.adresse.commune".to_owned());
                    }
                    bound.push((h.clone(), r, why));
                }
            }
            None => ignored.push((h.clone(), why)),
        }
    }
    let mut out = String::new();
    out.push_str(&format!("# Draft written by `passerelle mapping draft`: check every line, then\n# run `passerelle mapping check`. See schemas/mappings/README.md.\nname = {}\n", toml_str(name)));
    if let Some(s) = sheet {
        out.push_str(&format!("sheet = {}\n", toml_str(s)));
    }
    if any_null {
        out.push_str("null = [\"NULL\"]\n");
    }
    out.push_str("ignore = [\n");
    for (h, why) in &ignored {
        out.push_str(&format!("    {}, # {why}\n", toml_str(h)));
    }
    out.push_str("]\n\n[columns]\n");
    for (h, r, why) in &bound {
        out.push_str(
            &format!("{} = {r} # from the {why}\n", toml_str(h))
                .replace("# from the values", "# the values"),
        );
    }
    let mut notes = Vec::new();
    let has = |t: &str| used_targets.iter().any(|u| u == t);
    if ![
        "identifiants.caf.numero_allocataire",
        "identifiants.nir",
        "identifiants.solis",
        "etat_civil.nom_usage",
    ]
    .iter()
    .any(|t| has(t))
    {
        notes.push("required: no identifying column found (caf number, NIR, the département's id or a name)".to_owned());
    }
    for (t, why) in [
        (
            "identifiants.solis",
            "without the département's own id, record ids are digests of the identity",
        ),
        (
            "contact.adresse.code_postal",
            "without a postcode, records cannot be routed to a Mission Locale",
        ),
        (
            "etat_civil.date_naissance",
            "without a birth date, matching is weaker",
        ),
    ] {
        if !has(t) {
            notes.push(format!("missing {t}: {why}"));
        }
    }
    (out, notes)
}

fn draft_cmd(file: &Path, sheet: Option<&str>, out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let raw = open_raw(file, sheet)?;
    let sample: Vec<Row> = raw.rows.take(SAMPLE).collect();
    let name = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "draft".to_owned());
    let (text, notes) = draft(&raw.header, &sample, sheet, &name);
    // The draft must load: a draft that does not is a bug here, not the user's.
    Mapping::from_toml(&text, "draft").context("the draft does not load (please report)")?;
    match out {
        Some(p) => {
            std::fs::write(p, &text).with_context(|| format!("cannot write {}", p.display()))?
        }
        None => std::io::stdout().write_all(text.as_bytes())?,
    }
    let mut err = std::io::stderr();
    for n in notes {
        writeln!(err, "note: {n}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A value's shape, never its content: letters `x`, digits `9`, the rest kept.
pub fn mask(v: &str) -> String {
    v.chars()
        .map(|c| {
            if c.is_alphabetic() {
                'x'
            } else if c.is_ascii_digit() {
                '9'
            } else {
                c
            }
        })
        .collect()
}

/// Masks every string of a record but codes (`schema`, systems, enum values).
fn mask_json(v: &mut serde_json::Value, path: &str) {
    const CLEAR: &[&str] = &[
        "schema",
        "sources.system",
        "sources.organisation",
        "identifiants.caf.organisme",
        "etat_civil.civilite",
        "rsa.role",
        "rsa.etat_droit",
        "orientation.type",
        "orientation.organisme.type",
    ];
    match v {
        serde_json::Value::String(s) if !CLEAR.contains(&path) => *s = mask(s),
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| mask_json(x, path)),
        serde_json::Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                mask_json(x, &p);
            }
        }
        _ => {}
    }
}

#[derive(Default)]
struct FieldTally {
    dropped: usize,
    rejected: usize,
    /// reason → (count, first lines)
    reasons: BTreeMap<String, (usize, Vec<u64>)>,
}

fn check_cmd(file: &Path, mapping_path: &Path, show: usize) -> anyhow::Result<ExitCode> {
    let mapping = Mapping::load(mapping_path)?;
    let raw = open_raw(file, mapping.sheet.as_deref())?;
    let header = raw.header.clone();
    let mut seen = vec![0usize; header.len()];
    for row in raw.rows {
        for (i, f) in row.fields.iter().enumerate() {
            if !f.trim().is_empty() && i < seen.len() {
                seen[i] += 1;
            }
        }
    }
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let reader = passerelle_box::BrsaReader::open(File::open(file)?, &name, &mapping)?;
    let binding = mapping.bind(&header)?;
    let mut fields: BTreeMap<String, FieldTally> = BTreeMap::new();
    let (mut rows, mut records) = (0usize, 0usize);
    let mut shown = Vec::new();
    for row in reader {
        let row = row?;
        rows += 1;
        let rejects = row.outcome.as_ref().err().cloned().unwrap_or_default();
        for (issue, rejected) in rejects
            .iter()
            .map(|i| (i, true))
            .chain(row.warnings.iter().map(|i| (i, false)))
        {
            let t = fields.entry(issue.field.clone()).or_default();
            if rejected {
                t.rejected += 1;
            } else {
                t.dropped += 1;
            }
            let (n, lines) = t.reasons.entry(issue.reason.clone()).or_default();
            *n += 1;
            if lines.len() < 5 {
                lines.push(row.line);
            }
        }
        if let Ok(j) = &row.outcome {
            records += 1;
            if shown.len() < show {
                let mut v = serde_json::to_value(j)?;
                mask_json(&mut v, "");
                shown.push((row.line, v));
            }
        }
    }
    let mut o = std::io::stdout().lock();
    writeln!(
        o,
        "{name}: {rows} rows, {records} records, {} rejected",
        rows - records
    )?;
    writeln!(o, "column | bound to | values seen | dropped | rejected")?;
    for (i, h) in header.iter().enumerate() {
        let targets: Vec<&str> = match &binding.uses[i] {
            None => vec![],
            Some(u) => u.targets().iter().map(|t| t.path()).collect(),
        };
        let bound = match &binding.uses[i] {
            None => "ignored".to_owned(),
            Some(ColumnUse::Split { .. }) => format!("split into {}", targets.join(" + ")),
            Some(ColumnUse::Joined(t)) => format!("joined into {}", t.path()),
            Some(ColumnUse::One(t)) => t.path().to_owned(),
        };
        let (d, r) = targets.iter().fold((0, 0), |(d, r), t| {
            fields
                .get(*t)
                .map_or((d, r), |f| (d + f.dropped, r + f.rejected))
        });
        writeln!(
            o,
            "{} | {bound} | {} | {d} | {r}",
            h.split_whitespace().collect::<Vec<_>>().join(" "),
            seen[i]
        )?;
    }
    if !fields.is_empty() {
        writeln!(o, "\nreasons (field: reason — rows, first lines):")?;
        for (field, t) in &fields {
            for (reason, (n, lines)) in &t.reasons {
                let lines: Vec<String> = lines.iter().map(u64::to_string).collect();
                writeln!(o, "  {field}: {reason} — {n}, lines {}", lines.join(", "))?;
            }
        }
    }
    if !shown.is_empty() {
        writeln!(
            o,
            "\nfirst records as the hub would send them (values masked):"
        )?;
        for (line, v) in shown {
            writeln!(o, "  line {line}: {v}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(lines: &[&str]) -> Vec<Row> {
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| Row {
                line: i as u64 + 2,
                fields: l.split(';').map(str::to_owned).collect(),
            })
            .collect()
    }

    #[test]
    fn a_draft_binds_what_it_recognises_and_loads() {
        let header: Vec<String> = "Civilité;Prénom bénéficiaire;Nom bénéficiaire;Adresses Mails;N° Téléphones;Date de Naissance;CP Ville;N° CAF;ID Iodas;Couleur;Portable perso;Code"
            .split(';')
            .map(str::to_owned)
            .collect();
        let sample = rows(&[
            "Monsieur;Paul;Durand;p@example.com;0663603510;16/02/1952;59402 Nice;CAF0027004992;IODAS1;bleu;620022002;NULL",
            "Madame;Inès;Dupont;i@example.com;0680307435;22-09-1987;17874 Lyon;CAF0878018651;IODAS2;vert;0612345678;NULL",
        ]);
        let (text, notes) = draft(&header, &sample, None, "t");
        let m = Mapping::from_toml(&text, "t").unwrap_or_else(|e| panic!("{e}\n{text}"));
        let b = m.bind(&header).unwrap();
        use passerelle_box::mapping::Target;
        assert_eq!(b.targets[6], Some(Target::CodePostal), "{text}");
        assert_eq!(b.targets[8], Some(Target::Solis));
        assert_eq!(b.targets[9], None, "{text}");
        // Recognised by the shape of its values.
        assert_eq!(b.targets[10], Some(Target::Telephone), "{text}");
        assert!(text.contains("null = [\"NULL\"]"));
        assert!(text.contains("%d-%m-%Y"), "{text}");
        // Never a value in the draft.
        for v in ["Paul", "Durand", "IODAS1", "bleu", "0663603510", "59402"] {
            assert!(!text.contains(v), "{v} in {text}");
        }
        assert!(notes.iter().all(|n| !n.contains("required")), "{notes:?}");
        let (_, notes) = draft(&header[9..10], &sample, None, "t");
        assert!(notes.iter().any(|n| n.starts_with("required")), "{notes:?}");
    }

    #[test]
    fn masks_keep_shapes_only() {
        assert_eq!(mask("Inès Dupont"), "xxxx xxxxxx");
        assert_eq!(mask("+33612345678"), "+99999999999");
        let mut v = serde_json::json!({"schema": "passerelle.jeune/1", "rsa": {"role": "DEM"}, "etat_civil": {"prenoms": ["Paul"]}});
        mask_json(&mut v, "");
        assert_eq!(v["schema"], "passerelle.jeune/1");
        assert_eq!(v["rsa"]["role"], "DEM");
        assert_eq!(v["etat_civil"]["prenoms"][0], "xxxx");
    }
}
