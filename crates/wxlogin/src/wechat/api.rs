//! The six WeChat server APIs wxlogin calls, with typed requests and answers.

use std::time::Duration;

use serde_json::{Map, Value};

use super::client::{Idempotency, WechatClient, malformed};
use super::error::WechatError;
use crate::crypto::{Watermark, login_state_signature};
use crate::domain::{
    AccessToken, AppId, AppSecret, LoginCode, OpenId, PhoneCode, SessionKey, UnionId,
};

/// What `jscode2session` gives for a login code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code2Session {
    pub openid: OpenId,
    pub session_key: SessionKey,
    pub unionid: Option<UnionId>,
}

/// An access token and how long WeChat says it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub token: AccessToken,
    pub expires_in: Duration,
}

/// The phone number behind a getPhoneNumber code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneInfo {
    /// With the country code for numbers outside mainland China.
    pub phone_number: String,
    pub pure_phone_number: String,
    pub country_code: String,
    pub watermark: Watermark,
}

fn str_field<'a>(object: &'a Map<String, Value>, field: &str) -> Result<&'a str, WechatError> {
    object
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| malformed(&format!("`{field}` is missing or not a string")))
}

fn invalid(field: &str) -> WechatError {
    malformed(&format!("`{field}` has an invalid value"))
}

fn issued_token(object: &Map<String, Value>) -> Result<IssuedToken, WechatError> {
    let token = AccessToken::parse(str_field(object, "access_token")?)
        .map_err(|_| invalid("access_token"))?;
    let expires_in = object
        .get("expires_in")
        .and_then(Value::as_u64)
        .filter(|secs| *secs > 0)
        .ok_or_else(|| malformed("`expires_in` is missing or not a positive integer"))?;
    Ok(IssuedToken {
        token,
        expires_in: Duration::from_secs(expires_in),
    })
}

impl WechatClient {
    /// `auth.code2Session`. Never retried once WeChat may have seen the code: it is single use.
    pub async fn code2session(
        &self,
        appid: &AppId,
        secret: &AppSecret,
        code: &LoginCode,
    ) -> Result<Code2Session, WechatError> {
        let object = self
            .call("jscode2session", Idempotency::Once, || {
                self.get("/sns/jscode2session").query(&[
                    ("appid", appid.as_str()),
                    ("secret", secret.expose_secret()),
                    ("js_code", code.as_str()),
                    ("grant_type", "authorization_code"),
                ])
            })
            .await?;
        let openid = OpenId::parse(str_field(&object, "openid")?).map_err(|_| invalid("openid"))?;
        let session_key = SessionKey::parse(str_field(&object, "session_key")?)
            .map_err(|_| invalid("session_key"))?;
        let unionid = match object.get("unionid") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => {
                Some(UnionId::parse(s.as_str()).map_err(|_| invalid("unionid"))?)
            }
            Some(_) => return Err(invalid("unionid")),
        };
        Ok(Code2Session {
            openid,
            session_key,
            unionid,
        })
    }

    /// `getAccessToken` (`/cgi-bin/token`): every fetch replaces the previous token after 5 minutes.
    pub async fn get_access_token(
        &self,
        appid: &AppId,
        secret: &AppSecret,
    ) -> Result<IssuedToken, WechatError> {
        let object = self
            .call("token", Idempotency::Idempotent, || {
                self.get("/cgi-bin/token").query(&[
                    ("grant_type", "client_credential"),
                    ("appid", appid.as_str()),
                    ("secret", secret.expose_secret()),
                ])
            })
            .await?;
        issued_token(&object)
    }

    /// `getStableAccessToken`: the same token until 5 minutes before it expires; `force_refresh`
    /// only for a leaked token (20 a day, 30 s apart).
    pub async fn get_stable_access_token(
        &self,
        appid: &AppId,
        secret: &AppSecret,
        force_refresh: bool,
    ) -> Result<IssuedToken, WechatError> {
        let idempotency = if force_refresh {
            Idempotency::Once
        } else {
            Idempotency::Idempotent
        };
        let object = self
            .call("stable_token", idempotency, || {
                self.post("/cgi-bin/stable_token").json(&serde_json::json!({
                    "grant_type": "client_credential",
                    "appid": appid.as_str(),
                    "secret": secret.expose_secret(),
                    "force_refresh": force_refresh,
                }))
            })
            .await?;
        issued_token(&object)
    }

    /// `checkSessionKey`: `Ok(true)` when the key is the user's current one, `Ok(false)` when WeChat
    /// says 87009 (wrong, expired or superseded key).
    pub async fn check_session_key(
        &self,
        access_token: &AccessToken,
        openid: &OpenId,
        session_key: &SessionKey,
    ) -> Result<bool, WechatError> {
        let signature = login_state_signature(session_key, b"");
        let result = self
            .call("checksession", Idempotency::Idempotent, || {
                self.get("/wxa/checksession").query(&[
                    ("access_token", access_token.expose_secret()),
                    ("openid", openid.as_str()),
                    ("signature", signature.as_str()),
                    ("sig_method", "hmac_sha256"),
                ])
            })
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(WechatError::Api {
                code: super::ErrCode::InvalidSignature,
                ..
            }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `resetUserSessionKey`: a new session_key (same expiry); the old one stops working at once.
    /// Not retried once sent: a lost answer would leave us with a key WeChat already replaced.
    pub async fn reset_session_key(
        &self,
        access_token: &AccessToken,
        openid: &OpenId,
        session_key: &SessionKey,
    ) -> Result<SessionKey, WechatError> {
        let signature = login_state_signature(session_key, b"");
        let object = self
            .call("resetusersessionkey", Idempotency::Once, || {
                self.get("/wxa/resetusersessionkey").query(&[
                    ("access_token", access_token.expose_secret()),
                    ("openid", openid.as_str()),
                    ("signature", signature.as_str()),
                    ("sig_method", "hmac_sha256"),
                ])
            })
            .await?;
        if str_field(&object, "openid")? != openid.as_str() {
            return Err(invalid("openid"));
        }
        SessionKey::parse(str_field(&object, "session_key")?).map_err(|_| invalid("session_key"))
    }

    /// `getPhoneNumber` with a code from the phone button (single use: never retried once sent).
    pub async fn get_phone_number(
        &self,
        access_token: &AccessToken,
        code: &PhoneCode,
    ) -> Result<PhoneInfo, WechatError> {
        let object = self
            .call("getuserphonenumber", Idempotency::Once, || {
                self.post("/wxa/business/getuserphonenumber")
                    .query(&[("access_token", access_token.expose_secret())])
                    .json(&serde_json::json!({ "code": code.as_str() }))
            })
            .await?;
        let info = object
            .get("phone_info")
            .and_then(Value::as_object)
            .ok_or_else(|| malformed("`phone_info` is missing or not an object"))?;
        // Documented as a string, shown as a number in the doc's example: accept both.
        let country_code = match info.get("countryCode") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(malformed("`countryCode` is missing or not a string")),
        };
        let watermark = info
            .get("watermark")
            .cloned()
            .and_then(|w| serde_json::from_value::<Watermark>(w).ok())
            .ok_or_else(|| malformed("`watermark` is missing or malformed"))?;
        Ok(PhoneInfo {
            phone_number: str_field(info, "phoneNumber")?.to_owned(),
            pure_phone_number: str_field(info, "purePhoneNumber")?.to_owned(),
            country_code,
            watermark,
        })
    }
}
