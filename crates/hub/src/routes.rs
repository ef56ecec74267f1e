//! Where each flow sends a record (domain.md, "Flows"): pure rules over the canonical
//! record and the territory table, no I/O. A rule answers why when the record is not
//! for its flow (oriented elsewhere, not a BRSA beneficiary, no ML serves its place).

use std::sync::Arc;

use chrono::NaiveDate;
use passerelle_model::{Jeune, OrganismeType};
use passerelle_policy::{OrgKind, System, departement_of};
use serde::Deserialize;

use crate::engine::Org;
use crate::night::Route;

/// Which Mission Locale serves a place: postal-code prefixes per ML, and one default
/// ML per département for the places no prefix names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Territoires {
    #[serde(default)]
    pub ml: Vec<TerritoireMl>,
}

/// One ML's territory.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TerritoireMl {
    /// Structure code (`59350S00`).
    pub code: String,
    /// Postal codes or prefixes (`59000`, `591`) of the communes it serves.
    #[serde(default)]
    pub codes_postaux: Vec<String>,
    /// The ML for the rest of its département.
    #[serde(default)]
    pub defaut: bool,
}

/// A territory table that names something that is not an ML structure code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("territoires: `{code}` is not an ML structure code (5 digits, S, 2 digits)")]
pub struct TerritoireError {
    pub code: String,
}

impl Territoires {
    /// Checks the table without I/O.
    pub fn validate(&self) -> Result<(), TerritoireError> {
        for t in &self.ml {
            if departement_of(&t.code).is_none_or(|_| t.code.starts_with("CD")) {
                return Err(TerritoireError {
                    code: t.code.clone(),
                });
            }
        }
        Ok(())
    }

    /// The ML serving a postal code: the longest matching prefix, else the default ML
    /// of `departement` (`59`, `2A`, `974`).
    pub fn ml_for(&self, code_postal: Option<&str>, departement: &str) -> Option<&str> {
        let by_prefix = code_postal.and_then(|cp| {
            self.ml
                .iter()
                .flat_map(|t| t.codes_postaux.iter().map(move |p| (p, t)))
                .filter(|(p, _)| cp.starts_with(p.as_str()))
                .max_by_key(|(p, _)| p.len())
                .map(|(_, t)| t.code.as_str())
        });
        // The default ML serves the rest of its département, not a place elsewhere (a
        // person of a CD's list who lives in another département).
        let here = code_postal.is_none_or(|cp| postcode_in(cp, departement));
        by_prefix.or_else(|| {
            self.ml
                .iter()
                .filter(|_| here)
                .find(|t| t.defaut && departement_of(&t.code).as_deref() == Some(departement))
                .map(|t| t.code.as_str())
        })
    }
}

/// Whether a postcode is one of a département's (`59`, `2A`, `974`): its first two
/// digits, three overseas; Corsica's start with 20 for both of its départements.
fn postcode_in(cp: &str, departement: &str) -> bool {
    match departement {
        "2A" | "2B" => cp.starts_with("20"),
        d => cp.starts_with(d),
    }
}

/// The CD code of a département (`59` → `CD059`, `2A` → `CD02A`, `974` → `CD974`).
pub fn cd_of_departement(departement: &str) -> String {
    format!("CD{departement:0>3}")
}

/// The CD of the département an ML belongs to.
pub fn cd_of_ml(ml: &str) -> Option<String> {
    let d = departement_of(ml)?;
    // Corsican structure codes start with 20: which CD depends on the commune.
    (d != "20").then(|| cd_of_departement(&d))
}

fn ml(code: &str) -> Org {
    Org::new(OrgKind::Ml, code, System::Imilo)
}

fn record_ml(record: &Jeune) -> Option<&str> {
    record
        .sources
        .first()
        .map(|s| s.organisation.as_str())
        .filter(|o| departement_of(o).is_some() && !o.starts_with("CD"))
}

fn code_postal(record: &Jeune) -> Option<&str> {
    record
        .contact
        .adresse
        .as_ref()
        .and_then(|a| a.code_postal.as_ref())
        .map(|c| c.as_str())
}

