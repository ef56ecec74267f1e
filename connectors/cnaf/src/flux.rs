//! Reading CNAF VRSB0801 bénéficiaire files into canonical records, by cnaf.md.
//!
//! Two streaming passes: the first checks the document is whole (well-formed to the
//! end, `NBTOTDOSRSATRANSM` equal to the households read) and takes `DTREF`; the
//! second maps one `InfosFoyerRSA` at a time. A truncated file is refused before any
//! record is handed on, and memory stays flat in the file's size.

use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};

use passerelle_connector::encoding::DecodingReader;
use passerelle_connector::xml::{RecordMapper, XmlElement, XmlStream, open_file, text_of};
use passerelle_connector::{AckToken, ConnectorError, SourceItem};
use passerelle_model::{
    Adresse, Caf, CafOrganisme, Civilite, CodeInsee, CodePostal, Date, EtatDroit, FranceTravailIde,
    Jeune, Nir, NumeroAllocataire, NumeroDemandeRsa, RecordId, RsaRole, Source, SourceSystem,
    clean_text, parse_bool, split_prenoms,
};

/// The root element of a VRSB0801 file.
pub const ROOT: &str = "Racine";
/// One household.
pub const FOYER: &str = "InfosFoyerRSA";

fn refused(file: &str, reason: impl Into<String>) -> ConnectorError {
    ConnectorError::FileRefused {
        file: file.to_owned(),
        reason: reason.into(),
    }
}

/// The bénéficiaire layouts this reader maps; any other refuses the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// VRSB0801, the layout of `vrsb0801.xsd` (no `VERSIONFLUX`).
    Vrsb0801,
    /// VRSD0301, the CNAF's newer layout ("refonte"): `FonctionPersonneRSA`,
    /// `DossierCafMsa`, `LISPRENOMS`, `CalculDroitRSAPersonne`, `DroitOuvert/DTODRSA`.
    Vrsd0301,
}

impl Layout {
    pub fn name(self) -> &'static str {
        match self {
            Self::Vrsb0801 => "VRSB0801",
            Self::Vrsd0301 => "VRSD0301",
        }
    }

    /// The layout a `VERSIONFLUX` value names; `None` for one this reader does not know.
    fn from_version(v: &str) -> Option<Self> {
        match v.trim().to_ascii_uppercase().as_str() {
            "VRSD0301" | "0301" => Some(Self::Vrsd0301),
            "VRSB0801" | "0801" => Some(Self::Vrsb0801),
            _ => None,
        }
    }

    /// The layout a person's elements show: `Prestations` (VRSB0801) or
    /// `FonctionPersonneRSA` (VRSD0301); `None` when it has neither.
    fn of_personne(p: &XmlElement) -> Option<Self> {
        if p.child("FonctionPersonneRSA").is_some() || p.child("DossierCafMsa").is_some() {
            Some(Self::Vrsd0301)
        } else if p.child("Prestations").is_some() {
            Some(Self::Vrsb0801)
        } else {
            None
        }
    }
}

/// What `IdentificationFlux` and `TransmissionFlux` say about the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FluxHeader {
    /// `APPLIEME`: `CRI` (CAF Cristal) or `AGO` (MSA).
    pub applieme: Option<String>,
    /// `NUMVERSIONAPPLIEME`: the sending application's version.
    pub version: Option<String>,
    /// `TYPEFLUX`: `M` monthly, `I` daily, `R` catch-up.
    pub typeflux: Option<String>,
    /// The layout, detected from the file.
    pub layout: Layout,
    /// The reference date ages are computed on.
    pub dtref: Date,
    /// `NBTOTDOSRSATRANSM`: households transmitted, including those sent apart in the
    /// anomaly flux.
    pub nb_foyers: u64,
    /// `NBTOTDOSRSATRANSMANO`: households sent apart as anomalies.
    pub nb_anomalies: u64,
    /// `InfosFoyerRSA` elements in this file.
    pub nb_lus: u64,
}

/// A file checked whole, ready to be mapped household by household.
#[derive(Debug)]
pub struct Flux {
    pub header: FluxHeader,
    path: PathBuf,
}

fn text_at<'a>(el: &'a XmlElement, path: &[&str]) -> Option<&'a str> {
    let mut cur = el;
    for name in path {
        cur = cur.child(name)?;
    }
    text_of(Some(cur))
}

