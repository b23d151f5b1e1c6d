//! What WeChat remembers: apps, users and their session keys, login and phone codes, call counters
//! and faults. All methods are synchronous and take the current time in milliseconds, so the caller
//! reads the clock once per call and never holds the lock across an `.await`.

use std::collections::{HashMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::codes::{Codes, LoginCodeEntry, PhoneCodeEntry};
use crate::config::AppConfig;
use crate::error::MockError;
use crate::faults::{Api, Fault};
use crate::ids::{self, openid_for, unionid_for};
use crate::reply::{WxError, WxResult, code};
use crate::tokens::Tokens;

/// jscode2session allows 100 exchanges per user per minute.
const EXCHANGE_WINDOW_MS: i64 = 60_000;
const EXCHANGES_PER_WINDOW: usize = 100;

/// What `wx.login` gives the mini program.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginCode {
    pub code: String,
    pub openid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unionid: Option<String>,
}

/// What jscode2session answers.
pub(crate) struct Session {
    pub openid: String,
    pub session_key: String,
    pub unionid: Option<String>,
}

struct User {
    session_key: String,
    key_since_ms: i64,
    /// Times of recent successful exchanges, oldest first, for the per-minute limit.
    exchanges: VecDeque<i64>,
}

impl User {
    fn new(now_ms: i64) -> Self {
        Self {
            session_key: ids::session_key(),
            key_since_ms: now_ms,
            exchanges: VecDeque::new(),
        }
    }

    fn rotate_key(&mut self, now_ms: i64) {
        self.session_key = ids::session_key();
        self.key_since_ms = now_ms;
    }
}

struct AppState {
    config: AppConfig,
    risky: HashSet<String>,
    users: HashMap<String, User>,
    /// openid → user name, for the APIs that name users by openid.
    openids: HashMap<String, String>,
}

impl AppState {
    fn user_mut(&mut self, user: &str, now_ms: i64) -> &mut User {
        if !self.users.contains_key(user) {
            self.openids
                .insert(openid_for(&self.config.appid, user), user.to_owned());
        }
        self.users
            .entry(user.to_owned())
            .or_insert_with(|| User::new(now_ms))
    }

    fn unionid(&self, user: &str) -> Option<String> {
        self.config
            .open_platform
            .as_deref()
            .map(|platform| unionid_for(platform, user))
    }
}

#[derive(Default)]
pub(crate) struct State {
    apps: HashMap<String, AppState>,
    codes: Codes,
    pub tokens: Tokens,
    calls: [u64; Api::ALL.len()],
    pub faults: Vec<Fault>,
}

impl State {
    pub fn new(apps: Vec<AppConfig>) -> Self {
        let mut state = Self::default();
        for app in apps {
            state.add_app(app);
        }
        state
    }

    /// Adds an app, or replaces its settings while keeping its users.
    pub fn add_app(&mut self, config: AppConfig) {
        let risky = config.risky_users.iter().cloned().collect();
        match self.apps.get_mut(&config.appid) {
            Some(app) => {
                app.risky = risky;
                app.config = config;
            }
            None => {
                self.apps.insert(
                    config.appid.clone(),
                    AppState {
                        config,
                        risky,
                        users: HashMap::new(),
                        openids: HashMap::new(),
                    },
                );
            }
        }
    }

    /// Forgets codes, tokens, counters and faults; apps and users stay.
    pub fn reset(&mut self) {
        self.codes = Codes::default();
        self.tokens = Tokens::default();
        self.calls = Default::default();
        self.faults.clear();
        for app in self.apps.values_mut() {
            for user in app.users.values_mut() {
                user.exchanges.clear();
            }
        }
    }

    pub fn count_call(&mut self, api: Api) {
        self.calls[api.index()] += 1;
    }

    pub fn calls(&self, api: Api) -> u64 {
        self.calls[api.index()]
    }

    fn app_mut(&mut self, appid: &str) -> Result<&mut AppState, MockError> {
        self.apps
            .get_mut(appid)
            .ok_or_else(|| MockError::UnknownApp(appid.to_owned()))
    }

    /// The user's current session_key, creating the user if new.
    pub fn session_key(
        &mut self,
        appid: &str,
        user: &str,
        now_ms: i64,
    ) -> Result<String, MockError> {
        check_user(user)?;
        Ok(self
            .app_mut(appid)?
            .user_mut(user, now_ms)
            .session_key
            .clone())
    }

    pub fn set_user_risky(
        &mut self,
        appid: &str,
        user: &str,
        risky: bool,
    ) -> Result<(), MockError> {
        check_user(user)?;
        let app = self.app_mut(appid)?;
        if risky {
            app.risky.insert(user.to_owned());
        } else {
            app.risky.remove(user);
        }
        Ok(())
    }

    /// A new wx.login code. Like WeChat, it rotates the session_key unless the key is younger than
    /// `min_rotation_ms`.
    pub fn mint_login_code(
        &mut self,
        appid: &str,
        user: &str,
        now_ms: i64,
        min_rotation_ms: i64,
    ) -> Result<LoginCode, MockError> {
        check_user(user)?;
        let app = self.app_mut(appid)?;
        let is_new = !app.users.contains_key(user);
        let state = app.user_mut(user, now_ms);
        if !is_new && now_ms.saturating_sub(state.key_since_ms) >= min_rotation_ms {
            state.rotate_key(now_ms);
        }
        let minted = LoginCode {
            code: ids::login_code(),
            openid: openid_for(appid, user),
            unionid: app.unionid(user),
        };
        self.codes.add_login(
            minted.code.clone(),
            LoginCodeEntry {
                appid: appid.to_owned(),
                user: user.to_owned(),
                minted_ms: now_ms,
                used: false,
            },
        );
        Ok(minted)
    }

