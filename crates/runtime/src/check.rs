//! `passerelle config check`: the configuration checked before a night needs it. The
//! offline part (also run by `sync` and `serve` at start) reads the file (unknown keys,
//! codes), checks every folder is an absolute path that exists, every secret file is
//! readable and every peer's connector builds; the online part reaches each peer
//! (TCP to its host; one authenticated read of I-MILO and of each FAJ platform, which
//! proves TLS and the credentials; an SFTP login and listing on each box; write rights
//! on the folders the hub writes). One line per peer:
//! `OK` or what to fix, naming the key, the absolute folder, the host.

use std::path::Path;
use std::time::Duration;

use crate::config::HubConfig;

/// One peer's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// `I-MILO`, `departement 059 solis`, `FAJ FAJ059`, `transport`.
    pub peer: String,
    /// What is wrong in the configuration itself; empty when all is well.
    pub problems: Vec<String>,
    /// What the peer lacks now though the configuration is right (a folder that does
    /// not exist: a share not mounted, a peer not set up yet). A night runs without
    /// that peer, whose flows wait; `config check` still says it.
    pub unreachable: Vec<String>,
}

impl Line {
    fn new(peer: impl Into<String>) -> Self {
        Self {
            peer: peer.into(),
            problems: Vec::new(),
            unreachable: Vec::new(),
        }
    }

    pub fn ok(&self) -> bool {
        self.problems.is_empty() && self.unreachable.is_empty()
    }
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.ok() {
            write!(f, "{}: OK", self.peer)
        } else {
            let all: Vec<&str> = self
                .problems
                .iter()
                .chain(&self.unreachable)
                .map(String::as_str)
                .collect();
            write!(f, "{}: {}", self.peer, all.join("; "))
        }
    }
}

/// `key` names a folder: absolute, existing, a folder.
fn folder(line: &mut Line, key: &str, path: &Path) {
    if !path.is_absolute() {
        line.problems.push(format!(
            "{key} = {} is relative; give an absolute folder",
            path.display()
        ));
    } else if path.exists() && !path.is_dir() {
        line.problems
            .push(format!("{key}: {} is not a folder", path.display()));
    } else if !path.is_dir() {
        line.unreachable
            .push(format!("{key}: folder {} does not exist", path.display()));
    }
}

/// `key` names a file that must be readable.
fn readable(line: &mut Line, key: &str, path: &Path) {
    if let Err(e) = std::fs::File::open(path) {
        line.problems
            .push(format!("{key}: cannot read {}: {e}", path.display()));
    }
}

/// The checks that need no peer, one line per peer.
pub fn offline(config: &HubConfig) -> Vec<Line> {
    let mut out = Vec::new();
    if let Some(f) = &config.flows {
        let mut l = Line::new("flows");
        if let Err(e) = passerelle_policy::Policy::load(f) {
            l.problems.push(format!("flows = {}: {e}", f.display()));
        }
        out.push(l);
    }
    if let Some(i) = &config.imilo {
        let mut l = Line::new(format!("I-MILO {}", i.client.base_url));
        if let Err(e) = i.client.build() {
            l.problems.push(format!("[imilo.client]: {e}"));
        }
        out.push(l);
    }
    for d in &config.departements {
        if let Some(s) = &d.solis {
            let mut l = Line::new(format!("departement {} solis", d.code));
            for (key, p) in [
                ("export_dir", &s.export_dir),
                ("import_dir", &s.import_dir),
                ("ack_dir", &s.ack_dir),
            ] {
                if let Some(p) = p {
                    folder(&mut l, &format!("departement.solis.{key}"), p);
                }
            }
            out.push(l);
        }
        if let Some(c) = &d.cnaf {
            let mut l = Line::new(format!("departement {} cnaf", d.code));
            folder(&mut l, "departement.cnaf.flux_dir", &c.flux_dir);
            out.push(l);
        }
        for b in &d.boxes {
            let mut l = Line::new(format!(
                "departement {} box {} ({})",
                d.code, b.partenaire, b.url
            ));
            if let Some(local) = b.url.strip_prefix("file://") {
                folder(&mut l, "departement.box.url", Path::new(local));
            }
            if !b.state_dir.is_absolute() {
                l.problems.push(format!(
                    "departement.box.state_dir = {} is relative; give an absolute folder",
                    b.state_dir.display()
                ));
            }
            if let Some(m) = &b.mapping {
                readable(&mut l, "departement.box.mapping", m);
            }
            if let Some(k) = &b.sftp {
                readable(
                    &mut l,
                    "departement.box.sftp.identity_file",
                    &k.identity_file,
                );
                readable(
                    &mut l,
                    "departement.box.sftp.known_hosts_file",
                    &k.known_hosts_file,
                );
            }
            if l.ok()
                && let Err(e) = b.build()
            {
                l.problems.push(format!("[[departement.box]]: {e}"));
            }
            out.push(l);
        }
    }
    for f in &config.faj {
        let mut l = Line::new(format!("FAJ {} {}", f.platform, f.base_url));
        if let Err(e) = f.build() {
            l.problems.push(format!("[[faj]]: {e}"));
        }
        out.push(l);
    }
    out
}

