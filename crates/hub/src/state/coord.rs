//! Several hub instances on one state: one night at a time across all of them
//! ([`NightLock`]), the night's work claimed item by item under a lease ([`Claims`]),
//! and a token bucket all of them take from ([`SharedBucket`]).
//!
//! - The night lock, on PostgreSQL, is a session advisory lock (two-key form, class
//!   7215, key 2) held on a connection of its own for the whole night: the server drops
//!   it when that connection dies, so a killed instance never leaves it behind. Who
//!   holds it is a row of `night_holder` (an instance name and a time, nothing
//!   personal), read for the message the next one prints. On SQLite (one machine) it
//!   is a `flock` on a file beside the database, with the same semantics as the data
//!   folder's lock of the command line.
//! - A work item is `(night, kind, key)`: a file, a box partner, an I-MILO structure, a
//!   FAJ platform, an ACK folder, or a planned source whole. It is claimed under a lease
//!   (renewed while worked on), completed once (never claimed again that night), or
//!   given back. An item whose lease passed is claimable by another instance: a dead
//!   instance's work is taken over. On PostgreSQL `claim_next` takes the items with
//!   `FOR UPDATE SKIP LOCKED`, so concurrent claimers never wait on each other nor
//!   take the same item; on SQLite every write is serialised anyway.
//! - Leases are compared as RFC 3339 text from each instance's clock: instances must
//!   keep their clocks in time (NTP) to within a small part of a lease.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use sqlx::Connection;
use sqlx::postgres::PgConnection;

use super::{HubState, StateError, db::Db, on};

/// The advisory lock of a night (class 7215 as the store's other locks; key 0 is the
/// schema's, key 1 the transfers').
const NIGHT_LOCK_KEY: i32 = 2;

/// How often a waiting night asks again.
const POLL: Duration = Duration::from_millis(200);

/// Errors of the coordination between instances.
#[derive(Debug, thiserror::Error)]
pub enum CoordError {
    /// Another night holds the lock (waited as long as allowed).
    #[error("a night is running on {instance} since {since}; waited {waited} s")]
    Busy {
        instance: String,
        since: String,
        waited: u64,
    },
    #[error(transparent)]
    State(#[from] StateError),
    #[error("cannot open the night lock {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl CoordError {
    /// Whether another night was running (the command's exit status says so).
    pub fn is_busy(&self) -> bool {
        matches!(self, Self::Busy { .. })
    }
}

impl From<sqlx::Error> for CoordError {
    fn from(e: sqlx::Error) -> Self {
        Self::State(StateError::Database(e))
    }
}

type Result<T> = std::result::Result<T, CoordError>;

/// A name for this instance in "a night is running on …": the host and the process.
pub fn this_instance() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown host".to_owned());
    format!("{host} (pid {})", std::process::id())
}

/// RFC 3339 in UTC with a fixed width, so that text order is time order.
fn stamp(t: chrono::DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn now_plus(d: Duration) -> String {
    stamp(Utc::now() + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX))
}

/// The night lock, held until released or dropped (or the process dies).
pub struct NightLock {
    held: Held,
    since: String,
}

enum Held {
    File(#[allow(dead_code)] File),
    Postgres(PgConnection),
    /// A database in memory: one process has it, there is nothing to share.
    Nothing,
}

impl std::fmt::Debug for NightLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.held {
            Held::File(_) => "flock",
            Held::Postgres(_) => "advisory",
            Held::Nothing => "in memory",
        };
        f.debug_struct("NightLock")
            .field("kind", &kind)
            .field("since", &self.since)
            .finish()
    }
}

impl NightLock {
    /// When it was taken (RFC 3339).
    pub fn since(&self) -> &str {
        &self.since
    }

    /// Gives the lock back now (dropping it does too: closing the file, or the
    /// connection, which the server sees).
    pub async fn release(self) {
        match self.held {
            Held::File(f) => drop(f),
            Held::Nothing => {}
            Held::Postgres(mut c) => {
                let _ = sqlx::query("SELECT pg_advisory_unlock(7215, $1)")
                    .bind(NIGHT_LOCK_KEY)
                    .execute(&mut c)
                    .await;
                let _ = c.close().await;
            }
        }
    }
}

