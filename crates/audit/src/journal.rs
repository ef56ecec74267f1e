//! The journal: opening (with migrations), appending through one batching appender
//! task, verifying the chain, querying, and purging behind a checkpoint.
//!
//! Both engines run the same code; only the statements that start a write transaction
//! differ. A write holds the journal's one write lock for its whole transaction
//! (SQLite `BEGIN IMMEDIATE`; a PostgreSQL transaction-scoped advisory lock), reads the
//! head, chains the new entries from it and inserts them, so several processes may
//! append to one journal and it stays one chain.

use std::collections::BTreeSet;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, QueryBuilder, Row};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, instrument, warn};

use crate::anchor::{self, Anchor, AnchorProblem, ChainFacts};
use crate::entry::{Entry, EntryView, Event, GENESIS_HASH, NewEntry, Outcome, format_time};
use crate::error::{AuditError, Result};
use crate::schema;
use crate::subject::{BlindIndex, Lookup};
use crate::verify::{Checkpoint, Problem, Verification, VerifiedMark};

/// The key of the PostgreSQL advisory lock that serialises writers ("passerel" in ASCII).
const PG_WRITE_LOCK: i64 = 0x7061_7373_6572_656c;
/// Rows per multi-row INSERT, largest first. A batch is cut into chunks of these sizes
/// only, so that every INSERT is one of a few statements the connection has already
/// prepared (a statement per batch size would be parsed again for each batch); 256
/// rows of 14 parameters stay far below SQLite's 32,766.
const CHUNK_SIZES: [usize; 5] = [256, 64, 16, 4, 1];
const COLUMNS: &str = "seq, at, event, actor, flow, sender, recipient, subject, fields, \
                       legal_basis, ciphertext_digest, outcome, reason, hash";

/// Decodes one row of `COLUMNS` into an [`Entry`]; the error names the column.
macro_rules! decode_entry {
    ($row:expr) => {{
        let row = &$row;
        (|| -> std::result::Result<Entry, String> {
            let col = column_name;
            let fields_json: String = row.try_get(8).map_err(|_| col(8))?;
            let fields: Vec<String> = serde_json::from_str(&fields_json).map_err(|_| col(8))?;
            Ok(Entry {
                seq: row.try_get(0).map_err(|_| col(0))?,
                at: row.try_get(1).map_err(|_| col(1))?,
                event: row.try_get(2).map_err(|_| col(2))?,
                actor: row.try_get(3).map_err(|_| col(3))?,
                flow: row.try_get(4).map_err(|_| col(4))?,
                sender: row.try_get(5).map_err(|_| col(5))?,
                recipient: row.try_get(6).map_err(|_| col(6))?,
                subject: row.try_get(7).map_err(|_| col(7))?,
                fields,
                legal_basis: row.try_get(9).map_err(|_| col(9))?,
                ciphertext_digest: row.try_get(10).map_err(|_| col(10))?,
                outcome: row.try_get(11).map_err(|_| col(11))?,
                reason: row.try_get(12).map_err(|_| col(12))?,
                hash: row.try_get(13).map_err(|_| col(13))?,
            })
        })()
    }};
}

/// Entries per JSON chunk when SQLite verifies (about 1 MiB of JSON).
const JSON_CHUNK: i64 = 2_000;

/// One entry as SQLite packs it for `verify`: the columns in `COLUMNS` order, the hash
/// in hex. Text is borrowed from the JSON unless it holds escapes.
#[derive(Debug, Deserialize)]
struct JsonRow<'a>(
    i64,
    #[serde(borrow)] std::borrow::Cow<'a, str>,
    #[serde(borrow)] std::borrow::Cow<'a, str>,
    #[serde(borrow)] std::borrow::Cow<'a, str>,
    #[serde(borrow)] Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)] Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)] Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)] Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)] std::borrow::Cow<'a, str>,
    #[serde(borrow)] Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)] Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)] std::borrow::Cow<'a, str>,
    #[serde(borrow)] Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)] std::borrow::Cow<'a, str>,
);

fn column_name(i: usize) -> String {
    COLUMNS.split(", ").nth(i).unwrap_or("?").to_owned()
}

/// Where the journal lives and how the appender batches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalConfig {
    /// `sqlite://PATH` (created when missing) or `postgres://USER:PASSWORD@HOST:PORT/DB`.
    pub url: String,
    /// Most entries written in one transaction by the appender task.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
}

fn default_max_batch() -> usize {
    2_000
}

impl JournalConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_batch: default_max_batch(),
        }
    }

    /// The default embedded journal: a SQLite file.
    pub fn sqlite_file(path: &std::path::Path) -> Self {
        Self::new(format!("sqlite://{}", path.display()))
    }

    /// Checks the setting without touching anything.
    pub fn validate(&self) -> Result<()> {
        if !(self.url.starts_with("sqlite:")
            || self.url.starts_with("postgres://")
            || self.url.starts_with("postgresql://"))
        {
            return Err(AuditError::Invalid {
                what: "url",
                rule: "must start with sqlite:, postgres:// or postgresql://".into(),
            });
        }
        if self.max_batch == 0 || self.max_batch > 100_000 {
            return Err(AuditError::Invalid {
                what: "max_batch",
                rule: format!("must be in 1..=100000, found {}", self.max_batch),
            });
        }
        Ok(())
    }

    /// Connects, migrates and starts the appender.
    pub async fn build(&self) -> Result<Journal> {
        self.build_with(true).await
    }

    /// Opens a journal that must exist already: a SQLite file is never created, and a
    /// database without the journal's tables is refused ([`ErrorKind::Missing`]); for
    /// commands that read state, so that a wrong folder or URL is not quietly answered
    /// with an empty journal.
    ///
    /// [`ErrorKind::Missing`]: crate::ErrorKind::Missing
    pub async fn open_existing(&self) -> Result<Journal> {
        self.build_with(false).await
    }

    async fn build_with(&self, create: bool) -> Result<Journal> {
        self.validate()?;
        if self.url.starts_with("sqlite:") {
            let opts =
                SqliteConnectOptions::from_str(&self.url).map_err(|_| AuditError::Invalid {
                    what: "url",
                    rule: "is not a valid sqlite: URL".into(),
                })?;
            if !create {
                let path = opts.get_filename();
                if path.as_os_str() == ":memory:" || !path.is_file() {
                    return Err(AuditError::Missing(format!(
                        "no journal file {}",
                        std::path::absolute(path)
                            .unwrap_or_else(|_| path.to_owned())
                            .display()
                    )));
                }
                let probe = SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(opts.clone().create_if_missing(false).read_only(true))
                    .await
                    .map_err(AuditError::db("opening the sqlite journal"))?;
                let found = sqlx::query(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_schema_version'",
                )
                .fetch_optional(&probe)
                .await
                .map_err(AuditError::db("opening the sqlite journal"));
                probe.close().await;
                if found?.is_none() {
                    return Err(AuditError::Missing(format!(
                        "{} is not a passerelle journal",
                        path.display()
                    )));
                }
            }
            Journal::open_sqlite(opts, self.max_batch).await
        } else {
            // The URL may hold a password: say only that it is wrong.
            let opts = PgConnectOptions::from_str(&self.url).map_err(|_| AuditError::Invalid {
                what: "url",
                rule: "is not a valid postgres:// URL".into(),
            })?;
            if !create {
                return Journal::open_postgres_existing(opts, self.max_batch).await;
            }
            Journal::open_postgres(opts, self.max_batch).await
        }
    }
}

