//! `wxlogin sealing-key reseal | status`: every stored sealed value (identities' and login
//! tickets' session keys, signing keys' private halves, administrators' TOTP secrets, each app's
//! shared WeChat access token)
//! sealed again under the current sealing key, and counted by the key that sealed it.
//!
//! Safe while servers run and resumable: values are read a page at a time in key order and each
//! is replaced only while it is still the value read (compare and swap), so a session key a login
//! wrote meanwhile is never overwritten with an older one; a value under the current key already
//! is skipped, so a run that was killed is simply run again.

use std::collections::BTreeMap;

use crate::crypto::{SESSION_KEY_PURPOSE, SealedBy, SealingKey};
use crate::domain::{AdminName, AppId};
use crate::services::admins::TOTP_SECRET_PURPOSE;
use crate::services::wechat_tokens::{
    PURPOSE as ACCESS_TOKEN_PURPOSE, SharedAccessTokens, SharedReseal,
};
use crate::shared::SharedError;
use crate::store::{Store, StoreError};
use crate::tokens::SIGNING_KEY_PURPOSE;

/// Why a reseal or a count stopped.
#[derive(Debug, thiserror::Error)]
pub enum ResealError {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("shared state: {0}")]
    Shared(#[from] SharedError),
}

/// What a reseal did so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Sealed again under the current key.
    pub resealed: u64,
    /// Under the current key already.
    pub current: u64,
    /// Replaced by a server meanwhile (under the key it seals with).
    pub changed: u64,
    /// Opening with no configured key: left as they are.
    pub unreadable: u64,
    /// Shared tokens whose fetch lease an instance held: run again.
    pub busy: u64,
}

enum Item {
    Identity {
        appid: String,
        openid: String,
    },
    Ticket {
        hash: Vec<u8>,
        appid: String,
        openid: String,
    },
    SigningKey {
        kid: String,
    },
    AdminTotp {
        name: AdminName,
    },
}

impl Item {
    fn purpose(&self) -> &'static str {
        match self {
            Self::Identity { .. } | Self::Ticket { .. } => SESSION_KEY_PURPOSE,
            Self::SigningKey { .. } => SIGNING_KEY_PURPOSE,
            Self::AdminTotp { .. } => TOTP_SECRET_PURPOSE,
        }
    }

    fn context(&self) -> Vec<&str> {
        match self {
            Self::Identity { appid, openid } | Self::Ticket { appid, openid, .. } => {
                vec![appid, openid]
            }
            Self::SigningKey { kid } => vec![kid],
            Self::AdminTotp { name } => vec![name.as_str()],
        }
    }

    async fn replace(&self, store: &dyn Store, old: &[u8], new: &[u8]) -> Result<bool, StoreError> {
        match self {
            Self::Identity { appid, openid } => {
                store.reseal_identity_key(appid, openid, old, new).await
            }
            Self::Ticket { hash, .. } => store.reseal_ticket_key(hash, old, new).await,
            Self::SigningKey { kid } => store.reseal_signing_key(kid, old, new).await,
            Self::AdminTotp { name } => store.reseal_admin_totp_secret(name, old, new).await,
        }
    }
}

/// Where the walk over the stored values is.
enum Cursor {
    Identities(Option<(String, String)>),
    Tickets(Option<Vec<u8>>),
    SigningKeys,
    Admins,
    Done,
}

/// The next page of stored sealed values; empty once every table was walked.
async fn page(
    store: &dyn Store,
    cursor: &mut Cursor,
    limit: u32,
) -> Result<Vec<(Item, Vec<u8>)>, StoreError> {
    loop {
        match cursor {
            Cursor::Identities(after) => {
                let rows = store
                    .sealed_identity_keys(
                        after.as_ref().map(|(a, o)| (a.as_str(), o.as_str())),
                        limit,
                    )
                    .await?;
                let Some((appid, openid, _)) = rows.last() else {
                    *cursor = Cursor::Tickets(None);
                    continue;
                };
                *after = Some((appid.clone(), openid.clone()));
                return Ok(rows
                    .into_iter()
                    .map(|(appid, openid, sealed)| (Item::Identity { appid, openid }, sealed))
                    .collect());
            }
            Cursor::Tickets(after) => {
                let rows = store.sealed_ticket_keys(after.as_deref(), limit).await?;
                let Some((hash, ..)) = rows.last() else {
                    *cursor = Cursor::SigningKeys;
                    continue;
                };
                *after = Some(hash.clone());
                return Ok(rows
                    .into_iter()
                    .map(|(hash, appid, openid, sealed)| {
                        (
                            Item::Ticket {
                                hash,
                                appid,
                                openid,
                            },
                            sealed,
                        )
                    })
                    .collect());
            }
            Cursor::SigningKeys => {
                *cursor = Cursor::Admins;
                return Ok(store
                    .list_signing_keys()
                    .await?
                    .into_iter()
                    .map(|k| (Item::SigningKey { kid: k.kid }, k.sealed_private_key))
                    .collect());
            }
            // A handful of rows, read at once like the signing keys.
            Cursor::Admins => {
                *cursor = Cursor::Done;
                return Ok(store
                    .list_admins()
                    .await?
                    .into_iter()
                    .filter_map(|a| {
                        let sealed = a.sealed_totp_secret?;
                        Some((Item::AdminTotp { name: a.name }, sealed))
                    })
                    .collect());
            }
            Cursor::Done => return Ok(Vec::new()),
        }
    }
}

