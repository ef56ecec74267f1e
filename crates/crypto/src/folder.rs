//! Keys in a folder: one file per organisation, plus the hub's pseudonym and anchor
//! keys. Two ways of using one: the data directory's own `keyring/` folder (the
//! one-machine layout, created on first use), and a shared folder mounted on every hub
//! instance (read-only for the hub, written only by `passerelle keys`).
//!
//! Files are created with mode 0600 in a 0700 folder, written to a temporary file and
//! renamed (a crash never leaves half a keyring, and a reader on another instance sees
//! the old file or the new one), under an exclusive lock (two `keys rotate` at once
//! never lose a key). A private folder's files are refused when group or others can
//! read them or another user owns them. A shared folder is usually a mounted secret
//! (owned by root, group-readable, the folder itself a 1777 tmpfs): there only the
//! files are checked, and refused when others (not the owner, not the group) can read
//! them. Key bytes live in zeroized buffers and no `Debug` prints them.
//!
//! Known limit: the key bytes are stored in clear in those files; the PostgreSQL
//! store (crate `passerelle-keystore`) wraps them under a master key instead.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::anchor::AnchorKey;
use crate::error::CryptoError;
use crate::key::{Kek, OrgKeys};
use crate::pseudonym::PseudonymKey;
use crate::store::KeyStore;

const ORG_FORMAT: &str = "passerelle.keyring/1";
const PSEUDONYM_FORMAT: &str = "passerelle.pseudonym-key/1";
const PSEUDONYM_FILE: &str = "pseudonym.key.json";
const ANCHOR_FORMAT: &str = "passerelle.anchor-key/1";
const ANCHOR_FILE: &str = "anchor.key.json";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrgFile {
    format: String,
    org: String,
    keys: Vec<StoredKey>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredKey {
    id: String,
    created: DateTime<Utc>,
    /// Hex of the 32 key bytes.
    key: String,
}

impl Drop for StoredKey {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PseudonymFile {
    format: String,
    key: String,
}

impl Drop for PseudonymFile {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

/// Who may have put the folder there, and so what its permissions must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// The data directory's own keyring: owner-only, this user's.
    Private,
    /// A folder mounted on every instance: not world-readable.
    Shared,
}

/// A folder of keys.
#[derive(Debug, Clone)]
pub struct FolderStore {
    dir: PathBuf,
    access: Access,
}

impl std::fmt::Display for FolderStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.access {
            Access::Private => write!(f, "keyring folder {}", self.dir.display()),
            Access::Shared => write!(f, "shared key folder {}", self.dir.display()),
        }
    }
}

/// Organisation codes become file names: keep them to a safe alphabet.
pub(crate) fn check_org(org: &str) -> Result<(), CryptoError> {
    let ok = !org.is_empty()
        && org.len() <= 64
        && org
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(CryptoError::keyring(
            PathBuf::from(org),
            "organisation code must be 1 to 64 letters, digits, `-` or `_`",
        ))
    }
}

/// The effective uid of this process, read from `/proc/self` (no libc needed).
fn own_uid() -> Option<u32> {
    fs::metadata("/proc/self").ok().map(|m| m.uid())
}

fn check_shared(path: &Path, meta: &fs::Metadata) -> Result<(), CryptoError> {
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o007 != 0 {
        return Err(CryptoError::keyring(
            path,
            format!(
                "permissions {mode:o} let any user read it, expected 0600 or 0640 (owner, or the hub's group)"
            ),
        ));
    }
    Ok(())
}

fn check_private(path: &Path, meta: &fs::Metadata) -> Result<(), CryptoError> {
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(CryptoError::keyring(
            path,
            format!(
                "permissions {mode:o} let others read it, expected owner-only (0600 files, 0700 folder)"
            ),
        ));
    }
    if let Some(uid) = own_uid()
        && meta.uid() != uid
    {
        return Err(CryptoError::keyring(path, "owned by another user"));
    }
    Ok(())
}

