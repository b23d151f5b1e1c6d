//! Access tokens: JWTs with the header and claims of the API contract, signed by the current key and
//! verified strictly (one algorithm, known kids, `iss`, `aud`, `exp` against the server's clock).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::{Header, Validation};
use serde::{Deserialize, Serialize};

use super::keys::{Keyring, SigningAlg};
use crate::domain::{AppId, SessionId, UserId};

/// The `typ` of wxlogin access tokens (RFC 9068).
const TYP: &str = "at+jwt";

/// The claims of an access token. No openid, unionid or phone: the token is readable by anyone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub sid: String,
    pub appid: String,
    /// RFC 9068 requires it: the OAuth client the token was issued to, here the mini program
    /// (the same value as `appid`).
    pub client_id: String,
    pub iat: i64,
    /// Not issued by wxlogin; honoured (with the leeway) when a token carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub exp: i64,
    pub jti: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTokenSettings {
    pub issuer: String,
    pub audience: String,
    pub ttl: Duration,
    pub alg: SigningAlg,
    /// Tolerance for clock skew between the signer and this verifier.
    pub leeway: Duration,
}

/// Why a token was refused. All of them are `401 invalid_token`; the variant is for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token is not an access token")]
    WrongType,
    #[error("the token uses another algorithm")]
    WrongAlgorithm,
    #[error("the token was signed by an unknown key")]
    UnknownKey,
    #[error("the token's signature or claims are invalid")]
    Invalid,
    #[error("the token has expired")]
    Expired,
    #[error("the token was issued in the future or is not valid yet")]
    NotYetValid,
    #[error("the token could not be signed")]
    Signing,
}

/// A freshly signed access token.
#[derive(Debug, Clone)]
pub struct IssuedAccessToken {
    pub token: String,
    pub expires_in: Duration,
    pub claims: AccessClaims,
}

/// Signs and verifies access tokens with the current keyring (replaceable at run time, e.g. when a
/// key is rotated in the database).
#[derive(Debug, Clone)]
pub struct TokenService {
    settings: AccessTokenSettings,
    keyring: Arc<RwLock<Arc<Keyring>>>,
}

impl TokenService {
    pub fn new(settings: AccessTokenSettings, keyring: Keyring) -> Self {
        super::install_crypto_provider();
        Self {
            settings,
            keyring: Arc::new(RwLock::new(Arc::new(keyring))),
        }
    }

    pub fn settings(&self) -> &AccessTokenSettings {
        &self.settings
    }

    pub fn keyring(&self) -> Arc<Keyring> {
        self.keyring
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn replace_keyring(&self, keyring: Keyring) {
        *self.keyring.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keyring);
    }

    pub fn issue(
        &self,
        user: &UserId,
        session: &SessionId,
        appid: &AppId,
        now_secs: i64,
    ) -> Result<IssuedAccessToken, TokenError> {
        let keyring = self.keyring();
        let key = keyring.current();
        let ttl = i64::try_from(self.settings.ttl.as_secs()).unwrap_or(i64::MAX);
        let claims = AccessClaims {
            iss: self.settings.issuer.clone(),
            aud: self.settings.audience.clone(),
            sub: user.as_str().to_owned(),
            sid: session.as_str().to_owned(),
            appid: appid.as_str().to_owned(),
            client_id: appid.as_str().to_owned(),
            iat: now_secs,
            nbf: None,
            exp: now_secs.saturating_add(ttl),
            jti: ulid::Ulid::new().to_string(),
        };
        let mut header = Header::new(key.alg().jwt());
        header.typ = Some(TYP.to_owned());
        header.kid = Some(key.kid().to_owned());
        let token = jsonwebtoken::encode(&header, &claims, key.encoding())
            .map_err(|_| TokenError::Signing)?;
        Ok(IssuedAccessToken {
            token,
            expires_in: self.settings.ttl,
            claims,
        })
    }

    /// Checks signature and claims. Revocation (session, ban) is the caller's next step.
    pub fn verify(&self, token: &str, now_secs: i64) -> Result<AccessClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != self.settings.alg.jwt() {
            return Err(TokenError::WrongAlgorithm);
        }
        if header.typ.as_deref() != Some(TYP) {
            return Err(TokenError::WrongType);
        }
        let keyring = self.keyring();
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| keyring.get(kid))
            .filter(|key| key.alg() == self.settings.alg)
            .ok_or(TokenError::UnknownKey)?;
        let mut validation = Validation::new(self.settings.alg.jwt());
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "iat", "sub", "aud", "iss"]);
        // Expiry is checked below against the server's clock, which tests can move.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        let claims = jsonwebtoken::decode::<AccessClaims>(token, key.decoding(), &validation)
            .map_err(|_| TokenError::Invalid)?
            .claims;
        let leeway = i64::try_from(self.settings.leeway.as_secs()).unwrap_or(0);
        if claims.exp.saturating_add(leeway) <= now_secs {
            return Err(TokenError::Expired);
        }
        if claims.iat.saturating_sub(leeway) > now_secs {
            return Err(TokenError::NotYetValid);
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf.saturating_sub(leeway) > now_secs)
        {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }
}
