//! Hostile case 10 of issue 16: `state.sqlite` and `queue.sqlite` were 0644. Every file
//! the hub keeps under its data folder is 0600, in a 0700 folder, SQLite's `-wal` and
//! `-shm` files included, even when an older install left them readable.

use std::os::unix::fs::PermissionsExt;

use passerelle_runtime::config::HubConfig;
use passerelle_runtime::wiring::Hub;

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_folder_and_its_databases_are_private() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A former install: folder and state readable by all.
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(data.join("state.sqlite"), b"").unwrap();
    std::fs::set_permissions(
        data.join("state.sqlite"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let hub = Hub::open(&HubConfig::default(), &data).await.unwrap();
    hub.engine.state().set_cursor("x", "1").await.unwrap();
    assert_eq!(mode(&data), 0o700);
    let mut seen = 0;
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
            seen += 1;
        }
    }
    for name in ["state.sqlite", "queue.sqlite", "journal.sqlite"] {
        assert!(data.join(name).is_file(), "{name}");
    }
    assert!(seen >= 3);
    hub.close().await.unwrap();
}
