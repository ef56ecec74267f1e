//! The box protocol, one suite run on both backends: a local folder, and a real
//! OpenSSH server on loopback reached over SFTP with key authentication.

// Tests say on stderr why they skip a backend.
#![allow(clippy::print_stderr)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use passerelle_box::Mapping;
use passerelle_box::folder::{BoxFolder, LocalFolder};
use passerelle_box::protocol::{BoxHub, FileOutcome, Received};
use passerelle_box::sftp::SftpConfig;
use passerelle_box::sim::{self, Departement, DropOptions, Fault, SimConfig};
use passerelle_box::state::MemoryState;
use passerelle_connector::ConnectorError;

/// Wraps a folder to log every operation and to fail removals on demand (a crash
/// between the ACK and the clean-up).
#[derive(Debug)]
struct Recording {
    inner: Arc<dyn BoxFolder>,
    log: Mutex<Vec<String>>,
    fail_remove: AtomicBool,
}

impl Recording {
    fn new(inner: Arc<dyn BoxFolder>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            log: Mutex::new(Vec::new()),
            fail_remove: AtomicBool::new(false),
        })
    }
    fn note(&self, s: String) {
        self.log.lock().unwrap().push(s);
    }
    fn take_log(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

impl BoxFolder for Recording {
    fn list(&self, dir: &str) -> Result<Vec<String>, ConnectorError> {
        self.inner.list(dir)
    }
    fn open(&self, path: &str) -> Result<Box<dyn Read + Send>, ConnectorError> {
        self.inner.open(path)
    }
    fn write(&self, path: &str, bytes: &[u8]) -> Result<(), ConnectorError> {
        self.note(format!("write {path}"));
        self.inner.write(path, bytes)
    }
    fn rename(&self, from: &str, to: &str) -> Result<(), ConnectorError> {
        self.note(format!("rename {from} -> {to}"));
        self.inner.rename(from, to)
    }
    fn exists(&self, path: &str) -> Result<bool, ConnectorError> {
        self.inner.exists(path)
    }
    fn remove(&self, path: &str) -> Result<(), ConnectorError> {
        if self.fail_remove.load(Ordering::SeqCst) {
            return Err(ConnectorError::Unavailable {
                peer: "test".into(),
                reason: "simulated crash".into(),
                retry_after: None,
            });
        }
        self.note(format!("remove {path}"));
        self.inner.remove(path)
    }
    fn create_dir_all(&self, path: &str) -> Result<(), ConnectorError> {
        self.inner.create_dir_all(path)
    }
}

fn read(folder: &dyn BoxFolder, path: &str) -> String {
    let mut s = String::new();
    folder.open(path).unwrap().read_to_string(&mut s).unwrap();
    s
}

fn poll(hub: &mut BoxHub<MemoryState>) -> (Vec<FileOutcome>, Vec<Received>) {
    let mut items = Vec::new();
    let outcomes = hub.poll(&mut |_, item| items.push(item)).unwrap();
    (outcomes, items)
}

fn config(partenaire: &str, faults: &[Fault]) -> SimConfig {
    SimConfig {
        partenaire: partenaire.to_owned(),
        seed: 42,
        jeunes: 6,
        faults: faults.to_vec(),
        ..SimConfig::default()
    }
}

/// The whole suite against one backend.
fn suite(backend: Arc<dyn BoxFolder>) {
    a_round_with_every_fault(backend.clone());
    redelivery_under_the_same_name(backend.clone());
    crash_between_ack_and_clean_up(backend.clone());
    hub_writes_in_order(backend.clone());
    missing_checksum_and_cut_files(backend.clone());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(of_signalement_through_the_sink(backend));
}

fn a_round_with_every_fault(backend: Arc<dyn BoxFolder>) {
    let faults = [
        Fault::Checksum,
        Fault::NoSentinel,
        Fault::Duplicate,
        Fault::Malformed,
        Fault::Xlsx,
    ];
    let dept = Departement {
        folder: backend.as_ref(),
        config: config("P1", &faults),
    };
    let dropped = dept.play().unwrap();
    let mut hub = BoxHub::new(
        backend.clone(),
        "P1",
        MemoryState::default(),
        Mapping::default_brsa(),
    );
    let (outcomes, items) = poll(&mut hub);
    assert_eq!(dept.check_acks(&dropped).unwrap(), Vec::<String>::new());

    let pending: Vec<_> = outcomes
        .iter()
        .filter(|o| matches!(o, FileOutcome::Pending { .. }))
        .collect();
    assert_eq!(pending.len(), 1, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .any(|o| matches!(o, FileOutcome::Duplicate { .. }))
    );
    assert!(
        outcomes.iter().any(
            |o| matches!(o, FileOutcome::Refused { reason, .. } if reason.contains("sha-256"))
        )
    );
    // 6 + 2 malformed BRSA rows, 5 OF_SUIVI rows, 6 XLSX rows; nothing from the
    // duplicate, the refused file or the incomplete one.
    let brsa = items
        .iter()
        .filter(|i| matches!(i, Received::Brsa(_)))
        .count();
    let suivi = items
        .iter()
        .filter(|i| matches!(i, Received::OfSuivi(_)))
        .count();
    assert_eq!((brsa, suivi), (14, 5));
    let ok = items
        .iter()
        .filter(|i| matches!(i, Received::Brsa(r) if r.outcome.is_ok()))
        .count();
    assert_eq!(ok, 12);

    // Only the incomplete file is left in depot/.
    let mut left = backend.list("P1/depot").unwrap();
    left.sort();
    let incomplete = match pending[0] {
        FileOutcome::Pending { name } => name.clone(),
        _ => unreachable!(),
    };
    assert_eq!(
        left,
        vec![incomplete.clone(), format!("{incomplete}.sha256")]
    );

    // ACKs carry no personal value.
    let people = sim::population(42, 6);
    for name in backend.list("P1/retour").unwrap() {
        let text = read(backend.as_ref(), &format!("P1/retour/{name}"));
        for p in &people {
            let mut values = vec![
                p.nom.clone(),
                p.nom.to_uppercase(),
                p.prenoms.clone(),
                p.caf.clone(),
            ];
            values.extend(p.nir.clone());
            values.extend(p.email.clone());
            values.extend(p.telephone.clone());
            for v in values {
                assert!(!text.contains(&v), "{name} holds a personal value");
            }
        }
    }

    // A second poll changes nothing: the incomplete file is still pending.
    let before: Vec<_> = backend.list("P1/retour").unwrap();
    let (outcomes, items) = poll(&mut hub);
    assert!(items.is_empty());
    assert_eq!(
        outcomes,
        vec![FileOutcome::Pending {
            name: incomplete.clone()
        }]
    );
    assert_eq!(backend.list("P1/retour").unwrap().len(), before.len());

    // Once the sentinel lands, the file is read.
    backend
        .write(&format!("P1/depot/{incomplete}.ok"), b"")
        .unwrap();
    let (outcomes, items) = poll(&mut hub);
    assert!(
        matches!(&outcomes[..], [FileOutcome::Read { rows: 3, ok: 3, .. }]),
        "{outcomes:?}"
    );
    assert_eq!(items.len(), 3);
}

fn redelivery_under_the_same_name(backend: Arc<dyn BoxFolder>) {
    let (bytes, _, _) = sim::brsa_csv(&sim::population(5, 2), false);
    let name = "BRSA_LISTE_059_CD059_20261122010000.csv";
    sim::drop_file(backend.as_ref(), "P2", name, &bytes, DropOptions::default()).unwrap();
    let mut hub = BoxHub::new(
        backend.clone(),
        "P2",
        MemoryState::default(),
        Mapping::default_brsa(),
    );
    let (o, items) = poll(&mut hub);
    assert!(matches!(&o[..], [FileOutcome::Read { ok: 2, .. }]), "{o:?}");
    assert_eq!(items.len(), 2);
    // The département drops the very same file again (after a purge, say).
    sim::drop_file(backend.as_ref(), "P2", name, &bytes, DropOptions::default()).unwrap();
    let (o, items) = poll(&mut hub);
    assert!(matches!(&o[..], [FileOutcome::Duplicate { .. }]), "{o:?}");
    assert!(items.is_empty());
    // It gets its own ACK; the first one, line by line, stays as it was.
    let first = read(
        backend.as_ref(),
        "P2/retour/ACK_BRSA_LISTE_059_CD059_20261122010000.csv",
    );
    assert!(
        first.contains("\n2;OK;;") && first.contains("\n3;OK;;"),
        "{first}"
    );
    assert!(!first.contains("DOUBLON"), "{first}");
    let ack = read(
        backend.as_ref(),
        "P2/retour/ACK_BRSA_LISTE_059_CD059_20261122010000_2.csv",
    );
    assert!(ack.contains("0;OK;DOUBLON;"), "{ack}");
    // A corrected file under the same name is new content: it is read.
    let (bytes2, _, _) = sim::brsa_csv(&sim::population(6, 1), false);
    sim::drop_file(
        backend.as_ref(),
        "P2",
        name,
        &bytes2,
        DropOptions::default(),
    )
    .unwrap();
    let (o, items) = poll(&mut hub);
    assert!(matches!(&o[..], [FileOutcome::Read { ok: 1, .. }]), "{o:?}");
    assert_eq!(items.len(), 1);
    let third = read(
        backend.as_ref(),
        "P2/retour/ACK_BRSA_LISTE_059_CD059_20261122010000_3.csv",
    );
    assert!(
        third.contains("\n2;OK;;") && !third.contains("\n3;"),
        "{third}"
    );
    assert_eq!(
        read(
            backend.as_ref(),
            "P2/retour/ACK_BRSA_LISTE_059_CD059_20261122010000.csv"
        ),
        first
    );
}

fn crash_between_ack_and_clean_up(backend: Arc<dyn BoxFolder>) {
    let rec = Recording::new(backend.clone());
    let (bytes, _, _) = sim::brsa_csv(&sim::population(8, 2), false);
    let name = "BRSA_LISTE_059_CD059_20261122020000.csv";
    sim::drop_file(backend.as_ref(), "P3", name, &bytes, DropOptions::default()).unwrap();
    let mut hub = BoxHub::new(
        rec.clone(),
        "P3",
        MemoryState::default(),
        Mapping::default_brsa(),
    );
    // Writing the ACK starts by removing an old sentinel: failing there is a crash
    // before anything was acknowledged.
    let ack_path = "P3/retour/ACK_BRSA_LISTE_059_CD059_20261122020000.csv";
    rec.fail_remove.store(true, Ordering::SeqCst);
    let mut items = Vec::new();
    let err = hub.poll(&mut |_, i| items.push(i));
    assert!(
        err.is_err(),
        "the first ACK write removes a sentinel and fails"
    );
    // Nothing was acknowledged: the hub retries from scratch once removals work.
    rec.fail_remove.store(false, Ordering::SeqCst);
    assert!(!backend.exists(ack_path).unwrap());
    let (o, _) = poll(&mut hub);
    assert!(matches!(&o[..], [FileOutcome::Read { ok: 2, .. }]), "{o:?}");
    let ack = read(backend.as_ref(), ack_path);

    // Now a crash after the ACK: the data file comes back (clean-up undone).
    sim::drop_file(backend.as_ref(), "P3", name, &bytes, DropOptions::default()).unwrap();
    let mut state = MemoryState::default();
    use passerelle_box::state::{BoxState, SeenFile, Stage};
    state
        .record(SeenFile {
            name: name.to_owned(),
            sha256: passerelle_box::protocol::sha256_hex(&bytes),
            stage: Stage::Acked,
            seen_at: 0,
        })
        .unwrap();
    let mut hub = BoxHub::new(backend.clone(), "P3", state, Mapping::default_brsa());
    let (o, items) = poll(&mut hub);
    assert_eq!(
        o,
        vec![FileOutcome::Finished {
            name: name.to_owned()
        }]
    );
    assert!(items.is_empty());
    assert_eq!(
        read(backend.as_ref(), ack_path),
        ack,
        "the ACK is not rewritten"
    );
    assert!(backend.list("P3/depot").unwrap().is_empty());
}

fn hub_writes_in_order(backend: Arc<dyn BoxFolder>) {
    let rec = Recording::new(backend.clone());
    let (bytes, _, _) = sim::brsa_csv(&sim::population(9, 1), false);
    let name = "BRSA_LISTE_059_CD059_20261122030000.csv";
    sim::drop_file(backend.as_ref(), "P4", name, &bytes, DropOptions::default()).unwrap();
    let mut hub = BoxHub::new(
        rec.clone(),
        "P4",
        MemoryState::default(),
        Mapping::default_brsa(),
    );
    poll(&mut hub);
    let log = rec.take_log();
    let ack = "P4/retour/ACK_BRSA_LISTE_059_CD059_20261122030000.csv";
    let depot = format!("P4/depot/{name}");
    assert_eq!(
        log,
        vec![
            format!("remove {ack}.ok"),
            format!("write P4/retour/.ACK_BRSA_LISTE_059_CD059_20261122030000.csv.tmp"),
            format!("rename P4/retour/.ACK_BRSA_LISTE_059_CD059_20261122030000.csv.tmp -> {ack}"),
            format!("write {ack}.sha256"),
            format!("write {ack}.ok"),
            format!("remove {depot}.ok"),
            format!("remove {depot}.sha256"),
            format!("remove {depot}"),
        ]
    );
    // The checksum the hub wrote is right.
    let sum = read(backend.as_ref(), &format!("{ack}.sha256"));
    let data = read(backend.as_ref(), ack);
    assert_eq!(
        passerelle_box::protocol::parse_sha256_file(&sum).unwrap(),
        passerelle_box::protocol::sha256_hex(data.as_bytes())
    );
    assert!(sum.ends_with("  ACK_BRSA_LISTE_059_CD059_20261122030000.csv\n"));
}

fn missing_checksum_and_cut_files(backend: Arc<dyn BoxFolder>) {
    backend.create_dir_all("P5/depot").unwrap();
    backend.create_dir_all("P5/retour").unwrap();
    let name = "BRSA_LISTE_059_CD059_20261122040000.csv";
    backend
        .write(
            &format!("P5/depot/{name}"),
            b"N\xB0 CAF;Nom\r\n1234567;X\r\n",
        )
        .unwrap();
    backend.write(&format!("P5/depot/{name}.ok"), b"").unwrap();
    let mut hub = BoxHub::new(
        backend.clone(),
        "P5",
        MemoryState::default(),
        Mapping::default_brsa(),
    );
    let (o, items) = poll(&mut hub);
    assert!(
        matches!(&o[..], [FileOutcome::Refused { reason, .. }] if reason.contains(".sha256")),
        "{o:?}"
    );
    assert!(items.is_empty());

    // A quote opened and never closed: refused, and not even the first row is handed out.
    let cut = "N° CAF;Nom\r\n1234567;Premier\r\n7654321;\"Coupé\r\n";
    let name = "BRSA_LISTE_059_CD059_20261122050000.csv";
    sim::drop_file(
        backend.as_ref(),
        "P5",
        name,
        cut.as_bytes(),
        DropOptions::default(),
    )
    .unwrap();
    let (o, items) = poll(&mut hub);
    assert!(matches!(&o[..], [FileOutcome::Refused { .. }]), "{o:?}");
    assert!(items.is_empty());
    let ack = read(
        backend.as_ref(),
        "P5/retour/ACK_BRSA_LISTE_059_CD059_20261122050000.csv",
    );
    assert!(ack.contains("0;KO;FICHIER_REFUSE;"), "{ack}");
    assert!(!ack.contains("Coupé") && !ack.contains("7654321"));

    // A header the mapping does not know: refused, naming the column by number (a
    // file without a header would otherwise have a data cell quoted).
    let name = "BRSA_LISTE_059_CD059_20261122060000.csv";
    sim::drop_file(
        backend.as_ref(),
        "P5",
        name,
        b"N\xB0 CAF;Couleur\r\n1;bleu\r\n",
        DropOptions::default(),
    )
    .unwrap();
    let (o, _) = poll(&mut hub);
    assert!(
        matches!(&o[..], [FileOutcome::Refused { reason, .. }] if reason.contains("column 2 of the header")),
        "{o:?}"
    );
}

#[test]
fn protocol_over_a_local_folder() {
    let dir = tempfile::tempdir().unwrap();
    suite(Arc::new(LocalFolder::new(dir.path())));
}

use passerelle_testkit::sshd::Sshd;

fn start_sshd() -> Option<Sshd> {
    Sshd::start()
}

fn sftp_folder(sshd: &Sshd, root: &Path) -> SftpConfig {
    SftpConfig {
        url: sshd.url(root),
        identity_file: sshd.identity_file(),
        known_hosts_file: sshd.known_hosts_file(),
        program: PathBuf::from("sftp"),
        connect_timeout_secs: 10,
        multiplex: true,
        operation_timeout_secs: 60,
    }
}

#[test]
fn protocol_over_sftp() {
    let Some(sshd) = start_sshd() else { return };
    let root = tempfile::tempdir().unwrap();
    let folder = sftp_folder(&sshd, root.path()).build().unwrap();
    suite(Arc::new(folder));
}

#[test]
fn sftp_refuses_an_unknown_host_key_and_a_wrong_user_key() {
    let Some(sshd) = start_sshd() else { return };
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("P/depot")).unwrap();
    let mut cfg = sftp_folder(&sshd, root.path());
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("known_hosts"), "").unwrap();
    cfg.known_hosts_file = other.path().join("known_hosts");
    let err = cfg.build().unwrap().list("P/depot").unwrap_err();
    assert_eq!(
        err.kind(),
        passerelle_connector::ErrorKind::Unauthorized,
        "{err}"
    );

    let mut cfg = sftp_folder(&sshd, root.path());
    passerelle_testkit::sshd::keygen(&other.path().join("stranger"));
    cfg.identity_file = other.path().join("stranger");
    let err = cfg.build().unwrap().list("P/depot").unwrap_err();
    assert_eq!(
        err.kind(),
        passerelle_connector::ErrorKind::Unauthorized,
        "{err}"
    );

    // A missing file is NotFound, like on a local folder.
    let cfg = sftp_folder(&sshd, root.path());
    let err = cfg.build().unwrap().open("P/depot/nope.csv").err().unwrap();
    assert_eq!(
        err.kind(),
        passerelle_connector::ErrorKind::NotFound,
        "{err}"
    );
}

