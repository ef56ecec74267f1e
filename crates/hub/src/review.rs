//! Identity reviews held for a person to settle: each record the matcher could not
//! place (two candidates, or one with a conflicting identifier) is kept with its
//! transfer's parties, sealed to the hub's review key (`REVIEW_ORG` in the keyring),
//! until a reviewer of the sending organisation says "même personne" or "personnes
//! différentes", or the review expires. Settled or expired, the sealed record is
//! erased: only the review's outcome stays.
//!
//! Tables of their own, beside the state store's (`HubState::save_review` still counts
//! reviews for the night summary).

use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::sqlite::SqlitePool;
use uuid::Uuid;

use crate::state::{HubState, StateError};

/// The keyring organisation whose key seals held records.
pub const REVIEW_ORG: &str = "HUB-REVUE";

/// How long a review waits before its record is dropped (the source sends it again).
pub const REVIEW_DAYS: i64 = 30;

const MIGRATION: &str = r#"
CREATE TABLE IF NOT EXISTS review_held (
    id TEXT PRIMARY KEY, flow TEXT NOT NULL, reason TEXT NOT NULL, candidates TEXT NOT NULL,
    sender TEXT NOT NULL, recipient TEXT NOT NULL, sealed BLOB,
    created_at TEXT NOT NULL, expires_at TEXT NOT NULL, settled_at TEXT, outcome TEXT);
CREATE INDEX IF NOT EXISTS review_held_by_sender ON review_held (sender, settled_at);
"#;

/// One held review, as listed (the record stays sealed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldReview {
    pub id: Uuid,
    pub flow: String,
    /// `IdentifiersDisagree`, `SeveralCandidates`, `ConflictingIdentifier`.
    pub reason: String,
    pub candidates: Vec<Uuid>,
    pub sender: String,
    pub recipient: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// `meme:<hub id>`, `differente:<hub id>`, `expiree`; `None` while open.
    pub outcome: Option<String>,
}

/// The held reviews' store, in the hub's state database.
#[derive(Debug, Clone)]
pub struct ReviewStore {
    pool: SqlitePool,
}

fn time(s: &str) -> Result<DateTime<Utc>, StateError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| StateError::Corrupt { what: "time" })
}

fn held(r: &sqlx::sqlite::SqliteRow) -> Result<HeldReview, StateError> {
    let uuid = |s: &str| Uuid::from_str(s).map_err(|_| StateError::Corrupt { what: "uuid" });
    let candidates: String = r.try_get("candidates")?;
    Ok(HeldReview {
        id: uuid(&r.try_get::<String, _>("id")?)?,
        flow: r.try_get("flow")?,
        reason: r.try_get("reason")?,
        candidates: candidates
            .split_whitespace()
            .map(uuid)
            .collect::<Result<_, _>>()?,
        sender: r.try_get("sender")?,
        recipient: r.try_get("recipient")?,
        created_at: time(&r.try_get::<String, _>("created_at")?)?,
        expires_at: time(&r.try_get::<String, _>("expires_at")?)?,
        outcome: r.try_get("outcome")?,
    })
}

impl ReviewStore {
    /// The review tables of this state store, created when missing.
    pub async fn open(state: &HubState) -> Result<Self, StateError> {
        let pool = state.pool().clone();
        sqlx::raw_sql(MIGRATION).execute(&pool).await?;
        Ok(Self { pool })
    }

    /// Holds a sealed record for review.
    pub async fn hold(&self, r: &HeldReview, sealed: &[u8]) -> Result<(), StateError> {
        let c: Vec<String> = r.candidates.iter().map(Uuid::to_string).collect();
        sqlx::query(
            "INSERT INTO review_held (id, flow, reason, candidates, sender, recipient, sealed, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        )
        .bind(r.id.to_string())
        .bind(&r.flow)
        .bind(&r.reason)
        .bind(c.join(" "))
        .bind(&r.sender)
        .bind(&r.recipient)
        .bind(sealed)
        .bind(r.created_at.to_rfc3339())
        .bind(r.expires_at.to_rfc3339())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Expires open reviews past their date: their sealed record is erased.
    pub async fn expire(&self, now: DateTime<Utc>) -> Result<u64, StateError> {
        let rows = sqlx::query("SELECT id, expires_at FROM review_held WHERE settled_at IS NULL")
            .fetch_all(&self.pool)
            .await?;
        let mut n = 0;
        for r in rows {
            let id: String = r.try_get(0)?;
            if time(&r.try_get::<String, _>(1)?)? <= now {
                self.close(&id, "expiree").await?;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn close(&self, id: &str, outcome: &str) -> Result<bool, StateError> {
        let r = sqlx::query(
            "UPDATE review_held SET sealed = NULL, settled_at = ?, outcome = ? WHERE id = ? AND settled_at IS NULL",
        )
        .bind(Utc::now().to_rfc3339())
        .bind(outcome)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Settles a review: erases its sealed record; false when it was settled already.
    pub async fn settle(&self, id: &Uuid, outcome: &str) -> Result<bool, StateError> {
        self.close(&id.to_string(), outcome).await
    }

    /// The open reviews of records `sender` sent, oldest first.
    pub async fn open_for(&self, sender: &str) -> Result<Vec<HeldReview>, StateError> {
        let rows = sqlx::query(
            "SELECT * FROM review_held WHERE sender = ? AND settled_at IS NULL ORDER BY created_at",
        )
        .bind(sender)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(held).collect()
    }

    /// One review and, while open, its sealed record.
    pub async fn get(
        &self,
        id: &Uuid,
    ) -> Result<Option<(HeldReview, Option<Vec<u8>>)>, StateError> {
        let row = sqlx::query("SELECT * FROM review_held WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((held(&r)?, r.try_get("sealed")?)))
            .transpose()
    }
}
