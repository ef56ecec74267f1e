//! An I-MILO night read from the change-event queue: the API serves only the 150 oldest
//! unacknowledged events, so the night acks each page once its changes are published
//! and reads the next, until the queue is empty — not one page a night.

use std::path::Path;
use std::process::{Command, Output};

use passerelle_world::{World, WorldOptions};

fn sync(config: &Path, data: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_passerelle"))
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .args(["sync", "--format", "json"])
        .output()
        .unwrap()
}

async fn pending(addr: std::net::SocketAddr) -> u64 {
    let v: serde_json::Value = reqwest::get(format!("http://{addr}/sim/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["events_pending"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_night_reads_the_whole_queue_page_after_page() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let mut world = World::start(dir.path(), &WorldOptions::new(400, 31))
        .await
        .unwrap();
    let config = dir.path().join("passerelle.toml");
    let toml = world.config_toml().replacen(
        "reconcile_every_days = 0\n",
        "reconcile_every_days = 7\n",
        1,
    );
    std::fs::write(&config, toml).unwrap();
    let data = dir.path().join("hub");

    // The first night is the full load, through the listings.
    let out = sync(&config, &data);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = pending(world.imilo_addr).await;
    assert!(before > 300, "one event per dossier at least: {before}");

    // The next one reads the queue: every page, each acked once handed on.
    let out = sync(&config, &data);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(pending(world.imilo_addr).await, 0, "{summary}");
    // Nothing changed in the dossiers since the full load: nothing sent again.
    for (flow, f) in summary["flows"].as_object().unwrap() {
        if flow == "of-signalement" {
            assert_eq!(f["sent"]["sent"], 0, "{flow}: {summary}");
        }
    }
    world.stop().await;
}