fn count_at(el: &XmlElement, name: &str) -> Option<Result<u64, ()>> {
    text_at(el, &[name]).map(|n| n.trim().parse::<u64>().map_err(|_| ()))
}

/// `APPLIEME` and `NUMVERSIONAPPLIEME` as a refusal names them.
fn naming(applieme: Option<&str>, version: Option<&str>) -> String {
    format!(
        "APPLIEME {}, NUMVERSIONAPPLIEME {}",
        applieme.unwrap_or("(none)"),
        version.unwrap_or("(none)")
    )
}

impl Flux {
    /// Checks the file (first pass) and reads its header; refuses it whole otherwise.
    #[tracing::instrument(fields(file = %path.display()))]
    pub fn open(path: &Path) -> Result<Self, ConnectorError> {
        let file = path.display().to_string();
        let (_, mut stream) = open_file(path).map_err(|e| e.into_refusal(&file))?;
        let root = stream.root().map_err(|e| e.into_refusal(&file))?;
        if root.name != ROOT {
            return Err(refused(
                &file,
                format!(
                    "unknown format: root element is {}, expected {ROOT}",
                    root.name
                ),
            ));
        }
        let mut dtref = None;
        let mut applieme = None;
        let mut version = None;
        let mut typeflux = None;
        let mut declared: Option<Layout> = None;
        let mut seen_ident = false;
        let mut announced = None;
        let mut anomalies = 0u64;
        let mut count = 0u64;
        // The layout the households show, from the first person met: households are
        // skipped unread (the check pass stays cheap) once it is known.
        let shape: std::cell::Cell<Option<Layout>> = std::cell::Cell::new(None);
        let mut shape_at = String::new();
        while let Some(child) = stream
            .next_child_with(|n| n != FOYER || shape.get().is_none())
            .map_err(|e| e.into_refusal(&file))?
        {
            match child.element.name.as_str() {
                FOYER => {
                    count += 1;
                    if shape.get().is_none()
                        && let Some(l) = child
                            .element
                            .children_named("Personne")
                            .find_map(Layout::of_personne)
                    {
                        shape.set(Some(l));
                        shape_at = child.path.clone();
                    }
                }
                "IdentificationFlux" => {
                    seen_ident = true;
                    let el = &child.element;
                    applieme = text_at(el, &["APPLIEME"]).map(|s| s.trim().to_owned());
                    version = text_at(el, &["NUMVERSIONAPPLIEME"]).map(|s| s.trim().to_owned());
                    typeflux = text_at(el, &["TYPEFLUX"]).map(|s| s.trim().to_owned());
                    let names = naming(applieme.as_deref(), version.as_deref());
                    match applieme.as_deref() {
                        Some("CRI" | "AGO") => {}
                        _ => {
                            return Err(refused(
                                &file,
                                format!(
                                    "unknown flux ({names}): not a CAF (CRI) or MSA (AGO) bénéficiaire flux"
                                ),
                            ));
                        }
                    }
                    match text_at(el, &["NATFLUX"]).map(str::trim) {
                        None | Some("D") => {}
                        Some(other) => {
                            let what = match other {
                                "I" => " (instruction)",
                                "R" => " (recueil)",
                                _ => "",
                            };
                            return Err(refused(
                                &file,
                                format!(
                                    "NATFLUX {other}{what} is not a bénéficiaire flux (D) ({names})"
                                ),
                            ));
                        }
                    }
                    if let Some(v) = text_at(el, &["VERSIONFLUX"]) {
                        declared = Some(Layout::from_version(v).ok_or_else(|| {
                            refused(
                                &file,
                                format!(
                                    "unknown layout: VERSIONFLUX {} ({names}); this reader maps VRSB0801 and VRSD0301",
                                    v.trim()
                                ),
                            )
                        })?);
                    }
                    let raw = text_at(el, &["DTREF"])
                        .ok_or_else(|| refused(&file, "IdentificationFlux/DTREF is missing"))?;
                    dtref =
                        Some(Date::parse(raw).map_err(|e| {
                            refused(&file, format!("IdentificationFlux/DTREF {e}"))
                        })?);
                }
                "TransmissionFlux" => {
                    let n = count_at(&child.element, "NBTOTDOSRSATRANSM")
                        .and_then(Result::ok)
                        .ok_or_else(|| {
                            refused(&file, "TransmissionFlux/NBTOTDOSRSATRANSM must be a count")
                        })?;
                    announced = Some(n);
                    anomalies = match count_at(&child.element, "NBTOTDOSRSATRANSMANO") {
                        None => 0,
                        Some(Ok(n)) => n,
                        Some(Err(())) => {
                            return Err(refused(
                                &file,
                                "TransmissionFlux/NBTOTDOSRSATRANSMANO must be a count",
                            ));
                        }
                    };
                }
                _ => {}
            }
            stream.recycle(child.element);
        }
        if !seen_ident {
            return Err(refused(&file, "IdentificationFlux is missing"));
        }
        let dtref = dtref.ok_or_else(|| refused(&file, "IdentificationFlux is missing"))?;
        let nb_foyers =
            announced.ok_or_else(|| refused(&file, "truncated: TransmissionFlux is missing"))?;
        // cnaf.md: the announced count includes the households sent apart in the
        // anomaly flux; fewer than announced minus those is a cut file. More than
        // announced is a count that does not match, refused too: which household is
        // the extra one cannot be told.
        if anomalies > nb_foyers {
            return Err(refused(
                &file,
                format!(
                    "count does not match: NBTOTDOSRSATRANSMANO {anomalies} exceeds NBTOTDOSRSATRANSM {nb_foyers}"
                ),
            ));
        }
        let expected = nb_foyers - anomalies;
        if count < expected {
            return Err(refused(
                &file,
                format!(
                    "truncated: NBTOTDOSRSATRANSM says {nb_foyers} households ({anomalies} of them sent apart as anomalies), the file holds {count} InfosFoyerRSA"
                ),
            ));
        }
        if count > nb_foyers {
            return Err(refused(
                &file,
                format!(
                    "count does not match: NBTOTDOSRSATRANSM says {nb_foyers} households, the file holds {count} InfosFoyerRSA"
                ),
            ));
        }
        let names = naming(applieme.as_deref(), version.as_deref());
        let layout = match (declared, shape.get()) {
            (Some(d), Some(s)) if d != s => {
                return Err(refused(
                    &file,
                    format!(
                        "layout does not match: IdentificationFlux names {} ({names}), {shape_at} is laid out as {}",
                        d.name(),
                        s.name()
                    ),
                ));
            }
            (Some(d), _) => d,
            (None, Some(s)) => s,
            (None, None) => Layout::Vrsb0801,
        };
        if count > 0 && shape.get().is_none() {
            // Persons in neither layout: mapping them would yield nothing, silently.
            let mut probe = open_file(path).map_err(|e| e.into_refusal(&file))?.1;
            probe.root().map_err(|e| e.into_refusal(&file))?;
            while let Some(child) = probe
                .next_child_with(|n| n == FOYER)
                .map_err(|e| e.into_refusal(&file))?
            {
                if child.element.child("Personne").is_some() {
                    return Err(refused(
                        &file,
                        format!(
                            "unknown layout ({names}): {}/Personne has neither Prestations (VRSB0801) nor FonctionPersonneRSA (VRSD0301)",
                            child.path
                        ),
                    ));
                }
                probe.recycle(child.element);
            }
        }
        Ok(Self {
            header: FluxHeader {
                applieme,
                version,
                typeflux,
                layout,
                dtref,
                nb_foyers,
                nb_anomalies: anomalies,
                nb_lus: count,
            },
            path: path.to_owned(),
        })
    }

