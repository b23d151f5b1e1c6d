//! The WeChat endpoints (wechat-api.md §2–§6), answered as api.weixin.qq.com does: HTTP 200 with
//! errors in the body, checks in WeChat's order, case-sensitive paths.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{Map, Value, json};

use crate::faults::{Api, Ending};
use crate::mock::{HANG, Mock};
use crate::reply::{self, Flavor, WxError, WxResult, code};

pub(crate) fn routes() -> Router<Mock> {
    Router::new()
        .route("/sns/jscode2session", any(jscode2session))
        .route("/cgi-bin/token", any(token))
        .route("/cgi-bin/stable_token", any(stable_token))
        .route("/wxa/checksession", any(checksession))
        .route("/wxa/resetusersessionkey", any(resetusersessionkey))
        .route("/wxa/business/getuserphonenumber", any(getuserphonenumber))
}

/// Anything outside the known paths: 40066 like WeChat, or a 404 under the control prefix.
pub(crate) async fn unknown_path(State(mock): State<Mock>, uri: Uri) -> Response {
    let path = uri.path();
    if path == "/__mock" || path.starts_with("/__mock/") {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({ "error": format!("no control endpoint {path}") })),
        )
            .into_response();
    }
    reply::error(Flavor::Json, mock.clock().unix_secs(), code::INVALID_URL)
}

/// Counts the call, applies its faults, then answers with `handle`'s result.
async fn answer(
    mock: &Mock,
    api: Api,
    flavor: Flavor,
    handle: impl FnOnce(&Mock) -> WxResult<Value>,
) -> Response {
    let plan = mock.begin_call(api);
    if !plan.latency.is_zero() {
        tokio::time::sleep(plan.latency).await;
    }
    let result = match plan.ending {
        Some(Ending::Hang) => {
            tokio::time::sleep(HANG).await;
            return reply::close_connection();
        }
        Some(Ending::Close) => return reply::close_connection(),
        Some(Ending::Errcode(errcode)) => Err(WxError(errcode)),
        None => handle(mock),
    };
    match result {
        Ok(body) => reply::success(flavor, &body),
        Err(WxError(errcode)) => reply::error(flavor, mock.clock().unix_secs(), errcode),
    }
}

type Params = HashMap<String, String>;

fn params(uri: &Uri) -> Params {
    // Form decoding is lenient (bad escapes are kept as they are), so this never fails in practice.
    Query::<Params>::try_from_uri(uri)
        .map(|Query(params)| params)
        .unwrap_or_default()
}

/// A parameter, an empty one counting as missing.
fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

fn require(method: &Method, wanted: Method) -> WxResult<()> {
    match (method == wanted, wanted) {
        (true, _) => Ok(()),
        (false, Method::GET) => Err(WxError(code::REQUIRE_GET)),
        (false, _) => Err(WxError(code::REQUIRE_POST)),
    }
}

/// A POST body that must be a JSON object.
fn json_object(body: Result<Bytes, BytesRejection>) -> WxResult<Map<String, Value>> {
    let body = body.map_err(|_| WxError(code::DATA_FORMAT_ERROR))?;
    if body.is_empty() {
        return Err(WxError(code::EMPTY_POST_DATA));
    }
    match serde_json::from_slice(&body) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err(WxError(code::DATA_FORMAT_ERROR)),
    }
}

/// An optional string field; `null` counts as absent, an empty string as missing, another type is
/// a format error.
fn string_field<'a>(object: &'a Map<String, Value>, name: &str) -> WxResult<Option<&'a str>> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str()).filter(|s| !s.is_empty())),
        Some(_) => Err(WxError(code::DATA_FORMAT_ERROR)),
    }
}

/// The appid an access token authorises.
fn authorize(mock: &Mock, params: &Params, now_ms: i64) -> WxResult<String> {
    let token = param(params, "access_token").ok_or(WxError(code::ACCESS_TOKEN_MISSING))?;
    mock.state().tokens.check(token, now_ms).map(str::to_owned)
}

/// Checks appid, secret and grant_type in WeChat's order: missing appid, missing secret, grant
/// type, unknown appid, wrong secret.
fn check_credentials(
    mock: &Mock,
    appid: Option<&str>,
    secret: Option<&str>,
    grant_type: Option<&str>,
    wanted_grant_type: &str,
) -> WxResult<String> {
    let appid = appid.ok_or(WxError(code::APPID_MISSING))?;
    let secret = secret.ok_or(WxError(code::APPSECRET_MISSING))?;
    if grant_type != Some(wanted_grant_type) {
        return Err(WxError(code::INVALID_GRANT_TYPE));
    }
    mock.state().check_secret(appid, secret)?;
    Ok(appid.to_owned())
}

