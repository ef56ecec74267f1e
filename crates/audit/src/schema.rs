//! Versioned migrations of the journal's tables, one list per engine.
//!
//! Each migration runs once, in a transaction holding the journal's write lock, and
//! bumps `audit_schema_version`. Migrations are append-only like the journal: never edit
//! one that has shipped, add the next.
//!
//! The protections are in the database itself, so that they hold for any client:
//! triggers refuse `UPDATE` and `DELETE` of entries (and `DELETE` is let through only
//! while a purge is in progress), and an `AFTER INSERT` trigger advances the head record
//! (last sequence number and hash) in the same transaction as the insert, refusing an
//! entry that does not follow the head. On PostgreSQL the head trigger runs as the owner
//! (`SECURITY DEFINER`), so a writer role needs only `INSERT` and `SELECT`.

/// SQLite migrations, in order; version n is `SQLITE[n - 1]`.
pub const SQLITE: &[&str] = &[
    r#"
CREATE TABLE audit_entry (
    seq               INTEGER PRIMARY KEY,
    at                TEXT NOT NULL,
    event             TEXT NOT NULL,
    actor             TEXT NOT NULL,
    flow              TEXT,
    sender            TEXT,
    recipient         TEXT,
    subject           TEXT,
    fields            TEXT NOT NULL,
    legal_basis       TEXT,
    ciphertext_digest TEXT,
    outcome           TEXT NOT NULL,
    reason            TEXT,
    hash              BLOB NOT NULL
);
CREATE INDEX audit_entry_at ON audit_entry (at);
CREATE INDEX audit_entry_subject ON audit_entry (subject) WHERE subject IS NOT NULL;

CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash BLOB NOT NULL,
    at   TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash, at) VALUES (1, 0, zeroblob(32), '');

CREATE TABLE audit_checkpoint (
    seq           INTEGER PRIMARY KEY,
    hash          BLOB NOT NULL,
    purged_before TEXT NOT NULL,
    at            TEXT NOT NULL
);

CREATE TABLE audit_subject_index (
    kind        TEXT NOT NULL,
    blind_index TEXT NOT NULL,
    subject     TEXT NOT NULL,
    PRIMARY KEY (kind, blind_index, subject)
);
CREATE INDEX audit_subject_index_subject ON audit_subject_index (subject);

-- Set to 1 by a purge inside its transaction, back to 0 before it commits.
CREATE TABLE audit_purge_guard (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    active INTEGER NOT NULL
);
INSERT INTO audit_purge_guard (id, active) VALUES (1, 0);

CREATE TRIGGER audit_entry_follows_head BEFORE INSERT ON audit_entry
WHEN NEW.seq IS NOT (SELECT seq + 1 FROM audit_head WHERE id = 1)
BEGIN
    SELECT RAISE(ABORT, 'audit entry does not follow the head of the chain');
END;
CREATE TRIGGER audit_entry_advance_head AFTER INSERT ON audit_entry
BEGIN
    UPDATE audit_head SET seq = NEW.seq, hash = NEW.hash, at = NEW.at WHERE id = 1;
END;
CREATE TRIGGER audit_entry_no_update BEFORE UPDATE ON audit_entry
BEGIN
    SELECT RAISE(ABORT, 'audit journal is append-only: update of audit_entry refused');
END;
CREATE TRIGGER audit_entry_no_delete BEFORE DELETE ON audit_entry
WHEN (SELECT active FROM audit_purge_guard WHERE id = 1) IS NOT 1
BEGIN
    SELECT RAISE(ABORT, 'audit journal is append-only: delete from audit_entry refused outside a purge');
END;
CREATE TRIGGER audit_subject_index_no_update BEFORE UPDATE ON audit_subject_index
BEGIN
    SELECT RAISE(ABORT, 'audit journal is append-only: update of audit_subject_index refused');
END;
CREATE TRIGGER audit_subject_index_no_delete BEFORE DELETE ON audit_subject_index
WHEN (SELECT active FROM audit_purge_guard WHERE id = 1) IS NOT 1
BEGIN
    SELECT RAISE(ABORT, 'audit journal is append-only: delete from audit_subject_index refused outside a purge');
END;
CREATE TRIGGER audit_checkpoint_no_update BEFORE UPDATE ON audit_checkpoint
BEGIN
    SELECT RAISE(ABORT, 'audit journal is append-only: update of audit_checkpoint refused');
END;
CREATE TRIGGER audit_checkpoint_no_delete BEFORE DELETE ON audit_checkpoint
BEGIN
    SELECT RAISE(ABORT, 'audit journal is append-only: delete from audit_checkpoint refused');
END;
"#,
    // 2: anchors, the head signed by the hub's key (see `anchor`), and the signed
    // records of purges; never updated nor deleted, not even by a purge.
    r#"
