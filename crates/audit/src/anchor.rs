//! Anchors: the journal's head signed by the hub's Ed25519 key (kept in the keyring,
//! outside the journal's database), at each `audit anchor` and at each purge.
//!
//! The chain alone proves that entries follow each other; it cannot prove where it
//! ends, nor that it was not recomputed, because its head sits in the same database.
//! A signed anchor says "the chain reached entry `seq` with hash `hash` at `at`": whoever
//! can write the database but does not hold the key cannot make one. [`check`] then
//! finds a cut tail or an emptied journal (an anchor beyond the last entry), a rewritten
//! chain or erased-and-renumbered entries (an anchored hash that no longer matches), a
//! removed or forged checkpoint (a checkpoint without its signed record, or a signed
//! checkpoint record without its checkpoint).
//!
//! Anchors are kept twice: in the journal's `audit_anchor` table and in an anchor file
//! (JSON Lines) that should live outside the database's reach; an anchor found in
//! either counts. Deleting both copies loses the anchors, which is why the public key
//! and the last anchor are printed, to be kept elsewhere too.
//!
//! # Signed statement (version 1)
//! `passerelle/audit-anchor/v1\0`, then `kind`, the sequence number (u64 big-endian),
//! the hash (32 bytes), `at`, `purged_before`, `removed` (u64 big-endian, tag byte
//! first), `actor`, `summary`, every text as a tag byte (`0` absent, `1` present)
//! followed by its UTF-8 length (u32 big-endian) and bytes.

use serde::{Deserialize, Serialize};

use crate::verify::Checkpoint;

const DOMAIN: &[u8] = b"passerelle/audit-anchor/v1\0";

/// A signed statement about the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Anchor {
    /// `head` (an anchor of the head) or `checkpoint` (the record of a purge).
    pub kind: String,
    /// The last entry the chain reached (for a checkpoint: the last entry removed).
    pub seq: i64,
    /// Its chain hash, lowercase hex.
    pub hash: String,
    /// When the anchor was made (RFC 3339 UTC); for a checkpoint, when the purge ran.
    pub at: String,
    /// Checkpoints: the purge cut-off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purged_before: Option<String>,
    /// Checkpoints: how many entries were removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<u64>,
    /// Checkpoints: who purged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Checkpoints: what was removed, by flow and month (JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The signing key, lowercase hex.
    pub public_key: String,
    /// Ed25519 signature of the statement, lowercase hex.
    pub signature: String,
    /// An RFC 3161 time-stamp token over SHA-256 of the statement (DER, hex), when a
    /// time-stamping authority is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

pub const HEAD: &str = "head";
pub const CHECKPOINT: &str = "checkpoint";

fn put_opt(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
    }
}

impl Anchor {
    /// The bytes signed (see the module documentation); `None` when the hash is not
    /// 32 bytes of hex.
    pub fn statement(&self) -> Option<Vec<u8>> {
        let mut hash = [0u8; 32];
        hex::decode_to_slice(&self.hash, &mut hash).ok()?;
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(DOMAIN);
        put_opt(&mut out, Some(&self.kind));
        out.extend_from_slice(&(self.seq as u64).to_be_bytes());
        out.extend_from_slice(&hash);
        put_opt(&mut out, Some(&self.at));
        put_opt(&mut out, self.purged_before.as_deref());
        match self.removed {
            None => out.push(0),
            Some(n) => {
                out.push(1);
                out.extend_from_slice(&n.to_be_bytes());
            }
        }
        put_opt(&mut out, self.actor.as_deref());
        put_opt(&mut out, self.summary.as_deref());
        Some(out)
    }

    /// Signs a new statement with the hub's key.
    pub fn sign(mut self, key: &passerelle_crypto::AnchorKey) -> Self {
        self.public_key = key.public_hex();
        let statement = self.statement().unwrap_or_default();
        self.signature = key.sign_hex(&statement);
        self
    }

