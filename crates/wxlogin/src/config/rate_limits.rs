//! `[rate_limits.<endpoint>]`: how many requests an endpoint takes per client IP, per user and per
//! app. Each is a [`Rate`] (`"60/min"`) or `"off"`; what "user" and "app" mean per endpoint is in
//! `docs/api.md` ("Rate limits").

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

/// The endpoints with limits, by their name in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitedEndpoint {
    /// `POST /v1/auth/wechat/login`
    Login,
    /// `POST /v1/auth/wechat/register`
    Register,
    /// `POST /v1/auth/refresh`
    Refresh,
    /// `POST /v1/me/phone`
    Phone,
    /// `POST` and `GET /v1/wechat/session`
    WechatSession,
    /// `POST /v1/introspect`
    Introspect,
    /// Every request with a service credential (HTTP Basic): introspection and `/internal/*`
    ServiceAuth,
}

impl LimitedEndpoint {
    pub const ALL: [Self; 7] = [
        Self::Login,
        Self::Register,
        Self::Refresh,
        Self::Phone,
        Self::WechatSession,
        Self::Introspect,
        Self::ServiceAuth,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Register => "register",
            Self::Refresh => "refresh",
            Self::Phone => "phone",
            Self::WechatSession => "wechat_session",
            Self::Introspect => "introspect",
            Self::ServiceAuth => "service_auth",
        }
    }

    /// Service requests name no app: their `per_app` is always off.
    fn has_app(self) -> bool {
        !matches!(self, Self::Introspect | Self::ServiceAuth)
    }
}

/// What a limit counts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitScope {
    Ip,
    User,
    App,
}

impl LimitScope {
    pub const ALL: [Self; 3] = [Self::Ip, Self::User, Self::App];

    /// The key in `[rate_limits.<endpoint>]`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ip => "per_ip",
            Self::User => "per_user",
            Self::App => "per_app",
        }
    }
}

/// The unit of a [`Rate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Per {
    Second,
    Minute,
    Hour,
}

impl Per {
    fn suffix(self) -> &'static str {
        match self {
            Self::Second => "s",
            Self::Minute => "min",
            Self::Hour => "h",
        }
    }

    fn duration(self) -> Duration {
        Duration::from_secs(match self {
            Self::Second => 1,
            Self::Minute => 60,
            Self::Hour => 3_600,
        })
    }
}

/// `count` requests per `per`: up to `count` at once, then one more each `per / count` (a bucket
/// of `count` that refills steadily, so there is no window boundary after which a full second
/// allowance arrives at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    count: u32,
    per: Per,
}

/// The largest `N` of `"N/..."`: a million a second is beyond any one server, and keeps the
/// limiter's arithmetic (microseconds) exact.
pub const MAX_RATE_COUNT: u32 = 1_000_000;

/// The one message for every malformed rate; it does not quote the value.
const EXPECTED: &str = "expected a rate \"N/s\", \"N/min\" or \"N/h\" with N from 1 to 1000000 (e.g. \"60/min\"), or \"off\"";

impl Rate {
    /// For the built-in defaults; `count` must be within `1..=MAX_RATE_COUNT`.
    const fn new(count: u32, per: Per) -> Self {
        Self { count, per }
    }

    pub fn count(self) -> u32 {
        self.count
    }

    /// The period the count is for.
    pub fn period(self) -> Duration {
        self.per.duration()
    }
}

impl FromStr for Rate {
    type Err = &'static str;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (count, unit) = text.trim().split_once('/').ok_or(EXPECTED)?;
        let per = match unit {
            "s" => Per::Second,
            "min" => Per::Minute,
            "h" => Per::Hour,
            _ => return Err(EXPECTED),
        };
        if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
            return Err(EXPECTED);
        }
        let count: u32 = count.parse().map_err(|_| EXPECTED)?;
        if !(1..=MAX_RATE_COUNT).contains(&count) {
            return Err(EXPECTED);
        }
        Ok(Self { count, per })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.count, self.per.suffix())
    }
}

/// A rate as written: `"off"` or a [`Rate`].
fn show(rate: Option<Rate>) -> String {
    rate.map_or_else(|| "off".to_owned(), |r| r.to_string())
}

/// The limits of one endpoint; `None` is `"off"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointLimits {
    pub per_ip: Option<Rate>,
    pub per_user: Option<Rate>,
    pub per_app: Option<Rate>,
}

impl EndpointLimits {
    pub fn get(&self, scope: LimitScope) -> Option<Rate> {
        match scope {
            LimitScope::Ip => self.per_ip,
            LimitScope::User => self.per_user,
            LimitScope::App => self.per_app,
        }
    }

    /// Each limit as written (`"off"` or `"N/unit"`), in the order of [`LimitScope::ALL`].
    pub(super) fn shown(&self) -> [String; 3] {
        LimitScope::ALL.map(|scope| show(self.get(scope)))
    }

    const fn of(per_ip: Option<Rate>, per_user: Option<Rate>) -> Self {
        Self {
            per_ip,
            per_user,
            per_app: None,
        }
    }
}

/// `[rate_limits]`: one table per endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitSettings {
    pub login: EndpointLimits,
    pub register: EndpointLimits,
    pub refresh: EndpointLimits,
    pub phone: EndpointLimits,
    pub wechat_session: EndpointLimits,
    pub introspect: EndpointLimits,
    pub service_auth: EndpointLimits,
}

const fn per_min(count: u32) -> Option<Rate> {
    Some(Rate::new(count, Per::Minute))
}

