//! Errors of loading and validating a flows file: each names the file, the flow, the
//! key and the rule broken, with a line and column when known.

use std::fmt;
use std::path::PathBuf;

/// What went wrong, for callers that branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyErrorKind {
    /// The file could not be read.
    Io,
    /// The file is not valid TOML or does not have the expected shape.
    Syntax,
    /// The file parses but breaks a rule (unknown class, missing justification…).
    Invalid,
}

/// A flows file error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyError {
    pub kind: PolicyErrorKind,
    pub file: Option<PathBuf>,
    /// The flow concerned, when the error is inside one.
    pub flow: Option<Box<str>>,
    /// The key concerned (`fields.classes`, `legal_basis.gdpr`…).
    pub key: Option<Box<str>>,
    /// 1-based line and column in the file, when known.
    pub position: Option<(u32, u32)>,
    pub reason: String,
}

impl PolicyError {
    pub(crate) fn invalid(flow: Option<&str>, key: &str, reason: impl Into<String>) -> Self {
        Self {
            kind: PolicyErrorKind::Invalid,
            file: None,
            flow: flow.map(Into::into),
            key: Some(key.into()),
            position: None,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.position) {
            (Some(file), Some((line, col))) => write!(f, "{}:{line}:{col}: ", file.display())?,
            (Some(file), None) => write!(f, "{}: ", file.display())?,
            (None, Some((line, col))) => write!(f, "line {line}, column {col}: ")?,
            (None, None) => {}
        }
        if let Some(flow) = &self.flow {
            write!(f, "flow `{flow}`: ")?;
        }
        if let Some(key) = &self.key {
            write!(f, "key `{key}`: ")?;
        }
        f.write_str(&self.reason)
    }
}
