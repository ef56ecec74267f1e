//! The box as a small trait (list, open, write, rename, exists, remove), so that the
//! protocol runs the same over a local path and over SFTP; `LocalFolder` is the
//! local-filesystem implementation (`sftp::SftpFolder` is the other).
//!
//! The partner writes into the same tree, so `LocalFolder` never follows a link below
//! the box root (`passerelle_connector::safe_fs`): files are written under a fresh
//! temporary name with `O_EXCL | O_NOFOLLOW` (mode 0600) and renamed, folders are
//! opened component by component without following links, and only regular files
//! are listed and opened (a FIFO named `X.sha256` cannot block a read).

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use passerelle_connector::ConnectorError;
use passerelle_connector::safe_fs::SafeDir;

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

    /// The folder holding `rel` (opened without following links) and its last name.
    fn parent(&self, rel: &str) -> Result<(SafeDir, String), ConnectorError> {
        check_rel_path(rel)?;
        let io = |e| ConnectorError::io(rel, e);
        let root = SafeDir::open(&self.root).map_err(io)?;
        match rel.rsplit_once('/') {
            Some((dir, name)) => Ok((root.sub(dir).map_err(io)?, name.to_owned())),
            None => Ok((root, rel.to_owned())),
        }
    }

    fn dir(&self, rel: &str) -> Result<SafeDir, ConnectorError> {
        check_rel_path(rel)?;
        let io = |e| ConnectorError::io(rel, e);
        SafeDir::open(&self.root)
            .and_then(|r| r.sub(rel))
            .map_err(io)
    }
}

/// The names of the regular files of a folder. Links, FIFOs and devices are left out
/// (logged); regular files with names the hub cannot handle are listed (lossily) so
/// that the protocol refuses them alone and says so.
fn regular_names(dir: &SafeDir, what: &str) -> Result<Vec<String>, ConnectorError> {
    use passerelle_connector::safe_fs::OddReason;
    let listing = dir.list().map_err(|e| ConnectorError::io(what, e))?;
    let mut names = listing.files;
    for odd in listing.odd {
        match odd.reason {
            OddReason::Name(_) => names.push(odd.raw.to_string_lossy().into_owned()),
            _ => {
                tracing::warn!(folder = what, entry = %odd.shown, reason = %odd.reason, "box entry not read");
            }
        }
    }
    Ok(names)
}

impl BoxFolder for LocalFolder {
    fn list(&self, dir: &str) -> Result<Vec<String>, ConnectorError> {
        regular_names(&self.dir(dir)?, dir)
    }

    fn open(&self, path: &str) -> Result<Box<dyn Read + Send>, ConnectorError> {
        let (dir, name) = self.parent(path)?;
        let f = dir
            .open_file(&name)
            .map_err(|e| ConnectorError::io(path, e))?;
        Ok(Box::new(f))
    }

    fn write(&self, path: &str, bytes: &[u8]) -> Result<(), ConnectorError> {
        let (dir, name) = self.parent(path)?;
        dir.write(&name, bytes)
            .map_err(|e| ConnectorError::io(path, e))
    }

    fn rename(&self, from: &str, to: &str) -> Result<(), ConnectorError> {
        let (from_dir, from_name) = self.parent(from)?;
        let (to_dir, to_name) = self.parent(to)?;
        if !from_dir
            .is_file(&from_name)
            .map_err(|e| ConnectorError::io(from, e))?
        {
            return Err(ConnectorError::io(
                from,
                std::io::Error::new(std::io::ErrorKind::NotFound, "not a regular file"),
            ));
        }
        from_dir
            .rename(&from_name, &to_dir, &to_name)
            .map_err(|e| ConnectorError::io(from, e))
    }

    fn exists(&self, path: &str) -> Result<bool, ConnectorError> {
        match self.parent(path) {
            Ok((dir, name)) => dir.is_file(&name).map_err(|e| ConnectorError::io(path, e)),
            Err(ConnectorError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    fn remove(&self, path: &str) -> Result<(), ConnectorError> {
        let (dir, name) = match self.parent(path) {
            Ok(p) => p,
            Err(ConnectorError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        dir.remove(&name).map_err(|e| ConnectorError::io(path, e))
    }

    fn create_dir_all(&self, path: &str) -> Result<(), ConnectorError> {
        check_rel_path(path)?;
        // The root is the operator's: created when missing, its mode left alone.
        if !self.root.exists() {
            std::fs::create_dir_all(&self.root)
                .map_err(|e| ConnectorError::io(self.root.display().to_string(), e))?;
        }
        SafeDir::open(&self.root)
            .and_then(|r| r.sub_create(path))
            .map(drop)
            .map_err(|e| ConnectorError::io(path, e))
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
