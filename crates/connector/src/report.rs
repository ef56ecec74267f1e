//! The report of reading one file, as `passerelle import --report` writes it
//! (cli.md): status, counts, and one line per rejected record or dropped value.

use passerelle_model::FieldError;
use serde::{Deserialize, Serialize};

/// Whether the file as a whole was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    Accepted,
    Refused,
}

/// One rejected record or one dropped value: which record, where, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordIssue {
    /// The record's id in its file (`IND0004412`, `59012345678/2`, `ligne-12`).
    #[serde(rename = "ref")]
    pub reference: String,
    /// The line in the file, when the format has lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// The canonical path or the source element path.
    pub field: String,
    /// The rule that failed (never the value).
    pub reason: String,
}

impl RecordIssue {
    /// An issue from a model field error.
    pub fn from_field(reference: &str, line: Option<u64>, e: &FieldError) -> Self {
        Self {
            reference: reference.to_owned(),
            line,
            field: e.path.clone(),
            reason: e.reason.clone(),
        }
    }

    /// The one-line form printed on stderr by `passerelle import`.
    pub fn to_line(&self) -> String {
        match self.line {
            Some(line) => format!(
                "{} (line {line}): {}: {}",
                self.reference, self.field, self.reason
            ),
            None => format!("{}: {}: {}", self.reference, self.field, self.reason),
        }
    }
}

/// The report of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileReport {
    pub file: String,
    pub status: FileStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Records read (accepted and rejected).
    pub read: u64,
    /// Records accepted.
    pub ok: u64,
    pub rejected: Vec<RecordIssue>,
    pub warnings: Vec<RecordIssue>,
}

impl FileReport {
    /// An empty, accepted report for a file.
    pub fn new(file: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            status: FileStatus::Accepted,
            reason: None,
            read: 0,
            ok: 0,
            rejected: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Marks the whole file refused: counts and per-record lines no longer apply.
    pub fn refuse(&mut self, reason: impl Into<String>) {
        self.status = FileStatus::Refused;
        self.reason = Some(reason.into());
        self.ok = 0;
    }

    /// The exit status of `passerelle import`: 0 all accepted, 1 some rejected, 2 refused.
    pub fn exit_code(&self) -> u8 {
        match self.status {
            FileStatus::Refused => 2,
            FileStatus::Accepted if !self.rejected.is_empty() => 1,
            FileStatus::Accepted => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape_and_exit_codes() {
        let mut r = FileReport::new("f.xml");
        r.read = 2;
        r.ok = 1;
        r.rejected.push(RecordIssue {
            reference: "IND1".into(),
            line: None,
            field: "identifiants.nir".into(),
            reason: "key does not match the number".into(),
        });
        assert_eq!(r.exit_code(), 1);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["status"], "accepted");
        assert_eq!(json["rejected"][0]["ref"], "IND1");
        assert!(json.get("reason").is_none());
        assert!(json["rejected"][0].get("line").is_none());
        r.refuse("truncated");
        assert_eq!(r.exit_code(), 2);
        assert_eq!(serde_json::to_value(&r).unwrap()["reason"], "truncated");
    }
}
