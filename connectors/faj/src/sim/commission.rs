//! The simulated commission: decides each request a delay after it was filed,
//! deterministically from the seed and the request (its Idempotency-Key and body),
//! then pushes the signed decision webhook, subject to the faults (loss, duplicate,
//! delay, which also reorders). A copy answered with anything but 2xx is sent again
//! with backoff, as a platform does, up to `webhook_attempts` times.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use passerelle_model::{Cents, Date, FajStatut};
use serde_json::json;
use sha2::{Digest, Sha256};
use tracing::debug;

use super::{Sim, bump};
use crate::mapping::{PlatformDecision, statut_to_platform};
use crate::webhook::sign;
use passerelle_connector::http::Secret;

const MOTIFS_REFUS: &[&str] = &[
    "ressources supérieures au barème départemental",
    "projet insuffisamment défini",
    "aide déjà accordée pour le même objet dans l'année",
    "pièces justificatives manquantes",
];

const MOTIF_AJOURNEMENT: &str = "dossier à compléter, réexamen à la prochaine commission";

/// What the commission decides about one request.
pub fn decide(
    seed: u64,
    key: &str,
    body: &[u8],
    requested: Cents,
) -> (FajStatut, PlatformDecision) {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update((key.len() as u64).to_le_bytes());
    h.update(key.as_bytes());
    h.update(body);
    let digest = h.finalize();
    let word = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&digest[i * 8..i * 8 + 8]);
        u64::from_le_bytes(b)
    };
    let today = Date::from(Utc::now().date_naive());
    let roll = word(0) % 100;
    if roll < 75 {
        // Most requests get what they asked; one in four gets 50 to 99 % of it.
        let montant = if word(1) % 4 == 0 {
            let share = 50 + word(2) % 50;
            ((requested * share / 100) / 100 * 100).max(100.min(requested))
        } else {
            requested
        };
        (
            FajStatut::Accordee,
            PlatformDecision {
                date_commission: Some(today),
                montant_accorde: Some(montant),
                motif: None,
            },
        )
    } else if roll < 92 {
        let motif = MOTIFS_REFUS[(word(3) % MOTIFS_REFUS.len() as u64) as usize];
        (
            FajStatut::Refusee,
            PlatformDecision {
                date_commission: Some(today),
                montant_accorde: Some(0),
                motif: Some(motif.to_owned()),
            },
        )
    } else {
        (
            FajStatut::Ajournee,
            PlatformDecision {
                date_commission: Some(today),
                montant_accorde: None,
                motif: Some(MOTIF_AJOURNEMENT.to_owned()),
            },
        )
    }
}

/// Schedules the commission of one request.
pub(crate) fn schedule(sim: &Arc<Sim>, id: String, key: String, body: Bytes, delay: Duration) {
    let s = sim.clone();
    sim.tasks.spawn(async move {
        tokio::select! {
            () = s.cancel.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
        let Some((statut, decision)) = apply(&s, &id, &key, &body) else {
            return;
        };
        bump(&s.stats.decisions);
        debug!(id_demande = %id, statut = statut.as_str(), "commission decided");
        fire(&s, &id, statut, &decision);
    });
}

/// Records the decision on the stored request.
fn apply(sim: &Sim, id: &str, key: &str, body: &[u8]) -> Option<(FajStatut, PlatformDecision)> {
    let mut store = sim.store();
    let stored = store.demandes.get_mut(id)?;
    let requested: Cents = stored.aides.iter().filter_map(|a| a.montant_demande).sum();
    let (statut, decision) = decide(sim.cfg.seed, key, body, requested);
    stored.statut = statut;
    stored.decision = Some(decision.clone());
    stored.modifie_le = Utc::now();
    Some((statut, decision))
}

/// Sends the decision webhook, subject to the faults.
fn fire(sim: &Arc<Sim>, id: &str, statut: FajStatut, decision: &PlatformDecision) {
    let Some(url) = sim.cfg.webhook_url.clone() else {
        return;
    };
    let faults = sim.faults();
    if sim.chance(faults.webhook_loss) {
        bump(&sim.stats.webhooks_lost);
        return;
    }
    let copies = if sim.chance(faults.webhook_duplicate) {
        bump(&sim.stats.webhooks_duplicated);
        2
    } else {
        1
    };
    let body = json!({
        "id_demande": id,
        "statut": statut_to_platform(statut),
        "decision": decision,
        "evenement_id": format!("EVT-{id}-{}", statut.as_str()),
        "horodatage": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    let body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
    let signature = sign(&Secret::new(sim.cfg.webhook_secret.clone()), &body);
    for _ in 0..copies {
        let delay = Duration::from_millis(sim.random_below(faults.webhook_delay_ms + 1));
        let s = sim.clone();
        let (url, body, signature) = (url.clone(), body.clone(), signature.clone());
        sim.tasks.spawn(async move {
            deliver(&s, &url, body, &signature, delay).await;
        });
    }
}

async fn deliver(sim: &Sim, url: &str, body: Bytes, signature: &str, delay: Duration) {
    let mut wait = delay;
    for attempt in 1..=sim.cfg.webhook_attempts.max(1) {
        tokio::select! {
            () = sim.cancel.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        bump(&sim.stats.webhook_attempts);
        let sent = sim
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("x-faj-signature", signature)
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {
                bump(&sim.stats.webhooks_delivered);
                return;
            }
            _ => {
                bump(&sim.stats.webhook_failures);
                wait = Duration::from_millis(100 * (1 << attempt.min(6)));
            }
        }
    }
    bump(&sim.stats.webhooks_abandoned);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_mostly_granted() {
        let a = decide(7, "t-1", b"{}", 30_000);
        assert_eq!(a, decide(7, "t-1", b"{}", 30_000));
        let mut counts = [0usize; 3];
        for i in 0..1000 {
            let (s, d) = decide(7, &format!("t-{i}"), b"{\"x\":1}", 30_000);
            match s {
                FajStatut::Accordee => {
                    counts[0] += 1;
                    let m = d.montant_accorde.unwrap();
                    assert!((100..=30_000).contains(&m));
                }
                FajStatut::Refusee => {
                    counts[1] += 1;
                    assert!(d.motif.is_some());
                }
                FajStatut::Ajournee => counts[2] += 1,
                _ => panic!("not a decision"),
            }
        }
        assert!(
            counts[0] > 650 && counts[1] > 100 && counts[2] > 30,
            "{counts:?}"
        );
        // Another seed decides otherwise for some requests.
        let differs = (0..100).any(|i| {
            decide(7, &format!("t-{i}"), b"{}", 30_000).0
                != decide(8, &format!("t-{i}"), b"{}", 30_000).0
        });
        assert!(differs);
    }
}
