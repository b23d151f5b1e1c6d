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

/// The key that signs now and every key whose tokens may still be in circulation.
#[derive(Debug, Clone)]
pub struct Keyring {
    current: Arc<KeyPair>,
    by_kid: HashMap<String, Arc<KeyPair>>,
    jwks: JwkSet,
}

impl Keyring {
    /// `current` signs; `previous` keys only verify (and stay published) until they are dropped.
    pub fn new(current: KeyPair, previous: impl IntoIterator<Item = KeyPair>) -> Self {
        let current = Arc::new(current);
        let mut by_kid = HashMap::new();
        by_kid.insert(current.kid.clone(), current.clone());
        for key in previous {
            by_kid
                .entry(key.kid.clone())
                .or_insert_with(|| Arc::new(key));
        }
        let mut keys: Vec<&Arc<KeyPair>> = by_kid.values().collect();
        keys.sort_by(|a, b| a.kid.cmp(&b.kid));
        let jwks = JwkSet {
            keys: keys.iter().map(|k| k.jwk.clone()).collect(),
        };
        Self {
            current,
            by_kid,
            jwks,
        }
    }

    pub fn current(&self) -> &KeyPair {
        &self.current
    }

    pub fn get(&self, kid: &str) -> Option<&KeyPair> {
        self.by_kid.get(kid).map(|k| k.as_ref())
    }

    /// The public keys, for `/.well-known/jwks.json`.
    pub fn jwks(&self) -> &JwkSet {
        &self.jwks
    }
}
