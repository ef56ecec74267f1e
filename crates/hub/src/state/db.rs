//! The two engines behind `HubState`, `WebStore` and `ReviewStore`: a pool of either,
//! one macro that runs the same code on whichever it is, and the few helpers that let
//! that code stay the same (placeholders, reading columns).
//!
//! SQL is written once with `?` marks; PostgreSQL gets them numbered (`$1`, `$2`…).
//! Where the dialects differ (schemas, locks), the caller says so explicitly.

use sqlx::Row;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::sqlite::{SqlitePool, SqliteRow};

/// A pool of one of the two engines.
#[derive(Debug, Clone)]
pub(crate) enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Db {
    /// How a write transaction starts. SQLite: take the write lock at once (a deferred
    /// one that reads first fails with "database is locked" when another connection
    /// wrote in between). PostgreSQL: a plain transaction; writes that must not
    /// interleave across instances take an advisory lock inside it (`TRANSFER_LOCK`).
    pub(crate) fn begin_sql(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "BEGIN IMMEDIATE",
            Db::Postgres(_) => "BEGIN",
        }
    }

    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }
}

/// The advisory lock (PostgreSQL, two-key form, class 7215) that transactions moving
/// transfers hold: a receipt read and written by one instance while another publishes
/// or settles the same transfer would otherwise move it back, or miss the other's row.
/// SQLite's `BEGIN IMMEDIATE` gives the same order on one machine.
pub(crate) const TRANSFER_LOCK: &str = "SELECT pg_advisory_xact_lock(7215, 1)";

/// Runs `$body` on the pool, with `$p` bound to it and `$q` turning SQL written with
/// `?` marks into that engine's form. The body is compiled once per engine.
macro_rules! on {
    ($db:expr, |$p:ident, $q:ident| $body:expr) => {
        match $db {
            $crate::state::db::Db::Sqlite($p) => {
                #[allow(unused_variables)]
                let $q = |s: &str| sqlx::AssertSqlSafe(s.to_owned());
                $body
            }
            $crate::state::db::Db::Postgres($p) => {
                #[allow(unused_variables)]
                let $q = |s: &str| sqlx::AssertSqlSafe($crate::state::db::numbered(s));
                $body
            }
        }
    };
}
pub(crate) use on;

/// `sql` with each `?` mark numbered for PostgreSQL. The SQL of this crate has no `?`
/// inside a literal, so every `?` is a mark.
pub(crate) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// A column name or position valid on both engines' rows.
pub(crate) trait Idx:
    sqlx::ColumnIndex<SqliteRow> + sqlx::ColumnIndex<PgRow> + std::fmt::Debug
{
}
impl<T: sqlx::ColumnIndex<SqliteRow> + sqlx::ColumnIndex<PgRow> + std::fmt::Debug> Idx for T {}

/// Reading a row the same way on both engines (the decoders shared code needs).
pub(crate) trait Cols {
    fn text(&self, i: impl Idx) -> Result<String, sqlx::Error>;
    fn opt_text(&self, i: impl Idx) -> Result<Option<String>, sqlx::Error>;
    fn int(&self, i: impl Idx) -> Result<i64, sqlx::Error>;
    fn opt_bytes(&self, i: impl Idx) -> Result<Option<Vec<u8>>, sqlx::Error>;
}

macro_rules! cols {
    ($row:ty) => {
        impl Cols for $row {
            fn text(&self, i: impl Idx) -> Result<String, sqlx::Error> {
                self.try_get(i)
            }
            fn opt_text(&self, i: impl Idx) -> Result<Option<String>, sqlx::Error> {
                self.try_get(i)
            }
            fn int(&self, i: impl Idx) -> Result<i64, sqlx::Error> {
                self.try_get(i)
            }
            fn opt_bytes(&self, i: impl Idx) -> Result<Option<Vec<u8>>, sqlx::Error> {
                self.try_get(i)
            }
        }
    };
}
cols!(SqliteRow);
cols!(PgRow);

#[cfg(test)]
mod tests {
    #[test]
    fn marks_are_numbered_in_order() {
        assert_eq!(
            super::numbered("SELECT a FROM t WHERE b = ? AND (? IS NULL OR c = ?)"),
            "SELECT a FROM t WHERE b = $1 AND ($2 IS NULL OR c = $3)"
        );
    }
}
