//! The simulator's validation of a request body (faj.md): required fields, age 18–25
//! at `date_depot` (16–17 only with `derogation_mineur`), at least one aid of a known
//! type, total requested at most 100000 cents. Messages never quote the values.

use passerelle_model::{Cents, Date, FajAideType};
use serde_json::Value;

use crate::mapping::{AideBody, ErreurChamp};

/// The most a request may ask for, in cents.
pub const PLAFOND_CENTS: Cents = 100_000;

/// What a valid body gives the simulator.
#[derive(Debug, Clone)]
pub struct Valid {
    pub date_depot: Date,
    pub aides: Vec<AideBody>,
}

fn err(champ: impl Into<String>, code: &str, message: &str) -> ErreurChamp {
    ErreurChamp {
        champ: champ.into(),
        code: code.into(),
        message: message.into(),
    }
}

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str().map(str::trim).filter(|s| !s.is_empty())
}

/// A `YYYY-MM-DD` date at `path`: Ok(None) when absent.
fn date_at(v: &Value, path: &[&str], champ: &str, out: &mut Vec<ErreurChamp>) -> Option<Date> {
    match text(v, path) {
        None => {
            out.push(err(champ, "REQUIS", "champ obligatoire"));
            None
        }
        Some(s) if s.len() == 10 && s.as_bytes()[4] == b'-' => match Date::parse(s) {
            Ok(d) => Some(d),
            Err(_) => {
                out.push(err(
                    champ,
                    "FORMAT_DATE",
                    "date attendue au format AAAA-MM-JJ",
                ));
                None
            }
        },
        Some(_) => {
            out.push(err(
                champ,
                "FORMAT_DATE",
                "date attendue au format AAAA-MM-JJ",
            ));
            None
        }
    }
}

