//! The `[server]` section of the configuration: where to listen, the nightly schedule
//! and its time zone, time limits. `validate` is pure; the parts are then read with
//! `listen_addr` and `schedule`.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::schedule::Schedule;
use crate::status::DEFAULT_NIGHTS_KEPT;
use crate::tz::Timezone;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Socket address, default `127.0.0.1:8080`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Five-field cron expression for the nightly sync, read in `timezone`; none: no
    /// scheduled run (sync by hand).
    #[serde(default)]
    pub schedule: Option<String>,
    /// IANA name, default `Europe/Paris`; also `UTC` and the overseas départements'
    /// zones (`America/Guadeloupe`, `America/Martinique`, `America/Cayenne`,
    /// `Indian/Reunion`, `Indian/Mayotte`).
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Time limit of each readiness check, default 2000 ms.
    #[serde(default = "default_readiness_timeout")]
    pub readiness_timeout_ms: u64,
    /// How long in-flight requests get after shutdown, default 30 s.
    #[serde(default = "default_grace")]
    pub shutdown_grace_s: u64,
    /// Nights shown on the status page and `/api/status`, default 7.
    #[serde(default = "default_nights")]
    pub nights_kept: u64,
    /// What one client may cost (`[server.http]`: timeouts, connections, sizes).
    #[serde(default)]
    pub http: crate::serve::HttpLimits,
    /// The web application (`[server.web]`: sessions, throttle, organisations' names).
    #[serde(default)]
    pub web: crate::web::WebConfig,
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_timezone() -> String {
    Timezone::EuropeParis.name().into()
}
fn default_readiness_timeout() -> u64 {
    2_000
}
fn default_grace() -> u64 {
    30
}
fn default_nights() -> u64 {
    DEFAULT_NIGHTS_KEPT as u64
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            schedule: None,
            timezone: default_timezone(),
            readiness_timeout_ms: default_readiness_timeout(),
            shutdown_grace_s: default_grace(),
            nights_kept: default_nights(),
            http: crate::serve::HttpLimits::default(),
            web: crate::web::WebConfig::default(),
        }
    }
}

impl ServerConfig {
    /// Checks every field without touching the network.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        self.schedule()?;
        range(
            "readiness_timeout_ms",
            self.readiness_timeout_ms,
            10,
            60_000,
        )?;
        range("shutdown_grace_s", self.shutdown_grace_s, 0, 3_600)?;
        range("nights_kept", self.nights_kept, 1, 366)?;
        let h = &self.http;
        range(
            "http.header_read_timeout_ms",
            h.header_read_timeout_ms,
            100,
            600_000,
        )?;
        range("http.idle_timeout_ms", h.idle_timeout_ms, 100, 3_600_000)?;
        range("http.max_connections", h.max_connections as u64, 1, 100_000)?;
        range(
            "http.max_header_bytes",
            h.max_header_bytes as u64,
            1024,
            1024 * 1024,
        )?;
        range("web.idle_minutes", self.web.idle_minutes, 1, 24 * 60)?;
        range("web.absolute_hours", self.web.absolute_hours, 1, 24 * 7)?;
        range(
            "web.login_attempts",
            self.web.login_attempts as u64,
            1,
            1000,
        )?;
        range(
            "web.login_window_minutes",
            self.web.login_window_minutes,
            1,
            24 * 60,
        )?;
        range(
            "http.max_body_bytes",
            h.max_body_bytes as u64,
            1024,
            64 * 1024 * 1024,
        )?;
        // Declared hours are whole hours of a day, the end after the start.
        for h in self.web.declared_hours.values() {
            range(
                "web.declared_hours.start_hour",
                u64::from(h.start_hour),
                0,
                23,
            )?;
            range(
                "web.declared_hours.end_hour",
                u64::from(h.end_hour),
                u64::from(h.start_hour) + 1,
                24,
            )?;
        }
        Ok(())
    }

    /// The zone dates are shown in (Europe/Paris unless configured).
    pub fn timezone(&self) -> Timezone {
        Timezone::parse(&self.timezone).unwrap_or(Timezone::EuropeParis)
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen.trim().parse().map_err(|_| ConfigError::Listen {
            value: self.listen.clone(),
        })
    }

    /// The parsed schedule, if one is configured.
    pub fn schedule(&self) -> Result<Option<Schedule>, ConfigError> {
        let tz = Timezone::parse(&self.timezone)?;
        Ok(self
            .schedule
            .as_deref()
            .map(|s| Schedule::parse(s, tz))
            .transpose()?)
    }

    pub fn readiness_timeout(&self) -> Duration {
        Duration::from_millis(self.readiness_timeout_ms)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_s)
    }

    pub fn nights_kept(&self) -> usize {
        usize::try_from(self.nights_kept).unwrap_or(DEFAULT_NIGHTS_KEPT)
    }
}

