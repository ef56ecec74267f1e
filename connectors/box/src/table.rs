//! Opens a `BRSA_LISTE` file, CSV or XLSX (told apart by content, then extension),
//! and streams its rows mapped to canonical records.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};

use passerelle_connector::csv::{CsvReader, Row, TableError};
use passerelle_connector::xlsx::XlsxReader;
use passerelle_connector::{AckToken, ConnectorError, SourceItem};

use crate::brsa::{MappedRow, emetteur_of, map_row};
use crate::mapping::{Binding, Mapping};

/// The two table formats a box carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Xlsx,
}

/// Tells CSV from XLSX: a zip signature means XLSX whatever the name says.
pub fn sniff<R: BufRead>(reader: &mut R, name: &str) -> Result<Format, ConnectorError> {
    let head = reader
        .fill_buf()
        .map_err(|e| ConnectorError::io(name.to_owned(), e))?;
    let zip = head.starts_with(b"PK\x03\x04");
    let xlsx_name = name.to_ascii_lowercase().ends_with(".xlsx");
    match (zip, xlsx_name) {
        (true, _) => Ok(Format::Xlsx),
        (false, true) => Err(ConnectorError::FileRefused {
            file: name.to_owned(),
            reason: "named .xlsx but is not an xlsx workbook".to_owned(),
        }),
        (false, false) => Ok(Format::Csv),
    }
}

enum Rows<R: Read> {
    Csv(CsvReader<BufReader<R>>),
    Xlsx(XlsxReader),
}

/// Streams the mapped rows of one file, in input order.
pub struct BrsaReader<R: Read> {
    rows: Rows<R>,
    binding: Binding,
    emetteur: String,
    format: Format,
}

impl<R: Read> std::fmt::Debug for BrsaReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrsaReader")
            .field("format", &self.format)
            .field("emetteur", &self.emetteur)
            .finish_non_exhaustive()
    }
}

fn refused(name: &str, reason: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::FileRefused {
        file: name.to_owned(),
        reason: reason.to_string(),
    }
}

impl<R: Read + Seek> BrsaReader<R> {
    /// Opens `reader` (the file called `name`) and binds `mapping` to its header. A
    /// file that cannot be read as a table, or whose header the mapping does not
    /// cover, is refused as a whole.
    pub fn open(reader: R, name: &str, mapping: &Mapping) -> Result<Self, ConnectorError> {
        let mut buffered = BufReader::with_capacity(64 * 1024, reader);
        let format = sniff(&mut buffered, name)?;
        let rows = match format {
            Format::Csv => {
                let mut csv = CsvReader::with_config(buffered, &mapping.reading)
                    .map_err(|e| refused(name, e))?;
                csv.accept_one_short(mapping.accept_short_rows);
                Rows::Csv(csv)
            }
            Format::Xlsx => {
                let mut inner = buffered.into_inner();
                inner
                    .seek(SeekFrom::Start(0))
                    .map_err(|e| ConnectorError::io(name.to_owned(), e))?;
                Rows::Xlsx(
                    XlsxReader::with_config(inner, mapping.sheet.as_deref(), &mapping.reading)
                        .map_err(|e| refused(name, e))?,
                )
            }
        };
        let header = match &rows {
            Rows::Csv(r) => r.header(),
            Rows::Xlsx(r) => r.header(),
        };
        let binding = mapping.bind(header).map_err(|e| refused(name, e))?;
        Ok(Self {
            rows,
            binding,
            emetteur: emetteur_of(name).unwrap_or_else(|| "inconnu".to_owned()),
            format,
        })
    }
}

impl<R: Read> BrsaReader<R> {
    /// CSV or XLSX.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The next mapped row; an `Err` means the rest of the file cannot be read (the
    /// caller refuses the whole file).
    pub fn next_row(&mut self) -> Option<Result<MappedRow, TableError>> {
        let next: Option<Result<Row, TableError>> = match &mut self.rows {
            Rows::Csv(r) => r.next(),
            Rows::Xlsx(r) => r.next(),
        };
        Some(match next? {
            Ok(row) => Ok(map_row(
                &self.binding,
                &row,
                &self.emetteur,
                self.format == Format::Xlsx,
            )),
            Err(e) if e.is_row_error() => Ok(MappedRow::unreadable(&e)),
            Err(e) => Err(e),
        })
    }
}

impl<R: Read> Iterator for BrsaReader<R> {
    type Item = Result<MappedRow, TableError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_row()
    }
}

/// Reads a whole file once without mapping it, to prove it readable to the end
/// (no quote left open, no I/O error) before any of its rows is handed out.
pub fn prescan<R: Read + Seek>(
    reader: R,
    name: &str,
    mapping: &Mapping,
) -> Result<u64, ConnectorError> {
    let mut r = BrsaReader::open(reader, name, mapping)?;
    let mut rows = 0;
    loop {
        let next = match &mut r.rows {
            Rows::Csv(c) => c.next(),
            Rows::Xlsx(x) => x.next(),
        };
        match next {
            None => return Ok(rows),
            Some(Err(e)) if !e.is_row_error() => return Err(refused(name, e)),
            Some(_) => rows += 1,
        }
    }
}

/// Opens a `BRSA_LISTE` file on disk for `passerelle import` and the engine: checks
/// it readable to the end first (a refusal there means no row is handed out), then
/// streams its rows as source items (ack token `{file}:{line}`).
pub fn read_file(
    path: &std::path::Path,
    mapping: &Mapping,
) -> Result<impl Iterator<Item = Result<SourceItem, ConnectorError>> + use<>, ConnectorError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let open = || std::fs::File::open(path).map_err(|e| ConnectorError::io(name.clone(), e));
    prescan(open()?, &name, mapping)?;
    let reader = BrsaReader::open(open()?, &name, mapping)?;
    Ok(reader.map(move |row| match row {
        Ok(row) => Ok(SourceItem {
            ack: AckToken(format!("{name}:{}", row.line)),
            outcome: row.outcome,
            warnings: row.warnings,
        }),
        Err(e) => Err(refused(&name, e)),
    }))
}
