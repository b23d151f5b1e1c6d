//! Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP, HMAC-SHA1, 6 digits, 30-second
//! steps), as authenticator apps implement them. Written here rather than taken from a crate: it
//! is twenty lines over RustCrypto's `hmac` and `sha1`, held against the RFC's own test vectors,
//! and the replay rule (a step used once is spent) needs the last accepted step, which the caller
//! keeps in the database.

use hmac::{Hmac, Mac as _};
use rand::RngCore as _;
use sha1::Sha1;
use subtle::ConstantTimeEq as _;

/// Seconds per step.
pub const TOTP_PERIOD_SECS: u64 = 30;
/// Digits of a code.
pub const TOTP_DIGITS: u32 = 6;
/// The issuer shown by authenticator apps.
pub const TOTP_ISSUER: &str = "wxlogin";
/// Bytes of a generated secret (160 bits, RFC 4226's recommendation for HMAC-SHA1).
pub const TOTP_SECRET_BYTES: usize = 20;

/// A TOTP secret. Redacts itself.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

impl TotpSecret {
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; TOTP_SECRET_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Base32 without padding, as otpauth URIs carry it.
    pub fn base32(&self) -> String {
        data_encoding::BASE32_NOPAD.encode(&self.0)
    }

    /// The `otpauth://` URI an authenticator app scans for `account`.
    pub fn otpauth_uri(&self, account: &str) -> String {
        format!(
            "otpauth://totp/{TOTP_ISSUER}:{account}?secret={}&issuer={TOTP_ISSUER}\
             &algorithm=SHA1&digits={TOTP_DIGITS}&period={TOTP_PERIOD_SECS}",
            self.base32()
        )
    }
}

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

/// The step of a Unix time in seconds.
pub fn totp_step(unix_secs: u64) -> u64 {
    unix_secs / TOTP_PERIOD_SECS
}

/// RFC 4226's HOTP value of `counter`, `digits` long.
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    #[allow(clippy::expect_used)]
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let value = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    value % 10u32.pow(digits)
}

/// The code of `step`, as text with leading zeros.
pub fn totp_code(secret: &TotpSecret, step: u64) -> String {
    format!(
        "{:0width$}",
        hotp(secret.as_bytes(), step, TOTP_DIGITS),
        width = TOTP_DIGITS as usize
    )
}

/// The step whose code `code` is, among the current step and one either side (clock drift and
/// a code typed at the edge of its step), excluding steps at or before `last_used` (a code is
/// accepted once). `None` for anything else, malformed codes included. Every candidate is
/// compared, in constant time.
pub fn verify_totp(
    secret: &TotpSecret,
    code: &str,
    unix_secs: u64,
    last_used: Option<u64>,
) -> Option<u64> {
    let code = code.trim();
    if code.len() != TOTP_DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = totp_step(unix_secs);
    let mut found = None;
    for step in [now.saturating_sub(1), now, now + 1] {
        let matches: bool = totp_code(secret, step)
            .as_bytes()
            .ct_eq(code.as_bytes())
            .into();
        if matches && last_used.is_none_or(|last| step > last) && found.is_none() {
            found = Some(step);
        }
    }
    found
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, the SHA-1 rows: the ASCII secret "12345678901234567890", 8 digits.
    #[test]
    fn rfc_6238_appendix_b_sha1_vectors() {
        let secret = b"12345678901234567890";
        for (time, expected) in [
            (59u64, 94_287_082u32),
            (1_111_111_109, 7_081_804),
            (1_111_111_111, 14_050_471),
            (1_234_567_890, 89_005_924),
            (2_000_000_000, 69_279_037),
            (20_000_000_000, 65_353_130),
        ] {
            assert_eq!(hotp(secret, totp_step(time), 8), expected, "T = {time}");
        }
    }

    #[test]
    fn six_digit_codes_are_the_last_six_of_the_rfc_values() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        assert_eq!(totp_code(&secret, totp_step(59)), "287082");
        assert_eq!(totp_code(&secret, totp_step(1_111_111_109)), "081804");
    }

    #[test]
    fn a_code_verifies_within_one_step_either_side_and_only_once() {
        let secret = TotpSecret::generate();
        let now = 1_700_000_015;
        let step = totp_step(now);
        let code = totp_code(&secret, step);
        assert_eq!(verify_totp(&secret, &code, now, None), Some(step));
        assert_eq!(verify_totp(&secret, &code, now + 30, None), Some(step));
        assert_eq!(verify_totp(&secret, &code, now - 30, None), Some(step));
        assert_eq!(verify_totp(&secret, &code, now + 60, None), None);
        assert_eq!(verify_totp(&secret, &code, now, Some(step)), None, "replay");
        assert_eq!(verify_totp(&secret, &code, now, Some(step - 1)), Some(step));
        let previous = totp_code(&secret, step - 1);
        assert_eq!(verify_totp(&secret, &previous, now, Some(step)), None);
        for bad in ["", "12345", "1234567", "abcdef", "12 456"] {
            assert_eq!(verify_totp(&secret, bad, now, None), None, "{bad:?}");
        }
    }

    #[test]
    fn the_uri_names_issuer_account_and_parameters_and_the_secret_in_base32() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        assert_eq!(
            secret.otpauth_uri("ops.bob"),
            "otpauth://totp/wxlogin:ops.bob?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=wxlogin&algorithm=SHA1&digits=6&period=30"
        );
        assert!(!format!("{secret:?}").contains("GEZ"));
    }
}
