//! Tests of the streaming XML reader: subtrees, paths, entities, encodings, and the
//! refusal of cut or malformed documents.

use passerelle_connector::encoding::decoding_reader;
use passerelle_connector::xml::{RecordMapper, XmlError, XmlStream};

fn stream(bytes: &[u8]) -> XmlStream<impl std::io::Read> {
    let (_, reader) = decoding_reader(std::io::Cursor::new(bytes.to_vec())).unwrap();
    XmlStream::new(reader)
}

fn all_children(bytes: &[u8]) -> Result<Vec<passerelle_connector::xml::Child>, XmlError> {
    let mut s = stream(bytes);
    let mut out = Vec::new();
    while let Some(c) = s.next_child()? {
        out.push(c);
    }
    Ok(out)
}

#[test]
fn reads_children_as_trees_with_ranked_paths() {
    let doc = br#"<?xml version="1.0"?>
<!-- a comment -->
<R a="1"><I id="x"><E><N>t1</N></E><T>1</T><T>2</T></I><Other/><I id="y"/></R>
"#;
    let mut s = stream(doc);
    assert_eq!(s.root().unwrap().attr("a"), Some("1"));
    let c = s.next_child().unwrap().unwrap();
    assert_eq!(c.path, "/R/I[1]");
    assert_eq!(c.element.attr("id"), Some("x"));
    assert_eq!(c.element.child("E").unwrap().child_text("N"), Some("t1"));
    assert_eq!(c.element.children_named("T").count(), 2);
    let c = s.next_child().unwrap().unwrap();
    assert_eq!(c.path, "/R/Other[1]");
    let c = s.next_child().unwrap().unwrap();
    assert_eq!((c.path.as_str(), c.rank), ("/R/I[2]", 2));
    assert!(s.next_child().unwrap().is_none());
}

#[test]
fn resolves_entities_cdata_and_character_references() {
    let doc = b"<R><I a=\"x &amp; y &#233;\">a &lt;b&gt; &#x2019;<![CDATA[<c>]]>&quot;</I></R>";
    let c = all_children(doc).unwrap().remove(0);
    assert_eq!(c.element.attr("a"), Some("x & y \u{e9}"));
    assert_eq!(c.element.text, "a <b> \u{2019}<c>\"");
}

#[test]
fn windows_1252_declared_and_encoded_reads_as_utf8() {
    // 0x9C = oe, 0x92 = right quote, 0x80 = euro, 0x8C = OE in windows-1252.
    let doc =
        b"<?xml version=\"1.0\" encoding=\"windows-1252\"?><R><I>\x9C \x92 \x80 \x8C \xE9</I></R>";
    let c = all_children(doc).unwrap().remove(0);
    assert_eq!(c.element.text, "\u{153} \u{2019} \u{20ac} \u{152} \u{e9}");
    let utf8 = "\u{feff}<?xml version=\"1.0\" encoding=\"UTF-8\"?><R><I>œ ’ € Œ é</I></R>";
    let c = all_children(utf8.as_bytes()).unwrap().remove(0);
    assert_eq!(c.element.text, "œ ’ € Œ é");
}

#[test]
fn a_cut_document_is_truncated_with_its_path() {
    let doc = b"<R><I><E><N>abc</N></E></I><I><E><N>de";
    let err = all_children(doc).unwrap_err();
    assert!(err.is_truncated(), "{err}");
    assert!(err.to_string().contains("/R/I[2]/E/N"), "{err}");
    let err = all_children(b"<R><I/>").unwrap_err();
    assert!(err.is_truncated(), "{err}");
    let err = all_children(b"<R><I a=\"1").unwrap_err();
    assert!(err.is_truncated(), "{err}");
    let err = all_children(b"").unwrap_err();
    assert!(err.is_truncated(), "{err}");
}

#[test]
fn malformed_documents_are_errors() {
    for doc in [
        &b"<R><I><E></I></E></R>"[..],
        b"<R><I>&unknown;</I></R>",
        b"<R></R><R></R>",
        b"text<R/>",
    ] {
        let err = all_children(doc).unwrap_err();
        assert!(
            matches!(err, XmlError::Malformed { .. }),
            "{}: {err}",
            String::from_utf8_lossy(doc)
        );
    }
}

#[test]
fn skipping_children_keeps_counting() {
    let doc = b"<R><I><E>x</E></I><I/><J/></R>";
    let mut s = stream(doc);
    let mut names = Vec::new();
    while let Some(c) = s.next_child_with(|_| false).unwrap() {
        assert!(c.element.children.is_empty());
        names.push(c.path);
    }
    assert_eq!(names, ["/R/I[1]", "/R/I[2]", "/R/J[1]"]);
}

#[test]
fn mapper_reports_paths_and_severity_without_values() {
    let mut m = RecordMapper::new("IND1", "/R/I[3]");
    let nir = m.opt(
        "identifiants.nir",
        "E/Nir",
        Some("204035935012300"),
        passerelle_model::Nir::parse,
    );
    assert!(nir.is_none());
    let tel = m.opt(
        "contact.telephones[]",
        "C/T",
        Some("12 34"),
        passerelle_model::Telephone::parse,
    );
    assert!(tel.is_none());
    m.reject("x", "../F/G", "missing");
    assert_eq!(m.rejects.len(), 2);
    assert_eq!(m.warnings.len(), 1);
    assert!(m.rejects[0].reason.ends_with("(at /R/I[3]/E/Nir)"));
    assert!(m.rejects[1].reason.ends_with("(at /R/F/G)"));
    let all = format!("{:?}{:?}", m.rejects, m.warnings);
    assert!(!all.contains("204035935012300") && !all.contains("12 34"));
}
