//! CNAF VRSB0801 beneficiary file reader and its simulator.
//!
//! File split, as in every connector crate: `flux` (reading VRSB0801 files into
//! canonical records).

pub mod flux;

pub use flux::{Flux, FluxHeader, Records};
