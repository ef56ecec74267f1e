//! An XLSX reader (calamine) yielding the same rows as the CSV reader: first sheet or
//! a named one, header on the first non-empty row, every cell as a string. Date cells
//! become `YYYY-MM-DD`; whole numbers lose their `.0` (a CAF number typed as a number
//! stays `1234567`); `excel_serial_date` reads serial numbers typed in date columns.
//!
//! Cells are streamed (calamine's cell reader, on a thread feeding a bounded channel):
//! the compressed workbook and its shared-strings table are in memory, the expanded
//! rows are not.
//!
//! A workbook is a zip archive, so a small file can expand to gigabytes. Before
//! calamine sees it, the archive is checked against `ReaderConfig` by decompressing
//! every entry into nothing, counting (entries, bytes, ratio), and the shared-strings
//! table is counted (entries, length of each); then each cell's position is checked
//! (a cell at column `XFDXFD` would otherwise pad a row to billions of cells), as are
//! cells per row, rows, and each cell's length. A panic inside calamine on a hostile
//! file becomes a refusal of that file, never an end of file in silence.

use std::io::{Cursor, Read, Seek};
use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use calamine::{Data, Reader, Xlsx};
use passerelle_model::Date;

use crate::csv::{Row, TableError, check_cells, check_duplicates, fit_row, header_names};
use crate::limits::ReaderConfig;

/// Rows of one worksheet, header removed, streamed from a reading thread.
pub struct XlsxReader {
    header: Vec<String>,
    sheet: String,
    rows: Receiver<Msg>,
    done: bool,
}

/// What the reading thread sends: the header first, then rows, then the end, or a
/// fatal error.
enum Msg {
    Header(Result<Vec<String>, TableError>),
    Row(u64, Vec<Result<String, String>>),
    Fatal(TableError),
    End,
}

/// The limits the reading thread applies.
#[derive(Debug, Clone, Copy)]
struct SheetLimits {
    columns: usize,
    rows: u64,
    field: usize,
}

fn unreadable(line: u64, reason: impl Into<String>) -> TableError {
    TableError::Unreadable {
        line,
        reason: reason.into(),
    }
}

/// Checks the archive before calamine expands it (see the module doc).
fn check_archive(bytes: &[u8], config: &ReaderConfig) -> Result<(), TableError> {
    let refuse = |reason: String| unreadable(0, reason);
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| refuse(format!("not a readable xlsx: {e}")))?;
    if archive.len() > config.max_archive_entries {
        return Err(refuse(format!(
            "the archive has more than {} entries",
            config.max_archive_entries
        )));
    }
    let budget = config
        .max_decompressed_bytes
        .min((bytes.len() as u64).saturating_mul(config.max_compression_ratio));
    let mut total = 0u64;
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| refuse(format!("broken archive entry {i}: {e}")))?;
        let shared = entry.name().eq_ignore_ascii_case("xl/sharedStrings.xml");
        let left = budget - total;
        let mut counted = Counting {
            inner: (&mut entry).take(left + 1),
            n: 0,
        };
        let result = if shared {
            count_shared_strings(&mut counted, config)
        } else {
            std::io::copy(&mut counted, &mut std::io::sink())
                .map(drop)
                .map_err(|e| refuse(format!("broken archive entry {i}: {e}")))
        };
        total += counted.n;
        if total > budget {
            return Err(refuse(format!(
                "the archive decompresses to more than {budget} bytes (at most {} bytes and {} times its size)",
                config.max_decompressed_bytes, config.max_compression_ratio
            )));
        }
        result?;
    }
    Ok(())
}

/// A reader that counts what passes.
struct Counting<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

/// Counts the `si` entries of the shared-strings table and the text of each.
fn count_shared_strings<R: Read>(input: R, config: &ReaderConfig) -> Result<(), TableError> {
    use quick_xml::events::Event;
    let refuse = |reason: String| unreadable(0, reason);
    let mut xml = quick_xml::Reader::from_reader(std::io::BufReader::new(input));
    let mut buf = Vec::new();
    let (mut count, mut len) = (0usize, 0usize);
    loop {
        buf.clear();
        match xml.read_event_into(&mut buf) {
            Ok(Event::Start(e)) if e.local_name().as_ref() == b"si" => {
                count += 1;
                len = 0;
                if count > config.max_shared_strings {
                    return Err(refuse(format!(
                        "more than {} shared strings",
                        config.max_shared_strings
                    )));
                }
            }
            Ok(Event::Empty(e)) if e.local_name().as_ref() == b"si" => {
                count += 1;
                if count > config.max_shared_strings {
                    return Err(refuse(format!(
                        "more than {} shared strings",
                        config.max_shared_strings
                    )));
                }
            }
            Ok(Event::Text(t)) => {
                len += t.len();
                if len > config.max_field_len {
                    return Err(refuse(format!(
                        "shared string {count} is longer than {} bytes",
                        config.max_field_len
                    )));
                }
            }
            Ok(Event::Eof) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(refuse(format!("broken shared strings: {e}"))),
        }
    }
}

