//! The box as a small trait (list, open, write, rename, exists, remove), so that the
//! protocol runs the same over a local path and over SFTP; `LocalFolder` is the
//! local-filesystem implementation (`sftp::SftpFolder` is the other).

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use passerelle_connector::ConnectorError;

/// A box folder tree. Paths are relative to the box root, `/`-separated
/// (`59350S00/depot/BRSA_LISTE_….csv`).
pub trait BoxFolder: Send + Sync + std::fmt::Debug {
    /// The names of the plain files in `dir` (not their paths), in no set order.
    fn list(&self, dir: &str) -> Result<Vec<String>, ConnectorError>;
    /// Opens a file for streaming.
    fn open(&self, path: &str) -> Result<Box<dyn Read + Send>, ConnectorError>;
    /// Creates or replaces a file with `bytes`.
    fn write(&self, path: &str, bytes: &[u8]) -> Result<(), ConnectorError>;
    /// Renames a file, replacing the target if it exists.
    fn rename(&self, from: &str, to: &str) -> Result<(), ConnectorError>;
    /// Whether a file exists.
    fn exists(&self, path: &str) -> Result<bool, ConnectorError>;
    /// Removes a file; removing a missing file is not an error (the box purges too).
    fn remove(&self, path: &str) -> Result<(), ConnectorError>;
    /// Creates a folder and its parents.
    fn create_dir_all(&self, path: &str) -> Result<(), ConnectorError>;
}

/// Refuses paths that could leave the box root or that a batch command could not
/// quote or that sftp would expand (`..`, absolute paths, quotes, line breaks, globs).
pub fn check_rel_path(path: &str) -> Result<(), ConnectorError> {
    let bad = path.is_empty()
        || path.contains(['*', '?', '[', ']'])
        || path.starts_with('/')
        || path.contains(['"', '\n', '\r', '\\', '\0'])
        || Path::new(path)
            .components()
            .any(|c| !matches!(c, Component::Normal(_)));
    if bad {
        return Err(ConnectorError::Invalid {
            location: "box path".to_owned(),
            reason: format!("{path:?} must be a relative path inside the box"),
        });
    }
    Ok(())
}

/// A box reached as a local folder (`file:///srv/box/cd059`).
#[derive(Debug, Clone)]
pub struct LocalFolder {
    root: PathBuf,
}

impl LocalFolder {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path(&self, rel: &str) -> Result<PathBuf, ConnectorError> {
        check_rel_path(rel)?;
        Ok(self.root.join(rel))
    }
}

impl BoxFolder for LocalFolder {
    fn list(&self, dir: &str) -> Result<Vec<String>, ConnectorError> {
        let path = self.path(dir)?;
        let mut out = Vec::new();
        let entries = std::fs::read_dir(&path).map_err(|e| ConnectorError::io(dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| ConnectorError::io(dir, e))?;
            let is_file = entry
                .file_type()
                .map_err(|e| ConnectorError::io(dir, e))?
                .is_file();
            if is_file {
                out.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        Ok(out)
    }

    fn open(&self, path: &str) -> Result<Box<dyn Read + Send>, ConnectorError> {
        let f = std::fs::File::open(self.path(path)?).map_err(|e| ConnectorError::io(path, e))?;
        Ok(Box::new(f))
    }

    fn write(&self, path: &str, bytes: &[u8]) -> Result<(), ConnectorError> {
        std::fs::write(self.path(path)?, bytes).map_err(|e| ConnectorError::io(path, e))
    }

    fn rename(&self, from: &str, to: &str) -> Result<(), ConnectorError> {
        std::fs::rename(self.path(from)?, self.path(to)?).map_err(|e| ConnectorError::io(from, e))
    }

    fn exists(&self, path: &str) -> Result<bool, ConnectorError> {
        Ok(self.path(path)?.is_file())
    }

    fn remove(&self, path: &str) -> Result<(), ConnectorError> {
        match std::fs::remove_file(self.path(path)?) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(ConnectorError::io(path, e)),
            _ => Ok(()),
        }
    }

    fn create_dir_all(&self, path: &str) -> Result<(), ConnectorError> {
        std::fs::create_dir_all(self.path(path)?).map_err(|e| ConnectorError::io(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_box() {
        for bad in [
            "",
            "/etc/passwd",
            "a/../../b",
            "../x",
            "a\"b",
            "a\nb",
            "a/*.csv",
        ] {
            assert!(check_rel_path(bad).is_err(), "{bad:?}");
        }
        assert!(check_rel_path("59350S00/depot/F.csv").is_ok());
    }

    #[test]
    fn local_folder_basics() {
        let dir = tempfile::tempdir().unwrap();
        let f = LocalFolder::new(dir.path());
        f.create_dir_all("p/depot").unwrap();
        f.write("p/depot/a.csv", b"x").unwrap();
        assert!(f.exists("p/depot/a.csv").unwrap());
        f.rename("p/depot/a.csv", "p/depot/b.csv").unwrap();
        assert_eq!(f.list("p/depot").unwrap(), vec!["b.csv".to_owned()]);
        let mut s = String::new();
        f.open("p/depot/b.csv")
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "x");
        f.remove("p/depot/b.csv").unwrap();
        f.remove("p/depot/b.csv").unwrap();
        assert!(!f.exists("p/depot/b.csv").unwrap());
    }
}
