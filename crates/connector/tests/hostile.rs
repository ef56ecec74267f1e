//! Hostile files (issue 16), each kept as a regression test with the limit it hits:
//! the readers refuse them with a precise reason, fast, with bounded memory, and never
//! by crashing or by quoting a value.

use std::io::{Cursor, Write};
use std::time::{Duration, Instant};

use passerelle_connector::csv::{CsvReader, TableError};
use passerelle_connector::encoding::decoding_reader;
use passerelle_connector::xlsx::XlsxReader;
use passerelle_connector::xml::{XmlError, XmlStream};
use passerelle_connector::{ConnectorError, ReaderConfig};

fn xml_children(bytes: &[u8]) -> Result<usize, XmlError> {
    let (_, reader) = decoding_reader(Cursor::new(bytes.to_vec()))?;
    let mut s = XmlStream::new(reader);
    let mut n = 0;
    while let Some(c) = s.next_child()? {
        s.recycle(c.element);
        n += 1;
    }
    Ok(n)
}

/// Both passes must refuse: the counting one (children skipped) and the mapping one.
fn both_passes(bytes: &[u8]) -> (XmlError, XmlError) {
    let (_, reader) = decoding_reader(Cursor::new(bytes.to_vec())).unwrap();
    let mut s = XmlStream::new(reader);
    let skipped = loop {
        match s.next_child_with(|_| false) {
            Ok(Some(c)) => s.recycle(c.element),
            Ok(None) => panic!("the counting pass accepted a hostile file"),
            Err(e) => break e,
        }
    };
    (skipped, xml_children(bytes).unwrap_err())
}

fn quick<T>(limit: Duration, f: impl FnOnce() -> T) -> T {
    let t0 = Instant::now();
    let out = f();
    assert!(t0.elapsed() < limit, "took {:?}", t0.elapsed());
    out
}

/// Hostile case 2: 8,000 nested elements in one record (71 KB) overflowed the stack
/// (rc 134) in the recursive recycling. Limit: `max_depth` (64).
#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    let mut doc = String::from("<ExportSolis><Individu>");
    doc.push_str(&"<a>".repeat(8000));
    doc.push_str(&"</a>".repeat(8000));
    doc.push_str("</Individu></ExportSolis>");
    let (a, b) = both_passes(doc.as_bytes());
    for e in [a, b] {
        assert!(e.to_string().contains("nested deeper than 64"), "{e}");
        assert!(
            e.to_string().contains("/ExportSolis/Individu[1]/a/a"),
            "{e}"
        );
        let refusal = e.into_refusal("SOLIS_EXPORT_BRSA_059_20261121.xml");
        assert!(matches!(refusal, ConnectorError::FileRefused { .. }));
    }
    // Deeper still than any thread stack, read with a generous limit: iterative.
    let config = ReaderConfig {
        max_depth: 1000,
        ..ReaderConfig::default()
    };
    let mut doc = String::from("<R><I>");
    doc.push_str(&"<a>".repeat(990));
    doc.push_str(&"</a>".repeat(990));
    doc.push_str("</I></R>");
    let (_, reader) = decoding_reader(Cursor::new(doc.into_bytes())).unwrap();
    let mut s = XmlStream::with_config(reader, &config);
    let c = s.next_child().unwrap().unwrap();
    s.recycle(c.element);
    assert!(s.next_child().unwrap().is_none());
}

/// Hostile case 9: 200,000 attributes on one element (2 MB) ran past 60 s (quick-xml
/// checks duplicates pairwise). Limits: the event budget (a tag longer than 384 KiB)
/// and `max_attributes` (64) for shorter tags.
#[test]
fn many_attributes_are_refused_fast() {
    let tag = |n: usize| {
        let mut doc = String::from("<R><I ");
        for i in 0..n {
            doc.push_str(&format!("a{i}=\"1\" "));
        }
        doc.push_str("/></R>");
        doc
    };
    let (a, b) = quick(Duration::from_secs(5), || {
        both_passes(tag(200_000).as_bytes())
    });
    for e in [a, b] {
        assert!(e.to_string().contains("longer than 393216 bytes"), "{e}");
    }
    let (a, b) = quick(Duration::from_secs(5), || both_passes(tag(1000).as_bytes()));
    for e in [a, b] {
        assert!(e.to_string().contains("more than 64 attributes"), "{e}");
    }
}

