//! Keys: the token signing keys with their state (pending, current, published, retired) and
//! times; an owner rotates (`services::signing_keys::rotate`, as `wxlogin keys rotate`) and
//! retires a superseded key. And the sealing key: which key sealed how many stored values
//! (`services::resealing::census`, as `wxlogin sealing-key status`), counted on request, since it
//! reads every sealed value.

use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::super::context::{Console, Viewer, html, redirect};
use super::parts::failure;
use super::{Section, action_button, code, done, escape, page, table};
use crate::domain::AdminRole;
use crate::services::admin::AdminError;
use crate::services::audit::{AuditEvent, KeyKind};
use crate::services::resealing::{self, KeyRole};
use crate::services::signing_keys;
use crate::services::wechat_tokens::SharedAccessTokens;
use crate::tokens::{KeyState, key_statuses};

#[derive(Deserialize, Default)]
pub(crate) struct Show {
    #[serde(default)]
    census: Option<String>,
    #[serde(default)]
    done: String,
}

/// `GET /keys[?census=1]`.
pub(crate) async fn show(
    State(console): State<Console>,
    viewer: Viewer,
    Query(show): Query<Show>,
) -> Response {
    let lang = viewer.lang;
    let records = match console.app.store.list_signing_keys().await {
        Ok(records) => records,
        Err(e) => return failure(&viewer, &AdminError::Store(e)),
    };
    let settings = &console.app.settings.tokens;
    let keys = key_statuses(&records, console.now(), settings.key_linger());
    let owner = viewer.may(AdminRole::Owner);
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|key| {
            let (state, class) = match key.state {
                KeyState::Pending => (lang.t("pending", "待启用"), ""),
                KeyState::Current => (lang.t("current", "当前"), " good"),
                KeyState::Published => (lang.t("published", "已发布"), ""),
                KeyState::Retired => (lang.t("retired", "已停用"), " bad"),
            };
            let time = |at: Option<i64>| at.map_or_else(String::new, |at| viewer.tz.minute(at));
            let retire = if owner && key.state == KeyState::Published {
                action_button(
                    &viewer,
                    "/keys/retire",
                    &[("kid", &key.kid)],
                    lang.t("Retire now", "立即停用"),
                    true,
                )
            } else {
                String::new()
            };
            vec![
                code(&key.kid),
                escape(key.alg.as_str()),
                format!("<span class=\"badge{class}\">{state}</span>"),
                viewer.tz.minute(key.created_at),
                viewer.tz.minute(key.activates_at),
                time(key.superseded_at),
                time(key.retires_at),
                retire,
            ]
        })
        .collect();
    let mut body = done(match show.done.as_str() {
        "rotated" => Some(lang.t(
            "A new key is published; it signs once every server and verifier has it (tokens.key_publish_secs).",
            "新密钥已发布；在所有服务器和验证方获取后开始签名（tokens.key_publish_secs）。",
        )),
        "retired" => Some(lang.t(
            "The key is retired: it left the JWKS and its tokens are refused.",
            "密钥已停用：已从 JWKS 移除，其签发的令牌将被拒绝。",
        )),
        _ => None,
    });
    body.push_str(&format!(
        "<h2>{}</h2>\n",
        lang.t("Token signing keys", "令牌签名密钥")
    ));
    body.push_str(&table(
        lang.t(
            "Every stored key, by algorithm and activation",
            "所有密钥（按算法和启用时间）",
        ),
        &[
            "kid",
            lang.t("Algorithm", "算法"),
            lang.t("State", "状态"),
            lang.t("Created", "创建"),
            lang.t("Signs from", "开始签名"),
            lang.t("Superseded", "被取代"),
            lang.t("Retires", "停用"),
            "",
        ],
        &rows,
        lang.t(
            "No signing key yet: the first start makes one.",
            "尚无签名密钥：首次启动时创建。",
        ),
    ));
    if owner {
        body.push_str(&action_button(
            &viewer,
            "/keys/rotate",
            &[],
            lang.t("Rotate the signing key", "轮换签名密钥"),
            false,
        ));
    }
    body.push_str(&format!("<h2>{}</h2>\n", lang.t("Sealing key", "封装密钥")));
    if show.census.is_some() {
        body.push_str(&census(&console, &viewer).await);
    } else {
        body.push_str(&format!(
            "<p>{} <a href=\"/keys?census=1\">{}</a></p>\n",
            lang.t(
                "Counting which key sealed each stored value reads every one of them.",
                "统计每个存储值由哪个密钥封装需要读取全部值。"
            ),
            lang.t("Count now", "立即统计")
        ));
    }
    html(
        StatusCode::OK,
        page(&viewer, Section::Keys, lang.t("Keys", "密钥"), &body),
    )
}

