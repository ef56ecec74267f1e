//! The XLSX fixture of the CD080 mapping: a named sheet that is not the first one,
//! numbers typed as numbers, a real date cell, a bare serial number in a date column,
//! Excel's 1900-02-29, a boolean cell and an error cell. `BLESS=1` regenerates the workbook.

use std::path::{Path, PathBuf};

use passerelle_box::{BrsaReader, Mapping};
use rust_xlsxwriter::{ExcelDateTime, Format, Formula, Workbook};

const HEADER: &[&str] = &[
    "NUMERO CAF",
    "ORGANISME",
    "ROLE",
    "NOM",
    "PRENOMS",
    "SEXE",
    "DATE NAISSANCE",
    "ADRESSE",
    "CODE POSTAL",
    "VILLE",
    "TELEPHONE",
    "MAIL",
    "ETAT DOSSIER",
    "SOUMIS DD",
    "ORIENTATION",
    "CODE STRUCTURE",
    "REFERENT",
    "MAIL REFERENT",
    "AGE",
];

fn path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cd080_xlsx/BRSA_LISTE_080_CD080_20261203100000.xlsx")
}

fn workbook() -> Vec<u8> {
    let mut book = Workbook::new();
    let notice = book.add_worksheet();
    notice.set_name("Notice").unwrap();
    notice
        .write_string(0, 0, "Liste des allocataires BRSA — ne pas diffuser")
        .unwrap();
    let s = book.add_worksheet();
    s.set_name("Liste BRSA").unwrap();
    let date = Format::new().set_num_format("dd/mm/yyyy");
    for (c, h) in HEADER.iter().enumerate() {
        s.write_string(0, c as u16, *h).unwrap();
    }
    // Row 2: numbers as numbers, a real date cell, a boolean.
    s.write_number(1, 0, 1234567.0).unwrap();
    s.write_string(1, 1, "CAF").unwrap();
    s.write_string(1, 2, "D").unwrap();
    s.write_string(1, 3, "Lefèvre").unwrap();
    s.write_string(1, 4, "Léa Marie").unwrap();
    s.write_string(1, 5, "F").unwrap();
    s.write_datetime_with_format(1, 6, ExcelDateTime::from_ymd(2004, 3, 12).unwrap(), &date)
        .unwrap();
    s.write_string(1, 7, "8 rue des Jacobins").unwrap();
    s.write_number(1, 8, 80000.0).unwrap();
    s.write_string(1, 9, "Amiens").unwrap();
    s.write_string(1, 10, "06 12 34 56 78").unwrap();
    s.write_string(1, 11, "lea.lefevre@example.org").unwrap();
    s.write_number(1, 12, 2.0).unwrap();
    s.write_boolean(1, 13, true).unwrap();
    s.write_string(1, 14, "SP").unwrap();
    s.write_string(1, 15, "80021S00").unwrap();
    s.write_string(1, 16, "Claire Durand").unwrap();
    s.write_string(1, 17, "c.durand@ml-amiens.example.fr")
        .unwrap();
    s.write_number(1, 18, 22.0).unwrap();
    // Row 3: a CAF number as text with its leading zero, MSA, a bare serial date.
    s.write_string(2, 0, "0765432").unwrap();
    s.write_string(2, 1, "MSA").unwrap();
    s.write_string(2, 2, "C").unwrap();
    s.write_string(2, 3, "Dubois").unwrap();
    s.write_string(2, 4, "Noé").unwrap();
    s.write_string(2, 5, "H").unwrap();
    s.write_number(2, 6, 37500.0).unwrap();
    s.write_number(2, 12, 5.0).unwrap();
    s.write_string(2, 13, "N").unwrap();
    s.write_string(2, 14, "P").unwrap();
    s.write_string(2, 15, "Maison de l'emploi").unwrap();
    // Row 5 (row 4 left empty): Excel's 1900-02-29 as a date cell.
    s.write_number(4, 0, 2345678.0).unwrap();
    s.write_string(4, 3, "Caron").unwrap();
    s.write_number_with_format(4, 6, 60.0, &date).unwrap();
    // Row 6: a formula whose cached result is an Excel error.
    s.write_number(5, 0, 3456789.0).unwrap();
    s.write_string(5, 3, "Mercier").unwrap();
    s.write_formula(5, 12, Formula::new("=NA()").set_result("#N/A"))
        .unwrap();
    book.save_to_buffer().unwrap()
}

#[test]
fn cd080_workbook() {
    if passerelle_testkit::fixtures::blessing() || !path().exists() {
        std::fs::write(path(), workbook()).unwrap();
    }
    let mapping = Mapping::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/mappings/cd080_brsa.toml"),
    )
    .unwrap();
    let name = path().file_name().unwrap().to_string_lossy().into_owned();
    let rows: Vec<_> = BrsaReader::open(std::fs::File::open(path()).unwrap(), &name, &mapping)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        rows.iter().map(|r| r.line).collect::<Vec<_>>(),
        [2, 3, 5, 6]
    );
    let lea = rows[0].outcome.as_ref().unwrap();
    let json: serde_json::Value = serde_json::from_str(&lea.to_json_line()).unwrap();
    assert_eq!(json["identifiants"]["caf"]["numero_allocataire"], "1234567");
    assert_eq!(json["etat_civil"]["date_naissance"], "2004-03-12");
    assert_eq!(json["etat_civil"]["civilite"], "MME");
    assert_eq!(json["contact"]["adresse"]["code_postal"], "80000");
    assert_eq!(json["rsa"]["soumis_droits_devoirs"], true);
    assert_eq!(
        json["orientation"]["referent"]["email"],
        "c.durand@ml-amiens.example.fr"
    );
    let noe = rows[1].outcome.as_ref().unwrap();
    let json: serde_json::Value = serde_json::from_str(&noe.to_json_line()).unwrap();
    assert_eq!(
        json["identifiants"]["caf"],
        serde_json::json!({"organisme": "MSA", "numero_allocataire": "0765432"})
    );
    assert_eq!(
        json["etat_civil"]["date_naissance"], "2002-09-01",
        "serial 37500"
    );
    assert_eq!(json["orientation"]["organisme"]["type"], "AUTRE");
    let bug = rows[2].outcome.as_ref().unwrap_err();
    assert_eq!(bug[0].field, "etat_civil.date_naissance");
    assert_eq!(bug[0].line, Some(5));
    let error = rows[3].outcome.as_ref().unwrap_err();
    assert_eq!(error[0].field, "ETAT DOSSIER");
    assert!(
        error[0].reason.contains("excel error"),
        "{}",
        error[0].reason
    );
}
