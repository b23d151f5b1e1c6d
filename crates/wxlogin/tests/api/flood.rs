//! A flood of distinct bogus login codes must not slow anyone else down: the code claims are
//! O(1) amortised and bounded, through the library API and through HTTP.
//!
//! These tests measure real elapsed time (the thing under test is latency), with the system clock
//! of the clock crate, and only ever compare it with a baseline measured in the same test.

use std::time::{Duration, SystemTime};

use futures::StreamExt as _;
use serde_json::json;
use wxlogin::clock::{Clock as _, ManualClock, SystemClock};
use wxlogin::config::RateLimitSettings;
use wxlogin::shared::Claims as _;
use wxlogin::shared::memory::MemoryState;

use crate::helpers::*;

/// As many distinct codes as the claim table holds (its documented bound).
const FLOOD: u32 = 100_000;
const CODE_MEMORY: Duration = Duration::from_secs(300);

fn elapsed(since: SystemTime) -> Duration {
    SystemClock.now().duration_since(since).unwrap_or_default()
}

fn key(n: u32) -> [u8; 32] {
    let mut key = [7u8; 32];
    key[..4].copy_from_slice(&n.to_be_bytes());
    key
}

/// Time of `batch` claims of fresh keys starting at `from`.
async fn time_claims(state: &MemoryState, from: u32, batch: u32) -> Duration {
    let start = SystemClock.now();
    for n in from..from + batch {
        assert!(state.claim(&key(n), CODE_MEMORY).await.unwrap());
    }
    elapsed(start)
}

#[tokio::test]
async fn a_flood_of_claims_costs_the_same_per_claim_and_stays_bounded() {
    let clock = ManualClock::starting_now();
    let state = MemoryState::new(clock.shared());
    let batch = 2_000;
    let early = time_claims(&state, 0, batch).await;
    for n in batch..FLOOD {
        assert!(state.claim(&key(n), CODE_MEMORY).await.unwrap());
    }
    // The table is full of live claims: every further claim evicts the oldest one.
    let late = time_claims(&state, FLOOD, batch).await;
    // An O(n) table would be thousands of times slower here; 20× leaves room for a loaded machine.
    assert!(
        late < early * 20 + Duration::from_millis(50),
        "claims slowed down under a flood: {early:?} then {late:?} per {batch}"
    );
    // Bounded: the oldest claims made room (WeChat's own single-use rule still refuses those
    // codes), the newest are remembered.
    assert!(state.claim(&key(0), CODE_MEMORY).await.unwrap());
    assert!(
        !state
            .claim(&key(FLOOD + batch - 1), CODE_MEMORY)
            .await
            .unwrap()
    );
    // And expiry empties it: the newest claim is forgotten after the code's lifetime.
    clock.advance(CODE_MEMORY + Duration::from_secs(1));
    assert!(
        state
            .claim(&key(FLOOD + batch - 1), CODE_MEMORY)
            .await
            .unwrap()
    );
}

/// The median of `rounds` sequential ordinary logins of fresh users.
async fn login_latency(app: &TestApp, tag: &str, rounds: usize) -> Duration {
    let mut times = Vec::new();
    for n in 0..rounds {
        let code = app.code_for(&format!("{tag}{n}"));
        let start = SystemClock.now();
        let response = app
            .post_json("/v1/auth/wechat/login", json!({ "code": code }))
            .await;
        times.push(elapsed(start));
        assert_eq!(response.status(), 200);
    }
    times.sort();
    times[rounds / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bogus_codes_does_not_slow_other_logins() {
    // From one address, as a flood would come: the rate limits would turn it away before the
    // claims, which are what this measures.
    let app = TestApp::spawn_with(|s| s.rate_limits = RateLimitSettings::off()).await;
    let baseline = login_latency(&app, "calm", 9).await;

    // The claim table already full from an earlier flood...
    for n in 0..FLOOD {
        let fresh = app.state.shared.claims.claim(&key(n), CODE_MEMORY).await;
        assert!(fresh.unwrap());
    }
    // ...and a few thousand more distinct bogus codes arriving concurrently over HTTP.
    let bogus = 3_000;
    let flood = {
        let http = app.http.clone();
        let url = app.url("/v1/auth/wechat/login");
        tokio::spawn(async move {
            futures::stream::iter(0..bogus)
                .map(|n| {
                    let http = http.clone();
                    let url = url.clone();
                    async move {
                        let code = format!("bogus-code-{n:08}");
                        let response = http.post(url).json(&json!({ "code": code })).send().await;
                        response.unwrap().status().as_u16()
                    }
                })
                .buffer_unordered(32)
                .collect::<Vec<u16>>()
                .await
        })
    };
    // Measure once the flood is under way. The flood runs on real sockets, so this waits in real
    // time, a few milliseconds at a time.
    while app.wx.calls("jscode2session").await < 9 + 100 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let before = app.wx.calls("jscode2session").await;
    let during = login_latency(&app, "busy", 9).await;
    let overlap = app.wx.calls("jscode2session").await - before - 9;
    let statuses = flood.await.unwrap();
    assert!(overlap > 0, "the logins ran during the flood");

    assert!(statuses.iter().all(|s| *s == 400), "bogus codes are 400");
    assert_eq!(app.wx.calls("jscode2session").await, 9 + bogus + 9);
    // Sharing two cores with 32 concurrent requests costs something; a stall behind a lock held
    // for a scan of the table would cost far more than this generous factor. (The constant only
    // keeps a sub-millisecond baseline from making the factor meaningless.)
    assert!(
        during < baseline * 25 + Duration::from_millis(100),
        "a login took {during:?} during the flood, {baseline:?} before"
    );
}
