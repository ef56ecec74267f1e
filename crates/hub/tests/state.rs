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
    // A late `delivered` does not hide `applied`; an unknown transfer changes nothing.
    assert!(
        !state
            .set_status(&r.transfer_id, TransferStatus::Delivered, None)
            .await
            .unwrap()
    );
    assert!(
        !state
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
