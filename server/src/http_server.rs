//! The accept loop: every TCP connection counted, HTTP/1.1 served by hyper with a header timeout.
//!
//! `axum::serve` has no header timeout and no connection limit: 300 connections that sent half
//! a request (or nothing) stayed open for good, and with a modest file limit `/healthz`
//! stopped answering (issue 17, attack 7). Here:
//!
//! - every accepted connection holds a slot of `DOJO_MAX_TCP_CONNECTIONS` for as long as its
//!   socket lives, upgraded to a WebSocket or not (the slot travels inside the stream, which
//!   hyper hands to the WebSocket on upgrade); past the limit a new connection gets a bare 503
//!   and is closed at once;
//! - request headers must arrive within `DOJO_HEADER_TIMEOUT_SECS`; hyper runs the same timer
//!   while a keep-alive connection waits for its next request, so idle connections close too;
//! - a request body that stalls for `DOJO_HTTP_IDLE_SECS` fails the request (hyper has no
//!   body timeout; a body trickled a byte at a time is slowloris after the headers).
//!
//! Only HTTP/1.1 is served (as browsers speak it without TLS; WebSockets need it); plaintext
//! HTTP/2 with prior knowledge would bypass the header timeout.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::Metrics;
use crate::stall_guard::StallGuard;

/// What a connection over the limit reads before it is closed (best effort: it is written
/// only if the socket takes it at once).
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
connection: close\r\ncontent-length: 53\r\n\r\n{\"error\":\"too many connections\",\"code\":\"unavailable\"}";

/// How the HTTP edge treats connections.
#[derive(Debug, Clone)]
pub struct EdgeSettings {
    pub header_timeout: Duration,
    /// How long a request body may stall between two chunks.
    pub body_idle_timeout: Duration,
    pub max_tcp_connections: usize,
    /// How long, on shutdown, connections mid-request may take to finish.
    pub shutdown_grace: Duration,
    /// Proxies whose `X-Forwarded-For` is believed (see `client_addr.rs`).
    pub trusted_proxies: Arc<[ipnet::IpNet]>,
}

/// Serves `app` on `listener` until `shutdown` fires, then lets connections finish their
/// request (bounded by the grace period). Upgraded sockets are not waited for here: they watch
/// `shutdown` themselves (`AppState::drain`).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    settings: EdgeSettings,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    warn_if_files_run_out_first(settings.max_tcp_connections);
    let slots = Arc::new(Semaphore::new(settings.max_tcp_connections));
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    on_accept_error(error).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            metrics.edge.tcp_refused.inc();
            refuse(stream);
            continue;
        };
        // Small frames (keystrokes, cursors) must not wait for Nagle's algorithm: without
        // TCP_NODELAY, p95 propagation latency on localhost measured ~40 ms instead of ~5 ms.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let stream = CountedStream::new(stream, permit, metrics.edge.tcp_connections.clone());
        connections.spawn(connection(
            stream,
            peer,
            app.clone(),
            settings.clone(),
            metrics.clone(),
            shutdown.clone(),
        ));
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(settings.shutdown_grace, connections.wait()).await.is_err() {
        tracing::warn!(remaining = connections.len(), "HTTP requests still running after the grace period");
    }
}

async fn connection(
    stream: CountedStream,
    peer: SocketAddr,
    app: Router,
    settings: EdgeSettings,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    // The client's address for handlers (per-IP rate limits, /metrics access), as axum's
    // `into_make_service_with_connect_info` would provide it: the peer, or behind a trusted
    // proxy the client it names, per request (a proxy may reuse a connection for many clients).
    let body_idle_timeout = settings.body_idle_timeout;
    let trusted_proxies = settings.trusted_proxies.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let client = crate::client_addr::client_addr(peer, request.headers(), &trusted_proxies);
        let mut request = request.map(|body| StallGuard::new(body, body_idle_timeout));
        request.extensions_mut().insert(ConnectInfo(client));
        tower::ServiceExt::oneshot(app.clone(), request)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(settings.header_timeout);
    let connection = builder.serve_connection(TokioIo::new(stream), service).with_upgrades();
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = shutdown.cancelled() => {
            // Finishes the request in progress, if any, then closes.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        if error.is_timeout() {
            metrics.edge.header_timeouts.inc();
        }
        tracing::debug!(%error, %peer, "HTTP connection ended with an error");
    }
}

/// Closes a connection over the limit, telling it why if its socket takes the bytes at once.
fn refuse(stream: TcpStream) {
    let _ = stream.try_write(REFUSAL);
    drop(stream);
}

/// Accept errors are about this process (out of file descriptors) or one aborted connection,
/// never a reason to stop serving; back off on the former so the loop does not spin.
async fn on_accept_error(error: io::Error) {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "accept failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// File descriptors the process needs besides its connections (database pool, asset files,
/// Redis, logs), roughly.
const OTHER_FILES: u64 = 128;

/// The connection limit only protects the server if the process runs out of connection slots
/// before it runs out of file descriptors: otherwise `accept` fails and even `/healthz` stops
/// answering. Says so at start-up when the soft limit is too low (Linux; elsewhere silent).
fn warn_if_files_run_out_first(max_tcp_connections: usize) {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else { return };
    let Some(files) = open_files_soft_limit(&limits) else { return };
    let needed = u64::try_from(max_tcp_connections).unwrap_or(u64::MAX).saturating_add(OTHER_FILES);
    if files < needed {
        tracing::warn!(
            open_files = files,
            max_tcp_connections,
            "the open-file limit is below DOJO_MAX_TCP_CONNECTIONS plus {OTHER_FILES}: raise it (ulimit -n) \
             or lower DOJO_MAX_TCP_CONNECTIONS, or a connection flood can exhaust file descriptors"
        );
    }
}

/// The soft "Max open files" of `/proc/self/limits`; `None` when unlimited or unreadable.
fn open_files_soft_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files").split_whitespace().next()?.parse().ok()
}

/// A TCP stream holding its slot of the connection limit: the slot is given back when the
/// socket closes, whether hyper or a WebSocket task ends up owning it.
struct CountedStream {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    open: Gauge,
}

impl CountedStream {
    fn new(stream: TcpStream, permit: OwnedSemaphorePermit, open: Gauge) -> Self {
        open.inc();
        Self { stream, _permit: permit, open }
    }
}

impl Drop for CountedStream {
    fn drop(&mut self) {
        self.open.dec();
    }
}

impl AsyncRead for CountedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_file_limit_is_read_from_proc_limits() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             96369                96369                processes \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(open_files_soft_limit(limits), Some(1024));
        assert_eq!(open_files_soft_limit("Max open files  unlimited  unlimited  files"), None);
        assert_eq!(open_files_soft_limit(""), None);
    }

    #[test]
    fn the_refusal_is_a_complete_http_response() {
        let text = std::str::from_utf8(REFUSAL).expect("ASCII");
        let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length: "))
            .and_then(|n| n.parse().ok())
            .expect("a content length");
        assert_eq!(body.len(), length);
        let json: serde_json::Value = serde_json::from_str(body).expect("the API's JSON envelope");
        assert_eq!(json["code"], "unavailable");
    }
}
