//! Identity reviews in a real browser: two records of one identity with different
//! NIRs, sent by the CD, leave the second held for review; a conseiller of the CD
//! opens it (journaled), sees the record beside the candidate, says "personnes
//! différentes", and the held transfer goes on; a conseiller of another organisation
//! is refused the review. Every page checked with axe-core.

#[path = "../../server/tests/webdriver/mod.rs"]
mod webdriver;

use passerelle_hub::{Role, WebStore};
use passerelle_model::Jeune;
use passerelle_policy::{OrgKind, Party, System};
use passerelle_runtime::review_desk::ReviewDesk;
use passerelle_runtime::wiring::Hub;
use passerelle_server::{AppState, Metrics, Status, WebApp, WebDeps};
use passerelle_world::{World, WorldOptions};
use std::sync::Arc;
use webdriver::*;

const PASSWORD: &str = "cheval agrafe batterie";

fn person(nir: &str, solis: &str, ml: &str) -> Jeune {
    serde_json::from_value(serde_json::json!({
        "schema": "passerelle.jeune/1",
        "sources": [{"system": "solis", "organisation": "CD059", "record_id": solis}],
        "identifiants": {"nir": nir, "solis": solis},
        "etat_civil": {"nom_naissance": "Quennehen", "prenoms": ["Maëlys"], "date_naissance": "2003-01-09"},
        "rsa": {"role": "DEM", "etat_droit": "2", "soumis_droits_devoirs": true},
        "orientation": {"type": "socio_professionnelle", "date": "2026-10-02", "organisme": {"type": "ML", "code": ml}}
    }))
    .unwrap()
}

async fn steps(d: &Driver, base: &str, axe: &str) -> Result<(), String> {
    login(d, base, "conseiller.cd", PASSWORD).await?;
    d.click("a[href='/revues']").await?;
    d.wait_url(|u| u.ends_with("/revues")).await?;
    check(
        d.source().await?.contains("Ouvrir la revue 1"),
        "the CD's review is listed",
    )?;
    accessible(d, axe, "/revues").await?;
    d.click("a[href^='/revues/']").await?;
    let url = d.wait_url(|u| u.contains("/revues/")).await?;
    let src = d.wait_text("côte à côte").await?;
    check(
        src.contains("Quennehen")
            && src.contains("Candidat 1")
            && src.contains("un autre")
            && src.contains("le même"),
        "the record beside its candidate: the identity the same, the NIR another",
    )?;
    accessible(d, axe, "/revues/{id}").await?;
    d.click("button[value=differentes]").await?;
    check(
        d.wait_text("La revue est réglée")
            .await?
            .contains("1 envoi(s) repartent"),
        "the held transfer goes on",
    )?;
    accessible(d, axe, "revue réglée").await?;
    d.goto(&format!("{base}/revues")).await?;
    check(
        d.source()
            .await?
            .contains("Aucune revue d'identité en attente"),
        "no review left",
    )?;
    d.click("header form button[type=submit]").await?;
    d.wait_url(|u| u.ends_with("/connexion")).await?;

    login(d, base, "conseiller.ml", PASSWORD).await?;
    d.goto(&url).await?;
    check(
        d.source().await?.contains("une autre organisation"),
        "another organisation's review is refused",
    )?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conseiller_settles_an_identity_review_in_a_real_browser() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(axe) = browser_and_axe() else {
        return;
    };

    let dir = tempfile::tempdir().unwrap();
    let mut world = World::start(dir.path(), &WorldOptions::new(50, 1))
        .await
        .unwrap();
    let hub = Hub::open(&world.config, &dir.path().join("hub"))
        .await
        .unwrap();
    let ml = world.config.imilo.as_ref().unwrap().structures[0].clone();
    hub.ensure_keys(&ml).unwrap();
    let send = |j: Jeune| {
        let e = hub.engine.clone();
        let ml = ml.clone();
        async move {
            e.send(
                "brsa-orientation",
                Party::new(OrgKind::Cd, "CD059", System::Solis),
                Party::new(OrgKind::Ml, &ml, System::Imilo),
                [j],
            )
            .await
            .unwrap()
        }
    };
    assert_eq!(send(person("2030159350123", "IND01", &ml)).await.sent, 1);
    assert_eq!(send(person("2030159350678", "IND02", &ml)).await.review, 1);

    let store = WebStore::open(hub.engine.state()).await.unwrap();
    for (login, org) in [("conseiller.cd", "CD059"), ("conseiller.ml", ml.as_str())] {
        store
            .add_account(
                login,
                &passerelle_server::web::hash_password(PASSWORD).unwrap(),
                Role::Conseiller,
                Some(org),
            )
            .await
            .unwrap();
    }
    let status = Status::new("0.1.0", 7).shared();
    let web = WebApp::new(
        WebDeps {
            store,
            journal: hub.engine.journal().clone(),
            pseudonyms: hub.keyring.pseudonym_key().unwrap(),
            config: world.config.server.web.clone(),
            timezone: world.config.server.timezone(),
        },
        status.clone(),
    )
    .with_review_desk(Arc::new(ReviewDesk(hub.engine.clone())));
    let app = passerelle_server::app_with_web(AppState::new(status, Metrics::new()), None, web);
    let served = serve(app).await;
    let base = served.base.clone();
    let profile = tempfile::tempdir().unwrap();
    let d = Driver::start(profile.path())
        .await
        .expect("WebDriver session");
    let result = steps(&d, &base, &axe).await;
    finish(&d, "a_conseiller_settles_an_identity_review", result).await;
    served.stop().await;

    let entries = hub
        .engine
        .journal()
        .entries(&passerelle_audit::Filter::default())
        .await
        .unwrap();
    for what in ["ouverte", "réglée : personnes différentes"] {
        assert!(
            entries.iter().any(|e| e.event == "consulted"
                && e.actor == "conseiller.cd"
                && e.reason.as_deref().is_some_and(|r| r.contains(what))),
            "the review's {what} is journaled"
        );
    }
    let published = entries
        .iter()
        .filter(|e| e.event == "published" && e.flow.as_deref() == Some("brsa-orientation"))
        .count();
    assert_eq!(published, 2, "the held record was sent on");
    hub.close().await.unwrap();
    world.stop().await;
}
