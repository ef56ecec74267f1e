//! What every connector shares: the `Source` and `Sink` traits, `ConnectorError` with
//! the kind the engine decides on, file reports for `passerelle import`, and readers
//! for the formats peers use (encoding detection, streaming XML, CSV, XLSX), and `feed`:
//! a folder of complete files served record by record as a `Source`; `http`: the
//! client stack of the API connectors (secrets, retries with a budget, rate limit,
//! TLS); `conformance`: the suite every connector runs against its simulator; `peer`:
//! `PeerStore`, the durable memory connectors keep about their peers, shared by every
//! hub instance (`peer_conformance`: the suite of its implementations).

pub mod conformance;
pub mod csv;
pub mod encoding;
pub mod error;
pub mod feed;
pub mod http;
pub mod limits;
pub mod peer;
pub mod peer_conformance;
pub mod redact;
pub mod report;
pub mod retention;
pub mod safe_fs;
pub mod traits;
pub mod xlsx;
pub mod xml;

pub use error::{ConnectorError, ErrorKind};
pub use feed::{FileReader, FolderFeed, FolderSource};
pub use limits::ReaderConfig;
pub use peer::{BlockingPeerStore, MemoryPeerStore, PeerStore, PeerStoreError, PeerStoreErrorKind};
pub use report::{FileReport, FileStatus, RecordIssue};
pub use traits::{
    AckToken, Delivery, ItemOutcome, LateReceipts, Receipt, ReceiptSource, ReceiptStatus, Settled,
    Sink, Source, SourceItem,
};
