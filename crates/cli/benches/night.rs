//! The night benchmark (issue 17, item 5): a simulated world of 100,000 young people
//! (or `PASSERELLE_BENCH_JEUNES`) spread over I-MILO, SOLIS, CNAF and the box, the
//! département's orientations spread over its Missions Locales; one full night through
//! the real wiring (`hub::Night`), then a second night with no change, on RabbitMQ and
//! on the embedded transport; the raw throughput of the same transport measured in the
//! same run.
//!
//! `cargo bench -p passerelle-cli --bench night`. Knobs: `PASSERELLE_BENCH_JEUNES`
//! (total young people, default 100000), `PASSERELLE_BENCH_RAW` (messages of the raw
//! transport run, default 20000), `PASSERELLE_BENCH_MODES` (`rabbitmq,embedded`),
//! `PASSERELLE_BENCH_AMQP_URL` or `PASSERELLE_TEST_AMQP_URL` (RabbitMQ mode; skipped
//! with a printed line when neither is set), `PASSERELLE_BENCH_VERBOSE` (phases and
//! per-flow counts).
//!
//! The simulators run in a process of their own (`world` child: the I-MILO and FAJ
//! servers, the folder peers, SOLIS answering its imports when asked), and each night
//! of each mode in another (`night` child), so that a night's time and peak memory
//! (VmHWM) are the hub's own.
#![allow(clippy::print_stdout, clippy::print_stderr)] // A bench reports by printing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use passerelle_hub::{NightReport, Progress};
use passerelle_runtime::config::{HubConfig, TransportKind};
use passerelle_runtime::wiring::{self, Hub};
use passerelle_transport::amqp::AmqpConfig;
use passerelle_transport::{Envelope, Transport};
use passerelle_world::{World, WorldOptions};

const ROLE_VAR: &str = "PASSERELLE_BENCH_CHILD";
const MODE_VAR: &str = "PASSERELLE_BENCH_CHILD_MODE";
const NIGHT_VAR: &str = "PASSERELLE_BENCH_CHILD_NIGHT";
const DIR_VAR: &str = "PASSERELLE_BENCH_CHILD_DIR";
const WORLD_VAR: &str = "PASSERELLE_BENCH_CHILD_WORLD";

fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    if let Ok(role) = std::env::var(ROLE_VAR) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        return match role.as_str() {
            "world" => rt.block_on(world_child()),
            _ => rt.block_on(night_child()),
        };
    }
    let modes =
        std::env::var("PASSERELLE_BENCH_MODES").unwrap_or_else(|_| "rabbitmq,embedded".into());
    println!(
        "night bench: {} young people, load average {} ({} cores)",
        jeunes(),
        loadavg(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for mode in modes.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        if mode == "rabbitmq" && amqp_url().is_none() {
            println!(
                "rabbitmq: skipped (set PASSERELLE_BENCH_AMQP_URL or PASSERELLE_TEST_AMQP_URL)"
            );
            continue;
        }
        // One process per night: each peak (VmHWM) is that night's own, and the
        // second night starts from the stored state only, as a real one does.
        let dir = tempfile::tempdir()?;
        for night in ["1", "2"] {
            // Night 2 starts a fresh world with the same seed: the same people exported
            // again, nothing changed.
            let world_dir = dir.path().join(format!("world{night}"));
            let mut world = spawn_world(&world_dir)?;
            let status = Command::new(std::env::current_exe()?)
                .env(ROLE_VAR, "night")
                .env(MODE_VAR, mode)
                .env(NIGHT_VAR, night)
                .env(DIR_VAR, dir.path())
                .env(WORLD_VAR, &world_dir)
                .status()
                .context("cannot run the bench child")?;
            stop_world(&world_dir, &mut world)?;
            if !status.success() {
                bail!("{mode}: the bench child of night {night} failed ({status})");
            }
        }
    }
    Ok(())
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn jeunes() -> u64 {
    env_u64("PASSERELLE_BENCH_JEUNES", 100_000)
}

fn verbose() -> bool {
    std::env::var_os("PASSERELLE_BENCH_VERBOSE").is_some()
}

fn amqp_url() -> Option<String> {
    std::env::var("PASSERELLE_BENCH_AMQP_URL")
        .or_else(|_| std::env::var("PASSERELLE_TEST_AMQP_URL"))
        .ok()
        .filter(|u| !u.is_empty())
}

/// The world's sizes: a quarter of the young people in each system (CNAF households
/// give about 1.5 records each), orientations spread over the département's MLs.
fn world_options(total: u64) -> WorldOptions {
    let quarter = (total / 4).max(1);
    let mut o = WorldOptions::new(quarter, 7);
    o.imilo = quarter;
    o.solis = quarter;
    o.cnaf_foyers = (quarter * 2 / 3).max(1);
    o.box_rows = quarter;
    o.spread = true;
    o
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Peak resident memory of this process so far, in MiB (VmHWM).
fn peak_rss_mib() -> f64 {
    proc_status_mib("VmHWM:")
}

/// Where memory goes, with `PASSERELLE_BENCH_VERBOSE`.
fn memory_at(when: &str) {
    if verbose() {
        eprintln!(
            "  memory {when}: rss {:.0} MiB, peak {:.0} MiB",
            proc_status_mib("VmRSS:"),
            peak_rss_mib()
        );
    }
}

fn proc_status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Waits for a file to appear (a child's signal).
fn wait_for(path: &Path, what: &str, child: Option<&mut Child>) -> Result<()> {
    let started = Instant::now();
    let mut child = child;
    while !path.exists() {
        if let Some(c) = child.as_deref_mut()
            && let Some(status) = c.try_wait()?
        {
            bail!("{what}: the process ended ({status})");
        }
        if started.elapsed() > Duration::from_secs(1800) {
            bail!("{what}: timed out");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Starts the simulators in a process of their own, under `dir`; returns once they
/// serve and their configuration is written.
fn spawn_world(dir: &Path) -> Result<Child> {
    std::fs::create_dir_all(dir)?;
    let mut child = Command::new(std::env::current_exe()?)
        .env(ROLE_VAR, "world")
        .env(WORLD_VAR, dir)
        .spawn()
        .context("cannot start the world")?;
    wait_for(&dir.join("ready"), "the world", Some(&mut child))?;
    Ok(child)
}

fn stop_world(dir: &Path, child: &mut Child) -> Result<()> {
    std::fs::write(dir.join("stop"), b"")?;
    child.wait()?;
    Ok(())
}

/// The simulators' process: starts the world, writes its `passerelle.toml`, then
/// answers requests (`answer`: SOLIS processes the hub's imports) until `stop`.
async fn world_child() -> Result<()> {
    let dir = PathBuf::from(std::env::var_os(WORLD_VAR).context("no world folder")?);
    let mut world = World::start(&dir, &world_options(jeunes())).await?;
    std::fs::write(dir.join("passerelle.toml"), world.config_toml())?;
    std::fs::write(dir.join("ready"), b"")?;
    loop {
        if dir.join("answer").exists() {
            world.solis_answers()?;
            std::fs::remove_file(dir.join("answer"))?;
            std::fs::write(dir.join("answered"), b"")?;
        }
        if dir.join("stop").exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    world.stop().await;
    Ok(())
}

/// Publishes then consumes `n` 1 KiB messages through `transport`; messages/s over
/// both phases (publish in chunks as the engine does, acknowledge each delivery).
async fn raw_throughput(transport: &dyn Transport, n: u64) -> Result<(f64, f64, f64)> {
    let recipient = "BENCHRAW";
    transport.declare_recipient(recipient).await?;
    let payload = vec![0x5a_u8; 1024];
    let started = Instant::now();
    let mut left = n;
    while left > 0 {
        let k = left.min(512);
        left -= k;
        let batch: Vec<Envelope> = (0..k)
            .map(|_| Envelope::new("bench", "BENCH", recipient, payload.clone()))
            .collect();
        for r in transport.publish_batch(batch).await {
            r?;
        }
    }
    let publish = started.elapsed();
    let started = Instant::now();
    let mut sub = transport.subscribe(recipient).await?;
    for _ in 0..n {
        let d = tokio::time::timeout(Duration::from_secs(30), sub.next())
            .await
            .context("raw consume stalled")??;
        d.ack().await?;
    }
    sub.close(Duration::from_secs(5)).await?;
    let consume = started.elapsed();
    let rate = |d: Duration| n as f64 / d.as_secs_f64().max(1e-9);
    Ok((rate(publish), rate(consume), rate(publish + consume)))
}

struct Figures {
    read: u64,
    sent: u64,
    unchanged: u64,
    delivered: u64,
    seconds: f64,
}

fn figures(report: &NightReport, seconds: f64, read: u64) -> Figures {
    let mut f = Figures {
        read,
        sent: 0,
        unchanged: 0,
        delivered: 0,
        seconds,
    };
    for r in report.flows.values() {
        f.sent += r.sent.sent;
        f.unchanged += r.sent.unchanged;
        f.delivered += r.delivered.settled();
    }
    f
}

/// One night through `hub`: plan, run, with SOLIS answering in between. Returns the
/// report, the seconds and the records read per source (a record read once feeds
/// several flows: the flows' `read` counts it under each).
async fn night(config: &HubConfig, world_dir: &Path, hub: &Hub) -> Result<(NightReport, f64, u64)> {
    let started = Instant::now();
    let verbose = verbose();
    let read: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());
    let progress = |p: Progress<'_>| match p {
        Progress::Read {
            source, read: n, ..
        } => {
            read.lock()
                .expect("not poisoned")
                .insert(source.to_owned(), n);
        }
        Progress::SourceDone { source, flow, .. } if verbose => {
            eprintln!(
                "  {:6.2} s  source {source} done ({flow})",
                started.elapsed().as_secs_f64()
            );
        }
        Progress::Delivered { recipient, summary } if verbose => {
            eprintln!(
                "  {:6.2} s  delivered to {recipient}: {}",
                started.elapsed().as_secs_f64(),
                summary.settled()
            );
        }
        _ => {}
    };
    let mut night = wiring::plan(config, hub, &[]).await?;
    if verbose {
        eprintln!("  {:6.2} s  planned", started.elapsed().as_secs_f64());
    }
    let between = || -> std::result::Result<(), wiring::BoxError> {
        // SOLIS (in the world's process) answers the night's imports.
        std::fs::write(world_dir.join("answer"), b"")?;
        wait_for(&world_dir.join("answered"), "SOLIS answers", None)?;
        std::fs::remove_file(world_dir.join("answered"))?;
        if verbose {
            eprintln!(
                "  {:6.2} s  SOLIS answered",
                started.elapsed().as_secs_f64()
            );
        }
        Ok(())
    };
    let report = night
        .run_with(&hub.engine, &progress, Some(&between))
        .await?;
    let records = read.lock().expect("not poisoned").values().sum();
    Ok((report, started.elapsed().as_secs_f64(), records))
}

fn configure(config: &mut HubConfig, mode: &str, run: &str) -> Result<()> {
    match mode {
        "embedded" => config.transport.kind = TransportKind::Embedded,
        "rabbitmq" => {
            let mut c = AmqpConfig::new(amqp_url().context("no RabbitMQ URL")?);
            // A prefix of its own: queues left by another run are not read.
            c.prefix = format!("bench{run}");
            config.transport.kind = TransportKind::Rabbitmq;
            config.transport.rabbitmq = Some(c);
        }
        other => bail!("unknown mode {other}"),
    }
    Ok(())
}

/// One night, in a process of its own: the hub, pointed at the world's process.
async fn night_child() -> Result<()> {
    let mode = std::env::var(MODE_VAR).context("no mode")?;
    let first = std::env::var(NIGHT_VAR).as_deref() != Ok("2");
    let dir = PathBuf::from(std::env::var_os(DIR_VAR).context("no bench folder")?);
    let world_dir = PathBuf::from(std::env::var_os(WORLD_VAR).context("no world folder")?);
    // The same run id for both nights: night 2 reads the queues night 1 declared.
    let run = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("run")
        .replace(|c: char| !c.is_ascii_alphanumeric(), "");
    let name = if first { "night 1" } else { "night 2" };
    let text = std::fs::read_to_string(world_dir.join("passerelle.toml"))?;
    let mut config = HubConfig::from_toml(&text)?;
    configure(&mut config, &mode, &run)?;
    let hub = Hub::open(&config, &dir.join("hub")).await?;
    memory_at("after the hub opened");
    let raw = if first {
        let raw_n = env_u64("PASSERELLE_BENCH_RAW", 20_000);
        let (p, c, both) = raw_throughput(hub.transport.as_ref(), raw_n).await?;
        println!(
            "{mode}: raw transport {raw_n} x 1 KiB: publish {p:.0}/s, consume {c:.0}/s, both {both:.0}/s"
        );
        std::fs::write(dir.join(format!("raw-{mode}")), both.to_string())?;
        both
    } else {
        std::fs::read_to_string(dir.join(format!("raw-{mode}")))?
            .trim()
            .parse()?
    };
    let load = loadavg();
    let (report, seconds, read) = night(&config, &world_dir, &hub).await?;
    memory_at("after the night");
    let f = figures(&report, seconds, read);
    if !report.completed() {
        eprintln!("{mode}: warning: {name} did not complete every flow");
    }
    hub.close().await?;
    let rate = f.delivered.max(f.read) as f64 / f.seconds.max(1e-9);
    let transfers_rate = f.delivered as f64 / f.seconds.max(1e-9);
    println!(
        "{mode}: {name}: read {} records, {} transfers sent, {} unchanged, {} delivered, {:.1} s, {:.0} records/s, transfers {:.2} of raw, peak RSS {:.0} MiB (load before {load}, after {})",
        f.read,
        f.sent,
        f.unchanged,
        f.delivered,
        f.seconds,
        f.read as f64 / f.seconds.max(1e-9),
        transfers_rate / raw,
        peak_rss_mib(),
        loadavg()
    );
    let _ = rate;
    let p = &report.phases;
    println!(
        "    phases: answers {:.1} s, sources and deliveries {:.1} s, replies {:.1} s, answers {:.1} s",
        p.answers_before, p.sources, p.replies, p.answers_after
    );
    if verbose() {
        for (flow, r) in &report.flows {
            println!(
                "    {flow}: read {} unrouted {} sent {} unchanged {} denied {} not_known {} delivered {:?}",
                r.read,
                r.unrouted,
                r.sent.sent,
                r.sent.unchanged,
                r.sent.denied,
                r.sent.not_known,
                r.delivered
            );
        }
    }
    if !first {
        check_size(&dir);
    }
    Ok(())
}

/// The size of what the run left on disk, for the record.
fn check_size(dir: &Path) {
    fn size(p: &Path) -> u64 {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => std::fs::read_dir(p)
                .map(|rd| rd.flatten().map(|e| size(&e.path())).sum())
                .unwrap_or(0),
            Ok(m) => m.len(),
            Err(_) => 0,
        }
    }
    println!(
        "  hub data folder: {:.0} MiB",
        size(&dir.join("hub")) as f64 / 1048576.0
    );
}
