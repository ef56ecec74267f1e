//! `ConnectorError`: one error type for every connector, with a `kind()` the engine
//! decides on (retry later, give up, report bad input, fix credentials).

use std::time::Duration;

/// What the engine should do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Try again later (timeouts, 429, 5xx, connection resets, a file still uploading).
    Retryable,
    /// Trying again will not help (the peer said no for good, a protocol violation).
    Permanent,
    /// The data is wrong: report it to its sender, do not retry.
    InvalidInput,
    /// Credentials are missing, wrong or not allowed for this call.
    Unauthorized,
    /// The thing asked for does not exist at the peer.
    NotFound,
}

/// An error from a connector or its peer. Messages name things (files, element
/// paths, record ids, HTTP statuses), never personal values.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The peer is unavailable for now; `retry_after` is its own hint when it gave one.
    #[error("{peer} is unavailable: {reason}")]
    Unavailable {
        peer: String,
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The peer refused our credentials (401) or this call with them (403).
    #[error("{peer} refused the credentials: {reason}")]
    Unauthorized { peer: String, reason: String },
    /// The peer does not know the thing asked for.
    #[error("{peer} has no {what}")]
    NotFound { peer: String, what: String },
    /// The peer refused the data (a 4xx with reasons, a KO in an ACK file).
    #[error("{peer} refused the data: {reason}")]
    Rejected { peer: String, reason: String },
    /// A whole file is refused (truncated, checksum mismatch, unknown format).
    #[error("file {file} refused: {reason}")]
    FileRefused { file: String, reason: String },
    /// Input that cannot be read at a given place (element path, line, field).
    #[error("invalid input at {location}: {reason}")]
    Invalid { location: String, reason: String },
    /// The peer answered something the contract does not allow.
    #[error("{peer} broke the protocol: {reason}")]
    Protocol { peer: String, reason: String },
    /// Local I/O failed.
    #[error("i/o error on {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The connector's configuration is wrong (found by `validate`, before any I/O).
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl ConnectorError {
    /// The kind the engine decides on.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Unavailable { .. } => ErrorKind::Retryable,
            Self::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => ErrorKind::NotFound,
                std::io::ErrorKind::PermissionDenied => ErrorKind::Unauthorized,
                _ => ErrorKind::Retryable,
            },
            Self::Unauthorized { .. } => ErrorKind::Unauthorized,
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::Rejected { .. } | Self::FileRefused { .. } | Self::Invalid { .. } => {
                ErrorKind::InvalidInput
            }
            Self::Protocol { .. } | Self::Config(_) => ErrorKind::Permanent,
        }
    }

    /// Whether the engine may try again.
    pub fn is_retryable(&self) -> bool {
        self.kind() == ErrorKind::Retryable
    }

    /// Shorthand for an I/O error on a named thing.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        let unavailable = ConnectorError::Unavailable {
            peer: "imilo".into(),
            reason: "http 503".into(),
            retry_after: None,
        };
        assert!(unavailable.is_retryable());
        let refused = ConnectorError::FileRefused {
            file: "x.xml".into(),
            reason: "truncated".into(),
        };
        assert_eq!(refused.kind(), ErrorKind::InvalidInput);
        assert_eq!(refused.to_string(), "file x.xml refused: truncated");
        let missing =
            ConnectorError::io("depot", std::io::Error::from(std::io::ErrorKind::NotFound));
        assert_eq!(missing.kind(), ErrorKind::NotFound);
        assert_eq!(
            ConnectorError::Config("x".into()).kind(),
            ErrorKind::Permanent
        );
    }
}
