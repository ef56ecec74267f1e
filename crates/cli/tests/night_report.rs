//! What the night's report and `passerelle config check` say about files a folder
//! source never reads: a CNAF file under a name no pattern takes is named in both,
//! never skipped without a word.

use std::path::Path;
use std::process::{Command, Output};

use passerelle_world::{World, WorldOptions};

fn run(config: &Path, data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_passerelle"))
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_no_pattern_takes_are_in_the_night_report_and_the_config_check() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let mut world = World::start(dir.path(), &WorldOptions::new(20, 29))
        .await
        .unwrap();
    let config = dir.path().join("passerelle.toml");
    std::fs::write(&config, world.config_toml()).unwrap();
    let data = dir.path().join("hub");
    let stray = "flux_beneficiaires_mars.xml";
    std::fs::write(dir.path().join("peers/cnaf").join(stray), b"<Racine/>").unwrap();

    let out = run(&config, &data, &["config", "check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("departement 059 cnaf"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("1 file(s) not read"), "{line}");
    assert!(line.contains(stray), "{line}");
    assert!(line.contains("departement.cnaf.patterns"), "{line}");

    let out = run(&config, &data, &["sync", "--format", "json"]);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(
        summary["not_read"]["cnaf:CD059"],
        serde_json::json!([stray]),
        "{summary}"
    );
    // The table says it too, after the flows.
    let out = run(&config, &data, &["sync"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains(&format!(
            "not read: cnaf:CD059: 1 file(s) no name pattern takes: {stray}"
        )),
        "{table}"
    );
    // Still there, untouched: it is the operator's to rename.
    assert!(dir.path().join("peers/cnaf").join(stray).exists());
    world.stop().await;
}
