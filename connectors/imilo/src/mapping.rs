//! Mapping between an I-MILO dossier and the canonical record, and from a canonical
//! record to the bodies I-MILO accepts (orientation, événement).
//!
//! Decisions (the contract leaves them open):
//! - `accompagnementCEJ.accompagnementCEJ == true` → `accompagnement` with dispositif
//!   `CEJ` and the CEJ dates. When it is `false` but `premierAccompagnement` is set, the
//!   young person is accompanied by the ML outside the CEJ, which is the PACEA pathway
//!   (every ML accompaniment is a PACEA, the CEJ being its intensive phase): dispositif
//!   `PACEA`, `date_debut` = `premierAccompagnement`, no end dates (the CEJ dates do not
//!   describe the PACEA). Without either, no `accompagnement`.
//! - `situations[].code_rome`: the job exercised, else prepared, else first job.
//! - `niveauFormation`: old national levels NV1…NV5 → 2019 framework 7, 6, 5, 4, 3
//!   (NV1 covers levels 7 and 8; 7 is the safe floor); `CFG`, `CP4`, `C12`, `C3A`, `AFS`
//!   (below a level-3 diploma) → `infra3`. The I-MILO code is kept in `code_source`.
//! - Dates that fail reject the record (canonical rule); unknown codes in the
//!   accompaniment data (situation état, level, training-obligation statut) drop the
//!   value with a warning, an unknown situation category becomes `autre` with its
//!   label in `categorie_source`.

use passerelle_connector::{AckToken, Delivery, RecordIssue, SourceItem};
use passerelle_model::{
    Accompagnement, Adresse, Caf, CafOrganisme, CodePostal, Date, Dispositif, Email, FieldError,
    FranceTravailIde, ImiloDossier, Issues, Jeune, Niveau, NiveauFormation, NumeroAllocataire,
    ObligationFormation, ObligationFormationStatut, OrientationType, RecordId, Situation,
    SituationCategorie, SituationEtat, Source, SourceSystem, StructureCode, Telephone, clean_text,
    split_prenoms,
};
use serde_json::json;

use crate::wire::{
    AseBody, Dossier, DossierAdresse, EvenementRequest, JeuneBody, OrientationBody,
    OrientationRequest, Referent, RsaBody,
};

/// A mapped dossier: the record unless rejected, and every issue met.
#[derive(Debug, Clone)]
pub struct Mapped {
    pub record: Option<Jeune>,
    pub rejects: Vec<FieldError>,
    pub warnings: Vec<FieldError>,
}

impl Mapped {
    /// The item a source hands to the engine.
    pub fn into_item(self, reference: &str, ack: AckToken) -> SourceItem {
        let warnings = self
            .warnings
            .iter()
            .map(|e| RecordIssue::from_field(reference, None, e))
            .collect();
        let outcome = match self.record {
            Some(r) => Ok(r),
            None => Err(self
                .rejects
                .iter()
                .map(|e| RecordIssue::from_field(reference, None, e))
                .collect()),
        };
        SourceItem {
            outcome,
            warnings,
            ack,
        }
    }
}

fn date(issues: &mut Issues, path: &str, raw: Option<&str>) -> Option<Date> {
    issues.opt(path, raw, Date::parse)
}

fn text(raw: Option<&str>) -> Option<String> {
    raw.and_then(clean_text)
}

/// `niveauFormation` → 2019 framework level.
pub fn niveau_of(code: &str) -> Option<Niveau> {
    Some(match code.trim().to_ascii_uppercase().as_str() {
        "NV1" => Niveau::N7,
        "NV2" => Niveau::N6,
        "NV3" => Niveau::N5,
        "NV4" => Niveau::N4,
        "NV5" => Niveau::N3,
        "CFG" | "CP4" | "C12" | "C3A" | "AFS" => Niveau::Infra3,
        _ => return None,
    })
}

