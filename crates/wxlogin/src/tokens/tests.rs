use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};

use super::*;
use crate::domain::{AppId, SessionId, UserId};

const NOW: i64 = 1_800_000_000;

fn settings(alg: SigningAlg) -> AccessTokenSettings {
    AccessTokenSettings {
        issuer: "https://login.example.com".into(),
        audience: "wxlogin".into(),
        ttl: Duration::from_secs(900),
        alg,
        leeway: Duration::from_secs(30),
    }
}

fn ids() -> (UserId, SessionId, AppId) {
    let t = std::time::UNIX_EPOCH + Duration::from_secs(NOW as u64);
    (
        UserId::generate(t),
        SessionId::generate(t),
        AppId::parse("wx0000000000000001").unwrap(),
    )
}

fn service(alg: SigningAlg) -> TokenService {
    TokenService::new(
        settings(alg),
        Keyring::new(KeyPair::generate(alg).unwrap(), []),
    )
}

#[test]
fn issued_tokens_verify_with_the_contract_header_and_claims() {
    for alg in [SigningAlg::Es256, SigningAlg::EdDsa] {
        let tokens = service(alg);
        let (user, session, appid) = ids();
        let issued = tokens.issue(&user, &session, &appid, NOW).unwrap();
        assert_eq!(issued.expires_in, Duration::from_secs(900));
        let header = jsonwebtoken::decode_header(&issued.token).unwrap();
        assert_eq!(header.alg, alg.jwt());
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(
            header.kid.as_deref(),
            Some(tokens.keyring().current().kid())
        );
        let claims = tokens.verify(&issued.token, NOW + 1).unwrap();
        assert_eq!(claims, issued.claims);
        assert_eq!(claims.sub, user.as_str());
        assert_eq!(claims.sid, session.as_str());
        assert_eq!(claims.appid, "wx0000000000000001");
        assert_eq!(claims.exp - claims.iat, 900);
        let payload = issued.token.split('.').nth(1).unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        let mut keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "appid",
                "aud",
                "client_id",
                "exp",
                "iat",
                "iss",
                "jti",
                "sid",
                "sub"
            ]
        );
    }
}

#[test]
fn expiry_uses_the_given_clock_with_a_small_leeway() {
    let tokens = service(SigningAlg::Es256);
    let (user, session, appid) = ids();
    let token = tokens.issue(&user, &session, &appid, NOW).unwrap().token;
    assert!(tokens.verify(&token, NOW + 900 + 29).is_ok());
    assert_eq!(
        tokens.verify(&token, NOW + 900 + 30),
        Err(TokenError::Expired)
    );
    assert_eq!(
        tokens.verify(&token, NOW - 31),
        Err(TokenError::NotYetValid)
    );
}

#[test]
fn forged_and_foreign_tokens_are_refused() {
    let tokens = service(SigningAlg::Es256);
    let (user, session, appid) = ids();
    let token = tokens.issue(&user, &session, &appid, NOW).unwrap().token;
    let parts: Vec<&str> = token.split('.').collect();

    // Tampered claims.
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = "u_01J00000000000000000000000".into();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    assert_eq!(tokens.verify(&forged, NOW), Err(TokenError::Invalid));

    // alg: none.
    let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"at+jwt"}"#);
    let none = format!("{none_header}.{}.", parts[1]);
    assert!(tokens.verify(&none, NOW).is_err());

    // HS256 keyed with the public key (the classic confusion attack).
    let keyring = tokens.keyring();
    let public = serde_json::to_vec(keyring.current().public_jwk()).unwrap();
    let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    header.kid = Some(keyring.current().kid().into());
    let hs = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&public)).unwrap();
    assert_eq!(tokens.verify(&hs, NOW), Err(TokenError::WrongAlgorithm));

    // Signed by a key this server does not know, with a kid it does not know.
    let stranger = service(SigningAlg::Es256);
    let foreign = stranger.issue(&user, &session, &appid, NOW).unwrap().token;
    assert_eq!(tokens.verify(&foreign, NOW), Err(TokenError::UnknownKey));

    // Another issuer or audience.
    for settings in [
        AccessTokenSettings {
            issuer: "https://evil.example.com".into(),
            ..settings(SigningAlg::Es256)
        },
        AccessTokenSettings {
            audience: "other".into(),
            ..settings(SigningAlg::Es256)
        },
    ] {
        let other = TokenService::new(
            settings,
            Keyring::new(
                KeyPair::from_pkcs8(SigningAlg::Es256, keyring.current().pkcs8().to_vec()).unwrap(),
                [],
            ),
        );
        let token = other.issue(&user, &session, &appid, NOW).unwrap().token;
        assert_eq!(tokens.verify(&token, NOW), Err(TokenError::Invalid));
    }

    // An EdDSA token where ES256 is configured.
    let ed = service(SigningAlg::EdDsa)
        .issue(&user, &session, &appid, NOW)
        .unwrap()
        .token;
    assert_eq!(tokens.verify(&ed, NOW), Err(TokenError::WrongAlgorithm));

    // Not a JWT at all, or a JWT without the access-token type.
    assert_eq!(tokens.verify("nonsense", NOW), Err(TokenError::Malformed));
    let mut plain = Header::new(jsonwebtoken::Algorithm::ES256);
    plain.kid = Some(keyring.current().kid().into());
    let untyped = jsonwebtoken::encode(&plain, &claims, keyring.current().encoding()).unwrap();
    assert_eq!(tokens.verify(&untyped, NOW), Err(TokenError::WrongType));
}

