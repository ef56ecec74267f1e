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

/// What `IdentificationFlux` and `TransmissionFlux` say about the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FluxHeader {
    /// `APPLIEME`: `CRI` (CAF Cristal) or `AGO` (MSA).
    pub applieme: Option<String>,
    /// The reference date ages are computed on.
    pub dtref: Date,
    /// `NBTOTDOSRSATRANSM`: households in the file.
    pub nb_foyers: u64,
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
        let mut announced = None;
        let mut count = 0u64;
        while let Some(child) = stream
            .next_child_with(|n| n != FOYER)
            .map_err(|e| e.into_refusal(&file))?
        {
            match child.element.name.as_str() {
                FOYER => count += 1,
                "IdentificationFlux" => {
                    let raw = text_at(&child.element, &["DTREF"])
                        .ok_or_else(|| refused(&file, "IdentificationFlux/DTREF is missing"))?;
                    dtref =
                        Some(Date::parse(raw).map_err(|e| {
                            refused(&file, format!("IdentificationFlux/DTREF {e}"))
                        })?);
                    applieme = text_at(&child.element, &["APPLIEME"]).map(str::to_owned);
                }
                "TransmissionFlux" => {
                    let n = text_at(&child.element, &["NBTOTDOSRSATRANSM"])
                        .and_then(|n| n.parse::<u64>().ok())
                        .ok_or_else(|| {
                            refused(&file, "TransmissionFlux/NBTOTDOSRSATRANSM must be a count")
                        })?;
                    announced = Some(n);
                }
                _ => {}
            }
            stream.recycle(child.element);
        }
        let dtref = dtref.ok_or_else(|| refused(&file, "IdentificationFlux is missing"))?;
        let nb_foyers =
            announced.ok_or_else(|| refused(&file, "truncated: TransmissionFlux is missing"))?;
        if nb_foyers != count {
            return Err(refused(
                &file,
                format!(
                    "truncated: NBTOTDOSRSATRANSM says {nb_foyers}, the file holds {count} InfosFoyerRSA"
                ),
            ));
        }
        Ok(Self {
            header: FluxHeader {
                applieme,
                dtref,
                nb_foyers,
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
            dtref: self.header.dtref,
            pending: VecDeque::new(),
        })
    }
}

/// The records of a file, mapped one household at a time.
#[derive(Debug)]
pub struct Records {
    stream: XmlStream<DecodingReader<File>>,
    file: String,
    dtref: Date,
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
                    .extend(map_foyer(&child.element, &child.path, self.dtref));
            }
            self.stream.recycle(child.element);
        }
    }
}

