//! "Saisir une fois" in a real browser, against the simulated world: a conseiller of a
//! Mission Locale types an I-MILO dossier number, sees the dossier read live, is told
//! in French what is missing next to the field, files the request; the engine
//! publishes it (policy, seal, journal), the FAJ simulator receives it, and the
//! commission's decision shows on the request's page. Also refused: another structure's
//! dossier and the form without its CSRF token. Every page checked with axe-core.
//!
//! Runs through `scripts/test` (chromium, chromium-driver and axe-core); the WebDriver
//! client is the server's (`crates/server/tests/webdriver`).

#[path = "../../server/tests/webdriver/mod.rs"]
mod webdriver;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use passerelle_hub::{Role, WebStore};
use passerelle_model::{Date, Jeune};
use passerelle_runtime::faj_desk::FajDesk;
use passerelle_runtime::wiring::Hub;
use passerelle_server::{AppState, Metrics, Status, WebApp, WebDeps};
use passerelle_world::{World, WorldOptions};
use serde_json::Value;
use webdriver::*;

const PASSWORD: &str = "cheval agrafe batterie";

struct Found {
    adult: (u64, Jeune),
}

/// A dossier of `ml` for an adult of FAJ age.
async fn dossiers(world: &World, ml: &str) -> Found {
    let client = world.config.imilo.as_ref().unwrap().client.build().unwrap();
    let today = Date::from(chrono::Utc::now().date_naive());
    for id in 1..=300u64 {
        let Ok(d) = client.dossier(id).await else {
            continue;
        };
        let Some(j) = passerelle_imilo::dossier_to_jeune(&d).record else {
            continue;
        };
        let structure = j
            .accompagnement
            .as_ref()
            .and_then(|a| a.structure.as_ref())
            .map(|s| s.as_str().to_owned());
        let age = j.etat_civil.date_naissance.map(|b| b.age_on(today));
        if structure.as_deref() == Some(ml) && age.is_some_and(|a| (19..=24).contains(&a)) {
            return Found { adult: (id, j) };
        }
    }
    panic!("no adult's dossier in the ML");
}

