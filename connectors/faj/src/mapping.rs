//! Mapping between the canonical record (`faj[]`, identity, address) and the platform's
//! JSON: the request body sent to `POST /api/v1/demandes`, and a platform request or
//! decision read back as a canonical `faj[]` entry.
//!
//! Money is in cents on both sides. Aid types and statuses are the canonical codes
//! lower-cased on our side and upper-cased on the platform's (`mobilite` ⇄ `MOBILITE`).

use chrono::{DateTime, Utc};
use passerelle_connector::RecordIssue;
use passerelle_model::{Cents, Date, Faj, FajAide, FajAideType, FajStatut, Jeune};
use serde::{Deserialize, Serialize};

/// The instructeur block: who files the request.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instructeur {
    /// `ML` when a Mission Locale files it.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_structure: Option<String>,
    /// The conseiller's name, as the platform shows it to the commission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conseiller: Option<String>,
}

/// The address block of the platform.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AdresseBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numero: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voie: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complement: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_postal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commune: Option<String>,
}

/// The jeune block of the platform.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct JeuneBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nom: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prenom: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_naissance: Option<Date>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imilo_id_dossier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adresse: Option<AdresseBody>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub situation_familiale: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ressources_mensuelles: Option<Cents>,
}

// Identity and address are personal: their Debug shows nothing but the shape.
impl std::fmt::Debug for JeuneBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JeuneBody(<redacted>)")
    }
}

// The conseiller's name is personal too.
impl std::fmt::Debug for Instructeur {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instructeur")
            .field("type", &self.kind)
            .field("code_structure", &self.code_structure)
            .field(
                "conseiller",
                &self.conseiller.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

// Free text (projet_insertion) may say anything about the jeune.
impl std::fmt::Debug for DemandeBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemandeBody")
            .field("date_depot", &self.date_depot)
            .field("instructeur", &self.instructeur)
            .field("jeune", &self.jeune)
            .field(
                "projet_insertion",
                &self.projet_insertion.as_ref().map(|_| "<redacted>"),
            )
            .field("derogation_mineur", &self.derogation_mineur)
            .field("aides", &self.aides)
            .finish()
    }
}

impl std::fmt::Debug for AdresseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdresseBody(<redacted>)")
    }
}

/// One aid as the platform spells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AideBody {
    /// `SUBSISTANCE`, `URGENCE`, `PROJET`, `PERMIS`, `MOBILITE`, `LOGEMENT`, `FORMATION`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub montant_demande: Option<Cents>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paye_a: Option<String>,
}

/// The body of `POST /api/v1/demandes`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemandeBody {
    pub date_depot: Date,
    pub instructeur: Instructeur,
    pub jeune: JeuneBody,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projet_insertion: Option<String>,
    /// Only for a jeune of 16 or 17 at `date_depot`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derogation_mineur: Option<bool>,
    pub aides: Vec<AideBody>,
}

/// A decision block: `{"date_commission", "montant_accorde", "motif"}`.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PlatformDecision {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_commission: Option<Date>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub montant_accorde: Option<Cents>,
    /// Free text written by the commission: may be personal, never logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub motif: Option<String>,
}

impl std::fmt::Debug for PlatformDecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformDecision")
            .field("date_commission", &self.date_commission)
            .field("montant_accorde", &self.montant_accorde)
            .field("motif", &self.motif.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A request as `GET /api/v1/demandes/{id}` and the listing return it. Unknown fields
/// are ignored: a platform adding one must not break the nightly reconciliation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemandePlateforme {
    pub id_demande: String,
    /// `DEPOSEE`, `INCOMPLETE`, `EN_COMMISSION`, `ACCORDEE`, `REFUSEE`, `AJOURNEE`, `PAYEE`.
    pub statut: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_depot: Option<Date>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aides: Vec<AideBody>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<PlatformDecision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modifie_le: Option<DateTime<Utc>>,
    /// Who filed the request (the structure code is where its decision goes back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructeur: Option<InstructeurRef>,
    /// The jeune block as filed; only its I-MILO dossier is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jeune: Option<JeuneRef>,
}

