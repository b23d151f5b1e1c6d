//! The shared state of several instances, in Redis: every instance of one deployment connects to
//! the same server (and key prefix) and so sees the same claims, leases, rate limits, values and
//! events.
//!
//! Commands go over one [`ConnectionManager`], which reconnects by itself after a connection loss;
//! events arrive over a separate pub/sub connection, kept by one background task per
//! [`RedisState`] that subscribes again (with backoff) whenever that connection is lost. Redis
//! pub/sub delivers nothing published while a subscriber was away, so after such a gap the task
//! sends [`Revocation::Resync`] to its receivers.
//!
//! Every Redis error becomes [`SharedError::Unavailable`], its text free of the password.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures::StreamExt;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{
    Claims, Events, Lease, Leases, Limit, Limiter, Ping, Revocation, SharedError, Verdict, gcra,
};
use crate::config::RedisSettings;
use crate::domain::{AppId, SessionId, UserId};

/// Events a slow subscriber may fall behind by before it is told it lagged.
const EVENT_BUFFER: usize = 1024;
/// How often a waiter for a lease looks again (Redis tells nobody of a release or an expiry).
const LEASE_POLL: Duration = Duration::from_millis(20);
/// The first and the longest wait between attempts to subscribe again.
const RESUBSCRIBE_MIN: Duration = Duration::from_millis(100);
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(5);
/// How often the pub/sub connection is pinged, so that one that died silently (no reset reached
/// us) is noticed and replaced.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// Deletes the key only while it still holds the given value: a lease's holder token, or a shared
/// value someone may have replaced meanwhile.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// The GCRA steps of `gcra.rs` for every key at once, atomically (a script runs alone): KEYS are
/// the limits' keys, ARGV[1] the caller's time and then each limit's emission interval and period,
/// all in microseconds. Either every key moves its TAT (stored as the integer text, expiring when
/// it is reached, after which a missing key means the same as a drained one), answering {0, 0}, or
/// none does, answering {the refusing limit (from 1), microseconds to wait}.
const TAKE: &str = r"
local now = tonumber(ARGV[1])
local tats = {}
local refused, wait = 0, 0
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i])
  local period = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', key) or '') or now
  if tat < now then
    tat = now
  end
  tats[i] = tat + interval
  local early = tats[i] - period - now
  if early > wait then
    refused, wait = i, early
  end
end
if refused > 0 then
  return {refused, wait}
end
for i, key in ipairs(KEYS) do
  local ttl = math.ceil((tats[i] - now) / 1000)
  redis.call('SET', key, string.format('%d', tats[i]), 'PX', string.format('%d', math.max(ttl, 1)))
end
return {0, 0}
";

/// Every function of the seam, for all instances sharing one Redis and key prefix.
pub struct RedisState {
    connection: ConnectionManager,
    scrub: Scrub,
    prefix: String,
    channel: String,
    events: tokio::sync::broadcast::Sender<Revocation>,
    release: redis::Script,
    take: redis::Script,
    subscriber: tokio::task::JoinHandle<()>,
}

impl Drop for RedisState {
    fn drop(&mut self) {
        self.subscriber.abort();
    }
}

/// Removes the password from error texts (the driver's messages may quote connection details).
#[derive(Clone)]
struct Scrub {
    url: String,
    password: Option<String>,
}

impl Scrub {
    fn error(&self, what: &str, error: &dyn std::fmt::Display) -> SharedError {
        let mut text = crate::config::scrub_url_secrets(&error.to_string(), &self.url);
        if let Some(password) = self.password.as_deref().filter(|p| !p.is_empty()) {
            text = text.replace(password, "<redacted>");
        }
        SharedError::Unavailable(format!("redis {what}: {text}"))
    }
}

impl RedisState {
    /// Connects (within `connect_timeout_ms`), checks that the server answers, and subscribes to
    /// the events channel before returning, so that every event published after this returns is
    /// heard.
    pub async fn connect(settings: &RedisSettings) -> Result<Self, SharedError> {
        let scrub = Scrub {
            url: settings.url.clone(),
            password: settings.password.clone(),
        };
        let client = client(settings).map_err(|e| scrub.error("configuration", &e))?;
        let connect_timeout = Duration::from_millis(settings.connect_timeout_ms);
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(Duration::from_millis(settings.response_timeout_ms)))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(2));
        let mut connection = tokio::time::timeout(
            connect_timeout.saturating_mul(4),
            client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| scrub.error("connect", &"timed out"))?
        .map_err(|e| scrub.error("connect", &e))?;
        let _: String = redis::cmd("PING")
            .query_async(&mut connection)
            .await
            .map_err(|e| scrub.error("ping", &e))?;

        let prefix = settings.key_prefix.clone();
        let channel = format!("{prefix}events");
        let events = tokio::sync::broadcast::channel(EVENT_BUFFER).0;
        let subscriber = Subscriber {
            client,
            channel: channel.clone(),
            timeout: connect_timeout,
            events: events.clone(),
            scrub: scrub.clone(),
        };
        let subscription = subscriber.subscribe().await?;
        let subscriber = tokio::spawn(subscriber.run(subscription));
        Ok(Self {
            connection,
            scrub,
            prefix,
            channel,
            events,
            release: redis::Script::new(RELEASE),
            take: redis::Script::new(TAKE),
            subscriber,
        })
    }

    fn key(&self, kind: &str, name: &str) -> String {
        format!("{}{kind}:{name}", self.prefix)
    }

    fn fail<'a>(&'a self, what: &'a str) -> impl Fn(redis::RedisError) -> SharedError + 'a {
        move |e| self.scrub.error(what, &e)
    }
}

