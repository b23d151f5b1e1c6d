use std::time::Duration;

use proptest::prelude::*;
use wechat_mock::{Mock, MockConfig};
use wxlogin::crypto::{OpenDataError, open_open_data, verify_raw_data_signature};
use wxlogin::domain::SessionKey;

use crate::helpers::DEMO_APPID;

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "\\PC{0,40}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[a-zA-Z_]{1,12}", inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn payload() -> impl Strategy<Value = serde_json::Map<String, serde_json::Value>> {
    prop::collection::btree_map("[a-zA-Z]{1,12}", json_value(), 0..8)
        .prop_filter("watermark is WeChat's", |m| !m.contains_key("watermark"))
        .prop_map(|m| m.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn simulator_encrypted_open_data_decrypts_to_the_same_payload(data in payload(), user in "[a-z]{1,10}") {
        let clock = wxlogin::clock::ManualClock::starting_now();
        let mock = Mock::new(MockConfig::demo().with_clock(clock.shared()));
        let sealed = mock.encrypt(DEMO_APPID, &user, serde_json::Value::Object(data.clone())).unwrap();
        let key = SessionKey::parse(mock.session_key(DEMO_APPID, &user).unwrap()).unwrap();
        let now = mock.clock().unix_secs();
        let opened = open_open_data(&key, &sealed.encrypted_data, &sealed.iv, DEMO_APPID, Some(Duration::from_secs(300)), now).unwrap();
        prop_assert_eq!(opened.data, data);
        prop_assert_eq!(opened.watermark.appid, DEMO_APPID);
        prop_assert_eq!(opened.watermark.timestamp, now);

        let other = open_open_data(&key, &sealed.encrypted_data, &sealed.iv, "wx4f4bc4dec97d474b", None, now);
        prop_assert_eq!(other.unwrap_err(), OpenDataError::WatermarkAppid);
    }

    #[test]
    fn simulator_signatures_verify(raw in "\\PC{0,200}", user in "[a-z]{1,10}") {
        let mock = Mock::new(MockConfig::demo());
        let signature = mock.sign(DEMO_APPID, &user, &raw).unwrap();
        let key = SessionKey::parse(mock.session_key(DEMO_APPID, &user).unwrap()).unwrap();
        prop_assert!(verify_raw_data_signature(&key, &raw, &signature));
        let tampered = format!("{}x", raw);
        prop_assert!(!verify_raw_data_signature(&key, &tampered, &signature));
    }
}

#[test]
fn data_encrypted_before_a_key_rotation_no_longer_decrypts() {
    let clock = wxlogin::clock::ManualClock::starting_now();
    let mock = Mock::new(MockConfig::demo().with_clock(clock.shared()));
    mock.mint_login_code(DEMO_APPID, "ivan").unwrap();
    let old_key = SessionKey::parse(mock.session_key(DEMO_APPID, "ivan").unwrap()).unwrap();
    clock.advance(Duration::from_secs(301));
    mock.mint_login_code(DEMO_APPID, "ivan").unwrap();
    let sealed = mock
        .encrypt(
            DEMO_APPID,
            "ivan",
            serde_json::json!({"phoneNumber": "13800138000"}),
        )
        .unwrap();
    let err = open_open_data(
        &old_key,
        &sealed.encrypted_data,
        &sealed.iv,
        DEMO_APPID,
        None,
        0,
    )
    .unwrap_err();
    assert!(
        matches!(err, OpenDataError::Decrypt | OpenDataError::NotJson),
        "{err:?}"
    );
}
