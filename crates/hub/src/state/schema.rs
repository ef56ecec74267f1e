//! The state database's tables, once per engine: the hub's own (hashes, transfers,
//! identity keys, cursors, peer references, pending journal entries, denials, reviews)
//! and those of the web application (accounts, sessions) and of held reviews, which
//! live in the same database. Every statement is idempotent (`IF NOT EXISTS`): opening
//! an existing state changes nothing.
//!
//! Both engines keep ids and times as text (hyphenated UUIDs, RFC 3339 in UTC), so that
//! the code reading them is one, and text order is time order.

pub(crate) const SQLITE: &str = r#"
-- sent_hash.recipient holds the change-detection key: the recipient and the kind of
-- source (`59350S00#solis`), see engine::stream.
CREATE TABLE IF NOT EXISTS sent_hash (
    flow TEXT NOT NULL, recipient TEXT NOT NULL, hub_id TEXT NOT NULL,
    hash BLOB NOT NULL, transfer_id TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (flow, recipient, hub_id));
CREATE TABLE IF NOT EXISTS transfer (
    transfer_id TEXT PRIMARY KEY, flow TEXT NOT NULL, sender TEXT NOT NULL,
    recipient TEXT NOT NULL, hub_id TEXT NOT NULL, status TEXT NOT NULL,
    reason TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS transfer_by_sender ON transfer (sender, flow);
CREATE INDEX IF NOT EXISTS transfer_by_hub_id ON transfer (hub_id);
CREATE TABLE IF NOT EXISTS identity_key (
    kind TEXT NOT NULL, key TEXT NOT NULL, hub_id TEXT NOT NULL,
    PRIMARY KEY (kind, key, hub_id));
-- The store decides identities (HubState::decide_identities): a person's other keys
-- are read by hub id.
CREATE INDEX IF NOT EXISTS identity_key_by_hub_id ON identity_key (hub_id);
CREATE TABLE IF NOT EXISTS cursor (source TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS peer_ref (
    hub_id TEXT NOT NULL, org TEXT NOT NULL, sealed BLOB NOT NULL,
    PRIMARY KEY (hub_id, org));
-- Journal entries whose transfer moved in this store but that may not be in the audit
-- journal yet (a crash between the two): the engine appends the missing ones when it
-- starts, so that a transfer's step is journaled once, neither lost nor repeated.
CREATE TABLE IF NOT EXISTS journal_pending (
    id INTEGER PRIMARY KEY AUTOINCREMENT, transfer_id TEXT NOT NULL, entry BLOB NOT NULL,
    since TEXT NOT NULL);
-- What was denied last time about a person under a flow to a recipient (a hash of the
-- record and the reason): a source read again does not journal the same denial again.
CREATE TABLE IF NOT EXISTS denied_hash (
    flow TEXT NOT NULL, recipient TEXT NOT NULL, hub_id TEXT NOT NULL, hash BLOB NOT NULL,
    PRIMARY KEY (flow, recipient, hub_id));
CREATE TABLE IF NOT EXISTS identity_review (
    id INTEGER PRIMARY KEY AUTOINCREMENT, flow TEXT NOT NULL, reason TEXT NOT NULL,
    candidates TEXT NOT NULL, created_at TEXT NOT NULL);
-- Receipts for transfers this store has no row for yet (the receipt came before the
-- publisher recorded it): kept, then applied to the transfer when it is recorded.
CREATE TABLE IF NOT EXISTS receipt_early (
    transfer_id TEXT PRIMARY KEY, status TEXT NOT NULL, reason TEXT, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS web_account (
    login TEXT PRIMARY KEY, password_hash TEXT NOT NULL, role TEXT NOT NULL,
    org TEXT, disabled INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL);
-- id_hash: hex SHA-256 of the cookie's 256-bit id, so a copy of the store opens no session.
CREATE TABLE IF NOT EXISTS web_session (
    id_hash TEXT PRIMARY KEY, login TEXT NOT NULL, csrf TEXT NOT NULL,
    created_at TEXT NOT NULL, last_seen TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS web_session_by_login ON web_session (login);
CREATE TABLE IF NOT EXISTS review_held (
    id TEXT PRIMARY KEY, flow TEXT NOT NULL, reason TEXT NOT NULL, candidates TEXT NOT NULL,
    sender TEXT NOT NULL, recipient TEXT NOT NULL, sealed BLOB,
    created_at TEXT NOT NULL, expires_at TEXT NOT NULL, settled_at TEXT, outcome TEXT);
CREATE INDEX IF NOT EXISTS review_held_by_sender ON review_held (sender, settled_at);
-- The shared bilan's FAJ figures, aggregates only (`bilan.rs`): per month (UTC), flow,
-- parties and outcome, how many transfers and the sum of their amounts in cents.
CREATE TABLE IF NOT EXISTS bilan_faj (
    month TEXT NOT NULL, flow TEXT NOT NULL, sender TEXT NOT NULL, recipient TEXT NOT NULL,
    outcome TEXT NOT NULL, count BIGINT NOT NULL, cents BIGINT NOT NULL,
    PRIMARY KEY (month, flow, sender, recipient, outcome));
"#;

/// The same tables on PostgreSQL (`BYTEA` for blobs, `BIGINT` for integers, sequences
/// for the generated ids; `sender_ref` is there from the start).
pub(crate) const POSTGRES: &str = r#"
CREATE TABLE IF NOT EXISTS sent_hash (
    flow TEXT NOT NULL, recipient TEXT NOT NULL, hub_id TEXT NOT NULL,
    hash BYTEA NOT NULL, transfer_id TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (flow, recipient, hub_id));
CREATE INDEX IF NOT EXISTS sent_hash_by_transfer ON sent_hash (transfer_id);
CREATE TABLE IF NOT EXISTS transfer (
    transfer_id TEXT PRIMARY KEY, flow TEXT NOT NULL, sender TEXT NOT NULL,
    recipient TEXT NOT NULL, hub_id TEXT NOT NULL, status TEXT NOT NULL,
    reason TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, sender_ref TEXT);
CREATE INDEX IF NOT EXISTS transfer_by_sender ON transfer (sender, flow);
CREATE INDEX IF NOT EXISTS transfer_by_hub_id ON transfer (hub_id);
CREATE INDEX IF NOT EXISTS transfer_by_status ON transfer (status, updated_at);
CREATE TABLE IF NOT EXISTS identity_key (
    kind TEXT NOT NULL, key TEXT NOT NULL, hub_id TEXT NOT NULL,
    PRIMARY KEY (kind, key, hub_id));
CREATE INDEX IF NOT EXISTS identity_key_by_hub_id ON identity_key (hub_id);
CREATE TABLE IF NOT EXISTS cursor (source TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS peer_ref (
    hub_id TEXT NOT NULL, org TEXT NOT NULL, sealed BYTEA NOT NULL,
    PRIMARY KEY (hub_id, org));
CREATE TABLE IF NOT EXISTS journal_pending (
    id BIGSERIAL PRIMARY KEY, transfer_id TEXT NOT NULL, entry BYTEA NOT NULL,
    since TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS denied_hash (
    flow TEXT NOT NULL, recipient TEXT NOT NULL, hub_id TEXT NOT NULL, hash BYTEA NOT NULL,
    PRIMARY KEY (flow, recipient, hub_id));
CREATE TABLE IF NOT EXISTS identity_review (
    id BIGSERIAL PRIMARY KEY, flow TEXT NOT NULL, reason TEXT NOT NULL,
    candidates TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS receipt_early (
    transfer_id TEXT PRIMARY KEY, status TEXT NOT NULL, reason TEXT, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS web_account (
    login TEXT PRIMARY KEY, password_hash TEXT NOT NULL, role TEXT NOT NULL,
    org TEXT, disabled BIGINT NOT NULL DEFAULT 0, created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS web_session (
    id_hash TEXT PRIMARY KEY, login TEXT NOT NULL, csrf TEXT NOT NULL,
    created_at TEXT NOT NULL, last_seen TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS web_session_by_login ON web_session (login);
CREATE TABLE IF NOT EXISTS review_held (
    id TEXT PRIMARY KEY, flow TEXT NOT NULL, reason TEXT NOT NULL, candidates TEXT NOT NULL,
    sender TEXT NOT NULL, recipient TEXT NOT NULL, sealed BYTEA,
    created_at TEXT NOT NULL, expires_at TEXT NOT NULL, settled_at TEXT, outcome TEXT);
CREATE INDEX IF NOT EXISTS review_held_by_sender ON review_held (sender, settled_at);
-- The shared bilan's FAJ figures, aggregates only (`bilan.rs`): per month (UTC), flow,
-- parties and outcome, how many transfers and the sum of their amounts in cents.
CREATE TABLE IF NOT EXISTS bilan_faj (
    month TEXT NOT NULL, flow TEXT NOT NULL, sender TEXT NOT NULL, recipient TEXT NOT NULL,
    outcome TEXT NOT NULL, count BIGINT NOT NULL, cents BIGINT NOT NULL,
    PRIMARY KEY (month, flow, sender, recipient, outcome));
"#;

// --- Connectors' peer state (`state/peer.rs`, `passerelle_connector::PeerStore`) ---
// Kept apart from the tables above: what connectors remember about their peers (box
// files read, transfers in box files, FAJ events done, FAJ request ids) as namespaced
// keys to small values, ids and digests only; and the sequences no two instances draw
// the same number from. `updated_at` is RFC 3339 in UTC with microseconds and `Z`, one
// fixed width, so that text order is time order.

// One text for both engines: these few types mean the same on SQLite and PostgreSQL.
pub(crate) const PEER: &str = r#"
CREATE TABLE IF NOT EXISTS peer_state (
    namespace TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    updated_at TEXT NOT NULL, PRIMARY KEY (namespace, key));
CREATE INDEX IF NOT EXISTS peer_state_by_time ON peer_state (namespace, updated_at);
CREATE TABLE IF NOT EXISTS peer_sequence (namespace TEXT PRIMARY KEY, last BIGINT NOT NULL);
"#;

// ---- Coordination of several instances (`coord.rs`) -------------------------------
// Kept apart from the tables above: the night's holder, the night's work items and
// the shared rate-limit buckets. Opened after the engine's own schema, idempotent too.

/// SQLite: the work items only (the night lock is a `flock` beside the database, one
/// machine has one process running nights; the rate-limit bucket stays in process).
pub(crate) const COORD_SQLITE: &str = r#"
-- A night's work, item by item: who holds it, until when (RFC 3339 UTC, text order is
-- time order), and when it was done (never claimed again that night).
CREATE TABLE IF NOT EXISTS work_claim (
    night TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL,
    holder TEXT, lease_until TEXT, done_at TEXT,
    PRIMARY KEY (night, kind, key));
"#;

/// PostgreSQL: the same work items, who holds the night lock (for the message the
/// next one prints; the lock itself is a session advisory lock), and the shared
/// token buckets (server time in epoch seconds, so that every instance's take is
/// measured on one clock).
pub(crate) const COORD_POSTGRES: &str = r#"
CREATE TABLE IF NOT EXISTS work_claim (
    night TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL,
    holder TEXT, lease_until TEXT, done_at TEXT,
    PRIMARY KEY (night, kind, key));
CREATE TABLE IF NOT EXISTS night_holder (
    slot BIGINT PRIMARY KEY, instance TEXT NOT NULL, since TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rate_bucket (
    name TEXT PRIMARY KEY, tokens DOUBLE PRECISION NOT NULL, at DOUBLE PRECISION NOT NULL);
"#;