/// An I-MILO dossier → the canonical record.
pub fn dossier_to_jeune(d: &Dossier) -> Mapped {
    let mut issues = Issues::default();
    let id = d.id_dossier.to_string();
    let structure_raw = d
        .structure_rattachement
        .as_ref()
        .and_then(|s| s.code_structure.as_deref())
        .and_then(clean_text);
    let structure = issues.opt(
        "accompagnement.structure",
        structure_raw.as_deref(),
        StructureCode::parse,
    );

    let mut j = Jeune::default();
    match RecordId::parse(&id) {
        Ok(record_id) => j.sources.push(Source {
            system: SourceSystem::Imilo,
            organisation: structure
                .as_ref()
                .map_or_else(|| "imilo".to_owned(), |s| s.as_str().to_owned()),
            record_id,
        }),
        Err(e) => issues.push(FieldError::at("sources.record_id", e)),
    }
    j.identifiants.imilo_dossier =
        issues.take("identifiants.imilo_dossier", ImiloDossier::parse(&id));
    j.identifiants.france_travail_ide = issues.opt(
        "identifiants.france_travail_ide",
        d.numero_de.as_deref(),
        FranceTravailIde::parse,
    );
    if let Some(numero) = issues.opt(
        "identifiants.caf",
        d.numero_allocataire.as_deref(),
        NumeroAllocataire::parse,
    ) {
        j.identifiants.caf = Some(Caf {
            organisme: CafOrganisme::Caf,
            numero_allocataire: numero,
        });
    }

    j.etat_civil.nom_naissance = text(d.nom_naissance.as_deref());
    j.etat_civil.nom_usage = text(d.nom_usage.as_deref());
    j.etat_civil.prenoms = d.prenom.as_deref().map(split_prenoms).unwrap_or_default();
    j.etat_civil.date_naissance = date(
        &mut issues,
        "etat_civil.date_naissance",
        d.date_naissance.as_deref(),
    );

    if let Some(a) = &d.adresse {
        let adresse = Adresse {
            numero: text(a.numero.as_deref()),
            voie: text(a.libelle_voie.as_deref()),
            complement: text(a.complement.as_deref()),
            code_postal: issues.opt(
                "contact.adresse.code_postal",
                a.code_postal.as_deref(),
                CodePostal::parse,
            ),
            commune: text(a.commune.as_deref()),
            code_insee: None,
        };
        if !adresse.is_empty() {
            j.contact.adresse = Some(adresse);
        }
    }
    if let Some(t) = issues.opt(
        "contact.telephones",
        d.telephone.as_deref(),
        Telephone::parse,
    ) {
        j.contact.telephones.push(t);
    }
    j.contact.email = issues.opt("contact.email", d.mail.as_deref(), Email::parse);

    if let Some(a) = &d.accompagnement_cej {
        if a.accompagnement_cej == Some(true) {
            j.accompagnement = Some(Accompagnement {
                dispositif: Some(Dispositif::Cej),
                date_debut: date(
                    &mut issues,
                    "accompagnement.date_debut",
                    a.date_debut.as_deref(),
                ),
                date_fin_prevue: date(
                    &mut issues,
                    "accompagnement.date_fin_prevue",
                    a.date_fin_prevue.as_deref(),
                ),
                date_fin_reelle: date(
                    &mut issues,
                    "accompagnement.date_fin_reelle",
                    a.date_fin_reelle.as_deref(),
                ),
                structure: structure.clone(),
                ..Accompagnement::default()
            });
        } else if a
            .premier_accompagnement
            .as_deref()
            .is_some_and(|s| !s.trim().is_empty())
        {
            j.accompagnement = Some(Accompagnement {
                dispositif: Some(Dispositif::Pacea),
                date_debut: date(
                    &mut issues,
                    "accompagnement.date_debut",
                    a.premier_accompagnement.as_deref(),
                ),
                structure: structure.clone(),
                ..Accompagnement::default()
            });
        }
    }

    for s in &d.situations {
        let label = s.categorie_situation.as_deref().and_then(clean_text);
        let (categorie, categorie_source) =
            match label.as_deref().map(SituationCategorie::from_source) {
                Some(Ok(c)) => (c, None),
                Some(Err(_)) => (SituationCategorie::Autre, label.clone()),
                None => (SituationCategorie::Autre, None),
            };
        let etat = match s.etat.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
            None => None,
            Some(e) => match SituationEtat::from_source(e) {
                Ok(v) => Some(v),
                Err(err) => {
                    issues.push(FieldError::drop_value("situations[].etat", err.reason));
                    None
                }
            },
        };
        let code_rome = [
            &s.code_rome_metier_exerce,
            &s.code_rome_metier_prepare,
            &s.code_rome_premier_metier,
        ]
        .into_iter()
        .find_map(|c| c.as_deref().and_then(clean_text));
        j.situations.push(Situation {
            categorie,
            categorie_source,
            etat,
            date_debut: date(
                &mut issues,
                "situations[].date_debut",
                s.date_debut.as_deref(),
            ),
            date_fin: date(&mut issues, "situations[].date_fin", s.date_fin.as_deref()),
            code_rome,
        });
    }

    if let Some(code) = d.niveau_formation.as_deref().and_then(clean_text) {
        match niveau_of(&code) {
            Some(niveau) => {
                j.niveau_formation = Some(NiveauFormation {
                    niveau,
                    code_source: Some(code),
                    systeme_source: Some(SourceSystem::Imilo),
                });
            }
            None => issues.push(FieldError::drop_value(
                "niveau_formation.niveau",
                "unknown niveauFormation code, expected NV1 to NV5, CFG, CP4, C12, C3A or AFS",
            )),
        }
    }

    j.sensible.rqth = d.rqth;
    if let Some(c) = d.commentaire.as_deref().and_then(clean_text) {
        j.sensible.commentaires.push(c);
    }

    if let Some(of) = &d.obligation_formation {
        let statut = match of
            .statut
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => None,
            Some(s) => match ObligationFormationStatut::from_source(s) {
                Ok(v) => Some(v),
                Err(err) => {
                    issues.push(FieldError::drop_value(
                        "obligation_formation.statut",
                        err.reason,
                    ));
                    None
                }
            },
        };
        let of = ObligationFormation {
            statut,
            date_signalement: date(
                &mut issues,
                "obligation_formation.date_signalement",
                of.date_signalement.as_deref(),
            ),
            motif: text(of.motif.as_deref()),
            suite: None,
        };
        if of != ObligationFormation::default() {
            j.obligation_formation = Some(of);
        }
    }

    let rejected = issues.is_rejected();
    Mapped {
        record: (!rejected).then_some(j),
        rejects: issues.rejects,
        warnings: issues.warnings,
    }
}

