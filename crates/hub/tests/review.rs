//! Identity reviews through the engine: a record the matcher cannot place is held
//! sealed (its name nowhere in clear), opened, and sent on by the verdict, as the
//! candidate or as a new person, once.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use passerelle_audit::JournalConfig;
use passerelle_crypto::Keyring;
use passerelle_hub::*;
use passerelle_model::Jeune;
use passerelle_policy::{OrgKind, Party, Policy, System};
use passerelle_transport::Transport;
use passerelle_transport::embedded::EmbeddedConfig;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

async fn engine(dir: &Path) -> Engine {
    let keyring = Keyring::open(dir).unwrap();
    for org in ["59350S00", REVIEW_ORG] {
        keyring.generate(org).unwrap();
    }
    let pseudonyms = keyring.pseudonym_key().unwrap();
    let transport: Arc<dyn Transport> = Arc::new(
        EmbeddedConfig::new(dir.join("queue.sqlite"))
            .build()
            .await
            .unwrap(),
    );
    let journal = JournalConfig::sqlite_file(&dir.join("journal.sqlite"))
        .build()
        .await
        .unwrap();
    let state = HubState::open(&dir.join("state.sqlite")).await.unwrap();
    let policy = Arc::new(Policy::load(workspace().join("schemas/policy/flows.toml")).unwrap());
    Engine::new(
        policy,
        state,
        journal,
        transport,
        Arc::new(KeyringSealer::new(keyring)),
        pseudonyms,
    )
    .await
    .unwrap()
}

fn person(nir: &str, solis: &str) -> Jeune {
    serde_json::from_value(serde_json::json!({
        "schema": "passerelle.jeune/1",
        "sources": [{"system": "solis", "organisation": "CD059", "record_id": solis}],
        "identifiants": {"nir": nir, "solis": solis},
        "etat_civil": {"nom_naissance": "Quennehen", "prenoms": ["Maëlys"], "date_naissance": "2003-01-09"},
        "rsa": {"role": "DEM", "etat_droit": "2", "soumis_droits_devoirs": true},
        "orientation": {"type": "socio_professionnelle", "date": "2026-10-02", "organisme": {"type": "ML", "code": "59350S00"}}
    }))
    .unwrap()
}

async fn send(e: &Engine, j: Jeune) -> SendSummary {
    e.send(
        "brsa-orientation",
        Party::new(OrgKind::Cd, "CD059", System::Solis),
        Party::new(OrgKind::Ml, "59350S00", System::Imilo),
        [j],
    )
    .await
    .unwrap()
}

async fn hub_ids(e: &Engine) -> Vec<uuid::Uuid> {
    let mut ids: Vec<_> = e
        .state()
        .transfers_of("CD059", Some("brsa-orientation"))
        .await
        .unwrap()
        .iter()
        .map(|t| t.hub_id)
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

#[tokio::test]
async fn a_held_record_goes_on_by_the_verdict_once() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path()).await;
    assert_eq!(send(&e, person("2030159350123", "IND01")).await.sent, 1);
    let first = hub_ids(&e).await;

    // Same identity, another NIR: held for review, not sent.
    let s = send(&e, person("2030159350678", "IND02")).await;
    assert_eq!((s.sent, s.review), (0, 1));
    let store = e.reviews().await.unwrap();
    let open = store.open_for("CD059").await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].reason, "ConflictingIdentifier");
    assert_eq!(open[0].candidates, first);
    assert!(store.open_for("59350S00").await.unwrap().is_empty());
    let opened = e.open_review(&open[0].id).await.unwrap().unwrap();
    assert_eq!(
        opened.record.unwrap().etat_civil.nom_naissance.as_deref(),
        Some("Quennehen")
    );

    // Another person: sent on under a new hub id; a second verdict does nothing.
    let sent = e
        .settle_review(&open[0].id, Verdict::Different)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sent.sent, 1);
    assert_eq!(hub_ids(&e).await.len(), 2);
    assert!(
        e.settle_review(&open[0].id, Verdict::Different)
            .await
            .unwrap()
            .is_none()
    );
    let settled = e.open_review(&open[0].id).await.unwrap().unwrap();
    assert!(settled.record.is_none(), "the sealed copy is erased");
    assert!(settled.review.outcome.unwrap().starts_with("differente:"));

    // A third with the same identity: two candidates now; the reviewer names one.
    let s = send(&e, person("2030159350999", "IND03")).await;
    assert_eq!(s.review, 1);
    let open = store.open_for("CD059").await.unwrap();
    assert_eq!(open[0].reason, "SeveralCandidates");
    assert_eq!(open[0].candidates.len(), 2);
    let stranger = uuid::Uuid::new_v4();
    assert!(
        e.settle_review(&open[0].id, Verdict::Same(stranger))
            .await
            .is_err()
    );
    let chosen = first[0];
    let sent = e
        .settle_review(&open[0].id, Verdict::Same(chosen))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sent.sent, 1);
    assert_eq!(hub_ids(&e).await.len(), 2, "sent as the chosen person");
    // Its keys are now that person's: the same record again is matched, unchanged.
    let again = send(&e, person("2030159350999", "IND03")).await;
    assert_eq!((again.review, again.unchanged), (0, 1));

    // Nothing of the held records in clear in the state store.
    e.flush().await.unwrap();
    for f in ["state.sqlite", "state.sqlite-wal"] {
        if let Ok(bytes) = std::fs::read(dir.path().join(f)) {
            assert!(
                !bytes.windows(9).any(|w| w == b"Quennehen"),
                "{f} holds a name in clear"
            );
        }
    }
}
