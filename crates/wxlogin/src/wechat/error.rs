use std::fmt;

/// The errcodes WeChat documents (or is observed to send) for the APIs wxlogin calls.
/// Programs key on the number; the description is ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrCode {
    SystemBusy,
    InvalidCredential,
    InvalidGrantType,
    InvalidOpenid,
    InvalidAppid,
    InvalidAccessToken,
    InvalidUrl,
    InvalidCode,
    InvalidAppsecret,
    CodeBeenUsed,
    InvalidIp,
    CodeBlocked,
    AppSecretFrozen,
    AccessTokenMissing,
    AppidMissing,
    AppsecretMissing,
    MissingCode,
    AccessTokenExpired,
    RequireGet,
    RequirePost,
    RequireHttps,
    EmptyPostData,
    DailyQuota,
    MinuteQuota,
    DataFormat,
    ApiUnauthorized,
    UserLimited,
    TokenApiForbidden,
    AccountFrozen,
    ComponentTokenRequired,
    InvalidSigMethod,
    InvalidSignature,
}

const TABLE: &[(i64, ErrCode, &str)] = &[
    (-1, ErrCode::SystemBusy, "system busy"),
    (40001, ErrCode::InvalidCredential, "invalid credential"),
    (40002, ErrCode::InvalidGrantType, "invalid grant_type"),
    (40003, ErrCode::InvalidOpenid, "invalid openid"),
    (40013, ErrCode::InvalidAppid, "invalid appid"),
    (40014, ErrCode::InvalidAccessToken, "invalid access_token"),
    (40066, ErrCode::InvalidUrl, "invalid url"),
    (40029, ErrCode::InvalidCode, "invalid code"),
    (40125, ErrCode::InvalidAppsecret, "invalid appsecret"),
    (40163, ErrCode::CodeBeenUsed, "code been used"),
    (40164, ErrCode::InvalidIp, "caller ip not in whitelist"),
    (40226, ErrCode::CodeBlocked, "code blocked by risk control"),
    (40243, ErrCode::AppSecretFrozen, "appsecret frozen"),
    (41001, ErrCode::AccessTokenMissing, "access_token missing"),
    (41002, ErrCode::AppidMissing, "appid missing"),
    (41004, ErrCode::AppsecretMissing, "appsecret missing"),
    (41008, ErrCode::MissingCode, "missing code"),
    (42001, ErrCode::AccessTokenExpired, "access_token expired"),
    (43001, ErrCode::RequireGet, "require GET method"),
    (43002, ErrCode::RequirePost, "require POST method"),
    (43003, ErrCode::RequireHttps, "require https"),
    (44002, ErrCode::EmptyPostData, "empty post data"),
    (45009, ErrCode::DailyQuota, "daily api quota reached"),
    (45011, ErrCode::MinuteQuota, "minute api quota reached"),
    (47001, ErrCode::DataFormat, "data format error"),
    (48001, ErrCode::ApiUnauthorized, "api unauthorized"),
    (50002, ErrCode::UserLimited, "user limited"),
    (50004, ErrCode::TokenApiForbidden, "token api forbidden"),
    (50007, ErrCode::AccountFrozen, "account frozen"),
    (
        61024,
        ErrCode::ComponentTokenRequired,
        "third-party platform token required",
    ),
    (87008, ErrCode::InvalidSigMethod, "invalid sig_method"),
    (87009, ErrCode::InvalidSignature, "invalid signature"),
];

impl ErrCode {
    pub fn from_errcode(errcode: i64) -> Option<Self> {
        TABLE
            .iter()
            .find(|(n, _, _)| *n == errcode)
            .map(|(_, c, _)| *c)
    }

    pub fn errcode(self) -> i64 {
        TABLE
            .iter()
            .find(|(_, c, _)| *c == self)
            .map_or(0, |(n, _, _)| *n)
    }

    pub fn description(self) -> &'static str {
        TABLE
            .iter()
            .find(|(_, c, _)| *c == self)
            .map_or("", |(_, _, d)| d)
    }
}

/// What went wrong talking to WeChat. No variant carries a URL, a secret or a response body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WechatError {
    /// WeChat answered with a known errcode.
    #[error("WeChat errcode {} ({}){}", .code.errcode(), .code.description(), Rid(.rid))]
    Api { code: ErrCode, rid: Option<String> },
    /// WeChat answered with an errcode this version does not know.
    #[error("WeChat errcode {errcode} ({errmsg}){}", Rid(.rid))]
    Unknown {
        errcode: i64,
        errmsg: String,
        rid: Option<String>,
    },
    #[error("WeChat did not answer in time")]
    Timeout,
    #[error("could not connect to WeChat: {0}")]
    Connect(String),
    #[error("transport error talking to WeChat: {0}")]
    Transport(String),
    #[error("WeChat answered HTTP {status}")]
    HttpStatus { status: u16 },
    #[error("WeChat's answer is malformed: {reason}")]
    Malformed { reason: String },
}

struct Rid<'a>(&'a Option<String>);

impl fmt::Display for Rid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(rid) => write!(f, ", rid: {rid}"),
            None => Ok(()),
        }
    }
}

