//! The hub's durable state: the content hash last sent per (flow, recipient, person),
//! every transfer with its receipt status, the identity index (blind indexes only),
//! source cursors, peer references, pending journal entries and reviews. In SQLite (a
//! file under `--data-dir`, the one-machine default) or in PostgreSQL (several hub
//! instances sharing one state), behind the same type: `db` runs one body of code on
//! either engine, `schema` holds each engine's tables.
//!
//! Nothing personal is stored here: persons are hub ids, identifiers are blind
//! indexes, and payloads never leave the transport.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

use chrono::Utc;
use passerelle_identity::{IndexEntry, KeyKind};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use uuid::Uuid;

pub mod coord;
pub(crate) mod db;
mod peer;
pub(crate) mod schema;

pub(crate) use db::{Cols, Db, on};

/// Errors of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("state database holds an invalid {what}")]
    Corrupt { what: &'static str },
    #[error("state url `{0}` is neither `sqlite:` nor `postgres://`")]
    Url(String),
}

type Result<T> = std::result::Result<T, StateError>;

/// Where a transfer stands, as its sender sees it (policy.md, "Receipt").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferStatus {
    Published,
    Delivered,
    Applied,
    Rejected,
    DeadLettered,
}

impl TransferStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Published => "published",
            Self::Delivered => "delivered",
            Self::Applied => "applied",
            Self::Rejected => "rejected",
            Self::DeadLettered => "dead_lettered",
        }
    }

    /// The status a stored or typed name stands for (`dead_lettered`).
    pub fn parse_name(s: &str) -> Option<Self> {
        Self::parse(s)
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        [
            Self::Published,
            Self::Delivered,
            Self::Applied,
            Self::Rejected,
            Self::DeadLettered,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }

    /// How far along a transfer is: receipts may arrive out of order, and a late
    /// `delivered` must not hide an `applied`.
    fn rank(&self) -> u8 {
        match self {
            Self::Published => 0,
            Self::Delivered => 1,
            Self::Rejected | Self::DeadLettered => 2,
            // A replayed dead letter can still be applied; nothing comes after applied.
            Self::Applied => 3,
        }
    }
}

/// One line of the `bilan`: how many transfers of a flow between two organisations
/// stand in a status (no person in it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BilanRow {
    pub flow: String,
    pub sender: String,
    pub recipient: String,
    pub status: TransferStatus,
    pub transfers: u64,
}

/// One transfer as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferRow {
    pub transfer_id: Uuid,
    pub flow: String,
    pub sender: String,
    pub recipient: String,
    pub hub_id: Uuid,
    pub status: TransferStatus,
    /// Why it was rejected or dead-lettered (codes and field paths, never values).
    pub reason: Option<String>,
}

/// A transfer to record as published, with its change-detection key (`stream`, the
/// recipient and the kind of source, see `engine::send`) and its content hash.
#[derive(Debug, Clone)]
pub struct PublishedRow {
    pub row: TransferRow,
    pub stream: String,
    pub hash: [u8; 32],
    /// The journal entries this transfer brings (serialised by the engine), kept as
    /// pending with the transfer in one transaction when it is new.
    pub entries: Vec<Vec<u8>>,
}

/// A receipt moving a transfer forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub transfer_id: Uuid,
    pub status: TransferStatus,
    /// Why (codes and field paths, never values).
    pub reason: Option<String>,
}

/// What a write kept as pending journal entries: their ids, to drop once journaled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pending(pub Vec<i64>);

/// One pending journal entry, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEntry {
    pub id: i64,
    pub transfer_id: Uuid,
    pub entry: Vec<u8>,
    /// When it was kept (RFC 3339): the journal entry, if written, is not older.
    pub since: String,
}

/// The two tables of per-person hashes: what was last sent, what was last denied.
#[derive(Debug, Clone, Copy)]
enum HashTable {
    Sent,
    Denied,
}

impl HashTable {
    fn name(self) -> &'static str {
        match self {
            Self::Sent => "sent_hash",
            Self::Denied => "denied_hash",
        }
    }
}

/// The hub's state store, on SQLite or PostgreSQL.
#[derive(Debug, Clone)]
pub struct HubState {
    db: Db,
}

fn uuid(s: &str, what: &'static str) -> Result<Uuid> {
    Uuid::from_str(s).map_err(|_| StateError::Corrupt { what })
}

fn status(s: &str) -> Result<TransferStatus> {
    TransferStatus::parse(s).ok_or(StateError::Corrupt { what: "status" })
}

fn hash32(bytes: Vec<u8>) -> Result<[u8; 32]> {
    bytes
        .try_into()
        .map_err(|_| StateError::Corrupt { what: "hash" })
}

impl HubState {
    /// Opens (creating when missing) the SQLite state database at `path`.
    pub async fn open(path: &Path) -> Result<Self> {
        Self::open_sqlite(SqliteConnectOptions::new().filename(path)).await
    }

