//! Receipts a sender can act on, through the whole hub: a département drops a list in
//! its box (with its sentinel and checksum), a night runs, and the ACK file says line
//! by line what became of each row, including the rows the hub refused after reading
//! them; `passerelle receipts` names each transfer by the place in the sender's file.
//! The same file dropped again gets its own ACK and leaves the first one as it was.

use std::path::Path;
use std::process::{Command, Output};

use passerelle_box::folder::LocalFolder;
use passerelle_world::{BOX_PARTENAIRE, World, WorldOptions};

const NAME: &str = "BRSA_LISTE_059_CD059_20261201080000.csv";

/// Line 2 and 3: oriented to the box's ML (sent). Line 4: a date that does not exist
/// (refused by the reader). Line 5: oriented to the CD itself, which no flow takes to
/// a Mission Locale (refused by the hub after reading). Line 6: cut short.
const LIST: &str = "N° CAF;Rôle;Civilité;Nom;Nom de naissance;Prénom;Date de naissance;NIR;Adresse;Code postal;Ville;Téléphone;Email;Date ouverture droits;Etat droit;Soumis D&D;Orientation;Structure référente;Référent\r
7000001;DEM;MME;Zéphirine;;Aude;12/03/2004;;1 rue des Arts;59000;Lille;;;01/09/2025;2;O;SOCIO_PRO;59350S00;Claire Durand\r
7000002;DEM;M;Quentaro;;Bastien;01/02/2003;;2 rue des Bois;59000;Lille;;;01/09/2025;2;O;SOCIO_PRO;59350S00;Claire Durand\r
7000003;DEM;M;Ulvane;;Cyril;31/02/2003;;3 rue des Cygnes;59000;Lille;;;01/09/2025;2;O;SOCIO_PRO;59350S00;Claire Durand\r
7000004;DEM;MME;Wexford;;Doria;05/05/2002;;4 rue des Dunes;59000;Lille;;;01/09/2025;2;O;SOCIAL;CD059;\r
7000005;DEM;MME;Yssingeaux;;Elsa;06/06/2002\r
";

fn run(config: &Path, data: &Path, args: &[&str]) -> Output {
    run_on(None, config, data, args)
}

/// `passerelle`, the hub state at `state` when given (`PASSERELLE_STATE_URL`).
fn run_on(state: Option<&str>, config: &Path, data: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_passerelle"));
    match state {
        Some(url) => cmd.env("PASSERELLE_STATE_URL", url),
        None => cmd.env_remove("PASSERELLE_STATE_URL"),
    };
    cmd.arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .unwrap()
}

/// The ACK's rows by line: (statut, code_erreur, message).
fn ack_rows(path: &Path) -> std::collections::BTreeMap<u64, (String, String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.trim_start_matches('\u{feff}')
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.trim_end().splitn(4, ';').collect();
            (
                f[0].parse().unwrap(),
                // A message holding `;` is quoted (no `"` inside in these files).
                (
                    f[1].to_owned(),
                    f[2].to_owned(),
                    f[3].trim_matches('"').to_owned(),
                ),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_box_list_through_the_hub_gets_a_true_ack_and_receipts_by_line() {
    box_list_and_receipts(None).await;
}

/// The same with the hub's state in PostgreSQL (`PASSERELLE_STATE_URL`): the night
/// and `passerelle receipts` find it there, and no state file is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_box_list_through_the_hub_on_a_postgres_state() {
    let Ok(admin) = std::env::var("PASSERELLE_TEST_PG_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "PASSERELLE_TEST_PG_URL is not set and CI is: PostgreSQL tests cannot be skipped"
        );
        return;
    };
    use sqlx::{Connection, Executor};
    let name = format!("clireceipts_{}", uuid::Uuid::new_v4().simple());
    let mut c = sqlx::postgres::PgConnection::connect(&admin).await.unwrap();
    c.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap();
    let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
    box_list_and_receipts(Some(&url)).await;
    let _ = c
        .execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .await;
}

