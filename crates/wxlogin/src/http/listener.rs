//! The HTTP/1.1 listener: accepts connections, bounds how many are open at once and how long each
//! may take to send a request head or stay idle between requests, and shuts down gracefully.
//!
//! A connection is always in one of three phases: waiting for (the rest of) a request head, busy
//! with a request, or idle between requests. The first two are bounded by
//! `server.header_read_timeout_ms` and `server.idle_timeout_ms`; a busy one by the request time
//! limit of the router's own middleware. Hyper's own header-read timer is not used: it also runs
//! while a keep-alive connection is idle, which would make the idle limit meaningless.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt as _;

use crate::config::ServerSettings;
use crate::error::{ErrorBody, ErrorCode};

/// Hyper's own read-buffer limit (its default): heads larger than `server.max_header_bytes` but
/// within it are answered by the router's 431 in the error envelope; only beyond it does hyper
/// answer its own bodiless 431.
const HYPER_MAX_BUF: usize = 8192 + 4096 * 100;
/// Headers hyper parses at most (its own bodiless 431 beyond). The router refuses more than
/// [`super::middleware::MAX_HEADERS`] with the envelope first.
const HYPER_MAX_HEADERS: usize = 1_000;
/// After a failed `accept` (e.g. out of file descriptors), wait this long before the next: the
/// error would otherwise repeat at once in a busy loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// File descriptors kept free for everything but client connections (database, WeChat, logs).
const RESERVED_FDS: usize = 64;

/// What the listener enforces, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) header_read: Duration,
    pub(crate) idle: Duration,
    pub(crate) max_connections: usize,
    pub(crate) max_buf: usize,
    pub(crate) grace: Duration,
}

impl Limits {
    /// The limits of `server`, with `max_connections` lowered to what the process's open-file
    /// limit allows (`reserved` more descriptors are kept for the database pool and the rest).
    pub(crate) fn new(server: &ServerSettings, reserved: usize) -> Self {
        let open_files = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|text| soft_open_files(&text));
        let max_connections =
            fit_to_open_files(server.max_connections, open_files, reserved + RESERVED_FDS);
        if max_connections < server.max_connections {
            tracing::warn!(
                configured = server.max_connections,
                effective = max_connections,
                open_files = open_files.unwrap_or_default(),
                "server.max_connections lowered to fit the open-file limit (ulimit -n)"
            );
        }
        Self {
            header_read: Duration::from_millis(server.header_read_timeout_ms),
            idle: Duration::from_millis(server.idle_timeout_ms),
            max_connections,
            max_buf: HYPER_MAX_BUF.max(2 * server.max_header_bytes),
            grace: Duration::from_millis(server.shutdown_grace_ms),
        }
    }
}

/// The soft "Max open files" of a `/proc/<pid>/limits` text (`None` when unlimited or absent).
fn soft_open_files(limits: &str) -> Option<usize> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `configured`, or fewer when the open-file limit could not hold that many connections besides
/// `reserved` other descriptors (at least one connection either way).
fn fit_to_open_files(configured: usize, open_files: Option<usize>, reserved: usize) -> usize {
    match open_files {
        Some(limit) => configured.min(limit.saturating_sub(reserved)).max(1),
        None => configured,
    }
}

/// Serves `router` on `listener` until `shutdown` resolves; then stops accepting, lets the open
/// connections finish their requests for up to `limits.grace`, and drops the rest.
pub(crate) async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut shed_count: u64 = 0;
    let (stop_tx, stop_rx) = watch::channel(());
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match permits.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let router = router.clone();
                        connections.spawn(connection(stream, peer, router, limits, stop_rx.clone(), permit));
                    }
                    Err(_) => {
                        shed(&stream);
                        shed_count += 1;
                        // A flood must not flood the log too: the 1st, 2nd, 4th, 8th, ...
                        if shed_count.is_power_of_two() {
                            tracing::warn!(
                                max_connections = limits.max_connections,
                                refused_so_far = shed_count,
                                "too many open connections; new ones are refused"
                            );
                        }
                    }
                },
                // The client gave up before we accepted it: nothing to do.
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted
                    || e.kind() == io::ErrorKind::ConnectionReset => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a connection; retrying shortly");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    drop(listener);
    let _ = stop_tx.send(());
    let drained = tokio::time::timeout(limits.grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            grace_ms = limits.grace.as_millis() as u64,
            open = connections.len(),
            "shutdown grace period over; dropping the remaining connections"
        );
        connections.abort_all();
    }
    Ok(())
}

