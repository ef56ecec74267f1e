//! Departmental secure box connector: CSV/XLSX over a drop folder or SFTP, and its
//! simulator.
//!
//! - `mapping`: column mappings as data (`schemas/mappings/*.toml`), default compiled in;
//! - `brsa`, `table`: `BRSA_LISTE` files (CSV or XLSX) to canonical records;
//! - `of`: the `JEUNES_OF` writer and the `OF_SUIVI` reader;
//! - `folder`, `sftp`: the box as a small trait, over a local path or SFTP;
//! - `state`, `protocol`: the completeness protocol (sentinels, checksums, ACK files,
//!   duplicates) the hub follows on both sides;
//! - `source`: `BoxSource`, the engine's `Source` (a file's ACK only once every row
//!   is acknowledged);
//! - `sink`, `sent`: `BoxOfSink`, the engine's `Sink` for `of-signalement` (one
//!   `JEUNES_OF` file per batch and ML), idempotent through a `SentLedger`;
//! - `config`: `BoxConfig` (`validate` without I/O, `build` to a `BoxHub`);
//! - `sim`: a département playing the other side, for tests and demos.

pub mod brsa;
pub mod config;
pub mod folder;
pub mod mapping;
pub mod of;
pub mod protocol;
pub mod sent;
pub mod sftp;
#[cfg(feature = "sim")]
pub mod sim;
pub mod sink;
pub mod source;
pub mod state;
pub mod table;

pub use brsa::{MappedRow, parse_name};
pub use config::BoxConfig;
pub use mapping::{Mapping, MappingError};
pub use protocol::{BoxHub, FileOutcome, Received};
pub use sent::SentLedger;
pub use sink::{BoxOfSink, FLOW_OF_SIGNALEMENT};
pub use source::BoxSource;
pub use table::{BrsaReader, Format, read_file};
