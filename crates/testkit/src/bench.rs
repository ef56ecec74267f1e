//! What the connectors' benchmarks measure alike: this thread's CPU time (the machine
//! may be shared, so wall time alone says little), the process's peak resident memory,
//! and one report line per measure (`{label}: {what}: {n} {unit}, wall …, cpu …`).

use std::time::{Duration, Instant};

/// CPU time of this thread so far (from `/proc/thread-self/schedstat`; zero elsewhere).
pub fn cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map(Duration::from_nanos)
        .unwrap_or_default()
}

/// The process's peak resident memory in KiB (`VmHWM`), when the system says it.
pub fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `f`, returning its result and its (wall, cpu) durations.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration, Duration) {
    let (w, c) = (Instant::now(), cpu());
    let out = f();
    (out, w.elapsed(), cpu() - c)
}

/// Prints one measure: `n` `unit`s in `wall` and `cpu`, with the rates.
// Printing is what a benchmark is for.
#[allow(clippy::print_stdout)]
pub fn report(label: &str, what: &str, n: u64, unit: &str, wall: Duration, cpu: Duration) {
    println!(
        "{label}: {what}: {n} {unit}, wall {wall:.2?} ({:.0} {unit}/s), cpu {cpu:.2?} ({:.0} {unit}/s per core)",
        n as f64 / wall.as_secs_f64(),
        n as f64 / cpu.as_secs_f64()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timed_measures_the_work() {
        let (sum, wall, cpu_time) =
            timed(|| (0..2_000_000u64).map(std::hint::black_box).sum::<u64>());
        assert_eq!(sum, 1_999_999_000_000);
        assert!(wall > Duration::ZERO);
        // On Linux the thread's CPU time is read; elsewhere it stays zero.
        if std::path::Path::new("/proc/thread-self/schedstat").exists() {
            assert!(cpu_time > Duration::ZERO);
            assert!(vm_hwm_kib().is_some_and(|k| k > 0));
        }
    }
}
