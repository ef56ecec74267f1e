//! Durable `SeenStore`s, so that a webhook replayed after the hub restarted is still
//! known (it was accepted again when the store was in memory): [`PeerSeenStore`] in a
//! `PeerStore` (the hub's state: on PostgreSQL, an event done by one instance is done
//! for all), and [`FileSeenStore`] in a file (below).
//!
//! `FileSeenStore`://!
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

use std::sync::Arc;

use async_trait::async_trait;
use passerelle_connector::PeerStore;
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

/// How long a reservation in a [`PeerSeenStore`] holds a key: another instance takes a
/// key over when the instance that reserved it died before completing or releasing
/// it. Handing a decision on takes seconds; the platform retries a webhook answered
/// `Busy` later, and reconciliation finds the decision again.
pub const PEER_LEASE: Duration = Duration::from_secs(300);

const DONE: &str = "done";

/// The namespace of a platform's done keys in a `PeerStore`.
pub fn seen_namespace(platform: &str) -> String {
    format!("faj/seen/{platform}")
}

/// A `SeenStore` in a `PeerStore`, shared by every hub instance on it. Each key is kept
/// as the hex SHA-256 of the event id or decision key (never as given), its value
/// `done`, or `held <unix seconds> <token>` while an instance hands it on: reserving
/// is an `insert_if_absent`, so of two instances offered the same event at once one
/// gets `Fresh` and the other `InFlight`. A hold older than [`PEER_LEASE`] (its
/// instance died) is taken over by removing exactly that hold first, so that only one
/// instance takes it. Done keys are forgotten after the retention.
#[derive(Debug)]
pub struct PeerSeenStore {
    store: Arc<dyn PeerStore>,
    namespace: String,
    /// The holds this handle placed, by digest: only those are released.
    held: Mutex<HashMap<String, String>>,
    lease: Duration,
}

impl PeerSeenStore {
    /// The done keys of `platform` in `store`, forgetting those older than the
    /// retention. A seen-store file an earlier hub kept (`old_file`, the
    /// `FileSeenStore` format) is moved in once: its keys become done here, then it is
    /// renamed `….migrated`.
    pub async fn open(
        store: Arc<dyn PeerStore>,
        platform: &str,
        old_file: Option<&Path>,
    ) -> Result<Self, SeenStoreError> {
        let namespace = seen_namespace(platform);
        let failed = |e: passerelle_connector::PeerStoreError| SeenStoreError(e.to_string());
        if let Some(path) = old_file.filter(|p| p.exists()) {
            let file = FileSeenStore::open_with(path, DEFAULT_RETENTION)?;
            let keys: Vec<Key> = file.lock().done.keys().copied().collect();
            drop(file);
            for k in keys {
                store
                    .insert_if_absent(&namespace, &hex::encode(k), DONE)
                    .await
                    .map_err(failed)?;
            }
            let mut to = path.as_os_str().to_owned();
            to.push(".migrated");
            match std::fs::rename(path, PathBuf::from(to)) {
                // Another instance moved it first.
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io_error(path, e));
                }
                _ => {}
            }
        }
        let oldest =
            chrono::Utc::now() - chrono::Duration::seconds(DEFAULT_RETENTION.as_secs() as i64);
        store
            .delete_older_than(&namespace, oldest)
            .await
            .map_err(failed)?;
        Ok(Self {
            store,
            namespace,
            held: Mutex::new(HashMap::new()),
            lease: PEER_LEASE,
        })
    }

    /// The same with another lease (tests).
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        // Single inserts and removes: a panic leaves the map whole.
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a key is done.
    pub async fn is_done(&self, key: &str) -> Result<bool, SeenStoreError> {
        let v = self
            .store
            .get(&self.namespace, &hex::encode(key_of(key)))
            .await
            .map_err(|e| SeenStoreError(e.to_string()))?;
        Ok(v.as_deref() == Some(DONE))
    }
}

