//! `passerelle sync` as cron and an operator run it: two nights started together on
//! one data folder run one after the other (or the second gives up, exit 4), with the
//! clean night's result: no SOLIS element written twice, nothing dead-lettered.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use passerelle_world::{World, WorldOptions};

fn sync(config: &Path, data: &Path, extra: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_passerelle"))
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .arg("sync")
        .args(["--format", "json"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn summary(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not a JSON summary ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn total(v: &serde_json::Value, path: &[&str]) -> u64 {
    v["flows"]
        .as_object()
        .unwrap()
        .values()
        .map(|f| {
            let mut x = f;
            for p in path {
                x = &x[*p];
            }
            x.as_u64().unwrap_or(0)
        })
        .sum()
}

/// Every `referenceExterne` of the SOLIS imports under `dir` (waiting or processed).
fn references(dir: &Path) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    let mut stack: Vec<PathBuf> = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("SOLIS_IMPORT_")
            {
                let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
                for part in text.split("referenceExterne=\"").skip(1) {
                    let id = part.split('"').next().unwrap().to_owned();
                    *out.entry(id).or_default() += 1;
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nights_at_once_run_one_after_the_other() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let mut world = World::start(dir.path(), &WorldOptions::new(300, 11))
        .await
        .unwrap();
    let config = dir.path().join("passerelle.toml");
    std::fs::write(&config, world.config_toml()).unwrap();
    let data = dir.path().join("hub");

    // Cron and an operator at once: whichever comes second waits for the other.
    let first = sync(&config, &data, &["--wait", "300"]);
    let second = sync(&config, &data, &["--wait", "300"]);
    // A third that does not wait is told a night is running.
    std::thread::sleep(std::time::Duration::from_millis(700));
    let third = sync(&config, &data, &[]).wait_with_output().unwrap();
    let first = first.wait_with_output().unwrap();
    let second = second.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&third.stderr);
    assert_eq!(third.status.code(), Some(4), "{err}");
    assert!(err.contains("a night is already running"), "{err}");
    assert!(err.contains("passerelle sync since"), "{err}");

    // Whichever got the lock first ran the night; the other found nothing new.
    let (a, b) = (summary(&first), summary(&second));
    let (night, after) = if total(&a, &["sent", "sent"]) >= total(&b, &["sent", "sent"]) {
        ((a, &first), (b, &second))
    } else {
        ((b, &second), (a, &first))
    };
    assert_eq!(
        night.1.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&night.1.stderr)
    );
    assert_eq!(
        after.1.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&after.1.stderr)
    );
    assert!(total(&night.0, &["sent", "sent"]) > 100, "{}", night.0);
    // The night after sends nothing again; only the follow-ups of the dossiers the
    // first night opened in I-MILO are new (what a night writes, the next one reads).
    for (flow, f) in after.0["flows"].as_object().unwrap() {
        if flow != "brsa-suivi" {
            assert_eq!(f["sent"]["sent"], 0, "{flow}: {}", after.0);
        }
    }
    assert_eq!(
        night.0["flows"]["brsa-suivi"]["sent"]["sent"], 0,
        "{}",
        night.0
    );
    for v in [&night.0, &after.0] {
        assert_eq!(total(v, &["delivered", "dead_lettered"]), 0, "{v}");
    }
    // No SOLIS element written twice.
    let refs = references(&dir.path().join("peers/solis/imports"));
    assert!(!refs.is_empty());
    let twice: Vec<_> = refs.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "written twice: {twice:?}");
    // The CD's receipts, as CSV, the sender code in any case.
    let out = Command::new(env!("CARGO_BIN_EXE_passerelle"))
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .args(["receipts", "--sender", "cd059", "--format", "csv"])
        .output()
        .unwrap();
    let csv = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        csv.starts_with("date,flow,recipient,recipient_name,sender_ref,status,reason,transfer\n"),
        "{csv}"
    );
    assert!(csv.lines().count() > 100, "{csv}");
    world.stop().await;
}

fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One night with `peer` unreachable: the other flows move, the summary is printed,
/// the exit status says partial and names the peer, within the peer's deadline.
async fn night_with_peer_down(peer: &str) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let mut world = World::start(dir.path(), &WorldOptions::new(200, 13))
        .await
        .unwrap();
    let (imilo, faj) = (world.imilo_addr.to_string(), world.faj_addr.to_string());
    let down = format!("127.0.0.1:{}", closed_port());
    let solis = dir.path().join("peers/solis").display().to_string();
    let toml = match peer {
        "imilo" => world.config_toml().replace(&imilo, &down),
        "faj" => world.config_toml().replace(&faj, &down),
        // Its share not mounted: the folders are not there.
        "solis" => world
            .config_toml()
            .replace(&solis, &format!("{solis}-not-mounted")),
        "box" => {
            let b = dir.path().join("peers/box").display().to_string();
            world.config_toml().replace(
                &format!("file://{b}\""),
                &format!("file://{b}-not-mounted\""),
            )
        }
        other => panic!("{other}"),
    };
    let config = dir.path().join("passerelle.toml");
    std::fs::write(&config, toml).unwrap();
    let data = dir.path().join("hub");
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_passerelle"))
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .arg("sync")
        .env("PASSERELLE_PEER_DEADLINE_S", "60")
        .env("PASSERELLE_PROGRESS_S", "1")
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let took = started.elapsed();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(took.as_secs() < 120, "took {took:?}");
    // The summary is printed, with the failing peer named.
    assert!(stdout.contains("brsa-orientation"), "{stdout}");
    assert!(stdout.contains("failed: "), "{stdout}");
    assert!(stderr.contains("partial night"), "{stderr}");
    // Off a terminal: plain log lines, no colour codes; progress lines while it ran.
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
    if took.as_secs() >= 2 {
        assert!(stderr.contains("night running for "), "{stderr}");
    }
    let named = match peer {
        "imilo" => "imilo",
        "solis" => "solis:CD059",
        "box" => "box:CD059",
        _ => "FAJ059",
    };
    assert!(stdout.contains(named), "{stdout}");
    // The other peers got their flows: the box's reports, SOLIS's imports (I-MILO
    // down) or the MLs' orientations (FAJ down).
    let line = |flow: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(flow))
            .unwrap_or_else(|| panic!("no {flow} line: {stdout}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let orientation = line("brsa-orientation");
    // flow read refused unrouted sent: the CD sources were read and sent.
    assert!(orientation[4].parse::<u64>().unwrap() > 0, "{stdout}");
    if peer == "solis" || peer == "box" {
        // Nothing for the CD was dead-lettered: its queue waits for the share.
        let dead: u64 = stdout
            .lines()
            .filter(|l| l.starts_with("brsa-suivi") || l.starts_with("of-signalement"))
            .map(|l| l.split_whitespace().nth(9).unwrap().parse::<u64>().unwrap())
            .sum();
        assert_eq!(dead, 0, "{stdout}");
    }
    if peer == "faj" {
        // Delivered to I-MILO (applied) although the FAJ platform was down.
        assert!(orientation[6].parse::<u64>().unwrap() > 0, "{stdout}");
    }
    // The next night, with the peer back, completes what waited.
    std::fs::write(&config, world.config_toml()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_passerelle"))
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .arg("sync")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imilo_down_fails_its_own_flows_only() {
    night_with_peer_down("imilo").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faj_down_fails_its_own_flows_only() {
    night_with_peer_down("faj").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn solis_folders_missing_fail_their_own_flows_only() {
    night_with_peer_down("solis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_box_not_mounted_fails_its_own_flows_only() {
    night_with_peer_down("box").await;
}

#[test]
fn typos_are_refused_with_the_valid_values() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("passerelle.toml");
    std::fs::write(&config, "").unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_passerelle"))
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join("hub"))
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["sync", "--flow", "nope"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("unknown flow `nope`; valid: "), "{err}");
    assert!(err.contains("brsa-orientation"), "{err}");
    assert!(out.stdout.is_empty());
    // An empty night on the data folder, then receipts with typos.
    let out = run(&["sync", "--flow", "BRSA-ORIENTATION"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["receipts", "--sender", "CD059", "--status", "bogus"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("organisation `CD059`"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_check_reaches_every_peer_and_names_what_to_fix() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let mut world = World::start(dir.path(), &WorldOptions::new(20, 17))
        .await
        .unwrap();
    let config = dir.path().join("passerelle.toml");
    let check = |toml: &str| {
        std::fs::write(&config, toml).unwrap();
        Command::new(env!("CARGO_BIN_EXE_passerelle"))
            .arg("--config")
            .arg(&config)
            .args(["config", "check"])
            .output()
            .unwrap()
    };
    let out = check(&world.config_toml());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}");
    for peer in [
        "I-MILO",
        "FAJ FAJ059",
        "departement 059 solis",
        "departement 059 cnaf",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(peer) && l.ends_with(": OK")),
            "{peer}: {text}"
        );
    }
    // The FAJ platform down, the CNAF folder gone: each named, the rest OK.
    let down = format!("127.0.0.1:{}", closed_port());
    let cnaf = dir.path().join("peers/cnaf");
    let gone = dir.path().join("peers/cnaf-gone");
    let toml = world
        .config_toml()
        .replace(&world.faj_addr.to_string(), &down)
        .replace(&cnaf.display().to_string(), &gone.display().to_string());
    let out = check(&toml);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("faj.base_url: cannot reach host {down}")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "departement.cnaf.flux_dir: folder {} does not exist",
            gone.display()
        )),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("I-MILO") && l.ends_with(": OK")),
        "{text}"
    );
    // Wrong credentials: the host answers, the check says the key is refused.
    let wrong_key = dir.path().join("secrets/wrong-imilo.key");
    let wrong_secret = dir.path().join("secrets/wrong-faj.secret");
    for f in [&wrong_key, &wrong_secret] {
        std::fs::write(f, b"not-the-secret").unwrap();
    }
    let toml = world
        .config_toml()
        .replace(
            &dir.path()
                .join("secrets/imilo-dossiers.key")
                .display()
                .to_string(),
            &wrong_key.display().to_string(),
        )
        .replace(
            &dir.path()
                .join("secrets/faj-client.secret")
                .display()
                .to_string(),
            &wrong_secret.display().to_string(),
        );
    let out = check(&toml);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("I-MILO")
            && l.contains("imilo.client.keys: reading the dossiers of structure")
            && l.contains("the credentials were refused")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("FAJ FAJ059")
            && l.contains("faj.client_secret: listing the requests: the credentials were refused")),
        "{text}"
    );
    assert!(!text.contains("not-the-secret"), "{text}");
    // `sync` runs the offline part at start: a folder given relative is a mistake of
    // the configuration, refused before the night, naming the key.
    let sync = |toml: String| {
        std::fs::write(&config, toml).unwrap();
        Command::new(env!("CARGO_BIN_EXE_passerelle"))
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join("hub"))
            .arg("sync")
            .output()
            .unwrap()
    };
    let out = sync(
        world
            .config_toml()
            .replace(&cnaf.display().to_string(), "peers/cnaf"),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("departement.cnaf.flux_dir = peers/cnaf is relative"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    // A folder that is not there (a share not mounted) is one peer down: warned at
    // start, that peer's source fails, the other flows run, the night is partial.
    let out = sync(
        world
            .config_toml()
            .replace(&cnaf.display().to_string(), &gone.display().to_string()),
    );
    let (stdout, err) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{err}");
    assert!(
        err.contains("warning: departement 059 cnaf") && err.contains(&gone.display().to_string()),
        "{err}"
    );
    assert!(stdout.contains("failed: "), "{stdout}");
    let orientation = stdout
        .lines()
        .find(|l| l.starts_with("brsa-orientation"))
        .unwrap_or_else(|| panic!("{stdout}"))
        .split_whitespace()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    // The SOLIS export and the box list were read and sent all the same.
    assert!(orientation[4].parse::<u64>().unwrap() > 0, "{stdout}");
    // The share back: the next night completes.
    let out = sync(world.config_toml());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    world.stop().await;
}

/// The entries a night's summary says it checked, and the entry it checked up to.
fn walked(stdout: &str) -> (u64, u64) {
    let line = stdout
        .lines()
        .find(|l| l.contains("audit journal:"))
        .unwrap_or_else(|| panic!("no journal line: {stdout}"));
    let after = line.split("audit journal: ").nth(1).unwrap();
    let checked: u64 = after.split(' ').next().unwrap().parse().unwrap();
    let upto: u64 = after
        .split("(to entry ")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(line.ends_with("chain intact"), "{line}");
    (checked, upto)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_night_walks_the_journal_from_where_the_last_one_ended() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let mut world = World::start(dir.path(), &WorldOptions::new(60, 5))
        .await
        .unwrap();
    let config = dir.path().join("passerelle.toml");
    std::fs::write(&config, world.config_toml()).unwrap();
    let data = dir.path().join("hub");
    let night = || {
        let out = Command::new(env!("CARGO_BIN_EXE_passerelle"))
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&data)
            .arg("sync")
            .env("PASSERELLE_PROGRESS_S", "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
        (walked(&stdout), stderr)
    };
    // The first night walks everything; the second only what it and no other added.
    let ((checked, first_end), _) = night();
    assert_eq!(checked, first_end);
    assert!(first_end > 50, "{first_end}");
    // Its duration is kept: the next night's progress estimates what is left from it.
    let took: f64 = std::fs::read_to_string(data.join("night.last"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(took > 0.0, "{took}");
    let ((checked, second_end), stderr) = night();
    for line in stderr
        .lines()
        .filter(|l| l.starts_with("night running for "))
    {
        assert!(line.contains("the last one"), "{line}");
    }
    assert!(second_end > first_end, "{second_end} after {first_end}");
    assert_eq!(checked, second_end - first_end);
    let mark = data.join(passerelle_runtime::verified::MARK_FILE);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&mark).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // `audit verify` still walks the whole chain.
    let out = Command::new(env!("CARGO_BIN_EXE_passerelle"))
        .arg("--data-dir")
        .arg(&data)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("journal intact: {second_end} entries")),
        "{text}"
    );
    // An unreadable mark costs a whole walk, never a wrong answer.
    std::fs::write(&mark, b"not json").unwrap();
    let ((checked, third_end), _) = night();
    assert_eq!(checked, third_end);
    world.stop().await;
}

