//! Reading SOLIS exports (`SOLIS_EXPORT_{FLUX}_{DEPT}_{DATE}.xml`) into canonical
//! records, by the mapping of solis.md.
//!
//! Two passes over the file, both streaming: the first checks that the document is
//! whole (well-formed to the end, `nbIndividus` equal to the `Individu` count) without
//! building anything; only then does the second map records one `Individu` at a time.
//! A truncated file is thus refused before any record is handed on, and memory stays
//! flat in the file's size.

use std::fs::File;
use std::path::{Path, PathBuf};

use passerelle_connector::encoding::DecodingReader;
use passerelle_connector::xml::{
    RecordMapper, XmlElement, XmlStream, attr_of, open_file_with, text_of,
};
use passerelle_connector::{AckToken, ConnectorError, SourceItem};
use passerelle_model::{
    Adresse, Ase, AseStatut, Caf, CafOrganisme, Civilite, CodeInsee, CodePostal, Date, Departement,
    Email, EtatDroit, Jeune, Nir, NumeroAllocataire, NumeroDemandeRsa, Organisme, OrganismeType,
    Orientation, OrientationType, Personne, RecordId, RsaRole, SolisId, Source, SourceSystem,
    Telephone, clean_text, parse_bool, split_prenoms,
};

use crate::config::{ElementNames, SolisConfig};

/// The root element of an export.
pub const ROOT: &str = "ExportSolis";

/// The export flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFlux {
    Brsa,
    Ase,
}

impl ExportFlux {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Brsa => "BRSA",
            Self::Ase => "ASE",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "BRSA" => Some(Self::Brsa),
            "ASE" => Some(Self::Ase),
            _ => None,
        }
    }
}

/// What the root element says about the export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportHeader {
    pub departement: Departement,
    pub flux: ExportFlux,
    /// `nbIndividus`, checked against the count of `Individu`.
    pub nb_individus: u64,
    pub version: Option<String>,
}

fn refused(file: &str, reason: impl Into<String>) -> ConnectorError {
    ConnectorError::FileRefused {
        file: file.to_owned(),
        reason: reason.into(),
    }
}

fn header_of(root: &XmlElement, file: &str) -> Result<ExportHeader, ConnectorError> {
    if root.name != ROOT {
        return Err(refused(
            file,
            format!(
                "unknown format: root element is {}, expected {ROOT}",
                root.name
            ),
        ));
    }
    let departement = root
        .attr("departement")
        .ok_or_else(|| refused(file, "ExportSolis/@departement is missing"))
        .and_then(|d| {
            Departement::parse(d)
                .map_err(|e| refused(file, format!("ExportSolis/@departement {e}")))
        })?;
    let flux = root
        .attr("flux")
        .and_then(ExportFlux::parse)
        .ok_or_else(|| refused(file, "ExportSolis/@flux must be BRSA or ASE"))?;
    let nb_individus = root
        .attr("nbIndividus")
        .and_then(|n| n.trim().parse::<u64>().ok())
        .ok_or_else(|| refused(file, "ExportSolis/@nbIndividus must be a count"))?;
    Ok(ExportHeader {
        departement,
        flux,
        nb_individus,
        version: root.attr("versionSolis").map(str::to_owned),
    })
}

/// An export checked whole, ready to be mapped record by record.
#[derive(Debug)]
pub struct Export {
    pub header: ExportHeader,
    path: PathBuf,
    config: SolisConfig,
}

