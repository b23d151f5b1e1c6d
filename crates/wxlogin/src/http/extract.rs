//! Extractors that turn requests into checked inputs, with the API's errors on failure.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode, request::Parts};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::de::DeserializeOwned;

use super::ClientIp;
use crate::config::{LimitedEndpoint, ServiceScope, ServiceSettings};
use crate::error::{ApiError, ErrorCode};
use crate::services::rate_limits::{self, Subject};
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
        let user = authenticate(state, token).await?;
        crate::telemetry::request::record_user(&user.user_id);
        Ok(user)
    }
}

/// A backend service authenticated with HTTP Basic `client_id:client_secret` from `[[services]]`.
/// `[rate_limits.service_auth]` counts every attempt per client IP before the credentials are
/// compared, and the service client once they matched (a client id that failed is nobody's, and
/// counting it would let anyone lock a service out).
#[derive(Debug, Clone)]
pub struct ServiceClient {
    pub client_id: String,
    /// Its configured scopes (`[[services]] scopes`).
    pub scopes: Vec<ServiceScope>,
}

impl ServiceClient {
    pub fn allows(&self, scope: ServiceScope) -> bool {
        self.scopes.contains(&scope)
    }

    /// 403 `insufficient_scope` unless the service has `scope`.
    pub fn require(&self, scope: ServiceScope) -> Result<(), ApiError> {
        if self.allows(scope) {
            return Ok(());
        }
        tracing::info!(client = %self.client_id, scope = %scope, "service refused: scope not granted");
        Err(ApiError::insufficient_scope(scope))
    }
}

impl FromRequestParts<AppState> for ServiceClient {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let client = parts.extensions.get::<ClientIp>();
        let ip = ClientIp::subject(client);
        rate_limits::check(state, LimitedEndpoint::ServiceAuth, &[ip]).await?;
        let service = authenticate_service(parts, state)?;
        let subject = Some(Subject::User(service.client_id.as_str()));
        rate_limits::check(state, LimitedEndpoint::ServiceAuth, &[subject]).await?;
        Ok(Self {
            client_id: service.client_id.clone(),
            scopes: service.scopes.clone(),
        })
    }
}

/// The configured service of the request's valid credential.
fn authenticate_service<'a>(
    parts: &Parts,
    state: &'a AppState,
) -> Result<&'a ServiceSettings, ApiError> {
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
    find_service(&state.settings.services, id, secret).ok_or_else(ApiError::invalid_client)
}

/// The configured service these credentials belong to. Every service is compared, id and secret
/// alike, through SHA-256 digests in constant time and without stopping at a match, so the time
/// taken reveals neither which ids exist nor how much of a secret was right.
fn find_service<'a>(
    services: &'a [ServiceSettings],
    id: &str,
    secret: &str,
) -> Option<&'a ServiceSettings> {
    use sha2::{Digest as _, Sha256};
    use subtle::{Choice, ConditionallySelectable as _, ConstantTimeEq as _};
    let presented_id = Sha256::digest(id.as_bytes());
    let mut matched = Choice::from(0);
    let mut index = 0u64;
    for (i, service) in services.iter().enumerate() {
        let id_matches = Sha256::digest(service.client_id.as_bytes()).ct_eq(&presented_id);
        let secret_matches = Choice::from(u8::from(service.client_secret.matches(secret)));
        let this = id_matches & secret_matches;
        // Keep the first match (ids are unique, so there is at most one) without branching.
        let take = this & !matched;
        index = u64::conditional_select(&index, &(i as u64), take);
        matched |= this;
    }
    // Only the outcome branches, once the same work was done for every service.
    let index = usize::try_from(index)
        .ok()
        .filter(|_| bool::from(matched))?;
    services.get(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services() -> Vec<ServiceSettings> {
        ["billing", "orders", "search"]
            .iter()
            .map(|id| ServiceSettings::new(id, &format!("{id}-secret-0123456789abcdef")).unwrap())
            .collect()
    }

    #[test]
    fn only_an_id_with_its_own_secret_is_found() {
        let services = services();
        for id in ["billing", "orders", "search"] {
            let secret = format!("{id}-secret-0123456789abcdef");
            assert_eq!(
                find_service(&services, id, &secret).map(|s| s.client_id.as_str()),
                Some(id)
            );
        }
        assert_eq!(
            find_service(&services, "orders", "billing-secret-0123456789abcdef"),
            None
        );
        assert_eq!(find_service(&services, "billing", "wrong"), None);
        assert_eq!(
            find_service(&services, "nobody", "billing-secret-0123456789abcdef"),
            None
        );
        assert_eq!(find_service(&services, "", ""), None);
        assert_eq!(find_service(&[], "billing", "x"), None);
    }
}
