//! The verifier: the JWKS fetched and cached, and each token checked against it (algorithm allow-list,
//! `typ`, `kid`, signature, `iss`, `aud`, `exp` with leeway).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

use crate::clock::{SharedClock, SystemClock};
use crate::error::VerifyError;

/// The `typ` of wxlogin access tokens (RFC 9068).
const TYP: &str = "at+jwt";

/// The algorithms wxlogin signs with. Anything else (`none`, HMAC, RSA) is refused before any key is
/// looked at.
const ALGORITHMS: [Algorithm; 2] = [Algorithm::ES256, Algorithm::EdDSA];

/// Where the keys are and what the tokens must say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierConfig {
    /// `{public_url}/.well-known/jwks.json` of the wxlogin server.
    pub jwks_url: String,
    /// The expected `iss`: wxlogin's `tokens.issuer`, by default its `server.public_url`.
    pub issuer: String,
    /// The expected `aud`: wxlogin's `tokens.audience`, by default `wxlogin`.
    pub audience: String,
    /// Tolerated clock skew for `exp` and `iat`.
    pub leeway: Duration,
    /// How long fetched keys are used before the JWKS is fetched again.
    pub cache_ttl: Duration,
    /// The least time between two fetches, so tokens with made-up `kid`s cannot make this service
    /// hammer the login server.
    pub min_refetch_interval: Duration,
    /// The time limit of one JWKS fetch.
    pub fetch_timeout: Duration,
}

impl VerifierConfig {
    /// A configuration with the defaults: 30 s leeway, keys cached 300 s (as the server's
    /// `Cache-Control` says), at most one fetch every 10 s, 5 s fetch timeout.
    pub fn new(
        jwks_url: impl Into<String>,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Self {
        Self {
            jwks_url: jwks_url.into(),
            issuer: issuer.into(),
            audience: audience.into(),
            leeway: Duration::from_secs(30),
            cache_ttl: Duration::from_secs(300),
            min_refetch_interval: Duration::from_secs(10),
            fetch_timeout: Duration::from_secs(5),
        }
    }

    /// For a wxlogin server with its default issuer (its public URL) and audience (`wxlogin`).
    pub fn for_server(public_url: &str) -> Self {
        let base = public_url.trim_end_matches('/');
        Self::new(format!("{base}/.well-known/jwks.json"), base, "wxlogin")
    }
}

/// The claims of a wxlogin access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The user id (`u_...`).
    pub sub: String,
    /// The session id (`s_...`).
    pub sid: String,
    /// The mini program the user logged in with.
    pub appid: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

/// The HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client for the JWKS: {0}")]
pub struct BuildError(#[from] reqwest::Error);

/// Verifies wxlogin access tokens offline. Cheap to clone: clones share the key cache.
///
/// It cannot see a logout or a ban before the token's `exp` (15 minutes by default); a service that
/// must refuse such tokens at once asks wxlogin's `POST /v1/introspect` instead.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: VerifierConfig,
    http: reqwest::Client,
    clock: SharedClock,
    /// The keys of the last successful fetch; read without waiting.
    keys: RwLock<Arc<KeySet>>,
    /// Held while fetching, so that concurrent misses wait for one fetch instead of making their own.
    fetch: tokio::sync::Mutex<FetchState>,
}

#[derive(Default)]
struct KeySet {
    by_kid: HashMap<String, Arc<Key>>,
    fetched_at_ms: Option<i64>,
}

struct Key {
    alg: Algorithm,
    decoding: DecodingKey,
}

#[derive(Default)]
struct FetchState {
    last_attempt_ms: Option<i64>,
    last_error: Option<String>,
}

impl Verifier {
    /// A verifier on the wall clock with its own HTTP client. Nothing is fetched until the first token.
    pub fn new(config: VerifierConfig) -> Result<Self, BuildError> {
        let http = reqwest::Client::builder()
            .timeout(config.fetch_timeout)
            .connect_timeout(config.fetch_timeout)
            .build()?;
        Ok(Self::with_client(config, http))
    }

    /// A verifier fetching through the given HTTP client (its timeouts apply).
    pub fn with_client(config: VerifierConfig, http: reqwest::Client) -> Self {
        install_crypto_provider();
        Self {
            inner: Arc::new(Inner {
                config,
                http,
                clock: Arc::new(SystemClock),
                keys: RwLock::new(Arc::new(KeySet::default())),
                fetch: tokio::sync::Mutex::new(FetchState::default()),
            }),
        }
    }