/// `config check` logs into a box over SFTP and lists its folder: OK with the right
/// keys; with a key the box does not know, the key named and the login refused.
#[test]
fn config_check_logs_into_an_sftp_box() {
    let Some(sshd) = passerelle_testkit::sshd::Sshd::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("box");
    std::fs::create_dir_all(root.join("59350S00/depot")).unwrap();
    let state = dir.path().join("box-state");
    std::fs::create_dir_all(&state).unwrap();
    let toml = |identity: &std::path::Path| {
        format!(
            "[[departement]]\ncode = \"059\"\n\n[[departement.box]]\nurl = \"{}\"\npartenaire = \"59350S00\"\nstate_dir = \"{}\"\n\n[departement.box.sftp]\nidentity_file = \"{}\"\nknown_hosts_file = \"{}\"\n",
            sshd.url(&root),
            state.display(),
            identity.display(),
            sshd.known_hosts_file().display()
        )
    };
    let config = dir.path().join("passerelle.toml");
    let check = |toml: String| {
        std::fs::write(&config, toml).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_passerelle"))
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join("hub"))
            .args(["config", "check"])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = check(toml(&sshd.identity_file()));
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("departement 059 box 59350S00") && l.ends_with(": OK")),
        "{text}"
    );
    let stranger = dir.path().join("stranger");
    passerelle_testkit::sshd::keygen(&stranger);
    let (code, text) = check(toml(&stranger));
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("departement 059 box 59350S00")
            && l.contains("departement.box.sftp: logging in and listing 59350S00: the credentials were refused")),
        "{text}"
    );
}
