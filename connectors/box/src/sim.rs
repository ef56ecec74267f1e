//! The département's side of a box, for tests and demos: drops `BRSA_LISTE` and
//! `OF_SUIVI` files into `{partenaire}/depot/` following the protocol (some bad on
//! request), then reads what the hub wrote into `retour/` and checks its ACK files.
//! Everything is deterministic from the seed.

use std::collections::BTreeMap;
use std::io::Read;

use passerelle_connector::ConnectorError;
use passerelle_connector::csv::CsvReader;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::folder::BoxFolder;
use crate::of::{OF_SUIVI_HEADER, push_raw_csv_line as push_csv_line};
use crate::protocol::{ack_name, parse_sha256_file, sha256_hex};

/// A fault the simulator can play.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// A file whose `.sha256` does not match.
    Checksum,
    /// A file whose sentinel is not written yet.
    NoSentinel,
    /// The first list dropped again under a new name.
    Duplicate,
    /// Rows with the wrong number of columns and an impossible date.
    Malformed,
    /// One list as an `.xlsx` workbook.
    Xlsx,
}

impl std::str::FromStr for Fault {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim() {
            "checksum" => Self::Checksum,
            "no-sentinel" => Self::NoSentinel,
            "duplicate" => Self::Duplicate,
            "malformed" => Self::Malformed,
            "xlsx" => Self::Xlsx,
            other => {
                return Err(format!(
                    "unknown fault {other} (checksum, no-sentinel, duplicate, malformed, xlsx)"
                ));
            }
        })
    }
}

/// What the simulated département is.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub partenaire: String,
    /// Three-character département (`059`).
    pub dept: String,
    /// The sender code in file names (`CD059`).
    pub emetteur: String,
    pub seed: u64,
    /// Young people per `BRSA_LISTE` file.
    pub jeunes: usize,
    pub faults: Vec<Fault>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            partenaire: "59350S00".to_owned(),
            dept: "059".to_owned(),
            emetteur: "CD059".to_owned(),
            seed: 1,
            jeunes: 20,
            faults: Vec::new(),
        }
    }
}

/// What the hub's ACK for a dropped file must say.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// One row per data row: these lines OK, these lines KO.
    Rows { ok: Vec<u64>, ko: Vec<u64> },
    /// `0;KO;FICHIER_REFUSE;…`.
    Refused,
    /// `0;OK;DOUBLON;…`.
    Duplicate,
    /// No ACK at all (the file is not complete).
    NoAck,
}

/// One file the simulator dropped, and what it expects back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Dropped {
    pub name: String,
    pub expect: Expect,
}

/// One synthetic BRSA beneficiary.
#[derive(Debug, Clone)]
pub struct Person {
    pub caf: String,
    pub role: &'static str,
    pub civilite: &'static str,
    pub nom: String,
    pub prenoms: String,
    pub naissance: (u32, u32, i32),
    pub nir: Option<String>,
    pub adresse: String,
    pub code_postal: &'static str,
    pub ville: &'static str,
    pub telephone: Option<String>,
    pub email: Option<String>,
    pub etat: u8,
    pub dd: &'static str,
    pub orientation: &'static str,
    pub structure: &'static str,
    pub referent: Option<String>,
}

const NOMS: &[&str] = &[
    "Lefèvre",
    "Benali",
    "Dupont",
    "Nguyen",
    "Martin",
    "Lemaire",
    "Caron",
    "Dubois",
    "Mercier",
    "Fournier",
    "Haddad",
    "Rousseau",
    "Leroy",
    "Boucher",
    "François",
    "Gaillard",
    "Œuvray",
    "Da Silva",
    "N'Diaye",
    "Vasseur",
];
const PRENOMS_F: &[&str] = &[
    "Léa",
    "Chloé",
    "Inès",
    "Zoé",
    "Maëlys",
    "Anaïs",
    "Noémie",
    "Héloïse",
    "Yasmine",
    "Océane",
];
const PRENOMS_M: &[&str] = &[
    "Karim",
    "Théo",
    "Jérémy",
    "Noé",
    "Mathéo",
    "Loïc",
    "Rayan",
    "Anthony",
    "Benoît",
    "Célestin",
];
const VOIES: &[&str] = &[
    "rue des Tanneurs",
    "allée des Peupliers",
    "boulevard de la Liberté",
    "place du Général-de-Gaulle",
    "rue de l'Église",
    "chemin des Prés",
];
const VILLES: &[(&str, &str)] = &[
    ("59000", "Lille"),
    ("59100", "Roubaix"),
    ("59200", "Tourcoing"),
    ("59300", "Valenciennes"),
    ("59140", "Dunkerque"),
];
const ROLES: &[&str] = &["DEM", "Demandeur", "CJT", "CONJOINT/CONCUBIN/PACSE"];
const ORIENTATIONS: &[&str] = &["SOCIAL", "SOCIO_PRO", "PRO", "Sociale", "Professionnelle"];
const STRUCTURES: &[&str] = &["59350S00", "59512S00", "59599S00", "CCAS Roubaix"];

