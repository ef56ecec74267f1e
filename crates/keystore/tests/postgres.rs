//! The PostgreSQL key store on a real PostgreSQL (a fresh database on
//! `PASSERELLE_TEST_PG_URL`; under `CI` a missing PostgreSQL fails the test): two
//! keyrings over one store are two hub instances.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use passerelle_crypto::{CryptoErrorKind, Keyring, MasterKey, Route, open, seal};
use passerelle_keystore::{KeysConfig, PgKeyStore, StoreKind};
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection, Executor, Row};
use uuid::Uuid;

/// A fresh database and the folder of the test's files (master keys, data dirs).
struct World {
    url: String,
    dir: tempfile::TempDir,
}

async fn world() -> Option<World> {
    let admin = passerelle_testkit::service_url(
        "PASSERELLE_TEST_PG_URL",
        "run the test through scripts/test, which starts PostgreSQL",
    )?;
    let name = format!("keys_{}", Uuid::new_v4().simple());
    let mut c = PgConnection::connect(&admin).await.expect("connect admin");
    c.execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .expect("create test database");
    let _ = c.close().await;
    let (base, _) = admin.rsplit_once('/').expect("database in the url");
    Some(World {
        url: format!("{base}/{name}"),
        dir: tempfile::tempdir().unwrap(),
    })
}