    /// The second pass: the records of every household, in file order.
    pub fn records(&self) -> Result<Records, ConnectorError> {
        let file = self.path.display().to_string();
        let (_, mut stream) = open_file(&self.path).map_err(|e| e.into_refusal(&file))?;
        stream.root().map_err(|e| e.into_refusal(&file))?;
        Ok(Records {
            stream,
            file,
            ctx: FluxContext {
                dtref: self.header.dtref,
                layout: self.header.layout,
            },
            pending: VecDeque::new(),
        })
    }
}

/// What mapping a household needs from the file's header.
#[derive(Debug, Clone, Copy)]
pub struct FluxContext {
    pub dtref: Date,
    pub layout: Layout,
}

/// The records of a file, mapped one household at a time.
#[derive(Debug)]
pub struct Records {
    stream: XmlStream<DecodingReader<File>>,
    file: String,
    ctx: FluxContext,
    pending: VecDeque<SourceItem>,
}

impl Records {
    /// Decoded bytes read so far (for progress displays).
    pub fn position(&self) -> u64 {
        self.stream.position()
    }
}

impl Iterator for Records {
    type Item = Result<SourceItem, ConnectorError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(Ok(item));
            }
            let child = match self.stream.next_child_with(|n| n == FOYER) {
                Ok(Some(child)) => child,
                Ok(None) => return None,
                Err(e) => return Some(Err(e.into_refusal(&self.file))),
            };
            if child.element.name == FOYER {
                self.pending
                    .extend(map_foyer(&child.element, &child.path, self.ctx));
            }
            self.stream.recycle(child.element);
        }
    }
}

