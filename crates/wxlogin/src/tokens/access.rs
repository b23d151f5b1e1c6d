//! Access tokens: JWTs with the header and claims of the API contract, signed by the current key and
//! verified strictly (one algorithm, known kids, `iss`, `aud`, `exp` against the server's clock).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, RwLock};
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
    verified: Arc<Verified>,
}

const VERIFIED_SHARDS: usize = 16;
/// Tokens whose signature was checked, remembered at most (about 1 KB each); a full shard is
/// emptied.
const VERIFIED_MAX: usize = 10_000;

/// Tokens whose signature and fixed claims (`iss`, `aud`, `typ`, algorithm, kid) verified under the
/// current keyring, by their exact text, with the moment their key retires. What a token says
/// cannot change, so only the checks against the clock (`exp`, `iat`, `nbf`, the key's scheduled
/// retirement) run again; a new keyring (a key retired early, rotated, reloaded) empties it. Only
/// tokens that verified get in, so a flood of forgeries adds nothing.
#[derive(Debug, Default)]
struct Verified {
    hasher: RandomState,
    shards: [Mutex<HashMap<Box<str>, VerifiedToken>>; VERIFIED_SHARDS],
}

#[derive(Debug, Clone)]
struct VerifiedToken {
    claims: AccessClaims,
    /// When the signing key retires (Unix ms): from then on the token is refused like any other
    /// token of an unknown key.
    key_retires_at: Option<i64>,
}

impl Verified {
    fn shard(&self, token: &str) -> &Mutex<HashMap<Box<str>, VerifiedToken>> {
        let index = usize::try_from(self.hasher.hash_one(token)).unwrap_or(0) % VERIFIED_SHARDS;
        &self.shards[index]
    }

    fn get(&self, token: &str) -> Option<VerifiedToken> {
        let shard = self.shard(token).lock().unwrap_or_else(|p| p.into_inner());
        shard.get(token).cloned()
    }

    fn put(&self, token: &str, verified: &VerifiedToken) {
        let mut shard = self.shard(token).lock().unwrap_or_else(|p| p.into_inner());
        if shard.len() >= VERIFIED_MAX / VERIFIED_SHARDS {
            shard.clear();
        }
        shard.insert(token.into(), verified.clone());
    }

