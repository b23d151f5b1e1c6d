//! Apps: each configured mini program's registration policy and WeChat access token: the mode,
//! the shared token's fingerprint and expiry, this server's fetches and failures, the last forced
//! refresh and invalidation in the audit log; an owner forces a new token
//! (`services::admin::refresh_access_token`, as `wxlogin wechat access-token refresh`).

use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::super::context::{Console, Viewer, html, redirect};
use super::parts::failure;
use super::{Section, action_button, code, done, page, query_value, table};
use crate::domain::{AdminRole, AppId};
use crate::services::admin::{self as actions, TokenStatus};
use crate::services::audit::EventType;
use crate::store::AuditQuery;
use crate::wechat::TokenMode;

#[derive(Deserialize, Default)]
pub(crate) struct Show {
    #[serde(default)]
    done: String,
    #[serde(default)]
    app: String,
}

/// The time of the latest audit entry of `kind` about `appid`.
async fn latest(console: &Console, appid: &AppId, kind: EventType) -> Option<i64> {
    let query = AuditQuery {
        kind: Some(kind.as_str().to_owned()),
        appid: Some(appid.clone()),
        limit: 1,
        ..AuditQuery::default()
    };
    match console.app.store.list_audit_events(&query).await {
        Ok(entries) => entries.first().map(|e| e.at),
        Err(e) => {
            tracing::warn!(error = %e, "console: cannot read the audit log");
            None
        }
    }
}

/// `GET /apps`.
pub(crate) async fn show(
    State(console): State<Console>,
    viewer: Viewer,
    Query(show): Query<Show>,
) -> Response {
    let lang = viewer.lang;
    let admin = console.admin(&viewer);
    let now = console.now();
    let mode = console.app.settings.wechat.token_mode;
    let mode_name = match mode {
        TokenMode::Stable => "stable_token",
        TokenMode::Classic => "token",
    };
    let mut rows = Vec::new();
    for app in &console.app.settings.apps {
        let appid = &app.appid;
        let token = match actions::access_token_status(&admin, appid).await {
            Ok(TokenStatus::Shared(Some(facts))) => {
                let left = (facts.expires_at_ms - now).max(0) / 60_000;
                format!(
                    "{} · {} {} ({} {left} {})",
                    code(&facts.fingerprint),
                    lang.t("expires", "到期"),
                    viewer.tz.minute(facts.expires_at_ms),
                    lang.t("in", "剩余"),
                    lang.t("min", "分钟"),
                )
            }
            Ok(TokenStatus::Shared(None) | TokenStatus::PerProcess) => lang
                .t(
                    "none yet: fetched at the first need",
                    "尚无：首次需要时获取",
                )
                .to_owned(),
            Err(e) => {
                tracing::warn!(error = %e, "console: cannot read the shared access token");
                format!(
                    "<span class=\"badge bad\">{}</span>",
                    lang.t("unavailable", "不可用")
                )
            }
        };
        let (fetched, failed) = console.app.metrics.access_token_refreshes(appid.as_str());
        let fetches = if failed > 0 {
            format!(
                "{fetched} · <span class=\"badge bad\">{failed} {}</span>",
                lang.t("failed", "失败")
            )
        } else {
            fetched.to_string()
        };
        let when = |at: Option<i64>| at.map_or_else(|| "—".to_owned(), |at| viewer.tz.minute(at));
        let refreshed = when(latest(&console, appid, EventType::WechatTokenRefreshed).await);
        let invalidated = when(latest(&console, appid, EventType::WechatTokenInvalidated).await);
        let button = if viewer.may(AdminRole::Owner) {
            action_button(
                &viewer,
                "/apps/refresh-token",
                &[("appid", appid.as_str())],
                lang.t("Force a new token", "强制刷新令牌"),
                true,
            )
        } else {
            String::new()
        };
        rows.push(vec![
            code(appid.as_str()),
            code(app.registration.as_str()),
            code(mode_name),
            token,
            fetches,
            refreshed,
            invalidated,
            button,
        ]);
    }
    let message = match show.done.as_str() {
        "refreshed" => Some(format!(
            "{} {}",
            lang.t(
                "WeChat issued a new access token; every server uses it now:",
                "微信已签发新的 access_token，所有服务器已开始使用："
            ),
            show.app
        )),
        _ => None,
    };
    let mut body = done(message.as_deref());
    body.push_str(&table(
        lang.t(
            "Configured mini programs ([[apps]])",
            "已配置的小程序（[[apps]]）",
        ),
        &[
            "appid",
            lang.t("Registration", "注册策略"),
            lang.t("Token API", "令牌接口"),
            lang.t("Shared access token", "共享 access_token"),
            lang.t("Fetches here (since start)", "本实例获取次数（自启动）"),
            lang.t("Last forced refresh", "最近强制刷新"),
            lang.t("Last reported rejected", "最近被报告失效"),
            "",
        ],
        &rows,
        lang.t("No app is configured.", "未配置小程序。"),
    ));
    body.push_str(&format!(
        "<p class=\"empty\">{}</p>\n",
        lang.t(
            "A forced refresh uses one of WeChat's 20 stable_token force refreshes a day, and does nothing within 30 s of the last.",
            "强制刷新会消耗微信每天 20 次 stable_token 强制刷新额度之一，且距上次不足 30 秒时无效。"
        )
    ));
    html(
        StatusCode::OK,
        page(&viewer, Section::Apps, lang.t("Apps", "小程序"), &body),
    )
}

#[derive(Deserialize)]
pub(crate) struct Refresh {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    appid: String,
}

/// `POST /apps/refresh-token` (`appid`): a new WeChat access token for a leaked one.
pub(crate) async fn refresh_token(
    State(console): State<Console>,
    viewer: Viewer,
    Form(form): Form<Refresh>,
) -> Response {
    if let Err(response) = viewer.check(&form.csrf, AdminRole::Owner) {
        return *response;
    }
    let Ok(appid) = AppId::parse(form.appid.trim()) else {
        return viewer.refuse(
            StatusCode::NOT_FOUND,
            viewer.lang.t("No such app.", "小程序不存在。"),
        );
    };
    match actions::refresh_access_token(&console.admin(&viewer), &appid).await {
        Ok(_) => redirect(
            &format!("/apps?done=refreshed&app={}", query_value(appid.as_str())),
            None,
        ),
        Err(e) => failure(&viewer, &e),
    }
}
