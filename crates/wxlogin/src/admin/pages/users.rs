//! Users: a search by user id, openid, unionid, phone number or nickname, paged; and one user,
//! with their WeChat identities, masked phone number (revealed in full only on request, which is
//! audited), profile, live sessions and audit trail, and what an operator does to them: ban,
//! unban, revoke sessions, unbind the phone number. The actions are `services::admin`'s, as the
//! command line's `wxlogin users` are.

use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::super::context::{Console, Viewer, html, redirect};
use super::parts::{self, failure};
use super::{Section, action_button, code, csrf_field, done, escape, page, query_value, table};
use crate::domain::{AdminRole, UserId};
use crate::services::admin::{self as actions, AdminError, UserDetails};
use crate::services::audit::AuditEvent;
use crate::store::AuditQuery;

/// Users on one page of the search.
const PAGE: u32 = 50;
/// Audit entries on a user's page.
const TRAIL: u32 = 50;

#[derive(Deserialize, Default)]
pub(crate) struct Search {
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: Option<u32>,
}

/// `GET /users?q=…&page=N`.
pub(crate) async fn list(
    State(console): State<Console>,
    viewer: Viewer,
    Query(search): Query<Search>,
) -> Response {
    let lang = viewer.lang;
    let admin = console.admin(&viewer);
    let number = search.page.unwrap_or(1).clamp(1, 10_000);
    let offset = (number - 1).saturating_mul(PAGE);
    let q = search.q.trim();
    let found = actions::list_users(&admin, Some(q), PAGE + 1, offset).await;
    let mut users = match found {
        Ok(users) => users,
        Err(e) => return failure(&viewer, &e),
    };
    let more = users.len() > PAGE as usize;
    users.truncate(PAGE as usize);
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|summary| {
            let user = &summary.user;
            vec![
                format!(
                    "<a href=\"/users/{}\">{}</a>",
                    escape(user.id.as_str()),
                    code(user.id.as_str())
                ),
                escape(user.nickname.as_deref().unwrap_or("")),
                escape(&user.phone.as_ref().map(|p| p.masked()).unwrap_or_default()),
                summary.identities.to_string(),
                viewer.tz.minute(user.created_at),
                status(&viewer, user.banned_at),
            ]
        })
        .collect();
    let form = format!(
        "<form class=\"filters\" method=\"get\" action=\"/users\" role=\"search\">\
         <div><label for=\"q\">{label}</label>\
         <input id=\"q\" name=\"q\" value=\"{value}\" size=\"36\"></div>\
         <button type=\"submit\">{search}</button></form>\n",
        label = lang.t(
            "User id, openid, unionid, phone number or nickname",
            "用户 ID、openid、unionid、手机号或昵称"
        ),
        value = escape(q),
        search = lang.t("Search", "搜索"),
    );
    let head = [
        lang.t("User", "用户"),
        lang.t("Nickname", "昵称"),
        lang.t("Phone", "手机号"),
        lang.t("Identities", "身份"),
        lang.t("Created", "创建时间"),
        lang.t("Status", "状态"),
    ];
    let mut body = form;
    body.push_str(&table(
        lang.t("Users, newest first", "用户（最新在前）"),
        &head,
        &rows,
        lang.t("No user matches.", "没有匹配的用户。"),
    ));
    body.push_str(&pager(&viewer, q, number, more));
    html(
        StatusCode::OK,
        page(&viewer, Section::Users, lang.t("Users", "用户"), &body),
    )
}

