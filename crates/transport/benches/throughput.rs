//! Publish + consume throughput of 1 KiB persistent messages with confirms: the
//! RabbitMQ transport through the trait, raw lapin on the same broker in the same run
//! (so the ratio means something), and the embedded transport.
//!
//! `cargo bench -p passerelle-transport` with `PASSERELLE_TEST_AMQP_URL` set (the
//! RabbitMQ part is skipped without it). `PASSERELLE_BENCH_MESSAGES` sets the count
//! (default 20,000), `PASSERELLE_BENCH_ROUNDS` the rounds (default 3). Three sides run
//! in rotating order each round, each on its own quorum queue with the same arguments,
//! the same prefetch (500), one ack per message awaited, confirms pipelined by windows
//! of 5,000: raw lapin with minimal properties (message id, persistent), raw lapin
//! carrying the properties the trait used before its header moved into the body (JSON
//! header in a headers table, content type, timestamp: "raw+props"), and the trait
//! (same minimal properties as raw, header framed before the payload). Reported: each
//! round, the medians, the median of the per-round ratios, this client's CPU per
//! message (all threads, from /proc), and the load average.
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

/// CPU time used so far by this whole process (every thread), from /proc/self/stat.
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at state (field 3);
    // utime and stime are fields 14 and 15, in clock ticks of 10 ms on Linux.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    Duration::from_millis(10 * f.iter().sum::<u64>())
}

/// The machine's load averages (1, 5, 15 min): the figures mean little without them.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Throughput and this client's CPU cost of one phase.
#[derive(Clone, Copy, Default)]
struct Phase {
    rate: f64,
    /// Client CPU (all threads) per message, in microseconds.
    cpu_us: f64,
}

struct Clock(Instant, Duration);

impl Clock {
    fn start() -> Self {
        Self(Instant::now(), process_cpu())
    }
    fn stop(self, n: usize) -> Phase {
        Phase {
            rate: n as f64 / self.0.elapsed().as_secs_f64(),
            cpu_us: (process_cpu() - self.1).as_secs_f64() * 1e6 / n as f64,
        }
    }
}

fn envelopes(n: usize, recipient: &str) -> Vec<Envelope> {
    (0..n)
        .map(|_| Envelope::new("bench", "bench", recipient, vec![0x5a_u8; 1024]))
        .collect()
}

/// Publishes in windows of concurrent publishes, then consumes acking each one.
async fn through_trait(t: Arc<dyn Transport>, recipient: &str, n: usize) -> (Phase, Phase) {
    t.declare_recipient(recipient).await.unwrap();
    let all = envelopes(n, recipient);
    let clock = Clock::start();
    let mut it = all.into_iter().peekable();
    while it.peek().is_some() {
        let chunk: Vec<Envelope> = it.by_ref().take(WINDOW).collect();
        for r in t.publish_batch(chunk).await {
            r.unwrap();
        }
    }
    let publish = clock.stop(n);
    let mut sub = t.subscribe(recipient).await.unwrap();
    let clock = Clock::start();
    for _ in 0..n {
        let d = sub.next().await.unwrap();
        d.ack().await.unwrap();
    }
    let consume = clock.stop(n);
    sub.close(Duration::from_secs(5)).await.unwrap();
    (publish, consume)
}

/// The properties the trait used to put on a message (JSON header, content type,
/// timestamp), kept as a side to show what the header frame in the body saves.
fn trait_like_properties(recipient: &str) -> BasicProperties {
    let header = Envelope::new("bench", "bench", recipient, Vec::new()).header;
    let mut t = FieldTable::default();
    t.insert(
        "x-passerelle-header".into(),
        lapin::types::AMQPValue::LongString(serde_json::to_string(&header).unwrap().into()),
    );
    BasicProperties::default()
        .with_message_id(uuid::Uuid::now_v7().to_string().into())
        .with_content_type("application/octet-stream".into())
        .with_delivery_mode(2)
        .with_timestamp(0)
        .with_headers(t)
}

