//! The end of a night: peer files past `night.file_retention_days` deleted from the
//! folders the hub reads (`traites/` and `refuses/` of each CNAF flux folder and SOLIS
//! export, import and ACK folder), each deletion journaled as a `purged` entry of the
//! hub naming the folder and the count, never a file name (a partner's file name may
//! carry a person's name).
//!
//! The box keeps no such folders (it purges its own files after 30 days), and files
//! still waiting to be read are never touched.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use passerelle_audit::{Event, Journal, NewEntry, Outcome};
use passerelle_connector::retention::{Swept, sweep};

use crate::config::HubConfig;

/// A folder the hub sets peer files aside in, and the organisation they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    pub org: String,
    pub path: PathBuf,
}

/// Every folder of the configuration with `traites/`/`refuses/` subfolders, once each.
pub fn folders(config: &HubConfig) -> Vec<Folder> {
    let mut out: Vec<Folder> = Vec::new();
    for d in &config.departements {
        let mut paths: Vec<&PathBuf> = Vec::new();
        if let Some(c) = &d.cnaf {
            paths.push(&c.flux_dir);
        }
        if let Some(s) = &d.solis {
            paths.extend(
                [&s.export_dir, &s.import_dir, &s.ack_dir]
                    .into_iter()
                    .flatten(),
            );
        }
        for p in paths {
            let path = std::path::absolute(p).unwrap_or_else(|_| p.clone());
            if !out.iter().any(|f| f.path == path) {
                out.push(Folder { org: d.cd(), path });
            }
        }
    }
    out
}

/// What the sweep of one folder did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderSwept {
    pub folder: Folder,
    pub swept: Swept,
}

/// Sweeps every folder of `config` as of `now` and journals each folder where files
/// were deleted. A folder that cannot be swept (missing, a link in place of
/// `traites/`) fails the sweep with its path: the night's summary was already printed,
/// and the files wait for the next night.
pub async fn sweep_all(
    config: &HubConfig,
    journal: &Journal,
    now: SystemTime,
) -> Result<Vec<FolderSwept>> {
    let days = config.night.file_retention_days;
    let max_age = Duration::from_secs(u64::from(days) * 86_400);
    let mut out = Vec::new();
    for folder in folders(config) {
        let swept = sweep(&folder.path, max_age, now).with_context(|| {
            format!(
                "cannot delete the peer files past retention in {}",
                folder.path.display()
            )
        })?;
        if swept.removed > 0 {
            let mut entry = NewEntry::new(Event::Purged, "system", Outcome::Ok);
            entry.sender = Some(folder.org.clone());
            entry.reason = Some(format!(
                "peer files: {} deleted from {}/{{traites,refuses}} after {days} days",
                swept.removed,
                folder.path.display()
            ));
            journal
                .append(entry)
                .await
                .context("cannot journal the deletion of peer files")?;
            tracing::info!(
                folder = %folder.path.display(),
                removed = swept.removed,
                bytes = swept.bytes,
                "peer files past retention deleted"
            );
        }
        out.push(FolderSwept { folder, swept });
    }
    Ok(out)
}