/// The part of the filed `instructeur` block a decision needs: the ML to answer.
/// Other fields (the conseiller's name) are ignored when read.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct InstructeurRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_structure: Option<String>,
}

/// The part of the filed `jeune` block a decision needs: the I-MILO dossier the
/// `FAJ_DECISION` événement is posted on. Identity and address are not read.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct JeuneRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imilo_id_dossier: Option<String>,
}

/// One field error of a 422 answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErreurChamp {
    pub champ: String,
    pub code: String,
    #[serde(default)]
    pub message: String,
}

impl ErreurChamp {
    /// `champ: code`, then the message as its digest and length: the platform's
    /// message is free text (it may name the young person), and the reason reaches
    /// the receipt and the journal (`passerelle_connector::redact`).
    pub fn to_reason(&self) -> String {
        use passerelle_connector::redact;
        let head = format!(
            "{}: {}",
            redact::code(&self.champ),
            redact::code(&self.code)
        );
        if self.message.trim().is_empty() {
            head
        } else {
            format!("{head}: {}", redact::free_text(&self.message))
        }
    }
}

/// A 422 body: `{"erreurs": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erreurs {
    pub erreurs: Vec<ErreurChamp>,
}

/// The platform's code of an aid type.
pub fn aide_type_to_platform(t: FajAideType) -> String {
    t.as_str().to_ascii_uppercase()
}

/// The platform's code of a status.
pub fn statut_to_platform(s: FajStatut) -> String {
    s.as_str().to_ascii_uppercase()
}

/// Which `faj[]` entry a delivery files: the last one not filed yet (no `id`).
fn entry_to_file(record: &Jeune) -> Option<&Faj> {
    record.faj.iter().rev().find(|f| f.id.is_none())
}

/// Builds the request body from a canonical record projected for `faj-demande`.
///
/// Fields the canonical record does not hold (`situation_familiale`,
/// `ressources_mensuelles`, `paye_a`) are left out; the platform's own validation decides what is missing, so that the conseiller
/// reads one list of reasons. A record with no `faj[]` entry to file is refused here.
pub fn demande_body(record: &Jeune, today: Date) -> Result<DemandeBody, Vec<RecordIssue>> {
    let Some(faj) = entry_to_file(record) else {
        return Err(vec![RecordIssue {
            reference: String::new(),
            line: None,
            field: "faj".into(),
            reason: "no faj[] entry without an id, nothing to file".into(),
        }]);
    };
    let ec = &record.etat_civil;
    let acc = record.accompagnement.as_ref();
    let instructeur = Instructeur {
        kind: "ML".into(),
        code_structure: acc
            .and_then(|a| a.structure.as_ref())
            .map(|s| s.as_str().to_owned()),
        conseiller: acc
            .and_then(|a| a.conseiller.as_ref())
            .and_then(|c| c.nom.clone()),
    };
    let adresse = record.contact.adresse.as_ref().map(|a| AdresseBody {
        numero: a.numero.clone(),
        voie: a.voie.clone(),
        complement: a.complement.clone(),
        code_postal: a.code_postal.as_ref().map(|c| c.as_str().to_owned()),
        commune: a.commune.clone(),
    });
    let jeune = JeuneBody {
        // The birth name is the legal one a grant is paid under; the usage name only
        // when no birth name is known.
        nom: ec.nom_naissance.clone().or_else(|| ec.nom_usage.clone()),
        prenom: ec.prenoms.first().cloned(),
        date_naissance: ec.date_naissance,
        imilo_id_dossier: record
            .identifiants
            .imilo_dossier
            .as_ref()
            .map(|d| d.as_str().to_owned()),
        adresse: adresse.filter(|a| *a != AdresseBody::default()),
        situation_familiale: None,
        ressources_mensuelles: None,
    };
    let aides = faj
        .aides
        .iter()
        .map(|a| AideBody {
            kind: aide_type_to_platform(a.kind),
            montant_demande: a.montant_demande,
            paye_a: None,
        })
        .collect();
    Ok(DemandeBody {
        date_depot: faj.date_depot.unwrap_or(today),
        instructeur,
        jeune,
        projet_insertion: faj.projet_insertion.clone(),
        derogation_mineur: faj.derogation_mineur,
        aides,
    })
}