#[derive(Debug, Clone)]
enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Where an appended entry landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub seq: i64,
    pub hash: [u8; 32],
}

/// What was removed by a purge, and the checkpoint that lets the rest verify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    pub removed: u64,
    /// `None` when nothing was older than the cut-off.
    pub checkpoint: Option<Checkpoint>,
    /// The signed record of the purge (kept forever, in the journal and the anchor
    /// file), when the purge was signed.
    pub record: Option<Anchor>,
    /// What was removed, by flow and month.
    pub lines: Vec<PurgeLine>,
}

/// How many entries of one flow and month a purge removes (or would remove).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeLine {
    /// `None` for entries of no flow (consultations, purges).
    pub flow: Option<String>,
    /// `YYYY-MM` (UTC).
    pub month: String,
    pub entries: u64,
}

/// Which entries to read. Empty means every entry.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Entries at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Entries strictly before this time.
    pub to: Option<DateTime<Utc>>,
    pub flow: Option<String>,
    /// Only entries about these pseudonyms (when `Some`; `Some(vec![])` matches nothing).
    pub subjects: Option<Vec<String>>,
}

/// A walk of the chain and of its anchors.
#[derive(Debug, Clone, Serialize)]
pub struct Anchored {
    pub chain: Verification,
    /// Anchors seen (journal and anchor file, each once).
    pub anchors: usize,
    /// Of which stored in the journal.
    pub in_journal: usize,
    /// The latest anchor signed by the hub's key.
    pub last: Option<Anchor>,
    /// What the anchors contradict (empty when the chain is intact and anchored).
    pub problems: Vec<AnchorProblem>,
}

impl Anchored {
    pub fn is_intact(&self) -> bool {
        self.chain.is_intact() && self.problems.is_empty()
    }
}

/// Counts entries matching `$cond` (with one parameter) by flow and month.
macro_rules! purge_lines {
    ($exec:expr, $cond:literal, $param:expr) => {{
        let rows = sqlx::query(concat!(
            "SELECT flow, substr(at, 1, 7), COUNT(*) FROM audit_entry WHERE ",
            $cond,
            " GROUP BY flow, substr(at, 1, 7) ORDER BY 2, 1"
        ))
        .bind($param.clone())
        .fetch_all($exec)
        .await
        .map_err(AuditError::db("counting entries to purge"))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(PurgeLine {
                flow: r
                    .try_get(0)
                    .map_err(AuditError::db("counting entries to purge"))?,
                month: r
                    .try_get(1)
                    .map_err(AuditError::db("counting entries to purge"))?,
                entries: r
                    .try_get::<i64, _>(2)
                    .map_err(AuditError::db("counting entries to purge"))?
                    .max(0) as u64,
            });
        }
        out
    }};
}

/// Stores one anchor (a second anchor of the same kind and entry is ignored).
macro_rules! insert_anchor {
    ($exec:expr, $a:expr) => {{
        let a: &Anchor = $a;
        sqlx::query(
            "INSERT INTO audit_anchor (kind, seq, hash, at, purged_before, removed, actor, \
             summary, public_key, signature, timestamp) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
        )
        .bind(a.kind.clone())
        .bind(a.seq)
        .bind(a.hash.clone())
        .bind(a.at.clone())
        .bind(a.purged_before.clone())
        .bind(a.removed.map(|n| n as i64))
        .bind(a.actor.clone())
        .bind(a.summary.clone())
        .bind(a.public_key.clone())
        .bind(a.signature.clone())
        .bind(a.timestamp.clone())
        .execute($exec)
        .await
        .map_err(AuditError::db("storing an anchor"))?;
    }};
}

struct Job {
    entries: Vec<NewEntry>,
    reply: oneshot::Sender<Result<Vec<Appended>>>,
}

/// A handle on the journal; clone it freely, every clone feeds the same appender.
#[derive(Debug, Clone)]
pub struct Journal {
    backend: Backend,
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Job({} entries)", self.entries.len())
    }
}

