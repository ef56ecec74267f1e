//! The hub's durable state in SQLite (a file under `--data-dir`): the content hash
//! last sent per (flow, recipient, person), every transfer with its receipt status,
//! the identity index (blind indexes only) and source cursors.
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
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use uuid::Uuid;

/// Errors of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("state database holds an invalid {what}")]
    Corrupt { what: &'static str },
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

    fn parse(s: &str) -> Option<Self> {
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

const MIGRATION: &str = r#"
-- sent_hash.recipient holds the change-detection key: the recipient and the kind of
-- source (`59350S00#solis`), see engine::stream.
CREATE TABLE IF NOT EXISTS sent_hash (
    flow TEXT NOT NULL, recipient TEXT NOT NULL, hub_id TEXT NOT NULL,
    hash BLOB NOT NULL, transfer_id TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (flow, recipient, hub_id));
CREATE TABLE IF NOT EXISTS transfer (
    transfer_id TEXT PRIMARY KEY, flow TEXT NOT NULL, sender TEXT NOT NULL,
    recipient TEXT NOT NULL, hub_id TEXT NOT NULL, status TEXT NOT NULL,
    reason TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS transfer_by_sender ON transfer (sender, flow);
CREATE TABLE IF NOT EXISTS identity_key (
    kind TEXT NOT NULL, key TEXT NOT NULL, hub_id TEXT NOT NULL,
    PRIMARY KEY (kind, key, hub_id));
CREATE TABLE IF NOT EXISTS cursor (source TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS peer_ref (
    hub_id TEXT NOT NULL, org TEXT NOT NULL, sealed BLOB NOT NULL,
    PRIMARY KEY (hub_id, org));
-- Journal entries whose transfer moved in this store but that may not be in the audit
-- journal yet (a crash between the two): the engine appends the missing ones when it
-- starts, so that a transfer's step is journaled once, neither lost nor repeated.
CREATE TABLE IF NOT EXISTS journal_pending (
    id INTEGER PRIMARY KEY AUTOINCREMENT, transfer_id TEXT NOT NULL, entry BLOB NOT NULL,
    since TEXT NOT NULL);
-- What was denied last time about a person under a flow to a recipient (a hash of the
-- record and the reason): a source read again does not journal the same denial again.
CREATE TABLE IF NOT EXISTS denied_hash (
    flow TEXT NOT NULL, recipient TEXT NOT NULL, hub_id TEXT NOT NULL, hash BLOB NOT NULL,
    PRIMARY KEY (flow, recipient, hub_id));
CREATE TABLE IF NOT EXISTS identity_review (
    id INTEGER PRIMARY KEY AUTOINCREMENT, flow TEXT NOT NULL, reason TEXT NOT NULL,
    candidates TEXT NOT NULL, created_at TEXT NOT NULL);
"#;

/// The hub's state store.
#[derive(Debug, Clone)]
pub struct HubState {
    pool: SqlitePool,
}

impl HubState {
    /// Opens (creating when missing) the state database at `path`.
    pub async fn open(path: &Path) -> Result<Self> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        sqlx::raw_sql(MIGRATION).execute(&pool).await?;
        add_sender_ref_column(&pool).await?;
        Ok(Self { pool })
    }

    /// The pool, for the other stores kept in the same file (`web`).
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// A write transaction that takes SQLite's write lock at once: a deferred one that
    /// reads first fails with "database is locked" when another connection wrote in
    /// between (the busy timeout cannot help a stale snapshot), which happens when
    /// recipients are delivered side by side.
    async fn write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The hash last sent about a person to a recipient under a flow.
    pub async fn last_hash(
        &self,
        flow: &str,
        recipient: &str,
        hub_id: &Uuid,
    ) -> Result<Option<[u8; 32]>> {
        let row = sqlx::query(
            "SELECT hash FROM sent_hash WHERE flow = ? AND recipient = ? AND hub_id = ?",
        )
        .bind(flow)
        .bind(recipient)
        .bind(hub_id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        match row {
            None => Ok(None),
            Some(r) => {
                let bytes: Vec<u8> = r.try_get(0)?;
                bytes
                    .try_into()
                    .map(Some)
                    .map_err(|_| StateError::Corrupt { what: "hash" })
            }
        }
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
        let mut out = HashMap::with_capacity(hub_ids.len());
        // SQLite binds at most 32,766 values; chunks stay far below.
        for ids in hub_ids.chunks(500) {
            let marks = vec!["?"; ids.len()].join(",");
            let sql = format!(
                "SELECT hub_id, hash FROM sent_hash WHERE flow = ? AND recipient = ? AND hub_id IN ({marks})"
            );
            // Only `?` marks are formatted in: the values are bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(flow)
                .bind(recipient);
            for id in ids {
                q = q.bind(id.to_string());
            }
            for r in q.fetch_all(&self.pool).await? {
                let hub: String = r.try_get(0)?;
                let bytes: Vec<u8> = r.try_get(1)?;
                let hub =
                    Uuid::from_str(&hub).map_err(|_| StateError::Corrupt { what: "hub id" })?;
                let hash = bytes
                    .try_into()
                    .map_err(|_| StateError::Corrupt { what: "hash" })?;
                out.insert(hub, hash);
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
    /// again), and the ids of the pending entries kept.
    pub async fn record_published_rows(
        &self,
        rows: &[PublishedRow],
        done: &Pending,
    ) -> Result<(Vec<bool>, Pending)> {
        if rows.is_empty() && done.0.is_empty() {
            return Ok((Vec::new(), Pending::default()));
        }
        let now = Utc::now().to_rfc3339();
        let mut tx = self.write().await?;
        drop_pending(&mut tx, done).await?;
        let mut new = std::collections::HashSet::new();
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO transfer (transfer_id, flow, sender, recipient, hub_id, status, reason, created_at, updated_at)
                 VALUES {} ON CONFLICT (transfer_id) DO NOTHING RETURNING transfer_id",
                marks(chunk.len(), "(?, ?, ?, ?, ?, 'published', NULL, ?, ?)")
            );
            // Only `?` marks are formatted in: the values are bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for p in chunk {
                let row = &p.row;
                q = q
                    .bind(row.transfer_id.to_string())
                    .bind(row.flow.clone())
                    .bind(row.sender.clone())
                    .bind(row.recipient.clone())
                    .bind(row.hub_id.to_string())
                    .bind(now.clone())
                    .bind(now.clone());
            }
            for r in q.fetch_all(&mut *tx).await? {
                let id: String = r.try_get(0)?;
                new.insert(id);
            }
            let sql = format!(
                "INSERT INTO sent_hash (flow, recipient, hub_id, hash, transfer_id, updated_at) VALUES {}
                 ON CONFLICT (flow, recipient, hub_id) DO UPDATE SET hash = excluded.hash,
                 transfer_id = excluded.transfer_id, updated_at = excluded.updated_at",
                marks(chunk.len(), "(?, ?, ?, ?, ?, ?)")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for p in chunk {
                q = q
                    .bind(p.row.flow.clone())
                    .bind(p.stream.clone())
                    .bind(p.row.hub_id.to_string())
                    .bind(p.hash.to_vec())
                    .bind(p.row.transfer_id.to_string())
                    .bind(now.clone());
            }
            q.execute(&mut *tx).await?;
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
        let ids = keep_pending(&mut tx, &pending, &now).await?;
        tx.commit().await?;
        Ok((flags, ids))
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
    pub async fn settle(
        &self,
        receipts: &[StatusChange],
        entries: &[Vec<u8>],
        done: &Pending,
    ) -> Result<(Vec<bool>, Pending)> {
        let now = Utc::now().to_rfc3339();
        let mut tx = self.write().await?;
        drop_pending(&mut tx, done).await?;
        let mut out = Vec::with_capacity(receipts.len());
        for chunk in receipts.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "SELECT transfer_id, status FROM transfer WHERE transfer_id IN ({})",
                marks(chunk.len(), "?")
            );
            // Only `?` marks are formatted in: the values are bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for c in chunk {
                q = q.bind(c.transfer_id.to_string());
            }
            let mut current: HashMap<Uuid, TransferStatus> = HashMap::new();
            for r in q.fetch_all(&mut *tx).await? {
                let id: String = r.try_get(0)?;
                let status: String = r.try_get(1)?;
                current.insert(
                    Uuid::from_str(&id).map_err(|_| StateError::Corrupt {
                        what: "transfer id",
                    })?,
                    TransferStatus::parse(&status).ok_or(StateError::Corrupt { what: "status" })?,
                );
            }
            // The same transfer twice in a chunk: the later receipt sees the earlier.
            let mut moves: Vec<(Uuid, TransferStatus, Option<&str>)> = Vec::new();
            for c in chunk {
                let Some(now_status) = current.get_mut(&c.transfer_id) else {
                    out.push(false);
                    continue;
                };
                if c.status.rank() < now_status.rank() || c.status == *now_status {
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
            if moves.is_empty() {
                continue;
            }
            let sql = format!(
                "UPDATE transfer SET status = v.column2, reason = v.column3, updated_at = ?
                 FROM (VALUES {}) AS v WHERE transfer.transfer_id = v.column1",
                marks(moves.len(), "(?, ?, ?)")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now.clone());
            for (id, status, reason) in moves {
                q = q
                    .bind(id.to_string())
                    .bind(status.as_str())
                    .bind(reason.map(str::to_owned));
            }
            q.execute(&mut *tx).await?;
        }
        let pending: Vec<(Uuid, &[u8])> = receipts
            .iter()
            .zip(&out)
            .zip(entries)
            .filter(|((_, moved), _)| **moved)
            .map(|((c, _), e)| (c.transfer_id, e.as_slice()))
            .collect();
        let ids = keep_pending(&mut tx, &pending, &now).await?;
        tx.commit().await?;
        Ok((out, ids))
    }

    /// The statuses of several transfers (unknown ids are left out).
    pub async fn statuses(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, TransferStatus>> {
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT transfer_id, status FROM transfer WHERE transfer_id IN ({})",
                marks(chunk.len(), "?")
            );
            // Only `?` marks are formatted in: the values are bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(id.to_string());
            }
            for r in q.fetch_all(&self.pool).await? {
                let id: String = r.try_get(0)?;
                let status: String = r.try_get(1)?;
                out.insert(
                    Uuid::from_str(&id).map_err(|_| StateError::Corrupt {
                        what: "transfer id",
                    })?,
                    TransferStatus::parse(&status).ok_or(StateError::Corrupt { what: "status" })?,
                );
            }
        }
        Ok(out)
    }

    /// Every pending journal entry, oldest first (left by a crash, or not dropped yet).
    pub async fn pending_entries(&self) -> Result<Vec<PendingEntry>> {
        let rows =
            sqlx::query("SELECT id, transfer_id, entry, since FROM journal_pending ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get(1)?;
                Ok(PendingEntry {
                    id: r.try_get(0)?,
                    transfer_id: Uuid::from_str(&id).map_err(|_| StateError::Corrupt {
                        what: "transfer id",
                    })?,
                    entry: r.try_get(2)?,
                    since: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Drops pending journal entries once journaled.
    pub async fn drop_pending(&self, done: &Pending) -> Result<()> {
        if done.0.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        drop_pending(&mut tx, done).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The denials last journaled about these persons under a flow to a recipient.
    pub async fn denied_hashes(
        &self,
        flow: &str,
        recipient: &str,
        hub_ids: &[Uuid],
    ) -> Result<HashMap<Uuid, [u8; 32]>> {
        let mut out = HashMap::new();
        for ids in hub_ids.chunks(500) {
            let sql = format!(
                "SELECT hub_id, hash FROM denied_hash WHERE flow = ? AND recipient = ? AND hub_id IN ({})",
                marks(ids.len(), "?")
            );
            // Only `?` marks are formatted in: the values are bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(flow)
                .bind(recipient);
            for id in ids {
                q = q.bind(id.to_string());
            }
            for r in q.fetch_all(&self.pool).await? {
                let hub: String = r.try_get(0)?;
                let bytes: Vec<u8> = r.try_get(1)?;
                out.insert(
                    Uuid::from_str(&hub).map_err(|_| StateError::Corrupt { what: "hub id" })?,
                    bytes
                        .try_into()
                        .map_err(|_| StateError::Corrupt { what: "hash" })?,
                );
            }
        }
        Ok(out)
    }

    /// Remembers denials once journaled: (flow, recipient, hub id, hash).
    pub async fn save_denied(&self, denied: &[(String, String, Uuid, [u8; 32])]) -> Result<()> {
        if denied.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        for chunk in denied.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO denied_hash (flow, recipient, hub_id, hash) VALUES {}
                 ON CONFLICT (flow, recipient, hub_id) DO UPDATE SET hash = excluded.hash",
                marks(chunk.len(), "(?, ?, ?, ?)")
            );
            // Only `?` marks are formatted in: the values are bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (flow, recipient, hub, hash) in chunk {
                q = q
                    .bind(flow.clone())
                    .bind(recipient.clone())
                    .bind(hub.to_string())
                    .bind(hash.to_vec());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Several transfers by id (unknown ids are left out).
    pub async fn transfers(&self, ids: &[Uuid]) -> Result<Vec<TransferRow>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(",");
            let sql = format!(
                "SELECT transfer_id, flow, sender, recipient, hub_id, status, reason FROM transfer WHERE transfer_id IN ({marks})"
            );
            // Only `?` marks are formatted in: the values are bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(id.to_string());
            }
            for r in q.fetch_all(&self.pool).await? {
                out.push(to_transfer(&r)?);
            }
        }
        Ok(out)
    }

    /// Stores organisations' own references to persons (sealed by the caller).
    pub async fn save_peer_refs(&self, refs: &[(Uuid, String, Vec<u8>)]) -> Result<()> {
        if refs.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        for chunk in refs.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO peer_ref (hub_id, org, sealed) VALUES {}
                 ON CONFLICT (hub_id, org) DO UPDATE SET sealed = excluded.sealed",
                marks(chunk.len(), "(?, ?, ?)")
            );
            // Only `?` marks are formatted in: the values are bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (hub_id, org, sealed) in chunk {
                q = q
                    .bind(hub_id.to_string())
                    .bind(org.clone())
                    .bind(sealed.clone());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// An organisation's sealed references to several persons.
    pub async fn peer_refs(&self, org: &str, hub_ids: &[Uuid]) -> Result<HashMap<Uuid, Vec<u8>>> {
        let mut out = HashMap::new();
        for ids in hub_ids.chunks(500) {
            let marks = vec!["?"; ids.len()].join(",");
            let sql = format!(
                "SELECT hub_id, sealed FROM peer_ref WHERE org = ? AND hub_id IN ({marks})"
            );
            // Only `?` marks are formatted in: the values are bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(org);
            for id in ids {
                q = q.bind(id.to_string());
            }
            for r in q.fetch_all(&self.pool).await? {
                let hub: String = r.try_get(0)?;
                let hub =
                    Uuid::from_str(&hub).map_err(|_| StateError::Corrupt { what: "hub id" })?;
                out.insert(hub, r.try_get(1)?);
            }
        }
        Ok(out)
    }

    /// Queues an uncertain match for a person to settle: the reason and the candidate
    /// hub ids (never the record).
    pub async fn save_review(&self, flow: &str, reason: &str, candidates: &[Uuid]) -> Result<()> {
        let candidates: Vec<String> = candidates.iter().map(Uuid::to_string).collect();
        sqlx::query(
            "INSERT INTO identity_review (flow, reason, candidates, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(flow)
        .bind(reason)
        .bind(candidates.join(" "))
        .bind(Utc::now().to_rfc3339())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// How many uncertain matches wait for a person.
    pub async fn review_count(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM identity_review")
            .fetch_one(&self.pool)
            .await?;
        Ok(n.max(0) as u64)
    }

    /// Moves a transfer forward on a receipt. A receipt that would move it back
    /// (a late `delivered` after `applied`) is ignored. Returns whether it changed.
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
        let row = sqlx::query(
            "SELECT transfer_id, flow, sender, recipient, hub_id, status, reason FROM transfer WHERE transfer_id = ?",
        )
        .bind(transfer_id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| to_transfer(&r)).transpose()
    }

    /// Transfers left `delivered` (handed to a file peer) since before `before`
    /// without their answer.
    pub async fn unanswered(&self, before: chrono::DateTime<Utc>) -> Result<Vec<TransferRow>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT transfer_id FROM transfer WHERE status = 'delivered' AND updated_at < ?1",
        )
        .bind(before.to_rfc3339())
        .fetch_all(&self.pool)
        .await?;
        let ids: Vec<Uuid> = rows
            .iter()
            .filter_map(|(id,)| Uuid::parse_str(id).ok())
            .collect();
        self.transfers(&ids).await
    }

    /// Forgets what was last sent for these transfers: the next time their source gives
    /// the same record, it is sent again instead of being found unchanged.
    pub async fn forget_sent(&self, transfer_ids: &[Uuid]) -> Result<()> {
        for chunk in transfer_ids.chunks(500) {
            let sql = format!(
                "DELETE FROM sent_hash WHERE transfer_id IN ({})",
                marks(chunk.len(), "?")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(id.to_string());
            }
            q.execute(&self.pool).await?;
        }
        Ok(())
    }

    /// The organisations that sent transfers through this hub.
    pub async fn senders(&self) -> Result<Vec<String>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT DISTINCT sender FROM transfer ORDER BY sender")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(s,)| s).collect())
    }

    /// The transfers a sender made, optionally under one flow, oldest first.
    pub async fn transfers_of(&self, sender: &str, flow: Option<&str>) -> Result<Vec<TransferRow>> {
        let rows = sqlx::query(
            "SELECT transfer_id, flow, sender, recipient, hub_id, status, reason FROM transfer
             WHERE sender = ? AND (? IS NULL OR flow = ?) ORDER BY created_at, transfer_id",
        )
        .bind(sender)
        .bind(flow)
        .bind(flow)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(to_transfer).collect()
    }

    /// The `bilan`: transfers created in `[from, to)`, counted per flow, sender,
    /// recipient and status (organisation codes and counts only).
    pub async fn bilan(
        &self,
        from: chrono::DateTime<Utc>,
        to: chrono::DateTime<Utc>,
    ) -> Result<Vec<BilanRow>> {
        let rows = sqlx::query(
            "SELECT flow, sender, recipient, status, COUNT(*) FROM transfer
             WHERE created_at >= ? AND created_at < ?
             GROUP BY flow, sender, recipient, status ORDER BY flow, sender, recipient, status",
        )
        .bind(from.to_rfc3339())
        .bind(to.to_rfc3339())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let s: String = r.try_get(3)?;
                let n: i64 = r.try_get(4)?;
                Ok(BilanRow {
                    flow: r.try_get(0)?,
                    sender: r.try_get(1)?,
                    recipient: r.try_get(2)?,
                    status: TransferStatus::parse(&s)
                        .ok_or(StateError::Corrupt { what: "status" })?,
                    transfers: n.max(0) as u64,
                })
            })
            .collect()
    }

    /// Counts of transfers per status for one flow.
    pub async fn status_counts(&self, flow: &str) -> Result<Vec<(TransferStatus, u64)>> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) FROM transfer WHERE flow = ? GROUP BY status ORDER BY status",
        )
        .bind(flow)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let s: String = r.try_get(0)?;
                let n: i64 = r.try_get(1)?;
                let status =
                    TransferStatus::parse(&s).ok_or(StateError::Corrupt { what: "status" })?;
                Ok((status, n.max(0) as u64))
            })
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
        let mut rows = sqlx::query("SELECT hub_id, kind, key FROM identity_key").fetch(&self.pool);
        let mut n = 0;
        while let Some(r) = rows.try_next().await? {
            let hub: &str = r.try_get(0)?;
            let kind: &str = r.try_get(1)?;
            let key: String = r.try_get(2)?;
            f(IndexEntry {
                hub_id: Uuid::from_str(hub).map_err(|_| StateError::Corrupt { what: "hub id" })?,
                kind: KeyKind::parse(kind).ok_or(StateError::Corrupt { what: "key kind" })?,
                key,
            });
            n += 1;
        }
        Ok(n)
    }

    /// Stores identity index entries (already stored ones are kept once).
    pub async fn save_identity_entries(&self, entries: &[IndexEntry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        for chunk in entries.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT OR IGNORE INTO identity_key (kind, key, hub_id) VALUES {}",
                marks(chunk.len(), "(?, ?, ?)")
            );
            // Only `?` marks are formatted in: the values are bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for e in chunk {
                q = q
                    .bind(e.kind.name())
                    .bind(e.key.clone())
                    .bind(e.hub_id.to_string());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A source's cursor (a date, an event id, a file name).
    pub async fn cursor(&self, source: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT value FROM cursor WHERE source = ?")
            .bind(source)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| r.try_get(0).map_err(StateError::from))
            .transpose()
    }

    /// Advances a source's cursor: call only once what it covers is published and
    /// journaled.
    pub async fn set_cursor(&self, source: &str, value: &str) -> Result<()> {
        sqlx::query("INSERT INTO cursor (source, value) VALUES (?, ?) ON CONFLICT (source) DO UPDATE SET value = excluded.value")
            .bind(source)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// Rows per multi-row statement: 100 rows of at most 7 values stay far below SQLite's
/// limit on bound values (32,766).
const ROWS_PER_STATEMENT: usize = 100;

/// Keeps journal entries as pending (one row each), returning their ids.
async fn keep_pending(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    entries: &[(Uuid, &[u8])],
    now: &str,
) -> Result<Pending> {
    let mut ids = Vec::with_capacity(entries.len());
    for chunk in entries.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO journal_pending (transfer_id, entry, since) VALUES {} RETURNING id",
            marks(chunk.len(), "(?, ?, ?)")
        );
        // Only `?` marks are formatted in: the values are bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (id, entry) in chunk {
            q = q
                .bind(id.to_string())
                .bind(entry.to_vec())
                .bind(now.to_owned());
        }
        for r in q.fetch_all(&mut **tx).await? {
            ids.push(r.try_get(0)?);
        }
    }
    Ok(Pending(ids))
}

