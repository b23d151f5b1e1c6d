use std::time::Duration;

use rand::Rng as _;
use serde::Deserialize;

use super::error::WechatError;
use crate::clock::Stopwatch;
use crate::metrics::{Metrics, WechatOutcome};

/// How the client reaches WeChat.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientConfig {
    /// `https://api.weixin.qq.com` in production; the simulator's URL in development and tests.
    pub base_url: String,
    /// Milliseconds to establish a connection.
    pub connect_timeout_ms: u64,
    /// Milliseconds for one whole attempt (connect, send, answer).
    pub timeout_ms: u64,
    pub retry: RetryPolicy,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            base_url: "https://api.weixin.qq.com".into(),
            connect_timeout_ms: 2_000,
            timeout_ms: 5_000,
            retry: RetryPolicy::default(),
        }
    }
}

/// Retries of idempotent calls after -1 or a transport failure: full-jitter exponential backoff.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = never retry).
    pub max_attempts: u32,
    pub base_delay_ms: u64,
    pub max_delay_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay_ms: 100,
            max_delay_ms: 2_000,
        }
    }
}

impl RetryPolicy {
    fn delay(&self, retry: u32) -> Duration {
        let ceiling = self
            .base_delay_ms
            .saturating_mul(1u64 << retry.min(16))
            .min(self.max_delay_ms);
        Duration::from_millis(rand::thread_rng().gen_range(0..=ceiling))
    }
}

/// Whether a call may be sent again after WeChat may have seen it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Idempotency {
    /// Reads and token fetches: retried on -1, timeouts and transport errors.
    Idempotent,
    /// Single-use codes and key resets: retried only when the connection never opened.
    Once,
}

/// The longest answer accepted from WeChat; real ones are well under 4 KiB.
const MAX_BODY: usize = 256 * 1024;

/// A client for WeChat's server APIs with a keep-alive pool. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WechatClient {
    http: reqwest::Client,
    base_url: String,
    retry: RetryPolicy,
    metrics: Metrics,
}

impl WechatClient {
    pub fn new(config: &ClientConfig) -> Result<Self, WechatError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .timeout(Duration::from_millis(config.timeout_ms))
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(32)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("wxlogin/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| WechatError::Transport(describe(e)))?;
        Ok(Self {
            http,
            base_url: config.base_url.trim_end_matches('/').to_owned(),
            retry: config.retry.clone(),
            metrics: Metrics::default(),
        })
    }

    /// Counts every exchange with WeChat (`wxlogin_wechat_calls_total`, its latency) in `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub(crate) fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{path}", self.base_url))
    }

    pub(crate) fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{}{path}", self.base_url))
    }

    /// Sends a request (rebuilt for every attempt) and returns WeChat's JSON object once its errcode
    /// is 0 or absent.
    pub(crate) async fn call(
        &self,
        api: &'static str,
        idempotency: Idempotency,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<serde_json::Map<String, serde_json::Value>, WechatError> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let watch = Stopwatch::start();
            let result = self.attempt(build()).await;
            let outcome = match &result {
                Ok(_) => WechatOutcome::Errcode(0),
                Err(e) => e.outcome(),
            };
            self.metrics.wechat_call(api, outcome, watch.elapsed());
            match &result {
                Ok(_) => tracing::debug!(api, attempt, "wechat call succeeded"),
                Err(e) => tracing::debug!(
                    api,
                    attempt,
                    errcode = e.errcode(),
                    rid = e.rid(),
                    error = %e,
                    "wechat call failed"
                ),
            }
            let retry = match (&result, idempotency) {
                (Err(e), Idempotency::Idempotent) => e.is_unavailable(),
                (Err(WechatError::Connect(_)), Idempotency::Once) => true,
                _ => false,
            };
            if !retry || attempt >= self.retry.max_attempts {
                return result;
            }
            tokio::time::sleep(self.retry.delay(attempt - 1)).await;
        }
    }

    async fn attempt(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<serde_json::Map<String, serde_json::Value>, WechatError> {
        let mut response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        if !status.is_success() {
            return Err(WechatError::HttpStatus {
                status: status.as_u16(),
            });
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(malformed("the body is too large"));
            }
            body.extend_from_slice(&chunk);
        }
        // WeChat's Content-Type is not reliable (text/plain is seen): parse whatever it says.
        let value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| malformed("the body is not JSON"))?;
        let serde_json::Value::Object(object) = value else {
            return Err(malformed("the body is not a JSON object"));
        };
        let errcode = match object.get("errcode") {
            None | Some(serde_json::Value::Null) => 0,
            Some(serde_json::Value::Number(n)) => n
                .as_i64()
                .ok_or_else(|| malformed("errcode is not an integer"))?,
            // One documented example quotes it.
            Some(serde_json::Value::String(s)) => s
                .trim()
                .parse()
                .map_err(|_| malformed("errcode is not an integer"))?,
            Some(_) => return Err(malformed("errcode is not an integer")),
        };
        if errcode != 0 {
            let errmsg = object.get("errmsg").and_then(|m| m.as_str()).unwrap_or("");
            return Err(WechatError::from_errcode(errcode, errmsg));
        }
        Ok(object)
    }
}

pub(crate) fn malformed(reason: &str) -> WechatError {
    WechatError::Malformed {
        reason: reason.to_owned(),
    }
}

fn transport_error(e: reqwest::Error) -> WechatError {
    if e.is_timeout() {
        WechatError::Timeout
    } else if e.is_connect() {
        WechatError::Connect(describe(e))
    } else {
        WechatError::Transport(describe(e))
    }
}

/// The error and its causes, without the URL: `jscode2session` carries the AppSecret and the
/// other APIs the access token in the query string.
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_and_jittered() {
        let policy = RetryPolicy {
            max_attempts: 5,
            base_delay_ms: 100,
            max_delay_ms: 1_000,
        };
        for retry in 0..40 {
            let ceiling = (100u64 << retry.min(16)).min(1_000);
            for _ in 0..20 {
                assert!(policy.delay(retry) <= Duration::from_millis(ceiling));
            }
        }
        let distinct: std::collections::HashSet<_> = (0..50).map(|_| policy.delay(3)).collect();
        assert!(distinct.len() > 1, "no jitter");
    }
}
