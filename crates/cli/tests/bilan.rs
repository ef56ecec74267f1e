//! `passerelle bilan` over the demo world's three nights: the figures it prints are
//! those the nights' own summaries and the state's rows give (derived here by other
//! means: the night tables, the world's known requests, SQL of our own over the
//! state), small counts are `< 5` in every format, and CSV, JSON and XLSX agree.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use sqlx::Row;

/// `sent`, `applied`, `awaiting`, `rejected` of one line of a night's table.
type Counts = [u64; 4];

fn night(dir: &Path) -> BTreeMap<String, Counts> {
    let out = Command::new(env!("CARGO_BIN_EXE_passerelle"))
        .args([
            "demo",
            "--once",
            "--jeunes",
            "200",
            "--seed",
            "7",
            "--data-dir",
        ])
        .arg(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut table = BTreeMap::new();
    for line in stdout.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() != 12 || cols[0].ends_with(':') {
            continue;
        }
        let n: Vec<u64> = cols[1..].iter().map(|x| x.parse().unwrap()).collect();
        table.insert(cols[0].to_owned(), [n[3], n[5], n[6], n[7]]);
    }
    table
}

fn bilan(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_passerelle"))
        .arg("--data-dir")
        .arg(dir)
        .arg("bilan")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    out.stdout
}

