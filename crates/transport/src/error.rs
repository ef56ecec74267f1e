//! Transport errors: one enum with a kind the engine decides on (retry later or give up).

use thiserror::Error;

/// Whether an operation that failed may succeed if tried again later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The broker or store was unreachable, a confirm was lost or refused: try again.
    Retryable,
    /// Trying again cannot help (invalid name, unknown recipient, missing dead letter).
    Permanent,
}

/// An error of a transport operation. Messages name the thing and the rule, never a
/// payload or a personal value (payloads are opaque encrypted bytes anyway).
#[derive(Debug, Error)]
pub enum TransportError {
    /// The broker or store could not be reached or failed mid-operation.
    #[error("transport unavailable: {0}")]
    Unavailable(String),
    /// The broker refused the message (basic.nack) or the confirm was lost with the
    /// connection: the message may or may not be stored, so it is reported as not published.
    #[error("publish of transfer {transfer_id} not confirmed: {reason}")]
    NotConfirmed {
        /// Transfer whose publish was not confirmed.
        transfer_id: uuid::Uuid,
        /// Why, without any payload.
        reason: String,
    },
    /// No queue exists for the recipient: the message was returned (mandatory) or refused.
    #[error("recipient {recipient} has no queue: declare it before publishing")]
    Unroutable {
        /// The recipient name.
        recipient: String,
    },
    /// A name or value does not follow its rule.
    #[error("invalid {what}: {rule}")]
    Invalid {
        /// What was invalid (a field name, never its value when it could be personal).
        what: &'static str,
        /// The rule it broke.
        rule: String,
    },
    /// A dead-lettered message was not found.
    #[error("dead letter {0} not found")]
    NotFound(String),
    /// A delivery could not be settled because its lease expired or its channel was
    /// lost; the message will be delivered again.
    #[error("delivery of message {0} can no longer be settled: it will be delivered again")]
    LeaseLost(String),
    /// A stored or received message could not be decoded.
    #[error("malformed message {id}: {rule}")]
    Malformed {
        /// Message id (or "unknown").
        id: String,
        /// What was wrong with it.
        rule: String,
    },
    /// The transport or subscription was closed.
    #[error("transport closed")]
    Closed,
}

impl TransportError {
    /// Whether trying again later may help.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Unavailable(_) | Self::NotConfirmed { .. } | Self::LeaseLost(_) => {
                ErrorKind::Retryable
            }
            Self::Unroutable { .. }
            | Self::Invalid { .. }
            | Self::NotFound(_)
            | Self::Malformed { .. }
            | Self::Closed => ErrorKind::Permanent,
        }
    }

    /// Shorthand for `kind() == Retryable`.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        self.kind() == ErrorKind::Retryable
    }

    pub(crate) fn invalid(what: &'static str, rule: impl Into<String>) -> Self {
        Self::Invalid {
            what,
            rule: rule.into(),
        }
    }
}

impl From<lapin::Error> for TransportError {
    fn from(e: lapin::Error) -> Self {
        Self::Unavailable(format!("amqp: {e}"))
    }
}

impl From<sqlx::Error> for TransportError {
    fn from(e: sqlx::Error) -> Self {
        Self::Unavailable(format!("sqlite: {e}"))
    }
}

/// Result alias of this crate.
pub type Result<T, E = TransportError> = std::result::Result<T, E>;