#[test]
fn jeunes_of_round_trip_with_the_departement() {
    use passerelle_box::of::Signalement;
    use passerelle_model::{Date, Jeune, ObligationFormation, ObligationFormationStatut};
    let dir = tempfile::tempdir().unwrap();
    let backend: Arc<dyn BoxFolder> = Arc::new(LocalFolder::new(dir.path()));
    let rec = Recording::new(backend.clone());
    let hub = BoxHub::new(
        rec.clone(),
        "59350S00",
        MemoryState::default(),
        Mapping::default_brsa(),
    );
    let mut j = Jeune::default();
    j.etat_civil.nom_usage = Some("Benali".into());
    j.etat_civil.prenoms = vec!["Karim".into()];
    j.obligation_formation = Some(ObligationFormation {
        statut: Some(ObligationFormationStatut::Signale),
        date_signalement: Some(Date::parse("2026-11-20").unwrap()),
        motif: None,
        suite: None,
    });
    let at = chrono::NaiveDate::from_ymd_opt(2026, 11, 21)
        .unwrap()
        .and_hms_opt(23, 0, 0)
        .unwrap();
    let items = [
        Signalement {
            reference: "OF-0001",
            structure: "59350S00",
            record: &j,
        },
        Signalement {
            reference: "OF-0002",
            structure: "59350S00",
            record: &j,
        },
    ];
    let name = hub.send_jeunes_of("059", "59350S00", at, &items).unwrap();
    assert_eq!(name, "JEUNES_OF_059_59350S00_20261121230000.csv");
    let log = rec.take_log();
    assert!(
        log[1].starts_with("write 59350S00/retour/.JEUNES_OF_") && log[2].starts_with("rename"),
        "{log:?}"
    );
    assert!(log[4].ends_with(".csv.ok"));

    let dept = Departement {
        folder: backend.as_ref(),
        config: config("59350S00", &[]),
    };
    let (refs, problems) = dept.answer_jeunes_of().unwrap();
    assert_eq!(refs, ["OF-0001", "OF-0002"]);
    assert!(problems.is_empty(), "{problems:?}");
    // The département's OF_SUIVI comes back through depot/ as updates.
    let mut hub = BoxHub::new(
        backend.clone(),
        "59350S00",
        MemoryState::default(),
        Mapping::default_brsa(),
    );
    let (_, items) = poll(&mut hub);
    let updates: Vec<_> = items
        .into_iter()
        .filter_map(|i| match i {
            Received::OfSuivi(Ok(u)) => Some(u.reference),
            _ => None,
        })
        .collect();
    assert_eq!(updates, ["OF-0001", "OF-0002"]);
}

