//! One conformance suite for both hub state stores: every scenario runs on SQLite (a
//! temporary file) and on PostgreSQL (a fresh database on `PASSERELLE_TEST_PG_URL`;
//! under `CI` a missing PostgreSQL fails the test instead of skipping it). The
//! scenarios cover what the rest of the workspace relies on: transfers and their
//! receipts, change detection, cursors, peer and sender references, pending journal
//! entries, denials, the identity index, reviews, and the web application's tables.

#![allow(clippy::print_stderr)] // says why a service test returns early

use std::collections::HashSet;
use std::path::PathBuf;

use chrono::{Duration, Utc};
use passerelle_hub::state::{Pending, PublishedRow, SENDER_REF_PLACE, SENDER_REF_SEALED};
use passerelle_hub::*;
use passerelle_identity::{IdentityIndex, IdentityKeys, IndexEntry, KeyKind};
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection, Executor};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Engine {
    Sqlite,
    Postgres,
}

struct Harness {
    state: HubState,
    /// What `HubState::connect` opens this store by.
    url: String,
    _dir: Option<tempfile::TempDir>,
    /// The admin URL and the test database's name, dropped at the end.
    pg: Option<(String, String)>,
}

impl Harness {
    /// A fresh, empty state; `None` (after saying why) when PostgreSQL is not
    /// configured outside CI.
    async fn new(engine: Engine) -> Option<Harness> {
        match engine {
            Engine::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path: PathBuf = dir.path().join("state.sqlite");
                let state = HubState::open(&path).await.expect("open sqlite state");
                Some(Harness {
                    state,
                    url: format!("sqlite:{}", path.display()),
                    _dir: Some(dir),
                    pg: None,
                })
            }
            Engine::Postgres => {
                let Ok(admin_url) = std::env::var("PASSERELLE_TEST_PG_URL") else {
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
                let name = format!("hubstate_{}", Uuid::new_v4().simple());
                let mut admin = PgConnection::connect(&admin_url)
                    .await
                    .expect("connect admin");
                admin
                    .execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .await
                    .expect("create test database");
                let _ = admin.close().await;
                let (base, _) = admin_url.rsplit_once('/').expect("database in the url");
                let url = format!("{base}/{name}");
                let state = HubState::connect(&url).await.expect("open postgres state");
                assert_eq!(state.engine_name(), "postgres");
                Some(Harness {
                    state,
                    url,
                    _dir: None,
                    pg: Some((admin_url, name)),
                })
            }
        }
    }

    /// Another handle on the same store (another process, another instance).
    async fn another(&self) -> HubState {
        HubState::connect(&self.url).await.expect("open again")
    }

    async fn reopen(&mut self) {
        let s = self.another().await;
        let old = std::mem::replace(&mut self.state, s);
        old.close().await;
    }

