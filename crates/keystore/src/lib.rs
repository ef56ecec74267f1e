//! Where hub instances load their keys from: the `[keys]` section of `passerelle.toml`
//! ([`KeysConfig`]: `folder`, the one-machine default; `shared-folder`; `postgres`)
//! and the PostgreSQL key store ([`PgKeyStore`]).
//!
//! A crate of its own so that `passerelle-crypto` stays free of any database driver;
//! the folder stores and the master key's wrapping live there, the SQL here.
//!
//! Invariant: with a shared store (`shared-folder`, `postgres`) the hub never
//! generates a key; only `passerelle keys`, opened with [`KeysConfig::open_for_writing`],
//! writes to the store.

pub mod postgres;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use passerelle_crypto::{CryptoError, FolderStore, Keyring, MasterKey, OrgKeys};
use serde::Deserialize;

pub use postgres::PgKeyStore;

/// Which store holds the organisation keys and the pseudonym key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoreKind {
    /// `<data-dir>/keyring`, missing keys created on first use (one machine).
    #[default]
    Folder,
    /// A folder mounted read-only on every instance (`path`).
    SharedFolder,
    /// PostgreSQL (`url`), each key wrapped under a master key given to each instance.
    Postgres,
}

/// `[keys]`: where the keys come from. The master key itself is never here: only
/// the file or the environment variable that holds it.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    #[serde(default)]
    pub store: StoreKind,
    /// `shared-folder`: the folder mounted on every instance.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// `postgres`: `postgres://…`; `PASSERELLE_KEYS_URL` overrides it (keep
    /// passwords there).
    #[serde(default)]
    pub url: Option<String>,
    /// `postgres`: a file holding the master key (64 hex characters, 0600 or 0640).
    #[serde(default)]
    pub master_key_file: Option<PathBuf>,
    /// `postgres`: the environment variable holding the master key.
    #[serde(default)]
    pub master_key_env: Option<String>,
}

impl fmt::Debug for KeysConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password.
        f.debug_struct("KeysConfig")
            .field("store", &self.store)
            .field("path", &self.path)
            .field("url", &self.url.as_ref().map(|_| "<set>"))
            .field("master_key_file", &self.master_key_file)
            .field("master_key_env", &self.master_key_env)
            .finish()
    }
}

/// A `[keys]` section that cannot work; names the setting, never a value.
#[derive(Debug, thiserror::Error)]
#[error("keys.{setting}: {reason}")]
pub struct KeysConfigError {
    pub setting: &'static str,
    pub reason: String,
}

fn refuse(setting: &'static str, reason: impl Into<String>) -> KeysConfigError {
    KeysConfigError {
        setting,
        reason: reason.into(),
    }
}

impl KeysConfig {
    /// `PASSERELLE_KEYS_URL` overrides `url`.
    pub fn apply_env(&mut self) {
        if let Ok(url) = std::env::var("PASSERELLE_KEYS_URL") {
            self.url = Some(url);
        }
    }

    /// Whether several instances share the keys (and so never generate one).
    pub fn is_shared(&self) -> bool {
        self.store != StoreKind::Folder
    }