/// The first descendant named `name`, depth first (for elements whose parent the
/// layouts place differently, such as `DroitOuvert`).
fn find_desc<'a>(el: &'a XmlElement, name: &str) -> Option<&'a XmlElement> {
    for c in &el.children {
        if c.name == name {
            return Some(c);
        }
        if let Some(found) = find_desc(c, name) {
            return Some(found);
        }
    }
    None
}

/// The household's address: of its 1 to 3 `Adresse`, the one ranked first by
/// `RGADR` (01 is the current one), in France or abroad.
fn address(m: &mut RecordMapper, foyer: &XmlElement) -> Option<Adresse> {
    let admin = foyer.child("DonneesAdministratives")?;
    let (rank, a) = admin
        .children_named("Adresse")
        .enumerate()
        .filter(|(_, a)| {
            a.child("AdresseDetailleeFrance").is_some() || a.child("AdresseHorsFrance").is_some()
        })
        .min_by_key(|(i, a)| {
            let rg = text_at(a, &["TroncCommunAdresse", "RGADR"])
                .and_then(|r| r.trim().parse::<u32>().ok())
                .unwrap_or(u32::MAX);
            (rg, *i)
        })?;
    let base = format!("../DonneesAdministratives/Adresse[{}]", rank + 1);
    let adresse = if let Some(f) = a.child("AdresseDetailleeFrance") {
        let voie = match (text_at(f, &["LIBTYPEVOIE"]), text_at(f, &["NOMVOIE"])) {
            (Some(t), Some(v)) => clean_text(&format!("{t} {v}")),
            (None, Some(v)) => clean_text(v),
            (Some(t), None) => clean_text(t),
            (None, None) => None,
        };
        let complement = [
            text_at(f, &["COMPLIDEADR"]),
            text_at(f, &["COMPLADR"]),
            text_at(f, &["LIEUDIST"]),
        ]
        .into_iter()
        .flatten()
        .filter_map(clean_text)
        .collect::<Vec<_>>()
        .join(", ");
        Adresse {
            numero: text_at(f, &["NUMVOIE"]).and_then(clean_text),
            voie,
            complement: clean_text(&complement),
            code_postal: m.opt(
                "contact.adresse.code_postal",
                format_args!("{base}/AdresseDetailleeFrance/CODEPOS"),
                text_at(f, &["CODEPOS"]),
                CodePostal::parse,
            ),
            commune: text_at(f, &["NOMCOM"]).and_then(clean_text),
            code_insee: m.opt(
                "contact.adresse.code_insee",
                format_args!("{base}/AdresseDetailleeFrance/NUMCOM"),
                text_at(f, &["NUMCOM"]),
                CodeInsee::parse,
            ),
        }
    } else {
        // Abroad: free address lines (2 to 7); the street on line 4 and the town on
        // line 6 as postal lines go, the others kept as the complement. No French
        // postcode or INSEE code applies.
        let h = a.child("AdresseHorsFrance")?;
        let line = |n: u8| text_at(h, &[&format!("LIBLIG{n}ADR")]).and_then(clean_text);
        let complement = [line(2), line(3), line(5), line(7)]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ");
        Adresse {
            voie: line(4),
            complement: clean_text(&complement),
            commune: line(6),
            ..Adresse::default()
        }
    };
    (!adresse.is_empty()).then_some(adresse)
}

