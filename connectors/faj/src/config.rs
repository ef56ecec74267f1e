//! `FajConfig`: where the platform is, where its secrets come from, timeouts, the
//! retry budget and the rate limit (the kit's, `passerelle_connector::http`).
//! `validate` is pure; `build` reads the secrets and makes the client.

use std::time::Duration;

use passerelle_connector::ConnectorError;
use passerelle_connector::http::Secret;
pub use passerelle_connector::http::{RetryConfig, SecretSource};
use serde::{Deserialize, Serialize};

use crate::client::FajClient;

/// The retry policy of the platform's calls when the configuration says nothing:
/// fewer attempts and a shorter limit than the kit's default (a conseiller may be
/// waiting on the form), a `Retry-After` above 5 s left to the engine.
pub fn default_retry() -> RetryConfig {
    RetryConfig {
        max_attempts: 5,
        base_delay_ms: 200,
        max_delay_ms: 5_000,
        max_retry_after_ms: 5_000,
        max_elapsed_ms: 30_000,
        ..RetryConfig::default()
    }
}

fn retry_over_defaults<'de, D: serde::Deserializer<'de>>(d: D) -> Result<RetryConfig, D::Error> {
    RetryConfig::deserialize_over(d, default_retry())
}

/// The FAJ connector's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FajConfig {
    /// The platform's base URL (`https://faj.example.fr`); paths are appended to it.
    pub base_url: String,
    /// The platform's id in `sources[].organisation` (`FAJ059`).
    #[serde(default = "default_platform")]
    pub platform: String,
    pub client_id: String,
    pub client_secret: SecretSource,
    /// The shared secret of the `X-FAJ-Signature` HMAC.
    pub webhook_secret: SecretSource,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    #[serde(default = "default_request_timeout")]
    pub request_timeout_ms: u64,
    /// How long before `expires_in` a token is renewed (capped at a quarter of its life).
    #[serde(default = "default_refresh_margin")]
    pub token_refresh_margin_s: u64,
    /// Retries of 503, 429, other 5xx, timeouts and connection errors; the former
    /// names `initial_backoff_ms`, `max_backoff_ms` and `budget_ms` are still read.
    #[serde(default = "default_retry", deserialize_with = "retry_over_defaults")]
    pub retry: RetryConfig,
    /// Requests per second to the platform; 0 (the default) paces nothing.
    #[serde(default)]
    pub rate_limit_per_s: f64,
    /// Requests the limiter lets through at once after an idle period.
    #[serde(default = "default_rate_burst")]
    pub rate_burst: u32,
    /// Requests a batch keeps in flight at once (`FajSink::deliver_batch`), 1 to 64.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// What the decision webhook accepts (`[faj.webhook]`: body size, rate per
    /// client, timestamp window, refusal journaling window).
    #[serde(default)]
    pub webhook: crate::webhook::WebhookLimits,
}

fn default_concurrency() -> usize {
    4
}

fn default_rate_burst() -> u32 {
    4
}

fn default_platform() -> String {
    "faj".to_owned()
}
fn default_connect_timeout() -> u64 {
    5_000
}
fn default_request_timeout() -> u64 {
    30_000
}
fn default_refresh_margin() -> u64 {
    60
}

/// What `build` returns: the client (also the sink) and the webhook key.
#[derive(Debug, Clone)]
pub struct Built {
    pub client: FajClient,
    pub webhook_secret: Secret,
}

impl FajConfig {
    /// A configuration with defaults for everything but the essentials.
    pub fn new(
        base_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: SecretSource,
        webhook_secret: SecretSource,
    ) -> Self {
        Self {
            base_url: base_url.into(),
            platform: default_platform(),
            client_id: client_id.into(),
            client_secret,
            webhook_secret,
            connect_timeout_ms: default_connect_timeout(),
            request_timeout_ms: default_request_timeout(),
            token_refresh_margin_s: default_refresh_margin(),
            retry: default_retry(),
            rate_limit_per_s: 0.0,
            rate_burst: default_rate_burst(),
            concurrency: default_concurrency(),
            webhook: crate::webhook::WebhookLimits::default(),
        }
    }

