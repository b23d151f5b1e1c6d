//! Why a token was refused, and the HTTP answer for it (the wxlogin API error envelope).

use axum::http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The request id header: its value (from a proxy or a request-id layer) names the error answers.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Why a request or token was refused. Everything but [`VerifyError::Unavailable`] is the client's
/// fault and answers 401 `invalid_token`; `Unavailable` answers 503 `unavailable`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing access token: send `Authorization: Bearer <access_token>`")]
    MissingToken,
    #[error("the Authorization header must be `Bearer <access_token>`")]
    MalformedHeader,
    #[error("the access token is malformed")]
    Malformed,
    #[error("the token is not an access token (typ must be at+jwt)")]
    WrongType,
    #[error("the access token uses an algorithm that is not accepted")]
    WrongAlgorithm,
    #[error("the access token was signed by an unknown key")]
    UnknownKey,
    #[error("the access token's signature is invalid")]
    BadSignature,
    #[error("the access token was issued by another issuer")]
    WrongIssuer,
    #[error("the access token is meant for another audience")]
    WrongAudience,
    #[error("the access token lacks required claims or they are badly shaped")]
    BadClaims,
    #[error("the access token has expired")]
    Expired,
    #[error("the access token was issued in the future")]
    NotYetValid,
    /// The JWKS could not be fetched and no cached key fits the token.
    #[error("the signing keys could not be fetched: {0}")]
    Unavailable(String),
}

impl VerifyError {
    /// The HTTP status: 401, or 503 for [`VerifyError::Unavailable`].
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The stable machine code of the envelope's `error` field.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "unavailable",
            _ => "invalid_token",
        }
    }
}

/// The body of every error answer: `{"error", "message", "request_id"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
    pub request_id: String,
}

/// An extractor's rejection: the error and the request id to report it under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub error: VerifyError,
    pub request_id: String,
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let status = self.error.status();
        // The JWKS fetch error is for the log, not for the client.
        let message = match &self.error {
            VerifyError::Unavailable(_) => {
                "the signing keys of the login server are unavailable; retry later".to_owned()
            }
            other => other.to_string(),
        };
        let body = ErrorBody {
            error: self.error.code().to_owned(),
            message,
            request_id: self.request_id.clone(),
        };
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        } else {
            headers.insert(RETRY_AFTER, HeaderValue::from_static("5"));
        }
        if let Ok(value) = HeaderValue::from_str(&self.request_id) {
            headers.insert(REQUEST_ID_HEADER, value);
        }
        response
    }
}
