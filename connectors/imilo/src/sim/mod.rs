//! The I-MILO simulator: every endpoint of imilo.md on a synthetic population, with
//! keys per family, pagination, a change-event queue, idempotent writes and faults on
//! demand (`/sim/faults`), for tests, benchmarks and demos.
//!
//! An accepted orientation (a new `referenceExterne`) opens a dossier in the target
//! structure, as a Mission Locale taking the young person in would: next id after the
//! population, identity, contact and CAF number from the prescription, orientation
//! date as accompaniment start, CEJ or PACEA drawn from the seed, modified now, listed
//! by its structure and announced by a `DOSSIER`/`CREATE` event.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub mod population;
mod server;
mod state;

pub use population::{Population, Structure};
pub use state::SimState;

use crate::config::ImiloConfig;
use crate::key::{ApiKey, Family, FamilyKeys, KeySource, KeySources};

/// The key of each family. Defaults: `sim-dossiers`, `sim-events`, `sim-situations`,
/// `sim-partenaires`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimKeys {
    pub dossiers: String,
    pub events: String,
    pub situations: String,
    pub partenaires: String,
}

impl std::fmt::Debug for SimKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SimKeys(<redacted>)")
    }
}

impl Default for SimKeys {
    fn default() -> Self {
        Self {
            dossiers: "sim-dossiers".into(),
            events: "sim-events".into(),
            situations: "sim-situations".into(),
            partenaires: "sim-partenaires".into(),
        }
    }
}

impl SimKeys {
    /// Reads `{"dossiers": "…", "events": "…", "situations": "…", "partenaires": "…"}`.
    pub fn from_file(path: &Path) -> Result<Self, passerelle_connector::ConnectorError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            passerelle_connector::ConnectorError::io(format!("keys file {}", path.display()), e)
        })?;
        let keys: Self = serde_json::from_str(&text).map_err(|e| {
            passerelle_connector::ConnectorError::Invalid {
                location: format!("keys file {} line {}", path.display(), e.line()),
                reason:
                    "expected {\"dossiers\", \"events\", \"situations\", \"partenaires\"} strings"
                        .into(),
            }
        })?;
        for (f, k) in [
            ("dossiers", &keys.dossiers),
            ("events", &keys.events),
            ("situations", &keys.situations),
            ("partenaires", &keys.partenaires),
        ] {
            if k.trim().is_empty() {
                return Err(passerelle_connector::ConnectorError::Config(format!(
                    "keys file: key of family {f} is empty"
                )));
            }
        }
        Ok(keys)
    }

    pub fn get(&self, family: Family) -> &str {
        match family {
            Family::Dossiers => &self.dossiers,
            Family::Events => &self.events,
            Family::Situations => &self.situations,
            Family::Partenaires => &self.partenaires,
        }
    }

    /// The family a key belongs to.
    pub fn family_of(&self, key: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| self.get(*f) == key)
    }

    /// These keys as a client holds them (`ImiloClient::with_keys`).
    pub fn family_keys(&self) -> Result<FamilyKeys, passerelle_connector::ConnectorError> {
        Ok(FamilyKeys::from_keys(
            ApiKey::new(&self.dossiers)?,
            ApiKey::new(&self.events)?,
            ApiKey::new(&self.situations)?,
            ApiKey::new(&self.partenaires)?,
        ))
    }
}

/// A client configuration for a simulator at `addr`: no client-side pacing (the
/// simulator limits only when told to), key sources that name nothing (the keys are
/// given with `SimKeys::family_keys`), every other setting its default.
pub fn client_config(addr: std::net::SocketAddr) -> ImiloConfig {
    let unused = || KeySource::Env("UNUSED_SIM_KEY".into());
    let mut c = ImiloConfig::new(
        format!("http://{addr}"),
        KeySources {
            dossiers: unused(),
            events: unused(),
            situations: unused(),
            partenaires: unused(),
        },
    );
    c.rate_limit_per_s = 0.0;
    c
}

