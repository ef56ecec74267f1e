//! The state store on a real SQLite file: hashes, receipts that only move forward,
//! the identity index and cursors survive a reopen.

use passerelle_hub::*;
use passerelle_identity::{IndexEntry, KeyKind};
use uuid::Uuid;

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

#[tokio::test]
async fn hashes_transfers_and_receipts_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.sqlite");
    let state = HubState::open(&path).await.unwrap();
    let r = row(1, "brsa-orientation");
    assert_eq!(
        state
            .last_hash("brsa-orientation", "59350S00", &r.hub_id)
            .await
            .unwrap(),
        None
    );
    state.record_published(&r, &[7; 32]).await.unwrap();
    // Recording the same transfer twice (a rerun after a crash) is harmless.
    state.record_published(&r, &[7; 32]).await.unwrap();
    assert!(
        state
            .set_status(&r.transfer_id, TransferStatus::Applied, None)
            .await
            .unwrap()
    );
    // A late `delivered` does not hide `applied`; a receipt for a transfer not recorded
    // yet is kept for it (see the conformance suite), not dropped.
    assert!(
        !state
            .set_status(&r.transfer_id, TransferStatus::Delivered, None)
            .await
            .unwrap()
    );
    assert!(
        state
            .set_status(&Uuid::from_u128(99), TransferStatus::Applied, None)
            .await
            .unwrap()
    );
    state.record_published(&r, &[7; 32]).await.unwrap();
    let r2 = row(2, "brsa-orientation");
    state.record_published(&r2, &[8; 32]).await.unwrap();
    assert!(
        state
            .set_status(
                &r2.transfer_id,
                TransferStatus::Rejected,
                Some("422 STRUCTURE_INCONNUE")
            )
            .await
            .unwrap()
    );
    state
        .save_identity_entries(&[IndexEntry {
            hub_id: r.hub_id,
            kind: KeyKind::Nir,
            key: "ab".repeat(32),
        }])
        .await
        .unwrap();
    state
        .set_cursor("imilo/events", "2026-11-21T22:14:03Z")
        .await
        .unwrap();
    state.close().await;

    let state = HubState::open(&path).await.unwrap();
    assert_eq!(
        state
            .last_hash("brsa-orientation", "59350S00", &r.hub_id)
            .await
            .unwrap(),
        Some([7; 32])
    );
    let t = state.transfer(&r.transfer_id).await.unwrap().unwrap();
    assert_eq!(t.status, TransferStatus::Applied);
    let mine = state
        .transfers_of("CD059", Some("brsa-orientation"))
        .await
        .unwrap();
    assert_eq!(mine.len(), 2);
    assert_eq!(
        mine.iter()
            .find(|t| t.transfer_id == r2.transfer_id)
            .unwrap()
            .reason
            .as_deref(),
        Some("422 STRUCTURE_INCONNUE")
    );
    assert_eq!(
        state.status_counts("brsa-orientation").await.unwrap(),
        vec![(TransferStatus::Applied, 1), (TransferStatus::Rejected, 1)]
    );
    let ids = state.identity_entries().await.unwrap();
    assert_eq!(ids.len(), 1);
    assert_eq!(ids[0].kind, KeyKind::Nir);
    assert_eq!(
        state.cursor("imilo/events").await.unwrap().as_deref(),
        Some("2026-11-21T22:14:03Z")
    );
    assert_eq!(state.cursor("solis").await.unwrap(), None);
}

#[tokio::test]
async fn a_changed_content_replaces_the_hash() {
    let dir = tempfile::tempdir().unwrap();
    let state = HubState::open(&dir.path().join("s.sqlite")).await.unwrap();
    let mut r = row(1, "brsa-suivi");
    state.record_published(&r, &[1; 32]).await.unwrap();
    r.transfer_id = Uuid::from_u128(2);
    state.record_published(&r, &[2; 32]).await.unwrap();
    assert_eq!(
        state
            .last_hash("brsa-suivi", "59350S00", &r.hub_id)
            .await
            .unwrap(),
        Some([2; 32])
    );
    assert_eq!(state.transfers_of("CD059", None).await.unwrap().len(), 2);
}

