//! Properties: whatever the bytes, the readers end in rows, records or errors, never
//! a panic (issue 16). Kept fast (a few hundred cases each); `scripts/fuzz` goes on for
//! longer with coverage guidance.

use std::io::Cursor;

use passerelle_connector::csv::CsvReader;
use passerelle_connector::encoding::decoding_reader;
use passerelle_connector::xlsx::XlsxReader;
use passerelle_connector::xml::XmlStream;
use proptest::prelude::*;

fn read_xml(data: &[u8], keep: bool) {
    let Ok((_, reader)) = decoding_reader(data) else {
        return;
    };
    let mut s = XmlStream::new(reader);
    for _ in 0..10_000 {
        match s.next_child_with(|_| keep) {
            Ok(Some(c)) => s.recycle(c.element),
            Ok(None) | Err(_) => return,
        }
    }
}

/// XML-looking text: tags, attributes, entities, CDATA and stray bytes mixed.
fn xmlish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"<R>".to_vec()),
        Just(b"</R>".to_vec()),
        Just(b"<I a=\"1\" b='&amp;'>".to_vec()),
        Just(b"</I>".to_vec()),
        Just(b"<x/>".to_vec()),
        Just(b"<![CDATA[<>]]>".to_vec()),
        Just(b"&#0;&#x41;&lt;&bogus;".to_vec()),
        Just(b"<?xml version=\"1.0\" encoding=\"windows-1252\"?>".to_vec()),
        Just(b"<!-- c -->".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..8),
        "[a-zA-Z0-9 éè]{0,8}".prop_map(String::into_bytes),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

/// CSV-looking text: separators, quotes, line breaks, control bytes.
fn csvish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b";".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\xEF\xBB\xBF".to_vec()),
        Just(b"\x00".to_vec()),
        "[A-Za-z0-9 é]{0,6}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..4),
    ];
    proptest::collection::vec(piece, 0..60).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn xml_never_panics_on_bytes(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        read_xml(&data, false);
        read_xml(&data, true);
    }

    #[test]
    fn xml_never_panics_on_xmlish_text(data in xmlish()) {
        read_xml(&data, false);
        read_xml(&data, true);
    }

    #[test]
    fn csv_never_panics_and_rows_fit_the_header(data in csvish()) {
        if let Ok(r) = CsvReader::new(&data[..]) {
            let width = r.header().len();
            for row in r.flatten() {
                prop_assert_eq!(row.fields.len(), width);
            }
        }
    }

    #[test]
    fn xlsx_never_panics_on_bytes(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut data = data;
        // Half of the cases look like a zip, so the archive code is reached.
        if data.len() > 4 && data[0] % 2 == 0 {
            data[..4].copy_from_slice(b"PK\x03\x04");
        }
        if let Ok(r) = XlsxReader::new(Cursor::new(data), None) {
            for _ in r.take(1000) {}
        }
    }
}
