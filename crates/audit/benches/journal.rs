//! Journal figures, printed (not criterion: the 1M-entry set-up alone takes longer than
//! criterion's sampling would allow): SQLite appends per second from many concurrent
//! tasks (the appender batches them), and verification of a 1,000,000-entry chain.
//! With `PASSERELLE_TEST_PG_URL` set, the same figures on PostgreSQL (smaller chain).
//!
//! `cargo bench -p passerelle-audit --bench journal` (release). `AUDIT_BENCH_ENTRIES`
//! overrides the size of the chain to verify.

#![allow(clippy::print_stdout, clippy::print_stderr)] // a bench prints its figures

use std::str::FromStr;
use std::time::Instant;

use passerelle_audit::{Event, Journal, JournalConfig, Lookup, NewEntry, Outcome, Subject};
use passerelle_crypto::PseudonymKey;
use passerelle_model::Nir;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, Connection, Executor};

fn entry(i: usize, key: &PseudonymKey, with_subject: bool) -> NewEntry {
    let mut e = NewEntry::new(Event::Delivered, "system", Outcome::Ok);
    e.flow = Some("brsa-orientation".into());
    e.sender = Some("CD059".into());
    e.recipient = Some("59350S00".into());
    e.fields = vec![
        "identifiants.caf".into(),
        "etat_civil.nom_naissance".into(),
        "etat_civil.prenoms".into(),
        "etat_civil.date_naissance".into(),
        "rsa.etat_droit".into(),
    ];
    e.legal_basis = Some("GDPR Art. 6(1)(e); CASF L262-29".into());
    e.ciphertext_digest = Some(format!("{:064x}", i));
    if with_subject {
        // 10,000 distinct people, each with a NIR blind index.
        let person = i % 10_000;
        let nir = Nir::parse(&format!("1990575{:06}", person)).ok();
        let mut s = Subject::new(key, &format!("hub-{person}"));
        if let Some(n) = nir {
            s = s.with(key, &Lookup::Nir(n));
        }
        e.subject = Some(s);
    }
    e
}

/// Appends about `total` entries from `tasks` concurrent tasks, `per_call` entries per
/// call; returns (entries written, entries per second).
async fn concurrent_appends(
    j: &Journal,
    tasks: usize,
    per_call: usize,
    total: usize,
    key: &PseudonymKey,
    with_subject: bool,
) -> (usize, f64) {
    let calls = (total / tasks / per_call).max(1);
    let start = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let j = j.clone();
        let key = key.clone();
        handles.push(tokio::spawn(async move {
            for c in 0..calls {
                let base = (t * calls + c) * per_call;
                if per_call == 1 {
                    j.append(entry(base, &key, with_subject))
                        .await
                        .expect("append");
                } else {
                    let batch = (base..base + per_call)
                        .map(|i| entry(i, &key, with_subject))
                        .collect();
                    j.append_batch(batch).await.expect("append");
                }
            }
        }));
    }
    for h in handles {
        h.await.expect("task");
    }
    let n = tasks * calls * per_call;
    (n, n as f64 / start.elapsed().as_secs_f64())
}