impl HubState {
    /// Takes the night lock for `instance`, waiting up to `wait` for a night running
    /// elsewhere (on another machine too, on PostgreSQL) to end; `Busy` names it.
    pub async fn night_lock(&self, instance: &str, wait: Duration) -> Result<NightLock> {
        let started = Instant::now();
        let since = stamp(Utc::now());
        match &self.db {
            Db::Sqlite(pool) => {
                let opts = pool.connect_options();
                let file = opts.get_filename();
                if file.as_os_str().is_empty() || file == std::path::Path::new(":memory:") {
                    return Ok(NightLock {
                        held: Held::Nothing,
                        since,
                    });
                }
                let mut path = file.as_os_str().to_owned();
                path.push(".night-lock");
                let path = PathBuf::from(path);
                let io = |source| CoordError::Io {
                    path: path.clone(),
                    source,
                };
                // Private as every file under the data folder.
                let mut file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(0o600)
                    .open(&path)
                    .map_err(io)?;
                loop {
                    match file.try_lock() {
                        Ok(()) => break,
                        Err(TryLockError::WouldBlock) if started.elapsed() < wait => {
                            tokio::time::sleep(POLL).await;
                        }
                        Err(TryLockError::WouldBlock) => {
                            let mut holder = String::new();
                            let _ = file.read_to_string(&mut holder);
                            let (instance, since) = holder
                                .trim()
                                .split_once('\t')
                                .map(|(i, s)| (i.to_owned(), s.to_owned()))
                                .unwrap_or_else(|| ("an unknown instance".into(), "?".into()));
                            return Err(CoordError::Busy {
                                instance,
                                since,
                                waited: started.elapsed().as_secs(),
                            });
                        }
                        Err(TryLockError::Error(e)) => return Err(io(e)),
                    }
                }
                let _ = file.set_len(0);
                let _ = file.seek(SeekFrom::Start(0));
                let _ = write!(file, "{instance}\t{since}");
                let _ = file.flush();
                Ok(NightLock {
                    held: Held::File(file),
                    since,
                })
            }
            Db::Postgres(pool) => {
                // A connection of its own, outside the pool: the lock lives as long as
                // it does, and the pool's connections come and go.
                let mut conn = PgConnection::connect_with(&pool.connect_options()).await?;
                loop {
                    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(7215, $1)")
                        .bind(NIGHT_LOCK_KEY)
                        .fetch_one(&mut conn)
                        .await?;
                    if got {
                        break;
                    }
                    if started.elapsed() >= wait {
                        let _ = conn.close().await;
                        let holder: Option<(String, String)> = sqlx::query_as(
                            "SELECT instance, since FROM night_holder WHERE slot = 1",
                        )
                        .fetch_optional(pool)
                        .await?;
                        let (instance, since) =
                            holder.unwrap_or_else(|| ("an unknown instance".into(), "?".into()));
                        return Err(CoordError::Busy {
                            instance,
                            since,
                            waited: started.elapsed().as_secs(),
                        });
                    }
                    tokio::time::sleep(POLL).await;
                }
                sqlx::query(
                    "INSERT INTO night_holder (slot, instance, since) VALUES (1, $1, $2) \
                     ON CONFLICT (slot) DO UPDATE SET instance = excluded.instance, since = excluded.since",
                )
                .bind(instance)
                .bind(&since)
                .execute(&mut conn)
                .await?;
                Ok(NightLock {
                    held: Held::Postgres(conn),
                    since,
                })
            }
        }
    }

    /// The work items of `night`, claimed as `holder` (an instance's name, unique
    /// among the instances running at once).
    pub fn claims(&self, night: &str, holder: &str) -> Claims {
        Claims {
            db: self.db.clone(),
            night: night.to_owned(),
            holder: holder.to_owned(),
        }
    }
}

/// What a work item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkKind {
    /// A file of a folder source (key: the folder and the file name).
    File,
    /// A box partner (key: the partner).
    BoxPartner,
    /// An I-MILO structure or event page (key: the structure).
    ImiloStructure,
    /// A FAJ platform (key: the platform).
    FajPlatform,
    /// An ACK folder (key: the folder).
    AckFolder,
    /// A planned source read whole (key: its name in the plan).
    Source,
}

