//! Sealing of session keys at rest: AES-256-GCM under a key from the configuration, with the app and
//! openid as associated data so that a sealed key copied onto another user's row does not open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;

use crate::domain::{InvalidSecret, SessionKey};

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;

/// Why a sealed value did not open. Deliberately says nothing more.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("sealed value is malformed")]
    Malformed,
    #[error("sealed value does not open with this key for this identity")]
    Open,
}

/// The 256-bit key that seals session keys. Redacts itself.
#[derive(Clone)]
pub struct SealingKey {
    cipher: Aes256Gcm,
    /// Whether the key is obviously not random (`serve` refuses it); the bytes are not kept.
    low_entropy: bool,
}

fn looks_non_random(key: &[u8; 32]) -> bool {
    let mut seen = [false; 256];
    for &b in key {
        seen[usize::from(b)] = true;
    }
    let distinct = seen.iter().filter(|&&s| s).count();
    let periodic =
        (1..=16).any(|period| key.iter().enumerate().all(|(i, &b)| b == key[i % period]));
    distinct < 16 || periodic
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(<redacted>)")
    }
}

impl SealingKey {
    pub fn from_bytes(key: [u8; 32]) -> Self {
        Self {
            low_entropy: looks_non_random(&key),
            cipher: Aes256Gcm::new(&key.into()),
        }
    }

    /// True for a key that cannot have come from a random generator: all one byte, a short
    /// pattern repeated, or fewer than 16 distinct byte values (32 random bytes have about 30; fewer
    /// than 16 happens by chance with a probability far below 2^-100).
    pub fn is_low_entropy(&self) -> bool {
        self.low_entropy
    }

    /// Parses the configured form: base64 (standard, padded) or 64 hex digits of 32 bytes.
    pub fn parse(text: &str) -> Result<Self, InvalidSecret> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).ok()
        } else {
            STANDARD.decode(text).ok()
        };
        let key: [u8; 32] = bytes.and_then(|b| b.try_into().ok()).ok_or(InvalidSecret {
            kind: "sealing key",
            reason: "must be 32 bytes, as base64 or 64 hex digits",
        })?;
        Ok(Self::from_bytes(key))
    }

    /// A fresh random key in its base64 form (for `wxlogin dev` and `wxlogin keys`).
    pub fn generate_base64() -> String {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        STANDARD.encode(key)
    }

    /// Seals a session_key for one identity.
    pub fn seal(&self, session_key: &SessionKey, appid: &str, openid: &str) -> Vec<u8> {
        self.seal_bytes(
            session_key.expose_secret().as_bytes(),
            "session_key",
            &[appid, openid],
        )
    }

    pub fn open(&self, sealed: &[u8], appid: &str, openid: &str) -> Result<SessionKey, SealError> {
        let plain = self.open_bytes(sealed, "session_key", &[appid, openid])?;
        let text = String::from_utf8(plain).map_err(|_| SealError::Open)?;
        SessionKey::parse(text).map_err(|_| SealError::Open)
    }

    /// `version || nonce || ciphertext+tag`; `purpose` and `context` are bound as associated data,
    /// so a value sealed for one purpose or owner does not open for another.
    pub fn seal_bytes(&self, plaintext: &[u8], purpose: &str, context: &[&str]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = associated_data(purpose, context);
        let payload = Payload {
            msg: plaintext,
            aad: &aad,
        };
        #[allow(clippy::expect_used)]
        let ciphertext = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .expect("AES-256-GCM fails only for plaintexts over 64 GiB; ours are a few bytes");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out
    }

    pub fn open_bytes(
        &self,
        sealed: &[u8],
        purpose: &str,
        context: &[&str],
    ) -> Result<Vec<u8>, SealError> {
        let (version, rest) = sealed.split_first().ok_or(SealError::Malformed)?;
        if *version != VERSION || rest.len() < NONCE_LEN + 16 {
            return Err(SealError::Malformed);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let aad = associated_data(purpose, context);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Open)
    }
}

fn associated_data(purpose: &str, context: &[&str]) -> Vec<u8> {
    // Length-prefixed so that ("ab","c") and ("a","bc") differ.
    let mut aad = b"wxlogin/v1".to_vec();
    for part in std::iter::once(purpose).chain(context.iter().copied()) {
        aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}