/// Appends the NIR key (97 − n mod 97).
fn nir_with_key(body: u64) -> String {
    format!("{body:013}{:02}", 97 - body % 97)
}

/// A population of `n` people, the same for the same seed.
pub fn population(seed: u64, n: usize) -> Vec<Person> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let female = rng.random_bool(0.5);
            let pick =
                |rng: &mut StdRng, list: &[&'static str]| list[rng.random_range(0..list.len())];
            let prenoms = if female {
                let mut p = pick(&mut rng, PRENOMS_F).to_owned();
                if rng.random_bool(0.3) {
                    p = format!("{p} {}", pick(&mut rng, PRENOMS_F));
                }
                p
            } else {
                pick(&mut rng, PRENOMS_M).to_owned()
            };
            let year = rng.random_range(1999..=2008);
            let month = rng.random_range(1..=12);
            let day = rng.random_range(1..=28);
            let (cp, ville) = VILLES[rng.random_range(0..VILLES.len())];
            let nom = pick(&mut rng, NOMS).to_owned();
            let body = u64::from(if female { 2u8 } else { 1 }) * 1_000_000_000_000
                + (year as u64 % 100) * 10_000_000_000
                + u64::from(month) * 100_000_000
                + 59_350_000
                + rng.random_range(1..999u64);
            Person {
                caf: format!("{:07}", 1_000_000 + i as u64 * 7919 % 8_999_999),
                role: pick(&mut rng, ROLES),
                civilite: if female { "MME" } else { "MR" },
                email: rng.random_bool(0.5).then(|| {
                    format!(
                        "{}.{}{}@example.org",
                        prenoms.split(' ').next().unwrap_or("x"),
                        nom,
                        i
                    )
                    .to_lowercase()
                    .replace([' ', '\''], "")
                }),
                nom,
                prenoms,
                naissance: (day, month, year),
                nir: rng.random_bool(0.6).then(|| nir_with_key(body)),
                adresse: format!("{} {}", rng.random_range(1..120), pick(&mut rng, VOIES)),
                code_postal: cp,
                ville,
                telephone: rng.random_bool(0.6).then(|| {
                    format!(
                        "06 {:02} {:02} {:02} {:02}",
                        rng.random_range(0..100),
                        rng.random_range(0..100),
                        rng.random_range(0..100),
                        rng.random_range(0..100)
                    )
                }),
                etat: rng.random_range(0..=6),
                dd: pick(&mut rng, &["O", "N", "Oui", "Non", "1", "0"]),
                orientation: pick(&mut rng, ORIENTATIONS),
                structure: pick(&mut rng, STRUCTURES),
                referent: rng
                    .random_bool(0.5)
                    .then(|| format!("{} {}", pick(&mut rng, PRENOMS_F), pick(&mut rng, NOMS))),
            }
        })
        .collect()
}

/// The default `BRSA_LISTE` header.
pub const BRSA_HEADER: &[&str] = &[
    "N° CAF",
    "Rôle",
    "Civilité",
    "Nom",
    "Nom de naissance",
    "Prénom",
    "Date de naissance",
    "NIR",
    "Adresse",
    "Code postal",
    "Ville",
    "Téléphone",
    "Email",
    "Date ouverture droits",
    "Etat droit",
    "Soumis D&D",
    "Orientation",
    "Structure référente",
    "Référent",
];

