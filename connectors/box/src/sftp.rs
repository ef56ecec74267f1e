//! The box over SFTP, by driving the system OpenSSH `sftp` client in batch mode
//! (`sftp -b -`), with key authentication only and a pinned known-hosts file.
//!
//! Why the system client rather than a Rust SSH stack: OpenSSH is the client every
//! box operator already trusts and tests against; it adds no crypto crates to the
//! build (and no OpenSSL to ours); and a box exchange is a handful of small files a
//! day, so a process and a connection per operation cost nothing that matters. The
//! price: `openssh-client` must be installed, and errors are read from its stderr.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use passerelle_connector::ConnectorError;
use serde::Deserialize;

use crate::folder::{BoxFolder, check_rel_path};

/// `[box.sftp]` configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftpConfig {
    /// `sftp://user@host:port/base/path` (port defaults to 22).
    pub url: String,
    /// The private key to log in with (no passphrase: the hub runs unattended).
    pub identity_file: PathBuf,
    /// The known-hosts file that pins the box's host key.
    pub known_hosts_file: PathBuf,
    /// The `sftp` program.
    #[serde(default = "default_program")]
    pub program: PathBuf,
    /// Seconds to wait for the connection.
    #[serde(default = "default_timeout")]
    pub connect_timeout_secs: u32,
    /// Keep one SSH connection open and run every operation over it (OpenSSH
    /// `ControlMaster`), instead of a handshake per operation.
    #[serde(default = "default_multiplex")]
    pub multiplex: bool,
    /// Seconds one operation may take before the `sftp` process is killed: a server
    /// that never answers (a FIFO served as a file) must not hang the night.
    #[serde(default = "default_operation_timeout")]
    pub operation_timeout_secs: u32,
}

fn default_operation_timeout() -> u32 {
    300
}

fn default_multiplex() -> bool {
    true
}

fn default_program() -> PathBuf {
    PathBuf::from("sftp")
}

fn default_timeout() -> u32 {
    15
}

/// Where an `sftp://` URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SftpTarget {
    pub user: String,
    pub host: String,
    pub port: u16,
    /// The box root on the server, without a trailing slash.
    pub base: String,
}

/// Parses `sftp://user@host[:port][/base]`.
pub fn parse_url(url: &str) -> Result<SftpTarget, ConnectorError> {
    let bad = |why: &str| ConnectorError::Config(format!("box sftp url {why}"));
    let rest = url
        .strip_prefix("sftp://")
        .ok_or_else(|| bad("must start with sftp://"))?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (user, hostport) = authority
        .split_once('@')
        .ok_or_else(|| bad("must name a user (sftp://user@host)"))?;
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| bad("has a port that is not a number"))?,
        ),
        None => (hostport, 22),
    };
    let clean = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._[]:".contains(c))
    };
    if !clean(user) || !clean(host) {
        return Err(bad("has a malformed user or host"));
    }
    let base = format!("/{}", path.trim_end_matches('/'));
    if base.contains(['"', '\n', '\r', '\\']) || base.split('/').any(|c| c == "..") {
        return Err(bad("has a malformed path"));
    }
    Ok(SftpTarget {
        user: user.to_owned(),
        host: host.to_owned(),
        port,
        base: if base == "/" { String::new() } else { base },
    })
}

impl SftpConfig {
    /// Checks the configuration without any I/O.
    pub fn validate(&self) -> Result<SftpTarget, ConnectorError> {
        let target = parse_url(&self.url)?;
        if self.identity_file.as_os_str().is_empty() || self.known_hosts_file.as_os_str().is_empty()
        {
            return Err(ConnectorError::Config(
                "box sftp needs identity_file and known_hosts_file".to_owned(),
            ));
        }
        Ok(target)
    }

    /// Builds the folder (no connection is opened until the first operation).
    pub fn build(&self) -> Result<SftpFolder, ConnectorError> {
        let target = self.validate()?;
        let control = if self.multiplex {
            // A private folder with a short path: socket paths are limited to ~100 bytes.
            let dir = tempfile::Builder::new()
                .prefix("pbox-")
                .tempdir_in("/tmp")
                .map_err(|e| ConnectorError::io("sftp control folder", e))?;
            Some(Arc::new(Control {
                dir,
                destination: format!("{}@{}", target.user, target.host),
                port: target.port,
            }))
        } else {
            None
        };
        Ok(SftpFolder {
            config: self.clone(),
            target,
            control,
        })
    }
}

/// A box reached over SFTP.
#[derive(Debug, Clone)]
pub struct SftpFolder {
    config: SftpConfig,
    target: SftpTarget,
    control: Option<Arc<Control>>,
}

/// The shared connection's socket folder; the master connection is told to exit
/// when the last folder handle goes.
#[derive(Debug)]
struct Control {
    dir: tempfile::TempDir,
    destination: String,
    port: u16,
}

