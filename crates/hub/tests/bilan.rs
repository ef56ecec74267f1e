//! The bilan's FAJ aggregates through the engine: a request or a decision sent adds
//! its amounts once (the same content sent again adds nothing), the table holds
//! aggregates only, and the bilan reads them back with the transfers' delays.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use passerelle_audit::JournalConfig;
use passerelle_crypto::Keyring;
use passerelle_hub::bilan::{Bilans, Scope};
use passerelle_hub::*;
use passerelle_model::Jeune;
use passerelle_policy::{OrgKind, Party, Policy, System};
use passerelle_transport::embedded::EmbeddedConfig;

mod common;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

async fn engine(dir: &Path, state: HubState) -> Engine {
    let keyring = Keyring::open(dir).unwrap();
    for org in ["59350S00", "FAJ059"] {
        keyring.generate(org).unwrap();
    }
    let pseudonyms = keyring.pseudonym_key().unwrap();
    let transport = Arc::new(
        EmbeddedConfig::new(dir.join("queue.sqlite"))
            .build()
            .await
            .unwrap(),
    );
    let journal = JournalConfig::sqlite_file(&dir.join("journal.sqlite"))
        .build()
        .await
        .unwrap();
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

fn jeune(dossier: u32, faj: serde_json::Value) -> Jeune {
    let prenom = ["Maëlys", "Karim", "Léa", "Yanis", "Inès", "Théo"][dossier as usize % 6];
    serde_json::from_value(serde_json::json!({
        "schema": "passerelle.jeune/1",
        "sources": [{"system": "imilo", "organisation": "59350S00", "record_id": dossier.to_string()}],
        "identifiants": {"imilo_dossier": dossier.to_string()},
        "etat_civil": {"nom_naissance": "Quennehen", "prenoms": [prenom], "date_naissance": "2003-01-09"},
        "faj": [faj]
    }))
    .unwrap()
}

#[tokio::test]
async fn faj_amounts_are_added_once_as_aggregates_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let state = HubState::open(&dir.path().join("state.sqlite"))
        .await
        .unwrap();
    faj_amounts_are_added_once_as_aggregates(dir.path(), state).await;
    // The table holds no person: its columns are the aggregate's.
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}?mode=ro",
        dir.path().join("state.sqlite").display()
    ))
    .await
    .unwrap();
    let cols: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info('bilan_faj')")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        cols,
        [
            "month",
            "flow",
            "sender",
            "recipient",
            "outcome",
            "count",
            "cents"
        ]
    );
    pool.close().await;
}

#[tokio::test]
async fn faj_amounts_are_added_once_as_aggregates_on_postgres() {
    let Some(db) = common::PgDatabase::new("bilan").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    faj_amounts_are_added_once_as_aggregates(dir.path(), db.state().await).await;
    db.finish().await;
}

async fn faj_amounts_are_added_once_as_aggregates(dir: &Path, state: HubState) {
    let e = engine(dir, state).await;
    let ml = || Party::new(OrgKind::Ml, "59350S00", System::Hub);
    let faj = || Party::new(OrgKind::Faj, "FAJ059", System::Faj);
    let ask = |n: u32, cents: u64| {
        jeune(
            n,
            serde_json::json!({"aides": [{"type": "mobilite", "montant_demande": cents}, {"type": "subsistance", "montant_demande": 5000}]}),
        )
    };
    let requests: Vec<Jeune> = (1..=6).map(|n| ask(n, 20_000)).collect();
    assert_eq!(
        e.send("faj-demande", ml(), faj(), requests.clone())
            .await
            .unwrap()
            .sent,
        6
    );
    // The same requests read again: unchanged, nothing added.
    assert_eq!(
        e.send("faj-demande", ml(), faj(), requests)
            .await
            .unwrap()
            .unchanged,
        6
    );
    // Decisions: five granted (part of the amount), one refused.
    let decide = |n: u32, statut: &str, granted: u64| {
        jeune(
            n,
            serde_json::json!({"statut": statut, "aides": [{"type": "mobilite", "montant_accorde": granted}]}),
        )
    };
    let decisions: Vec<Jeune> = (1..=5)
        .map(|n| decide(n, "accordee", 15_000))
        .chain([decide(6, "refusee", 0)])
        .collect();
    let to_ml = Party::new(OrgKind::Ml, "59350S00", System::Imilo);
    assert_eq!(
        e.send("faj-decision", faj(), to_ml, decisions)
            .await
            .unwrap()
            .sent,
        6
    );

    let state = e.state();
    let bilans = Bilans::open(state).await.unwrap();
    let agg = bilans.faj(&Scope::default()).await.unwrap();
    let line = |flow: &str, outcome: &str| {
        agg.iter()
            .find(|a| a.flow == flow && a.outcome == outcome)
            .map(|a| (a.count, a.cents))
    };
    assert_eq!(line("faj-demande", "demande"), Some((6, 6 * 25_000)));
    assert_eq!(line("faj-decision", "accordee"), Some((5, 5 * 15_000)));
    assert_eq!(line("faj-decision", "refusee"), Some((1, 0)));

    let month = bilan::month_of(chrono::Utc::now());
    let b = bilans
        .bilan(
            &Scope {
                org: Some("59350S00".into()),
                partner: Some("FAJ059".into()),
            },
            std::slice::from_ref(&month),
        )
        .await
        .unwrap();
    let v = |id: &str| b.one(id, &month).unwrap().value();
    assert_eq!(v("faj_demandes"), Some(6.0));
    assert_eq!(v("faj_montant_demande"), Some(150_000.0));
    assert_eq!(v("faj_montant_accorde"), Some(75_000.0));
    // Decided within the test: a delay under a day, over six requests.
    assert!(v("faj_delai_decision_median").unwrap() < 1.0);
    let refused: Vec<_> = b
        .of("faj_decisions", &month)
        .filter(|f| f.detail == "refusee")
        .collect();
    assert!(refused[0].masked());
}