/// Household-level values shared by its persons, parsed once per person so that each
/// record's issues carry its own reference.
fn household_fields(m: &mut RecordMapper, foyer: &XmlElement, j: &mut Jeune) {
    let org = &["IdentificationRSA", "Organisme"];
    let organisme = m.opt(
        "identifiants.caf.organisme",
        "../IdentificationRSA/Organisme/FONORG",
        text_at(foyer, &[org[0], org[1], "FONORG"]),
        CafOrganisme::from_source,
    );
    if let Some(organisme) = organisme
        && let Some(numero_allocataire) = m.opt(
            "identifiants.caf.numero_allocataire",
            "../IdentificationRSA/Organisme/MATRICULE",
            text_at(foyer, &[org[0], org[1], "MATRICULE"]),
            |s| NumeroAllocataire::from_matricule(organisme, s),
        )
    {
        j.identifiants.caf = Some(Caf {
            organisme,
            numero_allocataire,
        });
    }
    j.identifiants.numero_demande_rsa = m.opt(
        "identifiants.numero_demande_rsa",
        "../IdentificationRSA/DemandeRSA/NUMDEMRSA",
        text_at(foyer, &["IdentificationRSA", "DemandeRSA", "NUMDEMRSA"]),
        NumeroDemandeRsa::parse,
    );
    // OrganismeCedant/OrganismePrenant (the dossier moving to another CAF or
    // département) have no place in the canonical record: `sources[0].organisation`
    // stays the organisme serving the RSA now, which is what a reader acts on.

    j.contact.adresse = address(m, foyer);

    if let Some(p) = foyer.child("PrestationRSA") {
        let sit = p.child("SituationDossierRSA");
        let get = |names: &[&str]| -> Option<&str> { sit.and_then(|s| text_at(s, names)) };
        // The schema nests the état under EtatDossierRSA; the flat position of the
        // older summary is read too, as files written from it exist.
        let (etat, at) = match get(&["EtatDossierRSA", "ETATDOSRSA"]) {
            Some(e) => (
                Some(e),
                "../PrestationRSA/SituationDossierRSA/EtatDossierRSA/ETATDOSRSA",
            ),
            None => (
                get(&["ETATDOSRSA"]),
                "../PrestationRSA/SituationDossierRSA/ETATDOSRSA",
            ),
        };
        j.rsa.etat_droit = m.opt("rsa.etat_droit", at, etat, EtatDroit::from_source);
        // Suspension of the rights (état 3) says more than a suspended payment.
        j.rsa.motif_suspension = get(&["SuspensionDroit", "MOTISUSDRORSA"])
            .or_else(|| get(&["SuspensionVersement", "MOTISUSVERSRSA"]))
            .and_then(clean_text);
        // The end of the rights: this month (FinDroit, état 5), the previous one
        // (FinDroitMoisAnterieur, état 6), or a refused request (Refus, état 1),
        // which ends them as well; the état tells the three apart.
        for (block, motif, date) in [
            ("FinDroit", "MOTICLORSA", "DTCLORSA"),
            ("FinDroitMoisAnterieur", "MOTICLORSA", "DTCLORSA"),
            ("Refus", "MOTIREFURSA", "DTREFURSA"),
        ] {
            if sit.and_then(|s| s.child(block)).is_none() {
                continue;
            }
            j.rsa.motif_cloture = get(&[block, motif]).and_then(clean_text);
            j.rsa.date_cloture = m.opt(
                "rsa.date_cloture",
                format_args!("../PrestationRSA/SituationDossierRSA/{block}/{date}"),
                get(&[block, date]),
                Date::parse,
            );
            break;
        }
        // VRSD0301: the date the rights opened.
        j.rsa.date_ouverture = m.opt(
            "rsa.date_ouverture",
            "../PrestationRSA/DroitOuvert/DTODRSA",
            find_desc(p, "DroitOuvert").and_then(|d| text_at(d, &["DTODRSA"])),
            Date::parse,
        );
        j.contact.sans_domicile_fixe = m.opt(
            "contact.sans_domicile_fixe",
            "../PrestationRSA/DetailDroitRSA/TroncCommunDroitRSA/TOPSANSDOMFIXE",
            text_at(
                p,
                &["DetailDroitRSA", "TroncCommunDroitRSA", "TOPSANSDOMFIXE"],
            ),
            parse_bool,
        );
    } else {
        // The schema requires it; without it the rights cannot be told open or closed,
        // which the reader says rather than passing an état-less record in silence.
        m.warnings.push(passerelle_connector::report::RecordIssue {
            reference: m.reference.clone(),
            line: None,
            field: "rsa.etat_droit".to_owned(),
            reason: format!(
                "unknown: the household has no PrestationRSA (at {})",
                m.base.rsplit_once('/').map_or("", |(head, _)| head)
            ),
        });
    }
}

