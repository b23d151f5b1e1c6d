//! The signed-in user's profile: nickname rules, avatars (sniffed, content-addressed, stored in
//! the database) and the public URL of an avatar.
//!
//! Avatars are named `<sha256 hex>.<png|jpg|webp>`, so two users who upload the same image share
//! one stored image. A replaced avatar's image is deleted, in the same transaction, when no user
//! references it any more (`Store::replace_avatar`), so every instance on one database serves
//! every avatar and none needs a lock of its own.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::config::Settings;
use crate::domain::{AppId, UserId};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{Avatar, User};

use super::audit::{self, Actor, AuditEvent, Origin, ProfileField};

/// Longest nickname, in Unicode scalar values, after trimming.
pub const NICKNAME_MAX_CHARS: usize = 64;

/// The image formats accepted as avatars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    Png,
    Jpeg,
    Webp,
}

impl ImageKind {
    /// The format by its magic bytes; the declared content type is never trusted.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Self::Png)
        } else if bytes.starts_with(b"\xFF\xD8\xFF") {
            Some(Self::Jpeg)
        } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
            Some(Self::Webp)
        } else {
            None
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpg",
            Self::Webp => "webp",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Webp => "image/webp",
        }
    }

    fn from_extension(extension: &str) -> Option<Self> {
        match extension {
            "png" => Some(Self::Png),
            "jpg" => Some(Self::Jpeg),
            "webp" => Some(Self::Webp),
            _ => None,
        }
    }
}

/// The format of a stored avatar's file name: 64 lowercase hex digits, a dot and a known
/// extension. Anything else (path separators, dots, temp files) is `None`.
pub fn parse_avatar_name(name: &str) -> Option<ImageKind> {
    let (hash, extension) = name.split_once('.')?;
    let hex = hash.len() == 64
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !hex {
        return None;
    }
    ImageKind::from_extension(extension)
}

/// The public URL of a stored avatar, `{public_url}/v1/avatars/{name}`.
pub fn avatar_url(settings: &Settings, avatar: Option<&str>) -> Option<String> {
    avatar.map(|name| format!("{}/v1/avatars/{name}", settings.public_url()))
}

/// Where avatar files lived before avatars were kept in the database (`avatar_import`).
pub fn avatars_dir(settings: &Settings) -> PathBuf {
    settings.server.data_dir.join("avatars")
}

/// Characters that are not control characters (category Cc) but still have no place in a name:
/// invisible spaces, direction overrides and isolates, line and paragraph separators, the BOM.
/// The zero-width joiner and non-joiner stay allowed (emoji sequences and some scripts need them).
fn is_harmful_format_char(c: char) -> bool {
    matches!(c,
        '\u{00AD}'
        | '\u{061C}'
        | '\u{180E}'
        | '\u{200B}'
        | '\u{200E}'..='\u{200F}'
        | '\u{2028}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}'
        | '\u{FEFF}'
        | '\u{FFF9}'..='\u{FFFB}')
}

/// Checks a nickname and returns it trimmed: 1–64 characters after trimming, no control or
/// harmful invisible characters.
pub fn validate_nickname(raw: &str) -> Result<String, ApiError> {
    let nickname = raw.trim();
    if nickname.is_empty() {
        return Err(ApiError::invalid_request(
            "`nickname` must not be empty (send null to clear it)",
        ));
    }
    if nickname.chars().count() > NICKNAME_MAX_CHARS {
        return Err(ApiError::invalid_request(format!(
            "`nickname` is longer than {NICKNAME_MAX_CHARS} characters"
        )));
    }
    if nickname
        .chars()
        .any(|c| c.is_control() || is_harmful_format_char(c))
    {
        return Err(ApiError::invalid_request(
            "`nickname` contains control or invisible formatting characters",
        ));
    }
    if nickname
        .chars()
        .all(|c| matches!(c, '\u{200C}' | '\u{200D}'))
    {
        return Err(ApiError::invalid_request(
            "`nickname` has no visible character",
        ));
    }
    Ok(nickname.to_owned())
}

/// The signed-in user's record.
pub async fn load(state: &AppState, user: &UserId) -> Result<User, ApiError> {
    state
        .store
        .get_user(user)
        .await?
        .ok_or_else(|| ApiError::invalid_token("the user no longer exists"))
}

/// `PATCH /v1/me`: sets the nickname (already checked by `validate_nickname`) or clears it.
pub async fn set_nickname(
    state: &AppState,
    user: &UserId,
    nickname: Option<&str>,
    appid: &AppId,
    origin: &Origin,
) -> Result<User, ApiError> {
    if !state
        .store
        .set_nickname(user, nickname, state.now_millis())
        .await?
    {
        return Err(ApiError::invalid_token("the user no longer exists"));
    }
    super::sessions::profile_changed(state, user).await;
    let event = AuditEvent::ProfileChanged {
        user: user.clone(),
        appid: appid.clone(),
        field: ProfileField::Nickname,
        cleared: nickname.is_none(),
    };
    audit::record(state, Actor::User(user.clone()), origin, event).await;
    load(state, user).await
}

