//! Reading speed and memory of BRSA_LISTE files: rows per second of the bare CSV
//! reader and of the full read (decode, split, validate, map to canonical records),
//! and peak RSS on a small and a large file (each measured in a child process, as
//! peak RSS is per process). Run: `cargo bench -p passerelle-box --bench read`.
//! `BOX_BENCH_ROWS` sets the large file's rows (default 1,000,000).
//! The full read is measured twice: the default BRSA_LISTE columns, and a richer
//! mapping (`schemas/mappings/cd026_usagers.toml` over the real Drôme-style list of
//! `tests/real/`, repeated: a column split into postcode and commune, allocataire and
//! phone normalisers, several date formats, the département's own id).

#![allow(clippy::print_stdout)]

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use passerelle_box::{BrsaReader, Mapping, sim};
use passerelle_connector::csv::CsvReader;

/// Writes `rows` data rows (windows-1252, CRLF), cycling a synthetic population.
fn write_file(path: &Path, rows: usize) {
    let people = sim::population(11, 1000);
    let (block, _, _) = sim::brsa_csv(&people, false);
    // The block starts with the header line and ends with one blank line.
    let header_end = block.iter().position(|b| *b == b'\n').unwrap() + 1;
    let body = &block[header_end..block.len() - 2];
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    f.write_all(&block[..header_end]).unwrap();
    for _ in 0..rows / 1000 {
        f.write_all(body).unwrap();
    }
    f.flush().unwrap();
}

/// CPU seconds (user + system) this process used so far: rates per CPU second are
/// what "per core" means on a machine shared with other work.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 here; the
    // kernel counts them in USER_HZ, 100 on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// Writes `rows` data rows of the real Drôme-style list (UTF-8 with BOM, as the
/// département wrote it), its 600 rows over and over.
fn write_drome(path: &Path, rows: usize) {
    let real =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/real/fichier_usager_600_lignes.csv");
    let text = std::fs::read(real).unwrap();
    let header_end = text.iter().position(|b| *b == b'\n').unwrap() + 1;
    let mut body = text[header_end..].to_vec();
    if body.last() != Some(&b'\n') {
        body.push(b'\n');
    }
    let per = body.iter().filter(|b| **b == b'\n').count().max(1);
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    f.write_all(&text[..header_end]).unwrap();
    for _ in 0..rows.div_ceil(per) {
        f.write_all(&body).unwrap();
    }
    f.flush().unwrap();
}

/// The Drôme-style mapping shipped in `schemas/mappings/`.
fn drome_mapping() -> Mapping {
    Mapping::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/mappings/cd026_usagers.toml"),
    )
    .unwrap()
}

/// Reads a file fully; returns (rows, accepted, seconds).
fn full_read(path: &Path) -> (u64, u64, f64) {
    full_read_with(path, &Mapping::default_brsa())
}

/// Reads a file fully through `mapping`; returns (rows, accepted, seconds).
fn full_read_with(path: &Path, mapping: &Mapping) -> (u64, u64, f64) {
    let name = "BRSA_LISTE_059_CD059_20261121230000.csv";
    let start = Instant::now();
    let reader = BrsaReader::open(std::fs::File::open(path).unwrap(), name, mapping).unwrap();
    let (mut rows, mut ok) = (0u64, 0u64);
    for row in reader {
        let row = row.unwrap();
        rows += 1;
        if let Ok(j) = row.outcome {
            ok += 1;
            std::hint::black_box(j);
        }
    }
    (rows, ok, start.elapsed().as_secs_f64())
}

fn csv_only(path: &Path) -> (u64, f64) {
    let start = Instant::now();
    let reader = CsvReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut rows = 0u64;
    for row in reader {
        std::hint::black_box(row.unwrap());
        rows += 1;
    }
    (rows, start.elapsed().as_secs_f64())
}

