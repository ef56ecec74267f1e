//! The web application in a real browser: Debian's chromium, headless, driven over
//! WebDriver by chromium-driver. Log in, search the fixture's person and see their
//! parcours, be refused another organisation's page and a form without its CSRF
//! token; every page checked with axe-core (no serious or critical violation). A
//! failing step saves a screenshot under `target/browser-screenshots/`.
//!
//! `scripts/test` installs chromium and chromium-driver when missing and fetches
//! axe-core from the npm registry (`PASSERELLE_TEST_AXE`). Without them the test fails
//! when `CI` is set, and says why otherwise.
//!
//! The WebDriver client is the few W3C endpoints these steps need, over reqwest.

mod common;
mod webdriver;

use common::*;
use webdriver::*;

async fn steps(d: &Driver, base: &str, axe: &str) -> Result<(), String> {
    d.goto(&format!("{base}/connexion")).await?;
    accessible(d, axe, "/connexion").await?;
    d.type_in("#identifiant", "conseiller.ml").await?;
    d.type_in("#mot_de_passe", PASSWORD).await?;
    d.click("button[type=submit]").await?;
    let home = format!("{base}/");
    check(
        d.wait_url(|u| u == home).await? == home,
        "after login, the home page",
    )?;
    check(
        d.source().await?.contains("Mission Locale de Lille"),
        "home names the ML",
    )?;
    accessible(d, axe, "/").await?;

    d.goto(&format!("{base}/recherche")).await?;
    accessible(d, axe, "/recherche").await?;
    d.type_in("#nir", NIR).await?;
    d.click("main form:first-of-type button[type=submit]")
        .await?;
    let url = d.wait_url(|u| u.contains("/personne/")).await?;
    check(
        url.contains("/personne/") && !url.contains(NIR),
        &format!("the person's page: {url}"),
    )?;
    let src = d.source().await?;
    check(
        src.contains("Orientation BRSA") && src.contains("appliqué"),
        "the parcours shows the orientation",
    )?;
    check(
        !src.contains("Demande FAJ"),
        "another ML's exchange is not shown",
    )?;
    accessible(d, axe, "/personne").await?;

    d.goto(&format!("{base}/envois")).await?;
    accessible(d, axe, "/envois").await?;
    d.goto(&format!("{base}/envois?organisation={CD}")).await?;
    check(
        d.source()
            .await?
            .contains("Vous ne pouvez pas voir les envois de Conseil départemental du Nord"),
        "another organisation's envois are refused",
    )?;
    accessible(d, axe, "/envois refusé").await?;

    // A form whose CSRF token was taken away (as a forged one would lack it).
    d.goto(&format!("{base}/recherche")).await?;
    d.script(
        "document.querySelectorAll('input[name=csrf]').forEach(e => e.remove()); return true;",
    )
    .await?;
    d.type_in("#nir", NIR).await?;
    d.click("main form:first-of-type button[type=submit]")
        .await?;
    check(
        d.wait_text("Ce formulaire a expiré")
            .await?
            .contains("Ce formulaire a expiré ou ne vient pas de Passerelle"),
        "a form without its CSRF token is refused",
    )?;
    accessible(d, axe, "formulaire refusé").await?;

    // Log out; the admin's pages.
    d.goto(&format!("{base}/")).await?;
    d.click("header form button[type=submit]").await?;
    d.wait_url(|u| u.ends_with("/connexion")).await?;
    d.type_in("#identifiant", "admin").await?;
    d.type_in("#mot_de_passe", PASSWORD).await?;
    d.click("main button[type=submit]").await?;
    d.wait_url(|u| u == home).await?;
    for p in ["/admin/comptes", "/exploitation"] {
        d.goto(&format!("{base}{p}")).await?;
        check(d.source().await?.contains("<h1>"), p)?;
        accessible(d, axe, p).await?;
    }

    // An operateur replays a dead letter from Mes envois.
    d.goto(&format!("{base}/")).await?;
    d.click("header form button[type=submit]").await?;
    d.wait_url(|u| u.ends_with("/connexion")).await?;
    d.type_in("#identifiant", "operateur.autre").await?;
    d.type_in("#mot_de_passe", PASSWORD).await?;
    d.click("main button[type=submit]").await?;
    d.wait_url(|u| u == home).await?;
    d.goto(&format!("{base}/envois")).await?;
    accessible(d, axe, "/envois (opérateur)").await?;
    d.click("form[action='/envois/relancer'] button[type=submit]")
        .await?;
    check(
        d.wait_text("est relancé").await?.contains("il repart vers"),
        "the dead letter is replayed",
    )?;
    accessible(d, axe, "relance").await?;
    Ok(())
}

/// Replays every dead letter it is asked to.
struct Replays;

#[async_trait::async_trait]
impl passerelle_server::web::ReplayDesk for Replays {
    async fn replay(
        &self,
        _recipient: &str,
        _transfer_id: uuid::Uuid,
    ) -> Result<bool, passerelle_server::web::DeskError> {
        Ok(true)
    }
}

#[tokio::test]
async fn a_conseiller_in_a_real_browser() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(axe) = browser_and_axe() else {
        return;
    };
    let f = fixture_made(passerelle_server::WebConfig::default(), |w| {
        w.with_replay_desk(std::sync::Arc::new(Replays))
    })
    .await;
    f.store
        .add_account(
            "operateur.autre",
            &passerelle_server::web::hash_password(PASSWORD).unwrap(),
            passerelle_hub::Role::Operateur,
            Some(OTHER_ML),
        )
        .await
        .unwrap();
    let served = serve(f.app.clone()).await;
    let base = served.base.clone();
    let profile = tempfile::tempdir().unwrap();
    let d = Driver::start(profile.path())
        .await
        .expect("WebDriver session");
    let result = steps(&d, &base, &axe).await;
    finish(&d, "a_conseiller_in_a_real_browser", result).await;
    served.stop().await;
}
