//! The connector's configuration: base URL, key sources, timeouts, retries and rate
//! limit. `validate` is pure; `build` reads the keys and makes the HTTP client.

use std::time::Duration;

use passerelle_connector::ConnectorError;
pub use passerelle_connector::http::RetryConfig;
use serde::{Deserialize, Serialize};

use crate::client::ImiloClient;
use crate::key::{Family, FamilyKeys, KeySources};

/// The documented page limit of the API.
pub const MAX_PAGE_SIZE: u32 = 150;
/// The documented request rate limit per key.
pub const DOCUMENTED_RATE_LIMIT_PER_S: f64 = 20.0;

/// `[imilo]` in the hub's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImiloConfig {
    /// `https://api.example.gouv.fr/imilo` (no trailing slash needed).
    pub base_url: String,
    /// Where each family's key comes from (env var names or secret files).
    pub keys: KeySources,
    /// Timeout of one HTTP exchange, connection included.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Requests per second per key; stays under the documented 20 by default.
    /// `0` turns the client-side limiter off (only for simulators without a limit).
    #[serde(default = "default_rate_limit")]
    pub rate_limit_per_s: f64,
    /// Requests the limiter lets through at once after an idle period.
    #[serde(default = "default_rate_burst")]
    pub rate_burst: u32,
    /// `taillePage` of listings, at most 150.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Requests in flight at once while reading (dossier fetches, listing pages, acks).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    #[serde(default)]
    pub retry: RetryConfig,
}

fn default_request_timeout_ms() -> u64 {
    30_000
}
fn default_connect_timeout_ms() -> u64 {
    5_000
}
fn default_rate_limit() -> f64 {
    19.0
}
fn default_rate_burst() -> u32 {
    4
}
fn default_page_size() -> u32 {
    MAX_PAGE_SIZE
}
fn default_concurrency() -> usize {
    8
}

impl ImiloConfig {
    /// A config with defaults around a base URL and key sources.
    pub fn new(base_url: impl Into<String>, keys: KeySources) -> Self {
        Self {
            base_url: base_url.into(),
            keys,
            request_timeout_ms: default_request_timeout_ms(),
            connect_timeout_ms: default_connect_timeout_ms(),
            rate_limit_per_s: default_rate_limit(),
            rate_burst: default_rate_burst(),
            page_size: default_page_size(),
            concurrency: default_concurrency(),
            retry: RetryConfig::default(),
        }
    }

    /// Checks the config without any I/O.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        let bad = |m: String| Err(ConnectorError::Config(m));
        let url = self.base_url.trim();
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return bad("base_url must start with https:// or http://".into());
        }
        if url.contains('?') || url.contains('#') || url.contains('@') {
            return bad("base_url must not hold a query, a fragment or credentials".into());
        }
        for f in Family::ALL {
            self.keys.get(f).validate(&format!("keys.{f}"))?;
        }
        if self.request_timeout_ms == 0 || self.connect_timeout_ms == 0 {
            return bad("request_timeout_ms and connect_timeout_ms must be above 0".into());
        }
        if !self.rate_limit_per_s.is_finite() || self.rate_limit_per_s < 0.0 {
            return bad("rate_limit_per_s must be 0 (off) or a positive number".into());
        }
        if self.rate_limit_per_s > DOCUMENTED_RATE_LIMIT_PER_S {
            return bad(format!(
                "rate_limit_per_s {} is above the documented {DOCUMENTED_RATE_LIMIT_PER_S} requests/s per key",
                self.rate_limit_per_s
            ));
        }
        if self.rate_burst == 0 {
            return bad("rate_burst must be at least 1".into());
        }
        if self.page_size == 0 || self.page_size > MAX_PAGE_SIZE {
            return bad(format!(
                "page_size {} must be from 1 to {MAX_PAGE_SIZE}",
                self.page_size
            ));
        }
        if self.concurrency == 0 || self.concurrency > 256 {
            return bad("concurrency must be from 1 to 256".into());
        }
        // The kit's rules; more than 100 attempts for one request is no policy.
        self.retry.validate(100)?;
        Ok(())
    }

    /// Validates, reads the keys and builds the client.
    pub fn build(&self) -> Result<ImiloClient, ConnectorError> {
        self.validate()?;
        let keys = FamilyKeys::load(&self.keys)?;
        ImiloClient::from_parts(self, keys)
    }

    /// `build`, the client paced by these buckets (one per family): shared by every
    /// hub instance, they keep all of them together within the API's limit.
    pub fn build_with_buckets(
        &self,
        buckets: [std::sync::Arc<dyn crate::http::Bucket>; 4],
    ) -> Result<ImiloClient, ConnectorError> {
        self.validate()?;
        let keys = FamilyKeys::load(&self.keys)?;
        ImiloClient::with_keys_and_buckets(self, keys, buckets)
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeySource;

    fn sources() -> KeySources {
        KeySources {
            dossiers: KeySource::Env("IMILO_KEY_DOSSIERS".into()),
            events: KeySource::Env("IMILO_KEY_EVENTS".into()),
            situations: KeySource::File("/run/secrets/imilo_situations".into()),
            partenaires: KeySource::File("/run/secrets/imilo_partenaires".into()),
        }
    }

    #[test]
    fn defaults_validate_and_rules_bite() {
        let c = ImiloConfig::new("https://imilo.example.org/api", sources());
        c.validate().unwrap();
        let mut bad = c.clone();
        bad.page_size = 151;
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("page_size")
        );
        let mut bad = c.clone();
        bad.rate_limit_per_s = 25.0;
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("documented")
        );
        let mut bad = c.clone();
        bad.base_url = "ftp://x".into();
        assert!(bad.validate().is_err());
        let mut bad = c;
        bad.retry.max_attempts = 0;
        assert!(bad.validate().is_err());
    }

    #[test]
    fn json_form_denies_unknown_fields_and_keys_in_clear() {
        let ok = r#"{"base_url":"https://x.org","keys":{"dossiers":{"env":"A"},"events":{"env":"B"},
            "situations":{"file":"/s"},"partenaires":{"file":"/p"}},"retry":{"max_attempts":3}}"#;
        let c: ImiloConfig = serde_json::from_str(ok).unwrap();
        assert_eq!(c.retry.max_attempts, 3);
        assert_eq!(c.page_size, 150);
        // A key written in clear is not a key source: refused.
        let clear = ok.replace(r#"{"env":"A"}"#, r#""sim-dossiers""#);
        assert!(serde_json::from_str::<ImiloConfig>(&clear).is_err());
        let unknown = ok.replace(r#""retry""#, r#""retries""#);
        assert!(serde_json::from_str::<ImiloConfig>(&unknown).is_err());
    }
}
