//! The CNAF simulator: writes realistic VRSB0801 bénéficiaire files deterministically
//! from a seed, streamed to disk (households are never held all in memory).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate};
use passerelle_connector::ConnectorError;
use passerelle_connector::xml::escape;
use passerelle_model::{Date, Departement, Nir};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

/// Family names with accents, apostrophes, hyphens and particles (CNAF writes them
/// upper-cased).
pub const NOMS: &[&str] = &[
    "MARTIN",
    "BERNARD",
    "LEFÈVRE",
    "N'DIAYE",
    "LE GOFF",
    "DE LA FONTAINE",
    "ŒILLET",
    "DUBOIS",
    "THOMAS",
    "PETIT",
    "DURAND",
    "LEROY",
    "MOREAU",
    "LAURENT",
    "GARCIA",
    "BENALI",
    "DIALLO",
    "TRAORÉ",
    "NGUYEN",
    "DA SILVA",
    "BEN SAÏD",
    "D'ANGELO",
    "SAINT-MARTIN",
    "LE BIHAN",
    "MÉNARD",
    "BÉRENGER",
    "FOURNIER",
    "GIRARD",
    "ANDRÉ",
    "MERCIER",
    "FRANÇOIS",
    "ROUSSEAU",
];
const PRENOMS_F: &[&str] = &[
    "LÉA",
    "CHLOÉ",
    "INÈS",
    "MANON",
    "ZOÉ",
    "CAMILLE",
    "MAËLLE",
    "ANAÏS",
    "ÉLOÏSE",
    "AÏCHA",
    "NOÉMIE",
    "MARIE-ÈVE",
    "FATOUMATA",
    "OCÉANE",
    "ANNE-SOPHIE",
];
const PRENOMS_M: &[&str] = &[
    "LUCAS",
    "HUGO",
    "THÉO",
    "NATHAN",
    "KARIM",
    "JEAN-BAPTISTE",
    "NOËL",
    "LOÏC",
    "YANIS",
    "RAPHAËL",
    "GAËTAN",
    "MOUSSA",
    "JÉRÉMY",
    "FRANÇOIS",
    "ÉLIE",
];
/// Birth départements of the NIR (Corsica included) and address communes.
const NIR_DEPTS: &[&str] = &["59", "62", "75", "69", "13", "2A", "2B", "93", "99"];
const COMMUNES: &[(&str, &str, &str)] = &[
    ("59350", "59000", "LILLE"),
    ("59512", "59100", "ROUBAIX"),
    ("59599", "59200", "TOURCOING"),
    ("59183", "59140", "DUNKERQUE"),
];
const VOIES: &[(&str, &str)] = &[
    ("RUE", "DES TANNEURS"),
    ("AV", "DU PRÉSIDENT HOOVER"),
    ("BD", "DE L'ÉGALITÉ"),
    ("PL", "DU GÉNÉRAL DE GAULLE"),
    ("CHE", "DES ŒILLETS"),
];

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Households to write.
    pub foyers: u64,
    pub seed: u64,
    /// Share of households whose demandeur is made invalid (bad NIR key, impossible
    /// date, unknown code).
    pub invalid_share: f64,
    pub departement: Departement,
    /// `DTREF` and the file's date.
    pub date: NaiveDate,
    /// Write a file that ends early.
    pub truncate: bool,
}

impl SimOptions {
    pub fn new(foyers: u64, seed: u64) -> Self {
        Self {
            foyers,
            seed,
            invalid_share: 0.0,
            departement: Departement::parse("059").expect("a valid département"),
            date: NaiveDate::from_ymd_opt(2026, 10, 31).expect("a valid date"),
            truncate: false,
        }
    }
}

/// What a simulation wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimSummary {
    pub path: PathBuf,
    pub foyers: u64,
    /// Persons the reader must turn into records (DEM, CJT, ENF aged 16 to 25), valid
    /// or not.
    pub records: u64,
    /// Of those, records made invalid on purpose.
    pub invalid: u64,
}

/// The file name: `RSABEM_{DEPT}_{YYYYMMDD}.xml`.
pub fn file_name(dept: &Departement, date: NaiveDate) -> String {
    format!("RSABEM_{dept}_{}.xml", date.format("%Y%m%d"))
}