impl Control {
    fn path_option(&self) -> String {
        format!("ControlPath={}/%C", self.dir.path().display())
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        // Only asks our own master (by its socket) to exit; nothing else is touched.
        let _ = Command::new("ssh")
            .args([
                "-o",
                &self.path_option(),
                "-p",
                &self.port.to_string(),
                "-O",
                "exit",
            ])
            .arg(&self.destination)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A downloaded file, deleted when dropped.
struct Download {
    file: std::fs::File,
    _path: tempfile::TempPath,
}

impl Read for Download {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.file.read(buf)
    }
}

impl SftpFolder {
    fn remote(&self, rel: &str) -> Result<String, ConnectorError> {
        check_rel_path(rel)?;
        Ok(format!("{}/{rel}", self.target.base))
    }

    /// Runs one batch of commands; returns stdout without the echoed commands.
    fn run(&self, batch: &str, what: &str) -> Result<String, ConnectorError> {
        let c = &self.config;
        let mut cmd = Command::new(&c.program);
        if let Some(control) = &self.control {
            cmd.args(["-o", "ControlMaster=auto", "-o", "ControlPersist=30"])
                .arg("-o")
                .arg(control.path_option());
        }
        // No `-q`: it would silence the reasons (host key, permission) read below.
        let mut child = cmd
            .arg("-b")
            .arg("-")
            .arg("-i")
            .arg(&c.identity_file)
            .arg("-P")
            .arg(self.target.port.to_string())
            .args(["-o", "BatchMode=yes"])
            .args(["-o", "IdentitiesOnly=yes"])
            .args(["-o", "PasswordAuthentication=no"])
            .args(["-o", "KbdInteractiveAuthentication=no"])
            .args(["-o", "StrictHostKeyChecking=yes"])
            .args(["-o", "GlobalKnownHostsFile=/dev/null"])
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                c.known_hosts_file.display()
            ))
            .arg("-o")
            .arg(format!("ConnectTimeout={}", c.connect_timeout_secs))
            .arg(format!("{}@{}", self.target.user, self.target.host))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                ConnectorError::io(format!("{} (the sftp program)", c.program.display()), e)
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(batch.as_bytes())
                .map_err(|e| ConnectorError::io("sftp batch", e))?;
        }
        let out = wait_bounded(
            child,
            std::time::Duration::from_secs(u64::from(c.operation_timeout_secs)),
        )
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::TimedOut => ConnectorError::Unavailable {
                peer: format!("box sftp {}", self.target.host),
                reason: format!("{what}: no answer within {} s", c.operation_timeout_secs),
                retry_after: None,
            },
            _ => ConnectorError::io("sftp batch", e),
        })?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if out.status.success() {
            return Ok(stdout
                .lines()
                .filter(|l| !l.starts_with("sftp> "))
                .collect::<Vec<_>>()
                .join("\n"));
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(classify(&stderr, what, &self.target.host))
    }

    fn quote(s: &str) -> String {
        format!("\"{s}\"")
    }
}