/// Household-level values shared by its persons, parsed once per person so that each
/// record's issues carry its own reference.
fn household_fields(m: &mut RecordMapper, foyer: &XmlElement, j: &mut Jeune) {
    let ident = &["IdentificationRSA", "Organisme"];
    let fonorg = text_at(foyer, &[ident[0], ident[1], "FONORG"]);
    let matricule = text_at(foyer, &[ident[0], ident[1], "MATRICULE"]);
    let organisme = m.opt(
        "identifiants.caf.organisme",
        "../IdentificationRSA/Organisme/FONORG",
        fonorg,
        CafOrganisme::from_source,
    );
    let numero = m.opt(
        "identifiants.caf.numero_allocataire",
        "../IdentificationRSA/Organisme/MATRICULE",
        matricule,
        NumeroAllocataire::from_cnaf_matricule,
    );
    if let (Some(organisme), Some(numero_allocataire)) = (organisme, numero) {
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

    // The address: the first AdresseDetailleeFrance of the household.
    if let Some(a) = foyer.child("DonneesAdministratives").and_then(|d| {
        d.children_named("Adresse")
            .find_map(|a| a.child("AdresseDetailleeFrance"))
    }) {
        let base = "../DonneesAdministratives/Adresse/AdresseDetailleeFrance";
        let voie = match (text_at(a, &["LIBTYPEVOIE"]), text_at(a, &["NOMVOIE"])) {
            (Some(t), Some(v)) => clean_text(&format!("{t} {v}")),
            (None, Some(v)) => clean_text(v),
            (Some(t), None) => clean_text(t),
            (None, None) => None,
        };
        let adresse = Adresse {
            numero: text_at(a, &["NUMVOIE"]).and_then(clean_text),
            voie,
            complement: text_at(a, &["COMPLADR"]).and_then(clean_text),
            code_postal: m.opt(
                "contact.adresse.code_postal",
                format_args!("{base}/CODEPOS"),
                text_at(a, &["CODEPOS"]),
                CodePostal::parse,
            ),
            commune: text_at(a, &["NOMCOM"]).and_then(clean_text),
            code_insee: m.opt(
                "contact.adresse.code_insee",
                format_args!("{base}/NUMCOM"),
                text_at(a, &["NUMCOM"]),
                CodeInsee::parse,
            ),
        };
        if !adresse.is_empty() {
            j.contact.adresse = Some(adresse);
        }
    }

    if let Some(p) = foyer.child("PrestationRSA") {
        let sit = p.child("SituationDossierRSA");
        let find = |names: &[&str]| -> Option<&str> {
            sit.and_then(|s| text_at(s, names))
                .or_else(|| text_at(p, names))
        };
        j.rsa.etat_droit = m.opt(
            "rsa.etat_droit",
            "../PrestationRSA/SituationDossierRSA/ETATDOSRSA",
            find(&["ETATDOSRSA"]),
            EtatDroit::from_source,
        );
        j.rsa.motif_suspension =
            find(&["SuspensionVersement", "MOTISUSVERSRSA"]).and_then(clean_text);
        j.rsa.motif_cloture = find(&["FinDroit", "MOTICLORSA"]).and_then(clean_text);
        j.rsa.date_cloture = m.opt(
            "rsa.date_cloture",
            "../PrestationRSA/SituationDossierRSA/FinDroit/DTCLORSA",
            find(&["FinDroit", "DTCLORSA"]),
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
    }
}

/// The RSA role of a person: `ROLEPERS` of its `Prestations` line with `NATPREST=RSA`.
fn rsa_role(personne: &XmlElement) -> Option<&str> {
    personne
        .children_named("Prestations")
        .find(|p| text_at(p, &["NATPREST"]) == Some("RSA"))
        .and_then(|p| text_at(p, &["ROLEPERS"]))
}

/// Maps one household to the records of its eligible persons (cnaf.md): roles DEM
/// and CJT always, ENF when aged 16 to 25 on `DTREF`, only with an RSA `Prestations`.
pub fn map_foyer(foyer: &XmlElement, path: &str, dtref: Date) -> Vec<SourceItem> {
    let fonorg = text_at(foyer, &["IdentificationRSA", "Organisme", "FONORG"]).unwrap_or("");
    let numorg = text_at(foyer, &["IdentificationRSA", "Organisme", "NUMORG"]).unwrap_or("");
    let numdem = text_at(foyer, &["IdentificationRSA", "DemandeRSA", "NUMDEMRSA"]);
    let mut items = Vec::new();
    for (i, personne) in foyer.children_named("Personne").enumerate() {
        let rank = i + 1;
        let Some(role_raw) = rsa_role(personne) else {
            continue;
        };
        let base = format!("{path}/Personne[{rank}]");
        // The reference is the element path: the record id holds the RSA request
        // number, which must not reach error lines.
        let mut m = RecordMapper::new(base.clone(), base.clone());
        let mut j = Jeune::default();
        let role = match RsaRole::from_source(role_raw) {
            Ok(role) => role,
            // RDO and other roles are not beneficiaries this flow reads.
            Err(_) => continue,
        };
        let ident = personne.child("Identification");
        let get = |name: &str| ident.and_then(|e| text_at(e, &[name]));
        let dtnai = m.opt(
            "etat_civil.date_naissance",
            "Identification/DTNAI",
            get("DTNAI"),
            Date::parse,
        );
        match role {
            RsaRole::Dem | RsaRole::Cjt => {}
            RsaRole::Enf => match dtnai {
                Some(d) if (16..=25).contains(&d.age_on(dtref)) => {}
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
            RsaRole::Aut => continue,
        }
        j.rsa.role = Some(role);
        match numdem {
            Some(numdem) => {
                if let Some(record_id) = m.take(
                    "sources[].record_id",
                    "../IdentificationRSA/DemandeRSA/NUMDEMRSA",
                    RecordId::parse(&format!("{numdem}/{rank}")),
                ) {
                    j.sources.push(Source {
                        system: SourceSystem::Cnaf,
                        organisation: format!("{fonorg}{numorg}"),
                        record_id,
                    });
                }
            }
            None => m.reject(
                "sources[].record_id",
                "../IdentificationRSA/DemandeRSA/NUMDEMRSA",
                "NUMDEMRSA is missing",
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
        for name in ["PRENOM", "PRENOM2", "PRENOM3"] {
            if let Some(p) = get(name) {
                j.etat_civil.prenoms.extend(split_prenoms(p));
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
            "MontantCalculDroitRSAPersonne/TOPPERSDRODEVORSA",
            text_at(
                personne,
                &["MontantCalculDroitRSAPersonne", "TOPPERSDRODEVORSA"],
            ),
            parse_bool,
        );
        items.push(m.finish(j, AckToken(base)));
    }
    items
}
