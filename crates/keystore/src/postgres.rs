//! The PostgreSQL key store: one row per key in `passerelle_keys`, its 32 bytes
//! wrapped under the master key (AES-256-GCM, kind, organisation and key id bound as
//! associated data, so a row copied onto another organisation or id does not open).
//! Each row names the master key it is wrapped under, so an instance given another
//! master key is refused with that said, before any key is tried.
//!
//! Hub instances only read; the table is created and written by `passerelle keys`
//! alone, under a table lock (two rotations at once lose no key). A missing table is
//! a store without keys, never something the hub creates.
//!
//! The crypto crate's keyring is synchronous (the engine seals inside synchronous
//! code), so each call runs its queries on a short-lived thread with its own
//! single-threaded runtime and connection: it works from inside or outside a tokio
//! runtime, and key loads are rare (once per organisation per process, cached by the
//! sealer, and again after a rotation).

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use passerelle_crypto::{
    CryptoError, CryptoErrorKind, Kek, KeyStore, MasterKey, OrgKeys, PseudonymKey, Wrapped,
};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{Connection, Row};

/// The table's name, fixed: operators grant on it (`SELECT` for the hub's role).
pub const TABLE: &str = "passerelle_keys";
const KIND_KEK: &str = "kek";
const KIND_PSEUDONYM: &str = "pseudonym";
/// The pseudonym key's row: no organisation (codes are never empty).
const PSEUDONYM_ORG: &str = "";
const PSEUDONYM_ID: &str = "pseudonym";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS passerelle_keys (
    kind text NOT NULL CHECK (kind IN ('kek', 'pseudonym')),
    org text NOT NULL,
    key_id text NOT NULL,
    -- Position among the organisation's keys, oldest first.
    seq integer NOT NULL,
    created timestamptz NOT NULL,
    -- Which master key wraps this row (MasterKey::id, never the key).
    master_id text NOT NULL,
    nonce bytea NOT NULL,
    wrapped bytea NOT NULL,
    PRIMARY KEY (kind, org, key_id),
    UNIQUE (kind, org, seq)
)";

/// Keys in PostgreSQL, wrapped under a master key.
pub struct PgKeyStore {
    options: PgConnectOptions,
    master: MasterKey,
    /// `PostgreSQL table passerelle_keys on host:port/db`: no user, no password.
    place: String,
}

impl fmt::Debug for PgKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgKeyStore")
            .field("place", &self.place)
            .field("master", &self.master)
            .finish()
    }
}

impl fmt::Display for PgKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.place)
    }
}

/// One row to write: the key is wrapped on the way in.
struct NewRow<'a> {
    kind: &'a str,
    org: &'a str,
    seq: usize,
    key_id: &'a str,
    created: DateTime<Utc>,
    key: &'a [u8; 32],
}

/// One row as read, before unwrapping.
struct Stored {
    key_id: String,
    created: DateTime<Utc>,
    master_id: String,
    nonce: Vec<u8>,
    wrapped: Vec<u8>,
}

impl PgKeyStore {
    /// A store on `url` (its password, if any, is never shown); no I/O.
    pub fn new(url: &str, master: MasterKey) -> Result<Self, CryptoError> {
        let options = PgConnectOptions::from_str(url).map_err(|_| {
            // The URL may hold a password: say only what is expected.
            CryptoError::store(
                "PostgreSQL",
                "the key store URL is not a postgres:// URL sqlx can read",
            )
        })?;
        Ok(Self::with_options(options, master))
    }

    pub fn with_options(options: PgConnectOptions, master: MasterKey) -> Self {
        let place = format!(
            "PostgreSQL table {TABLE} on {}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("(default database)")
        );
        Self {
            options,
            master,
            place,
        }
    }

    fn error(&self, reason: impl fmt::Display) -> CryptoError {
        CryptoError::store(&self.place, reason.to_string())
    }

    fn sql(&self, what: &str, e: sqlx::Error) -> CryptoError {
        // sqlx's message names the statement's failure (a constraint, a missing
        // privilege, a refused connection); the parameters are ids and wrapped bytes.
        self.error(format!("{what}: {e}"))
    }

