//! What every log line of a request carries (its id, method, route, and the client address and
//! user once known), held in a task-local for as long as the request's future runs, instead of a
//! `tracing` span: a span is created, formatted, entered and left on every poll and closed again
//! for each request, which cost more than the rest of a small request (`docs/benchmarks.md`).
//! The line formatter ([`super::lines`]) writes it where the span's fields were.

use std::cell::OnceCell;
use std::future::Future;
use std::net::IpAddr;

use axum::extract::MatchedPath;
use axum::http::Method;

use crate::domain::UserId;

tokio::task_local! {
    static REQUEST: RequestContext;
}

/// The request being handled.
#[derive(Debug, Clone)]
pub(crate) struct RequestContext {
    id: String,
    method: Method,
    /// The route template (`/v1/avatars/{name}`), never the raw path, which may carry ids.
    route: Option<MatchedPath>,
    client_ip: OnceCell<IpAddr>,
    user: OnceCell<UserId>,
}

impl RequestContext {
    pub(crate) fn new(id: String, method: Method, route: Option<MatchedPath>) -> Self {
        Self {
            id,
            method,
            route,
            client_ip: OnceCell::new(),
            user: OnceCell::new(),
        }
    }

    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn method(&self) -> &str {
        self.method.as_str()
    }

    /// `-` for a path no route serves.
    pub(crate) fn route(&self) -> &str {
        self.route.as_ref().map_or("-", MatchedPath::as_str)
    }

    pub(crate) fn client_ip(&self) -> Option<IpAddr> {
        self.client_ip.get().copied()
    }

    pub(crate) fn user(&self) -> Option<&UserId> {
        self.user.get()
    }
}

/// Runs `work` as the request `context`: every line it logs carries the context.
pub(crate) async fn in_request<F: Future>(context: RequestContext, work: F) -> F::Output {
    REQUEST.scope(context, work).await
}

/// `work`, to be spawned, as part of the current request (if any): what it logs carries the
/// request's fields as they are now, as a span's `in_current_span` would have.
pub(crate) fn carried<F: Future>(work: F) -> impl Future<Output = F::Output> {
    let context = with_current(RequestContext::clone);
    async move {
        match context {
            Some(context) => in_request(context, work).await,
            None => work.await,
        }
    }
}

/// Calls `f` with the current request, if the caller runs inside one.
pub(crate) fn with_current<R>(f: impl FnOnce(&RequestContext) -> R) -> Option<R> {
    REQUEST.try_with(f).ok()
}

/// The current request's id (`-` outside a request).
pub(crate) fn current_id() -> String {
    with_current(|request| request.id.clone()).unwrap_or_else(|| "-".to_owned())
}

/// The client address of the current request, once resolved (the first one sticks).
pub(crate) fn record_client_ip(ip: IpAddr) {
    with_current(|request| {
        let _ = request.client_ip.set(ip);
    });
}

/// The user an access token identified (the first one sticks: a request has one token).
pub(crate) fn record_user(user: &UserId) {
    with_current(|request| {
        if request.user.get().is_none() {
            let _ = request.user.set(user.clone());
        }
    });
}