/// The RSA role of a person as its layout writes it: `ROLEPERS` of the `Prestations`
/// line with `NATPREST=RSA` (VRSB0801), or `FonctionPersonneRSA/ROLEPERS` (VRSD0301).
fn rsa_role(personne: &XmlElement, layout: Layout) -> Option<&str> {
    match layout {
        Layout::Vrsb0801 => personne
            .children_named("Prestations")
            .find(|p| text_at(p, &["NATPREST"]).map(str::trim) == Some("RSA"))
            .and_then(|p| text_at(p, &["ROLEPERS"])),
        Layout::Vrsd0301 => personne
            .children_named("FonctionPersonneRSA")
            .find_map(|f| text_at(f, &["ROLEPERS"])),
    }
    .map(str::trim)
}

/// The part of a person's `record_id` after the request number: a digest of what
/// does not change from one month's file to the next (organisme, matricule, birth
/// name, first given name, birth date). The rank in the household is not stable (it
/// shifts when someone leaves), nor is the role (spouses swap DEM and CJT); and a
/// `NUMDEMRSA` is not unique across households (two are seen sharing one), hence the
/// organisme and matricule. Hashed rather than written out: the id travels in
/// reports and journals, where identity must not appear.
fn person_key(org: &str, matricule: &str, personne: &XmlElement) -> Option<String> {
    use sha2::{Digest, Sha256};
    let ident = personne.child("Identification")?;
    let get = |n: &str| text_at(ident, &[n]).map(|s| s.trim().to_uppercase());
    let nom = get("NOMNAI").or_else(|| get("NOM"))?;
    let prenom = get("PRENOM")?;
    let dtnai = get("DTNAI")?;
    let mut h = Sha256::new();
    for part in [org, matricule.trim(), &nom, &prenom, &dtnai] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    let d = h.finalize();
    Some(d[..6].iter().map(|b| format!("{b:02x}")).collect())
}