    /// Checks what can be checked without I/O.
    pub fn validate(&self) -> Result<(), KeysConfigError> {
        let only = |setting: &'static str, set: bool, kind: &str| {
            if set {
                Err(refuse(setting, format!("is only for store = \"{kind}\"")))
            } else {
                Ok(())
            }
        };
        let master = self.master_key_file.is_some() || self.master_key_env.is_some();
        match self.store {
            StoreKind::Folder => {
                only("path", self.path.is_some(), "shared-folder")?;
                only("url", self.url.is_some(), "postgres")?;
                only("master_key_file", master, "postgres")?;
            }
            StoreKind::SharedFolder => {
                if self.path.is_none() {
                    return Err(refuse(
                        "path",
                        "store = \"shared-folder\" needs the folder mounted on every instance",
                    ));
                }
                only("url", self.url.is_some(), "postgres")?;
                only("master_key_file", master, "postgres")?;
            }
            StoreKind::Postgres => {
                only("path", self.path.is_some(), "shared-folder")?;
                let Some(url) = &self.url else {
                    return Err(refuse(
                        "url",
                        "store = \"postgres\" needs url or PASSERELLE_KEYS_URL",
                    ));
                };
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    // The URL may hold a password: only its scheme is named.
                    let scheme = url.split(':').next().unwrap_or_default();
                    return Err(refuse("url", format!("`{scheme}:` is not `postgres://`")));
                }
                match (&self.master_key_file, &self.master_key_env) {
                    (Some(_), Some(_)) => {
                        return Err(refuse(
                            "master_key_file",
                            "give master_key_file or master_key_env, not both",
                        ));
                    }
                    (None, None) => {
                        return Err(refuse(
                            "master_key_file",
                            "store = \"postgres\" needs master_key_file or master_key_env (the master key itself is never in this file)",
                        ));
                    }
                    (None, Some(var)) if var.is_empty() => {
                        return Err(refuse("master_key_env", "is empty"));
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    fn master_key(&self) -> Result<MasterKey, CryptoError> {
        match (&self.master_key_file, &self.master_key_env) {
            (Some(path), _) => MasterKey::from_file(path),
            (None, Some(var)) => MasterKey::from_env(var),
            (None, None) => Err(CryptoError::MasterKey {
                reason: "keys.master_key_file or keys.master_key_env is not set".into(),
            }),
        }
    }

    fn postgres(&self) -> Result<PgKeyStore, CryptoError> {
        let url = self.url.as_deref().ok_or_else(|| {
            CryptoError::store("PostgreSQL", "keys.url or PASSERELLE_KEYS_URL is not set")
        })?;
        PgKeyStore::new(url, self.master_key()?)
    }

    /// The hub's keyring: `<data_dir>/keyring` for `folder`, else the shared store,
    /// read only and never generating. Reaches no server yet (the first load does).
    pub fn open(&self, data_dir: &Path) -> Result<Keyring, CryptoError> {
        match self.store {
            StoreKind::Folder => Keyring::open(data_dir),
            StoreKind::SharedFolder => {
                let path = self.shared_path()?;
                Keyring::shared(data_dir, Arc::new(FolderStore::shared(path)?))
            }
            StoreKind::Postgres => Keyring::shared(data_dir, Arc::new(self.postgres()?)),
        }
    }

    /// For commands that only read (`audit subject`, `receipts`): as [`open`](Self::open),
    /// creating nothing in `data_dir`, which must hold a keyring folder.
    pub fn open_existing(&self, data_dir: &Path) -> Result<Keyring, CryptoError> {
        match self.store {
            StoreKind::Folder => Keyring::open_existing(data_dir),
            StoreKind::SharedFolder => {
                let path = self.shared_path()?;
                Keyring::shared_existing(data_dir, Arc::new(FolderStore::shared(path)?))
            }
            StoreKind::Postgres => Keyring::shared_existing(data_dir, Arc::new(self.postgres()?)),
        }
    }

    /// `passerelle keys`' keyring: the same store, which it may write (a shared folder
    /// is created if missing, a PostgreSQL table on the first key).
    pub fn open_for_writing(&self, data_dir: &Path) -> Result<Keyring, CryptoError> {
        match self.store {
            StoreKind::SharedFolder => {
                let path = self.shared_path()?;
                Keyring::shared(data_dir, Arc::new(FolderStore::shared_for_writing(path)?))
            }
            _ => self.open(data_dir),
        }
    }

    fn shared_path(&self) -> Result<&Path, CryptoError> {
        self.path
            .as_deref()
            .ok_or_else(|| CryptoError::store("shared folder", "keys.path is not set"))
    }
}

/// What [`import`] copied: for each organisation, how many keys it added; whether
/// the pseudonym key was copied (`false`: the store already held that same key).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imported {
    pub orgs: Vec<(String, usize)>,
    pub pseudonym: bool,
}

/// Whether `held` is where `source` started: the same keys, in order.
fn is_prefix(held: &OrgKeys, source: &OrgKeys) -> bool {
    held.keys().len() <= source.keys().len()
        && held
            .keys()
            .iter()
            .zip(source.keys())
            .all(|(h, s)| h.id() == s.id() && h.expose_bytes() == s.expose_bytes())
}

/// For `passerelle keys import`: copies the organisation keys and the pseudonym key
/// of `from` (a one-machine keyring) into `into`'s store, so that a hub moving to
/// several instances keeps opening its envelopes and keeps its pseudonyms and blind
/// indexes. Refused, before anything of that organisation is written, where the
/// store already holds another history of keys or another pseudonym key.
pub fn import(from: &Keyring, into: &Keyring) -> Result<Imported, CryptoError> {
    let mut out = Imported::default();
    let store = into.to_string();
    if let Some(p) = from.store().load_pseudonym()?
        && let Some(held) = into.store().load_pseudonym()?
        && held != p
    {
        return Err(CryptoError::store(
            &store,
            "it holds another pseudonym key: importing would change every pseudonym and blind index",
        ));
    }
    for org in from.orgs()? {
        let source = from.open_for(&org)?;
        let mut added = 0;
        into.store().update_org(&org, &mut |held| match held {
            Some(held) if !is_prefix(&held, &source) => Err(CryptoError::store(
                &store,
                format!(
                    "it holds other keys for `{org}`: importing would mix two histories of its keys"
                ),
            )),
            held => {
                added = source.keys().len() - held.map_or(0, |h| h.keys().len());
                Ok(source.clone())
            }
        })?;
        out.orgs.push((org, added));
    }
    if let Some(p) = from.store().load_pseudonym()? {
        let (stored, created) = into.store().init_pseudonym(p.clone())?;
        if stored != p {
            return Err(CryptoError::store(
                &store,
                "it holds another pseudonym key: importing would change every pseudonym and blind index",
            ));
        }
        out.pseudonym = created;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<KeysConfig, String> {
        // As HubConfig reads it: the message without the quoted line.
        let c: KeysConfig = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }

    #[test]
    fn the_default_is_the_data_directory_folder() {
        let c = parse("").unwrap();
        assert_eq!(c.store, StoreKind::Folder);
        assert!(!c.is_shared());
        let dir = tempfile::tempdir().unwrap();
        let ring = c.open(dir.path()).unwrap();
        assert!(ring.generates());
        assert_eq!(ring.dir(), dir.path().join("keyring"));
    }

    #[test]
    fn each_store_takes_its_own_settings_only() {
        let c = parse("store = \"shared-folder\"\npath = \"/run/passerelle/keys\"\n").unwrap();
        assert!(c.is_shared());
        let c = parse(
            "store = \"postgres\"\nurl = \"postgres://hub@db/passerelle\"\nmaster_key_env = \"PASSERELLE_MASTER_KEY\"\n",
        )
        .unwrap();
        assert_eq!(c.store, StoreKind::Postgres);

        for (text, expected) in [
            ("store = \"shared-folder\"\n", "keys.path"),
            ("path = \"/x\"\n", "only for store = \"shared-folder\""),
            ("store = \"postgres\"\nmaster_key_env = \"K\"\n", "keys.url"),
            (
                "store = \"postgres\"\nurl = \"postgres://db/p\"\n",
                "master_key_file or master_key_env",
            ),
            (
                "store = \"postgres\"\nurl = \"postgres://db/p\"\nmaster_key_env = \"K\"\nmaster_key_file = \"/k\"\n",
                "not both",
            ),
            (
                "store = \"postgres\"\nurl = \"mysql://u:secret@db/p\"\nmaster_key_env = \"K\"\n",
                "`mysql:`",
            ),
            ("store = \"vault\"\n", "unknown variant"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(expected), "{text}: {e}");
            assert!(!e.contains("secret"), "{e}");
        }
    }

    #[test]
    fn a_master_key_in_the_file_itself_is_refused_without_being_quoted() {
        let secret = "5e".repeat(32);
        let e = parse(&format!(
            "store = \"postgres\"\nurl = \"postgres://db/p\"\nmaster_key = \"{secret}\"\n"
        ))
        .unwrap_err();
        assert!(e.contains("master_key"), "{e}");
        assert!(!e.contains(&secret[..16]), "{e}");
    }

    #[test]
    fn a_shared_folder_that_is_not_mounted_is_refused_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("keys");
        let c = KeysConfig {
            store: StoreKind::SharedFolder,
            path: Some(missing.clone()),
            ..KeysConfig::default()
        };
        let e = c.open(&dir.path().join("data")).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        assert!(!missing.exists());
        // The keys command prepares it.
        let ring = c.open_for_writing(&dir.path().join("data")).unwrap();
        assert!(!ring.generates());
        ring.generate("CD059").unwrap();
        assert!(missing.join("CD059.keys.json").exists());
        assert_eq!(
            c.open(&dir.path().join("data")).unwrap().orgs().unwrap(),
            ["CD059"]
        );
    }
}
