//! Access tokens: `/cgi-bin/token` (classic) and `/cgi-bin/stable_token` (stable), two isolated
//! namespaces whose tokens both authorise the other APIs (wechat-api.md §5).

use std::collections::{HashMap, VecDeque};

use crate::ids;
use crate::reply::{WxError, WxResult, code};

const TOKEN_LIFETIME_MS: i64 = 7_200_000;
/// A replaced classic token stays valid this long; a stable token is renewed when it has this
/// little left.
const OVERLAP_MS: i64 = 300_000;
/// Force refreshes closer together than this do nothing.
const FORCE_SPACING_MS: i64 = 30_000;
const FORCE_PER_DAY: u32 = 20;
const DAY_MS: i64 = 86_400_000;
/// Dead tokens are remembered (answering 42001/40001 rather than looking unknown) for a day.
const RETENTION_MS: i64 = DAY_MS;

/// A token as handed out: the token and its remaining lifetime in seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Grant {
    pub access_token: String,
    pub expires_in: i64,
}

struct Entry {
    appid: String,
    expires_ms: i64,
    /// From this time on the token was replaced and answers 40001.
    killed_ms: Option<i64>,
}

#[derive(Default)]
struct AppTokens {
    classic: Option<String>,
    classic_day: i64,
    classic_today: u32,
    stable: Option<String>,
    /// The stable token `stable` replaced; a second force refresh kills it.
    stable_previous: Option<String>,
    last_force_ms: Option<i64>,
    force_day: i64,
    force_today: u32,
}

#[derive(Default)]
pub(crate) struct Tokens {
    entries: HashMap<String, Entry>,
    apps: HashMap<String, AppTokens>,
    /// Tokens in minting order, so long-dead ones can be forgotten cheaply.
    order: VecDeque<(i64, String)>,
}

/// The UTC calendar day of a time, as WeChat's daily quotas count.
fn day(now_ms: i64) -> i64 {
    now_ms.div_euclid(DAY_MS)
}

impl Tokens {
    /// `/cgi-bin/token` for an app whose secret was checked: always a new token; the previous one
    /// stays valid for 5 minutes (or until its own expiry, if sooner).
    pub fn classic(&mut self, appid: &str, now_ms: i64, daily_quota: u32) -> WxResult<Grant> {
        let app = self.apps.entry(appid.to_owned()).or_default();
        if app.classic_day != day(now_ms) {
            app.classic_day = day(now_ms);
            app.classic_today = 0;
        }
        if app.classic_today >= daily_quota {
            return Err(WxError(code::DAILY_QUOTA));
        }
        app.classic_today += 1;
        let previous = app.classic.take();
        let token = self.mint(appid, now_ms);
        self.kill(previous.as_deref(), now_ms.saturating_add(OVERLAP_MS));
        if let Some(app) = self.apps.get_mut(appid) {
            app.classic = Some(token.clone());
        }
        Ok(Grant {
            access_token: token,
            expires_in: TOKEN_LIFETIME_MS / 1000,
        })
    }

    /// `/cgi-bin/stable_token` for an app whose secret was checked.
    ///
    /// Normal mode returns the current token while it has more than 5 minutes left, else a new one
    /// (the old one lives on until its own expiry). A force refresh makes a new token and kills the
    /// one before the current (the current stays valid until its expiry), so two force refreshes at
    /// least 30 s apart kill a leaked token. The grace given to the token just replaced is not
    /// documented; letting it live out its expiry is the reading that makes the documented leak
    /// procedure need two refreshes.
    pub fn stable(&mut self, appid: &str, now_ms: i64, force_refresh: bool) -> WxResult<Grant> {
        let current = self.current_stable(appid, now_ms);
        let app = self.apps.entry(appid.to_owned()).or_default();
        if force_refresh {
            let too_soon = app
                .last_force_ms
                .is_some_and(|last| now_ms.saturating_sub(last) < FORCE_SPACING_MS);
            if let (true, Some(grant)) = (too_soon, current) {
                return Ok(grant);
            }
            if app.force_day != day(now_ms) {
                app.force_day = day(now_ms);
                app.force_today = 0;
            }
            if app.force_today >= FORCE_PER_DAY {
                return Err(WxError(code::DAILY_QUOTA));
            }
            app.force_today += 1;
            app.last_force_ms = Some(now_ms);
            let older = app.stable_previous.take();
            self.kill(older.as_deref(), now_ms);
        } else if let Some(grant) = current
            && grant.expires_in * 1000 > OVERLAP_MS
        {
            return Ok(grant);
        }
        let token = self.mint(appid, now_ms);
        if let Some(app) = self.apps.get_mut(appid) {
            app.stable_previous = app.stable.replace(token.clone());
        }
        Ok(Grant {
            access_token: token,
            expires_in: TOKEN_LIFETIME_MS / 1000,
        })
    }

