//! `passerelle.toml`: which peers the hub reaches and how, in one file. Each peer's
//! section is that connector's own config struct; secrets never live here (key files,
//! `PASSERELLE_…` variables). Environment overrides: `PASSERELLE_AMQP_URL`,
//! `PASSERELLE_JOURNAL_URL`, `PASSERELLE_STATE_URL`, `PASSERELLE_SCHEDULE`,
//! `PASSERELLE_LISTEN`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use passerelle_box::BoxConfig;
use passerelle_cnaf::CnafConfig;
use passerelle_faj::FajConfig;
use passerelle_hub::routes::Territoires;
use passerelle_imilo::ImiloConfig;
use passerelle_server::ServerConfig;
use passerelle_solis::SolisPeerConfig;
use passerelle_transport::amqp::AmqpConfig;
use serde::Deserialize;

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    /// The flows file; the shipped one when absent.
    #[serde(default)]
    pub flows: Option<PathBuf>,
    #[serde(default)]
    pub transport: TransportSection,
    #[serde(default)]
    pub journal: JournalSection,
    /// Where the hub's state lives (hashes, transfers and receipts, identity keys,
    /// cursors, reviews, web accounts and sessions).
    #[serde(default)]
    pub state: StateSection,
    /// Anchoring: the RFC 3161 time-stamping authority, when there is one.
    #[serde(default)]
    pub audit: AuditSection,
    /// `passerelle serve`: listen address, schedule (cron, Europe/Paris), grace.
    #[serde(default)]
    pub server: ServerConfig,
    /// Which ML serves which place (CNAF lists, ASE young people).
    #[serde(default)]
    pub territoires: Territoires,
    #[serde(default)]
    pub imilo: Option<ImiloSection>,
    /// One entry per département the hub serves.
    #[serde(default, rename = "departement")]
    pub departements: Vec<DepartementSection>,
    /// FAJ platforms.
    #[serde(default)]
    pub faj: Vec<FajConfig>,
    /// Names of the partner organisations by code (`"59350S00" = "Mission Locale de
    /// Lille"`), so that the DPO's reports name recipients instead of codes.
    #[serde(default)]
    pub organisations: std::collections::BTreeMap<String, String>,
    /// How long a night and each peer may take.
    #[serde(default)]
    pub night: NightSection,
    /// Where the organisation keys and the pseudonym key come from: `<data-dir>` by
    /// default, a store shared by several instances otherwise (never generated there).
    #[serde(default)]
    pub keys: passerelle_keystore::KeysConfig,
}

/// A night's bounds: past them, what is left waits for the next night and the
/// summary names the peer (`sync` exits 3).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NightSection {
    /// Seconds each source's read and each recipient's delivery may take.
    #[serde(default = "default_peer_deadline")]
    pub peer_deadline_s: u64,
    /// Seconds the whole night may take.
    #[serde(default = "default_night_deadline")]
    pub deadline_s: u64,
    /// Batches in a row a recipient may fail (unreachable, after its client's own
    /// retries) before it is left for the next night.
    #[serde(default = "default_failures")]
    pub failures: u32,
    /// Hours a file peer (SOLIS, the box) may keep a transfer without its answer
    /// before the night settles it as dead-lettered and lets it be sent again.
    #[serde(default = "default_answer_within")]
    pub answer_within_h: u64,
    /// Days the hub keeps a peer file it has read (`traites/`) or refused (`refuses/`)
    /// before deleting it at the end of a night (the deletion is journaled).
    #[serde(default = "default_file_retention")]
    pub file_retention_days: u32,
}

fn default_file_retention() -> u32 {
    30
}

fn default_answer_within() -> u64 {
    72
}

fn default_peer_deadline() -> u64 {
    1800
}
fn default_night_deadline() -> u64 {
    4 * 3600
}
fn default_failures() -> u32 {
    3
}

impl Default for NightSection {
    fn default() -> Self {
        Self {
            peer_deadline_s: default_peer_deadline(),
            deadline_s: default_night_deadline(),
            failures: default_failures(),
            answer_within_h: default_answer_within(),
            file_retention_days: default_file_retention(),
        }
    }
}

impl NightSection {
    /// The hub's deadlines.
    pub fn deadlines(&self) -> passerelle_hub::Deadlines {
        use std::time::Duration;
        passerelle_hub::Deadlines {
            peer: Some(Duration::from_secs(self.peer_deadline_s)),
            night: Some(Duration::from_secs(self.deadline_s)),
            failures: self.failures,
        }
    }
}

/// Which transport carries the transfers.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransportSection {
    /// `embedded` (SQLite under `--data-dir`, one machine) or `rabbitmq`.
    #[serde(default)]
    pub kind: TransportKind,
    /// The RabbitMQ settings (`url` without its password: `PASSERELLE_AMQP_URL`
    /// overrides it).
    #[serde(default)]
    pub rabbitmq: Option<AmqpConfig>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    #[default]
    Embedded,
    Rabbitmq,
}