async fn steps(
    d: &Driver,
    base: &str,
    axe: &str,
    found: &Found,
    faj_stats: &str,
) -> Result<(), String> {
    // A conseiller of another ML: the dossier is not theirs.
    let (id, j) = &found.adult;
    login(d, base, "conseiller.autre", PASSWORD).await?;
    d.goto(&format!("{base}/faj/nouvelle")).await?;
    d.type_in("#dossier", &id.to_string()).await?;
    d.click("main button[type=submit]").await?;
    check(
        d.wait_text("n'est pas suivi par")
            .await?
            .contains("vous ne pouvez pas déposer de demande FAJ pour lui"),
        "another structure's dossier is refused",
    )?;
    accessible(d, axe, "dossier refusé").await?;
    d.click("header form button[type=submit]").await?;
    d.wait_url(|u| u.ends_with("/connexion")).await?;

    login(d, base, "conseiller.ml", PASSWORD).await?;
    check(
        d.source().await?.contains("Déposer une demande FAJ"),
        "home offers the FAJ form to an ML's conseiller",
    )?;
    d.click("a[href='/faj/nouvelle']").await?;
    d.wait_url(|u| u.ends_with("/faj/nouvelle")).await?;
    accessible(d, axe, "/faj/nouvelle").await?;

    // The ML's dossier, read live.
    d.goto(&format!("{base}/faj/nouvelle")).await?;
    d.type_in("#dossier", &id.to_string()).await?;
    d.click("main button[type=submit]").await?;
    let prenom = j.etat_civil.prenoms[0].clone();
    let src = d.wait_text("Aides demandées").await?;
    check(
        src.contains(&format!("Dossier I-MILO n° {id}")) && src.contains(&prenom),
        "the dossier is shown as I-MILO holds it",
    )?;
    accessible(d, axe, "formulaire prérempli").await?;

    // Sent without an aid nor a project: the errors next to their fields.
    d.click("main form button[type=submit]").await?;
    let src = d.wait_text("La demande n'a pas été envoyée").await?;
    check(
        src.contains("id=\"aide1_type-erreur\"")
            && src.contains("Indiquez au moins une aide demandée")
            && src.contains("id=\"projet-erreur\""),
        "errors in French next to the fields",
    )?;
    accessible(d, axe, "formulaire avec erreurs").await?;

    // Without its CSRF token: refused.
    d.script(
        "document.querySelectorAll('main input[name=csrf]').forEach(e => e.remove()); return true;",
    )
    .await?;
    d.click("main form button[type=submit]").await?;
    check(
        d.wait_text("Ce formulaire a expiré")
            .await?
            .contains("ne vient pas de Passerelle"),
        "the FAJ form without its CSRF token is refused",
    )?;
    d.goto(&format!("{base}/faj/nouvelle")).await?;
    d.type_in("#dossier", &id.to_string()).await?;
    d.click("main button[type=submit]").await?;
    d.wait_text("Aides demandées").await?;

    // Filled in: sent through the engine, filed on the platform.
    d.script("document.getElementById('aide1_type').value = 'mobilite'; return true;")
        .await?;
    d.type_in("#aide1_montant", "250").await?;
    d.type_in("#projet", "Formation cariste, démarrage en janvier")
        .await?;
    d.click("main form button[type=submit]").await?;
    let url = d.wait_url(|u| u.contains("/faj/demande/")).await?;
    check(
        url.contains("/faj/demande/"),
        &format!("the request's page: {url}"),
    )?;
    check(
        d.source().await?.contains("déposée sur la plateforme"),
        "filed on the platform",
    )?;
    let stats: Value = reqwest::get(faj_stats)
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    check(
        stats["demandes_created"] == 1,
        &format!("the FAJ simulator received the request: {stats}"),
    )?;

    // The commission decides: the decision shows on the same page.
    let mut decided = false;
    for _ in 0..40 {
        d.click("a[href^='/faj/demande/']").await?;
        tokio::time::sleep(Duration::from_millis(250)).await;
        let src = d.source().await?;
        if ["Demande accordée", "Demande refusée", "Demande ajournée"]
            .iter()
            .any(|s| src.contains(s))
        {
            check(src.contains("FAJ-059-"), "the platform's request number")?;
            decided = true;
            break;
        }
    }
    check(
        decided,
        "the commission's decision shows on the request's page",
    )?;
    accessible(d, axe, "/faj/demande").await?;

    // Mes envois: the request under the conseiller's own reference (the dossier) and
    // the person's initials only, opened from what the hub keeps sealed.
    d.goto(&format!("{base}/envois?flux=faj-demande")).await?;
    let src = d.wait_text("Votre référence").await?;
    let initial = |s: &str| s.chars().next().unwrap().to_uppercase().collect::<String>();
    let nom = j
        .etat_civil
        .nom_usage
        .as_deref()
        .or(j.etat_civil.nom_naissance.as_deref())
        .unwrap();
    let initiales = format!("{}. {}.", initial(&prenom), initial(nom));
    check(
        src.contains(&format!("<code>{id}</code>")) && src.contains(&initiales),
        &format!(
            "Mes envois shows the dossier {id} and the initials {initiales}: {}",
            src.split("<tbody>").nth(1).unwrap_or_default()
        ),
    )?;
    check(
        nom.chars().count() < 4 || !src.contains(nom),
        "Mes envois shows no name, only initials",
    )?;
    accessible(d, axe, "/envois (demande FAJ)").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conseiller_files_a_faj_request_in_a_real_browser() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(axe) = browser_and_axe() else {
        return;
    };

    let dir = tempfile::tempdir().unwrap();
    let mut world = World::start(dir.path(), &WorldOptions::new(300, 1))
        .await
        .unwrap();
    let data = dir.path().join("hub");
    let hub = Hub::open(&world.config, &data).await.unwrap();
    let ml = world.config.imilo.as_ref().unwrap().structures[0].clone();
    let store = WebStore::open(hub.engine.state()).await.unwrap();
    store
        .add_account(
            "conseiller.ml",
            &passerelle_server::web::hash_password(PASSWORD).unwrap(),
            Role::Conseiller,
            Some(&ml),
        )
        .await
        .unwrap();
    store
        .add_account(
            "conseiller.autre",
            &passerelle_server::web::hash_password(PASSWORD).unwrap(),
            Role::Conseiller,
            Some("59999S99"),
        )
        .await
        .unwrap();
    let found = dossiers(&world, &ml).await;

    let faj = &world.config.faj[0];
    let sink = Arc::new(passerelle_faj::FajSink::new(faj.build().unwrap().client));
    let desk = FajDesk::new(&world.config, &hub)
        .unwrap()
        .expect("the world has I-MILO and a FAJ platform")
        .delivering_now(sink);
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
    .with_faj_desk(Arc::new(desk))
    .with_sealer(hub.engine.sealer());
    let app = passerelle_server::app_with_web(AppState::new(status, Metrics::new()), None, web);
    let served = serve(app).await;
    let base = served.base.clone();
    let profile = tempfile::tempdir().unwrap();
    let d = Driver::start(profile.path())
        .await
        .expect("WebDriver session");
    let stats = format!("http://{}/sim/stats", world.faj_addr);
    let result = steps(&d, &base, &axe, &found, &stats).await;
    finish(&d, "a_conseiller_files_a_faj_request", result).await;
    served.stop().await;

    // Journaled like any transfer, and the readings of the dossier as consultations.
    let journal = hub.engine.journal();
    let entries = journal
        .entries(&passerelle_audit::Filter::default())
        .await
        .unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e.event == "published" && e.flow.as_deref() == Some("faj-demande")),
        "the request is journaled as published"
    );
    assert!(
        entries
            .iter()
            .any(|e| e.event == "applied" && e.flow.as_deref() == Some("faj-demande")),
        "its receipt is journaled"
    );
    assert!(
        entries.iter().any(|e| e.event == "consulted"
            && e.actor == "conseiller.ml"
            && e.reason
                .as_deref()
                .is_some_and(|r| r.contains("dossier I-MILO lu"))),
        "the dossier's reading is journaled"
    );
    hub.close().await.unwrap();
    // Read live, never stored: the hub's files hold no name of the dossier.
    let nom = found.adult.1.etat_civil.nom_naissance.clone().unwrap();
    for f in walk(&data) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes.windows(nom.len()).any(|w| w == nom.as_bytes()),
            "{} holds the name in clear",
            f.display()
        );
    }
    world.stop().await;
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
