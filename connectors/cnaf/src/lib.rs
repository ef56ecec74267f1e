//! CNAF VRSB0801 beneficiary file reader, the engine's source over a folder of them,
//! and the simulator.
//!
//! File split, as in every connector crate: `flux` (reading VRSB0801 files into
//! canonical records), `source` (`CnafConfig`, `CnafFluxSource`, over the shared
//! `passerelle_connector::feed`), `sim` (the simulated CNAF writing such files). The
//! format is national, so there is no per-département configuration.

pub mod flux;
#[cfg(feature = "sim")]
pub mod sim;
pub mod source;

pub use flux::{Flux, FluxContext, FluxHeader, Layout, Records};
pub use passerelle_connector::{FileReader, FolderFeed, FolderSource};
pub use source::{CnafConfig, CnafFluxSource, FluxReader};