/// The client for `settings`, the password (if given apart) put in.
fn client(settings: &RedisSettings) -> redis::RedisResult<redis::Client> {
    use redis::IntoConnectionInfo;
    let mut info = settings.url.as_str().into_connection_info()?;
    if let Some(password) = &settings.password {
        let redis = info.redis_settings().clone().set_password(password);
        info = info.set_redis_settings(redis);
    }
    redis::Client::open(info)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

#[async_trait]
impl Claims for RedisState {
    async fn claim(&self, key: &[u8; 32], ttl: Duration) -> Result<bool, SharedError> {
        let set: Option<String> = redis::cmd("SET")
            .arg(self.key("claim", &hex::encode(key)))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl))
            .query_async(&mut self.connection.clone())
            .await
            .map_err(self.fail("claim"))?;
        Ok(set.is_some())
    }
}

#[async_trait]
impl Leases for RedisState {
    async fn try_acquire(&self, name: &str, ttl: Duration) -> Result<Option<Lease>, SharedError> {
        let token = rand::random::<u128>();
        let set: Option<String> = redis::cmd("SET")
            .arg(self.key("lease", name))
            .arg(token.to_string())
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl))
            .query_async(&mut self.connection.clone())
            .await
            .map_err(self.fail("lease"))?;
        Ok(set.map(|_| Lease {
            name: name.to_owned(),
            token,
        }))
    }

    async fn acquire(&self, name: &str, ttl: Duration) -> Result<Lease, SharedError> {
        loop {
            if let Some(lease) = self.try_acquire(name, ttl).await? {
                return Ok(lease);
            }
            tokio::time::sleep(LEASE_POLL).await;
        }
    }

    async fn release(&self, lease: &Lease) -> Result<(), SharedError> {
        let _: i64 = self
            .release
            .key(self.key("lease", &lease.name))
            .arg(lease.token.to_string())
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(self.fail("release"))?;
        Ok(())
    }
}

#[async_trait]
impl Ping for RedisState {
    async fn ping(&self) -> Result<(), SharedError> {
        let _: String = redis::cmd("PING")
            .query_async(&mut self.connection.clone())
            .await
            .map_err(self.fail("ping"))?;
        Ok(())
    }
}

#[async_trait]
impl Limiter for RedisState {
    async fn take(&self, limits: &[Limit], now: SystemTime) -> Result<Verdict, SharedError> {
        if limits.is_empty() {
            return Ok(Verdict::Allowed);
        }
        let mut invocation = self.take.prepare_invoke();
        invocation.arg(gcra::micros(now));
        for limit in limits {
            let (interval, period) = gcra::interval_and_period(limit.rate);
            invocation
                .key(self.key("limit", &limit.key))
                .arg(interval)
                .arg(period);
        }
        let (refused, wait): (usize, i64) = invocation
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(self.fail("rate limit"))?;
        match refused {
            0 => Ok(Verdict::Allowed),
            n if n <= limits.len() => Ok(gcra::refused(n - 1, wait)),
            _ => Err(SharedError::Unavailable(
                "redis rate limit: the script named no limit it was given".into(),
            )),
        }
    }
}

/// `GET`, `SET ... PX`, and the compare-and-delete script of the leases.
#[async_trait]
impl super::Values for RedisState {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, SharedError> {
        redis::cmd("GET")
            .arg(self.key("value", key))
            .query_async(&mut self.connection.clone())
            .await
            .map_err(self.fail("get"))
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), SharedError> {
        let _: String = redis::cmd("SET")
            .arg(self.key("value", key))
            .arg(value)
            .arg("PX")
            .arg(millis(ttl))
            .query_async(&mut self.connection.clone())
            .await
            .map_err(self.fail("set"))?;
        Ok(())
    }

    async fn delete_if_equal(&self, key: &str, expected: &[u8]) -> Result<bool, SharedError> {
        let deleted: i64 = self
            .release
            .key(self.key("value", key))
            .arg(expected)
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(self.fail("delete"))?;
        Ok(deleted == 1)
    }
}

