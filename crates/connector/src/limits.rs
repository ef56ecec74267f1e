//! What a reader accepts from one peer file: the encoding when the configuration names
//! it, and limits on everything a hostile or broken file could make the hub spend
//! (stack, memory, CPU). Each limit hit refuses the file, or the record when only one
//! record is concerned, with a reason naming the limit and where it was hit, never a
//! value.
//!
//! The defaults are far above what real peer files hold (`../shared/real/`: records of
//! a few dozen elements, lists of a few thousand rows and 20 to 60 columns) and far
//! below what would hurt a 2-core, few-GB host. A département with larger files raises
//! the one limit its files need, in its connector's `reading` section.

use serde::{Deserialize, Serialize};

use crate::encoding::Declared;

/// Reading options and limits (`[solis.mapping.reading]`, `[box.reading]`…).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReaderConfig {
    /// The peer's encoding (`utf-8`, `windows-1252`, `mixed`); detected when absent.
    pub encoding: Option<Declared>,
    /// XML: element nesting depth. Records nest 4 or 5 deep; 64 leaves room for any
    /// schema and keeps every walk over a tree short.
    pub max_depth: usize,
    /// XML: attributes on one element. The widest element of a peer file carries
    /// about 10; quick-xml checks duplicates pairwise, so thousands cost seconds.
    pub max_attributes: usize,
    /// XML: distinct names of the root's children (record types) in one file: a file
    /// has one or two; each name is counted for element paths.
    pub max_distinct_names: usize,
    /// Length in bytes of one value after decoding: an XML text or attribute, a CSV
    /// or XLSX cell. No field of the canonical record is near 64 KiB.
    pub max_field_len: usize,
    /// XML: elements in one record (one child of the root), so that a record missing
    /// its end tag cannot grow over the whole file.
    pub max_nodes_per_record: usize,
    /// CSV/XLSX: columns of the header and of any row (also the highest column index
    /// of an XLSX cell). Real lists have 20 to 60.
    pub max_columns: usize,
    /// CSV/XLSX: data rows in one file (also the highest XLSX row index).
    pub max_rows: u64,
    /// XLSX: entries of the shared-strings table.
    pub max_shared_strings: usize,
    /// XLSX: bytes the whole archive may decompress to.
    pub max_decompressed_bytes: u64,
    /// XLSX: decompressed size over compressed size, for the archive as a whole;
    /// spreadsheets compress 5 to 30 times, a zip bomb hundreds to millions of times.
    pub max_compression_ratio: u64,
    /// XLSX: entries in the archive (a workbook has a dozen).
    pub max_archive_entries: usize,
}

impl Default for ReaderConfig {
    fn default() -> Self {
        Self {
            encoding: None,
            max_depth: 64,
            max_attributes: 64,
            max_distinct_names: 1024,
            max_field_len: 64 * 1024,
            max_nodes_per_record: 100_000,
            max_columns: 512,
            max_rows: 1_000_000,
            max_shared_strings: 2_000_000,
            max_decompressed_bytes: 512 * 1024 * 1024,
            max_compression_ratio: 200,
            max_archive_entries: 1000,
        }
    }
}

impl ReaderConfig {
    /// Checks every limit is at least 1 and below what the readers can bear (no I/O).
    pub fn validate(&self) -> Result<(), crate::ConnectorError> {
        let checks: [(&str, u64, u64); 11] = [
            ("max_depth", self.max_depth as u64, 1000),
            ("max_attributes", self.max_attributes as u64, 10_000),
            (
                "max_distinct_names",
                self.max_distinct_names as u64,
                1_000_000,
            ),
            (
                "max_field_len",
                self.max_field_len as u64,
                256 * 1024 * 1024,
            ),
            (
                "max_nodes_per_record",
                self.max_nodes_per_record as u64,
                100_000_000,
            ),
            ("max_columns", self.max_columns as u64, 16_384),
            ("max_rows", self.max_rows, 1_048_576 * 64),
            (
                "max_shared_strings",
                self.max_shared_strings as u64,
                100_000_000,
            ),
            (
                "max_decompressed_bytes",
                self.max_decompressed_bytes,
                16 * 1024 * 1024 * 1024,
            ),
            ("max_compression_ratio", self.max_compression_ratio, 100_000),
            (
                "max_archive_entries",
                self.max_archive_entries as u64,
                1_000_000,
            ),
        ];
        for (key, value, max) in checks {
            if value == 0 || value > max {
                return Err(crate::ConnectorError::Config(format!(
                    "reading.{key} must be between 1 and {max}"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_limits_parse() {
        ReaderConfig::default().validate().unwrap();
        let c: ReaderConfig =
            toml::from_str("encoding = \"windows-1252\"\nmax_columns = 2000\n").unwrap();
        assert_eq!(c.max_columns, 2000);
        assert_eq!(c.max_depth, 64);
        assert_eq!(c.encoding, Some(Declared::Windows1252));
        c.validate().unwrap();
        assert!(toml::from_str::<ReaderConfig>("max_colums = 2").is_err());
        let c: ReaderConfig = toml::from_str("max_depth = 0").unwrap();
        assert!(c.validate().is_err());
        let c: ReaderConfig = toml::from_str("max_depth = 100000").unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("max_depth"));
    }
}