/// Where the audit journal lives.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalSection {
    /// `postgres://…` or `sqlite://…`; SQLite under `--data-dir` when absent.
    /// `PASSERELLE_JOURNAL_URL` overrides it (keep passwords there).
    #[serde(default)]
    pub url: Option<String>,
}

/// The hub's state store.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateSection {
    /// `postgres://…` (several hub instances share one state) or `sqlite:` and a path;
    /// `state.sqlite` under `--data-dir` when absent. `PASSERELLE_STATE_URL` overrides
    /// it (keep passwords there).
    #[serde(default)]
    pub url: Option<String>,
}

impl StateSection {
    /// Whether the state lives in PostgreSQL rather than in a file.
    pub fn is_postgres(&self) -> bool {
        self.url
            .as_deref()
            .is_some_and(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"))
    }

    fn validate(&self) -> Result<()> {
        if let Some(url) = &self.url
            && !self.is_postgres()
            && !url.starts_with("sqlite:")
        {
            // The URL may hold a password: only its scheme is named.
            let scheme = url.split(':').next().unwrap_or_default();
            bail!("state.url: `{scheme}:` is neither `postgres://` nor `sqlite:`");
        }
        Ok(())
    }
}

/// `[audit]`: the time-stamping authority that stamps each anchor (RFC 3161, as X-Road
/// does), and the certificate its tokens are checked with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    /// The TSA's URL (`http://…` or `https://…`), POSTed a TimeStampReq at each anchor.
    #[serde(default)]
    pub tsa_url: Option<String>,
    /// The TSA's certificate (PEM): `audit verify` checks every token against it.
    #[serde(default)]
    pub tsa_certificate: Option<PathBuf>,
    /// Seconds the TSA may take to answer (default 10).
    #[serde(default = "default_tsa_timeout")]
    pub tsa_timeout_s: u64,
}

fn default_tsa_timeout() -> u64 {
    10
}

impl Default for AuditSection {
    fn default() -> Self {
        Self {
            tsa_url: None,
            tsa_certificate: None,
            tsa_timeout_s: default_tsa_timeout(),
        }
    }
}

/// The national I-MILO and the structures (MLs) this hub serves.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImiloSection {
    /// ML structure codes whose dossiers are read each night.
    pub structures: Vec<String>,
    pub client: ImiloConfig,
    /// Days between two reconciliations through the structure listings; the nights
    /// in between read the change-event queue (imilo.md), page after page (each page
    /// acknowledged once its changes are published, then the next read). The first
    /// night always reads the listings (the full load); `0` reads them every night.
    #[serde(default = "weekly")]
    pub reconcile_every_days: u32,
}

/// A reconciliation a week by default: the event queue carries the changes between.
fn weekly() -> u32 {
    7
}

/// One département: its CD's systems.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepartementSection {
    /// `059`, `02A`, `974`.
    pub code: String,
    #[serde(default)]
    pub solis: Option<SolisPeerConfig>,
    #[serde(default)]
    pub cnaf: Option<CnafConfig>,
    /// One entry per ML folder of the CD's box.
    #[serde(default, rename = "box")]
    pub boxes: Vec<BoxConfig>,
    /// How the CD takes `of-signalement`: `solis` (imports) or `box` (`JEUNES_OF`
    /// files); SOLIS when it has an `import_dir`, else the box.
    #[serde(default)]
    pub of_signalement: Option<Via>,
}

/// A CD's way in for a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    Solis,
    Box,
}

impl DepartementSection {
    /// `CD059`.
    pub fn cd(&self) -> String {
        format!("CD{}", self.code)
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.trim().parse().ok()
}

impl HubConfig {
    /// Reads and validates the file, then applies the environment overrides.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the configuration {}", path.display()))?;
        Self::from_toml(&text).with_context(|| format!("configuration {}", path.display()))
    }

    /// The configuration when the file is optional: its defaults when it is missing.
    pub fn load_or_default(path: &Path) -> Result<Self> {
        if path.exists() {
            Self::load(path)
        } else {
            let mut c = Self::default();
            c.apply_env();
            Ok(c)
        }
    }

    pub fn from_toml(text: &str) -> Result<Self> {
        let mut c: Self = toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
        c.apply_env();
        c.validate()?;
        Ok(c)
    }

    fn apply_env(&mut self) {
        if let Ok(url) = std::env::var("PASSERELLE_AMQP_URL") {
            self.transport.kind = TransportKind::Rabbitmq;
            match &mut self.transport.rabbitmq {
                Some(c) => c.url = url,
                None => self.transport.rabbitmq = Some(AmqpConfig::new(url)),
            }
        }
        if let Ok(url) = std::env::var("PASSERELLE_JOURNAL_URL") {
            self.journal.url = Some(url);
        }
        if let Ok(url) = std::env::var("PASSERELLE_STATE_URL") {
            self.state.url = Some(url);
        }
        if let Ok(s) = std::env::var("PASSERELLE_SCHEDULE") {
            self.server.schedule = Some(s);
        }
        if let Ok(s) = std::env::var("PASSERELLE_LISTEN") {
            self.server.listen = s;
        }
        if let Some(n) = env_u64("PASSERELLE_PEER_DEADLINE_S") {
            self.night.peer_deadline_s = n;
        }
        if let Some(n) = env_u64("PASSERELLE_NIGHT_DEADLINE_S") {
            self.night.deadline_s = n;
        }
        self.keys.apply_env();
    }

