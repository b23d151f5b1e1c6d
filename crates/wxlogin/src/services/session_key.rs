//! WeChat session utilities for the signed-in user: decrypt open data and check rawData signatures
//! with the stored session_key, replace that key with a fresh `wx.login` code, and ask WeChat whether
//! it is still current.

use std::time::Duration;

use futures::FutureExt as _;

use super::exchange::exchange_key;
use crate::crypto::{OpenData, OpenDataError, open_open_data, verify_raw_data_signature};
use crate::domain::{AppId, LoginCode, SessionKey, UserId};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::Identity;
use crate::wechat::with_access_token;

/// The user's identity in `appid`. A live session always has one; its absence is a bug.
async fn identity(state: &AppState, user: &UserId, appid: &AppId) -> Result<Identity, ApiError> {
    state
        .store
        .find_identity_by_user(user, appid)
        .await?
        .ok_or_else(|| ApiError::internal(&"a signed-in user has no identity in the token's app"))
}

/// The identity and its session_key, unsealed. Read on every call, never from the session cache:
/// the session_key changes at every login of the identity and every `POST /v1/wechat/session`,
/// possibly on another instance a moment before (a mini program calls `wx.login`, then sends the
/// data WeChat encrypted under the new key), and a remembered key would not open that data.
async fn session_key(
    state: &AppState,
    user: &UserId,
    appid: &AppId,
) -> Result<(Identity, SessionKey), ApiError> {
    let identity = identity(state, user, appid).await?;
    let key = state
        .sealing
        .open(
            &identity.sealed_session_key,
            appid.as_str(),
            identity.openid.as_str(),
        )
        .map_err(|e| ApiError::internal(&format!("stored session_key: {e}")))?;
    Ok((identity, key))
}

fn open_data_error(e: OpenDataError, max_age_secs: u64) -> ApiError {
    match e {
        OpenDataError::Base64 { field } => {
            ApiError::invalid_request(format!("`{field}` is not valid base64"))
        }
        OpenDataError::IvLength => ApiError::invalid_request("`iv` must decode to 16 bytes"),
        OpenDataError::CiphertextLength => ApiError::invalid_request(
            "`encrypted_data` must decode to a non-empty multiple of 16 bytes",
        ),
        // Wrong padding or garbage plaintext: the data was encrypted with another session_key.
        OpenDataError::Decrypt | OpenDataError::NotJson => ApiError::stale_session_key(),
        OpenDataError::MissingWatermark => {
            ApiError::invalid_request("the decrypted data has no valid `watermark`")
        }
        OpenDataError::WatermarkAppid => {
            ApiError::watermark_mismatch("the data's watermark belongs to another appid")
        }
        OpenDataError::WatermarkTooOld => ApiError::watermark_mismatch(format!(
            "the data's watermark is more than {max_age_secs} s away from now"
        )),
    }
}

/// `POST /v1/wechat/decrypt`: open data of the caller's app, checked against its watermark.
pub async fn decrypt(
    state: &AppState,
    user: &UserId,
    appid: &AppId,
    encrypted_data: &str,
    iv: &str,
) -> Result<OpenData, ApiError> {
    let (_, key) = session_key(state, user, appid).await?;
    let max_age_secs = state.settings.wechat.open_data_max_age_secs;
    open_open_data(
        &key,
        encrypted_data,
        iv,
        appid.as_str(),
        Some(Duration::from_secs(max_age_secs)),
        state.now_secs(),
    )
    .map_err(|e| open_data_error(e, max_age_secs))
}

/// `POST /v1/wechat/verify-signature`: `signature == sha1(raw_data + session_key)`.
pub async fn verify_signature(
    state: &AppState,
    user: &UserId,
    appid: &AppId,
    raw_data: &str,
    signature: &str,
) -> Result<bool, ApiError> {
    let (_, key) = session_key(state, user, appid).await?;
    Ok(verify_raw_data_signature(&key, raw_data, signature))
}

/// `POST /v1/wechat/session`: exchanges a fresh `wx.login` code (once, through the same
/// single-flight and replay guard as login) and stores its session_key, if the code is the
/// caller's.
pub async fn refresh_session_key(
    state: &AppState,
    user: &UserId,
    appid: &AppId,
    code: LoginCode,
) -> Result<(), ApiError> {
    let app = state.apps.get(appid).ok_or_else(ApiError::unknown_app)?;
    let identity = identity(state, user, appid).await?;
    let key = exchange_key(appid, &code);
    let work = {
        let state = state.clone();
        let appid = appid.clone();
        let secret = app.secret.clone();
        async move {
            let session = state.wechat.code2session(&appid, &secret, &code).await?;
            if session.openid != identity.openid {
                tracing::warn!(user = %identity.user_id, appid = %appid, "a session code of another WeChat user");
                return Err(ApiError::identity_mismatch());
            }
            super::unionid::check_backfill(&state, &identity, session.unionid.as_ref())
                .await?;
            let sealed = state.sealing.seal(
                &session.session_key,
                appid.as_str(),
                session.openid.as_str(),
            );
            state
                .store
                .record_identity_login(
                    &appid,
                    &session.openid,
                    session.unionid.as_ref(),
                    &sealed,
                    state.now_millis(),
                )
                .await?;
            super::sessions::identity_changed(&state, &identity.user_id);
            tracing::info!(user = %identity.user_id, appid = %appid, "stored a new session_key");
            Ok(())
        }
        .boxed()
    };
    state.code_exchanges.run(key, work).await
}

/// `GET /v1/wechat/session`: whether WeChat still takes the stored session_key (checkSessionKey).
pub async fn check_session_key(
    state: &AppState,
    user: &UserId,
    appid: &AppId,
) -> Result<bool, ApiError> {
    let (identity, key) = session_key(state, user, appid).await?;
    let wechat = &state.wechat;
    let (openid, key) = (&identity.openid, &key);
    let valid = with_access_token(&state.wechat_tokens, appid, move |token| async move {
        wechat.check_session_key(&token, openid, key).await
    })
    .await?;
    Ok(valid)
}
