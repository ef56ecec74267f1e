//! The DPO's commands from the outside (the binary): a wrong folder is refused and
//! left as it was; the Art. 15 report is in French and journaled; anchors catch a cut
//! tail; purge keeps to the retentions, dry-runs and wants confirmation.

use std::path::Path;
use std::process::{Command, Stdio};

use passerelle_audit::{Event, JournalConfig, Lookup, NewEntry, Outcome, Subject};
use passerelle_crypto::Keyring;
use passerelle_model::Nir;

fn passerelle(cwd: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_passerelle"))
        .current_dir(cwd)
        .args(args)
        .env_remove("PASSERELLE_DATA_DIR")
        .env_remove("PASSERELLE_JOURNAL_URL")
        .env_remove("PASSERELLE_FLOWS")
        .env_remove("PASSERELLE_CONFIG")
        .env_remove("PASSERELLE_ANCHOR_FILE")
        .env("USER", "dpo-test")
        .stdin(Stdio::null())
        .output()
        .expect("run passerelle");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const READERS: &[&[&str]] = &[
    &["audit", "verify"],
    &["audit", "subject", "--nir", "2040359350123"],
    &[
        "audit",
        "export",
        "--from",
        "2026-01-01",
        "--to",
        "2026-12-31",
        "--format",
        "csv",
    ],
    &["audit", "purge", "--before", "2000-01-01", "--dry-run"],
    &["audit", "purge", "--before", "2000-01-01", "--yes"],
    &["audit", "anchor"],
    &["receipts", "--sender", "CD059"],
    &["bilan"],
];

#[test]
fn a_wrong_folder_is_refused_by_name_and_stays_empty() {
    let cwd = tempfile::tempdir().unwrap();
    std::fs::create_dir(cwd.path().join("empty")).unwrap();
    let abs = std::fs::canonicalize(cwd.path()).unwrap();
    for folder in ["empty", "missing"] {
        for args in READERS {
            let mut all = vec!["--data-dir", folder];
            all.extend_from_slice(args);
            let (code, stdout, stderr) = passerelle(cwd.path(), &all);
            assert_eq!(code, 2, "{args:?} in {folder}: {stdout} {stderr}");
            let named = abs.join(folder).display().to_string();
            assert!(stderr.contains(&named), "{args:?}: {stderr}");
            assert!(!stdout.contains("intact"), "{args:?}: {stdout}");
        }
        let p = cwd.path().join(folder);
        if folder == "empty" {
            assert_eq!(
                std::fs::read_dir(&p).unwrap().count(),
                0,
                "{folder} stays empty"
            );
        } else {
            assert!(!p.exists(), "{folder} is not created");
        }
    }
    // The working folder itself got nothing either (no default folder, no config).
    let names: Vec<_> = std::fs::read_dir(cwd.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("empty")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dpo_answers_verifies_anchors_and_purges_within_retention() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(
        cwd.path().join("passerelle.toml"),
        "[organisations]\n\"59350S00\" = \"Mission Locale de Lille\"\n",
    )
    .unwrap();
    let ring = Keyring::open(&data).unwrap();
    let key = ring.pseudonym_key().unwrap();
    let nir = Nir::parse("2040359350123").unwrap();
    let journal_path = data.join("journal.sqlite");
    let j = JournalConfig::sqlite_file(&journal_path)
        .build()
        .await
        .unwrap();
    for event in [Event::Published, Event::Delivered, Event::Applied] {
        let mut e = NewEntry::new(event, "system", Outcome::Ok);
        e.flow = Some("brsa-orientation".into());
        e.sender = Some("CD059".into());
        e.recipient = Some("59350S00".into());
        e.subject = Some(Subject::new(&key, "hub-1").with(&key, &Lookup::Nir(nir.clone())));
        e.fields = vec!["etat_civil.nom_naissance".into(), "contact.email".into()];
        j.append(e).await.unwrap();
    }
    j.close().await;
    let dd = ["--data-dir", "data"];
    let run = |args: &[&str]| {
        let mut all = dd.to_vec();
        all.extend_from_slice(args);
        passerelle(cwd.path(), &all)
    };

    let (code, report, err) = run(&["audit", "subject", "--nir", "2040359350123"]);
    assert_eq!(code, 0, "{err}");
    for text in [
        "RAPPORT D'ACCÈS",
        "(heure de Paris) par dpo-test",
        "Destinataire : Mission Locale de Lille (59350S00)",
        "Expéditeur : Conseil départemental du 059 (CD059)",
        "Identité : nom de naissance",
        "Coordonnées : adresse électronique",
        "enregistrées par le destinataire",
        "Base légale : article 6(1)(e) du RGPD",
        "jours dans le journal d'audit",
        "la copie du fichier des flux intégrée",
        "CONSULTATIONS DE VOS DONNÉES (0)",
    ] {
        assert!(report.contains(text), "{text} missing from:\n{report}");
    }
    assert!(
        !report.contains("etat_civil."),
        "paths are not labels:\n{report}"
    );
    // The lookup was journaled: the next report lists it.
    let (_, report, _) = run(&["audit", "subject", "--nir", "2040359350123"]);
    assert!(
        report.contains("CONSULTATIONS DE VOS DONNÉES (1)"),
        "{report}"
    );
    assert!(
        report.contains("par dpo-test (Art. 15 access report"),
        "{report}"
    );

    // Not anchored yet, then anchored; the key is printed.
    let (code, out, _) = run(&["audit", "verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("not anchored yet"), "{out}");
    let (code, out, err) = run(&["audit", "anchor"]);
    assert_eq!(code, 0, "{out}{err}");
    let pk = ring.anchor_key().unwrap().public_hex();
    assert!(out.contains(&pk), "{out}");
    assert!(data.join("journal.anchors.jsonl").is_file());
    let (code, out, _) = run(&["audit", "verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("hub anchor key (Ed25519): {pk}")),
        "{out}"
    );
    assert!(out.contains("journal intact: 5 entries"), "{out}");
    assert!(out.contains("last anchor: entry 5"), "{out}");

    // Purge: inside retention refused, dry run by flow and month, --yes off a terminal.
    let (code, _, err) = run(&["audit", "purge", "--before", "2099-01-01"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("inside the retention") && err.contains("days"),
        "{err}"
    );
    let (code, out, err) = run(&["audit", "purge", "--before", "2001-01-01", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("0 entries before") && out.contains("dry run"),
        "{out}"
    );

    // Someone with the file cuts the last entry and moves the head: the anchor says no.
    {
        use sqlx::{Connection, Executor};
        let mut c =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}", journal_path.display()))
                .await
                .unwrap();
        for t in ["audit_entry_no_delete", "audit_entry_no_update"] {
            c.execute(sqlx::AssertSqlSafe(format!("DROP TRIGGER {t}")))
                .await
                .unwrap();
        }
        c.execute("DELETE FROM audit_entry WHERE seq = 5")
            .await
            .unwrap();
        c.execute(
            "UPDATE audit_head SET seq = 4, hash = (SELECT hash FROM audit_entry WHERE seq = 4) WHERE id = 1",
        )
        .await
        .unwrap();
        c.close().await.unwrap();
    }
    let (code, out, _) = run(&["audit", "verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("says the chain reached entry 5, but it ends at entry 4"),
        "{out}"
    );
    // Deleted whole, the journal is still contradicted by the anchor file.
    std::fs::remove_file(&journal_path).unwrap();
    let (code, out, _) = run(&["audit", "verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("is missing, but the anchor file"), "{out}");
}

#[test]
fn the_register_outside_the_checkout_is_french_and_says_where_its_flows_come_from() {
    let cwd = tempfile::tempdir().unwrap();
    for args in [&["policy", "register"][..], &["audit", "register"][..]] {
        let (code, out, err) = passerelle(cwd.path(), args);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(
            out.contains("# Registre des activités de traitement"),
            "{args:?}"
        );
        assert!(out.contains("**Base légale**"), "{args:?}");
        assert!(out.contains("**Mesures de sécurité**"), "{args:?}");
        assert!(!out.contains("**Purpose**"), "{args:?}");
        // The built-in copy is named as such, on stderr, so that stdout stays the register.
        assert!(err.contains("register from"), "{args:?}: {err}");
        // The default transport is embedded: the register says there is no network link
        // to the queue, and claims no TLS on a link that has none.
        assert!(out.contains("Transport intégré"), "{args:?}");
    }
}