/// What an orientation is for, from the flow.
fn motif_of(flow: &str) -> Option<&'static str> {
    match flow {
        "brsa-orientation" => Some("BRSA_ORIENTATION"),
        "ase-majorite" => Some("ASE_MAJORITE"),
        _ => None,
    }
}

/// E.164 French number → the national form I-MILO shows (`0612345678`).
fn telephone_national(t: &Telephone) -> String {
    match t.as_str().strip_prefix("+33") {
        Some(rest) => format!("0{rest}"),
        None => t.as_str().to_owned(),
    }
}

fn referent(p: &passerelle_model::Personne) -> Option<Referent> {
    let r = Referent {
        nom: p.nom.clone(),
        mail: p.email.as_ref().map(|e| e.as_str().to_owned()),
    };
    (r.nom.is_some() || r.mail.is_some()).then_some(r)
}

/// A `brsa-orientation` or `ase-majorite` delivery → the orientation body. Errors
/// are reasons for a rejected receipt (paths and rules, no values).
pub fn orientation_request(d: &Delivery) -> Result<OrientationRequest, Vec<String>> {
    let mut reasons = Vec::new();
    let Some(motif) = motif_of(&d.flow) else {
        return Err(vec![format!(
            "flow {} does not land as an I-MILO orientation",
            d.flow
        )]);
    };
    let code_structure = match StructureCode::parse(&d.recipient) {
        Ok(c) => c.as_str().to_owned(),
        Err(_) => {
            reasons.push(
                "recipient: not a Mission Locale structure code (5 characters, S, 2 digits)"
                    .to_owned(),
            );
            String::new()
        }
    };
    let r = &d.record;
    let ec = &r.etat_civil;
    if ec.nom_naissance.is_none() && ec.nom_usage.is_none() {
        reasons.push("etat_civil.nom_naissance: required (or etat_civil.nom_usage)".to_owned());
    }
    if ec.prenoms.is_empty() {
        reasons.push("etat_civil.prenoms: required".to_owned());
    }
    if ec.date_naissance.is_none() {
        reasons.push("etat_civil.date_naissance: required".to_owned());
    }
    if !reasons.is_empty() {
        return Err(reasons);
    }
    let adresse = r.contact.adresse.as_ref().map(|a| DossierAdresse {
        numero: a.numero.clone(),
        libelle_voie: a.voie.clone(),
        complement: a.complement.clone(),
        code_postal: a.code_postal.as_ref().map(|c| c.as_str().to_owned()),
        commune: a.commune.clone(),
    });
    let jeune = JeuneBody {
        nom_naissance: ec.nom_naissance.clone(),
        nom_usage: ec.nom_usage.clone(),
        prenom: Some(ec.prenoms.join(" ")),
        date_naissance: ec.date_naissance.map(|d| d.to_string()),
        mail: r.contact.email.as_ref().map(|e| e.as_str().to_owned()),
        telephone: r.contact.telephones.first().map(telephone_national),
        adresse,
        numero_allocataire: r
            .identifiants
            .caf
            .as_ref()
            .map(|c| c.numero_allocataire.as_str().to_owned()),
    };
    let orientation = r.orientation.as_ref().and_then(|o| {
        let kind = match o.kind? {
            OrientationType::Sociale => "SOCIALE",
            OrientationType::SocioProfessionnelle => "SOCIO_PROFESSIONNELLE",
            OrientationType::Professionnelle => "PROFESSIONNELLE",
        };
        Some(OrientationBody {
            kind: kind.to_owned(),
            date: o.date.map(|d| d.to_string()),
            referent: o.referent.as_ref().and_then(referent),
        })
    });
    let rsa = (motif == "BRSA_ORIENTATION" && !r.rsa.is_empty()).then(|| RsaBody {
        etat_droit: r.rsa.etat_droit.map(|e| e.as_str().to_owned()),
        soumis_droits_devoirs: r.rsa.soumis_droits_devoirs,
    });
    let ase = if motif == "ASE_MAJORITE" {
        r.ase.as_ref().map(|a| AseBody {
            date_majorite: a.date_majorite.map(|d| d.to_string()),
            mna: a.mna,
            referent: a.referent.as_ref().and_then(referent),
        })
    } else {
        None
    };
    Ok(OrientationRequest {
        reference_externe: d.transfer_id.clone(),
        code_structure,
        motif: Some(motif.to_owned()),
        jeune,
        orientation,
        rsa,
        ase,
    })
}