    /// Runs `work` on its own thread and runtime (see the module's comment for why).
    fn block<T: Send>(
        &self,
        work: impl Future<Output = Result<T, CryptoError>> + Send,
    ) -> Result<T, CryptoError> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| self.error(format!("cannot start a runtime: {e}")))?;
                    runtime.block_on(work)
                })
                .join()
                .unwrap_or_else(|_| Err(self.error("the key store's thread panicked")))
        })
    }

    async fn connect(&self) -> Result<PgConnection, CryptoError> {
        match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&self.options)).await
        {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(self.sql("cannot connect", e)),
            Err(_) => Err(self.error(format!(
                "cannot connect: no answer within {}s",
                CONNECT_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Refuses a master key other than the one the rows are wrapped under, before any
    /// key is tried. `false` when the table does not exist (a store without keys).
    async fn check_master(&self, conn: &mut PgConnection) -> Result<bool, CryptoError> {
        let other =
            sqlx::query("SELECT master_id FROM passerelle_keys WHERE master_id <> $1 LIMIT 1")
                .bind(self.master.id())
                .fetch_optional(&mut *conn)
                .await;
        match other {
            Ok(None) => Ok(true),
            Ok(Some(row)) => {
                let theirs: String = row.get(0);
                Err(CryptoError::MasterKey {
                    reason: format!(
                        "the keys in {} are wrapped under master key {theirs}, this instance was given master key {}: give every instance the master key the store was made with",
                        self.place,
                        self.master.id()
                    ),
                })
            }
            Err(e) if is_undefined_table(&e) => Ok(false),
            Err(e) => Err(self.sql("cannot read the keys", e)),
        }
    }

    async fn rows(
        &self,
        conn: &mut PgConnection,
        kind: &str,
        org: &str,
    ) -> Result<Vec<Stored>, CryptoError> {
        let rows = sqlx::query(
            "SELECT key_id, created, master_id, nonce, wrapped FROM passerelle_keys
             WHERE kind = $1 AND org = $2 ORDER BY seq",
        )
        .bind(kind)
        .bind(org)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| self.sql("cannot read the keys", e))?;
        Ok(rows
            .into_iter()
            .map(|r| Stored {
                key_id: r.get(0),
                created: r.get(1),
                master_id: r.get(2),
                nonce: r.get(3),
                wrapped: r.get(4),
            })
            .collect())
    }

    fn unwrap_row(
        &self,
        kind: &str,
        org: &str,
        row: &Stored,
    ) -> Result<zeroize::Zeroizing<[u8; 32]>, CryptoError> {
        let what = if kind == KIND_PSEUDONYM {
            "the pseudonym key".to_owned()
        } else {
            format!("key `{}` of `{org}`", row.key_id)
        };
        if row.master_id != self.master.id() {
            return Err(CryptoError::MasterKey {
                reason: format!(
                    "{what} in {} is wrapped under master key {}, this instance was given master key {}",
                    self.place,
                    row.master_id,
                    self.master.id()
                ),
            });
        }
        let nonce: [u8; 12] = row
            .nonce
            .as_slice()
            .try_into()
            .map_err(|_| self.error(format!("{what}: the nonce is not 12 bytes")))?;
        let wrapped = Wrapped {
            nonce,
            ciphertext: row.wrapped.clone(),
        };
        self.master
            .unwrap(kind, org, &row.key_id, &wrapped)
            .map_err(|e| match e.kind() {
                CryptoErrorKind::Authentication => self.error(format!(
                    "{what} does not unwrap under {}: the row was altered or moved from another organisation or id",
                    self.master
                )),
                _ => self.error(format!("{what}: {e}")),
            })
    }

    async fn org_keys(
        &self,
        conn: &mut PgConnection,
        org: &str,
    ) -> Result<Option<OrgKeys>, CryptoError> {
        let mut keys = Vec::new();
        for row in self.rows(conn, KIND_KEK, org).await? {
            let bytes = self.unwrap_row(KIND_KEK, org, &row)?;
            keys.push(Kek::from_bytes(row.key_id.clone(), row.created, *bytes));
        }
        Ok(OrgKeys::new(org, keys))
    }

    async fn pseudonym(
        &self,
        conn: &mut PgConnection,
    ) -> Result<Option<PseudonymKey>, CryptoError> {
        let rows = self.rows(conn, KIND_PSEUDONYM, PSEUDONYM_ORG).await?;
        match rows.first() {
            None => Ok(None),
            Some(row) => {
                let bytes = self.unwrap_row(KIND_PSEUDONYM, PSEUDONYM_ORG, row)?;
                Ok(Some(PseudonymKey::from_bytes(*bytes)))
            }
        }
    }

    async fn insert(&self, conn: &mut PgConnection, row: NewRow<'_>) -> Result<(), CryptoError> {
        let NewRow {
            kind,
            org,
            seq,
            key_id,
            created,
            key,
        } = row;
        let wrapped = self.master.wrap(kind, org, key_id, key);
        let seq = i32::try_from(seq).map_err(|_| self.error("too many keys"))?;
        sqlx::query(
            "INSERT INTO passerelle_keys (kind, org, key_id, seq, created, master_id, nonce, wrapped)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(kind)
        .bind(org)
        .bind(key_id)
        .bind(seq)
        .bind(created)
        .bind(self.master.id())
        .bind(wrapped.nonce.as_slice())
        .bind(wrapped.ciphertext.as_slice())
        .execute(&mut *conn)
        .await
        .map_err(|e| self.sql("cannot store a key", e))?;
        Ok(())
    }

    /// Opens a writing transaction for `passerelle keys`: the table created if
    /// missing, writers serialised (readers go on), the master key checked.
    async fn begin_writing<'c>(
        &self,
        conn: &'c mut PgConnection,
    ) -> Result<sqlx::Transaction<'c, sqlx::Postgres>, CryptoError> {
        sqlx::query(SCHEMA)
            .execute(&mut *conn)
            .await
            .map_err(|e| self.sql("cannot create the key table", e))?;
        let mut tx = conn
            .begin()
            .await
            .map_err(|e| self.sql("cannot begin", e))?;
        sqlx::query("LOCK TABLE passerelle_keys IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await
            .map_err(|e| self.sql("cannot lock the key table", e))?;
        self.check_master(&mut tx).await?;
        Ok(tx)
    }

    async fn update(
        &self,
        org: &str,
        change: &mut (dyn FnMut(Option<OrgKeys>) -> Result<OrgKeys, CryptoError> + Send),
    ) -> Result<OrgKeys, CryptoError> {
        let mut conn = self.connect().await?;
        let mut tx = self.begin_writing(&mut conn).await?;
        let before = self.org_keys(&mut tx, org).await?;
        let held: Vec<String> = before
            .as_ref()
            .map(|k| k.keys().iter().map(|k| k.id().to_owned()).collect())
            .unwrap_or_default();
        let after = change(before)?;
        let kept = after.org() == org
            && after.keys().len() >= held.len()
            && after.keys().iter().zip(&held).all(|(k, id)| k.id() == id);
        if !kept {
            return Err(self.error(format!(
                "keys of `{org}` are only ever added: older keys open older envelopes"
            )));
        }
        for (i, k) in after.keys().iter().enumerate().skip(held.len()) {
            let row = NewRow {
                kind: KIND_KEK,
                org,
                seq: i + 1,
                key_id: k.id(),
                created: k.created(),
                key: k.expose_bytes(),
            };
            self.insert(&mut tx, row).await?;
        }
        tx.commit()
            .await
            .map_err(|e| self.sql("cannot commit", e))?;
        Ok(after)
    }

    async fn init(&self, fresh: PseudonymKey) -> Result<(PseudonymKey, bool), CryptoError> {
        let mut conn = self.connect().await?;
        let mut tx = self.begin_writing(&mut conn).await?;
        if let Some(k) = self.pseudonym(&mut tx).await? {
            return Ok((k, false));
        }
        let row = NewRow {
            kind: KIND_PSEUDONYM,
            org: PSEUDONYM_ORG,
            seq: 1,
            key_id: PSEUDONYM_ID,
            created: Utc::now(),
            key: fresh.expose_bytes(),
        };
        self.insert(&mut tx, row).await?;
        tx.commit()
            .await
            .map_err(|e| self.sql("cannot commit", e))?;
        Ok((fresh, true))
    }
}

fn is_undefined_table(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("42P01"))
}

impl KeyStore for PgKeyStore {
    fn load_org(&self, org: &str) -> Result<Option<OrgKeys>, CryptoError> {
        self.block(async {
            let mut conn = self.connect().await?;
            if !self.check_master(&mut conn).await? {
                return Ok(None);
            }
            self.org_keys(&mut conn, org).await
        })
    }

    fn load_pseudonym(&self) -> Result<Option<PseudonymKey>, CryptoError> {
        self.block(async {
            let mut conn = self.connect().await?;
            if !self.check_master(&mut conn).await? {
                return Ok(None);
            }
            self.pseudonym(&mut conn).await
        })
    }

    fn orgs(&self) -> Result<Vec<String>, CryptoError> {
        self.block(async {
            let mut conn = self.connect().await?;
            if !self.check_master(&mut conn).await? {
                return Ok(Vec::new());
            }
            let rows = sqlx::query(
                "SELECT DISTINCT org FROM passerelle_keys WHERE kind = 'kek' ORDER BY org",
            )
            .fetch_all(&mut conn)
            .await
            .map_err(|e| self.sql("cannot list the organisations", e))?;
            Ok(rows.into_iter().map(|r| r.get(0)).collect())
        })
    }

    fn update_org(
        &self,
        org: &str,
        change: &mut (dyn FnMut(Option<OrgKeys>) -> Result<OrgKeys, CryptoError> + Send),
    ) -> Result<OrgKeys, CryptoError> {
        self.block(self.update(org, change))
    }

    fn init_pseudonym(&self, fresh: PseudonymKey) -> Result<(PseudonymKey, bool), CryptoError> {
        self.block(self.init(fresh))
    }
}
