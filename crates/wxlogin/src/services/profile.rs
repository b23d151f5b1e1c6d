//! The signed-in user's profile: nickname rules, avatar files (sniffed, content-addressed, stored
//! under `<server.data_dir>/avatars`) and the public URL of an avatar.
//!
//! Avatar files are named `<sha256 hex>.<png|jpg|webp>`, so two users who upload the same image
//! share one file. A replaced avatar is deleted when no user references it any more. File moves,
//! the database update and that check run under one lease of the shared state (`avatar-files`), so
//! instances that share the state and one data directory never delete a file another one just
//! pointed a user at.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::config::Settings;
use crate::domain::UserId;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::User;

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

/// Where avatar files live.
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
) -> Result<User, ApiError> {
    if !state
        .store
        .set_nickname(user, nickname, state.now_millis())
        .await?
    {
        return Err(ApiError::invalid_token("the user no longer exists"));
    }
    load(state, user).await
}

/// One writer of avatar files at a time in this process (see the module notes).
/// The lease that serialises avatar file moves and deletions; it expires by itself if its holder
/// dies, long after any file operation would have finished.
const AVATAR_LEASE: &str = "avatar-files";
const AVATAR_LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(30);

fn io_error(what: &str, path: &Path, e: &std::io::Error) -> ApiError {
    ApiError::internal(&format!("{what} {}: {e}", path.display()))
}

/// `PUT /v1/me/avatar`: stores the image under its content hash, points the user at it and
/// removes the previous file when nobody else uses it. On any failure nothing changes.
pub async fn set_avatar(state: &AppState, user: &UserId, bytes: &[u8]) -> Result<User, ApiError> {
    let kind = ImageKind::sniff(bytes).ok_or_else(|| {
        ApiError::unsupported_media_type("the avatar must be a PNG, JPEG or WebP image")
    })?;
    let name = format!(
        "{}.{}",
        hex::encode(Sha256::digest(bytes)),
        kind.extension()
    );
    let dir = avatars_dir(&state.settings);
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| io_error("cannot create", &dir, &e))?;
    // Write next to the final place, then rename: a half-written file is never served.
    let temp = dir.join(format!(".upload-{:032x}", rand::random::<u128>()));
    let final_path = dir.join(&name);
    if let Err(e) = tokio::fs::write(&temp, bytes).await {
        let _ = tokio::fs::remove_file(&temp).await;
        return Err(io_error("cannot write", &temp, &e));
    }

    let lease = state
        .shared
        .leases
        .acquire(AVATAR_LEASE, AVATAR_LEASE_TTL)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "cannot take the avatar lease");
            ApiError::unavailable("cannot store the avatar right now; retry")
        });
    let lease = match lease {
        Ok(lease) => lease,
        Err(e) => {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(e);
        }
    };
    let placed = place_avatar(state, user, &dir, &temp, &final_path, &name).await;
    if let Err(e) = state.shared.leases.release(&lease).await {
        tracing::warn!(error = %e, "cannot release the avatar lease; it expires by itself");
    }
    placed?;
    load(state, user).await
}

/// Under the avatar lease: moves the upload into place, points the user at it and removes the
/// previous file when nobody else uses it.
async fn place_avatar(
    state: &AppState,
    user: &UserId,
    dir: &Path,
    temp: &Path,
    final_path: &Path,
    name: &str,
) -> Result<(), ApiError> {
    if let Err(e) = tokio::fs::rename(temp, final_path).await {
        let _ = tokio::fs::remove_file(temp).await;
        return Err(io_error("cannot move the upload to", final_path, &e));
    }
    let previous = match state
        .store
        .replace_avatar(user, Some(name), state.now_millis())
        .await
    {
        Ok(Some(previous)) => previous,
        Ok(None) => {
            remove_if_unused(state, dir, name).await;
            return Err(ApiError::invalid_token("the user no longer exists"));
        }
        Err(e) => {
            remove_if_unused(state, dir, name).await;
            return Err(e.into());
        }
    };
    if let Some(previous) = previous.filter(|p| *p != name) {
        remove_if_unused(state, dir, &previous).await;
    }
    Ok(())
}

/// Deletes an avatar file no user references. Failures are logged, not returned: the upload
/// itself succeeded, and an orphan file is harmless.
async fn remove_if_unused(state: &AppState, dir: &Path, name: &str) {
    if parse_avatar_name(name).is_none() {
        tracing::warn!("stored avatar name is malformed; not deleting it");
        return;
    }
    match state.store.count_users_with_avatar(name).await {
        Ok(0) => {}
        Ok(_) => return,
        Err(e) => {
            tracing::warn!(error = %e, "cannot check whether an avatar is still used; keeping it");
            return;
        }
    }
    let path = dir.join(name);
    match tokio::fs::remove_file(&path).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(error = %e, path = %path.display(), "cannot delete an unused avatar")
        }
    }
}

/// `GET /v1/avatars/{name}`: the file and its format; `not_found` for any other name.
pub async fn read_avatar(
    settings: &Settings,
    name: &str,
) -> Result<(ImageKind, Vec<u8>), ApiError> {
    let kind = parse_avatar_name(name).ok_or_else(ApiError::not_found)?;
    let path = avatars_dir(settings).join(name);
    match tokio::fs::read(&path).await {
        Ok(bytes) => Ok((kind, bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ApiError::not_found()),
        Err(e) => Err(io_error("cannot read", &path, &e)),
    }
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