fn pick<'a>(rng: &mut StdRng, list: &'a [&'a str]) -> &'a str {
    list.choose(rng).copied().unwrap_or("")
}

fn date_between(rng: &mut StdRng, from: NaiveDate, to: NaiveDate) -> NaiveDate {
    let span = (to - from).num_days().max(1);
    from + chrono::Duration::days(rng.random_range(0..span))
}

fn years_before(d: NaiveDate, years: i32) -> NaiveDate {
    d.with_year(d.year() - years)
        .unwrap_or_else(|| d - chrono::Duration::days(365 * i64::from(years)))
}

/// Writes one file into `dir` (temporary name, then renamed), streaming households.
pub fn write_flux(dir: &Path, opts: &SimOptions) -> Result<SimSummary, ConnectorError> {
    let path = dir.join(file_name(&opts.departement, opts.date));
    let tmp = dir.join(format!(".{}.part", file_name(&opts.departement, opts.date)));
    let mut summary = SimSummary {
        path: path.clone(),
        foyers: 0,
        records: 0,
        invalid: 0,
    };
    let result = (|| -> std::io::Result<()> {
        let mut w = BufWriter::with_capacity(256 * 1024, File::create(&tmp)?);
        let d = opts.date.format("%Y-%m-%d");
        write!(
            w,
            "<?xml version=\"1.0\" encoding=\"windows-1252\"?>\n<Racine>\n  <IdentificationFlux><APPLIEME>CRI</APPLIEME><NUMVERSIONAPPLIEME>6200</NUMVERSIONAPPLIEME><TYPEFLUX>M</TYPEFLUX><NATFLUX>D</NATFLUX><DTCREAFLUX>{d}</DTCREAFLUX><HEUCREAFLUX>01:18:36.0000</HEUCREAFLUX><DTREF>{d}</DTREF></IdentificationFlux>\n"
        )?;
        let mut rng = StdRng::seed_from_u64(opts.seed);
        let mut text = String::with_capacity(4096);
        let stop = opts.truncate.then(|| (opts.foyers * 2 / 3).max(1));
        for i in 0..opts.foyers {
            text.clear();
            let (records, invalid) = foyer(&mut rng, i, opts, &mut text);
            let bytes = encoding_rs::WINDOWS_1252.encode(&text).0;
            if stop == Some(i) {
                w.write_all(&bytes[..bytes.len() / 2])?;
                break;
            }
            w.write_all(&bytes)?;
            summary.foyers += 1;
            summary.records += records;
            summary.invalid += invalid;
        }
        if stop.is_none() {
            write!(
                w,
                "  <TransmissionFlux><NBTOTDOSRSATRANSM>{}</NBTOTDOSRSATRANSM><NBTOTDOSRSATRANSMANO>0</NBTOTDOSRSATRANSMANO></TransmissionFlux>\n</Racine>\n",
                opts.foyers
            )?;
        }
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(ConnectorError::io(path.display().to_string(), e));
    }
    Ok(summary)
}

/// One member of a simulated household.
struct Person<'a> {
    female: bool,
    nom: &'a str,
    birth: NaiveDate,
    role: &'static str,
    natprest: &'static str,
}

/// Appends one household; returns (records the reader must produce, invalid ones).
fn foyer(rng: &mut StdRng, i: u64, opts: &SimOptions, out: &mut String) -> (u64, u64) {
    use std::fmt::Write as _;
    let e = |s: &str| escape(s).into_owned();
    let dtref = opts.date;
    let nom = pick(rng, NOMS);
    let mut persons = vec![Person {
        female: rng.random_bool(0.5),
        nom,
        birth: date_between(rng, years_before(dtref, 26), years_before(dtref, 18)),
        role: "DEM",
        natprest: "RSA",
    }];
    if rng.random_bool(0.3) {
        persons.push(Person {
            female: !persons[0].female,
            nom: pick(rng, NOMS),
            birth: date_between(rng, years_before(dtref, 30), years_before(dtref, 18)),
            role: "CJT",
            natprest: "RSA",
        });
    }
    for _ in 0..rng.random_range(0..3) {
        persons.push(Person {
            female: rng.random_bool(0.5),
            nom,
            birth: date_between(rng, years_before(dtref, 24), dtref),
            role: "ENF",
            natprest: if rng.random_bool(0.9) { "RSA" } else { "PFA" },
        });
    }
    let fonorg = if rng.random_bool(0.9) { "CAF" } else { "MSA" };
    let numorg = if fonorg == "CAF" { "591" } else { "002" };
    let _ = write!(
        out,
        "  <InfosFoyerRSA>\n    <IdentificationRSA><Organisme><FONORG>{fonorg}</FONORG><NUMORG>{numorg}</NUMORG><MATRICULE>{:07}00000000</MATRICULE></Organisme><Partenaire><TYPEPARTE>CG</TYPEPARTE><IDEPARTE>{}</IDEPARTE></Partenaire><DemandeRSA><DTDEMRSA>{}</DTDEMRSA><NUMDEMRSA>{}{:09}</NUMDEMRSA></DemandeRSA></IdentificationRSA>\n",
        rng.random_range(1..10_000_000u32),
        opts.departement,
        date_between(rng, years_before(dtref, 2), dtref).format("%Y-%m-%d"),
        &opts.departement.as_str()[1..],
        i % 1_000_000_000
    );
    let invalid = rng.random_bool(opts.invalid_share.clamp(0.0, 1.0));
    let defect = if invalid { rng.random_range(0..3) } else { 9 };
    let mut records = 0;
    for (rank, p) in persons.iter().enumerate() {
        let selected = p.natprest == "RSA"
            && (p.role != "ENF"
                || (16..=25).contains(&Date::from(p.birth).age_on(Date::from(dtref))));
        records += u64::from(selected);
        let prenom = pick(rng, if p.female { PRENOMS_F } else { PRENOMS_M });
        let dept = pick(rng, NIR_DEPTS);
        let body = format!(
            "{}{:02}{:02}{dept}{:03}{:03}",
            if p.female { 2 } else { 1 },
            p.birth.year() % 100,
            p.birth.month(),
            rng.random_range(1..990),
            rng.random_range(1..999)
        );
        let mut nir = Nir::parse(&body)
            .map(|n| n.as_str().to_owned())
            .unwrap_or(body);
        let mut dtnai = p.birth.format("%Y-%m-%d").to_string();
        let mut qual = if p.female { "MME" } else { "MR" };
        if rank == 0 {
            match defect {
                0 => {
                    let key: u32 = nir[13..].parse().unwrap_or(0);
                    nir = format!("{}{:02}", &nir[..13], key % 97 + 1);
                }
                1 => dtnai = format!("{}-02-30", p.birth.year()),
                2 => qual = "XX",
                _ => {}
            }
        }
        let _ = write!(
            out,
            "    <Personne><Identification><QUAL>{qual}</QUAL><NOM>{}</NOM><NOMNAI>{}</NOMNAI><PRENOM>{}</PRENOM>",
            e(nom),
            e(p.nom),
            e(prenom)
        );
        if rng.random_bool(0.3) {
            let _ = write!(
                out,
                "<PRENOM2>{}</PRENOM2>",
                e(pick(rng, if p.female { PRENOMS_F } else { PRENOMS_M }))
            );
        }
        let _ = write!(
            out,
            "<DTNAI>{dtnai}</DTNAI><NIR>{nir}</NIR><SEXE>{}</SEXE></Identification><Prestations><NATPREST>{}</NATPREST><ROLEPERS>{}</ROLEPERS><TOPCHAPERS>1</TOPCHAPERS></Prestations>",
            if p.female { 2 } else { 1 },
            p.natprest,
            p.role
        );
        if p.role != "ENF" && rng.random_bool(0.5) {
            let _ = write!(
                out,
                "<DossierPoleEmploi><IDASSEDIC>{:07}{}</IDASSEDIC></DossierPoleEmploi>",
                rng.random_range(0..10_000_000u32),
                char::from(b'A' + rng.random_range(0..26u8))
            );
        }
        if p.role != "ENF" {
            let _ = write!(
                out,
                "<MontantCalculDroitRSAPersonne><TOPPERSDRODEVORSA>{}</TOPPERSDRODEVORSA></MontantCalculDroitRSAPersonne>",
                u8::from(rng.random_bool(0.9))
            );
        }
        out.push_str("</Personne>\n");
    }
    let (insee, cp, commune) = *COMMUNES.choose(rng).unwrap_or(&COMMUNES[0]);
    let (typ, voie) = *VOIES.choose(rng).unwrap_or(&VOIES[0]);
    let etat = rng.random_range(0..7);
    let _ = write!(
        out,
        "    <DonneesAdministratives><SituationFamille><SITFAM>{}</SITFAM></SituationFamille><Adresse><AdresseDetailleeFrance><NUMVOIE>{}</NUMVOIE><LIBTYPEVOIE>{typ}</LIBTYPEVOIE><NOMVOIE>{}</NOMVOIE><NUMCOM>{insee}</NUMCOM><CODEPOS>{cp}</CODEPOS><NOMCOM>{commune}</NOMCOM></AdresseDetailleeFrance></Adresse></DonneesAdministratives>\n    <PrestationRSA><SituationDossierRSA><ETATDOSRSA>{etat}</ETATDOSRSA>",
        if persons.len() > 1 && persons[1].role == "CJT" {
            "MAR"
        } else {
            "CEL"
        },
        rng.random_range(1..200),
        e(voie)
    );
    if etat == 3 || etat == 4 {
        out.push_str(
            "<SuspensionVersement><MOTISUSVERSRSA>01</MOTISUSVERSRSA></SuspensionVersement>",
        );
    }
    if etat >= 5 {
        let _ = write!(
            out,
            "<FinDroit><MOTICLORSA>PCG</MOTICLORSA><DTCLORSA>{}</DTCLORSA></FinDroit>",
            date_between(rng, years_before(dtref, 1), dtref).format("%Y-%m-%d")
        );
    }
    let _ = writeln!(
        out,
        "</SituationDossierRSA><DetailDroitRSA><TroncCommunDroitRSA><TOPSANSDOMFIXE>{}</TOPSANSDOMFIXE></TroncCommunDroitRSA><DetailCalculDroitRSA><NATPF>RSD</NATPF></DetailCalculDroitRSA></DetailDroitRSA></PrestationRSA>\n  </InfosFoyerRSA>",
        u8::from(rng.random_bool(0.05))
    );
    (records, u64::from(invalid))
}
