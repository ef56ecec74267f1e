//! The shared bilan in a real browser, over the demo world's three nights: an
//! operateur of the Mission Locale opens `/bilans` from the navigation, reads the
//! month's figures (the orientations its CD sent, the FAJ decisions with the small
//! ones masked), the charts in SVG with their tables, filters by partner, downloads
//! the CSV export (the same bytes as `passerelle bilan`), is refused another
//! organisation's bilan; the dpo sees the whole hub. Every page checked with axe-core.

#[path = "../../server/tests/webdriver/mod.rs"]
mod webdriver;

use std::path::Path;
use std::process::Command;

use passerelle_hub::{HubState, Role, WebStore};
use passerelle_server::{AppState, Metrics, Status, WebApp, WebDeps};
use serde_json::Value;
use webdriver::*;

const PASSWORD: &str = "cheval agrafe batterie";
const ML: &str = "59350S00";
/// A Mission Locale of the département that filed three FAJ requests (added to the
/// bilan's aggregates through the engine's own hook, `bilan::record_faj`).
const OTHER_ML: &str = "59001S00";

fn passerelle(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_passerelle"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    out.stdout
}

/// The text of the cell beside a row header, in the page.
async fn cell(d: &Driver, label: &str) -> Result<String, String> {
    let script = format!(
        "const th = Array.from(document.querySelectorAll('th[scope=row]')).find(t => t.textContent === {});\
         return th ? th.nextElementSibling.textContent : null;",
        serde_json::to_string(label).unwrap()
    );
    d.script(&script)
        .await?
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no row {label}"))
}

