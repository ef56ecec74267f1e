//! FAJ platform connector: OAuth2 client, signed webhooks, reconciliation, and its simulator.
//!
//! The pieces, in the order a request travels:
//! - [`config`]: `FajConfig` (deny unknown fields, pure `validate`, `build` that resolves
//!   secrets and makes the HTTP client);
//! - [`mapping`]: canonical `faj[]` + identity + address ⇄ the platform's JSON;
//! - [`client`]: `FajClient`, OAuth2 client credentials with a token cache, one refresh
//!   and retry on 401, bounded retries with backoff on 503 and connection errors (the
//!   kit's stack, `passerelle_connector::http`, as I-MILO's);
//! - [`sink`]: `passerelle_connector::Sink` for flow `faj-demande` (batches filed
//!   concurrently, at most `concurrency` at once);
//! - [`intake`]: hands decisions on exactly once (`DecisionHandler`, `SeenStore`); a
//!   `Decision` names the ML it goes back to (`route()`) and the I-MILO dossier, read
//!   from the platform's copy of the request (`fill_origin`, `with_origin_lookup`);
//! - [`webhook`]: the axum receiver for signed decision webhooks (flow `faj-decision`),
//!   with its limits (body size, rate per client, timestamp window, refusals counted
//!   per window);
//! - [`seen`]: `PeerSeenStore` and `FileSeenStore`, the durable seen-stores that
//!   outlive a restart (the first shared by every hub instance on one state);
//! - [`reconcile`]: the nightly `modifie_depuis` listing, feeding the same intake;
//! - [`sim`]: the platform simulator (token endpoint, validation, commission, webhooks).

pub mod client;
pub mod config;
pub mod intake;
pub mod mapping;
pub mod reconcile;
pub mod seen;
#[cfg(feature = "sim")]
pub mod sim;
pub mod sink;
pub mod webhook;

pub use client::{FajClient, FileOutcome, ListPage};
pub use config::{FajConfig, RetryConfig, SecretSource};
pub use intake::{
    Decision, DecisionHandler, DecisionIntake, DecisionVia, HandOnOutcome, HandlerError,
    MemorySeenStore, Reservation, SeenStore, SeenStoreError,
};
pub use mapping::{DemandePlateforme, ErreurChamp, InstructeurRef, JeuneRef, PlatformDecision};
pub use passerelle_connector::http::Secret;
pub use reconcile::{ReconcileReport, reconcile};
pub use seen::{FileSeenStore, PeerSeenStore};
pub use sink::FajSink;
pub use webhook::{
    RefusalWindow, WebhookAudit, WebhookLimits, WebhookState, sign, verify_signature,
};

/// The peer name used in errors and logs.
pub const PEER: &str = "faj";

/// The flow this connector's sink serves.
pub const FLOW_DEMANDE: &str = "faj-demande";

/// The flow decisions travel on.
pub const FLOW_DECISION: &str = "faj-decision";

/// The platform's page size for the `modifie_depuis` listing.
pub const PAGE_SIZE: usize = 100;