/// Why a platform answer could not be read as canonical data (names the field and the
/// rule, never the value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{champ}: {reason}")]
pub struct MappingError {
    pub champ: String,
    pub reason: String,
}

/// Parses a platform status code.
pub fn statut_from_platform(s: &str) -> Result<FajStatut, MappingError> {
    FajStatut::from_source(s).map_err(|_| MappingError {
        champ: "statut".into(),
        reason: "unknown status code".into(),
    })
}

/// Builds a canonical `faj[]` entry from what the platform says about one request.
///
/// The platform decides one `montant_accorde` for the whole request, while the
/// canonical record holds one per aid. It is set per aid only where that is exact: a
/// single aid; a grant equal to the total requested (each aid gets its request); a
/// refusal (each aid 0). A partial grant over several aids is not split: the amounts
/// stay absent rather than invented (the total travels in `Decision`).
pub fn faj_from_platform(
    id_demande: &str,
    statut: FajStatut,
    date_depot: Option<Date>,
    aides: &[AideBody],
    decision: Option<&PlatformDecision>,
) -> Result<Faj, MappingError> {
    let mut out_aides = Vec::with_capacity(aides.len());
    for (i, a) in aides.iter().enumerate() {
        let kind = FajAideType::from_source(&a.kind).map_err(|_| MappingError {
            champ: format!("aides[{i}].type"),
            reason: "unknown aid type".into(),
        })?;
        out_aides.push(FajAide {
            kind,
            montant_demande: a.montant_demande,
            montant_accorde: None,
        });
    }
    let accorde = decision.and_then(|d| d.montant_accorde);
    let total: Cents = out_aides.iter().filter_map(|a| a.montant_demande).sum();
    let all_known = out_aides.iter().all(|a| a.montant_demande.is_some());
    match statut {
        FajStatut::Refusee if accorde.unwrap_or(0) == 0 => {
            for a in &mut out_aides {
                a.montant_accorde = Some(0);
            }
        }
        FajStatut::Accordee | FajStatut::Payee => {
            if let Some(m) = accorde {
                if out_aides.len() == 1 {
                    out_aides[0].montant_accorde = Some(m);
                } else if all_known && m == total {
                    for a in &mut out_aides {
                        a.montant_accorde = a.montant_demande;
                    }
                } else if m == 0 {
                    for a in &mut out_aides {
                        a.montant_accorde = Some(0);
                    }
                }
            }
        }
        _ => {}
    }
    Ok(Faj {
        id: Some(id_demande.to_owned()),
        date_depot,
        aides: out_aides,
        statut: Some(statut),
        date_commission: decision.and_then(|d| d.date_commission),
        motif: decision.and_then(|d| d.motif.clone()),
        ..Faj::default()
    })
}

/// A platform request read back as a canonical `faj[]` entry.
pub fn demande_to_faj(d: &DemandePlateforme) -> Result<Faj, MappingError> {
    let statut = statut_from_platform(&d.statut)?;
    faj_from_platform(
        &d.id_demande,
        statut,
        d.date_depot,
        &d.aides,
        d.decision.as_ref(),
    )
}