    /// A new getPhoneNumber button code for `user`'s phone number.
    pub fn mint_phone_code(
        &mut self,
        appid: &str,
        user: &str,
        phone: &str,
        country_code: &str,
        now_ms: i64,
    ) -> Result<String, MockError> {
        check_user(user)?;
        if !(5..=20).contains(&phone.len()) || !phone.bytes().all(|b| b.is_ascii_digit()) {
            return Err(MockError::InvalidPhone);
        }
        if !(1..=4).contains(&country_code.len())
            || !country_code.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(MockError::InvalidCountryCode);
        }
        self.app_mut(appid)?.user_mut(user, now_ms);
        let code = ids::phone_code();
        self.codes.add_phone(
            code.clone(),
            PhoneCodeEntry {
                appid: appid.to_owned(),
                user: user.to_owned(),
                phone: phone.to_owned(),
                country_code: country_code.to_owned(),
                minted_ms: now_ms,
                used: false,
            },
        );
        Ok(code)
    }

    /// The app named by a request that authenticates with appid + secret.
    pub fn check_secret(&self, appid: &str, secret: &str) -> WxResult<()> {
        let app = self.apps.get(appid).ok_or(WxError(code::INVALID_APPID))?;
        if app.config.secret != secret {
            return Err(WxError(code::INVALID_APPSECRET));
        }
        Ok(())
    }

    /// jscode2session after its parameters and the app's secret were checked.
    pub fn exchange_login_code(
        &mut self,
        appid: &str,
        js_code: &str,
        now_ms: i64,
    ) -> WxResult<Session> {
        let entry = self
            .codes
            .live_login(js_code, now_ms)
            .filter(|entry| entry.appid == appid)
            .ok_or(WxError(code::INVALID_CODE))?;
        if entry.used {
            return Err(WxError(code::CODE_BEEN_USED));
        }
        let app = self
            .apps
            .get_mut(appid)
            .ok_or(WxError(code::INVALID_APPID))?;
        if app.risky.contains(&entry.user) {
            return Err(WxError(code::CODE_BLOCKED));
        }
        let unionid = app.unionid(&entry.user);
        let user = app.user_mut(&entry.user, now_ms);
        while user
            .exchanges
            .front()
            .is_some_and(|&t| t <= now_ms.saturating_sub(EXCHANGE_WINDOW_MS))
        {
            user.exchanges.pop_front();
        }
        // This attempt counts too: the 101st exchange within a minute is refused.
        if user.exchanges.len() >= EXCHANGES_PER_WINDOW {
            return Err(WxError(code::MINUTE_QUOTA));
        }
        user.exchanges.push_back(now_ms);
        entry.used = true;
        Ok(Session {
            openid: openid_for(appid, &entry.user),
            session_key: user.session_key.clone(),
            unionid,
        })
    }

    /// getuserphonenumber after the access token (which names `appid`) and the body were checked.
    pub fn exchange_phone_code(
        &mut self,
        appid: &str,
        phone_code: &str,
        openid: Option<&str>,
        now_ms: i64,
    ) -> WxResult<Value> {
        // A login code is not in this map, so it is refused like any unknown code.
        let entry = self
            .codes
            .live_phone(phone_code, now_ms)
            .filter(|entry| !entry.used)
            .ok_or(WxError(code::INVALID_CODE))?;
        if entry.appid != appid {
            return Err(WxError(code::INVALID_APPID));
        }
        if openid.is_some_and(|openid| openid != openid_for(appid, &entry.user)) {
            return Err(WxError(code::INVALID_OPENID));
        }
        entry.used = true;
        let phone_number = if entry.country_code == "86" {
            entry.phone.clone()
        } else {
            format!("+{}{}", entry.country_code, entry.phone)
        };
        Ok(json!({
            "phoneNumber": phone_number,
            "purePhoneNumber": entry.phone,
            "countryCode": entry.country_code,
            "watermark": { "timestamp": now_ms.div_euclid(1000), "appid": appid },
        }))
    }

    /// checksession's checks; on success, the user's name.
    pub fn check_login_state(
        &self,
        appid: &str,
        openid: Option<&str>,
        signature: Option<&str>,
        sig_method: Option<&str>,
    ) -> WxResult<String> {
        if sig_method != Some("hmac_sha256") {
            return Err(WxError(code::INVALID_SIG_METHOD));
        }
        let app = self.apps.get(appid).ok_or(WxError(code::INVALID_APPID))?;
        let user = openid
            .and_then(|openid| app.openids.get(openid))
            .ok_or(WxError(code::INVALID_OPENID))?;
        let key = app
            .users
            .get(user)
            .map(|u| u.session_key.as_str())
            .ok_or(WxError(code::INVALID_OPENID))?;
        // Strict: WeChat's examples are lowercase hex, and the server must send exactly that.
        if signature != Some(crate::crypto::login_state_signature(key, b"").as_str()) {
            return Err(WxError(code::INVALID_SIGNATURE));
        }
        Ok(user.clone())
    }

    /// Replaces a user's session_key (resetusersessionkey); returns `(openid, new key)`.
    pub fn reset_session_key(
        &mut self,
        appid: &str,
        user: &str,
        now_ms: i64,
    ) -> WxResult<(String, String)> {
        let app = self
            .apps
            .get_mut(appid)
            .ok_or(WxError(code::INVALID_APPID))?;
        let state = app.user_mut(user, now_ms);
        state.rotate_key(now_ms);
        Ok((openid_for(appid, user), state.session_key.clone()))
    }
}

fn check_user(user: &str) -> Result<(), MockError> {
    if user.is_empty() {
        Err(MockError::EmptyUser)
    } else {
        Ok(())
    }
}