/// Carrier-grade NAT puts thousands of phones behind one public IPv4 address, so the per-IP
/// limits are sized for such an address, not for one person: they stop a script hammering from
/// one address, while the per-user limits, keyed by the WeChat user or the signed-in user, are
/// the tight ones. Per-app limits would refuse every user of an app at once when they trip, so
/// only an operator who knows the app's peak can size them: off. Service endpoints are called by
/// the operator's own backends at the rate of their traffic: off (docs/configuration.md).
impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            login: EndpointLimits::of(per_min(600), per_min(10)),
            register: EndpointLimits::of(per_min(120), per_min(10)),
            refresh: EndpointLimits::of(per_min(1_200), per_min(30)),
            phone: EndpointLimits::of(per_min(120), per_min(10)),
            wechat_session: EndpointLimits::of(per_min(600), per_min(30)),
            introspect: EndpointLimits::of(None, None),
            service_auth: EndpointLimits::of(None, None),
        }
    }
}

impl RateLimitSettings {
    pub fn get(&self, endpoint: LimitedEndpoint) -> &EndpointLimits {
        match endpoint {
            LimitedEndpoint::Login => &self.login,
            LimitedEndpoint::Register => &self.register,
            LimitedEndpoint::Refresh => &self.refresh,
            LimitedEndpoint::Phone => &self.phone,
            LimitedEndpoint::WechatSession => &self.wechat_session,
            LimitedEndpoint::Introspect => &self.introspect,
            LimitedEndpoint::ServiceAuth => &self.service_auth,
        }
    }

    fn get_mut(&mut self, endpoint: LimitedEndpoint) -> &mut EndpointLimits {
        match endpoint {
            LimitedEndpoint::Login => &mut self.login,
            LimitedEndpoint::Register => &mut self.register,
            LimitedEndpoint::Refresh => &mut self.refresh,
            LimitedEndpoint::Phone => &mut self.phone,
            LimitedEndpoint::WechatSession => &mut self.wechat_session,
            LimitedEndpoint::Introspect => &mut self.introspect,
            LimitedEndpoint::ServiceAuth => &mut self.service_auth,
        }
    }

    /// Turns every limit off (tests of something else that send many requests from one address).
    pub fn off() -> Self {
        let mut settings = Self::default();
        for endpoint in LimitedEndpoint::ALL {
            *settings.get_mut(endpoint) = EndpointLimits::of(None, None);
        }
        settings
    }
}

/// `"off"` or a rate, as read.
enum Setting {
    Off,
    On(Rate),
}

impl<'de> Deserialize<'de> for Setting {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Setting;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a rate such as \"60/min\", or \"off\"")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Setting, E> {
                if text.trim() == "off" {
                    return Ok(Setting::Off);
                }
                text.parse().map(Setting::On).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// One endpoint's table as written; what it leaves out keeps the endpoint's default.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawEndpoint {
    per_ip: Option<Setting>,
    per_user: Option<Setting>,
    per_app: Option<Setting>,
}

/// `[rate_limits]` as written: only the endpoints of [`LimitedEndpoint`], so a misspelt one is an
/// error naming it.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawRateLimits {
    login: RawEndpoint,
    register: RawEndpoint,
    refresh: RawEndpoint,
    phone: RawEndpoint,
    wechat_session: RawEndpoint,
    introspect: RawEndpoint,
    service_auth: RawEndpoint,
}

impl RawRateLimits {
    /// Over the defaults; `per_app` of the service endpoints must stay off.
    pub(super) fn resolve(self) -> Result<RateLimitSettings, ConfigError> {
        let mut settings = RateLimitSettings::default();
        let raw = [
            (LimitedEndpoint::Login, self.login),
            (LimitedEndpoint::Register, self.register),
            (LimitedEndpoint::Refresh, self.refresh),
            (LimitedEndpoint::Phone, self.phone),
            (LimitedEndpoint::WechatSession, self.wechat_session),
            (LimitedEndpoint::Introspect, self.introspect),
            (LimitedEndpoint::ServiceAuth, self.service_auth),
        ];
        for (endpoint, written) in raw {
            let limits = settings.get_mut(endpoint);
            for (slot, setting) in [
                (&mut limits.per_ip, written.per_ip),
                (&mut limits.per_user, written.per_user),
                (&mut limits.per_app, written.per_app),
            ] {
                match setting {
                    Some(Setting::Off) => *slot = None,
                    Some(Setting::On(rate)) => *slot = Some(rate),
                    None => {}
                }
            }
            if !endpoint.has_app() && limits.per_app.is_some() {
                return Err(ConfigError::invalid(
                    format!("rate_limits.{}.per_app", endpoint.as_str()),
                    "service requests name no app: leave it \"off\" and use per_user (the service client)",
                ));
            }
        }
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_print_alike() {
        for (text, count, secs) in [
            ("5/s", 5, 1),
            ("60/min", 60, 60),
            (" 100/h ", 100, 3_600),
            ("1000000/s", 1_000_000, 1),
        ] {
            let rate: Rate = text.parse().unwrap();
            assert_eq!(
                (rate.count(), rate.period()),
                (count, Duration::from_secs(secs))
            );
            assert_eq!(rate.to_string(), text.trim());
        }
        for bad in [
            "",
            "5",
            "5/day",
            "0/min",
            "x/min",
            "-1/s",
            "+1/s",
            "5/",
            "/min",
            "5/MIN",
            "5 /min",
            "1000001/s",
            "5/min/s",
            "off",
        ] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }
}