    fn clear(&self) {
        for shard in &self.shards {
            shard.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }
}

impl TokenService {
    pub fn new(settings: AccessTokenSettings, keyring: Keyring) -> Self {
        super::install_crypto_provider();
        Self {
            settings,
            keyring: Arc::new(RwLock::new(Arc::new(keyring))),
            verified: Arc::default(),
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
        let mut current = self.keyring.write().unwrap_or_else(|p| p.into_inner());
        *current = Arc::new(keyring);
        // Emptied while the new keyring is being installed: no verification under the old one
        // can be stored after this.
        self.verified.clear();
    }

    pub fn issue(
        &self,
        user: &UserId,
        session: &SessionId,
        appid: &AppId,
        now_secs: i64,
    ) -> Result<IssuedAccessToken, TokenError> {
        let keyring = self.keyring();
        let key = keyring.signing_key(now_secs.saturating_mul(1000));
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
        let now_millis = now_secs.saturating_mul(1000);
        let verified = match self.verified.get(token) {
            Some(verified) => verified,
            None => {
                let keyring = self.keyring.read().unwrap_or_else(|p| p.into_inner());
                let verified = self.verify_signed(token, &keyring, now_millis)?;
                // Under the keyring's read lock, so a replacement cannot slip in between.
                self.verified.put(token, &verified);
                verified
            }
        };
        if verified.key_retires_at.is_some_and(|at| at <= now_millis) {
            return Err(TokenError::UnknownKey);
        }
        self.check_times(verified.claims, now_secs)
    }

    /// The signature and the claims that do not depend on the time, by a key published at
    /// `now_millis`.
    fn verify_signed(
        &self,
        token: &str,
        keyring: &Keyring,
        now_millis: i64,
    ) -> Result<VerifiedToken, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != self.settings.alg.jwt() {
            return Err(TokenError::WrongAlgorithm);
        }
        if header.typ.as_deref() != Some(TYP) {
            return Err(TokenError::WrongType);
        }
        let (key, schedule) = header
            .kid
            .as_deref()
            .and_then(|kid| keyring.get_at(kid, now_millis))
            .filter(|(key, _)| key.alg() == self.settings.alg)
            .ok_or(TokenError::UnknownKey)?;
        let mut validation = Validation::new(self.settings.alg.jwt());
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "iat", "sub", "aud", "iss"]);
        // Expiry is checked below against the server's clock, which tests can move.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        jsonwebtoken::decode::<AccessClaims>(token, key.decoding(), &validation)
            .map(|data| VerifiedToken {
                claims: data.claims,
                key_retires_at: schedule.retires_at,
            })
            .map_err(|_| TokenError::Invalid)
    }

    fn check_times(&self, claims: AccessClaims, now_secs: i64) -> Result<AccessClaims, TokenError> {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::tokens::keys::{KeyPair, KeySchedule};

    fn service() -> TokenService {
        let settings = AccessTokenSettings {
            issuer: "https://wxlogin.test".into(),
            audience: "wxlogin".into(),
            ttl: Duration::from_secs(900),
            alg: SigningAlg::Es256,
            leeway: Duration::from_secs(30),
        };
        let key = KeyPair::generate(SigningAlg::Es256).unwrap();
        TokenService::new(settings, Keyring::new(key, []))
    }

    fn issue(tokens: &TokenService, now: i64) -> String {
        let user = UserId::generate(SystemTime::UNIX_EPOCH);
        let session = SessionId::generate(SystemTime::UNIX_EPOCH);
        let appid = AppId::parse("wx0000000000000001").unwrap();
        tokens.issue(&user, &session, &appid, now).unwrap().token
    }

    #[test]
    fn a_remembered_token_still_expires_on_time() {
        let tokens = service();
        let token = issue(&tokens, 1_000);
        assert!(tokens.verify(&token, 1_000).is_ok());
        assert!(tokens.verify(&token, 1_000 + 900 + 29).is_ok());
        assert_eq!(
            tokens.verify(&token, 1_000 + 900 + 30),
            Err(TokenError::Expired)
        );
        assert_eq!(
            tokens.verify(&token, 1_000 - 31),
            Err(TokenError::NotYetValid)
        );
    }

    #[test]
    fn a_remembered_token_is_refused_once_its_key_left_the_keyring() {
        let tokens = service();
        let token = issue(&tokens, 1_000);
        assert!(tokens.verify(&token, 1_000).is_ok());
        let other = KeyPair::generate(SigningAlg::Es256).unwrap();
        tokens.replace_keyring(Keyring::new(other, []));
        assert_eq!(tokens.verify(&token, 1_000), Err(TokenError::UnknownKey));
    }

    #[test]
    fn a_remembered_token_is_refused_from_the_moment_its_key_retires() {
        let tokens = service();
        let old = KeyPair::from_pkcs8(
            SigningAlg::Es256,
            tokens.keyring().current().pkcs8().to_vec(),
        )
        .unwrap();
        let token = issue(&tokens, 1_000);
        let new = KeyPair::generate(SigningAlg::Es256).unwrap();
        let new_kid = new.kid().to_owned();
        // The old key stops signing at 1_100 s and retires at 1_200 s; the token lives to 1_900.
        let keyring = Keyring::scheduled(
            vec![
                (
                    old,
                    KeySchedule {
                        activates_at: 0,
                        retires_at: Some(1_200_000),
                    },
                ),
                (
                    new,
                    KeySchedule {
                        activates_at: 1_100_000,
                        retires_at: None,
                    },
                ),
            ],
            1_000_000,
        )
        .unwrap();
        tokens.replace_keyring(keyring);
        assert!(tokens.verify(&token, 1_050).is_ok(), "verified, remembered");
        assert_ne!(kid_of(&issue(&tokens, 1_099)), new_kid, "pending: not yet");
        assert_eq!(kid_of(&issue(&tokens, 1_100)), new_kid, "activated");
        assert!(tokens.verify(&token, 1_199).is_ok(), "still published");
        assert_eq!(
            tokens.verify(&token, 1_200),
            Err(TokenError::UnknownKey),
            "the remembered verification does not outlive the key"
        );
        assert_eq!(tokens.keyring().jwks_at(1_200_000).keys.len(), 1);
        assert_eq!(tokens.keyring().jwks_at(1_000_000).keys.len(), 2);
    }

    fn kid_of(token: &str) -> String {
        jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
    }

    #[test]
    fn a_forgery_of_a_remembered_token_is_not_taken_for_it() {
        let tokens = service();
        let token = issue(&tokens, 1_000);
        assert!(tokens.verify(&token, 1_000).is_ok());
        let mut forged = token.clone();
        forged.pop();
        forged.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert!(tokens.verify(&forged, 1_000).is_err());
    }
}
