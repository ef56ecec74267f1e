//! `CnafFluxSource`: the complete VRSB0801 files of a folder served record by record,
//! streaming, through the generic `FolderSource` (finished files go to `traites/`,
//! refused ones to `refuses/`).

use std::path::{Path, PathBuf};

use passerelle_connector::ConnectorError;
use passerelle_connector::feed::{FileReader, FolderFeed, FolderSource, Items};
use serde::{Deserialize, Serialize};

use crate::flux::Flux;

/// The CNAF peer as the engine reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CnafConfig {
    /// Folder the CAF (or MSA) files arrive in.
    pub flux_dir: PathBuf,
    /// Only files whose name starts with this are read (`RSABEM_`); any `.xml` when
    /// empty.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Items per `next_batch`.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
}

fn default_prefix() -> String {
    "RSABEM_".to_owned()
}

fn default_batch_size() -> usize {
    500
}

impl CnafConfig {
    /// A configuration reading `flux_dir` with the defaults.
    pub fn new(flux_dir: impl Into<PathBuf>) -> Self {
        Self {
            flux_dir: flux_dir.into(),
            prefix: default_prefix(),
            batch_size: default_batch_size(),
        }
    }

    /// Checks the configuration without touching the disk.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        if self.flux_dir.as_os_str().is_empty() {
            return Err(ConnectorError::Config("flux_dir must not be empty".into()));
        }
        if self.prefix.contains(['/', '\\']) {
            return Err(ConnectorError::Config(
                "prefix must be a file name prefix, not a path".into(),
            ));
        }
        if !(1..=100_000).contains(&self.batch_size) {
            return Err(ConnectorError::Config(
                "batch_size must be between 1 and 100000".into(),
            ));
        }
        Ok(())
    }

    /// Builds the source: checks `flux_dir` is a folder.
    pub fn build(&self) -> Result<CnafFluxSource, ConnectorError> {
        self.validate()?;
        match std::fs::metadata(&self.flux_dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(ConnectorError::Config(format!(
                    "flux_dir {} is not a folder",
                    self.flux_dir.display()
                )));
            }
            Err(e) => {
                return Err(ConnectorError::io(
                    format!("flux_dir {}", self.flux_dir.display()),
                    e,
                ));
            }
        }
        let reader = FluxReader {
            prefix: self.prefix.clone(),
        };
        Ok(FolderSource::new(FolderFeed::new(
            self.flux_dir.clone(),
            reader,
            self.batch_size,
        )))
    }
}

/// Reads VRSB0801 files for a `FolderFeed`.
#[derive(Debug, Clone)]
pub struct FluxReader {
    pub prefix: String,
}

impl FileReader for FluxReader {
    fn accepts(&self, name: &str) -> bool {
        name.starts_with(&self.prefix) && name.to_ascii_lowercase().ends_with(".xml")
    }

    fn open(&self, path: &Path) -> Result<Items, ConnectorError> {
        Ok(Box::new(Flux::open(path)?.records()?))
    }
}

/// A `Source` over the CNAF flux folder.
pub type CnafFluxSource = FolderSource<FluxReader>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_validates_without_io() {
        let c: CnafConfig = serde_json::from_str(r#"{"flux_dir": "/nonexistent"}"#).unwrap();
        assert_eq!(c, CnafConfig::new("/nonexistent"));
        c.validate().unwrap();
        assert!(c.build().is_err());
        for bad in [
            r#"{"flux_dir": ""}"#,
            r#"{"flux_dir": "/x", "batch_size": 0}"#,
            r#"{"flux_dir": "/x", "prefix": "../RSABEM_"}"#,
        ] {
            let c: CnafConfig = serde_json::from_str(bad).unwrap();
            assert!(c.validate().is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<CnafConfig>(r#"{"flux_dir": "/x", "dir": "/y"}"#).is_err());
    }
}