#[tokio::test]
async fn the_source_acknowledges_a_file_only_after_every_row() {
    use passerelle_box::source::BoxSource;
    use passerelle_connector::Source;
    let dir = tempfile::tempdir().unwrap();
    let backend: Arc<dyn BoxFolder> = Arc::new(LocalFolder::new(dir.path()));
    let dept = Departement {
        folder: backend.as_ref(),
        config: config("59350S00", &[Fault::Malformed, Fault::Checksum]),
    };
    let dropped = dept.play().unwrap();
    let hub = || {
        BoxHub::new(
            backend.clone(),
            "59350S00",
            MemoryState::default(),
            Mapping::default_brsa(),
        )
    };

    let mut source = BoxSource::new(hub());
    let first = source.next_batch().await.unwrap();
    assert_eq!(
        first.len(),
        8,
        "6 people and 2 malformed rows of the BRSA list"
    );
    assert!(first[0].ack.0.starts_with("BRSA_LISTE_059_CD059_"));
    let second = source.next_batch().await.unwrap();
    assert_eq!(second.len(), 5, "the OF_SUIVI rows");
    assert!(
        second
            .iter()
            .all(|i| i.outcome.as_ref().unwrap().obligation_formation.is_some())
    );
    assert!(
        source.next_batch().await.unwrap().is_empty(),
        "the bad checksum file is refused, not served"
    );
    let acks = dept.check_acks(&dropped).unwrap();
    assert_eq!(
        acks.len(),
        2,
        "no ACK yet for the two files served: {acks:?}"
    );

    // A restart before the engine acknowledged: the same rows come again.
    let mut restarted = BoxSource::new(hub());
    let again = restarted.next_batch().await.unwrap();
    assert_eq!(
        again.iter().map(|i| i.ack.clone()).collect::<Vec<_>>(),
        first.iter().map(|i| i.ack.clone()).collect::<Vec<_>>()
    );

    // Acknowledging all but one row writes nothing; the last one writes the ACK.
    let tokens: Vec<_> = again.iter().map(|i| i.ack.clone()).collect();
    restarted.ack(&tokens[..7]).await.unwrap();
    assert_eq!(dept.check_acks(&dropped).unwrap().len(), 2);
    restarted.ack(&tokens[7..]).await.unwrap();
    assert_eq!(restarted.in_flight(), 0);
    let problems = dept.check_acks(&dropped).unwrap();
    assert_eq!(problems.len(), 1, "only OF_SUIVI is left: {problems:?}");
    let suivi = restarted.next_batch().await.unwrap();
    let tokens: Vec<_> = suivi.iter().map(|i| i.ack.clone()).collect();
    restarted.ack(&tokens).await.unwrap();
    assert!(dept.check_acks(&dropped).unwrap().is_empty());
}