/// Waits for the child with a deadline, reading its output on the side; kills it
/// (our own child, by its handle) when the deadline passes.
fn wait_bounded(
    mut child: std::process::Child,
    limit: std::time::Duration,
) -> std::io::Result<std::process::Output> {
    fn drain(r: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    }
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "sftp took too long",
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    Ok(std::process::Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// Turns the client's complaint into an error of the right kind.
fn classify(stderr: &str, what: &str, host: &str) -> ConnectorError {
    let first = stderr
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("sftp failed")
        .trim()
        .to_owned();
    let peer = format!("box sftp {host}");
    if stderr.contains("not found") || stderr.contains("No such file") {
        ConnectorError::NotFound {
            peer,
            what: what.to_owned(),
        }
    } else if stderr.contains("Permission denied")
        || stderr.contains("Host key verification failed")
    {
        ConnectorError::Unauthorized {
            peer,
            reason: first,
        }
    } else if stderr.contains("Connection refused")
        || stderr.contains("timed out")
        || stderr.contains("Connection closed")
        || stderr.contains("Could not resolve")
    {
        ConnectorError::Unavailable {
            peer,
            reason: first,
            retry_after: None,
        }
    } else {
        ConnectorError::Protocol {
            peer,
            reason: format!("{what}: {first}"),
        }
    }
}

impl BoxFolder for SftpFolder {
    fn list(&self, dir: &str) -> Result<Vec<String>, ConnectorError> {
        let remote = self.remote(dir)?;
        let out = self.run(&format!("ls -l {}\n", Self::quote(&remote)), dir)?;
        let prefix = format!(" {remote}/");
        Ok(out
            .lines()
            // Plain files only: `ls -l` starts directory lines with `d`.
            .filter(|l| l.starts_with('-'))
            .filter_map(|l| l.find(&prefix).map(|i| l[i + prefix.len()..].to_owned()))
            .collect())
    }

    fn open(&self, path: &str) -> Result<Box<dyn Read + Send>, ConnectorError> {
        let remote = self.remote(path)?;
        let tmp = tempfile::NamedTempFile::new().map_err(|e| ConnectorError::io("download", e))?;
        let local = tmp.path().display().to_string();
        self.run(
            &format!("get {} {}\n", Self::quote(&remote), Self::quote(&local)),
            path,
        )?;
        let path_guard = tmp.into_temp_path();
        let file =
            std::fs::File::open(&path_guard).map_err(|e| ConnectorError::io("download", e))?;
        Ok(Box::new(Download {
            file,
            _path: path_guard,
        }))
    }

    fn write(&self, path: &str, bytes: &[u8]) -> Result<(), ConnectorError> {
        let remote = self.remote(path)?;
        // Uploaded under a fresh hidden name beside the target, then renamed over it
        // (posix-rename replaces a link planted at the target, never writes through
        // it): the sftp client cannot ask for O_EXCL, an unguessable name stands in.
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let tag: String = {
            use sha2::Digest;
            let seed = format!(
                "{name}{:?}{}",
                std::time::SystemTime::now(),
                std::process::id()
            );
            hex::encode(&sha2::Sha256::digest(seed.as_bytes())[..8])
        };
        let tmp_rel = if dir.is_empty() {
            format!(".{name}.{tag}.part")
        } else {
            format!("{dir}/.{name}.{tag}.part")
        };
        let remote_tmp = self.remote(&tmp_rel)?;
        let mut tmp =
            tempfile::NamedTempFile::new().map_err(|e| ConnectorError::io("upload", e))?;
        tmp.write_all(bytes)
            .and_then(|()| tmp.flush())
            .map_err(|e| ConnectorError::io("upload", e))?;
        let local = tmp.path().display().to_string();
        self.run(
            &format!(
                "put {} {}\nrename {} {}\n",
                Self::quote(&local),
                Self::quote(&remote_tmp),
                Self::quote(&remote_tmp),
                Self::quote(&remote)
            ),
            path,
        )
        .map(drop)
    }

    fn rename(&self, from: &str, to: &str) -> Result<(), ConnectorError> {
        // OpenSSH's client uses the posix-rename extension, which replaces the target.
        let batch = format!(
            "rename {} {}\n",
            Self::quote(&self.remote(from)?),
            Self::quote(&self.remote(to)?)
        );
        self.run(&batch, from).map(drop)
    }

    fn exists(&self, path: &str) -> Result<bool, ConnectorError> {
        let (dir, name) = path
            .rsplit_once('/')
            .ok_or_else(|| ConnectorError::Invalid {
                location: "box path".to_owned(),
                reason: "must be inside a folder".to_owned(),
            })?;
        match self.list(dir) {
            Ok(names) => Ok(names.iter().any(|n| n == name)),
            Err(ConnectorError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn remove(&self, path: &str) -> Result<(), ConnectorError> {
        // `-rm`: a missing file is not an error (the box may have purged it).
        self.run(&format!("-rm {}\n", Self::quote(&self.remote(path)?)), path)
            .map(drop)
    }

    fn create_dir_all(&self, path: &str) -> Result<(), ConnectorError> {
        check_rel_path(path)?;
        let mut batch = String::new();
        let mut acc = self.target.base.clone();
        for part in path.split('/') {
            acc = format!("{acc}/{part}");
            // `-mkdir`: an existing folder is fine.
            batch.push_str(&format!("-mkdir {}\n", Self::quote(&acc)));
        }
        self.run(&batch, path).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = parse_url("sftp://hub@box.cd59.fr:2222/cd059/").unwrap();
        assert_eq!(
            t,
            SftpTarget {
                user: "hub".into(),
                host: "box.cd59.fr".into(),
                port: 2222,
                base: "/cd059".into()
            }
        );
        assert_eq!(parse_url("sftp://hub@h").unwrap().port, 22);
        assert_eq!(parse_url("sftp://hub@h").unwrap().base, "");
        for bad in [
            "ftp://hub@h",
            "sftp://h/x",
            "sftp://hub@h:x/",
            "sftp://hub@h/a/../b",
            "sftp://hub@h/a\"b",
            "sftp://h;rm@h/",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_are_classified() {
        use passerelle_connector::ErrorKind;
        let k = |s: &str| classify(s, "x", "h").kind();
        assert_eq!(k("File \"/a\" not found."), ErrorKind::NotFound);
        assert_eq!(
            k("root@h: Permission denied (publickey)."),
            ErrorKind::Unauthorized
        );
        assert_eq!(
            k("ssh: connect to host h port 1: Connection refused"),
            ErrorKind::Retryable
        );
        assert_eq!(k("weird"), ErrorKind::Permanent);
    }
}
