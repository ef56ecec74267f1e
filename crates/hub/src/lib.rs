//! The engine and the night: sends records from sources to recipients under declared
//! flows (identity, policy, change detection, seal, confirmed publish), delivers each
//! recipient's queue through its sink, settles receipts, journals every step once, and
//! keeps the durable state that makes a rerun after a crash lose nothing and duplicate
//! nothing (hashes, transfers and their receipts, the identity index, cursors).

pub mod bilan;
pub mod change;
pub mod engine;
pub mod night;
pub mod org;
pub mod report;
pub mod review;
pub mod routes;
pub mod seal;
pub mod state;
pub mod web;

pub use change::{content_hash, transfer_id};
pub use engine::{DeliverLimits, Engine, EngineError, ItemFate, OpenedReview, Prepared, Verdict};
pub use night::{
    Coordination, Cursor, Deadlines, FlowRoute, Interlude, Night, Progress, SinkByFlow, SinkPlan,
    SourcePlan,
};
pub use org::{Org, Route, Routed, Unrouted};
pub use report::{DeliverSummary, FlowReport, LateSummary, NightReport, Phases, SendSummary};
pub use review::{HeldReview, REVIEW_ORG, ReviewStore};
pub use seal::{KeyringSealer, SealError, Sealer};
pub use state::{
    BilanRow, HubState, ReceiptRow, StateError, StatusChange, TransferRow, TransferStatus,
};
pub use web::{Account, DatedTransfer, Role, SentFilter, SessionRow, WebError, WebStore};
