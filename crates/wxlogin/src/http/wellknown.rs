//! Discovery and verification for other services: JWKS, OpenID configuration, introspection.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::ClientIp;
use super::extract::{AppBytes, ServiceClient};
use crate::config::LimitedEndpoint;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::services::rate_limits::{self, Subject};
use crate::services::sessions::authenticate;
use crate::state::AppState;

/// The public keys that sign access tokens (current and still-valid previous ones).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "discovery",
    responses((status = 200, description = "A JWK set", content_type = "application/json", body = Object)))]
pub async fn jwks(State(state): State<AppState>) -> Response {
    // Pending keys (published before they sign) included; retired ones gone, by this server's clock.
    // Serialised once per set of published keys (`Keyring::jwks_json_at`).
    let json = state.tokens.keyring().jwks_json_at(state.now_millis());
    (
        [
            (
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        axum::body::Bytes::from_owner(ArcStr(json)),
    )
        .into_response()
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OpenIdConfiguration {
    pub issuer: String,
    pub jwks_uri: String,
    pub introspection_endpoint: String,
    pub introspection_endpoint_auth_methods_supported: Vec<&'static str>,
    /// The access-token signature algorithm.
    pub token_signing_alg_values_supported: Vec<&'static str>,
}

/// Discovery document, so that JWT libraries find the issuer and the JWKS.
///
/// wxlogin is not an OpenID Provider (no authorization endpoint, no ID tokens): the document is
/// served at this path because verifiers look there, and carries only what is true.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "discovery",
    responses((status = 200, description = "Discovery document", body = OpenIdConfiguration)))]
pub async fn openid_configuration(State(state): State<AppState>) -> Response {
    let base = state.settings.public_url();
    let mut response = axum::Json(OpenIdConfiguration {
        issuer: state.tokens.settings().issuer.clone(),
        jwks_uri: format!("{base}/.well-known/jwks.json"),
        introspection_endpoint: format!("{base}/v1/introspect"),
        introspection_endpoint_auth_methods_supported: vec!["client_secret_basic"],
        token_signing_alg_values_supported: vec![state.tokens.settings().alg.as_str()],
    })
    .into_response();
    response.headers_mut().insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct IntrospectRequest {
    /// The access token to check (`token_type_hint` and other RFC 7662 fields are ignored: only
    /// access tokens are introspected).
    pub token: String,
}

/// RFC 7662: `active: false` carries nothing else.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IntrospectResponse {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub appid: Option<String>,
    /// The mini program the token was issued to (RFC 7662; the same value as `appid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// `Bearer` (RFC 7662 uses the token types of RFC 6749).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
}

impl IntrospectResponse {
    fn inactive() -> Self {
        Self {
            active: false,
            sub: None,
            sid: None,
            appid: None,
            client_id: None,
            iss: None,
            aud: None,
            exp: None,
            iat: None,
            token_type: None,
        }
    }
}

fn parse_introspect(headers: &HeaderMap, body: &Bytes) -> Result<IntrospectRequest, ApiError> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("application/json") {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::invalid_request(format!("invalid JSON body: {e}")))
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        serde_urlencoded::from_bytes(body)
            .map_err(|e| ApiError::invalid_request(format!("invalid form body: {e}")))
    } else {
        Err(ApiError::unsupported_media_type(
            "send `token` as application/x-www-form-urlencoded or application/json",
        ))
    }
}

/// Token introspection for backend services (HTTP Basic with a `[[services]]` credential).
/// Reflects logout and bans at once.
#[utoipa::path(post, path = "/v1/introspect", tag = "discovery",
    request_body(description = "`token`, as a form (RFC 7662) or as JSON", content(
        (IntrospectRequest = "application/x-www-form-urlencoded"),
        (IntrospectRequest = "application/json"),
    )),
    security(("service" = [])),
    responses(
        (status = 200, description = "Whether the token is active", body = IntrospectResponse),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`invalid_client`", body = ErrorBody),
        (status = 403, description = "`insufficient_scope`: the service lacks `introspect`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: neither a form nor JSON", body = ErrorBody),
        (status = 429, description = "`rate_limited`: `[rate_limits.introspect]` per IP and per service client, or `[rate_limits.service_auth]`", body = ErrorBody),
    ))]
pub async fn introspect(
    State(state): State<AppState>,
    ip: Option<ClientIp>,
    client: ServiceClient,
    headers: HeaderMap,
    AppBytes(body): AppBytes,
) -> Result<axum::Json<IntrospectResponse>, ApiError> {
    client.require(crate::config::ServiceScope::Introspect)?;
    let subjects = [
        ClientIp::subject(ip.as_ref()),
        Some(Subject::User(client.client_id.as_str())),
    ];
    rate_limits::check(&state, LimitedEndpoint::Introspect, &subjects).await?;
    let request = parse_introspect(&headers, &body)?;
    let active = match authenticate(&state, request.token.trim()).await {
        Ok(user) => Some(user.claims),
        Err(e) if e.code == ErrorCode::InvalidToken => None,
        Err(e) => return Err(e),
    };
    tracing::debug!(client = %client.client_id, active = active.is_some(), "introspection");
    Ok(axum::Json(match active {
        Some(claims) => IntrospectResponse {
            active: true,
            sub: Some(claims.sub),
            sid: Some(claims.sid),
            client_id: Some(claims.client_id),
            appid: Some(claims.appid),
            iss: Some(claims.iss),
            aud: Some(claims.aud),
            exp: Some(claims.exp),
            iat: Some(claims.iat),
            token_type: Some("Bearer"),
        },
        None => IntrospectResponse::inactive(),
    }))
}

/// An `Arc<str>` as the bytes of a response body, shared rather than copied.
struct ArcStr(std::sync::Arc<str>);

impl AsRef<[u8]> for ArcStr {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}
