//! `FileSeenStore`: a `SeenStore` whose done keys survive a restart, so that a webhook
//! replayed after the hub restarted is still known (it was accepted again when the
//! store was in memory).
//!
//! One append-only file of `<unix seconds> <hex sha-256 of the key>` lines, synced on
//! each completion; keys are digested so that a peer's event id, whatever it holds,
//! never lands in the file as given and can never break a line. Reservations stay in
//! memory only: a crash never leaves a key held. Opening drops the entries older than
//! the retention and rewrites the file (0600, never through a link). Event ids only
//! need to outlive the webhook's timestamp window; the retention (90 days by default)
//! keeps decision keys too, far beyond any platform's retry.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::intake::{Reservation, SeenStore, SeenStoreError};

/// How long done keys are kept by default.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);

type Key = [u8; 32];

fn key_of(key: &str) -> Key {
    Sha256::digest(key.as_bytes()).into()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[derive(Debug)]
struct Inner {
    done: HashMap<Key, i64>,
    in_flight: HashSet<Key>,
    file: File,
}

/// A durable `SeenStore` in one file (see the module doc).
#[derive(Debug)]
pub struct FileSeenStore {
    path: PathBuf,
    inner: Mutex<Inner>,
}

fn io_error(path: &Path, e: std::io::Error) -> SeenStoreError {
    SeenStoreError(format!("{}: {e}", path.display()))
}

impl FileSeenStore {
    /// Opens (or creates) the store at `path` with the default retention.
    pub fn open(path: &Path) -> Result<Self, SeenStoreError> {
        Self::open_with(path, DEFAULT_RETENTION)
    }

    /// Opens the store, forgetting keys done more than `retention` ago.
    pub fn open_with(path: &Path, retention: Duration) -> Result<Self, SeenStoreError> {
        use passerelle_connector::safe_fs;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            safe_fs::private_dir(dir).map_err(|e| io_error(dir, e))?;
        }
        safe_fs::private_file(path).map_err(|e| io_error(path, e))?;
        let oldest = now() - retention.as_secs() as i64;
        let mut done = HashMap::new();
        let mut dropped = false;
        let reader = BufReader::new(safe_fs::open_regular(path).map_err(|e| io_error(path, e))?);
        for line in reader.lines() {
            let line = line.map_err(|e| io_error(path, e))?;
            // A line cut by a crash (or anything else) is skipped, not fatal.
            let Some((at, hex_key)) = line.split_once(' ') else {
                dropped = true;
                continue;
            };
            let (Ok(at), Ok(bytes)) = (at.parse::<i64>(), hex::decode(hex_key)) else {
                dropped = true;
                continue;
            };
            let Ok(key) = Key::try_from(bytes.as_slice()) else {
                dropped = true;
                continue;
            };
            if at < oldest {
                dropped = true;
                continue;
            }
            done.insert(key, at);
        }
        if dropped {
            let mut text = String::with_capacity(done.len() * 76);
            for (key, at) in &done {
                text.push_str(&format!("{at} {}\n", hex::encode(key)));
            }
            safe_fs::write_file(path, text.as_bytes()).map_err(|e| io_error(path, e))?;
        }
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| io_error(path, e))?;
        Ok(Self {
            path: path.to_owned(),
            inner: Mutex::new(Inner {
                done,
                in_flight: HashSet::new(),
                file,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the maps whole (single inserts).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many keys are done.
    pub fn done_count(&self) -> usize {
        self.lock().done.len()
    }

    /// Whether a key is done.
    pub fn is_done(&self, key: &str) -> bool {
        self.lock().done.contains_key(&key_of(key))
    }
}

#[async_trait]
impl SeenStore for FileSeenStore {
    async fn reserve(&self, key: &str) -> Result<Reservation, SeenStoreError> {
        let k = key_of(key);
        let mut inner = self.lock();
        Ok(if inner.done.contains_key(&k) {
            Reservation::Done
        } else if !inner.in_flight.insert(k) {
            Reservation::InFlight
        } else {
            Reservation::Fresh
        })
    }

    async fn complete(&self, key: &str) -> Result<(), SeenStoreError> {
        let k = key_of(key);
        let at = now();
        let mut inner = self.lock();
        if !inner.done.contains_key(&k) {
            let line = format!("{at} {}\n", hex::encode(k));
            // Durable before the caller answers 200: a replay after a crash is known.
            inner
                .file
                .write_all(line.as_bytes())
                .and_then(|()| inner.file.sync_data())
                .map_err(|e| io_error(&self.path, e))?;
            inner.done.insert(k, at);
        }
        inner.in_flight.remove(&k);
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), SeenStoreError> {
        self.lock().in_flight.remove(&key_of(key));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn done_keys_survive_reopening_and_old_ones_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("faj/seen.log");
        {
            let s = FileSeenStore::open(&path).unwrap();
            assert_eq!(s.reserve("evenement:E1").await.unwrap(), Reservation::Fresh);
            assert_eq!(
                s.reserve("evenement:E1").await.unwrap(),
                Reservation::InFlight
            );
            s.complete("evenement:E1").await.unwrap();
            assert_eq!(
                s.reserve("evenement:E2\nforged").await.unwrap(),
                Reservation::Fresh
            );
            // Held when the process dies: not remembered.
        }
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("E1") && text.lines().count() == 1, "{text}");
        let s = FileSeenStore::open(&path).unwrap();
        assert_eq!(s.reserve("evenement:E1").await.unwrap(), Reservation::Done);
        assert_eq!(
            s.reserve("evenement:E2\nforged").await.unwrap(),
            Reservation::Fresh
        );
        drop(s);
        // A torn line and an old entry are dropped on opening.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        writeln!(f, "12 {}", hex::encode(key_of("old"))).unwrap();
        write!(f, "99 zz").unwrap();
        drop(f);
        let s = FileSeenStore::open(&path).unwrap();
        assert_eq!(s.done_count(), 1);
        assert!(s.is_done("evenement:E1") && !s.is_done("old"));
    }
}