    /// The same verifier reading time from `clock` (for `exp`, `iat` and the cache). Call it before
    /// cloning: the returned verifier has a cache of its own.
    pub fn with_clock(self, clock: SharedClock) -> Self {
        Self {
            inner: Arc::new(Inner {
                config: self.inner.config.clone(),
                http: self.inner.http.clone(),
                clock,
                keys: RwLock::new(Arc::new(KeySet::default())),
                fetch: tokio::sync::Mutex::new(FetchState::default()),
            }),
        }
    }

    pub fn config(&self) -> &VerifierConfig {
        &self.inner.config
    }

    /// Checks the token's header, signature and claims.
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        let config = &self.inner.config;
        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(VerifyError::WrongAlgorithm);
        }
        let typ_ok = header.typ.as_deref().is_some_and(|typ| {
            typ.eq_ignore_ascii_case(TYP) || typ.eq_ignore_ascii_case("application/at+jwt")
        });
        if !typ_ok {
            return Err(VerifyError::WrongType);
        }
        let kid = header.kid.as_deref().ok_or(VerifyError::UnknownKey)?;
        let key = self.key(kid).await?;
        if key.alg != header.alg {
            return Err(VerifyError::WrongAlgorithm);
        }
        let mut validation = Validation::new(key.alg);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.set_required_spec_claims(&["exp", "iat", "sub", "aud", "iss"]);
        // Time is checked below against the injectable clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        let claims = jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation)
            .map_err(|e| claims_error(e.kind()))?
            .claims;
        let now = self.inner.clock.unix_millis().div_euclid(1000);
        let leeway = i64::try_from(config.leeway.as_secs()).unwrap_or(i64::MAX);
        if claims.exp.saturating_add(leeway) <= now {
            return Err(VerifyError::Expired);
        }
        if claims.iat.saturating_sub(leeway) > now {
            return Err(VerifyError::NotYetValid);
        }
        Ok(claims)
    }

    /// The key with this `kid`: from the cache while it is fresh, else after one fetch (at most one
    /// every `min_refetch_interval`). A stale key is still used when the fetch fails.
    async fn key(&self, kid: &str) -> Result<Arc<Key>, VerifyError> {
        let config = &self.inner.config;
        let ttl_ms = millis(config.cache_ttl);
        let fresh = |set: &KeySet, now: i64| {
            set.fetched_at_ms
                .is_some_and(|at| now.saturating_sub(at) < ttl_ms)
        };
        let now = self.now_ms();
        let cached = self.cached();
        if fresh(&cached, now)
            && let Some(key) = cached.by_kid.get(kid)
        {
            return Ok(key.clone());
        }

        let mut state = self.inner.fetch.lock().await;
        // Another request may have fetched while this one waited.
        let now = self.now_ms();
        let cached = self.cached();
        let stale = cached.by_kid.get(kid).cloned();
        if fresh(&cached, now)
            && let Some(key) = &stale
        {
            return Ok(key.clone());
        }
        let may_fetch = state.last_attempt_ms.is_none_or(|at| {
            now.saturating_sub(at) >= millis(config.min_refetch_interval) || now < at
        });
        if !may_fetch {
            return match (stale, &state.last_error) {
                (Some(key), _) => Ok(key),
                (None, Some(error)) => Err(VerifyError::Unavailable(error.clone())),
                (None, None) => Err(VerifyError::UnknownKey),
            };
        }
        state.last_attempt_ms = Some(now);
        match self.fetch().await {
            Ok(by_kid) => {
                tracing::debug!(
                    keys = by_kid.len(),
                    reason = match (&stale, cached.fetched_at_ms) {
                        (_, None) => "first use",
                        (Some(_), Some(_)) => "cache expired",
                        (None, Some(_)) => "unknown kid",
                    },
                    "fetched the JWKS"
                );
                state.last_error = None;
                let found = by_kid.get(kid).cloned();
                let set = KeySet {
                    by_kid,
                    fetched_at_ms: Some(now),
                };
                *self.inner.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
                found.ok_or(VerifyError::UnknownKey)
            }
            Err(error) => {
                tracing::warn!(url = %config.jwks_url, %error, "cannot fetch the JWKS");
                state.last_error = Some(error.clone());
                stale.ok_or(VerifyError::Unavailable(error))
            }
        }
    }

    fn cached(&self) -> Arc<KeySet> {
        self.inner
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn now_ms(&self) -> i64 {
        self.inner.clock.unix_millis()
    }

    async fn fetch(&self) -> Result<HashMap<String, Arc<Key>>, String> {
        let response = self
            .inner
            .http
            .get(&self.inner.config.jwks_url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("the server answered {status}"));
        }
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|e| format!("not a JSON document: {e}"))?;
        parse_jwks(&body)
    }
}