    async fn finish(self) {
        self.state.close().await;
        if let Some((url, name)) = self.pg
            && let Ok(mut admin) = PgConnection::connect(&url).await
        {
            let _ = admin
                .execute(AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .await;
        }
    }
}

fn row(id: u128, flow: &str) -> TransferRow {
    TransferRow {
        transfer_id: Uuid::from_u128(id),
        flow: flow.into(),
        sender: "CD059".into(),
        recipient: "59350S00".into(),
        hub_id: Uuid::from_u128(1000 + id),
        status: TransferStatus::Published,
        reason: None,
    }
}

fn change(id: u128, status: TransferStatus, reason: Option<&str>) -> StatusChange {
    StatusChange {
        transfer_id: Uuid::from_u128(id),
        status,
        reason: reason.map(str::to_owned),
    }
}

async fn status_of(s: &HubState, id: u128) -> TransferStatus {
    s.transfer(&Uuid::from_u128(id))
        .await
        .unwrap()
        .expect("transfer")
        .status
}

const FLOW: &str = "brsa-orientation";

async fn receipts_move_forward_only(h: &mut Harness) {
    let s = &h.state;
    let r = row(1, FLOW);
    s.record_published(&r, &[7; 32]).await.unwrap();
    // Recording the same transfer twice (a rerun after a crash) is harmless.
    s.record_published(&r, &[7; 32]).await.unwrap();
    assert_eq!(status_of(s, 1).await, TransferStatus::Published);
    assert!(
        s.set_status(&r.transfer_id, TransferStatus::Delivered, None)
            .await
            .unwrap()
    );
    assert!(
        !s.set_status(&r.transfer_id, TransferStatus::Delivered, None)
            .await
            .unwrap(),
        "the same receipt twice moves nothing"
    );
    assert!(
        s.set_status(&r.transfer_id, TransferStatus::Applied, None)
            .await
            .unwrap()
    );
    for back in [
        TransferStatus::Published,
        TransferStatus::Delivered,
        TransferStatus::Rejected,
        TransferStatus::DeadLettered,
    ] {
        assert!(
            !s.set_status(&r.transfer_id, back, Some("late"))
                .await
                .unwrap(),
            "applied never goes back to {back:?}"
        );
    }
    // Recording it again keeps its later status.
    s.record_published(&r, &[7; 32]).await.unwrap();
    assert_eq!(status_of(s, 1).await, TransferStatus::Applied);

    let r2 = row(2, FLOW);
    s.record_published(&r2, &[8; 32]).await.unwrap();
    assert!(
        s.set_status(
            &r2.transfer_id,
            TransferStatus::Rejected,
            Some("422 STRUCTURE_INCONNUE")
        )
        .await
        .unwrap()
    );
    assert!(
        !s.set_status(&r2.transfer_id, TransferStatus::Delivered, None)
            .await
            .unwrap()
    );
    let t2 = s.transfer(&r2.transfer_id).await.unwrap().unwrap();
    assert_eq!(t2.reason.as_deref(), Some("422 STRUCTURE_INCONNUE"));
    // A dead letter replayed can still be applied.
    let r3 = row(3, FLOW);
    s.record_published(&r3, &[9; 32]).await.unwrap();
    assert!(
        s.set_status(&r3.transfer_id, TransferStatus::DeadLettered, Some("x"))
            .await
            .unwrap()
    );
    assert!(
        s.set_status(&r3.transfer_id, TransferStatus::Applied, None)
            .await
            .unwrap()
    );

    let mut counts = s.status_counts(FLOW).await.unwrap();
    counts.sort();
    assert_eq!(
        counts,
        vec![(TransferStatus::Applied, 2), (TransferStatus::Rejected, 1)]
    );
    assert_eq!(s.senders().await.unwrap(), vec!["CD059".to_owned()]);
    assert_eq!(s.transfers_of("CD059", Some(FLOW)).await.unwrap().len(), 3);
    assert!(
        s.transfers_of("CD059", Some("autre"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.transfers_of("CD059", None).await.unwrap().len(), 3);
    let ids = [r.transfer_id, r2.transfer_id, Uuid::from_u128(77)];
    assert_eq!(s.transfers(&ids).await.unwrap().len(), 2);
    let st = s.statuses(&ids).await.unwrap();
    assert_eq!(st.len(), 2);
    assert_eq!(st[&r2.transfer_id], TransferStatus::Rejected);
    let bilan = s
        .bilan(
            Utc::now() - Duration::hours(1),
            Utc::now() + Duration::hours(1),
        )
        .await
        .unwrap();
    let total: u64 = bilan.iter().map(|b| b.transfers).sum();
    assert_eq!(total, 3);
    assert!(
        s.bilan(
            Utc::now() + Duration::hours(1),
            Utc::now() + Duration::hours(2)
        )
        .await
        .unwrap()
        .is_empty()
    );
}

async fn batches_cross_chunks_and_keep_the_rules(h: &mut Harness) {
    let s = &h.state;
    let rows: Vec<(TransferRow, [u8; 32])> = (0..250u128)
        .map(|i| (row(i, FLOW), [i as u8; 32]))
        .collect();
    s.record_published_many(&rows).await.unwrap();
    s.record_published_many(&rows).await.unwrap();
    s.set_statuses(&[change(5, TransferStatus::Applied, None)])
        .await
        .unwrap();
    let mut receipts: Vec<StatusChange> = (0..220u128)
        .map(|i| change(i, TransferStatus::Delivered, None))
        .collect();
    // Named twice in one chunk: delivered, then rejected.
    receipts.push(change(7, TransferStatus::Rejected, Some("format")));
    let moved = s.set_statuses(&receipts).await.unwrap();
    assert_eq!(moved.len(), receipts.len());
    assert!(moved[0]);
    assert!(!moved[5], "a late delivered does not hide applied");
    assert!(moved[220], "rejected after delivered moves forward");
    assert_eq!(status_of(s, 7).await, TransferStatus::Rejected);
    assert_eq!(status_of(s, 219).await, TransferStatus::Delivered);
    assert_eq!(status_of(s, 230).await, TransferStatus::Published);
    let before = Utc::now() + Duration::seconds(5);
    let late = s.unanswered(before).await.unwrap();
    assert_eq!(late.len(), 218, "delivered and not answered");
    assert!(
        s.unanswered(Utc::now() - Duration::hours(1))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn change_detection_by_stream(h: &mut Harness) {
    let s = &h.state;
    let r = row(1, FLOW);
    assert_eq!(
        s.last_hash(FLOW, "59350S00", &r.hub_id).await.unwrap(),
        None
    );
    s.record_published(&r, &[1; 32]).await.unwrap();
    assert_eq!(
        s.last_hash(FLOW, "59350S00", &r.hub_id).await.unwrap(),
        Some([1; 32])
    );
    // The same person under another key (the kind of source) is apart.
    let mut other = row(2, FLOW);
    other.hub_id = r.hub_id;
    let rows = [
        PublishedRow {
            row: other.clone(),
            stream: "59350S00#solis".into(),
            hash: [2; 32],
            entries: Vec::new(),
        },
        // The same person twice in one call: the last hash stays.
        PublishedRow {
            row: other.clone(),
            stream: "59350S00#solis".into(),
            hash: [3; 32],
            entries: Vec::new(),
        },
    ];
    let (new, _) = s
        .record_published_rows(&rows, &Pending::default())
        .await
        .unwrap();
    assert_eq!(
        new,
        vec![true, false],
        "a transfer twice in one call is new once"
    );
    assert_eq!(
        s.last_hash(FLOW, "59350S00#solis", &r.hub_id)
            .await
            .unwrap(),
        Some([3; 32])
    );
    assert_eq!(
        s.last_hash(FLOW, "59350S00", &r.hub_id).await.unwrap(),
        Some([1; 32])
    );
    let many: Vec<Uuid> = (0..700u128)
        .map(Uuid::from_u128)
        .chain([r.hub_id])
        .collect();
    let got = s.last_hashes(FLOW, "59350S00", &many).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[&r.hub_id], [1; 32]);
    // Forgotten: the same record is sent again.
    s.forget_sent(&[r.transfer_id]).await.unwrap();
    assert_eq!(
        s.last_hash(FLOW, "59350S00", &r.hub_id).await.unwrap(),
        None
    );
    assert_eq!(
        s.last_hash(FLOW, "59350S00#solis", &r.hub_id)
            .await
            .unwrap(),
        Some([3; 32])
    );

    // Denials: kept per (flow, recipient, person), the last one counts.
    let hub = Uuid::from_u128(5);
    s.save_denied(&[
        (FLOW.into(), "59350S00".into(), hub, [4; 32]),
        (FLOW.into(), "59350S00".into(), hub, [5; 32]),
    ])
    .await
    .unwrap();
    let d = s
        .denied_hashes(FLOW, "59350S00", &[hub, r.hub_id])
        .await
        .unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[&hub], [5; 32]);
    assert!(
        s.denied_hashes(FLOW, "autre", &[hub])
            .await
            .unwrap()
            .is_empty()
    );
}

async fn cursors_and_peer_refs(h: &mut Harness) {
    let s = &h.state;
    assert_eq!(s.cursor("imilo/events").await.unwrap(), None);
    s.set_cursor("imilo/events", "2026-11-21T22:14:03Z")
        .await
        .unwrap();
    s.set_cursor("imilo/events", "2026-11-22T22:14:03Z")
        .await
        .unwrap();
    assert_eq!(
        s.cursor("imilo/events").await.unwrap().as_deref(),
        Some("2026-11-22T22:14:03Z")
    );
    let a = Uuid::from_u128(1);
    let b = Uuid::from_u128(2);
    s.save_peer_refs(&[
        (a, "59350S00".into(), vec![1, 2]),
        (a, "59350S00".into(), vec![3]),
        (b, "CD059".into(), vec![4]),
    ])
    .await
    .unwrap();
    let refs = s.peer_refs("59350S00", &[a, b]).await.unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[&a], vec![3], "the last reference counts");
    assert_eq!(s.peer_refs("CD059", &[a, b]).await.unwrap()[&b], vec![4]);
    h.reopen().await;
    assert_eq!(
        h.state.cursor("imilo/events").await.unwrap().as_deref(),
        Some("2026-11-22T22:14:03Z"),
        "a reopened state keeps its cursors"
    );
}

async fn sender_refs_and_receipts(h: &mut Harness) {
    let s = &h.state;
    for i in 1..=3 {
        s.record_published(&row(i, FLOW), &[i as u8; 32])
            .await
            .unwrap();
    }
    s.record_published(&row(4, "autre"), &[4; 32])
        .await
        .unwrap();
    let place = format!("{SENDER_REF_PLACE}orientations.csv:2");
    s.save_sender_refs(&[
        (Uuid::from_u128(1), place.clone()),
        (Uuid::from_u128(1), format!("{SENDER_REF_PLACE}other.csv:9")),
        (Uuid::from_u128(2), format!("{SENDER_REF_SEALED}abcd")),
    ])
    .await
    .unwrap();
    // The first reference recorded stays.
    s.save_sender_refs(&[(Uuid::from_u128(1), format!("{SENDER_REF_PLACE}x.csv:1"))])
        .await
        .unwrap();
    s.set_status(&Uuid::from_u128(2), TransferStatus::Applied, None)
        .await
        .unwrap();
    let got = s.receipts_of("CD059", Some(FLOW)).await.unwrap();
    assert_eq!(got.len(), 3);
    let one = got
        .iter()
        .find(|r| r.row.transfer_id == Uuid::from_u128(1))
        .unwrap();
    assert_eq!(one.sender_ref.as_deref(), Some(place.as_str()));
    let two = got
        .iter()
        .find(|r| r.row.transfer_id == Uuid::from_u128(2))
        .unwrap();
    assert_eq!(two.row.status, TransferStatus::Applied);
    assert!(two.updated_at >= two.created_at);
    let three = got
        .iter()
        .find(|r| r.row.transfer_id == Uuid::from_u128(3))
        .unwrap();
    assert_eq!(three.sender_ref, None);
    assert_eq!(s.receipts_of("CD059", None).await.unwrap().len(), 4);
    assert!(s.receipts_of("59350S00", None).await.unwrap().is_empty());
}

async fn pending_entries_go_with_their_transfer(h: &mut Harness) {
    let s = &h.state;
    let rows = [PublishedRow {
        row: row(1, FLOW),
        stream: "59350S00".into(),
        hash: [1; 32],
        entries: vec![b"published-1".to_vec()],
    }];
    let (new, kept) = s
        .record_published_rows(&rows, &Pending::default())
        .await
        .unwrap();
    assert_eq!(new, vec![true]);
    assert_eq!(kept.0.len(), 1);
    // Recorded again (a crash after recording): not new, nothing kept twice.
    let (new, again) = s
        .record_published_rows(&rows, &Pending::default())
        .await
        .unwrap();
    assert_eq!(new, vec![false]);
    assert!(again.0.is_empty());
    let (moved, kept2) = s
        .settle(
            &[
                change(1, TransferStatus::Delivered, None),
                change(1, TransferStatus::Delivered, None),
            ],
            &[b"delivered-1".to_vec(), b"delivered-1-again".to_vec()],
            &Pending::default(),
        )
        .await
        .unwrap();
    assert_eq!(moved, vec![true, false]);
    assert_eq!(kept2.0.len(), 1);
    let pending = s.pending_entries().await.unwrap();
    assert_eq!(
        pending.iter().map(|p| p.entry.clone()).collect::<Vec<_>>(),
        vec![b"published-1".to_vec(), b"delivered-1".to_vec()],
        "oldest first"
    );
    assert!(pending.iter().all(|p| p.transfer_id == Uuid::from_u128(1)));
    assert!(chrono::DateTime::parse_from_rfc3339(&pending[0].since).is_ok());
    // Dropped with the next write once journaled.
    let (_, kept3) = s
        .settle(
            &[change(1, TransferStatus::Applied, None)],
            &[b"applied-1".to_vec()],
            &kept,
        )
        .await
        .unwrap();
    let left: Vec<Vec<u8>> = s
        .pending_entries()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.entry)
        .collect();
    assert_eq!(left, vec![b"delivered-1".to_vec(), b"applied-1".to_vec()]);
    s.drop_pending(&Pending([kept2.0, kept3.0].concat()))
        .await
        .unwrap();
    assert!(s.pending_entries().await.unwrap().is_empty());
}

/// A receipt for a transfer the store has no row for (another instance published it
/// and has not recorded it yet, or the receipt outran the record) is kept, counts as a
/// move, and the transfer takes it when recorded; it never moves back.
async fn a_receipt_before_its_transfer_is_kept(h: &mut Harness) {
    let s = &h.state;
    let (moved, kept) = s
        .settle(
            &[
                change(1, TransferStatus::Delivered, None),
                change(1, TransferStatus::Applied, None),
                change(2, TransferStatus::Rejected, Some("422 X")),
                change(3, TransferStatus::Published, None),
            ],
            &[
                b"d1".to_vec(),
                b"a1".to_vec(),
                b"r2".to_vec(),
                b"p3".to_vec(),
            ],
            &Pending::default(),
        )
        .await
        .unwrap();
    assert_eq!(moved, vec![true, true, true, false]);
    assert_eq!(kept.0.len(), 3, "each move keeps its journal entry");
    let early = s.early_receipts().await.unwrap();
    assert_eq!(early.len(), 2);
    assert_eq!(early[&Uuid::from_u128(1)], TransferStatus::Applied);
    assert!(s.transfer(&Uuid::from_u128(1)).await.unwrap().is_none());
    // Later and lower: nothing moves.
    assert!(
        !s.set_status(&Uuid::from_u128(1), TransferStatus::Delivered, None)
            .await
            .unwrap()
    );
    // Another handle (another instance) records the transfers.
    let other = h.another().await;
    let rows: Vec<PublishedRow> = [1u128, 2, 4]
        .into_iter()
        .map(|i| PublishedRow {
            row: row(i, FLOW),
            stream: "59350S00".into(),
            hash: [i as u8; 32],
            entries: vec![format!("published-{i}").into_bytes()],
        })
        .collect();
    let (new, _) = other
        .record_published_rows(&rows, &Pending::default())
        .await
        .unwrap();
    assert_eq!(
        new,
        vec![true, true, true],
        "their publication is journaled too"
    );
    other.close().await;
    assert_eq!(status_of(s, 1).await, TransferStatus::Applied);
    let t2 = s.transfer(&Uuid::from_u128(2)).await.unwrap().unwrap();
    assert_eq!(
        (t2.status, t2.reason.as_deref()),
        (TransferStatus::Rejected, Some("422 X"))
    );
    assert_eq!(status_of(s, 4).await, TransferStatus::Published);
    assert!(s.early_receipts().await.unwrap().is_empty());
    // Now the row holds it: the same receipt again moves nothing.
    assert!(
        !s.set_status(&Uuid::from_u128(1), TransferStatus::Applied, None)
            .await
            .unwrap()
    );
    assert_eq!(
        s.receipts_of("CD059", Some(FLOW)).await.unwrap().len(),
        3,
        "visible to the sender"
    );
}

/// Two handles (two instances) settling the same transfers at once: each transfer
/// ends at its highest status, and each status is counted as a move once.
async fn concurrent_receipts_never_go_back(h: &mut Harness) {
    let n = 60u128;
    let rows: Vec<(TransferRow, [u8; 32])> =
        (0..n).map(|i| (row(i, FLOW), [i as u8; 32])).collect();
    h.state.record_published_many(&rows).await.unwrap();
    let a = h.another().await;
    let b = h.another().await;
    let plan = |order: &[TransferStatus]| -> Vec<StatusChange> {
        (0..n)
            .flat_map(|i| order.iter().map(move |s| change(i, *s, None)))
            .collect()
    };
    let one = plan(&[TransferStatus::Delivered, TransferStatus::Applied]);
    let two = plan(&[TransferStatus::Rejected, TransferStatus::Delivered]);
    let mut tasks = Vec::new();
    for (s, receipts) in [(a.clone(), one), (b.clone(), two)] {
        tasks.push(tokio::spawn(async move {
            let mut moved = Vec::new();
            // One receipt per transaction, interleaving as much as possible.
            for c in receipts {
                moved.push((c.clone(), s.set_statuses(&[c]).await.unwrap()[0]));
            }
            moved
        }));
    }
    let mut moves = HashSet::new();
    for t in tasks {
        for (c, moved) in t.await.unwrap() {
            if moved {
                assert!(
                    moves.insert((c.transfer_id, c.status)),
                    "a status counted twice as a move"
                );
            }
        }
    }
    for i in 0..n {
        assert_eq!(status_of(&h.state, i).await, TransferStatus::Applied);
        assert!(moves.contains(&(Uuid::from_u128(i), TransferStatus::Applied)));
    }
    a.close().await;
    b.close().await;
}

/// One handle records transfers while another settles their receipts at the same time,
/// one transaction each: whichever comes first, every transfer ends applied and no
/// receipt is left waiting for a row.
async fn receipts_racing_their_record_are_never_lost(h: &mut Harness) {
    let n = 40u128;
    let a = h.another().await;
    let b = h.another().await;
    let record = tokio::spawn({
        let a = a.clone();
        async move {
            for i in 0..n {
                a.record_published(&row(i, FLOW), &[i as u8; 32])
                    .await
                    .unwrap();
            }
        }
    });
    let settle = tokio::spawn({
        let b = b.clone();
        async move {
            let mut moved = 0;
            for i in (0..n).rev() {
                if b.set_status(&Uuid::from_u128(i), TransferStatus::Applied, None)
                    .await
                    .unwrap()
                {
                    moved += 1;
                }
            }
            moved
        }
    });
    record.await.unwrap();
    assert_eq!(settle.await.unwrap(), n, "every receipt is taken once");
    for i in 0..n {
        assert_eq!(
            status_of(&h.state, i).await,
            TransferStatus::Applied,
            "transfer {i}"
        );
    }
    assert!(h.state.early_receipts().await.unwrap().is_empty());
    a.close().await;
    b.close().await;
}

async fn identity_entries_are_kept_once(h: &mut Harness) {
    let s = &h.state;
    let e = |hub: u128, kind: KeyKind, key: &str| IndexEntry {
        hub_id: Uuid::from_u128(hub),
        kind,
        key: key.to_owned(),
    };
    let entries = vec![
        e(1, KeyKind::Nir, &"ab".repeat(32)),
        e(1, KeyKind::ImiloDossier, &"cd".repeat(32)),
        e(2, KeyKind::Nir, &"ef".repeat(32)),
        e(1, KeyKind::Nir, &"ab".repeat(32)),
    ];
    s.save_identity_entries(&entries).await.unwrap();
    s.save_identity_entries(&entries).await.unwrap();
    let mut got = s.identity_entries().await.unwrap();
    got.sort_by(|a, b| (a.hub_id, &a.key).cmp(&(b.hub_id, &b.key)));
    assert_eq!(got.len(), 3);
    assert_eq!(got[0], entries[0]);
    let mut n = 0;
    assert_eq!(s.for_each_identity_entry(|_| n += 1).await.unwrap(), 3);
    assert_eq!(n, 3);
    let web = WebStore::open(s).await.unwrap();
    assert_eq!(
        web.hub_ids_for(&[
            (KeyKind::Nir, "ef".repeat(32)),
            (KeyKind::Nir, "ab".repeat(32))
        ])
        .await
        .unwrap(),
        vec![Uuid::from_u128(2), Uuid::from_u128(1)]
    );
    let mut keys = web.keys_of(&Uuid::from_u128(1)).await.unwrap();
    keys.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        keys,
        vec![
            (KeyKind::Nir, "ab".repeat(32)),
            (KeyKind::ImiloDossier, "cd".repeat(32))
        ]
    );
}

