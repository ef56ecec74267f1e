//! The engine's building blocks: change detection (a content hash per record, flow
//! and recipient), deterministic transfer ids, and the durable state that makes a
//! rerun after a crash lose nothing and duplicate nothing (hashes, transfers and their
//! receipts, the identity index, source cursors).

pub mod change;
pub mod engine;
pub mod night;
pub mod routes;
pub mod seal;
pub mod state;

pub use change::{content_hash, transfer_id};
pub use engine::{DeliverSummary, Engine, EngineError, LateSummary, Org, Routed, SendSummary};
pub use night::{
    FlowReport, FlowRoute, Night, NightReport, Progress, Route, SinkByFlow, SinkPlan, SourcePlan,
};
pub use seal::{KeyringSealer, SealError, Sealer};
pub use state::{BilanRow, HubState, StateError, TransferRow, TransferStatus};