#[tokio::test]
async fn the_ack_says_what_the_hub_did_with_each_row_it_read() {
    use passerelle_box::source::BoxSource;
    use passerelle_connector::{ItemOutcome, Settled, Source};
    let dir = tempfile::tempdir().unwrap();
    let backend: Arc<dyn BoxFolder> = Arc::new(LocalFolder::new(dir.path()));
    let dept = Departement {
        folder: backend.as_ref(),
        config: config("59350S00", &[Fault::Malformed]),
    };
    dept.play().unwrap();
    let mut source = BoxSource::new(BoxHub::new(
        backend.clone(),
        "59350S00",
        MemoryState::default(),
        Mapping::default_brsa(),
    ));
    let rows = source.next_batch().await.unwrap();
    let name = rows[0].ack.0.rsplit_once(':').unwrap().0.to_owned();
    let read_ok: Vec<_> = rows.iter().filter(|i| i.outcome.is_ok()).collect();
    let refused: Vec<_> = rows.iter().filter(|i| i.outcome.is_err()).collect();
    assert!(read_ok.len() >= 3 && !refused.is_empty());
    let line = |t: &passerelle_connector::AckToken| t.0.rsplit_once(':').unwrap().1.to_owned();
    let mut settled: Vec<Settled> = refused
        .iter()
        .map(|i| Settled {
            ack: i.ack.clone(),
            outcome: ItemOutcome::Refused,
        })
        .collect();
    let fates = [
        ItemOutcome::Sent,
        ItemOutcome::NotSent {
            code: "NO_ROUTE".into(),
            reason: "brsa-orientation: no Mission Locale serves the postcode".into(),
        },
        ItemOutcome::NotSent {
            code: "IDENTITY_REVIEW".into(),
            reason: "uncertain identity, kept for review".into(),
        },
    ];
    for (i, fate) in read_ok.iter().zip(fates.iter().cycle()) {
        settled.push(Settled {
            ack: i.ack.clone(),
            outcome: fate.clone(),
        });
    }
    // Acknowledged in two parts, as the night does batch by batch.
    let (a, b) = settled.split_at(2);
    source.ack_settled(a).await.unwrap();
    assert_eq!(source.in_flight(), 1, "no ACK before the last row");
    source.ack_settled(b).await.unwrap();
    assert_eq!(source.in_flight(), 0);
    let ack = read(
        backend.as_ref(),
        &format!(
            "59350S00/retour/{}",
            passerelle_box::protocol::ack_name(&name)
        ),
    );
    let by_line: std::collections::BTreeMap<String, Vec<String>> = ack
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<String> = l.trim_end().split(';').map(str::to_owned).collect();
            (f[0].clone(), f)
        })
        .collect();
    assert_eq!(by_line.len(), rows.len(), "{ack}");
    for (i, fate) in read_ok.iter().zip(fates.iter().cycle()) {
        let f = &by_line[&line(&i.ack)];
        match fate {
            ItemOutcome::Sent => assert_eq!(f[1], "OK", "{ack}"),
            ItemOutcome::NotSent { reason, code } => {
                assert_eq!(f[1], "KO", "{ack}");
                let want = if code == "NO_ROUTE" {
                    "SANS_DESTINATAIRE"
                } else {
                    "IDENTITE_A_VERIFIER"
                };
                assert_eq!((f[2].as_str(), f[3].as_str()), (want, reason.as_str()));
            }
            _ => unreachable!(),
        }
    }
    for i in &refused {
        let f = &by_line[&line(&i.ack)];
        assert_eq!(f[1], "KO", "{ack}");
        assert!(
            f[2] == "NOMBRE_COLONNES" || f[2] == "CHAMP_INVALIDE",
            "the reader's own code stays: {ack}"
        );
    }
}

