//! `HubState` as the connectors' `PeerStore`: their memory of peers (box files read,
//! transfers in box files, FAJ events done, FAJ request ids, sequences) in the hub's
//! own database, so that on PostgreSQL every instance shares it and on SQLite it lives
//! beside the rest of the state. Tables `peer_state` and `peer_sequence`
//! (`schema::PEER`, one text for both engines).
//!
//! Each method is one statement, atomic on either engine: `insert_if_absent` is an
//! `ON CONFLICT DO NOTHING` (one row wins), `next_in_sequence` an upsert that
//! increments and returns in the same statement (PostgreSQL's row lock, SQLite's
//! write lock: no two callers read the same number).

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use passerelle_connector::peer::{PeerStore, PeerStoreError, check};

use super::{HubState, on};

fn failed(e: sqlx::Error) -> PeerStoreError {
    PeerStoreError::unavailable(format!("state database: {e}"))
}

/// The stored form of a time: one width, so text order is time order.
fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[async_trait]
impl PeerStore for HubState {
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<String>, PeerStoreError> {
        check(namespace, Some(key), None)?;
        let v: Option<String> = on!(self.db(), |p, q| {
            sqlx::query_scalar(q(
                "SELECT value FROM peer_state WHERE namespace = ? AND key = ?",
            ))
            .bind(namespace)
            .bind(key)
            .fetch_optional(p)
            .await
            .map_err(failed)?
        });
        Ok(v)
    }

    async fn put(&self, namespace: &str, key: &str, value: &str) -> Result<(), PeerStoreError> {
        check(namespace, Some(key), Some(value))?;
        let now = stamp(Utc::now());
        on!(self.db(), |p, q| {
            sqlx::query(q(
                "INSERT INTO peer_state (namespace, key, value, updated_at) VALUES (?, ?, ?, ?)
                 ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value,
                 updated_at = excluded.updated_at",
            ))
            .bind(namespace)
            .bind(key)
            .bind(value)
            .bind(now)
            .execute(p)
            .await
            .map_err(failed)?;
        });
        Ok(())
    }

    async fn insert_if_absent(
        &self,
        namespace: &str,
        key: &str,
        value: &str,
    ) -> Result<bool, PeerStoreError> {
        check(namespace, Some(key), Some(value))?;
        let now = stamp(Utc::now());
        let n = on!(self.db(), |p, q| {
            sqlx::query(q(
                "INSERT INTO peer_state (namespace, key, value, updated_at) VALUES (?, ?, ?, ?)
                 ON CONFLICT (namespace, key) DO NOTHING",
            ))
            .bind(namespace)
            .bind(key)
            .bind(value)
            .bind(now)
            .execute(p)
            .await
            .map_err(failed)?
            .rows_affected()
        });
        Ok(n == 1)
    }

    async fn list(
        &self,
        namespace: &str,
        prefix: &str,
    ) -> Result<Vec<(String, String)>, PeerStoreError> {
        check(namespace, Some(prefix), None)?;
        // `substr` rather than `LIKE`: the prefix is taken literally (`_`, `%`), on
        // both engines, counted in characters on both. Byte order on both (`COLLATE
        // "C"` on PostgreSQL, SQLite's default binary collation), so that the order is
        // the same whatever the database's locale.
        let order = if self.db().is_postgres() {
            "key COLLATE \"C\""
        } else {
            "key"
        };
        let rows: Vec<(String, String)> = on!(self.db(), |p, q| {
            let sql = format!(
                "SELECT key, value FROM peer_state WHERE namespace = ?
                 AND substr(key, 1, length(?)) = ? ORDER BY {order}"
            );
            // Only a fixed ORDER BY is formatted in: the values are bound.
            sqlx::query_as(q(&sql))
                .bind(namespace)
                .bind(prefix)
                .bind(prefix)
                .fetch_all(p)
                .await
                .map_err(failed)?
        });
        Ok(rows)
    }

    async fn delete(
        &self,
        namespace: &str,
        key: &str,
        only_if: Option<&str>,
    ) -> Result<bool, PeerStoreError> {
        check(namespace, Some(key), only_if)?;
        let n = on!(self.db(), |p, q| {
            match only_if {
                None => sqlx::query(q("DELETE FROM peer_state WHERE namespace = ? AND key = ?"))
                    .bind(namespace)
                    .bind(key),
                Some(v) => sqlx::query(q(
                    "DELETE FROM peer_state WHERE namespace = ? AND key = ? AND value = ?",
                ))
                .bind(namespace)
                .bind(key)
                .bind(v),
            }
            .execute(p)
            .await
            .map_err(failed)?
            .rows_affected()
        });
        Ok(n > 0)
    }

    async fn delete_older_than(
        &self,
        namespace: &str,
        before: DateTime<Utc>,
    ) -> Result<u64, PeerStoreError> {
        check(namespace, None, None)?;
        let n = on!(self.db(), |p, q| {
            sqlx::query(q(
                "DELETE FROM peer_state WHERE namespace = ? AND updated_at < ?",
            ))
            .bind(namespace)
            .bind(stamp(before))
            .execute(p)
            .await
            .map_err(failed)?
            .rows_affected()
        });
        Ok(n)
    }

    async fn next_in_sequence(&self, namespace: &str) -> Result<u64, PeerStoreError> {
        check(namespace, None, None)?;
        let n: i64 = on!(self.db(), |p, q| {
            sqlx::query_scalar(q(
                "INSERT INTO peer_sequence (namespace, last) VALUES (?, 1)
                 ON CONFLICT (namespace) DO UPDATE SET last = peer_sequence.last + 1
                 RETURNING last",
            ))
            .bind(namespace)
            .fetch_one(p)
            .await
            .map_err(failed)?
        });
        u64::try_from(n).map_err(|_| PeerStoreError::corrupt(format!("sequence {namespace}")))
    }
}
