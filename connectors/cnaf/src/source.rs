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
    /// Names of the files to read, as globs (`*` any run, `?` one character, case
    /// ignored). The defaults are the names CAF and MSA files really carry (cnaf.md):
    /// monthly and daily, CAF and MSA, and as the CAF transfer service delivers them.
    #[serde(default = "default_patterns")]
    pub patterns: Vec<String>,
    /// Items per `next_batch`.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
}

/// The real names: `RSABEM_…`/`RSABEI_…` (CAF monthly/daily), `MSABEM_…`/`MSABEI_…`
/// (MSA), `NRSACGIM_RSABEM_20220305_A0407584.RCV` (CAF transfer service).
pub const DEFAULT_PATTERNS: &[&str] = &[
    "RSABEM_*.xml",
    "RSABEI_*.xml",
    "MSABEM_*.xml",
    "MSABEI_*.xml",
    "NRSACGIM_*.RCV",
];

fn default_patterns() -> Vec<String> {
    DEFAULT_PATTERNS.iter().map(|p| (*p).to_owned()).collect()
}

/// Whether `name` matches the glob `pattern` (`*`, `?`; ASCII case ignored).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().map(|c| c.to_ascii_lowercase()).collect();
    let n: Vec<char> = name.chars().map(|c| c.to_ascii_lowercase()).collect();
    // Iterative matching with one backtrack point: linear enough for file names.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn default_batch_size() -> usize {
    500
}

impl CnafConfig {
    /// A configuration reading `flux_dir` with the defaults.
    pub fn new(flux_dir: impl Into<PathBuf>) -> Self {
        Self {
            flux_dir: flux_dir.into(),
            patterns: default_patterns(),
            batch_size: default_batch_size(),
        }
    }

    /// Checks the configuration without touching the disk.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        if self.flux_dir.as_os_str().is_empty() {
            return Err(ConnectorError::Config("flux_dir must not be empty".into()));
        }
        if self.patterns.is_empty() {
            return Err(ConnectorError::Config(
                "patterns must name at least one file name pattern".into(),
            ));
        }
        for p in &self.patterns {
            if p.trim().is_empty() || p.contains(['/', '\\']) || p.starts_with('.') {
                return Err(ConnectorError::Config(format!(
                    "patterns: `{p}` must be a file name pattern, not a path"
                )));
            }
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
            patterns: self.patterns.clone(),
        };
        Ok(FolderSource::new(FolderFeed::new(
            self.flux_dir.clone(),
            reader,
            self.batch_size,
        )))
    }
}

impl CnafConfig {
    /// The files of `flux_dir` that match none of the patterns, by name: they are
    /// never read, and an operator must hear of them (a file renamed by a transfer
    /// tool would otherwise wait forever without a word). Hidden (`.`) names, being
    /// written, are left out, as are the `traites/` and `refuses/` folders.
    pub fn not_read(&self) -> Result<Vec<String>, ConnectorError> {
        let what = |e| ConnectorError::io(format!("flux_dir {}", self.flux_dir.display()), e);
        let reader = FluxReader {
            patterns: self.patterns.clone(),
        };
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.flux_dir).map_err(what)? {
            let entry = entry.map_err(what)?;
            if entry.file_type().map_err(what)?.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') && !reader.accepts(&name) {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }
}

/// Reads VRSB0801 and VRSD0301 files for a `FolderFeed`.
#[derive(Debug, Clone)]
pub struct FluxReader {
    pub patterns: Vec<String>,
}

impl FileReader for FluxReader {
    fn accepts(&self, name: &str) -> bool {
        self.patterns.iter().any(|p| glob_match(p, name))
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
            r#"{"flux_dir": "/x", "patterns": ["../RSABEM_*"]}"#,
            r#"{"flux_dir": "/x", "patterns": []}"#,
            r#"{"flux_dir": "/x", "patterns": [" "]}"#,
        ] {
            let c: CnafConfig = serde_json::from_str(bad).unwrap();
            assert!(c.validate().is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<CnafConfig>(r#"{"flux_dir": "/x", "dir": "/y"}"#).is_err());
    }

    #[test]
    fn default_patterns_take_the_real_names() {
        let r = FluxReader {
            patterns: default_patterns(),
        };
        for name in [
            "RSABEM_20220305.xml",
            "RSABEI_20211224_052.XML",
            "MSABEM_20220304.xml",
            "MSABEI_20211231.xml",
            "NRSACGIM_RSABEM_20220305_A0407584.RCV",
        ] {
            assert!(r.accepts(name), "{name}");
        }
        for name in [
            "RSABEM.xml.part",
            "notes.txt",
            "RSABEM-ouvert.xml",
            "XRSABEM_1.xml",
            "NRSACGIM_RSABEM_20220305.RCV.tmp",
        ] {
            assert!(!r.accepts(name), "{name}");
        }
        assert!(glob_match("a*b?c", "aXXbYc"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("a*b", "ab_"));
        assert!(glob_match("*.xml", "x.y.xml"));
    }
}