/// Seals every stored value again under the current key, `batch` values a page, telling
/// `progress` after each page.
pub async fn reseal(
    store: &dyn Store,
    sealing: &SealingKey,
    shared: Option<(&SharedAccessTokens, &[AppId])>,
    batch: u32,
    mut progress: impl FnMut(&Tally),
) -> Result<Tally, ResealError> {
    let mut tally = Tally::default();
    let mut cursor = Cursor::Identities(None);
    loop {
        let rows = page(store, &mut cursor, batch).await?;
        if rows.is_empty() && matches!(cursor, Cursor::Done) {
            break;
        }
        for (item, sealed) in rows {
            if sealing.is_current(&sealed) {
                tally.current += 1;
                continue;
            }
            let Ok(plain) = sealing.open_bytes(&sealed, item.purpose(), &item.context()) else {
                tally.unreadable += 1;
                continue;
            };
            let resealed = sealing.seal_bytes(&plain, item.purpose(), &item.context());
            if item.replace(store, &sealed, &resealed).await? {
                tally.resealed += 1;
            } else {
                tally.changed += 1;
            }
        }
        progress(&tally);
    }
    if let Some((tokens, apps)) = shared {
        for appid in apps {
            match tokens.reseal(appid).await? {
                SharedReseal::Absent => {}
                SharedReseal::Current => tally.current += 1,
                SharedReseal::Resealed => tally.resealed += 1,
                SharedReseal::Changed => tally.changed += 1,
                SharedReseal::Busy => tally.busy += 1,
                SharedReseal::Unreadable => tally.unreadable += 1,
            }
        }
        progress(&tally);
    }
    Ok(tally)
}

/// Which configured key a census row is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRole {
    Current,
    Previous,
    /// Not configured: the values do not open (`unreadable`), or a key id nobody listed.
    Unknown,
}

impl KeyRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Current => "current",
            Self::Previous => "previous",
            Self::Unknown => "unknown",
        }
    }
}

/// One line of `sealing-key status`: a key id (or `unreadable`), which key it is, and how many
/// values it sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CensusRow {
    pub label: String,
    pub role: KeyRole,
    pub values: u64,
}

/// The census as rows: the current key first, then the previous ones (each even when it sealed
/// nothing), then whatever else was counted.
pub fn census_rows(sealing: &SealingKey, counts: &BTreeMap<String, u64>) -> Vec<CensusRow> {
    let current = sealing.key_id().to_string();
    let previous: Vec<String> = sealing
        .previous_key_ids()
        .iter()
        .map(ToString::to_string)
        .collect();
    let mut rows = vec![CensusRow {
        label: current.clone(),
        role: KeyRole::Current,
        values: 0,
    }];
    for id in &previous {
        rows.push(CensusRow {
            label: id.clone(),
            role: KeyRole::Previous,
            values: 0,
        });
    }
    for (label, n) in counts {
        let id = label.split(' ').next().unwrap_or_default();
        match rows.iter_mut().find(|row| &row.label == label) {
            Some(row) => row.values += n,
            None => {
                let role = if id == current {
                    KeyRole::Current
                } else if previous.iter().any(|p| p == id) {
                    KeyRole::Previous
                } else {
                    KeyRole::Unknown
                };
                rows.push(CensusRow {
                    label: label.clone(),
                    role,
                    values: *n,
                });
            }
        }
    }
    rows
}

/// How many values are not sealed under the current key yet (a previous key is still needed
/// while this is not zero).
pub fn behind(rows: &[CensusRow]) -> u64 {
    rows.iter()
        .filter(|row| row.role != KeyRole::Current || row.label.contains(' '))
        .map(|row| row.values)
        .sum()
}

/// How many stored values each key sealed: the key id (16 hex digits), `<id> (no key id)` for
/// values written before key ids (by the key that opens them), `unreadable` for values no
/// configured key opens.
pub async fn census(
    store: &dyn Store,
    sealing: &SealingKey,
    shared: Option<(&SharedAccessTokens, &[AppId])>,
) -> Result<BTreeMap<String, u64>, ResealError> {
    let mut counts = BTreeMap::new();
    let mut count = |label: String| *counts.entry(label).or_insert(0) += 1;
    let label = |sealed: &[u8], purpose: &str, context: &[&str]| match SealingKey::sealed_by(sealed)
    {
        SealedBy::Key(id) => id.to_string(),
        SealedBy::Unnamed => match sealing.open_bytes_with_id(sealed, purpose, context) {
            Ok((_, id)) => format!("{id} (no key id)"),
            Err(_) => "unreadable".to_owned(),
        },
        SealedBy::Malformed => "unreadable".to_owned(),
    };
    let mut cursor = Cursor::Identities(None);
    loop {
        let rows = page(store, &mut cursor, 1000).await?;
        if rows.is_empty() && matches!(cursor, Cursor::Done) {
            break;
        }
        for (item, sealed) in rows {
            count(label(&sealed, item.purpose(), &item.context()));
        }
    }
    if let Some((tokens, apps)) = shared {
        for appid in apps {
            if let Some(sealed) = tokens.sealed(appid).await? {
                count(label(&sealed, ACCESS_TOKEN_PURPOSE, &[appid.as_str()]));
            }
        }
    }
    Ok(counts)
}
