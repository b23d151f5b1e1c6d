use std::fmt;

/// Why a string was refused as an identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {reason}")]
pub struct InvalidId {
    pub kind: &'static str,
    pub reason: &'static str,
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps the value.
            pub fn parse(value: impl Into<String>) -> Result<Self, InvalidId> {
                let value = value.into();
                let check: fn(&str) -> Result<(), &'static str> = $check;
                check(&value).map_err(|reason| InvalidId { kind: $kind, reason })?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

fn printable_token(value: &str, min: usize, max: usize) -> Result<(), &'static str> {
    if value.len() < min {
        return Err("is too short");
    }
    if value.len() > max {
        return Err("is too long");
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err("has characters outside [0-9A-Za-z_-]");
    }
    Ok(())
}

id_type!(
    /// A mini program AppID: `wx` followed by 16 hex digits.
    AppId,
    "appid",
    |v| {
        let hex = v.strip_prefix("wx").ok_or("must start with \"wx\"")?;
        if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("must be \"wx\" followed by 16 hex digits");
        }
        Ok(())
    }
);

id_type!(
    /// A user's id within one app, as WeChat gives it (28 characters in practice).
    OpenId,
    "openid",
    |v| printable_token(v, 6, 64)
);

id_type!(
    /// A user's id across the apps of one WeChat Open Platform account.
    UnionId,
    "unionid",
    |v| printable_token(v, 6, 64)
);

id_type!(
    /// A `wx.login` code (32 characters in practice; WeChat does not promise a length).
    LoginCode,
    "code",
    |v| printable_token(v, 8, 128)
);

id_type!(
    /// A code from the getPhoneNumber button (64 hex characters in practice).
    PhoneCode,
    "phone_code",
    |v| printable_token(v, 8, 256)
);

fn prefixed_ulid(value: &str, prefix: &str) -> Result<(), &'static str> {
    let ulid = value.strip_prefix(prefix).ok_or("has the wrong prefix")?;
    ulid::Ulid::from_string(ulid).map_err(|_| "is not a valid id")?;
    Ok(())
}

id_type!(
    /// A wxlogin user: `u_` and a ULID.
    UserId,
    "user id",
    |v| prefixed_ulid(v, "u_")
);

id_type!(
    /// A login session (one device), which is also the refresh-token family: `s_` and a ULID.
    SessionId,
    "session id",
    |v| prefixed_ulid(v, "s_")
);

impl UserId {
    pub fn generate(now: std::time::SystemTime) -> Self {
        Self(format!("u_{}", ulid::Ulid::from_datetime(now)))
    }
}

impl SessionId {
    pub fn generate(now: std::time::SystemTime) -> Self {
        Self(format!("s_{}", ulid::Ulid::from_datetime(now)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appid_must_be_wx_and_16_hex_digits() {
        assert!(AppId::parse("wx4f4bc4dec97d474b").is_ok());
        assert!(AppId::parse("wx4f4bc4dec97d474").is_err());
        assert!(AppId::parse("xx4f4bc4dec97d474b").is_err());
        assert!(AppId::parse("wx4f4bc4dec97d474g").is_err());
        let err = AppId::parse("").unwrap_err();
        assert_eq!(err.to_string(), "appid must start with \"wx\"");
    }

    #[test]
    fn codes_refuse_odd_characters_and_lengths() {
        assert!(LoginCode::parse("083tjT000WK8kM17Dw000FdPPi4tjT0F").is_ok());
        assert!(LoginCode::parse("short").is_err());
        assert!(LoginCode::parse("083tjT000WK8kM17Dw000FdPPi4tjT0F&x=1").is_err());
        assert!(LoginCode::parse("x".repeat(129)).is_err());
        assert!(OpenId::parse("oGZUI0egBJY1zhBYw2KhdUfwVJJE").is_ok());
        assert!(OpenId::parse("o GZUI0egBJY").is_err());
    }

    #[test]
    fn generated_ids_parse_back() {
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let user = UserId::generate(now);
        assert!(user.as_str().starts_with("u_"));
        assert_eq!(UserId::parse(user.as_str()).unwrap(), user);
        assert!(UserId::parse(SessionId::generate(now).as_str()).is_err());
        assert!(SessionId::parse("s_nope").is_err());
    }

    #[test]
    fn ids_deserialize_through_validation() {
        let ok: AppId = serde_json::from_str("\"wx0000000000000001\"").unwrap();
        assert_eq!(ok.as_str(), "wx0000000000000001");
        assert!(serde_json::from_str::<AppId>("\"nope\"").is_err());
    }
}
