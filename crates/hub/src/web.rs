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
use uuid::Uuid;

use crate::state::{Cols, Db, HubState, TransferRow, TransferStatus, on};

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
    db: Db,
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
    /// The web tables of this state store (created with the state's own).
    pub async fn open(state: &HubState) -> Result<Self> {
        Ok(Self {
            db: state.db().clone(),
        })
    }

    pub async fn add_account(
        &self,
        login: &str,
        password_hash: &str,
        role: Role,
        org: Option<&str>,
    ) -> Result<()> {
        let t = now();
        let affected = on!(&self.db, |p, q| {
            sqlx::query(q(
                "INSERT INTO web_account (login, password_hash, role, org, disabled, created_at, updated_at) \
                 VALUES (?, ?, ?, ?, 0, ?, ?) ON CONFLICT (login) DO NOTHING",
            ))
            .bind(login)
            .bind(password_hash)
            .bind(role.as_str())
            .bind(org)
            .bind(&t)
            .bind(&t)
            .execute(p)
            .await?
            .rows_affected()
        });
        if affected == 0 {
            return Err(WebError::Exists(login.to_owned()));
        }
        Ok(())
    }

    fn account_of(r: &impl Cols) -> Result<Account> {
        Ok(Account {
            login: r.text("login")?,
            password_hash: r.text("password_hash")?,
            role: r
                .text("role")?
                .parse()
                .map_err(|_| WebError::Corrupt("role"))?,
            org: r.opt_text("org")?,
            disabled: r.int("disabled")? != 0,
            created_at: time(&r.text("created_at")?)?,
        })
    }

    pub async fn account(&self, login: &str) -> Result<Option<Account>> {
        on!(&self.db, |p, q| {
            let row = sqlx::query(q("SELECT * FROM web_account WHERE login = ?"))
                .bind(login)
                .fetch_optional(p)
                .await?;
            row.as_ref().map(Self::account_of).transpose()
        })
    }

    pub async fn accounts(&self) -> Result<Vec<Account>> {
        on!(&self.db, |p, q| {
            let rows = sqlx::query("SELECT * FROM web_account ORDER BY login")
                .fetch_all(p)
                .await?;
            rows.iter().map(Self::account_of).collect()
        })
    }

    /// Disables an account and ends its sessions.
    pub async fn disable(&self, login: &str) -> Result<()> {
        let affected = on!(&self.db, |p, q| {
            sqlx::query(q(
                "UPDATE web_account SET disabled = 1, updated_at = ? WHERE login = ?",
            ))
            .bind(now())
            .bind(login)
            .execute(p)
            .await?
            .rows_affected()
        });
        if affected == 0 {
            return Err(WebError::NoAccount(login.to_owned()));
        }
        self.end_sessions_of(login).await
    }

    /// Sets a new password hash (and enables the account), ending its sessions.
    pub async fn set_password(&self, login: &str, password_hash: &str) -> Result<()> {
        let affected = on!(&self.db, |p, q| {
            sqlx::query(q(
                "UPDATE web_account SET password_hash = ?, disabled = 0, updated_at = ? WHERE login = ?",
            ))
            .bind(password_hash)
            .bind(now())
            .bind(login)
            .execute(p)
            .await?
            .rows_affected()
        });
        if affected == 0 {
            return Err(WebError::NoAccount(login.to_owned()));
        }
        self.end_sessions_of(login).await
    }

    pub async fn create_session(&self, id_hash: &str, login: &str, csrf: &str) -> Result<()> {
        let t = now();
        on!(&self.db, |p, q| {
            sqlx::query(q(
                "INSERT INTO web_session (id_hash, login, csrf, created_at, last_seen) VALUES (?, ?, ?, ?, ?)",
            ))
            .bind(id_hash)
            .bind(login)
            .bind(csrf)
            .bind(&t)
            .bind(&t)
            .execute(p)
            .await?;
        });
        Ok(())
    }

    pub async fn session(&self, id_hash: &str) -> Result<Option<SessionRow>> {
        on!(&self.db, |p, q| {
            let row = sqlx::query(q("SELECT * FROM web_session WHERE id_hash = ?"))
                .bind(id_hash)
                .fetch_optional(p)
                .await?;
            row.map(|r| {
                Ok(SessionRow {
                    login: r.text("login")?,
                    csrf: r.text("csrf")?,
                    created_at: time(&r.text("created_at")?)?,
                    last_seen: time(&r.text("last_seen")?)?,
                })
            })
            .transpose()
        })
    }

    pub async fn touch_session(&self, id_hash: &str, at: DateTime<Utc>) -> Result<()> {
        on!(&self.db, |p, q| {
            sqlx::query(q("UPDATE web_session SET last_seen = ? WHERE id_hash = ?"))
                .bind(at.to_rfc3339())
                .bind(id_hash)
                .execute(p)
                .await?;
        });
        Ok(())
    }

    pub async fn end_session(&self, id_hash: &str) -> Result<()> {
        on!(&self.db, |p, q| {
            sqlx::query(q("DELETE FROM web_session WHERE id_hash = ?"))
                .bind(id_hash)
                .execute(p)
                .await?;
        });
        Ok(())
    }

    pub async fn end_sessions_of(&self, login: &str) -> Result<()> {
        on!(&self.db, |p, q| {
            sqlx::query(q("DELETE FROM web_session WHERE login = ?"))
                .bind(login)
                .execute(p)
                .await?;
        });
        Ok(())
    }

    /// Drops sessions idle since `idle_before` or opened before `created_before`.
    pub async fn purge_sessions(
        &self,
        idle_before: DateTime<Utc>,
        created_before: DateTime<Utc>,
    ) -> Result<u64> {
        // RFC 3339 in UTC with the same offset form sorts as text.
        Ok(on!(&self.db, |p, q| {
            sqlx::query(q(
                "DELETE FROM web_session WHERE last_seen < ? OR created_at < ?",
            ))
            .bind(idle_before.to_rfc3339())
            .bind(created_before.to_rfc3339())
            .execute(p)
            .await?
            .rows_affected()
        }))
    }

    /// The hub ids the identity index attaches to any of these blind indexes.
    pub async fn hub_ids_for(&self, keys: &[(KeyKind, String)]) -> Result<Vec<Uuid>> {
        let mut out = Vec::new();
        for (kind, key) in keys {
            let ids: Vec<String> = on!(&self.db, |p, q| {
                sqlx::query_scalar(q(
                    "SELECT hub_id FROM identity_key WHERE kind = ? AND key = ?",
                ))
                .bind(kind.name())
                .bind(key)
                .fetch_all(p)
                .await?
            });
            for id in ids {
                let id = Uuid::parse_str(&id).map_err(|_| WebError::Corrupt("hub id"))?;
                if !out.contains(&id) {
                    out.push(id);
                }
            }
        }
        Ok(out)
    }

    fn dated(r: &impl Cols) -> Result<DatedTransfer> {
        let id = |s: String| Uuid::parse_str(&s).map_err(|_| WebError::Corrupt("uuid"));
        Ok(DatedTransfer {
            row: TransferRow {
                transfer_id: id(r.text("transfer_id")?)?,
                flow: r.text("flow")?,
                sender: r.text("sender")?,
                recipient: r.text("recipient")?,
                hub_id: id(r.text("hub_id")?)?,
                status: TransferStatus::parse_name(&r.text("status")?)
                    .ok_or(WebError::Corrupt("status"))?,
                reason: r.opt_text("reason")?,
            },
            created_at: time(&r.text("created_at")?)?,
            updated_at: time(&r.text("updated_at")?)?,
            sender_ref: r.opt_text("sender_ref")?,
        })
    }

    /// The identity keys the index holds for a person (blind indexes, by kind).
    pub async fn keys_of(&self, hub_id: &Uuid) -> Result<Vec<(KeyKind, String)>> {
        let rows: Vec<(String, String)> = on!(&self.db, |p, q| {
            sqlx::query_as(q("SELECT kind, key FROM identity_key WHERE hub_id = ?"))
                .bind(hub_id.to_string())
                .fetch_all(p)
                .await?
        });
        Ok(rows
            .into_iter()
            .filter_map(|(kind, key)| KeyKind::parse(&kind).map(|k| (k, key)))
            .collect())
    }

    /// One transfer with its dates.
    pub async fn transfer(&self, transfer_id: &Uuid) -> Result<Option<DatedTransfer>> {
        on!(&self.db, |p, q| {
            let row = sqlx::query(q("SELECT * FROM transfer WHERE transfer_id = ?"))
                .bind(transfer_id.to_string())
                .fetch_optional(p)
                .await?;
            row.as_ref().map(Self::dated).transpose()
        })
    }

    /// The transfers about these persons, oldest first.
    pub async fn transfers_about(&self, hub_ids: &[Uuid]) -> Result<Vec<DatedTransfer>> {
        let mut out = Vec::new();
        for h in hub_ids {
            on!(&self.db, |p, q| {
                let rows = sqlx::query(q("SELECT * FROM transfer WHERE hub_id = ?"))
                    .bind(h.to_string())
                    .fetch_all(p)
                    .await?;
                for r in &rows {
                    out.push(Self::dated(r)?);
                }
            });
        }
        out.sort_by_key(|t| t.created_at);
        Ok(out)
    }

    /// What `sender` sent, newest first, filtered.
    pub async fn sent_by(&self, sender: &str, f: &SentFilter) -> Result<Vec<DatedTransfer>> {
        let status = f.status.map(|s| s.as_str());
        let rows: Vec<DatedTransfer> = on!(&self.db, |p, q| {
            let rows = sqlx::query(q(
                "SELECT * FROM transfer WHERE sender = ? AND (? IS NULL OR flow = ?)
                 AND (? IS NULL OR status = ?) ORDER BY created_at DESC",
            ))
            .bind(sender)
            .bind(f.flow.as_deref())
            .bind(f.flow.as_deref())
            .bind(status)
            .bind(status)
            .fetch_all(p)
            .await?;
            rows.iter().map(Self::dated).collect::<Result<_>>()?
        });
        let mut out = Vec::new();
        for t in rows {
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
