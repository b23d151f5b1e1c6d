//! A `wx.login` code is exchanged with WeChat once, whatever it is presented for (login,
//! `POST /v1/wechat/session`) and whichever instance receives it: every use goes through the code
//! claims of the shared state and their single flight ([`crate::shared::CodeExchanges`]), keyed by
//! the code's [`exchange_key`].

use sha2::{Digest, Sha256};

use crate::domain::{AppId, LoginCode};

/// The single-flight key of a code: SHA-256 of the appid and the code.
pub(crate) fn exchange_key(appid: &AppId, code: &LoginCode) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(appid.as_str().as_bytes());
    hasher.update([0]);
    hasher.update(code.as_str().as_bytes());
    hasher.finalize().into()
}
