//! `passerelle users` run as a process: accounts added, listed, disabled and given a
//! new password in the state store under `--data-dir`; passwords never stored, printed
//! or taken from an argument.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn users(data: &std::path::Path, args: &[&str], password: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_passerelle"))
        .arg("--data-dir")
        .arg(data)
        .arg("users")
        .args(args)
        .env_remove("PASSERELLE_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    if let Some(p) = password {
        writeln!(stdin, "{p}").unwrap();
    }
    drop(stdin);
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn add_list_disable_reset() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let secret = "une phrase de passe assez longue";
    let o = users(
        &data,
        &["add", "alice", "--role", "conseiller", "--org", "59350S00"],
        Some(secret),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("account alice created (conseiller, 59350S00)"));

    let o = users(&data, &["add", "bob", "--role", "conseiller"], Some(secret));
    assert!(!o.status.success());
    assert!(
        text(&o).contains("role conseiller needs --org"),
        "{}",
        text(&o)
    );
    let o = users(&data, &["add", "carol", "--role", "dpo"], Some("court"));
    assert!(!o.status.success());
    assert!(
        text(&o).contains("the password is too short: at least 12 characters"),
        "{}",
        text(&o)
    );
    let o = users(&data, &["add", "alice", "--role", "dpo"], Some(secret));
    assert!(
        text(&o).contains("account `alice` already exists"),
        "{}",
        text(&o)
    );

    let o = users(&data, &["list"], None);
    let out = text(&o);
    assert!(out.contains("alice\tconseiller\t59350S00\tactive"), "{out}");
    assert!(!out.contains("argon2") && !out.contains(secret));

    let o = users(&data, &["disable", "alice"], None);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&users(&data, &["list"], None)).contains("alice\tconseiller\t59350S00\tdisabled"));
    let o = users(
        &data,
        &["reset-password", "alice"],
        Some("une autre phrase de passe"),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&users(&data, &["list"], None)).contains("\tactive"));
    let o = users(&data, &["disable", "nobody"], None);
    assert!(text(&o).contains("no account `nobody`"), "{}", text(&o));

    let mut db = std::fs::read(data.join("state.sqlite")).unwrap();
    db.extend(std::fs::read(data.join("state.sqlite-wal")).unwrap_or_default());
    let hay = String::from_utf8_lossy(&db);
    assert!(hay.contains("$argon2id$v=19$"), "hashes are argon2id");
    assert!(!hay.contains(secret) && !hay.contains("une autre phrase"));
}