impl World {
    /// A master key file (0600) holding `key`.
    fn master_file(&self, name: &str, key: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, format!("{key}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    fn config(&self, master_file: &Path) -> KeysConfig {
        let c = KeysConfig {
            store: StoreKind::Postgres,
            url: Some(self.url.clone()),
            master_key_file: Some(master_file.to_owned()),
            ..KeysConfig::default()
        };
        c.validate().unwrap();
        c
    }

    /// A hub instance: its own data directory.
    fn instance(&self, master_file: &Path) -> Keyring {
        let data = self.dir.path().join(Uuid::new_v4().to_string());
        self.config(master_file).open(&data).unwrap()
    }

    /// `passerelle keys` against the store.
    fn operator(&self, master_file: &Path) -> Keyring {
        let data = self.dir.path().join(Uuid::new_v4().to_string());
        self.config(master_file).open_for_writing(&data).unwrap()
    }

    async fn conn(&self) -> PgConnection {
        PgConnection::connect(&self.url).await.unwrap()
    }

    /// Every row of the key table as text, in order: "unchanged" means equal.
    async fn rows(&self) -> Vec<String> {
        let mut c = self.conn().await;
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
}

fn route() -> Route<'static> {
    Route {
        transfer_id: Uuid::new_v4(),
        flow: "brsa-orientation",
        sender: "CD059",
        schema: "passerelle.jeune/1",
    }
}

fn master_hex() -> String {
    let mut b = [0u8; 32];
    for (i, x) in b.iter_mut().enumerate() {
        *x = u8::try_from(i).unwrap() * 7 + 3;
    }
    hex::encode(b)
}

#[tokio::test]
async fn two_instances_share_envelopes_and_blind_indexes() {
    let Some(w) = world().await else { return };
    let m = w.master_file("master.key", &master_hex());
    let op = w.operator(&m);
    op.generate("59350S00").unwrap();
    assert!(op.init_pseudonym_key().unwrap());
    assert!(!op.init_pseudonym_key().unwrap(), "created once");
    let before = w.rows().await;

    let (a, b) = (w.instance(&m), w.instance(&m));
    assert!(!a.generates());
    let from_a = seal(&route(), &a.ensure("59350S00").unwrap(), b"from a").unwrap();
    let from_b = seal(&route(), &b.ensure("59350S00").unwrap(), b"from b").unwrap();
    assert_eq!(
        &**open(&from_a, &b.open_for("59350S00").unwrap()).unwrap(),
        b"from a"
    );
    assert_eq!(
        &**open(&from_b, &a.open_for("59350S00").unwrap()).unwrap(),
        b"from b"
    );

    let (pa, pb) = (a.pseudonym_key().unwrap(), b.pseudonym_key().unwrap());
    assert_eq!(
        pa.blind_index("nir", "180057512345678"),
        pb.blind_index("nir", "180057512345678")
    );
    assert_eq!(pa.pseudonym("hub-1"), pb.pseudonym("hub-1"));
    assert_eq!(a.orgs().unwrap(), ["59350S00"]);
    // The instances only read.
    assert_eq!(w.rows().await, before);
}

#[tokio::test]
async fn a_wrong_master_key_is_refused_and_says_so() {
    let Some(w) = world().await else { return };
    let right = w.master_file("right.key", &master_hex());
    let wrong = w.master_file("wrong.key", &"ab".repeat(32));
    w.operator(&right).generate("CD059").unwrap();
    w.operator(&right).init_pseudonym_key().unwrap();
    let before = w.rows().await;

    let b = w.instance(&wrong);
    let expected_right = MasterKey::from_hex(&master_hex(), "t").unwrap();
    let expected_wrong = MasterKey::from_hex(&"ab".repeat(32), "t").unwrap();
    for e in [
        b.open_for("CD059").unwrap_err(),
        b.pseudonym_key().unwrap_err(),
        b.ensure("CD062").unwrap_err(),
    ] {
        assert_eq!(e.kind(), CryptoErrorKind::MasterKey, "{e}");
        let text = e.to_string();
        assert!(text.contains(expected_right.id()), "{text}");
        assert!(text.contains(expected_wrong.id()), "{text}");
        assert!(!text.contains(&master_hex()) && !text.contains(&"ab".repeat(32)));
    }
    // Nor may the keys command write under another master key.
    let op = w.operator(&wrong);
    assert_eq!(
        op.rotate("CD059").unwrap_err().kind(),
        CryptoErrorKind::MasterKey
    );
    assert_eq!(
        op.generate("CD062").unwrap_err().kind(),
        CryptoErrorKind::MasterKey
    );
    assert_eq!(w.rows().await, before);

    // A master key file others can read is refused before anything is tried.
    let loose = w.master_file("loose.key", &master_hex());
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = w.config(&loose).open(w.dir.path()).unwrap_err();
    assert_eq!(e.kind(), CryptoErrorKind::MasterKey);
    assert!(e.to_string().contains("read by others"), "{e}");
    let garbage = w.master_file("garbage.key", "not a key at all");
    let e = w.config(&garbage).open(w.dir.path()).unwrap_err();
    assert!(e.to_string().contains("64 hex characters"), "{e}");
}

#[tokio::test]
async fn a_missing_key_is_an_error_and_nothing_is_generated() {
    let Some(w) = world().await else { return };
    let m = w.master_file("master.key", &master_hex());

    // An empty store: not even the table is created by an instance.
    let a = w.instance(&m);
    let e = a.pseudonym_key().unwrap_err();
    assert_eq!(e.kind(), CryptoErrorKind::Missing);
    assert!(e.to_string().contains("passerelle keys generate"), "{e}");
    let e = a.ensure("59350S00").unwrap_err();
    assert_eq!(e.kind(), CryptoErrorKind::Missing);
    assert!(e.to_string().contains("`59350S00`"), "{e}");
    assert!(
        e.to_string()
            .contains("passerelle keys generate --org 59350S00"),
        "{e}"
    );
    assert!(w.rows().await.is_empty());
    let mut c = w.conn().await;
    let exists: bool = sqlx::query("SELECT to_regclass('passerelle_keys') IS NOT NULL")
        .fetch_one(&mut c)
        .await
        .unwrap()
        .get(0);
    assert!(!exists, "an instance never creates the key table");

    // A store with one organisation: another one is still missing, and stays so.
    w.operator(&m).generate("CD059").unwrap();
    let before = w.rows().await;
    let e = a.ensure("59350S00").unwrap_err();
    assert_eq!(e.kind(), CryptoErrorKind::Missing);
    assert_eq!(
        a.pseudonym_key().unwrap_err().kind(),
        CryptoErrorKind::Missing
    );
    assert_eq!(w.rows().await, before);
    assert!(
        !a.dir().join("pseudonym.key.json").exists(),
        "no pseudonym key generated in the instance's own folder"
    );
}

#[tokio::test]
async fn the_table_holds_no_key_material_in_clear() {
    let Some(w) = world().await else { return };
    let m = w.master_file("master.key", &master_hex());
    let op = w.operator(&m);
    op.generate("CD059").unwrap();
    op.rotate("CD059").unwrap();
    op.generate("59350S00").unwrap();
    op.init_pseudonym_key().unwrap();

    let a = w.instance(&m);
    let mut secrets: Vec<Vec<u8>> = Vec::new();
    for org in ["CD059", "59350S00"] {
        for k in a.open_for(org).unwrap().keys() {
            secrets.push(k.expose_bytes().to_vec());
        }
    }
    secrets.push(a.pseudonym_key().unwrap().expose_bytes().to_vec());
    secrets.push(hex::decode(master_hex()).unwrap());
    assert_eq!(secrets.len(), 5);

    let mut c = w.conn().await;
    // The heap file itself, as PostgreSQL wrote it to disk.
    c.execute("CHECKPOINT").await.unwrap();
    let raw: Vec<u8> = sqlx::query(
        "SELECT pg_read_binary_file(current_setting('data_directory') || '/' || pg_relation_filepath('passerelle_keys'))",
    )
    .fetch_one(&mut c)
    .await
    .unwrap()
    .get(0);
    assert!(!raw.is_empty());
    let text = w.rows().await.join("\n");
    assert_eq!(w.rows().await.len(), 4);
    for s in &secrets {
        assert!(
            !raw.windows(32).any(|win| win == s.as_slice()),
            "key bytes in the heap file"
        );
        let h = hex::encode(s);
        assert!(!text.contains(&h), "key hex in a row");
        assert!(!raw.windows(64).any(|win| win == h.as_bytes()));
    }
}

#[tokio::test]
async fn rotation_reaches_every_instance_and_old_envelopes_still_open() {
    let Some(w) = world().await else { return };
    let m = w.master_file("master.key", &master_hex());
    let op = w.operator(&m);
    let first = op.generate("CD059").unwrap();
    let (a, b) = (w.instance(&m), w.instance(&m));
    let old = seal(&route(), &a.open_for("CD059").unwrap(), b"old").unwrap();

    let rotated = op.rotate("CD059").unwrap();
    assert_eq!(rotated.all, vec![first.id.clone(), rotated.id.clone()]);
    let keys_b = b.open_for("CD059").unwrap();
    assert_eq!(keys_b.current().id(), rotated.id);
    let new = seal(&route(), &keys_b, b"new").unwrap();
    assert_eq!(new.header().key_id, rotated.id);
    let keys_a = a.open_for("CD059").unwrap();
    assert_eq!(&**open(&new, &keys_a).unwrap(), b"new");
    assert_eq!(&**open(&old, &keys_a).unwrap(), b"old");
    assert_eq!(&**open(&old, &keys_b).unwrap(), b"old");

    // Two rotations at once lose no key (the table lock serialises them).
    let ops: Vec<Keyring> = (0..4).map(|_| w.operator(&m)).collect();
    std::thread::scope(|s| {
        for o in &ops {
            s.spawn(|| o.rotate("CD059").unwrap());
        }
    });
    assert_eq!(a.open_for("CD059").unwrap().keys().len(), 6);
    assert_eq!(
        &**open(&old, &a.open_for("CD059").unwrap()).unwrap(),
        b"old"
    );
}

#[tokio::test]
async fn a_row_moved_to_another_organisation_does_not_open() {
    let Some(w) = world().await else { return };
    let m = w.master_file("master.key", &master_hex());
    let op = w.operator(&m);
    op.generate("CD059").unwrap();
    let mut c = w.conn().await;
    c.execute("UPDATE passerelle_keys SET org = 'CD062'")
        .await
        .unwrap();
    let e = w.instance(&m).open_for("CD062").unwrap_err();
    assert_eq!(e.kind(), CryptoErrorKind::Keyring);
    assert!(e.to_string().contains("altered or moved"), "{e}");
    assert!(e.to_string().contains("`CD062`"), "{e}");
}

#[tokio::test]
async fn debug_display_and_errors_show_no_key_bytes_nor_password() {
    let Some(w) = world().await else { return };
    let m = w.master_file("master.key", &master_hex());
    let op = w.operator(&m);
    op.generate("CD059").unwrap();
    op.init_pseudonym_key().unwrap();
    let a = w.instance(&m);
    let keys = a.open_for("CD059").unwrap();
    let pseudo = a.pseudonym_key().unwrap();
    let master = MasterKey::from_hex(&master_hex(), "t").unwrap();
    let store = PgKeyStore::new(&w.url, master.clone()).unwrap();
    let mut shown = vec![
        format!("{a:?}"),
        a.to_string(),
        format!("{store:?}"),
        store.to_string(),
        format!("{master:?}"),
        master.to_string(),
        format!("{keys:?}"),
        format!("{:?}", w.config(&m)),
    ];
    // A server that does not answer, reached with a password in the URL.
    let unreachable = PgKeyStore::new(
        "postgres://hub:s3cret-pass@127.0.0.1:1/keys",
        master.clone(),
    )
    .unwrap();
    shown.push(unreachable.to_string());
    shown.push(format!("{unreachable:?}"));
    let e = passerelle_crypto::KeyStore::load_org(&unreachable, "CD059").unwrap_err();
    shown.push(e.to_string());
    shown.push(format!("{e:?}"));
    let config = KeysConfig {
        url: Some("postgres://hub:s3cret-pass@db/keys".into()),
        ..w.config(&m)
    };
    shown.push(format!("{config:?}"));

    let mut secrets: Vec<String> = keys
        .keys()
        .iter()
        .map(|k| hex::encode(k.expose_bytes()))
        .collect();
    secrets.push(hex::encode(pseudo.expose_bytes()));
    secrets.push(master_hex());
    secrets.push("s3cret".into());
    for s in &shown {
        for secret in &secrets {
            assert!(!s.contains(secret.as_str()), "{s}");
        }
    }
    assert!(store.to_string().contains("passerelle_keys"), "{store}");
}
