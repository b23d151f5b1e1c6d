//! What every handler of the console works with: the console's state ([`Console`]), the signed-in
//! administrator of a request ([`Viewer`]: their role checked against the database at every
//! request), cookies, CSRF checks and the plain responses.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::i18n::{self, Lang, Tz};
use super::sessions::{Session, Sessions, Stage};
use super::view;
use crate::domain::{AdminName, AdminRole};
use crate::services::admin::Admin;
use crate::services::audit::{Actor, AuditEvent, Origin};
use crate::state::AppState;

const COOKIE: &str = "wxlogin_admin";

#[derive(Clone)]
pub(crate) struct Console {
    pub(crate) app: AppState,
    pub(crate) sessions: Arc<Sessions>,
    /// Cookies are `Secure` unless the console listens on loopback.
    pub(crate) secure: bool,
}

impl Console {
    pub(crate) fn now(&self) -> i64 {
        self.app.clock.unix_millis()
    }

    /// Records a sign-in event in the audit log, naming the administrator, from the connection's
    /// address (the console trusts no forwarding header) and user agent.
    pub(crate) async fn record(&self, peer: SocketAddr, headers: &HeaderMap, event: AuditEvent) {
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

    pub(crate) fn session(&self, headers: &HeaderMap) -> Option<(String, Session)> {
        let token = cookie(headers)?;
        let session = self.sessions.get(&token, self.now())?;
        Some((token, session))
    }

    pub(crate) fn set_cookie(&self, token: &str) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let text = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}");
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    pub(crate) fn clear_cookie(&self) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let text = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}");
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// A new session (a new token: the one before a sign-in step is never reused after it).
    pub(crate) fn start(&self, stage: Stage, before: Option<&str>) -> (HeaderValue, Session) {
        if let Some(token) = before {
            self.sessions.end(token);
        }
        let (token, session) = self.sessions.start(stage, self.now());
        (self.set_cookie(&token), session)
    }

    /// The actions of `viewer`, in this server: the audit log names them.
    pub(crate) fn admin(&self, viewer: &Viewer) -> Admin {
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
                    view::role_name(self.lang, role)
                ),
            )));
        }
        Ok(())
    }

    pub fn refuse(&self, status: StatusCode, message: &str) -> Response {
        html(status, view::refused(self.lang, message))
    }
}

impl FromRequestParts<Console> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, Response> {
        let Some((
            token,
            Session {
                stage: Stage::SignedIn(name),
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
                    view::refused(
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

pub(crate) fn cookie(headers: &HeaderMap) -> Option<String> {
    i18n::cookie(headers, COOKIE)
}

pub(crate) fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

pub(crate) fn redirect(to: &str, cookie: Option<HeaderValue>) -> Response {
    let location = HeaderValue::from_str(to).unwrap_or_else(|_| HeaderValue::from_static("/"));
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response();
    if let Some(cookie) = cookie {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

pub(crate) fn with_cookie(mut response: Response, cookie: HeaderValue) -> Response {
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    response
}

/// The form's CSRF token matches its session's, compared in constant time.
pub(crate) fn csrf_ok(expected: &str, given: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    expected.as_bytes().ct_eq(given.as_bytes()).into()
}

pub(crate) fn forbidden(lang: Lang) -> Response {
    html(
        StatusCode::FORBIDDEN,
        view::refused(
            lang,
            lang.t(
                "This form has expired or did not come from this console. Sign in again.",
                "此表单已过期或并非来自本管理台。请重新登录。",
            ),
        ),
    )
}
