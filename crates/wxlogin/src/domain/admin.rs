//! Administrator accounts of the console: their names, roles and passwords, checked on the way in.

use std::fmt;

/// The longest administrator name.
pub const ADMIN_NAME_MAX_CHARS: usize = 64;
/// The shortest and longest password taken, in characters.
pub const PASSWORD_MIN_CHARS: usize = 12;
pub const PASSWORD_MAX_CHARS: usize = 1024;

/// An administrator's name: 1 to 64 of `a-z`, `0-9`, `.`, `_` and `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AdminName(String);

impl AdminName {
    pub fn parse(text: &str) -> Result<Self, String> {
        let valid = !text.is_empty()
            && text.len() <= ADMIN_NAME_MAX_CHARS
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(format!(
                "an administrator name is 1 to {ADMIN_NAME_MAX_CHARS} of a-z, 0-9, '.', '_' and '-'"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AdminName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an administrator may do in the console: viewers see, operators also act on users and
/// sessions, owners also on keys, apps and administrators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AdminRole {
    Viewer,
    Operator,
    Owner,
}

impl AdminRole {
    pub const ALL: [Self; 3] = [Self::Viewer, Self::Operator, Self::Owner];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Owner => "owner",
        }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == text)
            .ok_or_else(|| "a role is viewer, operator or owner".to_owned())
    }

    /// Owners must sign in with a second factor: the console refuses an owner without TOTP.
    pub fn requires_totp(self) -> bool {
        self == Self::Owner
    }
}

/// A password as an operator typed it, 12 to 1024 characters. Redacts itself.
#[derive(Clone)]
pub struct AdminPassword(String);

impl AdminPassword {
    pub fn parse(text: String) -> Result<Self, String> {
        let chars = text.chars().count();
        if chars < PASSWORD_MIN_CHARS {
            return Err(format!(
                "the password is too short: it needs at least {PASSWORD_MIN_CHARS} characters"
            ));
        }
        if chars > PASSWORD_MAX_CHARS {
            return Err(format!(
                "the password is too long: it may have at most {PASSWORD_MAX_CHARS} characters"
            ));
        }
        Ok(Self(text))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AdminPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminPassword(<redacted>)")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_lowercase_ascii() {
        for good in ["a", "ops.bob", "x_1-2", &"a".repeat(64)] {
            assert_eq!(AdminName::parse(good).unwrap().as_str(), good);
        }
        for bad in ["", "Bob", "a b", "ü", "a/b", &"a".repeat(65), "a\n"] {
            assert!(AdminName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passwords_are_12_to_1024_characters_and_redacted() {
        assert!(AdminPassword::parse("x".repeat(11)).is_err());
        assert!(AdminPassword::parse("密".repeat(12)).is_ok());
        assert!(AdminPassword::parse("x".repeat(1024)).is_ok());
        assert!(AdminPassword::parse("x".repeat(1025)).is_err());
        let password = AdminPassword::parse("correct horse battery".into()).unwrap();
        assert!(!format!("{password:?}").contains("horse"));
    }

    #[test]
    fn roles_parse_and_only_owners_need_totp() {
        for role in AdminRole::ALL {
            assert_eq!(AdminRole::parse(role.as_str()).unwrap(), role);
        }
        assert!(AdminRole::parse("admin").is_err());
        assert!(AdminRole::Owner.requires_totp());
        assert!(!AdminRole::Operator.requires_totp());
    }
}