/// `host:port` of a URL (`scheme://[user@]host[:port]/…`), with the scheme's port.
pub fn host_port(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if authority.is_empty() {
        return None;
    }
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    if has_port {
        return Some(authority.to_owned());
    }
    let port = match scheme {
        "http" => 80,
        "https" => 443,
        "amqp" => 5672,
        "amqps" => 5671,
        "sftp" | "ssh" => 22,
        "postgres" | "postgresql" => 5432,
        _ => return None,
    };
    Some(format!("{authority}:{port}"))
}

async fn reach(line: &mut Line, key: &str, url: &str) {
    let Some(addr) = host_port(url) else {
        return;
    };
    let t = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(&addr),
    )
    .await;
    match t {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => line
            .problems
            .push(format!("{key}: cannot reach host {addr}: {e}")),
        Err(_) => line
            .problems
            .push(format!("{key}: host {addr} did not answer within 5 s")),
    }
}

/// The hub may create and remove a file in `dir`.
fn writable(line: &mut Line, key: &str, dir: &Path) {
    if !dir.is_dir() {
        return;
    }
    let probe = dir.join(format!(".passerelle-check-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
        }
        Err(e) => line.problems.push(format!(
            "{key}: the hub cannot write in folder {}: {e}",
            dir.display()
        )),
    }
}

/// How long one authenticated call of the check may take, retries included.
const CALL_WITHIN: Duration = Duration::from_secs(20);

/// What a failed call says to fix: the credentials, or the peer's answer as it came
/// (TLS, HTTP status, protocol), never a secret (the connectors' errors hold none).
fn call_problem(
    line: &mut Line,
    key: &str,
    what: &str,
    r: Result<Result<(), passerelle_connector::ConnectorError>, tokio::time::error::Elapsed>,
) {
    match r {
        Ok(Ok(())) => {}
        Ok(Err(e)) if e.kind() == passerelle_connector::ErrorKind::Unauthorized => line
            .problems
            .push(format!("{key}: {what}: the credentials were refused ({e})")),
        Ok(Err(e)) => line.problems.push(format!("{key}: {what}: {e}")),
        Err(_) => line.problems.push(format!(
            "{key}: {what}: no answer within {} s",
            CALL_WITHIN.as_secs()
        )),
    }
}

/// One authenticated read of I-MILO (the first structure's dossiers changed from now:
/// an empty page), which proves TLS, the keys and the route.
async fn imilo_call(line: &mut Line, i: &crate::config::ImiloSection) {
    let Some(structure) = i.structures.first() else {
        return;
    };
    let Ok(client) = i.client.build() else {
        return;
    };
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let r = tokio::time::timeout(CALL_WITHIN, async {
        client
            .structure_page(structure, 1, Some(&now))
            .await
            .map(drop)
    })
    .await;
    call_problem(
        line,
        "imilo.client.keys",
        &format!("reading the dossiers of structure {structure}"),
        r,
    );
}

/// One authenticated read of the FAJ platform (the requests modified from now).
async fn faj_call(line: &mut Line, f: &passerelle_faj::FajConfig) {
    let Ok(built) = f.build() else {
        return;
    };
    let r = tokio::time::timeout(CALL_WITHIN, async {
        built
            .client
            .list_modifiees(chrono::Utc::now(), 1)
            .await
            .map(drop)
    })
    .await;
    call_problem(line, "faj.client_secret", "listing the requests", r);
}

/// An SFTP login and a listing of the partner's folder on the box.
async fn box_login(line: &mut Line, b: &passerelle_box::BoxConfig) {
    let Ok(folder) = b.folder() else {
        return;
    };
    let partenaire = b.partenaire.clone();
    let r = tokio::time::timeout(
        CALL_WITHIN,
        tokio::task::spawn_blocking(move || folder.list(&partenaire).map(drop)),
    )
    .await
    .map(|joined| {
        joined.unwrap_or_else(|e| {
            Err(passerelle_connector::ConnectorError::Config(format!(
                "the check of the box failed: {e}"
            )))
        })
    });
    call_problem(
        line,
        "departement.box.sftp",
        &format!("logging in and listing {}", b.partenaire),
        r,
    );
}

