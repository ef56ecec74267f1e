//! Serving a router until shutdown: stop accepting, let in-flight requests finish (up to
//! a grace period), return.
//!
//! Hostile clients are bounded by `HttpLimits`: a header read timeout (a client that
//! trickles its headers is cut), an idle timeout (a kept-alive connection with no
//! request is closed), a connection limit, headers of bounded size, and a default body
//! limit that routes may lower or raise (the FAJ webhook sets its own). At the
//! connection limit, the oldest idle connection is closed to make room, so that idle
//! connections, however many, never keep `/health` from answering; when every
//! connection is busy the newcomer is closed instead.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::connect_info::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::{debug, info, warn};

use crate::error::ServerError;

/// How long in-flight requests get after shutdown unless told otherwise.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// `[server.http]`: what one client may cost the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpLimits {
    /// Time a client has to send a request's headers, in ms.
    pub header_read_timeout_ms: u64,
    /// A connection with no request in progress for this long is closed, in ms.
    pub idle_timeout_ms: u64,
    /// Connections open at once; idle ones are closed first to make room.
    pub max_connections: usize,
    /// Largest request head (request line and headers), in bytes.
    pub max_header_bytes: usize,
    /// Largest request body a route reads unless it says otherwise, in bytes.
    pub max_body_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 30_000,
            max_connections: 512,
            max_header_bytes: 16 * 1024,
            max_body_bytes: 64 * 1024,
        }
    }
}

/// Binds `addr` and serves `router` until `shutdown` is cancelled, with
/// [`DEFAULT_GRACE`] for in-flight requests; see [`serve_listener`]. Ctrl-C and SIGTERM
/// cancel `shutdown`, so every task holding a clone of it (scheduler, consumers) stops
/// with the server.
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    serve_with_grace(addr, router, shutdown, DEFAULT_GRACE).await
}

/// [`serve`] with another grace period (`ServerConfig::shutdown_grace`).
pub async fn serve_with_grace(
    addr: SocketAddr,
    router: Router,
    shutdown: CancellationToken,
    grace: Duration,
) -> Result<(), ServerError> {
    serve_with_limits(addr, router, shutdown, grace, &HttpLimits::default()).await
}

/// [`serve_with_grace`] with the given limits (`ServerConfig::http`).
pub async fn serve_with_limits(
    addr: SocketAddr,
    router: Router,
    shutdown: CancellationToken,
    grace: Duration,
    limits: &HttpLimits,
) -> Result<(), ServerError> {
    let listener = bind(addr).await?;
    let signals = cancel_on_signals(shutdown.clone());
    let result = serve_listener_with(listener, router, shutdown, grace, limits).await;
    signals.abort();
    result
}

/// Binds a listener (port 0 picks a free port; read it with `local_addr`).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

/// Serves until `shutdown` is cancelled, then stops accepting connections, closes idle
/// ones and waits for in-flight requests, at most `grace`; the connections still open
/// after that are dropped. Default limits.
pub async fn serve_listener(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    grace: Duration,
) -> Result<(), ServerError> {
    serve_listener_with(listener, router, shutdown, grace, &HttpLimits::default()).await
}

/// One open connection, as the accept loop sees it.
#[derive(Debug)]
struct Tracked {
    /// Requests in progress.
    busy: Arc<AtomicUsize>,
    /// When the last request ended (or the connection opened), in ms since start.
    last: Arc<AtomicU64>,
    close: CancellationToken,
}

/// The open connections by id (ids grow: the smallest idle one is the oldest).
#[derive(Debug, Default)]
struct Registry {
    open: BTreeMap<u64, Tracked>,
}

impl Registry {
    /// Closes the oldest idle connection; false when all are busy.
    fn evict_idle(&mut self) -> bool {
        let idle = self
            .open
            .iter()
            .find(|(_, t)| t.busy.load(Ordering::Acquire) == 0 && !t.close.is_cancelled())
            .map(|(id, _)| *id);
        match idle.and_then(|id| self.open.get(&id)) {
            Some(t) => {
                t.close.cancel();
                true
            }
            None => false,
        }
    }

    fn live(&self) -> usize {
        self.open
            .values()
            .filter(|t| !t.close.is_cancelled())
            .count()
    }
}