fn pager(viewer: &Viewer, q: &str, number: u32, more: bool) -> String {
    let lang = viewer.lang;
    let mut links = String::new();
    let q = escape(&query_value(q));
    if number > 1 {
        links.push_str(&format!(
            "<a href=\"/users?q={q}&amp;page={}\" rel=\"prev\">{}</a>",
            number - 1,
            lang.t("← Newer", "← 上一页")
        ));
    }
    if more {
        links.push_str(&format!(
            "<a href=\"/users?q={q}&amp;page={}\" rel=\"next\">{}</a>",
            number + 1,
            lang.t("Older →", "下一页 →")
        ));
    }
    if links.is_empty() {
        return String::new();
    }
    format!(
        "<nav class=\"pager\" aria-label=\"{}\">{links} <span>{} {number}</span></nav>\n",
        lang.t("Pages", "分页"),
        lang.t("Page", "第")
    )
}

fn status(viewer: &Viewer, banned_at: Option<i64>) -> String {
    let lang = viewer.lang;
    match banned_at {
        Some(at) => format!(
            "<span class=\"badge bad\">{} {}</span>",
            lang.t("banned", "已封禁"),
            viewer.tz.minute(at)
        ),
        None => format!(
            "<span class=\"badge good\">{}</span>",
            lang.t("active", "正常")
        ),
    }
}

fn user_id(viewer: &Viewer, text: &str) -> Result<UserId, Box<Response>> {
    UserId::parse(text).map_err(|_| {
        Box::new(viewer.refuse(
            StatusCode::NOT_FOUND,
            viewer.lang.t("No such user.", "用户不存在。"),
        ))
    })
}

#[derive(Deserialize, Default)]
pub(crate) struct Done {
    #[serde(default)]
    done: String,
}

/// What the last action did, from the redirect's `?done=`.
fn done_message(viewer: &Viewer, key: &str) -> Option<&'static str> {
    let lang = viewer.lang;
    Some(match key {
        "banned" => lang.t(
            "Banned: every session was revoked and logins are refused.",
            "已封禁：所有会话已撤销，登录将被拒绝。",
        ),
        "unbanned" => lang.t(
            "Unbanned: the user may log in again.",
            "已解封：该用户可以重新登录。",
        ),
        "revoked" => lang.t("Sessions revoked.", "会话已撤销。"),
        "session-revoked" => lang.t("The session was revoked.", "该会话已撤销。"),
        "phone-unbound" => lang.t("The phone number was unbound.", "手机号已解绑。"),
        "nothing" => lang.t("Nothing to change.", "无需更改。"),
        _ => return None,
    })
}

/// `GET /users/{id}`.
pub(crate) async fn show(
    State(console): State<Console>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(done): Query<Done>,
) -> Response {
    let id = match user_id(&viewer, &id) {
        Ok(id) => id,
        Err(response) => return *response,
    };
    render(
        &console,
        &viewer,
        &id,
        done_message(&viewer, &done.done),
        false,
    )
    .await
}

async fn render(
    console: &Console,
    viewer: &Viewer,
    id: &UserId,
    message: Option<&str>,
    reveal: bool,
) -> Response {
    let lang = viewer.lang;
    let admin = console.admin(viewer);
    let details = match actions::show_user(&admin, id).await {
        Ok(details) => details,
        Err(e) => return failure(viewer, &e),
    };
    let query = AuditQuery {
        user: Some(id.clone()),
        limit: TRAIL,
        ..AuditQuery::default()
    };
    let trail = match console.app.store.list_audit_events(&query).await {
        Ok(trail) => trail,
        Err(e) => return failure(viewer, &AdminError::Store(e)),
    };
    let mut body = done(message);
    body.push_str(&profile(viewer, &details, reveal));
    body.push_str(&actions_of(viewer, &details));
    body.push_str(&identities(viewer, &details));
    body.push_str(&sessions(viewer, &details));
    body.push_str(&format!("<h2>{}</h2>\n", lang.t("Audit trail", "审计记录")));
    body.push_str(&parts::audit_records(viewer, &trail));
    let title = format!("{} {}", lang.t("User", "用户"), id.as_str());
    html(StatusCode::OK, page(viewer, Section::Users, &title, &body))
}

