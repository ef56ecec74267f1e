//! A WebDriver client for the browser tests (the few W3C endpoints they need, over
//! reqwest): Debian's chromium, headless, driven by chromium-driver; axe-core checks;
//! screenshots. Shared by `crates/server/tests/browser.rs` and the cli's FAJ form test.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

pub const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Driver {
    http: reqwest::Client,
    base: String,
    session: String,
    child: Child,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn missing(what: &str) -> bool {
    if std::env::var_os("CI").is_some() {
        panic!("{what} is missing (scripts/test installs it)");
    }
    #[allow(clippy::print_stderr)]
    {
        eprintln!("browser test not run: {what} is missing (run it through scripts/test)");
    }
    true
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Driver {
    pub async fn start(profile: &Path) -> Result<Self, String> {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start chromedriver: {e}"))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| e.to_string())?;
        let base = format!("http://127.0.0.1:{port}");
        let mut d = Self {
            http,
            base,
            session: String::new(),
            child,
        };
        for _ in 0..100 {
            if let Ok(r) = d.http.get(format!("{}/status", d.base)).send().await
                && r.status().is_success()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu",
                         "--disable-background-networking", "--disable-component-update",
                         "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                         format!("--user-data-dir={}", profile.display()),
                         "--window-size=1280,900"]
            }
        }}});
        let v = d.call("POST", "/session", caps).await?;
        d.session = v["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no session: {v}"))?
            .to_owned();
        d.cmd(
            "POST",
            "/timeouts",
            json!({"script": 30000, "pageLoad": 30000, "implicit": 2000}),
        )
        .await?;
        Ok(d)
    }

    pub async fn call(&self, method: &str, path: &str, body: Value) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body),
        };
        let r = req
            .send()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let v: Value = r
            .json()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        if v["value"]["error"].is_string() {
            return Err(format!("{method} {path}: {}", v["value"]["message"]));
        }
        Ok(v["value"].clone())
    }

    pub async fn cmd(&self, method: &str, path: &str, body: Value) -> Result<Value, String> {
        self.call(method, &format!("/session/{}{path}", self.session), body)
            .await
    }

    pub async fn goto(&self, url: &str) -> Result<(), String> {
        self.cmd("POST", "/url", json!({"url": url}))
            .await
            .map(|_| ())
    }

    pub async fn url(&self) -> Result<String, String> {
        Ok(self
            .cmd("GET", "/url", Value::Null)
            .await?
            .as_str()
            .unwrap_or("")
            .to_owned())
    }

    /// The URL once it satisfies `ok` (a click's navigation is not awaited), or the last one.
    pub async fn wait_url(&self, ok: impl Fn(&str) -> bool) -> Result<String, String> {
        let mut url = String::new();
        for _ in 0..50 {
            url = self.url().await?;
            if ok(&url) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(url)
    }

    /// The page source once it contains `text`, or the last one.
    pub async fn wait_text(&self, text: &str) -> Result<String, String> {
        let mut src = String::new();
        for _ in 0..50 {
            src = self.source().await?;
            if src.contains(text) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(src)
    }

    pub async fn source(&self) -> Result<String, String> {
        Ok(self
            .cmd("GET", "/source", Value::Null)
            .await?
            .as_str()
            .unwrap_or("")
            .to_owned())
    }

    pub async fn find(&self, css: &str) -> Result<String, String> {
        let v = self
            .cmd(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await?;
        v[ELEMENT]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("no element {css}"))
    }

    pub async fn type_in(&self, css: &str, text: &str) -> Result<(), String> {
        let e = self.find(css).await?;
        self.cmd(
            "POST",
            &format!("/element/{e}/value"),
            json!({"text": text}),
        )
        .await
        .map(|_| ())
    }

    pub async fn click(&self, css: &str) -> Result<(), String> {
        let e = self.find(css).await?;
        self.cmd("POST", &format!("/element/{e}/click"), json!({}))
            .await
            .map(|_| ())
    }

    pub async fn script(&self, script: &str) -> Result<Value, String> {
        self.cmd(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// Injects axe-core and returns the serious and critical violations of the page.
    pub async fn axe(&self, axe: &str) -> Result<Vec<String>, String> {
        self.script(&format!("{axe}\n;return true;")).await?;
        let v = self
            .cmd(
                "POST",
                "/execute/async",
                json!({"script": "const done = arguments[arguments.length - 1];\
                    axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations\
                      .filter(v => v.impact === 'serious' || v.impact === 'critical')\
                      .map(v => v.id + ' (' + v.impact + '): ' + v.help + ' at '\
                        + v.nodes.map(n => n.target.join(' ')).join(', '))))\
                    .catch(e => done(['axe failed: ' + e]));", "args": []}),
            )
            .await?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .map(|x| x.as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default())
    }

    pub async fn screenshot(&self, to: &Path) {
        if let Ok(v) = self.cmd("GET", "/screenshot", Value::Null).await
            && let Some(png) = v.as_str().and_then(base64_decode)
        {
            let _ = std::fs::create_dir_all(to.parent().unwrap());
            let _ = std::fs::write(to, png);
        }
    }
}

pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes: Vec<u8> = s
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= val(*c)? << (18 - 6 * i);
        }
        out.push((n >> 16) as u8);
        if chunk.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if chunk.len() > 3 {
            out.push(n as u8);
        }
    }
    Some(out)
}

