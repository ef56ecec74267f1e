//! An XLSX reader (calamine) yielding the same rows as the CSV reader: first sheet or
//! a named one, header on the first non-empty row, every cell as a string. Date cells
//! become `YYYY-MM-DD`; whole numbers lose their `.0` (a CAF number typed as a number
//! stays `1234567`); `excel_serial_date` reads serial numbers typed in date columns.
//!
//! calamine holds the sheet in memory, unlike the CSV reader: XLSX files from
//! départements are small (Excel caps a sheet at 1,048,576 rows), and a CSV is what
//! large extracts use.

use std::io::{Read, Seek};

use calamine::{Data, Reader, Xlsx};
use passerelle_model::Date;

use crate::csv::{Row, TableError, check_duplicates, fit_row, header_names};

/// Rows of one worksheet, header first removed.
pub struct XlsxReader {
    header: Vec<String>,
    sheet: String,
    rows: std::vec::IntoIter<(u64, Vec<Result<String, String>>)>,
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
    pub fn new<R: Read + Seek>(reader: R, sheet: Option<&str>) -> Result<Self, TableError> {
        let unreadable = |reason: String| TableError::Unreadable { line: 0, reason };
        let mut book: Xlsx<R> =
            Xlsx::new(reader).map_err(|e| unreadable(format!("not a readable xlsx: {e}")))?;
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
        let range = book
            .worksheet_range(&name)
            .map_err(|e| unreadable(format!("cannot read sheet {name}: {e}")))?;
        // `start` is the first used cell; rows above it are empty and still count as lines.
        let first_row = range.start().map_or(0, |(r, _)| u64::from(r));
        let mut rows = range.rows().enumerate().map(|(i, cells)| {
            (
                first_row + i as u64 + 1,
                cells.iter().map(cell_text).collect(),
            )
        });
        let header = loop {
            let Some((_, cells)) = rows.next() else {
                return Err(TableError::NoHeader);
            };
            let cells: Vec<Result<String, String>> = cells;
            let names = header_names(
                cells
                    .iter()
                    .map(|c| c.as_deref().unwrap_or_default())
                    .collect::<Vec<_>>()
                    .into_iter(),
            );
            if !names.is_empty() {
                break names;
            }
        };
        check_duplicates(&header)?;
        let rest: Vec<_> = rows.collect();
        Ok(Self {
            header,
            sheet: name,
            rows: rest.into_iter(),
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

impl Iterator for XlsxReader {
    type Item = Result<Row, TableError>;

    fn next(&mut self) -> Option<Self::Item> {
        for (line, cells) in self.rows.by_ref() {
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
            let fields = cells.into_iter().map(Result::unwrap_or_default).collect();
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
