//! The crate's errors: a bad schedule or server config, and serving failures.

use std::net::SocketAddr;

/// What kind of failure, for the caller to decide on (exit code, retry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The configuration is wrong; fix it and start again.
    Invalid,
    /// The network refused us (address taken, permission); may work later.
    Unavailable,
}

/// A cron expression or time zone that cannot be used. Messages quote the expression:
/// it comes from the configuration and holds no personal data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "schedule `{expression}` has {found} fields; expected 5 (minute hour day-of-month month day-of-week) or an @alias"
    )]
    FieldCount { expression: String, found: usize },
    #[error("schedule `{expression}`: {field} field `{item}`: {reason}")]
    Field {
        expression: String,
        field: &'static str,
        item: String,
        reason: String,
    },
    #[error("schedule `{expression}` never fires: no month has the days it names")]
    NeverFires { expression: String },
    #[error("unknown time zone `{name}`; known: {known}")]
    UnknownTimezone { name: String, known: String },
}

/// A server config that fails validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("server.listen `{value}` is not a socket address like 127.0.0.1:8080")]
    Listen { value: String },
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    #[error("server.{field} must be between {min} and {max}, not {value}")]
    OutOfRange {
        field: &'static str,
        value: u64,
        min: u64,
        max: u64,
    },
}

/// Serving failed.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the http server stopped: {0}")]
    Serve(std::io::Error),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl ServerError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Bind { .. } | Self::Serve(_) => ErrorKind::Unavailable,
            Self::Config(_) => ErrorKind::Invalid,
        }
    }
}

impl ScheduleError {
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Invalid
    }
}

impl ConfigError {
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Invalid
    }
}
