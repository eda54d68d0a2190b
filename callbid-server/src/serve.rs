//! Serving the example servers: the OS shutdown signal, and serving a router until a
//! stop signal with a limit on how long open requests may take to finish.

use std::future::{Future, IntoFuture};
use std::time::Duration;

use axum::Router;

/// Resolves on Ctrl-C (SIGINT) or SIGTERM. A signal that cannot be listened for is
/// reported on stderr and left out (the other one still works).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            eprintln!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                eprintln!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// Serves `router` on `listener` until `stop` resolves, then stops accepting and lets
/// in-flight requests finish (every event they log is committed before they answer).
/// Requests still open `drain` after the signal (endless streams such as the
/// dashboard's live feed) are dropped. Returns whether everything finished in time.
pub async fn serve_gracefully(
    listener: tokio::net::TcpListener,
    router: Router,
    stop: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> std::io::Result<bool> {
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let signal = async move {
        stop.await;
        let _ = tx.send(true);
    };
    // ConnectInfo: operator access counts wrong tokens per client IP.
    let app = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(signal)
        .into_future();
    tokio::select! {
        r = server => r.map(|()| true),
        _ = async {
            if rx.wait_for(|s| *s).await.is_ok() {
                tokio::time::sleep(drain).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => Ok(false),
    }
}