async fn reviews_are_held_then_settled_or_expired(h: &mut Harness) {
    let s = &h.state;
    assert_eq!(s.review_count().await.unwrap(), 0);
    s.save_review(
        FLOW,
        "SeveralCandidates",
        &[Uuid::from_u128(1), Uuid::from_u128(2)],
    )
    .await
    .unwrap();
    assert_eq!(s.review_count().await.unwrap(), 1);
    let store = ReviewStore::open(s).await.unwrap();
    let now = Utc::now();
    let held = |id: u128, expires: chrono::DateTime<Utc>| HeldReview {
        id: Uuid::from_u128(id),
        flow: FLOW.into(),
        reason: "SeveralCandidates".into(),
        candidates: vec![Uuid::from_u128(1), Uuid::from_u128(2)],
        sender: "CD059".into(),
        recipient: "59350S00".into(),
        created_at: now,
        expires_at: expires,
        outcome: None,
    };
    store
        .hold(&held(10, now + Duration::days(30)), b"sealed-10")
        .await
        .unwrap();
    // Held twice (a rerun): kept once.
    store
        .hold(&held(10, now + Duration::days(30)), b"sealed-10")
        .await
        .unwrap();
    store
        .hold(&held(11, now - Duration::seconds(1)), b"sealed-11")
        .await
        .unwrap();
    assert_eq!(store.open_for("CD059").await.unwrap().len(), 2);
    assert!(store.open_for("59350S00").await.unwrap().is_empty());
    let (r, sealed) = store.get(&Uuid::from_u128(10)).await.unwrap().unwrap();
    assert_eq!(r.candidates.len(), 2);
    assert_eq!(sealed.as_deref(), Some(&b"sealed-10"[..]));
    assert_eq!(store.expire(now).await.unwrap(), 1);
    let (r, sealed) = store.get(&Uuid::from_u128(11)).await.unwrap().unwrap();
    assert_eq!((r.outcome.as_deref(), sealed), (Some("expiree"), None));
    let outcome = format!("meme:{}", Uuid::from_u128(1));
    assert!(store.settle(&Uuid::from_u128(10), &outcome).await.unwrap());
    assert!(!store.settle(&Uuid::from_u128(10), "expiree").await.unwrap());
    let (r, sealed) = store.get(&Uuid::from_u128(10)).await.unwrap().unwrap();
    assert_eq!(r.outcome.as_deref(), Some(outcome.as_str()));
    assert_eq!(sealed, None, "a settled review's record is erased");
    assert!(store.open_for("CD059").await.unwrap().is_empty());
    assert!(store.get(&Uuid::from_u128(99)).await.unwrap().is_none());
}

