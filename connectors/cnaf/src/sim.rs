//! The CNAF simulator: writes realistic VRSB0801 bénéficiaire files deterministically
//! from a seed, streamed to disk (households are never held all in memory).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate};
use passerelle_connector::ConnectorError;
use passerelle_connector::xml::escape;
use passerelle_model::{Date, Departement, Nir};

pub use crate::flux::Layout;
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
    /// An MSA file (`APPLIEME` AGO, `MSABE…`, matricules not zero-padded) rather than
    /// a CAF one.
    pub msa: bool,
    /// A daily file (`TYPEFLUX` I, `…BEI_`) rather than a monthly one.
    pub daily: bool,
    /// The layout written: VRSB0801 (valid against `vrsb0801.xsd`) or VRSD0301.
    pub layout: Layout,
    /// Households announced in `NBTOTDOSRSATRANSM` as sent apart in the anomaly flux
    /// (announced on top of those written, as real files count them).
    pub anomalies: u64,
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
            msa: false,
            daily: false,
            layout: Layout::Vrsb0801,
            anomalies: 0,
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

/// The file name of a CAF monthly file: `RSABEM_{DEPT}_{YYYYMMDD}.xml`.
pub fn file_name(dept: &Departement, date: NaiveDate) -> String {
    format!("RSABEM_{dept}_{}.xml", date.format("%Y%m%d"))
}

