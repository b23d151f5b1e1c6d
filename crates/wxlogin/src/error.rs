//! The one HTTP error type: [`ErrorCode`], the stable machine codes of the API contract (each with its
//! status), and [`ApiError`], a code with a human message and the headers each status needs
//! (`WWW-Authenticate`, `Retry-After`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::wechat::{ErrCode, WechatError};

/// The current request's id ("-" outside a request).
pub(crate) fn current_request_id() -> String {
    crate::telemetry::request::current_id()
}

/// Every machine code a client can receive in `error`, as listed in `docs/api.md`. A test holds this
/// list against that table, so the two cannot drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidCode,
    InvalidTicket,
    WatermarkMismatch,
    InvalidToken,
    InvalidGrant,
    InvalidClient,
    LoginBlocked,
    RegistrationClosed,
    PhoneRequired,
    InsufficientScope,
    UnknownApp,
    NotFound,
    MethodNotAllowed,
    PhoneInUse,
    IdentityMismatch,
    IdentityConflict,
    PayloadTooLarge,
    UriTooLong,
    UnsupportedMediaType,
    HeadersTooLarge,
    StaleSessionKey,
    RateLimited,
    Internal,
    WechatError,
    UpstreamUnavailable,
    Unavailable,
    WechatUnavailable,
    UpstreamTimeout,
}

impl ErrorCode {
    /// Every code, in the order of the table in `docs/api.md`.
    #[cfg(test)]
    pub const ALL: [Self; 29] = [
        Self::InvalidRequest,
        Self::InvalidCode,
        Self::InvalidTicket,
        Self::WatermarkMismatch,
        Self::InvalidToken,
        Self::InvalidGrant,
        Self::InvalidClient,
        Self::LoginBlocked,
        Self::RegistrationClosed,
        Self::PhoneRequired,
        Self::InsufficientScope,
        Self::UnknownApp,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::PhoneInUse,
        Self::IdentityMismatch,
        Self::IdentityConflict,
        Self::PayloadTooLarge,
        Self::UriTooLong,
        Self::UnsupportedMediaType,
        Self::HeadersTooLarge,
        Self::StaleSessionKey,
        Self::RateLimited,
        Self::Internal,
        Self::WechatError,
        Self::UpstreamUnavailable,
        Self::Unavailable,
        Self::WechatUnavailable,
        Self::UpstreamTimeout,
    ];

    /// The code as clients see it in `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidCode => "invalid_code",
            Self::InvalidTicket => "invalid_ticket",
            Self::WatermarkMismatch => "watermark_mismatch",
            Self::InvalidToken => "invalid_token",
            Self::InvalidGrant => "invalid_grant",
            Self::InvalidClient => "invalid_client",
            Self::LoginBlocked => "login_blocked",
            Self::RegistrationClosed => "registration_closed",
            Self::PhoneRequired => "phone_required",
            Self::InsufficientScope => "insufficient_scope",
            Self::UnknownApp => "unknown_app",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PhoneInUse => "phone_in_use",
            Self::IdentityMismatch => "identity_mismatch",
            Self::IdentityConflict => "identity_conflict",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UriTooLong => "uri_too_long",
            Self::HeadersTooLarge => "headers_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::StaleSessionKey => "stale_session_key",
            Self::RateLimited => "rate_limited",
            Self::Internal => "internal",
            Self::WechatError => "wechat_error",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::Unavailable => "unavailable",
            Self::WechatUnavailable => "wechat_unavailable",
            Self::UpstreamTimeout => "upstream_timeout",
        }
    }

    /// The HTTP status that always goes with the code.
    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidRequest | Self::InvalidCode | Self::InvalidTicket => {
                StatusCode::BAD_REQUEST
            }
            Self::WatermarkMismatch => StatusCode::BAD_REQUEST,
            Self::InvalidToken | Self::InvalidGrant | Self::InvalidClient => {
                StatusCode::UNAUTHORIZED
            }
            Self::LoginBlocked
            | Self::RegistrationClosed
            | Self::PhoneRequired
            | Self::InsufficientScope => StatusCode::FORBIDDEN,
            Self::UnknownApp | Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PhoneInUse | Self::IdentityMismatch | Self::IdentityConflict => {
                StatusCode::CONFLICT
            }
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UriTooLong => StatusCode::URI_TOO_LONG,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::StaleSessionKey => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::WechatError | Self::UpstreamUnavailable => StatusCode::BAD_GATEWAY,
            Self::Unavailable | Self::WechatUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub retry_after_secs: Option<u64>,
    /// With `phone_required` and `registration_closed`: the ticket that finishes the registration.
    pub login_ticket: Option<LoginTicketText>,
}

