//! The time-stamping authority's client: POSTs the TimeStampReq of an anchor's
//! statement (`application/timestamp-query`) and keeps the token of a granted answer
//! that stamps that statement with the request's nonce (the DER is `passerelle_audit::tsa`'s).

use std::time::Duration;

use anyhow::{Context, bail};
use passerelle_audit::TsaCertificate;

use crate::config::AuditSection;

/// A configured TSA: where to ask, and the certificate its tokens are checked with.
#[derive(Debug, Clone)]
pub struct TsaClient {
    url: String,
    timeout: Duration,
    certificate: TsaCertificate,
}

impl TsaClient {
    /// The client of `[audit]`, `None` when no TSA is configured. The certificate is
    /// read now, so a wrong path is said before anything is anchored.
    pub fn from_config(section: &AuditSection) -> anyhow::Result<Option<Self>> {
        let Some(url) = &section.tsa_url else {
            return Ok(None);
        };
        let Some(path) = &section.tsa_certificate else {
            bail!("audit.tsa_url needs audit.tsa_certificate");
        };
        Ok(Some(Self {
            url: url.clone(),
            timeout: Duration::from_secs(section.tsa_timeout_s.max(1)),
            certificate: certificate(path)?,
        }))
    }

    pub fn certificate(&self) -> &TsaCertificate {
        &self.certificate
    }

    /// The token (hex DER) for `statement`, checked against the pinned certificate
    /// before it is kept: a TSA answering with another key is refused now, not at
    /// the next `audit verify`.
    pub async fn stamp(&self, statement: &[u8]) -> anyhow::Result<String> {
        let nonce: u64 = rand_nonce();
        let req = passerelle_audit::tsa::request(statement, nonce);
        let client = reqwest::Client::builder()
            .timeout(self.timeout)
            .build()
            .context("cannot build the TSA client")?;
        let resp = client
            .post(&self.url)
            .header("content-type", "application/timestamp-query")
            .body(req)
            .send()
            .await
            .context("the time-stamping authority cannot be reached")?;
        if !resp.status().is_success() {
            bail!(
                "the time-stamping authority answered HTTP {}",
                resp.status().as_u16()
            );
        }
        let body = resp
            .bytes()
            .await
            .context("cannot read the time-stamping authority's answer")?;
        let token = passerelle_audit::tsa::token_of_response(&body, statement, nonce)?;
        passerelle_audit::tsa::verify(&token, statement, &self.certificate)?;
        Ok(hex::encode(token))
    }
}

/// Reads a TSA certificate file (PEM).
pub fn certificate(path: &std::path::Path) -> anyhow::Result<TsaCertificate> {
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the TSA certificate {}", path.display()))?;
    TsaCertificate::from_pem(&pem)
        .with_context(|| format!("the TSA certificate {}", path.display()))
}

fn rand_nonce() -> u64 {
    // A nonce only needs to differ between requests; the time's nanoseconds and the
    // process id do, without another dependency.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ (u64::from(std::process::id()) << 32)
}

#[async_trait::async_trait]
impl passerelle_server::Stamper for TsaClient {
    async fn stamp(&self, statement: &[u8]) -> Result<String, String> {
        TsaClient::stamp(self, statement)
            .await
            .map_err(|e| format!("{e:#}"))
    }
}