    /// Opens the state named by a URL: `sqlite:` and a path (created when missing) or
    /// `postgres://…` (the database must exist; its tables are created when missing).
    pub async fn connect(url: &str) -> Result<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url)?;
            Self::open_postgres(opts).await
        } else if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)?;
            Self::open_sqlite(opts).await
        } else {
            // The URL may hold a password: only its scheme is named.
            let scheme = url.split(':').next().unwrap_or_default();
            Err(StateError::Url(format!("{scheme}:…")))
        }
    }

    async fn open_sqlite(opts: SqliteConnectOptions) -> Result<Self> {
        let opts = opts
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        sqlx::raw_sql(schema::SQLITE).execute(&pool).await?;
        sqlx::raw_sql(schema::PEER).execute(&pool).await?;
        sqlx::raw_sql(schema::COORD_SQLITE).execute(&pool).await?;
        add_sender_ref_column(&pool).await?;
        Ok(Self {
            db: Db::Sqlite(pool),
        })
    }

    /// Opens the state in an existing PostgreSQL database, creating its tables when
    /// missing. Instances starting together create them once: the schema is written
    /// under an advisory lock.
    pub async fn open_postgres(opts: PgConnectOptions) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(std::time::Duration::from_secs(30))
            .connect_with(opts)
            .await?;
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(7215, 0)")
            .execute(&mut *tx)
            .await?;
        sqlx::raw_sql(schema::POSTGRES).execute(&mut *tx).await?;
        sqlx::raw_sql(schema::PEER).execute(&mut *tx).await?;
        sqlx::raw_sql(schema::COORD_POSTGRES)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Self {
            db: Db::Postgres(pool),
        })
    }

    /// Which engine holds the state (`sqlite`, `postgres`).
    pub fn engine_name(&self) -> &'static str {
        match self.db {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// The pool, for the other stores kept in the same database (`web`, `review`).
    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite(p) => p.close().await,
            Db::Postgres(p) => p.close().await,
        }
    }

    /// The hash last sent about a person to a recipient under a flow.
    pub async fn last_hash(
        &self,
        flow: &str,
        recipient: &str,
        hub_id: &Uuid,
    ) -> Result<Option<[u8; 32]>> {
        let bytes: Option<Vec<u8>> = on!(&self.db, |p, q| {
            sqlx::query_scalar(q(
                "SELECT hash FROM sent_hash WHERE flow = ? AND recipient = ? AND hub_id = ?",
            ))
            .bind(flow)
            .bind(recipient)
            .bind(hub_id.to_string())
            .fetch_optional(p)
            .await?
        });
        bytes.map(hash32).transpose()
    }

    /// Records that a transfer was published (confirmed and journaled) with this
    /// content hash, in one transaction, so that the next run skips it unless the
    /// content changes. Recording the same transfer again keeps its later status.
    pub async fn record_published(&self, row: &TransferRow, hash: &[u8; 32]) -> Result<()> {
        self.record_published_many(&[(row.clone(), *hash)]).await
    }

    /// The hashes last sent to a recipient under a flow for several persons at once
    /// (absent persons were never sent anything).
    pub async fn last_hashes(
        &self,
        flow: &str,
        recipient: &str,
        hub_ids: &[Uuid],
    ) -> Result<HashMap<Uuid, [u8; 32]>> {
        self.hashes_in(HashTable::Sent, flow, recipient, hub_ids)
            .await
    }

    /// The hashes `table` holds about these persons under a flow to a recipient.
    async fn hashes_in(
        &self,
        table: HashTable,
        flow: &str,
        recipient: &str,
        hub_ids: &[Uuid],
    ) -> Result<HashMap<Uuid, [u8; 32]>> {
        let mut out = HashMap::with_capacity(hub_ids.len());
        // SQLite binds at most 32,766 values; chunks stay far below.
        for ids in hub_ids.chunks(500) {
            let sql = format!(
                "SELECT hub_id, hash FROM {} WHERE flow = ? AND recipient = ? AND hub_id IN ({})",
                table.name(),
                marks(ids.len(), "?")
            );
            let rows: Vec<(String, Vec<u8>)> = on!(&self.db, |p, q| {
                // Only a table name and `?` marks are formatted in: the values are bound.
                let mut qq = sqlx::query_as(q(&sql)).bind(flow).bind(recipient);
                for id in ids {
                    qq = qq.bind(id.to_string());
                }
                qq.fetch_all(p).await?
            });
            for (hub, bytes) in rows {
                out.insert(uuid(&hub, "hub id")?, hash32(bytes)?);
            }
        }
        Ok(out)
    }

    /// `record_published` for many transfers in one transaction, a few multi-row
    /// statements per chunk: each statement is a round trip to SQLite's worker thread,
    /// which costs more than the insert itself.
    pub async fn record_published_many(&self, rows: &[(TransferRow, [u8; 32])]) -> Result<()> {
        let rows: Vec<PublishedRow> = rows
            .iter()
            .map(|(r, h)| PublishedRow {
                row: r.clone(),
                stream: r.recipient.clone(),
                hash: *h,
                entries: Vec::new(),
            })
            .collect();
        self.record_published_rows(&rows, &Pending::default())
            .await
            .map(|_| ())
    }

    /// `record_published_many` where each hash is kept under its own change-detection
    /// key and each new transfer brings its journal entries, kept pending in the same
    /// transaction. Returns, for each row, whether its transfer is new (a transfer
    /// recorded before, by a night that crashed after recording it, is not journaled
    /// again), and the ids of the pending entries kept. A receipt that came before the
    /// transfer was recorded (`receipt_early`) moves it on at once.
    pub async fn record_published_rows(
        &self,
        rows: &[PublishedRow],
        done: &Pending,
    ) -> Result<(Vec<bool>, Pending)> {
        if rows.is_empty() && done.0.is_empty() {
            return Ok((Vec::new(), Pending::default()));
        }
        let now = Utc::now().to_rfc3339();
        let begin = self.db.begin_sql();
        let pg = self.db.is_postgres();
        on!(&self.db, |p, q| {
            let mut tx = p.begin_with(begin).await?;
            if pg {
                sqlx::query(db::TRANSFER_LOCK).execute(&mut *tx).await?;
            }
            drop_pending!(tx, q, done);
            let mut new = std::collections::HashSet::new();
            for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                let sql = format!(
                    "INSERT INTO transfer (transfer_id, flow, sender, recipient, hub_id, status, reason, created_at, updated_at)
                     VALUES {} ON CONFLICT (transfer_id) DO NOTHING RETURNING transfer_id",
                    marks(chunk.len(), "(?, ?, ?, ?, ?, 'published', NULL, ?, ?)")
                );
                // Only `?` marks are formatted in: the values are bound.
                let mut qq = sqlx::query_scalar::<_, String>(q(&sql));
                for p in chunk {
                    let row = &p.row;
                    qq = qq
                        .bind(row.transfer_id.to_string())
                        .bind(row.flow.clone())
                        .bind(row.sender.clone())
                        .bind(row.recipient.clone())
                        .bind(row.hub_id.to_string())
                        .bind(now.clone())
                        .bind(now.clone());
                }
                new.extend(qq.fetch_all(&mut *tx).await?);
                // One person twice in a chunk: PostgreSQL refuses to update a row twice
                // in one statement, so the last of them is kept (as SQLite would).
                let mut streams: Vec<&PublishedRow> = Vec::with_capacity(chunk.len());
                for p in chunk {
                    let key =
                        |x: &PublishedRow| (x.row.flow.clone(), x.stream.clone(), x.row.hub_id);
                    match streams.iter_mut().find(|s| key(s) == key(p)) {
                        Some(s) => *s = p,
                        None => streams.push(p),
                    }
                }
                let sql = format!(
                    "INSERT INTO sent_hash (flow, recipient, hub_id, hash, transfer_id, updated_at) VALUES {}
                     ON CONFLICT (flow, recipient, hub_id) DO UPDATE SET hash = excluded.hash,
                     transfer_id = excluded.transfer_id, updated_at = excluded.updated_at",
                    marks(streams.len(), "(?, ?, ?, ?, ?, ?)")
                );
                let mut qq = sqlx::query(q(&sql));
                for p in streams {
                    qq = qq
                        .bind(p.row.flow.clone())
                        .bind(p.stream.clone())
                        .bind(p.row.hub_id.to_string())
                        .bind(p.hash.to_vec())
                        .bind(p.row.transfer_id.to_string())
                        .bind(now.clone());
                }
                qq.execute(&mut *tx).await?;
            }
            // Receipts that came first: the transfer takes their status now. Under the
            // lock no receipt is kept early for a transfer that has its row. Usually
            // there is none, and then nothing more is asked.
            let early: Option<String> =
                sqlx::query_scalar("SELECT transfer_id FROM receipt_early LIMIT 1")
                    .fetch_optional(&mut *tx)
                    .await?;
            if early.is_some() {
                // Looked up by key from the few early rows, never a walk of `transfer`.
                let pick = |col: &str| {
                    format!(
                        "(SELECT e.{col} FROM receipt_early AS e WHERE e.transfer_id = transfer.transfer_id)"
                    )
                };
                sqlx::query(q(&format!(
                    "UPDATE transfer SET status = {}, reason = {}, updated_at = {}
                     WHERE transfer_id IN (SELECT transfer_id FROM receipt_early)
                     AND {} > {}",
                    pick("status"),
                    pick("reason"),
                    pick("at"),
                    RANK_SQL.replace("{s}", &pick("status")),
                    RANK_SQL.replace("{s}", "transfer.status")
                )))
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "DELETE FROM receipt_early WHERE transfer_id IN (SELECT transfer_id FROM transfer
                     WHERE transfer_id IN (SELECT transfer_id FROM receipt_early))",
                )
                .execute(&mut *tx)
                .await?;
            }
            // A row twice in one call (the same person listed twice) is new once.
            let mut flags = Vec::with_capacity(rows.len());
            let mut pending = Vec::new();
            for p in rows {
                let is_new = new.remove(&p.row.transfer_id.to_string());
                flags.push(is_new);
                if is_new {
                    for e in &p.entries {
                        pending.push((p.row.transfer_id, e.as_slice()));
                    }
                }
            }
            let ids = keep_pending!(tx, q, &pending, &now);
            tx.commit().await?;
            Ok((flags, ids))
        })
    }

    /// `set_status` for many receipts in one transaction; returns, for each, whether
    /// it moved the transfer forward. Current statuses are read with one statement per
    /// chunk and the moves written with one more.
    pub async fn set_statuses(&self, receipts: &[StatusChange]) -> Result<Vec<bool>> {
        let (moved, _) = self.settle(receipts, &[], &Pending::default()).await?;
        Ok(moved)
    }

    /// Moves transfers forward on receipts, in one transaction, keeping as pending the
    /// journal entry (`entries`, one per receipt, or none) of each receipt that moved
    /// its transfer; drops the pending entries `done` names (journaled since). Returns
    /// which receipts moved their transfer and the ids of the entries kept. A receipt
    /// read twice (two nights reading one answer, a redelivery) moves nothing the
    /// second time: only the first is journaled.
    ///
    /// Statuses only move forward (published → delivered → applied or rejected). A
    /// receipt for a transfer with no row yet (its publisher, this instance or another,
    /// has not recorded it) is kept in `receipt_early` and counts as a move; the
    /// transfer takes it when it is recorded. On PostgreSQL the transaction holds
    /// `TRANSFER_LOCK`, so that two instances settling one transfer do not interleave.
    pub async fn settle(
        &self,
        receipts: &[StatusChange],
        entries: &[Vec<u8>],
        done: &Pending,
    ) -> Result<(Vec<bool>, Pending)> {
        let now = Utc::now().to_rfc3339();
        let begin = self.db.begin_sql();
        let pg = self.db.is_postgres();
        on!(&self.db, |p, q| {
            let mut tx = p.begin_with(begin).await?;
            if pg && !receipts.is_empty() {
                sqlx::query(db::TRANSFER_LOCK).execute(&mut *tx).await?;
            }
            drop_pending!(tx, q, done);
            let mut out = Vec::with_capacity(receipts.len());
            for chunk in receipts.chunks(ROWS_PER_STATEMENT) {
                // Receipts for known transfers first; what was kept early only for the rest.
                macro_rules! statuses_in {
                    ($table:literal, $ids:expr) => {{
                        let ids: Vec<Uuid> = $ids;
                        let mut out: HashMap<Uuid, TransferStatus> = HashMap::new();
                        if !ids.is_empty() {
                            let sql = format!(
                                "SELECT transfer_id, status FROM {} WHERE transfer_id IN ({})",
                                $table,
                                marks(ids.len(), "?")
                            );
                            // Only `?` marks and a table name are formatted in: the
                            // values are bound.
                            let mut qq = sqlx::query_as::<_, (String, String)>(q(&sql));
                            for id in &ids {
                                qq = qq.bind(id.to_string());
                            }
                            for (id, s) in qq.fetch_all(&mut *tx).await? {
                                out.insert(uuid(&id, "transfer id")?, status(&s)?);
                            }
                        }
                        out
                    }};
                }
                let mut current =
                    statuses_in!("transfer", chunk.iter().map(|c| c.transfer_id).collect());
                let mut early = statuses_in!(
                    "receipt_early",
                    chunk
                        .iter()
                        .map(|c| c.transfer_id)
                        .filter(|id| !current.contains_key(id))
                        .collect()
                );
                // The same transfer twice in a chunk: the later receipt sees the earlier.
                let mut moves: Vec<(Uuid, TransferStatus, Option<&str>)> = Vec::new();
                let mut early_moves: Vec<(Uuid, TransferStatus, Option<&str>)> = Vec::new();
                for c in chunk {
                    let (now_status, moves) = match current.get_mut(&c.transfer_id) {
                        Some(s) => (s, &mut moves),
                        // No row: what was kept early, or as if just published.
                        None => (
                            early
                                .entry(c.transfer_id)
                                .or_insert(TransferStatus::Published),
                            &mut early_moves,
                        ),
                    };
                    if c.status.rank() <= now_status.rank() {
                        out.push(false);
                        continue;
                    }
                    *now_status = c.status;
                    match moves.iter_mut().find(|(m, ..)| *m == c.transfer_id) {
                        Some(m) => *m = (c.transfer_id, c.status, c.reason.as_deref()),
                        None => moves.push((c.transfer_id, c.status, c.reason.as_deref())),
                    }
                    out.push(true);
                }
                if !moves.is_empty() {
                    let sql = format!(
                        "UPDATE transfer SET status = v.column2, reason = v.column3, updated_at = ?
                         FROM (VALUES {}) AS v WHERE transfer.transfer_id = v.column1",
                        marks(moves.len(), "(?, ?, ?)")
                    );
                    let mut qq = sqlx::query(q(&sql)).bind(now.clone());
                    for (id, status, reason) in moves {
                        qq = qq
                            .bind(id.to_string())
                            .bind(status.as_str())
                            .bind(reason.map(str::to_owned));
                    }
                    qq.execute(&mut *tx).await?;
                }
                if !early_moves.is_empty() {
                    let sql = format!(
                        "INSERT INTO receipt_early (transfer_id, status, reason, at) VALUES {}
                         ON CONFLICT (transfer_id) DO UPDATE SET status = excluded.status,
                         reason = excluded.reason, at = excluded.at",
                        marks(early_moves.len(), "(?, ?, ?, ?)")
                    );
                    let mut qq = sqlx::query(q(&sql));
                    for (id, status, reason) in early_moves {
                        qq = qq
                            .bind(id.to_string())
                            .bind(status.as_str())
                            .bind(reason.map(str::to_owned))
                            .bind(now.clone());
                    }
                    qq.execute(&mut *tx).await?;
                }
            }
            let pending: Vec<(Uuid, &[u8])> = receipts
                .iter()
                .zip(&out)
                .zip(entries)
                .filter(|((_, moved), _)| **moved)
                .map(|((c, _), e)| (c.transfer_id, e.as_slice()))
                .collect();
            let ids = keep_pending!(tx, q, &pending, &now);
            tx.commit().await?;
            Ok((out, ids))
        })
    }

    /// Receipts kept for transfers this store has no row for yet, by transfer.
    pub async fn early_receipts(&self) -> Result<HashMap<Uuid, TransferStatus>> {
        let rows: Vec<(String, String)> = on!(&self.db, |p, q| {
            sqlx::query_as("SELECT transfer_id, status FROM receipt_early")
                .fetch_all(p)
                .await?
        });
        rows.iter()
            .map(|(id, s)| Ok((uuid(id, "transfer id")?, status(s)?)))
            .collect()
    }

    /// The statuses of several transfers (unknown ids are left out).
    pub async fn statuses(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, TransferStatus>> {
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT transfer_id, status FROM transfer WHERE transfer_id IN ({})",
                marks(chunk.len(), "?")
            );
            let rows: Vec<(String, String)> = on!(&self.db, |p, q| {
                // Only `?` marks are formatted in: the values are bound.
                let mut qq = sqlx::query_as(q(&sql));
                for id in chunk {
                    qq = qq.bind(id.to_string());
                }
                qq.fetch_all(p).await?
            });
            for (id, s) in rows {
                out.insert(uuid(&id, "transfer id")?, status(&s)?);
            }
        }
        Ok(out)
    }

    /// Every pending journal entry, oldest first (left by a crash, or not dropped yet).
    pub async fn pending_entries(&self) -> Result<Vec<PendingEntry>> {
        let rows: Vec<(i64, String, Vec<u8>, String)> = on!(&self.db, |p, q| {
            sqlx::query_as("SELECT id, transfer_id, entry, since FROM journal_pending ORDER BY id")
                .fetch_all(p)
                .await?
        });
        rows.into_iter()
            .map(|(id, transfer_id, entry, since)| {
                Ok(PendingEntry {
                    id,
                    transfer_id: uuid(&transfer_id, "transfer id")?,
                    entry,
                    since,
                })
            })
            .collect()
    }

    /// Drops pending journal entries once journaled.
    pub async fn drop_pending(&self, done: &Pending) -> Result<()> {
        if done.0.is_empty() {
            return Ok(());
        }
        let begin = self.db.begin_sql();
        on!(&self.db, |p, q| {
            let mut tx = p.begin_with(begin).await?;
            drop_pending!(tx, q, done);
            tx.commit().await?;
        });
        Ok(())
    }

    /// The denials last journaled about these persons under a flow to a recipient.
    pub async fn denied_hashes(
        &self,
        flow: &str,
        recipient: &str,
        hub_ids: &[Uuid],
    ) -> Result<HashMap<Uuid, [u8; 32]>> {
        self.hashes_in(HashTable::Denied, flow, recipient, hub_ids)
            .await
    }

    /// Remembers denials once journaled: (flow, recipient, hub id, hash).
    pub async fn save_denied(&self, denied: &[(String, String, Uuid, [u8; 32])]) -> Result<()> {
        if denied.is_empty() {
            return Ok(());
        }
        let begin = self.db.begin_sql();
        on!(&self.db, |p, q| {
            let mut tx = p.begin_with(begin).await?;
            for chunk in denied.chunks(ROWS_PER_STATEMENT) {
                // One key twice in a statement: PostgreSQL refuses, the last one counts.
                let mut rows: Vec<&(String, String, Uuid, [u8; 32])> = Vec::new();
                for d in chunk {
                    match rows
                        .iter_mut()
                        .find(|r| (&r.0, &r.1, r.2) == (&d.0, &d.1, d.2))
                    {
                        Some(r) => *r = d,
                        None => rows.push(d),
                    }
                }
                let sql = format!(
                    "INSERT INTO denied_hash (flow, recipient, hub_id, hash) VALUES {}
                     ON CONFLICT (flow, recipient, hub_id) DO UPDATE SET hash = excluded.hash",
                    marks(rows.len(), "(?, ?, ?, ?)")
                );
                // Only `?` marks are formatted in: the values are bound.
                let mut qq = sqlx::query(q(&sql));
                for (flow, recipient, hub, hash) in rows {
                    qq = qq
                        .bind(flow.clone())
                        .bind(recipient.clone())
                        .bind(hub.to_string())
                        .bind(hash.to_vec());
                }
                qq.execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Several transfers by id (unknown ids are left out).
    pub async fn transfers(&self, ids: &[Uuid]) -> Result<Vec<TransferRow>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT {TRANSFER_COLUMNS} FROM transfer WHERE transfer_id IN ({})",
                marks(chunk.len(), "?")
            );
            on!(&self.db, |p, q| {
                // Only `?` marks are formatted in: the values are bound.
                let mut qq = sqlx::query(q(&sql));
                for id in chunk {
                    qq = qq.bind(id.to_string());
                }
                for r in qq.fetch_all(p).await? {
                    out.push(to_transfer(&r)?);
                }
            });
        }
        Ok(out)
    }

    /// Stores organisations' own references to persons (sealed by the caller).
    pub async fn save_peer_refs(&self, refs: &[(Uuid, String, Vec<u8>)]) -> Result<()> {
        if refs.is_empty() {
            return Ok(());
        }
        let begin = self.db.begin_sql();
        on!(&self.db, |p, q| {
            let mut tx = p.begin_with(begin).await?;
            for chunk in refs.chunks(ROWS_PER_STATEMENT) {
                // One key twice in a statement: PostgreSQL refuses, the last one counts.
                let mut rows: Vec<&(Uuid, String, Vec<u8>)> = Vec::new();
                for r in chunk {
                    match rows.iter_mut().find(|x| (x.0, &x.1) == (r.0, &r.1)) {
                        Some(x) => *x = r,
                        None => rows.push(r),
                    }
                }
                let sql = format!(
                    "INSERT INTO peer_ref (hub_id, org, sealed) VALUES {}
                     ON CONFLICT (hub_id, org) DO UPDATE SET sealed = excluded.sealed",
                    marks(rows.len(), "(?, ?, ?)")
                );
                // Only `?` marks are formatted in: the values are bound.
                let mut qq = sqlx::query(q(&sql));
                for (hub_id, org, sealed) in rows {
                    qq = qq
                        .bind(hub_id.to_string())
                        .bind(org.clone())
                        .bind(sealed.clone());
                }
                qq.execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// An organisation's sealed references to several persons.
    pub async fn peer_refs(&self, org: &str, hub_ids: &[Uuid]) -> Result<HashMap<Uuid, Vec<u8>>> {
        let mut out = HashMap::new();
        for ids in hub_ids.chunks(500) {
            let sql = format!(
                "SELECT hub_id, sealed FROM peer_ref WHERE org = ? AND hub_id IN ({})",
                marks(ids.len(), "?")
            );
            let rows: Vec<(String, Vec<u8>)> = on!(&self.db, |p, q| {
                // Only `?` marks are formatted in: the values are bound.
                let mut qq = sqlx::query_as(q(&sql)).bind(org);
                for id in ids {
                    qq = qq.bind(id.to_string());
                }
                qq.fetch_all(p).await?
            });
            for (hub, sealed) in rows {
                out.insert(uuid(&hub, "hub id")?, sealed);
            }
        }
        Ok(out)
    }

    /// Queues an uncertain match for a person to settle: the reason and the candidate
    /// hub ids (never the record).
    pub async fn save_review(&self, flow: &str, reason: &str, candidates: &[Uuid]) -> Result<()> {
        let candidates: Vec<String> = candidates.iter().map(Uuid::to_string).collect();
        on!(&self.db, |p, q| {
            sqlx::query(q(
                "INSERT INTO identity_review (flow, reason, candidates, created_at) VALUES (?, ?, ?, ?)",
            ))
            .bind(flow)
            .bind(reason)
            .bind(candidates.join(" "))
            .bind(Utc::now().to_rfc3339())
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// How many uncertain matches wait for a person.
    pub async fn review_count(&self) -> Result<u64> {
        let n: i64 = on!(&self.db, |p, q| {
            sqlx::query_scalar("SELECT COUNT(*) FROM identity_review")
                .fetch_one(p)
                .await?
        });
        Ok(n.max(0) as u64)
    }

    /// Moves a transfer forward on a receipt. A receipt that would move it back
    /// (a late `delivered` after `applied`) is ignored. Returns whether it changed
    /// (a receipt for a transfer not recorded yet is kept, see `settle`).
    pub async fn set_status(
        &self,
        transfer_id: &Uuid,
        status: TransferStatus,
        reason: Option<&str>,
    ) -> Result<bool> {
        let moved = self
            .set_statuses(&[StatusChange {
                transfer_id: *transfer_id,
                status,
                reason: reason.map(str::to_owned),
            }])
            .await?;
        Ok(moved.first().copied().unwrap_or(false))
    }

    /// One transfer.
    pub async fn transfer(&self, transfer_id: &Uuid) -> Result<Option<TransferRow>> {
        let sql = format!("SELECT {TRANSFER_COLUMNS} FROM transfer WHERE transfer_id = ?");
        on!(&self.db, |p, q| {
            let row = sqlx::query(q(&sql))
                .bind(transfer_id.to_string())
                .fetch_optional(p)
                .await?;
            row.map(|r| to_transfer(&r)).transpose()
        })
    }

    /// Transfers left `delivered` (handed to a file peer) since before `before`
    /// without their answer.
    pub async fn unanswered(&self, before: chrono::DateTime<Utc>) -> Result<Vec<TransferRow>> {
        let sql = format!(
            "SELECT {TRANSFER_COLUMNS} FROM transfer WHERE status = 'delivered' AND updated_at < ?"
        );
        on!(&self.db, |p, q| {
            let rows = sqlx::query(q(&sql))
                .bind(before.to_rfc3339())
                .fetch_all(p)
                .await?;
            rows.iter().map(to_transfer).collect()
        })
    }

    /// Forgets what was last sent for these transfers: the next time their source gives
    /// the same record, it is sent again instead of being found unchanged.
    pub async fn forget_sent(&self, transfer_ids: &[Uuid]) -> Result<()> {
        for chunk in transfer_ids.chunks(500) {
            let sql = format!(
                "DELETE FROM sent_hash WHERE transfer_id IN ({})",
                marks(chunk.len(), "?")
            );
            on!(&self.db, |p, q| {
                // Only `?` marks are formatted in: the values are bound.
                let mut qq = sqlx::query(q(&sql));
                for id in chunk {
                    qq = qq.bind(id.to_string());
                }
                qq.execute(p).await?;
            });
        }
        Ok(())
    }

    /// The organisations that sent transfers through this hub.
    pub async fn senders(&self) -> Result<Vec<String>> {
        Ok(on!(&self.db, |p, q| {
            sqlx::query_scalar("SELECT DISTINCT sender FROM transfer ORDER BY sender")
                .fetch_all(p)
                .await?
        }))
    }

    /// The transfers a sender made, optionally under one flow, oldest first.
    pub async fn transfers_of(&self, sender: &str, flow: Option<&str>) -> Result<Vec<TransferRow>> {
        let sql = format!(
            "SELECT {TRANSFER_COLUMNS} FROM transfer
             WHERE sender = ? AND (? IS NULL OR flow = ?) ORDER BY created_at, transfer_id"
        );
        on!(&self.db, |p, q| {
            let rows = sqlx::query(q(&sql))
                .bind(sender)
                .bind(flow)
                .bind(flow)
                .fetch_all(p)
                .await?;
            rows.iter().map(to_transfer).collect()
        })
    }

    /// The `bilan`: transfers created in `[from, to)`, counted per flow, sender,
    /// recipient and status (organisation codes and counts only).
    pub async fn bilan(
        &self,
        from: chrono::DateTime<Utc>,
        to: chrono::DateTime<Utc>,
    ) -> Result<Vec<BilanRow>> {
        let rows: Vec<(String, String, String, String, i64)> = on!(&self.db, |p, q| {
            sqlx::query_as(q(
                "SELECT flow, sender, recipient, status, COUNT(*) FROM transfer
                 WHERE created_at >= ? AND created_at < ?
                 GROUP BY flow, sender, recipient, status ORDER BY flow, sender, recipient, status",
            ))
            .bind(from.to_rfc3339())
            .bind(to.to_rfc3339())
            .fetch_all(p)
            .await?
        });
        rows.into_iter()
            .map(|(flow, sender, recipient, s, n)| {
                Ok(BilanRow {
                    flow,
                    sender,
                    recipient,
                    status: status(&s)?,
                    transfers: n.max(0) as u64,
                })
            })
            .collect()
    }

    /// Counts of transfers per status for one flow.
    pub async fn status_counts(&self, flow: &str) -> Result<Vec<(TransferStatus, u64)>> {
        let rows: Vec<(String, i64)> = on!(&self.db, |p, q| {
            sqlx::query_as(q(
                "SELECT status, COUNT(*) FROM transfer WHERE flow = ? GROUP BY status ORDER BY status",
            ))
            .bind(flow)
            .fetch_all(p)
            .await?
        });
        rows.into_iter()
            .map(|(s, n)| Ok((status(&s)?, n.max(0) as u64)))
            .collect()
    }

    /// Every identity index entry.
    pub async fn identity_entries(&self) -> Result<Vec<IndexEntry>> {
        let mut out = Vec::new();
        self.for_each_identity_entry(|e| out.push(e)).await?;
        Ok(out)
    }

    /// Streams every identity index entry to `f`, one row at a time: the index is
    /// rebuilt from the rows as they come, without a second copy of them in memory.
    pub async fn for_each_identity_entry(&self, mut f: impl FnMut(IndexEntry)) -> Result<u64> {
        use futures::TryStreamExt;
        on!(&self.db, |p, q| {
            let mut rows = sqlx::query("SELECT hub_id, kind, key FROM identity_key").fetch(p);
            let mut n = 0;
            while let Some(r) = rows.try_next().await? {
                let hub: &str = r.try_get(0)?;
                let kind: &str = r.try_get(1)?;
                let key: String = r.try_get(2)?;
                f(IndexEntry {
                    hub_id: uuid(hub, "hub id")?,
                    kind: KeyKind::parse(kind).ok_or(StateError::Corrupt { what: "key kind" })?,
                    key,
                });
                n += 1;
            }
            Ok(n)
        })
    }

    /// Stores identity index entries (already stored ones are kept once).
    pub async fn save_identity_entries(&self, entries: &[IndexEntry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let begin = self.db.begin_sql();
        on!(&self.db, |p, q| {
            let mut tx = p.begin_with(begin).await?;
            for chunk in entries.chunks(ROWS_PER_STATEMENT) {
                let sql = format!(
                    "INSERT INTO identity_key (kind, key, hub_id) VALUES {} ON CONFLICT DO NOTHING",
                    marks(chunk.len(), "(?, ?, ?)")
                );
                // Only `?` marks are formatted in: the values are bound.
                let mut qq = sqlx::query(q(&sql));
                for e in chunk {
                    qq = qq
                        .bind(e.kind.name())
                        .bind(e.key.clone())
                        .bind(e.hub_id.to_string());
                }
                qq.execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Decides identities in the store, so that several instances decide a new person
    /// once: in one transaction that holds a lock on each of `keys` (PostgreSQL:
    /// advisory locks on the blind indexes, taken in one ordered statement; SQLite: the
    /// write lock), reads what the store holds about them (every entry of every hub id
    /// any of them names, stored by this instance or another), gives it to `decide`,
    /// and stores the entries `decide` returns before the locks are released. A second
    /// instance resolving the same new person waits, then finds the first one's keys.
    pub async fn decide_identities<R>(
        &self,
        keys: &[(KeyKind, String)],
        decide: impl FnOnce(Vec<IndexEntry>) -> (R, Vec<IndexEntry>),
    ) -> Result<R> {
        let begin = self.db.begin_sql();
        let pg = self.db.is_postgres();
        let mut unique: Vec<(&str, &str)> =
            keys.iter().map(|(k, v)| (k.name(), v.as_str())).collect();
        unique.sort_unstable();
        unique.dedup();
        on!(&self.db, |p, q| {
            let mut tx = p.begin_with(begin).await?;
            if pg && !unique.is_empty() {
                // One statement, locks taken in the order of their keys: two instances
                // locking overlapping sets cannot wait for each other in a cycle.
                for chunk in unique.chunks(IDENTITY_LOCKS_PER_STATEMENT) {
                    let sql = format!(
                        "SELECT pg_advisory_xact_lock(7216, h) FROM
                         (SELECT DISTINCT hashtext(column1 || ':' || column2) AS h
                          FROM (VALUES {}) AS v ORDER BY h) AS l",
                        marks(chunk.len(), "(?, ?)")
                    );
                    // Only `?` marks are formatted in: the values are bound.
                    let mut qq = sqlx::query(q(&sql));
                    for (kind, key) in chunk {
                        qq = qq.bind(*kind).bind(*key);
                    }
                    qq.execute(&mut *tx).await?;
                }
            }
            let mut stored = Vec::new();
            for chunk in unique.chunks(500) {
                let sql = format!(
                    "SELECT hub_id, kind, key FROM identity_key WHERE hub_id IN
                     (SELECT i.hub_id FROM identity_key AS i JOIN (VALUES {}) AS v
                      ON i.kind = v.column1 AND i.key = v.column2)",
                    marks(chunk.len(), "(?, ?)")
                );
                // Only `?` marks are formatted in: the values are bound.
                let mut qq = sqlx::query_as::<_, (String, String, String)>(q(&sql));
                for (kind, key) in chunk {
                    qq = qq.bind(*kind).bind(*key);
                }
                for (hub, kind, key) in qq.fetch_all(&mut *tx).await? {
                    stored.push(IndexEntry {
                        hub_id: uuid(&hub, "hub id")?,
                        kind: KeyKind::parse(&kind)
                            .ok_or(StateError::Corrupt { what: "key kind" })?,
                        key,
                    });
                }
            }
            let (out, entries) = decide(stored);
            for chunk in entries.chunks(ROWS_PER_STATEMENT) {
                let sql = format!(
                    "INSERT INTO identity_key (kind, key, hub_id) VALUES {} ON CONFLICT DO NOTHING",
                    marks(chunk.len(), "(?, ?, ?)")
                );
                // Only `?` marks are formatted in: the values are bound.
                let mut qq = sqlx::query(q(&sql));
                for e in chunk {
                    qq = qq
                        .bind(e.kind.name())
                        .bind(e.key.clone())
                        .bind(e.hub_id.to_string());
                }
                qq.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(out)
        })
    }

    /// A source's cursor (a date, an event id, a file name).
    pub async fn cursor(&self, source: &str) -> Result<Option<String>> {
        Ok(on!(&self.db, |p, q| {
            sqlx::query_scalar(q("SELECT value FROM cursor WHERE source = ?"))
                .bind(source)
                .fetch_optional(p)
                .await?
        }))
    }

    /// Advances a source's cursor: call only once what it covers is published and
    /// journaled.
    pub async fn set_cursor(&self, source: &str, value: &str) -> Result<()> {
        on!(&self.db, |p, q| {
            sqlx::query(q("INSERT INTO cursor (source, value) VALUES (?, ?) ON CONFLICT (source) DO UPDATE SET value = excluded.value"))
                .bind(source)
                .bind(value)
                .execute(p)
                .await?;
        });
        Ok(())
    }
}

/// Rows per multi-row statement: 100 rows of at most 7 values stay far below SQLite's
/// limit on bound values (32,766).
const ROWS_PER_STATEMENT: usize = 100;

/// Identity keys locked per statement (two values each, PostgreSQL binds at most
/// 65,535): a chunk of records (`SEND_CHUNK`) stays within one statement.
const IDENTITY_LOCKS_PER_STATEMENT: usize = 30_000;

/// How far along a status is in SQL, as `TransferStatus::rank` (`{s}`: the column).
const RANK_SQL: &str = "(CASE {s} WHEN 'published' THEN 0 WHEN 'delivered' THEN 1 \
     WHEN 'applied' THEN 3 ELSE 2 END)";

const TRANSFER_COLUMNS: &str = "transfer_id, flow, sender, recipient, hub_id, status, reason";

/// Keeps journal entries as pending (one row each) in the transaction, giving their ids.
macro_rules! keep_pending {
    ($tx:ident, $q:ident, $entries:expr, $now:expr) => {{
        let entries: &[(Uuid, &[u8])] = $entries;
        let mut ids = Vec::with_capacity(entries.len());
        for chunk in entries.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO journal_pending (transfer_id, entry, since) VALUES {} RETURNING id",
                marks(chunk.len(), "(?, ?, ?)")
            );
            // Only `?` marks are formatted in: the values are bound.
            let mut qq = sqlx::query_scalar::<_, i64>($q(&sql));
            for (id, entry) in chunk {
                qq = qq
                    .bind(id.to_string())
                    .bind(entry.to_vec())
                    .bind(($now).to_owned());
            }
            ids.extend(qq.fetch_all(&mut *$tx).await?);
        }
        Pending(ids)
    }};
}
use keep_pending;

/// Drops the pending journal entries `done` names, in the transaction.
macro_rules! drop_pending {
    ($tx:ident, $q:ident, $done:expr) => {{
        let done: &Pending = $done;
        for chunk in done.0.chunks(500) {
            let sql = format!(
                "DELETE FROM journal_pending WHERE id IN ({})",
                marks(chunk.len(), "?")
            );
            // Only `?` marks are formatted in: the values are bound.
            let mut qq = sqlx::query($q(&sql));
            for id in chunk {
                qq = qq.bind(*id);
            }
            qq.execute(&mut *$tx).await?;
        }
    }};
}
use drop_pending;

/// `n` copies of `row`, comma-separated (only placeholders, never values).
fn marks(n: usize, row: &str) -> String {
    vec![row; n].join(", ")
}

fn to_transfer(r: &impl Cols) -> Result<TransferRow> {
    Ok(TransferRow {
        transfer_id: uuid(&r.text(0)?, "transfer id")?,
        flow: r.text(1)?,
        sender: r.text(2)?,
        recipient: r.text(3)?,
        hub_id: uuid(&r.text(4)?, "hub id")?,
        status: status(&r.text(5)?)?,
        reason: r.opt_text(6)?,
    })
}

// ---------------------------------------------------------------------------------
// Senders' own references (issue 21, item 5): what a sender can find a receipt by.
// One nullable column of `transfer` and the methods below.
// ---------------------------------------------------------------------------------

/// A transfer's sender reference as stored in `transfer.sender_ref`: `place:` and
/// where the record was in the sender's file (`{file}:{line}`, not personal), or
/// `sealed:` and the hex of the sender's own id for the person (a dossier number,
/// personal), sealed for the sender like `peer_ref`.
pub const SENDER_REF_PLACE: &str = "place:";
/// See `SENDER_REF_PLACE`.
pub const SENDER_REF_SEALED: &str = "sealed:";

/// One transfer with its dates and sender reference, for `passerelle receipts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptRow {
    #[serde(flatten)]
    pub row: TransferRow,
    /// RFC 3339, when the hub first published it.
    pub created_at: String,
    /// RFC 3339, its last move (receipt).
    pub updated_at: String,
    /// As stored (`place:…` or `sealed:…`), absent for transfers recorded before.
    pub sender_ref: Option<String>,
}

/// Adds `transfer.sender_ref` to a SQLite state made before it existed (PostgreSQL
/// states have it from the start). Two processes opening one old state at once: the
/// second finds the column there.
async fn add_sender_ref_column(pool: &SqlitePool) -> Result<()> {
    let has = |pool: &SqlitePool| {
        let pool = pool.clone();
        async move {
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pragma_table_info('transfer') WHERE name = 'sender_ref'",
            )
            .fetch_one(&pool)
            .await?;
            Ok::<_, StateError>(n > 0)
        }
    };
    if has(pool).await? {
        return Ok(());
    }
    match sqlx::query("ALTER TABLE transfer ADD COLUMN sender_ref TEXT")
        .execute(pool)
        .await
    {
        Ok(_) => Ok(()),
        Err(_) if has(pool).await? => Ok(()),
        Err(e) => Err(e.into()),
    }
}

impl HubState {
    /// Records the sender's reference of transfers (`SENDER_REF_PLACE` or
    /// `SENDER_REF_SEALED` forms). The first one recorded stays: a transfer published
    /// again (a night run again after a crash) is the same record from the same place.
    pub async fn save_sender_refs(&self, refs: &[(Uuid, String)]) -> Result<()> {
        if refs.is_empty() {
            return Ok(());
        }
        let begin = self.db.begin_sql();
        on!(&self.db, |p, q| {
            let mut tx = p.begin_with(begin).await?;
            for chunk in refs.chunks(ROWS_PER_STATEMENT) {
                // One transfer twice in a statement: the first reference stays.
                let mut rows: Vec<&(Uuid, String)> = Vec::new();
                for r in chunk {
                    if !rows.iter().any(|x| x.0 == r.0) {
                        rows.push(r);
                    }
                }
                let sql = format!(
                    "UPDATE transfer SET sender_ref = v.column2 FROM (VALUES {}) AS v
                     WHERE transfer.transfer_id = v.column1 AND transfer.sender_ref IS NULL",
                    marks(rows.len(), "(?, ?)")
                );
                // Only `?` marks are formatted in: the values are bound.
                let mut qq = sqlx::query(q(&sql));
                for (id, r) in rows {
                    qq = qq.bind(id.to_string()).bind(r.clone());
                }
                qq.execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The transfers a sender made, optionally under one flow, oldest first, with
    /// their dates and sender references.
    pub async fn receipts_of(&self, sender: &str, flow: Option<&str>) -> Result<Vec<ReceiptRow>> {
        let sql = format!(
            "SELECT {TRANSFER_COLUMNS}, created_at, updated_at, sender_ref FROM transfer
             WHERE sender = ? AND (? IS NULL OR flow = ?) ORDER BY created_at, transfer_id"
        );
        on!(&self.db, |p, q| {
            let rows = sqlx::query(q(&sql))
                .bind(sender)
                .bind(flow)
                .bind(flow)
                .fetch_all(p)
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(ReceiptRow {
                        row: to_transfer(r)?,
                        created_at: r.text(7)?,
                        updated_at: r.text(8)?,
                        sender_ref: r.opt_text(9)?,
                    })
                })
                .collect()
        })
    }
}
