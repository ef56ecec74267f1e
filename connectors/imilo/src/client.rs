//! `ImiloClient`: the API calls of imilo.md over the HTTP layer stack, typed.

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use passerelle_connector::ConnectorError;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::ImiloConfig;
use crate::http::{
    ApiRequest, ApiResponse, Exchange, PEER, Plain, RateLimited, RetryStats, Retrying,
};
use crate::key::{Family, FamilyKeys};
use crate::wire::{
    Dossier, DossierPage, EvenementRequest, EvenementResponse, Event, OrientationRequest,
    OrientationResponse, SituationRequest,
};

type Stack = Retrying<RateLimited<Plain>>;

/// Whether a write was new at the peer (201) or a replay of an earlier one (200).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Created,
    Replayed,
}

/// The I-MILO client. Cheap to clone; clones share connections, limiter and budget.
#[derive(Debug, Clone)]
pub struct ImiloClient {
    stack: Arc<Stack>,
    page_size: u32,
    concurrency: usize,
}

impl ImiloClient {
    pub(crate) fn from_parts(
        config: &ImiloConfig,
        keys: FamilyKeys,
    ) -> Result<Self, ConnectorError> {
        let plain = Plain::new(
            &config.base_url,
            keys,
            config.request_timeout(),
            config.connect_timeout(),
        )?;
        let limited = RateLimited::new(plain, config.rate_limit_per_s, config.rate_burst);
        Ok(Self {
            stack: Arc::new(Retrying::new(limited, config.retry.clone())),
            page_size: config.page_size,
            concurrency: config.concurrency,
        })
    }

    /// Builds a client from keys already loaded (tests, embedding).
    pub fn with_keys(config: &ImiloConfig, keys: FamilyKeys) -> Result<Self, ConnectorError> {
        config.validate()?;
        Self::from_parts(config, keys)
    }

    /// `with_keys`, paced by these buckets (one per family) instead of its own: shared
    /// ones (`passerelle_hub::state::coord::SharedBucket`) keep every hub instance
    /// together within the API's limit.
    pub fn with_keys_and_buckets(
        config: &ImiloConfig,
        keys: FamilyKeys,
        buckets: [Arc<dyn crate::http::Bucket>; 4],
    ) -> Result<Self, ConnectorError> {
        config.validate()?;
        let plain = Plain::new(
            &config.base_url,
            keys,
            config.request_timeout(),
            config.connect_timeout(),
        )?;
        let limited = RateLimited::with_buckets(plain, buckets);
        Ok(Self {
            stack: Arc::new(Retrying::new(limited, config.retry.clone())),
            page_size: config.page_size,
            concurrency: config.concurrency,
        })
    }

    pub fn retry_stats(&self) -> RetryStats {
        self.stack.stats()
    }

    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    async fn call(&self, req: ApiRequest) -> Result<ApiResponse, ConnectorError> {
        self.stack.exchange(&req).await
    }

    fn decode<T: DeserializeOwned>(route: &str, resp: &ApiResponse) -> Result<T, ConnectorError> {
        // serde_json's message may quote input: keep only its position.
        serde_json::from_slice(&resp.body).map_err(|e| ConnectorError::Protocol {
            peer: PEER.into(),
            reason: format!(
                "unreadable json from {route} at line {} column {}",
                e.line(),
                e.column()
            ),
        })
    }

    fn encode<T: Serialize>(body: &T) -> Result<Bytes, ConnectorError> {
        serde_json::to_vec(body)
            .map(Bytes::from)
            .map_err(|_| ConnectorError::Invalid {
                location: "request body".into(),
                reason: "cannot serialise".into(),
            })
    }

