//! Benchmarks of the server's hot paths: bumping a counter from a task, rendering
//! `/metrics`, computing the next scheduled time, and answering `/health` and
//! `/metrics` through the router.

use std::hint::black_box;

use axum::body::{Body, to_bytes};
use axum::http::Request;
use chrono::{DateTime, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use passerelle_server::{AppState, Metrics, Schedule, Status, Timezone, router};
use tower::ServiceExt;

fn metrics(c: &mut Criterion) {
    let m = Metrics::new();
    let sent = m
        .counter("passerelle_records_sent_total", "h", &["flow", "recipient"])
        .unwrap();
    let handle = sent.with(&["brsa-orientation", "ML080"]);
    c.bench_function("counter inc (kept handle)", |b| b.iter(|| handle.inc()));
    c.bench_function("counter with(labels) + inc", |b| {
        b.iter(|| sent.with(black_box(&["brsa-orientation", "ML080"])).inc())
    });
    // 12 flows x 40 recipients: a large département's series.
    for f in 0..12 {
        for r in 0..40 {
            sent.with(&[&format!("flow-{f}"), &format!("ML{r:03}")])
                .inc_by(1_000);
        }
    }
    c.bench_function("render 480 series", |b| b.iter(|| black_box(m.render())));
}

fn schedule(c: &mut Criterion) {
    let nightly = Schedule::parse("30 2 * * *", Timezone::EuropeParis).unwrap();
    let weekly = Schedule::parse("0 3 * * MON", Timezone::EuropeParis).unwrap();
    let leap = Schedule::parse("0 0 29 2 *", Timezone::Utc).unwrap();
    let t: DateTime<Utc> = "2026-10-24T12:00:00Z".parse().unwrap();
    c.bench_function("next_after daily Paris", |b| {
        b.iter(|| nightly.next_after(black_box(t)))
    });
    c.bench_function("next_after weekly Paris", |b| {
        b.iter(|| weekly.next_after(black_box(t)))
    });
    c.bench_function("next_after 29 Feb (worst case)", |b| {
        b.iter(|| leap.next_after(black_box(t)))
    });
}

fn routes(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let m = Metrics::new();
    let sent = m.counter("x_total", "h", &["flow"]).unwrap();
    for f in 0..100 {
        sent.with(&[&format!("flow-{f}")]).inc();
    }
    let app = router(AppState::new(Status::new("bench", 7).shared(), m));
    for uri in ["/health", "/metrics"] {
        c.bench_function(&format!("GET {uri} (oneshot)"), |b| {
            b.iter(|| {
                rt.block_on(async {
                    let resp = app
                        .clone()
                        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
                        .await
                        .unwrap();
                    black_box(to_bytes(resp.into_body(), 1 << 20).await.unwrap())
                })
            })
        });
    }
}

criterion_group!(benches, metrics, schedule, routes);
criterion_main!(benches);