/// Hostile case 9: 200,000 distinct element names (2 MB) ran past 60 s (ranks were
/// looked up in a list). Limits: `max_distinct_names` (1024) for the root's children,
/// `max_nodes_per_record` (100,000) inside a record.
#[test]
fn many_distinct_names_are_refused_fast() {
    let mut doc = String::from("<R>");
    for i in 0..200_000 {
        doc.push_str(&format!("<n{i}/>"));
    }
    doc.push_str("</R>");
    let e = quick(Duration::from_secs(5), || {
        xml_children(doc.as_bytes()).unwrap_err()
    });
    assert!(e.to_string().contains("more than 1024 distinct"), "{e}");
    let mut doc = String::from("<R><I>");
    for i in 0..200_000 {
        doc.push_str(&format!("<n{i}/>"));
    }
    doc.push_str("</I></R>");
    // Inside one record, they are bounded by the elements a record may hold.
    let (a, b) = quick(Duration::from_secs(5), || both_passes(doc.as_bytes()));
    for e in [a, b] {
        assert!(e.to_string().contains("more than 100000 elements"), "{e}");
    }
}

/// Hostile case 10: a 50 MB text node became a value (8 MB here). Limits: `max_field_len`
/// (64 KiB) on every value, and a budget per event so that the text is never
/// buffered whole (CDATA included, whose `<` would fool a scan for tags).
#[test]
fn long_texts_are_refused_before_being_buffered() {
    let big = "x".repeat(8 * 1024 * 1024);
    for doc in [
        format!("<R><I><Nom>{big}</Nom></I></R>"),
        format!(
            "<R><I><Nom><![CDATA[{}]]></Nom></I></R>",
            "<".repeat(8 * 1024 * 1024)
        ),
        format!("<R><I a=\"{}\"/></R>", "y".repeat(1024 * 1024)),
    ] {
        let (a, b) = quick(Duration::from_secs(10), || both_passes(doc.as_bytes()));
        for e in [a, b] {
            let text = e.to_string();
            assert!(
                text.contains("longer than") || text.contains("value longer"),
                "{text}"
            );
            assert!(
                !text.contains("xxxx") && !text.contains("yyyy"),
                "no value quoted"
            );
        }
    }
    // Text split by references into many events still adds up.
    let doc = format!("<R><I>{}</I></R>", "ab&amp;".repeat(30_000));
    let e = xml_children(doc.as_bytes()).unwrap_err();
    assert!(e.to_string().contains("longer than 65536"), "{e}");
}

/// Hostile case 10: NUL and control characters were accepted in names.
#[test]
fn control_characters_are_refused() {
    for doc in [
        &b"<R><I><Nom>A\x00B</Nom></I></R>"[..],
        b"<R><I><Nom>A&#0;B</Nom></I></R>",
        b"<R><I><Nom>A&#x1B;B</Nom></I></R>",
        b"<R><I nom=\"A&#1;\"/></R>",
    ] {
        let (a, b) = both_passes(doc);
        for e in [a, b] {
            assert!(
                e.to_string().contains("control character")
                    || e.to_string().contains("bad character reference"),
                "{e}"
            );
        }
    }
    // Tabs and line breaks are text.
    assert_eq!(xml_children(b"<R><I>a&#9;b&#10;c</I></R>").unwrap(), 1);
}

/// Hostile case 9: a 200,000-column CSV header took 22 s (duplicates checked
/// pairwise). Limit: `max_columns` (512).
#[test]
fn a_wide_csv_header_is_refused_fast() {
    let header: Vec<String> = (0..200_000).map(|i| format!("C{i}")).collect();
    let text = format!("{}\n1;2\n", header.join(";"));
    let e = quick(Duration::from_secs(2), || {
        CsvReader::new(text.as_bytes()).unwrap_err()
    });
    assert!(e.to_string().contains("more than 512 columns"), "{e}");
    // A wide but allowed header with a duplicate is found in linear time.
    let mut header: Vec<String> = (0..16_000).map(|i| format!("C{i}")).collect();
    header.push("C3".into());
    let config = ReaderConfig {
        max_columns: 16_384,
        ..ReaderConfig::default()
    };
    let text = format!("{}\n", header.join(";"));
    let e = quick(Duration::from_secs(2), || {
        CsvReader::with_config(text.as_bytes(), &config).unwrap_err()
    });
    assert_eq!(e, TableError::DuplicateColumn("4 and 16001".into()));
}

/// Hostile case 10: a refused header-less CSV quoted a data cell (a CAF number) in
/// the error and the ACK. Now a duplicate "header" names column numbers.
#[test]
fn errors_never_quote_a_cell() {
    let text = "0027004992;DUPONT;0027004992\n0031234567;MARTIN;0031234567\n";
    let e = CsvReader::new(text.as_bytes()).unwrap_err();
    assert!(!e.to_string().contains("0027004992"), "{e}");
    assert!(e.to_string().contains("columns 1 and 3"), "{e}");
}

