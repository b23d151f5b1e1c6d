//! Refresh tokens: `wxr_` and 256 random bits (base64url); the server keeps only their SHA-256.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

const PREFIX: &str = "wxr_";
const ENCODED_LEN: usize = 43;

/// A refresh token in clear: handed to the client once, never logged or stored.
#[derive(Clone)]
pub struct RefreshTokenText(SecretString);

impl RefreshTokenText {
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for RefreshTokenText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshTokenText(<redacted>)")
    }
}

/// A new refresh token and the hash to store.
pub fn generate_refresh_token() -> (RefreshTokenText, [u8; 32]) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let text = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = Sha256::digest(text.as_bytes()).into();
    (RefreshTokenText(SecretString::from(text)), hash)
}

/// The stored hash of a presented token; `None` when it cannot be one of ours (so it is refused
/// without a database read).
pub fn hash_refresh_token(presented: &str) -> Option<[u8; 32]> {
    let encoded = presented.strip_prefix(PREFIX)?;
    if encoded.len() != ENCODED_LEN || URL_SAFE_NO_PAD.decode(encoded).is_err() {
        return None;
    }
    Some(Sha256::digest(presented.as_bytes()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_have_the_documented_shape_and_hash_back() {
        let (text, hash) = generate_refresh_token();
        assert!(text.expose_secret().starts_with("wxr_"));
        assert_eq!(text.expose_secret().len(), 4 + 43);
        assert_eq!(hash_refresh_token(text.expose_secret()), Some(hash));
        assert_ne!(generate_refresh_token().1, hash);
        assert!(!format!("{text:?}").contains(text.expose_secret()));
    }

    #[test]
    fn foreign_shapes_are_refused_without_hashing() {
        assert_eq!(hash_refresh_token(""), None);
        assert_eq!(hash_refresh_token("wxr_short"), None);
        assert_eq!(hash_refresh_token(&format!("xxx_{}", "A".repeat(43))), None);
        assert_eq!(hash_refresh_token(&format!("wxr_{}", "!".repeat(43))), None);
        assert!(hash_refresh_token(&format!("wxr_{}", "A".repeat(43))).is_some());
    }
}
