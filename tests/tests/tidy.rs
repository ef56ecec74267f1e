//! Tidy checks over the whole workspace: every Rust file says what it holds, and the
//! layering of design.md holds (the model does no I/O).

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
fn only_transport_knows_lapin_and_only_audit_hub_transport_know_sqlx() {
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
        // The embedded transport keeps its queue in SQLite, hence transport here.
        if !["audit", "hub", "transport", "identity"].contains(&name.as_str()) {
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
