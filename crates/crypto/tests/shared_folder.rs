//! A shared key folder: two hub instances (two data directories) over one folder seal
//! and open each other's envelopes and compute the same blind indexes; they never
//! write to it, never generate, and say which organisation lacks keys.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use passerelle_crypto::{CryptoErrorKind, FolderStore, KeyStore, Keyring, Route, open, seal};
use uuid::Uuid;

fn route() -> Route<'static> {
    Route {
        transfer_id: Uuid::new_v4(),
        flow: "brsa-orientation",
        sender: "CD059",
        schema: "passerelle.jeune/1",
    }
}

/// Every file of a folder and its bytes: "unchanged" means this is equal.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// What `passerelle keys` writes with: the shared folder, writable.
fn operator(shared: &Path) -> Keyring {
    let store = FolderStore::shared_for_writing(shared).unwrap();
    Keyring::shared(tempfile::tempdir().unwrap().keep(), Arc::new(store)).unwrap()
}

/// A hub instance: its own data directory, the shared folder read only.
fn instance(shared: &Path) -> (tempfile::TempDir, Keyring) {
    let data = tempfile::tempdir().unwrap();
    let store = FolderStore::shared(shared).unwrap();
    let ring = Keyring::shared(data.path(), Arc::new(store)).unwrap();
    (data, ring)
}

