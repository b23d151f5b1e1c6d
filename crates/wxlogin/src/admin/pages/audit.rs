//! The audit log, filtered by type, user, app and time, newest first, paged. The entries are
//! `services::audit`'s; this page only shows them.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::super::context::{Console, Viewer, html};
use super::parts::{ListFilters, app_select, audit_records as records, failure, since_select};
use super::{Section, escape, page, query_value};
use crate::services::admin::AdminError;
use crate::services::audit::EventType;
use crate::store::AuditQuery;

const PAGE: u32 = 100;

#[derive(Deserialize, Default)]
pub(crate) struct Filters {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    app: String,
    #[serde(default)]
    since: String,
    /// The last entry of the page before: `<at>.<id>`.
    #[serde(default)]
    before: String,
}

/// `GET /audit?type=&user=&app=&since=&before=`.
pub(crate) async fn list(
    State(console): State<Console>,
    viewer: Viewer,
    Query(filters): Query<Filters>,
) -> Response {
    let lang = viewer.lang;
    let kind = match filters.kind.trim() {
        "" => None,
        text => match EventType::parse(text) {
            Ok(kind) => Some(kind.as_str().to_owned()),
            Err(_) => {
                let what = format!(
                    "{} {}",
                    lang.t("Invalid filter:", "筛选条件无效："),
                    lang.t("type", "类型")
                );
                return viewer.refuse(StatusCode::BAD_REQUEST, &what);
            }
        },
    };
    let shared = ListFilters {
        user: &filters.user,
        app: &filters.app,
        since: &filters.since,
        before: &filters.before,
    };
    let parsed = match shared.parse(&viewer, console.now()) {
        Ok(parsed) => parsed,
        Err(response) => return *response,
    };
    let before = match parsed.before {
        None => None,
        Some((at, id)) => match id.parse::<i64>() {
            Ok(id) => Some((at, id)),
            Err(_) => {
                let what = format!(
                    "{} {}",
                    lang.t("Invalid filter:", "筛选条件无效："),
                    lang.t("page", "页")
                );
                return viewer.refuse(StatusCode::BAD_REQUEST, &what);
            }
        },
    };
    let query = AuditQuery {
        user: parsed.user,
        kind,
        appid: parsed.appid,
        since: parsed.since,
        before,
        limit: PAGE + 1,
    };
    let mut entries = match console.app.store.list_audit_events(&query).await {
        Ok(entries) => entries,
        Err(e) => return failure(&viewer, &AdminError::Store(e)),
    };
    let more = entries.len() > PAGE as usize;
    entries.truncate(PAGE as usize);
    let mut types = format!(
        "<div><label for=\"type\">{}</label><select id=\"type\" name=\"type\">\
         <option value=\"\">{}</option>",
        lang.t("Type", "类型"),
        lang.t("every type", "全部")
    );
    for kind in EventType::ALL {
        let selected = if kind.as_str() == filters.kind.trim() {
            " selected"
        } else {
            ""
        };
        types.push_str(&format!("<option{selected}>{}</option>", kind.as_str()));
    }
    types.push_str("</select></div>");
    let mut body = format!(
        "<form class=\"filters\" method=\"get\" action=\"/audit\">{types}\
         <div><label for=\"user\">{user_l}</label><input id=\"user\" name=\"user\" value=\"{user}\" size=\"30\"></div>\
         {apps}{since}<button type=\"submit\">{filter}</button></form>\n",
        user_l = lang.t("User id", "用户 ID"),
        user = escape(filters.user.trim()),
        apps = app_select(&console, lang, filters.app.trim()),
        since = since_select(lang, &filters.since),
        filter = lang.t("Filter", "筛选"),
    );
    body.push_str(&records(&viewer, &entries));
    if more && let Some(last) = entries.last() {
        let next = format!(
            "/audit?type={}&user={}&app={}&since={}&before={}.{}",
            query_value(filters.kind.trim()),
            query_value(filters.user.trim()),
            query_value(filters.app.trim()),
            query_value(&filters.since),
            last.at,
            last.id,
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
            Section::Audit,
            lang.t("Audit log", "审计日志"),
            &body,
        ),
    )
}
