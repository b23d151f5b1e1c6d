//! Decryption of WeChat open data (`encryptedData` + `iv`): userInfo, phone, WeRun, share info.

use std::time::Duration;

use aes::Aes128;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, KeyIvInit};
use serde::{Deserialize, Serialize};

use crate::domain::SessionKey;

/// Why open data could not be used. Never carries key material or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenDataError {
    #[error("{field} is not valid base64")]
    Base64 { field: &'static str },
    #[error("iv must decode to 16 bytes")]
    IvLength,
    #[error("encrypted_data must be a non-empty multiple of 16 bytes")]
    CiphertextLength,
    /// The padding is wrong: almost always a session_key that is no longer the one WeChat used.
    #[error("the data does not decrypt with this session_key")]
    Decrypt,
    #[error("the decrypted data is not a JSON object")]
    NotJson,
    #[error("the decrypted data has no valid watermark")]
    MissingWatermark,
    #[error("the watermark belongs to another appid")]
    WatermarkAppid,
    #[error("the watermark is older than the allowed maximum age")]
    WatermarkTooOld,
}

/// WeChat's stamp on every piece of open data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    pub appid: String,
    pub timestamp: i64,
}

/// Decrypted and checked open data: the JSON object without its watermark, and the watermark.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenData {
    pub data: serde_json::Map<String, serde_json::Value>,
    pub watermark: Watermark,
}

/// Longest base64 input accepted (WeChat's open data is a few KiB at most; WeRun is the largest).
const MAX_B64_LEN: usize = 256 * 1024;

fn decode_b64(field: &'static str, value: &str) -> Result<Vec<u8>, OpenDataError> {
    if value.len() > MAX_B64_LEN {
        return Err(OpenDataError::Base64 { field });
    }
    // A `+` sent in a form or query string arrives as a space: restore it, as WeChat's demos do.
    let restored: String = value
        .chars()
        .filter(|c| *c != '\n' && *c != '\r')
        .map(|c| if c == ' ' { '+' } else { c })
        .collect();
    STANDARD
        .decode(restored.as_bytes())
        .map_err(|_| OpenDataError::Base64 { field })
}

/// AES-128-CBC with strict PKCS#7, key = the 16 bytes of the session_key. Returns the plaintext bytes.
pub fn decrypt_open_data(
    session_key: &SessionKey,
    encrypted_data: &str,
    iv: &str,
) -> Result<Vec<u8>, OpenDataError> {
    let iv = decode_b64("iv", iv)?;
    let iv: [u8; 16] = iv.try_into().map_err(|_| OpenDataError::IvLength)?;
    let mut buf = decode_b64("encrypted_data", encrypted_data)?;
    if buf.is_empty() || buf.len() % 16 != 0 {
        return Err(OpenDataError::CiphertextLength);
    }
    let key = session_key.aes_key();
    let cipher = cbc::Decryptor::<Aes128>::new(&key.into(), &iv.into());
    let len = cipher
        .decrypt_padded_mut::<Pkcs7>(&mut buf)
        .map_err(|_| OpenDataError::Decrypt)?
        .len();
    buf.truncate(len);
    Ok(buf)
}

/// Decrypts open data and checks its watermark: the appid must be `appid`, and when `max_age` is
/// given the timestamp must be at most that old (and not more than `max_age` in the future either,
/// which catches a clock or a forged stamp far off).
pub fn open_open_data(
    session_key: &SessionKey,
    encrypted_data: &str,
    iv: &str,
    appid: &str,
    max_age: Option<Duration>,
    now_unix: i64,
) -> Result<OpenData, OpenDataError> {
    let plain = decrypt_open_data(session_key, encrypted_data, iv)?;
    let value: serde_json::Value =
        serde_json::from_slice(&plain).map_err(|_| OpenDataError::NotJson)?;
    let serde_json::Value::Object(mut data) = value else {
        return Err(OpenDataError::NotJson);
    };
    let watermark = data
        .remove("watermark")
        .and_then(|w| serde_json::from_value::<Watermark>(w).ok())
        .ok_or(OpenDataError::MissingWatermark)?;
    if watermark.appid != appid {
        return Err(OpenDataError::WatermarkAppid);
    }
    if let Some(max_age) = max_age {
        let max = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
        if now_unix.saturating_sub(watermark.timestamp).abs() > max {
            return Err(OpenDataError::WatermarkTooOld);
        }
    }
    Ok(OpenData { data, watermark })
}