/// The file name as real files are named: `RSABEM_`/`RSABEI_` (CAF monthly/daily),
/// `MSABEM_`/`MSABEI_` (MSA).
pub fn file_name_of(opts: &SimOptions) -> String {
    format!(
        "{}SABE{}_{}_{}.xml",
        if opts.msa { "M" } else { "R" },
        if opts.daily { "I" } else { "M" },
        opts.departement,
        opts.date.format("%Y%m%d")
    )
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
    let path = dir.join(file_name_of(opts));
    let tmp = dir.join(format!(".{}.part", file_name_of(opts)));
    let mut summary = SimSummary {
        path: path.clone(),
        foyers: 0,
        records: 0,
        invalid: 0,
    };
    let result = (|| -> std::io::Result<()> {
        let mut w = BufWriter::with_capacity(256 * 1024, File::create(&tmp)?);
        let d = opts.date.format("%Y-%m-%d");
        let (applieme, version) = if opts.msa {
            ("AGO", "0801")
        } else {
            ("CRI", "6200")
        };
        let typeflux = if opts.daily { "I" } else { "M" };
        let versionflux = match opts.layout {
            Layout::Vrsb0801 => "",
            Layout::Vrsd0301 => "<VERSIONFLUX>VRSD0301</VERSIONFLUX>",
        };
        write!(
            w,
            "<?xml version=\"1.0\" encoding=\"windows-1252\"?>\n<Racine>\n  <IdentificationFlux><APPLIEME>{applieme}</APPLIEME><NUMVERSIONAPPLIEME>{version}</NUMVERSIONAPPLIEME><TYPEFLUX>{typeflux}</TYPEFLUX><NATFLUX>D</NATFLUX><DTCREAFLUX>{d}</DTCREAFLUX><HEUCREAFLUX>01:18:36.0000</HEUCREAFLUX><DTREF>{d}</DTREF>{versionflux}</IdentificationFlux>\n"
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
                "  <TransmissionFlux><NBTOTDOSRSATRANSM>{:08}</NBTOTDOSRSATRANSM><NBTOTDOSRSATRANSMANO>{:08}</NBTOTDOSRSATRANSMANO></TransmissionFlux>\n</Racine>\n",
                opts.foyers + opts.anomalies,
                opts.anomalies
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
    let vrsd = opts.layout == Layout::Vrsd0301;
    let (fonorg, numorg) = if opts.msa {
        ("MSA", "002")
    } else {
        ("CAF", "591")
    };
    // CAF matricules are the 7-digit number padded with zeros; MSA ones are 15
    // digits of their own (cnaf.md).
    let matricule = if opts.msa {
        format!(
            "{:015}",
            rng.random_range(100_000_000_000_000..1_000_000_000_000_000u64)
        )
    } else {
        format!("{:07}00000000", rng.random_range(1..10_000_000u32))
    };
    let dtdem = date_between(rng, years_before(dtref, 2), dtref);
    let _ = write!(
        out,
        "  <InfosFoyerRSA>\n    <IdentificationRSA><Organisme><FONORG>{fonorg}</FONORG><NUMORG>{numorg}</NUMORG><MATRICULE>{matricule}</MATRICULE></Organisme><Partenaire><TYPEPARTE>CG</TYPEPARTE><IDEPARTE>{}</IDEPARTE></Partenaire><DemandeRSA><DTDEMRSA>{}</DTDEMRSA><NUMDEMRSA>{}{:09}</NUMDEMRSA></DemandeRSA></IdentificationRSA>\n",
        opts.departement,
        dtdem.format("%Y-%m-%d"),
        &opts.departement.as_str()[1..],
        i % 1_000_000_000
    );
    let invalid = rng.random_bool(opts.invalid_share.clamp(0.0, 1.0));
    let defect = if invalid { rng.random_range(0..3) } else { 9 };
    let mut records = 0;
    let (commune_nai, _, _) = *COMMUNES.choose(rng).unwrap_or(&COMMUNES[0]);
    for (rank, p) in persons.iter().enumerate() {
        // VRSD0301 writes every RSA person as BEN except children.
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
        // CAF files carry the 13-character NIR, MSA files the 15 (cnaf.md).
        let mut nir = Nir::parse(&body)
            .map(|n| n.as_str().to_owned())
            .unwrap_or(body);
        if !opts.msa {
            nir.truncate(13);
        }
        let mut dtnai = p.birth.format("%Y-%m-%d").to_string();
        let mut qual = if p.female { "MME" } else { "MR" };
        if rank == 0 {
            match defect {
                0 => {
                    // A wrong key: only a 15-character NIR carries one.
                    let full = Nir::parse(&nir[..13])
                        .map(|n| n.as_str().to_owned())
                        .unwrap_or_default();
                    let key: u32 = full.get(13..).and_then(|k| k.parse().ok()).unwrap_or(0);
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
            let second = e(pick(rng, if p.female { PRENOMS_F } else { PRENOMS_M }));
            if vrsd {
                let _ = write!(out, "<LISPRENOMS>{second}</LISPRENOMS>");
            } else {
                let _ = write!(out, "<PRENOM2>{second}</PRENOM2>");
            }
        }
        let _ = write!(
            out,
            "<NOMCOMNAI>{commune_nai}</NOMCOMNAI><DTNAI>{dtnai}</DTNAI><TYPEDTNAI>N</TYPEDTNAI><NIR>{nir}</NIR><TOPVALIEC>1</TOPVALIEC><SEXE>{}</SEXE></Identification>",
            if p.female { 2 } else { 1 },
        );
        let dossier = if vrsd { "DossierCafMsa" } else { "DossierCAF" };
        let _ = write!(
            out,
            "<{dossier}><TOPRESPDOS>{}</TOPRESPDOS><DDRATDOS>{}</DDRATDOS></{dossier}>",
            u8::from(rank == 0),
            dtdem.format("%Y-%m-%d")
        );
        if vrsd {
            let role = if p.role == "ENF" { "ENF" } else { "BEN" };
            if p.natprest == "RSA" {
                let _ = write!(
                    out,
                    "<FonctionPersonneRSA><ROLEPERS>{role}</ROLEPERS></FonctionPersonneRSA>"
                );
            } else {
                out.push_str("<FonctionPersonneRSA><ROLEPERS>AUT</ROLEPERS></FonctionPersonneRSA>");
            }
        } else {
            // Real files carry two lines: the family benefits and the RSA.
            let _ = write!(
                out,
                "<Prestations><NATPREST>PFA</NATPREST><ROLEPERS>{}</ROLEPERS><TOPCHAPERS>1</TOPCHAPERS></Prestations>",
                p.role
            );
            // The schema wants both lines; a person outside the RSA has role AUT in it.
            let _ = write!(
                out,
                "<Prestations><NATPREST>RSA</NATPREST><ROLEPERS>{}</ROLEPERS><TOPCHAPERS>{}</TOPCHAPERS></Prestations>",
                if p.natprest == "RSA" { p.role } else { "AUT" },
                u8::from(p.natprest == "RSA")
            );
        }
        if !vrsd && p.role != "ENF" && rng.random_bool(0.5) {
            let _ = write!(
                out,
                "<DossierPoleEmploi><IDASSEDIC>{:07}{}</IDASSEDIC></DossierPoleEmploi>",
                rng.random_range(0..10_000_000u32),
                char::from(b'A' + rng.random_range(0..26u8))
            );
        }
        if p.role != "ENF" {
            let calcul = if vrsd {
                "CalculDroitRSAPersonne"
            } else {
                "MontantCalculDroitRSAPersonne"
            };
            let sdd = rng.random_bool(0.9);
            let _ = write!(
                out,
                "<{calcul}><TOPPERSDRODEVORSA>{}</TOPPERSDRODEVORSA><TOPPERSENTDRODEVORSA>{}</TOPPERSENTDRODEVORSA></{calcul}>",
                u8::from(sdd),
                u8::from(sdd && rng.random_bool(0.1))
            );
        }
        out.push_str("</Personne>\n");
    }
    let (insee, cp, commune) = *COMMUNES.choose(rng).unwrap_or(&COMMUNES[0]);
    let (typ, voie) = *VOIES.choose(rng).unwrap_or(&VOIES[0]);
    // Mostly open rights, as in a monthly file; the others each now and then.
    let etat: u8 = if rng.random_bool(0.7) {
        2
    } else {
        rng.random_range(0..7)
    };
    let _ = write!(
        out,
        "    <DonneesAdministratives><SituationFamille><SITFAM>{}</SITFAM><DDSITFAM>{}</DDSITFAM></SituationFamille><Adresse><TroncCommunAdresse><RGADR>01</RGADR><PAYS>FRA</PAYS><TYPEADR>D</TYPEADR><ETATADR>CO</ETATADR></TroncCommunAdresse><AdresseDetailleeFrance><COMPLIDEADR/><COMPLADR/><NUMVOIE>{}</NUMVOIE><LIBTYPEVOIE>{typ}</LIBTYPEVOIE><NOMVOIE>{}</NOMVOIE><LIEUDIST/><NUMCOM>{insee}</NUMCOM><CODEPOS>{cp}</CODEPOS><NOMCOM>{commune}</NOMCOM></AdresseDetailleeFrance></Adresse></DonneesAdministratives>\n    <PrestationRSA><SituationDossierRSA><EtatDossierRSA><ETATDOSRSA>{etat}</ETATDOSRSA></EtatDossierRSA>",
        if persons.len() > 1 && persons[1].role == "CJT" {
            "MAR"
        } else {
            "CEL"
        },
        dtdem.format("%Y-%m-%d"),
        rng.random_range(1..200),
        e(voie)
    );
    let some_date = |rng: &mut StdRng| {
        date_between(rng, years_before(dtref, 1), dtref)
            .format("%Y-%m-%d")
            .to_string()
    };
    match etat {
        1 => {
            let _ = write!(
                out,
                "<Refus><DTREFURSA>{}</DTREFURSA><MOTIREFURSA>DSD</MOTIREFURSA></Refus>",
                some_date(rng)
            );
        }
        3 => {
            let _ = write!(
                out,
                "<SuspensionDroit><MOTISUSDRORSA>DA</MOTISUSDRORSA><DDSUSDRORSA>{}</DDSUSDRORSA></SuspensionDroit>",
                some_date(rng)
            );
        }
        4 => {
            let _ = write!(
                out,
                "<SuspensionVersement><MOTISUSVERSRSA>06</MOTISUSVERSRSA><DDSUSVERSRSA>{}</DDSUSVERSRSA></SuspensionVersement>",
                some_date(rng)
            );
        }
        5 => {
            let _ = write!(
                out,
                "<FinDroit><MOTICLORSA>PCG</MOTICLORSA><DTCLORSA>{}</DTCLORSA></FinDroit>",
                some_date(rng)
            );
        }
        6 => {
            let _ = write!(
                out,
                "<FinDroitMoisAnterieur><MOTICLORSA>PCG</MOTICLORSA><DTCLORSA>{}</DTCLORSA></FinDroitMoisAnterieur>",
                some_date(rng)
            );
        }
        _ => {}
    }
    if vrsd && (2..=4).contains(&etat) {
        let _ = write!(
            out,
            "<DroitOuvert><DTODRSA>{}</DTODRSA></DroitOuvert>",
            dtdem.format("%Y-%m-%d")
        );
    }
    let _ = writeln!(
        out,
        "</SituationDossierRSA><DetailDroitRSA><TroncCommunDroitRSA><TOPSANSDOMFIXE>{}</TOPSANSDOMFIXE><ORIDEMRSA>DEM</ORIDEMRSA></TroncCommunDroitRSA><DetailCalculDroitRSA><NATPF>RSD</NATPF><SOUSNATPF>RSDN1</SOUSNATPF><DDNATDRO>{}</DDNATDRO></DetailCalculDroitRSA></DetailDroitRSA></PrestationRSA>\n  </InfosFoyerRSA>",
        u8::from(rng.random_bool(0.05)),
        dtdem.format("%Y-%m-%d")
    );
    (records, u64::from(invalid))
}
