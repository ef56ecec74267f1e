//! `passerelle serve` as an operator runs it, against the simulated world: a night at
//! start-up delivered by the consumers, health, readiness, metrics and status, an
//! unsigned FAJ webhook refused and journaled, and a clean stop on SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use passerelle_runtime::config::HubConfig;
use passerelle_world::{World, WorldOptions};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_a_night_answers_probes_and_stops_cleanly() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let mut world = World::start(dir.path(), &WorldOptions::new(150, 3))
        .await
        .unwrap();
    let port = free_port();
    let toml = format!(
        "{}\n[server]\nlisten = \"127.0.0.1:{port}\"\n",
        world.config_toml()
    );
    // The file another process reads says what the world is.
    let parsed = HubConfig::from_toml(&toml).unwrap();
    assert_eq!(
        parsed.imilo.as_ref().unwrap().structures,
        world.config.imilo.as_ref().unwrap().structures
    );
    assert_eq!(parsed.departements.len(), 1);
    let config = dir.path().join("passerelle.toml");
    std::fs::write(&config, toml).unwrap();
    let data = dir.path().join("hub");

    let mut child = Command::new(env!("CARGO_BIN_EXE_passerelle"))
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .args(["serve", "--night-now"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();

    // The night runs before the server listens; wait for both.
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        assert!(Instant::now() < deadline, "serve never reported a night");
        if let Ok(r) = http.get(format!("{base}/api/status")).send().await {
            let v: serde_json::Value = r.json().await.unwrap();
            if v.to_string().contains("brsa-orientation") {
                break v;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let text = status.to_string();
    assert!(!text.contains("Martin") && !text.contains('@'), "{text}");

    let health = http.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = http.get(format!("{base}/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "{}", ready.text().await.unwrap());

    // The consumers deliver what the night sent.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let m = http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if m.lines().any(|l| {
            l.starts_with("passerelle_deliveries_total{")
                && l.contains("flow=\"brsa-orientation\"")
                && l.contains("status=\"applied\"")
        }) {
            break;
        }
        assert!(Instant::now() < deadline, "no delivery counted:\n{m}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // A webhook without its signature is refused.
    let refused = http
        .post(format!("{base}/hooks/faj"))
        .body(r#"{"id_demande":"FAJ-059-2026-000001","statut":"ACCORDEE"}"#)
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    // SIGTERM: a clean stop.
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "serve did not stop");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(exit.success(), "serve exited with {exit:?}");

    // The refusal is in the journal, and the journal is intact.
    let out = Command::new(env!("CARGO_BIN_EXE_passerelle"))
        .arg("--data-dir")
        .arg(&data)
        .args([
            "audit",
            "export",
            "--from",
            "2000-01-01",
            "--to",
            "2100-01-01",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let export = String::from_utf8_lossy(&out.stdout);
    // One entry for the window, with its counts (flushed when serving stopped).
    assert!(export.contains("webhooks refused"), "{export}");
    assert!(export.contains("missing_signature=1"), "{export}");
    let verify = Command::new(env!("CARGO_BIN_EXE_passerelle"))
        .arg("--data-dir")
        .arg(&data)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(verify.status.success());
    world.stop().await;
}
