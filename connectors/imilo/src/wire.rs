//! The JSON shapes of the I-MILO API (imilo.md), shared by the client and the
//! simulator. Unknown fields from the peer are tolerated (the API grows); `Debug` of
//! anything holding personal data prints ids only.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A JSON number or a string of digits, as a `u64`: the real API sends ids as
/// numbers where the examples write strings (imilo.md, "What the real API shows").
mod num_or_str {
    use serde::{Deserialize, Deserializer, de::Error};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Num(u64),
        Str(String),
    }

    fn parse<E: Error>(raw: Raw) -> Result<u64, E> {
        match raw {
            Raw::Num(n) => Ok(n),
            Raw::Str(s) => s
                .trim()
                .parse()
                .map_err(|_| E::custom("expected a number or a string of digits")),
        }
    }

    pub fn id<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        parse(Raw::deserialize(d)?)
    }

    pub fn opt_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        Option::<Raw>::deserialize(d)?.map(parse).transpose()
    }

    /// A number or a string, kept as its text.
    pub fn opt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Any {
            Num(serde_json::Number),
            Str(String),
        }
        Ok(Option::<Any>::deserialize(d)?.map(|a| match a {
            Any::Num(n) => n.to_string(),
            Any::Str(s) => s,
        }))
    }
}

/// `{"code": "...", "message": "..."}` of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

/// `GET /sue/dossiers/{idDossier}`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dossier {
    #[serde(deserialize_with = "num_or_str::id")]
    pub id_dossier: u64,
    #[serde(default)]
    pub id_jeune: Option<String>,
    #[serde(default, rename = "numeroDE")]
    pub numero_de: Option<String>,
    #[serde(default)]
    pub nom_naissance: Option<String>,
    #[serde(default)]
    pub nom_usage: Option<String>,
    #[serde(default)]
    pub prenom: Option<String>,
    #[serde(default)]
    pub date_naissance: Option<String>,
    #[serde(default)]
    pub mail: Option<String>,
    #[serde(default)]
    pub adresse: Option<DossierAdresse>,
    #[serde(default)]
    pub structure_rattachement: Option<StructureRattachement>,
    #[serde(default, rename = "accompagnementCEJ")]
    pub accompagnement_cej: Option<AccompagnementCej>,
    #[serde(default)]
    pub situations: Vec<DossierSituation>,
    // [reconstructed] extras, omitted when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telephone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numero_allocataire: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub niveau_formation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rqth: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commentaire: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub obligation_formation: Option<DossierObligationFormation>,
}

impl fmt::Debug for Dossier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dossier")
            .field("id_dossier", &self.id_dossier)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DossierAdresse {
    #[serde(default)]
    pub numero: Option<String>,
    #[serde(default)]
    pub libelle_voie: Option<String>,
    #[serde(default)]
    pub complement: Option<String>,
    #[serde(default)]
    pub code_postal: Option<String>,
    #[serde(default)]
    pub commune: Option<String>,
}

