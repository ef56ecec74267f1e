//! A web application over a real state store and journal (SQLite in a temporary
//! folder), with one synthetic person whose exchanges are journaled as the engine
//! journals them, and one account per role.
#![allow(dead_code)]

use std::path::Path;

use axum::Router;
use passerelle_audit::{Event, Journal, JournalConfig, NewEntry, Outcome, Subject};
use passerelle_crypto::PseudonymKey;
use passerelle_hub::{HubState, Role, WebStore};
use passerelle_identity::IdentityKeys;
use passerelle_model::Jeune;
use passerelle_server::web::hash_password;
use passerelle_server::{AppState, Metrics, Status, Timezone, WebApp, WebConfig, WebDeps};

pub const ML: &str = "59350S00";
pub const OTHER_ML: &str = "59183S00";
pub const CD: &str = "CD059";
pub const PASSWORD: &str = "cheval agrafe batterie";
/// The synthetic person: typed in searches, never expected in the journal or the store.
pub const NIR: &str = "2040359350123";
pub const NOM: &str = "N'Diaye";
pub const PRENOM: &str = "Awa";
pub const NAISSANCE: &str = "12/03/2004";
pub const CAF: &str = "1234567";

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub app: Router,
    pub store: WebStore,
    pub journal: Journal,
    pub key: PseudonymKey,
}

pub fn jeune() -> Jeune {
    serde_json::from_value(serde_json::json!({
        "schema": "passerelle.jeune/1",
        "identifiants": {"nir": NIR, "caf": {"organisme": "CAF", "numero_allocataire": CAF}},
        "etat_civil": {"nom_naissance": NOM, "prenoms": [PRENOM], "date_naissance": "2004-03-12"}
    }))
    .expect("record")
}

fn entry(event: Event, flow: &str, from: &str, to: &str, subject: &Subject) -> NewEntry {
    let outcome = match event {
        Event::Rejected => Outcome::Refused,
        _ => Outcome::Ok,
    };
    let mut e = NewEntry::new(event, "system", outcome);
    e.flow = Some(flow.into());
    e.sender = Some(from.into());
    e.recipient = Some(to.into());
    e.subject = Some(subject.clone());
    e
}

pub async fn fixture() -> Fixture {
    fixture_with(WebConfig::default()).await
}

pub async fn fixture_with(config: WebConfig) -> Fixture {
    fixture_made(config, |w| w).await
}

/// A fixture whose web application `make` completes (desks of the cli's).
pub async fn fixture_made(mut config: WebConfig, make: impl FnOnce(WebApp) -> WebApp) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let state = HubState::open(&dir.path().join("state.sqlite"))
        .await
        .unwrap();
    let store = WebStore::open(&state).await.unwrap();
    let journal = JournalConfig::sqlite_file(&dir.path().join("journal.sqlite"))
        .build()
        .await
        .unwrap();
    let key = PseudonymKey::from_bytes([7; 32]);
    populate(dir.path(), &state, &journal, &key).await;
    for (login, role, org) in [
        ("conseiller.ml", Role::Conseiller, Some(ML)),
        ("conseiller.autre", Role::Conseiller, Some(OTHER_ML)),
        ("operateur.cd", Role::Operateur, Some(CD)),
        ("dpo", Role::Dpo, None),
        ("admin", Role::Admin, None),
    ] {
        store
            .add_account(login, &hash_password(PASSWORD).unwrap(), role, org)
            .await
            .unwrap();
    }
    config
        .organisations
        .insert(ML.into(), "Mission Locale de Lille".into());
    config
        .organisations
        .insert(CD.into(), "Conseil départemental du Nord".into());
    let status = Status::new("0.1.0", 7).shared();
    let web = WebApp::new(
        WebDeps {
            store: store.clone(),
            journal: journal.clone(),
            pseudonyms: key.clone(),
            config,
            timezone: Timezone::EuropeParis,
        },
        status.clone(),
    );
    let web = make(web);
    let app = passerelle_server::app_with_web(AppState::new(status, Metrics::new()), None, web);
    Fixture {
        dir,
        app,
        store,
        journal,
        key,
    }
}

/// The person's exchanges as the engine journals them: an orientation from the CD to
/// the ML, applied; a follow-up from the ML to the CD, rejected; a FAJ request of
/// another ML, which the ML must not see.
async fn populate(_dir: &Path, state: &HubState, journal: &Journal, key: &PseudonymKey) {
    let hub_id = uuid::Uuid::new_v4();
    let j = jeune();
    state
        .save_identity_entries(&IdentityKeys::of(&j, key).entries(hub_id))
        .await
        .unwrap();
    let subject = Subject::of_jeune(key, &hub_id.to_string(), &j);
    let mut p = entry(Event::Published, "brsa-orientation", CD, ML, &subject);
    p.fields = vec![
        "etat_civil.nom_naissance".into(),
        "contact.email".into(),
        "orientation.type".into(),
    ];
    let a = entry(Event::Applied, "brsa-orientation", CD, ML, &subject);
    let mut s = entry(Event::Published, "brsa-suivi", ML, CD, &subject);
    s.fields = vec!["accompagnement".into()];
    let mut r = entry(Event::Rejected, "brsa-suivi", ML, CD, &subject);
    r.reason = Some("SOLIS E12: dossier inconnu".into());
    let mut f = entry(
        Event::Published,
        "faj-demande",
        OTHER_ML,
        "FAJ059",
        &subject,
    );
    f.fields = vec!["faj".into()];
    journal.append_batch(vec![p, a, s, r, f]).await.unwrap();
    // The same transfers as the state store holds them (Mes envois reads these).
    use passerelle_hub::{TransferRow, TransferStatus};
    for (flow, from, to, status, reason) in [
        ("brsa-orientation", CD, ML, TransferStatus::Applied, None),
        (
            "brsa-suivi",
            ML,
            CD,
            TransferStatus::Rejected,
            Some("SOLIS E12: dossier inconnu"),
        ),
        ("of-signalement", ML, CD, TransferStatus::Published, None),
        (
            "faj-demande",
            OTHER_ML,
            "FAJ059",
            TransferStatus::DeadLettered,
            Some("HTTP 503"),
        ),
    ] {
        let row = TransferRow {
            transfer_id: uuid::Uuid::new_v4(),
            flow: flow.into(),
            sender: from.into(),
            recipient: to.into(),
            hub_id,
            status: TransferStatus::Published,
            reason: None,
        };
        state.record_published(&row, &[1; 32]).await.unwrap();
        if status != TransferStatus::Published {
            state
                .set_status(&row.transfer_id, status, reason)
                .await
                .unwrap();
        }
    }
}