/// Maps one household to the records of its eligible persons (cnaf.md): roles DEM
/// and CJT (BEN in VRSD0301) always, ENF when aged 16 to 25 on `DTREF`, only with an
/// RSA role, and only persons still in the household (`DFRATDOS` not past).
pub fn map_foyer(foyer: &XmlElement, path: &str, ctx: FluxContext) -> Vec<SourceItem> {
    let fonorg = text_at(foyer, &["IdentificationRSA", "Organisme", "FONORG"])
        .unwrap_or("")
        .trim();
    let numorg = text_at(foyer, &["IdentificationRSA", "Organisme", "NUMORG"])
        .unwrap_or("")
        .trim();
    let matricule = text_at(foyer, &["IdentificationRSA", "Organisme", "MATRICULE"]).unwrap_or("");
    let organisation = format!("{fonorg}{numorg}");
    let numdem = text_at(foyer, &["IdentificationRSA", "DemandeRSA", "NUMDEMRSA"]).map(str::trim);
    let mut items = Vec::new();
    if foyer.child("Personne").is_none() {
        // The schema wants at least one; a stub household is reported, not skipped.
        let mut m = RecordMapper::new(path, path);
        m.reject(
            "sources[]",
            "",
            "household without Personne: no person to read",
        );
        items.push(m.finish(Jeune::default(), AckToken(path.to_owned())));
        return items;
    }
    let dossier = match ctx.layout {
        Layout::Vrsb0801 => "DossierCAF",
        Layout::Vrsd0301 => "DossierCafMsa",
    };
    let calcul = match ctx.layout {
        Layout::Vrsb0801 => "MontantCalculDroitRSAPersonne",
        Layout::Vrsd0301 => "CalculDroitRSAPersonne",
    };
    for (i, personne) in foyer.children_named("Personne").enumerate() {
        let rank = i + 1;
        let Some(role_raw) = rsa_role(personne, ctx.layout) else {
            continue;
        };
        let role = match (ctx.layout, role_raw) {
            // BEN covers DEM and CJT alike: the layout does not tell them apart, so
            // the role is left out rather than guessed.
            (Layout::Vrsd0301, "BEN") => None,
            (_, raw) => match RsaRole::from_source(raw) {
                Ok(role) => Some(role),
                // RDO and other roles are not beneficiaries this flow reads.
                Err(_) => continue,
            },
        };
        let base = format!("{path}/Personne[{rank}]");
        // The reference is the element path: the record id holds the RSA request
        // number, which must not reach error lines.
        let mut m = RecordMapper::new(base.clone(), base.clone());
        // A person who left the household before the reference date is no longer a
        // member of it (cnaf.md).
        if let Some(left) = text_at(personne, &[dossier, "DFRATDOS"])
            && let Ok(left) = Date::parse(left)
            && left <= ctx.dtref
        {
            continue;
        }
        let mut j = Jeune::default();
        let ident = personne.child("Identification");
        let get = |name: &str| ident.and_then(|e| text_at(e, &[name]));
        let dtnai = m.opt(
            "etat_civil.date_naissance",
            "Identification/DTNAI",
            get("DTNAI"),
            Date::parse,
        );
        match role {
            None | Some(RsaRole::Dem | RsaRole::Cjt) => {}
            Some(RsaRole::Enf) => match dtnai {
                Some(d) if (16..=25).contains(&d.age_on(ctx.dtref)) => {}
                Some(_) => continue,
                // A child whose age cannot be told is reported, not silently skipped.
                None if m.rejects.is_empty() => {
                    m.reject(
                        "etat_civil.date_naissance",
                        "Identification/DTNAI",
                        "missing, needed to select children aged 16 to 25",
                    );
                }
                None => {}
            },
            Some(RsaRole::Aut) => continue,
        }
        j.rsa.role = role;
        match (numdem, person_key(&organisation, matricule, personne)) {
            (Some(numdem), Some(key)) => {
                if let Some(record_id) = m.take(
                    "sources[].record_id",
                    "../IdentificationRSA/DemandeRSA/NUMDEMRSA",
                    RecordId::parse(&format!("{numdem}/{key}")),
                ) {
                    j.sources.push(Source {
                        system: SourceSystem::Cnaf,
                        organisation: organisation.clone(),
                        record_id,
                    });
                }
            }
            (None, _) => m.reject(
                "sources[].record_id",
                "../IdentificationRSA/DemandeRSA/NUMDEMRSA",
                "NUMDEMRSA is missing",
            ),
            (Some(_), None) => m.reject(
                "sources[].record_id",
                "Identification",
                "NOMNAI (or NOM), PRENOM and DTNAI are needed to identify the person",
            ),
        }
        household_fields(&mut m, foyer, &mut j);

        j.etat_civil.civilite = m.opt(
            "etat_civil.civilite",
            "Identification/QUAL",
            get("QUAL"),
            Civilite::from_source,
        );
        j.etat_civil.nom_naissance = get("NOMNAI").and_then(clean_text);
        j.etat_civil.nom_usage = get("NOM").and_then(clean_text);
        let more: &[&str] = match ctx.layout {
            Layout::Vrsb0801 => &["PRENOM2", "PRENOM3"],
            Layout::Vrsd0301 => &["LISPRENOMS"],
        };
        for name in std::iter::once(&"PRENOM").chain(more) {
            if let Some(p) = get(name) {
                for part in p.split(',') {
                    j.etat_civil.prenoms.extend(split_prenoms(part));
                }
            }
        }
        j.etat_civil.date_naissance = dtnai;
        j.identifiants.nir = m.opt(
            "identifiants.nir",
            "Identification/NIR",
            get("NIR"),
            Nir::parse,
        );
        j.identifiants.france_travail_ide = m.opt(
            "identifiants.france_travail_ide",
            "DossierPoleEmploi/IDASSEDIC",
            text_at(personne, &["DossierPoleEmploi", "IDASSEDIC"]),
            FranceTravailIde::parse,
        );
        j.rsa.soumis_droits_devoirs = m.opt(
            "rsa.soumis_droits_devoirs",
            format_args!("{calcul}/TOPPERSDRODEVORSA"),
            text_at(personne, &[calcul, "TOPPERSDRODEVORSA"]),
            parse_bool,
        );
        j.rsa.entrant_droits_devoirs = m.opt(
            "rsa.entrant_droits_devoirs",
            format_args!("{calcul}/TOPPERSENTDRODEVORSA"),
            text_at(personne, &[calcul, "TOPPERSENTDRODEVORSA"]),
            parse_bool,
        );
        items.push(m.finish(j, AckToken(base)));
    }
    items
}
