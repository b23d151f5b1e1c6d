//! The one-time codes a mini program gets from WeChat: wx.login codes and getPhoneNumber button
//! codes. Both live 5 minutes and are used once; they are kept apart so one kind is never accepted
//! as the other.

use std::collections::{HashMap, VecDeque};

/// Codes live 5 minutes.
const CODE_LIFETIME_MS: i64 = 300_000;

pub(crate) struct LoginCodeEntry {
    pub appid: String,
    pub user: String,
    pub minted_ms: i64,
    pub used: bool,
}

pub(crate) struct PhoneCodeEntry {
    pub appid: String,
    pub user: String,
    pub phone: String,
    pub country_code: String,
    pub minted_ms: i64,
    pub used: bool,
}

/// Whether a code minted at `minted_ms` is past its lifetime (exactly 300 s old is still valid).
pub(crate) fn expired(minted_ms: i64, now_ms: i64) -> bool {
    now_ms.saturating_sub(minted_ms) > CODE_LIFETIME_MS
}

#[derive(Default)]
pub(crate) struct Codes {
    login: HashMap<String, LoginCodeEntry>,
    phone: HashMap<String, PhoneCodeEntry>,
    /// Codes of both kinds in minting order, so expired ones can be forgotten cheaply.
    order: VecDeque<(i64, String)>,
}

impl Codes {
    pub fn add_login(&mut self, code: String, entry: LoginCodeEntry) {
        self.forget_expired(entry.minted_ms);
        self.order.push_back((entry.minted_ms, code.clone()));
        self.login.insert(code, entry);
    }

    pub fn add_phone(&mut self, code: String, entry: PhoneCodeEntry) {
        self.forget_expired(entry.minted_ms);
        self.order.push_back((entry.minted_ms, code.clone()));
        self.phone.insert(code, entry);
    }

    /// A login code that is still within its lifetime (used or not).
    pub fn live_login(&mut self, code: &str, now_ms: i64) -> Option<&mut LoginCodeEntry> {
        self.login
            .get_mut(code)
            .filter(|entry| !expired(entry.minted_ms, now_ms))
    }

    /// A phone code that is still within its lifetime (used or not).
    pub fn live_phone(&mut self, code: &str, now_ms: i64) -> Option<&mut PhoneCodeEntry> {
        self.phone
            .get_mut(code)
            .filter(|entry| !expired(entry.minted_ms, now_ms))
    }

    // Expired codes answer 40029 exactly like unknown ones, so they can be dropped.
    fn forget_expired(&mut self, now_ms: i64) {
        while let Some((minted_ms, code)) = self.order.front() {
            if !expired(*minted_ms, now_ms) {
                break;
            }
            self.login.remove(code);
            self.phone.remove(code);
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login_entry(minted_ms: i64) -> LoginCodeEntry {
        LoginCodeEntry {
            appid: "wx1".into(),
            user: "alice".into(),
            minted_ms,
            used: false,
        }
    }

    #[test]
    fn codes_live_exactly_300_seconds() {
        let mut codes = Codes::default();
        codes.add_login("a".into(), login_entry(0));
        assert!(codes.live_login("a", CODE_LIFETIME_MS).is_some());
        assert!(codes.live_login("a", CODE_LIFETIME_MS + 1).is_none());
    }

    #[test]
    fn expired_codes_are_forgotten_when_new_ones_are_minted() {
        let mut codes = Codes::default();
        codes.add_login("a".into(), login_entry(0));
        codes.add_login("b".into(), login_entry(CODE_LIFETIME_MS + 1));
        assert_eq!(codes.login.len(), 1);
        assert_eq!(codes.order.len(), 1);
    }

    #[test]
    fn login_and_phone_codes_are_separate() {
        let mut codes = Codes::default();
        codes.add_login("a".into(), login_entry(0));
        assert!(codes.live_phone("a", 0).is_none());
    }
}
