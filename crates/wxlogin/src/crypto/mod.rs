//! WeChat's open-data cryptography, wxlogin's sealing of session keys at rest, and the
//! administrators' password hashes and one-time passwords.
//!
//! Hand-written on purpose: WeChat's formats (AES-128-CBC open data with a watermark, sha1 rawData
//! signatures, HMAC login-state signatures keyed by the base64 *text*) are small, exact and not covered
//! by a crate; the primitives underneath are RustCrypto's.

mod open_data;
mod password;
mod seal;
mod signature;
mod totp;

pub use open_data::{OpenData, OpenDataError, Watermark, decrypt_open_data, open_open_data};
pub use password::{
    ARGON2_ITERATIONS, ARGON2_MEMORY_KIB, ARGON2_PARALLELISM, hash_password, verify_password,
};
pub use seal::{SESSION_KEY_PURPOSE, SealError, SealedBy, SealingKey, SealingKeyId};
pub use signature::{
    login_state_signature, verify_login_state_signature, verify_raw_data_signature,
};

pub use totp::{
    TOTP_DIGITS, TOTP_ISSUER, TOTP_PERIOD_SECS, TOTP_SECRET_BYTES, TotpSecret, hotp, totp_code,
    totp_step, verify_totp,
};

#[cfg(test)]
mod tests;