/// The offline checks, then each peer reached.
/// Files of the CNAF folder no name pattern takes: never read, so something to fix
/// (a pattern in `departement.cnaf.patterns`, or the file renamed).
fn not_read(line: &mut Line, c: &passerelle_cnaf::CnafConfig) {
    match c.not_read() {
        Ok(names) if names.is_empty() => {}
        Ok(names) => line.problems.push(format!(
            "departement.cnaf.flux_dir {}: {} file(s) not read, no name in departement.cnaf.patterns takes them: {}",
            c.flux_dir.display(),
            names.len(),
            names.join(", ")
        )),
        Err(e) => line.problems.push(format!("departement.cnaf.flux_dir: {e}")),
    }
}

pub async fn online(config: &HubConfig) -> Vec<Line> {
    let mut lines = offline(config);
    if let Some(r) = &config.transport.rabbitmq
        && config.transport.kind == crate::config::TransportKind::Rabbitmq
    {
        let mut l = Line::new("transport rabbitmq");
        reach(&mut l, "transport.rabbitmq.url", &r.url).await;
        lines.insert(0, l);
    }
    if let Some(url) = &config.journal.url {
        let mut l = Line::new("journal");
        reach(&mut l, "journal.url", url).await;
        lines.insert(0, l);
    }
    if let Some(url) = &config.state.url
        && config.state.is_postgres()
    {
        let mut l = Line::new("state");
        reach(&mut l, "state.url", url).await;
        lines.insert(0, l);
    }
    for l in &mut lines {
        if !l.ok() {
            continue;
        }
        if let Some(i) = &config.imilo
            && l.peer.starts_with("I-MILO")
        {
            reach(l, "imilo.client.base_url", &i.client.base_url).await;
            if l.ok() {
                imilo_call(l, i).await;
            }
        }
        for f in &config.faj {
            if l.peer.starts_with(&format!("FAJ {} ", f.platform)) {
                reach(l, "faj.base_url", &f.base_url).await;
                if l.ok() {
                    faj_call(l, f).await;
                }
            }
        }
        for d in &config.departements {
            if l.peer == format!("departement {} cnaf", d.code)
                && let Some(c) = &d.cnaf
            {
                not_read(l, c);
            }
            if l.peer == format!("departement {} solis", d.code)
                && let Some(s) = &d.solis
            {
                if let Some(p) = &s.import_dir {
                    writable(l, "departement.solis.import_dir", p);
                }
                if let Some(p) = &s.export_dir {
                    // Processed exports move to `traites/`.
                    writable(l, "departement.solis.export_dir", p);
                }
            }
            for b in &d.boxes {
                if l.peer
                    .starts_with(&format!("departement {} box {} ", d.code, b.partenaire))
                {
                    match b.url.strip_prefix("file://") {
                        Some(local) => writable(l, "departement.box.url", Path::new(local)),
                        None => {
                            reach(l, "departement.box.url", &b.url).await;
                            if l.ok() {
                                box_login(l, b).await;
                            }
                        }
                    }
                }
            }
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_ports_of_urls() {
        assert_eq!(
            host_port("https://imilo.example.fr").unwrap(),
            "imilo.example.fr:443"
        );
        assert_eq!(host_port("http://127.0.0.1:9/api").unwrap(), "127.0.0.1:9");
        assert_eq!(
            host_port("amqps://passerelle@rabbit.example.fr:5671/%2f").unwrap(),
            "rabbit.example.fr:5671"
        );
        assert_eq!(
            host_port("sftp://cd059@box.example.fr/cd059").unwrap(),
            "box.example.fr:22"
        );
        assert_eq!(host_port("file:///srv/box"), None);
    }

    #[test]
    fn folders_are_absolute_and_exist() {
        let c = HubConfig::from_toml(
            "[[departement]]\ncode = \"059\"\n[departement.cnaf]\nflux_dir = \"/nonexistent/cnaf\"\n",
        )
        .unwrap();
        let lines = offline(&c);
        assert_eq!(lines.len(), 1);
        let text = lines[0].to_string();
        assert!(
            text.contains("departement.cnaf.flux_dir: folder /nonexistent/cnaf does not exist"),
            "{text}"
        );
    }
}
