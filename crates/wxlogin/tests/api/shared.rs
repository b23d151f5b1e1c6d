//! The shared-state seam's conformance suite, run on memory and on Redis (WXLOGIN_TEST_REDIS_URL),
//! through the library API. Each Redis test uses a key prefix of its own, so tests never collide.
//!
//! "Instances" are separate `SharedState`s over one backing state: for memory the same
//! `MemoryState` (one process), for Redis separate connections with the same prefix, as N servers
//! behind a load balancer have.
//!
//! Time: memory runs on a `ManualClock`; Redis expires keys by its own clock, so where an expiry
//! must pass the TTLs are a few hundred milliseconds of real time (about 1 s in all, each
//! marked). The rate limiter takes the time from its caller, so its tests run on a `ManualClock`
//! for both.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::Receiver;
use wxlogin::clock::{Clock as _, ManualClock};
use wxlogin::config::{Rate, RedisSettings};
use wxlogin::domain::{SessionId, UserId};
use wxlogin::shared::memory::MemoryState;
use wxlogin::shared::redis::RedisState;
use wxlogin::shared::{Limit, Revocation, SharedState, Verdict};

use crate::helpers::{TestApp, in_ci, skip_outside_ci};

const REDIS_URL_VAR: &str = "WXLOGIN_TEST_REDIS_URL";
/// Expiries that must really pass on Redis are this short.
const SHORT_TTL: Duration = Duration::from_millis(300);
const LONG_TTL: Duration = Duration::from_secs(30);

/// Tests that count on pub/sub delivery, and the one that kills every pub/sub connection, take turns.
static PUBSUB: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The Redis settings for a fresh prefix, or `None` (said once) outside CI without Redis.
pub(crate) fn redis_settings() -> Option<RedisSettings> {
    let Ok(url) = std::env::var(REDIS_URL_VAR) else {
        assert!(!in_ci(), "CI=true but {REDIS_URL_VAR} is not set");
        static NOTICE: std::sync::Once = std::sync::Once::new();
        NOTICE.call_once(|| {
            skip_outside_ci("Redis shared-state tests", &format!("set {REDIS_URL_VAR}"))
        });
        return None;
    };
    Some(RedisSettings {
        url,
        key_prefix: format!("wxtest:{:016x}:", rand::random::<u64>()),
        ..RedisSettings::default()
    })
}

async fn connect(settings: &RedisSettings) -> RedisState {
    RedisState::connect(settings)
        .await
        .unwrap_or_else(|e| panic!("Redis at {REDIS_URL_VAR} is unreachable: {e}"))
}

/// Some instances over one backing state, and how time passes for it.
struct Subject {
    name: &'static str,
    instances: Vec<SharedState>,
    clock: Option<ManualClock>,
}

impl Subject {
    fn one(&self) -> &SharedState {
        &self.instances[0]
    }

    fn two(&self) -> &SharedState {
        &self.instances[1]
    }

    /// Lets `by` pass: on the manual clock, or for real for Redis.
    async fn pass(&self, by: Duration) {
        match &self.clock {
            Some(clock) => clock.advance(by),
            None => tokio::time::sleep(by).await,
        }
    }
}

/// Memory always; Redis too when configured.
async fn subjects() -> Vec<Subject> {
    let clock = ManualClock::starting_now();
    let memory = SharedState::from_one(Arc::new(MemoryState::new(clock.shared())));
    let mut subjects = vec![Subject {
        name: "memory",
        instances: vec![memory.clone(), memory],
        clock: Some(clock),
    }];
    if let Some(settings) = redis_settings() {
        let instances = vec![
            SharedState::from_one(Arc::new(connect(&settings).await)),
            SharedState::from_one(Arc::new(connect(&settings).await)),
        ];
        subjects.push(Subject {
            name: "redis",
            instances,
            clock: None,
        });
    }
    subjects
}