fn person_fields(p: &Person) -> Vec<String> {
    let (d, m, y) = p.naissance;
    vec![
        p.caf.clone(),
        p.role.to_owned(),
        p.civilite.to_owned(),
        p.nom.to_uppercase(),
        String::new(),
        p.prenoms.clone(),
        format!("{d:02}/{m:02}/{y}"),
        p.nir.clone().unwrap_or_default(),
        p.adresse.clone(),
        p.code_postal.to_owned(),
        p.ville.to_owned(),
        p.telephone.clone().unwrap_or_default(),
        p.email.clone().unwrap_or_default(),
        "01/09/2025".to_owned(),
        p.etat.to_string(),
        p.dd.to_owned(),
        p.orientation.to_owned(),
        p.structure.to_owned(),
        p.referent.clone().unwrap_or_default(),
    ]
}

/// A `BRSA_LISTE` CSV the way départements write them: windows-1252, CRLF, `;`.
/// With `malformed`, two bad rows are added: one short row and one impossible date.
/// Returns the bytes and the expected OK and KO lines.
pub fn brsa_csv(people: &[Person], malformed: bool) -> (Vec<u8>, Vec<u64>, Vec<u64>) {
    let mut text = String::new();
    push_csv_line(&mut text, BRSA_HEADER);
    let (mut ok, mut ko) = (Vec::new(), Vec::new());
    let mut line = 1u64;
    for (i, p) in people.iter().enumerate() {
        line += 1;
        push_csv_line(&mut text, &person_fields(p));
        ok.push(line);
        if malformed && i == 0 {
            line += 1;
            push_csv_line(&mut text, &["1111111", "DEM", "MME", "Court"]);
            ko.push(line);
            line += 1;
            let mut f = person_fields(p);
            f[0] = "2222222".to_owned();
            f[6] = "31/02/2004".to_owned();
            push_csv_line(&mut text, &f);
            ko.push(line);
        }
    }
    // A trailing empty line, as exports often have.
    text.push_str("\r\n");
    let (bytes, _, _) = encoding_rs::WINDOWS_1252.encode(&text);
    (bytes.into_owned(), ok, ko)
}

/// The same list as an `.xlsx` workbook (sheet `Liste BRSA`): the CAF number as a
/// number, the birth date as a real date cell, the opening date as a bare serial.
pub fn brsa_xlsx(people: &[Person]) -> Result<(Vec<u8>, Vec<u64>), ConnectorError> {
    use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};
    let err = |e: rust_xlsxwriter::XlsxError| ConnectorError::Invalid {
        location: "simulated xlsx".to_owned(),
        reason: e.to_string(),
    };
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name("Liste BRSA").map_err(err)?;
    let date_format = Format::new().set_num_format("dd/mm/yyyy");
    for (c, h) in BRSA_HEADER.iter().enumerate() {
        sheet.write_string(0, c as u16, *h).map_err(err)?;
    }
    let mut ok = Vec::new();
    for (i, p) in people.iter().enumerate() {
        let r = i as u32 + 1;
        let f = person_fields(p);
        for (c, v) in f.iter().enumerate() {
            let c = c as u16;
            match c {
                0 => {
                    sheet
                        .write_number(r, c, v.parse::<f64>().unwrap_or_default())
                        .map_err(err)?;
                }
                6 => {
                    let (d, m, y) = p.naissance;
                    let dt = ExcelDateTime::from_ymd(y as u16, m as u8, d as u8).map_err(err)?;
                    sheet
                        .write_datetime_with_format(r, c, &dt, &date_format)
                        .map_err(err)?;
                }
                13 => {
                    // 2025-09-01 typed as a bare serial number.
                    sheet.write_number(r, c, 45901.0).map_err(err)?;
                }
                _ if v.is_empty() => {}
                _ => {
                    sheet.write_string(r, c, v).map_err(err)?;
                }
            }
        }
        ok.push(u64::from(r) + 1);
    }
    Ok((book.save_to_buffer().map_err(err)?, ok))
}

