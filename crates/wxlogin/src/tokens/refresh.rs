//! Opaque tokens: refresh tokens (`wxr_`) and login tickets (`wxt_`), each a prefix and 256 random
//! bits (base64url); the server keeps only their SHA-256.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

const PREFIX: &str = "wxr_";
const TICKET_PREFIX: &str = "wxt_";
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

fn generate(prefix: &str) -> (String, [u8; 32]) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let text = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = Sha256::digest(text.as_bytes()).into();
    (text, hash)
}

fn hash(prefix: &str, presented: &str) -> Option<[u8; 32]> {
    let encoded = presented.strip_prefix(prefix)?;
    if encoded.len() != ENCODED_LEN || URL_SAFE_NO_PAD.decode(encoded).is_err() {
        return None;
    }
    Some(Sha256::digest(presented.as_bytes()).into())
}

/// A new refresh token and the hash to store.
pub fn generate_refresh_token() -> (RefreshTokenText, [u8; 32]) {
    let (text, hash) = generate(PREFIX);
    (RefreshTokenText(SecretString::from(text)), hash)
}

/// The stored hash of a presented token; `None` when it cannot be one of ours (so it is refused
/// without a database read).
pub fn hash_refresh_token(presented: &str) -> Option<[u8; 32]> {
    hash(PREFIX, presented)
}

/// A new login ticket (`wxt_...`) and the hash to store.
pub fn generate_login_ticket() -> (String, [u8; 32]) {
    generate(TICKET_PREFIX)
}

/// The stored hash of a presented login ticket; `None` when it cannot be one.
pub fn hash_login_ticket(presented: &str) -> Option<[u8; 32]> {
    hash(TICKET_PREFIX, presented)
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

    #[test]
    fn tickets_and_refresh_tokens_are_not_interchangeable() {
        let (ticket, hash) = generate_login_ticket();
        assert!(ticket.starts_with("wxt_"));
        assert_eq!(hash_login_ticket(&ticket), Some(hash));
        assert_eq!(hash_refresh_token(&ticket), None);
        let (refresh, _) = generate_refresh_token();
        assert_eq!(hash_login_ticket(refresh.expose_secret()), None);
    }
}