fn range(field: &'static str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::OutOfRange {
            field,
            value,
            min,
            max,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ServerConfig, toml::de::Error> {
        toml::from_str(s)
    }

    #[test]
    fn declared_hours_are_read_checked_and_strict() {
        let c = parse(
            "[web.declared_hours.59350S00]\nstart_hour = 8\nend_hour = 19\nsaturday = true\n",
        )
        .unwrap();
        c.validate().unwrap();
        let h = &c.web.declared_hours["59350S00"];
        let at = |s: &str| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap();
        assert!(h.allows(at("2026-12-05 08:00")), "a Saturday, declared");
        assert!(!h.allows(at("2026-12-06 10:00")), "a Sunday, not declared");
        assert!(!h.allows(at("2026-12-04 19:00")), "the end hour is outside");
        assert!(!h.allows(at("2026-12-04 07:59")));
        let bad = parse("[web.declared_hours.59350S00]\nstart_hour = 19\nend_hour = 8\n").unwrap();
        assert!(bad.validate().is_err());
        assert!(parse("[web.declared_hours.59350S00]\nstart_hour = 8\nend = 19\n").is_err());
    }

    #[test]
    fn defaults_and_a_full_section() {
        let c = parse("").unwrap();
        assert_eq!(c, ServerConfig::default());
        c.validate().unwrap();
        assert_eq!(c.schedule().unwrap(), None);

        let c = parse(
            r#"
            listen = "0.0.0.0:9000"
            schedule = "30 2 * * *"
            timezone = "Europe/Paris"
            readiness_timeout_ms = 500
            shutdown_grace_s = 5
            nights_kept = 14
            "#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.listen_addr().unwrap().port(), 9000);
        let s = c.schedule().unwrap().unwrap();
        assert_eq!(s.to_string(), "30 2 * * * (Europe/Paris)");
        assert_eq!(c.shutdown_grace(), Duration::from_secs(5));
    }

    #[test]
    fn precise_errors() {
        let err = parse("shedule = \"30 2 * * *\"").unwrap_err().to_string();
        assert!(err.contains("unknown field `shedule`"), "{err}");

        let bad = |s: &str| parse(s).unwrap().validate().unwrap_err().to_string();
        assert_eq!(
            bad("schedule = \"30 2 * *\""),
            "schedule `30 2 * *` has 4 fields; expected 5 (minute hour day-of-month month day-of-week) or an @alias"
        );
        assert_eq!(
            bad("schedule = \"30 25 * * *\""),
            "schedule `30 25 * * *`: hour field `25`: 25 is out of range 0-23"
        );
        assert!(
            bad("schedule = \"30 2 * * *\"\ntimezone = \"Paris\"")
                .starts_with("unknown time zone `Paris`; known: UTC, Europe/Paris")
        );
        assert_eq!(
            bad("listen = \"localhost\""),
            "server.listen `localhost` is not a socket address like 127.0.0.1:8080"
        );
        assert_eq!(
            bad("nights_kept = 0"),
            "server.nights_kept must be between 1 and 366, not 0"
        );
    }
}
