//! Retention of the peer files the hub keeps after reading them.
//!
//! A folder source moves each file it has read into `traites/` and each file it
//! refused into `refuses/` (see `feed`): both hold personal data, so they are kept only
//! as long as the configuration says (an operator may need a night's file back, a
//! person may ask what was received) and then deleted. The age counted is the time
//! since the hub set the file aside (its status-change time, which the move and the
//! change to mode 0600 set), not the peer's own date inside or on the file.
//!
//! Only entries directly in those two folders are removed, by name relative to a
//! handle on the folder: a link is removed itself (never what it points to), a
//! folder planted there is left alone, and a link in place of `traites/` is an error.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::error::ConnectorError;
use crate::feed::{DONE_DIR, REFUSED_DIR};
use crate::safe_fs::SafeDir;

/// What one sweep of a folder removed and kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Entries removed from `traites/` and `refuses/`.
    pub removed: u64,
    /// Their size in bytes.
    pub bytes: u64,
    /// Entries still within their retention.
    pub kept: u64,
}

impl Swept {
    fn add(&mut self, other: Swept) {
        self.removed += other.removed;
        self.bytes += other.bytes;
        self.kept += other.kept;
    }
}

/// Removes the entries of `dir/traites/` and `dir/refuses/` set aside more than
/// `max_age` before `now`. A folder without them (nothing read yet) sweeps nothing; a
/// missing `dir` is an error (the configuration names a folder that is not there).
pub fn sweep(dir: &Path, max_age: Duration, now: SystemTime) -> Result<Swept, ConnectorError> {
    let io = |what: &Path, e| ConnectorError::io(what.display().to_string(), e);
    let here = SafeDir::open(dir).map_err(|e| io(dir, e))?;
    let mut total = Swept::default();
    for sub in [DONE_DIR, REFUSED_DIR] {
        let folder = match here.sub(sub) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&dir.join(sub), e)),
        };
        total.add(sweep_one(&folder, max_age, now).map_err(|e| io(&dir.join(sub), e))?);
    }
    Ok(total)
}

fn sweep_one(folder: &SafeDir, max_age: Duration, now: SystemTime) -> std::io::Result<Swept> {
    let listing = folder.list()?;
    let names = listing
        .files
        .iter()
        .map(|n| std::ffi::OsString::from(n.as_str()))
        .chain(listing.odd.iter().map(|o| o.raw.clone()));
    let mut swept = Swept::default();
    for raw in names {
        let changed = match folder.changed(&raw) {
            Ok(t) => t,
            // Gone meanwhile (another sweep, an operator): nothing to do.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        // A time in the future (a clock set back) counts as new: kept, never deleted early.
        let age = now.duration_since(changed).unwrap_or(Duration::ZERO);
        if age <= max_age {
            swept.kept += 1;
            continue;
        }
        let len = folder.entry_len(&raw).unwrap_or(0);
        folder.remove_entry(&raw)?;
        swept.removed += 1;
        swept.bytes += len;
    }
    Ok(swept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const DAY: Duration = Duration::from_secs(86_400);

    fn folder_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (sub, name) in files {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
            std::fs::write(dir.path().join(sub).join(name), b"<x/>").unwrap();
        }
        dir
    }

    #[test]
    fn removes_only_what_is_past_retention() {
        let dir = folder_with(&[(DONE_DIR, "RSABEM_1.xml"), (REFUSED_DIR, "RSABEM_2.xml")]);
        // A file still waiting in the folder itself is never touched.
        std::fs::write(dir.path().join("RSABEM_3.xml"), b"<x/>").unwrap();
        let now = SystemTime::now();
        let within = sweep(dir.path(), 30 * DAY, now + 29 * DAY).unwrap();
        assert_eq!(
            within,
            Swept {
                removed: 0,
                bytes: 0,
                kept: 2
            }
        );
        let past = sweep(dir.path(), 30 * DAY, now + 31 * DAY).unwrap();
        assert_eq!(
            past,
            Swept {
                removed: 2,
                bytes: 8,
                kept: 0
            }
        );
        assert!(!dir.path().join(DONE_DIR).join("RSABEM_1.xml").exists());
        assert!(!dir.path().join(REFUSED_DIR).join("RSABEM_2.xml").exists());
        assert!(dir.path().join("RSABEM_3.xml").exists());
    }

    #[test]
    fn a_link_is_removed_itself_never_its_target() {
        let dir = folder_with(&[(DONE_DIR, "a.xml")]);
        let outside = tempfile::tempdir().unwrap();
        let precious = outside.path().join("precious.txt");
        std::fs::write(&precious, b"keep me").unwrap();
        std::os::unix::fs::symlink(&precious, dir.path().join(DONE_DIR).join("link.xml")).unwrap();
        let swept = sweep(dir.path(), DAY, SystemTime::now() + 2 * DAY).unwrap();
        assert_eq!(swept.removed, 2);
        assert_eq!(std::fs::read(&precious).unwrap(), b"keep me");
    }

    #[test]
    fn a_link_in_place_of_traites_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = folder_with(&[("x", "victim.xml")]);
        std::os::unix::fs::symlink(elsewhere.path().join("x"), dir.path().join(DONE_DIR)).unwrap();
        let err = sweep(dir.path(), DAY, SystemTime::now() + 2 * DAY).unwrap_err();
        assert!(err.to_string().contains(DONE_DIR), "{err}");
        assert!(elsewhere.path().join("x/victim.xml").exists());
    }

    #[test]
    fn a_folder_never_read_sweeps_nothing_and_a_missing_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            sweep(dir.path(), DAY, SystemTime::now()).unwrap(),
            Swept::default()
        );
        let missing = dir.path().join("absent");
        let err = sweep(&missing, DAY, SystemTime::now()).unwrap_err();
        assert!(err.to_string().contains("absent"), "{err}");
    }

    #[test]
    fn moved_files_become_private() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("RSABEM_1.xml");
        std::fs::write(&file, b"<x/>").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        crate::feed::move_into(dir.path(), "RSABEM_1.xml", DONE_DIR).unwrap();
        let moved = std::fs::metadata(dir.path().join(DONE_DIR).join("RSABEM_1.xml")).unwrap();
        assert_eq!(moved.permissions().mode() & 0o777, 0o600);
    }
}
