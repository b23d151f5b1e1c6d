//! Administrators: every account of the console with its role, second factor and lockout; an
//! owner removes one (`services::admins::remove`, as `wxlogin admins remove`: never the last
//! owner, never oneself). Accounts are made on the command line (`wxlogin admins add`), where a
//! password can be typed without passing through a browser form.

use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::super::context::{Console, Viewer, html, redirect};
use super::{Section, action_button, code, done, page, role_name, table};
use crate::domain::{AdminName, AdminRole};
use crate::services::admins::{self, AdminsError, TotpState, is_locked};

#[derive(Deserialize, Default)]
pub(crate) struct Show {
    #[serde(default)]
    done: String,
}

fn failure(viewer: &Viewer, error: &AdminsError) -> Response {
    match error {
        AdminsError::Store(e) => {
            tracing::warn!(error = %e, "console: the database is unavailable");
            viewer.refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                viewer
                    .lang
                    .t("The database is unavailable.", "数据库不可用。"),
            )
        }
        AdminsError::Unknown(_) => viewer.refuse(StatusCode::NOT_FOUND, &error.to_string()),
        _ => viewer.refuse(StatusCode::CONFLICT, &error.to_string()),
    }
}

/// `GET /admins`.
pub(crate) async fn show(
    State(console): State<Console>,
    viewer: Viewer,
    Query(show): Query<Show>,
) -> Response {
    let lang = viewer.lang;
    let accounts = match admins::list(&console.admin(&viewer)).await {
        Ok(accounts) => accounts,
        Err(e) => return failure(&viewer, &e),
    };
    let now = console.now();
    let rows: Vec<Vec<String>> = accounts
        .iter()
        .map(|account| {
            let totp = match TotpState::of(account) {
                TotpState::On => lang.t("on", "已启用"),
                TotpState::Pending => lang.t("enrolled, no code yet", "已生成，未验证"),
                TotpState::Off => lang.t("off", "未启用"),
            };
            let locked = match account.locked_until {
                Some(until) if is_locked(account, now) => format!(
                    "<span class=\"badge bad\">{} {}</span>",
                    lang.t("locked until", "锁定至"),
                    viewer.tz.minute(until)
                ),
                _ => String::new(),
            };
            let remove = if viewer.may(AdminRole::Owner) && account.name != viewer.name {
                action_button(
                    &viewer,
                    "/admins/remove",
                    &[("name", account.name.as_str())],
                    lang.t("Remove", "移除"),
                    true,
                )
            } else {
                String::new()
            };
            vec![
                code(account.name.as_str()),
                role_name(lang, account.role).to_owned(),
                totp.to_owned(),
                locked,
                viewer.tz.minute(account.created_at),
                remove,
            ]
        })
        .collect();
    let mut body = done(match show.done.as_str() {
        "removed" => Some(lang.t(
            "The administrator was removed and signed out.",
            "管理员已移除并已退出登录。",
        )),
        _ => None,
    });
    body.push_str(&table(
        lang.t("Administrators of this console", "本管理台的管理员"),
        &[
            lang.t("Name", "用户名"),
            lang.t("Role", "角色"),
            "TOTP",
            lang.t("Lockout", "锁定"),
            lang.t("Created", "创建时间"),
            "",
        ],
        &rows,
        "",
    ));
    body.push_str(&format!(
        "<p class=\"empty\">{}</p>\n",
        lang.t(
            "Add administrators, reset passwords and enrol TOTP with `wxlogin admins` on the server.",
            "在服务器上使用 `wxlogin admins` 添加管理员、重置密码和启用 TOTP。"
        )
    ));
    html(
        StatusCode::OK,
        page(
            &viewer,
            Section::Admins,
            lang.t("Administrators", "管理员"),
            &body,
        ),
    )
}

#[derive(Deserialize)]
pub(crate) struct Remove {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
}

/// `POST /admins/remove` (`name`).
pub(crate) async fn remove(
    State(console): State<Console>,
    viewer: Viewer,
    Form(form): Form<Remove>,
) -> Response {
    if let Err(response) = viewer.check(&form.csrf, AdminRole::Owner) {
        return *response;
    }
    let Ok(name) = AdminName::parse(form.name.trim()) else {
        return viewer.refuse(
            StatusCode::NOT_FOUND,
            viewer.lang.t("No such administrator.", "管理员不存在。"),
        );
    };
    if name == viewer.name {
        return viewer.refuse(
            StatusCode::CONFLICT,
            viewer.lang.t(
                "You cannot remove yourself: another owner can.",
                "不能移除自己：请由另一位所有者操作。",
            ),
        );
    }
    match admins::remove(&console.admin(&viewer), &name).await {
        Ok(_) => redirect("/admins?done=removed", None),
        Err(e) => failure(&viewer, &e),
    }
}
