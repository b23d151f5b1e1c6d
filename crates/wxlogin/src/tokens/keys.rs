//! Signing keys: generated with aws-lc, identified by their RFC 7638 thumbprint, published as JWKs.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, JwkSet, KeyAlgorithm, OctetKeyPairParameters, OctetKeyPairType,
    PublicKeyUse, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde::{Deserialize, Serialize};

/// The access-token signature algorithm. ES256 by default: Node's popular `jsonwebtoken` cannot
/// verify EdDSA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum SigningAlg {
    #[default]
    #[serde(rename = "ES256")]
    Es256,
    #[serde(rename = "EdDSA")]
    EdDsa,
}

impl SigningAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ES256" => Some(Self::Es256),
            "EdDSA" => Some(Self::EdDsa),
            _ => None,
        }
    }

    pub(crate) fn jwt(self) -> Algorithm {
        match self {
            Self::Es256 => Algorithm::ES256,
            Self::EdDsa => Algorithm::EdDSA,
        }
    }
}

/// A signing key pair. The private half never leaves the process except sealed.
pub struct KeyPair {
    kid: String,
    alg: SigningAlg,
    pkcs8: Vec<u8>,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Jwk,
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// A key that could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid signing key: {0}")]
pub struct KeyError(&'static str);

impl KeyPair {
    pub fn generate(alg: SigningAlg) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let pkcs8 = match alg {
            SigningAlg::Es256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| KeyError("P-256 key generation failed"))?
                    .as_ref()
                    .to_vec()
            }
            SigningAlg::EdDsa => Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| KeyError("Ed25519 key generation failed"))?
                .as_ref()
                .to_vec(),
        };
        Self::from_pkcs8(alg, pkcs8)
    }

    pub fn from_pkcs8(alg: SigningAlg, pkcs8: Vec<u8>) -> Result<Self, KeyError> {
        let (params, encoding, decoding) = match alg {
            SigningAlg::Es256 => {
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8)
                    .map_err(|_| KeyError("not a P-256 PKCS#8 key"))?;
                let point = pair.public_key().as_ref();
                if point.len() != 65 || point[0] != 4 {
                    return Err(KeyError("unexpected P-256 public key encoding"));
                }
                let params = AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
                    key_type: EllipticCurveKeyType::EC,
                    curve: EllipticCurve::P256,
                    x: URL_SAFE_NO_PAD.encode(&point[1..33]),
                    y: URL_SAFE_NO_PAD.encode(&point[33..]),
                });
                let decoding = DecodingKey::from_ec_der(point);
                (params, EncodingKey::from_ec_der(&pkcs8), decoding)
            }
            SigningAlg::EdDsa => {
                let pair = Ed25519KeyPair::from_pkcs8(&pkcs8)
                    .map_err(|_| KeyError("not an Ed25519 PKCS#8 key"))?;
                let public = pair.public_key().as_ref().to_vec();
                let params = AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                    key_type: OctetKeyPairType::OctetKeyPair,
                    curve: EllipticCurve::Ed25519,
                    x: URL_SAFE_NO_PAD.encode(&public),
                });
                let decoding = DecodingKey::from_ed_der(&public);
                (params, EncodingKey::from_ed_der(&pkcs8), decoding)
            }
        };
        let mut jwk = Jwk {
            common: CommonParameters::default(),
            algorithm: params,
        };
        let kid = jwk.thumbprint(ThumbprintHash::SHA256);
        jwk.common = CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(match alg {
                SigningAlg::Es256 => KeyAlgorithm::ES256,
                SigningAlg::EdDsa => KeyAlgorithm::EdDSA,
            }),
            key_id: Some(kid.clone()),
            ..CommonParameters::default()
        };
        Ok(Self {
            kid,
            alg,
            pkcs8,
            encoding,
            decoding,
            jwk,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// The private key (PKCS#8 DER), for sealing before storage.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    pub fn public_jwk(&self) -> &Jwk {
        &self.jwk
    }

    pub(crate) fn encoding(&self) -> &EncodingKey {
        &self.encoding
    }

    pub(crate) fn decoding(&self) -> &DecodingKey {
        &self.decoding
    }
}

/// When a key of a keyring signs and is published (Unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySchedule {
    /// From then on it signs, until a key with a later activation that has passed takes over;
    /// before, it is published (pending) but does not sign.
    pub activates_at: i64,
    /// From then on it is neither published nor accepted; `None`: not scheduled.
    pub retires_at: Option<i64>,
}

impl KeySchedule {
    /// Signs from the beginning of time, never retires.
    pub const ALWAYS: Self = Self {
        activates_at: i64::MIN,
        retires_at: None,
    };

    fn published_at(&self, now_millis: i64) -> bool {
        self.retires_at.is_none_or(|at| now_millis < at)
    }
}

/// The keys of one algorithm with their schedules: which signs and which are published is decided
/// at the time asked, by the caller's clock, so that every instance switches from the stored times
/// alone, without a reload at the moment of activation or retirement.
#[derive(Debug, Clone)]
pub struct Keyring {
    /// By activation, then kid.
    keys: Vec<(Arc<KeyPair>, KeySchedule)>,
    by_kid: HashMap<String, usize>,
    /// The time the keyring was built for (`current`, `jwks`).
    loaded_at: i64,
    /// The JWKS document last serialised, with the kids it holds (`jwks_json_at`).
    jwks_json: Arc<std::sync::Mutex<Option<JwksJson>>>,
}

