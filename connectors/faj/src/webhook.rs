//! The receiver of the platform's decision webhooks (flow `faj-decision`): an axum
//! `Router` the server mounts at `/hooks/faj`.
//!
//! It checks `X-FAJ-Signature: sha256=<hex HMAC-SHA256 of the raw body>` in constant
//! time and answers 401 to a missing or bad signature (reported to `WebhookAudit`);
//! it answers 200 only once the decision is handed on or known to be done already,
//! and 503 when the hand-on failed or is in progress elsewhere, so that the platform
//! sends it again.

use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tracing::{info, instrument, warn};

use crate::PEER;
use crate::intake::{Decision, DecisionIntake, DecisionVia, HandOnOutcome};
use crate::mapping::{PlatformDecision, statut_from_platform};
use crate::secret::Secret;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-faj-signature";

type HmacSha256 = Hmac<Sha256>;

/// Why a webhook was refused with 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    /// No `X-FAJ-Signature` header.
    MissingSignature,
    /// A header that is not `sha256=<hex>`.
    MalformedSignature,
    /// A well-formed signature that does not match the body.
    BadSignature,
}

/// A refused webhook, for the audit journal (no body content).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookRefusal {
    pub reason: RefusalReason,
    pub body_len: usize,
    pub received_at: DateTime<Utc>,
}

/// Told about every refused webhook, so that it can be audited.
#[async_trait]
pub trait WebhookAudit: Send + Sync {
    async fn refused(&self, refusal: WebhookRefusal);
}

/// An audit that only logs (for the simulator's own tests and demos).
#[derive(Debug, Default, Clone, Copy)]
pub struct LogAudit;

#[async_trait]
impl WebhookAudit for LogAudit {
    async fn refused(&self, refusal: WebhookRefusal) {
        warn!(peer = PEER, reason = ?refusal.reason, "webhook refused");
    }
}

/// The `X-FAJ-Signature` value of a body: `sha256=<hex>`.
pub fn sign(secret: &Secret, body: &[u8]) -> String {
    // HMAC takes keys of any length: this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes())
        .unwrap_or_else(|_| unreachable!("hmac accepts any key length"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a signature header against a body, in constant time.
pub fn verify_signature(
    secret: &Secret,
    header: Option<&[u8]>,
    body: &[u8],
) -> Result<(), RefusalReason> {
    let header = header.ok_or(RefusalReason::MissingSignature)?;
    let header = std::str::from_utf8(header).map_err(|_| RefusalReason::MalformedSignature)?;
    let hex_sig = header
        .trim()
        .strip_prefix("sha256=")
        .ok_or(RefusalReason::MalformedSignature)?;
    let sig = hex::decode(hex_sig).map_err(|_| RefusalReason::MalformedSignature)?;
    let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes())
        .map_err(|_| RefusalReason::BadSignature)?;
    mac.update(body);
    // verify_slice compares in constant time.
    mac.verify_slice(&sig)
        .map_err(|_| RefusalReason::BadSignature)
}

/// The webhook body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookBody {
    pub id_demande: String,
    pub statut: String,
    #[serde(default)]
    pub decision: Option<PlatformDecision>,
    pub evenement_id: String,
    #[serde(default)]
    pub horodatage: Option<DateTime<Utc>>,
}

/// What the receiver needs: the shared secret, the intake and the audit.
#[derive(Clone)]
pub struct WebhookState {
    secret: Secret,
    intake: DecisionIntake,
    audit: Arc<dyn WebhookAudit>,
}

impl std::fmt::Debug for WebhookState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookState").finish_non_exhaustive()
    }
}

impl WebhookState {
    pub fn new(secret: Secret, intake: DecisionIntake, audit: Arc<dyn WebhookAudit>) -> Self {
        Self {
            secret,
            intake,
            audit,
        }
    }

    /// The router, answering `POST /` (mount it with `Router::nest("/hooks/faj", …)`).
    pub fn router(self) -> Router {
        Router::new().route("/", post(receive)).with_state(self)
    }
}

