//! Configuration of the RabbitMQ transport: URL, TLS, topology names and limits.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::{Result, TransportError, validate_name};

/// TLS options for `amqps://` URLs. Server certificates are checked against the
/// system roots, plus `ca_file` when given.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Extra CA certificates (PEM) to trust, e.g. a private PKI.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain (PEM) for mutual TLS; needs `client_key_file`.
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// Client private key (PKCS#8 PEM).
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
}

/// Configuration of the RabbitMQ transport.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpConfig {
    /// `amqp://user:pass@host:port/vhost` or `amqps://…` (the vhost URL-encoded: `%2f`).
    pub url: String,
    /// Further nodes of the same RabbitMQ cluster, in the same form. The transport
    /// connects to `url` first; when the node it is connected to dies or cannot be
    /// reached it tries the next one, round the list, so a hub survives the loss of
    /// any node as long as the cluster keeps a majority. A node URL without user and
    /// password (`amqps://rabbit-2:5671/%2f`) uses `url`'s, so that the password is
    /// given once (`PASSERELLE_AMQP_URL` replaces `url`).
    #[serde(default)]
    pub urls: Vec<String>,
    /// Declare recipient queues with RabbitMQ's single active consumer
    /// (`x-single-active-consumer`): of all the hub instances consuming a recipient,
    /// one at a time receives, and another takes over when its connection dies. A queue
    /// declared before without it is used as it is (several consumers share it) with a
    /// warning; README says how to migrate it. `false` declares new queues without it.
    #[serde(default = "default_true")]
    pub single_active_consumer: bool,
    /// TLS options, used with `amqps://`.
    #[serde(default)]
    pub tls: TlsConfig,
    /// Prefix of every exchange and queue name (lets several deployments or tests share
    /// a broker).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Recipients whose queues are declared at start.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// A message is handed to consumers at most this many times (`x-delivery-limit`
    /// is set to one less, since RabbitMQ counts returns, not deliveries).
    #[serde(default = "default_max_deliveries")]
    pub max_deliveries: u32,
    /// Retry delays available, in milliseconds: one TTL queue each. A requested delay
    /// is rounded up to the next level (or down to the largest).
    #[serde(default = "default_retry_delays")]
    pub retry_delays_ms: Vec<u64>,
    /// Unacked deliveries a consumer may hold (basic.qos).
    #[serde(default = "default_prefetch")]
    pub prefetch: u16,
    /// Channels used for publishing, round robin (each with confirms).
    #[serde(default = "default_publish_channels")]
    pub publish_channels: usize,
    /// How long an operation keeps trying to reconnect before failing (retryable).
    #[serde(default = "default_reconnect_ms")]
    pub reconnect_timeout_ms: u64,
    /// Longest pause between two reconnection attempts.
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
}

fn default_true() -> bool {
    true
}
fn default_prefix() -> String {
    "passerelle".into()
}
fn default_max_deliveries() -> u32 {
    5
}
fn default_retry_delays() -> Vec<u64> {
    vec![1_000, 10_000, 60_000, 600_000, 3_600_000]
}
fn default_prefetch() -> u16 {
    100
}
fn default_publish_channels() -> usize {
    4
}
fn default_reconnect_ms() -> u64 {
    30_000
}
fn default_backoff_max_ms() -> u64 {
    5_000
}

