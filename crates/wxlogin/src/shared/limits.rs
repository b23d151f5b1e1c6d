//! Rate limits as the endpoints use them: the keys a request counts against, and failing open
//! when the shared state cannot be asked.
//!
//! Keys are `<endpoint>:<scope>:<digest>`, the digest the first 128 bits of SHA-256 of whom the
//! limit counts (an address, an openid, a user id, an appid): the shared state holds no addresses
//! or WeChat identities, and every key has the same small size whatever a client sends.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use super::{Limit, Limiter, Verdict};
use crate::clock::SharedClock;
use crate::config::{LimitScope, LimitedEndpoint, RateLimitSettings};

/// Whom a request is counted for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Subject<'a> {
    /// The client's address ([`ClientIp`](crate::http::ClientIp)). An IPv6 address counts by its
    /// /64: one subscriber's network, whose addresses a client can switch between at will.
    Ip(IpAddr),
    /// The user as the endpoint knows it: a wxlogin user id, `appid:openid`, a service client id.
    User(&'a str),
    /// An appid.
    App(&'a str),
}

impl Subject<'_> {
    fn scope(&self) -> LimitScope {
        match self {
            Self::Ip(_) => LimitScope::Ip,
            Self::User(_) => LimitScope::User,
            Self::App(_) => LimitScope::App,
        }
    }

    fn digest(&self) -> String {
        let text = match self {
            Self::Ip(IpAddr::V4(ip)) => ip.to_string(),
            Self::Ip(IpAddr::V6(ip)) => match ip.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => {
                    let [a, b, c, d, ..] = ip.segments();
                    format!("{a:x}:{b:x}:{c:x}:{d:x}::/64")
                }
            },
            Self::User(text) | Self::App(text) => (*text).to_owned(),
        };
        hex::encode(&Sha256::digest(text.as_bytes())[..16])
    }
}

/// A request over one of its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limited {
    pub endpoint: LimitedEndpoint,
    pub scope: LimitScope,
    /// When the request would fit again.
    pub retry_after: Duration,
}

/// The configured limits over the shared [`Limiter`]; cheap to clone.
#[derive(Clone)]
pub(crate) struct RateLimits {
    settings: Arc<RateLimitSettings>,
    limiter: Arc<dyn Limiter>,
    clock: SharedClock,
    /// Whether the last attempt to ask the limiter failed: the warning is logged once per outage,
    /// not once per request.
    failing: Arc<AtomicBool>,
}

impl RateLimits {
    pub(crate) fn new(
        settings: RateLimitSettings,
        limiter: Arc<dyn Limiter>,
        clock: SharedClock,
    ) -> Self {
        Self {
            settings: Arc::new(settings),
            limiter,
            clock,
            failing: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Counts one request of `endpoint` for each subject whose limit is on, all or none, and
    /// refuses it when one of them is full. A `None` subject (no client address, an appid this
    /// server does not serve) counts nothing. When the shared state cannot be asked the request goes
    /// on (fail open): refusing every login while the limiter is down would be worse than a short
    /// unlimited spell.
    pub(crate) async fn check(
        &self,
        endpoint: LimitedEndpoint,
        subjects: &[Option<Subject<'_>>],
    ) -> Result<(), Limited> {
        let configured = self.settings.get(endpoint);
        let (scopes, limits): (Vec<LimitScope>, Vec<Limit>) = subjects
            .iter()
            .flatten()
            .filter_map(|subject| {
                let scope = subject.scope();
                let rate = configured.get(scope)?;
                let key = format!(
                    "{}:{}:{}",
                    endpoint.as_str(),
                    scope.as_str(),
                    subject.digest()
                );
                Some((scope, Limit { key, rate }))
            })
            .unzip();
        if limits.is_empty() {
            return Ok(());
        }
        match self.limiter.take(&limits, self.clock.now()).await {
            Ok(verdict) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("rate limits are counted again");
                }
                match verdict {
                    Verdict::Allowed => Ok(()),
                    Verdict::Refused { limit, retry_after } => Err(Limited {
                        endpoint,
                        scope: scopes.get(limit).copied().unwrap_or(LimitScope::Ip),
                        retry_after,
                    }),
                }
            }
            Err(e) => {
                if self.failing.swap(true, Ordering::Relaxed) {
                    tracing::debug!(error = %e, endpoint = endpoint.as_str(), "rate limits not counted");
                } else {
                    tracing::warn!(error = %e, "rate limits cannot be counted: requests pass unlimited until the shared state answers again");
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Mutex;
    use std::time::SystemTime;

    use super::*;
    use crate::shared::SharedError;

    /// A limiter that fails while `down`, and allows everything otherwise.
    #[derive(Default)]
    struct Flaky {
        down: AtomicBool,
    }

    #[async_trait::async_trait]
    impl Limiter for Flaky {
        async fn take(&self, _: &[Limit], _: SystemTime) -> Result<Verdict, SharedError> {
            if self.down.load(Ordering::SeqCst) {
                return Err(SharedError::Unavailable("redis rate limit: refused".into()));
            }
            Ok(Verdict::Allowed)
        }
    }

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn an_outage_passes_requests_and_is_logged_once_until_it_ends() {
        let flaky = Arc::new(Flaky::default());
        let limits = RateLimits::new(
            RateLimitSettings::default(),
            flaky.clone(),
            crate::clock::system(),
        );
        let lines = Lines::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer({
                let lines = lines.clone();
                move || lines.clone()
            })
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .finish();
        let ip = [Some(Subject::Ip("203.0.113.9".parse().unwrap()))];
        tracing::subscriber::with_default(subscriber, || {
            futures::executor::block_on(async {
                flaky.down.store(true, Ordering::SeqCst);
                for _ in 0..50 {
                    assert_eq!(limits.check(LimitedEndpoint::Login, &ip).await, Ok(()));
                }
                flaky.down.store(false, Ordering::SeqCst);
                for _ in 0..5 {
                    assert_eq!(limits.check(LimitedEndpoint::Login, &ip).await, Ok(()));
                }
                flaky.down.store(true, Ordering::SeqCst);
                assert_eq!(limits.check(LimitedEndpoint::Login, &ip).await, Ok(()));
            });
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text.matches("rate limits cannot be counted").count(),
            2,
            "{text}"
        );
        assert_eq!(
            text.matches("rate limits are counted again").count(),
            1,
            "{text}"
        );
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let digest = |ip: &str| Subject::Ip(ip.parse().unwrap()).digest();
        assert_eq!(digest("2001:db8:1:2::1"), digest("2001:db8:1:2:ffff::9"));
        assert_ne!(digest("2001:db8:1:2::1"), digest("2001:db8:1:3::1"));
        assert_eq!(digest("::ffff:203.0.113.9"), digest("203.0.113.9"));
        assert_ne!(digest("203.0.113.9"), digest("203.0.113.10"));
        assert_eq!(digest("203.0.113.9").len(), 32);
    }
}