fn signalement(tid: &str, sender: &str, dossier: Option<&str>) -> passerelle_connector::Delivery {
    use passerelle_model::{
        Date, ImiloDossier, Jeune, ObligationFormation, ObligationFormationStatut,
    };
    let mut j = Jeune::default();
    j.etat_civil.nom_usage = Some("Benali".into());
    j.etat_civil.prenoms = vec!["Karim".into()];
    j.identifiants.imilo_dossier = dossier.map(|d| ImiloDossier::parse(d).unwrap());
    j.obligation_formation = Some(ObligationFormation {
        statut: Some(ObligationFormationStatut::Signale),
        date_signalement: Some(Date::parse("2026-11-20").unwrap()),
        motif: None,
        suite: None,
    });
    passerelle_connector::Delivery {
        transfer_id: tid.to_owned(),
        flow: "of-signalement".to_owned(),
        sender: sender.to_owned(),
        recipient: "CD059".to_owned(),
        record: j,
    }
}

fn at_2300() -> chrono::NaiveDateTime {
    chrono::NaiveDate::from_ymd_opt(2026, 11, 21)
        .unwrap()
        .and_hms_opt(23, 0, 0)
        .unwrap()
}

fn jeunes_of_files(folder: &dyn BoxFolder, partenaire: &str) -> Vec<String> {
    let mut v: Vec<String> = folder
        .list(&format!("{partenaire}/retour"))
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.starts_with("JEUNES_OF_") && n.ends_with(".csv"))
        .collect();
    v.sort();
    v
}