impl AmqpConfig {
    /// A configuration with defaults for the given URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            urls: Vec::new(),
            single_active_consumer: true,
            tls: TlsConfig::default(),
            prefix: default_prefix(),
            recipients: Vec::new(),
            max_deliveries: default_max_deliveries(),
            retry_delays_ms: default_retry_delays(),
            prefetch: default_prefetch(),
            publish_channels: default_publish_channels(),
            reconnect_timeout_ms: default_reconnect_ms(),
            backoff_max_ms: default_backoff_max_ms(),
        }
    }

    /// Checks the values without any I/O.
    pub fn validate(&self) -> Result<()> {
        for url in self.nodes() {
            if !(url.starts_with("amqp://") || url.starts_with("amqps://")) {
                return Err(TransportError::invalid(
                    "url",
                    "must start with amqp:// or amqps://",
                ));
            }
            url.parse::<lapin::uri::AMQPUri>()
                .map_err(|e| TransportError::invalid("url", format!("not an amqp uri: {e}")))?;
        }
        let schemes: std::collections::BTreeSet<bool> =
            self.nodes().map(|u| u.starts_with("amqps://")).collect();
        if schemes.len() > 1 {
            return Err(TransportError::invalid(
                "urls",
                "every node of a cluster is reached the same way: all amqp:// or all amqps://",
            ));
        }
        validate_name("prefix", &self.prefix)?;
        for r in &self.recipients {
            validate_name("recipient", r)?;
        }
        if self.max_deliveries == 0 {
            return Err(TransportError::invalid(
                "max_deliveries",
                "must be at least 1",
            ));
        }
        if self.retry_delays_ms.is_empty() || self.retry_delays_ms.contains(&0) {
            return Err(TransportError::invalid(
                "retry_delays_ms",
                "needs at least one delay, each at least 1 ms",
            ));
        }
        if self.prefetch == 0 || self.publish_channels == 0 {
            return Err(TransportError::invalid(
                "prefetch, publish_channels",
                "must be at least 1",
            ));
        }
        if self.tls.client_cert_file.is_some() != self.tls.client_key_file.is_some() {
            return Err(TransportError::invalid(
                "tls",
                "client_cert_file and client_key_file go together",
            ));
        }
        Ok(())
    }

    /// The retry level used for a requested delay: the smallest level at least as long,
    /// else the largest.
    #[must_use]
    pub fn retry_level(&self, delay: Duration) -> u64 {
        let want = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        let mut levels = self.retry_delays_ms.clone();
        levels.sort_unstable();
        levels
            .iter()
            .copied()
            .find(|l| *l >= want)
            .or_else(|| levels.last().copied())
            .unwrap_or(1_000)
    }

    /// Every node's URL: `url`, then `urls`, as written.
    pub fn nodes(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.url.as_str()).chain(self.urls.iter().map(String::as_str))
    }

    /// The URL to connect to node `i` of [`Self::nodes`], with `url`'s credentials when
    /// the node's names none.
    pub(crate) fn node_url(&self, i: usize) -> String {
        let node = self.nodes().nth(i).unwrap_or(self.url.as_str());
        let userinfo = |u: &str| {
            let (_, rest) = u.split_once("://")?;
            let authority = rest.split('/').next().unwrap_or(rest);
            authority.rsplit_once('@').map(|(info, _)| info.to_owned())
        };
        match (userinfo(node), userinfo(&self.url), node.split_once("://")) {
            (None, Some(info), Some((scheme, rest))) => format!("{scheme}://{info}@{rest}"),
            _ => node.to_owned(),
        }
    }

    pub(crate) fn reconnect_timeout(&self) -> Duration {
        Duration::from_millis(self.reconnect_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_refused() {
        let r: std::result::Result<AmqpConfig, _> =
            serde_json::from_str(r#"{"url":"amqp://localhost","prefetsh":3}"#);
        assert!(r.is_err());
        let c: AmqpConfig = serde_json::from_str(r#"{"url":"amqp://localhost"}"#).unwrap();
        c.validate().unwrap();
    }

    #[test]
    fn validate_names_the_rule() {
        let mut c = AmqpConfig::new("http://x");
        assert!(c.validate().unwrap_err().to_string().contains("amqp://"));
        c.url = "amqps://u:p@host:5671/%2f".into();
        c.validate().unwrap();
        c.tls.client_cert_file = Some("c.pem".into());
        assert!(c.validate().is_err());
    }

    #[test]
    fn cluster_nodes_follow_the_url_rules() {
        let c: AmqpConfig = serde_json::from_str(
            r#"{"url":"amqp://a:5672/%2f","urls":["amqp://b:5672/%2f","amqp://c:5672/%2f"]}"#,
        )
        .unwrap();
        c.validate().unwrap();
        assert!(c.single_active_consumer, "on by default");
        assert_eq!(c.nodes().count(), 3);
        let mut bad = c.clone();
        bad.urls.push("http://d".into());
        assert!(bad.validate().is_err());
        let mut mixed = c;
        mixed.urls.push("amqps://d:5671/%2f".into());
        assert!(
            mixed
                .validate()
                .unwrap_err()
                .to_string()
                .contains("same way")
        );
        let mut c = AmqpConfig::new("amqp://u:secret@a:5672/%2f");
        c.urls = vec!["amqp://b:5672/%2f".into(), "amqp://v:w@c:5672/%2f".into()];
        assert_eq!(c.node_url(0), "amqp://u:secret@a:5672/%2f");
        assert_eq!(
            c.node_url(1),
            "amqp://u:secret@b:5672/%2f",
            "url's credentials"
        );
        assert_eq!(c.node_url(2), "amqp://v:w@c:5672/%2f", "its own");
    }

    #[test]
    fn retry_levels_round_up() {
        let mut c = AmqpConfig::new("amqp://localhost");
        c.retry_delays_ms = vec![10_000, 1_000];
        assert_eq!(c.retry_level(Duration::from_millis(1)), 1_000);
        assert_eq!(c.retry_level(Duration::from_millis(1_001)), 10_000);
        assert_eq!(c.retry_level(Duration::from_secs(99)), 10_000);
    }
}
