//! A streaming reader for the CSV dialect French administrations produce: `;`
//! separator, header row, optional double quotes (`""` escapes one), CRLF or LF, UTF-8
//! with or without BOM or windows-1252 (detected), trailing empty lines and trailing
//! separators tolerated, and a row with the wrong number of columns rejected alone
//! with its physical line number.
//!
//! Rows come out as strings, one per header column; typing (dates, booleans, codes)
//! belongs to the mapping that knows what each column means.

use std::io::{BufRead, BufReader, Read};

use crate::encoding::{DecodingReader, Detected, decoding_reader};

/// One data row: its physical line in the file (the header is line 1; a quoted field
/// spanning lines counts every line) and one string per header column.
#[derive(Clone, PartialEq, Eq)]
pub struct Row {
    pub line: u64,
    pub fields: Vec<String>,
}

impl std::fmt::Debug for Row {
    // Fields are personal data: show the shape only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Row")
            .field("line", &self.line)
            .field("fields", &self.fields.len())
            .finish()
    }
}

/// What can go wrong reading a table (CSV or XLSX). Messages name lines and columns,
/// never cell values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// One row has the wrong number of columns; the other rows are still read.
    #[error("line {line} has {found} columns, expected {expected}")]
    ColumnCount {
        line: u64,
        expected: usize,
        found: usize,
    },
    /// One cell cannot be read (an Excel error value); the other rows are still read.
    #[error("line {line}, column {column}: {reason}")]
    Cell {
        line: u64,
        column: String,
        reason: String,
    },
    /// The file has no header row.
    #[error("the file has no header row")]
    NoHeader,
    /// The header names the same column twice.
    #[error("the header names column {0} twice")]
    DuplicateColumn(String),
    /// The file cannot be read past this point (I/O error, broken archive).
    #[error("cannot read the file at line {line}: {reason}")]
    Unreadable { line: u64, reason: String },
}

impl TableError {
    /// Whether only this row is lost (the reader goes on) rather than the whole file.
    pub fn is_row_error(&self) -> bool {
        matches!(self, Self::ColumnCount { .. } | Self::Cell { .. })
    }

    /// The line the error is about, when there is one.
    pub fn line(&self) -> Option<u64> {
        match self {
            Self::ColumnCount { line, .. }
            | Self::Cell { line, .. }
            | Self::Unreadable { line, .. } => Some(*line),
            Self::NoHeader | Self::DuplicateColumn(_) => None,
        }
    }
}

/// Streams rows out of a `;`-separated file; memory stays flat in the file's size.
///
/// The parser is written here rather than taken from the `csv` crate because rows
/// must carry their physical line number, blank lines and quoted newlines included.
pub struct CsvReader<R: Read> {
    inner: BufReader<DecodingReader<R>>,
    header: Vec<String>,
    detected: Detected,
    /// Physical lines consumed so far.
    line: u64,
    buf: Vec<u8>,
    /// Set at the end of input or after an unreadable error, so the iterator ends.
    done: bool,
}

impl<R: Read> std::fmt::Debug for CsvReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvReader")
            .field("header", &self.header)
            .field("detected", &self.detected)
            .field("line", &self.line)
            .finish_non_exhaustive()
    }
}

impl<R: Read> CsvReader<R> {
    /// Detects the encoding and reads the header row.
    pub fn new(reader: R) -> Result<Self, TableError> {
        let (detected, decoded) = decoding_reader(reader).map_err(|e| TableError::Unreadable {
            line: 1,
            reason: e.to_string(),
        })?;
        let mut this = Self {
            inner: BufReader::with_capacity(64 * 1024, decoded),
            header: Vec::new(),
            detected,
            line: 0,
            buf: Vec::with_capacity(1024),
            done: false,
        };
        let header = loop {
            match this.read_record()? {
                None => return Err(TableError::NoHeader),
                Some((_, fields)) => {
                    let names = header_names(fields.iter().map(String::as_str));
                    // Leading blank lines or lines of bare separators are not a header.
                    if !names.is_empty() {
                        break names;
                    }
                }
            }
        };
        check_duplicates(&header)?;
        this.header = header;
        Ok(this)
    }

    /// The column names, trimmed, trailing empty names (trailing separators) removed.
    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// The encoding detected.
    pub fn detected(&self) -> Detected {
        self.detected
    }

