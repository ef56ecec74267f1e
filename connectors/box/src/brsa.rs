//! `BRSA_LISTE` rows to canonical records, following box.md's mapping rules: CAF
//! number, role, civility, names, address as given, RSA state, orientation and its
//! organisme (`ML` for a structure code, else `AUTRE`), referent, and `sources[0]`.

use passerelle_connector::RecordIssue;
use passerelle_connector::csv::{Row, TableError};
use std::borrow::Cow;

use passerelle_model::{
    Adresse, Caf, CafOrganisme, Civilite, CodeInsee, CodePostal, Date, Email, EtatDroit,
    FieldError, FranceTravailId, FranceTravailIde, Ine, InvalidValue, Issues, Jeune, Nir,
    NumeroAllocataire, NumeroDemandeRsa, Organisme, OrganismeType, Orientation, OrientationType,
    Personne, RecordId, RsaRole, SolisId, Source, SourceSystem, StructureCode, Telephone,
    clean_text, parse_bool,
};
use tracing::instrument;

use crate::mapping::{Binding, Normaliser, Target};

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

fn bad_date(reason: &str) -> InvalidValue {
    InvalidValue {
        expected: "date",
        reason: reason.to_owned(),
    }
}

/// Reads a date with the column's formats (none: `DD/MM/YYYY` and `YYYY-MM-DD`), and
/// in XLSX files also an Excel serial number typed in a date column.
fn parse_date(raw: &str, formats: &[String], serial_dates: bool) -> Result<Date, InvalidValue> {
    let first = if formats.is_empty() {
        Date::parse(raw)
    } else {
        use chrono::Datelike;
        match formats
            .iter()
            .find_map(|f| crate::mapping::parse_with_format(raw, f))
        {
            // The calendar and year checks of the canonical rule still apply.
            Some(d) => Date::from_ymd(d.year(), d.month(), d.day()),
            None => Err(bad_date("matches none of the column's date formats")),
        }
    };
    match first {
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
                return Err(bad_date("is not a valid excel serial date"));
            }
            Err(e)
        }
    }
}

/// An allocataire number as rdv-insertion normalises it (box.md): an organisme
/// prefix dropped (and returned), trailing zeros after the 7th digit cut, then
/// leading zeros, down to 7 digits at most.
pub fn normalise_allocataire(raw: &str) -> (Option<CafOrganisme>, String) {
    let s: String = raw
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '.' | '-' | '_' | '/'))
        .collect();
    let upper = s.to_ascii_uppercase();
    let (organisme, rest) = if let Some(r) = upper.strip_prefix("CAF") {
        (Some(CafOrganisme::Caf), r)
    } else if let Some(r) = upper.strip_prefix("MSA") {
        (Some(CafOrganisme::Msa), r)
    } else {
        (None, upper.as_str())
    };
    let mut digits = rest.to_owned();
    if digits.bytes().all(|b| b.is_ascii_digit()) {
        while digits.len() > 7 && digits.ends_with('0') {
            digits.pop();
        }
        while digits.len() > 7 && digits.starts_with('0') {
            digits.remove(0);
        }
    }
    (organisme, digits)
}

/// The numbers of a telephone cell: several per cell (`,`, `;`, `/`), a 9-digit
/// number without its leading `0` (a spreadsheet's doing) given it back.
pub fn telephone_candidates(cell: &str) -> impl Iterator<Item = Cow<'_, str>> {
    cell.split([',', ';', '/', '|'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let b = s.as_bytes();
            if b.len() == 9 && b.iter().all(u8::is_ascii_digit) && b[0] != b'0' {
                Cow::Owned(format!("0{s}"))
            } else {
                Cow::Borrowed(s)
            }
        })
}

