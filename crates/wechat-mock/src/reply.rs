//! How the WeChat endpoints answer: HTTP 200 always, errors in the body with a `rid`, and the
//! content types seen in real traffic.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::ids;

/// The errcodes the simulator produces on its own.
pub(crate) mod code {
    pub const SYSTEM_ERROR: i64 = -1;
    pub const INVALID_CREDENTIAL: i64 = 40001;
    pub const INVALID_GRANT_TYPE: i64 = 40002;
    pub const INVALID_OPENID: i64 = 40003;
    pub const INVALID_APPID: i64 = 40013;
    pub const INVALID_URL: i64 = 40066;
    pub const INVALID_APPSECRET: i64 = 40125;
    pub const INVALID_CODE: i64 = 40029;
    pub const CODE_BEEN_USED: i64 = 40163;
    pub const CODE_BLOCKED: i64 = 40226;
    pub const ACCESS_TOKEN_MISSING: i64 = 41001;
    pub const APPID_MISSING: i64 = 41002;
    pub const APPSECRET_MISSING: i64 = 41004;
    pub const CODE_MISSING: i64 = 41008;
    pub const ACCESS_TOKEN_EXPIRED: i64 = 42001;
    pub const REQUIRE_GET: i64 = 43001;
    pub const REQUIRE_POST: i64 = 43002;
    pub const EMPTY_POST_DATA: i64 = 44002;
    pub const DAILY_QUOTA: i64 = 45009;
    pub const MINUTE_QUOTA: i64 = 45011;
    pub const DATA_FORMAT_ERROR: i64 = 47001;
    pub const INVALID_SIG_METHOD: i64 = 87008;
    pub const INVALID_SIGNATURE: i64 = 87009;
}

/// A WeChat error, answered as `{"errcode", "errmsg"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WxError(pub i64);

pub(crate) type WxResult<T> = Result<T, WxError>;

/// The errmsg WeChat sends for `errcode` (without the rid).
pub(crate) fn errmsg(errcode: i64) -> String {
    let known = match errcode {
        0 => "ok",
        code::SYSTEM_ERROR => "system error",
        code::INVALID_CREDENTIAL => "invalid credential, access_token is invalid or not latest",
        code::INVALID_GRANT_TYPE => "invalid grant_type",
        code::INVALID_OPENID => "invalid openid",
        code::INVALID_APPID => "invalid appid",
        40014 => "invalid access_token",
        code::INVALID_CODE => "invalid code",
        code::INVALID_URL => "invalid url",
        code::INVALID_APPSECRET => "invalid appsecret",
        code::CODE_BEEN_USED => "code been used",
        code::CODE_BLOCKED => "code blocked",
        code::ACCESS_TOKEN_MISSING => "access_token missing",
        code::APPID_MISSING => "appid missing",
        code::APPSECRET_MISSING => "appsecret missing",
        code::CODE_MISSING => "missing code",
        code::ACCESS_TOKEN_EXPIRED => "access_token expired",
        code::REQUIRE_GET => "require GET method",
        code::REQUIRE_POST => "require POST method",
        code::EMPTY_POST_DATA => "empty post data",
        code::DAILY_QUOTA => "reach max api daily quota limit",
        code::MINUTE_QUOTA => "api minute-quota reach limit mustslower retry next minute",
        code::DATA_FORMAT_ERROR => "data format error",
        code::INVALID_SIG_METHOD => "invalid sig_method",
        code::INVALID_SIGNATURE => "invalid signature",
        other => return format!("mock fault errcode {other}"),
    };
    known.to_owned()
}

/// The content type of a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// jscode2session answers `text/plain` (observed in the wild), which forces clients to parse the
    /// JSON whatever the header says.
    PlainText,
    Json,
}

impl Flavor {
    fn content_type(self) -> HeaderValue {
        match self {
            Flavor::PlainText => HeaderValue::from_static("text/plain"),
            Flavor::Json => HeaderValue::from_static("application/json; encoding=utf-8"),
        }
    }
}

/// Marks a response so the connection is dropped instead of sending it (the `close` fault).
#[derive(Clone, Copy, Debug)]
pub(crate) struct CloseConnection;

/// The errcode of a WeChat answer, for the request log.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Outcome(pub i64);

/// A WeChat success body.
pub(crate) fn success(flavor: Flavor, body: &Value) -> Response {
    respond(flavor, body, 0)
}

/// A WeChat error body with a fresh rid stamped with `unix_secs`.
pub(crate) fn error(flavor: Flavor, unix_secs: i64, errcode: i64) -> Response {
    let body = json!({
        "errcode": errcode,
        "errmsg": format!("{}, rid: {}", errmsg(errcode), ids::rid(unix_secs)),
    });
    respond(flavor, &body, errcode)
}

fn respond(flavor: Flavor, body: &Value, errcode: i64) -> Response {
    let mut response = (StatusCode::OK, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, flavor.content_type());
    response.extensions_mut().insert(Outcome(errcode));
    response
}

/// A response that makes the server drop the connection without answering.
pub(crate) fn close_connection() -> Response {
    let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
    response.extensions_mut().insert(CloseConnection);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errmsgs_are_the_documented_strings() {
        assert_eq!(errmsg(40029), "invalid code");
        assert_eq!(errmsg(-1), "system error");
        assert_eq!(
            errmsg(45011),
            "api minute-quota reach limit mustslower retry next minute"
        );
        assert_eq!(errmsg(12345), "mock fault errcode 12345");
    }
}