impl Journal {
    /// Opens (creating when missing) a SQLite journal: WAL, `synchronous=FULL` so that a
    /// committed entry survives a power loss, `secure_delete` so that purged rows leave
    /// no trace in the file, and a busy timeout for other processes.
    pub async fn open_sqlite(opts: SqliteConnectOptions, max_batch: usize) -> Result<Self> {
        create_private(opts.get_filename())?;
        let opts = opts
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30))
            // A purge must really remove: deleted rows are overwritten, not left in
            // free pages of the file.
            .pragma("secure_delete", "ON")
            // The subject index takes random keys: a larger page cache (16 MiB per
            // connection instead of 2) keeps its pages in memory.
            .pragma("cache_size", "-16384")
            // Fewer hand-overs between SQLite's worker thread and the reading task when
            // verify streams the whole chain.
            .row_buffer_size(4_096);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .map_err(AuditError::db("opening the sqlite journal"))?;
        migrate_sqlite(&pool).await?;
        Ok(Self::start(Backend::Sqlite(pool), max_batch))
    }

    /// Opens a PostgreSQL journal, creating its tables when the role may.
    pub async fn open_postgres(opts: PgConnectOptions, max_batch: usize) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .map_err(AuditError::db("connecting to the postgres journal"))?;
        migrate_postgres(&pool).await?;
        Ok(Self::start(Backend::Postgres(pool), max_batch))
    }

    /// Opens a PostgreSQL journal that must exist: a database without the journal's
    /// tables is refused and left as it is.
    pub async fn open_postgres_existing(opts: PgConnectOptions, max_batch: usize) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .map_err(AuditError::db("connecting to the postgres journal"))?;
        if read_pg_version(&pool).await?.is_none() {
            pool.close().await;
            return Err(AuditError::Missing(
                "the postgres database holds no passerelle journal".into(),
            ));
        }
        migrate_postgres(&pool).await?;
        Ok(Self::start(Backend::Postgres(pool), max_batch))
    }

    fn start(backend: Backend, max_batch: usize) -> Self {
        let (tx, rx) = mpsc::channel(1_024);
        tokio::spawn(appender(backend.clone(), rx, max_batch.max(1)));
        Self { backend, jobs: tx }
    }

    /// `sqlite` or `postgres`.
    pub fn engine(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Closes the connections; pending appends already returned are committed.
    pub async fn close(self) {
        match &self.backend {
            Backend::Sqlite(p) => p.close().await,
            Backend::Postgres(p) => p.close().await,
        }
    }

    /// Appends one entry; returns once it is committed.
    #[instrument(skip_all, fields(event = entry.event.as_str()))]
    pub async fn append(&self, entry: NewEntry) -> Result<Appended> {
        let mut v = self.append_batch(vec![entry]).await?;
        v.pop()
            .ok_or_else(|| AuditError::Corrupt("appender returned no receipt".into()))
    }

    /// Appends entries in this order, contiguously; returns once they are committed.
    #[instrument(skip_all, fields(count = entries.len()))]
    pub async fn append_batch(&self, entries: Vec<NewEntry>) -> Result<Vec<Appended>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, rx) = oneshot::channel();
        self.jobs
            .send(Job { entries, reply })
            .await
            .map_err(|_| AuditError::Stopped)?;
        rx.await.map_err(|_| AuditError::Stopped)?
    }

    /// The head record: last sequence number and its hash.
    pub async fn head(&self) -> Result<(i64, [u8; 32])> {
        let sql = "SELECT seq, hash FROM audit_head WHERE id = 1";
        let row = match &self.backend {
            Backend::Sqlite(p) => {
                let r = sqlx::query(sql).fetch_one(p).await;
                r.map(|r| (r.try_get(0), r.try_get::<Vec<u8>, _>(1)))
            }
            Backend::Postgres(p) => {
                let r = sqlx::query(sql).fetch_one(p).await;
                r.map(|r| (r.try_get(0), r.try_get::<Vec<u8>, _>(1)))
            }
        }
        .map_err(AuditError::db("reading the head"))?;
        let seq = row.0.map_err(AuditError::db("reading the head"))?;
        let hash = row.1.map_err(AuditError::db("reading the head"))?;
        Ok((seq, to_hash(&hash).ok_or_else(|| bad_hash("head"))?))
    }

    /// The checkpoints left by purges, oldest first.
    pub async fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        let sql = "SELECT seq, hash, purged_before, at FROM audit_checkpoint ORDER BY seq";
        macro_rules! read {
            ($p:expr) => {{
                let rows = sqlx::query(sql)
                    .fetch_all($p)
                    .await
                    .map_err(AuditError::db("reading checkpoints"))?;
                let mut out = Vec::with_capacity(rows.len());
                for r in rows {
                    out.push(Checkpoint {
                        seq: r
                            .try_get(0)
                            .map_err(AuditError::db("reading checkpoints"))?,
                        hash: hex::encode(
                            r.try_get::<Vec<u8>, _>(1)
                                .map_err(AuditError::db("reading checkpoints"))?,
                        ),
                        purged_before: r
                            .try_get(2)
                            .map_err(AuditError::db("reading checkpoints"))?,
                        at: r
                            .try_get(3)
                            .map_err(AuditError::db("reading checkpoints"))?,
                    });
                }
                out
            }};
        }
        Ok(match &self.backend {
            Backend::Sqlite(p) => read!(p),
            Backend::Postgres(p) => read!(p),
        })
    }

    /// Walks the chain from the last checkpoint (or the start) to the head, in one
    /// consistent snapshot, and names the first bad entry.
    #[instrument(skip(self))]
    pub async fn verify(&self) -> Result<Verification> {
        self.verify_since(None).await
    }

    /// Walks the chain from `mark` (an earlier walk's last good entry) when it is past the
    /// last checkpoint, else as `verify`. The marked entry must still be there with the
    /// hash the mark holds: when it is not, the whole chain is walked to locate the
    /// problem, and if that walk finds nothing (the chain was rewritten or its tail cut
    /// and the head moved back, which only the mark can tell), the marked entry is the
    /// problem.
    #[instrument(skip(self))]
    pub async fn verify_since(&self, mark: Option<&VerifiedMark>) -> Result<Verification> {
        // How the entries are read: row by row (PostgreSQL), or on SQLite, where sqlx hands
        // each row from its worker thread to the task (two thread wake-ups per row, which
        // dominated the walk), in chunks of rows packed as one JSON array by SQLite.
        macro_rules! scan {
            (stream, $tx:ident, $walker:ident) => {
                {
                    let sql =
                        format!("SELECT {COLUMNS} FROM audit_entry WHERE seq > $1 ORDER BY seq");
                    let mut rows = sqlx::query(AssertSqlSafe(sql))
                        .bind($walker.start_seq)
                        .fetch(&mut *$tx);
                    while let Some(row) = rows
                        .try_next()
                        .await
                        .map_err(AuditError::db("reading entries"))?
                    {
                        let seq: i64 = row.try_get(0).unwrap_or($walker.expected);
                        // Borrowed from the row: the walk copies nothing but the hash.
                        let checked = (|| -> std::result::Result<bool, String> {
                            let text = |i: usize| -> std::result::Result<Option<&str>, String> {
                                row.try_get::<Option<&str>, _>(i)
                                    .map_err(|_| column_name(i))
                            };
                            let fields_json: &str = row.try_get(8).map_err(|_| column_name(8))?;
                            let owned: Vec<String>;
                            let fields: Vec<&str> = match serde_json::from_str(fields_json) {
                                Ok(v) => v,
                                Err(_) => {
                                    // Escaped characters cannot be borrowed.
                                    owned = serde_json::from_str(fields_json)
                                        .map_err(|_| column_name(8))?;
                                    owned.iter().map(String::as_str).collect()
                                }
                            };
                            let required = |i: usize| -> std::result::Result<Option<&str>, String> {
                                text(i)?.map(Some).ok_or_else(|| column_name(i))
                            };
                            let view = EntryView {
                                seq,
                                head: [
                                    required(1)?,
                                    required(2)?,
                                    required(3)?,
                                    text(4)?,
                                    text(5)?,
                                    text(6)?,
                                    text(7)?,
                                ],
                                fields,
                                tail: [text(9)?, text(10)?, required(11)?, text(12)?],
                            };
                            let hash: &[u8] = row.try_get(13).map_err(|_| column_name(13))?;
                            Ok($walker.step(&view, hash))
                        })();
                        match checked {
                            Ok(true) => {}
                            Ok(false) => break,
                            Err(what) => {
                                $walker.fail(Problem::Unreadable { seq, what });
                                break;
                            }
                        }
                    }
                }
            };
            (json, $tx:ident, $walker:ident) => {{
                let mut after = $walker.start_seq;
                'chunks: loop {
                    let chunk: String = sqlx::query(
                        "SELECT json_group_array(json_array(seq, at, event, actor, flow, sender, \
                         recipient, subject, fields, legal_basis, ciphertext_digest, outcome, \
                         reason, hex(hash))) FROM (SELECT * FROM audit_entry WHERE seq > $1 \
                         ORDER BY seq LIMIT $2)",
                    )
                    .bind(after)
                    .bind(JSON_CHUNK)
                    .fetch_one(&mut *$tx)
                    .await
                    .and_then(|r| r.try_get(0))
                    .map_err(AuditError::db("reading entries"))?;
                    let mut rows: Vec<JsonRow<'_>> = serde_json::from_str(&chunk).map_err(|_| {
                        AuditError::Corrupt(format!("entries after {after} cannot be read"))
                    })?;
                    if rows.is_empty() {
                        break;
                    }
                    // The aggregate keeps the subquery's order in practice; sorting makes
                    // the walk independent of that.
                    rows.sort_by_key(|r| r.0);
                    for r in &rows {
                        let checked = (|| -> std::result::Result<bool, String> {
                            let owned: Vec<String>;
                            let fields: Vec<&str> = match serde_json::from_str(&r.8) {
                                Ok(v) => v,
                                Err(_) => {
                                    owned =
                                        serde_json::from_str(&r.8).map_err(|_| column_name(8))?;
                                    owned.iter().map(String::as_str).collect()
                                }
                            };
                            let hash = hex::decode(r.13.as_ref()).map_err(|_| column_name(13))?;
                            let view = EntryView {
                                seq: r.0,
                                head: [
                                    Some(r.1.as_ref()),
                                    Some(r.2.as_ref()),
                                    Some(r.3.as_ref()),
                                    r.4.as_deref(),
                                    r.5.as_deref(),
                                    r.6.as_deref(),
                                    r.7.as_deref(),
                                ],
                                fields,
                                tail: [r.9.as_deref(), r.10.as_deref(), Some(r.11.as_ref()), r.12.as_deref()],
                            };
                            Ok($walker.step(&view, &hash))
                        })();
                        match checked {
                            Ok(true) => {}
                            Ok(false) => break 'chunks,
                            Err(what) => {
                                $walker.fail(Problem::Unreadable { seq: r.0, what });
                                break 'chunks;
                            }
                        }
                    }
                    after = rows.last().map_or(after, |r| r.0);
                }
            }};
        }
        macro_rules! walk {
            ($tx:ident, $scan:ident) => {{
                let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
                    .fetch_one(&mut *$tx)
                    .await
                    .map_err(AuditError::db("reading the head"))?;
                let head_seq: i64 = head
                    .try_get(0)
                    .map_err(AuditError::db("reading the head"))?;
                let head_hash: Vec<u8> = head
                    .try_get(1)
                    .map_err(AuditError::db("reading the head"))?;
                let cp = sqlx::query(
                    "SELECT seq, hash, purged_before, at FROM audit_checkpoint \
                     ORDER BY seq DESC LIMIT 1",
                )
                .fetch_optional(&mut *$tx)
                .await
                .map_err(AuditError::db("reading checkpoints"))?;
                let checkpoint = match cp {
                    None => None,
                    Some(r) => Some(Checkpoint {
                        seq: r
                            .try_get(0)
                            .map_err(AuditError::db("reading checkpoints"))?,
                        hash: hex::encode(
                            r.try_get::<Vec<u8>, _>(1)
                                .map_err(AuditError::db("reading checkpoints"))?,
                        ),
                        purged_before: r
                            .try_get(2)
                            .map_err(AuditError::db("reading checkpoints"))?,
                        at: r
                            .try_get(3)
                            .map_err(AuditError::db("reading checkpoints"))?,
                    }),
                };
                let mut start = checkpoint.clone();
                let mut contradiction = None;
                if let Some(m) = mark.filter(|m| m.seq > checkpoint.as_ref().map_or(0, |c| c.seq)) {
                    let found: Option<Vec<u8>> =
                        sqlx::query("SELECT hash FROM audit_entry WHERE seq = $1")
                            .bind(m.seq)
                            .fetch_optional(&mut *$tx)
                            .await
                            .and_then(|r| r.map(|r| r.try_get(0)).transpose())
                            .map_err(AuditError::db("reading the verified entry"))?;
                    match found {
                        Some(h) if hex::encode(&h) == m.hash => {
                            start = Some(Checkpoint {
                                seq: m.seq,
                                hash: m.hash.clone(),
                                purged_before: String::new(),
                                at: String::new(),
                            });
                        }
                        Some(_) => contradiction = Some(Problem::Altered { seq: m.seq }),
                        None if m.seq > head_seq => {
                            contradiction = Some(Problem::TailCut {
                                seq: head_seq + 1,
                                head_seq: m.seq,
                            })
                        }
                        None => {
                            contradiction = Some(Problem::Missing {
                                seq: m.seq,
                                next_present: m.seq + 1,
                            })
                        }
                    }
                }
                let mut walker = Walker::new(start.as_ref())?;
                scan!($scan, $tx, walker);
                let mut v = walker.finish(head_seq, &head_hash, checkpoint)?;
                if v.problem.is_none() {
                    v.problem = contradiction;
                }
                Ok::<Verification, AuditError>(v)
            }};
        }
        match &self.backend {
            Backend::Sqlite(p) => {
                // A deferred read transaction is one snapshot in WAL mode.
                let mut tx = p.begin().await.map_err(AuditError::db("starting a read"))?;
                let v = walk!(tx, json)?;
                let _ = tx.rollback().await;
                Ok(v)
            }
            Backend::Postgres(p) => {
                let mut tx = p
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await
                    .map_err(AuditError::db("starting a read"))?;
                let v = walk!(tx, stream)?;
                let _ = tx.rollback().await;
                Ok(v)
            }
        }
    }

    /// The pseudonyms that the blind indexes of these identifiers point to.
    pub async fn subjects_for(&self, indexes: &[BlindIndex]) -> Result<Vec<String>> {
        if indexes.is_empty() {
            return Ok(Vec::new());
        }
        macro_rules! run {
            ($p:expr) => {{
                let mut qb =
                    QueryBuilder::new("SELECT DISTINCT subject FROM audit_subject_index WHERE ");
                for (i, b) in indexes.iter().enumerate() {
                    if i > 0 {
                        qb.push(" OR ");
                    }
                    qb.push("(kind = ")
                        .push_bind(b.kind)
                        .push(" AND blind_index = ")
                        .push_bind(b.value.clone())
                        .push(")");
                }
                qb.push(" ORDER BY subject");
                let rows = qb
                    .build()
                    .fetch_all($p)
                    .await
                    .map_err(AuditError::db("looking up a subject"))?;
                rows.iter()
                    .map(|r| r.try_get::<String, _>(0))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(AuditError::db("looking up a subject"))?
            }};
        }
        Ok(match &self.backend {
            Backend::Sqlite(p) => run!(p),
            Backend::Postgres(p) => run!(p),
        })
    }

    /// Every entry about the person these identifiers name (GDPR Art. 15 access).
    #[instrument(skip_all)]
    pub async fn subject_entries(
        &self,
        key: &passerelle_crypto::PseudonymKey,
        lookup: &Lookup,
    ) -> Result<Vec<Entry>> {
        let subjects = self.subjects_for(&lookup.blind_indexes(key)).await?;
        self.entries(&Filter {
            subjects: Some(subjects),
            ..Filter::default()
        })
        .await
    }

    /// The entries matching a filter, in sequence order, collected.
    pub async fn entries(&self, filter: &Filter) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        self.for_each(filter, |e| {
            out.push(e);
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// Streams the entries matching a filter, in sequence order, to `f`; returns how
    /// many there were. Memory stays flat however large the journal is.
    pub async fn for_each(
        &self,
        filter: &Filter,
        mut f: impl FnMut(Entry) -> Result<()>,
    ) -> Result<u64> {
        if matches!(&filter.subjects, Some(s) if s.is_empty()) {
            return Ok(0);
        }
        let from = filter.from.map(format_time);
        let to = filter.to.map(format_time);
        macro_rules! run {
            ($p:expr) => {{
                let mut qb =
                    QueryBuilder::new(format!("SELECT {COLUMNS} FROM audit_entry WHERE 1 = 1"));
                if let Some(from) = &from {
                    qb.push(" AND at >= ").push_bind(from.clone());
                }
                if let Some(to) = &to {
                    qb.push(" AND at < ").push_bind(to.clone());
                }
                if let Some(flow) = &filter.flow {
                    qb.push(" AND flow = ").push_bind(flow.clone());
                }
                if let Some(subjects) = &filter.subjects {
                    qb.push(" AND subject IN (");
                    let mut sep = qb.separated(", ");
                    for s in subjects {
                        sep.push_bind(s.clone());
                    }
                    qb.push(")");
                }
                qb.push(" ORDER BY seq");
                let mut n = 0u64;
                let mut rows = qb.build().fetch($p);
                while let Some(row) = rows
                    .try_next()
                    .await
                    .map_err(AuditError::db("reading entries"))?
                {
                    let e = decode_entry!(row).map_err(AuditError::Corrupt)?;
                    f(e)?;
                    n += 1;
                }
                n
            }};
        }
        Ok(match &self.backend {
            Backend::Sqlite(p) => run!(p),
            Backend::Postgres(p) => run!(p),
        })
    }

    /// Removes the entries older than `before` (a prefix of the chain: it stops at the
    /// first entry at or after the cut-off), records a checkpoint (sequence number and
    /// hash of the last removed entry) from which `verify` starts afterwards, drops the
    /// blind indexes of subjects left without entries, and journals the purge itself.
    /// Refuses when the chain does not verify, so that a purge never destroys the
    /// evidence of tampering.
    #[instrument(skip(self))]
    pub async fn purge_before(&self, before: DateTime<Utc>, actor: &str) -> Result<PurgeReport> {
        self.purge(before, actor, None).await
    }

    /// As [`purge_before`](Self::purge_before), and records the purge (checkpoint, what
    /// was removed by flow and month, when, by whom) as an anchor signed with `key`,
    /// in the same transaction; that record is never removed by later purges.
    #[instrument(skip(self, key))]
    pub async fn purge_signed(
        &self,
        before: DateTime<Utc>,
        actor: &str,
        key: &passerelle_crypto::AnchorKey,
    ) -> Result<PurgeReport> {
        self.purge(before, actor, Some(key)).await
    }

    async fn purge(
        &self,
        before: DateTime<Utc>,
        actor: &str,
        key: Option<&passerelle_crypto::AnchorKey>,
    ) -> Result<PurgeReport> {
        let v = self.verify().await?;
        if let Some(p) = v.problem {
            return Err(AuditError::BrokenChain(p.to_string()));
        }
        let cutoff = format_time(before);
        let now = format_time(Utc::now());
        macro_rules! purge {
            ($tx:ident) => {{
                let first_kept: Option<i64> =
                    sqlx::query("SELECT MIN(seq) FROM audit_entry WHERE at >= $1")
                        .bind(cutoff.clone())
                        .fetch_one(&mut *$tx)
                        .await
                        .and_then(|r| r.try_get(0))
                        .map_err(AuditError::db("finding the purge point"))?;
                let head_seq: i64 = sqlx::query("SELECT seq FROM audit_head WHERE id = 1")
                    .fetch_one(&mut *$tx)
                    .await
                    .and_then(|r| r.try_get(0))
                    .map_err(AuditError::db("reading the head"))?;
                let last_cp: Option<i64> = sqlx::query("SELECT MAX(seq) FROM audit_checkpoint")
                    .fetch_one(&mut *$tx)
                    .await
                    .and_then(|r| r.try_get(0))
                    .map_err(AuditError::db("reading checkpoints"))?;
                let purge_seq = first_kept.map_or(head_seq, |s| s - 1);
                if purge_seq <= last_cp.unwrap_or(0) {
                    None
                } else {
                    let hash: Vec<u8> =
                        sqlx::query("SELECT hash FROM audit_entry WHERE seq = $1")
                            .bind(purge_seq)
                            .fetch_one(&mut *$tx)
                            .await
                            .and_then(|r| r.try_get(0))
                            .map_err(AuditError::db("reading the purge point"))?;
                    sqlx::query(
                        "INSERT INTO audit_checkpoint (seq, hash, purged_before, at) \
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind(purge_seq)
                    .bind(hash.clone())
                    .bind(cutoff.clone())
                    .bind(now.clone())
                    .execute(&mut *$tx)
                    .await
                    .map_err(AuditError::db("recording the checkpoint"))?;
                    let lines = purge_lines!(&mut *$tx, "seq <= $1", purge_seq);
                    let removed_count: u64 = lines.iter().map(|l| l.entries).sum();
                    let record = match key {
                        None => None,
                        Some(k) => {
                            let summary = serde_json::to_string(&lines).map_err(|_| {
                                AuditError::Corrupt("purge summary cannot be encoded".into())
                            })?;
                            let mut a = Anchor::head(purge_seq, &hash, now.clone());
                            a.kind = anchor::CHECKPOINT.to_owned();
                            a.purged_before = Some(cutoff.clone());
                            a.removed = Some(removed_count);
                            a.actor = Some(actor.to_owned());
                            a.summary = Some(summary);
                            let a = a.sign(k);
                            insert_anchor!(&mut *$tx, &a);
                            Some(a)
                        }
                    };
                    let removed = sqlx::query("DELETE FROM audit_entry WHERE seq <= $1")
                        .bind(purge_seq)
                        .execute(&mut *$tx)
                        .await
                        .map_err(AuditError::db("removing entries"))?
                        .rows_affected();
                    sqlx::query(
                        "DELETE FROM audit_subject_index WHERE NOT EXISTS \
                         (SELECT 1 FROM audit_entry e WHERE e.subject = audit_subject_index.subject)",
                    )
                    .execute(&mut *$tx)
                    .await
                    .map_err(AuditError::db("removing blind indexes"))?;
                    Some((removed, Checkpoint {
                        seq: purge_seq,
                        hash: hex::encode(&hash),
                        purged_before: cutoff.clone(),
                        at: now.clone(),
                    }, record, lines))
                }
            }};
        }
        let done = match &self.backend {
            Backend::Sqlite(p) => {
                let mut tx = p
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(AuditError::db("starting a purge"))?;
                sqlx::query("UPDATE audit_purge_guard SET active = 1 WHERE id = 1")
                    .execute(&mut *tx)
                    .await
                    .map_err(AuditError::db("starting a purge"))?;
                let done = purge!(tx);
                sqlx::query("UPDATE audit_purge_guard SET active = 0 WHERE id = 1")
                    .execute(&mut *tx)
                    .await
                    .map_err(AuditError::db("ending a purge"))?;
                tx.commit()
                    .await
                    .map_err(AuditError::db("committing a purge"))?;
                // Old page images of the removed rows stay in the WAL until a
                // checkpoint copies and truncates it; best effort (a reader may hold it).
                if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(p)
                    .await
                {
                    warn!(error = %e, "wal checkpoint after purge failed");
                }
                done
            }
            Backend::Postgres(p) => {
                let mut tx = p
                    .begin()
                    .await
                    .map_err(AuditError::db("starting a purge"))?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(PG_WRITE_LOCK)
                    .execute(&mut *tx)
                    .await
                    .map_err(AuditError::db("taking the write lock"))?;
                sqlx::query("SELECT set_config('passerelle.audit_purge', 'on', true)")
                    .execute(&mut *tx)
                    .await
                    .map_err(AuditError::db("starting a purge"))?;
                let done = purge!(tx);
                tx.commit()
                    .await
                    .map_err(AuditError::db("committing a purge"))?;
                done
            }
        };
        let Some((removed, checkpoint, record, lines)) = done else {
            return Ok(PurgeReport {
                removed: 0,
                checkpoint: None,
                record: None,
                lines: Vec::new(),
            });
        };
        // The purge is itself journaled, which also publishes the checkpoint inside
        // the chain that continues from it.
        let mut entry = NewEntry::new(Event::Purged, actor, Outcome::Ok);
        entry.reason = Some(format!(
            "removed {removed} entries before {cutoff}; checkpoint seq {} hash {}",
            checkpoint.seq, checkpoint.hash
        ));
        self.append(entry).await?;
        Ok(PurgeReport {
            removed,
            checkpoint: Some(checkpoint),
            record,
            lines,
        })
    }

    /// What a purge before `before` would remove, by flow and month, touching nothing.
    pub async fn purge_preview(&self, before: DateTime<Utc>) -> Result<Vec<PurgeLine>> {
        let cutoff = format_time(before);
        Ok(match &self.backend {
            Backend::Sqlite(p) => purge_lines!(p, "at < $1", cutoff),
            Backend::Postgres(p) => purge_lines!(p, "at < $1", cutoff),
        })
    }

    /// Every anchor stored in the journal, by sequence number.
    pub async fn anchors(&self) -> Result<Vec<Anchor>> {
        let sql = "SELECT kind, seq, hash, at, purged_before, removed, actor, summary, \
                   public_key, signature, timestamp FROM audit_anchor ORDER BY seq, kind";
        macro_rules! read {
            ($p:expr) => {{
                let rows = sqlx::query(sql)
                    .fetch_all($p)
                    .await
                    .map_err(AuditError::db("reading anchors"))?;
                let mut out = Vec::with_capacity(rows.len());
                for r in rows {
                    let get = |e| AuditError::db("reading anchors")(e);
                    out.push(Anchor {
                        kind: r.try_get(0).map_err(get)?,
                        seq: r.try_get(1).map_err(get)?,
                        hash: r.try_get(2).map_err(get)?,
                        at: r.try_get(3).map_err(get)?,
                        purged_before: r.try_get(4).map_err(get)?,
                        removed: r
                            .try_get::<Option<i64>, _>(5)
                            .map_err(get)?
                            .map(|n| n.max(0) as u64),
                        actor: r.try_get(6).map_err(get)?,
                        summary: r.try_get(7).map_err(get)?,
                        public_key: r.try_get(8).map_err(get)?,
                        signature: r.try_get(9).map_err(get)?,
                        timestamp: r.try_get(10).map_err(get)?,
                    });
                }
                out
            }};
        }
        Ok(match &self.backend {
            Backend::Sqlite(p) => read!(p),
            Backend::Postgres(p) => read!(p),
        })
    }

    /// Signs the head with the hub's key and stores the anchor; `None` while the
    /// journal is empty. Anchoring an unchanged head again returns the stored anchor.
    pub async fn anchor(&self, key: &passerelle_crypto::AnchorKey) -> Result<Option<Anchor>> {
        self.anchor_with(key, async |_| Ok(None)).await
    }

    /// As [`anchor`](Self::anchor), with `timestamp` giving an RFC 3161 token (hex DER)
    /// for the statement, called before the anchor is stored. Its error (a TSA that
    /// cannot be reached or answers wrong) stores nothing: the caller decides whether
    /// to anchor without a token.
    pub async fn anchor_with(
        &self,
        key: &passerelle_crypto::AnchorKey,
        timestamp: impl AsyncFnOnce(Vec<u8>) -> std::result::Result<Option<String>, String>,
    ) -> Result<Option<Anchor>> {
        let (seq, hash) = self.head().await?;
        if seq == 0 {
            return Ok(None);
        }
        if let Some(a) =
            self.anchors().await?.into_iter().find(|a| {
                a.kind == anchor::HEAD && a.seq == seq && a.is_signed_by(&key.public_hex())
            })
        {
            return Ok(Some(a));
        }
        let mut a = Anchor::head(seq, &hash, format_time(Utc::now())).sign(key);
        a.timestamp = match a.statement() {
            Some(s) => timestamp(s).await.map_err(AuditError::Timestamp)?,
            None => None,
        };
        match &self.backend {
            Backend::Sqlite(p) => insert_anchor!(p, &a),
            Backend::Postgres(p) => insert_anchor!(p, &a),
        }
        Ok(Some(a))
    }

    /// The stored hash of one entry, hex.
    async fn hash_at(&self, seq: i64) -> Result<Option<String>> {
        let sql = "SELECT hash FROM audit_entry WHERE seq = $1";
        let h: Option<Vec<u8>> = match &self.backend {
            Backend::Sqlite(p) => sqlx::query(sql)
                .bind(seq)
                .fetch_optional(p)
                .await
                .and_then(|r| r.map(|r| r.try_get(0)).transpose()),
            Backend::Postgres(p) => sqlx::query(sql)
                .bind(seq)
                .fetch_optional(p)
                .await
                .and_then(|r| r.map(|r| r.try_get(0)).transpose()),
        }
        .map_err(AuditError::db("reading an anchored entry"))?;
        Ok(h.map(hex::encode))
    }

    /// Walks the chain, then checks it against its anchors (those stored in the journal
    /// and `outside`, read from an anchor file) with the hub's public key.
    pub async fn verify_anchored(
        &self,
        public_key: Option<&str>,
        outside: &[Anchor],
    ) -> Result<Anchored> {
        let chain = self.verify().await?;
        let mut anchors = self.anchors().await?;
        let in_journal = anchors.len();
        for a in outside {
            if !anchors.contains(a) {
                anchors.push(a.clone());
            }
        }
        anchors.sort_by(|a, b| (a.seq, &a.kind).cmp(&(b.seq, &b.kind)));
        let checkpoints = self.checkpoints().await?;
        let mut problems = Vec::new();
        if chain.is_intact() {
            let mut hashes = std::collections::HashMap::new();
            let start = chain.checkpoint.as_ref().map_or(0, |c| c.seq);
            for a in &anchors {
                if a.seq > start && a.seq <= chain.last_seq && !hashes.contains_key(&a.seq) {
                    hashes.insert(a.seq, self.hash_at(a.seq).await?);
                }
            }
            problems = anchor::check(
                &anchors,
                public_key,
                &ChainFacts {
                    checkpoints: &checkpoints,
                    start: chain.checkpoint.as_ref(),
                    last_seq: chain.last_seq,
                },
                |seq| hashes.get(&seq).cloned().flatten(),
            );
        }
        let last = anchors
            .iter()
            .filter(|a| public_key.is_some_and(|pk| a.is_signed_by(pk)))
            .max_by_key(|a| (a.seq, a.at.clone()))
            .cloned();
        Ok(Anchored {
            chain,
            anchors: anchors.len(),
            in_journal,
            last,
            problems,
        })
    }

    /// PostgreSQL only: lets `role` (which must exist) append and read, and nothing
    /// else: `INSERT` and `SELECT` on the entries and blind indexes, `SELECT` on the
    /// rest. The head moves through the owner's `SECURITY DEFINER` trigger.
    pub async fn grant_writer(&self, role: &str) -> Result<()> {
        let Backend::Postgres(p) = &self.backend else {
            return Err(AuditError::Invalid {
                what: "engine",
                rule: "roles exist only on postgres".into(),
            });
        };
        if role.is_empty()
            || !role
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(AuditError::Invalid {
                what: "role",
                rule: "must be lowercase letters, digits and underscores".into(),
            });
        }
        let sql = format!(
            "GRANT USAGE ON SCHEMA {s} TO {role}; \
             GRANT SELECT, INSERT ON audit_entry, audit_subject_index, audit_anchor TO {role}; \
             GRANT SELECT ON audit_head, audit_checkpoint, audit_schema_version TO {role};",
            s = "\"current_schema\"",
        );
        // USAGE is granted on the actual current schema, looked up first.
        let schema: String = sqlx::query("SELECT quote_ident(current_schema())")
            .fetch_one(p)
            .await
            .and_then(|r| r.try_get(0))
            .map_err(AuditError::db("granting the writer role"))?;
        let sql = sql.replace("\"current_schema\"", &schema);
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(p)
            .await
            .map_err(AuditError::db("granting the writer role"))?;
        Ok(())
    }
}

/// Follows the chain entry by entry and keeps the first problem.
struct Walker {
    start_seq: i64,
    expected: i64,
    prev: Vec<u8>,
    count: u64,
    problem: Option<Problem>,
}

impl Walker {
    fn new(checkpoint: Option<&Checkpoint>) -> Result<Self> {
        let (start_seq, prev) = match checkpoint {
            None => (0, GENESIS_HASH.to_vec()),
            Some(c) => (
                c.seq,
                hex::decode(&c.hash).map_err(|_| bad_hash("checkpoint"))?,
            ),
        };
        Ok(Self {
            start_seq,
            expected: start_seq + 1,
            prev,
            count: 0,
            problem: None,
        })
    }

    fn fail(&mut self, p: Problem) {
        if self.problem.is_none() {
            self.problem = Some(p);
        }
    }

    /// Checks one entry; false when the walk must stop.
    fn step(&mut self, e: &EntryView<'_>, hash: &[u8]) -> bool {
        if e.seq != self.expected {
            self.fail(Problem::Missing {
                seq: self.expected,
                next_present: e.seq,
            });
            return false;
        }
        if e.chain_hash(&self.prev)[..] != *hash {
            self.fail(Problem::Altered { seq: e.seq });
            return false;
        }
        self.prev.clear();
        self.prev.extend_from_slice(hash);
        self.expected += 1;
        self.count += 1;
        true
    }

    fn finish(
        mut self,
        head_seq: i64,
        head_hash: &[u8],
        checkpoint: Option<Checkpoint>,
    ) -> Result<Verification> {
        let last = self.expected - 1;
        if self.problem.is_none() {
            if head_seq > last {
                self.fail(Problem::TailCut {
                    seq: last + 1,
                    head_seq,
                });
            } else if head_seq < last {
                self.fail(Problem::BeyondHead {
                    seq: head_seq + 1,
                    head_seq,
                });
            } else if head_hash != self.prev.as_slice() {
                self.fail(Problem::HeadMismatch { seq: head_seq });
            }
        }
        Ok(Verification {
            entries: self.count,
            last_seq: last,
            checkpoint,
            problem: self.problem,
            last_hash: hex::encode(&self.prev),
        })
    }
}

/// The appender task: takes whatever jobs are waiting (up to `max_batch` entries) and
/// writes them in one transaction, so concurrent appenders share commits.
async fn appender(backend: Backend, mut rx: mpsc::Receiver<Job>, max_batch: usize) {
    while let Some(first) = rx.recv().await {
        let mut n = first.entries.len();
        let mut jobs = vec![first];
        // Group commit: the callers just woken by the previous batch's replies are
        // runnable but may not have sent yet; yielding lets them enqueue, so that
        // concurrent appenders share one transaction instead of queueing behind many
        // small ones. With a single caller this costs one trip through the scheduler.
        loop {
            tokio::task::yield_now().await;
            let before = jobs.len();
            while n < max_batch {
                match rx.try_recv() {
                    Ok(j) => {
                        n += j.entries.len();
                        jobs.push(j);
                    }
                    Err(_) => break,
                }
            }
            if jobs.len() == before || n >= max_batch {
                break;
            }
        }
        let entries: Vec<&NewEntry> = jobs.iter().flat_map(|j| j.entries.iter()).collect();
        let result = write_batch(&backend, &entries).await;
        debug!(
            entries = n,
            jobs = jobs.len(),
            ok = result.is_ok(),
            "audit batch"
        );
        match result {
            Ok(appended) => {
                let mut it = appended.into_iter();
                for j in jobs {
                    let mine: Vec<Appended> = it.by_ref().take(j.entries.len()).collect();
                    let _ = j.reply.send(Ok(mine));
                }
            }
            Err(e) => {
                warn!(error = %e, entries = n, "audit batch not written");
                for j in jobs {
                    let _ = j.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Chains the entries from the head and inserts them, with their blind indexes, in one
/// transaction holding the write lock.
async fn write_batch(backend: &Backend, entries: &[&NewEntry]) -> Result<Vec<Appended>> {
    macro_rules! body {
        ($tx:ident) => {{
            let head = sqlx::query("SELECT seq, hash, at FROM audit_head WHERE id = 1")
                .fetch_one(&mut *$tx)
                .await
                .map_err(AuditError::db("reading the head"))?;
            let seq: i64 = head
                .try_get(0)
                .map_err(AuditError::db("reading the head"))?;
            let prev: Vec<u8> = head
                .try_get(1)
                .map_err(AuditError::db("reading the head"))?;
            let head_at: String = head
                .try_get(2)
                .map_err(AuditError::db("reading the head"))?;
            let (rows, index) = chain(seq, &prev, &head_at, entries)?;
            for chunk in fixed_chunks(&rows) {
                let mut qb = QueryBuilder::new(format!("INSERT INTO audit_entry ({COLUMNS}) "));
                qb.push_values(chunk, |mut b, (e, fields)| {
                    b.push_bind(e.seq)
                        .push_bind(e.at.clone())
                        .push_bind(e.event.clone())
                        .push_bind(e.actor.clone())
                        .push_bind(e.flow.clone())
                        .push_bind(e.sender.clone())
                        .push_bind(e.recipient.clone())
                        .push_bind(e.subject.clone())
                        .push_bind(fields.clone())
                        .push_bind(e.legal_basis.clone())
                        .push_bind(e.ciphertext_digest.clone())
                        .push_bind(e.outcome.clone())
                        .push_bind(e.reason.clone())
                        .push_bind(e.hash.clone());
                });
                qb.build()
                    .execute(&mut *$tx)
                    .await
                    .map_err(AuditError::db("inserting entries"))?;
            }
            let index: Vec<_> = index.into_iter().collect();
            for chunk in fixed_chunks(&index) {
                let mut qb = QueryBuilder::new(
                    "INSERT INTO audit_subject_index (kind, blind_index, subject) ",
                );
                qb.push_values(chunk, |mut b, (kind, value, subject)| {
                    b.push_bind(*kind)
                        .push_bind(value.clone())
                        .push_bind(subject.clone());
                });
                qb.push(" ON CONFLICT DO NOTHING");
                qb.build()
                    .execute(&mut *$tx)
                    .await
                    .map_err(AuditError::db("inserting blind indexes"))?;
            }
            $tx.commit()
                .await
                .map_err(AuditError::db("committing entries"))?;
            Ok(rows
                .iter()
                .map(|(e, _)| Appended {
                    seq: e.seq,
                    hash: to_hash(&e.hash).unwrap_or_default(),
                })
                .collect())
        }};
    }
    match backend {
        Backend::Sqlite(p) => {
            let mut tx = p
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(AuditError::db("taking the write lock"))?;
            body!(tx)
        }
        Backend::Postgres(p) => {
            let mut tx = p
                .begin()
                .await
                .map_err(AuditError::db("starting a write"))?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(PG_WRITE_LOCK)
                .execute(&mut *tx)
                .await
                .map_err(AuditError::db("taking the write lock"))?;
            body!(tx)
        }
    }
}

type IndexRow = (&'static str, String, String);
/// Entries ready to insert (with their field paths as JSON) and their blind indexes.
type Chained = (Vec<(Entry, String)>, BTreeSet<IndexRow>);

/// Gives each entry its sequence number, time and hash, following the head. Times never
/// go backwards along the chain (a clock step back reuses the head's time), so that a
/// purge by date always removes a prefix.
fn chain(head_seq: i64, head_hash: &[u8], head_at: &str, entries: &[&NewEntry]) -> Result<Chained> {
    let now = format_time(Utc::now());
    let at = if now.as_str() < head_at {
        head_at.to_owned()
    } else {
        now
    };
    let mut prev = head_hash.to_vec();
    let mut rows = Vec::with_capacity(entries.len());
    let mut index = BTreeSet::new();
    for (i, n) in entries.iter().enumerate() {
        let subject = n.subject.as_ref().map(|s| s.pseudonym.clone());
        if let Some(s) = &n.subject {
            for b in &s.identifiers {
                index.insert((b.kind, b.value.clone(), s.pseudonym.clone()));
            }
        }
        let mut e = Entry {
            seq: head_seq + 1 + i as i64,
            at: at.clone(),
            event: n.event.as_str().to_owned(),
            actor: n.actor.clone(),
            flow: n.flow.clone(),
            sender: n.sender.clone(),
            recipient: n.recipient.clone(),
            subject,
            fields: n.fields.clone(),
            legal_basis: n.legal_basis.clone(),
            ciphertext_digest: n.ciphertext_digest.clone(),
            outcome: n.outcome.as_str().to_owned(),
            reason: n.reason.clone(),
            hash: Vec::new(),
        };
        let h = e.chain_hash(&prev);
        e.hash = h.to_vec();
        prev = e.hash.clone();
        let fields = serde_json::to_string(&e.fields)
            .map_err(|_| AuditError::Corrupt("field paths cannot be encoded".into()))?;
        rows.push((e, fields));
    }
    Ok((rows, index))
}

async fn migrate_sqlite(pool: &SqlitePool) -> Result<()> {
    let mut tx = pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(AuditError::db("migrating"))?;
    sqlx::query("CREATE TABLE IF NOT EXISTS audit_schema_version (version INTEGER NOT NULL)")
        .execute(&mut *tx)
        .await
        .map_err(AuditError::db("migrating"))?;
    let version: Option<i64> = sqlx::query("SELECT MAX(version) FROM audit_schema_version")
        .fetch_one(&mut *tx)
        .await
        .and_then(|r| r.try_get(0))
        .map_err(AuditError::db("migrating"))?;
    let version = version.unwrap_or(0);
    check_version(version, schema::SQLITE.len())?;
    for (i, sql) in schema::SQLITE.iter().enumerate().skip(version as usize) {
        sqlx::raw_sql(AssertSqlSafe(*sql))
            .execute(&mut *tx)
            .await
            .map_err(AuditError::db("migrating"))?;
        sqlx::query("INSERT INTO audit_schema_version (version) VALUES ($1)")
            .bind(i as i64 + 1)
            .execute(&mut *tx)
            .await
            .map_err(AuditError::db("migrating"))?;
    }
    tx.commit().await.map_err(AuditError::db("migrating"))?;
    Ok(())
}

async fn migrate_postgres(pool: &PgPool) -> Result<()> {
    // A writer role may not create tables: when the schema is current, touch nothing.
    let current = read_pg_version(pool).await?;
    if current == Some(schema::POSTGRES.len() as i64) {
        return Ok(());
    }
    let mut tx = pool.begin().await.map_err(AuditError::db("migrating"))?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(PG_WRITE_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(AuditError::db("migrating"))?;
    sqlx::query("CREATE TABLE IF NOT EXISTS audit_schema_version (version BIGINT NOT NULL)")
        .execute(&mut *tx)
        .await
        .map_err(AuditError::db("migrating"))?;
    let version: Option<i64> = sqlx::query("SELECT MAX(version) FROM audit_schema_version")
        .fetch_one(&mut *tx)
        .await
        .and_then(|r| r.try_get(0))
        .map_err(AuditError::db("migrating"))?;
    let version = version.unwrap_or(0);
    check_version(version, schema::POSTGRES.len())?;
    let schema_name: String = sqlx::query("SELECT quote_ident(current_schema())")
        .fetch_one(&mut *tx)
        .await
        .and_then(|r| r.try_get(0))
        .map_err(AuditError::db("migrating"))?;
    for (i, sql) in schema::POSTGRES.iter().enumerate().skip(version as usize) {
        let sql = sql.replace("{schema}", &schema_name);
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await
            .map_err(AuditError::db("migrating"))?;
        sqlx::query("INSERT INTO audit_schema_version (version) VALUES ($1)")
            .bind(i as i64 + 1)
            .execute(&mut *tx)
            .await
            .map_err(AuditError::db("migrating"))?;
    }
    tx.commit().await.map_err(AuditError::db("migrating"))?;
    Ok(())
}

async fn read_pg_version(pool: &PgPool) -> Result<Option<i64>> {
    let exists: Option<String> = sqlx::query("SELECT to_regclass('audit_schema_version')::text")
        .fetch_one(pool)
        .await
        .and_then(|r| r.try_get(0))
        .map_err(AuditError::db("migrating"))?;
    if exists.is_none() {
        return Ok(None);
    }
    sqlx::query("SELECT MAX(version) FROM audit_schema_version")
        .fetch_one(pool)
        .await
        .and_then(|r| r.try_get(0))
        .map_err(AuditError::db("migrating"))
}

fn check_version(found: i64, known: usize) -> Result<()> {
    if found < 0 || found as usize > known {
        return Err(AuditError::Corrupt(format!(
            "schema version {found} is newer than this program knows ({known})"
        )));
    }
    Ok(())
}

/// Cuts `items` into consecutive chunks whose lengths are all in [`CHUNK_SIZES`].
fn fixed_chunks<T>(mut items: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        let size = CHUNK_SIZES.into_iter().find(|&s| s <= items.len())?;
        let (chunk, rest) = items.split_at(size);
        items = rest;
        Some(chunk)
    })
}

/// Creates the journal file readable by its owner only (SQLite gives its WAL and shm
/// files the same mode), unless it exists already.
fn create_private(path: &std::path::Path) -> Result<()> {
    if path.as_os_str().is_empty() || path.as_os_str() == ":memory:" || path.exists() {
        return Ok(());
    }
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    match o.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn to_hash(v: &[u8]) -> Option<[u8; 32]> {
    v.try_into().ok()
}

fn bad_hash(what: &str) -> AuditError {
    AuditError::Corrupt(format!("the {what} hash is not 32 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_everything_in_known_sizes() {
        for n in [0usize, 1, 3, 4, 5, 63, 64, 65, 255, 256, 257, 1_000, 2_345] {
            let v: Vec<usize> = (0..n).collect();
            let chunks: Vec<&[usize]> = fixed_chunks(&v).collect();
            assert!(chunks.iter().all(|c| CHUNK_SIZES.contains(&c.len())), "{n}");
            let flat: Vec<usize> = chunks.concat();
            assert_eq!(flat, v, "{n}");
        }
    }
}
