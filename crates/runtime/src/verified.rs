//! The night's walk of the audit journal, from where the last night's walk ended.
//!
//! The journal grows without end; walking it whole every night costs more each night.
//! A night walks from the last entry the previous walk found good (the mark, kept in
//! the data folder as `journal.verified`), which still catches any change to what the
//! journal gained since, a tail cut below the mark, and a rewrite of the marked entry.
//! A change further back is for `passerelle audit verify`, which always walks all.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use passerelle_audit::{Journal, Verification, VerifiedMark};

/// The mark's file in the data folder.
pub const MARK_FILE: &str = "journal.verified";

fn mark_path(data_dir: &Path) -> PathBuf {
    data_dir.join(MARK_FILE)
}

/// The mark left by the last walk; none (a whole walk) when there is no file or it
/// cannot be read (said in the log: a whole walk is slower, never wrong).
pub fn load_mark(data_dir: &Path) -> Option<VerifiedMark> {
    let path = mark_path(data_dir);
    let text = std::fs::read_to_string(&path).ok()?;
    match serde_json::from_str(&text) {
        Ok(m) => Some(m),
        Err(_) => {
            tracing::warn!(file = %path.display(), "the journal's walk mark cannot be read: walking the whole journal");
            None
        }
    }
}

/// Walks the journal from the mark, and moves the mark when the chain is intact.
pub async fn verify_night(journal: &Journal, data_dir: &Path) -> Result<Verification> {
    let mark = load_mark(data_dir);
    let v = journal.verify_since(mark.as_ref()).await?;
    if let Some(next) = v.mark() {
        let path = mark_path(data_dir);
        passerelle_connector::safe_fs::write_file(&path, &serde_json::to_vec(&next)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(v)
}