impl std::fmt::Debug for XlsxReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XlsxReader")
            .field("sheet", &self.sheet)
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl XlsxReader {
    /// Opens a workbook and reads `sheet` (or the first sheet) and its header.
    ///
    /// The compressed workbook is held in memory (it is small next to its cells) and
    /// its cells are streamed by a thread through a bounded channel, so memory stays
    /// flat in the number of rows apart from the shared-strings table.
    pub fn new<R: Read + Seek>(reader: R, sheet: Option<&str>) -> Result<Self, TableError> {
        Self::with_config(reader, sheet, &ReaderConfig::default())
    }

    /// `new` with `config`'s limits (the encoding of a workbook is its own: UTF-8).
    pub fn with_config<R: Read + Seek>(
        reader: R,
        sheet: Option<&str>,
        config: &ReaderConfig,
    ) -> Result<Self, TableError> {
        let refuse = |reason: String| TableError::Unreadable { line: 0, reason };
        let mut bytes = Vec::new();
        reader
            .take(config.max_decompressed_bytes + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| refuse(e.to_string()))?;
        if bytes.len() as u64 > config.max_decompressed_bytes {
            return Err(refuse(format!(
                "the workbook is larger than {} bytes",
                config.max_decompressed_bytes
            )));
        }
        check_archive(&bytes, config)?;
        let opened = std::panic::catch_unwind(AssertUnwindSafe(|| {
            Xlsx::<Cursor<Vec<u8>>>::new(Cursor::new(bytes))
        }));
        let book: Xlsx<Cursor<Vec<u8>>> = match opened {
            Ok(Ok(book)) => book,
            Ok(Err(e)) => return Err(refuse(format!("not a readable xlsx: {e}"))),
            Err(_) => return Err(refuse("not a readable xlsx (the reader failed)".into())),
        };
        let limits = SheetLimits {
            columns: config.max_columns,
            rows: config.max_rows,
            field: config.max_field_len,
        };
        let name = match sheet {
            Some(s) => {
                if !book.sheet_names().iter().any(|n| n == s) {
                    return Err(refuse(format!("the workbook has no sheet named {s}")));
                }
                s.to_owned()
            }
            None => book
                .sheet_names()
                .first()
                .cloned()
                .ok_or_else(|| refuse("the workbook has no sheet".to_owned()))?,
        };
        let (tx, rx) = sync_channel(256);
        let thread_name = name.clone();
        std::thread::Builder::new()
            .name("xlsx-reader".to_owned())
            .spawn(move || {
                let run = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    stream_sheet(book, &thread_name, &tx, limits)
                }));
                if run.is_err() {
                    let _ = tx.send(Msg::Fatal(unreadable(
                        0,
                        "broken sheet (the reader failed)",
                    )));
                }
            })
            .map_err(|e| refuse(format!("cannot start the xlsx reader: {e}")))?;
        let header = match rx.recv() {
            Ok(Msg::Header(h)) => h?,
            Ok(Msg::Fatal(e)) => return Err(e),
            _ => return Err(TableError::NoHeader),
        };
        if header.len() > config.max_columns {
            return Err(refuse(format!(
                "the header has more than {} columns",
                config.max_columns
            )));
        }
        Ok(Self {
            header,
            sheet: name,
            rows: rx,
            done: false,
        })
    }

    /// The column names, as for CSV.
    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// The sheet read.
    pub fn sheet(&self) -> &str {
        &self.sheet
    }
}

