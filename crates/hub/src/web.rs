//! The web application's store, in the hub's state database: local accounts (argon2id
//! hashes, never a password), sessions (by the SHA-256 of their id, never the id
//! itself), and the read queries the pages need (the identity index by blind index,
//! an organisation's transfers with their dates).
//!
//! Nothing personal either: an account is a login and a role, a session a hash and
//! times, persons are hub ids and blind indexes as in the rest of the store.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use passerelle_identity::KeyKind;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::sqlite::SqlitePool;
use uuid::Uuid;

use crate::state::{HubState, TransferRow, TransferStatus};

/// Errors of the web store.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("web store database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("account `{0}` already exists")]
    Exists(String),
    #[error("no account `{0}`")]
    NoAccount(String),
    #[error("web store holds an invalid {0}")]
    Corrupt(&'static str),
}

type Result<T> = std::result::Result<T, WebError>;

const MIGRATION: &str = r#"
CREATE TABLE IF NOT EXISTS web_account (
    login TEXT PRIMARY KEY, password_hash TEXT NOT NULL, role TEXT NOT NULL,
    org TEXT, disabled INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL);
-- id_hash: hex SHA-256 of the cookie's 256-bit id, so a copy of the store opens no session.
CREATE TABLE IF NOT EXISTS web_session (
    id_hash TEXT PRIMARY KEY, login TEXT NOT NULL, csrf TEXT NOT NULL,
    created_at TEXT NOT NULL, last_seen TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS web_session_by_login ON web_session (login);
CREATE INDEX IF NOT EXISTS transfer_by_hub_id ON transfer (hub_id);
"#;

/// What an account may do (spec/web.md, "Roles").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Conseiller,
    Operateur,
    Dpo,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Conseiller, Role::Operateur, Role::Dpo, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Conseiller => "conseiller",
            Role::Operateur => "operateur",
            Role::Dpo => "dpo",
            Role::Admin => "admin",
        }
    }

    /// Whether an account of this role belongs to one organisation.
    pub fn scoped(self) -> bool {
        matches!(self, Role::Conseiller | Role::Operateur)
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("unknown role `{s}` (expected conseiller, operateur, dpo or admin)")
            })
    }
}

/// One account as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct Account {
    pub login: String,
    /// PHC string of the argon2id hash.
    pub password_hash: String,
    pub role: Role,
    /// The organisation code (`59350S00`, `CD059`) of a conseiller or operateur.
    pub org: Option<String>,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("login", &self.login)
            .field("role", &self.role)
            .field("org", &self.org)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// One session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub login: String,
    pub csrf: String,
    pub created_at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// One transfer with its dates, for the pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatedTransfer {
    pub row: TransferRow,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The sender's reference as stored (`place:…` or `sealed:…`; see
    /// `engine::open_sender_ref_full`), absent for transfers recorded before.
    pub sender_ref: Option<String>,
}

/// Which of an organisation's transfers `sent_by` lists.
#[derive(Debug, Clone, Default)]
pub struct SentFilter {
    pub flow: Option<String>,
    pub status: Option<TransferStatus>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub limit: u32,
}

/// The web application's tables in the hub's state database.
#[derive(Debug, Clone)]
pub struct WebStore {
    pool: SqlitePool,
}

fn time(s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| WebError::Corrupt("time"))
}

fn now() -> String {
    Utc::now().to_rfc3339()
}

impl WebStore {
    /// The web tables of this state store, created when missing.
    pub async fn open(state: &HubState) -> Result<Self> {
        let pool = state.pool().clone();
        sqlx::raw_sql(MIGRATION).execute(&pool).await?;
        Ok(Self { pool })
    }

    pub async fn add_account(
        &self,
        login: &str,
        password_hash: &str,
        role: Role,
        org: Option<&str>,
    ) -> Result<()> {
        let t = now();
        let r = sqlx::query(
            "INSERT INTO web_account (login, password_hash, role, org, disabled, created_at, updated_at) \
             VALUES (?, ?, ?, ?, 0, ?, ?) ON CONFLICT (login) DO NOTHING",
        )
        .bind(login)
        .bind(password_hash)
        .bind(role.as_str())
        .bind(org)
        .bind(&t)
        .bind(&t)
        .execute(&self.pool)
        .await?;
        if r.rows_affected() == 0 {
            return Err(WebError::Exists(login.to_owned()));
        }
        Ok(())
    }

