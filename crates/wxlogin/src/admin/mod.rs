//! The admin console (`admin.listen`, `docs/admin.md`): server-rendered pages for operators, in
//! English and Chinese, over the same services as the `wxlogin` command line
//! (`services::admin`, `services::admins`, `services::signing_keys`, `services::resealing`,
//! `services::audit`), never a copy of them.
//!
//! Sign-in is `signin`'s. Every page needs a signed-in session ([`Viewer`]); every
//! state-changing form carries its session's CSRF token and is refused without it; what a role
//! may do is checked on the server, whatever the page showed: viewers see, operators act on users
//! and sessions, owners also on keys and apps. Every action is an audit entry naming the
//! administrator. The session cookie is HttpOnly and SameSite=Strict, Secure unless the listener
//! is on loopback.

mod context;
mod i18n;
mod pages;
mod sessions;
mod signin;
mod view;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::Query;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::state::AppState;
use context::{Console, html, redirect};
use i18n::Lang;
use sessions::Sessions;

/// The largest form the console reads, in bytes.
const FORM_LIMIT: usize = 16 * 1024;

/// Nothing from elsewhere: only this listener's stylesheet, script and forms; no inline script or
/// style, no frames.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

#[derive(Deserialize)]
struct Switch {
    #[serde(default)]
    to: String,
    #[serde(default)]
    back: String,
}

/// `GET /lang?to=zh&back=/users`: remembers the language in a cookie and goes back, to a path
/// of this console only.
async fn switch_language(Query(switch): Query<Switch>) -> Response {
    let lang = Lang::parse(&switch.to).unwrap_or(Lang::En);
    let back = if switch.back.starts_with('/') && !switch.back.starts_with("//") {
        switch.back.as_str()
    } else {
        "/"
    };
    let code = match lang {
        Lang::En => "en",
        Lang::Zh => "zh",
    };
    let cookie = format!(
        "{}={code}; Path=/; SameSite=Strict; Max-Age=31536000",
        i18n::LANG_COOKIE
    );
    redirect(back, HeaderValue::from_str(&cookie).ok())
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        view::STYLESHEET,
    )
        .into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        view::SCRIPT,
    )
        .into_response()
}

async fn not_found(headers: HeaderMap) -> Response {
    let lang = Lang::of(&headers);
    html(
        StatusCode::NOT_FOUND,
        view::refused(lang, lang.t("Not found.", "页面不存在。")),
    )
}

/// The headers of every response: the policy, no framing, no sniffing, no caching, no referrer.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

fn router(console: Console) -> axum::Router {
    use pages::{apps, audit, keys, overview, users};
    axum::Router::new()
        .route("/", get(overview::show))
        .route("/users", get(users::list))
        .route("/users/{id}", get(users::show))
        .route("/users/{id}/{action}", post(users::act))
        .route("/sessions", get(pages::sessions::list))
        .route("/sessions/{id}/revoke", post(pages::sessions::revoke))
        .route("/audit", get(audit::list))
        .route("/keys", get(keys::show))
        .route("/keys/rotate", post(keys::rotate))
        .route("/keys/retire", post(keys::retire))
        .route("/apps", get(apps::show))
        .route("/apps/refresh-token", post(apps::refresh_token))
        .route("/admins", get(pages::admins::show))
        .route("/admins/remove", post(pages::admins::remove))
        .route("/login", get(signin::sign_in_form).post(signin::sign_in))
        .route("/login/totp", get(signin::totp_form).post(signin::totp))
        .route("/logout", post(signin::sign_out))
        .route("/lang", get(switch_language))
        .route("/console.css", get(stylesheet))
        .route("/console.js", get(script))
        .fallback(not_found)
        .with_state(console)
        // Forms of a few fields: a larger body is refused (413) before it is read.
        .layer(axum::extract::DefaultBodyLimit::max(FORM_LIMIT))
        .layer(axum::middleware::map_response(security_headers))
}

/// Serves the console on `listener` until the task is aborted (when the server stops).
pub(crate) async fn serve(listener: tokio::net::TcpListener, app: AppState) {
    let secure = !listener
        .local_addr()
        .map(|addr| addr.ip().is_loopback())
        .unwrap_or(false);
    let console = Console {
        sessions: Arc::new(Sessions::new(app.settings.admin.session_idle_secs)),
        app,
        secure,
    };
    let service = router(console).into_make_service_with_connect_info::<SocketAddr>();
    if let Err(e) = axum::serve(listener, service).await {
        tracing::error!(error = %e, "the admin console listener stopped");
    }
}