/// Runs on the reading thread: sends the header, then one message per row. Stops
/// quietly when the reader is dropped (the channel closes).
fn stream_sheet(
    mut book: Xlsx<Cursor<Vec<u8>>>,
    name: &str,
    tx: &SyncSender<Msg>,
    limits: SheetLimits,
) {
    let mut cells = match book.worksheet_cells_reader(name) {
        Ok(c) => c,
        Err(e) => {
            let _ = tx.send(Msg::Header(Err(TableError::Unreadable {
                line: 0,
                reason: format!("cannot read sheet {name}: {e}"),
            })));
            return;
        }
    };
    let mut header_sent = false;
    let mut rows = 0u64;
    let mut current: Option<u32> = None;
    let mut row: Vec<Result<String, String>> = Vec::new();
    // Sends a finished row (or the header); false when the reader is gone.
    let mut flush = |index: u32, row: Vec<Result<String, String>>| -> bool {
        if header_sent {
            rows += 1;
            if rows > limits.rows {
                let _ = tx.send(Msg::Fatal(unreadable(
                    u64::from(index) + 1,
                    format!("more than {} rows", limits.rows),
                )));
                return false;
            }
            return tx.send(Msg::Row(u64::from(index) + 1, row)).is_ok();
        }
        let names = header_names(
            row.iter()
                .map(|c| c.as_deref().unwrap_or_default())
                .collect::<Vec<_>>()
                .into_iter(),
        );
        if names.is_empty() {
            return true;
        }
        header_sent = true;
        let header = check_duplicates(&names).map(|()| names);
        tx.send(Msg::Header(header)).is_ok()
    };
    loop {
        match cells.next_cell() {
            Ok(Some(cell)) => {
                let (r, c) = cell.get_position();
                let line = u64::from(r) + 1;
                if c as usize >= limits.columns {
                    let _ = tx.send(Msg::Fatal(unreadable(
                        line,
                        format!("a cell beyond column {}", limits.columns),
                    )));
                    return;
                }
                if u64::from(r) >= limits.rows.saturating_add(1) {
                    let _ = tx.send(Msg::Fatal(unreadable(
                        line,
                        format!("a cell beyond row {}", limits.rows + 1),
                    )));
                    return;
                }
                if current != Some(r) {
                    if let Some(prev) = current
                        && !flush(prev, std::mem::take(&mut row))
                    {
                        return;
                    }
                    current = Some(r);
                }
                while row.len() < c as usize {
                    row.push(Ok(String::new()));
                }
                // Cells repeating a position would grow a row without bound.
                if row.len() >= limits.columns {
                    let _ = tx.send(Msg::Fatal(unreadable(
                        line,
                        format!("more than {} cells in one row", limits.columns),
                    )));
                    return;
                }
                let text = cell_text(&Data::from(cell.get_value().clone())).and_then(|t| {
                    if t.len() > limits.field {
                        Err(format!("the cell is longer than {} bytes", limits.field))
                    } else {
                        Ok(t)
                    }
                });
                row.push(text);
            }
            Ok(None) => break,
            Err(e) => {
                let line = current.map_or(0, |r| u64::from(r) + 1);
                let _ = tx.send(Msg::Fatal(TableError::Unreadable {
                    line,
                    reason: format!("broken sheet: {e}"),
                }));
                return;
            }
        }
    }
    if let Some(prev) = current
        && !flush(prev, row)
    {
        return;
    }
    if !header_sent {
        let _ = tx.send(Msg::Header(Err(TableError::NoHeader)));
        return;
    }
    let _ = tx.send(Msg::End);
}

impl Iterator for XlsxReader {
    type Item = Result<Row, TableError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let (line, cells) = match self.rows.recv() {
                Ok(Msg::Row(line, cells)) => (line, cells),
                Ok(Msg::Fatal(e)) => {
                    self.done = true;
                    return Some(Err(e));
                }
                Ok(Msg::Header(_) | Msg::End) => {
                    self.done = true;
                    return None;
                }
                // The thread stopped without saying the sheet ended: never a silent end.
                Err(_) => {
                    self.done = true;
                    return Some(Err(unreadable(0, "the xlsx reader stopped early")));
                }
            };
            let width = self.header.len();
            if let Some((i, Err(reason))) = cells
                .iter()
                .enumerate()
                .find(|(i, c)| c.is_err() && *i < width)
            {
                return Some(Err(TableError::Cell {
                    line,
                    column: self.header[i].clone(),
                    reason: reason.clone(),
                }));
            }
            let mut fields: Vec<String> =
                cells.into_iter().map(Result::unwrap_or_default).collect();
            // A sheet stores no cell for a blank at the end of a row: pad, unlike CSV
            // where a short row is a broken row.
            fields.resize(fields.len().max(width), String::new());
            if let Some(row) = fit_row(line, width, fields) {
                return Some(row.and_then(|r| check_cells(r, &self.header)));
            }
        }
        None
    }
}