/// `BoxOfSink`: one file per batch and ML, receipts in order, refusals by rule, the
/// same batch again writes nothing, a failed write is written again, a second batch in
/// the same second gets its own name, and the CD's `OF_SUIVI` answer comes back as
/// records naming the I-MILO dossier.
async fn of_signalement_through_the_sink(backend: Arc<dyn BoxFolder>) {
    use passerelle_box::SentLedger;
    use passerelle_box::sink::BoxOfSink;
    use passerelle_box::source::BoxSource;
    use passerelle_connector::{ReceiptStatus, Sink, Source};

    let rec = Recording::new(backend.clone());
    let sink = BoxOfSink::new(SentLedger::memory())
        .with_box("CD059", rec.clone())
        .unwrap()
        .with_clock(at_2300);
    let mut no_of = signalement("t-none", "59350S00", None);
    no_of.record.obligation_formation = None;
    let mut other_cd = signalement("t-62", "59350S00", None);
    other_cd.recipient = "CD062".into();
    let mut other_flow = signalement("t-flow", "59350S00", None);
    other_flow.flow = "brsa-suivi".into();
    let batch = || {
        vec![
            signalement("t-1", "59350S00", Some("6282")),
            no_of.clone(),
            signalement("t-2", "59350S00", None),
            signalement("t-3", "59001S00", Some("17")),
            other_cd.clone(),
            other_flow.clone(),
            signalement("t-4", "59350S00", Some("9001")),
        ]
    };
    let receipts = sink.deliver_batch(batch()).await;
    assert_eq!(receipts.len(), 7);
    for i in [0, 2, 3, 6] {
        let r = receipts[i].as_ref().unwrap();
        assert_eq!(r.status, ReceiptStatus::Delivered, "{i}");
    }
    assert_eq!(receipts[0].as_ref().unwrap().transfer_id, "t-1");
    assert_eq!(receipts[6].as_ref().unwrap().transfer_id, "t-4");
    let ReceiptStatus::Rejected { reasons } = &receipts[1].as_ref().unwrap().status else {
        panic!("{:?}", receipts[1])
    };
    assert!(reasons[0].contains("obligation_formation"), "{reasons:?}");
    assert!(!reasons[0].contains("Benali") && !reasons[0].contains("Karim"));
    assert!(
        receipts[4]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("CD062")
    );
    assert!(receipts[5].is_err());

    let lille = jeunes_of_files(backend.as_ref(), "59350S00");
    assert_eq!(lille, ["JEUNES_OF_059_59350S00_20261121230000.csv"]);
    let path = format!("59350S00/retour/{}", lille[0]);
    assert!(backend.exists(&format!("{path}.ok")).unwrap());
    assert!(backend.exists(&format!("{path}.sha256")).unwrap());
    let text = read(backend.as_ref(), &path);
    assert_eq!(text.lines().count(), 4, "header and three rows: {text}");
    assert!(text.contains("t-1#6282;Benali;Karim;"));
    assert!(text.contains("\r\nt-2;Benali;"));
    assert_eq!(
        jeunes_of_files(backend.as_ref(), "59001S00"),
        ["JEUNES_OF_059_59001S00_20261121230000.csv"]
    );

    // The same batch again (the engine's retry after a lost acknowledgement).
    rec.take_log();
    let again = sink.deliver_batch(batch()).await;
    for i in [0, 2, 3, 6] {
        assert_eq!(again[i].as_ref().unwrap().status, ReceiptStatus::Delivered);
    }
    assert!(
        rec.take_log().is_empty(),
        "nothing written for transfers already in a complete file"
    );

    // A write that fails halfway is an error for the engine, then written again.
    rec.fail_remove.store(true, Ordering::SeqCst);
    let failed = sink
        .deliver_batch(vec![signalement("t-5", "59350S00", Some("5"))])
        .await;
    assert!(failed[0].as_ref().unwrap_err().is_retryable());
    rec.fail_remove.store(false, Ordering::SeqCst);
    let retried = sink
        .deliver_batch(vec![signalement("t-5", "59350S00", Some("5"))])
        .await;
    assert_eq!(
        retried[0].as_ref().unwrap().status,
        ReceiptStatus::Delivered
    );
    // Same second, same ML: a new name, the CD's first file untouched.
    assert_eq!(
        jeunes_of_files(backend.as_ref(), "59350S00"),
        [
            "JEUNES_OF_059_59350S00_20261121230000.csv",
            "JEUNES_OF_059_59350S00_20261121230001.csv"
        ]
    );
    assert_eq!(read(backend.as_ref(), &path), text);

    // The CD answers; its OF_SUIVI comes back as records for the ML's dossier.
    let dept = Departement {
        folder: backend.as_ref(),
        config: config("59350S00", &[]),
    };
    let (refs, problems) = dept.answer_jeunes_of().unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(refs, ["t-1#6282", "t-2", "t-4#9001", "t-5#5"]);
    let mut source = BoxSource::new(BoxHub::new(
        backend.clone(),
        "59350S00",
        MemoryState::default(),
        Mapping::default_brsa(),
    ));
    assert_eq!(source.partenaire().unwrap(), "59350S00");
    let items = source.next_batch().await.unwrap();
    let got: Vec<(String, Option<String>)> = items
        .iter()
        .map(|i| {
            let j = i.outcome.as_ref().unwrap();
            assert!(j.obligation_formation.as_ref().unwrap().statut.is_some());
            (
                j.sources[0].record_id.as_str().to_owned(),
                j.identifiants
                    .imilo_dossier
                    .as_ref()
                    .map(|d| d.as_str().to_owned()),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("t-1#6282".to_owned(), Some("6282".to_owned())),
            ("t-2".to_owned(), None),
            ("t-4#9001".to_owned(), Some("9001".to_owned())),
            ("t-5#5".to_owned(), Some("5".to_owned())),
        ]
    );
    let tokens: Vec<_> = items.iter().map(|i| i.ack.clone()).collect();
    source.ack(&tokens).await.unwrap();
    // Clean up for the next scenario on this backend.
    for p in ["59350S00", "59001S00"] {
        for n in backend.list(&format!("{p}/retour")).unwrap_or_default() {
            backend.remove(&format!("{p}/retour/{n}")).unwrap();
        }
    }
}

/// The ledger survives a restart: a new sink over the same state writes nothing for
/// transfers an earlier process already wrote.
#[tokio::test]
async fn the_sink_remembers_across_a_restart() {
    use passerelle_box::sink::BoxOfSink;
    use passerelle_box::{BoxConfig, SentLedger};
    use passerelle_connector::{ReceiptStatus, Sink};
    let dir = tempfile::tempdir().unwrap();
    let cfg = BoxConfig {
        url: format!("file://{}/box", dir.path().display()),
        partenaire: "59350S00".into(),
        state_dir: dir.path().join("state"),
        mapping: None,
        sftp: None,
        reading: Default::default(),
    };
    std::fs::create_dir_all(dir.path().join("box")).unwrap();
    let sink = || {
        BoxOfSink::new(cfg.sent_ledger("CD059").unwrap())
            .with_box("CD059", cfg.folder().unwrap())
            .unwrap()
            .with_clock(at_2300)
    };
    let first = sink()
        .deliver_batch(vec![signalement("r-1", "59350S00", Some("1"))])
        .await;
    assert_eq!(first[0].as_ref().unwrap().status, ReceiptStatus::Delivered);
    let folder = cfg.folder().unwrap();
    assert_eq!(jeunes_of_files(folder.as_ref(), "59350S00").len(), 1);
    let again = sink()
        .deliver(signalement("r-1", "59350S00", Some("1")))
        .await
        .unwrap();
    assert_eq!(again.status, ReceiptStatus::Delivered);
    assert_eq!(jeunes_of_files(folder.as_ref(), "59350S00").len(), 1);
    assert_eq!(
        SentLedger::open(&dir.path().join("state"), "CD059")
            .unwrap()
            .len()
            .unwrap(),
        1
    );
    assert!(
        BoxOfSink::new(SentLedger::memory())
            .with_box("Lille", folder)
            .is_err()
    );
}
