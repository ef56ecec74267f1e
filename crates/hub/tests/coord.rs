//! Several hub instances on one PostgreSQL state (each instance a pool of its own):
//! the night lock freed by the server when its holder's connection is killed, work
//! items each claimed by exactly one instance, a dead instance's items taken over, a
//! folder read by two instances file by file, and the shared rate limit holding for
//! all instances together. Real PostgreSQL on `PASSERELLE_TEST_PG_URL` (under `CI`, a
//! missing one fails).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use passerelle_connector::feed::{FileGate, FileReader, FolderFeed, Items};
use passerelle_connector::http::Bucket;
use passerelle_connector::{AckToken, ConnectorError, FolderSource, Source, SourceItem};
use passerelle_hub::HubState;
use passerelle_hub::state::coord::WorkKind;
use sqlx::Connection;
use sqlx::postgres::PgConnection;

mod common;

async fn instances(db: &common::PgDatabase, n: usize) -> Vec<HubState> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(db.state().await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_holder_frees_the_night_lock() {
    let Some(db) = common::PgDatabase::new("coordlock").await else {
        return;
    };
    let s = instances(&db, 2).await;
    let held = s[0]
        .night_lock("hub-a (pid 11)", Duration::ZERO)
        .await
        .unwrap();
    let e = s[1]
        .night_lock("hub-b (pid 12)", Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(e.is_busy());
    assert!(
        e.to_string()
            .starts_with("a night is running on hub-a (pid 11) since "),
        "{e}"
    );
    // The holder's connection, as the server sees it: the one holding the advisory
    // lock of a night in this database.
    let mut admin = PgConnection::connect(&db.url).await.unwrap();
    let pids: Vec<i32> = sqlx::query_scalar(
        "SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
         WHERE l.locktype = 'advisory' AND l.classid = 7215 AND l.objid = 2 \
         AND l.granted AND d.datname = current_database()",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(pids.len(), 1, "one holder: {pids:?}");
    // Killed, as a process killed with -9 loses its connections: the lock is free.
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pids[0])
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert!(killed);
    let second = s[1]
        .night_lock("hub-b (pid 12)", Duration::from_secs(10))
        .await
        .expect("free once its holder's connection died");
    // The stale holder's guard goes without harm; the new holder is named.
    held.release().await;
    let e = s[0]
        .night_lock("hub-a (pid 11)", Duration::ZERO)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("on hub-b (pid 12)"), "{e}");
    second.release().await;
    let _ = admin.close().await;
    for st in s {
        st.close().await;
    }
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_instances_claim_each_item_exactly_once() {
    let Some(db) = common::PgDatabase::new("coordclaim").await else {
        return;
    };
    let s = instances(&db, 4).await;
    let night = "2026-12-07T02:00";
    let keys: Vec<String> = (0..300)
        .map(|i| format!("CD{:03}/RSA_{i:04}.xml", i % 7))
        .collect();
    s[0].claims(night, "seed")
        .offer(WorkKind::File, &keys)
        .await
        .unwrap();
    let lease = Duration::from_secs(60);
    let runs = s.iter().enumerate().map(|(i, st)| {
        let claims = st.claims(night, &format!("hub-{i}"));
        async move {
            let mut got = Vec::new();
            loop {
                let batch = claims.claim_next(WorkKind::File, 7, lease).await.unwrap();
                if batch.is_empty() {
                    break;
                }
                for k in batch {
                    assert!(claims.complete(WorkKind::File, &k).await.unwrap());
                    got.push(k);
                }
            }
            got
        }
    });
    let got: Vec<Vec<String>> = futures::future::join_all(runs).await;
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for k in got.iter().flatten() {
        *seen.entry(k).or_default() += 1;
    }
    assert_eq!(seen.len(), keys.len(), "every item claimed");
    assert!(seen.values().all(|n| *n == 1), "none twice");
    assert!(
        got.iter().filter(|g| !g.is_empty()).count() >= 2,
        "the work was shared: {:?}",
        got.iter().map(Vec::len).collect::<Vec<_>>()
    );
    assert_eq!(
        s[1].claims(night, "x")
            .done(WorkKind::File)
            .await
            .unwrap()
            .len(),
        keys.len()
    );
    for st in s {
        st.close().await;
    }
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_instances_items_are_taken_over_once_its_lease_passed() {
    let Some(db) = common::PgDatabase::new("coorddead").await else {
        return;
    };
    let s = instances(&db, 3).await;
    let night = "2026-12-07T02:00";
    let keys: Vec<String> = (0..50).map(|i| format!("structure-{i:02}")).collect();
    let dead = s[0].claims(night, "hub-dead");
    dead.offer(WorkKind::ImiloStructure, &keys).await.unwrap();
    // Long enough for the live ones to drain the rest first on a loaded machine.
    let short = Duration::from_secs(3);
    let held = dead
        .claim_next(WorkKind::ImiloStructure, 20, short)
        .await
        .unwrap();
    assert_eq!(held.len(), 20);
    // hub-dead stops here: no renewal, no completion. The live ones drain the rest.
    let live = [s[1].claims(night, "hub-b"), s[2].claims(night, "hub-c")];
    let lease = Duration::from_secs(60);
    let drain = |c: &passerelle_hub::state::coord::Claims| {
        let c = c.clone();
        async move {
            let mut got = Vec::new();
            loop {
                let b = c
                    .claim_next(WorkKind::ImiloStructure, 3, lease)
                    .await
                    .unwrap();
                if b.is_empty() {
                    break;
                }
                for k in b {
                    assert!(c.complete(WorkKind::ImiloStructure, &k).await.unwrap());
                    got.push(k);
                }
            }
            got
        }
    };
    let (x, y) = tokio::join!(drain(&live[0]), drain(&live[1]));
    let first: BTreeSet<String> = x.into_iter().chain(y).collect();
    assert_eq!(first.len(), 30);
    assert!(
        held.iter().all(|k| !first.contains(k)),
        "the dead one's are leased"
    );
    tokio::time::sleep(short + Duration::from_millis(300)).await;
    let (x, y) = tokio::join!(drain(&live[0]), drain(&live[1]));
    let taken: BTreeSet<String> = x.into_iter().chain(y).collect();
    assert_eq!(taken, held.iter().cloned().collect::<BTreeSet<_>>());
    // Too late for the dead one: its items are someone else's, done.
    assert!(
        !dead
            .complete(WorkKind::ImiloStructure, &held[0])
            .await
            .unwrap()
    );
    assert_eq!(
        dead.done(WorkKind::ImiloStructure).await.unwrap().len(),
        keys.len()
    );
    for st in s {
        st.close().await;
    }
    db.finish().await;
}

/// A file of lines, one item per line (refused items: nothing to publish).
struct Lines;

impl FileReader for Lines {
    fn accepts(&self, name: &str) -> bool {
        name.ends_with(".txt")
    }
    fn open(&self, path: &Path) -> Result<Items, ConnectorError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConnectorError::io("test", e))?;
        let items: Vec<Result<SourceItem, ConnectorError>> = text
            .lines()
            .map(|_| {
                Ok(SourceItem {
                    outcome: Err(Vec::new()),
                    warnings: Vec::new(),
                    ack: AckToken(String::new()),
                })
            })
            .collect();
        Ok(Box::new(items.into_iter()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_read_a_shared_folder_file_by_file() {
    let Some(db) = common::PgDatabase::new("coordfiles").await else {
        return;
    };
    let s = instances(&db, 2).await;
    let dir = tempfile::tempdir().unwrap();
    for i in 0..6 {
        std::fs::write(dir.path().join(format!("RSA_{i}.txt")), "a\nb\n").unwrap();
    }
    let night = "2026-12-07T02:00";
    let lease = Duration::from_secs(60);
    let source = |i: usize| {
        let gate: Arc<dyn FileGate> = Arc::new(
            s[i].claims(night, &format!("hub-{i}"))
                .file_gate("CD059/solis", lease),
        );
        FolderSource::new(FolderFeed::new(dir.path(), Lines, 1).with_gate(gate))
    };
    let mut src = [source(0), source(1)];
    // Read in turns, one item each, acknowledging as the night does.
    let mut read: [BTreeSet<String>; 2] = Default::default();
    let mut ended = [false, false];
    while !ended.iter().all(|e| *e) {
        for i in 0..2 {
            if ended[i] {
                continue;
            }
            let batch = src[i].next_batch().await.unwrap();
            if batch.is_empty() {
                ended[i] = true;
                continue;
            }
            let tokens: Vec<AckToken> = batch.iter().map(|b| b.ack.clone()).collect();
            for t in &tokens {
                read[i].insert(t.0.rsplit_once('#').unwrap().0.to_owned());
            }
            src[i].ack(&tokens).await.unwrap();
        }
    }
    assert!(read[0].is_disjoint(&read[1]), "{read:?}");
    assert_eq!(read[0].len() + read[1].len(), 6);
    assert!(!read[0].is_empty() && !read[1].is_empty(), "{read:?}");
    let done = std::fs::read_dir(dir.path().join("traites"))
        .unwrap()
        .count();
    assert_eq!(done, 6);
    let claims = s[0].claims(night, "x");
    assert_eq!(claims.done(WorkKind::File).await.unwrap().len(), 6);
    for st in s {
        st.close().await;
    }
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_bucket_keeps_all_instances_within_the_limit() {
    let Some(db) = common::PgDatabase::new("coordbucket").await else {
        return;
    };
    let s = instances(&db, 3).await;
    let (rate, burst) = (20.0, 5u32);
    let started = Instant::now();
    // Three instances, two takers each, ten requests per taker.
    let takers = s.iter().flat_map(|st| {
        let b = st.shared_bucket("imilo#dossiers", rate, burst).unwrap();
        [b.clone(), b]
    });
    let runs = takers.map(|b| async move {
        let mut at = Vec::new();
        for _ in 0..10 {
            b.pace().await.unwrap();
            at.push(started.elapsed());
        }
        at
    });
    let mut at: Vec<Duration> = futures::future::join_all(runs)
        .await
        .into_iter()
        .flatten()
        .collect();
    at.sort();
    assert_eq!(at.len(), 60);
    // In any one second, at most the burst and a second's rate, and a little for
    // takers that woke late on a loaded machine (three buckets of their own would
    // let through three times as many).
    let window = Duration::from_secs(1);
    let most = at
        .iter()
        .map(|t| at.iter().filter(|u| *u >= t && **u < *t + window).count())
        .max()
        .unwrap();
    let limit = burst as usize + rate as usize + 3;
    assert!(most <= limit, "{most} requests in a second, limit {limit}");
    // Taken together: 60 requests at 20/s after a burst of 5 take about 2.75 s (each
    // instance alone with its own bucket would have taken 0.75 s).
    let span = at[59];
    assert!(span >= Duration::from_millis(2500), "{span:?}");
    // Without PostgreSQL there is no shared bucket (one machine paces in process).
    let dir = tempfile::tempdir().unwrap();
    let lite = HubState::open(&dir.path().join("s.sqlite")).await.unwrap();
    assert!(lite.shared_bucket("imilo#dossiers", rate, burst).is_none());
    assert!(s[0].shared_bucket("x", 0.0, burst).is_none());
    for st in s {
        st.close().await;
    }
    db.finish().await;
}
