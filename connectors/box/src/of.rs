//! The obligation de formation flows: the `JEUNES_OF` writer (ML → CD, flow
//! `of-signalement`) and the `OF_SUIVI` reader (CD → ML, flow `of-suivi`), plus the
//! CSV writing rules the hub uses for every file it drops (UTF-8 with BOM, CRLF, `;`,
//! quotes only when needed).

use std::io::Read;

use passerelle_connector::RecordIssue;
use passerelle_connector::csv::{CsvReader, TableError};
use passerelle_model::{
    Date, ImiloDossier, Jeune, ObligationFormation, ObligationFormationStatut, clean_text,
};

/// The header of `JEUNES_OF`.
pub const JEUNES_OF_HEADER: &[&str] = &[
    "Référence",
    "Nom",
    "Prénom",
    "Date de naissance",
    "Adresse",
    "Code postal",
    "Ville",
    "Statut",
    "Date signalement",
    "Structure",
];

/// The header of `OF_SUIVI`.
pub const OF_SUIVI_HEADER: &[&str] = &["Référence", "Statut", "Suite donnée", "Date"];

/// The byte-order mark the hub writes, so that Excel opens its files as UTF-8.
pub const BOM: &str = "\u{feff}";

/// Appends one CSV line (`;`, CRLF), quoting fields that hold `;`, quotes or breaks.
/// A field that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR at
/// its start) is written with a leading `'` (`passerelle_connector::csv::neutralise`).
pub fn push_csv_line<S: AsRef<str>>(out: &mut String, fields: &[S]) {
    push_line(out, fields, true);
}

/// `push_csv_line` without the formula rule: what a département's own export looks
/// like (the simulator plays one), never what the hub writes.
pub fn push_raw_csv_line<S: AsRef<str>>(out: &mut String, fields: &[S]) {
    push_line(out, fields, false);
}

fn push_line<S: AsRef<str>>(out: &mut String, fields: &[S], neutralise: bool) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(';');
        }
        let f = if neutralise {
            passerelle_connector::csv::neutralise(f.as_ref())
        } else {
            std::borrow::Cow::Borrowed(f.as_ref())
        };
        let f = f.as_ref();
        if f.contains([';', '"', '\n', '\r']) || f.starts_with(' ') || f.ends_with(' ') {
            out.push('"');
            out.push_str(&f.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(f);
        }
    }
    out.push_str("\r\n");
}

/// Separates the transfer id from the I-MILO dossier in a `Référence`.
pub const REFERENCE_DOSSIER_SEPARATOR: char = '#';

/// The `Référence` the hub writes for a record in `JEUNES_OF`: the transfer id, then
/// `#` and the I-MILO dossier when the record carries one (flow `of-signalement`
/// allows `identifiants.imilo_dossier` to reach the CD). The CD quotes it back in
/// `OF_SUIVI`, so that the follow-up finds the young person's dossier at the ML
/// without the hub keeping a copy of it.
pub fn reference_of(transfer_id: &str, record: &Jeune) -> String {
    match &record.identifiants.imilo_dossier {
        Some(d) => format!("{transfer_id}{REFERENCE_DOSSIER_SEPARATOR}{}", d.as_str()),
        None => transfer_id.to_owned(),
    }
}

/// Splits a quoted `Référence` into the transfer id and the I-MILO dossier (none when
/// absent or not a dossier number).
pub fn split_reference(reference: &str) -> (&str, Option<ImiloDossier>) {
    match reference.rsplit_once(REFERENCE_DOSSIER_SEPARATOR) {
        Some((tid, d)) if !tid.is_empty() => match ImiloDossier::parse(d) {
            Ok(d) => (tid, Some(d)),
            Err(_) => (reference, None),
        },
        _ => (reference, None),
    }
}

/// One young person to report to the CD under the obligation de formation.
#[derive(Debug, Clone)]
pub struct Signalement<'a> {
    /// The transfer id: the CD quotes it back in `OF_SUIVI`.
    pub reference: &'a str,
    /// The reporting Mission Locale (structure code).
    pub structure: &'a str,
    pub record: &'a Jeune,
}

/// Why a record cannot be written to `JEUNES_OF`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record {reference} cannot be written to JEUNES_OF: {reason}")]
pub struct WriteError {
    pub reference: String,
    pub reason: String,
}