/// serde_json's messages can quote a value, which here could be key material: keep
/// only the position and the category of the error.
fn not_json(what: &str, e: &serde_json::Error) -> String {
    format!(
        "{what} ({:?} error at line {}, column {})",
        e.classify(),
        e.line(),
        e.column()
    )
}

fn decode_key(path: &Path, hex_key: &str) -> Result<[u8; 32], CryptoError> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(hex_key, &mut bytes)
        .map_err(|_| CryptoError::keyring(path, "a key is not 64 hex characters"))?;
    Ok(bytes)
}

impl FolderStore {
    /// Opens (creating it owner-only if missing) a data directory's keyring folder.
    pub fn private(dir: impl Into<PathBuf>) -> Result<FolderStore, CryptoError> {
        let dir = dir.into();
        match fs::metadata(&dir) {
            Ok(meta) => {
                if !meta.is_dir() {
                    return Err(CryptoError::keyring(&dir, "is not a folder"));
                }
                check_private(&dir, &meta)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Created 0700 from the start: no window in which others may list it.
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&dir)
                    .map_err(|e| CryptoError::io(&dir, e))?;
                // The umask may have narrowed the mode further; set it exactly.
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
                    .map_err(|e| CryptoError::io(&dir, e))?;
            }
            Err(e) => return Err(CryptoError::io(&dir, e)),
        }
        Ok(FolderStore {
            dir,
            access: Access::Private,
        })
    }

    /// Opens a folder mounted on every instance; it must exist (nothing is created:
    /// a wrong path is refused, not filled).
    pub fn shared(dir: impl Into<PathBuf>) -> Result<FolderStore, CryptoError> {
        let dir = dir.into();
        match fs::metadata(&dir) {
            Ok(meta) if meta.is_dir() => Ok(FolderStore {
                dir,
                access: Access::Shared,
            }),
            Ok(_) => Err(CryptoError::keyring(&dir, "is not a folder")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(CryptoError::keyring(
                &dir,
                "does not exist (mount the shared key folder, or create it with `passerelle keys generate`)",
            )),
            Err(e) => Err(CryptoError::io(&dir, e)),
        }
    }

    /// Creates the shared folder (0700) if it is missing, for `passerelle keys` run
    /// where the folder is prepared before it is mounted.
    pub fn shared_for_writing(dir: impl Into<PathBuf>) -> Result<FolderStore, CryptoError> {
        let dir = dir.into();
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| CryptoError::io(&dir, e))?;
        }
        Self::shared(dir)
    }

    fn check(&self, path: &Path, meta: &fs::Metadata) -> Result<(), CryptoError> {
        match self.access {
            Access::Private => check_private(path, meta),
            Access::Shared => check_shared(path, meta),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn org_path(&self, org: &str) -> PathBuf {
        self.dir.join(format!("{org}.keys.json"))
    }

    /// Holds an exclusive lock on the organisation's lock file while `f` runs.
    fn locked<T>(
        &self,
        name: &str,
        f: impl FnOnce() -> Result<T, CryptoError>,
    ) -> Result<T, CryptoError> {
        let path = self.dir.join(format!("{name}.lock"));
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| CryptoError::io(&path, e))?;
        lock.lock().map_err(|e| CryptoError::io(&path, e))?;
        let out = f();
        // Dropping the file releases the lock too; unlock explicitly to say so.
        let _ = lock.unlock();
        out
    }

    /// Reads a private file into a zeroized buffer.
    fn read_private(&self, path: &Path) -> Result<Option<Zeroizing<Vec<u8>>>, CryptoError> {
        let mut file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(CryptoError::io(path, e)),
        };
        let meta = file.metadata().map_err(|e| CryptoError::io(path, e))?;
        self.check(path, &meta)?;
        let mut buf = Zeroizing::new(Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0)));
        file.read_to_end(&mut buf)
            .map_err(|e| CryptoError::io(path, e))?;
        Ok(Some(buf))
    }

    /// Writes a private file atomically: temporary file 0600, fsync, rename.
    fn write_private(&self, path: &Path, bytes: &[u8]) -> Result<(), CryptoError> {
        let tmp = path.with_extension("json.tmp");
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(CryptoError::io(&tmp, e)),
        }
        let mut file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| CryptoError::io(&tmp, e))?;
        file.write_all(bytes)
            .map_err(|e| CryptoError::io(&tmp, e))?;
        file.sync_all().map_err(|e| CryptoError::io(&tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| CryptoError::io(path, e))?;
        if let Ok(dir) = File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    fn load(&self, org: &str) -> Result<Option<OrgKeys>, CryptoError> {
        let path = self.org_path(org);
        let Some(buf) = self.read_private(&path)? else {
            return Ok(None);
        };
        let file: OrgFile = serde_json::from_slice(&buf)
            .map_err(|e| CryptoError::keyring(&path, not_json("not a keyring file", &e)))?;
        if file.format != ORG_FORMAT {
            return Err(CryptoError::keyring(
                &path,
                format!("unknown format, expected {ORG_FORMAT}"),
            ));
        }
        if file.org != org {
            return Err(CryptoError::keyring(
                &path,
                "file names another organisation",
            ));
        }
        let mut keys = Vec::with_capacity(file.keys.len());
        for k in &file.keys {
            keys.push(Kek::from_bytes(
                k.id.clone(),
                k.created,
                decode_key(&path, &k.key)?,
            ));
        }
        OrgKeys::new(org, keys)
            .map(Some)
            .ok_or_else(|| CryptoError::keyring(&path, "holds no key"))
    }

    fn store(&self, keys: &OrgKeys) -> Result<(), CryptoError> {
        let file = OrgFile {
            format: ORG_FORMAT.to_owned(),
            org: keys.org().to_owned(),
            keys: keys
                .keys()
                .iter()
                .map(|k| StoredKey {
                    id: k.id().to_owned(),
                    created: k.created(),
                    key: hex::encode(k.bytes()),
                })
                .collect(),
        };
        let bytes = Zeroizing::new(
            serde_json::to_vec_pretty(&file)
                .map_err(|e| CryptoError::keyring(self.org_path(keys.org()), e.to_string()))?,
        );
        self.write_private(&self.org_path(keys.org()), &bytes)
    }

    /// The organisations that have keys, sorted.
    fn list_orgs(&self) -> Result<Vec<String>, CryptoError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(|e| CryptoError::io(&self.dir, e))? {
            let entry = entry.map_err(|e| CryptoError::io(&self.dir, e))?;
            if let Some(org) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".keys.json"))
            {
                out.push(org.to_owned());
            }
        }
        out.sort();
        Ok(out)
    }

    /// Opens a data directory's keyring folder only if it exists, creating nothing:
    /// for commands that read state, so that a wrong folder is refused instead of filled.
    pub fn private_existing(dir: impl Into<PathBuf>) -> Result<FolderStore, CryptoError> {
        let dir = dir.into();
        match fs::metadata(&dir) {
            Ok(meta) if meta.is_dir() => {
                check_private(&dir, &meta)?;
                Ok(FolderStore {
                    dir,
                    access: Access::Private,
                })
            }
            Ok(_) => Err(CryptoError::keyring(&dir, "is not a folder")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(CryptoError::keyring(
                &dir,
                "does not exist (no hub has run with this data folder)",
            )),
            Err(e) => Err(CryptoError::io(&dir, e)),
        }
    }

    /// Reads one of the hub's own 32-byte keys; `None` when its file is missing.
    fn read_hub_key(&self, file: &str, format: &str) -> Result<Option<[u8; 32]>, CryptoError> {
        let path = self.dir.join(file);
        let Some(buf) = self.read_private(&path)? else {
            return Ok(None);
        };
        let stored: PseudonymFile = serde_json::from_slice(&buf)
            .map_err(|e| CryptoError::keyring(&path, not_json("not a key file", &e)))?;
        if stored.format != format {
            return Err(CryptoError::keyring(
                &path,
                format!("unknown format, expected {format}"),
            ));
        }
        decode_key(&path, &stored.key).map(Some)
    }

    /// Reads one of the hub's keys, or stores `fresh` as it (under the lock, so two
    /// processes starting at once agree on one key); says whether it stored it.
    fn hub_key(
        &self,
        file: &str,
        format: &str,
        fresh: impl FnOnce() -> Zeroizing<[u8; 32]>,
    ) -> Result<([u8; 32], bool), CryptoError> {
        let name = file.trim_end_matches(".key.json").to_owned();
        self.locked(&name, || {
            if let Some(k) = self.read_hub_key(file, format)? {
                return Ok((k, false));
            }
            let key = fresh();
            let stored = PseudonymFile {
                format: format.to_owned(),
                key: hex::encode(key.as_ref()),
            };
            let path = self.dir.join(file);
            let bytes = Zeroizing::new(
                serde_json::to_vec_pretty(&stored)
                    .map_err(|e| CryptoError::keyring(&path, e.to_string()))?,
            );
            self.write_private(&path, &bytes)?;
            Ok((*key, true))
        })
    }

    /// The hub's pseudonym key, read only (no lock file, no key created): an error
    /// naming the file when it is missing.
    pub(crate) fn existing_pseudonym_key(&self) -> Result<PseudonymKey, CryptoError> {
        let path = self.dir.join(PSEUDONYM_FILE);
        self.read_hub_key(PSEUDONYM_FILE, PSEUDONYM_FORMAT)?
            .map(PseudonymKey::from_bytes)
            .ok_or_else(|| CryptoError::keyring(path, "no pseudonym key (the hub never ran here)"))
    }

    /// The hub's Ed25519 anchor key, created on first use.
    pub(crate) fn anchor_key(&self) -> Result<AnchorKey, CryptoError> {
        let (bytes, _) = self.hub_key(ANCHOR_FILE, ANCHOR_FORMAT, || {
            AnchorKey::generate().expose_bytes()
        })?;
        Ok(AnchorKey::from_bytes(bytes))
    }

    /// The hub's anchor key if it exists, read only (nothing created).
    pub(crate) fn existing_anchor_key(&self) -> Result<Option<AnchorKey>, CryptoError> {
        Ok(self
            .read_hub_key(ANCHOR_FILE, ANCHOR_FORMAT)?
            .map(AnchorKey::from_bytes))
    }
}

