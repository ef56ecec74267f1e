//! The `passerelle.jeune/1` record as Rust types; its serde form is the JSON contract
//! of canonical.md (snake_case, absent values omitted, dates, cents, canonical codes).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::codes::*;
use crate::value::*;

/// The schema id every record carries.
pub const SCHEMA: &str = "passerelle.jeune/1";

/// The `schema` field: always `passerelle.jeune/1`, refused otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SchemaId;

impl Serialize for SchemaId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(SCHEMA)
    }
}

impl<'de> Deserialize<'de> for SchemaId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        if s == SCHEMA {
            Ok(SchemaId)
        } else {
            Err(serde::de::Error::custom(
                "unsupported schema, expected passerelle.jeune/1",
            ))
        }
    }
}

/// One young person as known to one or more systems.
///
/// `Debug` lists only the field paths the record holds, never their values.
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Jeune {
    /// Always `passerelle.jeune/1`.
    pub schema: SchemaId,
    /// The hub's own id, set by identity matching (never by a connector).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub_id: Option<String>,
    /// Where the record comes from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<Source>,
    #[serde(default, skip_serializing_if = "Identifiants::is_empty")]
    pub identifiants: Identifiants,
    #[serde(default, skip_serializing_if = "EtatCivil::is_empty")]
    pub etat_civil: EtatCivil,
    #[serde(default, skip_serializing_if = "Contact::is_empty")]
    pub contact: Contact,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub representants_legaux: Vec<RepresentantLegal>,
    #[serde(default, skip_serializing_if = "Rsa::is_empty")]
    pub rsa: Rsa,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orientation: Option<Orientation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accompagnement: Option<Accompagnement>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub situations: Vec<Situation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub niveau_formation: Option<NiveauFormation>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faj: Vec<Faj>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ase: Option<Ase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub obligation_formation: Option<ObligationFormation>,
    #[serde(default, skip_serializing_if = "Sensible::is_empty")]
    pub sensible: Sensible,
}

impl fmt::Debug for Jeune {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jeune")
            .field("paths", &self.paths())
            .finish_non_exhaustive()
    }
}

impl Jeune {
    /// An empty record from one source.
    pub fn from_source(source: Source) -> Self {
        Self {
            sources: vec![source],
            ..Self::default()
        }
    }

    /// The record as one line of canonical JSON.
    pub fn to_json_line(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// `sources[]`: the system, the organisation in it, and the record's id there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub system: SourceSystem,
    /// ML structure code, `CD059`, a platform id, `CAF591`…
    pub organisation: String,
    pub record_id: RecordId,
}

/// `identifiants`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identifiants {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nir: Option<Nir>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imilo_dossier: Option<ImiloDossier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caf: Option<Caf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numero_demande_rsa: Option<NumeroDemandeRsa>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub france_travail_ide: Option<FranceTravailIde>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub france_travail_id: Option<FranceTravailId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ine: Option<Ine>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solis: Option<SolisId>,
}

impl Identifiants {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// `identifiants.caf`.
///
/// Deserialised through `CafWire`: how long the number may be depends on the
/// organisme (7 digits for the CAF, an MSA matricule of at most 15).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, try_from = "CafWire")]
pub struct Caf {
    pub organisme: CafOrganisme,
    pub numero_allocataire: NumeroAllocataire,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CafWire {
    organisme: CafOrganisme,
    numero_allocataire: String,
}

impl TryFrom<CafWire> for Caf {
    type Error = String;
    fn try_from(w: CafWire) -> Result<Self, String> {
        let numero_allocataire = NumeroAllocataire::parse_for(w.organisme, &w.numero_allocataire)
            .map_err(|e| format!("invalid NumeroAllocataire: {e}"))?;
        Ok(Self {
            organisme: w.organisme,
            numero_allocataire,
        })
    }
}

/// `etat_civil`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtatCivil {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub civilite: Option<Civilite>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nom_naissance: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nom_usage: Option<String>,
    /// First given name first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prenoms: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_naissance: Option<Date>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commune_naissance_insee: Option<CodeInsee>,
}

impl EtatCivil {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The person's initials as a list shows them to a sender (`J. D.`: first given
    /// name, then the name in use, else the birth name); `None` with neither.
    /// Personal still, if less: the hub keeps them sealed.
    pub fn initiales(&self) -> Option<String> {
        let first = |s: &str| {
            s.trim()
                .chars()
                .find(|c| c.is_alphabetic())
                .map(|c| c.to_uppercase().collect::<String>())
        };
        let prenom = self.prenoms.first().and_then(|p| first(p));
        let nom = self
            .nom_usage
            .as_deref()
            .and_then(first)
            .or_else(|| self.nom_naissance.as_deref().and_then(first));
        match (prenom, nom) {
            (None, None) => None,
            (p, n) => Some(
                [p, n]
                    .into_iter()
                    .flatten()
                    .map(|c| format!("{c}."))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
        }
    }
}

/// `contact`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adresse: Option<Adresse>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub telephones: Vec<Telephone>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<Email>,
    /// Class `social`, although it sits in `contact`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sans_domicile_fixe: Option<bool>,
}

impl Contact {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// `contact.adresse`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adresse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numero: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voie: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complement: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_postal: Option<CodePostal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commune: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_insee: Option<CodeInsee>,
}

impl Adresse {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// `representants_legaux[]`, only for minors.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepresentantLegal {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nom: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prenom: Option<String>,
    /// Free text: `mere`, `pere`, `tuteur`…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lien: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telephone: Option<Telephone>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<Email>,
}

/// `rsa`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rsa {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<RsaRole>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etat_droit: Option<EtatDroit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soumis_droits_devoirs: Option<bool>,
    /// CNAF `TOPPERSENTDRODEVORSA`: the person newly entered rights and duties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrant_droits_devoirs: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_ouverture: Option<Date>,
    /// CNAF code kept as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub motif_suspension: Option<String>,
    /// CNAF code kept as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub motif_cloture: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_cloture: Option<Date>,
}

