//! Secrets that must never reach a log line, an error text or a response: they redact themselves in
//! `Debug` and `Display`, and their value is reachable only through `expose_secret()`.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretString};

/// Why a string was refused as a secret (never contains the secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {reason}")]
pub struct InvalidSecret {
    pub kind: &'static str,
    pub reason: &'static str,
}

macro_rules! secret_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(SecretString);

        impl $name {
            /// Validates and wraps the value.
            pub fn parse(value: impl Into<String>) -> Result<Self, InvalidSecret> {
                let value: String = value.into();
                let check: fn(&str) -> Result<(), &'static str> = $check;
                check(&value).map_err(|reason| InvalidSecret { kind: $kind, reason })?;
                Ok(Self(SecretString::from(value)))
            }

            /// The secret itself: only for the places that must send or use it.
            pub fn expose_secret(&self) -> &str {
                self.0.expose_secret()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("<redacted>")
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                use subtle::ConstantTimeEq as _;
                self.expose_secret()
                    .as_bytes()
                    .ct_eq(other.expose_secret().as_bytes())
                    .into()
            }
        }

        impl Eq for $name {}
    };
}

fn non_empty_printable(value: &str, max: usize) -> Result<(), &'static str> {
    if value.is_empty() {
        return Err("is empty");
    }
    if value.len() > max {
        return Err("is too long");
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("has characters that are not printable ASCII");
    }
    Ok(())
}

secret_type!(
    /// A mini program's AppSecret.
    AppSecret,
    "app secret",
    |v| non_empty_printable(v, 128)
);

secret_type!(
    /// A WeChat `access_token` (WeChat asks to reserve 512 characters for it).
    AccessToken,
    "access token",
    |v| non_empty_printable(v, 1024)
);

secret_type!(
    /// A user's `session_key`: the base64 text of 16 bytes (24 characters), as WeChat delivers it.
    /// Signatures use the text itself as key; decryption uses the 16 decoded bytes.
    SessionKey,
    "session_key",
    |v| {
        if v.len() != 24 {
            return Err("must be 24 base64 characters");
        }
        match STANDARD.decode(v) {
            Ok(bytes) if bytes.len() == 16 => Ok(()),
            _ => Err("must be the base64 of 16 bytes"),
        }
    }
);

secret_type!(
    /// A backend service's `client_secret` for introspection and the internal endpoints.
    ServiceSecret,
    "client_secret",
    |v| {
        if v.len() < 16 {
            return Err("must be at least 16 characters");
        }
        non_empty_printable(v, 256)
    }
);

impl ServiceSecret {
    /// Compares hashes so that the time taken reveals neither where the texts differ nor the
    /// secret's length.
    pub fn matches(&self, presented: &str) -> bool {
        use sha2::{Digest as _, Sha256};
        use subtle::ConstantTimeEq as _;
        let expected = Sha256::digest(self.expose_secret().as_bytes());
        let presented = Sha256::digest(presented.as_bytes());
        expected.ct_eq(&presented).into()
    }
}

impl SessionKey {
    /// The 16-byte AES key of open-data decryption.
    #[allow(clippy::expect_used)]
    pub fn aes_key(&self) -> [u8; 16] {
        let bytes = STANDARD
            .decode(self.expose_secret())
            .expect("a SessionKey is validated as base64 on construction");
        bytes
            .try_into()
            .expect("a SessionKey is validated to decode to 16 bytes on construction")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_redact_in_debug_and_display() {
        let key = SessionKey::parse("tiihtNczf5v6AKRyjwEUhQ==").unwrap();
        let secret = AppSecret::parse("0123456789abcdef0123456789abcdef").unwrap();
        let token = AccessToken::parse("89_abcdefghijklmnop").unwrap();
        for text in [
            format!("{key:?} {key} {secret:?} {secret} {token:?} {token}"),
            format!("{:?}", Some((&key, &secret, &token))),
        ] {
            assert!(!text.contains("tiihtNczf5v6AKRyjwEUhQ=="));
            assert!(!text.contains("0123456789abcdef"));
            assert!(!text.contains("abcdefghijklmnop"));
            assert!(text.contains("redacted"));
        }
    }

    #[test]
    fn session_key_must_be_base64_of_16_bytes() {
        assert!(SessionKey::parse("tiihtNczf5v6AKRyjwEUhQ==").is_ok());
        assert!(SessionKey::parse("tiihtNczf5v6AKRyjwEUhQ=").is_err());
        assert!(SessionKey::parse("tiihtNczf5v6AKRyjwEU!Q==").is_err());
        let err = SessionKey::parse("AAAAAAAAAAAAAAAAAAAAAAAA").unwrap_err();
        assert_eq!(
            err.to_string(),
            "session_key must be the base64 of 16 bytes"
        );
        let key = SessionKey::parse("tiihtNczf5v6AKRyjwEUhQ==").unwrap();
        assert_eq!(
            hex::encode(key.aes_key()),
            "b628a1b4d7337f9bfa00a4728f011485"
        );
    }

    #[test]
    fn service_secret_matches_only_itself() {
        let secret = ServiceSecret::parse("orders-service-secret-0001").unwrap();
        assert!(secret.matches("orders-service-secret-0001"));
        assert!(!secret.matches("orders-service-secret-0002"));
        assert!(!secret.matches(""));
        assert!(ServiceSecret::parse("too-short").is_err());
        assert_eq!(
            format!("{secret:?} {secret}"),
            "ServiceSecret(<redacted>) <redacted>"
        );
    }

    #[test]
    fn errors_never_echo_the_secret() {
        let err = AppSecret::parse("bad secret with spaces").unwrap_err();
        assert!(!err.to_string().contains("spaces"));
    }
}