/// `brsa-orientation`: from the CD (`cd`, as the file names it, read through
/// `system`) to the ML the young person is oriented to; a record without any
/// orientation (a CNAF list) goes to the ML of its place when the table names one.
pub fn brsa_orientation(cd: Org, territoires: Arc<Territoires>) -> Route {
    Arc::new(move |record: &Jeune| {
        // A BRSA beneficiary: an RSA right or a CAF number (an ASE export is not this
        // flow). A row of a box's BRSA list is one by the list that holds it, even when
        // its allocataire number was dropped as invalid (box.md: "the record goes on
        // when its list places it"); the box's `OF_SUIVI` answers are not.
        let listed = cd.system == System::Box && !is_of_suivi_answer(record);
        if !listed && record.rsa.is_empty() && record.identifiants.caf.is_none() {
            return Err("not a BRSA beneficiary (no RSA right, no CAF number)".into());
        }
        if cd.system == System::Cnaf
            && let Some(why) = cnaf_not_for_orientation(record)
        {
            return Err(why.into());
        }
        // An orientation that names neither a kind nor an organisation (a list giving
        // only the referent) decides nothing: the place does.
        let decided = record
            .orientation
            .as_ref()
            .filter(|o| o.kind.is_some() || o.organisme.is_some());
        let to = match decided {
            Some(o) => {
                let organisme = o
                    .organisme
                    .as_ref()
                    .ok_or("oriented, but to no organisation named")?;
                if organisme.kind != OrganismeType::Ml {
                    return Err("oriented to an organisation that is not a Mission Locale".into());
                }
                organisme
                    .code
                    .clone()
                    .ok_or("oriented to a Mission Locale without its structure code")?
            }
            None => {
                let dept = departement_of(&cd.org).ok_or("the sender is not a département")?;
                territoires
                    .ml_for(code_postal(record), &dept)
                    .ok_or(if code_postal(record).is_some() {
                        "no Mission Locale serves the postcode (territoires)"
                    } else {
                        "no postcode and no default Mission Locale for the département"
                    })?
                    .to_owned()
            }
        };
        Ok((cd.clone(), ml(&to)))
    })
}

/// A CD's `OF_SUIVI` answer read from its box: a training-obligation status about a
/// dossier, with no identity (see `passerelle_box::source`).
fn is_of_suivi_answer(record: &Jeune) -> bool {
    let e = &record.etat_civil;
    record.obligation_formation.is_some()
        && e.nom_usage.is_none()
        && e.nom_naissance.is_none()
        && e.prenoms.is_empty()
}

/// Why a person of a CNAF list is not for `brsa-orientation`, if it is not: only
/// open rights (états 2, 3, 4) of a person subject to rights and duties can be acted
/// on by an ML; anyone else would be sent for nothing (minimisation). The reason has
/// no personal data, for the night's summary.
pub fn cnaf_not_for_orientation(record: &Jeune) -> Option<&'static str> {
    use passerelle_model::EtatDroit;
    match record.rsa.etat_droit {
        Some(EtatDroit::OuvertVerse | EtatDroit::OuvertSuspendu | EtatDroit::VersementSuspendu) => {
        }
        Some(_) => return Some("RSA rights not open (état other than 2, 3 or 4)"),
        None => return Some("RSA rights état unknown"),
    }
    match record.rsa.soumis_droits_devoirs {
        Some(true) => None,
        Some(false) => Some("not subject to rights and duties"),
        None => Some("subject to rights and duties not known"),
    }
}

/// `ase-majorite`: from the CD to the ML of the young person's place, for those
/// reaching 18 within six months of `today` (or already 18 and still in care).
pub fn ase_majorite(cd: Org, territoires: Arc<Territoires>, today: NaiveDate) -> Route {
    Arc::new(move |record: &Jeune| {
        let ase = record.ase.as_ref().ok_or("not in child welfare (no ASE)")?;
        let majorite: Option<NaiveDate> = ase.date_majorite.map(|d| d.naive()).or_else(|| {
            record
                .etat_civil
                .date_naissance
                .and_then(|d| d.naive().checked_add_months(chrono::Months::new(216)))
        });
        let horizon = today
            .checked_add_months(chrono::Months::new(6))
            .ok_or("date out of range")?;
        match majorite {
            None => return Err("date of majority unknown".into()),
            Some(m) if m > horizon => {
                return Err("comes of age more than six months from now".into());
            }
            Some(_) => {}
        }
        let dept = departement_of(&cd.org).ok_or("the sender is not a département")?;
        let to = territoires
            .ml_for(code_postal(record), &dept)
            .ok_or("no Mission Locale serves the place (territoires)")?;
        Ok((cd.clone(), ml(to)))
    })
}