/// An `OF_SUIVI` file answering references `refs`.
pub fn of_suivi_csv(refs: &[String], seed: u64) -> (Vec<u8>, Vec<u64>) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x0f5);
    let mut text = String::from(crate::of::BOM);
    push_csv_line(&mut text, OF_SUIVI_HEADER);
    let mut ok = Vec::new();
    for (i, r) in refs.iter().enumerate() {
        let (statut, suite) = [
            ("SOLUTION_TROUVEE", "ENTREE_FORMATION"),
            ("INJOIGNABLE", "RELANCE_COURRIER"),
            ("REFUS", ""),
            ("EN_REGLE", "SCOLARISE"),
        ][rng.random_range(0..4)];
        push_csv_line(&mut text, &[r.as_str(), statut, suite, "20/11/2026"]);
        ok.push(i as u64 + 2);
    }
    (text.into_bytes(), ok)
}

/// How a file is dropped.
#[derive(Debug, Clone, Copy, Default)]
pub struct DropOptions {
    /// Leave out the sentinel (the upload is "still running").
    pub no_sentinel: bool,
    /// Write a `.sha256` that does not match.
    pub bad_checksum: bool,
}

/// Drops a file the département's way: data, checksum, then sentinel.
pub fn drop_file(
    folder: &dyn BoxFolder,
    partenaire: &str,
    name: &str,
    bytes: &[u8],
    opts: DropOptions,
) -> Result<(), ConnectorError> {
    let dir = format!("{partenaire}/depot");
    folder.create_dir_all(&dir)?;
    folder.create_dir_all(&format!("{partenaire}/retour"))?;
    folder.write(&format!("{dir}/{name}"), bytes)?;
    let digest = if opts.bad_checksum {
        sha256_hex(b"something else")
    } else {
        sha256_hex(bytes)
    };
    folder.write(
        &format!("{dir}/{name}.sha256"),
        format!("{digest}  {name}\n").as_bytes(),
    )?;
    if !opts.no_sentinel {
        folder.write(&format!("{dir}/{name}.ok"), b"")?;
    }
    Ok(())
}

/// The département: drops a round of files and checks the hub's answers.
#[derive(Debug)]
pub struct Departement<'a> {
    pub folder: &'a dyn BoxFolder,
    pub config: SimConfig,
}