fn profile(viewer: &Viewer, details: &UserDetails, reveal: bool) -> String {
    let lang = viewer.lang;
    let user = &details.user;
    let phone = match &user.phone {
        None => lang.t("none", "未绑定").to_owned(),
        Some(phone) if reveal => format!(
            "{} <span class=\"badge\">{}</span>",
            escape(&phone.e164()),
            lang.t("revealed, audited", "已显示，已记录审计")
        ),
        Some(phone) => {
            let button = if viewer.may(AdminRole::Operator) {
                action_button(
                    viewer,
                    &format!("/users/{}/reveal-phone", user.id.as_str()),
                    &[],
                    lang.t("Reveal (audited)", "显示完整号码（记录审计）"),
                    false,
                )
            } else {
                String::new()
            };
            format!("{} {button}", escape(&phone.masked()))
        }
    };
    let avatar = match &user.avatar {
        Some(name) => code(name),
        None => lang.t("none", "无").to_owned(),
    };
    format!(
        "<dl>\n<dt>{id_l}</dt><dd>{id}</dd>\n<dt>{status_l}</dt><dd>{status}</dd>\n\
         <dt>{nick_l}</dt><dd>{nick}</dd>\n<dt>{avatar_l}</dt><dd>{avatar}</dd>\n\
         <dt>{phone_l}</dt><dd>{phone}</dd>\n<dt>{created_l}</dt><dd>{created}</dd>\n\
         <dt>{updated_l}</dt><dd>{updated}</dd>\n</dl>\n",
        id_l = lang.t("User id", "用户 ID"),
        id = code(user.id.as_str()),
        status_l = lang.t("Status", "状态"),
        status = status(viewer, user.banned_at),
        nick_l = lang.t("Nickname", "昵称"),
        nick = escape(user.nickname.as_deref().unwrap_or("")),
        avatar_l = lang.t("Avatar", "头像"),
        phone_l = lang.t("Phone", "手机号"),
        created_l = lang.t("Created", "创建时间"),
        created = viewer.tz.second(user.created_at),
        updated_l = lang.t("Updated", "更新时间"),
        updated = viewer.tz.second(user.updated_at),
    )
}

fn actions_of(viewer: &Viewer, details: &UserDetails) -> String {
    let lang = viewer.lang;
    if !viewer.may(AdminRole::Operator) {
        return format!(
            "<p class=\"empty\">{}</p>\n",
            lang.t(
                "Your role can see this user; operators and owners act on them.",
                "你的角色只能查看；运维和所有者可以操作。"
            )
        );
    }
    let user = &details.user;
    let base = format!("/users/{}", user.id.as_str());
    let mut out = format!("<h2>{}</h2>\n<div>", lang.t("Actions", "操作"));
    match user.banned_at {
        None => out.push_str(&format!(
            "<form class=\"inline\" method=\"post\" action=\"{base}/ban\">{csrf}\
             <label for=\"reason\">{reason}</label>\
             <input id=\"reason\" name=\"reason\" maxlength=\"200\" size=\"30\">\
             <button type=\"submit\" class=\"danger\">{ban}</button></form>",
            csrf = csrf_field(&viewer.csrf),
            reason = lang.t("Reason (optional)", "原因（可选）"),
            ban = lang.t("Ban", "封禁"),
        )),
        Some(_) => out.push_str(&action_button(
            viewer,
            &format!("{base}/unban"),
            &[],
            lang.t("Unban", "解封"),
            false,
        )),
    }
    if !details.sessions.is_empty() {
        out.push_str(&action_button(
            viewer,
            &format!("{base}/revoke-sessions"),
            &[],
            lang.t("Revoke every session", "撤销所有会话"),
            true,
        ));
    }
    if user.phone.is_some() {
        out.push_str(&action_button(
            viewer,
            &format!("{base}/unbind-phone"),
            &[],
            lang.t("Unbind the phone number", "解绑手机号"),
            true,
        ));
    }
    out.push_str("</div>\n");
    out
}

