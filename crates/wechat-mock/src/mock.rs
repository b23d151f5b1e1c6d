//! The in-process handle: what tests and the control API use to play the WeChat client side.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::clock::SharedClock;
use crate::config::{AppConfig, MockConfig};
use crate::crypto;
use crate::error::MockError;
use crate::faults::{self, Api, Fault, FaultPlan};
use crate::state::{LoginCode, State};

/// Open data as the mini program receives it: base64 ciphertext and IV.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encrypted {
    pub encrypted_data: String,
    pub iv: String,
}

/// Settings fixed at start-up.
#[derive(Debug)]
pub(crate) struct Settings {
    pub min_rotation_ms: i64,
    pub token_daily_quota: u32,
    pub errcode_on_success: bool,
}

struct Inner {
    clock: SharedClock,
    settings: Settings,
    state: Mutex<State>,
}

/// A running simulator's state. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Mock {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Mock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mock")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl Mock {
    pub fn new(config: MockConfig) -> Self {
        let settings = Settings {
            min_rotation_ms: i64::try_from(config.session_key_min_rotation.as_millis())
                .unwrap_or(i64::MAX),
            token_daily_quota: config.token_daily_quota,
            errcode_on_success: config.errcode_on_success,
        };
        Self {
            inner: Arc::new(Inner {
                clock: config.clock,
                settings,
                state: Mutex::new(State::new(config.apps)),
            }),
        }
    }

    pub fn clock(&self) -> SharedClock {
        self.inner.clock.clone()
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.inner.clock.unix_millis()
    }

    /// The state, locked. Never hold the guard across an `.await`.
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        // A panic while locked cannot leave the maps half-updated in a way worse than a lost
        // request, so a poisoned lock is still usable.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds an app, or replaces the settings of an app with the same appid (its users stay).
    pub fn add_app(&self, app: AppConfig) {
        self.state().add_app(app);
    }

    /// What `wx.login` gives the mini program of `appid` for `user`: a 32-character code, valid
    /// 5 minutes, single use. May rotate the user's session_key (see
    /// [`MockConfig::session_key_min_rotation`]).
    pub fn mint_login_code(&self, appid: &str, user: &str) -> Result<LoginCode, MockError> {
        let now = self.now_ms();
        self.state()
            .mint_login_code(appid, user, now, self.inner.settings.min_rotation_ms)
    }

    /// What the getPhoneNumber button gives: a 64-hex-character code, valid 5 minutes, single use.
    /// `phone` is 5–20 digits without country code; `country_code` is e.g. `"86"`.
    pub fn mint_phone_code(
        &self,
        appid: &str,
        user: &str,
        phone: &str,
        country_code: &str,
    ) -> Result<String, MockError> {
        let now = self.now_ms();
        self.state()
            .mint_phone_code(appid, user, phone, country_code, now)
    }

    /// Encrypts `data` (a JSON object) plus a `watermark` of the current time and `appid` with the
    /// user's current session_key, as WeChat does for getUserInfo, legacy getPhoneNumber and
    /// getWeRunData.
    pub fn encrypt(&self, appid: &str, user: &str, data: Value) -> Result<Encrypted, MockError> {
        let Value::Object(mut object) = data else {
            return Err(MockError::NotAnObject);
        };
        let session_key = self.session_key(appid, user)?;
        object.insert(
            "watermark".to_owned(),
            json!({ "timestamp": self.inner.clock.unix_secs(), "appid": appid }),
        );
        let plaintext = Value::Object(object).to_string();
        let (encrypted_data, iv) = crypto::encrypt_open_data(&session_key, plaintext.as_bytes())
            .map_err(|_| MockError::BadSessionKey)?;
        Ok(Encrypted { encrypted_data, iv })
    }

    /// The rawData signature WeChat gives with user info: `hex(sha1(raw_data + session_key))`.
    pub fn sign(&self, appid: &str, user: &str, raw_data: &str) -> Result<String, MockError> {
        let session_key = self.session_key(appid, user)?;
        Ok(crypto::raw_data_signature(&session_key, raw_data))
    }

    /// The user's current session_key (creating the user if new).
    pub fn session_key(&self, appid: &str, user: &str) -> Result<String, MockError> {
        let now = self.now_ms();
        self.state().session_key(appid, user, now)
    }

    /// Flags or unflags a user for WeChat's risk control: their codes then get 40226.
    pub fn set_user_risky(&self, appid: &str, user: &str, risky: bool) -> Result<(), MockError> {
        self.state().set_user_risky(appid, user, risky)
    }

    /// Adds a fault after the existing ones.
    pub fn add_fault(&self, fault: Fault) {
        self.state().faults.push(fault);
    }

    pub fn clear_faults(&self) {
        self.state().faults.clear();
    }

    /// Calls of `api` received since start or the last reset, faulted ones included.
    pub fn calls(&self, api: Api) -> u64 {
        self.state().calls(api)
    }

    /// Calls per API name, every API present.
    pub fn stats(&self) -> BTreeMap<String, u64> {
        let state = self.state();
        Api::ALL
            .iter()
            .map(|&api| (api.name().to_owned(), state.calls(api)))
            .collect()
    }

    /// Forgets codes, tokens, counters and faults; apps and users (with their session keys) stay.
    pub fn reset(&self) {
        self.state().reset();
    }

    /// Counts a call and picks its faults.
    pub(crate) fn begin_call(&self, api: Api) -> FaultPlan {
        let mut state = self.state();
        state.count_call(api);
        faults::plan(&mut state.faults, api)
    }
}

/// How long a hanging call waits: longer than any sane client timeout.
pub(crate) const HANG: Duration = Duration::from_secs(3600);
