//! The DPO's console in a real browser: a DPO logs in, finds a person across every
//! organisation, reads the Art. 15 report and downloads it as PDF (its text checked:
//! French labels, recipients by name, dates), exports the journal for a spreadsheet,
//! previews a purge, then sees the alert a tampered copy of the journal raises (journaled
//! once, counted in /metrics); a conseiller is refused the console (journaled). Every
//! DPO page checked with axe-core.

#[path = "../../server/tests/webdriver/mod.rs"]
mod webdriver;

use std::path::Path;
use std::sync::Arc;

use chrono::Datelike;
use passerelle_hub::{Role, WebStore};
use passerelle_model::Jeune;
use passerelle_policy::{OrgKind, Party, System};
use passerelle_runtime::wiring::Hub;
use passerelle_server::{AppState, DpoSetup, Metrics, Status, WebApp, WebDeps};
use passerelle_world::{World, WorldOptions};
use serde_json::Value;
use webdriver::*;

const PASSWORD: &str = "cheval agrafe batterie";
const NIR: &str = "2030159350123";

fn person(ml: &str) -> Jeune {
    serde_json::from_value(serde_json::json!({
        "schema": "passerelle.jeune/1",
        "sources": [{"system": "solis", "organisation": "CD059", "record_id": "IND01"}],
        "identifiants": {"nir": NIR, "solis": "IND01"},
        "etat_civil": {"nom_naissance": "Quennehen", "prenoms": ["Maëlys"], "date_naissance": "2003-01-09"},
        "rsa": {"role": "DEM", "etat_droit": "2", "soumis_droits_devoirs": true},
        "orientation": {"type": "socio_professionnelle", "date": "2026-10-02", "organisme": {"type": "ML", "code": ml}}
    }))
    .unwrap()
}

/// The browser's session cookie, to fetch a download as the browser would.
async fn session_cookie(d: &Driver) -> Result<String, String> {
    let v = d.cmd("GET", "/cookie/passerelle", Value::Null).await?;
    v["value"]
        .as_str()
        .map(|s| format!("passerelle={s}"))
        .ok_or_else(|| format!("no session cookie: {v}"))
}

async fn download(d: &Driver, url: &str) -> Result<(String, Vec<u8>), String> {
    let cookie = session_cookie(d).await?;
    let resp = reqwest::Client::new()
        .get(url)
        .header("cookie", cookie)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let kind = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    Ok((
        kind,
        resp.bytes().await.map_err(|e| e.to_string())?.to_vec(),
    ))
}

fn day_fr(d: chrono::NaiveDate) -> String {
    const MOIS: [&str; 12] = [
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ];
    format!("{} {} {}", d.day(), MOIS[d.month0() as usize], d.year())
}

