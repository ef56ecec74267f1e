//! What `verify` finds: the entry count, the checkpoint it started from, and the first
//! problem, if any, named by sequence number.

use serde::Serialize;

/// The hash of the last entry removed by a purge: verification of what is left starts
/// from it. Print it, and keep it outside the journal (a signed mail to the DPO, a
/// ticket): it is what proves that the remaining chain follows the removed one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checkpoint {
    /// Sequence number of the last removed entry.
    pub seq: i64,
    /// Its chain hash, lowercase hex.
    pub hash: String,
    /// The purge cut-off (RFC 3339 UTC).
    pub purged_before: String,
    /// When the purge ran (RFC 3339 UTC).
    pub at: String,
}

/// The first thing wrong with the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Problem {
    /// The entry's hash does not match its content and the previous hash: the entry
    /// was changed, swapped with another, or the previous entry's hash was rewritten.
    Altered { seq: i64 },
    /// The entry with this number is missing (deleted); the next one present follows.
    Missing { seq: i64, next_present: i64 },
    /// The last entries are gone: the head record says the chain goes on to `head_seq`.
    TailCut { seq: i64, head_seq: i64 },
    /// Entries exist past the head record: they were inserted around the triggers.
    BeyondHead { seq: i64, head_seq: i64 },
    /// The last entry does not have the hash the head record holds.
    HeadMismatch { seq: i64 },
    /// A column of the entry cannot be read.
    Unreadable { seq: i64, what: String },
}

impl Problem {
    /// The sequence number of the first bad entry.
    pub fn seq(&self) -> i64 {
        match self {
            Problem::Altered { seq }
            | Problem::Missing { seq, .. }
            | Problem::TailCut { seq, .. }
            | Problem::BeyondHead { seq, .. }
            | Problem::HeadMismatch { seq }
            | Problem::Unreadable { seq, .. } => *seq,
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Altered { seq } => write!(
                f,
                "entry {seq} does not match its hash (changed, swapped, or the previous hash was rewritten)"
            ),
            Problem::Missing { seq, next_present } => write!(
                f,
                "entry {seq} is missing (next entry present is {next_present})"
            ),
            Problem::TailCut { seq, head_seq } => write!(
                f,
                "entries {seq} to {head_seq} are missing at the end of the chain"
            ),
            Problem::BeyondHead { seq, head_seq } => {
                write!(f, "entry {seq} lies beyond the head record ({head_seq})")
            }
            Problem::HeadMismatch { seq } => {
                write!(f, "entry {seq} does not have the hash of the head record")
            }
            Problem::Unreadable { seq, what } => {
                write!(f, "entry {seq} has an unreadable {what} column")
            }
        }
    }
}

/// The outcome of a walk along the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Entries checked and found good before the first problem (all of them when
    /// intact).
    pub entries: u64,
    /// The last good sequence number (the checkpoint's, or 0, when none is).
    pub last_seq: i64,
    /// The checkpoint the walk started from, after a purge.
    pub checkpoint: Option<Checkpoint>,
    pub problem: Option<Problem>,
    /// The chain hash of `last_seq` (hex), for the mark of an incremental walk.
    #[serde(skip)]
    pub last_hash: String,
}

impl Verification {
    pub fn is_intact(&self) -> bool {
        self.problem.is_none()
    }

    /// Where the next walk may start, when this one found the chain intact.
    pub fn mark(&self) -> Option<VerifiedMark> {
        (self.is_intact() && self.last_seq > 0).then(|| VerifiedMark {
            seq: self.last_seq,
            hash: self.last_hash.clone(),
        })
    }
}

/// The last entry an earlier walk found good: a later walk starts after it instead
/// of at the start (a night checks what the journal gained since the last night; `audit
/// verify` still walks everything). Kept outside the journal, by whoever walks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct VerifiedMark {
    pub seq: i64,
    /// Its chain hash, lowercase hex.
    pub hash: String,
}
