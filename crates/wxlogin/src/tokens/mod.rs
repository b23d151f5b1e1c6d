//! wxlogin's own tokens: signed access JWTs (RFC 9068 profile) verifiable through the JWKS, and opaque
//! refresh tokens known to the database only by their SHA-256.

mod access;
mod keys;
mod refresh;
mod signing;

pub use access::{AccessClaims, AccessTokenSettings, IssuedAccessToken, TokenError, TokenService};
pub use keys::{KeyPair, KeySchedule, Keyring, SigningAlg};
pub use refresh::{
    RefreshTokenText, generate_login_ticket, generate_refresh_token, hash_login_ticket,
    hash_refresh_token,
};
pub use signing::PURPOSE as SIGNING_KEY_PURPOSE;
pub use signing::{
    KeyState, KeyStatus, KeyringError, KeyringReloader, Rotated, UNKNOWN_KID_RELOAD_INTERVAL,
    key_statuses, load_or_create, rotate,
};

/// Selects aws-lc as jsonwebtoken's crypto backend for the process. jsonwebtoken panics on first use
/// when feature unification leaves it without exactly one backend; installing it explicitly at
/// start-up makes that impossible. Safe to call more than once.
pub fn install_crypto_provider() {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
}

#[cfg(test)]
mod tests;