/// The receipt reasons of a 422: one line per field error.
pub fn reasons(erreurs: &[ErreurChamp]) -> Vec<String> {
    erreurs.iter().map(ErreurChamp::to_reason).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 16: a platform's error message is free text; the reason keeps the field
    /// and the code, and the message as its digest and length.
    #[test]
    fn refusal_messages_are_digested() {
        let e = ErreurChamp {
            champ: "jeune.date_naissance".into(),
            code: "AGE_HORS_BORNES".into(),
            message: "Martin Yanis a 31 ans".into(),
        };
        let r = e.to_reason();
        assert!(
            r.starts_with("jeune.date_naissance: AGE_HORS_BORNES: text sha256:"),
            "{r}"
        );
        assert!(!r.contains("Martin") && r.ends_with("(21 chars)"), "{r}");
    }

    fn aide(kind: &str, m: u64) -> AideBody {
        AideBody {
            kind: kind.into(),
            montant_demande: Some(m),
            paye_a: None,
        }
    }

    fn decision(m: Option<u64>) -> PlatformDecision {
        PlatformDecision {
            date_commission: Some(Date::parse("2026-12-03").unwrap()),
            montant_accorde: m,
            motif: None,
        }
    }

    #[test]
    fn codes_round_trip() {
        for t in FajAideType::ALL {
            assert_eq!(
                FajAideType::from_source(&aide_type_to_platform(*t)).unwrap(),
                *t
            );
        }
        for s in FajStatut::ALL {
            assert_eq!(statut_from_platform(&statut_to_platform(*s)).unwrap(), *s);
        }
        assert!(statut_from_platform("VALIDEE").is_err());
    }

    #[test]
    fn amounts_are_set_only_when_exact() {
        let one = [aide("MOBILITE", 25_000)];
        let f = faj_from_platform(
            "X",
            FajStatut::Accordee,
            None,
            &one,
            Some(&decision(Some(20_000))),
        )
        .unwrap();
        assert_eq!(f.aides[0].montant_accorde, Some(20_000));

        let two = [aide("MOBILITE", 25_000), aide("PERMIS", 30_000)];
        let full = faj_from_platform(
            "X",
            FajStatut::Accordee,
            None,
            &two,
            Some(&decision(Some(55_000))),
        )
        .unwrap();
        assert_eq!(full.aides[1].montant_accorde, Some(30_000));
        let partial = faj_from_platform(
            "X",
            FajStatut::Accordee,
            None,
            &two,
            Some(&decision(Some(40_000))),
        )
        .unwrap();
        assert!(partial.aides.iter().all(|a| a.montant_accorde.is_none()));
        let refused =
            faj_from_platform("X", FajStatut::Refusee, None, &two, Some(&decision(None))).unwrap();
        assert!(refused.aides.iter().all(|a| a.montant_accorde == Some(0)));
        let pending = faj_from_platform("X", FajStatut::Deposee, None, &two, None).unwrap();
        assert!(pending.aides.iter().all(|a| a.montant_accorde.is_none()));
        assert!(
            faj_from_platform("X", FajStatut::Deposee, None, &[aide("VOITURE", 1)], None)
                .unwrap_err()
                .to_string()
                .starts_with("aides[0].type")
        );
    }

    /// The form's project and a minor's derogation reach the platform's body.
    #[test]
    fn project_and_derogation_are_filed() {
        let j: Jeune = serde_json::from_value(serde_json::json!({
            "schema": "passerelle.jeune/1",
            "etat_civil": {"nom_naissance": "Martin", "prenoms": ["Yanis"], "date_naissance": "2009-07-14"},
            "faj": [{"aides": [{"type": "mobilite", "montant_demande": 25000}],
                     "projet_insertion": "Formation cariste", "derogation_mineur": true}]
        }))
        .unwrap();
        let body = demande_body(&j, Date::parse("2026-11-21").unwrap()).unwrap();
        let v = serde_json::to_value(&body).unwrap();
        assert_eq!(v["derogation_mineur"], true);
        assert_eq!(v["projet_insertion"], "Formation cariste");
        assert_eq!(v["aides"][0]["type"], "MOBILITE");
    }

    #[test]
    fn a_record_without_a_request_is_refused() {
        let j = Jeune::default();
        let issues = demande_body(&j, Date::parse("2026-11-21").unwrap()).unwrap_err();
        assert_eq!(issues[0].field, "faj");
    }
}
