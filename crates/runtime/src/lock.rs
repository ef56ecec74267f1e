//! One night at a time on a data folder: `sync`, `demo` and each night of `serve` hold
//! an exclusive lock (`flock`) on `night.lock` in the data folder. Two nights on one
//! state store publish the same persons twice, pick the same peer file names and
//! settle each other's receipts; the kernel drops the lock when the process dies, so a
//! crash never leaves a stale lock behind.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The exit status of a command that found another night running (and waited for it
/// as long as `--wait` allowed).
pub const EXIT_NIGHT_RUNNING: u8 = 4;

/// The lock file's name in the data folder.
pub const LOCK_FILE: &str = "night.lock";

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it; `holder` is what it wrote there (pid, command, start).
    #[error("a night is already running on {dir} ({holder}); waited {waited} s")]
    Busy {
        dir: PathBuf,
        holder: String,
        waited: u64,
    },
    #[error("cannot open the night lock {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The lock, held until dropped.
#[derive(Debug)]
pub struct NightLock {
    _file: File,
}

impl NightLock {
    /// Takes the lock of `data_dir` for `what` (`sync`, `serve`, `demo`), waiting up to
    /// `wait` for a running night to end.
    pub async fn acquire(data_dir: &Path, what: &str, wait: Duration) -> Result<Self, LockError> {
        let path = data_dir.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        passerelle_connector::safe_fs::private_dir(data_dir).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        let started = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    if started.elapsed() >= wait {
                        let mut holder = String::new();
                        let _ = file.read_to_string(&mut holder);
                        let _ = file.seek(SeekFrom::Start(0));
                        let holder = holder.trim();
                        return Err(LockError::Busy {
                            dir: data_dir.to_owned(),
                            holder: if holder.is_empty() {
                                "holder unknown".into()
                            } else {
                                holder.to_owned()
                            },
                            waited: started.elapsed().as_secs(),
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(TryLockError::Error(e)) => return Err(io(e)),
            }
        }
        // Who holds it, for the message the next one prints.
        let _ = file.set_len(0);
        let _ = file.seek(SeekFrom::Start(0));
        let _ = write!(
            file,
            "pid {}, passerelle {what} since {}",
            std::process::id(),
            chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
        );
        let _ = file.flush();
        Ok(Self { _file: file })
    }
}

/// Whether a night stopped because another instance's night holds the cluster's lock
/// (the hub's own lock, `passerelle_hub::night::Coordination`: across machines when
/// the state is in PostgreSQL): the command exits with `EXIT_NIGHT_RUNNING` then too.
pub fn another_night(e: &passerelle_hub::EngineError) -> bool {
    matches!(e, passerelle_hub::EngineError::Coord(c) if c.is_busy())
}

/// How long a scheduled night waits for another instance's night: it then finds the
/// sources that night read done, or takes over what a dead instance left.
pub const CLUSTER_WAIT: Duration = Duration::from_secs(6 * 3600);

/// The name of a scheduled night, the same on every instance firing at that slot: its
/// start to the nearest five minutes (UTC), so that clocks a little apart agree.
pub fn slot_name(started: chrono::DateTime<chrono::Utc>) -> String {
    let secs = (started.timestamp() + 150).div_euclid(300) * 300;
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or(started)
        .format("%Y-%m-%dT%H:%MZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_night_waits_then_gives_up_naming_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let first = NightLock::acquire(dir.path(), "sync", Duration::ZERO)
            .await
            .unwrap();
        let t = Instant::now();
        let e = NightLock::acquire(dir.path(), "serve", Duration::from_millis(500))
            .await
            .unwrap_err();
        assert!(t.elapsed() >= Duration::from_millis(500));
        let msg = e.to_string();
        assert!(msg.contains("already running"), "{msg}");
        assert!(
            msg.contains(&format!("pid {}, passerelle sync", std::process::id())),
            "{msg}"
        );
        drop(first);
        NightLock::acquire(dir.path(), "serve", Duration::ZERO)
            .await
            .unwrap();
    }

    #[test]
    fn instances_a_little_apart_name_the_same_slot() {
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        let name = slot_name(at("2026-12-07T01:00:00Z"));
        assert_eq!(name, "2026-12-07T01:00Z");
        assert_eq!(slot_name(at("2026-12-07T00:59:58Z")), name);
        assert_eq!(slot_name(at("2026-12-07T01:02:10Z")), name);
        assert_ne!(slot_name(at("2026-12-07T01:05:00Z")), name);
    }
}
