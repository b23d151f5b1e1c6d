//! Sealing of session keys at rest: AES-256-GCM under a key from the configuration, with the app and
//! openid as associated data so that a sealed key copied onto another user's row does not open.
//!
//! A sealed value names the key that sealed it by a key id (`2 || key id || nonce || ciphertext`),
//! so that after a rotation values sealed under a previous key (`security.previous_sealing_keys`)
//! still open, and `wxlogin sealing-key reseal` knows which to seal again. Values written before
//! key ids (`1 || nonce || ciphertext`) are tried with the current key, then the previous ones.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;

use crate::domain::{InvalidSecret, SessionKey};

/// Without a key id: written before key rotation existed; still opened.
const VERSION_1: u8 = 1;
const VERSION: u8 = 2;
const NONCE_LEN: usize = 12;
const KEY_ID_LEN: usize = 8;
/// The associated data's purpose of sealed session keys (identities and login tickets).
pub const SESSION_KEY_PURPOSE: &str = "session_key";

/// Why a sealed value did not open. Deliberately says nothing more.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("sealed value is malformed")]
    Malformed,
    #[error("sealed value does not open with this key for this identity")]
    Open,
    #[error("sealed value names a sealing key that is neither the current nor a previous one")]
    UnknownKey,
}

/// The 256-bit key that seals session keys, with the previous keys that still open values sealed
/// before a rotation. Redacts itself.
#[derive(Clone)]
pub struct SealingKey {
    current: Cipher,
    previous: std::sync::Arc<[Cipher]>,
    /// Whether the key is obviously not random (`serve` refuses it); the bytes are not kept.
    low_entropy: bool,
}

#[derive(Clone)]
struct Cipher {
    cipher: Aes256Gcm,
    id: [u8; KEY_ID_LEN],
}

/// Names a sealing key without revealing it: the first 8 bytes of SHA-256 over a domain-separated
/// derivation of the key, shown as 16 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SealingKeyId([u8; KEY_ID_LEN]);

impl std::fmt::Display for SealingKeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

fn key_id(key: &[u8; 32]) -> [u8; KEY_ID_LEN] {
    use sha2::Digest as _;
    let mut hash = sha2::Sha256::new();
    hash.update(b"wxlogin/sealing-key-id/v1\0");
    hash.update(key);
    let digest = hash.finalize();
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&digest[..KEY_ID_LEN]);
    id
}