    /// An unsigned head anchor, to [`sign`](Self::sign).
    pub fn head(seq: i64, hash: &[u8], at: String) -> Self {
        Self {
            kind: HEAD.to_owned(),
            seq,
            hash: hex::encode(hash),
            at,
            purged_before: None,
            removed: None,
            actor: None,
            summary: None,
            public_key: String::new(),
            signature: String::new(),
            timestamp: None,
        }
    }

    /// Whether the signature is good and made by `public_key`.
    pub fn is_signed_by(&self, public_key: &str) -> bool {
        self.public_key == public_key
            && self.statement().is_some_and(|s| {
                passerelle_crypto::verify_signature(public_key, &s, &self.signature)
            })
    }

    /// Whether this is the signed record of that checkpoint.
    pub fn records(&self, c: &Checkpoint) -> bool {
        self.kind == CHECKPOINT
            && self.seq == c.seq
            && self.hash == c.hash
            && self.purged_before.as_deref() == Some(c.purged_before.as_str())
            && self.at == c.at
    }
}

/// What is wrong with the anchoring of a chain that otherwise walks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum AnchorProblem {
    /// An anchor's signature is not the hub key's: forged, or the key was changed.
    BadSignature { kind: String, seq: i64, at: String },
    /// A signed anchor says the chain reached `seq`, but it ends at `last_seq`.
    Truncated { seq: i64, at: String, last_seq: i64 },
    /// The entry at `seq` no longer has the hash that was signed: the chain was
    /// rewritten from there (recomputed hashes, erased and renumbered entries).
    Rewritten { seq: i64, at: String },
    /// A checkpoint of the journal has no signed record: not made by the hub's purge.
    UnsignedCheckpoint { seq: i64 },
    /// A signed purge record names a checkpoint the journal no longer has.
    CheckpointRemoved { seq: i64, at: String },
    /// Anchors exist but the keyring holds no anchor key to check them with.
    NoKey,
    /// An anchor's RFC 3161 token does not check out against the configured TSA
    /// certificate: for another statement, altered, or from another authority.
    BadTimestamp {
        kind: String,
        seq: i64,
        at: String,
        reason: String,
    },
}

impl std::fmt::Display for AnchorProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadSignature { kind, seq, at } => write!(
                f,
                "the {kind} anchor of entry {seq} made at {at} is not signed by the hub's key (forged or altered)"
            ),
            Self::Truncated { seq, at, last_seq } => write!(
                f,
                "a signed anchor made at {at} says the chain reached entry {seq}, but it ends at entry {last_seq}: entries were removed from its end (or the journal was emptied)"
            ),
            Self::Rewritten { seq, at } => write!(
                f,
                "entry {seq} no longer has the hash signed at {at}: the chain was rewritten up to it (recomputed, or entries erased and renumbered)"
            ),
            Self::UnsignedCheckpoint { seq } => write!(
                f,
                "the checkpoint at entry {seq} has no signed purge record: it was not made by the hub's purge"
            ),
            Self::CheckpointRemoved { seq, at } => write!(
                f,
                "the purge of {at} left a checkpoint at entry {seq} that the journal no longer holds (removed)"
            ),
            Self::NoKey => write!(
                f,
                "the journal holds signed anchors but the keyring has no anchor key to check them"
            ),
            Self::BadTimestamp {
                kind,
                seq,
                at,
                reason,
            } => write!(
                f,
                "the time-stamp token of the {kind} anchor of entry {seq} made at {at} does not check out: {reason}"
            ),
        }
    }
}

/// What the chain looks like to [`check`]: its checkpoints and where it ends.
#[derive(Debug)]
pub struct ChainFacts<'a> {
    /// Every checkpoint row, oldest first.
    pub checkpoints: &'a [Checkpoint],
    /// The checkpoint the walk started from (the last one).
    pub start: Option<&'a Checkpoint>,
    /// The last entry found good.
    pub last_seq: i64,
}

