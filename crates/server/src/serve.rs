//! Serving a router until shutdown: stop accepting, let in-flight requests finish (up to
//! a grace period), return.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::error::ServerError;

/// How long in-flight requests get after shutdown unless told otherwise.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

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
    let listener = bind(addr).await?;
    let signals = cancel_on_signals(shutdown.clone());
    let result = serve_listener(listener, router, shutdown, grace).await;
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
/// after that are dropped.
pub async fn serve_listener(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    grace: Duration,
) -> Result<(), ServerError> {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "http server listening");
    }
    let stop = shutdown.clone();
    let server = axum::serve(listener, router)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .into_future();
    let deadline = async {
        shutdown.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        r = server => {
            info!("http server stopped");
            r.map_err(ServerError::Serve)
        }
        () = deadline => {
            warn!(grace_s = grace.as_secs(), "in-flight requests still running after the grace period; dropping them");
            Ok(())
        }
    }
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
