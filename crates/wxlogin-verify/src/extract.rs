//! axum extractors: [`WxUser`] for routes that need a logged-in user, [`OptionalWxUser`] for routes
//! that serve both.

use axum::extract::{FromRef, FromRequestParts, OptionalFromRequestParts};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::error::{REQUEST_ID_HEADER, Rejection, VerifyError};
use crate::verifier::{Claims, Verifier};

/// The user of a request with a valid wxlogin access token (`Authorization: Bearer ...`).
///
/// The [`Verifier`] comes from the router's state through [`FromRef`]: either the state *is* a
/// `Verifier`, or it is your own state type with `#[derive(Clone, FromRef)]` (axum's `macros`
/// feature) or a hand-written `impl FromRef<AppState> for Verifier`.
///
/// Requests without a valid token are answered 401 `invalid_token` with
/// `WWW-Authenticate: Bearer error="invalid_token"`; when the signing keys cannot be fetched and no
/// cached key fits, 503 `unavailable` with `Retry-After: 5`. Both in wxlogin's error envelope
/// `{"error", "message", "request_id"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WxUser {
    /// The user id (`u_...`), the `sub` claim.
    pub sub: String,
    /// The session id (`s_...`).
    pub sid: String,
    /// The mini program the user logged in with.
    pub appid: String,
    /// All the claims, `exp` and `jti` included.
    pub claims: Claims,
}

impl From<Claims> for WxUser {
    fn from(claims: Claims) -> Self {
        Self {
            sub: claims.sub.clone(),
            sid: claims.sid.clone(),
            appid: claims.appid.clone(),
            claims,
        }
    }
}

/// `Some(user)` with a valid token, `None` without an `Authorization` header. A header that is
/// there but wrong is still refused (401): the client should learn that its token is bad.
/// `Option<WxUser>` works the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionalWxUser(pub Option<WxUser>);

/// The token of an `Authorization: Bearer <token>` header (the scheme is case-insensitive).
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, VerifyError> {
    let value = headers
        .get(AUTHORIZATION)
        .ok_or(VerifyError::MissingToken)?
        .to_str()
        .map_err(|_| VerifyError::MalformedHeader)?;
    let (scheme, token) = value.split_once(' ').ok_or(VerifyError::MalformedHeader)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(VerifyError::MalformedHeader);
    }
    Ok(token)
}

fn request_id(parts: &Parts) -> String {
    parts
        .headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map_or_else(|| ulid::Ulid::new().to_string(), str::to_owned)
}

async fn authenticate(parts: &mut Parts, verifier: &Verifier) -> Result<WxUser, Rejection> {
    if let Some(user) = parts.extensions.get::<WxUser>() {
        return Ok(user.clone());
    }
    let outcome = match bearer_token(&parts.headers) {
        Ok(token) => verifier.verify(token).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(claims) => {
            let user = WxUser::from(claims);
            parts.extensions.insert(user.clone());
            Ok(user)
        }
        Err(error) => {
            tracing::debug!(%error, "refused an access token");
            Err(Rejection {
                error,
                request_id: request_id(parts),
            })
        }
    }
}

impl<S> FromRequestParts<S> for WxUser
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        authenticate(parts, &Verifier::from_ref(state)).await
    }
}

impl<S> OptionalFromRequestParts<S> for WxUser
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Rejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        if !parts.headers.contains_key(AUTHORIZATION) {
            return Ok(None);
        }
        authenticate(parts, &Verifier::from_ref(state))
            .await
            .map(Some)
    }
}

impl<S> FromRequestParts<S> for OptionalWxUser
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        <WxUser as OptionalFromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .map(OptionalWxUser)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn bearer_tokens_are_read_and_other_shapes_refused() {
        assert_eq!(
            bearer_token(&headers("Bearer abc.def.ghi")),
            Ok("abc.def.ghi")
        );
        assert_eq!(bearer_token(&headers("bearer abc")), Ok("abc"));
        assert_eq!(
            bearer_token(&HeaderMap::new()),
            Err(VerifyError::MissingToken)
        );
        for bad in [
            "Basic dXNlcjpwYXNz",
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "abc.def.ghi",
        ] {
            assert_eq!(
                bearer_token(&headers(bad)),
                Err(VerifyError::MalformedHeader),
                "{bad}"
            );
        }
    }
}
