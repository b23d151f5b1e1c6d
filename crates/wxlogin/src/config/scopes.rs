//! What each `[[services]]` credential may do (`scopes = [...]`, `docs/api.md`, "Service scopes").
//! A service whose entry lists no `scopes` keeps every scope, as before scopes existed, so that an
//! upgrade breaks no running integration; `serve` warns about each such service at start.

use serde::Deserialize;

use super::ServiceSettings;

/// One permission of a service credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
pub enum ServiceScope {
    /// `POST /v1/introspect`
    #[serde(rename = "introspect")]
    Introspect,
    /// `GET /internal/v1/users/{id}` (without the phone number)
    #[serde(rename = "users:read")]
    UsersRead,
    /// The full phone number in `GET /internal/v1/users/{id}` (with `users:read`)
    #[serde(rename = "phone:read")]
    PhoneRead,
    /// `GET /internal/v1/wechat/{appid}/access-token`
    #[serde(rename = "wechat:token")]
    WechatToken,
    /// `POST /internal/v1/wechat/{appid}/access-token/invalidate`: makes wxlogin refetch a token
    #[serde(rename = "wechat:token:invalidate")]
    WechatTokenInvalidate,
}

impl ServiceScope {
    pub const ALL: [Self; 5] = [
        Self::Introspect,
        Self::UsersRead,
        Self::PhoneRead,
        Self::WechatToken,
        Self::WechatTokenInvalidate,
    ];

    /// The scope as written in `scopes`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Introspect => "introspect",
            Self::UsersRead => "users:read",
            Self::PhoneRead => "phone:read",
            Self::WechatToken => "wechat:token",
            Self::WechatTokenInvalidate => "wechat:token:invalidate",
        }
    }
}

impl std::fmt::Display for ServiceScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The scopes of an entry: sorted, each once; every scope when the entry listed none.
pub(super) fn resolve(listed: Option<Vec<ServiceScope>>) -> (Vec<ServiceScope>, bool) {
    match listed {
        Some(mut scopes) => {
            scopes.sort_unstable();
            scopes.dedup();
            (scopes, true)
        }
        None => (ServiceScope::ALL.to_vec(), false),
    }
}

/// One line per service that lists no `scopes` and so has every one: what `serve` logs as a warning
/// and `config check` prints.
pub fn unlisted_scope_warnings(services: &[ServiceSettings]) -> Vec<String> {
    let all: Vec<&str> = ServiceScope::ALL.iter().map(|s| s.as_str()).collect();
    services
        .iter()
        .filter(|service| !service.scopes_listed)
        .map(|service| {
            format!(
                "service `{}` lists no `scopes`, so it has every scope ({}); list only the ones it \
                 needs in its [[services]] entry (`scopes = []` for none)",
                service.client_id,
                all.join(", ")
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    const SECRET: &str = "orders-secret-0123456789abcdef0123";

    fn load(scopes: &str) -> Result<Settings, crate::config::ConfigError> {
        Settings::from_toml_str(&format!(
            "[[services]]\nclient_id = \"orders\"\nclient_secret = \"{SECRET}\"\n{scopes}"
        ))
    }

    #[test]
    fn listed_scopes_are_kept_sorted_and_once() {
        let s = load(r#"scopes = ["wechat:token", "introspect", "wechat:token"]"#).unwrap();
        let service = &s.services[0];
        assert_eq!(
            service.scopes,
            [ServiceScope::Introspect, ServiceScope::WechatToken]
        );
        assert!(service.scopes_listed);
        assert!(service.allows(ServiceScope::Introspect));
        assert!(!service.allows(ServiceScope::PhoneRead));
        assert!(unlisted_scope_warnings(&s.services).is_empty());
    }

    #[test]
    fn an_empty_list_allows_nothing() {
        let s = load("scopes = []").unwrap();
        assert!(s.services[0].scopes.is_empty());
        assert!(ServiceScope::ALL.iter().all(|&x| !s.services[0].allows(x)));
        assert!(unlisted_scope_warnings(&s.services).is_empty());
    }

    #[test]
    fn no_list_keeps_every_scope_with_a_warning_naming_the_service() {
        let s = load("").unwrap();
        assert_eq!(s.services[0].scopes, ServiceScope::ALL);
        assert!(!s.services[0].scopes_listed);
        let warnings = unlisted_scope_warnings(&s.services);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("`orders`"), "{}", warnings[0]);
        assert!(warnings[0].contains("phone:read"), "{}", warnings[0]);
    }

    #[test]
    fn an_unknown_scope_is_refused_with_the_valid_ones() {
        let error = load(r#"scopes = ["introspect", "users:write"]"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("services"), "{error}");
        assert!(error.contains("users:write"), "{error}");
        for scope in ServiceScope::ALL {
            assert!(error.contains(scope.as_str()), "{error}");
        }
        assert!(!error.contains(SECRET), "{error}");
    }

    #[test]
    fn scopes_names_round_trip() {
        for scope in ServiceScope::ALL {
            let parsed: ServiceScope =
                serde_json::from_value(serde_json::Value::from(scope.as_str())).unwrap();
            assert_eq!(parsed, scope);
        }
    }
}
