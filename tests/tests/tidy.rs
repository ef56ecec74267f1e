//! Tidy checks over the whole workspace: every Rust file says what it holds, and the
//! layering of design.md holds (the model does no I/O, the server knows no connector,
//! the cli plans nothing, simulators are behind `sim`, the plan names no flow).

use std::fs;
use std::path::{Path, PathBuf};

use passerelle_e2e::workspace_root;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if name == "target" || name.starts_with('.') {
                continue;
            }
            rust_files(&path, out);
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_rust_file_starts_with_an_inner_doc_line() {
    let root = workspace_root();
    let mut files = Vec::new();
    for top in ["crates", "connectors", "tests"] {
        rust_files(&root.join(top), &mut files);
    }
    assert!(
        files.len() > 10,
        "found only {} Rust files under {}",
        files.len(),
        root.display()
    );
    let offenders: Vec<String> = files
        .iter()
        .filter(|f| {
            let text = fs::read_to_string(f).unwrap_or_default();
            !text.starts_with("//!")
        })
        .map(|f| f.strip_prefix(&root).unwrap_or(f).display().to_string())
        .collect();
    assert!(
        offenders.is_empty(),
        "files without a leading //! line: {offenders:?}"
    );
}

/// The direct dependencies a crate's manifest names (normal dependencies only).
fn dependencies(manifest: &Path) -> Vec<String> {
    let text =
        fs::read_to_string(manifest).unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
    let doc: toml::Table = text
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
    doc.get("dependencies")
        .and_then(|d| d.as_table())
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn the_model_depends_on_no_io_crate() {
    let deps = dependencies(&workspace_root().join("crates/model/Cargo.toml"));
    assert!(
        deps.contains(&"serde".to_owned()),
        "manifest not read: {deps:?}"
    );
    for io in [
        "tokio",
        "sqlx",
        "lapin",
        "reqwest",
        "axum",
        "hyper",
        "async-std",
    ] {
        assert!(
            !deps.contains(&io.to_owned()),
            "crates/model depends on {io}"
        );
    }
}

#[test]
fn connectors_depend_on_no_transport_storage_or_other_connector() {
    let root = workspace_root();
    let Ok(entries) = fs::read_dir(root.join("connectors")) else {
        return;
    };
    for entry in entries.flatten() {
        let manifest = entry.path().join("Cargo.toml");
        if !manifest.exists() {
            continue;
        }
        let deps = dependencies(&manifest);
        for forbidden in [
            "lapin",
            "sqlx",
            "passerelle-transport",
            "passerelle-audit",
            "passerelle-hub",
        ] {
            assert!(
                !deps.contains(&forbidden.to_owned()),
                "{} depends on {forbidden}",
                manifest.display()
            );
        }
        for other in ["solis", "cnaf", "box", "imilo", "faj"] {
            let name = format!("passerelle-{other}");
            let own = entry.file_name().to_string_lossy() == other;
            assert!(
                own || !deps.contains(&name),
                "{} depends on {name}",
                manifest.display()
            );
        }
    }
}

#[test]
fn only_transport_knows_lapin_and_only_the_stores_know_sqlx() {
    let root = workspace_root();
    let Ok(entries) = fs::read_dir(root.join("crates")) else {
        panic!("no crates folder");
    };
    for entry in entries.flatten() {
        let manifest = entry.path().join("Cargo.toml");
        if !manifest.exists() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().to_string();
        let deps = dependencies(&manifest);
        if name != "transport" {
            assert!(
                !deps.contains(&"lapin".to_owned()),
                "crates/{name} depends on lapin"
            );
        }
        // The embedded transport keeps its queue in SQLite, hence transport here; the
        // key store keeps wrapped keys in PostgreSQL, so that crypto itself needs no sqlx.
        if !["audit", "hub", "transport", "identity", "keystore"].contains(&name.as_str()) {
            assert!(
                !deps.contains(&"sqlx".to_owned()),
                "crates/{name} depends on sqlx"
            );
        }
    }
}

#[test]
fn the_testkit_is_a_dev_dependency_only() {
    let root = workspace_root();
    let mut manifests = vec![root.join("tests/Cargo.toml")];
    for top in ["crates", "connectors"] {
        for entry in fs::read_dir(root.join(top)).unwrap().flatten() {
            manifests.push(entry.path().join("Cargo.toml"));
        }
    }
    let read: Vec<_> = manifests.into_iter().filter(|m| m.exists()).collect();
    assert!(read.len() > 10, "found only {} manifests", read.len());
    for manifest in read {
        assert!(
            !dependencies(&manifest).contains(&"passerelle-testkit".to_owned()),
            "{} depends on passerelle-testkit outside [dev-dependencies]",
            manifest.display()
        );
    }
}

const CONNECTORS: [&str; 5] = ["solis", "cnaf", "box", "imilo", "faj"];

/// A manifest's dependency table by name (normal dependencies only), for the features
/// a dependency asks for.
fn dependency_table(manifest: &Path) -> toml::Table {
    let text =
        fs::read_to_string(manifest).unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
    let doc: toml::Table = text
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
    doc.get("dependencies")
        .and_then(|d| d.as_table())
        .cloned()
        .unwrap_or_default()
}

#[test]
fn the_server_knows_no_connector() {
    let deps = dependencies(&workspace_root().join("crates/server/Cargo.toml"));
    assert!(
        deps.contains(&"axum".to_owned()),
        "manifest not read: {deps:?}"
    );
    for c in CONNECTORS {
        let name = format!("passerelle-{c}");
        assert!(!deps.contains(&name), "crates/server depends on {name}");
    }
    // Webhooks come through its `Webhook` trait; no route names a connector's type.
    let mut files = Vec::new();
    rust_files(&workspace_root().join("crates/server/src"), &mut files);
    for f in files {
        let text = fs::read_to_string(&f).unwrap();
        for c in CONNECTORS {
            assert!(
                !text.contains(&format!("passerelle_{c}::")),
                "{} names passerelle_{c}",
                f.display()
            );
        }
    }
}

#[test]
fn the_cli_is_a_thin_binary_that_plans_nothing() {
    let root = workspace_root();
    let cli = root.join("crates/cli");
    let text = fs::read_to_string(cli.join("Cargo.toml")).unwrap();
    assert!(!text.contains("[lib]"), "crates/cli has a library again");
    assert!(
        !cli.join("src/lib.rs").exists(),
        "crates/cli/src/lib.rs exists"
    );
    let deps = dependencies(&cli.join("Cargo.toml"));
    assert!(
        deps.contains(&"passerelle-runtime".to_owned()),
        "manifest not read: {deps:?}"
    );
    let mut files = Vec::new();
    rust_files(&cli.join("src"), &mut files);
    assert!(files.len() > 5, "found only {} files", files.len());
    // Planning is the runtime's: the night's parts are never built here.
    for f in files {
        let text = fs::read_to_string(&f).unwrap();
        for planning in [
            "SourcePlan",
            "SinkPlan",
            "FlowRoute",
            "SinkByFlow",
            "routes::",
        ] {
            assert!(
                !text.contains(planning),
                "{} plans ({planning}): planning belongs to crates/runtime",
                f.display()
            );
        }
    }
}

#[test]
fn simulators_are_behind_the_sim_feature() {
    let root = workspace_root();
    for c in CONNECTORS {
        let lib = fs::read_to_string(root.join(format!("connectors/{c}/src/lib.rs"))).unwrap();
        assert!(
            lib.contains("#[cfg(feature = \"sim\")]\npub mod sim;"),
            "connectors/{c}: `sim` is not behind the `sim` feature"
        );
    }
    // The runtime (what production runs) neither asks for the simulators nor knows
    // the simulated world; the cli has them only under its `sim` feature.
    let runtime = dependency_table(&root.join("crates/runtime/Cargo.toml"));
    assert!(runtime.contains_key("passerelle-hub"), "manifest not read");
    assert!(
        !runtime.contains_key("passerelle-world"),
        "runtime depends on the world"
    );
    for (name, spec) in &runtime {
        let features = spec.get("features").and_then(|f| f.as_array());
        assert!(
            !features.is_some_and(|f| f.iter().any(|x| x.as_str() == Some("sim"))),
            "crates/runtime asks {name} for its simulator"
        );
    }
    let cli = dependency_table(&root.join("crates/cli/Cargo.toml"));
    let world = cli.get("passerelle-world").expect("the cli's world");
    assert_eq!(
        world.get("optional").and_then(|o| o.as_bool()),
        Some(true),
        "the cli's world is not optional"
    );
}

#[test]
fn the_plan_takes_its_flows_from_the_flows_file() {
    let root = workspace_root();
    let flows: toml::Table = fs::read_to_string(root.join("schemas/policy/flows.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let ids: Vec<String> = flows["flow"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(ids.len() > 5, "flows not read: {ids:?}");
    let wiring = fs::read_to_string(root.join("crates/runtime/src/wiring.rs")).unwrap();
    for id in &ids {
        assert!(
            !wiring.contains(&format!("\"{id}\"")),
            "crates/runtime/src/wiring.rs names flow {id}: which source feeds which flow is flows.toml's `sources`"
        );
    }
}
