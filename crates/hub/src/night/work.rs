//! A night among several hub instances: the night lock taken for the whole run, and
//! each planned source claimed as a work item of the night (`state::coord`), so that
//! instances running the same plan for the same night read each source once: the
//! first that claims it reads it, the others find it done; a source whose instance
//! died is taken over once its lease passed.

use std::future::Future;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::engine::EngineError;
use crate::state::coord::{Claims, WorkKind, this_instance};

/// How a night coordinates with the other instances on the same state.
#[derive(Debug, Clone)]
pub struct Coordination {
    /// Who this instance is, in "a night is running on …" and as the holder of the
    /// night's claims (unique among the instances running at once).
    pub instance: String,
    /// How long to wait for a night running elsewhere before giving up
    /// (`CoordError::Busy`).
    pub wait: Duration,
    /// The night's name, the same on every instance running the same plan for the
    /// same night (a scheduled slot: `2026-12-07T02:00`); none: the sources are not
    /// claimed (one instance, or a night run by hand that must read everything).
    pub night: Option<String>,
    /// How long a claimed source is this instance's without renewal; renewed every
    /// third of it while it is read.
    pub lease: Duration,
}

impl Default for Coordination {
    fn default() -> Self {
        Self {
            instance: this_instance(),
            wait: Duration::ZERO,
            night: None,
            lease: Duration::from_secs(60),
        }
    }
}

/// The night's claims on its sources.
#[derive(Debug, Clone)]
pub(crate) struct SourceWork {
    claims: Claims,
    lease: Duration,
}

impl SourceWork {
    pub(crate) fn new(claims: Claims, lease: Duration) -> Self {
        Self {
            claims,
            lease: lease.max(Duration::from_secs(1)),
        }
    }

    /// Runs `read` for source `name` if this instance gets its claim: `None` when
    /// another instance read it already tonight (or still holds it past twice its
    /// lease). The claim is renewed while `read` runs, completed when `ok` says its
    /// outcome is a source read through, given back otherwise.
    pub(crate) async fn read<T>(
        &self,
        name: &str,
        read: impl Future<Output = T>,
        ok: impl Fn(&T) -> bool,
    ) -> Result<Option<T>, EngineError> {
        if !self.take(name).await? {
            return Ok(None);
        }
        let renew = async {
            loop {
                tokio::time::sleep(self.lease / 3).await;
                match self.claims.renew(WorkKind::Source, name, self.lease).await {
                    Ok(true) => {}
                    Ok(false) => warn!(source = %name, "source's claim taken over while read"),
                    Err(e) => warn!(source = %name, error = %e, "source's claim not renewed"),
                }
            }
        };
        tokio::pin!(read);
        let out = tokio::select! {
            out = &mut read => out,
            () = renew => unreachable!("the renewal never ends"),
        };
        let settled = if ok(&out) {
            self.claims.complete(WorkKind::Source, name).await
        } else {
            self.claims.release(WorkKind::Source, name).await
        };
        if let Err(e) = settled {
            // The lease runs out by itself: the source is read again, never lost.
            warn!(source = %name, error = %e, "source's claim not settled");
        }
        Ok(Some(out))
    }

    /// Waits until this instance holds the source's claim (true), or finds it done
    /// (false). A claim held elsewhere is waited for until its lease passes: its
    /// holder died (one night at a time), and its work is taken over.
    async fn take(&self, name: &str) -> Result<bool, EngineError> {
        let started = Instant::now();
        loop {
            if self
                .claims
                .claim(WorkKind::Source, name, self.lease)
                .await
                .map_err(coord)?
            {
                return Ok(true);
            }
            let state = self
                .claims
                .state_of(WorkKind::Source, name)
                .await
                .map_err(coord)?;
            if state.as_ref().is_none_or(|s| s.done) {
                info!(source = %name, "source already read tonight by another instance");
                return Ok(false);
            }
            if started.elapsed() > self.lease * 2 {
                warn!(source = %name, "source held by another instance past its lease: left to it");
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(500).min(self.lease)).await;
        }
    }
}

fn coord(e: crate::state::coord::CoordError) -> EngineError {
    EngineError::Coord(e)
}
