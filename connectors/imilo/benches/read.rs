//! Read throughput of the connector against its simulator (in-process, same runtime):
//! full reconciliation of 100,000 dossiers without a rate limit, then with the
//! documented 20 requests/s per key (150 per page: 3,000 dossiers/s at most).
//! Prints dossiers/s; run with `cargo bench -p passerelle-imilo --bench read`.

#![allow(clippy::print_stdout)]

use std::time::Instant;

use passerelle_connector::Source;
use passerelle_imilo::sim::{self, Faults, SimConfig, SimKeys};
use passerelle_imilo::{ImiloClient, ReconcileSource};

fn client(addr: std::net::SocketAddr, rate: f64) -> ImiloClient {
    let mut c = sim::client_config(addr);
    c.rate_limit_per_s = rate;
    c.concurrency = 4;
    ImiloClient::with_keys(&c, SimKeys::default().family_keys().unwrap()).unwrap()
}

/// Reads every dossier of `structures` through `ReconcileSource` (mapping included).
async fn read_all(c: ImiloClient, structures: Vec<String>) -> (u64, f64) {
    let mut src = ReconcileSource::new(c, structures, None);
    let t = Instant::now();
    let mut n = 0u64;
    loop {
        let batch = src.next_batch().await.unwrap();
        if batch.is_empty() {
            break;
        }
        assert!(batch.iter().all(|i| i.outcome.is_ok()));
        n += batch.len() as u64;
    }
    (n, t.elapsed().as_secs_f64())
}

fn main() {
    // `cargo test --benches` runs this with `--bench` absent: keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let jeunes = if quick { 5_000 } else { 100_000 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let t = Instant::now();
        let (addr, handle) = sim::spawn(SimConfig {
            jeunes,
            ..SimConfig::default()
        })
        .await
        .unwrap();
        println!("simulator with {jeunes} dossiers ready in {:.3} s", t.elapsed().as_secs_f64());
        let structures: Vec<String> = handle
            .state()
            .population()
            .structures()
            .iter()
            .map(|s| s.code.clone())
            .collect();

        let (n, secs) = read_all(client(addr, 0.0), structures.clone()).await;
        println!(
            "no rate limit: {n} dossiers in {secs:.2} s = {:.0} dossiers/s (target >= 20000)",
            n as f64 / secs
        );

        handle
            .set_faults(Faults {
                rate_limit_per_s: Some(20.0),
                ..Faults::default()
            })
            .unwrap();
        let take = if quick { 1 } else { 10 };
        let (n, secs) = read_all(client(addr, 19.0), structures[..take.min(structures.len())].to_vec()).await;
        let rate = n as f64 / secs;
        let stats = handle.stats();
        println!(
            "documented limit (sim 20 req/s per key, client 19): {n} dossiers in {secs:.2} s = {rate:.0} dossiers/s = {:.1} % of 3000 (target >= 90 %), sim 429s: {}",
            rate / 30.0,
            stats.faults.rate_limited
        );
        handle.shutdown().await;
    });
}