/// One cell as text; `Err` holds why it cannot be read (an Excel error value).
fn cell_text(cell: &Data) -> Result<String, String> {
    Ok(match cell {
        Data::Empty => String::new(),
        Data::String(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) => float_text(*f),
        Data::Bool(b) => if *b { "1" } else { "0" }.to_owned(),
        Data::DateTime(dt) if dt.is_datetime() => {
            // calamine applies the workbook's date system (1900 or 1904) and, like
            // Excel, turns serial 60 into 1900-02-29, which date parsing then refuses.
            let (y, m, d, ..) = dt.to_ymd_hms_milli();
            format!("{y:04}-{m:02}-{d:02}")
        }
        Data::DateTime(dt) => float_text(dt.as_f64()),
        Data::DateTimeIso(s) => s.get(..10).unwrap_or(s).to_owned(),
        Data::DurationIso(s) => s.clone(),
        Data::Error(e) => return Err(format!("the cell holds the excel error {e}")),
    })
}

/// Whole numbers without a fractional part, as people typed them.
fn float_text(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        f.to_string()
    }
}

/// Reads an Excel serial date of the 1900 date system (what Excel writes by default).
///
/// Excel counts 1900-01-01 as day 1 and believes 1900 was a leap year: serial 60 is
/// the non-existent 1900-02-29 (refused) and every later serial is one day ahead.
/// A fractional part (a time of day) is ignored.
pub fn excel_serial_date(serial: f64) -> Option<Date> {
    if !serial.is_finite() || !(1.0..2_958_466.0).contains(&serial) {
        return None;
    }
    let days = serial.floor() as i64;
    let offset = match days {
        60 => return None,
        1..=59 => days - 1,
        _ => days - 2,
    };
    let base = chrono::NaiveDate::from_ymd_opt(1900, 1, 1)?;
    let date = base.checked_add_signed(chrono::Duration::days(offset))?;
    use chrono::Datelike;
    Date::from_ymd(date.year(), date.month(), date.day()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_dates_of_the_1900_system() {
        let d = |s: f64| excel_serial_date(s).map(|d| d.to_string());
        assert_eq!(d(1.0).as_deref(), Some("1900-01-01"));
        assert_eq!(d(59.0).as_deref(), Some("1900-02-28"));
        assert_eq!(d(60.0), None, "the day Excel invented");
        assert_eq!(d(61.0).as_deref(), Some("1900-03-01"));
        assert_eq!(d(38058.0).as_deref(), Some("2004-03-12"));
        assert_eq!(d(38058.75).as_deref(), Some("2004-03-12"));
        assert_eq!(d(45901.0).as_deref(), Some("2025-09-01"));
        assert_eq!(d(0.0), None);
        assert_eq!(d(-3.0), None);
        assert_eq!(d(f64::NAN), None);
    }

    #[test]
    fn cells_as_text() {
        assert_eq!(cell_text(&Data::Float(1234567.0)).unwrap(), "1234567");
        assert_eq!(cell_text(&Data::Float(2.5)).unwrap(), "2.5");
        assert_eq!(cell_text(&Data::Int(59000)).unwrap(), "59000");
        assert_eq!(cell_text(&Data::Bool(true)).unwrap(), "1");
        let dt =
            calamine::ExcelDateTime::new(38058.0, calamine::ExcelDateTimeType::DateTime, false);
        assert_eq!(cell_text(&Data::DateTime(dt)).unwrap(), "2004-03-12");
        let bug = calamine::ExcelDateTime::new(60.0, calamine::ExcelDateTimeType::DateTime, false);
        let text = cell_text(&Data::DateTime(bug)).unwrap();
        assert_eq!(text, "1900-02-29");
        assert!(Date::parse(&text).is_err());
        assert!(
            cell_text(&Data::DateTimeIso("2004-03-12T00:00:00".into())).unwrap() == "2004-03-12"
        );
        assert!(cell_text(&Data::Error(calamine::CellErrorType::NA)).is_err());
    }

    #[test]
    fn not_a_workbook_is_unreadable() {
        let err = XlsxReader::new(std::io::Cursor::new(b"A;B\n".to_vec()), None).unwrap_err();
        assert!(!err.is_row_error());
    }
}
