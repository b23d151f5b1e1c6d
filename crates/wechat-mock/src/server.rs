//! Serving the router over HTTP/1 with our own accept loop, so the `close` fault can drop a
//! connection without any response (axum's `serve` always answers).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt;

use crate::config::MockConfig;
use crate::mock::Mock;
use crate::reply::{CloseConnection, Outcome};

/// How long in-flight requests may finish after shutdown is asked; hanging ones are then cut off.
const DRAIN: Duration = Duration::from_secs(1);

/// A simulator serving on a local port. Dropping it stops the server.
#[derive(Debug)]
pub struct MockHandle {
    addr: SocketAddr,
    mock: Mock,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl MockHandle {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn mock(&self) -> &Mock {
        &self.mock
    }

    /// Stops accepting, lets in-flight requests finish (briefly) and waits for the server to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            // The server may already be gone; then there is nothing to stop.
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MockHandle {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Starts a simulator on `127.0.0.1` on a free port.
pub async fn spawn(config: MockConfig) -> std::io::Result<MockHandle> {
    spawn_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
}

/// Starts a simulator on `addr`.
pub async fn spawn_on(addr: SocketAddr, config: MockConfig) -> std::io::Result<MockHandle> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let mock = Mock::new(config);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, mock.clone(), async move {
        // A dropped sender also means stop.
        let _ = stopped.await;
    }));
    Ok(MockHandle {
        addr,
        mock,
        stop: Some(stop),
        task: Some(task),
    })
}

/// Serves `mock` on `listener` until `shutdown` completes; then in-flight requests get a short
/// while to finish and the rest (e.g. hanging ones) are cut off.
pub async fn serve(
    listener: TcpListener,
    mock: Mock,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = router(mock);
    let mut connections = JoinSet::new();
    let (stop_connections, stopping) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, router.clone(), stopping.clone()));
                }
                Err(error) => {
                    // Usually out of file descriptors or a connection reset before accept: wait
                    // instead of spinning, and keep serving.
                    tracing::warn!(%error, "wechat-mock: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let _ = stop_connections.send(true);
    let drained = tokio::time::timeout(DRAIN, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.abort_all();
    }
    Ok(())
}

/// The service's error that makes hyper drop the connection without a response.
#[derive(Debug)]
struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by a close fault")
    }
}

impl std::error::Error for DropConnection {}

async fn serve_connection(
    stream: TcpStream,
    router: axum::Router,
    mut stopping: watch::Receiver<bool>,
) {
    let service = service_fn(move |request: hyper::Request<Incoming>| {
        let router = router.clone();
        async move {
            let response = match router.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            if response.extensions().get::<CloseConnection>().is_some() {
                Err(DropConnection)
            } else {
                Ok(response)
            }
        }
    });
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, "wechat-mock: connection ended");
            }
        }
        // The flag only ever goes from false to true, so any change means stop.
        _ = stopping.changed() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// One debug line per request: method, path, status and errcode. The query string and bodies are
/// left out, as they carry secrets, tokens and session keys.
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path: String = request.uri().path().chars().take(200).collect();
    let response = next.run(request).await;
    let errcode = response
        .extensions()
        .get::<Outcome>()
        .map(|outcome| outcome.0);
    tracing::debug!(
        %method,
        %path,
        status = response.status().as_u16(),
        errcode,
        "wechat-mock request"
    );
    response
}

/// The WeChat endpoints plus the `/__mock/` control API, for `mock`.
///
/// The `close` fault needs the connection handling of [`serve`] (or [`spawn`]); served any other
/// way, a call hit by it is answered with a bare 500 instead.
pub fn router(mock: Mock) -> axum::Router {
    crate::wechat_api::routes()
        .merge(crate::control::routes())
        .fallback(crate::wechat_api::unknown_path)
        .layer(axum::middleware::from_fn(log_request))
        .with_state(mock)
}