#[tokio::test]
async fn a_claim_is_won_once_until_it_expires() {
    for s in subjects().await {
        let name = s.name;
        assert!(
            s.one().claims.claim(&[1; 32], SHORT_TTL).await.unwrap(),
            "{name}"
        );
        assert!(
            !s.two().claims.claim(&[1; 32], SHORT_TTL).await.unwrap(),
            "{name}: the other instance loses"
        );
        assert!(
            !s.one().claims.claim(&[1; 32], SHORT_TTL).await.unwrap(),
            "{name}"
        );
        assert!(
            s.two().claims.claim(&[2; 32], SHORT_TTL).await.unwrap(),
            "{name}"
        );
        // Real time on Redis: 350 ms.
        s.pass(SHORT_TTL + Duration::from_millis(50)).await;
        assert!(
            s.two().claims.claim(&[1; 32], SHORT_TTL).await.unwrap(),
            "{name}: expired"
        );
    }
}

#[tokio::test]
async fn a_lease_has_one_holder_until_released_or_expired() {
    for s in subjects().await {
        let name = s.name;
        let (one, two) = (&s.one().leases, &s.two().leases);
        let first = one
            .try_acquire("refresh:wx1", LONG_TTL)
            .await
            .unwrap()
            .unwrap();
        assert!(
            two.try_acquire("refresh:wx1", LONG_TTL)
                .await
                .unwrap()
                .is_none(),
            "{name}"
        );
        assert!(
            two.try_acquire("refresh:wx2", LONG_TTL)
                .await
                .unwrap()
                .is_some(),
            "{name}"
        );
        one.release(&first).await.unwrap();
        let second = two
            .try_acquire("refresh:wx1", SHORT_TTL)
            .await
            .unwrap()
            .unwrap();
        // The first holder's late release frees nothing now.
        one.release(&first).await.unwrap();
        assert!(
            one.try_acquire("refresh:wx1", LONG_TTL)
                .await
                .unwrap()
                .is_none(),
            "{name}: token checked"
        );
        // Real time on Redis: 350 ms.
        s.pass(SHORT_TTL + Duration::from_millis(50)).await;
        let third = one
            .try_acquire("refresh:wx1", LONG_TTL)
            .await
            .unwrap()
            .unwrap();
        assert_ne!(second.token, third.token, "{name}");
        // The expired holder's release leaves the new holder's lease in place.
        two.release(&second).await.unwrap();
        assert!(
            two.try_acquire("refresh:wx1", LONG_TTL)
                .await
                .unwrap()
                .is_none(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn acquire_waits_for_the_release() {
    for s in subjects().await {
        let name = s.name;
        let held = s.one().leases.acquire("avatars", LONG_TTL).await.unwrap();
        let waiter = {
            let leases = s.two().leases.clone();
            tokio::spawn(async move { leases.acquire("avatars", LONG_TTL).await.unwrap() })
        };
        // A few polls of the waiter (real time, 100 ms).
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !waiter.is_finished(),
            "{name}: waits while the lease is held"
        );
        s.one().leases.release(&held).await.unwrap();
        let next = tokio::time::timeout(Duration::from_secs(2), waiter)
            .await
            .unwrap_or_else(|_| panic!("{name}: the waiter got the lease"))
            .unwrap();
        assert_ne!(next.token, held.token, "{name}");
    }
}

fn rate(text: &str) -> Rate {
    text.parse().unwrap()
}

fn limit(key: &str, rate: Rate) -> Limit {
    Limit {
        key: key.to_owned(),
        rate,
    }
}

/// The limiter takes the time from its caller, so memory and Redis both run on this test clock.
#[tokio::test]
async fn a_limit_lets_a_burst_through_then_one_per_interval_on_every_instance() {
    for s in subjects().await {
        let name = s.name;
        let clock = ManualClock::starting_now();
        let per_ip = [limit("login:per_ip:a", rate("3/min"))];
        for instance in [s.one(), s.two(), s.one()] {
            let verdict = instance.limiter.take(&per_ip, clock.now()).await;
            assert_eq!(verdict.unwrap(), Verdict::Allowed, "{name}");
        }
        // The fourth, on either instance, waits for one interval (20 s) to drain.
        for instance in [s.two(), s.one()] {
            let verdict = instance.limiter.take(&per_ip, clock.now()).await;
            assert_eq!(
                verdict.unwrap(),
                Verdict::Refused {
                    limit: 0,
                    retry_after: Duration::from_secs(20)
                },
                "{name}: counted across instances; a refused request moves nothing"
            );
        }
        let other = [limit("login:per_ip:b", rate("3/min"))];
        let verdict = s.two().limiter.take(&other, clock.now()).await;
        assert_eq!(verdict.unwrap(), Verdict::Allowed, "{name}: another key");

        clock.advance(Duration::from_millis(19_999));
        let verdict = s.two().limiter.take(&per_ip, clock.now()).await;
        assert_eq!(
            verdict.unwrap(),
            Verdict::Refused {
                limit: 0,
                retry_after: Duration::from_millis(1)
            },
            "{name}"
        );
        clock.advance(Duration::from_millis(1));
        let verdict = s.two().limiter.take(&per_ip, clock.now()).await;
        assert_eq!(verdict.unwrap(), Verdict::Allowed, "{name}: one more");
        let verdict = s.one().limiter.take(&per_ip, clock.now()).await;
        assert!(
            matches!(verdict.unwrap(), Verdict::Refused { .. }),
            "{name}: and no more"
        );

        // Idle for a whole period, the key has its full burst again.
        clock.advance(Duration::from_secs(60));
        for _ in 0..3 {
            let verdict = s.one().limiter.take(&per_ip, clock.now()).await;
            assert_eq!(verdict.unwrap(), Verdict::Allowed, "{name}");
        }
    }
}

#[tokio::test]
async fn limits_taken_together_count_all_or_nothing() {
    for s in subjects().await {
        let name = s.name;
        let clock = ManualClock::starting_now();
        let ip = limit("refresh:per_ip:x", rate("2/min"));
        let user = limit("refresh:per_user:y", rate("1/h"));
        let app = limit("refresh:per_app:z", rate("1/s"));
        let all = [ip.clone(), user.clone(), app.clone()];
        let verdict = s.one().limiter.take(&all, clock.now()).await;
        assert_eq!(verdict.unwrap(), Verdict::Allowed, "{name}");
        // The user (an hour to wait) and the app (a second) are full: the longest wait is named,
        // and the IP, which had room, is not counted.
        let verdict = s.two().limiter.take(&all, clock.now()).await;
        assert_eq!(
            verdict.unwrap(),
            Verdict::Refused {
                limit: 1,
                retry_after: Duration::from_secs(3_600)
            },
            "{name}"
        );
        let alone = [ip.clone()];
        let verdict = s.one().limiter.take(&alone, clock.now()).await;
        assert_eq!(
            verdict.unwrap(),
            Verdict::Allowed,
            "{name}: the IP's second request"
        );
        let verdict = s.one().limiter.take(&alone, clock.now()).await;
        assert_eq!(
            verdict.unwrap(),
            Verdict::Refused {
                limit: 0,
                retry_after: Duration::from_secs(30)
            },
            "{name}"
        );
        // Nothing to count is always allowed.
        let verdict = s.one().limiter.take(&[], clock.now()).await;
        assert_eq!(verdict.unwrap(), Verdict::Allowed, "{name}");
    }
}

#[tokio::test]
async fn rates_that_do_not_divide_evenly_keep_their_burst_and_their_pace() {
    for s in subjects().await {
        let name = s.name;
        let clock = ManualClock::starting_now();
        // 7 per minute: 8571.428... ms apart, kept to the microsecond.
        let limits = [limit("phone:per_user:u", rate("7/min"))];
        for _ in 0..7 {
            let verdict = s.one().limiter.take(&limits, clock.now()).await;
            assert_eq!(verdict.unwrap(), Verdict::Allowed, "{name}");
        }
        let verdict = s.two().limiter.take(&limits, clock.now()).await;
        assert_eq!(
            verdict.unwrap(),
            Verdict::Refused {
                limit: 0,
                retry_after: Duration::from_micros(8 * 8_571_428 - 60_000_000)
            },
            "{name}"
        );
        // A long run takes seven a minute.
        let mut allowed = 0;
        for _ in 0..600 {
            clock.advance(Duration::from_secs(1));
            let verdict = s.one().limiter.take(&limits, clock.now()).await;
            if verdict.unwrap() == Verdict::Allowed {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 70, "{name}");
    }
}

#[tokio::test]
async fn values_are_shared_expire_and_are_deleted_only_while_unchanged() {
    for s in subjects().await {
        let name = s.name;
        let (one, two) = (&s.one().values, &s.two().values);
        assert_eq!(one.get("token:wx1").await.unwrap(), None, "{name}");
        one.set("token:wx1", b"first\x00\xff", LONG_TTL)
            .await
            .unwrap();
        assert_eq!(
            two.get("token:wx1").await.unwrap().as_deref(),
            Some(&b"first\x00\xff"[..]),
            "{name}: seen by the other instance, bytes intact"
        );
        // Replaced by one instance: the other's delete of the value it read earlier does nothing.
        two.set("token:wx1", b"second", LONG_TTL).await.unwrap();
        assert!(
            !one.delete_if_equal("token:wx1", b"first\x00\xff")
                .await
                .unwrap(),
            "{name}"
        );
        assert_eq!(
            one.get("token:wx1").await.unwrap().as_deref(),
            Some(&b"second"[..]),
            "{name}"
        );
        assert!(
            one.delete_if_equal("token:wx1", b"second").await.unwrap(),
            "{name}"
        );
        assert_eq!(two.get("token:wx1").await.unwrap(), None, "{name}: gone");
        assert!(
            !two.delete_if_equal("token:wx1", b"second").await.unwrap(),
            "{name}: nothing left to delete"
        );

        one.set("token:wx2", b"short", SHORT_TTL).await.unwrap();
        assert!(two.get("token:wx2").await.unwrap().is_some(), "{name}");
        // Real time on Redis: 350 ms.
        s.pass(SHORT_TTL + Duration::from_millis(50)).await;
        assert_eq!(two.get("token:wx2").await.unwrap(), None, "{name}: expired");
        assert!(
            !two.delete_if_equal("token:wx2", b"short").await.unwrap(),
            "{name}: an expired value is not there to delete"
        );
    }
}

async fn next(receiver: &mut Receiver<Revocation>, name: &str) -> Revocation {
    tokio::time::timeout(Duration::from_secs(3), receiver.recv())
        .await
        .unwrap_or_else(|_| panic!("{name}: no event within 3 s"))
        .unwrap()
}

#[tokio::test]
async fn subscribers_of_every_instance_hear_every_event() {
    let _turn = PUBSUB.lock().await;
    for s in subjects().await {
        let name = s.name;
        let mut one = s.one().events.subscribe();
        let mut two = s.two().events.subscribe();
        let user = UserId::generate(std::time::UNIX_EPOCH);
        let session = SessionId::generate(std::time::UNIX_EPOCH);
        s.one()
            .events
            .publish(Revocation::User(user.clone()))
            .await
            .unwrap();
        s.two()
            .events
            .publish(Revocation::Session(session.clone()))
            .await
            .unwrap();
        s.one()
            .events
            .publish(Revocation::SigningKeys)
            .await
            .unwrap();
        for receiver in [&mut one, &mut two] {
            assert_eq!(next(receiver, name).await, Revocation::User(user.clone()));
            assert_eq!(
                next(receiver, name).await,
                Revocation::Session(session.clone())
            );
            assert_eq!(next(receiver, name).await, Revocation::SigningKeys);
        }
    }
}

#[tokio::test]
async fn redis_instances_share_nothing_across_prefixes() {
    let (Some(a), Some(b)) = (redis_settings(), redis_settings()) else {
        return;
    };
    let (a, b) = (connect(&a).await, connect(&b).await);
    let (a, b) = (
        SharedState::from_one(Arc::new(a)),
        SharedState::from_one(Arc::new(b)),
    );
    assert!(a.claims.claim(&[7; 32], LONG_TTL).await.unwrap());
    assert!(
        b.claims.claim(&[7; 32], LONG_TTL).await.unwrap(),
        "another deployment's key"
    );
    assert!(
        a.leases
            .try_acquire("avatars", LONG_TTL)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        b.leases
            .try_acquire("avatars", LONG_TTL)
            .await
            .unwrap()
            .is_some()
    );
    a.ping().await.unwrap();
}

#[tokio::test]
async fn a_redis_subscriber_keeps_hearing_after_its_connection_is_killed() {
    let Some(settings) = redis_settings() else {
        return;
    };
    let _turn = PUBSUB.lock().await;
    let listener = SharedState::from_one(Arc::new(connect(&settings).await));
    let publisher = SharedState::from_one(Arc::new(connect(&settings).await));
    let mut events = listener.events.subscribe();
    publisher
        .events
        .publish(Revocation::SigningKeys)
        .await
        .unwrap();
    assert_eq!(next(&mut events, "before").await, Revocation::SigningKeys);

    let admin = redis::Client::open(settings.url.as_str()).unwrap();
    let mut admin = admin.get_multiplexed_async_connection().await.unwrap();
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(
        killed >= 2,
        "both instances' subscriptions were killed ({killed})"
    );

    // Subscribed again (after the first backoff step): whatever was published in between is lost,
    // which the receiver is told instead of being sent anything made up.
    assert_eq!(
        next(&mut events, "after the kill").await,
        Revocation::Resync
    );
    let user = UserId::generate(std::time::UNIX_EPOCH);
    publisher
        .events
        .publish(Revocation::User(user.clone()))
        .await
        .unwrap();
    assert_eq!(
        next(&mut events, "after the kill").await,
        Revocation::User(user)
    );
    // Commands went on over the command connection all along.
    listener.ping().await.unwrap();
}

#[tokio::test]
async fn redis_start_fails_clearly_without_showing_the_password() {
    // Nothing listens on port 1; `rediss://` is built in (rustls), so it fails the same way.
    for url in ["redis://127.0.0.1:1/0", "rediss://127.0.0.1:1/0"] {
        let settings = RedisSettings {
            url: url.into(),
            password: Some("redis-start-secret".into()),
            connect_timeout_ms: 200,
            ..RedisSettings::default()
        };
        let Err(e) = RedisState::connect(&settings).await else {
            panic!("connected to nothing");
        };
        let text = e.to_string();
        assert!(text.contains("unavailable: redis connect"), "{url}: {text}");
        assert!(!text.contains("redis-start-secret"), "{text}");
    }
}

#[tokio::test]
async fn two_servers_sharing_redis_send_one_login_code_to_wechat_once() {
    let Some(settings) = redis_settings() else {
        return;
    };
    let a = TestApp::spawn_with(|s| s.redis = settings).await;
    let b = a.spawn_beside(|_| {}).await;
    let body =
        serde_json::json!({ "code": a.code_for("alice"), "appid": crate::helpers::DEMO_APPID });
    let (first, second) = tokio::join!(
        a.post_json("/v1/auth/wechat/login", body.clone()),
        b.post_json("/v1/auth/wechat/login", body),
    );
    let mut statuses = [first.status().as_u16(), second.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [200, 400],
        "one server logs in, the other refuses the used code"
    );
    let refused = if first.status() == 400 { first } else { second };
    crate::helpers::assert_error(refused, 400, "invalid_code").await;
    assert_eq!(
        a.wx.calls("jscode2session").await,
        1,
        "the code reached WeChat once"
    );

    // Both answer ready while Redis does.
    for app in [&a, &b] {
        let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 200);
    }
}

#[tokio::test]
async fn a_logout_on_one_server_is_refused_by_another_that_cached_the_session() {
    let Some(settings) = redis_settings() else {
        return;
    };
    let a = TestApp::spawn_with(|s| s.redis = settings).await;
    let issuer = a.state.settings.issuer();
    let b = a.spawn_beside(|s| s.tokens.issuer = Some(issuer)).await;
    for all_devices in [false, true] {
        let login = a.login(if all_devices { "bob" } else { "alice" }).await;
        let access = login["access_token"].as_str().unwrap();
        // B has read the session and trusts it for `tokens.session_cache_ms`; neither clock moves.
        assert_eq!(b.get_authed("/v1/me", access).await.status(), 200);
        assert_eq!(b.get_authed("/v1/me", access).await.status(), 200);
        let logout = a
            .http
            .post(a.url("/v1/auth/logout"))
            .bearer_auth(access)
            .json(&serde_json::json!({ "all_devices": all_devices }))
            .send()
            .await
            .unwrap();
        assert_eq!(logout.status(), 204);
        assert_eq!(a.get_authed("/v1/me", access).await.status(), 401);
        // B hears the revocation through Redis: refused within a second, without its clock moving.
        let mut refused = false;
        for _ in 0..100 {
            if b.get_authed("/v1/me", access).await.status() == 401 {
                refused = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(
            refused,
            "B still accepts a token logged out on A (all_devices: {all_devices})"
        );
    }
}

/// A TCP relay to Redis that a test can cut and restore, as a network fault would: while cut, open
/// connections are closed and new ones are dropped at once.
pub(crate) struct Relay {
    pub(crate) url: String,
    up: Arc<std::sync::atomic::AtomicBool>,
    connections: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Relay {
    pub(crate) async fn to(redis_url: &str) -> Self {
        let mut url = reqwest::Url::parse(redis_url).unwrap();
        let target = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(6379));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(listener.local_addr().unwrap().port()))
            .unwrap();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let connections = Arc::new(std::sync::Mutex::new(Vec::new()));
        let accept = tokio::spawn({
            let (up, connections) = (up.clone(), connections.clone());
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if !up.load(std::sync::atomic::Ordering::SeqCst) {
                        continue;
                    }
                    let target = target.clone();
                    let relay = tokio::spawn(async move {
                        if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    connections.lock().unwrap().push(relay);
                }
            }
        });
        Self {
            url: url.to_string(),
            up,
            connections,
            accept,
        }
    }

    pub(crate) fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    pub(crate) fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

#[tokio::test]
async fn while_redis_is_cut_logins_fail_closed_and_the_server_recovers_without_restart() {
    let Some(mut settings) = redis_settings() else {
        return;
    };
    let relay = Relay::to(&settings.url).await;
    settings.url = relay.url.clone();
    settings.response_timeout_ms = 300;
    let app = TestApp::spawn_with(|s| s.redis = settings).await;
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    relay.cut();
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    crate::helpers::assert_error(ready, 503, "unavailable").await;
    let login = app
        .post_json(
            "/v1/auth/wechat/login",
            serde_json::json!({ "code": app.code_for("bob"), "appid": crate::helpers::DEMO_APPID }),
        )
        .await;
    crate::helpers::assert_error(login, 503, "unavailable").await;
    assert_eq!(
        app.wx.calls("jscode2session").await,
        0,
        "no code reaches WeChat unclaimed"
    );

    relay.restore();
    // The command connection reconnects by itself (real time: well under a second here).
    let mut ready = false;
    for _ in 0..50 {
        let status = app
            .http
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status();
        if status == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "ready again once Redis is back");
    app.login("bob").await;
}