/// Checks the anchors against a chain that walked intact; `hash_at` gives the stored
/// hash of an entry between the start checkpoint and `last_seq`. Returns every problem
/// found, oldest anchor first.
pub fn check(
    anchors: &[Anchor],
    public_key: Option<&str>,
    facts: &ChainFacts<'_>,
    hash_at: impl Fn(i64) -> Option<String>,
) -> Vec<AnchorProblem> {
    let mut problems = Vec::new();
    let Some(pk) = public_key else {
        if !anchors.is_empty() || !facts.checkpoints.is_empty() {
            problems.push(AnchorProblem::NoKey);
        }
        return problems;
    };
    let good: Vec<&Anchor> = anchors.iter().filter(|a| a.is_signed_by(pk)).collect();
    for a in anchors.iter().filter(|a| !a.is_signed_by(pk)) {
        problems.push(AnchorProblem::BadSignature {
            kind: a.kind.clone(),
            seq: a.seq,
            at: a.at.clone(),
        });
    }
    for c in facts.checkpoints {
        if !good.iter().any(|a| a.records(c)) {
            problems.push(AnchorProblem::UnsignedCheckpoint { seq: c.seq });
        }
    }
    let start_seq = facts.start.map_or(0, |c| c.seq);
    for a in &good {
        if a.kind == CHECKPOINT && !facts.checkpoints.iter().any(|c| a.records(c)) {
            problems.push(AnchorProblem::CheckpointRemoved {
                seq: a.seq,
                at: a.at.clone(),
            });
            continue;
        }
        if a.seq > facts.last_seq {
            problems.push(AnchorProblem::Truncated {
                seq: a.seq,
                at: a.at.clone(),
                last_seq: facts.last_seq,
            });
        } else if a.seq == start_seq && a.seq > 0 {
            if facts.start.is_some_and(|c| c.hash != a.hash) {
                problems.push(AnchorProblem::Rewritten {
                    seq: a.seq,
                    at: a.at.clone(),
                });
            }
        } else if a.seq > start_seq && hash_at(a.seq).as_deref() != Some(a.hash.as_str()) {
            problems.push(AnchorProblem::Rewritten {
                seq: a.seq,
                at: a.at.clone(),
            });
        }
    }
    problems.dedup();
    problems
}

/// How the RFC 3161 tokens of a set of anchors checked out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timestamps {
    /// Anchors whose token verified, with the TSA's time of the latest.
    pub good: usize,
    pub last_gen_time: Option<String>,
    /// Anchors without a token (made before a TSA was configured, or while it was down).
    pub without: usize,
    pub problems: Vec<AnchorProblem>,
}

/// Checks each anchor's token against its statement and the TSA certificate.
pub fn check_timestamps(anchors: &[Anchor], cert: &crate::tsa::TsaCertificate) -> Timestamps {
    let mut t = Timestamps::default();
    for a in anchors {
        let Some(token) = &a.timestamp else {
            t.without += 1;
            continue;
        };
        let checked = a
            .statement()
            .ok_or(crate::tsa::TsaError::Malformed { what: "anchor" })
            .and_then(|s| crate::tsa::verify_hex(token, &s, cert));
        match checked {
            Ok(s) => {
                t.good += 1;
                if t.last_gen_time.as_ref().is_none_or(|g| *g < s.gen_time) {
                    t.last_gen_time = Some(s.gen_time);
                }
            }
            Err(e) => t.problems.push(AnchorProblem::BadTimestamp {
                kind: a.kind.clone(),
                seq: a.seq,
                at: a.at.clone(),
                reason: e.to_string(),
            }),
        }
    }
    t
}

/// Reads an anchor file (JSON Lines); a missing file is no anchors. A bad line is an
/// error naming the file and the line.
pub fn read_file(path: &std::path::Path) -> Result<Vec<Anchor>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        out.push(
            serde_json::from_str(line)
                .map_err(|e| format!("{} line {}: not an anchor ({e})", path.display(), i + 1))?,
        );
    }
    Ok(out)
}

