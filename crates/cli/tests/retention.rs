//! Peer files past `night.file_retention_days`: deleted from `traites/` and `refuses/`
//! of the configured folders, never from the folders themselves, and journaled by
//! folder and count, never by file name.

use std::time::{Duration, SystemTime};

use passerelle_audit::{Filter, JournalConfig};
use passerelle_runtime::config::HubConfig;

const DAY: Duration = Duration::from_secs(86_400);

#[tokio::test]
async fn a_night_deletes_files_past_retention_and_journals_it() {
    let root = tempfile::tempdir().unwrap();
    let cnaf = root.path().join("cnaf");
    let exports = root.path().join("solis/exports");
    let imports = root.path().join("solis/imports");
    for (dir, sub, name) in [
        (&cnaf, "traites", "RSABEM_DUPONT_Jean.xml"),
        (&cnaf, "refuses", "RSABEI_20260101.xml"),
        (&exports, "traites", "SOLIS_EXPORT_BRSA_059_1.xml"),
        (&imports, "traites", "SOLIS_IMPORT_SUIVI_059_1.xml"),
    ] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        std::fs::write(dir.join(sub).join(name), b"<x/>").unwrap();
    }
    // Waiting to be read: never touched, whatever its age.
    std::fs::write(cnaf.join("RSABEM_20260201.xml"), b"<x/>").unwrap();
    let toml = format!(
        r#"
[night]
file_retention_days = 10

[[departement]]
code = "059"

[departement.solis]
export_dir = "{}"
import_dir = "{}"

[departement.cnaf]
flux_dir = "{}"
"#,
        exports.display(),
        imports.display(),
        cnaf.display()
    );
    let config = HubConfig::from_toml(&toml).unwrap();
    let journal = JournalConfig::sqlite_file(&root.path().join("journal.db"))
        .build()
        .await
        .unwrap();

    let now = SystemTime::now();
    let early = passerelle_runtime::retention::sweep_all(&config, &journal, now + 9 * DAY)
        .await
        .unwrap();
    assert_eq!(early.iter().map(|f| f.swept.removed).sum::<u64>(), 0);
    assert_eq!(early.iter().map(|f| f.swept.kept).sum::<u64>(), 4);
    assert!(
        journal
            .entries(&Filter::default())
            .await
            .unwrap()
            .is_empty()
    );

    let late = passerelle_runtime::retention::sweep_all(&config, &journal, now + 11 * DAY)
        .await
        .unwrap();
    assert_eq!(late.len(), 3, "three folders: {late:?}");
    assert_eq!(late.iter().map(|f| f.swept.removed).sum::<u64>(), 4);
    assert!(cnaf.join("RSABEM_20260201.xml").exists());
    assert_eq!(std::fs::read_dir(cnaf.join("traites")).unwrap().count(), 0);

    let entries = journal.entries(&Filter::default()).await.unwrap();
    assert_eq!(entries.len(), 3, "one entry per folder with deletions");
    for e in &entries {
        assert_eq!(e.event, "purged");
        assert_eq!(e.sender.as_deref(), Some("CD059"));
        let reason = e.reason.as_deref().unwrap_or_default();
        assert!(reason.contains("after 10 days"), "{reason}");
        // A file name may hold a person's name: the journal counts, it does not list.
        assert!(!reason.contains("DUPONT"), "{reason}");
    }
    assert!(journal.verify().await.unwrap().is_intact());
}

#[test]
fn a_retention_of_zero_days_is_refused() {
    let err = HubConfig::from_toml("[night]\nfile_retention_days = 0\n").unwrap_err();
    assert!(
        format!("{err:#}").contains("night.file_retention_days"),
        "{err:#}"
    );
}
