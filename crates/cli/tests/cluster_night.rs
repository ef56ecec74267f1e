//! One night at a time across the instances sharing a PostgreSQL state: a `sync` on
//! another data folder (another machine) finds the night another instance holds, says
//! who holds it and since when, and exits 4; once it ended, the `sync` runs. Real
//! PostgreSQL on `PASSERELLE_TEST_PG_URL` (under `CI`, a missing one fails).

use std::process::Command;
use std::time::Duration;

use passerelle_hub::HubState;
use passerelle_world::{World, WorldOptions};
use sqlx::{Connection, Executor};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_on_another_machine_says_a_night_is_running_then_runs() {
    let Ok(admin) = std::env::var("PASSERELLE_TEST_PG_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "PASSERELLE_TEST_PG_URL is not set and CI is: PostgreSQL tests cannot be skipped"
        );
        return;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let name = format!("clicluster_{}", uuid::Uuid::new_v4().simple());
    let mut c = sqlx::postgres::PgConnection::connect(&admin).await.unwrap();
    c.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap();
    let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);

    let dir = tempfile::tempdir().unwrap();
    let world = World::start(dir.path(), &WorldOptions::new(5, 23))
        .await
        .unwrap();
    let config = dir.path().join("passerelle.toml");
    std::fs::write(&config, world.config_toml()).unwrap();
    let sync = |data: &str, wait: &str| {
        Command::new(env!("CARGO_BIN_EXE_passerelle"))
            .env("PASSERELLE_STATE_URL", &url)
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join(data))
            .args(["sync", "--format", "json", "--wait", wait])
            .output()
            .unwrap()
    };

    // Another instance, on another machine, holds tonight's night.
    let other = HubState::connect(&url).await.unwrap();
    let held = other
        .night_lock("hub-2 (pid 4242)", Duration::ZERO)
        .await
        .unwrap();
    let out = sync("hub-1", "1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "a night is running on hub-2 (pid 4242) since {}",
            held.since()
        )),
        "{stderr}"
    );
    held.release().await;
    let out = sync("hub-1", "0");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    other.close().await;
    drop(world);
    let _ = c
        .execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .await;
}