/// Validates a body; every failing field gets its own error.
pub fn validate(body: &Value) -> Result<Valid, Vec<ErreurChamp>> {
    let mut errors = Vec::new();
    if !body.is_object() {
        return Err(vec![err("", "CORPS_INVALIDE", "objet JSON attendu")]);
    }
    let date_depot = date_at(body, &["date_depot"], "date_depot", &mut errors);
    if text(body, &["instructeur", "code_structure"]).is_none() {
        errors.push(err(
            "instructeur.code_structure",
            "REQUIS",
            "champ obligatoire",
        ));
    }
    for f in ["nom", "prenom"] {
        if text(body, &["jeune", f]).is_none() {
            errors.push(err(format!("jeune.{f}"), "REQUIS", "champ obligatoire"));
        }
    }
    let naissance = date_at(
        body,
        &["jeune", "date_naissance"],
        "jeune.date_naissance",
        &mut errors,
    );
    if let (Some(n), Some(d)) = (naissance, date_depot) {
        let age = n.age_on(d);
        let derogation = body.get("derogation_mineur").and_then(Value::as_bool) == Some(true);
        match age {
            18..=25 => {}
            16..=17 if derogation => {}
            16..=17 => errors.push(err(
                "jeune.date_naissance",
                "AGE_HORS_BORNES",
                "16 ou 17 ans à la date de dépôt : derogation_mineur requise",
            )),
            _ => errors.push(err(
                "jeune.date_naissance",
                "AGE_HORS_BORNES",
                "l'âge à la date de dépôt doit être de 18 à 25 ans (16-17 avec dérogation)",
            )),
        }
    }
    let mut aides = Vec::new();
    match body.get("aides").and_then(Value::as_array) {
        None => errors.push(err("aides", "AUCUNE_AIDE", "au moins une aide est requise")),
        Some(list) if list.is_empty() => {
            errors.push(err("aides", "AUCUNE_AIDE", "au moins une aide est requise"));
        }
        Some(list) => {
            let mut total: Cents = 0;
            for (i, a) in list.iter().enumerate() {
                let kind = a.get("type").and_then(Value::as_str).unwrap_or("");
                let kind_ok = !kind.is_empty()
                    && kind == kind.to_ascii_uppercase()
                    && FajAideType::from_code(&kind.to_ascii_lowercase()).is_ok();
                if !kind_ok {
                    errors.push(err(
                        format!("aides[{i}].type"),
                        "TYPE_INCONNU",
                        "type d'aide inconnu",
                    ));
                }
                let montant = a
                    .get("montant_demande")
                    .and_then(Value::as_u64)
                    .filter(|m| *m > 0);
                match montant {
                    Some(m) => total = total.saturating_add(m),
                    None => errors.push(err(
                        format!("aides[{i}].montant_demande"),
                        "MONTANT_INVALIDE",
                        "montant en centimes, entier positif",
                    )),
                }
                aides.push(AideBody {
                    kind: kind.to_owned(),
                    montant_demande: montant,
                    paye_a: a.get("paye_a").and_then(Value::as_str).map(str::to_owned),
                });
            }
            if total > PLAFOND_CENTS {
                errors.push(err(
                    "aides",
                    "PLAFOND_DEPASSE",
                    "le total demandé dépasse le plafond de 100000 centimes par demande",
                ));
            }
        }
    }
    match (errors.is_empty(), date_depot) {
        (true, Some(date_depot)) => Ok(Valid { date_depot, aides }),
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(naissance: &str, derog: Option<bool>, aides: Value) -> Value {
        let mut b = json!({
            "date_depot": "2026-11-21",
            "instructeur": {"type": "ML", "code_structure": "59350S00"},
            "jeune": {"nom": "Martin", "prenom": "Yanis", "date_naissance": naissance},
            "aides": aides
        });
        if let Some(d) = derog {
            b["derogation_mineur"] = json!(d);
        }
        b
    }

    fn codes(r: Result<Valid, Vec<ErreurChamp>>) -> Vec<(String, String)> {
        r.err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.champ, e.code))
            .collect()
    }

    #[test]
    fn ages() {
        let one = json!([{"type": "MOBILITE", "montant_demande": 25000}]);
        assert!(validate(&body("2005-07-14", None, one.clone())).is_ok());
        // 18 on the very day of filing, 25 the day before turning 26.
        assert!(validate(&body("2008-11-21", None, one.clone())).is_ok());
        assert!(validate(&body("2000-11-22", None, one.clone())).is_ok());
        let age_err = vec![("jeune.date_naissance".into(), "AGE_HORS_BORNES".into())];
        assert_eq!(
            codes(validate(&body("2000-11-21", None, one.clone()))),
            age_err
        );
        assert_eq!(
            codes(validate(&body("2009-06-01", None, one.clone()))),
            age_err
        );
        assert!(validate(&body("2009-06-01", Some(true), one.clone())).is_ok());
        assert_eq!(
            codes(validate(&body("2009-06-01", Some(false), one.clone()))),
            age_err
        );
        // 15 is refused even with a derogation.
        assert_eq!(
            codes(validate(&body("2011-06-01", Some(true), one))),
            age_err
        );
    }

    #[test]
    fn aids_and_ceiling() {
        let n = "2005-07-14";
        assert_eq!(
            codes(validate(&body(n, None, json!([])))),
            vec![("aides".to_owned(), "AUCUNE_AIDE".to_owned())]
        );
        assert!(
            validate(&body(
                n,
                None,
                json!([{"type": "PERMIS", "montant_demande": 60000}, {"type": "LOGEMENT", "montant_demande": 40000}])
            ))
            .is_ok()
        );
        assert_eq!(
            codes(validate(&body(
                n,
                None,
                json!([{"type": "PERMIS", "montant_demande": 60000}, {"type": "LOGEMENT", "montant_demande": 40001}])
            ))),
            vec![("aides".to_owned(), "PLAFOND_DEPASSE".to_owned())]
        );
        assert_eq!(
            codes(validate(&body(
                n,
                None,
                json!([{"type": "VOITURE", "montant_demande": 0}])
            ))),
            vec![
                ("aides[0].type".to_owned(), "TYPE_INCONNU".to_owned()),
                (
                    "aides[0].montant_demande".to_owned(),
                    "MONTANT_INVALIDE".to_owned()
                )
            ]
        );
    }

    #[test]
    fn required_fields_each_reported() {
        let r = validate(&json!({"aides": [{"type": "URGENCE", "montant_demande": 100}]}));
        let c = codes(r);
        for champ in [
            "date_depot",
            "instructeur.code_structure",
            "jeune.nom",
            "jeune.prenom",
            "jeune.date_naissance",
        ] {
            assert!(
                c.iter().any(|(f, code)| f == champ && code == "REQUIS"),
                "{champ}"
            );
        }
        let bad_date = body(
            "14/07/2005",
            None,
            json!([{"type": "URGENCE", "montant_demande": 1}]),
        );
        assert_eq!(
            codes(validate(&bad_date)),
            vec![("jeune.date_naissance".to_owned(), "FORMAT_DATE".to_owned())]
        );
    }
}
