//! Validation errors: they name the field path and the rule that failed, never the value.

use std::fmt;

/// Why a value was refused by one of the model's value types.
///
/// The message describes the rule, not the value: values are personal data and must
/// not reach a log line or an error report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct InvalidValue {
    /// The kind of value that was expected (`nir`, `date`, `telephone`…).
    pub expected: &'static str,
    /// The rule that failed, in lowercase, without the offending value.
    pub reason: String,
}

impl InvalidValue {
    pub(crate) fn new(expected: &'static str, reason: impl Into<String>) -> Self {
        Self {
            expected,
            reason: reason.into(),
        }
    }
}

/// What a connector should do with a field that failed validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The whole record is rejected (identifiers, NIR, identity, dates).
    Reject,
    /// The value is dropped and reported; the record goes through (contact values).
    Drop,
}

/// A refused field: its canonical path and why. Carries no personal value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub struct FieldError {
    /// Canonical path of the field, as in canonical.md (`identifiants.nir`).
    pub path: String,
    /// The rule that failed.
    pub reason: String,
    /// Whether the record is rejected or only the value dropped.
    pub severity: Severity,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

impl FieldError {
    /// A field error that rejects the record.
    pub fn reject(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            reason: reason.into(),
            severity: Severity::Reject,
        }
    }

    /// A field error that only drops the value (contact data).
    pub fn drop_value(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            reason: reason.into(),
            severity: Severity::Drop,
        }
    }

    /// Attaches a path to a value error, with the severity the canonical rules give
    /// to that path (contact values are dropped, everything else rejects).
    pub fn at(path: impl Into<String>, err: InvalidValue) -> Self {
        let path = path.into();
        let severity = crate::classes::severity_of(&path);
        Self {
            path,
            reason: err.reason,
            severity,
        }
    }
}

/// Collects the field errors met while mapping one record: rejections and dropped
/// values (warnings), so a connector can map every field and report them all at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Issues {
    /// Errors that reject the record.
    pub rejects: Vec<FieldError>,
    /// Values dropped with a warning; the record goes through without them.
    pub warnings: Vec<FieldError>,
}

impl Issues {
    /// Keeps the value if it parsed; otherwise records the error at `path` with the
    /// severity the canonical rules give that path, and returns `None`.
    pub fn take<T>(&mut self, path: &str, result: Result<T, InvalidValue>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.push(FieldError::at(path, e));
                None
            }
        }
    }

    /// Parses an optional raw value: `None` or blank stays `None` without an issue.
    pub fn opt<T>(
        &mut self,
        path: &str,
        raw: Option<&str>,
        parse: impl FnOnce(&str) -> Result<T, InvalidValue>,
    ) -> Option<T> {
        match raw.map(str::trim) {
            None | Some("") => None,
            Some(s) => self.take(path, parse(s)),
        }
    }

    /// Records an error by its severity.
    pub fn push(&mut self, e: FieldError) {
        match e.severity {
            Severity::Reject => self.rejects.push(e),
            Severity::Drop => self.warnings.push(e),
        }
    }

    /// Whether the record must be rejected.
    pub fn is_rejected(&self) -> bool {
        !self.rejects.is_empty()
    }
}