    /// Checks everything that can be checked without I/O.
    pub fn validate(&self) -> Result<()> {
        if let Some(u) = &self.audit.tsa_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                bail!("audit.tsa_url must be an http:// or https:// URL");
            }
            if self.audit.tsa_certificate.is_none() {
                bail!(
                    "audit.tsa_url needs audit.tsa_certificate (the TSA's PEM certificate), or its tokens could not be checked"
                );
            }
        }
        if self.audit.tsa_timeout_s == 0 {
            bail!("audit.tsa_timeout_s must be at least 1 second");
        }
        if self.night.peer_deadline_s == 0 || self.night.deadline_s == 0 {
            bail!("night.peer_deadline_s and night.deadline_s must be at least 1 second");
        }
        if self.night.file_retention_days == 0 {
            bail!(
                "night.file_retention_days must be at least 1 (peer files hold personal data: they cannot be kept without a limit, and 0 would delete them before anyone can look)"
            );
        }
        if self.transport.kind == TransportKind::Rabbitmq {
            let Some(c) = &self.transport.rabbitmq else {
                bail!(
                    "transport.kind = \"rabbitmq\" needs [transport.rabbitmq] or PASSERELLE_AMQP_URL"
                );
            };
            c.validate().context("transport.rabbitmq")?;
        }
        self.state.validate()?;
        self.keys.validate()?;
        self.territoires.validate()?;
        if let Some(i) = &self.imilo {
            i.client.validate().context("imilo.client")?;
            for s in &i.structures {
                if passerelle_policy::departement_of(s).is_none() || s.starts_with("CD") {
                    bail!("imilo.structures: `{s}` is not an ML structure code");
                }
            }
        }
        for d in &self.departements {
            let ok = d.code.len() == 3 && d.code.chars().all(|c| c.is_ascii_alphanumeric());
            if !ok {
                bail!(
                    "departement.code `{}` must have 3 characters (059, 02A, 974)",
                    d.code
                );
            }
            match d.of_signalement {
                Some(Via::Solis) if d.solis.as_ref().is_none_or(|s| s.import_dir.is_none()) => {
                    bail!(
                        "departement {}: of_signalement = \"solis\" needs solis.import_dir",
                        d.code
                    )
                }
                Some(Via::Box) if d.boxes.is_empty() => {
                    bail!(
                        "departement {}: of_signalement = \"box\" needs a [[departement.box]]",
                        d.code
                    )
                }
                _ => {}
            }
            if let Some(s) = &d.solis {
                s.validate()
                    .with_context(|| format!("departement {} solis", d.code))?;
            }
            if let Some(c) = &d.cnaf {
                c.validate()
                    .with_context(|| format!("departement {} cnaf", d.code))?;
            }
            for b in &d.boxes {
                b.validate()
                    .with_context(|| format!("departement {} box", d.code))?;
            }
        }
        for f in &self.faj {
            f.validate().context("faj")?;
        }
        self.server.validate().context("server")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_configuration_is_valid() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../deploy/passerelle.example.toml");
        let c = HubConfig::load(&path).unwrap();
        assert_eq!(c.departements[0].cd(), "CD059");
        assert_eq!(c.imilo.unwrap().structures, ["59350S00"]);
        assert_eq!(c.territoires.ml_for(Some("59000"), "59"), Some("59350S00"));
    }

    #[test]
    fn unknown_keys_and_bad_codes_are_refused() {
        let e = HubConfig::from_toml("[transport]\nkind = \"embedded\"\nspeed = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("speed"), "{e}");
        let e = HubConfig::from_toml("[[departement]]\ncode = \"59\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("3 characters"), "{e}");
        let e = format!(
            "{:#}",
            HubConfig::from_toml("[server]\nschedule = \"every night\"\n").unwrap_err()
        );
        assert!(e.contains("schedule"), "{e}");
        let ok = HubConfig::from_toml(
            "[[departement]]\ncode = \"059\"\n[departement.cnaf]\nflux_dir = \"/srv/cnaf\"\n",
        )
        .unwrap();
        assert_eq!(ok.departements[0].cd(), "CD059");
    }

    #[test]
    fn the_state_url_names_postgres_or_sqlite() {
        let c = HubConfig::from_toml("").unwrap();
        assert!(c.state.url.is_none() && !c.state.is_postgres());
        let c = HubConfig::from_toml("[state]\nurl = \"postgres://hub@db.example/passerelle\"\n")
            .unwrap();
        assert!(c.state.is_postgres());
        let c = HubConfig::from_toml("[state]\nurl = \"sqlite:/srv/passerelle/state.sqlite\"\n")
            .unwrap();
        assert!(!c.state.is_postgres());
        let e = HubConfig::from_toml("[state]\nurl = \"mysql://u:secret@h/db\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("state.url") && !e.contains("secret"), "{e}");
        let e = HubConfig::from_toml("[state]\npath = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("path"), "{e}");
    }
}
