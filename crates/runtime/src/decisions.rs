//! A FAJ platform's decisions as a night's `Source`: the requests decided since the
//! stored cursor, listed through the platform's reconciliation, each a record under
//! `faj-decision` to the Mission Locale that filed it. The cursor advances once the
//! night went through (the hub stores it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use passerelle_connector::{AckToken, ConnectorError, RecordIssue, Source, SourceItem};
use passerelle_faj::{
    Decision, DecisionHandler, DecisionIntake, FajClient, HandlerError, MemorySeenStore,
};
use passerelle_hub::{Cursor, Org, Route};
use passerelle_policy::{OrgKind, System};

/// Which ML filed each request (the record does not say: see `Decision::route`).
type Filers = Arc<Mutex<HashMap<String, String>>>;

/// The decisions of one platform since a cursor, read once a night.
pub struct FajDecisions {
    client: FajClient,
    platform: String,
    since: DateTime<Utc>,
    cursor: Cursor,
    filers: Filers,
    read: bool,
}

impl std::fmt::Debug for FajDecisions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FajDecisions")
            .field("platform", &self.platform)
            .finish_non_exhaustive()
    }
}

/// Keeps the decisions the reconciliation hands on.
#[derive(Default)]
struct Collect(Mutex<Vec<Decision>>);

#[async_trait]
impl DecisionHandler for Collect {
    async fn handle(&self, decision: Decision) -> Result<(), HandlerError> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(decision);
        Ok(())
    }
}

impl FajDecisions {
    /// The decisions of `platform` since `since`; `cursor` receives where the next
    /// night starts.
    pub fn new(
        client: FajClient,
        platform: impl Into<String>,
        since: DateTime<Utc>,
        cursor: Cursor,
    ) -> Self {
        Self {
            client,
            platform: platform.into(),
            since,
            cursor,
            filers: Filers::default(),
            read: false,
        }
    }

    /// `faj-decision`: from the platform to the ML that filed the request.
    pub fn route(&self) -> Route {
        let filers = self.filers.clone();
        let platform = self.platform.clone();
        Arc::new(move |record| {
            let id = record
                .sources
                .first()
                .ok_or("a decision without its request's reference")?
                .record_id
                .as_str();
            let ml = filers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(id)
                .ok_or("a decision about a request this hub did not file")?
                .clone();
            Ok((
                Org::new(OrgKind::Faj, &platform, System::Faj),
                Org::new(OrgKind::Ml, ml, System::Imilo),
            ))
        })
    }
}

#[async_trait]
impl Source for FajDecisions {
    async fn next_batch(&mut self) -> Result<Vec<SourceItem>, ConnectorError> {
        if self.read {
            return Ok(Vec::new());
        }
        self.read = true;
        let collect = Arc::new(Collect::default());
        // Decisions are handed on within this night only: the night's own change
        // detection keeps a decision listed again from being sent again.
        let intake = DecisionIntake::new(collect.clone(), Arc::new(MemorySeenStore::new()));
        let report = passerelle_faj::reconcile(&self.client, &intake, self.since).await?;
        if let Some(next) = report.next_since {
            self.cursor.set(next.to_rfc3339());
        }
        let decisions = std::mem::take(&mut *collect.0.lock().unwrap_or_else(|e| e.into_inner()));
        let mut filers = self.filers.lock().unwrap_or_else(|e| e.into_inner());
        Ok(decisions
            .into_iter()
            .map(|d| {
                if let Some(ml) = d.route() {
                    filers.insert(d.id_demande.clone(), ml.to_owned());
                }
                SourceItem {
                    outcome: d.to_record(&self.platform).map_err(|e| {
                        vec![RecordIssue {
                            reference: d.id_demande.clone(),
                            line: None,
                            field: e.champ.clone(),
                            reason: e.reason.clone(),
                        }]
                    }),
                    warnings: Vec::new(),
                    ack: AckToken(d.key()),
                }
            })
            .collect())
    }

    async fn ack(&mut self, _tokens: &[AckToken]) -> Result<(), ConnectorError> {
        // Nothing to tell the platform: the cursor is stored once the night went through.
        Ok(())
    }
}