impl Departement<'_> {
    fn name(&self, flux: &str, second: u32, ext: &str) -> String {
        format!(
            "{flux}_{}_{}_20261121{:06}.{ext}",
            self.config.dept,
            self.config.emetteur,
            230_000 + second
        )
    }

    /// Drops one round: a `BRSA_LISTE`, an `OF_SUIVI`, and one file per fault.
    pub fn play(&self) -> Result<Vec<Dropped>, ConnectorError> {
        let c = &self.config;
        let has = |f: Fault| c.faults.contains(&f);
        let people = population(c.seed, c.jeunes);
        let mut dropped = Vec::new();
        let p = c.partenaire.as_str();

        let (bytes, ok, ko) = brsa_csv(&people, has(Fault::Malformed));
        let main = self.name("BRSA_LISTE", 0, "csv");
        drop_file(self.folder, p, &main, &bytes, DropOptions::default())?;
        dropped.push(Dropped {
            name: main,
            expect: Expect::Rows { ok, ko },
        });

        let refs: Vec<String> = (1..=c.jeunes.min(5))
            .map(|i| format!("OF-{:04}", i))
            .collect();
        let (suivi, ok) = of_suivi_csv(&refs, c.seed);
        let name = self.name("OF_SUIVI", 1, "csv");
        drop_file(self.folder, p, &name, &suivi, DropOptions::default())?;
        dropped.push(Dropped {
            name,
            expect: Expect::Rows { ok, ko: vec![] },
        });

        if has(Fault::Duplicate) {
            let name = self.name("BRSA_LISTE", 2, "csv");
            drop_file(self.folder, p, &name, &bytes, DropOptions::default())?;
            dropped.push(Dropped {
                name,
                expect: Expect::Duplicate,
            });
        }
        if has(Fault::Checksum) {
            let (bytes, _, _) = brsa_csv(&population(c.seed + 1, 3), false);
            let name = self.name("BRSA_LISTE", 3, "csv");
            let opts = DropOptions {
                bad_checksum: true,
                ..DropOptions::default()
            };
            drop_file(self.folder, p, &name, &bytes, opts)?;
            dropped.push(Dropped {
                name,
                expect: Expect::Refused,
            });
        }
        if has(Fault::NoSentinel) {
            let (bytes, _, _) = brsa_csv(&population(c.seed + 2, 3), false);
            let name = self.name("BRSA_LISTE", 4, "csv");
            let opts = DropOptions {
                no_sentinel: true,
                ..DropOptions::default()
            };
            drop_file(self.folder, p, &name, &bytes, opts)?;
            dropped.push(Dropped {
                name,
                expect: Expect::NoAck,
            });
        }
        if has(Fault::Xlsx) {
            let (bytes, ok) = brsa_xlsx(&population(c.seed + 3, c.jeunes.clamp(1, 50)))?;
            let name = self.name("BRSA_LISTE", 5, "xlsx");
            drop_file(self.folder, p, &name, &bytes, DropOptions::default())?;
            dropped.push(Dropped {
                name,
                expect: Expect::Rows { ok, ko: vec![] },
            });
        }
        Ok(dropped)
    }

    /// Reads the complete `JEUNES_OF` files the hub wrote into `retour/` (checking
    /// their checksum and header), removes them as a département does once read, and
    /// answers their references with one `OF_SUIVI` file. Returns the references
    /// answered and the problems found.
    pub fn answer_jeunes_of(&self) -> Result<(Vec<String>, Vec<String>), ConnectorError> {
        let retour = format!("{}/retour", self.config.partenaire);
        let names = self.folder.list(&retour)?;
        let (mut refs, mut problems) = (Vec::new(), Vec::new());
        let mut files: Vec<&String> = names
            .iter()
            .filter(|n| n.starts_with("JEUNES_OF_") && n.ends_with(".csv"))
            .filter(|n| names.contains(&format!("{n}.ok")))
            .collect();
        files.sort();
        for name in files {
            let path = format!("{retour}/{name}");
            let mut bytes = Vec::new();
            self.folder
                .open(&path)?
                .read_to_end(&mut bytes)
                .map_err(|e| ConnectorError::io(name.clone(), e))?;
            let mut sum = String::new();
            self.folder
                .open(&format!("{path}.sha256"))?
                .read_to_string(&mut sum)
                .map_err(|e| ConnectorError::io(name.clone(), e))?;
            if parse_sha256_file(&sum).as_deref() != Some(sha256_hex(&bytes).as_str()) {
                problems.push(format!("{name}: checksum does not match"));
                continue;
            }
            match CsvReader::new(&bytes[..]) {
                Ok(r) if r.header() == crate::of::JEUNES_OF_HEADER => {
                    for row in r {
                        match row {
                            Ok(row) => refs.push(row.fields[0].clone()),
                            Err(e) => problems.push(format!("{name}: {e}")),
                        }
                    }
                }
                _ => problems.push(format!("{name}: not a JEUNES_OF file")),
            }
            for p in [format!("{path}.ok"), format!("{path}.sha256"), path] {
                self.folder.remove(&p)?;
            }
        }
        if !refs.is_empty() {
            let (bytes, _) = of_suivi_csv(&refs, self.config.seed);
            let name = self.name("OF_SUIVI", 10, "csv");
            drop_file(
                self.folder,
                &self.config.partenaire,
                &name,
                &bytes,
                DropOptions::default(),
            )?;
        }
        Ok((refs, problems))
    }

    /// Reads the hub's ACK files in `retour/` and lists every way they differ from
    /// what the dropped files call for (empty: all good).
    pub fn check_acks(&self, dropped: &[Dropped]) -> Result<Vec<String>, ConnectorError> {
        let retour = format!("{}/retour", self.config.partenaire);
        let names = self.folder.list(&retour)?;
        let mut problems = Vec::new();
        for d in dropped {
            let ack = ack_name(&d.name);
            let present = names.contains(&ack);
            if d.expect == Expect::NoAck {
                if present {
                    problems.push(format!("{ack}: the hub acknowledged an incomplete file"));
                }
                continue;
            }
            if !present || !names.contains(&format!("{ack}.ok")) {
                problems.push(format!("{ack}: missing or without its sentinel"));
                continue;
            }
            let mut bytes = Vec::new();
            self.folder
                .open(&format!("{retour}/{ack}"))?
                .read_to_end(&mut bytes)
                .map_err(|e| ConnectorError::io(ack.clone(), e))?;
            let mut sum = String::new();
            self.folder
                .open(&format!("{retour}/{ack}.sha256"))?
                .read_to_string(&mut sum)
                .map_err(|e| ConnectorError::io(ack.clone(), e))?;
            if parse_sha256_file(&sum).as_deref() != Some(sha256_hex(&bytes).as_str()) {
                problems.push(format!("{ack}: checksum does not match"));
            }
            let rows = match CsvReader::new(&bytes[..]) {
                Ok(r) if r.header() == ["ligne", "statut", "code_erreur", "message"] => r
                    .filter_map(Result::ok)
                    .map(|row| row.fields)
                    .collect::<Vec<_>>(),
                _ => {
                    problems.push(format!("{ack}: not an ACK file"));
                    continue;
                }
            };
            match &d.expect {
                Expect::Rows { ok, ko } => {
                    let mut status: BTreeMap<u64, String> = BTreeMap::new();
                    for r in &rows {
                        status.insert(r[0].parse().unwrap_or(0), r[1].clone());
                    }
                    let expected: BTreeMap<u64, String> = ok
                        .iter()
                        .map(|l| (*l, "OK".to_owned()))
                        .chain(ko.iter().map(|l| (*l, "KO".to_owned())))
                        .collect();
                    if status != expected || rows.len() != expected.len() {
                        problems.push(format!(
                            "{ack}: expected {} OK and {} KO rows, got {:?}",
                            ok.len(),
                            ko.len(),
                            status
                        ));
                    }
                }
                Expect::Refused => {
                    if rows.len() != 1 || rows[0][..3] != ["0", "KO", "FICHIER_REFUSE"] {
                        problems.push(format!("{ack}: expected a FICHIER_REFUSE row"));
                    }
                }
                Expect::Duplicate => {
                    if rows.len() != 1 || rows[0][..3] != ["0", "OK", "DOUBLON"] {
                        problems.push(format!("{ack}: expected a DOUBLON row"));
                    }
                }
                Expect::NoAck => {}
            }
        }
        Ok(problems)
    }
}

