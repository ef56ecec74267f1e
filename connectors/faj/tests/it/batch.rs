//! `FajSink::deliver_batch` against the simulator: bounded concurrency, answers in
//! the batch's order, and every request filed once although the batch is sent again
//! whole under 503 and spurious 401 faults.

use passerelle_connector::{Delivery, ReceiptStatus, Sink};
use passerelle_faj::sim::{Faults, SimConfig};
use passerelle_faj::{FajClient, FajSink, Secret};

use crate::support::*;

fn delivery(i: usize) -> Delivery {
    Delivery {
        transfer_id: format!("batch-{i}"),
        flow: "faj-demande".into(),
        sender: "59350S00".into(),
        recipient: "FAJ059".into(),
        record: record(10_000 + i as u64),
    }
}

#[tokio::test]
async fn batches_retried_whole_file_each_request_once() {
    let (addr, sim) = sim(SimConfig {
        faults: Faults {
            rate_503: 0.15,
            rate_401: 0.05,
            commission_delay_ms: 3_600_000,
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .await;
    let mut cfg = config(addr);
    cfg.concurrency = 6;
    cfg.retry.max_attempts = 12;
    cfg.retry.max_elapsed_ms = 20_000;
    cfg.validate().unwrap();
    let sink = FajSink::new(FajClient::new(&cfg, Secret::new("sim-secret")).unwrap());
    assert_eq!(sink.client().concurrency(), 6);
    let batch = || (0..40).map(delivery).collect::<Vec<_>>();
    let order: Vec<String> = batch().into_iter().map(|d| d.transfer_id).collect();
    let mut first_refs = Vec::new();
    for round in 0..2 {
        let receipts = sink.deliver_batch(batch()).await;
        let ids: Vec<&str> = receipts
            .iter()
            .map(|r| r.as_ref().unwrap().transfer_id.as_str())
            .collect();
        assert_eq!(ids, order, "round {round}: receipts follow the batch order");
        let refs: Vec<String> = receipts
            .into_iter()
            .map(|r| match r.unwrap().status {
                ReceiptStatus::Applied { peer_ref: Some(id) } => id,
                other => panic!("round {round}: {other:?}"),
            })
            .collect();
        if round == 0 {
            first_refs = refs;
        } else {
            assert_eq!(refs, first_refs, "a replay answers with the first id");
        }
    }
    assert_eq!(sim.stat("demandes_created"), 40);
    assert!(sim.stat("idempotent_replays") >= 40);
    assert!(sim.stat("faults_503") > 0 && sim.stat("faults_401") > 0);
    sim.shutdown().await;
}

#[test]
fn concurrency_is_configured_and_bounded() {
    let mut cfg = config("127.0.0.1:9".parse().unwrap());
    assert_eq!(cfg.concurrency, 4, "default");
    cfg.concurrency = 0;
    assert!(
        cfg.validate()
            .unwrap_err()
            .to_string()
            .contains("concurrency")
    );
    cfg.concurrency = 65;
    assert!(cfg.validate().is_err());
    let parsed: passerelle_faj::FajConfig = toml::from_str(
        "base_url = \"http://x\"\nclient_id = \"c\"\nclient_secret = { env = \"A\" }\nwebhook_secret = { env = \"B\" }\nconcurrency = 12\n",
    )
    .unwrap();
    assert_eq!(parsed.concurrency, 12);
}