/// A short digest of what identifies a person in a row, for a `record_id` stable from
/// one month's list to the next when the list has no id of its own. Hashed, so that
/// the id carries no name, date or NIR in clear.
fn identity_digest(j: &Jeune) -> Option<String> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"passerelle-box-identity/1\n");
    if let Some(nir) = &j.identifiants.nir {
        h.update(b"nir:");
        h.update(nir.as_str().as_bytes());
    } else {
        let ec = &j.etat_civil;
        let nom = ec.nom_naissance.as_ref().or(ec.nom_usage.as_ref())?;
        h.update(b"ec:");
        h.update(passerelle_model::normalise::nom_key(nom).as_bytes());
        h.update(b"|");
        if let Some(p) = ec.prenoms.first() {
            h.update(passerelle_model::normalise::prenom_key(p).as_bytes());
        }
        h.update(b"|");
        if let Some(d) = &ec.date_naissance {
            h.update(d.to_string().as_bytes());
        }
    }
    Some(format!("id-{}", hex::encode(&h.finalize()[..12])))
}

/// Maps one row. `emetteur` is the sender taken from the file name (or `inconnu`);
/// `serial_dates` lets date columns hold Excel serial numbers (XLSX only).
#[instrument(level = "trace", skip_all, fields(line = row.line))]
pub fn map_row(binding: &Binding, row: &Row, emetteur: &str, serial_dates: bool) -> MappedRow {
    let f = &row.fields[..];
    let v = |t: Target| binding.value(f, t);
    let mut issues = Issues::default();
    let mut j = Jeune::default();
    let date = |t: Target| {
        let formats = binding.formats(t);
        move |s: &str| parse_date(s, formats, serial_dates)
    };

    // Identifiants.
    let mut organisme_from_prefix = None;
    let numero = match (v(Target::CafNumero), binding.normaliser(Target::CafNumero)) {
        (None, _) => None,
        (Some(raw), Some(Normaliser::Allocataire)) => {
            let (org, n) = normalise_allocataire(&raw);
            organisme_from_prefix = org;
            match NumeroAllocataire::parse(&n) {
                Ok(n) => Some(n),
                Err(e) => {
                    // box.md: still invalid → dropped with a warning; the record goes
                    // on when other identifiers or its list place it.
                    issues.push(FieldError::drop_value(
                        Target::CafNumero.path(),
                        format!("{}, even normalised; the number is dropped", e.reason),
                    ));
                    None
                }
            }
        }
        (Some(raw), _) => issues.opt(Target::CafNumero.path(), Some(&raw), |s| {
            // A CNAF matricule (the number followed by zeros) is accepted too.
            if s.len() == 15 {
                NumeroAllocataire::from_cnaf_matricule(s)
            } else {
                NumeroAllocataire::parse(s)
            }
        }),
    };
    let organisme = issues
        .opt(
            Target::CafOrganisme.path(),
            v(Target::CafOrganisme).as_deref(),
            CafOrganisme::from_source,
        )
        .or(organisme_from_prefix)
        .unwrap_or(CafOrganisme::Caf);
    if let Some(numero_allocataire) = numero.clone() {
        j.identifiants.caf = Some(Caf {
            organisme,
            numero_allocataire,
        });
    }
    let id = &mut j.identifiants;
    id.nir = issues.opt(Target::Nir.path(), v(Target::Nir).as_deref(), Nir::parse);
    id.solis = issues.opt(
        Target::Solis.path(),
        v(Target::Solis).as_deref(),
        SolisId::parse,
    );
    id.numero_demande_rsa = issues.opt(
        Target::NumeroDemandeRsa.path(),
        v(Target::NumeroDemandeRsa).as_deref(),
        NumeroDemandeRsa::parse,
    );
    id.france_travail_ide = issues.opt(
        Target::FranceTravailIde.path(),
        v(Target::FranceTravailIde).as_deref(),
        FranceTravailIde::parse,
    );
    id.france_travail_id = issues.opt(
        Target::FranceTravailId.path(),
        v(Target::FranceTravailId).as_deref(),
        FranceTravailId::parse,
    );
    id.ine = issues.opt(Target::Ine.path(), v(Target::Ine).as_deref(), Ine::parse);
    let own_id = match v(Target::SourceRecordId) {
        None => None,
        Some(raw) => match RecordId::parse(&raw) {
            Ok(r) => Some(r),
            Err(e) => {
                issues.push(FieldError::reject(Target::SourceRecordId.path(), e.reason));
                None
            }
        },
    };

    // Etat civil: names are kept as given (trimmed, NFC), never re-cased.
    let ec = &mut j.etat_civil;
    ec.civilite = issues.opt(
        Target::Civilite.path(),
        v(Target::Civilite).as_deref(),
        Civilite::from_source,
    );
    ec.nom_usage = v(Target::NomUsage).as_deref().and_then(clean_text);
    ec.nom_naissance = v(Target::NomNaissance)
        .as_deref()
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
        v(Target::DateNaissance).as_deref(),
        date(Target::DateNaissance),
    );
    ec.commune_naissance_insee = issues.opt(
        Target::CommuneNaissanceInsee.path(),
        v(Target::CommuneNaissanceInsee).as_deref(),
        CodeInsee::parse,
    );

    // Contact: the address is kept as given; bad telephones and e-mails are dropped.
    let adresse = Adresse {
        numero: v(Target::AdresseNumero).as_deref().and_then(clean_text),
        voie: v(Target::AdresseVoie).as_deref().and_then(clean_text),
        complement: v(Target::AdresseComplement).as_deref().and_then(clean_text),
        code_postal: issues.opt(
            Target::CodePostal.path(),
            v(Target::CodePostal).as_deref(),
            CodePostal::parse,
        ),
        commune: v(Target::Commune).as_deref().and_then(clean_text),
        code_insee: issues.opt(
            Target::CodeInsee.path(),
            v(Target::CodeInsee).as_deref(),
            CodeInsee::parse,
        ),
    };
    if !adresse.is_empty() {
        j.contact.adresse = Some(adresse);
    }
    let several = binding.normaliser(Target::Telephone) == Some(Normaliser::Telephone);
    for cell in binding.values(f, Target::Telephone) {
        let numbers: Vec<Cow<'_, str>> = if several {
            telephone_candidates(&cell).collect()
        } else {
            vec![cell]
        };
        for n in numbers {
            let t = issues.opt(Target::Telephone.path(), Some(&n), Telephone::parse);
            if let Some(t) = t.filter(|t| !j.contact.telephones.contains(t)) {
                j.contact.telephones.push(t);
            }
        }
    }
    j.contact.email = issues.opt(
        Target::Email.path(),
        v(Target::Email).as_deref(),
        Email::parse,
    );

    // RSA.
    let role = issues.opt(
        Target::RsaRole.path(),
        v(Target::RsaRole).as_deref(),
        RsaRole::from_source,
    );
    j.rsa.role = role;
    j.rsa.etat_droit = issues.opt(
        Target::EtatDroit.path(),
        v(Target::EtatDroit).as_deref(),
        EtatDroit::from_source,
    );
    j.rsa.soumis_droits_devoirs = issues.opt(
        Target::SoumisDroitsDevoirs.path(),
        v(Target::SoumisDroitsDevoirs).as_deref(),
        parse_bool,
    );
    j.rsa.date_ouverture = issues.opt(
        Target::DateOuverture.path(),
        v(Target::DateOuverture).as_deref(),
        date(Target::DateOuverture),
    );

    // Orientation.
    let mut o = Orientation {
        kind: issues.opt(
            Target::OrientationType.path(),
            v(Target::OrientationType).as_deref(),
            OrientationType::from_source,
        ),
        date: issues.opt(
            Target::OrientationDate.path(),
            v(Target::OrientationDate).as_deref(),
            date(Target::OrientationDate),
        ),
        ..Orientation::default()
    };
    if let Some(code) = v(Target::OrientationOrganisme) {
        // A Mission Locale structure code (`59350S00`) makes it an ML; anything
        // else is kept as an AUTRE organisme with its code as given.
        o.organisme = Some(match StructureCode::parse(&code) {
            Ok(sc) => Organisme {
                kind: OrganismeType::Ml,
                code: Some(sc.as_str().to_owned()),
            },
            Err(_) => Organisme {
                kind: OrganismeType::Autre,
                code: clean_text(&code),
            },
        });
    }
    let referent = Personne {
        nom: v(Target::ReferentNom).as_deref().and_then(clean_text),
        email: issues.opt(
            Target::ReferentEmail.path(),
            v(Target::ReferentEmail).as_deref(),
            Email::parse,
        ),
    };
    if !referent.is_empty() {
        o.referent = Some(referent);
    }
    if o != Orientation::default() {
        j.orientation = Some(o);
    }

    if j.identifiants.is_empty()
        && j.etat_civil.nom_usage.is_none()
        && own_id.is_none()
        && !issues.is_rejected()
    {
        issues.push(FieldError::reject(
            "identifiants",
            "the row has no identifier left (caf number, nir, the département's id) and no name",
        ));
    }

    // box.md: stable from one month's file to the next. The row's own id when the
    // mapping names one, else the département's person id, else the allocataire
    // number with the role, else a digest of the identity; a line number only for
    // a row with nothing else (it is rejected anyway).
    let reference = own_id
        .map(|r| r.as_str().to_owned())
        .or_else(|| j.identifiants.solis.as_ref().map(|s| s.as_str().to_owned()))
        .or_else(|| match (&numero, role) {
            (Some(n), Some(r)) => Some(format!("{}-{}", n.as_str(), r.as_str())),
            _ => None,
        })
        .or_else(|| identity_digest(&j))
        .unwrap_or_else(|| format!("ligne-{}", row.line));
    // Every form is a non-empty printable id of at most 64 characters, which is
    // all `RecordId` asks (own ids were checked above).
    let record_id =
        RecordId::parse(&reference).unwrap_or_else(|e| panic!("record id rule changed: {e}"));
    j.sources.push(Source {
        system: SourceSystem::Box,
        organisation: emetteur.to_owned(),
        record_id,
    });

    // Issues name the row by its line, not by its id: they reach stderr and
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
        assert_eq!(
            parse_date("38058", &[], true).unwrap().to_string(),
            "2004-03-12"
        );
        assert!(parse_date("38058", &[], false).is_err());
        assert!(parse_date("60", &[], true).is_err());
        assert!(parse_date("12/03/2004", &[], true).is_ok());
        let f = ["%d-%m-%Y".to_owned()];
        assert_eq!(
            parse_date("22-04-1997", &f, false).unwrap().to_string(),
            "1997-04-22"
        );
        assert!(
            parse_date("22-04-19970", &f, false)
                .unwrap_err()
                .reason
                .contains("none of the column's date formats")
        );
        // The canonical year range still holds.
        assert!(
            parse_date("22-04-1897", &f, false)
                .unwrap_err()
                .reason
                .contains("year")
        );
    }

    #[test]
    fn allocataire_numbers_as_rdv_insertion_normalises_them() {
        let n = |s: &str| normalise_allocataire(s);
        assert_eq!(
            n("CAF0027004992"),
            (Some(CafOrganisme::Caf), "27004992".into())
        );
        assert_eq!(n("0001234567"), (None, "1234567".into()));
        assert_eq!(n("123456700000000"), (None, "1234567".into()));
        assert_eq!(
            n("MSA 12345670"),
            (Some(CafOrganisme::Msa), "1234567".into())
        );
        assert_eq!(n("2055990"), (None, "2055990".into()));
        assert_eq!(n("ISQCJQO"), (None, "ISQCJQO".into()));
    }

    #[test]
    fn telephones_several_and_without_their_zero() {
        let t: Vec<String> = telephone_candidates("0601234567, 071234567")
            .map(|c| c.into_owned())
            .collect();
        assert_eq!(t, ["0601234567", "071234567"]);
        let t: Vec<String> = telephone_candidates("620022002")
            .map(|c| c.into_owned())
            .collect();
        assert_eq!(t, ["0620022002"]);
    }
}