impl KeyStore for FolderStore {
    fn load_org(&self, org: &str) -> Result<Option<OrgKeys>, CryptoError> {
        check_org(org)?;
        self.load(org)
    }

    fn load_pseudonym(&self) -> Result<Option<PseudonymKey>, CryptoError> {
        Ok(self
            .read_hub_key(PSEUDONYM_FILE, PSEUDONYM_FORMAT)?
            .map(PseudonymKey::from_bytes))
    }

    fn orgs(&self) -> Result<Vec<String>, CryptoError> {
        self.list_orgs()
    }

    fn update_org(
        &self,
        org: &str,
        change: &mut (dyn FnMut(Option<OrgKeys>) -> Result<OrgKeys, CryptoError> + Send),
    ) -> Result<OrgKeys, CryptoError> {
        check_org(org)?;
        self.locked(org, || {
            let keys = change(self.load(org)?)?;
            self.store(&keys)?;
            Ok(keys)
        })
    }

    fn init_pseudonym(&self, fresh: PseudonymKey) -> Result<(PseudonymKey, bool), CryptoError> {
        let (bytes, created) = self.hub_key(PSEUDONYM_FILE, PSEUDONYM_FORMAT, || {
            Zeroizing::new(*fresh.expose_bytes())
        })?;
        Ok((PseudonymKey::from_bytes(bytes), created))
    }
}
