//! SOLIS connector: export reader, import writer, ACK reader, and the SOLIS simulator.
//!
//! File split, as in every connector crate: `config` (serde config with the
//! département's element-name aliases, `validate`), `export` (reading SOLIS exports
//! into canonical records), `import` (writing imports, reading ACKs into receipts),
//! `sim` (the simulated SOLIS).

pub mod config;
pub mod export;
pub mod import;
pub mod sim;

pub use config::{ElementNames, SolisConfig};
pub use export::{Export, ExportFlux, ExportHeader, Records};
pub use import::{Ack, ImportFlux, Written, read_ack, write_import};
