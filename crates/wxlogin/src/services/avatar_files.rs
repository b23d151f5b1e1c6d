//! Avatars from before they were kept in the database: files named like the images
//! (`<sha256 hex>.<png|jpg|webp>`) under `<server.data_dir>/avatars`. `serve` and `migrate` import
//! the files that a user still points at and that the database does not hold yet, so an upgraded
//! deployment keeps its avatars. Each instance had files of its own, so each imports what it has
//! when it starts; running it again finds nothing left to do.
//!
//! The files are read, never written, moved or deleted: once every instance has started, the
//! operator may remove the directory. A file that cannot be read, is larger than
//! `server.avatar_max_bytes`, is not a PNG, JPEG or WebP of the format its name says, or does not
//! hash to its name is logged and skipped; start-up carries on and the avatar stays unserved.

use std::path::Path;

use crate::config::Settings;
use crate::store::{Avatar, Store, StoreError};

use super::profile::{ImageKind, avatar_name, avatars_dir, parse_avatar_name};

/// Names asked of the database at a time.
const BATCH: u32 = 100;

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AvatarImport {
    /// Files stored in the database.
    pub imported: usize,
    /// Names with no file in this instance's directory (another instance's, or lost).
    pub absent: usize,
    /// Files that could not be imported (each logged).
    pub skipped: usize,
}

/// Imports the avatar files of `<server.data_dir>/avatars` that users still point at. Only the
/// database can fail it; a file never does.
pub async fn import(
    store: &dyn Store,
    settings: &Settings,
    now: i64,
) -> Result<AvatarImport, StoreError> {
    let dir = avatars_dir(settings);
    let mut report = AvatarImport::default();
    let mut after = String::new();
    loop {
        let names = store.avatars_without_image(&after, BATCH).await?;
        let Some(last) = names.last() else {
            break;
        };
        after = last.clone();
        for name in names {
            match read_file(&dir, &name, settings.server.avatar_max_bytes, now).await {
                Ok(Some(avatar)) => {
                    if store.import_avatar(&avatar).await? {
                        report.imported += 1;
                    }
                }
                Ok(None) => report.absent += 1,
                Err(why) => {
                    report.skipped += 1;
                    tracing::warn!(avatar = %name, dir = %dir.display(), "avatar file not imported: {why}");
                }
            }
        }
    }
    if report.imported > 0 || report.skipped > 0 {
        tracing::info!(
            dir = %dir.display(),
            imported = report.imported,
            skipped = report.skipped,
            absent = report.absent,
            "avatar files imported into the database; the files are no longer read"
        );
    } else if report.absent > 0 {
        tracing::info!(
            dir = %dir.display(),
            absent = report.absent,
            "users point at avatars that are neither in the database nor in this instance's \
             directory; another instance may still import them"
        );
    }
    Ok(report)
}

/// The image of a legacy file: `Ok(None)` when there is no such file, `Err(why)` when there is
/// one that cannot be imported.
async fn read_file(
    dir: &Path,
    name: &str,
    max_bytes: usize,
    now: i64,
) -> Result<Option<Avatar>, String> {
    // The name comes from the database: only a well-formed one is ever joined to a path.
    let Some(kind) = parse_avatar_name(name) else {
        return Err("the stored name is malformed".to_owned());
    };
    let path = dir.join(name);
    let metadata = match tokio::fs::metadata(&path).await {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read it: {e}")),
    };
    if !metadata.is_file() {
        return Err("not a regular file".to_owned());
    }
    if metadata.len() > max_bytes as u64 {
        return Err(format!(
            "{} bytes, over server.avatar_max_bytes ({max_bytes})",
            metadata.len()
        ));
    }
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| format!("cannot read it: {e}"))?;
    if bytes.len() > max_bytes {
        return Err(format!(
            "{} bytes, over server.avatar_max_bytes ({max_bytes})",
            bytes.len()
        ));
    }
    if ImageKind::sniff(&bytes) != Some(kind) {
        return Err(format!(
            "not a {} image",
            kind.extension().to_ascii_uppercase()
        ));
    }
    if avatar_name(kind, &bytes) != name {
        return Err("its content does not match its name".to_owned());
    }
    Ok(Some(Avatar {
        name: name.to_owned(),
        content_type: kind.content_type().to_owned(),
        bytes,
        created_at: now,
    }))
}