/// Hostile case 10: no length limit on fields. A line with no break, or a quote
/// never closed, costs one field's limit, not the file.
#[test]
fn long_csv_fields_are_refused_at_their_limit() {
    let line = format!("A;B\n1;{}", "9".repeat(20 * 1024 * 1024));
    let rows: Vec<_> = quick(Duration::from_secs(5), || {
        CsvReader::new(line.as_bytes()).unwrap().collect()
    });
    let e = rows.last().unwrap().clone().unwrap_err();
    assert!(!e.is_row_error());
    assert_eq!(
        e.to_string(),
        "cannot read the file at line 2: column 2 is longer than 65536 bytes"
    );
    let open = format!("A;B\n\"{}", "x\n".repeat(1024 * 1024));
    let rows: Vec<_> = CsvReader::new(open.as_bytes()).unwrap().collect();
    assert!(
        rows.last()
            .unwrap()
            .clone()
            .unwrap_err()
            .to_string()
            .contains("longer than")
    );
}

/// Hostile case 10: control characters in cells reject their row alone.
#[test]
fn csv_control_characters_reject_the_row_alone() {
    let rows: Vec<_> = CsvReader::new(&b"Nom;Prenom\nA\x00B;C\nD;E\n"[..])
        .unwrap()
        .collect();
    assert_eq!(rows.len(), 2);
    let e = rows[0].clone().unwrap_err();
    assert!(e.is_row_error());
    assert_eq!(
        e.to_string(),
        "line 2, column Nom: the cell holds a control character"
    );
    assert!(rows[1].is_ok());
}

/// Hostile case: more rows than `max_rows` stop the file (a limit set low here).
#[test]
fn rows_are_bounded() {
    let config = ReaderConfig {
        max_rows: 3,
        ..ReaderConfig::default()
    };
    let text = "A\n1\n2\n3\n4\n5\n";
    let rows: Vec<_> = CsvReader::with_config(text.as_bytes(), &config)
        .unwrap()
        .collect();
    assert_eq!(rows.len(), 4);
    assert!(
        rows[3]
            .clone()
            .unwrap_err()
            .to_string()
            .contains("more than 3 rows")
    );
}

