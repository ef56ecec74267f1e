//! `SolisExportSource`: the complete export files of a folder (fluxes BRSA and ASE)
//! served record by record, streaming, through the generic `FolderSource`.

use std::path::Path;

use passerelle_connector::ConnectorError;
use passerelle_connector::feed::{FileReader, FolderFeed, FolderSource, Items};

use crate::config::{SolisConfig, SolisPeerConfig, existing_dir};
use crate::export::{Export, ExportFlux};

/// Export file names start with this.
pub const EXPORT_PREFIX: &str = "SOLIS_EXPORT_";

/// Reads SOLIS export files for a `FolderFeed`.
#[derive(Debug, Clone)]
pub struct ExportReader {
    pub mapping: SolisConfig,
    /// Fluxes to read; every flux when empty.
    pub fluxes: Vec<ExportFlux>,
}

impl ExportReader {
    /// The flux a file name announces (`SOLIS_EXPORT_{FLUX}_…`).
    fn flux_of(name: &str) -> Option<ExportFlux> {
        name.strip_prefix(EXPORT_PREFIX)?
            .split('_')
            .next()
            .and_then(ExportFlux::parse)
    }
}

impl FileReader for ExportReader {
    fn accepts(&self, name: &str) -> bool {
        name.starts_with(EXPORT_PREFIX)
            && name.to_ascii_lowercase().ends_with(".xml")
            && (self.fluxes.is_empty()
                || Self::flux_of(name).is_some_and(|f| self.fluxes.contains(&f)))
    }

    fn open(&self, path: &Path) -> Result<Items, ConnectorError> {
        let export = Export::open(path, &self.mapping)?;
        if !self.fluxes.is_empty() && !self.fluxes.contains(&export.header.flux) {
            return Err(ConnectorError::FileRefused {
                file: path.display().to_string(),
                reason: format!(
                    "its name and its flux attribute disagree (flux {})",
                    export.header.flux.as_str()
                ),
            });
        }
        Ok(Box::new(export.records()?))
    }
}

/// A `Source` over the SOLIS export folder (see `passerelle_connector::feed` for its
/// delivery rules).
pub type SolisExportSource = FolderSource<ExportReader>;

impl SolisPeerConfig {
    /// Builds the export source: checks `export_dir` exists.
    pub fn build_export_source(&self) -> Result<SolisExportSource, ConnectorError> {
        self.validate()?;
        let dir = existing_dir("export_dir", self.export_dir.as_deref())?;
        let reader = ExportReader {
            mapping: self.mapping.clone(),
            fluxes: self.export_fluxes()?,
        };
        Ok(FolderSource::new(FolderFeed::new(
            dir,
            reader,
            self.batch_size,
        )))
    }
}
