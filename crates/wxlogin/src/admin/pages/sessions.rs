//! Sessions: every signed-in device, filtered by user, app, state and time, newest first, paged;
//! an operator revokes one (`services::admin::revoke_session`, as `wxlogin sessions revoke`).

use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::super::i18n::Lang;
use super::super::{Console, Viewer, html, redirect};
use super::users::failure;
use super::{Section, action_button, code, done, escape, page, query_value, table};
use crate::domain::{AdminRole, AppId, SessionId, UserId};
use crate::services::admin::{self as actions, AdminError};
use crate::store::{Session, SessionQuery};

const PAGE: u32 = 50;

/// The columns of a session's row.
pub(crate) fn head(lang: Lang) -> Vec<&'static str> {
    vec![
        lang.t("Session", "会话"),
        lang.t("User", "用户"),
        "appid",
        lang.t("Device", "设备"),
        lang.t("Signed in", "登录时间"),
        lang.t("Last used", "最近使用"),
        lang.t("Ends", "到期"),
        lang.t("State", "状态"),
        "",
    ]
}

/// One session as a row; `revocable` adds the revoke button for an operator.
pub(crate) fn row(viewer: &Viewer, session: &Session, revocable: bool) -> Vec<String> {
    let lang = viewer.lang;
    let now_live = session.revoked_at.is_none();
    let state = match session.revoked_at {
        Some(at) => format!(
            "<span class=\"badge bad\">{} {}</span>",
            lang.t("revoked", "已撤销"),
            viewer.tz.minute(at)
        ),
        None => format!(
            "<span class=\"badge good\">{}</span>",
            lang.t("live until its end", "有效至到期")
        ),
    };
    let button = if revocable && now_live && viewer.may(AdminRole::Operator) {
        action_button(
            viewer,
            &format!("/sessions/{}/revoke", session.id.as_str()),
            &[("back", &format!("/users/{}", session.user_id.as_str()))],
            lang.t("Revoke", "撤销"),
            true,
        )
    } else {
        String::new()
    };
    vec![
        code(session.id.as_str()),
        format!(
            "<a href=\"/users/{}\">{}</a>",
            escape(session.user_id.as_str()),
            code(session.user_id.as_str())
        ),
        code(session.appid.as_str()),
        device(lang, session.user_agent.as_deref()),
        viewer.tz.minute(session.created_at),
        session
            .last_used_at
            .map_or_else(String::new, |at| viewer.tz.minute(at)),
        viewer.tz.minute(session.expires_at),
        state,
        button,
    ]
}

/// A short name of the device behind a `User-Agent` (its system, WeChat's version, the
/// developer tools), the whole text as its tooltip.
fn device(lang: Lang, user_agent: Option<&str>) -> String {
    match user_agent {
        None => format!("<span class=\"empty\">{}</span>", lang.t("unknown", "未知")),
        Some(text) => format!(
            "<span title=\"{}\">{}</span>",
            escape(text),
            escape(&device_hint(text))
        ),
    }
}