/// A login ticket as handed to the client (`wxt_...`). Never in logs: its `Debug` is redacted.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct LoginTicketText(pub String);

impl std::fmt::Debug for LoginTicketText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginTicketText([redacted])")
    }
}

/// The error body of every endpoint.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A stable machine code: `invalid_request`, `invalid_code`, `invalid_token`, ...
    pub error: String,
    /// For humans; may change.
    pub message: String,
    /// The `x-request-id` of this request, also in the server log.
    pub request_id: String,
    /// Only with `phone_required` and `registration_closed`: pass it with a phone code to
    /// `POST /v1/auth/wechat/register` (valid 5 minutes, single use).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_ticket: Option<String>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_secs: None,
            login_ticket: None,
        }
    }

    fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    pub fn invalid_code() -> Self {
        Self::new(
            ErrorCode::InvalidCode,
            "the login code is invalid, expired or already used; call wx.login again",
        )
    }

    pub fn invalid_token(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidToken, message)
    }

    pub fn invalid_grant() -> Self {
        Self::new(
            ErrorCode::InvalidGrant,
            "the refresh token is unknown, expired, revoked or reused; log in again",
        )
    }

    pub fn invalid_client() -> Self {
        Self::new(
            ErrorCode::InvalidClient,
            "a valid service credential (HTTP Basic client_id:client_secret) is required",
        )
    }

    /// A service credential without the scope an endpoint needs.
    pub fn insufficient_scope(scope: crate::config::ServiceScope) -> Self {
        Self::new(
            ErrorCode::InsufficientScope,
            format!(
                "this service credential lacks the scope `{scope}`; an operator can add it to the \
                 service's `scopes` in [[services]]"
            ),
        )
    }

    pub fn login_blocked(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::LoginBlocked, message)
    }

    /// Open data that does not decrypt with the stored session_key: WeChat rotated the key.
    pub fn stale_session_key() -> Self {
        Self::new(
            ErrorCode::StaleSessionKey,
            "the data does not decrypt with the stored session_key; call wx.login, \
             POST /v1/wechat/session with the code, then retry",
        )
    }

    /// Decrypted open data stamped for another appid, or too old.
    pub fn watermark_mismatch(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::WatermarkMismatch, message)
    }

    /// A fresh code that belongs to another WeChat user than the current session.
    pub fn identity_mismatch() -> Self {
        Self::new(
            ErrorCode::IdentityMismatch,
            "this code belongs to another WeChat user than the signed-in one",
        )
    }

    /// A WeChat identity that already belongs to one user, met with a unionid that links to
    /// another (or a unionid that changed): never merged, the operator decides.
    pub fn identity_conflict() -> Self {
        Self::new(
            ErrorCode::IdentityConflict,
            "this WeChat account is linked to two different users; contact the app's support",
        )
    }

    /// The phone number is bound to another account (never merged silently).
    pub fn phone_in_use() -> Self {
        Self::new(
            ErrorCode::PhoneInUse,
            "this phone number is bound to another account",
        )
    }

    /// `phone_required`: a new user must give a phone number (with the ticket, without a second
    /// `wx.login`).
    pub fn phone_required(ticket: LoginTicketText) -> Self {
        let mut e = Self::new(
            ErrorCode::PhoneRequired,
            "new users of this app sign up with their phone number: send `login_ticket` and a \
             getPhoneNumber code to POST /v1/auth/wechat/register",
        );
        e.login_ticket = Some(ticket);
        e
    }

    /// `registration_closed`: only existing users are admitted. With a ticket, an existing user
    /// can still be found by the phone number (`POST /v1/auth/wechat/register`).
    pub fn registration_closed(ticket: Option<LoginTicketText>) -> Self {
        let mut e = Self::new(
            ErrorCode::RegistrationClosed,
            "this app admits existing users only; no account matches this WeChat user or phone",
        );
        e.login_ticket = ticket;
        e
    }

    /// A login ticket that is unknown, expired or already used.
    pub fn invalid_ticket() -> Self {
        Self::new(
            ErrorCode::InvalidTicket,
            "the login ticket is unknown, expired or already used; call wx.login and log in again",
        )
    }

    pub fn unknown_app() -> Self {
        Self::new(
            ErrorCode::UnknownApp,
            "this appid is not configured on this server",
        )
    }

    pub fn not_found() -> Self {
        Self::new(ErrorCode::NotFound, "no such route or resource")
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            ErrorCode::MethodNotAllowed,
            "this route does not accept that method",
        )
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            ErrorCode::PayloadTooLarge,
            format!("the body is larger than {limit} bytes"),
        )
    }

    pub fn uri_too_long(limit: usize) -> Self {
        Self::new(
            ErrorCode::UriTooLong,
            format!("the request target is longer than {limit} bytes"),
        )
    }

    pub fn headers_too_large(limit: usize, count: usize) -> Self {
        Self::new(
            ErrorCode::HeadersTooLarge,
            format!(
                "the request head is larger than {limit} bytes or has more than {count} headers"
            ),
        )
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::UnsupportedMediaType, message)
    }

    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self::too_many_requests("too many requests; retry later", retry_after_secs)
    }

    /// 429 `rate_limited`, saying which limit (`Retry-After` in whole seconds, at least 1).
    pub fn too_many_requests(message: impl Into<String>, retry_after_secs: u64) -> Self {
        Self::new(ErrorCode::RateLimited, message).retry_after(retry_after_secs.max(1))
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message).retry_after(5)
    }

    pub fn wechat_unavailable() -> Self {
        Self::new(
            ErrorCode::WechatUnavailable,
            "WeChat timed out, was unreachable or busy; retry later",
        )
        .retry_after(5)
    }

    /// A bug or an outage of our own: the cause goes to the log, the client sees a generic message.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            ErrorCode::Internal,
            "internal error; the server log has the cause under this request id",
        )
    }
}