/// Where the simulator keeps what it dropped, so that a later `--check` run knows
/// what to expect (outside the box tree, which the hub lists).
pub fn manifest_path(dir: &std::path::Path, partenaire: &str) -> std::path::PathBuf {
    dir.join(format!(".sim-box-{partenaire}.json"))
}

/// Saves the dropped files and their expectations.
pub fn save_manifest(
    dir: &std::path::Path,
    partenaire: &str,
    dropped: &[Dropped],
) -> Result<(), ConnectorError> {
    let path = manifest_path(dir, partenaire);
    let json = serde_json::to_vec_pretty(dropped).unwrap_or_default();
    std::fs::write(&path, json).map_err(|e| ConnectorError::io(path.display().to_string(), e))
}

/// Loads what an earlier run dropped.
pub fn load_manifest(
    dir: &std::path::Path,
    partenaire: &str,
) -> Result<Vec<Dropped>, ConnectorError> {
    let path = manifest_path(dir, partenaire);
    let bytes =
        std::fs::read(&path).map_err(|e| ConnectorError::io(path.display().to_string(), e))?;
    serde_json::from_slice(&bytes).map_err(|e| ConnectorError::Invalid {
        location: path.display().to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_valid_nirs() {
        let a = population(7, 30);
        let b = population(7, 30);
        assert_eq!(
            a.iter().map(|p| &p.nom).collect::<Vec<_>>(),
            b.iter().map(|p| &p.nom).collect::<Vec<_>>()
        );
        for p in &a {
            if let Some(n) = &p.nir {
                passerelle_model::Nir::parse(n).unwrap();
            }
        }
        let (bytes, ok, ko) = brsa_csv(&a, true);
        assert_eq!((ok.len(), ko.len()), (30, 2));
        assert_eq!(
            passerelle_connector::encoding::detect(&bytes),
            passerelle_connector::encoding::Detected::Windows1252
        );
    }

    #[test]
    fn faults_parse() {
        assert_eq!("no-sentinel".parse::<Fault>().unwrap(), Fault::NoSentinel);
        assert!("nope".parse::<Fault>().is_err());
    }
}
