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
        Ok(Self { pool })
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
        let rows: Vec<(TransferRow, String, [u8; 32])> = rows
            .iter()
            .map(|(r, h)| (r.clone(), r.recipient.clone(), *h))
            .collect();
        self.record_published_streams(&rows).await
    }

    /// `record_published_many` where each hash is kept under its own change-detection
    /// key (`stream`, the recipient and the kind of source) rather than the recipient.
    pub async fn record_published_streams(
        &self,
        rows: &[(TransferRow, String, [u8; 32])],
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let now = Utc::now().to_rfc3339();
        let mut tx = self.write().await?;
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO transfer (transfer_id, flow, sender, recipient, hub_id, status, reason, created_at, updated_at)
                 VALUES {} ON CONFLICT (transfer_id) DO NOTHING",
                marks(chunk.len(), "(?, ?, ?, ?, ?, 'published', NULL, ?, ?)")
            );
            // Only `?` marks are formatted in: the values are bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (row, _, _) in chunk {
                q = q
                    .bind(row.transfer_id.to_string())
                    .bind(row.flow.clone())
                    .bind(row.sender.clone())
                    .bind(row.recipient.clone())
                    .bind(row.hub_id.to_string())
                    .bind(now.clone())
                    .bind(now.clone());
            }
            q.execute(&mut *tx).await?;
            let sql = format!(
                "INSERT INTO sent_hash (flow, recipient, hub_id, hash, transfer_id, updated_at) VALUES {}
                 ON CONFLICT (flow, recipient, hub_id) DO UPDATE SET hash = excluded.hash,
                 transfer_id = excluded.transfer_id, updated_at = excluded.updated_at",
                marks(chunk.len(), "(?, ?, ?, ?, ?, ?)")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (row, stream, hash) in chunk {
                q = q
                    .bind(row.flow.clone())
                    .bind(stream.clone())
                    .bind(row.hub_id.to_string())
                    .bind(hash.to_vec())
                    .bind(row.transfer_id.to_string())
                    .bind(now.clone());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// `set_status` for many receipts in one transaction; returns, for each, whether
    /// it moved the transfer forward. Current statuses are read with one statement per
    /// chunk and the moves written with one more.
    pub async fn set_statuses(
        &self,
        receipts: &[(Uuid, TransferStatus, Option<String>)],
    ) -> Result<Vec<bool>> {
        let now = Utc::now().to_rfc3339();
        let mut tx = self.write().await?;
        let mut out = Vec::with_capacity(receipts.len());
        for chunk in receipts.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "SELECT transfer_id, status FROM transfer WHERE transfer_id IN ({})",
                marks(chunk.len(), "?")
            );
            // Only `?` marks are formatted in: the values are bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (id, ..) in chunk {
                q = q.bind(id.to_string());
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
            for (id, status, reason) in chunk {
                let Some(now_status) = current.get_mut(id) else {
                    out.push(false);
                    continue;
                };
                if status.rank() < now_status.rank() || *status == *now_status {
                    out.push(false);
                    continue;
                }
                *now_status = *status;
                match moves.iter_mut().find(|(m, ..)| m == id) {
                    Some(m) => *m = (*id, *status, reason.as_deref()),
                    None => moves.push((*id, *status, reason.as_deref())),
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
        tx.commit().await?;
        Ok(out)
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
            .set_statuses(&[(*transfer_id, status, reason.map(str::to_owned))])
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
        let rows =
            sqlx::query("SELECT hub_id, kind, key FROM identity_key ORDER BY hub_id, kind, key")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                let hub: String = r.try_get(0)?;
                let kind: String = r.try_get(1)?;
                let key: String = r.try_get(2)?;
                Ok(IndexEntry {
                    hub_id: Uuid::from_str(&hub)
                        .map_err(|_| StateError::Corrupt { what: "hub id" })?,
                    kind: serde_json::from_value(serde_json::Value::String(kind))
                        .map_err(|_| StateError::Corrupt { what: "key kind" })?,
                    key,
                })
            })
            .collect()
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
                    .bind(kind_name(e.kind))
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

/// `n` copies of `row`, comma-separated (only placeholders, never values).
fn marks(n: usize, row: &str) -> String {
    vec![row; n].join(", ")
}

fn kind_name(kind: KeyKind) -> String {
    match serde_json::to_value(kind) {
        Ok(serde_json::Value::String(s)) => s,
        _ => kind.as_str().to_owned(),
    }
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