async fn web_accounts_sessions_and_queries(h: &mut Harness) {
    let web = WebStore::open(&h.state).await.unwrap();
    web.add_account("alice", "$argon2id$x", Role::Conseiller, Some("59350S00"))
        .await
        .unwrap();
    web.add_account("dpo", "$argon2id$d", Role::Dpo, None)
        .await
        .unwrap();
    assert!(matches!(
        web.add_account("alice", "h", Role::Dpo, None).await,
        Err(WebError::Exists(_))
    ));
    let a = web.account("alice").await.unwrap().unwrap();
    assert_eq!(
        (a.role, a.org.as_deref(), a.disabled),
        (Role::Conseiller, Some("59350S00"), false)
    );
    assert_eq!(
        web.accounts()
            .await
            .unwrap()
            .iter()
            .map(|a| a.login.as_str())
            .collect::<Vec<_>>(),
        vec!["alice", "dpo"]
    );
    web.create_session("h1", "alice", "c1").await.unwrap();
    let later = Utc::now() + Duration::minutes(3);
    web.touch_session("h1", later).await.unwrap();
    let sess = web.session("h1").await.unwrap().unwrap();
    assert_eq!((sess.login.as_str(), sess.csrf.as_str()), ("alice", "c1"));
    assert!(sess.last_seen > sess.created_at);
    web.disable("alice").await.unwrap();
    assert!(
        web.session("h1").await.unwrap().is_none(),
        "disabling ends sessions"
    );
    assert!(web.account("alice").await.unwrap().unwrap().disabled);
    web.set_password("alice", "$argon2id$y").await.unwrap();
    let a = web.account("alice").await.unwrap().unwrap();
    assert_eq!(
        (a.password_hash.as_str(), a.disabled),
        ("$argon2id$y", false)
    );
    assert!(matches!(
        web.disable("bob").await,
        Err(WebError::NoAccount(_))
    ));
    assert!(matches!(
        web.set_password("bob", "x").await,
        Err(WebError::NoAccount(_))
    ));
    web.create_session("h2", "alice", "c2").await.unwrap();
    web.create_session("h3", "dpo", "c3").await.unwrap();
    web.end_session("h3").await.unwrap();
    assert!(web.session("h3").await.unwrap().is_none());
    assert_eq!(
        web.purge_sessions(later, Utc::now() - Duration::hours(1))
            .await
            .unwrap(),
        1
    );
    assert!(web.session("h2").await.unwrap().is_none());

    // The pages' queries over transfers.
    let s = &h.state;
    for i in 1..=3u128 {
        s.record_published(&row(i, FLOW), &[1; 32]).await.unwrap();
    }
    s.record_published(&row(4, "autre"), &[1; 32])
        .await
        .unwrap();
    s.set_status(&Uuid::from_u128(2), TransferStatus::Rejected, Some("r"))
        .await
        .unwrap();
    let t = web.transfer(&Uuid::from_u128(2)).await.unwrap().unwrap();
    assert_eq!(t.row.status, TransferStatus::Rejected);
    assert!(web.transfer(&Uuid::from_u128(9)).await.unwrap().is_none());
    let about = web
        .transfers_about(&[Uuid::from_u128(1001), Uuid::from_u128(1004)])
        .await
        .unwrap();
    assert_eq!(about.len(), 2);
    let all = web.sent_by("CD059", &SentFilter::default()).await.unwrap();
    assert_eq!(all.len(), 4);
    assert!(
        all.windows(2).all(|w| w[0].created_at >= w[1].created_at),
        "newest first"
    );
    let f = SentFilter {
        flow: Some(FLOW.into()),
        status: Some(TransferStatus::Published),
        ..SentFilter::default()
    };
    assert_eq!(web.sent_by("CD059", &f).await.unwrap().len(), 2);
    let f = SentFilter {
        limit: 1,
        ..SentFilter::default()
    };
    assert_eq!(web.sent_by("CD059", &f).await.unwrap().len(), 1);
    let f = SentFilter {
        from: Some(Utc::now() + Duration::hours(1)),
        ..SentFilter::default()
    };
    assert!(web.sent_by("CD059", &f).await.unwrap().is_empty());
}

