//! Data-driven mapping fixtures under `tests/fixtures/`: canonical record → request
//! body (`demande/*.canonical.json` → `*.request.json`), platform request or webhook
//! → canonical `faj[]` entry (`decision/*.platform.json` / `*.webhook.json` → `*.faj.json`).

use std::path::{Path, PathBuf};

use passerelle_faj::mapping::{
    DemandePlateforme, demande_body, demande_to_faj, statut_from_platform,
};
use passerelle_faj::webhook::WebhookBody;
use passerelle_faj::{Decision, DecisionVia};
use passerelle_model::{Date, Jeune};
use serde_json::Value;

fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn inputs(d: &str, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir(d))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    v
}

fn expected(input: &Path, suffix: &str, with: &str) -> Value {
    let s = input.to_string_lossy().replace(suffix, with);
    read_json(Path::new(&s))
}

#[test]
fn canonical_to_request_body() {
    let today = Date::parse("2026-11-21").unwrap();
    let files = inputs("demande", ".canonical.json");
    assert!(files.len() >= 2);
    for f in files {
        let record: Jeune = serde_json::from_value(read_json(&f)).unwrap();
        let body = demande_body(&record, today).unwrap();
        let got = serde_json::to_value(&body).unwrap();
        let want = expected(&f, ".canonical.json", ".request.json");
        assert_eq!(got, want, "{}", f.display());
    }
}

#[test]
fn platform_to_canonical_faj() {
    let files = inputs("decision", ".platform.json");
    assert!(files.len() >= 3);
    for f in files {
        let d: DemandePlateforme = serde_json::from_value(read_json(&f)).unwrap();
        let faj = demande_to_faj(&d).unwrap();
        let got = serde_json::to_value(&faj).unwrap();
        let want = expected(&f, ".platform.json", ".faj.json");
        assert_eq!(got, want, "{}", f.display());
    }
}

#[test]
fn webhook_to_canonical_faj() {
    let files = inputs("decision", ".webhook.json");
    assert!(!files.is_empty());
    for f in files {
        let w: WebhookBody = serde_json::from_value(read_json(&f)).unwrap();
        let d = Decision {
            id_demande: w.id_demande,
            statut: statut_from_platform(&w.statut).unwrap(),
            decision: w.decision.unwrap_or_default(),
            evenement_id: Some(w.evenement_id),
            horodatage: w.horodatage,
            date_depot: None,
            aides: vec![],
            via: DecisionVia::Webhook,
            instructeur: None,
            imilo_dossier: None,
        };
        let got = serde_json::to_value(d.to_faj().unwrap()).unwrap();
        let want = expected(&f, ".webhook.json", ".faj.json");
        assert_eq!(got, want, "{}", f.display());
    }
}