pub fn axe_path() -> Option<PathBuf> {
    std::env::var_os("PASSERELLE_TEST_AXE")
        .map(PathBuf::from)
        .or_else(|| {
            Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../server/tests/fixtures/axe.min.js"))
        })
        .filter(|p| p.is_file())
}

pub fn check(cond: bool, what: &str) -> Result<(), String> {
    if cond { Ok(()) } else { Err(what.to_owned()) }
}

pub async fn accessible(d: &Driver, axe: &str, page: &str) -> Result<(), String> {
    let v = d.axe(axe).await?;
    check(v.is_empty(), &format!("{page}: axe-core found {v:#?}"))
}

/// What a browser test needs: Debian's chromium and chromium-driver, and axe-core.
/// axe-core's script, or `None` when one is missing outside CI (`missing` says which;
/// under CI it fails the test).
pub fn browser_and_axe() -> Option<String> {
    let has = |p: &str| Path::new(p).exists();
    if !has("/usr/bin/chromium") && missing("chromium") {
        return None;
    }
    if !has("/usr/bin/chromedriver") && missing("chromium-driver") {
        return None;
    }
    let Some(axe) = axe_path() else {
        missing("axe-core (PASSERELLE_TEST_AXE)");
        return None;
    };
    Some(std::fs::read_to_string(axe).expect("axe-core readable"))
}

/// An application served on a free loopback port for one test.
pub struct Served {
    pub base: String,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<Result<(), passerelle_server::ServerError>>,
}

pub async fn serve(app: axum::Router) -> Served {
    let listener = passerelle_server::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(passerelle_server::serve_listener(
        listener,
        app,
        stop.clone(),
        Duration::from_secs(1),
    ));
    Served { base, stop, task }
}

impl Served {
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Ends a browser session: when `result` failed, saves a screenshot as
/// `target/browser-screenshots/{name}.png` and panics naming it; the session is
/// closed either way.
pub async fn finish(d: &Driver, name: &str, result: Result<(), String>) {
    if let Err(e) = &result {
        let shot = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../../target/browser-screenshots/{name}.png"));
        d.screenshot(&shot).await;
        let _ = d.cmd("DELETE", "", Value::Null).await;
        panic!("{e} (screenshot: {})", shot.display());
    }
    let _ = d.cmd("DELETE", "", Value::Null).await;
}

/// Signs `who` in with `password` through the login form and waits for the home page.
pub async fn login(d: &Driver, base: &str, who: &str, password: &str) -> Result<(), String> {
    d.goto(&format!("{base}/connexion")).await?;
    d.type_in("#identifiant", who).await?;
    d.type_in("#mot_de_passe", password).await?;
    d.click("main button[type=submit]").await?;
    let home = format!("{base}/");
    d.wait_url(|u| u == home).await?;
    Ok(())
}
