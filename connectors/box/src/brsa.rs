//! `BRSA_LISTE` rows to canonical records, following box.md's mapping rules: CAF
//! number, role, civility, names, address as given, RSA state, orientation and its
//! organisme (`ML` for a structure code, else `AUTRE`), referent, and `sources[0]`.

use passerelle_connector::RecordIssue;
use passerelle_connector::csv::{Row, TableError};
use passerelle_model::{
    Adresse, Caf, CafOrganisme, Civilite, CodePostal, Date, Email, EtatDroit, FieldError,
    InvalidValue, Issues, Jeune, Nir, NumeroAllocataire, Organisme, OrganismeType, Orientation,
    OrientationType, Personne, RecordId, RsaRole, Source, SourceSystem, StructureCode, Telephone,
    clean_text, parse_bool,
};
use tracing::instrument;

use crate::mapping::{Binding, Target};

/// One row read and mapped: the record, or why it was rejected, and dropped values.
#[derive(Debug, Clone)]
pub struct MappedRow {
    /// The physical line in the file (XLSX: the row number).
    pub line: u64,
    /// `<N° CAF>-<role>` when both are valid, else `ligne-<n>`.
    pub reference: String,
    pub outcome: Result<Jeune, Vec<RecordIssue>>,
    pub warnings: Vec<RecordIssue>,
}

impl MappedRow {
    /// A row the table reader could not split into the header's columns.
    pub fn unreadable(err: &TableError) -> Self {
        let line = err.line().unwrap_or(0);
        let reference = format!("ligne-{line}");
        let field = match err {
            TableError::Cell { column, .. } => column.clone(),
            _ => "ligne".to_owned(),
        };
        let issue = RecordIssue {
            reference: reference.clone(),
            line: Some(line),
            field,
            reason: err.to_string(),
        };
        Self {
            line,
            reference,
            outcome: Err(vec![issue]),
            warnings: Vec::new(),
        }
    }
}

/// Checks that a value translation lands on a spelling the target's rule accepts.
pub fn check_value(target: Target, value: &str) -> Result<(), String> {
    let result: Result<(), InvalidValue> = match target {
        Target::CafOrganisme => CafOrganisme::from_source(value).map(drop),
        Target::Civilite => Civilite::from_source(value).map(drop),
        Target::RsaRole => RsaRole::from_source(value).map(drop),
        Target::EtatDroit => EtatDroit::from_source(value).map(drop),
        Target::SoumisDroitsDevoirs => parse_bool(value).map(drop),
        Target::OrientationType => OrientationType::from_source(value).map(drop),
        Target::DateNaissance | Target::DateOuverture | Target::OrientationDate => {
            Date::parse(value).map(drop)
        }
        _ => Ok(()),
    };
    result.map_err(|e| format!("is refused: {e}"))
}

/// Reads a date, and in XLSX files also an Excel serial number typed in a date column.
fn parse_date(raw: &str, serial_dates: bool) -> Result<Date, InvalidValue> {
    match Date::parse(raw) {
        Ok(d) => Ok(d),
        Err(e) => {
            if serial_dates && raw.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                if let Some(d) = raw
                    .parse::<f64>()
                    .ok()
                    .and_then(passerelle_connector::xlsx::excel_serial_date)
                {
                    return Ok(d);
                }
                return Err(InvalidValue {
                    expected: "date",
                    reason: "is not a valid excel serial date".to_owned(),
                });
            }
            Err(e)
        }
    }
}