async fn reopening_keeps_everything(h: &mut Harness) {
    h.state
        .record_published(&row(1, FLOW), &[1; 32])
        .await
        .unwrap();
    h.state
        .set_status(&Uuid::from_u128(1), TransferStatus::Delivered, None)
        .await
        .unwrap();
    WebStore::open(&h.state)
        .await
        .unwrap()
        .add_account("alice", "h", Role::Admin, None)
        .await
        .unwrap();
    // Two handles opening the same store at once create its tables once.
    let (x, y) = tokio::join!(h.another(), h.another());
    x.close().await;
    y.close().await;
    h.reopen().await;
    assert_eq!(status_of(&h.state, 1).await, TransferStatus::Delivered);
    assert_eq!(
        h.state
            .last_hash(FLOW, "59350S00", &Uuid::from_u128(1001))
            .await
            .unwrap(),
        Some([1; 32])
    );
    let web = WebStore::open(&h.state).await.unwrap();
    assert!(web.account("alice").await.unwrap().is_some());
}

/// Two instances, each with its own index loaded before the person existed, resolving
/// the same new person at once: the store decides, one hub id.
async fn a_new_person_is_decided_once_across_instances(h: &mut Harness) {
    for round in 0..8u8 {
        let keys = IdentityKeys {
            identifiers: vec![(KeyKind::Nir, format!("{round:02x}").repeat(32))],
            identites: vec![format!("{:02x}", 100 + round).repeat(32)],
        };
        let touched: Vec<(KeyKind, String)> = keys
            .entries(Uuid::nil())
            .into_iter()
            .map(|e| (e.kind, e.key))
            .collect();
        let mut tasks = Vec::new();
        for _ in 0..2 {
            let state = h.another().await;
            let (keys, touched) = (keys.clone(), touched.clone());
            tasks.push(tokio::spawn(async move {
                let mut index = IdentityIndex::new();
                let id = state
                    .decide_identities(&touched, |stored| {
                        for e in &stored {
                            index.insert(e);
                        }
                        let (r, added) = index.resolve_new(&keys, Uuid::new_v4);
                        // Widens the window in which both would mint without the lock.
                        std::thread::sleep(std::time::Duration::from_millis(30));
                        (r.hub_id().expect("matched or new"), added)
                    })
                    .await
                    .unwrap();
                state.close().await;
                id
            }));
        }
        let a = tasks.remove(0).await.unwrap();
        let b = tasks.remove(0).await.unwrap();
        assert_eq!(a, b, "round {round}: one person, one hub id");
        let web = WebStore::open(&h.state).await.unwrap();
        assert_eq!(
            web.hub_ids_for(&touched).await.unwrap(),
            vec![a],
            "round {round}: the store holds one hub id for these keys"
        );
    }
    // A later record carrying one of the keys and a new one joins that person, and the
    // new key is stored for it.
    let nir = (KeyKind::Nir, "00".repeat(32));
    let dossier = (KeyKind::ImiloDossier, "ee".repeat(32));
    let keys = IdentityKeys {
        identifiers: vec![nir.clone(), dossier.clone()],
        identites: Vec::new(),
    };
    let mut index = IdentityIndex::new();
    let id = h
        .state
        .decide_identities(&[nir.clone(), dossier.clone()], |stored| {
            assert!(!stored.is_empty(), "what the store holds is given");
            for e in &stored {
                index.insert(e);
            }
            let (r, added) = index.resolve_new(&keys, Uuid::new_v4);
            (r.hub_id().unwrap(), added)
        })
        .await
        .unwrap();
    let web = WebStore::open(&h.state).await.unwrap();
    assert_eq!(web.hub_ids_for(&[nir]).await.unwrap(), vec![id]);
    assert_eq!(web.hub_ids_for(&[dossier]).await.unwrap(), vec![id]);
}

