//! Publish + consume throughput of 1 KiB persistent messages with confirms: the
//! RabbitMQ transport through the trait, raw lapin on the same broker in the same run
//! (so the ratio means something), and the embedded transport.
//!
//! `cargo bench -p passerelle-transport` with `PASSERELLE_TEST_AMQP_URL` set (the
//! RabbitMQ part is skipped without it). `PASSERELLE_BENCH_MESSAGES` sets the count.
#![allow(clippy::print_stdout, clippy::print_stderr)] // A bench reports by printing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Confirmation};
use passerelle_transport::amqp::AmqpConfig;
use passerelle_transport::amqp::topology::Names;
use passerelle_transport::embedded::EmbeddedConfig;
use passerelle_transport::{Envelope, Transport};

const WINDOW: usize = 5_000;
const PREFETCH: u16 = 500;

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn envelopes(n: usize, recipient: &str) -> Vec<Envelope> {
    (0..n)
        .map(|_| Envelope::new("bench", "bench", recipient, vec![0x5a_u8; 1024]))
        .collect()
}

/// Publishes in windows of concurrent publishes, then consumes acking each one.
async fn through_trait(t: Arc<dyn Transport>, recipient: &str, n: usize) -> (f64, f64) {
    t.declare_recipient(recipient).await.unwrap();
    let all = envelopes(n, recipient);
    let start = Instant::now();
    let mut it = all.into_iter().peekable();
    while it.peek().is_some() {
        let chunk: Vec<Envelope> = it.by_ref().take(WINDOW).collect();
        for r in t.publish_batch(chunk).await {
            r.unwrap();
        }
    }
    let publish = rate(n, start.elapsed());
    let mut sub = t.subscribe(recipient).await.unwrap();
    let start = Instant::now();
    for _ in 0..n {
        let d = sub.next().await.unwrap();
        d.ack().await.unwrap();
    }
    let consume = rate(n, start.elapsed());
    sub.close(Duration::from_secs(5)).await.unwrap();
    (publish, consume)
}