fn identities(viewer: &Viewer, details: &UserDetails) -> String {
    let lang = viewer.lang;
    let rows: Vec<Vec<String>> = details
        .identities
        .iter()
        .map(|identity| {
            vec![
                code(identity.appid.as_str()),
                code(identity.openid.as_str()),
                identity
                    .unionid
                    .as_ref()
                    .map_or_else(String::new, |u| code(u.as_str())),
                viewer.tz.minute(identity.created_at),
                viewer.tz.minute(identity.updated_at),
            ]
        })
        .collect();
    format!(
        "<h2>{}</h2>\n{}",
        lang.t("WeChat identities", "微信身份"),
        table(
            lang.t("One per app", "每个小程序一个"),
            &[
                "appid",
                "openid",
                "unionid",
                lang.t("First login", "首次登录"),
                lang.t("Last login", "最近登录"),
            ],
            &rows,
            lang.t("No identity.", "没有身份。"),
        )
    )
}

fn sessions(viewer: &Viewer, details: &UserDetails) -> String {
    let lang = viewer.lang;
    let rows: Vec<Vec<String>> = details
        .sessions
        .iter()
        .map(|session| parts::session_row(viewer, session, true))
        .collect();
    format!(
        "<h2>{}</h2>\n{}",
        lang.t("Live sessions", "有效会话"),
        table(
            lang.t("Signed-in devices", "已登录的设备"),
            &parts::session_head(lang),
            &rows,
            lang.t("No live session.", "没有有效会话。"),
        )
    )
}

#[derive(Deserialize)]
pub(crate) struct Act {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

/// The checks of every action on a user: the path's id, the CSRF token, the operator role.
fn acting(viewer: &Viewer, id: &str, form: &Act) -> Result<UserId, Box<Response>> {
    viewer.check(&form.csrf, AdminRole::Operator)?;
    user_id(viewer, id)
}

/// `POST /users/{id}/{action}`: `ban` (with `reason`: refuses logins and revokes every session),
/// `unban`, `revoke-sessions`, `unbind-phone`, or `reveal-phone` (the user's page with the whole
/// number, once, and the audit log records who saw it: a POST, so that no link, prefetch or history
/// entry reveals it again). The others go back to the user's page saying what they did.
pub(crate) async fn act(
    State(console): State<Console>,
    viewer: Viewer,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<Act>,
) -> Response {
    let id = match acting(&viewer, &id, &form) {
        Ok(id) => id,
        Err(response) => return *response,
    };
    let admin = console.admin(&viewer);
    let done = match action.as_str() {
        "ban" => {
            let reason = Some(form.reason.trim()).filter(|r| !r.is_empty());
            let banned = actions::ban(&admin, &id, reason).await;
            banned.map(|b| if b.newly { "banned" } else { "nothing" })
        }
        "unban" => {
            let unbanned = actions::unban(&admin, &id).await;
            unbanned.map(|u| if u { "unbanned" } else { "nothing" })
        }
        "revoke-sessions" => actions::revoke_user_sessions(&admin, &id)
            .await
            .map(|_| "revoked"),
        "unbind-phone" => {
            let unbound = actions::unbind_phone(&admin, &id).await;
            unbound.map(|p| {
                if p.is_some() {
                    "phone-unbound"
                } else {
                    "nothing"
                }
            })
        }
        "reveal-phone" => {
            admin
                .record(AuditEvent::PhoneRevealed { user: id.clone() })
                .await;
            return render(&console, &viewer, &id, None, true).await;
        }
        _ => {
            return viewer.refuse(
                StatusCode::NOT_FOUND,
                viewer.lang.t("Not found.", "页面不存在。"),
            );
        }
    };
    match done {
        Ok(key) => redirect(&format!("/users/{}?done={key}", id.as_str()), None),
        Err(e) => failure(&viewer, &e),
    }
}
