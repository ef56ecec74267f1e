//! SOLIS connector: export reader, import writer, ACK reader, the engine's sources and
//! sink over them, and the SOLIS simulator.
//!
//! File split, as in every connector crate: `config` (serde config with the
//! département's element-name aliases and the peer's folders, `validate`), `export`
//! (reading SOLIS exports into canonical records), `import` (writing imports, reading
//! ACKs into receipts), `sink` (`SolisSink`), `source` (`SolisExportSource`), `acks`
//! (`SolisAckSource`), `sim` (the simulated SOLIS). The folder-of-files `Source`
//! machinery is `passerelle_connector::feed`, shared with `passerelle-cnaf`.

pub mod acks;
pub mod config;
pub mod export;
pub mod import;
#[cfg(feature = "sim")]
pub mod sim;
pub mod sink;
pub mod source;

pub use acks::SolisAckSource;
pub use config::{ElementNames, SolisConfig, SolisPeerConfig};
pub use export::{Export, ExportFlux, ExportHeader, Records};
pub use import::{Ack, ImportFlux, Written, read_ack, read_import_refs, write_import};
pub use passerelle_connector::{FileReader, FolderFeed, FolderSource};
pub use sink::SolisSink;
pub use source::{ExportReader, SolisExportSource};
