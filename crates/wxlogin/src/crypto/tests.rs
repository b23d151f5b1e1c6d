use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::domain::SessionKey;

const VECTORS: &str = include_str!("../../../../testdata/wechat-vectors.json");

fn vectors() -> serde_json::Value {
    serde_json::from_str(VECTORS).unwrap()
}

fn s<'a>(v: &'a serde_json::Value, path: &[&str]) -> &'a str {
    path.iter().fold(v, |v, k| &v[*k]).as_str().unwrap()
}

fn key(text: &str) -> SessionKey {
    SessionKey::parse(text).unwrap()
}

#[test]
fn tv1_official_demo_decrypts_byte_for_byte() {
    let v = vectors();
    let tv = &v["tv1_wxbizdatacrypt_decrypt"];
    let plain = decrypt_open_data(
        &key(s(tv, &["session_key"])),
        s(tv, &["encrypted_data"]),
        s(tv, &["iv"]),
    )
    .unwrap();
    assert_eq!(plain.len(), 393);
    assert_eq!(plain, s(tv, &["expected_plaintext"]).as_bytes());
}

#[test]
fn tv1_watermark_is_checked_and_split_off() {
    let v = vectors();
    let tv = &v["tv1_wxbizdatacrypt_decrypt"];
    let (k, data, iv) = (
        key(s(tv, &["session_key"])),
        s(tv, &["encrypted_data"]),
        s(tv, &["iv"]),
    );
    let opened = open_open_data(&k, data, iv, "wx4f4bc4dec97d474b", None, 0).unwrap();
    assert_eq!(opened.watermark.appid, "wx4f4bc4dec97d474b");
    assert_eq!(opened.watermark.timestamp, 1_477_314_187);
    assert_eq!(opened.data["nickName"], "Band");
    assert!(!opened.data.contains_key("watermark"));

    let other = open_open_data(&k, data, iv, "wx0000000000000001", None, 0);
    assert_eq!(other.unwrap_err(), OpenDataError::WatermarkAppid);

    let day = Duration::from_secs(86_400);
    let fresh = open_open_data(
        &k,
        data,
        iv,
        "wx4f4bc4dec97d474b",
        Some(day),
        1_477_314_187 + 60,
    );
    assert!(fresh.is_ok());
    let stale = open_open_data(
        &k,
        data,
        iv,
        "wx4f4bc4dec97d474b",
        Some(day),
        1_477_314_187 + 86_401,
    );
    assert_eq!(stale.unwrap_err(), OpenDataError::WatermarkTooOld);
}

#[test]
fn tv1_spaces_in_base64_are_restored_to_plus() {
    let v = vectors();
    let tv = &v["tv1_wxbizdatacrypt_decrypt"];
    let spaced = s(tv, &["encrypted_data"]).replace('+', " ");
    assert_ne!(spaced, s(tv, &["encrypted_data"]));
    let plain = decrypt_open_data(&key(s(tv, &["session_key"])), &spaced, s(tv, &["iv"])).unwrap();
    assert_eq!(plain, s(tv, &["expected_plaintext"]).as_bytes());
}

#[test]
fn tv1_tampering_is_a_typed_error() {
    let v = vectors();
    let tv = &v["tv1_wxbizdatacrypt_decrypt"];
    let k = key(s(tv, &["session_key"]));
    let (data, iv) = (s(tv, &["encrypted_data"]), s(tv, &["iv"]));
    // easywechat's negative case: four characters prefixed to the ciphertext.
    let prefixed = format!("aaaa{data}");
    assert!(decrypt_open_data(&k, &prefixed, iv).is_err());
    assert_eq!(
        decrypt_open_data(&k, &data[..data.len() - 4], iv).unwrap_err(),
        OpenDataError::CiphertextLength
    );
    assert_eq!(
        decrypt_open_data(&k, "not base64!", iv).unwrap_err(),
        OpenDataError::Base64 {
            field: "encrypted_data"
        }
    );
    assert_eq!(
        decrypt_open_data(&k, data, "AAAA").unwrap_err(),
        OpenDataError::IvLength
    );
    let wrong_key = key("o0q0otL8aEzpcZL/FT9WsQ==");
    let err = open_open_data(&wrong_key, data, iv, "wx4f4bc4dec97d474b", None, 0).unwrap_err();
    assert!(matches!(
        err,
        OpenDataError::Decrypt | OpenDataError::NotJson
    ));
}

#[test]
fn tv2_raw_data_signature() {
    let v = vectors();
    let tv = &v["tv2_rawdata_sha1_signature"];
    let k = key(s(tv, &["session_key"]));
    let raw = s(tv, &["raw_data"]);
    let sig = s(tv, &["expected_signature"]);
    assert!(verify_raw_data_signature(&k, raw, sig));
    assert!(verify_raw_data_signature(&k, raw, &sig.to_uppercase()));
    assert!(!verify_raw_data_signature(&k, &format!("{raw} "), sig));
    assert!(!verify_raw_data_signature(&k, raw, &sig[..38]));
    assert!(!verify_raw_data_signature(&k, raw, "zz"));
}

