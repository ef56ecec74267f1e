//! The files of `deploy/` against the binary: the Kubernetes manifests and the compose
//! file parse (YAML), the systemd unit follows the unit syntax, every command line they
//! give names subcommands and options the built `passerelle` has (its `--help`), every
//! `PASSERELLE_…` variable they set is one the code reads, the `passerelle.toml` they
//! carry passes `passerelle config check --offline`, and the probe paths are endpoints
//! the running server answers.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_yaml::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// Every document of a YAML file.
fn yaml_docs(rel: &str) -> Vec<Value> {
    let text = read(rel);
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| {
            <Value as serde::Deserialize>::deserialize(d)
                .unwrap_or_else(|e| panic!("{rel} is not valid YAML: {e}"))
        })
        .collect()
}

/// The binary, with no `PASSERELLE_…` variable of the caller's environment.
fn passerelle() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_passerelle"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PASSERELLE_") {
            c.env_remove(k);
        }
    }
    c
}

/// `passerelle <path> --help`, or None when the subcommand does not exist.
fn help(path: &[String]) -> Option<String> {
    let out = passerelle().args(path).arg("--help").output().unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether `--name` is an option in this help text, and whether it takes a value.
fn option_in(help: &str, name: &str) -> Option<bool> {
    let flag = format!("--{name}");
    help.lines().find_map(|l| {
        let at = l.find(&flag)?;
        let rest = &l[at + flag.len()..];
        match rest.chars().next() {
            None | Some(' ' | ',') => Some(rest.trim_start().starts_with('<')),
            Some('=') => Some(true),
            _ => None,
        }
    })
}

/// Checks one command line given to the binary (`argv[0]` its path): each word that is
/// not an option or an option's value must be a subcommand, each option must be in the
/// help of the subcommand it follows.
fn check_command(argv: &[String], whence: &str) {
    assert!(
        argv.first()
            .is_some_and(|p| p == "passerelle" || p.ends_with("/passerelle")),
        "{whence}: runs {argv:?}, not passerelle"
    );
    let mut path: Vec<String> = Vec::new();
    let mut text = help(&path).unwrap();
    let mut words = argv[1..].iter();
    let mut subcommands = 0;
    while let Some(w) = words.next() {
        if let Some(opt) = w.strip_prefix("--") {
            let (name, inline) = match opt.split_once('=') {
                Some((n, _)) => (n, true),
                None => (opt, false),
            };
            let takes_value = option_in(&text, name).unwrap_or_else(|| {
                panic!(
                    "{whence}: `passerelle {}` has no option --{name}",
                    path.join(" ")
                )
            });
            if takes_value && !inline {
                assert!(words.next().is_some(), "{whence}: --{name} needs a value");
            }
        } else {
            path.push(w.clone());
            text = help(&path).unwrap_or_else(|| {
                panic!("{whence}: `passerelle {}` is no command", path.join(" "))
            });
            subcommands += 1;
        }
    }
    assert!(subcommands > 0, "{whence}: {argv:?} names no subcommand");
}

/// Every `PASSERELLE_…` name the code of the workspace reads somewhere (a string
/// literal in a crate's sources, or an `env = "…"` of clap).
fn variables_read() -> BTreeSet<String> {
    fn walk(dir: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                for (i, _) in text.match_indices("\"PASSERELLE_") {
                    let name: String = text[i + 1..]
                        .chars()
                        .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                        .collect();
                    out.insert(name);
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    for dir in ["crates", "connectors"] {
        for c in std::fs::read_dir(root().join(dir)).unwrap().flatten() {
            let src = c.path().join("src");
            if src.is_dir() {
                walk(&src, &mut out);
            }
        }
    }
    out
}

fn check_variables<'a>(names: impl IntoIterator<Item = &'a str>, whence: &str) {
    let known = variables_read();
    for n in names {
        if n.starts_with("PASSERELLE_") {
            assert!(known.contains(n), "{whence}: sets {n}, which no code reads");
        }
    }
}

/// Runs `passerelle config check --offline` on a configuration text, with these
/// variables set as the deployment sets them: the file must parse (exit 2 otherwise)
/// and, unless `parse_only`, every offline check pass (exit 0).
fn config_check(toml: &str, env: &BTreeMap<String, String>, whence: &str, parse_only: bool) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passerelle.toml");
    std::fs::write(&file, toml).unwrap();
    let out = passerelle()
        .envs(env)
        .arg("--config")
        .arg(&file)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["config", "check", "--offline"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let accepted = if parse_only {
        out.status.code() != Some(2)
    } else {
        out.status.success()
    };
    assert!(
        accepted && stdout.contains(": OK"),
        "{whence}: config check refused it ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_systemd_unit_is_a_unit_and_runs_real_commands() {
    let text = read("deploy/systemd/passerelle.service");
    let known: BTreeMap<&str, &[&str]> = BTreeMap::from([
        (
            "Unit",
            &["Description", "Documentation", "Wants", "After", "Requires"][..],
        ),
        (
            "Service",
            &[
                "Type",
                "User",
                "Group",
                "Environment",
                "EnvironmentFile",
                "ExecStartPre",
                "ExecStart",
                "Restart",
                "RestartSec",
                "KillSignal",
                "TimeoutStopSec",
                "LimitNOFILE",
                "StateDirectory",
                "StateDirectoryMode",
                "UMask",
                "NoNewPrivileges",
                "ProtectSystem",
                "ReadWritePaths",
                "ProtectHome",
                "PrivateTmp",
                "PrivateDevices",
                "ProtectKernelTunables",
                "ProtectKernelModules",
                "ProtectKernelLogs",
                "ProtectControlGroups",
                "ProtectClock",
                "ProtectHostname",
                "RestrictAddressFamilies",
                "RestrictNamespaces",
                "RestrictRealtime",
                "RestrictSUIDSGID",
                "LockPersonality",
                "MemoryDenyWriteExecute",
                "SystemCallArchitectures",
                "SystemCallFilter",
                "CapabilityBoundingSet",
                "AmbientCapabilities",
            ][..],
        ),
        ("Install", &["WantedBy"][..]),
    ]);
    let mut section = None;
    let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            assert!(
                known.contains_key(name),
                "line {}: unknown section [{name}]",
                n + 1
            );
            section = Some(name);
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: not Key=Value: {line}", n + 1));
        let s = section.unwrap_or_else(|| panic!("line {}: a key before any section", n + 1));
        assert!(
            known[s].contains(&k),
            "line {}: {k} is not a [{s}] key this test knows",
            n + 1
        );
        keys.entry(k.to_owned()).or_default().push(v.to_owned());
    }
    let one = |k: &str| {
        keys.get(k)
            .and_then(|v| v.last())
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(one("Restart"), "on-failure");
    assert_eq!(one("NoNewPrivileges"), "yes");
    assert_eq!(one("ProtectSystem"), "strict");
    assert_eq!(one("PrivateTmp"), "yes");
    let env: BTreeMap<String, String> = keys["Environment"]
        .iter()
        .map(|e| {
            let (k, v) = e.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect();
    check_variables(env.keys().map(String::as_str), "passerelle.service");
    let data_dir = &env["PASSERELLE_DATA_DIR"];
    assert!(
        one("ReadWritePaths")
            .split_whitespace()
            .any(|p| p == data_dir),
        "the data dir {data_dir} must be writable (ReadWritePaths)"
    );
    for k in ["ExecStartPre", "ExecStart"] {
        for line in &keys[k] {
            // Exec prefixes (-, @, :, +, !) say how systemd runs it, not what.
            let argv: Vec<String> = line
                .trim_start_matches(['-', '@', ':', '+', '!'])
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            check_command(&argv, &format!("passerelle.service {k}"));
        }
    }
    assert!(
        keys["ExecStart"][0].contains(" serve"),
        "the unit runs the hub"
    );
}

#[test]
fn the_kubernetes_manifests_parse_and_name_what_the_binary_has() {
    let mut by_kind: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for file in ["configmap.yaml", "secret.yaml", "deployment.yaml"] {
        for doc in yaml_docs(&format!("deploy/kubernetes/{file}")) {
            let kind = doc["kind"].as_str().expect("a kind").to_owned();
            assert!(
                doc["apiVersion"].is_string(),
                "{file}: {kind} has no apiVersion"
            );
            assert!(
                doc["metadata"]["name"].is_string(),
                "{file}: {kind} has no name"
            );
            by_kind.entry(kind).or_default().push(doc);
        }
    }
    let deployment = &by_kind["Deployment"][0];
    assert!(
        deployment["spec"]["replicas"].as_u64().unwrap() >= 2,
        "N replicas"
    );
    let pod = &deployment["spec"]["template"]["spec"];
    let hub = &pod["containers"][0];
    let mut argv = strings(&hub["command"]);
    argv.extend(strings(&hub["args"]));
    check_command(&argv, "deployment.yaml");
    assert_eq!(argv[1], "serve");

    // The pod's environment: its own variables and the Secret's.
    let secrets: BTreeMap<&str, &Value> = by_kind["Secret"]
        .iter()
        .map(|s| (s["metadata"]["name"].as_str().unwrap(), s))
        .collect();
    let mut env = BTreeMap::new();
    for e in hub["env"].as_sequence().unwrap() {
        env.insert(
            e["name"].as_str().unwrap().to_owned(),
            e["value"].as_str().unwrap().to_owned(),
        );
    }
    for from in hub["envFrom"].as_sequence().unwrap() {
        let name = from["secretRef"]["name"].as_str().unwrap();
        let secret = secrets
            .get(name)
            .unwrap_or_else(|| panic!("envFrom names the missing Secret {name}"));
        for (k, v) in secret["stringData"].as_mapping().unwrap() {
            env.insert(
                k.as_str().unwrap().to_owned(),
                v.as_str().unwrap().to_owned(),
            );
        }
    }
    check_variables(env.keys().map(String::as_str), "deployment.yaml");

    // The ConfigMap's passerelle.toml, where the pod reads it, with the pod's variables.
    let config_path = &env["PASSERELLE_CONFIG"];
    let mounts = hub["volumeMounts"].as_sequence().unwrap();
    let volumes = pod["volumes"].as_sequence().unwrap();
    let config_mount = mounts
        .iter()
        .find(|m| config_path.starts_with(m["mountPath"].as_str().unwrap()))
        .expect("PASSERELLE_CONFIG is in a mounted volume");
    let volume = volumes
        .iter()
        .find(|v| v["name"] == config_mount["name"])
        .unwrap();
    let map_name = volume["configMap"]["name"]
        .as_str()
        .expect("a ConfigMap volume");
    let map = by_kind["ConfigMap"]
        .iter()
        .find(|m| m["metadata"]["name"] == map_name)
        .expect("the ConfigMap exists");
    let file = Path::new(config_path)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap();
    let toml = map["data"][file]
        .as_str()
        .expect("the ConfigMap holds the file");
    config_check(toml, &env, "the ConfigMap's passerelle.toml", false);

    // The key store Secret is mounted.
    assert!(
        volumes
            .iter()
            .any(|v| v["secret"]["secretName"] == "passerelle-keys"),
        "the key store's Secret is mounted"
    );

    // Probes: the server's endpoints, on the port it listens on.
    let port = hub["ports"][0]["containerPort"].as_u64().unwrap();
    let listen: toml::Value = toml::from_str(toml).unwrap();
    let listen = listen["server"]["listen"].as_str().unwrap();
    assert!(listen.ends_with(&format!(":{port}")), "{listen} vs {port}");
    assert_eq!(hub["livenessProbe"]["httpGet"]["path"], "/health");
    assert_eq!(hub["readinessProbe"]["httpGet"]["path"], "/ready");
    let mut paths = BTreeSet::new();
    for p in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(path) = hub[p]["httpGet"]["path"].as_str() {
            assert_eq!(hub[p]["httpGet"]["port"], "http");
            paths.insert(path.to_owned());
        }
    }
    served(&paths);
}

#[test]
fn the_compose_trial_parses_and_names_what_the_binary_has() {
    let compose = yaml_docs("deploy/compose/compose.yaml").remove(0);
    let services = compose["services"].as_mapping().unwrap();
    for s in ["hub", "rabbitmq", "postgres"] {
        assert!(services.contains_key(s), "compose has no {s}");
    }
    let hub = &compose["services"]["hub"];
    check_command(&strings(&hub["command"]), "compose.yaml hub");
    let env: BTreeMap<String, String> = hub["environment"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().unwrap().to_owned(),
                v.as_str().unwrap().to_owned(),
            )
        })
        .collect();
    check_variables(env.keys().map(String::as_str), "compose.yaml");
    // The configuration it mounts where PASSERELLE_CONFIG says.
    let mount = strings(&hub["volumes"])
        .into_iter()
        .find(|m| m.split(':').nth(1) == Some(env["PASSERELLE_CONFIG"].as_str()))
        .expect("compose mounts the configuration");
    let local = mount.split(':').next().unwrap();
    let toml = read(&format!(
        "deploy/compose/{}",
        local.trim_start_matches("./")
    ));
    config_check(
        &toml,
        &BTreeMap::new(),
        "deploy/compose/passerelle.toml",
        false,
    );
    let health = strings(&hub["healthcheck"]["test"]).join(" ");
    assert!(health.contains("GET /ready"), "{health}");
    // The image's default command too.
    let dockerfile = read("deploy/compose/Dockerfile");
    let cmd = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("CMD "))
        .expect("a CMD");
    let argv: Vec<String> = serde_json::from_str(cmd).unwrap();
    check_command(&argv, "Dockerfile CMD");
}

/// The example configuration parses (its peers' folders and key files are not on
/// this machine, so only the parse is asked).
#[test]
fn the_example_configuration_parses() {
    config_check(
        &read("deploy/passerelle.example.toml"),
        &BTreeMap::new(),
        "passerelle.example.toml",
        true,
    );
}

/// Starts `passerelle serve` on a free port (embedded defaults, an empty data folder)
/// and checks that each path answers, 200 or 503, never 404.
fn served(paths: &BTreeSet<String>) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("passerelle.toml");
    std::fs::write(
        &config,
        format!("[transport]\nkind = \"embedded\"\n\n[server]\nlisten = \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let mut child = passerelle()
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let get = |path: &str| -> Option<u16> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
        let mut head = String::new();
        s.read_to_string(&mut head).ok()?;
        head.split_whitespace().nth(1)?.parse().ok()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while get("/health").is_none() {
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("passerelle serve did not answer: {err}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut codes = BTreeMap::new();
    for p in paths {
        codes.insert(p.clone(), get(p));
    }
    assert_eq!(get("/no-such-endpoint"), Some(404), "the server says 404");
    let _ = child.kill();
    let _ = child.wait();
    for (p, code) in codes {
        assert!(
            matches!(code, Some(200 | 503)),
            "probe path {p} answered {code:?}"
        );
    }
}
