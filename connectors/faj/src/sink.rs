//! `FajSink`: the `Sink` of flow `faj-demande`, filing one request per delivery and
//! turning the platform's answer into a receipt for the conseiller. `deliver_batch`
//! files a batch's requests concurrently (at most the client's `concurrency` at once)
//! and answers in the batch's order; each keeps its own `Idempotency-Key`, so a batch
//! retried whole files every request once.

use async_trait::async_trait;
use futures::stream::{self, StreamExt};
use passerelle_connector::{ConnectorError, Delivery, Receipt, ReceiptStatus, Sink};
use passerelle_model::Date;
use tracing::{info, instrument};

use crate::client::{FajClient, FileOutcome};
use crate::mapping::{demande_body, reasons};
use crate::{FLOW_DEMANDE, PEER};

/// Files FAJ requests. Idempotent on the transfer id (sent as `Idempotency-Key`).
#[derive(Debug, Clone)]
pub struct FajSink {
    client: FajClient,
}

impl FajSink {
    pub fn new(client: FajClient) -> Self {
        Self { client }
    }

    pub fn client(&self) -> &FajClient {
        &self.client
    }
}

#[async_trait]
impl Sink for FajSink {
    #[instrument(skip(self, delivery), fields(peer = PEER, transfer_id = %delivery.transfer_id, flow = %delivery.flow))]
    async fn deliver(&self, delivery: Delivery) -> Result<Receipt, ConnectorError> {
        if delivery.flow != FLOW_DEMANDE {
            return Err(ConnectorError::Config(format!(
                "the faj sink serves flow {FLOW_DEMANDE}, not {}",
                delivery.flow
            )));
        }
        // The filing date defaults to today (UTC; a request filed just after midnight
        // in Paris may carry the previous day, which the conseiller can set explicitly).
        let today = Date::from(chrono::Utc::now().date_naive());
        let body = match demande_body(&delivery.record, today) {
            Ok(b) => b,
            Err(issues) => {
                info!(
                    issues = issues.len(),
                    "nothing to file, rejected before sending"
                );
                return Ok(Receipt {
                    transfer_id: delivery.transfer_id,
                    status: ReceiptStatus::Rejected {
                        reasons: issues
                            .iter()
                            .map(|i| format!("{}: {}", i.field, i.reason))
                            .collect(),
                    },
                });
            }
        };
        let status = match self
            .client
            .file_demande(&delivery.transfer_id, &body)
            .await?
        {
            FileOutcome::Filed {
                id_demande,
                replayed,
                ..
            } => {
                info!(%id_demande, replayed, "request filed");
                ReceiptStatus::Applied {
                    peer_ref: Some(id_demande),
                }
            }
            FileOutcome::Invalid(erreurs) => {
                // Field names and codes only: the platform's messages stay in the receipt.
                let champs: Vec<String> = erreurs
                    .iter()
                    .map(|e| format!("{}={}", e.champ, e.code))
                    .collect();
                info!(champs = ?champs, "request refused by the platform");
                ReceiptStatus::Rejected {
                    reasons: reasons(&erreurs),
                }
            }
        };
        Ok(Receipt {
            transfer_id: delivery.transfer_id,
            status,
        })
    }

    #[instrument(skip_all, fields(peer = PEER, n = deliveries.len()))]
    async fn deliver_batch(
        &self,
        deliveries: Vec<Delivery>,
    ) -> Vec<Result<Receipt, ConnectorError>> {
        // `buffered` keeps the order; the token cache is shared, so concurrent calls
        // fetch one token, not one each.
        stream::iter(deliveries.into_iter().map(|d| self.deliver(d)))
            .buffered(self.client.concurrency())
            .collect()
            .await
    }
}