/// Faults set by `POST /sim/faults` (every field optional; `{}` clears them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Share of API requests answered 429 with `Retry-After`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_429: Option<f64>,
    /// Share answered 503 (maintenance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_503: Option<f64>,
    /// Share whose connection is closed without an answer; for writes, half of them
    /// after the write is applied (the answer is lost, not the write).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_reset: Option<f64>,
    /// Added to every API request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Requests per second per key before 429 (the real API's documented 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_s: Option<f64>,
    /// `Retry-After` of injected 429s, in seconds (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u64>,
}

impl Faults {
    pub fn validate(&self) -> Result<(), String> {
        for (name, r) in [
            ("rate_429", self.rate_429),
            ("rate_503", self.rate_503),
            ("rate_reset", self.rate_reset),
        ] {
            if r.is_some_and(|r| !(0.0..=1.0).contains(&r)) {
                return Err(format!("{name} must be from 0 to 1"));
            }
        }
        let total = self.rate_429.unwrap_or(0.0)
            + self.rate_503.unwrap_or(0.0)
            + self.rate_reset.unwrap_or(0.0);
        if total > 1.0 {
            return Err("rate_429 + rate_503 + rate_reset must not exceed 1".into());
        }
        if self
            .rate_limit_per_s
            .is_some_and(|r| !(r.is_finite() && r > 0.0))
        {
            return Err("rate_limit_per_s must be a positive number".into());
        }
        Ok(())
    }
}

/// Faults injected so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultStats {
    pub http_429: u64,
    pub http_503: u64,
    pub resets: u64,
    /// 429s from the per-key rate limit (not injected at random).
    pub rate_limited: u64,
}

impl FaultStats {
    pub fn injected(&self) -> u64 {
        self.http_429 + self.http_503 + self.resets
    }
}

/// Writes applied (first time only; replays are counted apart).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteStats {
    pub orientations: u64,
    pub evenements: u64,
    pub situations: u64,
}

/// `GET /sim/stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStats {
    /// Every request received, `/sim/*` excluded.
    pub requests: u64,
    pub requests_by_family: BTreeMap<String, u64>,
    pub faults: FaultStats,
    pub writes: WriteStats,
    /// Writes answered 200 with the first answer (same `referenceExterne`).
    pub replays: u64,
    pub unauthorized: u64,
    pub forbidden: u64,
    pub dossiers_served: u64,
    pub events_served: u64,
    pub events_acked: u64,
    pub events_pending: u64,
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub jeunes: u64,
    pub seed: u64,
    /// `127.0.0.1:0` picks a free port.
    pub addr: SocketAddr,
    pub keys: SimKeys,
    pub faults: Faults,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            jeunes: 1_000,
            seed: 1,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            keys: SimKeys::default(),
            faults: Faults::default(),
        }
    }
}

/// A running simulator.
#[derive(Debug)]
pub struct SimHandle {
    state: Arc<SimState>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl SimHandle {
    pub fn stats(&self) -> SimStats {
        self.state.stats()
    }

    pub fn set_faults(&self, faults: Faults) -> Result<(), String> {
        self.state.set_faults(faults)
    }

    /// Whether a new orientation opens a dossier in its structure (on by default).
    pub fn set_orientation_dossiers(&self, on: bool) {
        self.state.set_orientation_dossiers(on);
    }

    /// Saves the writes and opened dossiers (see `SimState::save`).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        self.state.save(path)
    }

    /// Restores a `save` of a previous run on the same seed and size; `Ok(false)`
    /// when the file does not exist yet.
    pub fn restore(&self, path: &Path) -> std::io::Result<bool> {
        self.state.restore(path)
    }

    pub fn state(&self) -> &Arc<SimState> {
        &self.state
    }

    /// Stops accepting, lets requests in flight finish (5 s at most), and returns.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// Starts the simulator on `config.addr`; returns the bound address.
pub async fn spawn(config: SimConfig) -> std::io::Result<(SocketAddr, SimHandle)> {
    config
        .faults
        .validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    if config.jeunes == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "jeunes must be at least 1",
        ));
    }
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    let addr = listener.local_addr()?;
    let state = Arc::new(SimState::new(&config));
    let (tx, rx) = watch::channel(false);
    let router = server::router(state.clone());
    let task = tokio::spawn(server::serve(listener, router, rx));
    Ok((
        addr,
        SimHandle {
            state,
            shutdown: tx,
            task,
        },
    ))
}