/// Maps one row. `emetteur` is the sender taken from the file name (or `inconnu`);
/// `serial_dates` lets date columns hold Excel serial numbers (XLSX only).
#[instrument(level = "trace", skip_all, fields(line = row.line))]
pub fn map_row(binding: &Binding, row: &Row, emetteur: &str, serial_dates: bool) -> MappedRow {
    let f = &row.fields[..];
    let v = |t: Target| binding.value(f, t);
    let mut issues = Issues::default();
    let mut j = Jeune::default();

    // Identifiants.
    let numero = issues.opt(Target::CafNumero.path(), v(Target::CafNumero), |s| {
        // A CNAF matricule (the number followed by zeros) is accepted too.
        if s.len() == 15 {
            NumeroAllocataire::from_cnaf_matricule(s)
        } else {
            NumeroAllocataire::parse(s)
        }
    });
    let organisme = issues
        .opt(
            Target::CafOrganisme.path(),
            v(Target::CafOrganisme),
            CafOrganisme::from_source,
        )
        .unwrap_or(CafOrganisme::Caf);
    if let Some(numero_allocataire) = numero.clone() {
        j.identifiants.caf = Some(Caf {
            organisme,
            numero_allocataire,
        });
    }
    j.identifiants.nir = issues.opt(Target::Nir.path(), v(Target::Nir), Nir::parse);

    // Etat civil: names are kept as given (trimmed, NFC), never re-cased.
    let ec = &mut j.etat_civil;
    ec.civilite = issues.opt(
        Target::Civilite.path(),
        v(Target::Civilite),
        Civilite::from_source,
    );
    ec.nom_usage = v(Target::NomUsage).and_then(clean_text);
    ec.nom_naissance = v(Target::NomNaissance)
        .and_then(clean_text)
        .or_else(|| ec.nom_usage.clone());
    ec.prenoms = v(Target::Prenoms)
        .map(|s| {
            s.split(|c: char| c.is_whitespace() || c == ',')
                .filter_map(clean_text)
                .collect()
        })
        .unwrap_or_default();
    ec.date_naissance = issues.opt(
        Target::DateNaissance.path(),
        v(Target::DateNaissance),
        |s| parse_date(s, serial_dates),
    );

    // Contact: the address is kept as given; bad telephones and e-mails are dropped.
    let adresse = Adresse {
        voie: v(Target::AdresseVoie).and_then(clean_text),
        complement: v(Target::AdresseComplement).and_then(clean_text),
        code_postal: issues.opt(
            Target::CodePostal.path(),
            v(Target::CodePostal),
            CodePostal::parse,
        ),
        commune: v(Target::Commune).and_then(clean_text),
        ..Adresse::default()
    };
    if !adresse.is_empty() {
        j.contact.adresse = Some(adresse);
    }
    if let Some(t) = issues.opt(
        Target::Telephone.path(),
        v(Target::Telephone),
        Telephone::parse,
    ) {
        j.contact.telephones.push(t);
    }
    j.contact.email = issues.opt(Target::Email.path(), v(Target::Email), Email::parse);

    // RSA.
    let role = issues.opt(
        Target::RsaRole.path(),
        v(Target::RsaRole),
        RsaRole::from_source,
    );
    j.rsa.role = role;
    j.rsa.etat_droit = issues.opt(
        Target::EtatDroit.path(),
        v(Target::EtatDroit),
        EtatDroit::from_source,
    );
    j.rsa.soumis_droits_devoirs = issues.opt(
        Target::SoumisDroitsDevoirs.path(),
        v(Target::SoumisDroitsDevoirs),
        parse_bool,
    );
    j.rsa.date_ouverture = issues.opt(
        Target::DateOuverture.path(),
        v(Target::DateOuverture),
        |s| parse_date(s, serial_dates),
    );

    // Orientation.
    let mut o = Orientation {
        kind: issues.opt(
            Target::OrientationType.path(),
            v(Target::OrientationType),
            OrientationType::from_source,
        ),
        date: issues.opt(
            Target::OrientationDate.path(),
            v(Target::OrientationDate),
            |s| parse_date(s, serial_dates),
        ),
        ..Orientation::default()
    };
    if let Some(code) = v(Target::OrientationOrganisme) {
        // A Mission Locale structure code (`59350S00`) makes it an ML; anything
        // else is kept as an AUTRE organisme with its code as given.
        o.organisme = Some(match StructureCode::parse(code) {
            Ok(sc) => Organisme {
                kind: OrganismeType::Ml,
                code: Some(sc.as_str().to_owned()),
            },
            Err(_) => Organisme {
                kind: OrganismeType::Autre,
                code: clean_text(code),
            },
        });
    }
    let referent = Personne {
        nom: v(Target::ReferentNom).and_then(clean_text),
        email: issues.opt(
            Target::ReferentEmail.path(),
            v(Target::ReferentEmail),
            Email::parse,
        ),
    };
    if !referent.is_empty() {
        o.referent = Some(referent);
    }
    if o != Orientation::default() {
        j.orientation = Some(o);
    }

    if j.identifiants.is_empty() && j.etat_civil.nom_usage.is_none() && !issues.is_rejected() {
        issues.push(FieldError::reject(
            "identifiants",
            "the row has no caf number, no nir and no name",
        ));
    }

    let reference = match (&numero, role) {
        (Some(n), Some(r)) => format!("{}-{}", n.as_str(), r.as_str()),
        _ => format!("ligne-{}", row.line),
    };
    // Both forms are non-empty printable ids, which is all `RecordId` asks.
    let record_id =
        RecordId::parse(&reference).unwrap_or_else(|e| panic!("record id rule changed: {e}"));
    j.sources.push(Source {
        system: SourceSystem::Box,
        organisation: emetteur.to_owned(),
        record_id,
    });

    // Issues name the row by its line, not by `<N° CAF>-<role>`: they reach stderr and
    // reports, and a CAF number is personal data.
    let line_ref = format!("ligne-{}", row.line);
    let to_issue = |e: &FieldError| RecordIssue::from_field(&line_ref, Some(row.line), e);
    let warnings = issues.warnings.iter().map(to_issue).collect();
    let outcome = if issues.is_rejected() {
        Err(issues.rejects.iter().map(to_issue).collect())
    } else {
        Ok(j)
    };
    MappedRow {
        line: row.line,
        reference,
        outcome,
        warnings,
    }
}

