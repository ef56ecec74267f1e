//! The SOLIS simulator: writes realistic exports deterministically from a seed
//! (streamed to disk, so millions of records fit), and answers import files with the
//! ACK files SOLIS would write.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use passerelle_connector::ConnectorError;
use passerelle_connector::feed::{DONE_DIR, REFUSED_DIR};
use passerelle_connector::xml::{XmlElement, attr_of, escape, open_file};
use passerelle_model::{Date, Departement, Nir};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use crate::export::ExportFlux;
use crate::import::{ack_file_name, write_atomically};

/// Family names with accents, apostrophes, hyphens and particles.
pub const NOMS: &[&str] = &[
    "Martin",
    "Bernard",
    "Lefèvre",
    "N'Diaye",
    "Le Goff",
    "de la Fontaine",
    "Œillet",
    "Dubois",
    "Thomas",
    "Petit",
    "Durand",
    "Leroy",
    "Moreau",
    "Laurent",
    "Garcia",
    "Benali",
    "Diallo",
    "Traoré",
    "Nguyen",
    "Da Silva",
    "Ben Saïd",
    "D'Angelo",
    "Saint-Martin",
    "Le Bihan",
    "Ménard",
    "Bérenger",
    "Cœurdacier",
    "Fournier",
    "Girard",
    "André",
    "Mercier",
    "François",
    "Lambert",
    "Bonnet",
    "Rousseau",
    "Faure",
    "Giraud",
    "Müller",
    "Chevalier",
    "Brun",
];
/// Given names, feminine.
pub const PRENOMS_F: &[&str] = &[
    "Léa",
    "Chloé",
    "Inès",
    "Manon",
    "Zoé",
    "Camille",
    "Maëlle",
    "Anaïs",
    "Éloïse",
    "Aïcha",
    "Noémie",
    "Héloïse",
    "Marie-Ève",
    "Fatoumata",
    "Océane",
    "Clémence",
    "Anne-Sophie",
    "Lou",
];
/// Given names, masculine.
pub const PRENOMS_M: &[&str] = &[
    "Lucas",
    "Hugo",
    "Théo",
    "Nathan",
    "Mathéo",
    "Karim",
    "Jean-Baptiste",
    "Noël",
    "Loïc",
    "Yanis",
    "Raphaël",
    "Gaëtan",
    "Aurélien",
    "Moussa",
    "Jérémy",
    "François",
    "Jean",
    "Élie",
];
/// Birth places: (département part of the NIR, INSEE code, commune), Corsica included.
pub const COMMUNES: &[(&str, &str, &str)] = &[
    ("59", "59350", "Lille"),
    ("59", "59512", "Roubaix"),
    ("59", "59599", "Tourcoing"),
    ("62", "62041", "Arras"),
    ("75", "75056", "Paris"),
    ("69", "69123", "Lyon"),
    ("13", "13055", "Marseille"),
    ("2A", "2A004", "Ajaccio"),
    ("2B", "2B033", "Bastia"),
    ("93", "93066", "Saint-Denis"),
];
const VOIES: &[&str] = &[
    "rue des Tanneurs",
    "allée des Peupliers",
    "boulevard de l'Égalité",
    "place du Général de Gaulle",
    "rue Jean-Jaurès",
    "avenue du Président Hoover",
    "chemin des Œillets",
    "rue d'Arras",
];
const OBSERVATIONS: &[&str] = &[
    "Suivi régulier, pas d’élément particulier",
    "Rendez-vous manqué ; relance prévue",
    "Aide de 150 € accordée — à revoir",
    "Sœur aînée suivie par l’ASE",
];

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub jeunes: u64,
    pub seed: u64,
    /// Share of records made invalid (bad NIR key, impossible date, unknown code).
    pub invalid_share: f64,
    /// Share of records given a bad telephone (dropped with a warning, not rejected).
    pub bad_phone_share: f64,
    pub flux: ExportFlux,
    pub departement: Departement,
    pub date: NaiveDate,
    /// Write a file that ends early (for truncation tests).
    pub truncate: bool,
    /// The Missions Locales orientations to an ML go to, spread evenly as a
    /// département's are; empty: all to `59350S00`.
    pub mls: Vec<String>,
}

