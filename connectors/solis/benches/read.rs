//! Reading speed and peak memory of the SOLIS export reader on a simulated file
//! (`BENCH_MB`, default 100 MB): prints records/s for the check pass and the mapping
//! pass, and the process's peak resident memory (VmHWM).

use std::time::Instant;

use passerelle_solis::sim::{SimOptions, write_export};
use passerelle_solis::{Export, SolisConfig};

fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[allow(clippy::print_stdout)]
fn main() {
    let mb: u64 = std::env::var("BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let dir = tempfile::tempdir().unwrap();
    // About 1 KB per simulated Individu.
    let mut opts = SimOptions::new(mb * 1_000_000 / 1_020, 1);
    opts.invalid_share = 0.01;
    opts.bad_phone_share = 0.01;
    let t = Instant::now();
    let summary = write_export(dir.path(), &opts).unwrap();
    let size = std::fs::metadata(&summary.path).unwrap().len();
    println!(
        "simulated {} individus, {:.1} MB in {:.2?}",
        summary.written,
        size as f64 / 1e6,
        t.elapsed()
    );
    let hwm_before = vm_hwm_kib().unwrap_or(0);
    let t = Instant::now();
    let export = Export::open(&summary.path, &SolisConfig::default()).unwrap();
    let check = t.elapsed();
    let t = Instant::now();
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
    let map = t.elapsed();
    let n = (ok + rejected) as f64;
    println!(
        "solis: check pass {:.2?} ({:.0} records/s), mapping pass with JSON {:.2?} ({:.0} records/s), both {:.0} records/s, {ok} ok, {rejected} rejected",
        check,
        n / check.as_secs_f64(),
        map,
        n / map.as_secs_f64(),
        n / (check + map).as_secs_f64()
    );
    println!(
        "solis: peak RSS (VmHWM) {:.1} MiB after simulating, {:.1} MiB after reading",
        hwm_before as f64 / 1024.0,
        vm_hwm_kib().unwrap_or(0) as f64 / 1024.0
    );
}