/// Appends anchors to an anchor file (created 0600), one JSON line each, synced.
pub fn append_file(path: &std::path::Path, anchors: &[Anchor]) -> std::io::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(path)?;
    let mut buf = Vec::new();
    for a in anchors {
        serde_json::to_writer(&mut buf, a).map_err(std::io::Error::other)?;
        buf.push(b'\n');
    }
    f.write_all(&buf)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use passerelle_crypto::AnchorKey;

    fn cp(seq: i64, hash: &str) -> Checkpoint {
        Checkpoint {
            seq,
            hash: hash.to_owned(),
            purged_before: "2026-01-01T00:00:00.000000Z".into(),
            at: "2026-06-01T00:00:00.000000Z".into(),
        }
    }

    #[test]
    fn statements_bind_every_field() {
        let k = AnchorKey::generate();
        let a = Anchor::head(7, &[3u8; 32], "2026-12-03T14:00:00.000000Z".into()).sign(&k);
        assert!(a.is_signed_by(&k.public_hex()));
        let mut b = a.clone();
        b.seq = 6;
        assert!(!b.is_signed_by(&k.public_hex()));
        let mut b = a.clone();
        b.at = "2026-12-03T14:00:00.000001Z".into();
        assert!(!b.is_signed_by(&k.public_hex()));
        let mut b = a.clone();
        b.kind = CHECKPOINT.into();
        assert!(!b.is_signed_by(&k.public_hex()));
        let mut b = a.clone();
        b.summary = Some(String::new());
        assert!(!b.is_signed_by(&k.public_hex()));
    }

    #[test]
    fn check_names_cut_rewritten_and_removed() {
        let k = AnchorKey::generate();
        let pk = k.public_hex();
        let h = |b: u8| hex::encode([b; 32]);
        let a5 = Anchor::head(5, &[5u8; 32], "t5".into()).sign(&k);
        let c = cp(2, &h(2));
        let mut rec = Anchor::head(2, &[2u8; 32], c.at.clone());
        rec.kind = CHECKPOINT.into();
        rec.purged_before = Some(c.purged_before.clone());
        let rec = rec.sign(&k);
        let cps = [c.clone()];
        let facts = ChainFacts {
            checkpoints: &cps,
            start: Some(&c),
            last_seq: 5,
        };
        let anchors = [a5.clone(), rec.clone()];
        assert!(check(&anchors, Some(&pk), &facts, |s| Some(h(s as u8))).is_empty());
        // Rewritten: entry 5 has another hash.
        let p = check(&anchors, Some(&pk), &facts, |_| Some(h(9)));
        assert_eq!(
            p,
            vec![AnchorProblem::Rewritten {
                seq: 5,
                at: "t5".into()
            }]
        );
        // Cut: the chain ends at 4.
        let cut = ChainFacts {
            last_seq: 4,
            ..facts
        };
        let p = check(&anchors, Some(&pk), &cut, |s| Some(h(s as u8)));
        assert!(matches!(
            p[..],
            [AnchorProblem::Truncated {
                seq: 5,
                last_seq: 4,
                ..
            }]
        ));
        // The checkpoint row removed, and a forged one without its record.
        let none = ChainFacts {
            checkpoints: &[],
            start: None,
            last_seq: 5,
        };
        let p = check(&anchors, Some(&pk), &none, |s| Some(h(s as u8)));
        assert!(p.contains(&AnchorProblem::CheckpointRemoved {
            seq: 2,
            at: c.at.clone()
        }));
        let p = check(std::slice::from_ref(&a5), Some(&pk), &facts, |s| {
            Some(h(s as u8))
        });
        assert_eq!(p, vec![AnchorProblem::UnsignedCheckpoint { seq: 2 }]);
        // Another key's anchor is not the hub's.
        let other = AnchorKey::generate();
        let forged = Anchor::head(5, &[5u8; 32], "t5".into()).sign(&other);
        let p = check(&[forged, rec], Some(&pk), &facts, |s| Some(h(s as u8)));
        assert!(matches!(
            p[..],
            [AnchorProblem::BadSignature { seq: 5, .. }]
        ));
    }
}