/// The dossier an événement goes to.
pub fn dossier_id_of(r: &Jeune) -> Option<u64> {
    r.identifiants
        .imilo_dossier
        .as_ref()
        .and_then(|d| d.as_str().parse().ok())
}

/// A `faj-decision` or `of-suivi` delivery → the dossier id and the événement body.
/// `today` dates an événement whose record carries no date of its own.
pub fn evenement_request(
    d: &Delivery,
    today: Date,
) -> Result<(u64, EvenementRequest), Vec<String>> {
    let r = &d.record;
    let Some(id) = dossier_id_of(r) else {
        return Err(vec![format!(
            "identifiants.imilo_dossier: required for flow {}",
            d.flow
        )]);
    };
    let (kind, date, contenu) = match d.flow.as_str() {
        "faj-decision" => {
            let Some(faj) = r.faj.last() else {
                return Err(vec!["faj: required for flow faj-decision".to_owned()]);
            };
            let aides: Vec<_> = faj
                .aides
                .iter()
                .map(|a| {
                    json!({
                        "type": a.kind.as_str().to_ascii_uppercase(),
                        "montantDemandeCentimes": a.montant_demande,
                        "montantAccordeCentimes": a.montant_accorde,
                    })
                })
                .collect();
            let date = faj.date_commission.or(faj.date_depot).unwrap_or(today);
            let contenu = json!({
                "idDemande": faj.id,
                "statut": faj.statut.map(|s| s.as_str().to_ascii_uppercase()),
                "dateCommission": faj.date_commission.map(|d| d.to_string()),
                "motif": faj.motif,
                "aides": aides,
            });
            ("FAJ_DECISION", date, contenu)
        }
        "of-suivi" => {
            let Some(of) = &r.obligation_formation else {
                return Err(vec![
                    "obligation_formation: required for flow of-suivi".to_owned(),
                ]);
            };
            let contenu = json!({
                "statut": of.statut.map(|s| s.as_str().to_ascii_uppercase()),
                "dateSignalement": of.date_signalement.map(|d| d.to_string()),
                "motif": of.motif,
                "suite": of.suite,
            });
            ("OF_SUIVI", of.date_signalement.unwrap_or(today), contenu)
        }
        other => {
            return Err(vec![format!(
                "flow {other} does not land as an I-MILO événement"
            )]);
        }
    };
    Ok((
        id,
        EvenementRequest {
            reference_externe: d.transfer_id.clone(),
            kind: kind.to_owned(),
            date: date.to_string(),
            contenu: strip_nulls(contenu),
        },
    ))
}

/// Drops `null` members so that absent values are omitted, as in the canonical form.
fn strip_nulls(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => serde_json::Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        serde_json::Value::Array(a) => {
            serde_json::Value::Array(a.into_iter().map(strip_nulls).collect())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert_eq!(niveau_of("NV1"), Some(Niveau::N7));
        assert_eq!(niveau_of("nv5"), Some(Niveau::N3));
        assert_eq!(niveau_of("AFS"), Some(Niveau::Infra3));
        assert_eq!(niveau_of("NV6"), None);
    }

    #[test]
    fn telephone_back_to_national() {
        let t = Telephone::parse("+33 6 12 34 56 78").unwrap();
        assert_eq!(telephone_national(&t), "0612345678");
    }
}