/// Writes a `JEUNES_OF` file. Every record must carry `obligation_formation` with a
/// status; the address is written as one line (number, street, complement).
pub fn write_jeunes_of(items: &[Signalement<'_>]) -> Result<String, WriteError> {
    let mut out = String::from(BOM);
    push_csv_line(&mut out, JEUNES_OF_HEADER);
    for s in items {
        let fail = |reason: &str| WriteError {
            reference: s.reference.to_owned(),
            reason: reason.to_owned(),
        };
        let of = s
            .record
            .obligation_formation
            .as_ref()
            .ok_or_else(|| fail("it has no obligation_formation"))?;
        let statut = of
            .statut
            .ok_or_else(|| fail("obligation_formation.statut is missing"))?;
        let ec = &s.record.etat_civil;
        let adresse = s.record.contact.adresse.as_ref();
        let street = adresse
            .map(|a| {
                [&a.numero, &a.voie, &a.complement]
                    .iter()
                    .filter_map(|p| p.as_deref())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let nom = ec.nom_usage.as_ref().or(ec.nom_naissance.as_ref());
        let fields = [
            s.reference.to_owned(),
            nom.cloned().unwrap_or_default(),
            ec.prenoms.join(" "),
            ec.date_naissance.map(|d| d.to_french()).unwrap_or_default(),
            street,
            adresse
                .and_then(|a| a.code_postal.as_ref())
                .map(|c| c.as_str().to_owned())
                .unwrap_or_default(),
            adresse.and_then(|a| a.commune.clone()).unwrap_or_default(),
            statut.as_str().to_uppercase(),
            of.date_signalement
                .map(|d| d.to_french())
                .unwrap_or_default(),
            s.structure.to_owned(),
        ];
        push_csv_line(&mut out, &fields);
    }
    Ok(out)
}

/// One line of `OF_SUIVI`: the CD's follow-up on a reported young person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfSuiviUpdate {
    pub line: u64,
    /// The `Référence` of the `JEUNES_OF` line (the transfer id).
    pub reference: String,
    pub statut: ObligationFormationStatut,
    /// The CD's follow-up text code (`Suite donnée`).
    pub suite: Option<String>,
    pub date: Date,
}

impl OfSuiviUpdate {
    /// The `obligation_formation` part this update carries.
    pub fn obligation_formation(&self) -> ObligationFormation {
        ObligationFormation {
            statut: Some(self.statut),
            date_signalement: None,
            motif: None,
            suite: self.suite.clone(),
        }
    }

    /// Applies the update to a record.
    pub fn apply_to(&self, record: &mut Jeune) {
        let of = record
            .obligation_formation
            .get_or_insert_with(Default::default);
        of.statut = Some(self.statut);
        if self.suite.is_some() {
            of.suite = self.suite.clone();
        }
    }
}

/// Reads an `OF_SUIVI` file: one update or one rejected line per data row; an `Err`
/// refuses the whole file (no header, wrong header, unreadable).
pub fn read_of_suivi<R: Read>(
    reader: R,
) -> Result<impl Iterator<Item = Result<OfSuiviUpdate, RecordIssue>>, TableError> {
    let csv = CsvReader::new(reader)?;
    let header_ok = csv.header().len() == OF_SUIVI_HEADER.len()
        && csv
            .header()
            .iter()
            .zip(OF_SUIVI_HEADER)
            .all(|(h, e)| crate::mapping::header_key(h) == crate::mapping::header_key(e));
    if !header_ok {
        return Err(TableError::Unreadable {
            line: 1,
            reason: format!("the header must be {}", OF_SUIVI_HEADER.join(";")),
        });
    }
    let mut fatal = false;
    Ok(csv.map_while(move |row| {
        if fatal {
            return None;
        }
        Some(match row {
            Ok(row) => parse_of_suivi(row.line, &row.fields),
            Err(e) => {
                fatal = !e.is_row_error();
                let line = e.line().unwrap_or(0);
                Err(RecordIssue {
                    reference: format!("ligne-{line}"),
                    line: Some(line),
                    field: "ligne".to_owned(),
                    reason: e.to_string(),
                })
            }
        })
    }))
}

fn parse_of_suivi(line: u64, f: &[String]) -> Result<OfSuiviUpdate, RecordIssue> {
    let reference = clean_text(&f[0]);
    // Issues name the row by line: a reference may carry an I-MILO dossier number,
    // which reports and logs must not show.
    let issue_ref = format!("ligne-{line}");
    let issue = |field: &str, reason: String| RecordIssue {
        reference: issue_ref.clone(),
        line: Some(line),
        field: field.to_owned(),
        reason,
    };
    let reference = reference.ok_or_else(|| issue("Référence", "is empty".to_owned()))?;
    let statut = ObligationFormationStatut::from_source(&f[1])
        .map_err(|e| issue("obligation_formation.statut", e.reason))?;
    let date = Date::parse(&f[3]).map_err(|e| issue("Date", e.reason))?;
    Ok(OfSuiviUpdate {
        line,
        reference,
        statut,
        suite: clean_text(&f[2]),
        date,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use passerelle_model::{Adresse, CodePostal};

    fn jeune_of() -> Jeune {
        let mut j = Jeune::default();
        j.etat_civil.nom_usage = Some("N'Diaye; dit \"Momo\"".into());
        j.etat_civil.prenoms = vec!["Mamadou".into(), "Élie".into()];
        j.etat_civil.date_naissance = Some(Date::parse("2009-05-17").unwrap());
        j.contact.adresse = Some(Adresse {
            numero: Some("4".into()),
            voie: Some("rue de l'Église".into()),
            code_postal: Some(CodePostal::parse("59100").unwrap()),
            commune: Some("Roubaix".into()),
            ..Adresse::default()
        });
        j.obligation_formation = Some(ObligationFormation {
            statut: Some(ObligationFormationStatut::Injoignable),
            date_signalement: Some(Date::parse("2026-11-02").unwrap()),
            motif: None,
            suite: None,
        });
        j
    }

    #[test]
    fn jeunes_of_reads_back_with_the_csv_reader() {
        let j = jeune_of();
        let text = write_jeunes_of(&[Signalement {
            reference: "T-1",
            structure: "59350S00",
            record: &j,
        }])
        .unwrap();
        assert!(text.starts_with(BOM) && text.ends_with("\r\n"));
        let mut r = CsvReader::new(text.as_bytes()).unwrap();
        assert_eq!(r.header(), JEUNES_OF_HEADER);
        let row = r.next().unwrap().unwrap();
        assert_eq!(
            row.fields,
            [
                "T-1",
                "N'Diaye; dit \"Momo\"",
                "Mamadou Élie",
                "17/05/2009",
                "4 rue de l'Église",
                "59100",
                "Roubaix",
                "INJOIGNABLE",
                "02/11/2026",
                "59350S00"
            ]
        );
    }

    #[test]
    fn jeunes_of_needs_an_obligation_formation() {
        let j = Jeune::default();
        let err = write_jeunes_of(&[Signalement {
            reference: "T-2",
            structure: "59350S00",
            record: &j,
        }])
        .unwrap_err();
        assert_eq!(err.reference, "T-2");
    }

    #[test]
    fn of_suivi_lines() {
        let input = "Référence;Statut;Suite donnée;Date\r\nT-1;SOLUTION_TROUVEE;ENTREE_FORMATION;2026-11-20\r\nT-2;perdu;;20/11/2026\r\nT-3;REFUS;;31/02/2026\r\nT-4;injoignable;RELANCE;20/11/2026\r\n";
        let got: Vec<_> = read_of_suivi(input.as_bytes()).unwrap().collect();
        let first = got[0].clone().unwrap();
        assert_eq!(first.statut, ObligationFormationStatut::SolutionTrouvee);
        assert_eq!(first.suite.as_deref(), Some("ENTREE_FORMATION"));
        assert_eq!(first.line, 2);
        assert_eq!(
            got[1].clone().unwrap_err().field,
            "obligation_formation.statut"
        );
        assert_eq!(got[2].clone().unwrap_err().field, "Date");
        assert_eq!(got[2].clone().unwrap_err().reference, "ligne-4");
        assert_eq!(
            got[3].clone().unwrap().statut,
            ObligationFormationStatut::Injoignable
        );
        let mut j = Jeune::default();
        first.apply_to(&mut j);
        assert_eq!(j.obligation_formation, Some(first.obligation_formation()));
    }

    #[test]
    fn references_carry_the_dossier_when_known() {
        let mut j = jeune_of();
        assert_eq!(reference_of("T-1", &j), "T-1");
        assert_eq!(split_reference("T-1"), ("T-1", None));
        j.identifiants.imilo_dossier = Some(ImiloDossier::parse("6282").unwrap());
        let r = reference_of("0b6c5f0e-3c1d-4f57-9a43-2f4b8f0c1d2e", &j);
        assert_eq!(r, "0b6c5f0e-3c1d-4f57-9a43-2f4b8f0c1d2e#6282");
        assert!(r.len() <= 64);
        let (tid, d) = split_reference(&r);
        assert_eq!(tid, "0b6c5f0e-3c1d-4f57-9a43-2f4b8f0c1d2e");
        assert_eq!(d.unwrap().as_str(), "6282");
        // Not a dossier number: the whole text is the reference.
        assert_eq!(split_reference("T#x"), ("T#x", None));
        assert_eq!(split_reference("#12"), ("#12", None));
    }

    #[test]
    fn of_suivi_wrong_header_refuses_the_file() {
        assert!(read_of_suivi(&b"Ref;Statut\nT;REFUS\n"[..]).is_err());
    }
}
