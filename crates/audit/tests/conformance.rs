//! One conformance suite for both journal engines: every scenario runs on SQLite (a
//! temporary file) and on PostgreSQL (a fresh database on `PASSERELLE_TEST_PG_URL`).
//!
//! Tampering goes around the triggers the way a superuser could (SQLite: triggers
//! dropped; PostgreSQL: `session_replication_role = replica`), to check that `verify`
//! catches what the triggers cannot prevent.

#![allow(clippy::print_stderr)] // says why a service test returns early

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use chrono::Utc;
use passerelle_audit::*;
use passerelle_crypto::PseudonymKey;
use passerelle_model::{Date, Jeune, Nir, NumeroAllocataire};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{AssertSqlSafe, Connection, Executor, Row};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Engine {
    Sqlite,
    Postgres,
}

struct Harness {
    engine: Engine,
    journal: Journal,
    sqlite_path: Option<PathBuf>,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, PgConnectOptions, String)>,
}

impl Harness {
    /// A fresh, empty journal; `None` (after saying why) when PostgreSQL is not
    /// configured outside CI.
    async fn new(engine: Engine) -> Option<Harness> {
        match engine {
            Engine::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().join("journal.sqlite");
                let journal = JournalConfig::sqlite_file(&path)
                    .build()
                    .await
                    .expect("open sqlite journal");
                Some(Harness {
                    engine,
                    journal,
                    sqlite_path: Some(path),
                    _dir: Some(dir),
                    pg: None,
                })
            }
            Engine::Postgres => {
                let Ok(url) = std::env::var("PASSERELLE_TEST_PG_URL") else {
                    if std::env::var_os("CI").is_some() {
                        panic!(
                            "PASSERELLE_TEST_PG_URL is not set and CI is: PostgreSQL tests cannot be skipped"
                        );
                    }
                    eprintln!(
                        "skipped: PASSERELLE_TEST_PG_URL is not set (start one with deploy/postgres/postgres.sh)"
                    );
                    return None;
                };
                let name = format!("audit_{}", uuid::Uuid::new_v4().simple());
                let mut admin = PgConnection::connect(&url).await.expect("connect admin");
                admin
                    .execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .await
                    .expect("create test database");
                let _ = admin.close().await;
                let opts = PgConnectOptions::from_str(&url)
                    .expect("pg url")
                    .database(&name);
                let journal = Journal::open_postgres(opts.clone(), 2_000)
                    .await
                    .expect("open postgres journal");
                Some(Harness {
                    engine,
                    journal,
                    sqlite_path: None,
                    _dir: None,
                    pg: Some((url, opts, name)),
                })
            }
        }
    }

    async fn reopen(&mut self) {
        let j = match self.engine {
            Engine::Sqlite => JournalConfig::sqlite_file(self.sqlite_path.as_ref().expect("path"))
                .build()
                .await
                .expect("reopen"),
            Engine::Postgres => {
                Journal::open_postgres(self.pg.as_ref().expect("pg").1.clone(), 2_000)
                    .await
                    .expect("reopen")
            }
        };
        let old = std::mem::replace(&mut self.journal, j);
        old.close().await;
    }

    async fn finish(self) {
        self.journal.close().await;
        if let Some((url, _, name)) = self.pg
            && let Ok(mut admin) = PgConnection::connect(&url).await
        {
            let _ = admin
                .execute(AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .await;
        }
    }

    /// Runs SQL as an ordinary client would, triggers in force.
    async fn plain(&self, sql: &str) -> Result<(), String> {
        match self.engine {
            Engine::Sqlite => {
                let mut c = self.sqlite_conn().await;
                c.execute(AssertSqlSafe(sql.to_owned()))
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            Engine::Postgres => {
                let mut c = self.pg_conn().await;
                c.execute(AssertSqlSafe(sql.to_owned()))
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// Runs SQL around the triggers, as a superuser tampering with the journal would.
    async fn tamper(&self, sql: &str) {
        match self.engine {
            Engine::Sqlite => {
                let mut c = self.sqlite_conn().await;
                let triggers: Vec<String> =
                    sqlx::query("SELECT name FROM sqlite_master WHERE type = 'trigger'")
                        .fetch_all(&mut c)
                        .await
                        .expect("list triggers")
                        .iter()
                        .map(|r| r.get(0))
                        .collect();
                for t in triggers {
                    c.execute(AssertSqlSafe(format!("DROP TRIGGER {t}")))
                        .await
                        .expect("drop trigger");
                }
                c.execute(AssertSqlSafe(sql.to_owned()))
                    .await
                    .expect("tamper");
            }
            Engine::Postgres => {
                let mut c = self.pg_conn().await;
                c.execute("SET session_replication_role = replica")
                    .await
                    .expect("replica role");
                c.execute(AssertSqlSafe(sql.to_owned()))
                    .await
                    .expect("tamper");
            }
        }
    }

    async fn sqlite_conn(&self) -> SqliteConnection {
        let opts = SqliteConnectOptions::new()
            .filename(self.sqlite_path.as_ref().expect("sqlite path"))
            .busy_timeout(Duration::from_secs(10));
        SqliteConnection::connect_with(&opts)
            .await
            .expect("sqlite connection")
    }

    async fn pg_conn(&self) -> PgConnection {
        PgConnection::connect_with(&self.pg.as_ref().expect("pg").1)
            .await
            .expect("pg connection")
    }

    /// Every row of every table, as text; for SQLite also the raw bytes of the files.
    async fn dump(&self) -> String {
        let mut out = String::new();
        match self.engine {
            Engine::Sqlite => {
                let mut c = self.sqlite_conn().await;
                let tables: Vec<String> =
                    sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table'")
                        .fetch_all(&mut c)
                        .await
                        .expect("tables")
                        .iter()
                        .map(|r| r.get(0))
                        .collect();
                assert!(tables.len() >= 5, "{tables:?}");
                for t in tables {
                    let cols: Vec<String> = sqlx::query(AssertSqlSafe(format!(
                        "SELECT name FROM pragma_table_info('{t}')"
                    )))
                    .fetch_all(&mut c)
                    .await
                    .expect("columns")
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                    // Text columns as themselves, blobs as their bytes read as text.
                    let expr = cols
                        .iter()
                        .map(|c| format!("coalesce(CAST({c} AS TEXT), '')"))
                        .collect::<Vec<_>>()
                        .join(" || '|' || ");
                    let rows = sqlx::query(AssertSqlSafe(format!("SELECT {expr} FROM {t}")))
                        .fetch_all(&mut c)
                        .await
                        .expect("rows");
                    for r in rows {
                        let bytes: Vec<u8> = r.get(0);
                        out.push_str(&String::from_utf8_lossy(&bytes));
                        out.push('\n');
                    }
                }
                let path = self.sqlite_path.as_ref().expect("path");
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    if let Ok(bytes) = std::fs::read(&p) {
                        out.push_str(&String::from_utf8_lossy(&bytes));
                    }
                }
            }
            Engine::Postgres => {
                let mut c = self.pg_conn().await;
                let tables: Vec<String> = sqlx::query(
                    "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema()",
                )
                .fetch_all(&mut c)
                .await
                .expect("tables")
                .iter()
                .map(|r| r.get(0))
                .collect();
                assert!(tables.len() >= 5, "{tables:?}");
                for t in tables {
                    let rows = sqlx::query(AssertSqlSafe(format!("SELECT t::text FROM {t} t")))
                        .fetch_all(&mut c)
                        .await
                        .expect("rows");
                    for r in rows {
                        out.push_str(&r.get::<String, _>(0));
                        out.push('\n');
                    }
                }
            }
        }
        out
    }
}

fn entry(event: Event, flow: &str) -> NewEntry {
    let mut e = NewEntry::new(event, "system", Outcome::Ok);
    e.flow = Some(flow.to_owned());
    e.sender = Some("ML59001".into());
    e.recipient = Some("CD059".into());
    e.fields = vec!["etat_civil.nom_naissance".into(), "rsa.etat_droit".into()];
    e.legal_basis = Some("RGPD art. 6-1-e".into());
    e.ciphertext_digest = Some("ab".repeat(32));
    e
}

async fn fill(j: &Journal, n: usize) {
    for i in 0..n {
        j.append(entry(Event::Published, if i % 2 == 0 { "a" } else { "b" }))
            .await
            .expect("append");
    }
}

async fn problem(h: &Harness) -> Problem {
    let v = h.journal.verify().await.expect("verify runs");
    v.problem.expect("verify must find the tampering")
}

// ---------------------------------------------------------------------------------------
// Scenarios.

async fn appends_chain_and_verify(h: &Harness) {
    let v = h.journal.verify().await.expect("verify");
    assert!(v.is_intact());
    assert_eq!(v.entries, 0);
    let a = h
        .journal
        .append(entry(Event::Published, "a"))
        .await
        .expect("append");
    assert_eq!(a.seq, 1);
    let b = h
        .journal
        .append_batch(vec![
            entry(Event::Delivered, "a"),
            entry(Event::Applied, "a"),
        ])
        .await
        .expect("batch");
    assert_eq!(b.iter().map(|x| x.seq).collect::<Vec<_>>(), vec![2, 3]);
    // Text that needs escaping (quotes, backslash, newline, non-ASCII) verifies too.
    let mut odd = entry(Event::Rejected, "a\"b");
    odd.reason = Some("refusé: \"champ\"\n\\ligne 2 ✓".into());
    odd.fields = vec!["x\"y".into(), "é".into()];
    odd.outcome = Outcome::Refused;
    h.journal.append(odd).await.expect("append");
    let v = h.journal.verify().await.expect("verify");
    assert!(v.is_intact(), "{:?}", v.problem);
    assert_eq!((v.entries, v.last_seq), (4, 4));
    let all = h
        .journal
        .entries(&Filter::default())
        .await
        .expect("entries");
    assert_eq!(all.len(), 4);
    assert_eq!(h.journal.head().await.expect("head").0, 4);
    assert_eq!(all[2].hash, b[1].hash.to_vec());
    assert_eq!(all[3].fields, vec!["x\"y", "é"]);
    assert_eq!(all[2].event, "applied");
    assert_eq!(
        all[0].fields,
        vec!["etat_civil.nom_naissance", "rsa.etat_droit"]
    );
    assert!(all.windows(2).all(|w| w[0].at <= w[1].at));
    // The stored hash is the documented one.
    assert_eq!(all[0].chain_hash(&GENESIS_HASH).to_vec(), all[0].hash);
    assert_eq!(all[1].chain_hash(&all[0].hash).to_vec(), all[1].hash);
    #[cfg(unix)]
    if let Some(path) = &h.sqlite_path {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .expect("journal file")
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "the journal file is private to its owner"
        );
    }
}

async fn changed_field_is_named(h: &Harness) {
    fill(&h.journal, 10).await;
    h.tamper("UPDATE audit_entry SET recipient = 'CD062' WHERE seq = 4")
        .await;
    assert_eq!(problem(h).await, Problem::Altered { seq: 4 });
}

async fn changed_field_list_is_named(h: &Harness) {
    fill(&h.journal, 10).await;
    h.tamper(r#"UPDATE audit_entry SET fields = '["rsa.etat_droit"]' WHERE seq = 7"#)
        .await;
    assert_eq!(problem(h).await, Problem::Altered { seq: 7 });
}

async fn deleted_entry_is_named(h: &Harness) {
    fill(&h.journal, 10).await;
    h.tamper("DELETE FROM audit_entry WHERE seq = 6").await;
    assert_eq!(
        problem(h).await,
        Problem::Missing {
            seq: 6,
            next_present: 7
        }
    );
}

async fn swapped_entries_are_named(h: &Harness) {
    fill(&h.journal, 10).await;
    h.tamper(
        "UPDATE audit_entry SET seq = -3 WHERE seq = 3; \
         UPDATE audit_entry SET seq = 3 WHERE seq = 4; \
         UPDATE audit_entry SET seq = 4 WHERE seq = -3;",
    )
    .await;
    let p = problem(h).await;
    assert_eq!(p, Problem::Altered { seq: 3 });
    assert!(p.to_string().contains("entry 3"), "{p}");
}

async fn cut_tail_is_named(h: &Harness) {
    fill(&h.journal, 10).await;
    h.tamper("DELETE FROM audit_entry WHERE seq >= 9").await;
    assert_eq!(
        problem(h).await,
        Problem::TailCut {
            seq: 9,
            head_seq: 10
        }
    );
}

async fn rewritten_hash_breaks_the_next_link(h: &Harness) {
    fill(&h.journal, 5).await;
    // A forger who rewrites entry 2 and its hash still breaks entry 3's link.
    let e2 = h
        .journal
        .entries(&Filter::default())
        .await
        .expect("entries")
        .into_iter()
        .find(|e| e.seq == 2)
        .expect("entry 2");
    let mut forged = e2.clone();
    forged.actor = "someone".into();
    let all = h
        .journal
        .entries(&Filter::default())
        .await
        .expect("entries");
    let h2 = forged.chain_hash(&all[0].hash);
    h.tamper(&format!(
        "UPDATE audit_entry SET actor = 'someone', hash = {} WHERE seq = 2",
        sql_blob(h.engine, &h2)
    ))
    .await;
    assert_eq!(problem(h).await, Problem::Altered { seq: 3 });
}

fn sql_blob(engine: Engine, b: &[u8]) -> String {
    match engine {
        Engine::Sqlite => format!("X'{}'", hex::encode(b)),
        Engine::Postgres => format!("'\\x{}'::bytea", hex::encode(b)),
    }
}

async fn triggers_refuse_update_and_delete(h: &Harness) {
    fill(&h.journal, 2).await;
    // One entry with a subject, so that the blind index table has a row to protect.
    let key = PseudonymKey::from_bytes([3; 32]);
    let mut e = entry(Event::Applied, "a");
    e.subject = Some(Subject::new(&key, "h").with(
        &key,
        &Lookup::Nir(Nir::parse("2040359350123").expect("nir")),
    ));
    h.journal.append(e).await.expect("append");
    for sql in [
        "UPDATE audit_entry SET actor = 'x' WHERE seq = 2",
        "DELETE FROM audit_entry WHERE seq = 3",
        "DELETE FROM audit_entry",
        "UPDATE audit_subject_index SET subject = 'x'",
        "DELETE FROM audit_subject_index",
    ] {
        let err = h.plain(sql).await.expect_err(sql);
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    // An entry that does not follow the head is refused too.
    let err = h
        .plain(
            "INSERT INTO audit_entry (seq, at, event, actor, fields, outcome, hash) \
             VALUES (9, 'x', 'published', 'system', '[]', 'ok', X'00')"
                .replace(
                    "X'00'",
                    if h.engine == Engine::Sqlite {
                        "X'00'"
                    } else {
                        "'\\x00'::bytea"
                    },
                )
                .as_str(),
        )
        .await
        .expect_err("gap insert");
    assert!(err.contains("does not follow the head"), "{err}");
    if h.engine == Engine::Postgres {
        let err = h
            .plain("UPDATE audit_head SET seq = 1")
            .await
            .expect_err("head update");
        assert!(err.contains("append-only"), "{err}");
        let err = h.plain("TRUNCATE audit_entry").await.expect_err("truncate");
        assert!(err.contains("append-only"), "{err}");
    }
    let v = h.journal.verify().await.expect("verify");
    assert!(v.is_intact(), "{:?}", v.problem);
    assert_eq!(v.entries, 3);
}

fn jeune(json: serde_json::Value) -> Jeune {
    serde_json::from_value(json).expect("fixture record")
}

fn people() -> Vec<(String, Jeune)> {
    vec![
        (
            "hub-1".into(),
            jeune(serde_json::json!({"schema":"passerelle.jeune/1",
              "identifiants":{"nir":"204035935012349","caf":{"organisme":"CAF","numero_allocataire":"7654321"}},
              "etat_civil":{"nom_naissance":"Lefèvre-Quintard","nom_usage":"Zyxwabowski","prenoms":["Anaïs","Marie"],"date_naissance":"2004-03-12"},
              "contact":{"email":"anais.quintard@example.org","telephones":["+33612345678"]}})),
        ),
        (
            "hub-2".into(),
            jeune(serde_json::json!({"schema":"passerelle.jeune/1",
              "identifiants":{"nir":"1990575123456"},
              "etat_civil":{"nom_naissance":"Oğuzhanoviç","prenoms":["Thélonious"],"date_naissance":"1999-05-01"},
              "contact":{"email":"thelonious.o@example.net"}})),
        ),
    ]
}

async fn no_personal_data_is_stored_and_subjects_are_found(h: &Harness) {
    let key = PseudonymKey::from_bytes([42; 32]);
    let people = people();
    for (round, (hub_id, j)) in people.iter().enumerate() {
        for ev in [Event::Published, Event::Delivered] {
            let mut e = entry(ev, "ml-to-cd");
            e.subject = Some(Subject::of_jeune(&key, hub_id, j));
            e.fields = j.paths().into_iter().map(|p| p.to_string()).collect();
            e.reason = Some(format!("round {round}"));
            h.journal.append(e).await.expect("append");
        }
    }
    // An entry about nobody in particular, to check that subject queries exclude it.
    h.journal
        .append(entry(Event::Denied, "x"))
        .await
        .expect("append");

    let dump = h.dump().await;
    let needles = [
        "Lefèvre",
        "Quintard",
        "QUINTARD",
        "Zyxwabowski",
        "ZYXWABOWSKI",
        "Anaïs",
        "ANAIS",
        "anais.quintard@example.org",
        "example.org",
        "example.net",
        "2040359350123",
        "7654321",
        "2004-03-12",
        "612345678",
        "Oğuzhanoviç",
        "OGUZHANOVIC",
        "Thélonious",
        "THELONIOUS",
        "1990575123456",
        "1999-05-01",
        "hub-1",
        "hub-2",
    ];
    for n in needles {
        assert!(
            !dump.contains(n),
            "the stored journal contains a personal value ({n})"
        );
    }
    // The dump is not empty: pseudonyms and paths are there.
    assert!(dump.contains(&key.pseudonym("hub-1")));
    assert!(dump.contains("etat_civil.nom_naissance"));

    let p1 = key.pseudonym("hub-1");
    let by = |l: Lookup| {
        let key = key.clone();
        let j = h.journal.clone();
        async move { j.subject_entries(&key, &l).await.expect("subject query") }
    };
    let found = by(Lookup::Nir(Nir::parse("204035935012349").expect("nir"))).await;
    assert_eq!(found.len(), 2);
    assert!(
        found
            .iter()
            .all(|e| e.subject.as_deref() == Some(p1.as_str()))
    );
    let found = by(Lookup::Caf(
        NumeroAllocataire::parse("765 4321").expect("caf"),
    ))
    .await;
    assert_eq!(found.len(), 2);
    // Spelling differences do not matter; the usage name works too.
    for nom in ["LEFEVRE QUINTARD", "lefèvre-quintard", "Zyxwabowski"] {
        let found = by(Lookup::Identite {
            nom: nom.into(),
            prenom: "anais".into(),
            date_naissance: Date::parse("12/03/2004").expect("date"),
        })
        .await;
        assert_eq!(found.len(), 2, "{nom}");
        assert_eq!(found[0].event, "published");
    }
    let found = by(Lookup::Identite {
        nom: "OGUZHANOVIC".into(),
        prenom: "Thelonious".into(),
        date_naissance: Date::parse("1999-05-01").expect("date"),
    })
    .await;
    assert_eq!(found.len(), 2);
    assert!(found.iter().all(|e| e.reason.as_deref() == Some("round 1")));
    // Someone unknown, or a wrong birth date: nothing.
    let found = by(Lookup::Identite {
        nom: "OGUZHANOVIC".into(),
        prenom: "Thelonious".into(),
        date_naissance: Date::parse("1999-05-02").expect("date"),
    })
    .await;
    assert!(found.is_empty());
    let found = by(Lookup::Nir(
        Nir::parse("1990575123457")
            .unwrap_or_else(|_| Nir::parse("2990575123456").expect("another nir")),
    ))
    .await;
    assert!(found.is_empty());
}

async fn purge_keeps_the_rest_verifiable(h: &Harness) {
    let key = PseudonymKey::from_bytes([1; 32]);
    let old_subject = Subject::new(&key, "old").with(
        &key,
        &Lookup::Nir(Nir::parse("2040359350123").expect("nir")),
    );
    for _ in 0..5 {
        let mut e = entry(Event::Published, "a");
        e.subject = Some(old_subject.clone());
        h.journal.append(e).await.expect("append");
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let cutoff = Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    fill(&h.journal, 5).await;

    let report = h.journal.purge_before(cutoff, "dpo").await.expect("purge");
    assert_eq!(report.removed, 5);
    let cp = report.checkpoint.expect("checkpoint");
    assert_eq!(cp.seq, 5);
    assert_eq!(
        h.journal.checkpoints().await.expect("checkpoints"),
        vec![cp.clone()]
    );

    let v = h.journal.verify().await.expect("verify");
    assert!(v.is_intact(), "{:?}", v.problem);
    assert_eq!(v.entries, 6, "5 kept and the purge entry");
    assert_eq!(v.checkpoint.as_ref().map(|c| c.seq), Some(5));
    let left = h
        .journal
        .entries(&Filter::default())
        .await
        .expect("entries");
    assert_eq!(left.first().map(|e| e.seq), Some(6));
    let last = left.last().expect("purge entry");
    assert_eq!(last.event, "purged");
    assert!(last.reason.as_deref().unwrap_or("").contains(&cp.hash));
    // The blind indexes of the purged subject went with its entries.
    let found = h
        .journal
        .subject_entries(
            &key,
            &Lookup::Nir(Nir::parse("2040359350123").expect("nir")),
        )
        .await
        .expect("query");
    assert!(found.is_empty());
    let dump = h.dump().await;
    assert!(!dump.contains(&old_subject.identifiers[0].value));

    // Nothing more to purge at the same cut-off.
    let again = h.journal.purge_before(cutoff, "dpo").await.expect("purge");
    assert_eq!(again.removed, 0);
    assert!(again.checkpoint.is_none());

    // Tampering after a purge is still caught, from the checkpoint on.
    h.tamper("DELETE FROM audit_entry WHERE seq = 6").await;
    assert_eq!(
        problem(h).await,
        Problem::Missing {
            seq: 6,
            next_present: 7
        }
    );
    // And a purge refuses to run over a broken chain.
    let err = h
        .journal
        .purge_before(Utc::now(), "dpo")
        .await
        .expect_err("purge over a broken chain");
    assert_eq!(err.kind(), ErrorKind::Corrupt);
}

async fn purge_of_everything_then_append(h: &Harness) {
    fill(&h.journal, 4).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let report = h
        .journal
        .purge_before(Utc::now(), "dpo")
        .await
        .expect("purge");
    assert_eq!(report.removed, 4);
    fill(&h.journal, 2).await;
    let v = h.journal.verify().await.expect("verify");
    assert!(v.is_intact(), "{:?}", v.problem);
    assert_eq!((v.entries, v.last_seq), (3, 7));
}

async fn concurrent_appenders_keep_one_chain(h: &Harness) {
    // Two handles on one database stand for two processes; each has many tasks.
    let second = match h.engine {
        Engine::Sqlite => JournalConfig::sqlite_file(h.sqlite_path.as_ref().expect("path"))
            .build()
            .await
            .expect("second handle"),
        Engine::Postgres => Journal::open_postgres(h.pg.as_ref().expect("pg").1.clone(), 500)
            .await
            .expect("second handle"),
    };
    let mut tasks = Vec::new();
    for t in 0..32 {
        let j = if t % 2 == 0 {
            h.journal.clone()
        } else {
            second.clone()
        };
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for _ in 0..40 {
                seqs.push(
                    j.append(entry(Event::Delivered, "a"))
                        .await
                        .expect("append")
                        .seq,
                );
            }
            seqs
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let seqs = t.await.expect("task");
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "one task's entries keep their order"
        );
        all.extend(seqs);
    }
    all.sort_unstable();
    assert_eq!(all, (1..=1280).collect::<Vec<i64>>());
    let v = h.journal.verify().await.expect("verify");
    assert!(v.is_intact(), "{:?}", v.problem);
    assert_eq!(v.entries, 1280);
    second.close().await;
}

async fn export_by_period_and_flow(h: &Harness) {
    fill(&h.journal, 4).await; // flows a, b, a, b
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mid = Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    fill(&h.journal, 3).await; // a, b, a
    let count = |f: Filter| {
        let j = h.journal.clone();
        async move { j.entries(&f).await.expect("query").len() }
    };
    assert_eq!(count(Filter::default()).await, 7);
    let flow_a = Filter {
        flow: Some("a".into()),
        ..Filter::default()
    };
    assert_eq!(count(flow_a.clone()).await, 4);
    assert_eq!(
        count(Filter {
            from: Some(mid),
            ..flow_a.clone()
        })
        .await,
        2
    );
    assert_eq!(
        count(Filter {
            to: Some(mid),
            ..Filter::default()
        })
        .await,
        4
    );
    let mut x = Exporter::new(ExportFormat::Csv, Vec::new()).expect("csv");
    let n = h
        .journal
        .for_each(&flow_a, |e| x.write(&e))
        .await
        .expect("export");
    assert_eq!(n, 4);
    let csv = String::from_utf8(x.finish().expect("finish")).expect("utf-8");
    assert_eq!(csv.lines().count(), 5);
    let mut x = Exporter::new(ExportFormat::Json, Vec::new()).expect("json");
    h.journal
        .for_each(&Filter::default(), |e| x.write(&e))
        .await
        .expect("export");
    let v: serde_json::Value = serde_json::from_slice(&x.finish().expect("finish")).expect("json");
    assert_eq!(v.as_array().map(Vec::len), Some(7));
    assert_eq!(v[6]["seq"], 7);
}

async fn reopening_migrates_once_and_continues(h: &mut Harness) {
    fill(&h.journal, 3).await;
    h.reopen().await;
    fill(&h.journal, 2).await;
    let v = h.journal.verify().await.expect("verify");
    assert!(v.is_intact(), "{:?}", v.problem);
    assert_eq!(v.entries, 5);
}

// ---------------------------------------------------------------------------------------
// Anchors: what someone who can write the database, but has not the hub's key, can do.

/// Recomputes every hash from the start (or the last checkpoint) and moves the head,
/// as a forger who knows the chain's recipe would.
async fn rechain(h: &Harness) {
    let cps = h.journal.checkpoints().await.expect("checkpoints");
    let mut prev = match cps.last() {
        Some(c) => hex::decode(&c.hash).expect("hex"),
        None => GENESIS_HASH.to_vec(),
    };
    let entries = h
        .journal
        .entries(&Filter::default())
        .await
        .expect("entries");
    let mut last = (0, prev.clone(), String::new());
    for e in entries {
        let hash = e.chain_hash(&prev).to_vec();
        if hash != e.hash {
            h.tamper(&format!(
                "UPDATE audit_entry SET hash = {} WHERE seq = {}",
                sql_blob(h.engine, &hash),
                e.seq
            ))
            .await;
        }
        prev = hash.clone();
        last = (e.seq, hash, e.at.clone());
    }
    h.tamper(&format!(
        "UPDATE audit_head SET seq = {}, hash = {}, at = '{}' WHERE id = 1",
        last.0,
        sql_blob(h.engine, &last.1),
        last.2
    ))
    .await;
}

async fn anchored(h: &Harness, key: &passerelle_crypto::AnchorKey, outside: &[Anchor]) -> Anchored {
    h.journal
        .verify_anchored(Some(&key.public_hex()), outside)
        .await
        .expect("verify runs")
}

async fn anchors_find_a_cut_tail_with_the_head_moved(h: &Harness) {
    let key = passerelle_crypto::AnchorKey::generate();
    fill(&h.journal, 10).await;
    let a = h
        .journal
        .anchor(&key)
        .await
        .expect("anchor")
        .expect("not empty");
    assert_eq!(a.seq, 10);
    // Anchoring an unchanged head again gives the same anchor.
    assert_eq!(
        h.journal.anchor(&key).await.expect("anchor"),
        Some(a.clone())
    );
    assert!(anchored(h, &key, &[]).await.is_intact());
    h.tamper("DELETE FROM audit_entry WHERE seq >= 9").await;
    rechain(h).await;
    assert!(
        h.journal.verify().await.expect("verify").is_intact(),
        "the chain alone is fooled"
    );
    let v = anchored(h, &key, &[]).await;
    assert_eq!(
        v.problems,
        vec![AnchorProblem::Truncated {
            seq: 10,
            at: a.at.clone(),
            last_seq: 8
        }]
    );
}

async fn anchors_find_a_recomputed_chain(h: &Harness) {
    let key = passerelle_crypto::AnchorKey::generate();
    fill(&h.journal, 5).await;
    let a = h
        .journal
        .anchor(&key)
        .await
        .expect("anchor")
        .expect("not empty");
    h.tamper("UPDATE audit_entry SET actor = 'someone' WHERE seq = 2")
        .await;
    rechain(h).await;
    assert!(
        h.journal.verify().await.expect("verify").is_intact(),
        "the chain alone is fooled"
    );
    let v = anchored(h, &key, &[]).await;
    assert_eq!(
        v.problems,
        vec![AnchorProblem::Rewritten { seq: 5, at: a.at }]
    );
    // A forged anchor of the new head, made with another key, is named too.
    let other = passerelle_crypto::AnchorKey::generate();
    let (seq, hash) = h.journal.head().await.expect("head");
    let forged = Anchor::head(seq, &hash, format_time(Utc::now())).sign(&other);
    let v = anchored(h, &key, &[forged]).await;
    assert!(
        v.problems
            .iter()
            .any(|p| matches!(p, AnchorProblem::BadSignature { seq: 5, .. })),
        "{:?}",
        v.problems
    );
}

async fn anchors_find_erased_and_renumbered_entries(h: &Harness) {
    let key = passerelle_crypto::AnchorKey::generate();
    fill(&h.journal, 6).await;
    h.journal.anchor(&key).await.expect("anchor");
    h.tamper("DELETE FROM audit_entry WHERE seq = 3").await;
    for seq in 4..=6 {
        h.tamper(&format!(
            "UPDATE audit_entry SET seq = {} WHERE seq = {seq}",
            seq - 1
        ))
        .await;
    }
    rechain(h).await;
    assert!(
        h.journal.verify().await.expect("verify").is_intact(),
        "the chain alone is fooled"
    );
    let v = anchored(h, &key, &[]).await;
    assert!(
        matches!(
            v.problems[..],
            [AnchorProblem::Truncated {
                seq: 6,
                last_seq: 5,
                ..
            }]
        ),
        "{:?}",
        v.problems
    );
}

async fn an_emptied_journal_is_found_from_the_anchor_file(h: &Harness) {
    let key = passerelle_crypto::AnchorKey::generate();
    fill(&h.journal, 4).await;
    let a = h
        .journal
        .anchor(&key)
        .await
        .expect("anchor")
        .expect("not empty");
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("anchors.jsonl");
    passerelle_audit::anchor::append_file(&file, std::slice::from_ref(&a)).expect("write");
    let outside = passerelle_audit::anchor::read_file(&file).expect("read");
    assert_eq!(outside, vec![a.clone()]);
    // Everything in the database goes, anchors included, and the head is reset.
    h.tamper("DELETE FROM audit_entry").await;
    h.tamper("DELETE FROM audit_anchor").await;
    h.tamper(&format!(
        "UPDATE audit_head SET seq = 0, hash = {}, at = '' WHERE id = 1",
        sql_blob(h.engine, &GENESIS_HASH)
    ))
    .await;
    assert!(
        h.journal.verify().await.expect("verify").is_intact(),
        "the chain alone is fooled"
    );
    assert!(
        anchored(h, &key, &[]).await.is_intact(),
        "nothing left inside says otherwise"
    );
    let v = anchored(h, &key, &outside).await;
    assert_eq!(
        v.problems,
        vec![AnchorProblem::Truncated {
            seq: 4,
            at: a.at,
            last_seq: 0
        }]
    );
}

async fn signed_purges_are_recorded_for_good_and_checkpoints_checked(h: &Harness) {
    let key = passerelle_crypto::AnchorKey::generate();
    for _ in 0..3 {
        h.journal
            .append(entry(Event::Published, "a"))
            .await
            .expect("append");
    }
    h.journal
        .append(entry(Event::Denied, "b"))
        .await
        .expect("append");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let first_cut = Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    fill(&h.journal, 4).await;

    let preview = h.journal.purge_preview(first_cut).await.expect("preview");
    let month = Utc::now().format("%Y-%m").to_string();
    assert_eq!(
        preview,
        vec![
            PurgeLine {
                flow: Some("a".into()),
                month: month.clone(),
                entries: 3
            },
            PurgeLine {
                flow: Some("b".into()),
                month: month.clone(),
                entries: 1
            },
        ]
    );
    assert_eq!(
        h.journal
            .entries(&Filter::default())
            .await
            .expect("entries")
            .len(),
        8
    );
    let report = h
        .journal
        .purge_signed(first_cut, "dpo-one", &key)
        .await
        .expect("purge");
    assert_eq!(report.removed, 4);
    assert_eq!(report.lines, preview);
    let record = report.record.expect("signed record");
    assert_eq!(
        (record.removed, record.actor.as_deref()),
        (Some(4), Some("dpo-one"))
    );
    h.journal.anchor(&key).await.expect("anchor");
    assert!(anchored(h, &key, &[]).await.is_intact());

    // A second purge removes the first purge's journal entry, not its record.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = h
        .journal
        .purge_signed(Utc::now(), "dpo-two", &key)
        .await
        .expect("purge");
    assert_eq!(second.removed, 5, "4 entries and the first purge's entry");
    let records: Vec<Anchor> = h
        .journal
        .anchors()
        .await
        .expect("anchors")
        .into_iter()
        .filter(|a| a.kind == "checkpoint")
        .collect();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].actor.as_deref(), Some("dpo-one"));
    assert!(
        records[0]
            .summary
            .as_deref()
            .unwrap_or("")
            .contains("\"b\"")
    );
    assert_eq!(records[1].actor.as_deref(), Some("dpo-two"));
    let v = anchored(h, &key, &[]).await;
    assert!(v.is_intact(), "{:?}", v.problems);
    // Anchors and records survive everything but tampering.
    assert!(h.plain("DELETE FROM audit_anchor").await.is_err());
    assert!(
        h.plain("UPDATE audit_anchor SET actor = 'x'")
            .await
            .is_err()
    );

    // A forged checkpoint (a prefix erased, a checkpoint row written by hand) has no
    // signed record.
    fill(&h.journal, 3).await;
    let entries = h
        .journal
        .entries(&Filter::default())
        .await
        .expect("entries");
    let cut = &entries[1];
    h.tamper(&format!("DELETE FROM audit_entry WHERE seq <= {}", cut.seq))
        .await;
    h.tamper(&format!(
        "INSERT INTO audit_checkpoint (seq, hash, purged_before, at) VALUES ({}, {}, '{}', '{}')",
        cut.seq,
        sql_blob(h.engine, &cut.hash),
        cut.at,
        cut.at
    ))
    .await;
    assert!(
        h.journal.verify().await.expect("verify").is_intact(),
        "the chain alone is fooled"
    );
    let v = anchored(h, &key, &[]).await;
    assert_eq!(
        v.problems,
        vec![AnchorProblem::UnsignedCheckpoint { seq: cut.seq }]
    );

    // A removed checkpoint breaks the walk itself.
    h.tamper(&format!(
        "DELETE FROM audit_checkpoint WHERE seq = {}",
        cut.seq
    ))
    .await;
    assert!(!anchored(h, &key, &[]).await.is_intact());
}

async fn opening_an_existing_journal_creates_nothing(h: &Harness) {
    match h.engine {
        Engine::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let missing = dir.path().join("journal.sqlite");
            let err = JournalConfig::sqlite_file(&missing)
                .open_existing()
                .await
                .expect_err("no such journal");
            assert_eq!(err.kind(), ErrorKind::Missing);
            assert!(
                err.to_string().contains(&missing.display().to_string()),
                "{err}"
            );
            let other = dir.path().join("other.sqlite");
            std::fs::write(&other, b"").expect("empty file");
            let err = JournalConfig::sqlite_file(&other)
                .open_existing()
                .await
                .expect_err("not a journal");
            assert_eq!(err.kind(), ErrorKind::Missing);
            let names: Vec<_> = std::fs::read_dir(dir.path())
                .expect("list")
                .map(|e| e.expect("entry").file_name())
                .collect();
            assert_eq!(names, vec![std::ffi::OsString::from("other.sqlite")]);
            let j = JournalConfig::sqlite_file(h.sqlite_path.as_ref().expect("path"))
                .open_existing()
                .await
                .expect("an existing journal opens");
            j.close().await;
        }
        Engine::Postgres => {
            let (url, _, _) = h.pg.as_ref().expect("pg");
            let name = format!("empty_{}", uuid::Uuid::new_v4().simple());
            let mut admin = PgConnection::connect(url).await.expect("connect admin");
            admin
                .execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .await
                .expect("create database");
            let opts = PgConnectOptions::from_str(url)
                .expect("url")
                .database(&name);
            let err = Journal::open_postgres_existing(opts.clone(), 10)
                .await
                .expect_err("no journal there");
            assert_eq!(err.kind(), ErrorKind::Missing);
            let mut c = PgConnection::connect_with(&opts).await.expect("connect");
            let tables: i64 =
                sqlx::query("SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema()")
                    .fetch_one(&mut c)
                    .await
                    .expect("count")
                    .get(0);
            assert_eq!(tables, 0, "nothing created");
            let _ = c.close().await;
            let _ = admin
                .execute(AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)")))
                .await;
        }
    }
}

async fn incremental_walks_what_is_new_and_finds_a_change_there(h: &Harness) {
    fill(&h.journal, 10).await;
    let first = h.journal.verify().await.expect("verify");
    let mark = first.mark().expect("an intact walk gives a mark");
    assert_eq!(mark.seq, 10);
    fill(&h.journal, 5).await;
    let since = h.journal.verify_since(Some(&mark)).await.expect("verify");
    assert!(since.is_intact(), "{since:?}");
    assert_eq!((since.entries, since.last_seq), (5, 15));
    assert_eq!(since.mark().map(|m| m.seq), Some(15));
    h.tamper("UPDATE audit_entry SET actor = 'someone' WHERE seq = 12")
        .await;
    let since = h.journal.verify_since(Some(&mark)).await.expect("verify");
    assert_eq!(since.problem, Some(Problem::Altered { seq: 12 }));
    assert_eq!(since.mark(), None);
}

async fn incremental_finds_a_cut_tail_the_chain_alone_misses(h: &Harness) {
    fill(&h.journal, 10).await;
    let mark = h
        .journal
        .verify()
        .await
        .expect("verify")
        .mark()
        .expect("mark");
    h.tamper("DELETE FROM audit_entry WHERE seq >= 9").await;
    rechain(h).await;
    assert!(h.journal.verify().await.expect("verify").is_intact());
    let since = h.journal.verify_since(Some(&mark)).await.expect("verify");
    assert_eq!(
        since.problem,
        Some(Problem::TailCut {
            seq: 9,
            head_seq: 10
        })
    );
}

async fn incremental_finds_a_rewritten_marked_entry(h: &Harness) {
    fill(&h.journal, 5).await;
    let mark = h
        .journal
        .verify()
        .await
        .expect("verify")
        .mark()
        .expect("mark");
    h.tamper("UPDATE audit_entry SET actor = 'someone' WHERE seq = 5")
        .await;
    rechain(h).await;
    assert!(h.journal.verify().await.expect("verify").is_intact());
    let since = h.journal.verify_since(Some(&mark)).await.expect("verify");
    assert_eq!(since.problem, Some(Problem::Altered { seq: 5 }));
    // A change before the mark is what the full walk is for: the incremental one starts
    // after the marked entry, whose hash still holds.
}

async fn incremental_after_a_purge_past_the_mark(h: &Harness) {
    fill(&h.journal, 5).await;
    let mark = h
        .journal
        .verify()
        .await
        .expect("verify")
        .mark()
        .expect("mark");
    h.journal
        .purge_before(chrono::Utc::now() + chrono::Duration::seconds(1), "dpo")
        .await
        .expect("purge");
    fill(&h.journal, 2).await;
    let since = h.journal.verify_since(Some(&mark)).await.expect("verify");
    assert!(since.is_intact(), "{since:?}");
    assert_eq!(
        since.entries,
        h.journal.verify().await.expect("verify").entries
    );
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    #[allow(unused_mut)]
                    if let Some(mut h) = super::Harness::new(super::Engine::Sqlite).await {
                        super::$name(&mut h).await;
                        h.finish().await;
                    }
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    #[allow(unused_mut)]
                    if let Some(mut h) = super::Harness::new(super::Engine::Postgres).await {
                        super::$name(&mut h).await;
                        h.finish().await;
                    }
                }
            )*
        }
    };
}

conformance!(
    appends_chain_and_verify,
    changed_field_is_named,
    changed_field_list_is_named,
    deleted_entry_is_named,
    swapped_entries_are_named,
    cut_tail_is_named,
    rewritten_hash_breaks_the_next_link,
    triggers_refuse_update_and_delete,
    no_personal_data_is_stored_and_subjects_are_found,
    purge_keeps_the_rest_verifiable,
    purge_of_everything_then_append,
    concurrent_appenders_keep_one_chain,
    export_by_period_and_flow,
    reopening_migrates_once_and_continues,
    anchors_find_a_cut_tail_with_the_head_moved,
    anchors_find_a_recomputed_chain,
    anchors_find_erased_and_renumbered_entries,
    an_emptied_journal_is_found_from_the_anchor_file,
    signed_purges_are_recorded_for_good_and_checkpoints_checked,
    opening_an_existing_journal_creates_nothing,
    incremental_walks_what_is_new_and_finds_a_change_there,
    incremental_finds_a_cut_tail_the_chain_alone_misses,
    incremental_finds_a_rewritten_marked_entry,
    incremental_after_a_purge_past_the_mark,
);
