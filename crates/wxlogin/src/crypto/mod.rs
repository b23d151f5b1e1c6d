//! WeChat's open-data cryptography and wxlogin's sealing of session keys at rest.
//!
//! Hand-written on purpose: WeChat's formats (AES-128-CBC open data with a watermark, sha1 rawData
//! signatures, HMAC login-state signatures keyed by the base64 *text*) are small, exact and not covered
//! by a crate; the primitives underneath are RustCrypto's.

mod open_data;
mod seal;
mod signature;

pub use open_data::{OpenData, OpenDataError, Watermark, decrypt_open_data, open_open_data};
pub use seal::{SESSION_KEY_PURPOSE, SealError, SealedBy, SealingKey, SealingKeyId};
pub use signature::{
    login_state_signature, verify_login_state_signature, verify_raw_data_signature,
};

#[cfg(test)]
mod tests;
