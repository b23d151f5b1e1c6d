//! The client's address, computed once per request: the TCP peer, or, when the peer is one of
//! `server.trusted_proxies`, the right-most `X-Forwarded-For` hop that is not itself a trusted
//! proxy. Everything a client wrote to the left of that hop is its own unverified claim and is
//! dropped. Handlers and later layers read it as the `ClientIp` request extension.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, OptionalFromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::request::Parts;

use crate::config::TrustedProxy;

/// At most this many `X-Forwarded-For` hops are examined: no deployment has more proxies, and the
/// work per request stays bounded whatever a client sends.
const MAX_HOPS: usize = 16;

/// The client's address and the proxies it came through, as a request extension. Present on
/// every request the server accepted over TCP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIp {
    /// From the client to the TCP peer: `hops[0]` is the client, the rest trusted proxies.
    hops: Vec<IpAddr>,
}

impl ClientIp {
    /// The client's address.
    pub fn ip(&self) -> IpAddr {
        self.hops[0]
    }

    /// `X-Forwarded-For` for a server behind wxlogin: the client, then each trusted proxy, the
    /// TCP peer last.
    pub fn forwarded_for(&self) -> String {
        self.hops
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub(crate) fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[TrustedProxy]) -> Self {
        let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
        let mut hops = vec![peer.to_canonical()];
        if is_trusted(hops[0]) {
            let claimed: Vec<Option<IpAddr>> = headers
                .get_all("x-forwarded-for")
                .iter()
                .flat_map(|value| match value.to_str() {
                    Ok(text) => text.split(',').map(parse_hop).collect::<Vec<_>>(),
                    Err(_) => vec![None],
                })
                .collect();
            for hop in claimed.into_iter().rev().take(MAX_HOPS) {
                // An entry that is no address ends the chain: nothing left of it can be believed.
                let Some(ip) = hop else { break };
                hops.push(ip);
                if !is_trusted(ip) {
                    break;
                }
            }
        }
        hops.reverse();
        Self { hops }
    }
}

/// `Option<ClientIp>` as an extractor: `None` only for a request that did not come over TCP.
impl<S: Send + Sync> OptionalFromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Self>().cloned())
    }
}

impl ClientIp {
    /// What the client's per-IP rate limits count by.
    pub(crate) fn subject(
        client: Option<&Self>,
    ) -> Option<crate::services::rate_limits::Subject<'static>> {
        client.map(|c| crate::services::rate_limits::Subject::Ip(c.ip()))
    }
}

/// One `X-Forwarded-For` entry: an address, some proxies add a port (`1.2.3.4:5678`, `[::1]:80`).
fn parse_hop(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    text.parse::<IpAddr>()
        .or_else(|_| text.parse::<SocketAddr>().map(|addr| addr.ip()))
        .or_else(|_| {
            text.strip_prefix('[')
                .and_then(|t| t.strip_suffix(']'))
                .unwrap_or("")
                .parse::<IpAddr>()
        })
        .ok()
        .map(|ip| ip.to_canonical())
}

/// Puts the `ClientIp` of the request's connection into its extensions (and its log context).
pub(crate) fn attach(request: &mut Request, trusted: &[TrustedProxy]) {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    if let Some(peer) = peer {
        let client = ClientIp::resolve(peer, request.headers(), trusted);
        crate::telemetry::request::record_client_ip(client.ip());
        request.extensions_mut().insert(client);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(peer: &str, forwarded: &[&str], trusted: &[&str]) -> (String, String) {
        let mut headers = HeaderMap::new();
        for value in forwarded {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        let trusted: Vec<TrustedProxy> = trusted.iter().map(|t| t.parse().unwrap()).collect();
        let client = ClientIp::resolve(peer.parse().unwrap(), &headers, &trusted);
        (client.ip().to_string(), client.forwarded_for())
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let proxies = ["10.0.0.0/8"];
        assert_eq!(
            resolve("203.0.113.9", &["1.1.1.1"], &proxies),
            ("203.0.113.9".into(), "203.0.113.9".into())
        );
        assert_eq!(
            resolve("10.0.0.1", &["1.1.1.1, 2.2.2.2", "10.0.0.2"], &proxies),
            ("2.2.2.2".into(), "2.2.2.2, 10.0.0.2, 10.0.0.1".into())
        );
        assert_eq!(
            resolve("::ffff:10.0.0.1", &["[2001:db8::1]:443"], &proxies),
            ("2001:db8::1".into(), "2001:db8::1, 10.0.0.1".into())
        );
        assert_eq!(
            resolve("10.0.0.1", &["5.5.5.5:80, 10.0.0.3"], &proxies),
            ("5.5.5.5".into(), "5.5.5.5, 10.0.0.3, 10.0.0.1".into())
        );
        assert_eq!(
            resolve("10.0.0.1", &[], &proxies),
            ("10.0.0.1".into(), "10.0.0.1".into())
        );
    }

    #[test]
    fn a_long_chain_is_cut_at_the_bound() {
        let forwarded = vec!["10.0.0.9"; 100].join(", ");
        let (_, chain) = resolve("10.0.0.1", &[&forwarded], &["10.0.0.0/8"]);
        assert_eq!(chain.split(", ").count(), MAX_HOPS + 1);
    }
}
