//! `PeerStore`: the small durable memory connectors keep about their peers (which box
//! files were read, which transfers a box file carries, which FAJ events are done,
//! which transfer became which FAJ request, the numbers of SOLIS import files), so
//! that it can be shared by every hub instance instead of living in one process or
//! one data folder.
//!
//! Namespaced keys to small text values (ids, digests, stages and times: never a
//! personal value), with the operations the connectors need and no more: `get`,
//! `put`, `insert_if_absent` (one winner when several instances race), `list` by key
//! prefix, `delete` (optionally only if the value is still the one read),
//! `delete_older_than` (retention) and `next_in_sequence` (a number no two callers
//! ever get). The hub's state implements it on SQLite and PostgreSQL
//! (`passerelle_hub::HubState`); [`MemoryPeerStore`] is the in-process one; every
//! implementation runs [`crate::peer_conformance`].
//!
//! The box reads and writes its folders on blocking threads: [`BlockingPeerStore`]
//! is the store seen from there.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// The longest namespace, key and value a store takes, in bytes: values are small by
/// design (a stage, a digest, a file name, a time).
pub const MAX_NAMESPACE: usize = 128;
pub const MAX_KEY: usize = 512;
pub const MAX_VALUE: usize = 4096;

/// What went wrong, as the caller decides on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerStoreErrorKind {
    /// The store cannot be reached or failed now: try again later.
    Unavailable,
    /// The call itself is wrong (an empty namespace, a value too long).
    Invalid,
    /// The store holds something it cannot read.
    Corrupt,
}

/// An error of a `PeerStore`. Messages name namespaces and limits, never values.
#[derive(Debug, Clone, thiserror::Error)]
#[error("peer store: {message}")]
pub struct PeerStoreError {
    pub kind: PeerStoreErrorKind,
    pub message: String,
}

impl PeerStoreError {
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            kind: PeerStoreErrorKind::Unavailable,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            kind: PeerStoreErrorKind::Invalid,
            message: message.into(),
        }
    }

    pub fn corrupt(message: impl Into<String>) -> Self {
        Self {
            kind: PeerStoreErrorKind::Corrupt,
            message: message.into(),
        }
    }
}

impl From<PeerStoreError> for crate::ConnectorError {
    fn from(e: PeerStoreError) -> Self {
        match e.kind {
            PeerStoreErrorKind::Unavailable => crate::ConnectorError::Unavailable {
                peer: "peer store".to_owned(),
                reason: e.message,
                retry_after: None,
            },
            PeerStoreErrorKind::Invalid => crate::ConnectorError::Config(e.to_string()),
            PeerStoreErrorKind::Corrupt => crate::ConnectorError::Protocol {
                peer: "peer store".to_owned(),
                reason: e.message,
            },
        }
    }
}

/// Checks a namespace, a key and a value against the limits (every implementation
/// calls it, so that all refuse the same calls).
pub fn check(
    namespace: &str,
    key: Option<&str>,
    value: Option<&str>,
) -> Result<(), PeerStoreError> {
    if namespace.is_empty() || namespace.len() > MAX_NAMESPACE {
        return Err(PeerStoreError::invalid(format!(
            "a namespace is 1 to {MAX_NAMESPACE} bytes"
        )));
    }
    if let Some(k) = key
        && k.len() > MAX_KEY
    {
        return Err(PeerStoreError::invalid(format!(
            "a key in {namespace} is longer than {MAX_KEY} bytes"
        )));
    }
    if let Some(v) = value
        && v.len() > MAX_VALUE
    {
        return Err(PeerStoreError::invalid(format!(
            "a value in {namespace} is longer than {MAX_VALUE} bytes"
        )));
    }
    Ok(())
}

/// Durable, shared memory of the connectors (see the module doc). Every method is one
/// atomic step on the store: two instances calling at once see one order.
#[async_trait]
pub trait PeerStore: Send + Sync + std::fmt::Debug {
    /// The value under `key`.
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<String>, PeerStoreError>;
    /// Sets `key` to `value`, whatever it held; its time becomes now.
    async fn put(&self, namespace: &str, key: &str, value: &str) -> Result<(), PeerStoreError>;
    /// Sets `key` to `value` only when it holds nothing: `true` when this call did.
    /// Of several callers racing on one key, exactly one gets `true`.
    async fn insert_if_absent(
        &self,
        namespace: &str,
        key: &str,
        value: &str,
    ) -> Result<bool, PeerStoreError>;
    /// The entries whose key starts with `prefix` (taken literally), in key order.
    async fn list(
        &self,
        namespace: &str,
        prefix: &str,
    ) -> Result<Vec<(String, String)>, PeerStoreError>;
    /// Removes `key`; with `only_if`, only while it still holds that value. `true`
    /// when something was removed.
    async fn delete(
        &self,
        namespace: &str,
        key: &str,
        only_if: Option<&str>,
    ) -> Result<bool, PeerStoreError>;
    /// Removes the entries of `namespace` last put before `before`; how many.
    async fn delete_older_than(
        &self,
        namespace: &str,
        before: DateTime<Utc>,
    ) -> Result<u64, PeerStoreError>;
    /// The next number of `namespace`'s sequence: 1, then 2… Never the same number to
    /// two callers, whichever instance they run in.
    async fn next_in_sequence(&self, namespace: &str) -> Result<u64, PeerStoreError>;
}

