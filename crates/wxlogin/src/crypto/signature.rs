//! WeChat's signatures over data tied to a session_key.

use hmac::{Hmac, Mac};
use sha1::{Digest, Sha1};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::domain::SessionKey;

/// The login-state signature of checkSessionKey / resetUserSessionKey (message = "") and of POST APIs
/// (message = the body): lowercase hex of HMAC-SHA256 keyed by the session_key's base64 *text*.
pub fn login_state_signature(session_key: &SessionKey, message: &[u8]) -> String {
    hex::encode(hmac_sha256(session_key.expose_secret().as_bytes(), message))
}

#[allow(clippy::expect_used)]
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .expect("HMAC takes keys of any length, so new_from_slice cannot fail");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// Checks a login-state signature in constant time (hex in either case).
pub fn verify_login_state_signature(session_key: &SessionKey, message: &[u8], sig: &str) -> bool {
    let expected = hmac_sha256(session_key.expose_secret().as_bytes(), message);
    ct_eq_hex(&expected, sig)
}

/// Checks the rawData signature of getUserInfo: `sig == hex(sha1(raw_data + session_key))`, compared
/// in constant time (hex in either case).
pub fn verify_raw_data_signature(session_key: &SessionKey, raw_data: &str, sig: &str) -> bool {
    let mut hasher = Sha1::new();
    hasher.update(raw_data.as_bytes());
    hasher.update(session_key.expose_secret().as_bytes());
    let expected: [u8; 20] = hasher.finalize().into();
    ct_eq_hex(&expected, sig)
}

fn ct_eq_hex(expected: &[u8], given_hex: &str) -> bool {
    match hex::decode(given_hex) {
        Ok(given) if given.len() == expected.len() => given.ct_eq(expected).into(),
        _ => false,
    }
}
