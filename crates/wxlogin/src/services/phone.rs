//! Phone numbers: read them from WeChat (a getPhoneNumber code, or legacy encrypted phone data) and
//! bind them to users, one account per number. A number bound to someone else is refused
//! (`phone_in_use`), never merged.

use crate::domain::{AppId, Phone, PhoneCode, UserId};
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::store::{StoreError, User};
use crate::wechat::{PhoneInfo, with_access_token};

use super::audit::{self, Actor, AuditEvent, Origin};

/// WeChat's number as wxlogin stores it. A number WeChat gives but wxlogin cannot read is WeChat's
/// error (502), not the client's.
fn normalise(country_code: &str, pure_number: &str) -> Result<Phone, ApiError> {
    Phone::new(country_code, pure_number).map_err(|e| {
        tracing::warn!(error = %e, "WeChat gave a phone number wxlogin cannot read");
        ApiError::new(
            ErrorCode::WechatError,
            format!("WeChat gave a phone number that cannot be read: {e}"),
        )
    })
}

/// The number behind a getPhoneNumber code (`getuserphonenumber` with the app's access token,
/// refreshed once if WeChat rejects it). The code is single use and never retried.
pub async fn fetch_phone(
    state: &AppState,
    appid: &AppId,
    code: &PhoneCode,
) -> Result<Phone, ApiError> {
    let wechat = &state.wechat;
    let info: PhoneInfo = with_access_token(&state.wechat_tokens, appid, |token| async move {
        wechat.get_phone_number(&token, code).await
    })
    .await?;
    if info.watermark.appid != appid.as_str() {
        return Err(ApiError::watermark_mismatch(
            "WeChat's phone number is stamped for another appid",
        ));
    }
    normalise(&info.country_code, &info.pure_phone_number)
}

/// The number in decrypted legacy getPhoneNumber data (`phoneNumber`, `purePhoneNumber`,
/// `countryCode`).
pub fn phone_from_open_data(
    data: &serde_json::Map<String, serde_json::Value>,
) -> Result<Phone, ApiError> {
    let field = |name: &str| match data.get(name) {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    match (field("countryCode"), field("purePhoneNumber")) {
        (Some(code), Some(number)) => Phone::new(&code, &number).map_err(|e| {
            ApiError::invalid_request(format!("the decrypted phone data is unusable: {e}"))
        }),
        _ => Err(ApiError::invalid_request(
            "the decrypted data is not phone data (no `countryCode` and `purePhoneNumber`)",
        )),
    }
}

/// Binds `phone` to `user` (replacing the user's previous number). `phone_in_use` when another
/// user has it; nothing is written then.
pub async fn bind_phone(
    state: &AppState,
    user: User,
    phone: Phone,
    appid: &AppId,
    origin: &Origin,
) -> Result<User, ApiError> {
    if user.phone.as_ref() == Some(&phone) {
        return Ok(user);
    }
    if let Some(owner) = state.store.find_user_by_phone(&phone).await?
        && owner.id != user.id
    {
        tracing::info!(user = %user.id, owner = %owner.id, "phone number bound to another account");
        return Err(ApiError::phone_in_use());
    }
    match state
        .store
        .set_user_phone(&user.id, Some(&phone), state.now_millis())
        .await
    {
        Ok(true) => {}
        Ok(false) => return Err(ApiError::invalid_token("the user no longer exists")),
        // Another user bound it between the check and the write.
        Err(StoreError::Conflict) => return Err(ApiError::phone_in_use()),
        Err(e) => return Err(e.into()),
    }
    super::sessions::profile_changed(state, &user.id).await;
    tracing::info!(user = %user.id, "phone number bound");
    let event = AuditEvent::PhoneBound {
        user: user.id.clone(),
        appid: appid.clone(),
        changed: user.phone.is_some(),
        country_code: phone.country_code().to_owned(),
    };
    audit::record(state, Actor::User(user.id.clone()), origin, event).await;
    Ok(User {
        phone: Some(phone),
        ..user
    })
}

/// `POST /v1/me/phone`: the signed-in user's number from a getPhoneNumber code or legacy
/// encrypted data, bound to the user.
pub async fn bind_for_user(
    state: &AppState,
    user: &UserId,
    appid: &AppId,
    source: PhoneSource,
    origin: &Origin,
) -> Result<User, ApiError> {
    let phone = match source {
        PhoneSource::Code(code) => fetch_phone(state, appid, &code).await?,
        PhoneSource::Encrypted { encrypted_data, iv } => {
            let opened =
                super::session_key::decrypt(state, user, appid, &encrypted_data, &iv).await?;
            phone_from_open_data(&opened.data)?
        }
    };
    let found = super::profile::load(state, user).await?;
    bind_phone(state, found, phone, appid, origin).await
}

/// Where `POST /v1/me/phone` reads the number from.
pub enum PhoneSource {
    Code(PhoneCode),
    Encrypted { encrypted_data: String, iv: String },
}
