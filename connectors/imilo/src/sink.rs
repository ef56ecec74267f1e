//! Delivering to I-MILO as a `Sink`: `brsa-orientation` and `ase-majorite` become
//! prescriptions (`POST /partenaires/orientations`), `faj-decision` and `of-suivi`
//! become événements on the dossier. Every write carries the transfer id as
//! `referenceExterne`, so a retried delivery is applied once. `deliver_batch` sends a
//! batch's deliveries concurrently (at most the client's `concurrency` in flight, all
//! still under its rate limiter and retry budget) and answers in the batch's order.

use async_trait::async_trait;
use futures::stream::{self, StreamExt};
use passerelle_connector::{ConnectorError, Delivery, ErrorKind, Receipt, ReceiptStatus, Sink};
use passerelle_model::Date;

use crate::client::ImiloClient;
use crate::mapping::{evenement_request, orientation_request};

/// The I-MILO sink.
#[derive(Debug, Clone)]
pub struct ImiloSink {
    client: ImiloClient,
}

impl ImiloSink {
    pub fn new(client: ImiloClient) -> Self {
        Self { client }
    }
}

fn rejected(transfer_id: String, reasons: Vec<String>) -> Receipt {
    Receipt {
        transfer_id,
        status: ReceiptStatus::Rejected { reasons },
    }
}

/// The peer's refusals (400/409/422, 404 on the dossier) become rejected receipts;
/// everything else stays an error for the engine (retry later, fix credentials).
fn settle(
    transfer_id: String,
    result: Result<Option<String>, ConnectorError>,
) -> Result<Receipt, ConnectorError> {
    match result {
        Ok(peer_ref) => Ok(Receipt {
            transfer_id,
            status: ReceiptStatus::Applied { peer_ref },
        }),
        Err(e) if matches!(e.kind(), ErrorKind::InvalidInput | ErrorKind::NotFound) => {
            Ok(rejected(transfer_id, vec![e.to_string()]))
        }
        Err(e) => Err(e),
    }
}

#[async_trait]
impl Sink for ImiloSink {
    #[tracing::instrument(level = "debug", skip_all, fields(transfer_id = %delivery.transfer_id, flow = %delivery.flow))]
    async fn deliver(&self, delivery: Delivery) -> Result<Receipt, ConnectorError> {
        let tid = delivery.transfer_id.clone();
        match delivery.flow.as_str() {
            "brsa-orientation" | "ase-majorite" => {
                let body = match orientation_request(&delivery) {
                    Ok(b) => b,
                    Err(reasons) => return Ok(rejected(tid, reasons)),
                };
                let r = self.client.post_orientation(&body).await;
                settle(tid, r.map(|(_, resp)| Some(resp.id_prescription)))
            }
            "faj-decision" | "of-suivi" => {
                let today = Date::from(chrono::Utc::now().date_naive());
                let (id, body) = match evenement_request(&delivery, today) {
                    Ok(x) => x,
                    Err(reasons) => return Ok(rejected(tid, reasons)),
                };
                let r = self.client.post_evenement(id, &body).await;
                settle(tid, r.map(|(_, resp)| resp.id_evenement))
            }
            other => Err(ConnectorError::Invalid {
                location: "delivery.flow".into(),
                reason: format!("flow {other} is not delivered to I-MILO"),
            }),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(n = deliveries.len()))]
    async fn deliver_batch(
        &self,
        deliveries: Vec<Delivery>,
    ) -> Vec<Result<Receipt, ConnectorError>> {
        // `buffered` keeps the batch's order while up to `concurrency` calls run; the
        // shared stack below still paces them (rate limiter) and bounds their retries.
        stream::iter(deliveries.into_iter().map(|d| self.deliver(d)))
            .buffered(self.client.concurrency().max(1))
            .collect()
            .await
    }
}