async fn drop_pending(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    done: &Pending,
) -> Result<()> {
    for chunk in done.0.chunks(500) {
        let sql = format!(
            "DELETE FROM journal_pending WHERE id IN ({})",
            marks(chunk.len(), "?")
        );
        // Only `?` marks are formatted in: the values are bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(*id);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// `n` copies of `row`, comma-separated (only placeholders, never values).
fn marks(n: usize, row: &str) -> String {
    vec![row; n].join(", ")
}

fn to_transfer(r: &sqlx::sqlite::SqliteRow) -> Result<TransferRow> {
    let id: String = r.try_get(0)?;
    let hub: String = r.try_get(4)?;
    let status: String = r.try_get(5)?;
    Ok(TransferRow {
        transfer_id: Uuid::from_str(&id).map_err(|_| StateError::Corrupt {
            what: "transfer id",
        })?,
        flow: r.try_get(1)?,
        sender: r.try_get(2)?,
        recipient: r.try_get(3)?,
        hub_id: Uuid::from_str(&hub).map_err(|_| StateError::Corrupt { what: "hub id" })?,
        status: TransferStatus::parse(&status).ok_or(StateError::Corrupt { what: "status" })?,
        reason: r.try_get(6)?,
    })
}

// ---------------------------------------------------------------------------------
// Senders' own references (issue 21, item 5): what a sender can find a receipt by.
// One nullable column of `transfer` and the methods below, apart from the rest so that
// another state backend adds them as they are.
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

/// Adds `transfer.sender_ref` to a state made before it existed. Two processes
/// opening one old state at once: the second finds the column there.
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
        let mut tx = self.write().await?;
        for chunk in refs.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "UPDATE transfer SET sender_ref = v.column2 FROM (VALUES {}) AS v
                 WHERE transfer.transfer_id = v.column1 AND transfer.sender_ref IS NULL",
                marks(chunk.len(), "(?, ?)")
            );
            // Only `?` marks are formatted in: the values are bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (id, r) in chunk {
                q = q.bind(id.to_string()).bind(r.clone());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The transfers a sender made, optionally under one flow, oldest first, with
    /// their dates and sender references.
    pub async fn receipts_of(&self, sender: &str, flow: Option<&str>) -> Result<Vec<ReceiptRow>> {
        let rows = sqlx::query(
            "SELECT transfer_id, flow, sender, recipient, hub_id, status, reason,
                    created_at, updated_at, sender_ref FROM transfer
             WHERE sender = ? AND (? IS NULL OR flow = ?) ORDER BY created_at, transfer_id",
        )
        .bind(sender)
        .bind(flow)
        .bind(flow)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ReceiptRow {
                    row: to_transfer(r)?,
                    created_at: r.try_get(7)?,
                    updated_at: r.try_get(8)?,
                    sender_ref: r.try_get(9)?,
                })
            })
            .collect()
    }
}
