//! Several hub instances over one key store, as `passerelle.toml`'s `[keys]` selects
//! it: the hub never generates a key there (a missing one stops it, naming the
//! organisation and the command to run), `passerelle keys` generates, rotates and
//! imports into it, and two instances then hold the same keys. On real PostgreSQL
//! (under `CI` a missing PostgreSQL fails the test) and on a shared folder.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use passerelle_crypto::Keyring;
use passerelle_runtime::config::HubConfig;
use passerelle_runtime::wiring::Hub;
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection, Executor, Row};

const MASTER: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

async fn database() -> Option<String> {
    let admin = passerelle_testkit::service_url(
        "PASSERELLE_TEST_PG_URL",
        "run the test through scripts/test, which starts PostgreSQL",
    )?;
    let name = format!("clikeys_{}", uuid::Uuid::new_v4().simple());
    let mut c = PgConnection::connect(&admin).await.unwrap();
    c.execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap();
    let _ = c.close().await;
    let (base, _) = admin.rsplit_once('/').unwrap();
    Some(format!("{base}/{name}"))
}

/// `passerelle --config CONFIG --data-dir DATA ARGS…`.
fn passerelle(config: &Path, data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_passerelle"))
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Every file under a folder and its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(snapshot(&p));
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

async fn table_rows(url: &str) -> Vec<String> {
    let mut c = PgConnection::connect(url).await.unwrap();
    let exists: bool = sqlx::query("SELECT to_regclass('passerelle_keys') IS NOT NULL")
        .fetch_one(&mut c)
        .await
        .unwrap()
        .get(0);
    if !exists {
        return Vec::new();
    }
    sqlx::query("SELECT t::text FROM passerelle_keys t ORDER BY kind, org, seq")
        .fetch_all(&mut c)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn instances_over_postgres_never_generate_and_share_what_keys_generates() {
    let Some(url) = database().await else { return };
    let root = tempfile::tempdir().unwrap();
    let master = root.path().join("master.key");
    std::fs::write(&master, MASTER).unwrap();
    std::fs::set_permissions(&master, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config_path = root.path().join("passerelle.toml");
    std::fs::write(
        &config_path,
        format!(
            "[keys]\nstore = \"postgres\"\nurl = \"{url}\"\nmaster_key_file = \"{}\"\n",
            master.display()
        ),
    )
    .unwrap();
    let config = HubConfig::load(&config_path).unwrap();
    let (a_dir, b_dir, op_dir) = (
        root.path().join("a"),
        root.path().join("b"),
        root.path().join("operator"),
    );

    // An empty store: the instance stops, names the organisation and the command,
    // and nothing was generated, neither in the store nor in its data directory.
    let e = format!("{:#}", Hub::open(&config, &a_dir).await.unwrap_err());
    assert!(e.contains("`HUB-REVUE`"), "{e}");
    assert!(
        e.contains("passerelle keys generate --org HUB-REVUE"),
        "{e}"
    );
    assert!(!e.contains(MASTER), "{e}");
    assert!(table_rows(&url).await.is_empty());
    let local = snapshot(&a_dir.join("keyring"));
    assert!(local.is_empty(), "{:?}", local.keys());

    // The operator generates into the store; the pseudonym key comes with it.
    let out = ok(&passerelle(
        &config_path,
        &op_dir,
        &["keys", "generate", "--org", "HUB-REVUE"],
    ));
    assert!(out.contains("generated the pseudonym key"), "{out}");
    assert!(out.contains("PostgreSQL table passerelle_keys"), "{out}");
    assert!(!out.contains(MASTER), "{out}");
    ok(&passerelle(
        &config_path,
        &op_dir,
        &["keys", "generate", "--org", "CD059"],
    ));
    let before = table_rows(&url).await;
    assert_eq!(before.len(), 3);

    let a = Hub::open(&config, &a_dir).await.unwrap();
    let b = Hub::open(&config, &b_dir).await.unwrap();
    assert_eq!(
        a.keyring
            .pseudonym_key()
            .unwrap()
            .blind_index("nir", "180057512345678"),
        b.keyring
            .pseudonym_key()
            .unwrap()
            .blind_index("nir", "180057512345678")
    );
    a.ensure_keys("CD059").unwrap();
    let e = format!("{:#}", b.ensure_keys("59350S00").unwrap_err());
    assert!(e.contains("passerelle keys generate --org 59350S00"), "{e}");
    assert_eq!(
        table_rows(&url).await,
        before,
        "the instances wrote nothing"
    );
    assert!(!a_dir.join("keyring/pseudonym.key.json").exists());
    assert!(!a_dir.join("keyring/CD059.keys.json").exists());

    // The DPO's lookup on an instance reads the pseudonym key from the store too.
    let out = ok(&passerelle(
        &config_path,
        &a_dir,
        &["audit", "subject", "--nir", "180057512345627"],
    ));
    assert!(!out.is_empty());
    assert!(!a_dir.join("keyring/pseudonym.key.json").exists());

    // Rotation by the operator is seen by a running instance's keyring.
    ok(&passerelle(
        &config_path,
        &op_dir,
        &["keys", "rotate", "--org", "CD059"],
    ));
    assert_eq!(a.keyring.open_for("CD059").unwrap().keys().len(), 2);
    let list = ok(&passerelle(&config_path, &op_dir, &["keys", "list"]));
    assert!(list.contains("CD059\tcurrent CD059-k2-"), "{list}");
    a.close().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test]
async fn a_one_machine_keyring_is_imported_into_postgres_unchanged() {
    let Some(url) = database().await else { return };
    let root = tempfile::tempdir().unwrap();
    // The hub as it ran on one machine.
    let old = root.path().join("old");
    let ring = Keyring::open(&old).unwrap();
    ring.generate("CD059").unwrap();
    ring.rotate("CD059").unwrap();
    let pseudonym = ring.pseudonym_key().unwrap();

    let config_path = root.path().join("passerelle.toml");
    std::fs::write(
        &config_path,
        format!(
            "[keys]\nstore = \"postgres\"\nurl = \"{url}\"\nmaster_key_env = \"TEST_PASSERELLE_MASTER\"\n"
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_passerelle"))
            .env("TEST_PASSERELLE_MASTER", MASTER)
            .arg("--config")
            .arg(&config_path)
            .arg("--data-dir")
            .arg(root.path().join("operator"))
            .args(args)
            .output()
            .unwrap()
    };
    let out = ok(&run(&["keys", "import", "--from", old.to_str().unwrap()]));
    assert!(out.contains("CD059: 2 key(s) added"), "{out}");
    assert!(out.contains("pseudonym key copied: yes"), "{out}");
    // Again: nothing to add, nothing changed.
    let before = table_rows(&url).await;
    let out = ok(&run(&["keys", "import", "--from", old.to_str().unwrap()]));
    assert!(out.contains("CD059: 0 key(s) added"), "{out}");
    assert_eq!(table_rows(&url).await, before);

    // Another hub's keyring would change the blind indexes: refused.
    let other = root.path().join("other");
    Keyring::open(&other).unwrap().pseudonym_key().unwrap();
    let out = run(&["keys", "import", "--from", other.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("another pseudonym key"));
    assert_eq!(table_rows(&url).await, before);

    // Without the master key the command says which variable is missing.
    let out = passerelle(&config_path, &root.path().join("x"), &["keys", "list"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TEST_PASSERELLE_MASTER"));

    let store = passerelle_crypto::MasterKey::from_hex(MASTER, "test").unwrap();
    let pg = passerelle_keystore::PgKeyStore::new(&url, store).unwrap();
    let shared = Keyring::shared(root.path().join("a"), std::sync::Arc::new(pg)).unwrap();
    assert_eq!(shared.pseudonym_key().unwrap(), pseudonym);
    let old_keys = ring.open_for("CD059").unwrap();
    let new_keys = shared.open_for("CD059").unwrap();
    let ids = |k: &passerelle_crypto::OrgKeys| {
        k.keys()
            .iter()
            .map(|k| k.id().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&new_keys), ids(&old_keys));
}

#[tokio::test]
async fn instances_over_a_shared_folder_only_read_it() {
    let root = tempfile::tempdir().unwrap();
    let shared = root.path().join("mounted-keys");
    let config_path = root.path().join("passerelle.toml");
    std::fs::write(
        &config_path,
        format!(
            "[keys]\nstore = \"shared-folder\"\npath = \"{}\"\n",
            shared.display()
        ),
    )
    .unwrap();
    let config = HubConfig::load(&config_path).unwrap();

    let e = format!(
        "{:#}",
        Hub::open(&config, &root.path().join("a"))
            .await
            .unwrap_err()
    );
    assert!(e.contains("does not exist"), "{e}");
    assert!(
        !shared.exists(),
        "the hub does not create the shared folder"
    );

    let op = root.path().join("operator");
    ok(&passerelle(
        &config_path,
        &op,
        &["keys", "generate", "--org", "HUB-REVUE"],
    ));
    let before = snapshot(&shared);
    assert!(before.contains_key(&shared.join("pseudonym.key.json")));

    let a = Hub::open(&config, &root.path().join("a")).await.unwrap();
    let b = Hub::open(&config, &root.path().join("b")).await.unwrap();
    assert_eq!(
        a.keyring.pseudonym_key().unwrap(),
        b.keyring.pseudonym_key().unwrap()
    );
    let e = format!("{:#}", a.ensure_keys("CD059").unwrap_err());
    assert!(
        e.contains("`CD059`") && e.contains("passerelle keys generate --org CD059"),
        "{e}"
    );
    assert_eq!(
        snapshot(&shared),
        before,
        "the instances wrote nothing there"
    );
    a.close().await.unwrap();
    b.close().await.unwrap();
}