impl SimOptions {
    pub fn new(jeunes: u64, seed: u64) -> Self {
        Self {
            jeunes,
            seed,
            invalid_share: 0.0,
            bad_phone_share: 0.0,
            flux: ExportFlux::Brsa,
            departement: Departement::parse("059").expect("a valid département"),
            date: NaiveDate::from_ymd_opt(2026, 11, 21).expect("a valid date"),
            truncate: false,
            mls: Vec::new(),
        }
    }
}

/// What a simulation wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimSummary {
    pub path: PathBuf,
    pub written: u64,
    /// Records made invalid on purpose (they must be rejected).
    pub invalid: u64,
    /// Records with a bad telephone (they go through with a warning).
    pub bad_phones: u64,
}

/// The export's file name: `SOLIS_EXPORT_{FLUX}_{DEPT}_{YYYYMMDD}.xml`.
pub fn export_file_name(flux: ExportFlux, dept: &Departement, date: NaiveDate) -> String {
    format!(
        "SOLIS_EXPORT_{}_{}_{}.xml",
        flux.as_str(),
        dept,
        date.format("%Y%m%d")
    )
}

/// A NIR body (13 characters) for a person, and its 15-character form.
pub fn nir_for(rng: &mut StdRng, female: bool, birth: NaiveDate, dept: &str) -> (String, String) {
    use chrono::Datelike;
    let commune: u32 = rng.random_range(1..990);
    let order: u32 = rng.random_range(1..999);
    let body = format!(
        "{}{:02}{:02}{}{:03}{:03}",
        if female { 2 } else { 1 },
        birth.year() % 100,
        birth.month(),
        dept,
        commune,
        order
    );
    let full = Nir::parse(&body)
        .map(|n| n.as_str().to_owned())
        .unwrap_or_default();
    (body, full)
}

/// A NIR whose key is wrong on purpose.
pub fn bad_key(full: &str) -> String {
    let key: u32 = full[13..].parse().unwrap_or(0);
    format!("{}{:02}", &full[..13], (key % 97) + 1)
}

