//! The nightly reconciliation: reads every request modified since a cursor through the
//! paginated `modifie_depuis` listing and hands each decided one to the same
//! `DecisionIntake` as the webhooks, so that a lost webhook is caught and a received
//! one is not handed on twice.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use passerelle_connector::ConnectorError;
use serde::Serialize;
use tracing::{info, instrument, warn};

use crate::client::FajClient;
use crate::intake::{Decision, DecisionIntake, DecisionVia, HandOnOutcome, is_decided};
use crate::mapping::statut_from_platform;
use crate::{PAGE_SIZE, PEER};

/// The platform's clock may differ from ours: the next cursor starts this much before
/// the run did. Re-reading a few requests costs nothing, the intake drops repeats.
pub const CURSOR_OVERLAP_S: i64 = 300;

/// No listing is longer than this many pages; past it the platform is looping.
const MAX_PAGES: u32 = 100_000;

/// What one reconciliation run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    pub pages: u32,
    /// Requests listed (each counted once even if a page boundary shifted).
    pub listed: u64,
    /// Listed requests with a decision.
    pub decided: u64,
    pub handed_on: u64,
    pub already_done: u64,
    /// Being handed on by a webhook at the same moment.
    pub busy: u64,
    /// The handler failed: the next run (or a webhook retry) will try again.
    pub failed: u64,
    /// Requests whose status or aids could not be read.
    pub unreadable: u64,
    /// The cursor to give the next run, when this one left nothing behind.
    pub next_since: Option<DateTime<Utc>>,
}

/// Lists the requests modified since `since`, page by page (100 a page), and hands
/// every decided one to `intake`. The listing is ordered by request id on the
/// platform, so a request modified during the run can only appear twice, never be
/// skipped; repeats within a run are dropped here.
#[instrument(skip(client, intake), fields(peer = PEER))]
pub async fn reconcile(
    client: &FajClient,
    intake: &DecisionIntake,
    since: DateTime<Utc>,
) -> Result<ReconcileReport, ConnectorError> {
    let started = Utc::now();
    let mut report = ReconcileReport::default();
    let mut seen_ids: HashSet<String> = HashSet::new();
    let mut page = 1u32;
    loop {
        let listing = client.list_modifiees(since, page).await?;
        report.pages += 1;
        let n = listing.demandes.len();
        for d in listing.demandes {
            if !seen_ids.insert(d.id_demande.clone()) {
                continue;
            }
            report.listed += 1;
            let Ok(statut) = statut_from_platform(&d.statut) else {
                warn!(id_demande = %d.id_demande, "listed request has an unknown status");
                report.unreadable += 1;
                continue;
            };
            if !is_decided(statut) {
                continue;
            }
            report.decided += 1;
            let mut decision = Decision {
                id_demande: d.id_demande.clone(),
                statut,
                decision: d.decision.clone().unwrap_or_default(),
                evenement_id: None,
                horodatage: d.modifie_le,
                date_depot: d.date_depot,
                aides: d.aides.clone(),
                via: DecisionVia::Reconciliation,
                instructeur: None,
                imilo_dossier: None,
            };
            decision.set_origin(&d);
            match intake.hand_on(decision).await {
                Ok(HandOnOutcome::HandedOn) => report.handed_on += 1,
                Ok(HandOnOutcome::AlreadyDone) => report.already_done += 1,
                Ok(HandOnOutcome::Busy) => report.busy += 1,
                Ok(HandOnOutcome::Failed) => report.failed += 1,
                Err(e) => {
                    return Err(ConnectorError::Unavailable {
                        peer: "faj seen store".into(),
                        reason: e.to_string(),
                        retry_after: None,
                    });
                }
            }
        }
        let per_page = listing.par_page.unwrap_or(PAGE_SIZE).max(1);
        let last_by_total = listing
            .total
            .is_some_and(|t| u64::from(page) * per_page as u64 >= t);
        if n < per_page || last_by_total {
            break;
        }
        page += 1;
        if page > MAX_PAGES {
            return Err(ConnectorError::Protocol {
                peer: PEER.into(),
                reason: format!("modifie_depuis listing went past {MAX_PAGES} pages"),
            });
        }
    }
    if report.busy == 0 && report.failed == 0 {
        report.next_since = Some(started - Duration::seconds(CURSOR_OVERLAP_S));
    }
    info!(
        pages = report.pages,
        listed = report.listed,
        handed_on = report.handed_on,
        already_done = report.already_done,
        failed = report.failed,
        "reconciliation done"
    );
    Ok(report)
}