#[test]
fn previous_keys_verify_and_stay_published_after_rotation() {
    let old = KeyPair::generate(SigningAlg::Es256).unwrap();
    let old_copy = KeyPair::from_pkcs8(SigningAlg::Es256, old.pkcs8().to_vec()).unwrap();
    let tokens = TokenService::new(settings(SigningAlg::Es256), Keyring::new(old, []));
    let (user, session, appid) = ids();
    let token = tokens.issue(&user, &session, &appid, NOW).unwrap().token;
    tokens.replace_keyring(Keyring::new(
        KeyPair::generate(SigningAlg::Es256).unwrap(),
        [old_copy],
    ));
    assert!(tokens.verify(&token, NOW).is_ok());
    let keyring = tokens.keyring();
    assert_eq!(keyring.jwks().keys.len(), 2);
    let fresh = tokens.issue(&user, &session, &appid, NOW).unwrap().token;
    let kid = jsonwebtoken::decode_header(&fresh).unwrap().kid.unwrap();
    assert_eq!(kid, keyring.current().kid());
}

#[test]
fn keys_round_trip_through_pkcs8_with_a_stable_thumbprint_kid() {
    for alg in [SigningAlg::Es256, SigningAlg::EdDsa] {
        let key = KeyPair::generate(alg).unwrap();
        let again = KeyPair::from_pkcs8(alg, key.pkcs8().to_vec()).unwrap();
        assert_eq!(key.kid(), again.kid());
        assert_eq!(key.public_jwk(), again.public_jwk());
        assert_eq!(key.kid().len(), 43);
        let jwk = serde_json::to_value(key.public_jwk()).unwrap();
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["alg"], alg.as_str());
        assert!(jwk.get("d").is_none(), "no private part in the JWK");
        assert!(!format!("{key:?}").contains("pkcs8"));
    }
    assert!(KeyPair::from_pkcs8(SigningAlg::Es256, vec![1, 2, 3]).is_err());
    let ed = KeyPair::generate(SigningAlg::EdDsa).unwrap();
    assert!(KeyPair::from_pkcs8(SigningAlg::Es256, ed.pkcs8().to_vec()).is_err());
}

fn stored(kid: &str, alg: &str, created_at: i64, activates_at: i64) -> crate::store::SigningKey {
    crate::store::SigningKey {
        kid: kid.into(),
        alg: alg.into(),
        sealed_private_key: vec![],
        public_jwk: String::new(),
        created_at,
        activates_at,
        retired_at: None,
    }
}

fn states(keys: &[KeyStatus]) -> Vec<(&str, KeyState)> {
    keys.iter().map(|k| (k.kid.as_str(), k.state)).collect()
}

#[test]
fn a_key_is_pending_then_current_then_published_then_retired() {
    let linger = Duration::from_secs(930);
    let records = [
        stored("a", "ES256", 1_000, 1_000),
        stored("b", "ES256", 2_000, 602_000),
    ];
    let at = |now| key_statuses(&records, now, linger);
    assert_eq!(
        states(&at(2_000)),
        [("a", KeyState::Current), ("b", KeyState::Pending)]
    );
    let before = at(2_000);
    assert_eq!(before[0].superseded_at, Some(602_000));
    assert_eq!(before[0].retires_at, Some(602_000 + 930_000));
    assert_eq!(before[1].superseded_at, None);
    assert_eq!(before[1].retires_at, None);
    assert_eq!(
        states(&at(602_000)),
        [("a", KeyState::Published), ("b", KeyState::Current)]
    );
    assert_eq!(
        states(&at(602_000 + 929_999)),
        [("a", KeyState::Published), ("b", KeyState::Current)]
    );
    assert_eq!(
        states(&at(602_000 + 930_000)),
        [("a", KeyState::Retired), ("b", KeyState::Current)]
    );
}

#[test]
fn an_early_retirement_wins_and_algorithms_do_not_supersede_each_other() {
    let linger = Duration::from_secs(930);
    let mut a = stored("a", "ES256", 1_000, 1_000);
    a.retired_at = Some(700_000);
    let records = [
        a,
        stored("b", "ES256", 2_000, 602_000),
        stored("e", "EdDSA", 3_000, 3_000),
    ];
    let keys = key_statuses(&records, 650_000, linger);
    assert_eq!(
        states(&keys),
        [
            ("a", KeyState::Published),
            ("b", KeyState::Current),
            ("e", KeyState::Current)
        ]
    );
    assert_eq!(keys[0].retires_at, Some(700_000), "earlier than its linger");
    assert_eq!(keys[2].superseded_at, None);
    assert_eq!(
        states(&key_statuses(&records, 700_000, linger))[0],
        ("a", KeyState::Retired)
    );
}

#[test]
fn of_keys_activating_together_the_later_created_signs_and_a_clock_behind_still_signs() {
    let linger = Duration::from_secs(930);
    let records = [
        stored("z", "ES256", 1_001, 1_000),
        stored("y", "ES256", 1_002, 1_000),
    ];
    assert_eq!(
        states(&key_statuses(&records, 5_000, linger)),
        [("z", KeyState::Published), ("y", KeyState::Current)]
    );
    // A clock behind every activation: the earliest key signs rather than none.
    assert_eq!(
        states(&key_statuses(&records, 500, linger)),
        [("z", KeyState::Current), ("y", KeyState::Pending)]
    );
}
