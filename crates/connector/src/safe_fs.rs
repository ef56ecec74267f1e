//! File operations in folders a peer controls: nothing the hub writes follows a link,
//! nothing it reads is anything but a regular file of that folder, and what it creates
//! is private (files 0600, folders 0700).
//!
//! A partner who can write into `retour/`, `depot/` or a SOLIS import folder can plant
//! a symbolic link where the hub is about to write (`ACK_….csv`, `.X.part`), replace a
//! folder by a link to elsewhere, or leave a FIFO where the hub is about to read (the
//! open blocks for ever). So every operation here goes through a handle on the folder
//! (`openat` and friends): each path component is opened with `O_NOFOLLOW`, a file is
//! written under a fresh temporary name created with `O_CREAT | O_EXCL | O_NOFOLLOW`
//! (mode 0600) in the same folder, synced, then renamed over the final name (a rename
//! replaces a link planted there, it never writes through it), and a file is read only
//! after `fstat` says it is a regular file with one link (`O_NONBLOCK` on the open, so
//! that a FIFO cannot block it).
//!
//! The folder given to `SafeDir::open` is the operator's (configuration): links above
//! it are the operator's choice and are followed; everything below it is the peer's.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags};

/// Mode of the files the hub creates.
pub const FILE_MODE: u32 = 0o600;
/// Mode of the folders the hub creates.
pub const DIR_MODE: u32 = 0o700;

/// Why a file name is refused (see `check_name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("the name is empty, `.` or `..`")]
    Empty,
    #[error("the name is longer than 255 bytes")]
    TooLong,
    #[error("the name is not valid utf-8")]
    NotUtf8,
    #[error("the name holds a control character")]
    Control,
    #[error("the name holds a character file transfers cannot quote (\" [ ] * ? \\ /)")]
    Unquotable,
}

/// Whether a name is one the hub can read, write, quote in an SFTP batch and report:
/// valid UTF-8 (no U+FFFD either, which is what a lossy listing makes of bad bytes), no
/// control character, none of `" [ ] * ? \ /`, at most 255 bytes.
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(NameError::Empty);
    }
    if name.len() > 255 {
        return Err(NameError::TooLong);
    }
    if name.contains('\u{FFFD}') {
        return Err(NameError::NotUtf8);
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::Control);
    }
    if name.contains(['"', '[', ']', '*', '?', '\\', '/']) {
        return Err(NameError::Unquotable);
    }
    Ok(())
}

/// A name shown in logs and reports whatever its bytes: printable ASCII as is, anything
/// else escaped (`caf\xe9.xml`), cut at 120 bytes.
pub fn shown_name(raw: &OsStr) -> String {
    let bytes = raw.as_bytes();
    let cut = &bytes[..bytes.len().min(120)];
    let mut out = String::new();
    for &b in cut {
        if (0x20..0x7f).contains(&b) && b != b'\\' {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    if bytes.len() > cut.len() {
        out.push('…');
    }
    out
}

/// An entry of a folder that the hub will not read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OddEntry {
    /// The name as the file system has it.
    pub raw: OsString,
    /// The name escaped for reports (`shown_name`).
    pub shown: String,
    pub reason: OddReason,
}

/// Why a folder entry is set apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OddReason {
    #[error("{0}")]
    Name(NameError),
    #[error("it is a symbolic link")]
    Link,
    #[error("it is not a regular file (fifo, socket or device)")]
    Special,
}

/// What a folder holds, as the hub sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Regular files with acceptable names, sorted.
    pub files: Vec<String>,
    /// Entries that are neither such files nor folders, sorted by raw name.
    pub odd: Vec<OddEntry>,
}

fn mode(m: u32) -> Mode {
    Mode::from_raw_mode(m)
}

fn not_regular() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "not a regular file of the folder (a link, fifo, device, or a file with other links)",
    )
}

fn bad_component() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "a path component is empty, `.` or `..`",
    )
}

