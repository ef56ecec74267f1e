//! An XLSX reader (calamine) yielding the same rows as the CSV reader: first sheet or
//! a named one, header on the first non-empty row, every cell as a string. Date cells
//! become `YYYY-MM-DD`; whole numbers lose their `.0` (a CAF number typed as a number
//! stays `1234567`); `excel_serial_date` reads serial numbers typed in date columns.
//!
//! Cells are streamed (calamine's cell reader, on a thread feeding a bounded channel):
//! the compressed workbook and its shared-strings table are in memory, the expanded
//! rows are not.

use std::io::{Cursor, Read, Seek};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use calamine::{Data, Reader, Xlsx};
use passerelle_model::Date;

use crate::csv::{Row, TableError, check_duplicates, fit_row, header_names};

/// Rows of one worksheet, header removed, streamed from a reading thread.
pub struct XlsxReader {
    header: Vec<String>,
    sheet: String,
    rows: Receiver<Msg>,
    done: bool,
}

/// What the reading thread sends: the header first, then rows, or a fatal error.
enum Msg {
    Header(Result<Vec<String>, TableError>),
    Row(u64, Vec<Result<String, String>>),
    Fatal(TableError),
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
    pub fn new<R: Read + Seek>(mut reader: R, sheet: Option<&str>) -> Result<Self, TableError> {
        let unreadable = |reason: String| TableError::Unreadable { line: 0, reason };
        let mut bytes = Vec::new();
        reader
            .read_to_end(&mut bytes)
            .map_err(|e| unreadable(e.to_string()))?;
        let book: Xlsx<Cursor<Vec<u8>>> = Xlsx::new(Cursor::new(bytes))
            .map_err(|e| unreadable(format!("not a readable xlsx: {e}")))?;
        let name = match sheet {
            Some(s) => {
                if !book.sheet_names().iter().any(|n| n == s) {
                    return Err(unreadable(format!("the workbook has no sheet named {s}")));
                }
                s.to_owned()
            }
            None => book
                .sheet_names()
                .first()
                .cloned()
                .ok_or_else(|| unreadable("the workbook has no sheet".to_owned()))?,
        };
        let (tx, rx) = sync_channel(256);
        let thread_name = name.clone();
        std::thread::Builder::new()
            .name("xlsx-reader".to_owned())
            .spawn(move || stream_sheet(book, &thread_name, &tx))
            .map_err(|e| unreadable(format!("cannot start the xlsx reader: {e}")))?;
        let header = match rx.recv() {
            Ok(Msg::Header(h)) => h?,
            Ok(Msg::Fatal(e)) => return Err(e),
            _ => return Err(TableError::NoHeader),
        };
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
fn stream_sheet(mut book: Xlsx<Cursor<Vec<u8>>>, name: &str, tx: &SyncSender<Msg>) {
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
    let mut current: Option<u32> = None;
    let mut row: Vec<Result<String, String>> = Vec::new();
    // Sends a finished row (or the header); false when the reader is gone.
    let mut flush = |index: u32, row: Vec<Result<String, String>>| -> bool {
        if header_sent {
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
                row.push(cell_text(&Data::from(cell.get_value().clone())));
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
    }
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
                Ok(Msg::Header(_)) | Err(_) => {
                    self.done = true;
                    return None;
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
                return Some(row);
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