/// The value of one indicator (and detail) in the JSON output.
fn value(json: &serde_json::Value, id: &str, detail: &str) -> serde_json::Value {
    json["indicateurs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["indicateur"] == id && f["detail"] == detail)
        .map(|f| f["valeur"].clone())
        .unwrap_or_else(|| panic!("no {id}/{detail} in {json}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_demo_nights_give_known_figures_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let nights: Vec<_> = (0..3).map(|_| night(dir.path())).collect();
    let total = |flow: &str, i: usize| -> u64 {
        nights.iter().map(|n| n.get(flow).map_or(0, |c| c[i])).sum()
    };
    let (sent, applied, awaiting, rejected) = (0, 1, 2, 3);

    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let json: serde_json::Value =
        serde_json::from_slice(&bilan(dir.path(), &["--month", &month, "--format", "json"]))
            .unwrap();
    let v = |id: &str| value(&json, id, "");
    let n = |x: u64| serde_json::json!(x);

    // Orientations: each person the CD oriented was sent once, the first night.
    assert_eq!(v("brsa_orientes"), n(nights[0]["brsa-orientation"][sent]));
    assert_eq!(v("brsa_orientes"), n(total("brsa-orientation", sent)));
    // Their follow-ups, from the state's rows by SQL of our own.
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}?mode=ro",
        dir.path().join("state.sqlite").display()
    ))
    .await
    .unwrap();
    let followed: i64 = sqlx::query(
        "SELECT COUNT(DISTINCT o.hub_id) FROM transfer o JOIN transfer s
           ON s.hub_id = o.hub_id AND s.flow = 'brsa-suivi'
          AND s.sender = o.recipient AND s.recipient = o.sender
          AND s.created_at >= o.created_at
         WHERE o.flow = 'brsa-orientation'",
    )
    .fetch_one(&pool)
    .await
    .unwrap()
    .get(0);
    pool.close().await;
    assert!(followed >= 5, "the demo's follow-ups: {followed}");
    assert_eq!(v("brsa_orientes_suivis"), n(followed as u64));
    // The second night brought the follow-ups, all about oriented persons.
    assert_eq!(followed as u64, nights[1]["brsa-suivi"][sent]);
    // Three nights in a few seconds: every delay is under a day.
    for id in ["brsa_delai_suivi_median", "brsa_delai_suivi_p90"] {
        let d = v(id).as_f64().unwrap();
        assert!((0.0..1.0).contains(&d), "{id}: {d}");
    }

    // ASE: announced the first night, every one applied by I-MILO; no ML sends
    // anything later about them in the demo world.
    assert_eq!(v("ase_annonces"), n(nights[0]["ase-majorite"][sent]));
    assert_eq!(v("ase_accueillis"), n(nights[0]["ase-majorite"][applied]));
    assert_eq!(v("ase_connus_ml"), n(0));

    // FAJ: the demo's conseillers file 12 requests of 250 € each the first day; the
    // same ones are unchanged after. Each is decided.
    assert_eq!(v("faj_demandes"), n(12));
    assert_eq!(v("faj_montant_demande"), n(12 * 25_000));
    assert_eq!(total("faj-decision", sent), 12);
    let decisions: Vec<&serde_json::Value> = json["indicateurs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["indicateur"] == "faj_decisions")
        .collect();
    let shown: u64 = decisions.iter().filter_map(|f| f["valeur"].as_u64()).sum();
    let masked = decisions.iter().filter(|f| f["valeur"] == "< 5").count() as u64;
    assert!(
        shown + masked * 4 >= 12 && shown + masked <= 12,
        "{decisions:?}"
    );
    let granted = value(&json, "faj_decisions", "accordee").as_u64().unwrap();
    let cents = v("faj_montant_accorde").as_u64().unwrap();
    // The commission grants 50 to 100 % of the 250 € asked.
    assert!(
        cents <= granted * 25_000 && cents >= granted * 12_500,
        "{cents}"
    );

    // Training obligation: reports the first night, answered the second.
    assert_eq!(v("of_signalements"), n(nights[0]["of-signalement"][sent]));
    assert_eq!(v("of_reponses"), n(nights[1]["of-suivi"][applied]));

    // Exchanges per flow, refused, awaiting: the nights' sums.
    for flow in ["brsa-orientation", "brsa-suivi", "ase-majorite", "of-suivi"] {
        assert_eq!(
            value(&json, "echanges_envoyes", flow),
            n(total(flow, sent)),
            "{flow}"
        );
    }
    let refused: u64 = json["indicateurs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["indicateur"] == "echanges_refuses")
        .map(|f| f["valeur"].as_u64().unwrap_or(4))
        .sum();
    assert_eq!(refused, total("of-suivi", rejected), "{json}");
    assert_eq!(
        value(&json, "echanges_en_attente", "of-signalement"),
        n(nights[0]["of-signalement"][awaiting])
    );
    // The counts this command printed before are still there, filtered the same.
    let lines = json["lines"].as_array().unwrap();
    let applied_orient: u64 = lines
        .iter()
        .filter(|l| l["flow"] == "brsa-orientation" && l["status"] == "applied")
        .map(|l| l["transfers"].as_u64().unwrap())
        .sum();
    assert_eq!(applied_orient, total("brsa-orientation", applied));

    // The CSV: BOM, `;`, the same figures, small counts `< 5` and never their value.
    let csv = bilan(
        dir.path(),
        &["--month", &month, "--org", "CD059", "--format", "csv"],
    );
    assert!(csv.starts_with(b"\xEF\xBB\xBF"));
    let csv = String::from_utf8(csv).unwrap();
    let line = |id: &str, detail: &str| {
        csv.lines()
            .find(|l| {
                let c: Vec<&str> = l.split(';').collect();
                c.len() == 9 && c[4] == id && c[6] == detail
            })
            .unwrap_or_else(|| panic!("no {id} in {csv}"))
            .split(';')
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let o = line("brsa_orientes", "");
    assert_eq!((o[0].as_str(), o[1].as_str()), (month.as_str(), "CD059"));
    assert_eq!(o[7], total("brsa-orientation", sent).to_string());
    // The CD's own bilan has no FAJ requests (they go from the ML to the platform).
    assert_eq!(line("faj_demandes", "")[7], "0");
    for d in decisions.iter().filter(|f| f["valeur"] == "< 5") {
        let whole = bilan(dir.path(), &["--month", &month, "--format", "csv"]);
        let whole = String::from_utf8(whole).unwrap();
        let detail = d["detail"].as_str().unwrap();
        let l = whole
            .lines()
            .find(|l| l.contains(";faj_decisions;") && l.contains(&format!(";{detail};")))
            .unwrap();
        assert!(l.ends_with(";< 5;echanges"), "{l}");
    }

    // Another ML files three requests (through the engine's hook into the bilan's
    // aggregates): their count and amount are secrets in every format.
    let state = passerelle_hub::HubState::open(&dir.path().join("state.sqlite"))
        .await
        .unwrap();
    let three: Vec<_> = (0..3)
        .map(|_| {
            (
                "faj-demande".to_owned(),
                "59001S00".to_owned(),
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
    state.close().await;
    let other = |format: &str| {
        String::from_utf8(bilan(
            dir.path(),
            &["--month", &month, "--org", "59001S00", "--format", format],
        ))
        .unwrap()
    };
    let csv = other("csv");
    let l = csv
        .lines()
        .find(|l| l.contains(";faj_montant_demande;"))
        .unwrap();
    assert!(l.ends_with(";< 5;centimes"), "{l}");
    let json = other("json");
    assert!(json.contains(r#""valeur": "< 5""#), "{json}");
    assert!(
        !csv.contains("75000") && !json.contains("75000"),
        "{csv}{json}"
    );
    // In the whole hub's bilan the amount is 15 requests', shown.
    let whole: serde_json::Value =
        serde_json::from_slice(&bilan(dir.path(), &["--month", &month, "--format", "json"]))
            .unwrap();
    assert_eq!(value(&whole, "faj_montant_demande", ""), n(15 * 25_000));

    // XLSX: a workbook, to a file.
    let xlsx = dir.path().join("bilan.xlsx");
    bilan(
        dir.path(),
        &[
            "--month",
            &month,
            "--format",
            "xlsx",
            "--output",
            xlsx.to_str().unwrap(),
        ],
    );
    let bytes = std::fs::read(&xlsx).unwrap();
    assert!(bytes.starts_with(b"PK") && bytes.len() > 4000);

    // The one-page PDF of the whole hub (the longest: every flow, every reason).
    let pdf = dir.path().join("bilan.pdf");
    bilan(
        dir.path(),
        &[
            "--month",
            &month,
            "--format",
            "pdf",
            "--output",
            pdf.to_str().unwrap(),
        ],
    );
    let raw = String::from_utf8_lossy(&std::fs::read(&pdf).unwrap()).into_owned();
    assert!(raw.starts_with("%PDF-"));
    assert_eq!(
        raw.matches("/Type /Page").count() - raw.matches("/Type /Pages").count(),
        1,
        "one page"
    );

    // The definitions, listed without a data folder.
    let out = Command::new(env!("CARGO_BIN_EXE_passerelle"))
        .args(["bilan", "--list"])
        .output()
        .unwrap();
    let list = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success());
    assert!(
        list.contains("faj_montant_accorde") && list.contains("Montant accordé"),
        "{list}"
    );

    // A month with nothing: zeros, not errors.
    let empty: serde_json::Value = serde_json::from_slice(&bilan(
        dir.path(),
        &["--month", "2020-01", "--format", "json"],
    ))
    .unwrap();
    assert_eq!(value(&empty, "brsa_orientes", ""), n(0));
}
