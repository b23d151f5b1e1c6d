//! The audit log's view of where a request came from: the client address as `client_ip.rs`
//! resolved it (trusted proxies honoured) and the `User-Agent` header, cut to a bound.

use axum::extract::FromRequestParts;
use axum::http::header::USER_AGENT;
use axum::http::request::Parts;

use super::ClientIp;
use crate::services::audit::Origin;

impl<S: Send + Sync> FromRequestParts<S> for Origin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts.extensions.get::<ClientIp>().map(ClientIp::ip);
        let user_agent = parts
            .headers
            .get(USER_AGENT)
            .and_then(|value| value.to_str().ok());
        Ok(Origin::new(ip, user_agent))
    }
}