impl From<WechatError> for ApiError {
    fn from(e: WechatError) -> Self {
        match &e {
            WechatError::Api {
                code: ErrCode::InvalidCode | ErrCode::CodeBeenUsed,
                ..
            } => Self::invalid_code(),
            WechatError::Api {
                code: ErrCode::CodeBlocked,
                ..
            } => Self::login_blocked("WeChat's risk control refused this login (40226)"),
            WechatError::Api {
                code: ErrCode::MinuteQuota,
                ..
            } => Self::rate_limited(60),
            _ if e.is_unavailable() => {
                tracing::warn!(errcode = e.errcode(), rid = e.rid(), error = %e, "WeChat unavailable");
                Self::wechat_unavailable()
            }
            _ => {
                tracing::warn!(errcode = e.errcode(), rid = e.rid(), error = %e, "unexpected answer from WeChat");
                let message = match (e.errcode(), e.rid()) {
                    (Some(errcode), Some(rid)) => {
                        format!("WeChat answered errcode {errcode}, rid: {rid}")
                    }
                    (Some(errcode), None) => format!("WeChat answered errcode {errcode}"),
                    _ => e.to_string(),
                };
                Self::new(ErrorCode::WechatError, message)
            }
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        let cause: &dyn std::fmt::Display = &e;
        if e.is_unavailable() {
            tracing::warn!(error = %cause, "database unavailable");
            return Self::unavailable("the database is unavailable; retry later");
        }
        Self::internal(cause)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code.as_str().to_owned(),
            message: self.message,
            request_id: current_request_id(),
            login_ticket: self.login_ticket.map(|t| t.0),
        };
        let status = self.code.status();
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            let value = if self.code == ErrorCode::InvalidClient {
                "Basic realm=\"wxlogin\""
            } else {
                "Bearer error=\"invalid_token\""
            };
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(value));
        }
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::ErrorCode;

    /// `status -> codes` of the "Error codes" table of `docs/api.md`.
    fn documented() -> BTreeMap<&'static str, u16> {
        let doc = include_str!("../../../docs/api.md");
        let table = doc
            .split("## Error codes")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .unwrap_or_default();
        let mut codes = BTreeMap::new();
        for row in table.lines().filter(|l| l.starts_with("| ")) {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let Ok(status) = cells[1].parse::<u16>() else {
                continue; // the header row
            };
            for code in cells[2].split(',') {
                let code = code.trim().trim_matches('`');
                assert!(
                    codes.insert(code, status).is_none(),
                    "{code} is listed twice"
                );
            }
        }
        codes
    }

    #[test]
    fn the_enum_is_the_table_of_docs_api_md() {
        let documented = documented();
        let ours: BTreeMap<&str, u16> = ErrorCode::ALL
            .iter()
            .map(|code| (code.as_str(), code.status().as_u16()))
            .collect();
        assert_eq!(ours, documented);
    }
}