fn pick<'a>(rng: &mut StdRng, list: &'a [&'a str]) -> &'a str {
    list.choose(rng).copied().unwrap_or("")
}

/// A telephone written as people do.
pub fn phone(rng: &mut StdRng) -> String {
    let digits: Vec<u32> = (0..8).map(|_| rng.random_range(0..10)).collect();
    let d = |i: usize| digits[i];
    let mobile = if rng.random_bool(0.5) { 6 } else { 7 };
    match rng.random_range(0..3) {
        0 => format!(
            "0{mobile} {}{} {}{} {}{} {}{}",
            d(0),
            d(1),
            d(2),
            d(3),
            d(4),
            d(5),
            d(6),
            d(7)
        ),
        1 => format!(
            "0{mobile}.{}{}.{}{}.{}{}.{}{}",
            d(0),
            d(1),
            d(2),
            d(3),
            d(4),
            d(5),
            d(6),
            d(7)
        ),
        _ => format!(
            "+33 {mobile} {}{} {}{} {}{} {}{}",
            d(0),
            d(1),
            d(2),
            d(3),
            d(4),
            d(5),
            d(6),
            d(7)
        ),
    }
}

fn ascii_fold(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            'à' | 'â' | 'ä' => Some('a'),
            'é' | 'è' | 'ê' | 'ë' | 'É' => Some('e'),
            'î' | 'ï' => Some('i'),
            'ô' | 'ö' => Some('o'),
            'ù' | 'û' | 'ü' => Some('u'),
            'ç' => Some('c'),
            'œ' | 'Œ' => Some('o'),
            c if c.is_ascii_alphanumeric() => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

fn date_between(rng: &mut StdRng, from: NaiveDate, to: NaiveDate) -> NaiveDate {
    let span = (to - from).num_days().max(1);
    from + chrono::Duration::days(rng.random_range(0..span))
}

/// Writes one export into `dir` (temporary name, then renamed), streaming records.
pub fn write_export(dir: &Path, opts: &SimOptions) -> Result<SimSummary, ConnectorError> {
    let name = export_file_name(opts.flux, &opts.departement, opts.date);
    let path = dir.join(&name);
    let mut summary = SimSummary {
        path: path.clone(),
        written: 0,
        invalid: 0,
        bad_phones: 0,
    };
    write_atomically(&path, |w| {
        let mut rng = StdRng::seed_from_u64(opts.seed);
        let head = format!(
            "<?xml version=\"1.0\" encoding=\"windows-1252\"?>\n<ExportSolis versionSolis=\"12.4\" departement=\"{}\" flux=\"{}\" dateExport=\"{}T23:30:00\" nbIndividus=\"{}\">\n",
            opts.departement,
            opts.flux.as_str(),
            opts.date.format("%Y-%m-%d"),
            opts.jeunes
        );
        w.write_all(head.as_bytes())?;
        let mut text = String::with_capacity(2048);
        // A truncated file stops in the middle of a record, about two thirds in.
        let stop = opts.truncate.then(|| (opts.jeunes * 2 / 3).max(1));
        for i in 0..opts.jeunes {
            text.clear();
            let (invalid, bad_phone) = individu(&mut rng, i, opts, &mut text);
            summary.invalid += u64::from(invalid);
            summary.bad_phones += u64::from(bad_phone);
            let (bytes, _, _) = encoding_rs::WINDOWS_1252.encode(&text);
            if stop == Some(i) {
                w.write_all(&bytes[..bytes.len() / 2])?;
                return Ok(());
            }
            w.write_all(&bytes)?;
            summary.written += 1;
        }
        w.write_all(b"</ExportSolis>\n")?;
        Ok(())
    })?;
    Ok(summary)
}

/// The idSolis of the simulated record number `i` (stable, so imports can name it).
pub fn id_solis(flux: ExportFlux, i: u64) -> String {
    match flux {
        ExportFlux::Brsa => format!("IND{:07}", i + 1),
        ExportFlux::Ase => format!("ASE{:07}", i + 1),
    }
}

/// Appends one `Individu`; returns whether it was made invalid and whether it got a
/// bad telephone.
fn individu(rng: &mut StdRng, i: u64, opts: &SimOptions, out: &mut String) -> (bool, bool) {
    use std::fmt::Write as _;
    let female = rng.random_bool(0.5);
    let nom = pick(rng, NOMS);
    let nom_naissance = if rng.random_bool(0.7) {
        nom.to_uppercase()
    } else {
        nom.to_owned()
    };
    let prenom1 = pick(rng, if female { PRENOMS_F } else { PRENOMS_M });
    let prenoms = if rng.random_bool(0.3) {
        format!(
            "{prenom1} {}",
            pick(rng, if female { PRENOMS_F } else { PRENOMS_M })
        )
    } else {
        prenom1.to_owned()
    };
    let (from, to) = match opts.flux {
        ExportFlux::Brsa => ((1999, 1, 1), (2008, 12, 31)),
        ExportFlux::Ase => ((2005, 1, 1), (2009, 12, 31)),
    };
    let ymd = |(y, m, d): (i32, u32, u32)| NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default();
    let birth = date_between(rng, ymd(from), ymd(to));
    let (dept, insee, commune) = *COMMUNES.choose(rng).unwrap_or(&COMMUNES[0]);
    let (body, full) = nir_for(rng, female, birth, dept);
    let invalid = rng.random_bool(opts.invalid_share.clamp(0.0, 1.0));
    let bad_phone = rng.random_bool(opts.bad_phone_share.clamp(0.0, 1.0));
    let defect = if invalid { rng.random_range(0..3) } else { 9 };
    let mut nir = if rng.random_bool(0.5) {
        body
    } else {
        full.clone()
    };
    let mut date_naissance = Date::from(birth).to_french();
    let mut civilite = if female { "MME" } else { "MR" }.to_owned();
    match defect {
        0 => nir = bad_key(&full),
        1 => date_naissance = format!("31/02/{}", chrono::Datelike::year(&birth)),
        2 => civilite = "MX".to_owned(),
        _ => {}
    }
    let e = |s: &str| escape(s).into_owned();
    let _ = writeln!(
        out,
        "  <Individu idSolis=\"{}\" dateMaj=\"{}T16:02:11\">\n    <EtatCivil>\n      <Civilite>{civilite}</Civilite>\n      <NomNaissance>{}</NomNaissance>\n      <NomUsage/>\n      <Prenoms>{}</Prenoms>\n      <DateNaissance>{date_naissance}</DateNaissance>\n      <CommuneNaissance codeInsee=\"{insee}\">{}</CommuneNaissance>\n      <Nir>{nir}</Nir>\n    </EtatCivil>",
        id_solis(opts.flux, i),
        opts.date.format("%Y-%m-%d"),
        e(&nom_naissance),
        e(&prenoms),
        e(commune),
    );
    let (lieu_insee, cp, ville) = match opts.departement.as_str() {
        "02A" => ("2A004", "20000", "Ajaccio"),
        "02B" => ("2B033", "20200", "Bastia"),
        _ => ("59350", "59000", "Lille"),
    };
    let complement = if rng.random_bool(0.2) { "Bât. C" } else { "" };
    let _ = writeln!(
        out,
        "    <Adresse numero=\"{}\" voie=\"{}\" complement=\"{}\" codePostal=\"{cp}\" commune=\"{ville}\" codeInsee=\"{lieu_insee}\"/>",
        rng.random_range(1..200),
        e(pick(rng, VOIES)),
        e(complement)
    );
    out.push_str("    <Contact>\n");
    let tel = if bad_phone {
        "12 34".to_owned()
    } else {
        phone(rng)
    };
    let _ = writeln!(out, "      <Telephone type=\"portable\">{tel}</Telephone>");
    if rng.random_bool(0.6) {
        let _ = writeln!(
            out,
            "      <Courriel>{}.{}@example.org</Courriel>",
            ascii_fold(prenom1),
            ascii_fold(nom)
        );
    }
    out.push_str("    </Contact>\n");
    match opts.flux {
        ExportFlux::Brsa => {
            let ouverture = date_between(rng, ymd((2024, 1, 1)), opts.date);
            let _ = writeln!(
                out,
                "    <DossierRSA organisme=\"{}\" numeroAllocataire=\"{:07}\" numeroDemande=\"{}{:09}\" role=\"{}\" etatDroit=\"{}\" soumisDroitsDevoirs=\"{}\" dateOuverture=\"{}\"/>",
                if rng.random_bool(0.9) { "CAF" } else { "MSA" },
                rng.random_range(1..10_000_000u32),
                &opts.departement.as_str()[1..],
                rng.random_range(0..1_000_000_000u32),
                if rng.random_bool(0.8) { "DEM" } else { "CJT" },
                rng.random_range(0..7),
                if rng.random_bool(0.9) { "O" } else { "N" },
                Date::from(ouverture).to_french()
            );
            if rng.random_bool(0.8) {
                let (t, org) = *[("SOCIAL", "CD"), ("SOCIO_PRO", "ML"), ("PRO", "FT")]
                    .choose(rng)
                    .unwrap_or(&("SOCIO_PRO", "ML"));
                // By record number, not by the generator: the same people as before.
                let code = if opts.mls.is_empty() {
                    "59350S00"
                } else {
                    opts.mls[(i as usize) % opts.mls.len()].as_str()
                };
                let _ = writeln!(
                    out,
                    "    <Orientation type=\"{t}\" date=\"{}\">\n      <Organisme type=\"{org}\" code=\"{code}\">Mission Locale de Lille</Organisme>\n      <Referent nom=\"Claire Durand\" courriel=\"c.durand@ml-lille.example.org\"/>\n    </Orientation>",
                    Date::from(date_between(rng, ouverture, opts.date)).to_french()
                );
            }
        }
        ExportFlux::Ase => {
            let majorite = chrono::Datelike::with_year(&birth, chrono::Datelike::year(&birth) + 18)
                .unwrap_or(birth);
            let statut = *["CONFIE", "CONTRAT_JEUNE_MAJEUR", "SORTI"]
                .choose(rng)
                .unwrap_or(&"CONFIE");
            let _ = writeln!(
                out,
                "    <PriseEnChargeASE statut=\"{statut}\" dateMajorite=\"{}\" mna=\"{}\">\n      <Referent nom=\"Sophie Lambert\" courriel=\"s.lambert@cd59.example.fr\"/>\n    </PriseEnChargeASE>",
                Date::from(majorite).to_french(),
                if rng.random_bool(0.1) { "O" } else { "N" }
            );
        }
    }
    if rng.random_bool(0.3) {
        let _ = writeln!(
            out,
            "    <Observations>{}</Observations>",
            e(pick(rng, OBSERVATIONS))
        );
    }
    let _ = writeln!(
        out,
        "    <Sante rqth=\"{}\"/>\n  </Individu>",
        if rng.random_bool(0.05) { "O" } else { "N" }
    );
    (invalid, bad_phone)
}

/// The idSolis known to the simulated SOLIS: those of every export in `dir` and in its
/// `traites/` (exports the hub has read whole).
pub fn known_ids(dir: &Path) -> Result<HashSet<String>, ConnectorError> {
    let mut ids = HashSet::new();
    for folder in [dir.to_owned(), dir.join(DONE_DIR)] {
        if folder != dir && !folder.is_dir() {
            continue;
        }
        let what = || folder.display().to_string();
        for entry in std::fs::read_dir(&folder).map_err(|e| ConnectorError::io(what(), e))? {
            let entry = entry.map_err(|e| ConnectorError::io(what(), e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !(name.starts_with("SOLIS_EXPORT_") && name.ends_with(".xml")) {
                continue;
            }
            let file = entry.path().display().to_string();
            let (_, mut stream) = open_file(&entry.path()).map_err(|e| e.into_refusal(&file))?;
            // A truncated export still teaches the ids it holds.
            while let Ok(Some(child)) = stream.next_child_with(|_| false) {
                if let Some(id) = child.element.attr("idSolis") {
                    ids.insert(id.trim().to_owned());
                }
            }
        }
    }
    Ok(ids)
}

/// Faults the simulated SOLIS injects when answering imports. Each is decided per file
/// from the seed and the file's name, so answering again decides the same.
#[derive(Debug, Clone, Default)]
pub struct AnswerOptions {
    pub seed: u64,
    /// Folder of the exports whose idSolis SOLIS knows; the import folder when `None`.
    pub exports_dir: Option<PathBuf>,
    /// Share of otherwise valid elements answered KO (`REFUS_METIER`).
    pub ko_share: f64,
    /// Share of import files refused whole (`statut="KO"`, no elements).
    pub refuse_share: f64,
    /// Share of import files never answered.
    pub missing_share: f64,
    /// Share of import files answered with a garbled ACK (cut in the middle).
    pub garbled_share: f64,
}

/// What `answer_imports_with` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answered {
    /// ACK files written (garbled ones included).
    pub acks: Vec<PathBuf>,
    /// Imports refused whole.
    pub refused: Vec<String>,
    /// Imports left unanswered on purpose.
    pub missing: Vec<String>,
    /// Imports answered with a garbled ACK.
    pub garbled: Vec<String>,
    /// Elements answered KO by the injected share, in readable ACKs.
    pub injected_ko: u64,
}

/// FNV-1a: a stable per-file seed (std's hasher may change between releases).
fn fnv(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Answers every import file in `dir` that has no ACK yet with the ACK SOLIS would
/// write: unknown idSolis or invalid data make an element KO. Returns the ACK paths.
pub fn answer_imports(dir: &Path) -> Result<Vec<PathBuf>, ConnectorError> {
    Ok(answer_imports_with(dir, &AnswerOptions::default())?.acks)
}

/// `answer_imports` with faults injected on demand (see `AnswerOptions`). An import
/// whose ACK was set aside (`traites/`, `refuses/`) counts as answered.
pub fn answer_imports_with(dir: &Path, opts: &AnswerOptions) -> Result<Answered, ConnectorError> {
    let known = known_ids(opts.exports_dir.as_deref().unwrap_or(dir))?;
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| ConnectorError::io(dir.display().to_string(), e))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("SOLIS_IMPORT_") && n.ends_with(".xml"))
        .collect();
    names.sort();
    let mut done = Answered::default();
    for name in names {
        let ack_name = ack_file_name(&name);
        let ack = dir.join(&ack_name);
        if [dir.to_owned(), dir.join(DONE_DIR), dir.join(REFUSED_DIR)]
            .iter()
            .any(|d| d.join(&ack_name).exists())
        {
            continue;
        }
        let mut rng = StdRng::seed_from_u64(opts.seed ^ fnv(&name));
        if rng.random_bool(opts.missing_share.clamp(0.0, 1.0)) {
            done.missing.push(name);
            continue;
        }
        let refuse = rng.random_bool(opts.refuse_share.clamp(0.0, 1.0));
        let garble = rng.random_bool(opts.garbled_share.clamp(0.0, 1.0));
        let (mut body, injected) = answer_one(
            &dir.join(&name),
            &name,
            &known,
            &mut rng,
            opts.ko_share,
            refuse,
        );
        if garble {
            // Its answers are lost with it: they count as neither.
            body.truncate(body.len() * 2 / 3);
            done.garbled.push(name.clone());
        } else if refuse {
            done.refused.push(name.clone());
        } else {
            done.injected_ko += injected;
        }
        write_atomically(&ack, |w| w.write_all(&body))?;
        done.acks.push(ack);
    }
    Ok(done)
}

fn answer_one(
    path: &Path,
    name: &str,
    known: &HashSet<String>,
    rng: &mut StdRng,
    ko_share: f64,
    refuse: bool,
) -> (Vec<u8>, u64) {
    let mut elements = String::new();
    let mut file_ok = !refuse;
    let mut count = 0u64;
    let mut injected = 0u64;
    let mut announced = None;
    match open_file(path) {
        Err(_) => file_ok = false,
        Ok((_, mut stream)) => {
            match stream.root() {
                Ok(root) if root.name == "ImportSolis" => {
                    announced =
                        attr_of(Some(root), "nbElements").and_then(|n| n.parse::<u64>().ok());
                }
                _ => file_ok = false,
            }
            while file_ok {
                match stream.next_child() {
                    Ok(Some(child)) => {
                        count += 1;
                        let mut answer = check_element(&child.element, known);
                        if answer.0 == "OK" && rng.random_bool(ko_share.clamp(0.0, 1.0)) {
                            injected += 1;
                            answer = ("KO", "REFUS_METIER", "refusé par le gestionnaire");
                        }
                        let (statut, code, message) = answer;
                        elements.push_str(&format!(
                            "  <Element referenceExterne=\"{}\" statut=\"{statut}\" code=\"{code}\" message=\"{}\"/>\n",
                            escape(attr_of(Some(&child.element), "referenceExterne").unwrap_or("")),
                            escape(message)
                        ));
                    }
                    Ok(None) => break,
                    Err(_) => file_ok = false,
                }
            }
        }
    }
    if announced != Some(count) {
        file_ok = false;
    }
    let statut = if file_ok { "OK" } else { "KO" };
    if !file_ok {
        elements.clear();
        injected = 0;
    }
    let text = format!(
        "<?xml version=\"1.0\" encoding=\"windows-1252\"?>\n<AckSolis fichier=\"{}\" statut=\"{statut}\">\n{elements}</AckSolis>\n",
        escape(name)
    );
    (
        encoding_rs::WINDOWS_1252.encode(&text).0.into_owned(),
        injected,
    )
}

/// Checks one `Suivi` or `Signalement` as SOLIS would.
fn check_element(
    el: &XmlElement,
    known: &HashSet<String>,
) -> (&'static str, &'static str, &'static str) {
    const KO_DATA: (&str, &str, &str) = ("KO", "DONNEE_INVALIDE", "donnée invalide");
    if attr_of(Some(el), "referenceExterne").is_none() {
        return ("KO", "REFERENCE_ABSENTE", "referenceExterne absente");
    }
    let date_ok = |v: Option<&str>| v.is_none_or(|d| d.contains('/') && Date::parse(d).is_ok());
    match el.name.as_str() {
        "Suivi" => {
            match attr_of(Some(el), "idSolis") {
                Some(id) if known.contains(id) => {}
                _ => return ("KO", "ID_INCONNU", "idSolis inconnu"),
            }
            for c in &el.children {
                let dates_ok = ["dateDebut", "dateFinPrevue", "dateFin"]
                    .iter()
                    .all(|a| date_ok(attr_of(Some(c), a)));
                let code_ok = match c.name.as_str() {
                    "Accompagnement" => matches!(
                        attr_of(Some(c), "dispositif"),
                        Some("CEJ" | "PACEA" | "CER" | "PPAE" | "AUTRE")
                    ),
                    "Situation" => {
                        attr_of(Some(c), "categorie").is_some_and(|v| {
                            passerelle_model::SituationCategorie::from_source(v).is_ok()
                        }) && attr_of(Some(c), "etat")
                            .is_none_or(|v| passerelle_model::SituationEtat::from_source(v).is_ok())
                    }
                    _ => false,
                };
                if !dates_ok || !code_ok {
                    return KO_DATA;
                }
            }
            ("OK", "", "")
        }
        "Signalement" => {
            if let Some(id) = attr_of(Some(el), "idSolis")
                && !known.contains(id)
            {
                return ("KO", "ID_INCONNU", "idSolis inconnu");
            }
            let ok = attr_of(Some(el), "nom").is_some()
                && attr_of(Some(el), "dateNaissance").is_some()
                && date_ok(attr_of(Some(el), "dateNaissance"))
                && date_ok(attr_of(Some(el), "dateSignalement"))
                && attr_of(Some(el), "statut").is_some_and(|s| {
                    passerelle_model::ObligationFormationStatut::from_source(s).is_ok()
                });
            if ok { ("OK", "", "") } else { KO_DATA }
        }
        _ => ("KO", "ELEMENT_INCONNU", "élément inconnu"),
    }
}
