//! CNAF VRSB0801 beneficiary file reader and its simulator.
//!
//! File split, as in every connector crate: `flux` (reading VRSB0801 files into
//! canonical records), `sim` (the simulated CNAF writing such files). The format is
//! national, so there is no per-département configuration.

pub mod flux;
pub mod sim;

pub use flux::{Flux, FluxHeader, Records};