#[async_trait]
impl Events for RedisState {
    async fn publish(&self, event: Revocation) -> Result<(), SharedError> {
        let _: i64 = self
            .connection
            .clone()
            .publish(&self.channel, encode(&event))
            .await
            .map_err(self.fail("publish"))?;
        Ok(())
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Revocation> {
        self.events.subscribe()
    }
}

/// The pub/sub side: one connection subscribed to the channel, and again after each loss.
struct Subscriber {
    client: redis::Client,
    channel: String,
    timeout: Duration,
    events: tokio::sync::broadcast::Sender<Revocation>,
    scrub: Scrub,
}

impl Subscriber {
    async fn subscribe(
        &self,
    ) -> Result<(redis::aio::PubSubSink, redis::aio::PubSubStream), SharedError> {
        let attempt = async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.subscribe(&self.channel).await?;
            Ok::<_, redis::RedisError>(pubsub.split())
        };
        tokio::time::timeout(self.timeout, attempt)
            .await
            .map_err(|_| self.scrub.error("subscribe", &"timed out"))?
            .map_err(|e| self.scrub.error("subscribe", &e))
    }

    /// Forwards every message until the connection ends (or stops answering pings), then
    /// subscribes again; after the gap the receivers get [`Revocation::Resync`], since whatever
    /// was published meanwhile is lost.
    async fn run(self, subscription: (redis::aio::PubSubSink, redis::aio::PubSubStream)) {
        let (mut sink, mut stream) = subscription;
        loop {
            self.forward(&mut sink, &mut stream).await;
            tracing::warn!("the Redis events subscription was lost; subscribing again");
            let mut delay = RESUBSCRIBE_MIN;
            (sink, stream) = loop {
                match self.subscribe().await {
                    Ok(subscription) => break subscription,
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "cannot subscribe to Redis events");
                        tokio::time::sleep(delay).await;
                        delay = delay.saturating_mul(2).min(RESUBSCRIBE_MAX);
                    }
                }
            };
            tracing::info!("subscribed to Redis events again");
            let _ = self.events.send(Revocation::Resync);
        }
    }

    /// Forwards messages until the connection ends or stops answering pings.
    async fn forward(
        &self,
        sink: &mut redis::aio::PubSubSink,
        stream: &mut redis::aio::PubSubStream,
    ) {
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        heartbeat.tick().await;
        loop {
            tokio::select! {
                message = stream.next() => {
                    let Some(message) = message else {
                        return;
                    };
                    let payload: Result<String, _> = message.get_payload();
                    match payload.ok().as_deref().and_then(decode) {
                        // No receiver is not an error: nobody caches what the event would revoke.
                        Some(event) => {
                            let _ = self.events.send(event);
                        }
                        None => tracing::warn!(channel = %self.channel, "ignored a malformed event"),
                    }
                }
                _ = heartbeat.tick() => {
                    let pong = tokio::time::timeout(self.timeout, sink.ping::<redis::Value>()).await;
                    if !matches!(pong, Ok(Ok(_))) {
                        return;
                    }
                }
            }
        }
    }
}

/// `session:<id>`, `user:<id>`, `profile:<id>`, `signing_keys`, `wechat_access_token:<appid>` or
/// `resync`.
fn encode(event: &Revocation) -> String {
    match event {
        Revocation::Session(id) => format!("session:{id}"),
        Revocation::User(id) => format!("user:{id}"),
        Revocation::Profile(id) => format!("profile:{id}"),
        Revocation::SigningKeys => "signing_keys".into(),
        Revocation::WechatAccessToken(appid) => format!("wechat_access_token:{appid}"),
        Revocation::Resync => "resync".into(),
    }
}

fn decode(text: &str) -> Option<Revocation> {
    match text.split_once(':') {
        Some(("session", id)) => SessionId::parse(id).ok().map(Revocation::Session),
        Some(("user", id)) => UserId::parse(id).ok().map(Revocation::User),
        Some(("profile", id)) => UserId::parse(id).ok().map(Revocation::Profile),
        Some(("wechat_access_token", appid)) => {
            AppId::parse(appid).ok().map(Revocation::WechatAccessToken)
        }
        None if text == "signing_keys" => Some(Revocation::SigningKeys),
        None if text == "resync" => Some(Revocation::Resync),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn events_survive_their_text_form() {
        let user = UserId::generate(std::time::UNIX_EPOCH);
        let session = SessionId::generate(std::time::UNIX_EPOCH);
        for event in [
            Revocation::Session(session),
            Revocation::User(user.clone()),
            Revocation::Profile(user),
            Revocation::SigningKeys,
            Revocation::WechatAccessToken(AppId::parse("wx0000000000000001").unwrap()),
            Revocation::Resync,
        ] {
            assert_eq!(decode(&encode(&event)), Some(event));
        }
        assert_eq!(decode("user:not-an-id"), None);
        assert_eq!(decode("other"), None);
    }
}