    /// Checks the configuration without any I/O (no environment, no file, no network).
    pub fn validate(&self) -> Result<(), ConnectorError> {
        self.webhook.validate()?;
        let url = reqwest::Url::parse(&self.base_url).map_err(|_| {
            ConnectorError::Config("base_url: must be an absolute http(s) URL".into())
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(ConnectorError::Config(
                "base_url: must be an absolute http(s) URL".into(),
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(ConnectorError::Config(
                "base_url: must have no query or fragment".into(),
            ));
        }
        if self.platform.trim().is_empty() {
            return Err(ConnectorError::Config("platform: must not be empty".into()));
        }
        if self.client_id.trim().is_empty() {
            return Err(ConnectorError::Config(
                "client_id: must not be empty".into(),
            ));
        }
        self.client_secret.validate("client_secret")?;
        self.webhook_secret.validate("webhook_secret")?;
        if self.connect_timeout_ms == 0 || self.request_timeout_ms == 0 {
            return Err(ConnectorError::Config(
                "connect_timeout_ms and request_timeout_ms: must be above 0".into(),
            ));
        }
        self.retry.validate(20)?;
        if self.retry.base_delay_ms == 0 {
            return Err(ConnectorError::Config(
                "retry.base_delay_ms: must be above 0".into(),
            ));
        }
        if !self.rate_limit_per_s.is_finite() || self.rate_limit_per_s < 0.0 || self.rate_burst == 0
        {
            return Err(ConnectorError::Config(
                "rate_limit_per_s must be 0 (off) or positive, rate_burst at least 1".into(),
            ));
        }
        if self.concurrency == 0 || self.concurrency > 64 {
            return Err(ConnectorError::Config(
                "concurrency: must be 1 to 64".into(),
            ));
        }
        Ok(())
    }

    /// Validates, reads both secrets and makes the HTTP client (no call is made yet).
    pub fn build(&self) -> Result<Built, ConnectorError> {
        self.validate()?;
        let client_secret = self.client_secret.resolve("client_secret")?;
        let webhook_secret = self.webhook_secret.resolve("webhook_secret")?;
        let client = FajClient::new(self, client_secret)?;
        Ok(Built {
            client,
            webhook_secret,
        })
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FajConfig {
        FajConfig::new(
            "http://127.0.0.1:8080",
            "sim-client",
            SecretSource::Env("FAJ_TEST_SECRET".into()),
            SecretSource::File("/run/secrets/faj_webhook".into()),
        )
    }

    /// What a `[[faj]]` table must say, secrets by their source.
    const ESSENTIALS: &str = r#"
        base_url = "https://faj.example.fr"
        client_id = "ml-59"
        client_secret = { env = "FAJ_SECRET" }
        webhook_secret = { file = "/run/secrets/faj" }
    "#;

    #[test]
    fn toml_form_and_unknown_fields() {
        let text = &format!("{ESSENTIALS}[retry]\nmax_attempts = 3\n");
        let c: FajConfig = toml::from_str(text).unwrap();
        c.validate().unwrap();
        assert_eq!(c.retry.max_attempts, 3);
        assert_eq!(c.retry.max_elapsed_ms, default_retry().max_elapsed_ms);
        assert_eq!(c.client_secret, SecretSource::Env("FAJ_SECRET".into()));

        // A secret in clear is not a field: refused, not ignored.
        let clear = format!("{text}\nclient_secret_value = \"hunter2\"");
        assert!(toml::from_str::<FajConfig>(&clear).is_err());
        let inline = text.replace("{ env = \"FAJ_SECRET\" }", "\"hunter2\"");
        let e = toml::from_str::<FajConfig>(&inline).unwrap_err();
        // Hostile case 10: the secret was printed in the refusal.
        assert!(!e.message().contains("hunter2"), "{}", e.message());
        assert!(
            e.message()
                .contains("never be written in the configuration"),
            "{}",
            e.message()
        );
        let other = text.replace("{ env = \"FAJ_SECRET\" }", "{ value = \"hunter2\" }");
        let e = toml::from_str::<FajConfig>(&other).unwrap_err();
        assert!(!e.message().contains("hunter2"), "{}", e.message());
    }

    #[test]
    fn retry_tables_keep_the_former_names_and_the_faj_defaults() {
        let text = format!(
            "{ESSENTIALS}[retry]\ninitial_backoff_ms = 50\nmax_backoff_ms = 500\nbudget_ms = 9000\n"
        );
        let c: FajConfig = toml::from_str(&text).unwrap();
        c.validate().unwrap();
        let r = &c.retry;
        assert_eq!(
            (r.base_delay_ms, r.max_delay_ms, r.max_elapsed_ms),
            (50, 500, 9000)
        );
        assert_eq!(r.max_attempts, default_retry().max_attempts);
        let none: FajConfig = toml::from_str(ESSENTIALS).unwrap();
        assert_eq!(none.retry, default_retry());
        assert_eq!(none.rate_limit_per_s, 0.0, "no pacing unless asked");
    }

    #[test]
    fn validate_rules() {
        sample().validate().unwrap();
        let mut c = sample();
        c.base_url = "faj.example.fr".into();
        assert!(c.validate().is_err());
        let mut c = sample();
        c.base_url = "ftp://faj.example.fr".into();
        assert!(c.validate().is_err());
        let mut c = sample();
        c.client_id = " ".into();
        assert!(c.validate().is_err());
        let mut c = sample();
        c.client_secret = SecretSource::Env("NOT A NAME".into());
        assert!(c.validate().is_err());
        let mut c = sample();
        c.retry.max_attempts = 0;
        assert!(c.validate().is_err());
        let mut c = sample();
        c.request_timeout_ms = 0;
        let e = c.validate().unwrap_err();
        assert_eq!(e.kind(), passerelle_connector::ErrorKind::Permanent);
    }

    #[test]
    fn build_reads_secrets_and_never_shows_them() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let client_file = dir.path().join("client");
        let hook_file = dir.path().join("hook");
        std::fs::write(&client_file, "s3cr3t-client-value\n").unwrap();
        std::fs::write(&hook_file, "s3cr3t-hook-value").unwrap();
        let c = FajConfig::new(
            "http://127.0.0.1:9",
            "id",
            SecretSource::File(client_file),
            SecretSource::File(hook_file),
        );
        let built = c.build().unwrap();
        assert_eq!(built.webhook_secret.expose(), "s3cr3t-hook-value");
        let shown = format!("{built:?} {c:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");

        let missing = FajConfig::new(
            "http://127.0.0.1:9",
            "id",
            SecretSource::Env("PASSERELLE_FAJ_SURELY_UNSET_VAR".into()),
            SecretSource::Env("PASSERELLE_FAJ_SURELY_UNSET_VAR".into()),
        );
        let e = missing.build().unwrap_err();
        assert!(e.to_string().contains("PASSERELLE_FAJ_SURELY_UNSET_VAR"));
    }
}
