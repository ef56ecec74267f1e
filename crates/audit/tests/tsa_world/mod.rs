//! A throw-away time-stamping authority for tests: a CA and a TSA certificate made with
//! the `openssl` tool, `openssl ts -reply` for the answers, and a tiny HTTP responder
//! that pipes each POSTed TimeStampReq through it (shared by the audit and cli tests).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// One TSA: its folder (keys, certificates, openssl config) and its certificate in PEM.
pub struct Tsa {
    pub dir: PathBuf,
    pub cert_pem: String,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl tool is needed by the TSA tests");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Tsa {
    /// A CA and a TSA signed by it, RSA or EC P-256, in `dir` (created).
    pub fn new(dir: &Path, ec: bool) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let key = |name: &str| {
            if ec {
                openssl(
                    dir,
                    &[
                        "ecparam",
                        "-name",
                        "prime256v1",
                        "-genkey",
                        "-noout",
                        "-out",
                        name,
                    ],
                );
            } else {
                openssl(dir, &["genrsa", "-out", name, "2048"]);
            }
        };
        key("ca.key");
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                "ca.key",
                "-out",
                "ca.crt",
                "-subj",
                "/CN=Test CA",
                "-days",
                "2",
            ],
        );
        key("tsa.key");
        openssl(
            dir,
            &[
                "req",
                "-new",
                "-key",
                "tsa.key",
                "-out",
                "tsa.csr",
                "-subj",
                "/CN=Test TSA",
            ],
        );
        std::fs::write(
            dir.join("ext.cnf"),
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=critical,timeStamping\n",
        )
        .unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "tsa.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "tsa.crt",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
            ],
        );
        std::fs::write(
            dir.join("ts.cnf"),
            format!(
                "[ tsa ]\ndefault_tsa = tsa1\n[ tsa1 ]\ndir = {d}\nserial = {d}/serial\ncrypto_device = builtin\n\
                 signer_cert = {d}/tsa.crt\ncerts = {d}/ca.crt\nsigner_key = {d}/tsa.key\nsigner_digest = sha256\n\
                 default_policy = 1.2.3.4.1\ndigests = sha256, sha384, sha512\naccuracy = secs:1\n\
                 ordering = yes\ntsa_name = yes\ness_cert_id_chain = no\ness_cert_id_alg = sha256\n",
                d = dir.display()
            ),
        )
        .unwrap();
        std::fs::write(dir.join("serial"), "01\n").unwrap();
        let cert_pem = std::fs::read_to_string(dir.join("tsa.crt")).unwrap();
        Self {
            dir: dir.to_owned(),
            cert_pem,
        }
    }

    pub fn cert_path(&self) -> PathBuf {
        self.dir.join("tsa.crt")
    }

    /// `openssl ts -reply` to a DER TimeStampReq.
    pub fn reply(&self, query: &[u8]) -> Vec<u8> {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let q = self.dir.join(format!("q{n}.der"));
        let r = self.dir.join(format!("r{n}.der"));
        std::fs::write(&q, query).unwrap();
        openssl(
            &self.dir,
            &[
                "ts",
                "-reply",
                "-config",
                "ts.cnf",
                "-queryfile",
                q.to_str().unwrap(),
                "-out",
                r.to_str().unwrap(),
            ],
        );
        std::fs::read(&r).unwrap()
    }

    /// Serves the TSA over HTTP on 127.0.0.1 (one POST per connection); returns its URL.
    pub async fn serve(self: std::sync::Arc<Self>) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let tsa = self.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let (head_end, len) = loop {
                        let n = sock.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..p]).to_ascii_lowercase();
                            assert!(
                                head.contains("content-type: application/timestamp-query"),
                                "{head}"
                            );
                            let len = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            break (p + 4, len);
                        }
                    };
                    while buf.len() < head_end + len {
                        let n = sock.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let query = buf[head_end..head_end + len].to_vec();
                    let body = tokio::task::spawn_blocking(move || tsa.reply(&query))
                        .await
                        .unwrap();
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/timestamp-reply\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = sock.write_all(head.as_bytes()).await;
                    let _ = sock.write_all(&body).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        format!("http://{addr}/tsa")
    }
}