impl Rsa {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// `orientation`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Orientation {
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<OrientationType>,
    /// The source system's own code when the mapping loses information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<Date>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organisme: Option<Organisme>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referent: Option<Personne>,
}

/// `orientation.organisme`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Organisme {
    #[serde(rename = "type")]
    pub kind: OrganismeType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// A professional contact: referent, conseiller.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Personne {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nom: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<Email>,
}

impl Personne {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// `accompagnement`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accompagnement {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispositif: Option<Dispositif>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispositif_source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_debut: Option<Date>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_fin_prevue: Option<Date>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_fin_reelle: Option<Date>,
    /// ML structure code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structure: Option<StructureCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conseiller: Option<Personne>,
}

/// `situations[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Situation {
    pub categorie: SituationCategorie,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categorie_source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etat: Option<SituationEtat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_debut: Option<Date>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_fin: Option<Date>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_rome: Option<String>,
}

/// `niveau_formation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NiveauFormation {
    pub niveau: Niveau,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systeme_source: Option<SourceSystem>,
}

/// Money in integer cents.
pub type Cents = u64;

/// `faj[]`: one FAJ request and its decision.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faj {
    /// The platform's request id (`FAJ-059-2026-000123`), once filed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_depot: Option<Date>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aides: Vec<FajAide>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statut: Option<FajStatut>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_commission: Option<Date>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub motif: Option<String>,
    /// The conseiller's account of the young person's project, which the commission
    /// reads (the platform's `projet_insertion`); free text written for the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projet_insertion: Option<String>,
    /// A request for a young person of 16 or 17, which the règlement allows only by
    /// derogation (the platform's `derogation_mineur`); absent for an adult.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derogation_mineur: Option<bool>,
}

/// `faj[].aides[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FajAide {
    #[serde(rename = "type")]
    pub kind: FajAideType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub montant_demande: Option<Cents>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub montant_accorde: Option<Cents>,
}

/// `ase`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ase {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statut: Option<AseStatut>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_majorite: Option<Date>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mna: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referent: Option<Personne>,
}

/// `obligation_formation`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObligationFormation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statut: Option<ObligationFormationStatut>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_signalement: Option<Date>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub motif: Option<String>,
    /// The CD's follow-up text code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suite: Option<String>,
}

/// `sensible`: GDPR Art. 9 and Art. 10 data.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sensible {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rqth: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub freins_sante: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commentaires: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub situation_penitentiaire: Option<String>,
}

impl Sensible {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initials_of_the_given_name_and_the_name_in_use() {
        let e = EtatCivil {
            nom_naissance: Some("Dupont".into()),
            nom_usage: Some("  élan".into()),
            prenoms: vec!["jean-marc".into(), "Paul".into()],
            ..Default::default()
        };
        assert_eq!(e.initiales().as_deref(), Some("J. É."));
        let birth_only = EtatCivil {
            nom_naissance: Some("Dupont".into()),
            ..Default::default()
        };
        assert_eq!(birth_only.initiales().as_deref(), Some("D."));
        assert_eq!(EtatCivil::default().initiales(), None);
    }
}
