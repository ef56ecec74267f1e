//! `FajConfig`: where the platform is, where its secrets come from, timeouts and the
//! retry budget. `validate` is pure; `build` reads the secrets and makes the client.

use std::path::PathBuf;
use std::time::Duration;

use passerelle_connector::ConnectorError;
use serde::{Deserialize, Serialize};

use crate::client::FajClient;
use crate::secret::Secret;

/// Where a secret comes from. The secret itself is never written in the config file.
///
/// TOML: `client_secret = { env = "FAJ_CLIENT_SECRET" }` or
/// `client_secret = { file = "/run/secrets/faj_client" }`.
///
/// A secret written in clear (`client_secret = "…"`) is refused with a message that
/// never holds it: serde's own would quote the string it did not expect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretSource {
    /// An environment variable's name.
    Env(String),
    /// A file holding the secret (surrounding whitespace is trimmed).
    File(PathBuf),
}

impl<'de> Deserialize<'de> for SecretSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        const HOW: &str = "a secret must come from { env = \"NAME\" } or { file = \"/path\" }, never be written in the configuration";
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = SecretSource;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("{ env = \"NAME\" } or { file = \"/path\" }")
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Err(E::custom(HOW))
            }
            fn visit_string<E: serde::de::Error>(self, _: String) -> Result<Self::Value, E> {
                Err(E::custom(HOW))
            }
            fn visit_bytes<E: serde::de::Error>(self, _: &[u8]) -> Result<Self::Value, E> {
                Err(E::custom(HOW))
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Err(E::custom(HOW))
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Err(E::custom(HOW))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = None;
                while let Some(key) = map.next_key::<String>()? {
                    if out.is_some() {
                        return Err(serde::de::Error::custom(
                            "a secret names one source: env or file",
                        ));
                    }
                    out = Some(match key.as_str() {
                        "env" => SecretSource::Env(map.next_value()?),
                        "file" => SecretSource::File(map.next_value()?),
                        _ => {
                            // The value is not read back into the message.
                            let _ = map.next_value::<serde::de::IgnoredAny>()?;
                            return Err(serde::de::Error::custom(HOW));
                        }
                    });
                }
                out.ok_or_else(|| serde::de::Error::custom(HOW))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl SecretSource {
    fn validate(&self, what: &str) -> Result<(), ConnectorError> {
        match self {
            Self::Env(name) => {
                let ok = !name.is_empty()
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    && !name.as_bytes()[0].is_ascii_digit();
                if !ok {
                    return Err(ConnectorError::Config(format!(
                        "{what}: env must name an environment variable (letters, digits, _)"
                    )));
                }
            }
            Self::File(path) => {
                if path.as_os_str().is_empty() {
                    return Err(ConnectorError::Config(format!(
                        "{what}: file must not be empty"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Reads the secret. Errors name the variable or file, never the value.
    pub fn resolve(&self, what: &str) -> Result<Secret, ConnectorError> {
        let value = match self {
            Self::Env(name) => std::env::var(name).map_err(|_| {
                ConnectorError::Config(format!(
                    "{what}: environment variable {name} is not set or not unicode"
                ))
            })?,
            Self::File(path) => std::fs::read_to_string(path)
                .map_err(|e| ConnectorError::io(format!("{what} file {}", path.display()), e))?,
        };
        let value = value.trim();
        if value.is_empty() {
            return Err(ConnectorError::Config(format!(
                "{what}: the secret is empty"
            )));
        }
        Ok(Secret::new(value))
    }
}

/// Retries of one call on 503, 429, 5xx, timeouts and connection errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Backoff before the second attempt; it doubles up to `max_backoff_ms`.
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// No new attempt starts once this much time went by since the first.
    pub budget_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff_ms: 200,
            max_backoff_ms: 5_000,
            budget_ms: 30_000,
        }
    }
}

/// The FAJ connector's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    #[serde(default)]
    pub retry: RetryConfig,
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
            retry: RetryConfig::default(),
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
        let r = &self.retry;
        if r.max_attempts == 0 || r.max_attempts > 20 {
            return Err(ConnectorError::Config(
                "retry.max_attempts: must be 1 to 20".into(),
            ));
        }
        if r.initial_backoff_ms == 0 || r.max_backoff_ms < r.initial_backoff_ms {
            return Err(ConnectorError::Config(
                "retry: initial_backoff_ms must be above 0 and at most max_backoff_ms".into(),
            ));
        }
        if r.budget_ms == 0 {
            return Err(ConnectorError::Config(
                "retry.budget_ms: must be above 0".into(),
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

    #[test]
    fn toml_form_and_unknown_fields() {
        let text = r#"
            base_url = "https://faj.example.fr"
            client_id = "ml-59"
            client_secret = { env = "FAJ_SECRET" }
            webhook_secret = { file = "/run/secrets/faj" }
            [retry]
            max_attempts = 3
        "#;
        let c: FajConfig = toml::from_str(text).unwrap();
        c.validate().unwrap();
        assert_eq!(c.retry.max_attempts, 3);
        assert_eq!(c.retry.budget_ms, RetryConfig::default().budget_ms);
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
