//! `passerelle users` run as a process: accounts added, listed, disabled and given a
//! new password in the state store under `--data-dir`; passwords never stored, printed
//! or taken from an argument.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn users(data: &std::path::Path, args: &[&str], password: Option<&str>) -> Output {
    users_on(data, None, args, password)
}

/// `passerelle users`, the state at `state_url` when given (`PASSERELLE_STATE_URL`).
fn users_on(
    data: &std::path::Path,
    state_url: Option<&str>,
    args: &[&str],
    password: Option<&str>,
) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_passerelle"));
    match state_url {
        Some(url) => cmd.env("PASSERELLE_STATE_URL", url),
        None => cmd.env_remove("PASSERELLE_STATE_URL"),
    };
    let mut child = cmd
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

/// With `PASSERELLE_STATE_URL` on PostgreSQL the accounts live there: a second data
/// folder (another instance) sees them, and no state file is made in either.
#[test]
fn accounts_on_a_postgres_state_are_shared_by_instances() {
    let Ok(admin) = std::env::var("PASSERELLE_TEST_PG_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "PASSERELLE_TEST_PG_URL is not set and CI is: PostgreSQL tests cannot be skipped"
        );
        return;
    };
    let name = format!("cliusers_{}", uuid::Uuid::new_v4().simple());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use sqlx::{Connection, Executor};
        let mut c = sqlx::postgres::PgConnection::connect(&admin).await.unwrap();
        c.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap();
    });
    let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    let secret = "une phrase de passe assez longue";
    let o = users_on(
        &one,
        Some(&url),
        &["add", "dpo1", "--role", "dpo"],
        Some(secret),
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = users_on(&two, Some(&url), &["list"], None);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("dpo1\tdpo"), "{}", text(&o));
    let o = users_on(&two, Some(&url), &["disable", "dpo1"], None);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&users_on(&one, Some(&url), &["list"], None)).contains("disabled"));
    for d in [&one, &two] {
        assert!(
            !d.join("state.sqlite").exists(),
            "no state file in {}",
            d.display()
        );
    }
    // The SQLite default under the data folder knows nothing of them.
    assert!(!text(&users(&one, &["list"], None)).contains("dpo1"));
    rt.block_on(async {
        use sqlx::{Connection, Executor};
        if let Ok(mut c) = sqlx::postgres::PgConnection::connect(&admin).await {
            let _ = c
                .execute(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .await;
        }
    });
}