/// The sender (`EMETTEUR`) in `{FLUX}_{DEPT}_{EMETTEUR}_{YYYYMMDDHHMMSS}.{ext}`.
pub fn emetteur_of(file_name: &str) -> Option<String> {
    parse_name(file_name).map(|n| n.emetteur)
}

/// The parts of a box file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName {
    pub flux: String,
    pub dept: String,
    pub emetteur: String,
    pub timestamp: String,
    pub ext: String,
}

/// The flows box.md names.
pub const FLUX: &[&str] = &[
    "BRSA_LISTE",
    "JEUNES_OF",
    "FAJ_DECISIONS",
    "OF_SUIVI",
    "CNAF_VRSB",
];

/// Parses `{FLUX}_{DEPT}_{EMETTEUR}_{YYYYMMDDHHMMSS}.{ext}`; `None` when it does not fit.
pub fn parse_name(file_name: &str) -> Option<FileName> {
    let base = file_name.rsplit('/').next()?;
    let (stem, ext) = base.rsplit_once('.')?;
    let flux = FLUX.iter().find(|f| {
        stem.strip_prefix(**f)
            .is_some_and(|rest| rest.starts_with('_'))
    })?;
    let rest = &stem[flux.len() + 1..];
    let (dept, rest) = rest.split_once('_')?;
    let (emetteur, timestamp) = rest.rsplit_once('_')?;
    let ok = !dept.is_empty()
        && !emetteur.is_empty()
        && timestamp.len() == 14
        && timestamp.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| FileName {
        flux: (*flux).to_owned(),
        dept: dept.to_owned(),
        emetteur: emetteur.to_owned(),
        timestamp: timestamp.to_owned(),
        ext: ext.to_ascii_lowercase(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        let n = parse_name("BRSA_LISTE_059_CD059_20261121230000.csv").unwrap();
        assert_eq!(
            (
                n.flux.as_str(),
                n.dept.as_str(),
                n.emetteur.as_str(),
                n.ext.as_str()
            ),
            ("BRSA_LISTE", "059", "CD059", "csv")
        );
        let n = parse_name("depot/OF_SUIVI_02A_CD_02A_20260101000000.XLSX").unwrap();
        assert_eq!((n.emetteur.as_str(), n.ext.as_str()), ("CD_02A", "xlsx"));
        assert_eq!(parse_name("liste.csv"), None);
        assert_eq!(parse_name("BRSA_LISTE_059_CD059_2026.csv"), None);
        assert_eq!(emetteur_of("AUTRE_059_CD059_20261121230000.csv"), None);
    }

    #[test]
    fn issues_never_hold_the_values() {
        let mapping = crate::Mapping::default_brsa();
        let header: Vec<String> = crate::sim::BRSA_HEADER
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let binding = mapping.bind(&header).unwrap();
        let values = [
            "98765432",
            "Chef",
            "Mx",
            "Benali",
            "",
            "Karim",
            "31/02/2004",
            "204035935012300",
            "3 allée des Peupliers",
            "5910",
            "Roubaix",
            "06 12 34",
            "karim@@example",
            "2026-13-01",
            "9",
            "Peut-être",
            "Intensive",
            "59350S00",
            "Claire Durand",
        ];
        let row = Row {
            line: 7,
            fields: values.iter().map(|s| (*s).to_owned()).collect(),
        };
        let mapped = map_row(&binding, &row, "CD059", false);
        let issues = mapped.outcome.clone().unwrap_err();
        let all: Vec<&RecordIssue> = issues.iter().chain(&mapped.warnings).collect();
        assert!(all.len() >= 12, "{all:?}");
        for issue in all {
            for v in values.iter().filter(|v| v.len() > 2) {
                assert!(!issue.reason.contains(v), "{} holds a value", issue.field);
                assert!(!issue.field.contains(v));
            }
            assert_eq!(
                issue.reference, "ligne-7",
                "no valid caf number: the line names it"
            );
        }
    }

    #[test]
    fn serial_dates_only_when_allowed() {
        assert_eq!(parse_date("38058", true).unwrap().to_string(), "2004-03-12");
        assert!(parse_date("38058", false).is_err());
        assert!(parse_date("60", true).is_err());
        assert!(parse_date("12/03/2004", true).is_ok());
    }
}