/// The stored name of an image: its SHA-256 in lowercase hex and its format's extension.
pub fn avatar_name(kind: ImageKind, bytes: &[u8]) -> String {
    format!(
        "{}.{}",
        hex::encode(Sha256::digest(bytes)),
        kind.extension()
    )
}

/// `PUT /v1/me/avatar`: stores the image under its content hash and points the user at it; the
/// previous image goes when nobody else uses it. On any failure nothing changes.
pub async fn set_avatar(
    state: &AppState,
    user: &UserId,
    bytes: &[u8],
    appid: &AppId,
    origin: &Origin,
) -> Result<User, ApiError> {
    let kind = ImageKind::sniff(bytes).ok_or_else(|| {
        ApiError::unsupported_media_type("the avatar must be a PNG, JPEG or WebP image")
    })?;
    let now = state.now_millis();
    let avatar = Avatar {
        name: avatar_name(kind, bytes),
        content_type: kind.content_type().to_owned(),
        bytes: bytes.to_vec(),
        created_at: now,
    };
    if state
        .store
        .replace_avatar(user, Some(&avatar), now)
        .await?
        .is_none()
    {
        return Err(ApiError::invalid_token("the user no longer exists"));
    }
    super::sessions::profile_changed(state, user).await;
    let event = AuditEvent::ProfileChanged {
        user: user.clone(),
        appid: appid.clone(),
        field: ProfileField::Avatar,
        cleared: false,
    };
    audit::record(state, Actor::User(user.clone()), origin, event).await;
    load(state, user).await
}

/// `GET /v1/avatars/{name}`: the image and its format; `not_found` for any other name.
pub async fn read_avatar(state: &AppState, name: &str) -> Result<(ImageKind, Vec<u8>), ApiError> {
    let kind = parse_avatar_name(name).ok_or_else(ApiError::not_found)?;
    let avatar = state
        .store
        .get_avatar(name)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok((kind, avatar.bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_the_three_formats_only() {
        assert_eq!(
            ImageKind::sniff(b"\x89PNG\r\n\x1a\nrest"),
            Some(ImageKind::Png)
        );
        assert_eq!(ImageKind::sniff(b"\xFF\xD8\xFF\xE0"), Some(ImageKind::Jpeg));
        assert_eq!(
            ImageKind::sniff(b"RIFF\x10\0\0\0WEBPVP8 "),
            Some(ImageKind::Webp)
        );
        assert_eq!(ImageKind::sniff(b"RIFF\x10\0\0\0WAVE"), None);
        assert_eq!(ImageKind::sniff(b"GIF89a"), None);
        assert_eq!(ImageKind::sniff(b""), None);
    }

    #[test]
    fn avatar_names_are_strict() {
        let hash = "a".repeat(64);
        assert_eq!(
            parse_avatar_name(&format!("{hash}.png")),
            Some(ImageKind::Png)
        );
        assert_eq!(
            parse_avatar_name(&format!("{hash}.webp")),
            Some(ImageKind::Webp)
        );
        for bad in [
            format!("{hash}.gif"),
            format!("{hash}.png.png"),
            format!("{}.png", "A".repeat(64)),
            format!("{}.png", "a".repeat(63)),
            "../x".to_owned(),
            format!("../{}.png", "a".repeat(61)),
            ".upload-0".to_owned(),
            hash,
        ] {
            assert_eq!(parse_avatar_name(&bad), None, "{bad}");
        }
    }

    #[test]
    fn nickname_rules() {
        assert_eq!(validate_nickname("  阿明 ").unwrap(), "阿明");
        assert_eq!(
            validate_nickname(&"字".repeat(64)).unwrap(),
            "字".repeat(64)
        );
        assert_eq!(
            validate_nickname("👨\u{200D}👩\u{200D}👧").unwrap(),
            "👨\u{200D}👩\u{200D}👧"
        );
        for bad in [
            String::new(),
            "   ".to_owned(),
            "\u{3000}".to_owned(),
            "a".repeat(65),
            "a\u{0}b".to_owned(),
            "a\nb".to_owned(),
            "a\u{7f}".to_owned(),
            "a\u{200B}b".to_owned(),
            "\u{202E}evil".to_owned(),
            "a\u{FEFF}".to_owned(),
            "\u{200D}".to_owned(),
        ] {
            let e = validate_nickname(&bad).unwrap_err();
            assert_eq!(e.code, crate::error::ErrorCode::InvalidRequest);
            assert!(e.message.contains("`nickname`"), "{}", e.message);
        }
    }
}