    fn account_of(r: &sqlx::sqlite::SqliteRow) -> Result<Account> {
        Ok(Account {
            login: r.try_get("login")?,
            password_hash: r.try_get("password_hash")?,
            role: r
                .try_get::<String, _>("role")?
                .parse()
                .map_err(|_| WebError::Corrupt("role"))?,
            org: r.try_get("org")?,
            disabled: r.try_get::<i64, _>("disabled")? != 0,
            created_at: time(&r.try_get::<String, _>("created_at")?)?,
        })
    }

    pub async fn account(&self, login: &str) -> Result<Option<Account>> {
        let row = sqlx::query("SELECT * FROM web_account WHERE login = ?")
            .bind(login)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::account_of).transpose()
    }

    pub async fn accounts(&self) -> Result<Vec<Account>> {
        let rows = sqlx::query("SELECT * FROM web_account ORDER BY login")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Self::account_of).collect()
    }

    /// Disables an account and ends its sessions.
    pub async fn disable(&self, login: &str) -> Result<()> {
        let r = sqlx::query("UPDATE web_account SET disabled = 1, updated_at = ? WHERE login = ?")
            .bind(now())
            .bind(login)
            .execute(&self.pool)
            .await?;
        if r.rows_affected() == 0 {
            return Err(WebError::NoAccount(login.to_owned()));
        }
        self.end_sessions_of(login).await
    }

    /// Sets a new password hash (and enables the account), ending its sessions.
    pub async fn set_password(&self, login: &str, password_hash: &str) -> Result<()> {
        let r = sqlx::query(
            "UPDATE web_account SET password_hash = ?, disabled = 0, updated_at = ? WHERE login = ?",
        )
        .bind(password_hash)
        .bind(now())
        .bind(login)
        .execute(&self.pool)
        .await?;
        if r.rows_affected() == 0 {
            return Err(WebError::NoAccount(login.to_owned()));
        }
        self.end_sessions_of(login).await
    }

    pub async fn create_session(&self, id_hash: &str, login: &str, csrf: &str) -> Result<()> {
        let t = now();
        sqlx::query(
            "INSERT INTO web_session (id_hash, login, csrf, created_at, last_seen) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(id_hash)
        .bind(login)
        .bind(csrf)
        .bind(&t)
        .bind(&t)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn session(&self, id_hash: &str) -> Result<Option<SessionRow>> {
        let row = sqlx::query("SELECT * FROM web_session WHERE id_hash = ?")
            .bind(id_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(SessionRow {
                login: r.try_get("login")?,
                csrf: r.try_get("csrf")?,
                created_at: time(&r.try_get::<String, _>("created_at")?)?,
                last_seen: time(&r.try_get::<String, _>("last_seen")?)?,
            })
        })
        .transpose()
    }

    pub async fn touch_session(&self, id_hash: &str, at: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE web_session SET last_seen = ? WHERE id_hash = ?")
            .bind(at.to_rfc3339())
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn end_session(&self, id_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM web_session WHERE id_hash = ?")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn end_sessions_of(&self, login: &str) -> Result<()> {
        sqlx::query("DELETE FROM web_session WHERE login = ?")
            .bind(login)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Drops sessions idle since `idle_before` or opened before `created_before`.
    pub async fn purge_sessions(
        &self,
        idle_before: DateTime<Utc>,
        created_before: DateTime<Utc>,
    ) -> Result<u64> {
        // RFC 3339 in UTC with the same offset form sorts as text.
        let r = sqlx::query("DELETE FROM web_session WHERE last_seen < ? OR created_at < ?")
            .bind(idle_before.to_rfc3339())
            .bind(created_before.to_rfc3339())
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    /// The hub ids the identity index attaches to any of these blind indexes.
    pub async fn hub_ids_for(&self, keys: &[(KeyKind, String)]) -> Result<Vec<Uuid>> {
        let mut out = Vec::new();
        for (kind, key) in keys {
            let rows = sqlx::query("SELECT hub_id FROM identity_key WHERE kind = ? AND key = ?")
                .bind(kind.name())
                .bind(key)
                .fetch_all(&self.pool)
                .await?;
            for r in rows {
                let id: String = r.try_get(0)?;
                let id = Uuid::parse_str(&id).map_err(|_| WebError::Corrupt("hub id"))?;
                if !out.contains(&id) {
                    out.push(id);
                }
            }
        }
        Ok(out)
    }

    fn dated(r: &sqlx::sqlite::SqliteRow) -> Result<DatedTransfer> {
        let id = |s: String| Uuid::parse_str(&s).map_err(|_| WebError::Corrupt("uuid"));
        Ok(DatedTransfer {
            row: TransferRow {
                transfer_id: id(r.try_get("transfer_id")?)?,
                flow: r.try_get("flow")?,
                sender: r.try_get("sender")?,
                recipient: r.try_get("recipient")?,
                hub_id: id(r.try_get("hub_id")?)?,
                status: TransferStatus::parse_name(&r.try_get::<String, _>("status")?)
                    .ok_or(WebError::Corrupt("status"))?,
                reason: r.try_get("reason")?,
            },
            created_at: time(&r.try_get::<String, _>("created_at")?)?,
            updated_at: time(&r.try_get::<String, _>("updated_at")?)?,
            sender_ref: r.try_get("sender_ref")?,
        })
    }

    /// The identity keys the index holds for a person (blind indexes, by kind).
    pub async fn keys_of(&self, hub_id: &Uuid) -> Result<Vec<(KeyKind, String)>> {
        let rows = sqlx::query("SELECT kind, key FROM identity_key WHERE hub_id = ?")
            .bind(hub_id.to_string())
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let kind: String = r.try_get(0)?;
            if let Some(k) = KeyKind::parse(&kind) {
                out.push((k, r.try_get(1)?));
            }
        }
        Ok(out)
    }

    /// One transfer with its dates.
    pub async fn transfer(&self, transfer_id: &Uuid) -> Result<Option<DatedTransfer>> {
        let row = sqlx::query("SELECT * FROM transfer WHERE transfer_id = ?")
            .bind(transfer_id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::dated).transpose()
    }

    /// The transfers about these persons, oldest first.
    pub async fn transfers_about(&self, hub_ids: &[Uuid]) -> Result<Vec<DatedTransfer>> {
        let mut out = Vec::new();
        for h in hub_ids {
            let rows = sqlx::query("SELECT * FROM transfer WHERE hub_id = ?")
                .bind(h.to_string())
                .fetch_all(&self.pool)
                .await?;
            for r in &rows {
                out.push(Self::dated(r)?);
            }
        }
        out.sort_by_key(|t| t.created_at);
        Ok(out)
    }

    /// What `sender` sent, newest first, filtered.
    pub async fn sent_by(&self, sender: &str, f: &SentFilter) -> Result<Vec<DatedTransfer>> {
        let mut qb = sqlx::QueryBuilder::new("SELECT * FROM transfer WHERE sender = ");
        qb.push_bind(sender.to_owned());
        if let Some(flow) = &f.flow {
            qb.push(" AND flow = ").push_bind(flow.clone());
        }
        if let Some(s) = f.status {
            qb.push(" AND status = ").push_bind(s.as_str());
        }
        let rows = qb
            .push(" ORDER BY created_at DESC")
            .build()
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::new();
        for r in &rows {
            let t = Self::dated(r)?;
            // Times are compared parsed: stored offsets need not all be written alike.
            if f.from.is_some_and(|from| t.created_at < from)
                || f.to.is_some_and(|to| t.created_at >= to)
            {
                continue;
            }
            out.push(t);
            if f.limit > 0 && out.len() >= f.limit as usize {
                break;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accounts_and_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let state = HubState::open(&dir.path().join("state.sqlite"))
            .await
            .unwrap();
        let web = WebStore::open(&state).await.unwrap();
        web.add_account("alice", "$argon2id$x", Role::Conseiller, Some("59350S00"))
            .await
            .unwrap();
        assert!(matches!(
            web.add_account("alice", "h", Role::Dpo, None).await,
            Err(WebError::Exists(_))
        ));
        let a = web.account("alice").await.unwrap().unwrap();
        assert_eq!(
            (a.role, a.org.as_deref(), a.disabled),
            (Role::Conseiller, Some("59350S00"), false)
        );
        web.create_session("h1", "alice", "c1").await.unwrap();
        assert_eq!(web.session("h1").await.unwrap().unwrap().csrf, "c1");
        web.disable("alice").await.unwrap();
        assert!(
            web.session("h1").await.unwrap().is_none(),
            "disabling ends sessions"
        );
        assert!(web.account("alice").await.unwrap().unwrap().disabled);
        web.set_password("alice", "$argon2id$y").await.unwrap();
        let a = web.account("alice").await.unwrap().unwrap();
        assert_eq!(
            (a.password_hash.as_str(), a.disabled),
            ("$argon2id$y", false)
        );
        assert!(matches!(
            web.disable("bob").await,
            Err(WebError::NoAccount(_))
        ));

        web.create_session("h2", "alice", "c2").await.unwrap();
        let later = Utc::now() + chrono::Duration::minutes(1);
        assert_eq!(
            web.purge_sessions(later, Utc::now() - chrono::Duration::hours(1))
                .await
                .unwrap(),
            1
        );
        assert!(web.session("h2").await.unwrap().is_none());
    }
}
