//! The engine's SOLIS path on simulated data: the export source serving a file in
//! batches of 500 with acks (`BENCH_MB`, default 20 MB), the sink writing SUIVI imports
//! of 500 elements (`BENCH_IMPORTS`, default 100 files), and the ACK source reading the
//! simulator's answers. Prints items per second of wall time and of this thread's CPU
//! time (the machine may be shared), and peak resident memory (VmHWM).

use std::sync::Arc;
use std::time::Duration;

use passerelle_connector::Delivery;
use passerelle_model::{Accompagnement, Date, Dispositif, Jeune, SolisId};
use passerelle_solis::sim::{SimOptions, answer_imports, id_solis, write_export};
use passerelle_solis::{ExportFlux, SolisAckSource, SolisPeerConfig, SolisSink};
use passerelle_testkit::bench::{self, timed};

fn report(what: &str, n: u64, unit: &str, wall: Duration, cpu: Duration) {
    bench::report("solis engine", what, n, unit, wall, cpu);
}

fn vm_hwm_kib() -> u64 {
    bench::vm_hwm_kib().unwrap_or(0)
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn delivery(i: u64) -> Delivery {
    let mut j = Jeune::default();
    j.identifiants.solis = Some(SolisId::parse(&id_solis(ExportFlux::Brsa, i % 1000)).unwrap());
    j.accompagnement = Some(Accompagnement {
        dispositif: Some(Dispositif::Cej),
        date_debut: Some(Date::parse("02/03/2026").unwrap()),
        ..Accompagnement::default()
    });
    Delivery {
        transfer_id: format!("00000000-0000-4000-8000-{i:012}"),
        flow: "brsa-suivi".into(),
        sender: "59350S00".into(),
        recipient: "CD059".into(),
        record: j,
    }
}

#[allow(clippy::print_stdout)]
fn main() {
    let mb = env("BENCH_MB", 20);
    let imports = env("BENCH_IMPORTS", 100);
    let dir = tempfile::tempdir().unwrap();

    // Export source: serve and ack everything, batch by batch.
    let summary = write_export(dir.path(), &SimOptions::new(mb * 1_000_000 / 1_020, 1)).unwrap();
    let hwm_before = vm_hwm_kib();
    let config = SolisPeerConfig {
        export_dir: Some(dir.path().to_owned()),
        ..SolisPeerConfig::default()
    };
    let source = config.build_export_source().unwrap();
    let (served, w, c) = timed(|| {
        source.with_feed(|feed| {
            let mut n = 0u64;
            loop {
                let batch = feed.next_batch().unwrap();
                if batch.is_empty() {
                    break n;
                }
                n += batch.len() as u64;
                let tokens: Vec<_> = batch.into_iter().map(|i| i.ack).collect();
                feed.ack(&tokens).unwrap();
            }
        })
    });
    assert_eq!(served, summary.written);
    report("export source (check + map + ack)", served, "records", w, c);
    println!(
        "solis engine: peak RSS {:.1} MiB before serving, {:.1} MiB after ({:.1} MB file)",
        hwm_before as f64 / 1024.0,
        vm_hwm_kib() as f64 / 1024.0,
        mb as f64
    );

    // Sink: imports of 500 elements; a frozen clock, so every file after the first
    // also pays the name bump.
    let stamp = chrono::NaiveDate::from_ymd_opt(2026, 11, 22)
        .unwrap()
        .and_hms_opt(2, 10, 0)
        .unwrap();
    let sink = SolisSink::with_clock(dir.path(), dir.path(), Arc::new(move || stamp));
    let (written, w, c) = timed(|| {
        let mut n = 0u64;
        for f in 0..imports {
            let batch: Vec<Delivery> = (0..500).map(|i| delivery(f * 500 + i)).collect();
            n += sink
                .deliver_batch_blocking(&batch)
                .into_iter()
                .filter(|r| r.is_ok())
                .count() as u64;
        }
        n
    });
    report("sink (500 per file, fsync each)", written, "records", w, c);

    answer_imports(dir.path()).unwrap();
    let mut acks = SolisAckSource::new(dir.path(), dir.path());
    let (receipts, w, c) = timed(|| {
        let groups = acks.next_receipts_blocking().unwrap();
        let n: usize = groups.iter().map(|g| g.receipts.len()).sum();
        for g in &groups {
            acks.ack_blocking(&g.ack).unwrap();
        }
        n as u64
    });
    assert_eq!(receipts, written);
    report(
        "ack source (read + settle + move)",
        receipts,
        "receipts",
        w,
        c,
    );
}