/// The usable signing keys of a JWK set, by `kid`: P-256 keys for ES256 and Ed25519 keys for EdDSA.
/// Keys of other types or uses are skipped, so that the server may publish them without breaking us.
fn parse_jwks(body: &serde_json::Value) -> Result<HashMap<String, Arc<Key>>, String> {
    let keys = body
        .get("keys")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| "the JWKS has no `keys` array".to_owned())?;
    let mut by_kid = HashMap::new();
    for value in keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value.clone()) else {
            continue;
        };
        if jwk
            .common
            .public_key_use
            .as_ref()
            .is_some_and(|u| *u != PublicKeyUse::Signature)
        {
            continue;
        }
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        let alg = match &jwk.algorithm {
            AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
                Algorithm::ES256
            }
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                Algorithm::EdDSA
            }
            _ => continue,
        };
        let declared_fits = match jwk.common.key_algorithm {
            None => true,
            Some(KeyAlgorithm::ES256) => alg == Algorithm::ES256,
            Some(KeyAlgorithm::EdDSA) => alg == Algorithm::EdDSA,
            Some(_) => false,
        };
        if !declared_fits {
            continue;
        }
        let Ok(decoding) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        by_kid.insert(kid, Arc::new(Key { alg, decoding }));
    }
    Ok(by_kid)
}

fn claims_error(kind: &ErrorKind) -> VerifyError {
    match kind {
        ErrorKind::InvalidSignature => VerifyError::BadSignature,
        ErrorKind::InvalidIssuer => VerifyError::WrongIssuer,
        ErrorKind::InvalidAudience => VerifyError::WrongAudience,
        ErrorKind::InvalidAlgorithm => VerifyError::WrongAlgorithm,
        ErrorKind::ExpiredSignature => VerifyError::Expired,
        ErrorKind::ImmatureSignature => VerifyError::NotYetValid,
        ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) => {
            VerifyError::BadClaims
        }
        ErrorKind::Json(_) => VerifyError::BadClaims,
        _ => VerifyError::Malformed,
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Selects aws-lc as jsonwebtoken's crypto backend for the process, as the wxlogin server does
/// (jsonwebtoken panics on first use without exactly one backend). Safe to call more than once.
pub fn install_crypto_provider() {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jwks_keeps_only_p256_and_ed25519_signing_keys_with_a_kid() {
        let body = serde_json::json!({ "keys": [
            { "kty": "EC", "crv": "P-256", "kid": "ec", "use": "sig", "alg": "ES256",
              "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
              "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0" },
            { "kty": "EC", "crv": "P-256", "use": "sig",
              "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
              "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0" },
            { "kty": "EC", "crv": "P-256", "kid": "enc", "use": "enc",
              "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
              "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0" },
            { "kty": "OKP", "crv": "Ed25519", "kid": "ed",
              "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" },
            { "kty": "oct", "kid": "hmac", "k": "c2VjcmV0" },
            { "kty": "RSA", "kid": "rsa", "n": "AQAB", "e": "AQAB" },
            { "kty": "weird", "kid": "weird" }
        ]});
        let keys = parse_jwks(&body).unwrap();
        let mut kids: Vec<&str> = keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        assert_eq!(kids, ["ec", "ed"]);
        assert_eq!(keys["ec"].alg, Algorithm::ES256);
        assert_eq!(keys["ed"].alg, Algorithm::EdDSA);
    }

    #[test]
    fn a_document_without_keys_is_an_error() {
        assert!(parse_jwks(&serde_json::json!({ "error": "nope" })).is_err());
    }

    #[test]
    fn for_server_derives_the_jwks_url_and_issuer() {
        let config = VerifierConfig::for_server("https://login.example.com/");
        assert_eq!(
            config.jwks_url,
            "https://login.example.com/.well-known/jwks.json"
        );
        assert_eq!(config.issuer, "https://login.example.com");
        assert_eq!(config.audience, "wxlogin");
        assert_eq!(config.cache_ttl, Duration::from_secs(300));
    }
}
