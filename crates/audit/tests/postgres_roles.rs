//! PostgreSQL only: the writer role limited to INSERT and SELECT appends through the
//! owner's head trigger but can neither change nor delete entries, nor purge.

#![allow(clippy::print_stderr)] // says why a service test returns early

use std::str::FromStr;

use passerelle_audit::*;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, Connection, Executor};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_select_role_cannot_update_or_delete() {
    let Ok(url) = std::env::var("PASSERELLE_TEST_PG_URL") else {
        if std::env::var_os("CI").is_some() {
            panic!(
                "PASSERELLE_TEST_PG_URL is not set and CI is: PostgreSQL tests cannot be skipped"
            );
        }
        eprintln!("skipped: PASSERELLE_TEST_PG_URL is not set");
        return;
    };
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let db = format!("audit_roles_{tag}");
    let role = format!("audit_writer_{}", &tag[..12]);
    let mut admin = PgConnection::connect(&url).await.expect("admin");
    admin
        .execute(AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .await
        .expect("create database");
    admin
        .execute(AssertSqlSafe(format!(
            "CREATE ROLE {role} LOGIN PASSWORD 'writer-pw'"
        )))
        .await
        .expect("create role");

    let owner_opts = PgConnectOptions::from_str(&url).expect("url").database(&db);
    let owner = Journal::open_postgres(owner_opts.clone(), 100)
        .await
        .expect("owner journal");
    owner
        .append(NewEntry::new(Event::Published, "system", Outcome::Ok))
        .await
        .expect("owner append");
    owner.grant_writer(&role).await.expect("grant");

    let writer_opts = owner_opts.clone().username(&role).password("writer-pw");
    let writer = Journal::open_postgres(writer_opts.clone(), 100)
        .await
        .expect("writer opens an up-to-date journal without DDL");
    let a = writer
        .append(NewEntry::new(Event::Delivered, "system", Outcome::Ok))
        .await
        .expect("writer append");
    assert_eq!(a.seq, 2);
    assert_eq!(writer.head().await.expect("head").0, 2);

    let mut w = PgConnection::connect_with(&writer_opts)
        .await
        .expect("writer conn");
    for sql in [
        "UPDATE audit_entry SET actor = 'x' WHERE seq = 1",
        "DELETE FROM audit_entry WHERE seq = 2",
        "UPDATE audit_head SET seq = 5",
        "TRUNCATE audit_entry",
        "INSERT INTO audit_checkpoint (seq, hash, purged_before, at) VALUES (1, '\\x00', '', '')",
        // Even the purge switch does not help a role without DELETE.
        "BEGIN; SELECT set_config('passerelle.audit_purge', 'on', true); DELETE FROM audit_entry; COMMIT;",
    ] {
        let err = w
            .execute(AssertSqlSafe(sql.to_owned()))
            .await
            .expect_err(sql)
            .to_string();
        assert!(err.contains("permission denied"), "{sql}: {err}");
        let _ = w.execute("ROLLBACK").await;
    }
    let err = writer
        .purge_before(chrono::Utc::now(), "writer")
        .await
        .expect_err("writer cannot purge");
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");

    let v = owner.verify().await.expect("verify");
    assert!(v.is_intact(), "{:?}", v.problem);
    assert_eq!(v.entries, 2);

    let _ = w.close().await;
    writer.close().await;
    owner.close().await;
    let _ = admin
        .execute(AssertSqlSafe(format!("DROP DATABASE {db} WITH (FORCE)")))
        .await;
    let _ = admin
        .execute(AssertSqlSafe(format!("DROP ROLE {role}")))
        .await;
}