/// A handle on a folder; every operation is relative to it (see the module doc).
#[derive(Debug)]
pub struct SafeDir {
    fd: OwnedFd,
    path: PathBuf,
}

/// Temporary names never repeat within a process; the time and pid keep them apart
/// across processes, so that a planted name cannot be guessed ahead.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn tmp_name(name: &str) -> String {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tag = format!("{:x}{:x}{:x}", std::process::id(), nanos, n);
    // Keeps the whole name within 255 bytes whatever the final name's length.
    let stem: String = name.chars().take(180).collect();
    format!(".{stem}.{tag}.part")
}

fn components(rel: &str) -> io::Result<Vec<&str>> {
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() || parts.iter().any(|p| *p == "." || *p == "..") {
        return Err(bad_component());
    }
    Ok(parts)
}

impl SafeDir {
    /// Opens the operator's folder (links above and at it are followed).
    pub fn open(path: &Path) -> io::Result<Self> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Self {
            fd,
            path: path.to_owned(),
        })
    }

    /// Opens the operator's folder, creating it (and its parents) private when missing.
    pub fn open_or_create(path: &Path) -> io::Result<Self> {
        private_dir(path)?;
        Self::open(path)
    }

    /// The folder's path (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn child_dir(&self, name: &str) -> io::Result<Self> {
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Self {
            fd,
            path: self.path.join(name),
        })
    }

    /// A folder below this one (`p/retour`), each component opened without following a
    /// link: a link planted in place of a folder is an error, not a detour.
    pub fn sub(&self, rel: &str) -> io::Result<Self> {
        let mut dir = self.child_dir(components(rel)?[0])?;
        for part in &components(rel)?[1..] {
            dir = dir.child_dir(part)?;
        }
        Ok(dir)
    }

    /// Like `sub`, creating missing folders with mode 0700.
    pub fn sub_create(&self, rel: &str) -> io::Result<Self> {
        let mut current: Option<Self> = None;
        for part in components(rel)? {
            let parent = current.as_ref().unwrap_or(self);
            match rustix::fs::mkdirat(&parent.fd, part, mode(DIR_MODE)) {
                Ok(()) => {}
                Err(e) if e == rustix::io::Errno::EXIST => {}
                Err(e) => return Err(e.into()),
            }
            current = Some(parent.child_dir(part)?);
        }
        current.ok_or_else(bad_component)
    }

    /// Writes `name` whole: a fresh temporary name in this folder (`O_EXCL`,
    /// `O_NOFOLLOW`, 0600), filled, synced, then renamed over `name`. A reader never
    /// sees a partial file and a link at `name` is replaced, never followed.
    pub fn write_with(
        &self,
        name: &str,
        fill: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
    ) -> io::Result<()> {
        check_name(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let (tmp, file) = self.create_temp(name)?;
        let result = (|| {
            let mut w = BufWriter::with_capacity(64 * 1024, file);
            fill(&mut w)?;
            let file = w.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            rustix::fs::renameat(&self.fd, tmp.as_str(), &self.fd, name)?;
            Ok(())
        })();
        if result.is_err() {
            let _ = rustix::fs::unlinkat(&self.fd, tmp.as_str(), AtFlags::empty());
        }
        result
    }

    /// `write_with`, but never over an existing file: when `name` exists (another
    /// writer took it since the caller looked) the file is not written and the error
    /// is `AlreadyExists`, so that the caller picks another name.
    pub fn write_new_with(
        &self,
        name: &str,
        fill: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
    ) -> io::Result<()> {
        check_name(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let (tmp, file) = self.create_temp(name)?;
        let result = (|| {
            let mut w = BufWriter::with_capacity(64 * 1024, file);
            fill(&mut w)?;
            let file = w.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            rustix::fs::renameat_with(
                &self.fd,
                tmp.as_str(),
                &self.fd,
                name,
                rustix::fs::RenameFlags::NOREPLACE,
            )?;
            Ok(())
        })();
        if result.is_err() {
            let _ = rustix::fs::unlinkat(&self.fd, tmp.as_str(), AtFlags::empty());
        }
        result
    }

    /// `write_with` for bytes at hand.
    pub fn write(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.write_with(name, |w| w.write_all(bytes))
    }

    fn create_temp(&self, name: &str) -> io::Result<(String, File)> {
        // A name taken (planted, or left by a crash) is skipped, never opened.
        for _ in 0..16 {
            let tmp = tmp_name(name);
            match rustix::fs::openat(
                &self.fd,
                tmp.as_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                mode(FILE_MODE),
            ) {
                Ok(fd) => return Ok((tmp, File::from(fd))),
                Err(e) if e == rustix::io::Errno::EXIST => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "no free temporary name in the folder",
        ))
    }

    /// Opens `name` for reading if it is a regular file of this folder with one link:
    /// not a link (`O_NOFOLLOW`), not a FIFO or device (`O_NONBLOCK`, then `fstat`).
    pub fn open_file(&self, name: impl AsRef<OsStr>) -> io::Result<File> {
        let fd = rustix::fs::openat(
            &self.fd,
            name.as_ref(),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
        )
        .map_err(|e| {
            if e == rustix::io::Errno::LOOP {
                not_regular()
            } else {
                e.into()
            }
        })?;
        regular(fd)
    }

    /// Whether `name` is a regular file here (a link or a FIFO is not).
    pub fn is_file(&self, name: &str) -> io::Result<bool> {
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(FileType::from_raw_mode(st.st_mode) == FileType::RegularFile),
            Err(e) if e == rustix::io::Errno::NOENT || e == rustix::io::Errno::NOTDIR => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Renames an entry of this folder into `to` (the entry itself: a link is moved,
    /// not its target), replacing what `to_name` was.
    pub fn rename(&self, name: impl AsRef<OsStr>, to: &SafeDir, to_name: &str) -> io::Result<()> {
        rustix::fs::renameat(&self.fd, name.as_ref(), &to.fd, to_name)?;
        Ok(())
    }

    /// Moves an entry of this folder into `to` under a name that is free there: its own
    /// name when it can be represented and is free, else a made-up `refuse-…` name.
    pub fn move_aside(&self, raw: &OsStr, to: &SafeDir) -> io::Result<String> {
        let plain = raw.to_str().filter(|n| check_name(n).is_ok());
        let mut candidate = match plain {
            Some(n) => n.to_owned(),
            None => format!("refuse-{}", hex_digest(raw.as_bytes())),
        };
        for i in 1..=1000u32 {
            match rustix::fs::statat(&to.fd, candidate.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Err(e) if e == rustix::io::Errno::NOENT => {
                    self.rename(raw, to, &candidate)?;
                    return Ok(candidate);
                }
                Err(e) => return Err(e.into()),
                Ok(_) => {
                    let base = plain.map_or_else(
                        || format!("refuse-{}", hex_digest(raw.as_bytes())),
                        str::to_owned,
                    );
                    candidate = format!("{base}.{i}");
                }
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "no free name to set the file aside",
        ))
    }

    /// Removes a file; a missing one is not an error.
    pub fn remove(&self, name: &str) -> io::Result<()> {
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Err(e) if e != rustix::io::Errno::NOENT => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// When the entry itself (not what a link points to) last changed status: a rename
    /// or a change of mode sets it, so for a file the hub set aside it is when it did so.
    pub fn changed(&self, name: impl AsRef<OsStr>) -> io::Result<std::time::SystemTime> {
        let st = rustix::fs::statat(&self.fd, name.as_ref(), AtFlags::SYMLINK_NOFOLLOW)?;
        let secs = u64::try_from(st.st_ctime).unwrap_or(0);
        let nanos = u32::try_from(st.st_ctime_nsec).unwrap_or(0);
        Ok(std::time::UNIX_EPOCH + std::time::Duration::new(secs, nanos))
    }

    /// The entry's size in bytes (a link's own size, never its target's).
    pub fn entry_len(&self, name: impl AsRef<OsStr>) -> io::Result<u64> {
        let st = rustix::fs::statat(&self.fd, name.as_ref(), AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(u64::try_from(st.st_size).unwrap_or(0))
    }

    /// Removes any non-folder entry by its raw name (a link is removed, not its target);
    /// a missing one is not an error.
    pub fn remove_entry(&self, raw: &OsStr) -> io::Result<()> {
        match rustix::fs::unlinkat(&self.fd, raw, AtFlags::empty()) {
            Err(e) if e != rustix::io::Errno::NOENT => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Makes a regular file of this folder 0600 (a link is refused, never followed): peer
    /// files the hub keeps after reading them are personal data.
    pub fn make_private(&self, name: &str) -> io::Result<()> {
        let file = self.open_file(name)?;
        let fd = std::os::fd::AsFd::as_fd(&file);
        let st = rustix::fs::fstat(fd)?;
        if st.st_mode & 0o777 != FILE_MODE {
            rustix::fs::fchmod(fd, mode(FILE_MODE))?;
        }
        Ok(())
    }

    /// The regular files of the folder with acceptable names, and the other entries
    /// (links, FIFOs, devices, names that cannot be represented); folders are left out.
    pub fn list(&self) -> io::Result<Listing> {
        let mut out = Listing::default();
        // `read_from` reads a fresh descriptor of its own: this handle stays usable.
        let dir = rustix::fs::Dir::read_from(&self.fd)?;
        for entry in dir {
            let entry = entry?;
            let bytes = entry.file_name().to_bytes();
            if bytes == b"." || bytes == b".." {
                continue;
            }
            let raw = OsString::from_vec(bytes.to_vec());
            let mut kind = entry.file_type();
            if kind == FileType::Unknown {
                kind = rustix::fs::statat(&self.fd, raw.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
                    .map(|st| FileType::from_raw_mode(st.st_mode))?;
            }
            let odd = |reason| OddEntry {
                shown: shown_name(&raw),
                raw: raw.clone(),
                reason,
            };
            match kind {
                FileType::Directory => {}
                FileType::Symlink => out.odd.push(odd(OddReason::Link)),
                FileType::RegularFile => match raw.to_str() {
                    Some(name) => match check_name(name) {
                        Ok(()) => out.files.push(name.to_owned()),
                        Err(e) => out.odd.push(odd(OddReason::Name(e))),
                    },
                    None => out.odd.push(odd(OddReason::Name(NameError::NotUtf8))),
                },
                _ => out.odd.push(odd(OddReason::Special)),
            }
        }
        out.files.sort();
        out.odd.sort_by(|a, b| a.raw.cmp(&b.raw));
        Ok(out)
    }
}

fn hex_digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(bytes)[..8])
}

fn regular(fd: OwnedFd) -> io::Result<File> {
    let st = rustix::fs::fstat(&fd)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile || st.st_nlink != 1 {
        return Err(not_regular());
    }
    Ok(File::from(fd))
}

/// Opens a file given by path for reading, only if it is a regular file with one link
/// (its last component is not followed if it is a link; a FIFO does not block).
pub fn open_regular(path: &Path) -> io::Result<File> {
    let fd = rustix::fs::openat(
        CWD,
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
    .map_err(|e| {
        if e == rustix::io::Errno::LOOP {
            not_regular()
        } else {
            io::Error::from(e)
        }
    })?;
    regular(fd)
}

/// Writes `path` whole and privately (see `SafeDir::write_with`); its folder is the
/// operator's and must exist.
pub fn write_file_with(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> io::Result<()> {
    let (dir, name) = split(path)?;
    SafeDir::open(dir)?.write_with(name, fill)
}

/// `write_file_with`, never over an existing file (see `SafeDir::write_new_with`).
pub fn write_new_file_with(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> io::Result<()> {
    let (dir, name) = split(path)?;
    SafeDir::open(dir)?.write_new_with(name, fill)
}

/// `write_file_with` for bytes at hand.
pub fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_file_with(path, |w| w.write_all(bytes))
}

fn split(path: &Path) -> io::Result<(&Path, &str)> {
    let name = path
        .file_name()
        .and_then(OsStr::to_str)
        .ok_or_else(bad_component)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Ok((dir, name))
}

/// Creates a folder and its missing parents with mode 0700, and makes the folder itself
/// 0700 when it existed (parents that existed are left as they are).
pub fn private_dir(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)?;
    let meta = std::fs::metadata(path)?;
    if meta.permissions().mode() & 0o777 != DIR_MODE {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(DIR_MODE))?;
    }
    Ok(())
}

/// Makes sure a file the hub keeps (a database, a ledger) is private before anything
/// opens it: created empty with mode 0600 when missing, set to 0600 when it exists.
/// A link in its place is refused. SQLite gives its `-wal` and `-shm` files the mode
/// of the database file, so they follow.
pub fn private_file(path: &Path) -> io::Result<()> {
    match rustix::fs::openat(
        CWD,
        path,
        OFlags::RDONLY | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
        mode(FILE_MODE),
    ) {
        Ok(fd) => {
            let st = rustix::fs::fstat(&fd)?;
            if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                return Err(not_regular());
            }
            if st.st_mode & 0o777 != FILE_MODE {
                rustix::fs::fchmod(&fd, mode(FILE_MODE))?;
            }
            Ok(())
        }
        Err(e) if e == rustix::io::Errno::LOOP => Err(not_regular()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn mode_of(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_name_another_writer_took_is_never_overwritten() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("IMPORT_1.xml");
        write_new_file_with(&path, |w| w.write_all(b"first")).unwrap();
        let e = write_new_file_with(&path, |w| w.write_all(b"second")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        // No temporary file left behind.
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_planted_link_is_replaced_never_written_through() {
        let root = tempfile::tempdir().unwrap();
        let outside = root.path().join("outside.txt");
        std::fs::write(&outside, "precious").unwrap();
        let peer = root.path().join("peer");
        std::fs::create_dir(&peer).unwrap();
        symlink(&outside, peer.join("ACK_X.csv")).unwrap();
        let dir = SafeDir::open(&peer).unwrap();
        dir.write("ACK_X.csv", b"ligne;statut\r\n").unwrap();
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "precious");
        assert!(
            !std::fs::symlink_metadata(peer.join("ACK_X.csv"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            std::fs::read(peer.join("ACK_X.csv")).unwrap(),
            b"ligne;statut\r\n"
        );
        assert_eq!(mode_of(&peer.join("ACK_X.csv")), 0o600);
        // No temporary name is left behind.
        let left: Vec<_> = std::fs::read_dir(&peer).unwrap().collect();
        assert_eq!(left.len(), 1);
    }

    #[test]
    fn a_folder_replaced_by_a_link_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        let elsewhere = root.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::create_dir(root.path().join("p")).unwrap();
        symlink(&elsewhere, root.path().join("p/retour")).unwrap();
        let dir = SafeDir::open(root.path()).unwrap();
        assert!(dir.sub("p/retour").is_err());
        assert!(dir.sub_create("p/retour").is_err());
        assert!(dir.sub("p/../p").is_err());
        let made = dir.sub_create("q/retour").unwrap();
        made.write("F.csv", b"x").unwrap();
        assert_eq!(mode_of(&root.path().join("q/retour")), 0o700);
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    }

    #[test]
    fn reads_take_regular_files_only() {
        let root = tempfile::tempdir().unwrap();
        let d = root.path();
        std::fs::write(d.join("ok.csv"), "a").unwrap();
        std::fs::write(root.path().join("target"), "secret").unwrap();
        symlink(d.join("target"), d.join("link.csv")).unwrap();
        let fifo = std::process::Command::new("mkfifo")
            .arg(d.join("X.sha256"))
            .status()
            .unwrap();
        assert!(fifo.success());
        std::fs::hard_link(d.join("target"), d.join("hard.csv")).unwrap();
        let dir = SafeDir::open(d).unwrap();
        let mut s = String::new();
        dir.open_file("ok.csv")
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "a");
        for bad in ["link.csv", "X.sha256", "hard.csv"] {
            let e = dir.open_file(bad).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}: {e}");
            assert!(open_regular(&d.join(bad)).is_err(), "{bad}");
        }
        assert!(!dir.is_file("X.sha256").unwrap());
        assert!(!dir.is_file("link.csv").unwrap());
        assert!(dir.is_file("ok.csv").unwrap());
    }

    #[test]
    fn listing_sets_odd_entries_apart() {
        let root = tempfile::tempdir().unwrap();
        let d = root.path();
        std::fs::write(d.join("B.xml"), "").unwrap();
        std::fs::write(d.join("A.xml"), "").unwrap();
        std::fs::write(d.join("a\"b.xml"), "").unwrap();
        std::fs::write(d.join(OsStr::from_bytes(b"caf\xe9.xml")), "").unwrap();
        std::fs::create_dir(d.join("traites")).unwrap();
        symlink("/etc/passwd", d.join("L.xml")).unwrap();
        let l = SafeDir::open(d).unwrap().list().unwrap();
        assert_eq!(l.files, ["A.xml", "B.xml"]);
        let shown: Vec<(&str, OddReason)> =
            l.odd.iter().map(|o| (o.shown.as_str(), o.reason)).collect();
        assert_eq!(
            shown,
            [
                ("L.xml", OddReason::Link),
                ("a\"b.xml", OddReason::Name(NameError::Unquotable)),
                ("caf\\xe9.xml", OddReason::Name(NameError::NotUtf8)),
            ]
        );
        // Set aside under a name that can be represented.
        let aside = SafeDir::open(d).unwrap().sub_create("refuses").unwrap();
        let moved = SafeDir::open(d)
            .unwrap()
            .move_aside(&l.odd[2].raw, &aside)
            .unwrap();
        assert!(moved.starts_with("refuse-"), "{moved}");
        assert!(aside.is_file(&moved).unwrap());
    }

    #[test]
    fn names() {
        assert!(check_name("BRSA_LISTE_059_CD059_20261121230000.csv").is_ok());
        for (bad, why) in [
            ("", NameError::Empty),
            ("..", NameError::Empty),
            ("a\0b", NameError::Control),
            ("a\nb", NameError::Control),
            ("a*b", NameError::Unquotable),
            ("a\\b", NameError::Unquotable),
            ("a[1]", NameError::Unquotable),
            ("caf\u{FFFD}", NameError::NotUtf8),
        ] {
            assert_eq!(check_name(bad), Err(why), "{bad:?}");
        }
        assert_eq!(check_name(&"x".repeat(256)), Err(NameError::TooLong));
        assert_eq!(shown_name(OsStr::from_bytes(b"a\nb\\")), "a\\x0ab\\x5c");
    }

    #[test]
    fn private_files_and_folders() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data/dir");
        private_dir(&data).unwrap();
        assert_eq!(mode_of(&data), 0o700);
        let db = data.join("state.sqlite");
        private_file(&db).unwrap();
        assert_eq!(mode_of(&db), 0o600);
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(&db, "kept").unwrap();
        private_file(&db).unwrap();
        assert_eq!(mode_of(&db), 0o600);
        assert_eq!(std::fs::read_to_string(&db).unwrap(), "kept");
        symlink("/etc/passwd", data.join("link.sqlite")).unwrap();
        assert!(private_file(&data.join("link.sqlite")).is_err());
        write_file(&data.join("w.json"), b"{}").unwrap();
        assert_eq!(mode_of(&data.join("w.json")), 0o600);
    }
}