async fn steps(d: &Driver, base: &str, axe: &str, dir: &Path, month: &str) -> Result<(), String> {
    login(d, base, "bilan.ml", PASSWORD).await?;
    d.click("a[href='/bilans']").await?;
    d.wait_url(|u| u.ends_with("/bilans")).await?;
    let src = d.wait_text("Bilans partagés").await?;
    check(
        src.contains("Mission Locale de Lille avec tous ses partenaires"),
        "the operateur's own organisation",
    )?;
    let oriented = cell(
        d,
        "Jeunes bénéficiaires du RSA orientés vers la Mission Locale",
    )
    .await?;
    check(
        oriented == "199",
        &format!("199 orientations, read {oriented}"),
    )?;
    let asked = cell(d, "Montant demandé").await?;
    check(
        asked == "3\u{202f}000,00 €",
        &format!("12 requests of 250 € asked, read {asked}"),
    )?;
    // The decisions by outcome, as the command prints them (the commission's outcomes
    // depend on the requests of the day): small ones masked alike.
    let decisions = cell(d, "Décisions FAJ reçues, par issue").await?;
    let json: Value = serde_json::from_slice(&passerelle(
        dir,
        &["bilan", "--month", month, "--org", ML, "--format", "json"],
    ))
    .map_err(|e| e.to_string())?;
    for f in json["indicateurs"].as_array().ok_or("no figures")? {
        if f["indicateur"] != "faj_decisions" {
            continue;
        }
        let label = match f["detail"].as_str().unwrap_or("") {
            "accordee" => "accordée",
            "refusee" => "refusée",
            "ajournee" => "ajournée",
            other => other,
        }
        .to_owned();
        let v = match &f["valeur"] {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        };
        check(
            decisions.contains(&format!("{label} : {v}")),
            &format!("{label} : {v} in {decisions}"),
        )?;
    }
    check(
        src.matches("<svg").count() == 5 && src.contains("<title id=\"c0-t\">"),
        "five charts drawn on the server, each titled",
    )?;
    check(
        src.contains("<caption>Orientation BRSA et retours de suivi</caption>"),
        "each chart's numbers in a table",
    )?;
    check(
        src.contains("Jeunes distincts ayant un échange brsa-orientation"),
        "the definitions are on the page",
    )?;
    accessible(d, axe, "/bilans").await?;
    // For a person to look at: the top of the page and its charts.
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-screenshots");
    d.screenshot(&shots.join("bilans.png")).await;
    d.script("document.querySelector('section.graphe').scrollIntoView(); return true;")
        .await?;
    d.screenshot(&shots.join("bilans-graphiques.png")).await;

    // The partner filter: the ML with its CD only (the FAJ platform's exchanges go).
    d.script("document.getElementById('partenaire').value = 'CD059'; return true;")
        .await?;
    d.click("form.filtre button[type=submit]").await?;
    d.wait_url(|u| u.contains("partenaire=CD059")).await?;
    let src = d.wait_text("avec Conseil départemental du Nord").await?;
    check(
        cell(d, "Demandes FAJ envoyées à la plateforme").await? == "0",
        "no FAJ request between the ML and its CD",
    )?;
    check(src.contains("199"), "the orientations stay")?;
    accessible(d, axe, "/bilans?partenaire=CD059").await?;

    // The CSV export is the command's, byte for byte (fetched with the browser's
    // session: the page's CSP lets no script fetch).
    let cookie = d.cmd("GET", "/cookie/passerelle", Value::Null).await?;
    let cookie = format!(
        "passerelle={}",
        cookie["value"].as_str().ok_or("no session cookie")?
    );
    let get = |path: String| {
        let cookie = cookie.clone();
        async move {
            let r = reqwest::Client::new()
                .get(format!("{base}{path}"))
                .header("cookie", cookie)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let kind = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let body = r.bytes().await.map_err(|e| e.to_string())?.to_vec();
            Ok::<_, String>((kind, body))
        }
    };
    let (kind, page) = get(format!("/bilans/export.csv?mois={month}&partenaire=CD059")).await?;
    let cli = passerelle(
        dir,
        &[
            "bilan",
            "--month",
            month,
            "--org",
            ML,
            "--partner",
            "CD059",
            "--format",
            "csv",
        ],
    );
    check(kind.starts_with("text/csv"), &format!("a CSV file: {kind}"))?;
    check(
        page.starts_with(b"\xEF\xBB\xBF"),
        "the export starts with a BOM",
    )?;
    check(page == cli, "the page's CSV is the command's")?;
    let (_, xlsx) = get(format!("/bilans/export.xlsx?mois={month}")).await?;
    check(xlsx.starts_with(b"PK"), "the XLSX export is a workbook")?;
    // The one-page PDF of the convention.
    let (kind, pdf) = get(format!("/bilans/bilan.pdf?mois={month}&partenaire=CD059")).await?;
    check(kind == "application/pdf", &format!("a PDF: {kind}"))?;
    let raw = String::from_utf8_lossy(&pdf).into_owned();
    check(
        raw.matches("/Type /Page").count() - raw.matches("/Type /Pages").count() == 1,
        "the PDF bilan is one page",
    )?;
    let text = passerelle_server::web::pdf::text_of(&pdf).join("\n");
    check(
        text.contains("Mission Locale de Lille et Conseil départemental du Nord")
            && text.contains("199"),
        &format!("the PDF names the convention and its figures: {text}"),
    )?;
    std::fs::write(shots.join("bilan.pdf"), &pdf).map_err(|e| e.to_string())?;
    let (_, year) = get(format!("/bilans/export.csv?mois={month}&periode=12")).await?;
    let year_cli = passerelle(
        dir,
        &[
            "bilan", "--month", month, "--months", "12", "--org", ML, "--format", "csv",
        ],
    );
    check(
        year == year_cli,
        "twelve months: the page's CSV is the command's",
    )?;

    // Another organisation's bilan is refused.
    d.goto(&format!("{base}/bilans?organisation=CD059")).await?;
    check(
        d.source()
            .await?
            .contains("Vous ne pouvez pas voir le bilan de Conseil départemental du Nord"),
        "another organisation's bilan is refused",
    )?;
    d.click("header form button[type=submit]").await?;
    d.wait_url(|u| u.ends_with("/connexion")).await?;

    // The dpo sees the whole hub.
    login(d, base, "bilan.dpo", PASSWORD).await?;
    d.click("a[href='/bilans']").await?;
    let src = d.wait_text("toutes les organisations du hub").await?;
    check(src.contains("Bilans partagés"), "the dpo's bilan")?;
    accessible(d, axe, "/bilans (dpo)").await?;
    // Another ML filed three requests: their amount is a secret.
    d.type_in("#organisation", OTHER_ML).await?;
    d.click("form.filtre button[type=submit]").await?;
    d.wait_url(|u| u.contains(&format!("organisation={OTHER_ML}")))
        .await?;
    d.wait_text("Bilan de Mission Locale").await?;
    let asked = cell(d, "Montant demandé").await?;
    check(
        asked == "< 5",
        &format!("three requests' amount masked, read {asked}"),
    )?;
    check(
        !d.source().await?.contains("750,00"),
        "never the amount itself",
    )?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_bilan_reads_in_a_real_browser() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(axe) = browser_and_axe() else {
        return;
    };

    // Three demo nights, as a person runs them.
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..3 {
        passerelle(
            dir.path(),
            &["demo", "--once", "--jeunes", "200", "--seed", "7"],
        );
    }
    let month = chrono::Utc::now().format("%Y-%m").to_string();

    // The web application over that hub's state and journal.
    let state = HubState::open(&dir.path().join("state.sqlite"))
        .await
        .unwrap();
    let three: Vec<_> = (0..3)
        .map(|_| {
            (
                "faj-demande".to_owned(),
                OTHER_ML.to_owned(),
                "FAJ059".to_owned(),
                passerelle_hub::bilan::FajFigure {
                    outcome: "demande".into(),
                    cents: 25_000,
                },
            )
        })
        .collect();
    passerelle_hub::bilan::record_faj(&state, chrono::Utc::now(), &three)
        .await
        .unwrap();
    let store = WebStore::open(&state).await.unwrap();
    for (login, role, org) in [
        ("bilan.ml", Role::Operateur, Some(ML)),
        ("bilan.dpo", Role::Dpo, None),
    ] {
        store
            .add_account(
                login,
                &passerelle_server::web::hash_password(PASSWORD).unwrap(),
                role,
                org,
            )
            .await
            .unwrap();
    }
    let journal = passerelle_audit::JournalConfig::sqlite_file(&dir.path().join("journal.sqlite"))
        .build()
        .await
        .unwrap();
    let pseudonyms = passerelle_crypto::Keyring::open(dir.path())
        .unwrap()
        .pseudonym_key()
        .unwrap();
    let mut config = passerelle_server::web::WebConfig::default();
    config
        .organisations
        .insert(ML.into(), "Mission Locale de Lille".into());
    config
        .organisations
        .insert("CD059".into(), "Conseil départemental du Nord".into());
    let status = Status::new("0.1.0", 7).shared();
    let web = WebApp::new(
        WebDeps {
            store,
            journal,
            pseudonyms,
            config,
            timezone: passerelle_server::Timezone::parse("Europe/Paris").unwrap(),
        },
        status.clone(),
    )
    .with_bilans(passerelle_hub::bilan::Bilans::open(&state).await.unwrap());
    let app = passerelle_server::app_with_web(AppState::new(status, Metrics::new()), None, web);
    let served = serve(app).await;
    let base = served.base.clone();
    let profile = tempfile::tempdir().unwrap();
    let d = Driver::start(profile.path())
        .await
        .expect("WebDriver session");
    let result = steps(&d, &base, &axe, dir.path(), &month).await;
    finish(&d, "the_shared_bilan_reads_in_a_real_browser", result).await;
    served.stop().await;
    state.close().await;
}