async fn steps(d: &Driver, base: &str, axe: &str, journal: &Path) -> Result<(), String> {
    login(d, base, "dpo", PASSWORD).await?;
    d.click("header a[href='/dpo']").await?;
    d.wait_url(|u| u.ends_with("/dpo")).await?;
    let src = d.wait_text("État du journal d'audit").await?;
    check(src.contains("journal intact"), "the journal verifies")?;
    check(src.contains("Aucune alerte"), "no alert yet")?;
    accessible(d, axe, "/dpo").await?;

    // The person, by NIR, from the console's own form (with the request's date).
    d.type_in("#dpo-nir", NIR).await?;
    d.click("form:has(#dpo-nir) button[type=submit]").await?;
    let url = d.wait_url(|u| u.contains("/dpo/personne/")).await?;
    check(
        url.contains("?recue="),
        "the request's day rides in the URL",
    )?;
    check(!url.contains(NIR), "no identifier in the URL")?;
    let src = d.wait_text("Rapport d'accès").await?;
    // The console counts Paris days: from 23:00 UTC in winter, Paris is on the next day.
    let today = passerelle_server::Timezone::EuropeParis
        .to_local(chrono::Utc::now())
        .date();
    let due = today.checked_add_months(chrono::Months::new(1)).unwrap();
    for want in [
        "Demande reçue le",
        &day_fr(today),
        "Réponse due au plus tard le",
        &day_fr(due),
        "Qui a reçu quoi",
        "Mission Locale de Lille",
        "Conseil départemental du Nord",
        "Identité : nom de naissance",
        "Base légale",
        "Conservation",
        "réclamation à la Commission nationale de l'informatique et des libertés",
        "Les consultations de vos données",
    ] {
        check(src.contains(want), &format!("the report says {want:?}"))?;
    }
    check(!src.contains("etat_civil."), "labels, never paths")?;
    accessible(d, axe, "/dpo/personne/{handle}").await?;

    // The PDF, fetched with the browser's session.
    let href = d
        .script("return document.querySelector(\"a[href*='format=pdf']\").getAttribute('href')")
        .await?;
    let href = href.as_str().ok_or("no PDF link")?.to_owned();
    let (kind, pdf) = download(d, &format!("{base}{href}")).await?;
    check(
        kind == "application/pdf",
        &format!("a PDF is served ({kind})"),
    )?;
    check(pdf.starts_with(b"%PDF-"), "the bytes are a PDF")?;
    let text = passerelle_server::web::pdf::text_of(&pdf).join(" ");
    for want in [
        "Rapport d'accès aux données personnelles (article 15 du RGPD)",
        "Demande reçue le",
        &day_fr(today),
        &day_fr(due),
        "Destinataires",
        "Mission Locale de Lille",
        "Finalité",
        "Vos droits",
        "CNIL",
    ] {
        check(
            text.contains(want),
            &format!("the PDF says {want:?}:\n{text}"),
        )?;
    }

    for (path, title) in [
        ("/dpo/journal", "Journal d'audit"),
        ("/dpo/registre", "Registre des activités de traitement"),
        ("/dpo/exports", "Exporter le journal"),
        ("/dpo/purge", "Purger les entrées anciennes"),
    ] {
        d.goto(&format!("{base}{path}")).await?;
        d.wait_text(title).await?;
        accessible(d, axe, path).await?;
    }
    check(
        d.source().await?.contains("conservées"),
        "the purge page says the retention",
    )?;
    d.click("main form button[type=submit]").await?;
    let src = d.wait_text("Aperçu").await?;
    check(
        src.contains("Rien n'a encore été supprimé"),
        "the dry run removes nothing",
    )?;
    accessible(d, axe, "aperçu de la purge").await?;

    // The export, as a French spreadsheet reads it.
    let (kind, csv) = download(
        d,
        &format!(
            "{base}/dpo/exports?du={}&au={}&flux=&telecharger=1",
            today - chrono::Duration::days(1),
            today
        ),
    )
    .await?;
    check(kind.starts_with("text/csv"), "a CSV is served")?;
    let csv = String::from_utf8(csv).map_err(|e| e.to_string())?;
    check(csv.starts_with('\u{feff}'), "UTF-8 with a byte-order mark")?;
    check(
        csv.contains("N°;Date (heure de Paris);Événement;Compte"),
        "French headers, `;`-separated",
    )?;
    check(csv.contains("envoyées au destinataire"), "events in words")?;

    // Someone edits a copy of the journal in place: the console raises the alert.
    {
        use sqlx::{Connection, Executor};
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", journal.display()))
            .await
            .map_err(|e| e.to_string())?;
        c.execute("DROP TRIGGER audit_entry_no_update")
            .await
            .map_err(|e| e.to_string())?;
        c.execute("UPDATE audit_entry SET actor = 'quelqu''un' WHERE seq = 1")
            .await
            .map_err(|e| e.to_string())?;
        c.close().await.map_err(|e| e.to_string())?;
    }
    for _ in 0..2 {
        d.goto(&format!("{base}/dpo")).await?;
        let src = d.wait_text("Alertes").await?;
        check(
            src.contains("Échec de la vérification du journal") && src.contains("journal altéré"),
            "the tampered journal raises the alert",
        )?;
    }
    accessible(d, axe, "/dpo avec une alerte").await?;
    d.click("header form button[type=submit]").await?;
    d.wait_url(|u| u.ends_with("/connexion")).await?;

    login(d, base, "conseiller.ml", PASSWORD).await?;
    d.goto(&format!("{base}/dpo")).await?;
    check(
        d.source()
            .await?
            .contains("réservée au délégué à la protection des données"),
        "a conseiller is refused the console",
    )?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dpo_answers_an_access_request_and_sees_a_tampered_journal_in_a_real_browser() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(axe) = browser_and_axe() else {
        return;
    };

    let dir = tempfile::tempdir().unwrap();
    let mut world = World::start(dir.path(), &WorldOptions::new(50, 1))
        .await
        .unwrap();
    let hub_dir = dir.path().join("hub");
    let hub = Hub::open(&world.config, &hub_dir).await.unwrap();
    let ml = world.config.imilo.as_ref().unwrap().structures[0].clone();
    hub.ensure_keys(&ml).unwrap();
    let sent = hub
        .engine
        .send(
            "brsa-orientation",
            Party::new(OrgKind::Cd, "CD059", System::Solis),
            Party::new(OrgKind::Ml, &ml, System::Imilo),
            [person(&ml)],
        )
        .await
        .unwrap();
    assert_eq!(sent.sent, 1);

    let store = WebStore::open(hub.engine.state()).await.unwrap();
    let hash = passerelle_server::web::hash_password(PASSWORD).unwrap();
    store
        .add_account("dpo", &hash, Role::Dpo, None)
        .await
        .unwrap();
    store
        .add_account("conseiller.ml", &hash, Role::Conseiller, Some(&ml))
        .await
        .unwrap();
    let mut web_config = world.config.server.web.clone();
    web_config
        .organisations
        .insert(ml.clone(), "Mission Locale de Lille".into());
    web_config
        .organisations
        .insert("CD059".into(), "Conseil départemental du Nord".into());
    let status = Status::new("0.1.0", 7).shared();
    let metrics = Metrics::new();
    let web = WebApp::new(
        WebDeps {
            store,
            journal: hub.engine.journal().clone(),
            pseudonyms: hub.keyring.pseudonym_key().unwrap(),
            config: web_config,
            timezone: world.config.server.timezone(),
        },
        status.clone(),
    )
    .with_dpo(DpoSetup {
        policy: Arc::new(hub.engine.policy().clone()),
        flows_source: "le fichier des flux du test".into(),
        measures: vec!["Chiffrement des données transmises.".into()],
        anchor_key: Some(hub.keyring.anchor_key().unwrap()),
        anchor_file: Some(hub_dir.join("journal.anchors.jsonl")),
        tsa_certificate: None,
        stamper: None,
    });
    let app = passerelle_server::app_with_web(AppState::new(status, metrics.clone()), None, web);
    let served = serve(app).await;
    let base = served.base.clone();
    let profile = tempfile::tempdir().unwrap();
    let d = Driver::start(profile.path())
        .await
        .expect("WebDriver session");
    let result = steps(&d, &base, &axe, &hub_dir.join("journal.sqlite")).await;
    finish(&d, "a_dpo_answers_an_access_request", result).await;
    let rendered = metrics.render();
    assert!(
        rendered.contains("passerelle_alerts_raised_total{kind=\"verification_failed\"} 1"),
        "{rendered}"
    );
    assert!(
        rendered.contains("passerelle_alerts_active{kind=\"verification_failed\"} 1"),
        "{rendered}"
    );
    served.stop().await;

    let entries = hub
        .engine
        .journal()
        .entries(&passerelle_audit::Filter::default())
        .await
        .unwrap();
    let alerted: Vec<_> = entries.iter().filter(|e| e.event == "alerted").collect();
    assert_eq!(alerted.len(), 1, "the alert is journaled once: {alerted:?}");
    assert!(
        alerted[0]
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("verification_failed:"))
    );
    for what in [
        "page /dpo (état du journal et alertes)",
        "page /dpo/personne (rapport article 15)",
        "page /dpo/personne (rapport article 15, PDF)",
        "page /dpo/registre",
        "recherche par NIR",
    ] {
        assert!(
            entries.iter().any(|e| e.event == "consulted"
                && e.actor == "dpo"
                && e.reason.as_deref() == Some(what)),
            "{what} is journaled"
        );
    }
    assert!(
        entries.iter().any(|e| e.event == "consulted"
            && e.actor == "dpo"
            && e.subject.is_some()
            && e.reason.as_deref() == Some("page /dpo/personne (rapport article 15)")),
        "the report's view names the person's pseudonym"
    );
    assert!(
        entries.iter().any(|e| e.event == "denied"
            && e.actor == "conseiller.ml"
            && e.reason.as_deref() == Some("page /dpo refusée au rôle conseiller")),
        "the conseiller's refusal is journaled"
    );
    hub.close().await.unwrap();
    world.stop().await;
}