/// `brsa-suivi`: from the ML that holds the dossier to the CD of its département, for
/// young people the CAF knows (a CAF number on the dossier). `system` is how that CD
/// takes it (SOLIS import or box).
pub fn brsa_suivi(system: System) -> Route {
    Arc::new(move |record: &Jeune| {
        record
            .identifiants
            .caf
            .as_ref()
            .ok_or("no CAF number on the dossier")?;
        let from = record_ml(record).ok_or("not from a Mission Locale")?;
        let cd = cd_of_ml(from).ok_or("the Mission Locale's département has no single CD")?;
        Ok((ml(from), Org::new(OrgKind::Cd, cd, system)))
    })
}

/// `of-signalement`: from the ML to the CD of its département, for dossiers carrying a
/// training-obligation status.
pub fn of_signalement(system: System) -> Route {
    Arc::new(move |record: &Jeune| {
        record
            .obligation_formation
            .as_ref()
            .ok_or("no training-obligation status")?;
        let from = record_ml(record).ok_or("not from a Mission Locale")?;
        let cd = cd_of_ml(from).ok_or("the Mission Locale's département has no single CD")?;
        Ok((ml(from), Org::new(OrgKind::Cd, cd, system)))
    })
}

/// `of-suivi`: a CD's answer about a training-obligation report, to the ML whose box
/// folder it came through (`ml`).
pub fn of_suivi(cd: Org, ml_code: String) -> Route {
    Arc::new(move |record: &Jeune| {
        record
            .obligation_formation
            .as_ref()
            .ok_or("no training-obligation status")?;
        Ok((cd.clone(), ml(&ml_code)))
    })
}