/// Builds a chain of `n` entries in batches of 10,000; entries per second.
async fn build_chain(j: &Journal, n: usize, key: &PseudonymKey) -> f64 {
    let start = Instant::now();
    let mut done = 0;
    while done < n {
        let k = (n - done).min(10_000);
        let batch: Vec<NewEntry> = (done..done + k)
            .map(|i| entry(i, key, i % 4 == 0))
            .collect();
        j.append_batch(batch).await.expect("batch");
        done += k;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

async fn verify(j: &Journal, expect: u64) -> f64 {
    let start = Instant::now();
    let v = j.verify().await.expect("verify");
    let secs = start.elapsed().as_secs_f64();
    assert!(v.is_intact(), "{:?}", v.problem);
    assert_eq!(v.entries, expect);
    secs
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let key = PseudonymKey::from_bytes([9; 32]);
    let big: usize = std::env::var("AUDIT_BENCH_ENTRIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("temp dir");

    println!("audit journal bench (machine shared with other work; figures are indicative)");
    // AUDIT_BENCH_VERIFY_ONLY skips the append figures (to profile verification).
    let verify_only = std::env::var_os("AUDIT_BENCH_VERIFY_ONLY").is_some();
    let j = JournalConfig::sqlite_file(&dir.path().join("appends.sqlite"))
        .build()
        .await
        .expect("journal");
    let mut written = 0;
    let cases: &[(usize, usize, usize, bool)] = if verify_only {
        &[]
    } else {
        &[
            (1, 1, 2_000, true),
            (64, 1, 100_000, true),
            (256, 1, 100_000, true),
            (8, 100, 200_000, true),
            (64, 1, 100_000, false),
            (8, 100, 200_000, false),
        ]
    };
    for &(tasks, per_call, total, with_subject) in cases {
        let (n, rate) = concurrent_appends(&j, tasks, per_call, total, &key, with_subject).await;
        written += n;
        let what = if with_subject {
            "subject + blind index"
        } else {
            "no subject           "
        };
        println!(
            "sqlite  append, {tasks:>3} tasks, {per_call:>3} entries per call, {what}: {rate:>9.0} entries/s"
        );
    }
    if !verify_only {
        let secs = verify(&j, written as u64).await;
        println!("sqlite  verify {written} entries: {secs:.2} s");
    }
    j.close().await;

    // AUDIT_BENCH_DIR keeps the big journal between runs (built once, verified each time).
    let keep = std::env::var_os("AUDIT_BENCH_DIR").map(std::path::PathBuf::from);
    let big_path = keep
        .clone()
        .unwrap_or_else(|| dir.path().to_owned())
        .join(format!("verify-{big}.sqlite"));
    let existed = big_path.exists();
    let j = JournalConfig::sqlite_file(&big_path)
        .build()
        .await
        .expect("journal");
    if !existed {
        let rate = build_chain(&j, big, &key).await;
        println!("sqlite  build {big} entries (append_batch of 10,000): {rate:>9.0} entries/s");
    }
    for _ in 0..3 {
        let secs = verify(&j, big as u64).await;
        println!(
            "sqlite  verify {big} entries: {secs:.2} s ({:.0} entries/s)",
            big as f64 / secs
        );
    }
    j.close().await;

    let Ok(url) = std::env::var("PASSERELLE_TEST_PG_URL")
        .map_err(|_| ())
        .and_then(|u| if verify_only { Err(()) } else { Ok(u) })
    else {
        eprintln!("postgres figures skipped: PASSERELLE_TEST_PG_URL is not set");
        return;
    };
    let name = format!("audit_bench_{}", std::process::id());
    let mut admin = PgConnection::connect(&url).await.expect("admin");
    admin
        .execute(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}")))
        .await
        .expect("drop");
    admin
        .execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .expect("create");
    let opts = PgConnectOptions::from_str(&url)
        .expect("url")
        .database(&name);
    let j = Journal::open_postgres(opts, 2_000).await.expect("journal");
    let (n, rate) = concurrent_appends(&j, 64, 1, 100_000, &key, true).await;
    println!(
        "postgres append,  64 tasks,   1 entries per call, subject + blind index: {rate:>9.0} entries/s"
    );
    let (m, rate) = concurrent_appends(&j, 8, 100, 100_000, &key, true).await;
    println!(
        "postgres append,   8 tasks, 100 entries per call, subject + blind index: {rate:>9.0} entries/s"
    );
    let pg_big = big.min(200_000);
    let rate = build_chain(&j, pg_big, &key).await;
    println!("postgres build {pg_big} entries (append_batch of 10,000): {rate:>9.0} entries/s");
    let total = n + m + pg_big;
    let secs = verify(&j, total as u64).await;
    println!(
        "postgres verify {total} entries: {secs:.2} s ({:.0} entries/s)",
        total as f64 / secs
    );
    j.close().await;
    let _ = admin
        .execute(AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)")))
        .await;
}
