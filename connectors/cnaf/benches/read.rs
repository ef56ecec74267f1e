//! Reading speed and peak memory of the CNAF VRSB0801 reader on a simulated file
//! (`BENCH_MB`, default 100 MB). Prints records per second of wall time and of CPU
//! time (per core: the machine may be shared), for the check pass and the mapping
//! pass (with JSON serialisation), and the process's peak resident memory (VmHWM).

use std::time::{Duration, Instant};

use passerelle_cnaf::Flux;
use passerelle_cnaf::sim::{SimOptions, write_flux};

/// CPU time of this thread so far (from /proc/thread-self/schedstat).
fn cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map(Duration::from_nanos)
        .unwrap_or_default()
}

fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `f`, returning its result and (wall, cpu) durations.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration, Duration) {
    let (w, c) = (Instant::now(), cpu());
    let out = f();
    (out, w.elapsed(), cpu() - c)
}

#[allow(clippy::print_stdout)]
fn report(what: &str, n: u64, wall: Duration, cpu: Duration) {
    println!(
        "cnaf: {what}: {n} records, wall {wall:.2?} ({:.0} records/s), cpu {cpu:.2?} ({:.0} records/s per core)",
        n as f64 / wall.as_secs_f64(),
        n as f64 / cpu.as_secs_f64()
    );
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