    /// Reads one record (one or more physical lines when a quoted field holds line
    /// breaks); returns the line it starts on and its fields, `None` at the end.
    fn read_record(&mut self) -> Result<Option<(u64, Vec<String>)>, TableError> {
        let start = self.line + 1;
        let mut fields = Vec::new();
        let mut field: Vec<u8> = Vec::new();
        let mut in_quotes = false;
        let mut started = false;
        loop {
            self.buf.clear();
            let n = self.inner.read_until(b'\n', &mut self.buf).map_err(|e| {
                TableError::Unreadable {
                    line: self.line + 1,
                    reason: e.to_string(),
                }
            })?;
            if n == 0 {
                if !started {
                    return Ok(None);
                }
                // A quote still open at the end means a cut file, not one odd row.
                return Err(TableError::Unreadable {
                    line: start,
                    reason: "a quoted field opened on this line is never closed".to_owned(),
                });
            }
            started = true;
            self.line += 1;
            let mut end = self.buf.len();
            if self.buf[end - 1] == b'\n' {
                end -= 1;
                if end > 0 && self.buf[end - 1] == b'\r' {
                    end -= 1;
                }
            }
            let mut i = 0;
            while i < end {
                let b = self.buf[i];
                if in_quotes {
                    if b == b'"' {
                        if i + 1 < end && self.buf[i + 1] == b'"' {
                            field.push(b'"');
                            i += 1;
                        } else {
                            in_quotes = false;
                        }
                    } else {
                        field.push(b);
                    }
                } else if b == b';' {
                    fields.push(take_text(&mut field));
                } else if b == b'"' && field.is_empty() {
                    in_quotes = true;
                } else {
                    field.push(b);
                }
                i += 1;
            }
            if in_quotes {
                // The line break belongs to the quoted field.
                field.extend_from_slice(&self.buf[end..]);
                continue;
            }
            fields.push(take_text(&mut field));
            return Ok(Some((start, fields)));
        }
    }
}

/// Moves the bytes of a field out as a string; they come from the decoding reader,
/// so they are UTF-8 already.
fn take_text(field: &mut Vec<u8>) -> String {
    let bytes = std::mem::take(field);
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Trims header names and drops the empty names trailing separators leave behind.
pub fn header_names<'a>(names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = names.map(|n| n.trim().to_owned()).collect();
    while out.last().is_some_and(String::is_empty) {
        out.pop();
    }
    out
}

/// Refuses a header naming a column twice (a mapping could not tell them apart).
pub fn check_duplicates(header: &[String]) -> Result<(), TableError> {
    for (i, name) in header.iter().enumerate() {
        if header[..i].contains(name) {
            return Err(TableError::DuplicateColumn(name.clone()));
        }
    }
    Ok(())
}

/// Fits a row to the header: trailing empty cells (trailing separators) are dropped,
/// a row of empty cells is skipped (`None`), and any other width is an error.
pub fn fit_row(
    line: u64,
    width: usize,
    mut fields: Vec<String>,
) -> Option<Result<Row, TableError>> {
    if fields.iter().all(|f| f.trim().is_empty()) {
        return None;
    }
    while fields.len() > width && fields.last().is_some_and(|f| f.trim().is_empty()) {
        fields.pop();
    }
    if fields.len() != width {
        return Some(Err(TableError::ColumnCount {
            line,
            expected: width,
            found: fields.len(),
        }));
    }
    Some(Ok(Row { line, fields }))
}

