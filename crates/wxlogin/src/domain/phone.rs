//! Phone numbers as WeChat gives them (getPhoneNumber, legacy encrypted phone data, operator
//! imports), normalised to a country calling code and a national number, digits only.

use std::fmt;

/// A normalised phone number: `country_code` without `+` (1–4 digits, no leading zero) and the
/// national number (4–17 digits). Two spellings of one number compare equal.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Phone {
    country_code: String,
    number: String,
}

/// Why a phone number was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("phone number {0}")]
pub struct InvalidPhone(pub &'static str);

/// Separators people and systems put inside numbers; anything else is refused.
fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '-' | '(' | ')' | '.')
}

fn digits(value: &str) -> Result<String, InvalidPhone> {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c.is_ascii_digit() {
            out.push(c);
        } else if !is_separator(c) {
            return Err(InvalidPhone("has characters other than digits"));
        }
    }
    Ok(out)
}

impl Phone {
    /// From a country code (`86`, `+86`) and a national number (`138 0013 8000`).
    pub fn new(country_code: &str, number: &str) -> Result<Self, InvalidPhone> {
        let country_code = country_code.trim();
        let country_code = digits(country_code.strip_prefix('+').unwrap_or(country_code))?;
        if country_code.is_empty() || country_code.len() > 4 || country_code.starts_with('0') {
            return Err(InvalidPhone("has an invalid country code"));
        }
        let number = digits(number.trim())?;
        if !(4..=17).contains(&number.len()) {
            return Err(InvalidPhone("must have 4 to 17 digits"));
        }
        if country_code == "86" && (number.len() != 11 || !number.starts_with('1')) {
            return Err(InvalidPhone("is not a mainland China mobile number"));
        }
        Ok(Self {
            country_code,
            number,
        })
    }

    /// From an operator's text: a bare mainland number (`13800138000`, country code 86) or `+`,
    /// the country code, a space or dash, and the number (`+852 61234567`, `+86-138-0013-8000`).
    /// Without a separator the split is ambiguous, so `+8613800138000` is read only for `+86`.
    pub fn parse_text(text: &str) -> Result<Self, InvalidPhone> {
        let text = text.trim();
        let Some(rest) = text.strip_prefix('+') else {
            return Self::new("86", text);
        };
        if let Some((code, number)) = rest.split_once([' ', '-']) {
            return Self::new(code, number);
        }
        match rest.strip_prefix("86") {
            Some(number) => Self::new("86", number),
            None => Err(InvalidPhone(
                "needs a space or dash after the country code (e.g. `+852 61234567`)",
            )),
        }
    }

    pub fn country_code(&self) -> &str {
        &self.country_code
    }

    /// The national number, digits only (WeChat's `purePhoneNumber`).
    pub fn number(&self) -> &str {
        &self.number
    }

    /// `+` country code and number, e.g. `+8613800138000`.
    pub fn e164(&self) -> String {
        format!("+{}{}", self.country_code, self.number)
    }

    /// The number with its middle hidden, e.g. `138****8000`: the first three and last four digits
    /// of long numbers, less of short ones, never more than half of the digits.
    pub fn masked(&self) -> String {
        let n = self.number.len();
        let (head, tail) = match n {
            11.. => (3, 4),
            8..=10 => (2, 3),
            _ => (1, 1),
        };
        format!("{}****{}", &self.number[..head], &self.number[n - tail..])
    }
}

/// Phone numbers are personal data: debug output shows only the masked form.
impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Phone(+{} {})", self.country_code, self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_spellings_of_one_number() {
        let a = Phone::new("86", "13800138000").unwrap();
        assert_eq!(Phone::new("+86", "138 0013 8000").unwrap(), a);
        assert_eq!(Phone::parse_text("13800138000").unwrap(), a);
        assert_eq!(Phone::parse_text(" +86 138-0013-8000 ").unwrap(), a);
        assert_eq!(Phone::parse_text("+8613800138000").unwrap(), a);
        assert_eq!(a.e164(), "+8613800138000");
        assert_eq!(a.country_code(), "86");
        assert_eq!(a.number(), "13800138000");
    }

    #[test]
    fn other_countries_need_a_separator_in_text() {
        let hk = Phone::parse_text("+852 61234567").unwrap();
        assert_eq!((hk.country_code(), hk.number()), ("852", "61234567"));
        assert!(Phone::parse_text("+85261234567").is_err());
    }

    #[test]
    fn refuses_bad_numbers() {
        for (cc, n) in [
            ("86", "1380013800"),
            ("86", "23800138000"),
            ("", "13800138000"),
            ("0086", "13800138000"),
            ("86", "138a0138000"),
            ("1", "123"),
            ("1", "123456789012345678"),
            ("12345", "5551234"),
        ] {
            assert!(Phone::new(cc, n).is_err(), "{cc} {n}");
        }
    }

    #[test]
    fn masks_the_middle() {
        assert_eq!(
            Phone::new("86", "13800138000").unwrap().masked(),
            "138****8000"
        );
        assert_eq!(Phone::new("852", "61234567").unwrap().masked(), "61****567");
        assert_eq!(Phone::new("1", "55512").unwrap().masked(), "5****2");
    }

    #[test]
    fn debug_never_shows_the_number() {
        let text = format!("{:?}", Phone::new("86", "13800138000").unwrap());
        assert!(!text.contains("13800138000"), "{text}");
    }
}
