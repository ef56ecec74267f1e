//! Identity reviews through the engine: a record the matcher could not place is held,
//! sealed to the hub's review key, with its transfer's parties; a reviewer's verdict
//! sends it on as any transfer (policy, seal, publish, journal), as the candidate it is
//! ("même personne") or as a new person ("personnes différentes").

use std::collections::BTreeMap;

use chrono::Utc;
use passerelle_model::Jeune;
use passerelle_policy::{OrgKind, System};
use passerelle_transport::Header;
use serde::{Deserialize, Serialize};
use tracing::debug;
use uuid::Uuid;

use super::{Engine, EngineError, Org, Result, Routed};
use crate::report::SendSummary;
use crate::review::{HeldReview, REVIEW_DAYS, REVIEW_ORG, ReviewStore};
use crate::seal::SealError;

/// What is sealed: the record and where it was going.
#[derive(Serialize, Deserialize)]
struct Held {
    flow: String,
    from: (OrgKind, String, System),
    to: (OrgKind, String, System),
    known_to_recipient: bool,
    record: Jeune,
}

/// The header the held record is sealed under (bound as associated data).
fn review_header(id: &Uuid, sender: &str) -> Header {
    Header {
        transfer_id: *id,
        flow: "identity-review".to_owned(),
        sender: sender.to_owned(),
        recipient: REVIEW_ORG.to_owned(),
        ordering_key: None,
        headers: BTreeMap::new(),
    }
}

/// A reviewer's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The record is this candidate.
    Same(Uuid),
    /// The record is none of the candidates: a new person.
    Different,
}

/// A held review opened: what it holds.
#[derive(Debug, Clone)]
pub struct OpenedReview {
    pub review: HeldReview,
    /// The held record, while the review is open.
    pub record: Option<Jeune>,
}

impl Engine {
    /// The held reviews' store.
    pub async fn reviews(&self) -> Result<ReviewStore> {
        Ok(ReviewStore::open(&self.state).await?)
    }

    /// Holds a record sent to review, sealed; without a review key the review is only
    /// counted (the source sends the record again next time).
    pub(super) async fn hold_for_review(
        &self,
        flow_id: &str,
        reason: &str,
        candidates: Vec<Uuid>,
        routed: Routed,
    ) -> Result<()> {
        let id = Uuid::new_v4();
        let held = Held {
            flow: flow_id.to_owned(),
            from: (
                routed.from.kind,
                routed.from.org.clone(),
                routed.from.system,
            ),
            to: (routed.to.kind, routed.to.org.clone(), routed.to.system),
            known_to_recipient: routed.known_to_recipient,
            record: routed.record,
        };
        let plain = zeroize::Zeroizing::new(serde_json::to_vec(&held).expect("record serialises"));
        let sealed = match self
            .sealer
            .seal(&review_header(&id, &routed.from.org), &plain)
        {
            Ok(s) => s,
            Err(e) => {
                debug!("record not held for review (no review key): {e}");
                return Ok(());
            }
        };
        let now = Utc::now();
        let review = HeldReview {
            id,
            flow: flow_id.to_owned(),
            reason: reason.to_owned(),
            candidates,
            sender: routed.from.org,
            recipient: routed.to.org,
            created_at: now,
            expires_at: now + chrono::Duration::days(REVIEW_DAYS),
            outcome: None,
        };
        self.reviews().await?.hold(&review, &sealed).await?;
        Ok(())
    }

    /// Opens a held review (the caller journals the opening).
    pub async fn open_review(&self, id: &Uuid) -> Result<Option<OpenedReview>> {
        let store = self.reviews().await?;
        store.expire(Utc::now()).await?;
        let Some((review, sealed)) = store.get(id).await? else {
            return Ok(None);
        };
        let record = match sealed {
            Some(s) => Some(self.open_held(&review, &s)?.record),
            None => None,
        };
        Ok(Some(OpenedReview { review, record }))
    }

    fn open_held(&self, review: &HeldReview, sealed: &[u8]) -> Result<Held> {
        let plain = self
            .sealer
            .open(&review_header(&review.id, &review.sender), sealed)?;
        serde_json::from_slice(&plain)
            .map_err(|_| EngineError::Seal(SealError("a held review is not readable".into())))
    }

    /// Settles a review: the held record goes on as the candidate, or as a new person,
    /// and the sealed copy is erased. `None` when the review is unknown, settled or
    /// expired; an error when `Same` names someone who is not a candidate.
    pub async fn settle_review(&self, id: &Uuid, verdict: Verdict) -> Result<Option<SendSummary>> {
        let store = self.reviews().await?;
        store.expire(Utc::now()).await?;
        let Some((review, Some(sealed))) = store.get(id).await? else {
            return Ok(None);
        };
        let (hub_id, outcome) = match verdict {
            Verdict::Same(h) if review.candidates.contains(&h) => (h, format!("meme:{h}")),
            Verdict::Same(_) => {
                return Err(EngineError::Review(
                    "the person chosen is not a candidate of this review".into(),
                ));
            }
            Verdict::Different => {
                let h = Uuid::new_v4();
                (h, format!("differente:{h}"))
            }
        };
        let held = self.open_held(&review, &sealed)?;
        let routed = Routed {
            from: Org::new(held.from.0, held.from.1, held.from.2),
            to: Org::new(held.to.0, held.to.1, held.to.2),
            record: held.record,
            known_to_recipient: held.known_to_recipient,
        };
        // Settled first: a verdict given twice at once sends the record once.
        if !store.settle(id, &outcome).await? {
            return Ok(None);
        }
        let prepared = self
            .prepare_forced(&held.flow, vec![routed], &[Some(hub_id)])
            .await?;
        Ok(Some(self.publish(prepared).await?))
    }
}
