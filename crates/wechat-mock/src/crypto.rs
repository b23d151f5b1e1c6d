//! The cryptography WeChat applies to a user's data: login-state signatures, rawData signatures and
//! open-data encryption (wechat-api.md §3, §7, §8).

use aes::cipher::{BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha1::{Digest, Sha1};
use sha2::Sha256;

/// The login-state signature of `message`: lowercase hex HMAC-SHA256 keyed with the **text** of the
/// session_key (its 24 base64 characters, not the decoded bytes). For checksession and
/// resetusersessionkey the message is empty.
pub fn login_state_signature(session_key: &str, message: &[u8]) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(session_key.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// The rawData signature: lowercase hex SHA-1 of `raw_data` followed by the session_key text.
pub fn raw_data_signature(session_key: &str, raw_data: &str) -> String {
    let mut hasher = Sha1::new();
    hasher.update(raw_data.as_bytes());
    hasher.update(session_key.as_bytes());
    hex::encode(hasher.finalize())
}

/// A session_key that does not decode to 16 bytes (only possible for keys not made here).
#[derive(Debug, thiserror::Error)]
#[error("the session_key is not base64 of 16 bytes")]
pub struct BadSessionKey;

/// Encrypts open data as WeChat does: AES-128-CBC, PKCS#7, key = base64-decoded session_key, a random
/// IV. Returns standard base64 `(encrypted_data, iv)`.
pub fn encrypt_open_data(
    session_key: &str,
    plaintext: &[u8],
) -> Result<(String, String), BadSessionKey> {
    let mut iv = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut iv);
    let data = encrypt_with_iv(session_key, &iv, plaintext)?;
    Ok((data, STANDARD.encode(iv)))
}

fn encrypt_with_iv(
    session_key: &str,
    iv: &[u8; 16],
    plaintext: &[u8],
) -> Result<String, BadSessionKey> {
    let key = STANDARD.decode(session_key).map_err(|_| BadSessionKey)?;
    let cipher =
        cbc::Encryptor::<aes::Aes128>::new_from_slices(&key, iv).map_err(|_| BadSessionKey)?;
    Ok(STANDARD.encode(cipher.encrypt_padded_vec_mut::<Pkcs7>(plaintext)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vectors() -> serde_json::Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/wechat-vectors.json"
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn login_state_signature_matches_the_official_example_tv3() {
        let v = vectors();
        let tv3 = &v["tv3_login_state_hmac_sha256"];
        let key = tv3["session_key"].as_str().unwrap();
        let message = tv3["message"].as_str().unwrap();
        assert_eq!(
            login_state_signature(key, message.as_bytes()),
            tv3["expected_signature"].as_str().unwrap()
        );
    }

    #[test]
    fn login_state_signature_of_empty_message_matches_the_derived_checksession_values() {
        let v = vectors();
        let derived = &v["derived_not_from_wechat"];
        let tv3_key = v["tv3_login_state_hmac_sha256"]["session_key"]
            .as_str()
            .unwrap();
        let tv1_key = v["tv1_wxbizdatacrypt_decrypt"]["session_key"]
            .as_str()
            .unwrap();
        assert_eq!(
            login_state_signature(tv3_key, b""),
            derived["checksession_sig_for_tv3_key"].as_str().unwrap()
        );
        assert_eq!(
            login_state_signature(tv1_key, b""),
            derived["checksession_sig_for_tv1_key"].as_str().unwrap()
        );
    }

    #[test]
    fn raw_data_signature_matches_the_official_example_tv2() {
        let v = vectors();
        let tv2 = &v["tv2_rawdata_sha1_signature"];
        assert_eq!(
            raw_data_signature(
                tv2["session_key"].as_str().unwrap(),
                tv2["raw_data"].as_str().unwrap()
            ),
            tv2["expected_signature"].as_str().unwrap()
        );
    }

    #[test]
    fn encryption_reproduces_the_official_demo_ciphertext_tv1() {
        let v = vectors();
        let tv1 = &v["tv1_wxbizdatacrypt_decrypt"];
        let iv: [u8; 16] = STANDARD
            .decode(tv1["iv"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let encrypted = encrypt_with_iv(
            tv1["session_key"].as_str().unwrap(),
            &iv,
            tv1["expected_plaintext"].as_str().unwrap().as_bytes(),
        )
        .unwrap();
        assert_eq!(encrypted, tv1["encrypted_data"].as_str().unwrap());
    }

    #[test]
    fn encryption_rejects_a_key_that_is_not_16_bytes() {
        assert!(encrypt_open_data("not base64!", b"{}").is_err());
        assert!(encrypt_open_data("AAAA", b"{}").is_err());
    }
}
