//! `audit anchor` time-stamps each anchor at a real RFC 3161 authority (`openssl ts`
//! behind a tiny HTTP responder) and `audit verify` checks every token against the TSA
//! certificate of the configuration: a token moved to another anchor or altered is
//! found; an authority that cannot be reached stores no anchor.

#[path = "../../audit/tests/tsa_world/mod.rs"]
mod tsa_world;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use passerelle_audit::{Event, JournalConfig, NewEntry, Outcome};

fn passerelle(cwd: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_passerelle"))
        .current_dir(cwd)
        .args(["--data-dir", "data"])
        .args(args)
        .env_remove("PASSERELLE_DATA_DIR")
        .env_remove("PASSERELLE_JOURNAL_URL")
        .env_remove("PASSERELLE_CONFIG")
        .env_remove("PASSERELLE_ANCHOR_FILE")
        .stdin(Stdio::null())
        .output()
        .expect("run passerelle");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn append(path: &Path, n: usize) {
    let j = JournalConfig::sqlite_file(path).build().await.unwrap();
    for _ in 0..n {
        j.append(NewEntry::new(Event::Consulted, "dpo", Outcome::Ok))
            .await
            .unwrap();
    }
    j.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn anchors_are_time_stamped_and_verify_checks_each_token() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("data");
    std::fs::create_dir(&data).unwrap();
    passerelle_crypto::Keyring::open(&data).unwrap();
    let tsa = Arc::new(tsa_world::Tsa::new(&cwd.path().join("tsa"), false));
    let cert = tsa.cert_path();
    let url = tsa.clone().serve().await;
    std::fs::write(
        cwd.path().join("passerelle.toml"),
        format!(
            "[audit]\ntsa_url = \"{url}\"\ntsa_certificate = \"{}\"\n",
            cert.display()
        ),
    )
    .unwrap();
    let journal = data.join("journal.sqlite");
    append(&journal, 3).await;

    let (code, out, err) = passerelle(cwd.path(), &["audit", "anchor"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("time-stamped by the authority"), "{out}");
    append(&journal, 2).await;
    let (code, out, err) = passerelle(cwd.path(), &["audit", "anchor"]);
    assert_eq!(code, 0, "{out}{err}");

    let (code, out, err) = passerelle(cwd.path(), &["audit", "verify"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("time-stamp tokens: 2 checked against"),
        "{out}"
    );
    assert!(out.contains("latest stamped 20"), "{out}");
    assert!(out.contains("journal intact: 5 entries"), "{out}");

    // The anchor file's copy of the first anchor gets the second one's token (a token
    // for another statement), and the journal's copy is left alone: verify reads both.
    let anchors_path = data.join("journal.anchors.jsonl");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&anchors_path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    let mut moved = lines[0].clone();
    moved["timestamp"] = lines[1]["timestamp"].clone();
    std::fs::write(&anchors_path, format!("{moved}\n{}\n", lines[1])).unwrap();
    let (code, out, _) = passerelle(cwd.path(), &["audit", "verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("time-stamp token of the head anchor of entry 3")
            && out.contains("another statement"),
        "{out}"
    );

    // An altered token (one byte of its signature).
    let mut altered = lines[0].clone();
    let mut token = hex::decode(altered["timestamp"].as_str().unwrap()).unwrap();
    let last = token.len() - 1;
    token[last] ^= 0x40;
    altered["timestamp"] = serde_json::Value::String(hex::encode(token));
    std::fs::write(&anchors_path, format!("{altered}\n{}\n", lines[1])).unwrap();
    let (code, out, _) = passerelle(cwd.path(), &["audit", "verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("signature does not verify"), "{out}");

    // Put back, it verifies again.
    std::fs::write(&anchors_path, format!("{}\n{}\n", lines[0], lines[1])).unwrap();
    let (code, out, _) = passerelle(cwd.path(), &["audit", "verify"]);
    assert_eq!(code, 0, "{out}");

    // An authority that cannot be reached: no anchor is stored.
    append(&journal, 1).await;
    std::fs::write(
        cwd.path().join("passerelle.toml"),
        format!(
            "[audit]\ntsa_url = \"http://127.0.0.1:9/tsa\"\ntsa_certificate = \"{}\"\ntsa_timeout_s = 2\n",
            cert.display()
        ),
    )
    .unwrap();
    let (code, out, err) = passerelle(cwd.path(), &["audit", "anchor"]);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("cannot be reached"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&anchors_path)
            .unwrap()
            .lines()
            .count(),
        2
    );
    // A section with an unknown key is refused.
    std::fs::write(cwd.path().join("passerelle.toml"), "[audit]\ntsa = \"x\"\n").unwrap();
    let (code, _, err) = passerelle(cwd.path(), &["audit", "verify"]);
    assert_ne!(code, 0);
    assert!(err.contains("unknown field"), "{err}");
}