pub(crate) fn device_hint(user_agent: &str) -> String {
    const SYSTEMS: [(&str, &str); 8] = [
        ("OpenHarmony", "HarmonyOS"),
        ("HarmonyOS", "HarmonyOS"),
        ("iPad", "iPad"),
        ("iPhone", "iPhone"),
        ("Android", "Android"),
        ("Windows", "Windows"),
        ("Macintosh", "macOS"),
        ("Linux", "Linux"),
    ];
    let mut parts: Vec<String> = Vec::new();
    if let Some((_, name)) = SYSTEMS.iter().find(|(key, _)| user_agent.contains(key)) {
        parts.push((*name).to_owned());
    }
    if let Some(at) = user_agent.find("MicroMessenger/") {
        let version: String = user_agent[at + 15..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        parts.push(format!("WeChat {version}").trim_end().to_owned());
    }
    if user_agent.contains("wechatdevtools") {
        parts.push("DevTools".to_owned());
    }
    if parts.is_empty() {
        return user_agent.chars().take(40).collect();
    }
    parts.join(" · ")
}

#[derive(Deserialize, Default)]
pub(crate) struct Filters {
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

/// The choices of the time filters, with their length in milliseconds.
pub(crate) const SINCE: [(&str, i64); 4] = [
    ("1h", 3_600_000),
    ("24h", 86_400_000),
    ("7d", 7 * 86_400_000),
    ("30d", 30 * 86_400_000),
];

pub(crate) fn since_choice(text: &str) -> Option<i64> {
    SINCE.iter().find(|(k, _)| *k == text).map(|(_, ms)| *ms)
}

/// The `<select>` of `SINCE`, `current` selected.
pub(crate) fn since_select(lang: Lang, current: &str) -> String {
    let mut out = format!(
        "<div><label for=\"since\">{}</label><select id=\"since\" name=\"since\">\
         <option value=\"\">{}</option>",
        lang.t("Since", "时间范围"),
        lang.t("any time", "不限")
    );
    for (key, _) in SINCE {
        let selected = if key == current { " selected" } else { "" };
        let label = match key {
            "1h" => lang.t("last hour", "最近 1 小时"),
            "24h" => lang.t("last 24 hours", "最近 24 小时"),
            "7d" => lang.t("last 7 days", "最近 7 天"),
            _ => lang.t("last 30 days", "最近 30 天"),
        };
        out.push_str(&format!(
            "<option value=\"{key}\"{selected}>{label}</option>"
        ));
    }
    out.push_str("</select></div>");
    out
}

/// The `<select>` of the configured apps, `current` selected.
pub(crate) fn app_select(console: &Console, lang: Lang, current: &str) -> String {
    let mut out = format!(
        "<div><label for=\"app\">appid</label><select id=\"app\" name=\"app\">\
         <option value=\"\">{}</option>",
        lang.t("every app", "全部")
    );
    let mut apps: Vec<&AppId> = console.app.apps.keys().collect();
    apps.sort();
    for appid in apps {
        let selected = if appid.as_str() == current {
            " selected"
        } else {
            ""
        };
        out.push_str(&format!(
            "<option{selected}>{}</option>",
            escape(appid.as_str())
        ));
    }
    out.push_str("</select></div>");
    out
}

/// `GET /sessions?user=&app=&state=&since=&before=`.
pub(crate) async fn list(
    State(console): State<Console>,
    viewer: Viewer,
    Query(filters): Query<Filters>,
) -> Response {
    let lang = viewer.lang;
    let now = console.now();
    let bad = |what: &str| {
        viewer.refuse(
            StatusCode::BAD_REQUEST,
            &format!("{} {what}", lang.t("Invalid filter:", "筛选条件无效：")),
        )
    };
    let user = match filters.user.trim() {
        "" => None,
        text => match UserId::parse(text) {
            Ok(id) => Some(id),
            Err(_) => return bad(lang.t("user id", "用户 ID")),
        },
    };
    let appid = match filters.app.trim() {
        "" => None,
        text => match AppId::parse(text) {
            Ok(id) => Some(id),
            Err(_) => return bad("appid"),
        },
    };
    let all = filters.state == "all";
    let since = match filters.since.as_str() {
        "" => None,
        text => match since_choice(text) {
            Some(ms) => Some(now - ms),
            None => return bad(lang.t("time range", "时间范围")),
        },
    };
    let before = match filters.before.split_once('.') {
        None if filters.before.is_empty() => None,
        Some((at, id)) => match at.parse::<i64>() {
            Ok(at) => Some((at, id.to_owned())),
            Err(_) => return bad(lang.t("page", "页")),
        },
        None => return bad(lang.t("page", "页")),
    };
    let query = SessionQuery {
        user,
        appid,
        live_at: (!all).then_some(now),
        since,
        before,
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

#[cfg(test)]
mod tests {
    use super::device_hint;

    #[test]
    fn a_user_agent_becomes_a_short_device_name() {
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 \
                      (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.49(0x18003137) \
                      NetType/WIFI Language/zh_CN";
        assert_eq!(device_hint(iphone), "iPhone · WeChat 8.0.49");
        let android = "Mozilla/5.0 (Linux; Android 14; V2243A Build/UP1A) AppleWebKit/537.36 \
                       XWEB/1160065 MMWEBSDK/20240301 MicroMessenger/8.0.48.2580(0x28003036)";
        assert_eq!(device_hint(android), "Android · WeChat 8.0.48.2580");
        let tools = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) wechatdevtools/1.06.2402040";
        assert_eq!(device_hint(tools), "Windows · DevTools");
        assert_eq!(device_hint("curl/8.5.0"), "curl/8.5.0");
        assert_eq!(device_hint(&"x".repeat(300)).len(), 40);
    }
}
