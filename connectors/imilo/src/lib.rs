//! I-MILO connector (REST client) and its axum simulator.
//!
//! - `config`: `ImiloConfig` (`validate` then `build`), key sources.
//! - `http`: the layer stack `Retrying` → `RateLimited` → `Plain` (reqwest).
//! - `client`: `ImiloClient`, the typed calls of imilo.md.
//! - `mapping`: dossier ↔ canonical record, canonical → orientation/événement bodies.
//! - `source`: `EventSource` (change events) and `ReconcileSource` (listings).
//! - `sink`: `ImiloSink` (orientations and événements).
//! - `sim`: the simulator (`sim::spawn`), with the `sim` feature.

pub mod client;
pub mod config;
pub mod http;
pub mod key;
pub mod mapping;
#[cfg(feature = "sim")]
pub mod sim;
pub mod sink;
pub mod source;
pub mod wire;

pub use client::{ImiloClient, WriteOutcome};
pub use config::{ImiloConfig, RetryConfig};
pub use key::{ApiKey, Family, FamilyKeys, KeySource, KeySources};
pub use mapping::{Mapped, dossier_to_jeune, evenement_request, orientation_request};
pub use sink::ImiloSink;
pub use source::{EventSource, ReconcileSource};
