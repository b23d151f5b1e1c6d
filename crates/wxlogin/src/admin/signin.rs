//! Signing in (the password, then the TOTP code when the administrator has TOTP; owners must)
//! and out. The checks themselves are `services::admins`'.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::context::{Console, cookie, csrf_ok, forbidden, html, redirect, with_cookie};
use super::i18n::Lang;
use super::sessions::{self, Stage};
use super::view as pages;
use crate::domain::AdminName;
use crate::services::admins::{TotpState, check_password, is_locked, verify_totp_code};
use crate::services::audit::{AuditEvent, SignInStep};

pub(super) async fn sign_in_form(State(console): State<Console>, headers: HeaderMap) -> Response {
    let lang = Lang::of(&headers);
    if let Some((_, session)) = console.session(&headers) {
        match session.stage {
            Stage::SignedIn(_) => return redirect("/", None),
            Stage::Anonymous => {
                return html(StatusCode::OK, pages::sign_in(lang, &session.csrf, None));
            }
            Stage::PasswordChecked(_) => {}
        }
    }
    let (cookie, session) = console.start(Stage::Anonymous, cookie(&headers).as_deref());
    with_cookie(
        html(StatusCode::OK, pages::sign_in(lang, &session.csrf, None)),
        cookie,
    )
}

#[derive(Deserialize)]
pub(super) struct SignIn {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

fn wrong(lang: Lang) -> &'static str {
    lang.t("Wrong name or password.", "用户名或密码错误。")
}

fn locked(lang: Lang) -> &'static str {
    lang.t(
        "Too many failed sign-ins: try again later, or ask an owner to run `wxlogin admins reset-password`.",
        "登录失败次数过多：请稍后再试，或请所有者运行 `wxlogin admins reset-password`。",
    )
}

fn unavailable(lang: Lang) -> &'static str {
    lang.t("The database is unavailable.", "数据库不可用。")
}

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

pub(super) async fn sign_in(
    State(console): State<Console>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    let lang = Lang::of(&headers);
    let Some((token, session)) = console.session(&headers) else {
        return forbidden(lang);
    };
    if session.stage != Stage::Anonymous || !csrf_ok(&session.csrf, &form.csrf) {
        return forbidden(lang);
    }
    let again = |status, message| html(status, pages::sign_in(lang, &session.csrf, Some(message)));
    let account = match AdminName::parse(form.name.trim()) {
        Ok(name) => match console.app.store.get_admin(&name).await {
            Ok(account) => account,
            Err(e) => {
                tracing::warn!(error = %e, "console sign-in: cannot read the administrator");
                return again(StatusCode::SERVICE_UNAVAILABLE, unavailable(lang));
            }
        },
        Err(_) => None,
    };
    let Some(account) = account else {
        // The same work as for a known name, so that timing does not tell names apart.
        let _ = check_password(&unknown_admin(), &form.password).await;
        return again(StatusCode::UNAUTHORIZED, wrong(lang));
    };
    if is_locked(&account, console.now()) {
        return again(StatusCode::TOO_MANY_REQUESTS, locked(lang));
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
            return again(StatusCode::TOO_MANY_REQUESTS, locked(lang));
        }
        return again(StatusCode::UNAUTHORIZED, wrong(lang));
    }
    if TotpState::of(&account) == TotpState::Off {
        if account.totp_required {
            return again(
                StatusCode::FORBIDDEN,
                lang.t(
                    "Owners must sign in with a TOTP code: run `wxlogin admins totp NAME` first.",
                    "所有者必须使用 TOTP 验证码登录：请先运行 `wxlogin admins totp NAME`。",
                ),
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
    let (cookie, _) = console.start(Stage::SignedIn(account.name.clone()), Some(token));
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

pub(super) async fn totp_form(State(console): State<Console>, headers: HeaderMap) -> Response {
    let lang = Lang::of(&headers);
    match console.session(&headers) {
        Some((_, session)) if matches!(session.stage, Stage::PasswordChecked(_)) => {
            html(StatusCode::OK, pages::totp(lang, &session.csrf, None))
        }
        _ => redirect("/login", None),
    }
}

#[derive(Deserialize)]
pub(super) struct Code {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
}

pub(super) async fn totp(
    State(console): State<Console>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<Code>,
) -> Response {
    let lang = Lang::of(&headers);
    let Some((token, session)) = console.session(&headers) else {
        return forbidden(lang);
    };
    let Stage::PasswordChecked(name) = &session.stage else {
        return forbidden(lang);
    };
    if !csrf_ok(&session.csrf, &form.csrf) {
        return forbidden(lang);
    }
    let Some(sealing) = console.app.settings.security.sealing_key.as_ref() else {
        return html(
            StatusCode::SERVICE_UNAVAILABLE,
            pages::refused(lang, lang.t("No sealing key.", "未配置封装密钥。")),
        );
    };
    let account = match console.app.store.get_admin(name).await {
        Ok(Some(account)) => account,
        Ok(None) => {
            console.sessions.end(&token);
            return html(StatusCode::FORBIDDEN, pages::refused(lang, wrong(lang)));
        }
        Err(e) => {
            tracing::warn!(error = %e, "console sign-in: cannot read the administrator");
            return html(
                StatusCode::SERVICE_UNAVAILABLE,
                pages::refused(lang, unavailable(lang)),
            );
        }
    };
    if is_locked(&account, console.now()) {
        console.sessions.end(&token);
        return html(
            StatusCode::TOO_MANY_REQUESTS,
            pages::refused(lang, locked(lang)),
        );
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
                    html(
                        StatusCode::TOO_MANY_REQUESTS,
                        pages::refused(lang, locked(lang)),
                    ),
                    console.clear_cookie(),
                );
            }
            html(
                StatusCode::UNAUTHORIZED,
                pages::totp(
                    lang,
                    &session.csrf,
                    Some(lang.t("Wrong or already used code.", "验证码错误或已使用。")),
                ),
            )
        }
        Err(e) => {
            tracing::warn!(error = %e, "console sign-in: cannot check the code");
            html(
                StatusCode::SERVICE_UNAVAILABLE,
                pages::refused(lang, unavailable(lang)),
            )
        }
    }
}

#[derive(Deserialize)]
pub(super) struct SignOut {
    #[serde(default)]
    csrf: String,
}

pub(super) async fn sign_out(
    State(console): State<Console>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<SignOut>,
) -> Response {
    let lang = Lang::of(&headers);
    let Some((token, session)) = console.session(&headers) else {
        return forbidden(lang);
    };
    if !csrf_ok(&session.csrf, &form.csrf) {
        return forbidden(lang);
    }
    console.sessions.end(&token);
    if let Stage::SignedIn(name) = session.stage {
        let event = AuditEvent::AdminSignedOut { admin: name };
        console.record(peer, &headers, event).await;
    }
    redirect("/login", Some(console.clear_cookie()))
}
