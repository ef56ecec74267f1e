//! Reading speed and peak memory of the CNAF VRSB0801 reader on a simulated file
//! (`BENCH_MB`, default 100 MB). Prints records per second of wall time and of CPU
//! time (per core: the machine may be shared), for the check pass and the mapping
//! pass (with JSON serialisation), and the process's peak resident memory (VmHWM).

use std::time::Duration;

use passerelle_testkit::bench::{self, timed, vm_hwm_kib};

use passerelle_cnaf::Flux;
use passerelle_cnaf::sim::{SimOptions, write_flux};

fn report(what: &str, n: u64, wall: Duration, cpu: Duration) {
    bench::report("cnaf", what, n, "records", wall, cpu);
}

#[allow(clippy::print_stdout)]
fn main() {
    let mb: u64 = std::env::var("BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let dir = tempfile::tempdir().unwrap();
    // Sized from a probe file: the bytes of a household depend on the layout written
    // (the real one, with both Prestations lines and the nested état).
    let probe = tempfile::tempdir().unwrap();
    let p = write_flux(probe.path(), &SimOptions::new(2_000, 1)).unwrap();
    let per_foyer = std::fs::metadata(&p.path).unwrap().len() / 2_000;
    let mut opts = SimOptions::new(mb * 1_000_000 / per_foyer.max(1), 1);
    opts.invalid_share = 0.01;
    let summary = write_flux(dir.path(), &opts).unwrap();
    let size = std::fs::metadata(&summary.path).unwrap().len();
    println!(
        "cnaf: simulated {} foyers, {:.1} MB",
        summary.foyers,
        size as f64 / 1e6
    );
    let hwm_before = vm_hwm_kib().unwrap_or(0);
    let (export, w1, c1) = timed(|| Flux::open(&summary.path).unwrap());
    let ((ok, rejected), w2, c2) = timed(|| {
        let (mut ok, mut rejected) = (0u64, 0u64);
        for item in export.records().unwrap() {
            match item.unwrap().outcome {
                Ok(j) => {
                    ok += 1;
                    std::hint::black_box(j.to_json_line());
                }
                Err(_) => rejected += 1,
            }
        }
        (ok, rejected)
    });
    let n = ok + rejected;
    report("check pass", n, w1, c1);
    report("mapping pass with JSON", n, w2, c2);
    report("both passes", n, w1 + w2, c1 + c2);
    println!("cnaf: {ok} ok, {rejected} rejected");
    println!(
        "cnaf: peak RSS (VmHWM) {:.1} MiB after simulating, {:.1} MiB after reading",
        hwm_before as f64 / 1024.0,
        vm_hwm_kib().unwrap_or(0) as f64 / 1024.0
    );
}