async fn census(console: &Console, viewer: &Viewer) -> String {
    let lang = viewer.lang;
    let app = &console.app;
    let tokens =
        SharedAccessTokens::new(app.shared.clone(), app.sealing.clone(), app.clock.clone());
    let apps: Vec<_> = app.settings.apps.iter().map(|a| a.appid.clone()).collect();
    let counts =
        match resealing::census(app.store.as_ref(), &app.sealing, Some((&tokens, &apps))).await {
            Ok(counts) => counts,
            Err(e) => {
                tracing::warn!(error = %e, "console: cannot count the sealed values");
                return format!(
                    "<p class=\"notice\" role=\"alert\">{}</p>\n",
                    lang.t(
                        "The sealed values cannot be counted now.",
                        "暂时无法统计封装值。"
                    )
                );
            }
        };
    let rows = resealing::census_rows(&app.sealing, &counts);
    let behind = resealing::behind(&rows);
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let role = match row.role {
                KeyRole::Current => lang.t("current", "当前"),
                KeyRole::Previous => lang.t("previous", "旧密钥"),
                KeyRole::Unknown => lang.t("unknown", "未知"),
            };
            vec![code(&row.label), role.to_owned(), row.values.to_string()]
        })
        .collect();
    let mut out = table(
        lang.t(
            "Stored values by the key that sealed them",
            "按封装密钥统计的存储值",
        ),
        &[
            lang.t("Key id", "密钥 ID"),
            lang.t("Key", "密钥"),
            lang.t("Values", "数量"),
        ],
        &cells,
        "",
    );
    out.push_str(&format!(
        "<p>{}</p>\n",
        if behind == 0 {
            lang.t(
                "Every value is sealed under the current key: previous keys can be removed.",
                "所有值均已由当前密钥封装：可以移除旧密钥。",
            )
            .to_owned()
        } else {
            format!(
                "{behind} {}",
                lang.t(
                    "value(s) not yet under the current key: run `wxlogin sealing-key reseal`.",
                    "个值尚未由当前密钥封装：请运行 `wxlogin sealing-key reseal`。"
                )
            )
        }
    ));
    out
}

#[derive(Deserialize)]
pub(crate) struct Act {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    kid: String,
}

/// `POST /keys/rotate`: a new key, published now, signing after `tokens.key_publish_secs`.
pub(crate) async fn rotate(
    State(console): State<Console>,
    viewer: Viewer,
    Form(form): Form<Act>,
) -> Response {
    if let Err(response) = viewer.check(&form.csrf, AdminRole::Owner) {
        return *response;
    }
    let app = &console.app;
    let tokens = &app.settings.tokens;
    let rotated = signing_keys::rotate(
        app.store.as_ref(),
        &app.sealing,
        tokens.algorithm,
        console.now(),
        tokens.key_publish(),
        Some(&app.shared),
    )
    .await;
    match rotated {
        Ok(rotated) => {
            let event = AuditEvent::KeyRotated {
                key: KeyKind::Signing,
                kid: rotated.kid,
            };
            console.admin(&viewer).record(event).await;
            redirect("/keys?done=rotated", None)
        }
        Err(e) => {
            tracing::warn!(error = %e, "console: cannot rotate the signing key");
            viewer.refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                viewer
                    .lang
                    .t("The key cannot be rotated now.", "暂时无法轮换密钥。"),
            )
        }
    }
}

/// `POST /keys/retire` (`kid`): a superseded key out of use now.
pub(crate) async fn retire(
    State(console): State<Console>,
    viewer: Viewer,
    Form(form): Form<Act>,
) -> Response {
    if let Err(response) = viewer.check(&form.csrf, AdminRole::Owner) {
        return *response;
    }
    let app = &console.app;
    let retired = signing_keys::retire(
        app.store.as_ref(),
        &form.kid,
        console.now(),
        app.settings.tokens.key_linger(),
        Some(&app.shared),
    )
    .await;
    match retired {
        Ok(()) => {
            let event = AuditEvent::KeyRetired {
                key: KeyKind::Signing,
                kid: form.kid,
            };
            console.admin(&viewer).record(event).await;
            redirect("/keys?done=retired", None)
        }
        Err(signing_keys::RetireError::Store(e)) => failure(&viewer, &AdminError::Store(e)),
        Err(e) => viewer.refuse(StatusCode::CONFLICT, &e.to_string()),
    }
}