/// Over `server.max_connections`: a 503 in the error envelope, then the connection is closed at
/// once (dropping it), so that neither the process's descriptors nor the listen backlog fill up.
fn shed(stream: &TcpStream) {
    let body = ErrorBody {
        error: ErrorCode::Unavailable.as_str().to_owned(),
        message: "the server has too many open connections; retry later".to_owned(),
        request_id: ulid::Ulid::new().to_string(),
        login_ticket: None,
    };
    let body = serde_json::to_string(&body).unwrap_or_default();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    // A fresh socket's send buffer is empty, so the short answer fits without waiting; should it
    // not, the client sees the connection closed, which sheds the load just the same.
    let _ = stream.try_write(response.as_bytes());
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request head: since the connection opened, or since the first byte after
    /// the previous response.
    Head,
    /// A request is being handled.
    Busy,
    /// Between requests, with nothing received.
    Idle,
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: axum::Router,
    limits: Limits,
    mut stop: watch::Receiver<()>,
    _permit: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let (phase_tx, mut phase_rx) = watch::channel(Phase::Head);
    let phase = Arc::new(phase_tx);
    let io = TokioIo::new(Watched {
        inner: stream,
        phase: phase.clone(),
    });
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        // The peer address, for whatever needs the client's IP (`ConnectInfo<SocketAddr>`).
        request.extensions_mut().insert(ConnectInfo(peer));
        let busy = Busy::start(phase.clone());
        let router = router.clone();
        async move {
            let response = router.oneshot(request.map(axum::body::Body::new)).await;
            drop(busy);
            response.map_err(|never: Infallible| match never {})
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(true)
        .max_buf_size(limits.max_buf)
        .max_headers(HYPER_MAX_HEADERS);
    let mut conn = pin!(builder.serve_connection(io, service).with_upgrades());
    let mut closing = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            expired = expiry(&mut phase_rx, &limits) => match expired {
                Phase::Head => {
                    tracing::debug!("no complete request head in time; connection closed");
                    return;
                }
                // Idle (or stuck writing to a client that does not read) after a graceful close
                // was asked for: drop it.
                _ if closing => return,
                _ => {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            },
            _ = stop.changed(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

/// Resolves with the phase that outlasted its limit.
async fn expiry(phase: &mut watch::Receiver<Phase>, limits: &Limits) -> Phase {
    loop {
        let current = *phase.borrow_and_update();
        let limit = match current {
            Phase::Head => Some(limits.header_read),
            Phase::Idle => Some(limits.idle),
            Phase::Busy => None,
        };
        let timer = async {
            match limit {
                Some(limit) => tokio::time::sleep(limit).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = timer => return current,
            changed = phase.changed() => if changed.is_err() {
                // The connection is gone; its own future ends the task.
                return std::future::pending().await;
            },
        }
    }
}

/// Marks the connection busy while a request is handled, idle again afterwards.
struct Busy(Arc<watch::Sender<Phase>>);

impl Busy {
    fn start(phase: Arc<watch::Sender<Phase>>) -> Self {
        phase.send_replace(Phase::Busy);
        Self(phase)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.send_replace(Phase::Idle);
    }
}

/// The socket, noticing the first byte of a request after an idle spell.
struct Watched {
    inner: TcpStream,
    phase: Arc<watch::Sender<Phase>>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.phase.send_if_modified(|phase| {
                let was_idle = *phase == Phase::Idle;
                if was_idle {
                    *phase = Phase::Head;
                }
                was_idle
            });
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::{fit_to_open_files, soft_open_files};

    const LIMITS: &str = "Limit                     Soft Limit           Hard Limit           Units     \n\
        Max processes             63455                63455                processes \n\
        Max open files            1024                 524288               files     \n";

    #[test]
    fn reads_the_soft_open_file_limit() {
        assert_eq!(soft_open_files(LIMITS), Some(1024));
        assert_eq!(
            soft_open_files("Max open files  unlimited  unlimited files"),
            None
        );
        assert_eq!(soft_open_files(""), None);
    }

    #[test]
    fn connections_fit_the_open_file_limit() {
        assert_eq!(fit_to_open_files(10_000, Some(1024), 74), 950);
        assert_eq!(fit_to_open_files(100, Some(1024), 74), 100);
        assert_eq!(fit_to_open_files(100, None, 74), 100);
        assert_eq!(fit_to_open_files(100, Some(10), 74), 1);
    }
}