/// The same with lapin alone: pipelined confirms, one ack per message. With `same_props`
/// each message carries the trait's former properties (header as JSON) instead of only
/// a message id.
async fn raw_lapin(
    url: &str,
    prefix: &str,
    recipient: &str,
    n: usize,
    same_props: bool,
) -> (Phase, Phase) {
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
    let clock = Clock::start();
    let mut sent = 0;
    while sent < n {
        let mut pending = Vec::with_capacity(WINDOW);
        for _ in 0..WINDOW.min(n - sent) {
            let props = if same_props {
                trait_like_properties(recipient)
            } else {
                BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_message_id(uuid::Uuid::now_v7().to_string().into())
            };
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
    let publish = clock.stop(n);
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
    let clock = Clock::start();
    for _ in 0..n {
        let d = consumer.next().await.unwrap().unwrap();
        d.acker.ack(BasicAckOptions::default()).await.unwrap();
    }
    let consume = clock.stop(n);
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

/// Raw lapin (minimal properties), raw lapin with the trait's properties, and the trait,
/// each on its own queue with the same arguments, prefetch and ack mode, in interleaved
/// rounds; reports every round, the best of each and the median of the per-round ratios.
async fn rabbitmq(url: &str, n: usize) {
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let prefixes = [
        format!("bench-r-{tag}"),
        format!("bench-p-{tag}"),
        format!("bench-t-{tag}"),
    ];
    let mut cfgs = Vec::new();
    for prefix in &prefixes {
        let mut cfg = AmqpConfig::new(url);
        cfg.prefix = prefix.clone();
        cfg.prefetch = PREFETCH;
        // Same queues (quorum, same arguments) for every side; only the client differs.
        let t = cfg.build().await.unwrap();
        t.declare_recipient("bench").await.unwrap();
        t.close().await.unwrap();
        cfgs.push(cfg);
    }
    let t: Arc<dyn Transport> = Arc::new(cfgs[2].build().await.unwrap());
    println!("load average at the start: {}", loadavg());
    let rounds: usize = std::env::var("PASSERELLE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    // Rotate the order each round, so that no side always runs on a warmer broker or a
    // quieter machine.
    let mut results: [Vec<(Phase, Phase)>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for round in 0..rounds {
        for k in 0..3 {
            let side = (round + k) % 3;
            // Let the broker finish the previous side's background work (quorum log
            // compaction after 2n operations) before measuring the next.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let r = match side {
                0 => raw_lapin(url, &prefixes[0], "bench", n, false).await,
                1 => raw_lapin(url, &prefixes[1], "bench", n, true).await,
                _ => through_trait(t.clone(), "bench", n).await,
            };
            results[side].push(r);
        }
        let [raw, props, tr] = [&results[0][round], &results[1][round], &results[2][round]];
        println!(
            "round {round}: publish raw {:.0} / raw+props {:.0} / trait {:.0}, consume raw {:.0} / raw+props {:.0} / trait {:.0} msg/s",
            raw.0.rate, props.0.rate, tr.0.rate, raw.1.rate, props.1.rate, tr.1.rate
        );
    }
    t.close().await.unwrap();
    println!("load average at the end: {}", loadavg());
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let summary = |v: &[(Phase, Phase)]| {
        let m = |f: fn(&(Phase, Phase)) -> f64| median(v.iter().map(f).collect());
        (
            Phase {
                rate: m(|r| r.0.rate),
                cpu_us: m(|r| r.0.cpu_us),
            },
            Phase {
                rate: m(|r| r.1.rate),
                cpu_us: m(|r| r.1.cpu_us),
            },
        )
    };
    let [raw, props, tr] = &results;
    report(
        &format!("rabbitmq raw lapin (median of {rounds})"),
        n,
        summary(raw),
    );
    report(
        &format!("rabbitmq raw+props (median of {rounds})"),
        n,
        summary(props),
    );
    report(
        &format!("rabbitmq trait (median of {rounds})"),
        n,
        summary(tr),
    );
    for (what, base) in [("raw", raw), ("raw+props", props)] {
        let pairs = || base.iter().zip(tr.iter());
        println!(
            "trait / {what}, median of the per-round ratios: publish {:.0} %, consume {:.0} %",
            100.0 * median(pairs().map(|(r, t)| t.0.rate / r.0.rate).collect()),
            100.0 * median(pairs().map(|(r, t)| t.1.rate / r.1.rate).collect()),
        );
    }
    for (prefix, cfg) in prefixes.iter().zip(&cfgs) {
        delete_topology(url, prefix, "bench", cfg).await;
    }
}

fn report(what: &str, n: usize, (p, c): (Phase, Phase)) {
    println!(
        "{what:<32} {n:>7} msgs  publish {:>7.0} msg/s ({:>5.1} µs cpu/msg)  consume {:>7.0} msg/s ({:>5.1} µs cpu/msg)",
        p.rate, p.cpu_us, c.rate, c.cpu_us
    );
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
            Ok(url) if !url.is_empty() => rabbitmq(&url, n).await,
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