impl<R: Read> Iterator for CsvReader<R> {
    type Item = Result<Row, TableError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            match self.read_record() {
                Ok(None) => self.done = true,
                Ok(Some((line, fields))) => {
                    if let Some(row) = fit_row(line, self.header.len(), fields) {
                        return Some(row);
                    }
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(input: &[u8]) -> (Vec<String>, Vec<Result<Row, TableError>>) {
        let r = CsvReader::new(input).unwrap();
        let header = r.header().to_vec();
        (header, r.collect())
    }

    fn ok(line: u64, fields: &[&str]) -> Result<Row, TableError> {
        Ok(Row {
            line,
            fields: fields.iter().map(|s| (*s).to_owned()).collect(),
        })
    }

    #[test]
    fn lf_and_crlf() {
        for input in [
            &b"A;B\n1;2\n3;4\n"[..],
            b"A;B\r\n1;2\r\n3;4\r\n",
            b"A;B\r\n1;2\r\n3;4",
        ] {
            let (h, r) = rows(input);
            assert_eq!(h, ["A", "B"]);
            assert_eq!(r, vec![ok(2, &["1", "2"]), ok(3, &["3", "4"])]);
        }
    }

    #[test]
    fn quotes_escapes_and_separators_inside() {
        let (_, r) = rows(b"A;B\n\"x;y\";\"il a dit \"\"non\"\"\"\n");
        assert_eq!(r, vec![ok(2, &["x;y", "il a dit \"non\""])]);
    }

    #[test]
    fn quoted_newlines_keep_physical_line_numbers() {
        let input = b"A;B\n\"l1\nl2\nl3\";x\n1;2;3\n4;5\n";
        let (_, r) = rows(input);
        assert_eq!(r[0], ok(2, &["l1\nl2\nl3", "x"]));
        assert_eq!(
            r[1],
            Err(TableError::ColumnCount {
                line: 5,
                expected: 2,
                found: 3
            })
        );
        assert_eq!(r[2], ok(6, &["4", "5"]));
    }

    #[test]
    fn wrong_column_count_is_rejected_alone() {
        let (_, r) = rows(b"A;B;C\n1;2;3\n1;2\n4;5;6\n");
        assert_eq!(r.len(), 3);
        assert!(r[0].is_ok() && r[2].is_ok());
        let err = r[1].clone().unwrap_err();
        assert!(err.is_row_error());
        assert_eq!(err.line(), Some(3));
        assert_eq!(err.to_string(), "line 3 has 2 columns, expected 3");
    }

    #[test]
    fn trailing_lines_and_separators_are_tolerated() {
        let input = b"A;B;\n1;2;\n3;4\n5;6;;\n\n;;\n\r\n\n";
        let (h, r) = rows(input);
        assert_eq!(h, ["A", "B"]);
        assert_eq!(
            r,
            vec![ok(2, &["1", "2"]), ok(3, &["3", "4"]), ok(4, &["5", "6"])]
        );
    }

    #[test]
    fn blank_lines_in_the_middle_still_count() {
        let (_, r) = rows(b"A;B\n\n1;2\n\n\n3\n");
        assert_eq!(r[0], ok(3, &["1", "2"]));
        assert_eq!(r[1].clone().unwrap_err().line(), Some(6));
    }

    #[test]
    fn encodings_are_detected() {
        let utf8 = "Nom;Prénom\nLefèvre;Léa\n";
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend_from_slice(utf8.as_bytes());
        let latin = b"Nom;Pr\xE9nom\nLef\xE8vre;L\xE9a\n";
        for (input, det) in [
            (utf8.as_bytes(), Detected::Utf8),
            (&bom[..], Detected::Utf8Bom),
            (&latin[..], Detected::Windows1252),
        ] {
            let r = CsvReader::new(input).unwrap();
            assert_eq!(r.detected(), det);
            assert_eq!(r.header(), ["Nom", "Prénom"]);
            let got: Vec<_> = r.collect();
            assert_eq!(got, vec![ok(2, &["Lefèvre", "Léa"])]);
        }
    }

    #[test]
    fn no_header_and_duplicate_columns() {
        assert_eq!(CsvReader::new(&b""[..]).unwrap_err(), TableError::NoHeader);
        assert_eq!(
            CsvReader::new(&b"\n;;\n"[..]).unwrap_err(),
            TableError::NoHeader
        );
        assert_eq!(
            CsvReader::new(&b"A;B;A\n"[..]).unwrap_err(),
            TableError::DuplicateColumn("A".into())
        );
    }

    #[test]
    fn an_unclosed_quote_makes_the_file_unreadable() {
        let (_, r) = rows(b"A;B\n1;2\n\"open;x\n3;4\n");
        assert_eq!(r[0], ok(2, &["1", "2"]));
        let err = r[1].clone().unwrap_err();
        assert!(!err.is_row_error());
        assert_eq!(err.line(), Some(3));
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn row_debug_hides_values() {
        let row = Row {
            line: 2,
            fields: vec!["Lefèvre".into()],
        };
        assert!(!format!("{row:?}").contains("Lef"));
    }

    proptest::proptest! {
        /// Whatever the cells hold, quoting them the way writers do reads them back.
        #[test]
        fn quoted_cells_round_trip(cells in proptest::collection::vec("[^\r]{0,12}", 1..6)) {
            let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
            let header: Vec<String> = (0..cells.len()).map(|i| format!("C{i}")).collect();
            let line: Vec<String> = cells.iter().map(|c| quote(c)).collect();
            let input = format!("{}\n{}\n", header.join(";"), line.join(";"));
            let r: Vec<_> = CsvReader::new(input.as_bytes()).unwrap().collect();
            if cells.iter().all(|c| c.trim().is_empty()) {
                proptest::prop_assert!(r.is_empty());
            } else {
                proptest::prop_assert_eq!(r, vec![Ok(Row { line: 2, fields: cells.clone() })]);
            }
        }
    }
}