/// The same with lapin alone: pipelined confirms, one ack per message.
async fn raw_lapin(url: &str, prefix: &str, recipient: &str, n: usize) -> (f64, f64) {
    let names = Names::new(prefix);
    let conn = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let payload = vec![0x5a_u8; 1024];
    let exchange = names.work();
    let start = Instant::now();
    let mut sent = 0;
    while sent < n {
        let mut pending = Vec::with_capacity(WINDOW);
        for _ in 0..WINDOW.min(n - sent) {
            let props = BasicProperties::default()
                .with_delivery_mode(2)
                .with_message_id(uuid::Uuid::now_v7().to_string().into());
            pending.push(
                ch.basic_publish(
                    exchange.as_str().into(),
                    recipient.into(),
                    BasicPublishOptions {
                        mandatory: true,
                        immediate: false,
                    },
                    &payload,
                    props,
                )
                .await
                .unwrap(),
            );
            sent += 1;
        }
        for c in futures::future::join_all(pending).await {
            assert!(matches!(c.unwrap(), Confirmation::Ack(None)));
        }
    }
    let publish = rate(n, start.elapsed());
    let cch = conn.create_channel().await.unwrap();
    cch.basic_qos(PREFETCH, BasicQosOptions::default())
        .await
        .unwrap();
    let mut consumer = cch
        .basic_consume(
            names.queue(recipient).as_str().into(),
            "bench".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let start = Instant::now();
    for _ in 0..n {
        let d = consumer.next().await.unwrap().unwrap();
        d.acker.ack(BasicAckOptions::default()).await.unwrap();
    }
    let consume = rate(n, start.elapsed());
    let _ = conn.close(200, "OK".into()).await;
    (publish, consume)
}

async fn delete_topology(url: &str, prefix: &str, recipient: &str, cfg: &AmqpConfig) {
    let names = Names::new(prefix);
    let conn = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let mut queues = vec![names.queue(recipient), names.dead_queue(recipient)];
    queues.extend(cfg.retry_delays_ms.iter().map(|ms| names.retry(*ms)));
    for q in queues {
        let _ = ch.queue_delete(q.as_str().into(), Default::default()).await;
    }
    let mut exchanges = vec![names.work(), names.requeue(), names.dead()];
    exchanges.extend(cfg.retry_delays_ms.iter().map(|ms| names.retry(*ms)));
    for e in exchanges {
        let _ = ch
            .exchange_delete(e.as_str().into(), Default::default())
            .await;
    }
    let _ = conn.close(200, "OK".into()).await;
}

fn report(what: &str, n: usize, (p, c): (f64, f64)) {
    println!("{what:<28} {n:>7} msgs  publish {p:>9.0} msg/s  consume {c:>9.0} msg/s");
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // `cargo bench` passes --bench; nothing else to parse.
    let n: usize = std::env::var("PASSERELLE_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!("1 KiB persistent messages, confirms pipelined (window {WINDOW}), one ack per message");
        match std::env::var("PASSERELLE_TEST_AMQP_URL") {
            Ok(url) if !url.is_empty() => {
                let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
                let trait_prefix = format!("bench-t-{tag}");
                let raw_prefix = format!("bench-r-{tag}");
                let mut cfg = AmqpConfig::new(&url);
                cfg.prefix = trait_prefix.clone();
                cfg.prefetch = PREFETCH;
                let mut raw_cfg = cfg.clone();
                raw_cfg.prefix = raw_prefix.clone();
                // Same queues (quorum, same arguments) for both; only the client differs.
                let raw_t = raw_cfg.build().await.unwrap();
                raw_t.declare_recipient("bench").await.unwrap();
                raw_t.close().await.unwrap();
                // Alternate, so that neither side always runs on a warmer broker or a
                // quieter machine; report the best round of each and the median ratio.
                let t: Arc<dyn Transport> = Arc::new(cfg.build().await.unwrap());
                let rounds: usize = std::env::var("PASSERELLE_BENCH_ROUNDS")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(3);
                let (mut raws, mut traits) = (Vec::new(), Vec::new());
                for _ in 0..rounds {
                    raws.push(raw_lapin(&url, &raw_prefix, "bench", n).await);
                    traits.push(through_trait(t.clone(), "bench", n).await);
                }
                t.close().await.unwrap();
                let best = |v: &[(f64, f64)]| {
                    v.iter()
                        .fold((0.0_f64, 0.0_f64), |a, b| (a.0.max(b.0), a.1.max(b.1)))
                };
                let median = |mut v: Vec<f64>| {
                    v.sort_by(f64::total_cmp);
                    v[v.len() / 2]
                };
                let raw = best(&raws);
                let tr = best(&traits);
                report(&format!("rabbitmq raw lapin (best of {rounds})"), n, raw);
                report(&format!("rabbitmq trait (best of {rounds})"), n, tr);
                println!(
                    "trait / raw, best: publish {:.0} %, consume {:.0} %",
                    100.0 * tr.0 / raw.0,
                    100.0 * tr.1 / raw.1
                );
                let pairs = raws.iter().zip(&traits);
                println!(
                    "trait / raw, median of rounds: publish {:.0} %, consume {:.0} %",
                    100.0 * median(pairs.clone().map(|(r, t)| t.0 / r.0).collect()),
                    100.0 * median(pairs.map(|(r, t)| t.1 / r.1).collect())
                );
                delete_topology(&url, &trait_prefix, "bench", &cfg).await;
                delete_topology(&url, &raw_prefix, "bench", &raw_cfg).await;
            }
            _ => println!("rabbitmq: skipped, set PASSERELLE_TEST_AMQP_URL (deploy/rabbitmq/rabbitmq.sh start DIR PORT)"),
        }
        let dir = tempfile::tempdir().unwrap();
        for fsync in [true, false] {
            let mut cfg = EmbeddedConfig::new(dir.path().join(format!("bench-{fsync}.sqlite")));
            cfg.fsync = fsync;
            cfg.prefetch = 500;
            let t: Arc<dyn Transport> = Arc::new(cfg.build().await.unwrap());
            let r = through_trait(t.clone(), "bench", n).await;
            t.close().await.unwrap();
            report(
                if fsync { "embedded synchronous=FULL" } else { "embedded synchronous=NORMAL" },
                n,
                r,
            );
        }
    });
}
