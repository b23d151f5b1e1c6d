//! What several pages show the same way: an action's failure, a session's row, the audit log's
//! table, the filters of time and app.

use axum::http::StatusCode;
use axum::response::Response;

use super::super::context::{Console, Viewer};
use super::super::i18n::Lang;
use super::{action_button, code, escape, table};
use crate::domain::{AdminRole, AppId, UserId};
use crate::services::admin::AdminError;
use crate::store::{AuditRecord, Session};

/// An action's failure as a page: a 404 for what does not exist, a 503 for the database, a 400
/// for the rest.
pub(crate) fn failure(viewer: &Viewer, error: &AdminError) -> Response {
    let status = match error {
        AdminError::UnknownUser(_) | AdminError::UnknownSession(_) | AdminError::UnknownApp(_) => {
            StatusCode::NOT_FOUND
        }
        AdminError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        AdminError::Wechat(_) => StatusCode::BAD_GATEWAY,
        AdminError::Invalid(_) => StatusCode::BAD_REQUEST,
    };
    if status == StatusCode::SERVICE_UNAVAILABLE {
        tracing::warn!(error = %error, "console: the database is unavailable");
        return viewer.refuse(
            status,
            viewer
                .lang
                .t("The database is unavailable.", "数据库不可用。"),
        );
    }
    viewer.refuse(status, &error.to_string())
}

/// The columns of a session's row.
pub(crate) fn session_head(lang: Lang) -> Vec<&'static str> {
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
pub(crate) fn session_row(viewer: &Viewer, session: &Session, revocable: bool) -> Vec<String> {
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

/// The entries as a table.
pub(crate) fn audit_records(viewer: &Viewer, records: &[AuditRecord]) -> String {
    let lang = viewer.lang;
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|record| {
            let actor = match &record.actor_id {
                Some(id) => format!("{} {}", escape(&record.actor_kind), code(id)),
                None => escape(&record.actor_kind),
            };
            let user = record.user_id.as_ref().map_or_else(String::new, |u| {
                format!(
                    "<a href=\"/users/{}\">{}</a>",
                    escape(u.as_str()),
                    code(u.as_str())
                )
            });
            let details = if record.details == "{}" {
                String::new()
            } else {
                code(&record.details)
            };
            vec![
                viewer.tz.second(record.at),
                code(&record.kind),
                actor,
                user,
                record
                    .appid
                    .as_ref()
                    .map_or_else(String::new, |a| code(a.as_str())),
                escape(record.client_ip.as_deref().unwrap_or("")),
                details,
            ]
        })
        .collect();
    table(
        lang.t("Entries, newest first", "记录（最新在前）"),
        &[
            lang.t("Time", "时间"),
            lang.t("Type", "类型"),
            lang.t("Actor", "操作者"),
            lang.t("User", "用户"),
            "appid",
            lang.t("Client IP", "客户端 IP"),
            lang.t("Details", "详情"),
        ],
        &rows,
        lang.t("No entry.", "没有记录。"),
    )
}

/// The filters the listings share, as typed: a user id, an appid, a time range (`SINCE`), and the
/// last row of the page before (`<time>.<id>`).
pub(crate) struct ListFilters<'a> {
    pub user: &'a str,
    pub app: &'a str,
    pub since: &'a str,
    pub before: &'a str,
}

/// [`ListFilters`] parsed; `before` with its id as text.
pub(crate) struct Parsed {
    pub user: Option<UserId>,
    pub appid: Option<AppId>,
    pub since: Option<i64>,
    pub before: Option<(i64, String)>,
}

impl ListFilters<'_> {
    /// Parses the filters at `now`; a bad one is a 400 page naming it.
    pub(crate) fn parse(&self, viewer: &Viewer, now: i64) -> Result<Parsed, Box<Response>> {
        let lang = viewer.lang;
        let bad = |what: &str| {
            Box::new(viewer.refuse(
                StatusCode::BAD_REQUEST,
                &format!("{} {what}", lang.t("Invalid filter:", "筛选条件无效：")),
            ))
        };
        let user = match self.user.trim() {
            "" => None,
            text => Some(UserId::parse(text).map_err(|_| bad(lang.t("user id", "用户 ID")))?),
        };
        let appid = match self.app.trim() {
            "" => None,
            text => Some(AppId::parse(text).map_err(|_| bad("appid"))?),
        };
        let since = match self.since {
            "" => None,
            text => Some(
                now - since_choice(text).ok_or_else(|| bad(lang.t("time range", "时间范围")))?,
            ),
        };
        let before = match self.before.split_once('.') {
            None if self.before.is_empty() => None,
            Some((at, id)) if !id.is_empty() => {
                let at = at.parse::<i64>().map_err(|_| bad(lang.t("page", "页")))?;
                Some((at, id.to_owned()))
            }
            _ => return Err(bad(lang.t("page", "页"))),
        };
        Ok(Parsed {
            user,
            appid,
            since,
            before,
        })
    }
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