/// A minimal workbook: one sheet, an optional shared-strings table.
fn workbook(sheet: &str, shared: Option<&str>) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let mut types = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>"#,
    );
    let mut rels = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>"#,
    );
    if shared.is_some() {
        types.push_str(r#"<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>"#);
        rels.push_str(r#"<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/>"#);
    }
    types.push_str("</Types>");
    rels.push_str("</Relationships>");
    let files: Vec<(&str, String)> = vec![
        ("[Content_Types].xml", types),
        ("_rels/.rels", r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#.to_owned()),
        ("xl/workbook.xml", r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Feuil1" sheetId="1" r:id="rId1"/></sheets></workbook>"#.to_owned()),
        ("xl/_rels/workbook.xml.rels", rels),
        ("xl/worksheets/sheet1.xml", format!(r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>{sheet}</sheetData></worksheet>"#)),
    ];
    for (name, body) in files {
        zip.start_file(name, opts).unwrap();
        zip.write_all(body.as_bytes()).unwrap();
    }
    if let Some(sst) = shared {
        zip.start_file("xl/sharedStrings.xml", opts).unwrap();
        zip.write_all(
            format!(r#"<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">{sst}</sst>"#).as_bytes(),
        )
        .unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn xlsx_error(bytes: Vec<u8>) -> TableError {
    match XlsxReader::new(Cursor::new(bytes), None) {
        Err(e) => e,
        Ok(r) => r
            .filter_map(Result::err)
            .find(|e| !e.is_row_error())
            .expect("the workbook was refused"),
    }
}

#[test]
fn a_plain_workbook_reads() {
    let bytes = workbook(
        r#"<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="inlineStr"><is><t>Prénom</t></is></c></row><row r="2"><c r="A2"><v>59000</v></c><c r="B2" t="inlineStr"><is><t>Léa</t></is></c></row>"#,
        Some(r#"<si><t>Code postal</t></si>"#),
    );
    let r = XlsxReader::new(Cursor::new(bytes), None).unwrap();
    assert_eq!(r.header(), ["Code postal", "Prénom"]);
    let rows: Vec<_> = r.collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].clone().unwrap().fields, ["59000", "Léa"]);
}

/// Hostile case 3: one cell at column `XFDXFD` (5.8 KB file) made a 4.2 GB then an
/// 8 GB allocation. Limit: `max_columns` (512), checked on the cell's position.
#[test]
fn a_cell_far_to_the_right_is_refused() {
    let bytes = workbook(
        r#"<row r="1"><c r="A1" t="inlineStr"><is><t>Nom</t></is></c></row><row r="2"><c r="XFDXFD2"><v>1</v></c></row>"#,
        None,
    );
    let e = quick(Duration::from_secs(2), || xlsx_error(bytes));
    assert!(e.to_string().contains("beyond column 512"), "{e}");
}

/// Hostile case 3: one row of 30 M cells (880 KB) took 1.9 GB. Limit: cells per row
/// (`max_columns`), also when cells repeat a position.
#[test]
fn a_row_of_millions_of_cells_is_refused() {
    let mut sheet = String::from(
        r#"<row r="1"><c r="A1" t="inlineStr"><is><t>Nom</t></is></c></row><row r="2">"#,
    );
    for _ in 0..100_000 {
        sheet.push_str(r#"<c r="A2"><v>1</v></c>"#);
    }
    sheet.push_str("</row>");
    let e = quick(Duration::from_secs(5), || {
        xlsx_error(workbook(&sheet, None))
    });
    assert!(
        e.to_string().contains("more than 512 cells in one row"),
        "{e}"
    );
}

/// Hostile case 3: a 1 GB string (1 MB file) was accepted as a first name. Limits:
/// `max_compression_ratio` (200) and `max_decompressed_bytes` on the archive, checked
/// before calamine expands it; `max_field_len` on each shared string.
#[test]
fn an_archive_that_expands_too_much_is_refused_before_it_is_opened() {
    let huge = "A".repeat(16 * 1024 * 1024);
    let bytes = workbook(
        r#"<row r="1"><c r="A1" t="s"><v>0</v></c></row>"#,
        Some(&format!("<si><t>{huge}</t></si>")),
    );
    assert!(bytes.len() < 1024 * 1024, "{}", bytes.len());
    let e = quick(Duration::from_secs(10), || xlsx_error(bytes));
    assert!(e.to_string().contains("decompresses to more than"), "{e}");
    // Within the ratio but one string too long for a field.
    let long = "B".repeat(200 * 1024);
    let bytes = workbook(
        r#"<row r="1"><c r="A1" t="s"><v>0</v></c></row>"#,
        Some(&format!("<si><t>{long}</t></si>")),
    );
    let config = ReaderConfig {
        max_compression_ratio: 100_000,
        ..ReaderConfig::default()
    };
    let e = XlsxReader::with_config(Cursor::new(bytes), None, &config).unwrap_err();
    assert!(
        e.to_string()
            .contains("shared string 1 is longer than 65536"),
        "{e}"
    );
}

/// Too many shared strings (a limit set low here), and an inline string too long for a
/// field: refused with the limit's name, no value.
#[test]
fn shared_strings_and_inline_cells_are_bounded() {
    let config = ReaderConfig {
        max_shared_strings: 10,
        ..ReaderConfig::default()
    };
    let sst: String = (0..11).map(|i| format!("<si><t>s{i}</t></si>")).collect();
    let bytes = workbook(
        r#"<row r="1"><c r="A1" t="s"><v>0</v></c></row>"#,
        Some(&sst),
    );
    let e = XlsxReader::with_config(Cursor::new(bytes), None, &config).unwrap_err();
    assert!(e.to_string().contains("more than 10 shared strings"), "{e}");
    let long = "C".repeat(70 * 1024);
    let bytes = workbook(
        &format!(
            r#"<row r="1"><c r="A1" t="inlineStr"><is><t>Nom</t></is></c></row><row r="2"><c r="A2" t="inlineStr"><is><t>{long}</t></is></c></row><row r="3"><c r="A3" t="inlineStr"><is><t>Léa</t></is></c></row>"#
        ),
        None,
    );
    let rows: Vec<_> = XlsxReader::new(Cursor::new(bytes), None).unwrap().collect();
    assert_eq!(rows.len(), 2);
    let e = rows[0].clone().unwrap_err();
    assert!(
        e.is_row_error() && e.to_string().contains("longer than 65536"),
        "{e}"
    );
    assert!(!e.to_string().contains("CCCC"));
    assert_eq!(rows[1].clone().unwrap().fields, ["Léa"]);
}
