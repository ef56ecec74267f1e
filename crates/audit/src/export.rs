//! Writing entries out for a DPO: CSV (RFC 4180 quoting) or a JSON array, streamed.
//!
//! A CSV cell that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab or CR
//! at its start, as OWASP lists them) is written with a leading `'`: a reason that
//! came from a peer must never become `=HYPERLINK(…)` in the DPO's spreadsheet.

use std::borrow::Cow;
use std::io::Write;

use crate::entry::Entry;
use crate::error::Result;

/// The export formats of `passerelle audit export` and `subject`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Json,
}

/// The CSV header, one column per entry field; field paths are joined with `;`.
pub const CSV_HEADER: [&str; 14] = [
    "seq",
    "at",
    "event",
    "actor",
    "flow",
    "sender",
    "recipient",
    "subject",
    "fields",
    "legal_basis",
    "ciphertext_digest",
    "outcome",
    "reason",
    "hash",
];

/// A cell as written into a CSV: formulas neutralised (see the module doc).
pub fn neutralise(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// Writes entries one at a time, so an export of a year of traffic stays small in memory.
pub struct Exporter<W: Write> {
    inner: Inner<W>,
}

enum Inner<W: Write> {
    Csv(Box<csv::Writer<W>>),
    Json { out: W, first: bool },
}

impl<W: Write> std::fmt::Debug for Exporter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Exporter")
    }
}

impl<W: Write> Exporter<W> {
    /// Starts an export (writes the CSV header or the opening bracket).
    pub fn new(format: ExportFormat, out: W) -> Result<Self> {
        let inner = match format {
            ExportFormat::Csv => {
                let mut w = csv::WriterBuilder::new()
                    .quote_style(csv::QuoteStyle::Necessary)
                    .from_writer(out);
                w.write_record(CSV_HEADER)?;
                Inner::Csv(Box::new(w))
            }
            ExportFormat::Json => {
                let mut out = out;
                out.write_all(b"[")?;
                Inner::Json { out, first: true }
            }
        };
        Ok(Self { inner })
    }

    pub fn write(&mut self, e: &Entry) -> Result<()> {
        match &mut self.inner {
            Inner::Csv(w) => {
                let seq = e.seq.to_string();
                let fields = e.fields.join(";");
                let hash = hex::encode(&e.hash);
                let o = |s: &Option<String>| s.clone().unwrap_or_default();
                let row = [
                    seq,
                    e.at.clone(),
                    e.event.clone(),
                    e.actor.clone(),
                    o(&e.flow),
                    o(&e.sender),
                    o(&e.recipient),
                    o(&e.subject),
                    fields,
                    o(&e.legal_basis),
                    o(&e.ciphertext_digest),
                    e.outcome.clone(),
                    o(&e.reason),
                    hash,
                ];
                w.write_record(row.iter().map(|c| neutralise(c).into_owned()))?;
            }
            Inner::Json { out, first } => {
                out.write_all(if *first { b"\n" } else { b",\n" })?;
                *first = false;
                serde_json::to_writer(&mut *out, e).map_err(std::io::Error::other)?;
            }
        }
        Ok(())
    }

    /// Ends the export (closing bracket) and flushes.
    pub fn finish(self) -> Result<W> {
        match self.inner {
            Inner::Csv(w) => (*w)
                .into_inner()
                .map_err(|e| std::io::Error::other(e.to_string()).into()),
            Inner::Json { mut out, .. } => {
                out.write_all(b"\n]\n")?;
                out.flush()?;
                Ok(out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(reason: &str) -> Entry {
        Entry {
            seq: 3,
            at: "2025-01-01T00:00:00.000000Z".into(),
            event: "denied".into(),
            actor: "system".into(),
            flow: Some("ml-to-cd".into()),
            sender: None,
            recipient: None,
            subject: None,
            fields: vec!["a.b".into(), "c".into()],
            legal_basis: None,
            ciphertext_digest: None,
            outcome: "refused".into(),
            reason: Some(reason.into()),
            hash: vec![0xab; 32],
        }
    }

    #[test]
    fn csv_quotes_commas_quotes_and_newlines() {
        let mut x = Exporter::new(ExportFormat::Csv, Vec::new()).expect("start");
        x.write(&entry("no flow, \"ml\"\nsecond line"))
            .expect("write");
        let out = String::from_utf8(x.finish().expect("finish")).expect("utf-8");
        let mut r = csv::Reader::from_reader(out.as_bytes());
        let rec = r.records().next().expect("one row").expect("valid csv");
        assert_eq!(rec.len(), CSV_HEADER.len());
        assert_eq!(&rec[12], "no flow, \"ml\"\nsecond line");
        assert_eq!(&rec[8], "a.b;c");
        assert_eq!(&rec[13], "ab".repeat(32));
    }

    /// Hostile case 6 of issue 16: `audit export --format csv` wrote a cell starting
    /// `=HYPERLINK(`.
    #[test]
    fn csv_cells_never_start_a_formula() {
        for bad in [
            "=HYPERLINK(\"http://x\",\"clic\")",
            "+1",
            "-2+3",
            "@SUM(A1)",
            "\tx",
            "\rx",
        ] {
            let mut x = Exporter::new(ExportFormat::Csv, Vec::new()).expect("start");
            x.write(&entry(bad)).expect("write");
            let out = String::from_utf8(x.finish().expect("finish")).expect("utf-8");
            let mut r = csv::Reader::from_reader(out.as_bytes());
            let rec = r.records().next().expect("one row").expect("valid csv");
            assert_eq!(rec[12], format!("'{bad}"), "{bad:?}");
        }
        assert_eq!(neutralise("plain"), "plain");
    }

    #[test]
    fn json_is_one_array() {
        let mut x = Exporter::new(ExportFormat::Json, Vec::new()).expect("start");
        x.write(&entry("a")).expect("write");
        x.write(&entry("b")).expect("write");
        let out = x.finish().expect("finish");
        let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v.as_array().map(Vec::len), Some(2));
        assert_eq!(v[1]["reason"], "b");
        assert_eq!(v[0]["fields"][1], "c");
        let empty = Exporter::new(ExportFormat::Json, Vec::new())
            .and_then(Exporter::finish)
            .expect("empty");
        let v: serde_json::Value = serde_json::from_slice(&empty).expect("json");
        assert_eq!(v, serde_json::json!([]));
    }
}
