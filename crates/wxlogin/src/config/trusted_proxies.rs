//! `server.trusted_proxies`: the addresses whose `X-Forwarded-For` wxlogin believes.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::Deserialize;

/// A network of reverse proxies or load balancers in front of wxlogin: a CIDR (`10.0.0.0/8`,
/// `fd00::/8`) or a single address (`192.168.1.7`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedProxy(IpNet);

/// The one message for every malformed entry; it does not quote the value.
const EXPECTED: &str = "expected an IP address or a CIDR such as \"10.0.0.0/8\" or \"fd00::/8\" (prefix length at most 32 for IPv4, 128 for IPv6)";

impl TrustedProxy {
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }

    pub fn net(&self) -> IpNet {
        self.0
    }
}

impl FromStr for TrustedProxy {
    type Err = &'static str;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(Self(IpNet::from(ip.to_canonical())));
        }
        let net: IpNet = text.parse().map_err(|_| EXPECTED)?;
        // An IPv4-mapped IPv6 network would never match: peers are compared in canonical form.
        Ok(Self(net.trunc()))
    }
}

impl std::fmt::Display for TrustedProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for TrustedProxy {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_networks_parse_and_match_in_canonical_form() {
        let single: TrustedProxy = "192.168.1.7".parse().unwrap();
        assert_eq!(single.to_string(), "192.168.1.7/32");
        assert!(single.contains("::ffff:192.168.1.7".parse().unwrap()));
        let net: TrustedProxy = "10.1.2.3/8".parse().unwrap();
        assert_eq!(net.to_string(), "10.0.0.0/8");
        assert!(net.contains("10.200.0.1".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        let v6: TrustedProxy = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        for bad in [
            "",
            "10.0.0.0/33",
            "10.0.0.0/",
            "fd00::/129",
            "proxy",
            "10.0.0.0/8/8",
        ] {
            assert!(bad.parse::<TrustedProxy>().is_err(), "{bad}");
        }
    }

    #[test]
    #[allow(clippy::result_large_err)] // Jail's closures return figment::Error
    fn the_list_can_come_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "WXLOGIN_SERVER__TRUSTED_PROXIES",
                "[\"10.0.0.0/8\", \"fd00::/8\"]",
            );
            let s = crate::config::Settings::load(None).unwrap();
            let nets: Vec<String> = s
                .server
                .trusted_proxies
                .iter()
                .map(ToString::to_string)
                .collect();
            assert_eq!(nets, ["10.0.0.0/8", "fd00::/8"]);
            jail.set_env("WXLOGIN_SERVER__TRUSTED_PROXIES", "[\"10.0.0.0/40\"]");
            let err = crate::config::Settings::load(None).unwrap_err().to_string();
            assert!(err.contains("server.trusted_proxies"), "{err}");
            assert!(err.contains("WXLOGIN_SERVER__TRUSTED_PROXIES"), "{err}");
            Ok(())
        });
    }
}
