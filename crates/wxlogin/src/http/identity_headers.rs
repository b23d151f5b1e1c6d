//! The caller's identity as headers for the business API: forward auth (`GET /v1/auth/verify`) and
//! the built-in gateway set the same `X-WX-*` headers, chosen by `[identity_headers]`.

use axum::http::{HeaderMap, HeaderName, HeaderValue};

use crate::config::IdentityHeader;
use crate::services::sessions::AuthUser;
use crate::state::AppState;

/// Whether a header name is one of the identity headers' namespace (`X-WX-*`), which clients must
/// never be able to set themselves. `_` counts as `-`: CGI, PHP-FPM and WSGI servers turn both into
/// `HTTP_X_WX_...`, so `X_WX_User_Id` would reach their code as `X-WX-User-Id`. (Names are lower
/// case here.)
pub(crate) fn is_identity_header(name: &HeaderName) -> bool {
    name.as_str()
        .get(..5)
        .is_some_and(|head| head.replace('_', "-") == "x-wx-")
}

/// The configured identity headers of `user`. The openid and unionid are those of the user's
/// identity in the token's app, as the session check read it with the session (no read of their
/// own): a login on this instance is seen at once, one on another within
/// `tokens.session_cache_ms`.
pub(crate) fn identity_headers(state: &AppState, user: &AuthUser) -> HeaderMap {
    let include = &state.settings.identity_headers.include;
    let identity = user.identity.as_deref();
    let mut headers = HeaderMap::new();
    for header in include {
        let value = match header {
            IdentityHeader::UserId => Some(user.user_id.as_str()),
            IdentityHeader::Appid => Some(user.appid.as_str()),
            IdentityHeader::SessionId => Some(user.session_id.as_str()),
            IdentityHeader::Openid => identity.map(|i| i.openid.as_str()),
            IdentityHeader::Unionid => identity
                .and_then(|i| i.unionid.as_ref())
                .map(|u| u.as_str()),
        };
        // Ids are validated ASCII tokens, so they are always valid header values.
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(HeaderName::from_static(header.header_name()), value);
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_headers_are_recognised_with_dashes_or_underscores() {
        for name in [
            "x-wx-user-id",
            "x_wx_user_id",
            "x-wx_openid",
            "x_wx-anything",
            "x-wx-",
        ] {
            assert!(is_identity_header(&HeaderName::from_static(name)), "{name}");
        }
        for name in ["x-wxuser", "x-request-id", "wx-user-id", "x-w", "xx-wx-a"] {
            assert!(
                !is_identity_header(&HeaderName::from_static(name)),
                "{name}"
            );
        }
    }
}