fn answer(status: StatusCode, code: &str) -> Response {
    let mut resp = (status, axum::Json(serde_json::json!({ "resultat": code }))).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        );
    }
    resp
}

#[instrument(skip_all, fields(peer = PEER))]
async fn receive(State(st): State<WebhookState>, headers: HeaderMap, body: Bytes) -> Response {
    let header = headers.get(SIGNATURE_HEADER).map(|v| v.as_bytes());
    if let Err(reason) = verify_signature(&st.secret, header, &body) {
        warn!(?reason, body_len = body.len(), "webhook refused: signature");
        st.audit
            .refused(WebhookRefusal {
                reason,
                body_len: body.len(),
                received_at: Utc::now(),
            })
            .await;
        return answer(StatusCode::UNAUTHORIZED, "signature_invalide");
    }
    let Ok(hook) = serde_json::from_slice::<WebhookBody>(&body) else {
        warn!(
            body_len = body.len(),
            "signed webhook is not the expected JSON"
        );
        return answer(StatusCode::BAD_REQUEST, "corps_invalide");
    };
    let Ok(statut) = statut_from_platform(&hook.statut) else {
        warn!(id_demande = %hook.id_demande, "signed webhook has an unknown status");
        return answer(StatusCode::BAD_REQUEST, "statut_inconnu");
    };
    let decision = Decision {
        id_demande: hook.id_demande,
        statut,
        decision: hook.decision.unwrap_or_default(),
        evenement_id: Some(hook.evenement_id),
        horodatage: hook.horodatage,
        date_depot: None,
        aides: Vec::new(),
        via: DecisionVia::Webhook,
        instructeur: None,
        imilo_dossier: None,
    };
    let id = decision.id_demande.clone();
    match st.intake.hand_on(decision).await {
        Ok(HandOnOutcome::HandedOn) => {
            info!(id_demande = %id, "decision received");
            answer(StatusCode::OK, "recu")
        }
        Ok(HandOnOutcome::AlreadyDone) => {
            info!(id_demande = %id, "repeated decision ignored");
            answer(StatusCode::OK, "deja_recu")
        }
        Ok(HandOnOutcome::Busy) => answer(StatusCode::SERVICE_UNAVAILABLE, "en_cours"),
        Ok(HandOnOutcome::Failed) => answer(StatusCode::SERVICE_UNAVAILABLE, "reessayer"),
        Err(_) => {
            warn!(id_demande = %id, "seen store failed");
            answer(StatusCode::SERVICE_UNAVAILABLE, "reessayer")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures() {
        let k = Secret::new("sim-webhook");
        let body = br#"{"id_demande":"X"}"#;
        let sig = sign(&k, body);
        assert!(sig.starts_with("sha256="));
        assert_eq!(sig.len(), 7 + 64);
        assert_eq!(verify_signature(&k, Some(sig.as_bytes()), body), Ok(()));
        assert_eq!(
            verify_signature(&k, None, body),
            Err(RefusalReason::MissingSignature)
        );
        assert_eq!(
            verify_signature(&k, Some(b"md5=abc"), body),
            Err(RefusalReason::MalformedSignature)
        );
        assert_eq!(
            verify_signature(&k, Some(b"sha256=zz"), body),
            Err(RefusalReason::MalformedSignature)
        );
        assert_eq!(
            verify_signature(&k, Some(sig.as_bytes()), br#"{"id_demande":"Y"}"#),
            Err(RefusalReason::BadSignature)
        );
        let other = Secret::new("other");
        assert_eq!(
            verify_signature(&other, Some(sig.as_bytes()), body),
            Err(RefusalReason::BadSignature)
        );
        // A truncated signature is a mismatch, not a panic.
        assert_eq!(
            verify_signature(&k, Some(&sig.as_bytes()[..21]), body),
            Err(RefusalReason::BadSignature)
        );
    }
}