impl Export {
    /// Checks the file (first pass): root, header, well-formedness to the end, and
    /// `nbIndividus` against the `Individu` elements. Refuses the whole file otherwise.
    #[tracing::instrument(skip(config), fields(file = %path.display()))]
    pub fn open(path: &Path, config: &SolisConfig) -> Result<Self, ConnectorError> {
        let file = path.display().to_string();
        let (_, mut stream) =
            open_file_with(path, &config.reading).map_err(|e| e.into_refusal(&file))?;
        let root = stream.root().map_err(|e| e.into_refusal(&file))?.clone();
        let header = header_of(&root, &file)?;
        let names = &config.elements.individu;
        let mut count = 0u64;
        while let Some(child) = stream
            .next_child_with(|_| false)
            .map_err(|e| e.into_refusal(&file))?
        {
            if names.contains(&child.element.name) {
                count += 1;
            }
            stream.recycle(child.element);
        }
        if count != header.nb_individus {
            return Err(refused(
                &file,
                format!(
                    "truncated: nbIndividus says {}, the file holds {count} Individu",
                    header.nb_individus
                ),
            ));
        }
        Ok(Self {
            header,
            path: path.to_owned(),
            config: config.clone(),
        })
    }

    /// The second pass: one item per `Individu`, in file order.
    pub fn records(&self) -> Result<Records, ConnectorError> {
        let file = self.path.display().to_string();
        let (_, mut stream) =
            open_file_with(&self.path, &self.config.reading).map_err(|e| e.into_refusal(&file))?;
        stream.root().map_err(|e| e.into_refusal(&file))?;
        Ok(Records {
            stream,
            file,
            header: self.header.clone(),
            names: self.config.elements.clone(),
        })
    }
}

/// The records of an export, mapped one `Individu` at a time.
#[derive(Debug)]
pub struct Records {
    stream: XmlStream<DecodingReader<File>>,
    file: String,
    header: ExportHeader,
    names: ElementNames,
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
            let individu = &self.names.individu;
            let child = match self
                .stream
                .next_child_with(|n| individu.iter().any(|i| i == n))
            {
                Ok(Some(child)) => child,
                Ok(None) => return None,
                Err(e) => return Some(Err(e.into_refusal(&self.file))),
            };
            if !self.names.individu.contains(&child.element.name) {
                self.stream.recycle(child.element);
                continue;
            }
            let item = map_individu(&child.element, &child.path, &self.header, &self.names);
            self.stream.recycle(child.element);
            return Some(Ok(item));
        }
    }
}

/// A relative element path, formatted only when an issue needs it.
struct Rel<'a>(&'a str, &'a str);

impl std::fmt::Display for Rel<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.1.is_empty() {
            f.write_str(self.0)
        } else {
            write!(f, "{}/{}", self.0, self.1)
        }
    }
}