    fn current_stable(&self, appid: &str, now_ms: i64) -> Option<Grant> {
        let token = self.apps.get(appid)?.stable.as_ref()?;
        let entry = self.entries.get(token)?;
        let remaining_ms = entry.expires_ms.saturating_sub(now_ms);
        (entry.killed_ms.is_none() && remaining_ms > 0).then(|| Grant {
            access_token: token.clone(),
            expires_in: remaining_ms / 1000,
        })
    }

    /// The appid an access token belongs to, if it still authorises calls.
    pub fn check(&self, token: &str, now_ms: i64) -> WxResult<&str> {
        let entry = self
            .entries
            .get(token)
            .ok_or(WxError(code::INVALID_CREDENTIAL))?;
        if entry.killed_ms.is_some_and(|killed| now_ms >= killed) {
            return Err(WxError(code::INVALID_CREDENTIAL));
        }
        if now_ms >= entry.expires_ms {
            return Err(WxError(code::ACCESS_TOKEN_EXPIRED));
        }
        Ok(&entry.appid)
    }

    fn mint(&mut self, appid: &str, now_ms: i64) -> String {
        while let Some((expires_ms, token)) = self.order.front() {
            if expires_ms.saturating_add(RETENTION_MS) > now_ms {
                break;
            }
            self.entries.remove(token);
            self.order.pop_front();
        }
        let token = ids::access_token();
        let expires_ms = now_ms.saturating_add(TOKEN_LIFETIME_MS);
        self.entries.insert(
            token.clone(),
            Entry {
                appid: appid.to_owned(),
                expires_ms,
                killed_ms: None,
            },
        );
        self.order.push_back((expires_ms, token.clone()));
        token
    }

    fn kill(&mut self, token: Option<&str>, at_ms: i64) {
        if let Some(entry) = token.and_then(|t| self.entries.get_mut(t)) {
            entry.killed_ms = Some(entry.killed_ms.map_or(at_ms, |k| k.min(at_ms)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_010_000_000;

    #[test]
    fn a_replaced_classic_token_expiring_naturally_first_is_42001_then_40001() {
        let mut tokens = Tokens::default();
        let old = tokens.classic("wx1", T0, 100).unwrap();
        let late = T0 + TOKEN_LIFETIME_MS - 100_000;
        tokens.classic("wx1", late, 100).unwrap();
        assert_eq!(
            tokens.check(&old.access_token, T0 + TOKEN_LIFETIME_MS),
            Err(WxError(code::ACCESS_TOKEN_EXPIRED))
        );
        assert_eq!(
            tokens.check(&old.access_token, late + OVERLAP_MS),
            Err(WxError(code::INVALID_CREDENTIAL))
        );
    }

    #[test]
    fn long_dead_tokens_are_forgotten() {
        let mut tokens = Tokens::default();
        let old = tokens.classic("wx1", T0, 100).unwrap();
        let much_later = T0 + TOKEN_LIFETIME_MS + RETENTION_MS;
        tokens.classic("wx1", much_later, 100).unwrap();
        assert!(!tokens.entries.contains_key(&old.access_token));
        assert_eq!(tokens.entries.len(), 1);
    }

    #[test]
    fn force_refresh_quota_resets_on_the_next_utc_day() {
        let mut tokens = Tokens::default();
        let mut now = T0;
        for _ in 0..FORCE_PER_DAY {
            tokens.stable("wx1", now, true).unwrap();
            now += FORCE_SPACING_MS;
        }
        assert_eq!(
            tokens.stable("wx1", now, true),
            Err(WxError(code::DAILY_QUOTA))
        );
        let next_day = (day(now) + 1) * DAY_MS;
        assert!(tokens.stable("wx1", next_day, true).is_ok());
    }
}