fn main() {
    // Child mode: read one file and print rows and peak RSS.
    if let Ok(path) = std::env::var("BOX_BENCH_CHILD") {
        let (rows, _, _) = full_read(Path::new(&path));
        println!("{rows} {}", peak_rss_kib());
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let large: usize = std::env::var("BOX_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let small_path = dir.path().join("small.csv");
    let large_path = dir.path().join("large.csv");
    write_file(&small_path, 10_000);
    write_file(&large_path, large);
    let size = std::fs::metadata(&large_path).unwrap().len();
    println!(
        "large file: {large} rows, {:.1} MiB, windows-1252",
        size as f64 / 1048576.0
    );

    let cpu = cpu_secs();
    let (rows, secs) = csv_only(&large_path);
    let cpu_used = cpu_secs() - cpu;
    println!(
        "csv reader only:          {rows} rows in {secs:.2} s wall = {:.0} rows/s; {cpu_used:.2} cpu-s = {:.0} rows per cpu-second",
        rows as f64 / secs,
        rows as f64 / cpu_used
    );
    let cpu = cpu_secs();
    let (rows, ok, secs) = full_read(&large_path);
    let cpu_used = cpu_secs() - cpu;
    println!(
        "full read (map+validate): {rows} rows ({ok} accepted) in {secs:.2} s wall = {:.0} rows/s; {cpu_used:.2} cpu-s = {:.0} rows per cpu-second",
        rows as f64 / secs,
        rows as f64 / cpu_used
    );

    // The richer mapping, on the real Drôme-style list.
    let drome = dir.path().join("drome.csv");
    write_drome(&drome, large);
    let mapping = drome_mapping();
    let cpu = cpu_secs();
    let (rows, ok, secs) = full_read_with(&drome, &mapping);
    let cpu_used = cpu_secs() - cpu;
    println!(
        "full read, richer mapping (cd026_usagers, {:.1} MiB): {rows} rows ({ok} accepted) in {secs:.2} s wall = {:.0} rows/s; {cpu_used:.2} cpu-s = {:.0} rows per cpu-second",
        std::fs::metadata(&drome).unwrap().len() as f64 / 1048576.0,
        rows as f64 / secs,
        rows as f64 / cpu_used
    );
    let _ = std::fs::remove_file(&drome);

    // XLSX: the same people in a workbook (sheet cells streamed).
    let xlsx_rows = (large / 10).max(1000);
    let xlsx_small = dir.path().join("small.xlsx");
    let xlsx_large = dir.path().join("large.xlsx");
    std::fs::write(
        &xlsx_small,
        sim::brsa_xlsx(&sim::population(12, 1000)).unwrap().0,
    )
    .unwrap();
    std::fs::write(
        &xlsx_large,
        sim::brsa_xlsx(&sim::population(12, xlsx_rows)).unwrap().0,
    )
    .unwrap();
    let cpu = cpu_secs();
    let (rows, ok, secs) = full_read(&xlsx_large);
    let cpu_used = cpu_secs() - cpu;
    println!(
        "xlsx full read:           {rows} rows ({ok} accepted, {:.1} MiB workbook) in {secs:.2} s wall = {:.0} rows/s; {:.0} rows per cpu-second",
        std::fs::metadata(&xlsx_large).unwrap().len() as f64 / 1048576.0,
        rows as f64 / secs,
        rows as f64 / cpu_used
    );

    let exe = std::env::current_exe().unwrap();
    for (label, path) in [
        ("csv small (10,000 rows)", &small_path),
        ("csv large", &large_path),
        ("xlsx small (1,000 rows)", &xlsx_small),
        ("xlsx large", &xlsx_large),
    ] {
        let out = std::process::Command::new(&exe)
            .env("BOX_BENCH_CHILD", path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let mut it = text.split_whitespace();
        let rows = it.next().unwrap_or("?");
        let rss: u64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        println!(
            "peak RSS, full read of {label}: {rows} rows, {:.1} MiB",
            rss as f64 / 1024.0
        );
    }
}
