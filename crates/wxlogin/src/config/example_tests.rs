//! `config/wxlogin.example.toml` must stay true: it parses, it names every key the server has and no
//! other, and the defaults it shows are the real ones.

use std::collections::{BTreeMap, BTreeSet};

use super::Settings;

const EXAMPLE: &str = include_str!("../../../../config/wxlogin.example.toml");

/// Keys whose default is derived from other keys: the example shows a sample value instead.
const DERIVED: [&str; 3] = ["server.public_url", "database.url", "tokens.issuer"];

/// The example is a real-world template, so its secrets are `/run/secrets/...` files rather than
/// inline placeholders; the test points them at files it writes.
fn example_with_secret_files() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    // Valid for every kind: 32 random bytes in base64 for the sealing key, printable and long
    // enough for an AppSecret and a client_secret.
    let secret = "arYA46iEUZBTLEHp2hEJHnud57LnV5bwzc831ytNu2w=";
    for name in EXAMPLE.split("\"/run/secrets/").skip(1) {
        let name = name.split('"').next().unwrap();
        std::fs::write(dir.path().join(name), format!("{secret}\n")).unwrap();
    }
    let prefix = format!("{}/", dir.path().display());
    (dir, EXAMPLE.replace("/run/secrets/", &prefix))
}

/// `section.key` → value text, for every `key = value` line of the example, commented out or not.
/// `[[apps]]` keys are `apps.key`.
fn example_keys() -> BTreeMap<String, String> {
    let mut keys = BTreeMap::new();
    let mut section = String::new();
    for line in EXAMPLE.lines() {
        let line = line.trim();
        // Section headers count commented out too (optional tables such as [[gateway.routes]]).
        let uncommented = line.strip_prefix("# ").unwrap_or(line);
        if let Some(header) = uncommented
            .strip_prefix('[')
            .filter(|h| h.ends_with(']') && !h.contains(' '))
        {
            section = header.trim_matches(['[', ']']).to_owned();
            continue;
        }
        let line = line.strip_prefix('#').unwrap_or(line).trim_start();
        let Some((key, value)) = line.split_once(" = ") else {
            continue;
        };
        if !key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            let key = key.strip_suffix("_file").unwrap_or(key);
            keys.insert(format!("{section}.{key}"), value.to_owned());
        }
    }
    keys
}

/// `section.key` → value of a printed configuration, array-of-tables keys as `apps.key`.
fn printed_keys(printed: &str) -> BTreeMap<String, toml::Value> {
    fn walk(prefix: &str, table: &toml::Table, out: &mut BTreeMap<String, toml::Value>) {
        for (key, value) in table {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                toml::Value::Table(inner) => walk(&path, inner, out),
                toml::Value::Array(items)
                    if !items.is_empty() && items.iter().all(toml::Value::is_table) =>
                {
                    for item in items.iter().filter_map(toml::Value::as_table) {
                        walk(&path, item, out);
                    }
                }
                _ => {
                    out.insert(path, value.clone());
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", &printed.parse().unwrap(), &mut out);
    out
}

#[test]
fn example_parses_and_is_ready_for_production() {
    let (_dir, example) = example_with_secret_files();
    let s = Settings::from_toml_str(&example).unwrap();
    assert_eq!(s.apps.len(), 1);
    assert_eq!(s.apps[0].appid.as_str(), "wx0000000000000001");
    assert_eq!(s.services.len(), 1);
    assert!(s.security.sealing_key.is_some());
    s.check_for_production(false).unwrap();
}

#[test]
fn example_documents_every_key_and_no_other() {
    let full = Settings::from_toml_str(
        r#"
[server]
public_url = "https://login.example.com"
[database]
url = "postgres://wx:pw@db/wxlogin"
[redis]
url = "redis://cache:6379/0"
password = "redis-password"
[security]
sealing_key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
previous_sealing_keys = ["arYA46iEUZBTLEHp2hEJHnud57LnV5bwzc831ytNu2w="]
[tokens]
issuer = "https://login.example.com"
[[apps]]
appid = "wx0000000000000001"
secret = "0123456789abcdef0123456789abcdef"
[[services]]
client_id = "orders"
client_secret = "orders-service-secret-0001"
[[gateway.routes]]
prefix = "/api/"
upstream = "http://127.0.0.1:3000"
"#,
    )
    .unwrap();
    let printed: BTreeSet<String> = printed_keys(&full.to_redacted_toml()).into_keys().collect();
    let documented: BTreeSet<String> = example_keys().into_keys().collect();
    let missing: Vec<_> = printed.difference(&documented).collect();
    assert!(missing.is_empty(), "not in the example: {missing:?}");
    let unknown: Vec<_> = documented.difference(&printed).collect();
    assert!(
        unknown.is_empty(),
        "in the example but not a key: {unknown:?}"
    );
}

#[test]
fn example_shows_the_real_defaults() {
    let defaults = printed_keys(&Settings::default().to_redacted_toml());
    let mut compared = 0;
    for (key, text) in example_keys() {
        let Some(default) = defaults.get(&key) else {
            continue;
        };
        if DERIVED.contains(&key.as_str()) {
            continue;
        }
        let shown: toml::Table = format!("v = {text}").parse().unwrap();
        assert_eq!(&shown["v"], default, "{key}");
        compared += 1;
    }
    assert!(compared >= 20, "only {compared} defaults compared");
}