impl fmt::Debug for DossierAdresse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DossierAdresse(<redacted>)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StructureRattachement {
    #[serde(default)]
    pub nom_usuel: Option<String>,
    #[serde(default)]
    pub nom_officiel: Option<String>,
    #[serde(default)]
    pub code_structure: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccompagnementCej {
    #[serde(default, rename = "accompagnementCEJ")]
    pub accompagnement_cej: Option<bool>,
    #[serde(default)]
    pub date_debut: Option<String>,
    #[serde(default)]
    pub date_fin_prevue: Option<String>,
    #[serde(default)]
    pub date_fin_reelle: Option<String>,
    #[serde(default)]
    pub premier_accompagnement: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DossierSituation {
    #[serde(default)]
    pub etat: Option<String>,
    /// Not in the public sample; read when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_debut: Option<String>,
    #[serde(default)]
    pub date_fin: Option<String>,
    #[serde(default)]
    pub categorie_situation: Option<String>,
    #[serde(default)]
    pub code_rome_metier_prepare: Option<String>,
    #[serde(default)]
    pub code_rome_premier_metier: Option<String>,
    #[serde(default)]
    pub code_rome_metier_exerce: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DossierObligationFormation {
    #[serde(default)]
    pub statut: Option<String>,
    #[serde(default)]
    pub date_signalement: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub motif: Option<String>,
}

/// `GET /sue/structures/{codeStructure}/dossiers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DossierPage {
    pub page: u32,
    pub taille_page: u32,
    pub total: u64,
    pub dossiers: Vec<Dossier>,
}

/// One change event of `GET /operateurs/events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub identifiant: String,
    #[serde(default, deserialize_with = "num_or_str::opt_id")]
    pub id_dossier: Option<u64>,
    #[serde(rename = "type")]
    pub kind: String,
    pub action: String,
    #[serde(default, deserialize_with = "num_or_str::opt_text")]
    pub id_type: Option<String>,
    #[serde(default)]
    pub date: Option<String>,
}

/// `POST /partenaires/orientations`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrientationRequest {
    pub reference_externe: String,
    pub code_structure: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub motif: Option<String>,
    pub jeune: JeuneBody,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orientation: Option<OrientationBody>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rsa: Option<RsaBody>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ase: Option<AseBody>,
}

impl fmt::Debug for OrientationRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrientationRequest")
            .field("reference_externe", &self.reference_externe)
            .field("code_structure", &self.code_structure)
            .field("motif", &self.motif)
            .finish_non_exhaustive()
    }
}

/// The young person in an orientation (no NIR: the API never carries it).
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JeuneBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nom_naissance: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nom_usage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prenom: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_naissance: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telephone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adresse: Option<DossierAdresse>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numero_allocataire: Option<String>,
}

impl fmt::Debug for JeuneBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JeuneBody(<redacted>)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrientationBody {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referent: Option<Referent>,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Referent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nom: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail: Option<String>,
}

impl fmt::Debug for Referent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Referent(<redacted>)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RsaBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etat_droit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soumis_droits_devoirs: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AseBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_majorite: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mna: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referent: Option<Referent>,
}

/// The answer to an orientation (201, or 200 when replayed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrientationResponse {
    pub id_prescription: String,
    #[serde(default)]
    pub id_dossier: Option<u64>,
}

/// `POST /partenaires/dossiers/{idDossier}/evenements`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvenementRequest {
    pub reference_externe: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub date: String,
    #[serde(default)]
    pub contenu: serde_json::Value,
}

impl fmt::Debug for EvenementRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EvenementRequest")
            .field("reference_externe", &self.reference_externe)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// The answer to an événement ([reconstructed]: the contract only says 201).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvenementResponse {
    #[serde(default)]
    pub id_evenement: Option<String>,
}

/// `POST /sue/dossiers/{idDossier}/situation`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SituationRequest {
    /// [reconstructed] the idempotency key, as for the other writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_externe: Option<String>,
    pub date_debut: String,
    #[serde(default)]
    pub date_fin_reelle: Option<String>,
    #[serde(default)]
    pub commentaire: Option<String>,
    pub mesure: String,
    #[serde(default)]
    pub login_conseiller: Option<String>,
}

impl fmt::Debug for SituationRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SituationRequest")
            .field("reference_externe", &self.reference_externe)
            .field("mesure", &self.mesure)
            .finish_non_exhaustive()
    }
}

/// The `mesure` values of a situation write.
pub const MESURES: [&str; 8] = [
    "EMPLOI",
    "PROJET_PROFESSIONNEL",
    "CULTURE_SPORT_LOISIRS",
    "CITOYENNETE",
    "FORMATION",
    "LOGEMENT",
    "SANTE",
    "NON_SNP",
];

/// The `type` values of an événement.
pub const EVENEMENT_TYPES: [&str; 3] = ["FAJ_DECISION", "OF_SUIVI", "ASE_MAJORITE"];