/// The hex key bytes in an organisation's file of the folder.
fn key_hex(shared: &Path, org: &str) -> Vec<String> {
    let text = std::fs::read_to_string(shared.join(format!("{org}.keys.json"))).unwrap();
    text.split("\"key\": \"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_owned())
        .collect()
}

#[test]
fn two_instances_share_envelopes_and_blind_indexes() {
    let root = tempfile::tempdir().unwrap();
    let shared = root.path().join("keys");
    let op = operator(&shared);
    op.generate("59350S00").unwrap();
    assert!(op.init_pseudonym_key().unwrap());
    assert!(!op.init_pseudonym_key().unwrap(), "created once");

    let before = snapshot(&shared);
    let (_a_dir, a) = instance(&shared);
    let (_b_dir, b) = instance(&shared);
    assert!(!a.generates());

    let from_a = seal(&route(), &a.ensure("59350S00").unwrap(), b"from a").unwrap();
    let from_b = seal(&route(), &b.ensure("59350S00").unwrap(), b"from b").unwrap();
    assert_eq!(
        &**open(&from_a, &b.open_for("59350S00").unwrap()).unwrap(),
        b"from a"
    );
    assert_eq!(
        &**open(&from_b, &a.open_for("59350S00").unwrap()).unwrap(),
        b"from b"
    );

    let (pa, pb) = (a.pseudonym_key().unwrap(), b.pseudonym_key().unwrap());
    assert_eq!(
        pa.blind_index("nir", "180057512345678"),
        pb.blind_index("nir", "180057512345678")
    );
    assert_eq!(pa.pseudonym("hub-1"), pb.pseudonym("hub-1"));
    assert_eq!(b.existing_pseudonym_key().unwrap(), pa);

    // Reading wrote nothing there: no lock file, no key.
    assert_eq!(snapshot(&shared), before);
}

#[test]
fn a_missing_key_is_an_error_naming_the_organisation_and_nothing_is_generated() {
    let root = tempfile::tempdir().unwrap();
    let shared = root.path().join("keys");
    let op = operator(&shared);
    op.generate("CD059").unwrap();
    let before = snapshot(&shared);
    let (data, a) = instance(&shared);

    let e = a.ensure("59350S00").unwrap_err();
    assert_eq!(e.kind(), CryptoErrorKind::Missing);
    let text = e.to_string();
    assert!(text.contains("`59350S00`"), "{text}");
    assert!(
        text.contains("passerelle keys generate --org 59350S00"),
        "{text}"
    );
    assert!(text.contains(&shared.display().to_string()), "{text}");
    assert_eq!(
        a.open_for("59350S00").unwrap_err().kind(),
        CryptoErrorKind::Missing
    );

    // No pseudonym key yet: an error too, and none created anywhere.
    let e = a.pseudonym_key().unwrap_err();
    assert_eq!(e.kind(), CryptoErrorKind::Missing);
    assert!(e.to_string().contains("passerelle keys generate"), "{e}");
    assert_eq!(
        a.existing_pseudonym_key().unwrap_err().kind(),
        CryptoErrorKind::Missing
    );

    assert_eq!(snapshot(&shared), before);
    assert!(
        snapshot(&data.path().join("keyring")).is_empty(),
        "the instance's own keyring holds no generated key"
    );

    // The error never shows the key bytes of the organisation that has some.
    for k in key_hex(&shared, "CD059") {
        assert!(!text.contains(&k));
    }
}

#[test]
fn rotation_by_the_operator_reaches_every_instance() {
    let root = tempfile::tempdir().unwrap();
    let shared = root.path().join("keys");
    let op = operator(&shared);
    let first = op.generate("CD059").unwrap();
    let (_a_dir, a) = instance(&shared);
    let (_b_dir, b) = instance(&shared);

    let old = seal(&route(), &a.open_for("CD059").unwrap(), b"old").unwrap();
    let rotated = op.rotate("CD059").unwrap();
    assert_eq!(rotated.all, vec![first.id.clone(), rotated.id.clone()]);

    // B, reading after the rotation, seals with the new key; A opens it, and both
    // still open what was sealed under the old one.
    let keys_b = b.open_for("CD059").unwrap();
    assert_eq!(keys_b.current().id(), rotated.id);
    let new = seal(&route(), &keys_b, b"new").unwrap();
    assert_eq!(new.header().key_id, rotated.id);
    let keys_a = a.open_for("CD059").unwrap();
    assert_eq!(&**open(&new, &keys_a).unwrap(), b"new");
    assert_eq!(&**open(&old, &keys_a).unwrap(), b"old");
    assert_eq!(&**open(&old, &keys_b).unwrap(), b"old");
}

#[test]
fn a_mounted_secret_may_be_group_readable_but_not_world_readable() {
    let root = tempfile::tempdir().unwrap();
    let shared = root.path().join("keys");
    operator(&shared).generate("CD059").unwrap();
    let file = shared.join("CD059.keys.json");
    // A Kubernetes secret: folder 1777, files 0440.
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o440)).unwrap();
    let (_d, a) = instance(&shared);
    assert_eq!(a.open_for("CD059").unwrap().keys().len(), 1);

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o444)).unwrap();
    let e = a.open_for("CD059").unwrap_err();
    assert_eq!(e.kind(), CryptoErrorKind::Keyring);
    assert!(e.to_string().contains("any user"), "{e}");

    // A folder that is not there is refused, not created.
    let missing = root.path().join("not-mounted");
    let e = FolderStore::shared(&missing).unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");
    assert!(!missing.exists());
}

#[test]
fn debug_and_display_show_no_key_bytes() {
    let root = tempfile::tempdir().unwrap();
    let shared = root.path().join("keys");
    let op = operator(&shared);
    op.generate("CD059").unwrap();
    op.init_pseudonym_key().unwrap();
    let (_d, a) = instance(&shared);
    let keys = a.open_for("CD059").unwrap();
    let p = a.pseudonym_key().unwrap();
    let store = FolderStore::shared(&shared).unwrap();
    let shown = [
        format!("{a:?}"),
        a.to_string(),
        format!("{store:?}"),
        store.to_string(),
        format!("{keys:?}"),
        format!("{p:?}"),
        format!("{:?}", store.load_org("CD059")),
    ];
    let pseudo_hex = hex::encode(p.expose_bytes());
    for s in &shown {
        assert!(!s.contains(&pseudo_hex), "{s}");
        for k in key_hex(&shared, "CD059") {
            assert!(!s.contains(&k), "{s}");
        }
    }
    assert!(a.to_string().contains("shared key folder"), "{}", a);
}