impl WorkKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::File => "file",
            Self::BoxPartner => "box_partner",
            Self::ImiloStructure => "imilo_structure",
            Self::FajPlatform => "faj_platform",
            Self::AckFolder => "ack_folder",
            Self::Source => "source",
        }
    }
}

/// Where an item stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimState {
    pub holder: Option<String>,
    /// Until when its holder has it (RFC 3339); past it, another may claim it.
    pub lease_until: Option<String>,
    /// Whether it was completed (never claimed again that night).
    pub done: bool,
}

/// One night's work items, as one instance claims them (see the module doc).
#[derive(Debug, Clone)]
pub struct Claims {
    db: Db,
    night: String,
    holder: String,
}

impl Claims {
    pub fn night(&self) -> &str {
        &self.night
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Adds items to the night's work (items already there are left as they are).
    pub async fn offer(&self, kind: WorkKind, keys: &[String]) -> Result<()> {
        on!(&self.db, |p, q| {
            let mut tx = p.begin().await.map_err(StateError::from)?;
            for key in keys {
                sqlx::query(q(
                    "INSERT INTO work_claim (night, kind, key) VALUES (?, ?, ?) \
                     ON CONFLICT (night, kind, key) DO NOTHING",
                ))
                .bind(&self.night)
                .bind(kind.as_str())
                .bind(key)
                .execute(&mut *tx)
                .await
                .map_err(StateError::from)?;
            }
            tx.commit().await.map_err(StateError::from)?;
        });
        Ok(())
    }

    /// Claims up to `limit` offered items of `kind` that nobody holds (or whose lease
    /// passed) for `lease`; their keys, in key order. Concurrent claimers get disjoint
    /// items.
    pub async fn claim_next(
        &self,
        kind: WorkKind,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<String>> {
        let now = stamp(Utc::now());
        let until = now_plus(lease);
        // PostgreSQL: rows another claimer is taking are skipped, not waited for.
        let lock = if self.db.is_postgres() {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        // The pick is a materialised CTE, run once: as a subquery of the UPDATE,
        // PostgreSQL may run it again per row, and with SKIP LOCKED each run picks
        // other rows, past the limit.
        let sql = format!(
            "WITH picked AS MATERIALIZED (\
               SELECT key FROM work_claim WHERE night = ? AND kind = ? AND done_at IS NULL \
               AND (holder IS NULL OR lease_until < ?) ORDER BY key LIMIT ?{lock}) \
             UPDATE work_claim SET holder = ?, lease_until = ? \
             WHERE night = ? AND kind = ? AND key IN (SELECT key FROM picked) \
             RETURNING key"
        );
        let mut keys: Vec<String> = on!(&self.db, |p, q| {
            sqlx::query_scalar(q(&sql))
                .bind(&self.night)
                .bind(kind.as_str())
                .bind(&now)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .bind(&self.holder)
                .bind(&until)
                .bind(&self.night)
                .bind(kind.as_str())
                .fetch_all(p)
                .await
                .map_err(StateError::from)?
        });
        keys.sort();
        Ok(keys)
    }

    /// Claims one item (offering it when it is not yet): true when this instance has
    /// it for `lease` now, false when another holds it or it is done.
    pub async fn claim(&self, kind: WorkKind, key: &str, lease: Duration) -> Result<bool> {
        let now = stamp(Utc::now());
        let until = now_plus(lease);
        let got: Option<String> = on!(&self.db, |p, q| {
            sqlx::query_scalar(q(
                "INSERT INTO work_claim (night, kind, key, holder, lease_until) VALUES (?, ?, ?, ?, ?) \
                 ON CONFLICT (night, kind, key) DO UPDATE \
                 SET holder = excluded.holder, lease_until = excluded.lease_until \
                 WHERE work_claim.done_at IS NULL AND (work_claim.holder IS NULL \
                   OR work_claim.holder = excluded.holder OR work_claim.lease_until < ?) \
                 RETURNING key",
            ))
            .bind(&self.night)
            .bind(kind.as_str())
            .bind(key)
            .bind(&self.holder)
            .bind(&until)
            .bind(&now)
            .fetch_optional(p)
            .await
            .map_err(StateError::from)?
        });
        Ok(got.is_some())
    }

    /// Extends this instance's lease on an item it holds; false when it no longer
    /// holds it (another took it over, or it is done).
    pub async fn renew(&self, kind: WorkKind, key: &str, lease: Duration) -> Result<bool> {
        let until = now_plus(lease);
        self.update(
            "UPDATE work_claim SET lease_until = ? \
             WHERE night = ? AND kind = ? AND key = ? AND holder = ? AND done_at IS NULL",
            Some(&until),
            kind,
            key,
        )
        .await
    }

    /// Completes an item this instance holds: nobody claims it again that night.
    /// False when it was not held by this instance (taken over: the other finishes it).
    pub async fn complete(&self, kind: WorkKind, key: &str) -> Result<bool> {
        let now = stamp(Utc::now());
        self.update(
            "UPDATE work_claim SET done_at = ?, lease_until = NULL \
             WHERE night = ? AND kind = ? AND key = ? AND holder = ? AND done_at IS NULL",
            Some(&now),
            kind,
            key,
        )
        .await
    }

    /// Gives an item back undone (its work failed here): claimable at once by anyone.
    pub async fn release(&self, kind: WorkKind, key: &str) -> Result<bool> {
        self.update(
            "UPDATE work_claim SET holder = NULL, lease_until = NULL \
             WHERE night = ? AND kind = ? AND key = ? AND holder = ? AND done_at IS NULL",
            None,
            kind,
            key,
        )
        .await
    }

    async fn update(
        &self,
        sql: &str,
        first: Option<&str>,
        kind: WorkKind,
        key: &str,
    ) -> Result<bool> {
        let n = on!(&self.db, |p, q| {
            let mut qq = sqlx::query(q(sql));
            if let Some(v) = first {
                qq = qq.bind(v);
            }
            qq.bind(&self.night)
                .bind(kind.as_str())
                .bind(key)
                .bind(&self.holder)
                .execute(p)
                .await
                .map_err(StateError::from)?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// Where an item stands (none: never offered nor claimed).
    pub async fn state_of(&self, kind: WorkKind, key: &str) -> Result<Option<ClaimState>> {
        let row: Option<(Option<String>, Option<String>, Option<String>)> =
            on!(&self.db, |p, q| {
                sqlx::query_as(q("SELECT holder, lease_until, done_at FROM work_claim \
                     WHERE night = ? AND kind = ? AND key = ?"))
                .bind(&self.night)
                .bind(kind.as_str())
                .bind(key)
                .fetch_optional(p)
                .await
                .map_err(StateError::from)?
            });
        Ok(row.map(|(holder, lease_until, done)| ClaimState {
            holder,
            lease_until,
            done: done.is_some(),
        }))
    }

    /// Items of `kind` completed that night, by key.
    pub async fn done(&self, kind: WorkKind) -> Result<Vec<String>> {
        let keys: Vec<String> = on!(&self.db, |p, q| {
            sqlx::query_scalar(q("SELECT key FROM work_claim \
                 WHERE night = ? AND kind = ? AND done_at IS NOT NULL ORDER BY key"))
            .bind(&self.night)
            .bind(kind.as_str())
            .fetch_all(p)
            .await
            .map_err(StateError::from)?
        });
        Ok(keys)
    }

    /// A folder source's gate (`FolderFeed::with_gate`): each file of `folder` is an
    /// item `(night, file, "folder/name")` this instance claims before reading it.
    pub fn file_gate(&self, folder: &str, lease: Duration) -> FileClaims {
        FileClaims {
            claims: self.clone(),
            folder: folder.to_owned(),
            lease,
            handle: tokio::runtime::Handle::try_current().ok(),
        }
    }
}

/// The files of a folder claimed one by one (see `Claims::file_gate`). The lease of a
/// file being read is the night's to renew (`Claims::renew`) when reading a file may
/// take longer than it.
#[derive(Debug, Clone)]
pub struct FileClaims {
    claims: Claims,
    folder: String,
    lease: Duration,
    handle: Option<tokio::runtime::Handle>,
}

impl FileClaims {
    fn key(&self, name: &str) -> String {
        format!("{}/{name}", self.folder)
    }

    /// Runs a claim's query from the folder source's blocking thread.
    fn block_on<T>(
        &self,
        f: impl std::future::Future<Output = Result<T>>,
    ) -> std::result::Result<T, passerelle_connector::ConnectorError> {
        let unavailable = |reason: String| passerelle_connector::ConnectorError::Unavailable {
            peer: "work claims".into(),
            reason,
            retry_after: None,
        };
        let handle = self
            .handle
            .clone()
            .or_else(|| tokio::runtime::Handle::try_current().ok())
            .ok_or_else(|| unavailable("no runtime to ask the state".into()))?;
        handle.block_on(f).map_err(|e| unavailable(e.to_string()))
    }
}

impl passerelle_connector::feed::FileGate for FileClaims {
    fn claim(&self, name: &str) -> std::result::Result<bool, passerelle_connector::ConnectorError> {
        self.block_on(
            self.claims
                .claim(WorkKind::File, &self.key(name), self.lease),
        )
    }

    fn done(&self, name: &str) -> std::result::Result<(), passerelle_connector::ConnectorError> {
        self.block_on(self.claims.complete(WorkKind::File, &self.key(name)))
            .map(|_| ())
    }
}

/// A token bucket in PostgreSQL, shared by every instance (`rate_bucket`, a row per
/// bucket): each take refills the row by the server's time since the last one, takes a
/// token and says how long to wait for it, in one statement (the row's lock orders
/// concurrent takers), so that all instances together pace at `rate` with at most
/// `burst` at once. Same reservation semantics as `connector::http::TokenBucket`.
#[derive(Clone)]
pub struct SharedBucket {
    pool: sqlx::PgPool,
    name: String,
    rate: f64,
    burst: f64,
}

impl std::fmt::Debug for SharedBucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedBucket")
            .field("name", &self.name)
            .field("rate", &self.rate)
            .field("burst", &self.burst)
            .finish()
    }
}

impl HubState {
    /// The shared bucket `name` at `rate_per_s` with `burst` (PostgreSQL only: on
    /// SQLite, one machine paces in process with a `TokenBucket`; none then). `rate`
    /// must be positive.
    pub fn shared_bucket(&self, name: &str, rate_per_s: f64, burst: u32) -> Option<SharedBucket> {
        match &self.db {
            Db::Postgres(pool) if rate_per_s > 0.0 => Some(SharedBucket {
                pool: pool.clone(),
                name: name.to_owned(),
                rate: rate_per_s,
                burst: f64::from(burst.max(1)),
            }),
            _ => None,
        }
    }

    /// The I-MILO client's four buckets (one per family of request), shared.
    pub fn shared_buckets<const N: usize>(
        &self,
        prefix: &str,
        rate_per_s: f64,
        burst: u32,
    ) -> Option<[Arc<dyn passerelle_connector::http::Bucket>; N]> {
        let mut out = Vec::with_capacity(N);
        for i in 0..N {
            let b = self.shared_bucket(&format!("{prefix}#{i}"), rate_per_s, burst)?;
            out.push(Arc::new(b) as Arc<dyn passerelle_connector::http::Bucket>);
        }
        out.try_into().ok()
    }
}

impl SharedBucket {
    /// Takes one token; the wait before it is there.
    pub async fn take_token(&self) -> std::result::Result<Duration, StateError> {
        let tokens: f64 = sqlx::query_scalar(
            "WITH now AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS t) \
             INSERT INTO rate_bucket AS b (name, tokens, at) SELECT $1, $3 - 1, now.t FROM now \
             ON CONFLICT (name) DO UPDATE SET \
               tokens = LEAST($3, b.tokens + GREATEST(excluded.at - b.at, 0) * $2) - 1, \
               at = GREATEST(excluded.at, b.at) \
             RETURNING tokens",
        )
        .bind(&self.name)
        .bind(self.rate)
        .bind(self.burst)
        .fetch_one(&self.pool)
        .await?;
        Ok(if tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-tokens / self.rate)
        })
    }
}

#[async_trait::async_trait]
impl passerelle_connector::http::Bucket for SharedBucket {
    async fn take(&self) -> std::result::Result<Duration, passerelle_connector::ConnectorError> {
        self.take_token()
            .await
            .map_err(|e| passerelle_connector::ConnectorError::Unavailable {
                peer: "shared rate limit".into(),
                reason: e.to_string(),
                retry_after: Some(Duration::from_secs(1)),
            })
    }
}
