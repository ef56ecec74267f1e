//! The identity review pages' desk (`passerelle_server::ReviewDesk`) over this hub's
//! engine: list, open and settle held reviews; and "Mes envois"' replay of a dead
//! letter through the transport.

use std::sync::Arc;

use async_trait::async_trait;
use passerelle_hub::{Engine, HeldReview, OpenedReview, Verdict};
use passerelle_server::web::DeskError;
use uuid::Uuid;

/// The engine, as the review pages reach it.
#[derive(Clone)]
pub struct ReviewDesk(pub Arc<Engine>);

impl std::fmt::Debug for ReviewDesk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReviewDesk")
    }
}

fn unavailable(e: impl std::fmt::Display) -> DeskError {
    DeskError::Unavailable(e.to_string())
}

#[async_trait]
impl passerelle_server::web::ReviewDesk for ReviewDesk {
    async fn list(&self, sender: &str) -> Result<Vec<HeldReview>, DeskError> {
        let store = self.0.reviews().await.map_err(unavailable)?;
        store
            .expire(chrono::Utc::now())
            .await
            .map_err(unavailable)?;
        store.open_for(sender).await.map_err(unavailable)
    }

    async fn open(&self, id: Uuid) -> Result<Option<OpenedReview>, DeskError> {
        self.0.open_review(&id).await.map_err(unavailable)
    }

    async fn settle(&self, id: Uuid, verdict: Verdict) -> Result<Option<u64>, DeskError> {
        Ok(self
            .0
            .settle_review(&id, verdict)
            .await
            .map_err(unavailable)?
            .map(|s| s.sent))
    }
}

/// The transport's dead letters, as "Mes envois" replays them.
#[derive(Clone)]
pub struct ReplayDesk(pub Arc<dyn passerelle_transport::Transport>);

impl std::fmt::Debug for ReplayDesk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReplayDesk")
    }
}

#[async_trait]
impl passerelle_server::web::ReplayDesk for ReplayDesk {
    async fn replay(&self, recipient: &str, transfer_id: Uuid) -> Result<bool, DeskError> {
        let letters = self.0.dead_letters(recipient).await.map_err(unavailable)?;
        let Some(l) = letters
            .into_iter()
            .find(|l| l.envelope.header.transfer_id == transfer_id)
        else {
            return Ok(false);
        };
        self.0.replay(&l.id).await.map_err(unavailable)?;
        Ok(true)
    }
}