/// [`serve_listener`] with the given limits.
pub async fn serve_listener_with(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    grace: Duration,
    limits: &HttpLimits,
) -> Result<(), ServerError> {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, max_connections = limits.max_connections, "http server listening");
    }
    let router = router.layer(DefaultBodyLimit::max(limits.max_body_bytes));
    let registry = Arc::new(Mutex::new(Registry::default()));
    let tracker = tokio_util::task::TaskTracker::new();
    let started = Instant::now();
    let mut next_id = 0u64;
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_read_timeout_ms))
        .max_header_size(limits.max_header_bytes)
        .keep_alive(true);
    let idle = Duration::from_millis(limits.idle_timeout_ms);
    loop {
        let (stream, remote) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: wait rather than spin.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let tracked = {
            let mut reg = registry.lock().unwrap_or_else(|p| p.into_inner());
            if reg.live() >= limits.max_connections && !reg.evict_idle() {
                debug!("connection limit reached and every connection busy: newcomer closed");
                drop(stream);
                continue;
            }
            next_id += 1;
            let t = Tracked {
                busy: Arc::new(AtomicUsize::new(0)),
                last: Arc::new(AtomicU64::new(started.elapsed().as_millis() as u64)),
                close: shutdown.child_token(),
            };
            let copy = Tracked {
                busy: t.busy.clone(),
                last: t.last.clone(),
                close: t.close.clone(),
            };
            reg.open.insert(next_id, t);
            copy
        };
        let id = next_id;
        let router = router.clone();
        let builder = builder.clone();
        let registry = registry.clone();
        tracker.spawn(async move {
            let Tracked { busy, last, close } = tracked;
            let service = {
                let (busy, last) = (busy.clone(), last.clone());
                hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(remote));
                    busy.fetch_add(1, Ordering::AcqRel);
                    let (busy, last) = (busy.clone(), last.clone());
                    let router = router.clone();
                    async move {
                        let resp = router.oneshot(req.map(axum::body::Body::new)).await;
                        last.store(started.elapsed().as_millis() as u64, Ordering::Release);
                        busy.fetch_sub(1, Ordering::AcqRel);
                        resp
                    }
                })
            };
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let tick = (idle / 4).max(Duration::from_millis(25));
            let mut closing = false;
            loop {
                tokio::select! {
                    r = conn.as_mut() => {
                        if let Err(e) = r {
                            debug!(error = %e, "connection ended");
                        }
                        break;
                    }
                    () = close.cancelled(), if !closing => {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    () = tokio::time::sleep(tick), if !closing => {
                        let now = started.elapsed().as_millis() as u64;
                        let quiet = now.saturating_sub(last.load(Ordering::Acquire));
                        if busy.load(Ordering::Acquire) == 0 && quiet >= idle.as_millis() as u64 {
                            closing = true;
                            conn.as_mut().graceful_shutdown();
                        }
                    }
                }
            }
            registry
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .open
                .remove(&id);
        });
    }
    drop(listener);
    tracker.close();
    // Idle connections close at once (their tokens are children of `shutdown`); busy
    // ones finish their request, within the grace period.
    tokio::select! {
        () = tracker.wait() => {
            info!("http server stopped");
        }
        () = tokio::time::sleep(grace) => {
            warn!(grace_s = grace.as_secs(), "in-flight requests still running after the grace period; dropping them");
        }
    }
    Ok(())
}

/// Resolves on Ctrl-C or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            // No handler could be installed: never resolve from this branch.
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => info!("ctrl-c received; shutting down"),
        () = term => info!("SIGTERM received; shutting down"),
    }
}

