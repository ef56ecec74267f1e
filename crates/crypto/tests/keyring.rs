//! The keyring on disk: generate, rotate, owner-only files, refusal of readable files.

use std::os::unix::fs::PermissionsExt;

use passerelle_crypto::{CryptoErrorKind, Keyring, Route, open, seal};
use uuid::Uuid;

fn route() -> Route<'static> {
    Route {
        transfer_id: Uuid::new_v4(),
        flow: "brsa-orientation",
        sender: "CD059",
        schema: "passerelle.jeune/1",
    }
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn generate_rotate_and_open_across_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let ring = Keyring::open(dir.path()).unwrap();
    assert_eq!(mode(ring.dir()), 0o700);
    let g = ring.generate("59350S00").unwrap();
    assert_eq!(g.all, vec![g.id.clone()]);
    assert!(g.id.starts_with("59350S00-k1-"));
    let file = ring.dir().join("59350S00.keys.json");
    assert_eq!(mode(&file), 0o600);
    // Generating twice is refused (it would orphan every message sealed so far).
    assert_eq!(
        ring.generate("59350S00").unwrap_err().kind(),
        CryptoErrorKind::Keyring
    );

    let before = seal(&route(), &ring.open_for("59350S00").unwrap(), b"old").unwrap();
    let r = ring.rotate("59350S00").unwrap();
    assert!(r.id.starts_with("59350S00-k2-"));
    assert_eq!(r.all.len(), 2);
    assert_eq!(mode(&file), 0o600);

    // A fresh handle on the same folder sees both keys.
    let again = Keyring::open(dir.path()).unwrap();
    let keys = again.open_for("59350S00").unwrap();
    assert_eq!(keys.current().id(), r.id);
    let after = seal(&route(), &keys, b"new").unwrap();
    assert_eq!(after.header().key_id, r.id);
    assert_eq!(&**open(&before, &keys).unwrap(), b"old");
    assert_eq!(&**open(&after, &keys).unwrap(), b"new");

    // Another organisation's keys open neither.
    again.generate("62010S00").unwrap();
    let other = again.open_for("62010S00").unwrap();
    assert!(open(&before, &other).is_err());
    assert_eq!(
        again.orgs().unwrap(),
        vec!["59350S00".to_owned(), "62010S00".to_owned()]
    );

    // The file holds no key id in clear that could be mistaken for bytes, and
    // the keys are not printed by Debug.
    let shown = format!("{keys:?}");
    let text = std::fs::read_to_string(&file).unwrap();
    let hexkey = text
        .split("\"key\": \"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert_eq!(hexkey.len(), 64);
    assert!(!shown.contains(hexkey));
}

#[test]
fn rotate_without_keys_and_unknown_org_fail() {
    let dir = tempfile::tempdir().unwrap();
    let ring = Keyring::open(dir.path()).unwrap();
    assert_eq!(
        ring.rotate("CD059").unwrap_err().kind(),
        CryptoErrorKind::Keyring
    );
    assert_eq!(
        ring.open_for("CD059").unwrap_err().kind(),
        CryptoErrorKind::Keyring
    );
    // Codes that could escape the folder are refused.
    for bad in ["../x", "a/b", "", "CD 059"] {
        assert_eq!(
            ring.generate(bad).unwrap_err().kind(),
            CryptoErrorKind::Keyring,
            "{bad:?}"
        );
    }
}

#[test]
fn readable_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ring = Keyring::open(dir.path()).unwrap();
    ring.generate("CD059").unwrap();
    let file = ring.dir().join("CD059.keys.json");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = ring.open_for("CD059").unwrap_err();
    assert_eq!(e.kind(), CryptoErrorKind::Keyring);
    assert!(e.to_string().contains("owner-only"), "{e}");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    ring.open_for("CD059").unwrap();
    // A group-readable keyring folder is refused as a whole.
    std::fs::set_permissions(ring.dir(), std::fs::Permissions::from_mode(0o750)).unwrap();
    assert_eq!(
        Keyring::open(dir.path()).unwrap_err().kind(),
        CryptoErrorKind::Keyring
    );
}

#[test]
fn pseudonym_key_is_created_once_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let ring = Keyring::open(dir.path()).unwrap();
    let a = ring.pseudonym_key().unwrap();
    let b = Keyring::open(dir.path()).unwrap().pseudonym_key().unwrap();
    assert_eq!(a.pseudonym("hub-1"), b.pseudonym("hub-1"));
    assert_eq!(mode(&ring.dir().join("pseudonym.key.json")), 0o600);
}

#[test]
fn concurrent_rotations_lose_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let ring = Keyring::open(dir.path()).unwrap();
    ring.generate("CD059").unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let r = Keyring::open(dir.path()).unwrap();
                for _ in 0..5 {
                    r.rotate("CD059").unwrap();
                }
            });
        }
    });
    assert_eq!(ring.open_for("CD059").unwrap().keys().len(), 21);
}

#[test]
fn corrupt_keyring_errors_do_not_quote_key_material() {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = tempfile::tempdir().unwrap();
    let ring = Keyring::open(dir.path()).unwrap();
    let path = ring.dir().join("CD059.keys.json");
    let secret = "deadbeef".repeat(8);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&path)
        .unwrap();
    // `created` holds the secret where a date is expected, and the key is too short.
    write!(f, r#"{{"format":"passerelle.keyring/1","org":"CD059","keys":[{{"id":"k1","created":"{secret}","key":"{secret}"}}]}}"#).unwrap();
    drop(f);
    let e = ring.open_for("CD059").unwrap_err().to_string();
    assert!(!e.contains("deadbeef"), "{e}");
    assert!(e.contains("not a keyring file"), "{e}");
}

#[test]
fn read_only_opening_creates_nothing_and_names_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let err = Keyring::open_existing(dir.path()).unwrap_err();
    assert_eq!(err.kind(), CryptoErrorKind::Keyring);
    assert!(
        err.to_string().contains(&dir.path().display().to_string()),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    // A keyring without the hub's keys: reading them creates neither key nor lock file.
    let ring = Keyring::open(dir.path()).unwrap();
    let ro = Keyring::open_existing(dir.path()).unwrap();
    let err = ro.existing_pseudonym_key().unwrap_err();
    assert!(err.to_string().contains("pseudonym.key.json"), "{err}");
    assert!(ro.existing_anchor_key().unwrap().is_none());
    assert_eq!(std::fs::read_dir(ring.dir()).unwrap().count(), 0);

    // Once created by a writer, both read back the same keys.
    let p = ring.pseudonym_key().unwrap();
    let a = ring.anchor_key().unwrap();
    assert_eq!(ro.existing_pseudonym_key().unwrap(), p);
    assert_eq!(
        ro.existing_anchor_key().unwrap().unwrap().public_hex(),
        a.public_hex()
    );
    assert_eq!(ring.anchor_key().unwrap().public_hex(), a.public_hex());
    assert_eq!(mode(&ring.dir().join("anchor.key.json")), 0o600);
}
