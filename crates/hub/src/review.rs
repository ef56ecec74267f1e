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
use uuid::Uuid;

use crate::state::{Cols, Db, HubState, StateError, on};

/// The keyring organisation whose key seals held records.
pub const REVIEW_ORG: &str = "HUB-REVUE";

/// How long a review waits before its record is dropped (the source sends it again).
pub const REVIEW_DAYS: i64 = 30;

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
    db: Db,
}

fn time(s: &str) -> Result<DateTime<Utc>, StateError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| StateError::Corrupt { what: "time" })
}

fn held(r: &impl Cols) -> Result<HeldReview, StateError> {
    let uuid = |s: &str| Uuid::from_str(s).map_err(|_| StateError::Corrupt { what: "uuid" });
    let candidates = r.text("candidates")?;
    Ok(HeldReview {
        id: uuid(&r.text("id")?)?,
        flow: r.text("flow")?,
        reason: r.text("reason")?,
        candidates: candidates
            .split_whitespace()
            .map(uuid)
            .collect::<Result<_, _>>()?,
        sender: r.text("sender")?,
        recipient: r.text("recipient")?,
        created_at: time(&r.text("created_at")?)?,
        expires_at: time(&r.text("expires_at")?)?,
        outcome: r.opt_text("outcome")?,
    })
}

impl ReviewStore {
    /// The review tables of this state store (created with the state's own).
    pub async fn open(state: &HubState) -> Result<Self, StateError> {
        Ok(Self {
            db: state.db().clone(),
        })
    }

    /// Holds a sealed record for review.
    pub async fn hold(&self, r: &HeldReview, sealed: &[u8]) -> Result<(), StateError> {
        let c: Vec<String> = r.candidates.iter().map(Uuid::to_string).collect();
        on!(&self.db, |p, q| {
            sqlx::query(q(
                "INSERT INTO review_held (id, flow, reason, candidates, sender, recipient, sealed, created_at, expires_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            ))
            .bind(r.id.to_string())
            .bind(&r.flow)
            .bind(&r.reason)
            .bind(c.join(" "))
            .bind(&r.sender)
            .bind(&r.recipient)
            .bind(sealed)
            .bind(r.created_at.to_rfc3339())
            .bind(r.expires_at.to_rfc3339())
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// Expires open reviews past their date: their sealed record is erased.
    pub async fn expire(&self, now: DateTime<Utc>) -> Result<u64, StateError> {
        let rows: Vec<(String, String)> = on!(&self.db, |p, q| {
            sqlx::query_as("SELECT id, expires_at FROM review_held WHERE settled_at IS NULL")
                .fetch_all(p)
                .await?
        });
        let mut n = 0;
        for (id, expires_at) in rows {
            if time(&expires_at)? <= now && self.close(&id, "expiree").await? {
                n += 1;
            }
        }
        Ok(n)
    }

    async fn close(&self, id: &str, outcome: &str) -> Result<bool, StateError> {
        let affected = on!(&self.db, |p, q| {
            sqlx::query(q(
                "UPDATE review_held SET sealed = NULL, settled_at = ?, outcome = ? WHERE id = ? AND settled_at IS NULL",
            ))
            .bind(Utc::now().to_rfc3339())
            .bind(outcome)
            .bind(id)
            .execute(p)
            .await?
            .rows_affected()
        });
        Ok(affected == 1)
    }

    /// Settles a review: erases its sealed record; false when it was settled already.
    pub async fn settle(&self, id: &Uuid, outcome: &str) -> Result<bool, StateError> {
        self.close(&id.to_string(), outcome).await
    }

    /// The open reviews of records `sender` sent, oldest first.
    pub async fn open_for(&self, sender: &str) -> Result<Vec<HeldReview>, StateError> {
        on!(&self.db, |p, q| {
            let rows = sqlx::query(q(
                "SELECT * FROM review_held WHERE sender = ? AND settled_at IS NULL ORDER BY created_at",
            ))
            .bind(sender)
            .fetch_all(p)
            .await?;
            rows.iter().map(held).collect()
        })
    }

    /// One review and, while open, its sealed record.
    pub async fn get(
        &self,
        id: &Uuid,
    ) -> Result<Option<(HeldReview, Option<Vec<u8>>)>, StateError> {
        on!(&self.db, |p, q| {
            let row = sqlx::query(q("SELECT * FROM review_held WHERE id = ?"))
                .bind(id.to_string())
                .fetch_optional(p)
                .await?;
            row.map(|r| Ok((held(&r)?, r.opt_bytes("sealed")?)))
                .transpose()
        })
    }
}