/// Cancels `token` on Ctrl-C or SIGTERM, so that the server, the scheduler and the
/// consumers, all holding clones, stop together.
pub fn cancel_on_signals(token: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tokio::select! {
            () = shutdown_signal() => token.cancel(),
            () = token.cancelled() => {}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::oneshot;

    async fn request(addr: SocketAddr, path: &str) -> std::io::Result<String> {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        Ok(out)
    }

    #[tokio::test]
    async fn in_flight_requests_finish_after_shutdown() {
        let (entered_tx, entered) = oneshot::channel::<()>();
        let entered_tx = std::sync::Arc::new(std::sync::Mutex::new(Some(entered_tx)));
        let router = Router::new()
            .route("/health", get(|| async { "ok" }))
            .route(
                "/slow",
                get(move || {
                    if let Some(tx) = entered_tx.lock().unwrap().take() {
                        let _ = tx.send(());
                    }
                    async {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        "done"
                    }
                }),
            );
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve_listener(
            listener,
            router,
            shutdown.clone(),
            Duration::from_secs(10),
        ));
        assert!(request(addr, "/health").await.unwrap().ends_with("ok"));
        let slow = tokio::spawn(request(addr, "/slow"));
        entered.await.unwrap();
        shutdown.cancel();
        let answer = slow.await.unwrap().unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("done"), "{answer}");
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("server returns after the last request")
            .unwrap()
            .unwrap();
        assert!(
            request(addr, "/health").await.is_err(),
            "no longer accepting"
        );
    }

    #[tokio::test]
    async fn grace_period_bounds_the_wait() {
        let router = Router::new().route(
            "/stuck",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                "never"
            }),
        );
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve_listener(
            listener,
            router,
            shutdown.clone(),
            Duration::from_millis(100),
        ));
        let _stuck = tokio::spawn(request(addr, "/stuck"));
        tokio::time::sleep(Duration::from_millis(50)).await;
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("server gives up after the grace period")
            .unwrap()
            .unwrap();
    }

    /// Hostile case 8: with no header or idle timeout, about 1,000 idle connections
    /// exhausted file descriptors and `/health` stopped answering. Now 2,000 idle
    /// connections (loopback, bounded) leave it answering: the oldest idle ones are
    /// closed past the connection limit, and each lingers at most the timeouts.
    #[tokio::test]
    async fn health_answers_under_2000_idle_connections() {
        let router = Router::new().route("/health", get(|| async { "ok" }));
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let limits = HttpLimits {
            max_connections: 256,
            ..HttpLimits::default()
        };
        let server = tokio::spawn(async move {
            serve_listener_with(
                listener,
                router,
                shutdown.clone(),
                Duration::from_secs(1),
                &limits,
            )
            .await
        });
        let mut idle = Vec::with_capacity(2000);
        for _ in 0..2000 {
            idle.push(TcpStream::connect(addr).await.expect("loopback connect"));
        }
        let t0 = std::time::Instant::now();
        let answer = tokio::time::timeout(Duration::from_secs(5), request(addr, "/health"))
            .await
            .expect("/health answers within 5 s")
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("ok"));
        assert!(t0.elapsed() < Duration::from_secs(5));
        // The server closed most of the idle ones (it keeps at most 256 open).
        let mut closed = 0;
        for s in &mut idle {
            let mut b = [0u8; 1];
            if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(2), s.read(&mut b)).await
            {
                closed += 1;
            }
        }
        assert!(closed >= 2000 - 256 - 1, "{closed} closed");
        drop(idle);
        server.abort();
    }

    /// A client trickling its headers is cut at the header read timeout; a kept-alive
    /// connection with no request is closed at the idle timeout; a body over the limit
    /// is refused (413).
    #[tokio::test]
    async fn slow_and_idle_clients_are_cut_and_bodies_are_bounded() {
        let router = Router::new()
            .route("/health", get(|| async { "ok" }))
            .route(
                "/echo",
                axum::routing::post(
                    |body: axum::body::Bytes| async move { body.len().to_string() },
                ),
            );
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let limits = HttpLimits {
            header_read_timeout_ms: 300,
            idle_timeout_ms: 300,
            ..HttpLimits::default()
        };
        let stop = shutdown.clone();
        let server = tokio::spawn(async move {
            serve_listener_with(listener, router, stop, Duration::from_secs(1), &limits).await
        });
        let closed_within = |mut s: TcpStream, limit: Duration| async move {
            let mut buf = vec![0u8; 4096];
            let t0 = std::time::Instant::now();
            loop {
                match tokio::time::timeout(limit, s.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => return t0.elapsed(),
                    Ok(Ok(_)) => continue,
                    Err(_) => panic!("still open after {limit:?}"),
                }
            }
        };
        // Slowloris: a request line and never the end of the headers.
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        closed_within(slow, Duration::from_secs(3)).await;
        // Kept alive after one answer, then silent.
        let mut kept = TcpStream::connect(addr).await.unwrap();
        kept.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        closed_within(kept, Duration::from_secs(3)).await;
        // A body over the default limit (64 KiB).
        let mut big = TcpStream::connect(addr).await.unwrap();
        big.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let _ = big.write_all(&vec![b'x'; 100_000]).await;
        let mut out = String::new();
        let _ = big.read_to_string(&mut out).await;
        assert!(out.starts_with("HTTP/1.1 413"), "{out}");
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }

    #[test]
    fn limits_have_safe_defaults_and_parse() {
        let l = HttpLimits::default();
        assert_eq!(l.max_connections, 512);
        let c: crate::ServerConfig = toml::from_str("[http]\nmax_connections = 64\n").unwrap();
        assert_eq!(c.http.max_connections, 64);
        assert_eq!(c.http.idle_timeout_ms, l.idle_timeout_ms);
        c.validate().unwrap();
        let c: crate::ServerConfig = toml::from_str("[http]\nmax_connections = 0\n").unwrap();
        assert!(c.validate().is_err());
        assert!(toml::from_str::<crate::ServerConfig>("[http]\nmax_conections = 1\n").is_err());
    }

    #[tokio::test]
    async fn bind_error_names_the_address() {
        let taken = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = taken.local_addr().unwrap();
        let err = bind(addr).await.unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Unavailable);
        assert!(
            err.to_string()
                .starts_with(&format!("cannot listen on {addr}: ")),
            "{err}"
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn sigterm_cancels_the_token_and_stops_the_server() {
        // Our own SIGTERM listener, first: from now on the signal cannot end the
        // test process, whoever else listens.
        let mut own =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve_with_grace(
            "127.0.0.1:0".parse().unwrap(),
            Router::new().route("/health", get(|| async { "ok" })),
            shutdown.clone(),
            Duration::from_secs(1),
        ));
        // The server installs its listener after it starts: signal until it stops.
        for _ in 0..50 {
            if server.is_finished() {
                break;
            }
            let status = std::process::Command::new("kill")
                .args(["-TERM", &std::process::id().to_string()])
                .status()
                .unwrap();
            assert!(status.success());
            let _ = tokio::time::timeout(Duration::from_millis(100), own.recv()).await;
        }
        assert!(
            shutdown.is_cancelled(),
            "the signal reached the shared token"
        );
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("server stopped")
            .unwrap()
            .unwrap();
    }
}
