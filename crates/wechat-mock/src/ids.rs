//! Identifiers in the shapes WeChat uses (wechat-api.md §13): openids, unionids, codes, session keys,
//! access tokens and request ids.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::Rng;
use rand::distributions::{Alphanumeric, DistString};
use sha2::{Digest, Sha256};

/// The openid of `user` in the mini program `appid`: 28 characters of `[0-9A-Za-z_-]` starting with
/// `o`, the same on every run so tests can predict it.
///
/// Like real openids of one app, those of one appid share their first characters.
pub fn openid_for(appid: &str, user: &str) -> String {
    derived_id("openid", appid, user)
}

/// The unionid of `user` under the open platform account `open_platform`: 28 characters starting with
/// `o`, shared by every app bound to that account.
pub fn unionid_for(open_platform: &str, user: &str) -> String {
    derived_id("unionid", open_platform, user)
}

fn derived_id(kind: &str, scope: &str, user: &str) -> String {
    let prefix = digest(&[kind.as_bytes(), scope.as_bytes()]);
    let body = digest(&[kind.as_bytes(), scope.as_bytes(), user.as_bytes()]);
    let mut id = String::with_capacity(28);
    id.push('o');
    id.push_str(&prefix[..5]);
    id.push_str(&body[..22]);
    id
}

// Lengths prefix every part, so ("ab", "c") and ("a", "bc") differ.
fn digest(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"wechat-mock/v1");
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    URL_SAFE_NO_PAD.encode(hasher.finalize())
}

/// A wx.login code: 32 characters of `[0-9A-Za-z]`.
pub(crate) fn login_code() -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), 32)
}

/// A getPhoneNumber button code: 64 lowercase hex characters.
pub(crate) fn phone_code() -> String {
    let bytes: [u8; 32] = rand::thread_rng().r#gen();
    hex::encode(bytes)
}

/// A session_key: base64 of 16 random bytes (24 characters ending in `==`).
pub(crate) fn session_key() -> String {
    let bytes: [u8; 16] = rand::thread_rng().r#gen();
    STANDARD.encode(bytes)
}

/// An opaque access token in the shape of real ones: a numeric prefix, `_`, then URL-safe characters.
pub(crate) fn access_token() -> String {
    let bytes: [u8; 102] = {
        let mut b = [0u8; 102];
        rand::thread_rng().fill(&mut b[..]);
        b
    };
    format!("89_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// A request id as appended to errmsg: `%08x-%08x-%08x`, the first group being the Unix time.
pub(crate) fn rid(unix_secs: i64) -> String {
    let mut rng = rand::thread_rng();
    // Truncation is what WeChat's 32-bit field does too.
    let time = unix_secs as u32;
    format!(
        "{:08x}-{:08x}-{:08x}",
        time,
        rng.r#gen::<u32>(),
        rng.r#gen::<u32>()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_id_char(c: char) -> bool {
        c.is_ascii_alphanumeric() || c == '_' || c == '-'
    }

    #[test]
    fn openids_are_deterministic_and_shaped_like_real_ones() {
        let a = openid_for("wx0000000000000001", "alice");
        assert_eq!(a, openid_for("wx0000000000000001", "alice"));
        assert_eq!(a.len(), 28);
        assert!(a.starts_with('o'));
        assert!(a.chars().all(is_id_char), "{a}");
        assert_ne!(a, openid_for("wx0000000000000001", "bob"));
        assert_ne!(a, openid_for("wx0000000000000002", "alice"));
        assert_eq!(
            a[..6],
            openid_for("wx0000000000000001", "bob")[..6],
            "one app's openids share a prefix"
        );
    }

    #[test]
    fn unionids_differ_from_openids_and_between_platforms() {
        let u = unionid_for("demo", "alice");
        assert_eq!(u.len(), 28);
        assert!(u.starts_with('o'));
        assert!(u.chars().all(is_id_char));
        assert_ne!(u, openid_for("demo", "alice"));
        assert_ne!(u, unionid_for("other", "alice"));
        assert_ne!(unionid_for("ab", "c"), unionid_for("a", "bc"));
    }

    #[test]
    fn generated_values_have_the_documented_shapes() {
        let code = login_code();
        assert_eq!(code.len(), 32);
        assert!(code.chars().all(|c| c.is_ascii_alphanumeric()));
        let phone = phone_code();
        assert_eq!(phone.len(), 64);
        assert!(phone.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));
        let key = session_key();
        assert_eq!(key.len(), 24);
        assert!(key.ends_with("=="));
        let token = access_token();
        assert!(token.starts_with("89_"));
        assert!(token.len() > 130 && token.len() < 512);
        assert!(token.chars().all(is_id_char));
        let rid = rid(0x66c6_9111);
        assert!(rid.starts_with("66c69111-"), "{rid}");
        assert_eq!(rid.len(), 26);
    }
}