/// A flow that goes back to the ML named in the record's first source (an `of-suivi`
/// answering a report, a `faj-decision` answering a request), from `from`.
pub fn back_to_ml(from: Org) -> Route {
    Arc::new(move |record: &Jeune| {
        let to = record
            .sources
            .iter()
            .map(|s| s.organisation.as_str())
            .find(|o| departement_of(o).is_some() && !o.starts_with("CD"))
            .ok_or("names no Mission Locale to answer")?;
        Ok((from.clone(), ml(to)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Territoires {
        toml::from_str(
            r#"
            [[ml]]
            code = "59350S00"
            codes_postaux = ["590", "5900"]
            defaut = true
            [[ml]]
            code = "59512S00"
            codes_postaux = ["59100"]
            "#,
        )
        .unwrap()
    }

    fn jeune(json: &str) -> Jeune {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_longest_prefix_wins_then_the_default_of_the_departement() {
        let t = table();
        assert_eq!(t.ml_for(Some("59100"), "59"), Some("59512S00"));
        assert_eq!(t.ml_for(Some("59000"), "59"), Some("59350S00"));
        assert_eq!(t.ml_for(Some("59800"), "59"), Some("59350S00"));
        assert_eq!(t.ml_for(None, "62"), None);
        // A place outside the département: not its default ML's.
        assert_eq!(t.ml_for(Some("17874"), "59"), None);
        assert_eq!(t.ml_for(None, "59"), Some("59350S00"));
        t.validate().unwrap();
        let bad = Territoires {
            ml: vec![TerritoireMl {
                code: "CD059".into(),
                codes_postaux: vec![],
                defaut: true,
            }],
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn cd_codes() {
        assert_eq!(cd_of_departement("59"), "CD059");
        assert_eq!(cd_of_departement("2A"), "CD02A");
        assert_eq!(cd_of_departement("974"), "CD974");
        assert_eq!(cd_of_ml("59350S00").as_deref(), Some("CD059"));
        assert_eq!(cd_of_ml("20004S00"), None);
    }

    #[test]
    fn orientation_goes_to_the_named_ml_or_the_place() {
        let cd = Org::new(OrgKind::Cd, "CD059", System::Solis);
        let route = brsa_orientation(cd, Arc::new(table()));
        let oriented = jeune(
            r#"{"schema":"passerelle.jeune/1","rsa":{"etat_droit":"2"},"orientation":{"type":"sociale","organisme":{"type":"ML","code":"59512S00"}}}"#,
        );
        assert_eq!(route(&oriented).unwrap().1.org, "59512S00");
        let elsewhere = jeune(
            r#"{"schema":"passerelle.jeune/1","rsa":{"etat_droit":"2"},"orientation":{"type":"sociale","organisme":{"type":"CD","code":"CD059"}}}"#,
        );
        assert_eq!(
            route(&elsewhere).unwrap_err(),
            "oriented to an organisation that is not a Mission Locale"
        );
        let listed = jeune(
            r#"{"schema":"passerelle.jeune/1","identifiants":{"caf":{"organisme":"CAF","numero_allocataire":"1234567"}},"contact":{"adresse":{"code_postal":"59100"}}}"#,
        );
        let ase = jeune(
            r#"{"schema":"passerelle.jeune/1","ase":{"statut":"confie"},"contact":{"adresse":{"code_postal":"59100"}}}"#,
        );
        assert!(
            route(&ase).is_err(),
            "an ASE record is not a BRSA orientation"
        );
        assert_eq!(route(&listed).unwrap().1.org, "59512S00");
    }

    #[test]
    fn cnaf_lists_orient_only_open_rights_subject_to_rights_and_duties() {
        let cd = Org::new(OrgKind::Cd, "CD059", System::Cnaf);
        let route = brsa_orientation(cd, Arc::new(table()));
        let with = |rsa: &str| {
            jeune(&format!(
                r#"{{"schema":"passerelle.jeune/1","rsa":{rsa},"contact":{{"adresse":{{"code_postal":"59100"}}}}}}"#
            ))
        };
        for etat in ["2", "3", "4"] {
            let j = with(&format!(
                r#"{{"etat_droit":"{etat}","soumis_droits_devoirs":true}}"#
            ));
            assert_eq!(route(&j).unwrap().1.org, "59512S00", "{etat}");
            assert_eq!(cnaf_not_for_orientation(&j), None);
        }
        for (rsa, why) in [
            (
                r#"{"etat_droit":"5","soumis_droits_devoirs":true}"#,
                "RSA rights not open (état other than 2, 3 or 4)",
            ),
            (
                r#"{"etat_droit":"1","soumis_droits_devoirs":true}"#,
                "RSA rights not open (état other than 2, 3 or 4)",
            ),
            (
                r#"{"soumis_droits_devoirs":true}"#,
                "RSA rights état unknown",
            ),
            (
                r#"{"etat_droit":"2","soumis_droits_devoirs":false}"#,
                "not subject to rights and duties",
            ),
            (
                r#"{"etat_droit":"2"}"#,
                "subject to rights and duties not known",
            ),
        ] {
            let j = with(rsa);
            assert_eq!(route(&j).unwrap_err(), why, "{rsa}");
            assert_eq!(cnaf_not_for_orientation(&j), Some(why), "{rsa}");
        }
        // A CD's own orientation (SOLIS, box) is not filtered this way.
        let solis = brsa_orientation(
            Org::new(OrgKind::Cd, "CD059", System::Solis),
            Arc::new(table()),
        );
        assert!(solis(&with(r#"{"etat_droit":"5"}"#)).is_ok());
    }

    #[test]
    fn box_list_rows_are_brsa_by_their_list_and_a_referent_alone_decides_nothing() {
        let cd = Org::new(OrgKind::Cd, "CD059", System::Box);
        let route = brsa_orientation(cd, Arc::new(table()));
        // Its allocataire number dropped as invalid; only the referent given.
        let row = jeune(
            r#"{"schema":"passerelle.jeune/1","etat_civil":{"nom_usage":"Durand"},"orientation":{"referent":{"email":"r@example.org"}},"contact":{"adresse":{"code_postal":"59100"}}}"#,
        );
        assert_eq!(route(&row).unwrap().1.org, "59512S00");
        let answer = jeune(
            r#"{"schema":"passerelle.jeune/1","identifiants":{"imilo_dossier":"12"},"obligation_formation":{"statut":"signale"}}"#,
        );
        assert_eq!(
            route(&answer).unwrap_err(),
            "not a BRSA beneficiary (no RSA right, no CAF number)"
        );
        // Elsewhere than a box, the same row is not taken for a BRSA beneficiary.
        let solis = brsa_orientation(
            Org::new(OrgKind::Cd, "CD059", System::Solis),
            Arc::new(table()),
        );
        assert!(solis(&row).is_err());
    }

    #[test]
    fn suivi_and_signalement_go_to_the_cd_of_the_ml() {
        let caf = jeune(
            r#"{"schema":"passerelle.jeune/1","sources":[{"system":"imilo","organisation":"59350S00","record_id":"1"}],"identifiants":{"caf":{"organisme":"CAF","numero_allocataire":"1234567"}}}"#,
        );
        let (from, to) = brsa_suivi(System::Solis)(&caf).unwrap();
        assert_eq!((from.org.as_str(), to.org.as_str()), ("59350S00", "CD059"));
        assert!(of_signalement(System::Solis)(&caf).is_err());
        let no_caf = jeune(
            r#"{"schema":"passerelle.jeune/1","sources":[{"system":"imilo","organisation":"59350S00","record_id":"1"}]}"#,
        );
        assert!(brsa_suivi(System::Solis)(&no_caf).is_err());
    }
}
