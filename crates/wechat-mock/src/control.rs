//! The `/__mock/` control API: the WeChat *client* side (what `wx.login` and the getPhoneNumber
//! button would give a mini program), plus faults, stats and reset (SIMULATOR.md).
//!
//! Errors are 4xx answers with `{"error": "<message>"}`: 404 for an unknown app, 400 for a body that
//! does not parse or validate. Bodies are read as JSON whatever their Content-Type says, so `curl -d`
//! works without extra headers.

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::config::AppConfig;
use crate::error::MockError;
use crate::faults::{Fault, FaultTarget};
use crate::mock::Mock;

/// The longest latency a fault may ask for; longer ones are what `hang` is for.
const MAX_LATENCY_MS: u64 = 600_000;

pub(crate) fn routes() -> Router<Mock> {
    Router::new()
        .route("/__mock/apps", post(add_app))
        .route("/__mock/login", post(login))
        .route("/__mock/phone-code", post(phone_code))
        .route("/__mock/encrypt", post(encrypt))
        .route("/__mock/sign", post(sign))
        .route("/__mock/faults", post(add_fault).delete(clear_faults))
        .route("/__mock/stats", get(stats))
        .route("/__mock/reset", post(reset))
        .method_not_allowed_fallback(method_not_allowed)
}

/// A control API error.
struct ControlError {
    status: StatusCode,
    message: String,
}

impl ControlError {
    fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl From<MockError> for ControlError {
    fn from(error: MockError) -> Self {
        let status = if error.is_not_found() {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::BAD_REQUEST
        };
        Self {
            status,
            message: error.to_string(),
        }
    }
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

type ControlResult = Result<Response, ControlError>;

async fn method_not_allowed() -> Response {
    ControlError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        message: "method not allowed".into(),
    }
    .into_response()
}

fn parse<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ControlError> {
    let body = body.map_err(|e| ControlError::bad_request(format!("unreadable body: {e}")))?;
    serde_json::from_slice(&body)
        .map_err(|e| ControlError::bad_request(format!("invalid body: {e}")))
}

fn no_content() -> ControlResult {
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserRequest {
    appid: String,
    user: String,
}

async fn add_app(State(mock): State<Mock>, body: Result<Bytes, BytesRejection>) -> ControlResult {
    let app: AppConfig = parse(body)?;
    app.validate().map_err(ControlError::bad_request)?;
    mock.add_app(app);
    no_content()
}

async fn login(State(mock): State<Mock>, body: Result<Bytes, BytesRejection>) -> ControlResult {
    let request: UserRequest = parse(body)?;
    let code = mock.mint_login_code(&request.appid, &request.user)?;
    Ok(Json(code).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PhoneCodeRequest {
    appid: String,
    user: String,
    phone: String,
    #[serde(default = "china")]
    country_code: String,
}

fn china() -> String {
    "86".to_owned()
}

async fn phone_code(
    State(mock): State<Mock>,
    body: Result<Bytes, BytesRejection>,
) -> ControlResult {
    let request: PhoneCodeRequest = parse(body)?;
    let code = mock.mint_phone_code(
        &request.appid,
        &request.user,
        &request.phone,
        &request.country_code,
    )?;
    Ok(Json(json!({ "code": code })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EncryptRequest {
    appid: String,
    user: String,
    data: Value,
}

async fn encrypt(State(mock): State<Mock>, body: Result<Bytes, BytesRejection>) -> ControlResult {
    let request: EncryptRequest = parse(body)?;
    let encrypted = mock.encrypt(&request.appid, &request.user, request.data)?;
    Ok(Json(encrypted).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignRequest {
    appid: String,
    user: String,
    raw_data: String,
}

async fn sign(State(mock): State<Mock>, body: Result<Bytes, BytesRejection>) -> ControlResult {
    let request: SignRequest = parse(body)?;
    let signature = mock.sign(&request.appid, &request.user, &request.raw_data)?;
    Ok(Json(json!({ "signature": signature })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultRequest {
    api: FaultTarget,
    latency_ms: Option<u64>,
    errcode: Option<i64>,
    times: Option<u32>,
    #[serde(default)]
    hang: bool,
    #[serde(default)]
    close: bool,
}

async fn add_fault(State(mock): State<Mock>, body: Result<Bytes, BytesRejection>) -> ControlResult {
    let request: FaultRequest = parse(body)?;
    if request.times == Some(0) {
        return Err(ControlError::bad_request("times must be at least 1"));
    }
    if request.latency_ms.is_some_and(|ms| ms > MAX_LATENCY_MS) {
        return Err(ControlError::bad_request(format!(
            "latency_ms must be at most {MAX_LATENCY_MS} (use hang for longer)"
        )));
    }
    mock.add_fault(Fault {
        api: request.api,
        latency: request.latency_ms.map(Duration::from_millis),
        errcode: request.errcode,
        times: request.times,
        hang: request.hang,
        close: request.close,
    });
    no_content()
}

async fn clear_faults(State(mock): State<Mock>) -> ControlResult {
    mock.clear_faults();
    no_content()
}

async fn stats(State(mock): State<Mock>) -> ControlResult {
    Ok(Json(json!({ "calls": mock.stats() })).into_response())
}

async fn reset(State(mock): State<Mock>) -> ControlResult {
    mock.reset();
    no_content()
}
