//! Hash-chained audit journal on SQLite and PostgreSQL.
//!
//! Every step of a transfer (and every consultation) is one [`Entry`], chained to the
//! previous by `SHA-256(previous hash ‖ canonical bytes)` (see [`entry`] for the exact
//! encoding). [`Journal::verify`] names the first changed, missing, swapped or cut
//! entry; [`Journal::purge_before`] removes a prefix past retention behind a
//! [`Checkpoint`]. [`anchor`]s sign the head with the hub's key, so that a cut tail, a
//! recomputed chain or a removed checkpoint is found too. The journal holds no personal data in clear: the subject is a keyed
//! pseudonym of the hub id, and the identifiers a DPO searches by are stored only as
//! blind indexes (see [`subject`]).

pub mod alerts;
pub mod anchor;
pub mod art15;
pub mod entry;
pub mod error;
pub mod export;
pub mod journal;
pub mod schema;
pub mod subject;
pub mod tsa;
pub mod verify;

pub use anchor::{Anchor, AnchorProblem};
pub use entry::{Entry, Event, GENESIS_HASH, NewEntry, Outcome, format_time};
pub use error::{AuditError, ErrorKind, Result};
pub use export::{ExportFormat, Exporter};
pub use journal::{Anchored, Appended, Filter, Journal, JournalConfig, PurgeLine, PurgeReport};
pub use subject::{BlindIndex, Lookup, Subject};
pub use tsa::{TsaCertificate, TsaError};
pub use verify::{Checkpoint, Problem, Verification, VerifiedMark};