/// The batched writes span several multi-row statements and keep the one-by-one
/// rules: receipts only move forward, a transfer named twice sees its earlier
/// receipt, unknown ids are kept for their transfer.
#[tokio::test]
async fn batched_writes_cross_statement_chunks_and_keep_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let state = HubState::open(&dir.path().join("state.sqlite"))
        .await
        .unwrap();
    let rows: Vec<(TransferRow, [u8; 32])> = (0..250u128)
        .map(|i| (row(i, "brsa-orientation"), [i as u8; 32]))
        .collect();
    state.record_published_many(&rows).await.unwrap();
    // Again (a rerun): nothing doubles, nothing fails.
    state.record_published_many(&rows).await.unwrap();
    let ids: Vec<Uuid> = rows.iter().map(|(r, _)| r.hub_id).collect();
    let hashes = state
        .last_hashes("brsa-orientation", "59350S00", &ids)
        .await
        .unwrap();
    assert_eq!(hashes.len(), 250);
    assert_eq!(hashes[&Uuid::from_u128(1000 + 249)], [249u8; 32]);

    state
        .set_statuses(&[change(5, TransferStatus::Applied, None)])
        .await
        .unwrap();
    let mut receipts: Vec<StatusChange> = (0..220u128)
        .map(|i| change(i, TransferStatus::Delivered, None))
        .collect();
    // Named twice in one chunk: delivered, then rejected.
    receipts.push(change(7, TransferStatus::Rejected, Some("format")));
    receipts.push(change(99_999, TransferStatus::Applied, None));
    let moved = state.set_statuses(&receipts).await.unwrap();
    assert_eq!(moved.len(), receipts.len());
    assert!(moved[0]);
    // Already applied: a late `delivered` does not move it back.
    assert!(!moved[5]);
    assert!(moved[220], "rejected after delivered moves forward");
    assert!(moved[221], "a receipt for an unknown transfer is kept");
    let t = |i| {
        let state = state.clone();
        async move { state.transfer(&Uuid::from_u128(i)).await.unwrap().unwrap() }
    };
    assert_eq!(t(5).await.status, TransferStatus::Applied);
    assert_eq!(t(219).await.status, TransferStatus::Delivered);
    let seven = t(7).await;
    assert_eq!(seven.status, TransferStatus::Rejected);
    assert_eq!(seven.reason.as_deref(), Some("format"));
    assert_eq!(t(230).await.status, TransferStatus::Published);

    let entries: Vec<IndexEntry> = (0..230u128)
        .map(|i| IndexEntry {
            hub_id: Uuid::from_u128(i),
            kind: KeyKind::Identite,
            key: format!("k{i}"),
        })
        .collect();
    state.save_identity_entries(&entries).await.unwrap();
    state.save_identity_entries(&entries[..10]).await.unwrap();
    assert_eq!(state.identity_entries().await.unwrap().len(), 230);

    let refs: Vec<(Uuid, String, Vec<u8>)> = (0..150u128)
        .map(|i| (Uuid::from_u128(i), "CD059".to_owned(), vec![i as u8]))
        .collect();
    state.save_peer_refs(&refs).await.unwrap();
    let again = vec![(Uuid::from_u128(3), "CD059".to_owned(), vec![42])];
    state.save_peer_refs(&again).await.unwrap();
    let found = state.peer_refs("CD059", &ids_of(150)).await.unwrap();
    assert_eq!(found.len(), 150);
    assert_eq!(found[&Uuid::from_u128(3)], vec![42]);
}

fn ids_of(n: u128) -> Vec<Uuid> {
    (0..n).map(Uuid::from_u128).collect()
}

fn change(id: u128, status: TransferStatus, reason: Option<&str>) -> StatusChange {
    StatusChange {
        transfer_id: Uuid::from_u128(id),
        status,
        reason: reason.map(str::to_owned),
    }
}

/// The senders' references: a state made before them gains the column on open, the
/// first reference recorded stays, and receipts carry dates and references.
#[tokio::test]
async fn sender_references_are_kept_once_and_added_to_an_old_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.sqlite");
    {
        // A transfer table as states had it before the column.
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
        sqlx::raw_sql(
            "CREATE TABLE transfer (
                transfer_id TEXT PRIMARY KEY, flow TEXT NOT NULL, sender TEXT NOT NULL,
                recipient TEXT NOT NULL, hub_id TEXT NOT NULL, status TEXT NOT NULL,
                reason TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
             INSERT INTO transfer VALUES ('00000000-0000-0000-0000-000000000009',
                'brsa-orientation', 'CD059', '59350S00', '00000000-0000-0000-0000-000000000001',
                'applied', NULL, '2026-11-01T01:00:00+00:00', '2026-11-01T02:00:00+00:00');",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    }
    let state = HubState::open(&path).await.unwrap();
    let old = state.receipts_of("CD059", None).await.unwrap();
    assert_eq!(old.len(), 1);
    assert_eq!(old[0].sender_ref, None, "recorded before: no reference");
    assert_eq!(old[0].created_at, "2026-11-01T01:00:00+00:00");
    let (a, b) = (row(1, "brsa-orientation"), row(2, "ase-majorite"));
    state.record_published(&a, &[1; 32]).await.unwrap();
    state.record_published(&b, &[2; 32]).await.unwrap();
    state
        .save_sender_refs(&[
            (a.transfer_id, "place:LISTE.csv:2".into()),
            (b.transfer_id, "place:LISTE.csv:3".into()),
        ])
        .await
        .unwrap();
    // The same transfer again from elsewhere: the first place stays.
    state
        .save_sender_refs(&[(a.transfer_id, "place:AUTRE.csv:9".into())])
        .await
        .unwrap();
    state.close().await;
    // Opened again (the column is there already).
    let state = HubState::open(&path).await.unwrap();
    let all = state.receipts_of("CD059", None).await.unwrap();
    let by_id = |id: Uuid| all.iter().find(|r| r.row.transfer_id == id).unwrap();
    assert_eq!(
        by_id(a.transfer_id).sender_ref.as_deref(),
        Some("place:LISTE.csv:2")
    );
    assert_eq!(
        by_id(b.transfer_id).sender_ref.as_deref(),
        Some("place:LISTE.csv:3")
    );
    let only = state
        .receipts_of("CD059", Some("ase-majorite"))
        .await
        .unwrap();
    assert_eq!(only.len(), 1);
    assert!(chrono::DateTime::parse_from_rfc3339(&only[0].created_at).is_ok());
}