CREATE TABLE audit_anchor (
    kind          TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    hash          TEXT NOT NULL,
    at            TEXT NOT NULL,
    purged_before TEXT,
    removed       INTEGER,
    actor         TEXT,
    summary       TEXT,
    public_key    TEXT NOT NULL,
    signature     TEXT NOT NULL,
    timestamp     TEXT,
    PRIMARY KEY (kind, seq)
);
CREATE TRIGGER audit_anchor_no_update BEFORE UPDATE ON audit_anchor
BEGIN
    SELECT RAISE(ABORT, 'audit journal is append-only: update of audit_anchor refused');
END;
CREATE TRIGGER audit_anchor_no_delete BEFORE DELETE ON audit_anchor
BEGIN
    SELECT RAISE(ABORT, 'audit journal is append-only: delete from audit_anchor refused');
END;
"#,
];

/// PostgreSQL migrations, in order. `{schema}` is replaced by the quoted current schema,
/// pinned as the `search_path` of the `SECURITY DEFINER` function so that no caller can
/// redirect it to tables of their own.
pub const POSTGRES: &[&str] = &[
    r#"
CREATE TABLE audit_entry (
    seq               BIGINT PRIMARY KEY,
    at                TEXT NOT NULL,
    event             TEXT NOT NULL,
    actor             TEXT NOT NULL,
    flow              TEXT,
    sender            TEXT,
    recipient         TEXT,
    subject           TEXT,
    fields            TEXT NOT NULL,
    legal_basis       TEXT,
    ciphertext_digest TEXT,
    outcome           TEXT NOT NULL,
    reason            TEXT,
    hash              BYTEA NOT NULL
);
CREATE INDEX audit_entry_at ON audit_entry (at);
CREATE INDEX audit_entry_subject ON audit_entry (subject) WHERE subject IS NOT NULL;

CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    at   TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash, at) VALUES (1, 0, decode(repeat('00', 32), 'hex'), '');

CREATE TABLE audit_checkpoint (
    seq           BIGINT PRIMARY KEY,
    hash          BYTEA NOT NULL,
    purged_before TEXT NOT NULL,
    at            TEXT NOT NULL
);

CREATE TABLE audit_subject_index (
    kind        TEXT NOT NULL,
    blind_index TEXT NOT NULL,
    subject     TEXT NOT NULL,
    PRIMARY KEY (kind, blind_index, subject)
);
CREATE INDEX audit_subject_index_subject ON audit_subject_index (subject);

-- Refuses UPDATE, DELETE and TRUNCATE; DELETE of entries and index rows passes only
-- inside a purge, which sets `passerelle.audit_purge` to `on` for its transaction.
CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE'
       AND TG_TABLE_NAME IN ('audit_entry', 'audit_subject_index')
       AND coalesce(current_setting('passerelle.audit_purge', true), '') = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit journal is append-only: % on % refused', lower(TG_OP), TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_entry_append_only BEFORE UPDATE OR DELETE ON audit_entry
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_entry_no_truncate BEFORE TRUNCATE ON audit_entry
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_subject_index_append_only BEFORE UPDATE OR DELETE ON audit_subject_index
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_subject_index_no_truncate BEFORE TRUNCATE ON audit_subject_index
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoint_append_only BEFORE UPDATE OR DELETE ON audit_checkpoint
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoint_no_truncate BEFORE TRUNCATE ON audit_checkpoint
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

-- The head moves only from inside the insert trigger below (trigger depth 2), never
-- by a direct UPDATE.
CREATE FUNCTION audit_head_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF pg_trigger_depth() < 2 THEN
        RAISE EXCEPTION 'audit journal is append-only: % on audit_head refused', lower(TG_OP)
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER audit_head_guard BEFORE UPDATE OR DELETE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION audit_head_guard();

CREATE FUNCTION audit_advance_head() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = {schema} AS $$
BEGIN
    UPDATE audit_head SET seq = NEW.seq, hash = NEW.hash, at = NEW.at
        WHERE id = 1 AND seq = NEW.seq - 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'audit entry does not follow the head of the chain'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION audit_advance_head() FROM PUBLIC;
CREATE TRIGGER audit_entry_advance_head AFTER INSERT ON audit_entry
    FOR EACH ROW EXECUTE FUNCTION audit_advance_head();
"#,
    r#"
CREATE TABLE audit_anchor (
    kind          TEXT NOT NULL,
    seq           BIGINT NOT NULL,
    hash          TEXT NOT NULL,
    at            TEXT NOT NULL,
    purged_before TEXT,
    removed       BIGINT,
    actor         TEXT,
    summary       TEXT,
    public_key    TEXT NOT NULL,
    signature     TEXT NOT NULL,
    timestamp     TEXT,
    PRIMARY KEY (kind, seq)
);
CREATE TRIGGER audit_anchor_append_only BEFORE UPDATE OR DELETE ON audit_anchor
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_anchor_no_truncate BEFORE TRUNCATE ON audit_anchor
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
"#,
];