    /// `GET /sue/dossiers/{idDossier}`.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn dossier(&self, id: u64) -> Result<Dossier, ConnectorError> {
        let route = "/sue/dossiers/{idDossier}";
        let resp = self
            .call(ApiRequest::get(
                Family::Dossiers,
                route,
                format!("/sue/dossiers/{id}"),
            ))
            .await?;
        Self::decode(route, &resp)
    }

    /// One page of a structure's dossiers (pages are numbered from 1).
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn structure_page(
        &self,
        code_structure: &str,
        page: u32,
        modifie_depuis: Option<&str>,
    ) -> Result<DossierPage, ConnectorError> {
        let route = "/sue/structures/{codeStructure}/dossiers";
        let mut req = ApiRequest::get(
            Family::Dossiers,
            route,
            format!("/sue/structures/{}/dossiers", path_segment(code_structure)?),
        );
        req.query.push(("page", page.to_string()));
        req.query.push(("taillePage", self.page_size.to_string()));
        if let Some(since) = modifie_depuis {
            req.query.push(("modifieDepuis", since.to_owned()));
        }
        let resp = self.call(req).await?;
        Self::decode(route, &resp)
    }

    /// Every dossier of a structure (modified since an RFC 3339 instant when given),
    /// page by page; after the first page, up to `concurrency` pages are in flight,
    /// delivered in order.
    pub fn structure_dossiers(
        &self,
        code_structure: String,
        modifie_depuis: Option<String>,
    ) -> BoxStream<'static, Result<Vec<Dossier>, ConnectorError>> {
        let this = self.clone();
        let first = {
            let this = this.clone();
            let code = code_structure.clone();
            let since = modifie_depuis.clone();
            async move { this.structure_page(&code, 1, since.as_deref()).await }
        };
        stream::once(first)
            .flat_map(move |first| match first {
                Err(e) => stream::iter(vec![Err(e)]).boxed(),
                Ok(page) => {
                    let size = u64::from(page.taille_page.max(1));
                    let pages = page.total.div_ceil(size).max(1);
                    let concurrency = this.concurrency;
                    let this = this.clone();
                    let code = code_structure.clone();
                    let since = modifie_depuis.clone();
                    let rest = stream::iter(2..=pages)
                        .map(move |p| {
                            let this = this.clone();
                            let code = code.clone();
                            let since = since.clone();
                            async move {
                                let p = u32::try_from(p).map_err(|_| ConnectorError::Protocol {
                                    peer: PEER.into(),
                                    reason: "page count out of range".into(),
                                })?;
                                this.structure_page(&code, p, since.as_deref())
                                    .await
                                    .map(|pg| pg.dossiers)
                            }
                        })
                        .buffered(concurrency);
                    stream::iter(vec![Ok(page.dossiers)]).chain(rest).boxed()
                }
            })
            .boxed()
    }

    /// `GET /operateurs/events`: up to 150 unacknowledged events, oldest first.
    pub async fn events(&self) -> Result<Vec<Event>, ConnectorError> {
        let route = "/operateurs/events";
        let resp = self
            .call(ApiRequest::get(Family::Events, route, route.to_owned()))
            .await?;
        Self::decode(route, &resp)
    }

    /// `POST /operateurs/events/{identifiant}/ack`.
    pub async fn ack_event(&self, identifiant: &str) -> Result<(), ConnectorError> {
        let route = "/operateurs/events/{identifiant}/ack";
        let path = format!("/operateurs/events/{}/ack", path_segment(identifiant)?);
        self.call(ApiRequest::post(Family::Events, route, path, None))
            .await?;
        Ok(())
    }

    /// Acks many events, `concurrency` at a time; stops at the first error.
    pub async fn ack_events<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), ConnectorError> {
        let futs: Vec<_> = ids.into_iter().map(|id| self.ack_event(id)).collect();
        let mut s = stream::iter(futs).buffer_unordered(self.concurrency);
        while let Some(r) = s.next().await {
            r?;
        }
        Ok(())
    }

    /// `POST /partenaires/orientations`, idempotent on `referenceExterne`.
    #[tracing::instrument(level = "debug", skip_all, fields(reference = %body.reference_externe))]
    pub async fn post_orientation(
        &self,
        body: &OrientationRequest,
    ) -> Result<(WriteOutcome, OrientationResponse), ConnectorError> {
        let route = "/partenaires/orientations";
        let resp = self
            .call(ApiRequest::post(
                Family::Partenaires,
                route,
                route.to_owned(),
                Some(Self::encode(body)?),
            ))
            .await?;
        Ok((outcome(resp.status), Self::decode(route, &resp)?))
    }

    /// `POST /partenaires/dossiers/{idDossier}/evenements`, idempotent on `referenceExterne`.
    #[tracing::instrument(level = "debug", skip_all, fields(reference = %body.reference_externe))]
    pub async fn post_evenement(
        &self,
        id_dossier: u64,
        body: &EvenementRequest,
    ) -> Result<(WriteOutcome, EvenementResponse), ConnectorError> {
        let route = "/partenaires/dossiers/{idDossier}/evenements";
        let resp = self
            .call(ApiRequest::post(
                Family::Partenaires,
                route,
                format!("/partenaires/dossiers/{id_dossier}/evenements"),
                Some(Self::encode(body)?),
            ))
            .await?;
        let answer = if resp.body.is_empty() {
            EvenementResponse { id_evenement: None }
        } else {
            Self::decode(route, &resp)?
        };
        Ok((outcome(resp.status), answer))
    }

    /// `POST /sue/dossiers/{idDossier}/situation`.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn post_situation(
        &self,
        id_dossier: u64,
        body: &SituationRequest,
    ) -> Result<WriteOutcome, ConnectorError> {
        let route = "/sue/dossiers/{idDossier}/situation";
        let resp = self
            .call(ApiRequest::post(
                Family::Situations,
                route,
                format!("/sue/dossiers/{id_dossier}/situation"),
                Some(Self::encode(body)?),
            ))
            .await?;
        Ok(outcome(resp.status))
    }
}

fn outcome(status: u16) -> WriteOutcome {
    if status == 200 {
        WriteOutcome::Replayed
    } else {
        WriteOutcome::Created
    }
}

/// A path segment we build from data: only letters, digits, `-` and `_`, so that a
/// value can never change the route.
fn path_segment(s: &str) -> Result<&str, ConnectorError> {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(s)
    } else {
        Err(ConnectorError::Invalid {
            location: "path segment".into(),
            reason: "must be letters, digits, - or _".into(),
        })
    }
}
