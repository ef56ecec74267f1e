//! The audit crate's one error type, with a kind the callers decide on.

use std::sync::Arc;

/// What went wrong, coarsely, so that callers (the engine, the CLI) can decide without
/// matching on messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The configuration or an argument is wrong (bad URL, bad date…).
    Invalid,
    /// The database cannot be reached or refused the operation for a transient reason.
    Unavailable,
    /// The database refused the operation on purpose (append-only triggers, privileges).
    Refused,
    /// The stored journal is not what this code wrote (unreadable row, broken chain).
    Corrupt,
    /// Writing an export failed.
    Io,
    /// The journal asked for does not exist (no file, no tables): nothing was created.
    Missing,
}

/// An error of the audit journal. Messages never hold personal data: the journal holds
/// none, and the subject identifiers given to a query are never echoed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    #[error("invalid journal setting {what}: {rule}")]
    Invalid { what: &'static str, rule: String },
    #[error("journal database error while {doing}")]
    Database {
        doing: &'static str,
        #[source]
        source: Arc<sqlx::Error>,
    },
    #[error("{0}")]
    Missing(String),
    #[error("journal is corrupt: {0}")]
    Corrupt(String),
    #[error("the chain is broken ({0}); purge refused so that no evidence is destroyed")]
    BrokenChain(String),
    #[error("the appender task has stopped")]
    Stopped,
    #[error("cannot write the export: {0}")]
    Io(Arc<std::io::Error>),
    /// The time-stamping authority could not stamp an anchor (nothing was stored).
    #[error("cannot time-stamp the anchor: {0}")]
    Timestamp(String),
}

impl AuditError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Invalid { .. } => ErrorKind::Invalid,
            Self::Database { source, .. } => match source.as_ref() {
                sqlx::Error::Database(db) => {
                    // Triggers and privileges refuse on purpose; everything else from
                    // the server is treated as transient.
                    let msg = db.message();
                    if msg.contains("append-only")
                        || msg.contains("permission denied")
                        || msg.contains("does not follow the head")
                    {
                        ErrorKind::Refused
                    } else {
                        ErrorKind::Unavailable
                    }
                }
                sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => ErrorKind::Corrupt,
                _ => ErrorKind::Unavailable,
            },
            Self::Corrupt(_) | Self::BrokenChain(_) => ErrorKind::Corrupt,
            Self::Stopped | Self::Timestamp(_) => ErrorKind::Unavailable,
            Self::Io(_) => ErrorKind::Io,
            Self::Missing(_) => ErrorKind::Missing,
        }
    }

    pub(crate) fn db(doing: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |e| Self::Database {
            doing,
            source: Arc::new(e),
        }
    }
}

impl From<std::io::Error> for AuditError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(Arc::new(e))
    }
}

impl From<csv::Error> for AuditError {
    fn from(e: csv::Error) -> Self {
        Self::Io(Arc::new(std::io::Error::other(e)))
    }
}

pub type Result<T, E = AuditError> = std::result::Result<T, E>;