/// Whether a hold placed at `value` is older than `lease`.
fn stale(value: &str, lease: Duration) -> bool {
    let at = value
        .strip_prefix("held ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|t| t.parse::<i64>().ok());
    // A value that does not read is nobody's live hold.
    at.is_none_or(|at| now() - at > lease.as_secs() as i64)
}

#[async_trait]
impl SeenStore for PeerSeenStore {
    async fn reserve(&self, key: &str) -> Result<Reservation, SeenStoreError> {
        let failed = |e: passerelle_connector::PeerStoreError| SeenStoreError(e.to_string());
        let k = hex::encode(key_of(key));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let hold = format!("held {} {:x}{nanos:08x}", now(), std::process::id());
        // A few rounds: a key removed or taken over between two steps is looked at again.
        for _ in 0..4 {
            if self
                .store
                .insert_if_absent(&self.namespace, &k, &hold)
                .await
                .map_err(failed)?
            {
                self.held().insert(k, hold);
                return Ok(Reservation::Fresh);
            }
            match self.store.get(&self.namespace, &k).await.map_err(failed)? {
                None => continue,
                Some(v) if v == DONE => return Ok(Reservation::Done),
                Some(v) if stale(&v, self.lease) => {
                    // Only the hold read is removed: of two instances taking it over,
                    // one removes it and inserts, the other's insert then fails.
                    self.store
                        .delete(&self.namespace, &k, Some(&v))
                        .await
                        .map_err(failed)?;
                }
                Some(_) => return Ok(Reservation::InFlight),
            }
        }
        Ok(Reservation::InFlight)
    }

    async fn complete(&self, key: &str) -> Result<(), SeenStoreError> {
        let k = hex::encode(key_of(key));
        // Durable before the caller answers 200: a replay to any instance is known.
        self.store
            .put(&self.namespace, &k, DONE)
            .await
            .map_err(|e| SeenStoreError(e.to_string()))?;
        self.held().remove(&k);
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), SeenStoreError> {
        let k = hex::encode(key_of(key));
        let hold = self.held().remove(&k);
        if let Some(hold) = hold {
            // Only our own hold: another instance may have taken the key over since.
            self.store
                .delete(&self.namespace, &k, Some(&hold))
                .await
                .map_err(|e| SeenStoreError(e.to_string()))?;
        }
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

    #[tokio::test]
    async fn peer_store_reserves_once_takes_the_old_file_in_and_keeps_digests() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("faj-seen-FAJ059.log");
        {
            let s = FileSeenStore::open(&path).unwrap();
            s.reserve("evenement:E1").await.unwrap();
            s.complete("evenement:E1").await.unwrap();
        }
        let mem = Arc::new(passerelle_connector::MemoryPeerStore::new());
        let store: Arc<dyn PeerStore> = mem.clone();
        let a = PeerSeenStore::open(store.clone(), "FAJ059", Some(&path))
            .await
            .unwrap();
        assert!(!path.exists(), "the old file is moved in once");
        let b = PeerSeenStore::open(store.clone(), "FAJ059", Some(&path))
            .await
            .unwrap();
        // Done in the old file: done for both instances.
        assert_eq!(b.reserve("evenement:E1").await.unwrap(), Reservation::Done);
        assert_eq!(a.reserve("evenement:E2").await.unwrap(), Reservation::Fresh);
        assert_eq!(
            b.reserve("evenement:E2").await.unwrap(),
            Reservation::InFlight
        );
        // b's release does not drop a's hold.
        b.release("evenement:E2").await.unwrap();
        assert_eq!(
            b.reserve("evenement:E2").await.unwrap(),
            Reservation::InFlight
        );
        a.release("evenement:E2").await.unwrap();
        assert_eq!(b.reserve("evenement:E2").await.unwrap(), Reservation::Fresh);
        b.complete("evenement:E2").await.unwrap();
        assert_eq!(a.reserve("evenement:E2").await.unwrap(), Reservation::Done);
        assert!(a.is_done("evenement:E2").await.unwrap());
        // A dead instance's hold is taken over after the lease, by one instance only.
        assert_eq!(a.reserve("evenement:E3").await.unwrap(), Reservation::Fresh);
        let b = b.with_lease(Duration::ZERO);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let c = PeerSeenStore::open(store, "FAJ059", None).await.unwrap();
        assert_eq!(b.reserve("evenement:E3").await.unwrap(), Reservation::Fresh);
        // b's hold is young: nobody else takes it.
        assert_eq!(
            c.reserve("evenement:E3").await.unwrap(),
            Reservation::InFlight
        );
        // a, back too late, cannot release b's hold.
        a.release("evenement:E3").await.unwrap();
        assert_eq!(
            c.reserve("evenement:E3").await.unwrap(),
            Reservation::InFlight
        );
        // Keys are digests; values a stage and a time: nothing as the peer gave it.
        let held = mem.list(&seen_namespace("FAJ059"), "").await.unwrap();
        assert!(held.len() >= 3);
        for (k, v) in held {
            assert!(
                k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit()),
                "{k}"
            );
            assert!(!v.contains("E1") && !v.contains("E3"), "{v}");
        }
    }
}
