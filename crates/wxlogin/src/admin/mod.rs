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

mod i18n;
mod pages;
mod sessions;
mod signin;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::domain::{AdminName, AdminRole};
use crate::services::admin::Admin;
use crate::services::audit::{Actor, AuditEvent, Origin};
use crate::state::AppState;
use i18n::{Lang, Tz};
use sessions::{Session, Sessions, Stage};

const COOKIE: &str = "wxlogin_admin";

/// The largest form the console reads, in bytes.
const FORM_LIMIT: usize = 16 * 1024;

/// Nothing from elsewhere: only this listener's stylesheet, script and forms; no inline script or
/// style, no frames.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

#[derive(Clone)]
struct Console {
    app: AppState,
    sessions: Arc<Sessions>,
    /// Cookies are `Secure` unless the console listens on loopback.
    secure: bool,
}

impl Console {
    fn now(&self) -> i64 {
        self.app.clock.unix_millis()
    }

    /// Records a sign-in event in the audit log, naming the administrator, from the connection's
    /// address (the console trusts no forwarding header) and user agent.
    async fn record(&self, peer: SocketAddr, headers: &HeaderMap, event: AuditEvent) {
        let (AuditEvent::AdminSignedIn { admin }
        | AuditEvent::AdminSignInFailed { admin, .. }
        | AuditEvent::AdminSignedOut { admin }) = &event
        else {
            return;
        };
        let actor = Actor::Admin(admin.as_str().to_owned());
        let user_agent = headers
            .get(header::USER_AGENT)
            .and_then(|value| value.to_str().ok());
        let origin = Origin::new(Some(peer.ip().to_canonical()), user_agent);
        crate::services::audit::record(&self.app, actor, &origin, event).await;
    }

    fn session(&self, headers: &HeaderMap) -> Option<(String, Session)> {
        let token = cookie(headers)?;
        let session = self.sessions.get(&token, self.now())?;
        Some((token, session))
    }

    fn set_cookie(&self, token: &str) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let text = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}");
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    fn clear_cookie(&self) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let text = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}");
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// A new session (a new token: the one before a sign-in step is never reused after it).
    fn start(&self, stage: Stage, before: Option<&str>) -> (HeaderValue, Session) {
        if let Some(token) = before {
            self.sessions.end(token);
        }
        let (token, session) = self.sessions.start(stage, self.now());
        (self.set_cookie(&token), session)
    }

    /// The actions of `viewer`, in this server: the audit log names them.
    fn admin(&self, viewer: &Viewer) -> Admin {
        Admin::in_server(&self.app, Actor::Admin(viewer.name.as_str().to_owned()))
    }
}

/// The signed-in administrator of a request, with the language and time zone of their browser
/// and the page they are on. A request without a signed-in session is sent to `/login`.
pub(crate) struct Viewer {
    pub name: AdminName,
    pub role: AdminRole,
    pub csrf: String,
    pub lang: Lang,
    pub tz: Tz,
    /// The path and query of this request (the language switch comes back to it).
    pub path: String,
}

impl Viewer {
    /// Whether the role allows what needs `role`.
    pub fn may(&self, role: AdminRole) -> bool {
        self.role >= role
    }

    /// A state-changing request: its form's CSRF token must be the session's, and the role must
    /// allow it. The refusal is the response.
    pub fn check(&self, csrf: &str, role: AdminRole) -> Result<(), Box<Response>> {
        if !csrf_ok(&self.csrf, csrf) {
            return Err(Box::new(forbidden(self.lang)));
        }
        if !self.may(role) {
            return Err(Box::new(self.refuse(
                StatusCode::FORBIDDEN,
                &format!(
                    "{} {}",
                    self.lang.t(
                        "Your role cannot do this; it needs the role",
                        "你的角色无权执行此操作，需要角色："
                    ),
                    pages::role_name(self.lang, role)
                ),
            )));
        }
        Ok(())
    }

    pub fn refuse(&self, status: StatusCode, message: &str) -> Response {
        html(status, pages::refused(self.lang, message))
    }
}

impl FromRequestParts<Console> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, Response> {
        let Some((
            token,
            Session {
                stage: Stage::SignedIn { name, .. },
                csrf,
                ..
            },
        )) = console.session(&parts.headers)
        else {
            return Err(redirect("/login", None));
        };
        let lang = Lang::of(&parts.headers);
        // The account as it is now: a removed administrator is signed out at their next request,
        // and a changed role applies at once.
        let role = match console.app.store.get_admin(&name).await {
            Ok(Some(account)) => account.role,
            Ok(None) => {
                console.sessions.end(&token);
                return Err(redirect("/login", Some(console.clear_cookie())));
            }
            Err(e) => {
                tracing::warn!(error = %e, "console: cannot read the administrator");
                return Err(html(
                    StatusCode::SERVICE_UNAVAILABLE,
                    pages::refused(
                        lang,
                        lang.t("The database is unavailable.", "数据库不可用。"),
                    ),
                ));
            }
        };
        let path = parts
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
        Ok(Self {
            name,
            role,
            csrf,
            lang,
            tz: Tz::of(&parts.headers),
            path,
        })
    }
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    i18n::cookie(headers, COOKIE)
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

fn redirect(to: &str, cookie: Option<HeaderValue>) -> Response {
    let location = HeaderValue::from_str(to).unwrap_or_else(|_| HeaderValue::from_static("/"));
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response();
    if let Some(cookie) = cookie {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

fn with_cookie(mut response: Response, cookie: HeaderValue) -> Response {
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    response
}

/// The form's CSRF token matches its session's, compared in constant time.
fn csrf_ok(expected: &str, given: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    expected.as_bytes().ct_eq(given.as_bytes()).into()
}

fn forbidden(lang: Lang) -> Response {
    html(
        StatusCode::FORBIDDEN,
        pages::refused(
            lang,
            lang.t(
                "This form has expired or did not come from this console. Sign in again.",
                "此表单已过期或并非来自本管理台。请重新登录。",
            ),
        ),
    )
}

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
        pages::STYLESHEET,
    )
        .into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        pages::SCRIPT,
    )
        .into_response()
}

async fn not_found(headers: HeaderMap) -> Response {
    let lang = Lang::of(&headers);
    html(
        StatusCode::NOT_FOUND,
        pages::refused(lang, lang.t("Not found.", "页面不存在。")),
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
        .route("/users/{id}/ban", post(users::ban))
        .route("/users/{id}/unban", post(users::unban))
        .route("/users/{id}/unbind-phone", post(users::unbind_phone))
        .route("/users/{id}/reveal-phone", post(users::reveal_phone))
        .route("/users/{id}/revoke-sessions", post(users::revoke_sessions))
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
