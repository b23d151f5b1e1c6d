//! Sessions: every signed-in device, filtered by user, app, state and time, newest first, paged;
//! an operator revokes one (`services::admin::revoke_session`, as `wxlogin sessions revoke`).

use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::super::context::{Console, Viewer, html, redirect};
use super::parts::{
    ListFilters, app_select, failure, session_head as head, session_row as row, since_select,
};
use super::{Section, done, escape, page, query_value, table};
use crate::domain::{AdminRole, SessionId, UserId};
use crate::services::admin::{self as actions, AdminError};
use crate::store::SessionQuery;

const PAGE: u32 = 50;

#[derive(Deserialize, Default)]
pub(crate) struct Params {
    #[serde(default)]
    user: String,
    #[serde(default)]
    app: String,
    /// `live` (the default) or `all`.
    #[serde(default)]
    state: String,
    /// `1h`, `24h`, `7d`, `30d` or empty (any time).
    #[serde(default)]
    since: String,
    /// The last row of the page before: `<created_at>.<id>`.
    #[serde(default)]
    before: String,
    #[serde(default)]
    done: String,
}

/// `GET /sessions?user=&app=&state=&since=&before=`.
pub(crate) async fn list(
    State(console): State<Console>,
    viewer: Viewer,
    Query(filters): Query<Params>,
) -> Response {
    let lang = viewer.lang;
    let now = console.now();
    let all = filters.state == "all";
    let shared = ListFilters {
        user: &filters.user,
        app: &filters.app,
        since: &filters.since,
        before: &filters.before,
    };
    let parsed = match shared.parse(&viewer, now) {
        Ok(parsed) => parsed,
        Err(response) => return *response,
    };
    let query = SessionQuery {
        user: parsed.user,
        appid: parsed.appid,
        live_at: (!all).then_some(now),
        since: parsed.since,
        before: parsed.before,
        limit: PAGE + 1,
    };
    let mut sessions = match console.app.store.list_sessions(&query).await {
        Ok(sessions) => sessions,
        Err(e) => return failure(&viewer, &AdminError::Store(e)),
    };
    let more = sessions.len() > PAGE as usize;
    sessions.truncate(PAGE as usize);
    let rows: Vec<Vec<String>> = sessions
        .iter()
        .map(|session| row(&viewer, session, true))
        .collect();
    let state_select = format!(
        "<div><label for=\"state\">{}</label><select id=\"state\" name=\"state\">\
         <option value=\"live\"{}>{}</option><option value=\"all\"{}>{}</option></select></div>",
        lang.t("State", "状态"),
        if all { "" } else { " selected" },
        lang.t("live", "有效"),
        if all { " selected" } else { "" },
        lang.t("all, revoked and ended too", "全部（含已撤销和已到期）"),
    );
    let mut body = done(match filters.done.as_str() {
        "session-revoked" => Some(lang.t("The session was revoked.", "该会话已撤销。")),
        _ => None,
    });
    body.push_str(&format!(
        "<form class=\"filters\" method=\"get\" action=\"/sessions\">\
         <div><label for=\"user\">{user_l}</label><input id=\"user\" name=\"user\" value=\"{user}\" size=\"30\"></div>\
         {apps}{state_select}{since}<button type=\"submit\">{filter}</button></form>\n",
        user_l = lang.t("User id", "用户 ID"),
        user = escape(filters.user.trim()),
        apps = app_select(&console, lang, filters.app.trim()),
        since = since_select(lang, &filters.since),
        filter = lang.t("Filter", "筛选"),
    ));
    body.push_str(&table(
        lang.t("Sessions, newest first", "会话（最新在前）"),
        &head(lang),
        &rows,
        lang.t("No session matches.", "没有匹配的会话。"),
    ));
    if more && let Some(last) = sessions.last() {
        let next = format!(
            "/sessions?user={}&app={}&state={}&since={}&before={}",
            query_value(filters.user.trim()),
            query_value(filters.app.trim()),
            if all { "all" } else { "live" },
            query_value(&filters.since),
            query_value(&format!("{}.{}", last.created_at, last.id.as_str())),
        );
        body.push_str(&format!(
            "<nav class=\"pager\" aria-label=\"{}\"><a href=\"{}\" rel=\"next\">{}</a></nav>\n",
            lang.t("Pages", "分页"),
            escape(&next),
            lang.t("Older →", "更早 →")
        ));
    }
    html(
        StatusCode::OK,
        page(
            &viewer,
            Section::Sessions,
            lang.t("Sessions", "会话"),
            &body,
        ),
    )
}

#[derive(Deserialize)]
pub(crate) struct Revoke {
    #[serde(default)]
    csrf: String,
    /// Where to go back to: a user's page, else the sessions.
    #[serde(default)]
    back: String,
}

/// `POST /sessions/{id}/revoke`.
pub(crate) async fn revoke(
    State(console): State<Console>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<Revoke>,
) -> Response {
    if let Err(response) = viewer.check(&form.csrf, AdminRole::Operator) {
        return *response;
    }
    let Ok(id) = SessionId::parse(&id) else {
        return viewer.refuse(
            StatusCode::NOT_FOUND,
            viewer.lang.t("No such session.", "会话不存在。"),
        );
    };
    if let Err(e) = actions::revoke_session(&console.admin(&viewer), &id).await {
        return failure(&viewer, &e);
    }
    let back = match form.back.strip_prefix("/users/") {
        Some(user) if UserId::parse(user).is_ok() => format!("/users/{user}?done=session-revoked"),
        _ => "/sessions?done=session-revoked".to_owned(),
    };
    redirect(&back, None)
}