/// Which key sealed a value, as far as its header tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedBy {
    /// The value names its key.
    Key(SealingKeyId),
    /// Written before key ids: any key may have sealed it.
    Unnamed,
    /// Not a sealed value.
    Malformed,
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
            current: Cipher {
                cipher: Aes256Gcm::new(&key.into()),
                id: key_id(&key),
            },
            previous: std::sync::Arc::new([]),
        }
    }

    /// This key sealing, and `previous` (their current keys) opening what they sealed.
    pub fn with_previous(self, previous: impl IntoIterator<Item = SealingKey>) -> Self {
        let current = self.current.id;
        let mut keys: Vec<Cipher> = Vec::new();
        for key in previous {
            if key.current.id != current && keys.iter().all(|k| k.id != key.current.id) {
                keys.push(key.current);
            }
        }
        Self {
            previous: keys.into(),
            ..self
        }
    }

    /// The id of the key that seals.
    pub fn key_id(&self) -> SealingKeyId {
        SealingKeyId(self.current.id)
    }

    /// The ids of the previous keys, in the configured order.
    pub fn previous_key_ids(&self) -> Vec<SealingKeyId> {
        self.previous.iter().map(|k| SealingKeyId(k.id)).collect()
    }

    /// Which key a sealed value names (without opening it).
    pub fn sealed_by(sealed: &[u8]) -> SealedBy {
        match sealed.split_first() {
            Some((&VERSION, rest)) if rest.len() >= KEY_ID_LEN + NONCE_LEN + 16 => {
                let mut id = [0u8; KEY_ID_LEN];
                id.copy_from_slice(&rest[..KEY_ID_LEN]);
                SealedBy::Key(SealingKeyId(id))
            }
            Some((&VERSION_1, rest)) if rest.len() >= NONCE_LEN + 16 => SealedBy::Unnamed,
            _ => SealedBy::Malformed,
        }
    }

    /// Whether the value is sealed under the current key already (and so needs no reseal).
    pub fn is_current(&self, sealed: &[u8]) -> bool {
        Self::sealed_by(sealed) == SealedBy::Key(self.key_id())
    }

    /// Opens `sealed` and tells which key opened it.
    pub fn open_bytes_with_id(
        &self,
        sealed: &[u8],
        purpose: &str,
        context: &[&str],
    ) -> Result<(Vec<u8>, SealingKeyId), SealError> {
        let aad = associated_data(purpose, context);
        let keys = || std::iter::once(&self.current).chain(self.previous.iter());
        let (nonce, ciphertext, candidates): (&[u8], &[u8], Vec<&Cipher>) =
            match Self::sealed_by(sealed) {
                SealedBy::Key(SealingKeyId(id)) => {
                    let rest = &sealed[1 + KEY_ID_LEN..];
                    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
                    let key = keys().find(|k| k.id == id).ok_or(SealError::UnknownKey)?;
                    (nonce, ciphertext, vec![key])
                }
                SealedBy::Unnamed => {
                    let (nonce, ciphertext) = sealed[1..].split_at(NONCE_LEN);
                    (nonce, ciphertext, keys().collect())
                }
                SealedBy::Malformed => return Err(SealError::Malformed),
            };
        for key in candidates {
            let payload = Payload {
                msg: ciphertext,
                aad: &aad,
            };
            if let Ok(plain) = key.cipher.decrypt(Nonce::from_slice(nonce), payload) {
                return Ok((plain, SealingKeyId(key.id)));
            }
        }
        Err(SealError::Open)
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
            SESSION_KEY_PURPOSE,
            &[appid, openid],
        )
    }

    pub fn open(&self, sealed: &[u8], appid: &str, openid: &str) -> Result<SessionKey, SealError> {
        let plain = self.open_bytes(sealed, SESSION_KEY_PURPOSE, &[appid, openid])?;
        let text = String::from_utf8(plain).map_err(|_| SealError::Open)?;
        SessionKey::parse(text).map_err(|_| SealError::Open)
    }

    /// `version || key id || nonce || ciphertext+tag` under the current key; `purpose` and
    /// `context` are bound as associated data, so a value sealed for one purpose or owner does not
    /// open for another.
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
            .current
            .cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .expect("AES-256-GCM fails only for plaintexts over 64 GiB; ours are a few bytes");
        let mut out = Vec::with_capacity(1 + KEY_ID_LEN + NONCE_LEN + ciphertext.len());
        out.push(VERSION);
        out.extend_from_slice(&self.current.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out
    }

    /// Opens a value sealed under the current key or a previous one.
    pub fn open_bytes(
        &self,
        sealed: &[u8],
        purpose: &str,
        context: &[&str],
    ) -> Result<Vec<u8>, SealError> {
        self.open_bytes_with_id(sealed, purpose, context)
            .map(|(plain, _)| plain)
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = *b"0123456789abcdefghijklmnopqrstuv";
    const NEXT: [u8; 32] = *b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

    /// A value as versions before key ids wrote it: `1 || nonce || ciphertext`.
    fn seal_version_1(key: &SealingKey, plain: &[u8], purpose: &str, context: &[&str]) -> Vec<u8> {
        let nonce = [7u8; NONCE_LEN];
        let aad = associated_data(purpose, context);
        let payload = Payload {
            msg: plain,
            aad: &aad,
        };
        let ciphertext = key
            .current
            .cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .unwrap();
        [&[VERSION_1][..], &nonce, &ciphertext].concat()
    }

    #[test]
    fn the_key_id_is_stable_derived_and_reveals_nothing_of_the_key() {
        let key = SealingKey::from_bytes(KEY);
        assert_eq!(key.key_id(), SealingKey::from_bytes(KEY).key_id());
        assert_ne!(key.key_id(), SealingKey::from_bytes(NEXT).key_id());
        let shown = key.key_id().to_string();
        assert_eq!(shown.len(), 16);
        // Not a prefix of the key nor of its plain SHA-256: a derivation of its own.
        use sha2::Digest as _;
        assert_ne!(shown, hex::encode(&sha2::Sha256::digest(KEY)[..8]));
        assert!(!hex::encode(KEY).contains(&shown));
        let sealed = key.seal_bytes(b"secret", "p", &["c"]);
        assert_eq!(sealed[0], VERSION);
        assert_eq!(SealingKey::sealed_by(&sealed), SealedBy::Key(key.key_id()));
        assert!(key.is_current(&sealed));
        assert!(
            !sealed.windows(32).any(|w| w == KEY),
            "the key is not in the value"
        );
    }

    #[test]
    fn previous_keys_open_what_they_sealed_and_the_current_key_seals() {
        let old = SealingKey::from_bytes(KEY);
        let sealed_old = old.seal_bytes(b"secret", "p", &["c"]);
        let rotated = SealingKey::from_bytes(NEXT).with_previous([SealingKey::from_bytes(KEY)]);
        assert_eq!(rotated.previous_key_ids(), vec![old.key_id()]);
        let (plain, by) = rotated
            .open_bytes_with_id(&sealed_old, "p", &["c"])
            .unwrap();
        assert_eq!((plain.as_slice(), by), (&b"secret"[..], old.key_id()));
        assert!(!rotated.is_current(&sealed_old));
        let sealed_new = rotated.seal_bytes(b"secret", "p", &["c"]);
        assert!(rotated.is_current(&sealed_new));
        assert_eq!(
            old.open_bytes(&sealed_new, "p", &["c"]).unwrap_err(),
            SealError::UnknownKey,
            "the old key alone does not open the new value"
        );
        // Without the previous key, its values are refused, naming the reason.
        let alone = SealingKey::from_bytes(NEXT);
        assert_eq!(
            alone.open_bytes(&sealed_old, "p", &["c"]).unwrap_err(),
            SealError::UnknownKey
        );
        // The associated data still binds.
        assert_eq!(
            rotated
                .open_bytes(&sealed_old, "p", &["other"])
                .unwrap_err(),
            SealError::Open
        );
    }

    #[test]
    fn values_without_a_key_id_open_with_the_current_or_a_previous_key_only() {
        let old = SealingKey::from_bytes(KEY);
        let legacy = seal_version_1(&old, b"secret", "p", &["c"]);
        assert_eq!(SealingKey::sealed_by(&legacy), SealedBy::Unnamed);
        assert_eq!(old.open_bytes(&legacy, "p", &["c"]).unwrap(), b"secret");
        assert!(!old.is_current(&legacy), "resealed to carry the key id");
        let rotated = SealingKey::from_bytes(NEXT).with_previous([SealingKey::from_bytes(KEY)]);
        let (plain, by) = rotated.open_bytes_with_id(&legacy, "p", &["c"]).unwrap();
        assert_eq!((plain.as_slice(), by), (&b"secret"[..], old.key_id()));
        assert_eq!(
            SealingKey::from_bytes(NEXT)
                .open_bytes(&legacy, "p", &["c"])
                .unwrap_err(),
            SealError::Open,
            "a wrong key refuses"
        );
        assert_eq!(SealingKey::sealed_by(&[2, 1, 2]), SealedBy::Malformed);
    }
}