async fn an_unknown_url_is_refused(h: &mut Harness) {
    let err = HubState::connect("mysql://user:secret@host/db")
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::Url(_)));
    assert!(
        !err.to_string().contains("secret"),
        "no password in the error"
    );
    let _ = h;
}

async fn one_night_at_a_time_naming_the_holder(h: &mut Harness) {
    let other = h.another().await;
    let first = h
        .state
        .night_lock("hub-a (pid 1)", std::time::Duration::ZERO)
        .await
        .unwrap();
    let t = std::time::Instant::now();
    let e = other
        .night_lock("hub-b (pid 2)", std::time::Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(
        t.elapsed() >= std::time::Duration::from_millis(500),
        "it waited"
    );
    assert!(e.is_busy(), "{e}");
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!(
            "a night is running on hub-a (pid 1) since {}",
            first.since()
        )),
        "{msg}"
    );
    // The second waits for the first to end, then has it.
    let (second, ()) = tokio::join!(
        other.night_lock("hub-b (pid 2)", std::time::Duration::from_secs(20)),
        async {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            first.release().await;
        }
    );
    let second = second.unwrap();
    let e = h
        .state
        .night_lock("hub-a (pid 1)", std::time::Duration::ZERO)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("on hub-b (pid 2)"), "{e}");
    // Dropped, the lock is free too.
    drop(second);
    h.state
        .night_lock("hub-a (pid 1)", std::time::Duration::ZERO)
        .await
        .unwrap()
        .release()
        .await;
    other.close().await;
}