/// `GET /sns/jscode2session` (code2Session).
async fn jscode2session(State(mock): State<Mock>, method: Method, uri: Uri) -> Response {
    answer(&mock, Api::Jscode2session, Flavor::PlainText, |mock| {
        require(&method, Method::GET)?;
        let q = params(&uri);
        let appid = param(&q, "appid").ok_or(WxError(code::APPID_MISSING))?;
        let secret = param(&q, "secret").ok_or(WxError(code::APPSECRET_MISSING))?;
        let js_code = param(&q, "js_code").ok_or(WxError(code::CODE_MISSING))?;
        let appid = check_credentials(
            mock,
            Some(appid),
            Some(secret),
            param(&q, "grant_type"),
            "authorization_code",
        )?;
        let now = mock.now_ms();
        let session = mock.state().exchange_login_code(&appid, js_code, now)?;
        let mut body = json!({ "openid": session.openid, "session_key": session.session_key });
        if let Some(unionid) = session.unionid {
            body["unionid"] = json!(unionid);
        }
        if mock.settings().errcode_on_success {
            body["errcode"] = json!(0);
            body["errmsg"] = json!("ok");
        }
        Ok(body)
    })
    .await
}

/// `GET /cgi-bin/token` (getAccessToken).
async fn token(State(mock): State<Mock>, method: Method, uri: Uri) -> Response {
    answer(&mock, Api::Token, Flavor::Json, |mock| {
        require(&method, Method::GET)?;
        let q = params(&uri);
        let appid = check_credentials(
            mock,
            param(&q, "appid"),
            param(&q, "secret"),
            param(&q, "grant_type"),
            "client_credential",
        )?;
        let now = mock.now_ms();
        let quota = mock.settings().token_daily_quota;
        let grant = mock.state().tokens.classic(&appid, now, quota)?;
        Ok(json!({ "access_token": grant.access_token, "expires_in": grant.expires_in }))
    })
    .await
}

/// `POST /cgi-bin/stable_token` (getStableAccessToken), JSON body.
async fn stable_token(
    State(mock): State<Mock>,
    method: Method,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    answer(&mock, Api::StableToken, Flavor::Json, |mock| {
        require(&method, Method::POST)?;
        let object = json_object(body)?;
        let grant_type = string_field(&object, "grant_type")?;
        let appid = string_field(&object, "appid")?;
        let secret = string_field(&object, "secret")?;
        let force_refresh = match object.get("force_refresh") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(force)) => *force,
            Some(_) => return Err(WxError(code::DATA_FORMAT_ERROR)),
        };
        let appid = check_credentials(mock, appid, secret, grant_type, "client_credential")?;
        let now = mock.now_ms();
        let grant = mock.state().tokens.stable(&appid, now, force_refresh)?;
        Ok(json!({ "access_token": grant.access_token, "expires_in": grant.expires_in }))
    })
    .await
}

/// `GET /wxa/checksession` (checkSessionKey).
async fn checksession(State(mock): State<Mock>, method: Method, uri: Uri) -> Response {
    answer(&mock, Api::Checksession, Flavor::Json, |mock| {
        require(&method, Method::GET)?;
        let q = params(&uri);
        let now = mock.now_ms();
        let appid = authorize(mock, &q, now)?;
        mock.state().check_login_state(
            &appid,
            param(&q, "openid"),
            param(&q, "signature"),
            param(&q, "sig_method"),
        )?;
        Ok(json!({ "errcode": 0, "errmsg": "ok" }))
    })
    .await
}

/// `GET /wxa/resetusersessionkey` (resetUserSessionKey).
async fn resetusersessionkey(State(mock): State<Mock>, method: Method, uri: Uri) -> Response {
    answer(&mock, Api::Resetusersessionkey, Flavor::Json, |mock| {
        require(&method, Method::GET)?;
        let q = params(&uri);
        let now = mock.now_ms();
        let appid = authorize(mock, &q, now)?;
        let mut state = mock.state();
        let user = state.check_login_state(
            &appid,
            param(&q, "openid"),
            param(&q, "signature"),
            param(&q, "sig_method"),
        )?;
        let (openid, session_key) = state.reset_session_key(&appid, &user, now)?;
        Ok(json!({ "errcode": 0, "errmsg": "ok", "openid": openid, "session_key": session_key }))
    })
    .await
}

/// `POST /wxa/business/getuserphonenumber` (getPhoneNumber), JSON body `{code, openid?}`.
///
/// A missing `code` is answered 47001 like a `code` of the wrong type (WeChat's answer for it is
/// undocumented).
async fn getuserphonenumber(
    State(mock): State<Mock>,
    method: Method,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    answer(&mock, Api::Getuserphonenumber, Flavor::Json, |mock| {
        require(&method, Method::POST)?;
        let q = params(&uri);
        let now = mock.now_ms();
        let appid = authorize(mock, &q, now)?;
        let object = json_object(body)?;
        let Some(Value::String(phone_code)) = object.get("code") else {
            return Err(WxError(code::DATA_FORMAT_ERROR));
        };
        let openid = string_field(&object, "openid")?;
        let phone_info = mock
            .state()
            .exchange_phone_code(&appid, phone_code, openid, now)?;
        Ok(json!({ "errcode": 0, "errmsg": "ok", "phone_info": phone_info }))
    })
    .await
}