#[test]
fn tv3_login_state_hmac_and_derived_checksession_signatures() {
    let v = vectors();
    let tv = &v["tv3_login_state_hmac_sha256"];
    let k = key(s(tv, &["session_key"]));
    let msg = s(tv, &["message"]).as_bytes();
    assert_eq!(
        login_state_signature(&k, msg),
        s(tv, &["expected_signature"])
    );
    assert!(verify_login_state_signature(
        &k,
        msg,
        s(tv, &["expected_signature"])
    ));
    let derived = &v["derived_not_from_wechat"];
    assert_eq!(
        login_state_signature(&k, b""),
        s(derived, &["checksession_sig_for_tv3_key"])
    );
    let tv1_key = key(s(&v, &["tv1_wxbizdatacrypt_decrypt", "session_key"]));
    assert_eq!(
        login_state_signature(&tv1_key, b""),
        s(derived, &["checksession_sig_for_tv1_key"])
    );
}

#[test]
fn vectors_copy_matches_the_shared_original_when_present() {
    let shared = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/testdata/wechat-vectors.json"
    );
    if let Ok(original) = std::fs::read_to_string(shared) {
        assert_eq!(
            original, VECTORS,
            "testdata/wechat-vectors.json drifted from shared/"
        );
    }
}

#[test]
fn sealed_session_key_opens_only_for_its_identity_and_key() {
    let sealing = SealingKey::parse(&SealingKey::generate_base64()).unwrap();
    let k = key("tiihtNczf5v6AKRyjwEUhQ==");
    let sealed = sealing.seal(&k, "wx0000000000000001", "oAAAA");
    assert!(!sealed.windows(24).any(|w| w == b"tiihtNczf5v6AKRyjwEUhQ=="));
    assert_eq!(
        sealing
            .open(&sealed, "wx0000000000000001", "oAAAA")
            .unwrap(),
        k
    );
    assert_eq!(
        sealing
            .open(&sealed, "wx0000000000000001", "oBBBB")
            .unwrap_err(),
        SealError::Open
    );
    assert_eq!(
        sealing
            .open(&sealed, "wx0000000000000002", "oAAAA")
            .unwrap_err(),
        SealError::Open
    );
    let other = SealingKey::parse(&SealingKey::generate_base64()).unwrap();
    assert_eq!(
        other
            .open(&sealed, "wx0000000000000001", "oAAAA")
            .unwrap_err(),
        SealError::UnknownKey,
        "the value names a key the other does not have"
    );
    let mut flipped = sealed.clone();
    *flipped.last_mut().unwrap() ^= 1;
    assert_eq!(
        sealing
            .open(&flipped, "wx0000000000000001", "oAAAA")
            .unwrap_err(),
        SealError::Open
    );
    assert_eq!(
        sealing.open(&[], "a", "b").unwrap_err(),
        SealError::Malformed
    );
    assert_eq!(
        sealing.open(&sealed[..20], "a", "b").unwrap_err(),
        SealError::Malformed
    );
    // Two seals of the same key differ (fresh nonce).
    assert_ne!(sealed, sealing.seal(&k, "wx0000000000000001", "oAAAA"));
}

#[test]
fn sealing_key_parses_base64_and_hex_only_of_32_bytes() {
    assert!(SealingKey::parse(&"ab".repeat(32)).is_ok());
    assert!(SealingKey::parse(&SealingKey::generate_base64()).is_ok());
    assert!(SealingKey::parse("c2hvcnQ=").is_err());
    assert!(SealingKey::parse("").is_err());
    let debug = format!("{:?}", SealingKey::parse(&"ab".repeat(32)).unwrap());
    assert!(!debug.contains("abab"));
}

proptest! {
    #[test]
    fn arbitrary_input_never_panics(data in ".{0,600}", iv in ".{0,40}", bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let k = key("tiihtNczf5v6AKRyjwEUhQ==");
        let _ = open_open_data(&k, &data, &iv, "wx4f4bc4dec97d474b", Some(Duration::from_secs(60)), 0);
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let _ = open_open_data(&k, &b64, "r7BXXKkLb8qrSNn05n0qiA==", "wx4f4bc4dec97d474b", None, 0);
        let sealing = SealingKey::from_bytes([7; 32]);
        prop_assert!(sealing.open(&bytes, "wx4f4bc4dec97d474b", "o").is_err());
        let _ = verify_raw_data_signature(&k, &data, &iv);
    }
}