type Entries = BTreeMap<(String, String), (String, DateTime<Utc>)>;

#[derive(Debug, Default)]
struct Memory {
    entries: Entries,
    sequences: BTreeMap<String, u64>,
}

/// A `PeerStore` in this process's memory (tests, simulators, a hub without state).
/// Clones share the same entries.
#[derive(Debug, Clone, Default)]
pub struct MemoryPeerStore {
    inner: Arc<Mutex<Memory>>,
}

impl MemoryPeerStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        // Every change is one insert or remove: a panic cannot leave one half done.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl PeerStore for MemoryPeerStore {
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<String>, PeerStoreError> {
        check(namespace, Some(key), None)?;
        let m = self.lock();
        Ok(m.entries
            .get(&(namespace.to_owned(), key.to_owned()))
            .map(|(v, _)| v.clone()))
    }

    async fn put(&self, namespace: &str, key: &str, value: &str) -> Result<(), PeerStoreError> {
        check(namespace, Some(key), Some(value))?;
        self.lock().entries.insert(
            (namespace.to_owned(), key.to_owned()),
            (value.to_owned(), Utc::now()),
        );
        Ok(())
    }

    async fn insert_if_absent(
        &self,
        namespace: &str,
        key: &str,
        value: &str,
    ) -> Result<bool, PeerStoreError> {
        check(namespace, Some(key), Some(value))?;
        let mut m = self.lock();
        let slot = m.entries.entry((namespace.to_owned(), key.to_owned()));
        Ok(match slot {
            std::collections::btree_map::Entry::Occupied(_) => false,
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert((value.to_owned(), Utc::now()));
                true
            }
        })
    }

    async fn list(
        &self,
        namespace: &str,
        prefix: &str,
    ) -> Result<Vec<(String, String)>, PeerStoreError> {
        check(namespace, Some(prefix), None)?;
        let m = self.lock();
        Ok(m.entries
            .range((namespace.to_owned(), prefix.to_owned())..)
            .take_while(|((ns, k), _)| ns == namespace && k.starts_with(prefix))
            .map(|((_, k), (v, _))| (k.clone(), v.clone()))
            .collect())
    }

    async fn delete(
        &self,
        namespace: &str,
        key: &str,
        only_if: Option<&str>,
    ) -> Result<bool, PeerStoreError> {
        check(namespace, Some(key), only_if)?;
        let mut m = self.lock();
        let k = (namespace.to_owned(), key.to_owned());
        let matches = match (m.entries.get(&k), only_if) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some((v, _)), Some(want)) => v == want,
        };
        if matches {
            m.entries.remove(&k);
        }
        Ok(matches)
    }

    async fn delete_older_than(
        &self,
        namespace: &str,
        before: DateTime<Utc>,
    ) -> Result<u64, PeerStoreError> {
        check(namespace, None, None)?;
        let mut m = self.lock();
        let n = m.entries.len();
        m.entries
            .retain(|(ns, _), (_, at)| ns != namespace || *at >= before);
        Ok((n - m.entries.len()) as u64)
    }

    async fn next_in_sequence(&self, namespace: &str) -> Result<u64, PeerStoreError> {
        check(namespace, None, None)?;
        let mut m = self.lock();
        let n = m.sequences.entry(namespace.to_owned()).or_insert(0);
        *n += 1;
        Ok(*n)
    }
}

/// A `PeerStore` called from a blocking thread (the box's folder work runs on
/// `spawn_blocking`): each call waits for the store on the runtime it was made in.
/// Never call it from an async task: `block_on` there panics.
#[derive(Debug, Clone)]
pub struct BlockingPeerStore {
    store: Arc<dyn PeerStore>,
    runtime: tokio::runtime::Handle,
}

impl BlockingPeerStore {
    /// The store, seen from blocking threads of the current runtime.
    pub fn new(store: Arc<dyn PeerStore>) -> Result<Self, PeerStoreError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            PeerStoreError::invalid("a blocking peer store is made inside a tokio runtime")
        })?;
        Ok(Self { store, runtime })
    }

    /// The store, seen from threads outside `runtime` (tests).
    pub fn with_runtime(store: Arc<dyn PeerStore>, runtime: tokio::runtime::Handle) -> Self {
        Self { store, runtime }
    }

    /// The async store behind.
    pub fn store(&self) -> &Arc<dyn PeerStore> {
        &self.store
    }

    pub fn get(&self, namespace: &str, key: &str) -> Result<Option<String>, PeerStoreError> {
        self.runtime.block_on(self.store.get(namespace, key))
    }

    pub fn put(&self, namespace: &str, key: &str, value: &str) -> Result<(), PeerStoreError> {
        self.runtime.block_on(self.store.put(namespace, key, value))
    }

    pub fn insert_if_absent(
        &self,
        namespace: &str,
        key: &str,
        value: &str,
    ) -> Result<bool, PeerStoreError> {
        self.runtime
            .block_on(self.store.insert_if_absent(namespace, key, value))
    }

    pub fn list(
        &self,
        namespace: &str,
        prefix: &str,
    ) -> Result<Vec<(String, String)>, PeerStoreError> {
        self.runtime.block_on(self.store.list(namespace, prefix))
    }

    pub fn delete_older_than(
        &self,
        namespace: &str,
        before: DateTime<Utc>,
    ) -> Result<u64, PeerStoreError> {
        self.runtime
            .block_on(self.store.delete_older_than(namespace, before))
    }
}
