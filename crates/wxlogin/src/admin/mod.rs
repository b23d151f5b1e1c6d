//! The admin console (`admin.listen`, `docs/admin.md`): for now the sign-in (password, then the
//! TOTP code when the administrator has TOTP; owners must) and a signed-in page. Server-rendered
//! HTML without script; every state-changing form carries its session's CSRF token; the session
//! cookie is HttpOnly and SameSite=Strict, Secure unless the listener is on loopback; repeated
//! failures lock the administrator out (`admin.max_failed_sign_ins`, `admin.lockout_secs`).
//! The checks themselves are `services::admins`'.

mod pages;
mod sessions;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use crate::domain::AdminName;
use crate::services::admins::{TotpState, check_password, is_locked, verify_totp_code};
use crate::services::audit::{Actor, AuditEvent, Origin, SignInStep};
use crate::state::AppState;
use sessions::{Session, Sessions, Stage};

const COOKIE: &str = "wxlogin_admin";

/// No script, no frames, nothing from elsewhere: only this listener's stylesheet and forms.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

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
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

fn redirect(to: &'static str, cookie: Option<HeaderValue>) -> Response {
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
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
fn csrf_ok(session: &Session, given: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    session.csrf.as_bytes().ct_eq(given.as_bytes()).into()
}

fn forbidden() -> Response {
    html(
        StatusCode::FORBIDDEN,
        pages::refused("This form has expired or did not come from this console. Sign in again."),
    )
}

async fn sign_in_form(State(console): State<Console>, headers: HeaderMap) -> Response {
    if let Some((_, session)) = console.session(&headers) {
        match session.stage {
            Stage::SignedIn { .. } => return redirect("/", None),
            Stage::Anonymous => {
                return html(StatusCode::OK, pages::sign_in(&session.csrf, None));
            }
            Stage::PasswordChecked(_) => {}
        }
    }
    let (cookie, session) = console.start(Stage::Anonymous, cookie(&headers).as_deref());
    with_cookie(
        html(StatusCode::OK, pages::sign_in(&session.csrf, None)),
        cookie,
    )
}

#[derive(Deserialize)]
struct SignIn {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

const WRONG: &str = "Wrong name or password.";
const LOCKED: &str = "Too many failed sign-ins: try again later, or ask an owner to run `wxlogin admins reset-password`.";

/// A failed step: counted and recorded; the session ends once the administrator is locked out.
async fn failed(
    console: &Console,
    name: &AdminName,
    step: SignInStep,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> bool {
    let locked = count_failure(console, name).await;
    let event = AuditEvent::AdminSignInFailed {
        admin: name.clone(),
        step,
        locked,
    };
    console.record(peer, headers, event).await;
    locked
}

async fn count_failure(console: &Console, name: &AdminName) -> bool {
    let settings = &console.app.settings.admin;
    let now = console.now();
    let lock_until = now + i64::try_from(settings.lockout_secs * 1000).unwrap_or(i64::MAX);
    match console
        .app
        .store
        .record_admin_sign_in_failure(
            name,
            i64::from(settings.max_failed_sign_ins),
            lock_until,
            now,
        )
        .await
    {
        Ok(locked) => locked.is_some(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot count a failed console sign-in");
            false
        }
    }
}

async fn sign_in(
    State(console): State<Console>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    let Some((token, session)) = console.session(&headers) else {
        return forbidden();
    };
    if session.stage != Stage::Anonymous || !csrf_ok(&session, &form.csrf) {
        return forbidden();
    }
    let again = |status, message| html(status, pages::sign_in(&session.csrf, Some(message)));
    let account = match AdminName::parse(form.name.trim()) {
        Ok(name) => match console.app.store.get_admin(&name).await {
            Ok(account) => account,
            Err(e) => {
                tracing::warn!(error = %e, "console sign-in: cannot read the administrator");
                return again(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The database is unavailable.",
                );
            }
        },
        Err(_) => None,
    };
    let Some(account) = account else {
        // The same work as for a known name, so that timing does not tell names apart.
        let _ = check_password(&unknown_admin(), &form.password).await;
        return again(StatusCode::UNAUTHORIZED, WRONG);
    };
    if is_locked(&account, console.now()) {
        return again(StatusCode::TOO_MANY_REQUESTS, LOCKED);
    }
    if !check_password(&account, &form.password).await {
        if failed(
            &console,
            &account.name,
            SignInStep::Password,
            peer,
            &headers,
        )
        .await
        {
            return again(StatusCode::TOO_MANY_REQUESTS, LOCKED);
        }
        return again(StatusCode::UNAUTHORIZED, WRONG);
    }
    if TotpState::of(&account) == TotpState::Off {
        if account.totp_required {
            return again(
                StatusCode::FORBIDDEN,
                "Owners must sign in with a TOTP code: run `wxlogin admins totp NAME` first.",
            );
        }
        return signed_in(&console, &account, &token, peer, &headers).await;
    }
    let (cookie, _) = console.start(Stage::PasswordChecked(account.name.clone()), Some(&token));
    redirect("/login/totp", Some(cookie))
}

async fn signed_in(
    console: &Console,
    account: &crate::store::AdminAccount,
    token: &str,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Response {
    if let Err(e) = console
        .app
        .store
        .record_admin_sign_in(&account.name, console.now())
        .await
    {
        tracing::warn!(error = %e, "cannot reset the failed sign-ins of an administrator");
    }
    let event = AuditEvent::AdminSignedIn {
        admin: account.name.clone(),
    };
    console.record(peer, headers, event).await;
    let (cookie, _) = console.start(
        Stage::SignedIn {
            name: account.name.clone(),
            role: account.role,
        },
        Some(token),
    );
    redirect("/", Some(cookie))
}

/// A stand-in whose password check costs what a real one does and never succeeds.
fn unknown_admin() -> crate::store::AdminAccount {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let hash = HASH.get_or_init(|| {
        let random = sessions::random_token();
        crate::domain::AdminPassword::parse(random)
            .map(|p| crate::crypto::hash_password(&p))
            .unwrap_or_default()
    });
    #[allow(clippy::expect_used)]
    let name = AdminName::parse("-").expect("`-` is a valid name");
    crate::store::AdminAccount {
        name,
        role: crate::domain::AdminRole::Viewer,
        password_hash: hash.clone(),
        sealed_totp_secret: None,
        totp_confirmed_at: None,
        totp_last_step: None,
        totp_required: false,
        failed_attempts: 0,
        locked_until: None,
        created_at: 0,
        updated_at: 0,
    }
}

async fn totp_form(State(console): State<Console>, headers: HeaderMap) -> Response {
    match console.session(&headers) {
        Some((_, session)) if matches!(session.stage, Stage::PasswordChecked(_)) => {
            html(StatusCode::OK, pages::totp(&session.csrf, None))
        }
        _ => redirect("/login", None),
    }
}

#[derive(Deserialize)]
struct Code {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
}

async fn totp(
    State(console): State<Console>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<Code>,
) -> Response {
    let Some((token, session)) = console.session(&headers) else {
        return forbidden();
    };
    let Stage::PasswordChecked(name) = &session.stage else {
        return forbidden();
    };
    if !csrf_ok(&session, &form.csrf) {
        return forbidden();
    }
    let Some(sealing) = console.app.settings.security.sealing_key.as_ref() else {
        return html(
            StatusCode::SERVICE_UNAVAILABLE,
            pages::refused("No sealing key."),
        );
    };
    let account = match console.app.store.get_admin(name).await {
        Ok(Some(account)) => account,
        Ok(None) => {
            console.sessions.end(&token);
            return html(StatusCode::FORBIDDEN, pages::refused(WRONG));
        }
        Err(e) => {
            tracing::warn!(error = %e, "console sign-in: cannot read the administrator");
            return html(
                StatusCode::SERVICE_UNAVAILABLE,
                pages::refused("The database is unavailable."),
            );
        }
    };
    if is_locked(&account, console.now()) {
        console.sessions.end(&token);
        return html(StatusCode::TOO_MANY_REQUESTS, pages::refused(LOCKED));
    }
    let accepted = verify_totp_code(
        console.app.store.as_ref(),
        sealing,
        name,
        &form.code,
        console.now(),
    )
    .await;
    match accepted {
        Ok(true) => signed_in(&console, &account, &token, peer, &headers).await,
        Ok(false) => {
            if failed(&console, name, SignInStep::Totp, peer, &headers).await {
                console.sessions.end(&token);
                return with_cookie(
                    html(StatusCode::TOO_MANY_REQUESTS, pages::refused(LOCKED)),
                    console.clear_cookie(),
                );
            }
            html(
                StatusCode::UNAUTHORIZED,
                pages::totp(&session.csrf, Some("Wrong or already used code.")),
            )
        }
        Err(e) => {
            tracing::warn!(error = %e, "console sign-in: cannot check the code");
            html(
                StatusCode::SERVICE_UNAVAILABLE,
                pages::refused("The database is unavailable."),
            )
        }
    }
}

async fn home(State(console): State<Console>, headers: HeaderMap) -> Response {
    match console.session(&headers) {
        Some((
            _,
            Session {
                stage: Stage::SignedIn { name, role },
                csrf,
                ..
            },
        )) => html(
            StatusCode::OK,
            pages::home(name.as_str(), role.as_str(), &csrf),
        ),
        _ => redirect("/login", None),
    }
}

#[derive(Deserialize)]
struct SignOut {
    #[serde(default)]
    csrf: String,
}

async fn sign_out(
    State(console): State<Console>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<SignOut>,
) -> Response {
    let Some((token, session)) = console.session(&headers) else {
        return forbidden();
    };
    if !csrf_ok(&session, &form.csrf) {
        return forbidden();
    }
    console.sessions.end(&token);
    if let Stage::SignedIn { name, .. } = session.stage {
        let event = AuditEvent::AdminSignedOut { admin: name };
        console.record(peer, &headers, event).await;
    }
    redirect("/login", Some(console.clear_cookie()))
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        pages::STYLESHEET,
    )
        .into_response()
}

async fn not_found() -> Response {
    html(StatusCode::NOT_FOUND, pages::refused("Not found."))
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
    axum::Router::new()
        .route("/", get(home))
        .route("/login", get(sign_in_form).post(sign_in))
        .route("/login/totp", get(totp_form).post(totp))
        .route("/logout", axum::routing::post(sign_out))
        .route("/console.css", get(stylesheet))
        .fallback(not_found)
        .with_state(console)
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
