//! Extractors that turn requests into checked inputs, with the API's errors on failure.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode, request::Parts};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};
pub(crate) use crate::services::sessions::AuthUser;
use crate::services::sessions::authenticate;
use crate::state::AppState;

/// A JSON body, with malformed JSON → 400 naming the problem, a wrong content type → 415 and an
/// oversized body → 413.
pub struct AppJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection.status(), &rejection.body_text())),
        }
    }
}

fn json_rejection(status: StatusCode, text: &str) -> ApiError {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(ErrorCode::PayloadTooLarge, "the body is too large")
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::unsupported_media_type(
            "expected a JSON body with Content-Type: application/json",
        ),
        _ => ApiError::invalid_request(text.replace(
            "Failed to deserialize the JSON body into the target type: ",
            "invalid JSON body: ",
        )),
    }
}

/// A raw body for handlers that parse it themselves, with an oversized body → 413 in the API's
/// error envelope (axum's own rejection is plain text).
pub struct AppBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for AppBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Bytes::from_request(req, state).await {
            Ok(bytes) => Ok(Self(bytes)),
            Err(rejection) => Err(match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => {
                    ApiError::new(ErrorCode::PayloadTooLarge, "the body is too large")
                }
                _ => ApiError::invalid_request("the body could not be read"),
            }),
        }
    }
}

/// Parses an optional JSON body (empty = `T::default()`).
pub fn optional_json<T: DeserializeOwned + Default>(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let is_json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return Err(ApiError::unsupported_media_type(
            "expected a JSON body with Content-Type: application/json",
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid_request(format!("invalid JSON body: {e}")))
}

/// The request's one `Authorization` header, if any. Two are refused with `refuse`'s error: a
/// proxy or server on either side of wxlogin might read the other one.
pub fn single_authorization<E>(
    headers: &HeaderMap,
    refuse: impl FnOnce(&'static str) -> E,
) -> Result<Option<&HeaderValue>, E> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(refuse("more than one Authorization header"));
    }
    Ok(first)
}

/// The bearer token of a request, if it sent exactly one in the right form.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = single_authorization(headers, ApiError::invalid_token)?
        .ok_or_else(|| ApiError::invalid_token("missing Authorization: Bearer <access_token>"))?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::invalid_token("malformed Authorization header"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| ApiError::invalid_token("malformed Authorization header"))?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.len() > 4096 {
        return Err(ApiError::invalid_token(
            "expected Authorization: Bearer <access_token>",
        ));
    }
    Ok(token)
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(&parts.headers)?;
        authenticate(state, token).await
    }
}

/// A backend service authenticated with HTTP Basic `client_id:client_secret` from `[[services]]`.
#[derive(Debug, Clone)]
pub struct ServiceClient {
    pub client_id: String,
}

impl FromRequestParts<AppState> for ServiceClient {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let value = single_authorization(&parts.headers, |_| ApiError::invalid_client())?
            .and_then(|v| v.to_str().ok())
            .ok_or_else(ApiError::invalid_client)?;
        let (scheme, encoded) = value.split_once(' ').ok_or_else(ApiError::invalid_client)?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(ApiError::invalid_client());
        }
        let decoded = STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(ApiError::invalid_client)?;
        let (id, secret) = decoded
            .split_once(':')
            .ok_or_else(ApiError::invalid_client)?;
        // Compare against every service, so the time taken does not reveal which ids exist.
        let mut found = None;
        for service in &state.settings.services {
            let matches = service.client_id == id && service.client_secret.matches(secret);
            if matches && found.is_none() {
                found = Some(service.client_id.clone());
            }
        }
        found
            .map(|client_id| Self { client_id })
            .ok_or_else(ApiError::invalid_client)
    }
}