impl WechatError {
    pub(crate) fn from_errcode(errcode: i64, errmsg: &str) -> Self {
        let rid = parse_rid(errmsg);
        match ErrCode::from_errcode(errcode) {
            Some(code) => Self::Api { code, rid },
            None => Self::Unknown {
                errcode,
                errmsg: strip_rid(errmsg).chars().take(200).collect(),
                rid,
            },
        }
    }

    /// The errcode WeChat sent, if it answered with one.
    pub fn errcode(&self) -> Option<i64> {
        match self {
            Self::Api { code, .. } => Some(code.errcode()),
            Self::Unknown { errcode, .. } => Some(*errcode),
            _ => None,
        }
    }

    /// The `errcode` label of `wxlogin_wechat_calls_total`: known errcodes by number, the rest by
    /// kind, so that the label values stay a fixed set.
    pub(crate) fn outcome(&self) -> crate::metrics::WechatOutcome {
        use crate::metrics::WechatOutcome::{Errcode, Failed};
        match self {
            Self::Api { code, .. } => Errcode(code.errcode()),
            Self::Unknown { .. } => Failed("unknown"),
            Self::Timeout => Failed("timeout"),
            Self::Connect(_) => Failed("connect"),
            Self::Transport(_) => Failed("transport"),
            Self::HttpStatus { .. } => Failed("http_status"),
            Self::Malformed { .. } => Failed("malformed"),
        }
    }

    /// WeChat's request id, for its support and for our logs.
    pub fn rid(&self) -> Option<&str> {
        match self {
            Self::Api { rid, .. } | Self::Unknown { rid, .. } => rid.as_deref(),
            _ => None,
        }
    }

    /// 40001, 40014, 42001: the access token was refused; refresh it once and retry once.
    pub fn is_access_token_rejected(&self) -> bool {
        matches!(
            self,
            Self::Api {
                code: ErrCode::InvalidCredential
                    | ErrCode::InvalidAccessToken
                    | ErrCode::AccessTokenExpired,
                ..
            }
        )
    }

    /// WeChat was busy (-1) or could not be reached: worth a retry for idempotent calls, and
    /// `wechat_unavailable` for the mini program.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Api {
                code: ErrCode::SystemBusy,
                ..
            }
            | Self::Timeout
            | Self::Connect(_)
            | Self::Transport(_) => true,
            Self::HttpStatus { status } => *status >= 500,
            _ => false,
        }
    }
}

/// Finds the `rid` WeChat appends to errmsg (`", rid: 6129ee10-272863a4-64d75414"` or `" rid: ..."`).
pub(crate) fn parse_rid(errmsg: &str) -> Option<String> {
    let start = errmsg.rfind("rid:")? + "rid:".len();
    let rid: String = errmsg[start..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_hexdigit() || *c == '-')
        .collect();
    (!rid.is_empty()).then_some(rid)
}

fn strip_rid(errmsg: &str) -> &str {
    match errmsg.rfind("rid:") {
        Some(i) => errmsg[..i].trim_end_matches([' ', ',']),
        None => errmsg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rid_is_found_in_every_observed_form() {
        assert_eq!(
            parse_rid("invalid code, rid: 6129ee10-272863a4-64d75414").as_deref(),
            Some("6129ee10-272863a4-64d75414")
        );
        assert_eq!(
            parse_rid("invalid code hint: [bHLa9_I2e-1maotA] rid: 65b0c44b-2f27b020-5665ea0e")
                .as_deref(),
            Some("65b0c44b-2f27b020-5665ea0e")
        );
        assert_eq!(parse_rid("invalid code"), None);
        assert_eq!(parse_rid("rid:"), None);
    }

    #[test]
    fn known_and_unknown_errcodes_are_typed_and_keep_the_rid() {
        let e = WechatError::from_errcode(40029, "invalid code, rid: 6129ee10-272863a4-64d75414");
        assert_eq!(
            e,
            WechatError::Api {
                code: ErrCode::InvalidCode,
                rid: Some("6129ee10-272863a4-64d75414".into())
            }
        );
        assert_eq!(
            e.to_string(),
            "WeChat errcode 40029 (invalid code), rid: 6129ee10-272863a4-64d75414"
        );
        let u = WechatError::from_errcode(99999, "something new, rid: 0000000a-1-2");
        assert_eq!(
            u,
            WechatError::Unknown {
                errcode: 99999,
                errmsg: "something new".into(),
                rid: Some("0000000a-1-2".into())
            }
        );
        assert_eq!(u.errcode(), Some(99999));
        for (n, code, _) in TABLE {
            assert_eq!(ErrCode::from_errcode(*n), Some(*code));
            assert_eq!(code.errcode(), *n);
        }
    }

    #[test]
    fn token_rejections_and_unavailability_are_classified() {
        for n in [40001, 40014, 42001] {
            assert!(WechatError::from_errcode(n, "").is_access_token_rejected());
        }
        assert!(!WechatError::from_errcode(40029, "").is_access_token_rejected());
        assert!(WechatError::from_errcode(-1, "system error").is_unavailable());
        assert!(WechatError::Timeout.is_unavailable());
        assert!(WechatError::HttpStatus { status: 502 }.is_unavailable());
        assert!(!WechatError::HttpStatus { status: 404 }.is_unavailable());
    }
}