async fn work_items_are_claimed_once_under_a_lease(h: &mut Harness) {
    use passerelle_hub::state::coord::WorkKind;
    let other = h.another().await;
    let night = "2026-12-07T02:00";
    let a = h.state.claims(night, "hub-a");
    let b = other.claims(night, "hub-b");
    let lease = std::time::Duration::from_secs(60);
    let keys: Vec<String> = (0..10).map(|i| format!("CD059/RSA_{i:02}.xml")).collect();
    a.offer(WorkKind::File, &keys).await.unwrap();
    a.offer(WorkKind::File, &keys).await.unwrap(); // offering again changes nothing
    let mine = a.claim_next(WorkKind::File, 4, lease).await.unwrap();
    assert_eq!(mine, keys[..4].to_vec());
    let theirs = b.claim_next(WorkKind::File, 100, lease).await.unwrap();
    assert_eq!(theirs, keys[4..].to_vec(), "what a holds is not given to b");
    assert!(
        b.claim_next(WorkKind::File, 100, lease)
            .await
            .unwrap()
            .is_empty()
    );
    // A named item: held by a, refused to b; a claiming again renews it.
    assert!(!b.claim(WorkKind::File, &keys[0], lease).await.unwrap());
    assert!(a.claim(WorkKind::File, &keys[0], lease).await.unwrap());
    assert!(a.renew(WorkKind::File, &keys[0], lease).await.unwrap());
    assert!(!b.renew(WorkKind::File, &keys[0], lease).await.unwrap());
    // Completed: never claimed again that night, by anyone.
    assert!(a.complete(WorkKind::File, &keys[0]).await.unwrap());
    assert!(!a.complete(WorkKind::File, &keys[0]).await.unwrap());
    assert!(!a.claim(WorkKind::File, &keys[0], lease).await.unwrap());
    assert!(!b.claim(WorkKind::File, &keys[0], lease).await.unwrap());
    assert!(!b.renew(WorkKind::File, &keys[0], lease).await.unwrap());
    let st = a.state_of(WorkKind::File, &keys[0]).await.unwrap().unwrap();
    assert!(st.done);
    assert_eq!(st.holder.as_deref(), Some("hub-a"));
    assert_eq!(a.done(WorkKind::File).await.unwrap(), vec![keys[0].clone()]);
    // Given back: claimable at once by the other.
    assert!(a.release(WorkKind::File, &keys[1]).await.unwrap());
    assert!(
        !b.release(WorkKind::File, &keys[2]).await.unwrap(),
        "not b's"
    );
    assert_eq!(
        b.claim_next(WorkKind::File, 100, lease).await.unwrap(),
        vec![keys[1].clone()]
    );
    // A lease that passed: the item is taken over (a "dead" holder's work).
    // Short, yet long enough that a loaded machine does not let it pass between two
    // statements.
    let short = std::time::Duration::from_millis(1000);
    assert!(a.claim(WorkKind::BoxPartner, "CD059", short).await.unwrap());
    assert!(!b.claim(WorkKind::BoxPartner, "CD059", lease).await.unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert!(b.claim(WorkKind::BoxPartner, "CD059", lease).await.unwrap());
    assert!(
        !a.renew(WorkKind::BoxPartner, "CD059", lease).await.unwrap(),
        "taken over"
    );
    assert!(!a.complete(WorkKind::BoxPartner, "CD059").await.unwrap());
    assert!(b.complete(WorkKind::BoxPartner, "CD059").await.unwrap());
    // claim_next takes over expired leases too.
    a.offer(WorkKind::AckFolder, &["CD059/ACK".to_owned()])
        .await
        .unwrap();
    assert_eq!(
        a.claim_next(WorkKind::AckFolder, 1, short)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        b.claim_next(WorkKind::AckFolder, 1, lease)
            .await
            .unwrap()
            .is_empty()
    );
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(
        b.claim_next(WorkKind::AckFolder, 1, lease).await.unwrap(),
        vec!["CD059/ACK".to_owned()]
    );
    // Kinds and nights are apart: the same key is another item.
    assert!(
        a.claim(WorkKind::FajPlatform, "CD059", lease)
            .await
            .unwrap()
    );
    let next_night = h.state.claims("2026-12-08T02:00", "hub-b");
    assert!(
        next_night
            .claim(WorkKind::File, &keys[0], lease)
            .await
            .unwrap()
    );
    other.close().await;
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
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
    receipts_move_forward_only,
    batches_cross_chunks_and_keep_the_rules,
    change_detection_by_stream,
    cursors_and_peer_refs,
    sender_refs_and_receipts,
    pending_entries_go_with_their_transfer,
    a_receipt_before_its_transfer_is_kept,
    concurrent_receipts_never_go_back,
    receipts_racing_their_record_are_never_lost,
    identity_entries_are_kept_once,
    reviews_are_held_then_settled_or_expired,
    web_accounts_sessions_and_queries,
    reopening_keeps_everything,
    a_new_person_is_decided_once_across_instances,
    an_unknown_url_is_refused,
    one_night_at_a_time_naming_the_holder,
    work_items_are_claimed_once_under_a_lease,
);