async fn box_list_and_receipts(state_url: Option<&str>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let mut world = World::start(dir.path(), &WorldOptions::new(20, 23))
        .await
        .unwrap();
    let config = dir.path().join("passerelle.toml");
    std::fs::write(&config, world.config_toml()).unwrap();
    let data = dir.path().join("hub");
    let box_root = dir.path().join("peers/box");
    let folder = LocalFolder::new(&box_root);
    let drop = || {
        passerelle_box::sim::drop_file(
            &folder,
            BOX_PARTENAIRE,
            NAME,
            LIST.as_bytes(),
            Default::default(),
        )
        .unwrap()
    };
    drop();

    let out = run_on(state_url, &config, &data, &["sync", "--format", "json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let retour = box_root.join(BOX_PARTENAIRE).join("retour");
    let first_path = retour.join("ACK_BRSA_LISTE_059_CD059_20261201080000.csv");
    let ack = ack_rows(&first_path);
    let text = std::fs::read_to_string(&first_path).unwrap();
    assert_eq!(
        ack.keys().copied().collect::<Vec<_>>(),
        [2, 3, 4, 5, 6],
        "{text}"
    );
    assert_eq!(ack[&2].0, "OK", "{text}");
    assert_eq!(ack[&3].0, "OK", "{text}");
    assert_eq!(
        (ack[&4].0.as_str(), ack[&4].1.as_str()),
        ("KO", "CHAMP_INVALIDE"),
        "{text}"
    );
    assert!(ack[&4].2.contains("etat_civil.date_naissance"), "{text}");
    // Read well, refused later: the ACK says so, with the hub's reason.
    assert_eq!(
        (ack[&5].0.as_str(), ack[&5].1.as_str()),
        ("KO", "SANS_DESTINATAIRE"),
        "{text}"
    );
    assert_eq!(
        ack[&5].2, "brsa-orientation: oriented to an organisation that is not a Mission Locale",
        "{text}"
    );
    // The night's summary counts the unrouted by reason.
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let reasons = &summary["flows"]["brsa-orientation"]["unrouted_reasons"];
    assert!(
        reasons["oriented to an organisation that is not a Mission Locale"]
            .as_u64()
            .is_some_and(|n| n >= 1),
        "{summary}"
    );
    assert_eq!(
        (ack[&6].0.as_str(), ack[&6].1.as_str()),
        ("KO", "NOMBRE_COLONNES"),
        "{text}"
    );
    // No personal value in the ACK.
    for v in ["Zéphirine", "Wexford", "7000004", "31/02/2003", "Lille"] {
        assert!(!text.contains(v), "{v} in {text}");
    }

    // The CD's receipts name each transfer by its line in the CD's file.
    let out = run_on(
        state_url,
        &config,
        &data,
        &[
            "receipts",
            "--sender",
            "CD059",
            "--flow",
            "brsa-orientation",
            "--format",
            "json",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mine: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| {
            l["sender_ref"]
                .as_str()
                .is_some_and(|r| r.starts_with(NAME))
        })
        .collect();
    let refs: Vec<&str> = mine
        .iter()
        .map(|l| l["sender_ref"].as_str().unwrap())
        .collect();
    assert_eq!(mine.len(), 2, "{refs:?}");
    assert!(refs.contains(&format!("{NAME}:2").as_str()), "{refs:?}");
    assert!(refs.contains(&format!("{NAME}:3").as_str()), "{refs:?}");
    for l in &mine {
        assert_eq!(l["recipient"], BOX_PARTENAIRE, "{l}");
        assert_eq!(l["flow"], "brsa-orientation", "{l}");
        assert!(l["date"].as_str().unwrap().ends_with('Z'), "{l}");
        assert!(l["status"].is_string(), "{l}");
    }
    // The table has the same columns, for a person.
    let out = run_on(
        state_url,
        &config,
        &data,
        &["receipts", "--sender", "CD059"],
    );
    let table = String::from_utf8_lossy(&out.stdout);
    let head = table.lines().next().unwrap();
    for col in [
        "date",
        "flow",
        "recipient",
        "sender reference",
        "status",
        "reason",
    ] {
        assert!(head.contains(col), "{head}");
    }
    assert!(table.contains(&format!("{NAME}:2")), "{table}");

    // An ML's own transfers (its reports of young people out of training, read from
    // I-MILO) are named by its dossier number, kept sealed and opened for the receipt.
    let out = run_on(
        state_url,
        &config,
        &data,
        &["receipts", "--sender", BOX_PARTENAIRE, "--format", "json"],
    );
    let ml: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!ml.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    for l in &ml {
        let r = l["sender_ref"].as_str().unwrap_or_else(|| panic!("{l}"));
        assert!(
            !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()),
            "a dossier number: {l}"
        );
    }
    // Stored sealed: the ML's dossier numbers, and the CD's places since they go with
    // the person's initials ("Mes envois" shows them); the receipts above opened them.
    let state = match state_url {
        None => passerelle_hub::HubState::open(&data.join("state.sqlite")).await,
        Some(url) => {
            assert!(!data.join("state.sqlite").exists(), "no state file");
            passerelle_hub::HubState::connect(url).await
        }
    }
    .unwrap();
    let stored = state.receipts_of(BOX_PARTENAIRE, None).await.unwrap();
    assert_eq!(stored.len(), ml.len());
    for r in &stored {
        let s = r.sender_ref.as_deref().unwrap();
        assert!(s.starts_with("sealed:"), "{s}");
    }
    let cd = state
        .receipts_of("CD059", Some("brsa-orientation"))
        .await
        .unwrap();
    assert!(!cd.is_empty());
    for r in &cd {
        let s = r.sender_ref.as_deref().unwrap();
        assert!(s.starts_with("sealed:") && !s.contains(NAME), "{s}");
    }
    state.close().await;

    // The very same file again: its own ACK, and the first one untouched.
    drop();
    let out = run_on(state_url, &config, &data, &["sync", "--format", "json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&first_path).unwrap(), text);
    let second = ack_rows(&retour.join("ACK_BRSA_LISTE_059_CD059_20261201080000_2.csv"));
    assert_eq!(second.len(), 1);
    assert_eq!(
        (second[&0].0.as_str(), second[&0].1.as_str()),
        ("OK", "DOUBLON")
    );
    world.stop().await;
}

/// Issue 15, item 5: the real Drôme-style list, through its shipped mapping, dropped
/// as a département would (sentinel, checksum) into a box: the rows go to the Mission
/// Locale of their postcode, and the ACK says line by line what became of each,
/// including the rows the hub refused after reading them, for want of a route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drome_list_routes_by_postcode_and_its_ack_says_what_became_of_each_row() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    // 2,600 I-MILO dossiers: two Missions Locales of the Nord, Lille and Valenciennes.
    let mut opts = WorldOptions::new(20, 37);
    opts.imilo = 2_600;
    let mut world = World::start(dir.path(), &opts).await.unwrap();
    let structures = &world.config.imilo.as_ref().unwrap().structures;
    assert_eq!(structures[..2], ["59350S00", "59606S00"]);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mapping = root.join("schemas/mappings/cd026_usagers.toml");
    let real = root.join("connectors/box/tests/real/fichier_usager_600_lignes.csv");
    // Valenciennes takes the postcodes starting with 1; Lille the rest of the Nord's.
    let toml = format!(
        "{}\n[[territoires.ml]]\ncode = \"59606S00\"\ncodes_postaux = [\"1\"]\ndefaut = false\n\n[[departement.box]]\nurl = \"file://{}\"\npartenaire = \"59606S00\"\nstate_dir = \"{}\"\nmapping = \"{}\"\n",
        world.config_toml(),
        dir.path().join("peers/box2").display(),
        dir.path().join("box2-state").display(),
        mapping.display()
    );
    let config = dir.path().join("passerelle.toml");
    std::fs::write(&config, toml).unwrap();
    let data = dir.path().join("hub");
    let name = "BRSA_LISTE_059_CD059_20261201090000.csv";
    let bytes = std::fs::read(&real).unwrap();
    let folder = LocalFolder::new(dir.path().join("peers/box2"));
    passerelle_box::sim::drop_file(&folder, "59606S00", name, &bytes, Default::default()).unwrap();

    let out = run(&config, &data, &["sync", "--format", "json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ack_path = dir
        .path()
        .join("peers/box2/59606S00/retour/ACK_BRSA_LISTE_059_CD059_20261201090000.csv");
    let ack = ack_rows(&ack_path);
    let text = std::fs::read_to_string(&ack_path).unwrap();
    assert_eq!(ack.len(), 600, "{text}");
    assert_eq!(*ack.keys().next().unwrap(), 2);
    assert_eq!(*ack.keys().last().unwrap(), 601);
    let ok: Vec<u64> = ack
        .iter()
        .filter(|(_, r)| r.0 == "OK")
        .map(|(l, _)| *l)
        .collect();
    let unrouted: Vec<u64> = ack
        .iter()
        .filter(|(_, r)| r.1 == "SANS_DESTINATAIRE")
        .map(|(l, _)| *l)
        .collect();
    assert!(!ok.is_empty() && !unrouted.is_empty(), "{text}");
    for l in &unrouted {
        assert_eq!(ack[l].0, "KO");
        assert!(ack[l].2.starts_with("brsa-orientation: "), "{}", ack[l].2);
    }
    for (l, r) in &ack {
        assert!(r.0 == "OK" || r.0 == "KO", "line {l}: {r:?}");
    }

    // The postcode of each line of the file (line 1 is the header).
    let csv = String::from_utf8_lossy(&bytes).into_owned();
    let cp: std::collections::BTreeMap<u64, String> = csv
        .lines()
        .enumerate()
        .skip(1)
        .map(|(i, l)| (i as u64 + 1, l.split(';').nth(6).unwrap_or("").to_owned()))
        .collect();
    let out = run(
        &config,
        &data,
        &[
            "receipts",
            "--sender",
            "CD059",
            "--flow",
            "brsa-orientation",
            "--format",
            "json",
        ],
    );
    let mine: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| {
            l["sender_ref"]
                .as_str()
                .is_some_and(|r| r.starts_with(name))
        })
        .collect();
    assert!(!mine.is_empty());
    let mut to_valenciennes = 0;
    for r in &mine {
        let line: u64 = r["sender_ref"]
            .as_str()
            .unwrap()
            .rsplit_once(':')
            .unwrap()
            .1
            .parse()
            .unwrap();
        assert!(
            ok.contains(&line),
            "a transfer for a line the ACK says OK: {r}"
        );
        let want = if cp[&line].starts_with('1') {
            to_valenciennes += 1;
            "59606S00"
        } else {
            "59350S00"
        };
        assert_eq!(r["recipient"], want, "line {line} ({}): {r}", cp[&line]);
    }
    assert!(to_valenciennes > 0 && to_valenciennes < mine.len());
    // The rows refused for want of a route live where neither ML serves.
    for l in &unrouted {
        assert!(
            !cp[l].starts_with('1') && !cp[l].starts_with("59"),
            "line {l}: {}",
            cp[l]
        );
        assert!(
            ack[l].2.contains("no Mission Locale serves the postcode"),
            "{}",
            ack[l].2
        );
    }
    world.stop().await;
}