/// A serialised JWKS document and the kids (sorted) it holds.
type JwksJson = (Vec<String>, Arc<str>);

impl Keyring {
    /// `current` signs; `previous` keys only verify (and stay published) until they are dropped.
    pub fn new(current: KeyPair, previous: impl IntoIterator<Item = KeyPair>) -> Self {
        let mut keys: Vec<(KeyPair, KeySchedule)> = previous
            .into_iter()
            .filter(|k| k.kid != current.kid)
            .map(|k| (k, KeySchedule::ALWAYS))
            .collect();
        let signs = KeySchedule {
            activates_at: i64::MIN + 1,
            retires_at: None,
        };
        keys.push((current, signs));
        Self::scheduled(keys, 0).unwrap_or_else(|| unreachable!("one key at least"))
    }

    /// The keys with their schedules, as of `now_millis`, in the order they were installed;
    /// `None` without a key.
    pub fn scheduled(keys: Vec<(KeyPair, KeySchedule)>, now_millis: i64) -> Option<Self> {
        let mut keys: Vec<(Arc<KeyPair>, KeySchedule)> = keys
            .into_iter()
            .map(|(key, schedule)| (Arc::new(key), schedule))
            .collect();
        // Stable: keys activating at one moment keep the order given (`key_statuses`: the later
        // created after the earlier).
        keys.sort_by_key(|(_, schedule)| schedule.activates_at);
        let mut seen = std::collections::HashSet::new();
        keys.retain(|(key, _)| seen.insert(key.kid.clone()));
        if keys.is_empty() {
            return None;
        }
        let by_kid = keys
            .iter()
            .enumerate()
            .map(|(i, (key, _))| (key.kid.clone(), i))
            .collect();
        Some(Self {
            keys,
            by_kid,
            loaded_at: now_millis,
            jwks_json: Arc::default(),
        })
    }

    /// The key that signs at `now_millis`: of the published keys, the one with the latest
    /// activation that has passed. Should no activation have passed (a clock behind the one that
    /// created the first key), the earliest published key; should none be published, the last.
    pub fn signing_key(&self, now_millis: i64) -> &KeyPair {
        let published = || self.keys.iter().filter(|(_, s)| s.published_at(now_millis));
        let (key, _) = published()
            .rev()
            .find(|(_, s)| s.activates_at <= now_millis)
            .or_else(|| published().next())
            .or_else(|| self.keys.last())
            .unwrap_or_else(|| unreachable!("a keyring has a key"));
        key
    }

    /// The signing key when the keyring was loaded (for logs and tests; signing asks
    /// [`Keyring::signing_key`] with the time of the token).
    pub fn current(&self) -> &KeyPair {
        self.signing_key(self.loaded_at)
    }

    /// The key of this kid if it is published (and so verifies) at `now_millis`, with the moment
    /// it retires.
    pub fn get_at(&self, kid: &str, now_millis: i64) -> Option<(&KeyPair, KeySchedule)> {
        let (key, schedule) = &self.keys[*self.by_kid.get(kid)?];
        schedule
            .published_at(now_millis)
            .then_some((key.as_ref(), *schedule))
    }

    /// The key of this kid whatever its schedule.
    pub fn get(&self, kid: &str) -> Option<&KeyPair> {
        self.by_kid.get(kid).map(|&i| self.keys[i].0.as_ref())
    }

    /// The public keys published at `now_millis`, pending ones included, for
    /// `/.well-known/jwks.json`.
    pub fn jwks_at(&self, now_millis: i64) -> JwkSet {
        let mut keys: Vec<&Arc<KeyPair>> = self
            .keys
            .iter()
            .filter(|(_, s)| s.published_at(now_millis))
            .map(|(key, _)| key)
            .collect();
        keys.sort_by(|a, b| a.kid.cmp(&b.kid));
        JwkSet {
            keys: keys.iter().map(|k| k.jwk.clone()).collect(),
        }
    }

    /// [`Self::jwks_at`] as a JSON document, serialised once for each set of published keys (the
    /// set changes only when a key is published or retires), so that serving the JWKS costs a
    /// filter and a comparison rather than a serialisation.
    pub fn jwks_json_at(&self, now_millis: i64) -> Arc<str> {
        let mut kids: Vec<&str> = self
            .keys
            .iter()
            .filter(|(_, s)| s.published_at(now_millis))
            .map(|(key, _)| key.kid.as_str())
            .collect();
        kids.sort_unstable();
        let mut cached = self.jwks_json.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((for_kids, json)) = cached.as_ref()
            && for_kids.iter().map(String::as_str).eq(kids.iter().copied())
        {
            return json.clone();
        }
        // Strings and numbers only: serialising it cannot fail.
        #[allow(clippy::expect_used)]
        let json: Arc<str> = serde_json::to_string(&self.jwks_at(now_millis))
            .expect("a JWK set serialises")
            .into();
        *cached = Some((kids.into_iter().map(str::to_owned).collect(), json.clone()));
        json
    }

    /// The public keys published when the keyring was loaded.
    pub fn jwks(&self) -> JwkSet {
        self.jwks_at(self.loaded_at)
    }
}