/// Maps one `Individu` to a canonical record (or its rejections), by solis.md.
pub fn map_individu(
    el: &XmlElement,
    path: &str,
    header: &ExportHeader,
    n: &ElementNames,
) -> SourceItem {
    let id = attr_of(Some(el), "idSolis");
    let mut m = RecordMapper::new(id.unwrap_or(path), path);
    let ack = AckToken(path.to_owned());
    let mut j = Jeune::default();
    match id {
        None => m.reject("identifiants.solis", "@idSolis", "idSolis is missing"),
        Some(raw) => {
            let solis = m.take("identifiants.solis", "@idSolis", SolisId::parse(raw));
            let record_id = m.take("sources[].record_id", "@idSolis", RecordId::parse(raw));
            if let (Some(solis), Some(record_id)) = (solis, record_id) {
                j.sources.push(Source {
                    system: SourceSystem::Solis,
                    organisation: format!("CD{}", header.departement),
                    record_id,
                });
                j.identifiants.solis = Some(solis);
            }
        }
    }

    // État civil.
    if let Some(ec) = el.child_any(&n.etat_civil) {
        let ecn = ec.name.as_str();
        fn at<'a>(ecn: &'a str, child: Option<&'a XmlElement>) -> Rel<'a> {
            Rel(ecn, child.map_or("", |c| c.name.as_str()))
        }
        let c = ec.child_any(&n.civilite);
        j.etat_civil.civilite = m.opt(
            "etat_civil.civilite",
            at(ecn, c),
            text_of(c),
            Civilite::from_source,
        );
        j.etat_civil.nom_naissance = text_of(ec.child_any(&n.nom_naissance)).and_then(clean_text);
        j.etat_civil.nom_usage = text_of(ec.child_any(&n.nom_usage)).and_then(clean_text);
        j.etat_civil.prenoms = text_of(ec.child_any(&n.prenoms))
            .map(split_prenoms)
            .unwrap_or_default();
        let c = ec.child_any(&n.date_naissance);
        j.etat_civil.date_naissance = m.opt(
            "etat_civil.date_naissance",
            at(ecn, c),
            text_of(c),
            Date::parse,
        );
        let c = ec.child_any(&n.commune_naissance);
        j.etat_civil.commune_naissance_insee = m.opt(
            "etat_civil.commune_naissance_insee",
            format_args!("{}/@codeInsee", at(ecn, c)),
            attr_of(c, "codeInsee"),
            CodeInsee::parse,
        );
        let c = ec.child_any(&n.nir);
        j.identifiants.nir = m.opt("identifiants.nir", at(ecn, c), text_of(c), Nir::parse);
    }

    // Adresse: attributes, empty ones absent.
    if let Some(a) = el.child_any(&n.adresse) {
        let an = a.name.as_str();
        let adresse = Adresse {
            numero: attr_of(Some(a), "numero").and_then(clean_text),
            voie: attr_of(Some(a), "voie").and_then(clean_text),
            complement: attr_of(Some(a), "complement").and_then(clean_text),
            code_postal: m.opt(
                "contact.adresse.code_postal",
                format_args!("{an}/@codePostal"),
                attr_of(Some(a), "codePostal"),
                CodePostal::parse,
            ),
            commune: attr_of(Some(a), "commune").and_then(clean_text),
            code_insee: m.opt(
                "contact.adresse.code_insee",
                format_args!("{an}/@codeInsee"),
                attr_of(Some(a), "codeInsee"),
                CodeInsee::parse,
            ),
        };
        if !adresse.is_empty() {
            j.contact.adresse = Some(adresse);
        }
    }

    // Contact: telephones (a bad one is dropped with a warning), e-mail.
    if let Some(c) = el.child_any(&n.contact) {
        let mut rank = 0;
        for t in c.children_any(&n.telephone) {
            rank += 1;
            let at = format!("{}/{}[{rank}]", c.name, t.name);
            if let Some(tel) = m.opt(
                "contact.telephones[]",
                &at,
                text_of(Some(t)),
                Telephone::parse,
            ) && !j.contact.telephones.contains(&tel)
            {
                j.contact.telephones.push(tel);
            }
        }
        if let Some(e) = c.child_any(&n.courriel) {
            let at = format!("{}/{}", c.name, e.name);
            j.contact.email = m.opt("contact.email", &at, text_of(Some(e)), Email::parse);
        }
    }

    // DossierRSA.
    if let Some(d) = el.child_any(&n.dossier_rsa) {
        let dn = d.name.as_str();
        let at = |a: &'static str| Rel(dn, a);
        let numero = m.opt(
            "identifiants.caf.numero_allocataire",
            at("@numeroAllocataire"),
            attr_of(Some(d), "numeroAllocataire"),
            NumeroAllocataire::parse,
        );
        let organisme = m.opt(
            "identifiants.caf.organisme",
            at("@organisme"),
            attr_of(Some(d), "organisme"),
            CafOrganisme::from_source,
        );
        match (organisme, numero) {
            (Some(organisme), Some(numero_allocataire)) => {
                j.identifiants.caf = Some(Caf {
                    organisme,
                    numero_allocataire,
                });
            }
            (None, Some(_)) if attr_of(Some(d), "organisme").is_none() => m.reject(
                "identifiants.caf.organisme",
                at("@organisme"),
                "organisme is missing beside numeroAllocataire",
            ),
            _ => {}
        }
        j.identifiants.numero_demande_rsa = m.opt(
            "identifiants.numero_demande_rsa",
            at("@numeroDemande"),
            attr_of(Some(d), "numeroDemande"),
            NumeroDemandeRsa::parse,
        );
        j.rsa.role = m.opt(
            "rsa.role",
            at("@role"),
            attr_of(Some(d), "role"),
            RsaRole::from_source,
        );
        j.rsa.etat_droit = m.opt(
            "rsa.etat_droit",
            at("@etatDroit"),
            attr_of(Some(d), "etatDroit"),
            EtatDroit::from_source,
        );
        j.rsa.soumis_droits_devoirs = m.opt(
            "rsa.soumis_droits_devoirs",
            at("@soumisDroitsDevoirs"),
            attr_of(Some(d), "soumisDroitsDevoirs"),
            parse_bool,
        );
        j.rsa.date_ouverture = m.opt(
            "rsa.date_ouverture",
            at("@dateOuverture"),
            attr_of(Some(d), "dateOuverture"),
            Date::parse,
        );
    }

    // Orientation.
    if let Some(o) = el.child_any(&n.orientation) {
        let on = o.name.as_str();
        let mut orientation = Orientation {
            kind: m.opt(
                "orientation.type",
                format_args!("{on}/@type"),
                attr_of(Some(o), "type"),
                OrientationType::from_source,
            ),
            date: m.opt(
                "orientation.date",
                format_args!("{on}/@date"),
                attr_of(Some(o), "date"),
                Date::parse,
            ),
            ..Orientation::default()
        };
        if let Some(org) = o.child_any(&n.organisme) {
            let at = format!("{on}/{}/@type", org.name);
            let kind = m.opt(
                "orientation.organisme.type",
                &at,
                attr_of(Some(org), "type"),
                OrganismeType::from_source,
            );
            let code = attr_of(Some(org), "code").and_then(clean_text);
            match kind {
                Some(kind) => orientation.organisme = Some(Organisme { kind, code }),
                None if attr_of(Some(org), "type").is_none() && code.is_some() => m.reject(
                    "orientation.organisme.type",
                    &at,
                    "type is missing beside code",
                ),
                None => {}
            }
        }
        orientation.referent = referent(&mut m, o, n, "orientation.referent");
        if orientation != Orientation::default() {
            j.orientation = Some(orientation);
        }
    }

    // Prise en charge ASE.
    if let Some(p) = el.child_any(&n.prise_en_charge_ase) {
        let pn = p.name.as_str();
        let ase = Ase {
            statut: m.opt(
                "ase.statut",
                format_args!("{pn}/@statut"),
                attr_of(Some(p), "statut"),
                AseStatut::from_source,
            ),
            date_majorite: m.opt(
                "ase.date_majorite",
                format_args!("{pn}/@dateMajorite"),
                attr_of(Some(p), "dateMajorite"),
                Date::parse,
            ),
            mna: m.opt(
                "ase.mna",
                format_args!("{pn}/@mna"),
                attr_of(Some(p), "mna"),
                parse_bool,
            ),
            referent: referent(&mut m, p, n, "ase.referent"),
        };
        if ase != Ase::default() {
            j.ase = Some(ase);
        }
    }

    // Art. 9 data: free text and disability recognition.
    for o in el.children_any(&n.observations) {
        if let Some(t) = text_of(Some(o)).and_then(clean_text) {
            j.sensible.commentaires.push(t);
        }
    }
    if let Some(s) = el.child_any(&n.sante) {
        j.sensible.rqth = m.opt(
            "sensible.rqth",
            format_args!("{}/@rqth", s.name),
            attr_of(Some(s), "rqth"),
            parse_bool,
        );
    }

    m.finish(j, ack)
}

/// A `Referent` child: name and e-mail; a malformed professional e-mail is dropped
/// with a warning, as contact values are.
fn referent(
    m: &mut RecordMapper,
    parent: &XmlElement,
    n: &ElementNames,
    canon: &str,
) -> Option<Personne> {
    let r = parent.child_any(&n.referent)?;
    let at = format!("{}/{}/@courriel", parent.name, r.name);
    let p = Personne {
        nom: attr_of(Some(r), "nom").and_then(clean_text),
        email: m.opt_drop(
            &format!("{canon}.email"),
            &at,
            attr_of(Some(r), "courriel"),
            Email::parse,
        ),
    };
    (!p.is_empty()).then_some(p)
}
