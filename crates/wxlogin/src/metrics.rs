//! Prometheus metrics: counters, histograms and gauges kept in atomics, and the text exposition
//! format (version 0.0.4) that `GET /metrics` on `metrics.listen` serves.
//!
//! Written here rather than with a metrics crate: the series are few and fixed, and every label
//! value is either a `&'static str` chosen by the code (an API name, an error code, a trigger), a
//! configured appid, or a route template of the router. So no value that a request brings can
//! become a label, by the types: the callers cannot hand in a `String`. Appids are looked up among
//! the configured ones (anything else is `unknown`); route templates are interned once each (at
//! most [`MAX_ROUTES`], then `other`).
//!
//! The hot path takes a read lock of the family's map (shared, never exclusive once the series
//! exists), finds the series by a small `Copy` key without allocating, and adds to atomics.
//!
//! The module knows nothing of the layers above it (`http`, `services`, `wechat`, `store`):
//! they call the recording methods with their own vocabulary turned into labels.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

/// Distinct route templates kept apart at most; later ones are counted as `other`.
pub const MAX_ROUTES: usize = 256;

/// The route label of a request no route matched (a 404, or a method no route has).
pub const ROUTE_UNMATCHED: &str = "unmatched";
/// The route label of a request the built-in gateway forwarded.
pub const ROUTE_GATEWAY: &str = "gateway";
const ROUTE_OTHER: &str = "other";
/// The appid label of a login whose appid is absent or not configured.
pub const APP_UNKNOWN: &str = "unknown";

/// Upper bounds, in seconds, of the HTTP latency buckets.
const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Upper bounds, in seconds, of the WeChat latency buckets.
const WECHAT_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// How one call to WeChat ended, as the `errcode` label shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WechatOutcome {
    /// WeChat answered with this errcode (0: success). Only errcodes of a fixed table: the caller
    /// reports an unknown one as `Failed("unknown")`.
    Errcode(i64),
    /// No errcode: `timeout`, `connect`, `transport`, `http_status`, `malformed`, `unknown`.
    Failed(&'static str),
}

/// Why an access token was fetched from WeChat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenTrigger {
    /// A request needed a token and none was fresh.
    Request,
    /// The background refresher renewed one in its last minutes.
    Proactive,
    /// WeChat had rejected the previous one.
    Invalidated,
}

impl TokenTrigger {
    pub const ALL: [Self; 3] = [Self::Request, Self::Proactive, Self::Invalidated];

    fn as_str(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Proactive => "proactive",
            Self::Invalidated => "invalidated",
        }
    }
}

#[derive(Default)]
struct Counter(AtomicU64);

impl Counter {
    fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

struct Histogram {
    bounds: &'static [f64],
    /// One per bound, and the last for `+Inf`; not cumulative (summed up when rendered).
    counts: Box<[AtomicU64]>,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let i = self
            .bounds
            .iter()
            .position(|bound| secs <= *bound)
            .unwrap_or(self.bounds.len());
        if let Some(count) = self.counts.get(i) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let le = self
                .bounds
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), f64::to_string);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
        let _ = writeln!(out, "{name}_count{} {cumulative}", braces(labels));
    }
}

fn braces(labels: &str) -> String {
    if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    }
}

/// The series of one metric family, by a small `Copy` key.
struct Family<K, V> {
    series: RwLock<HashMap<K, V>>,
}

impl<K: Eq + Hash + Copy, V> Family<K, V> {
    fn new() -> Self {
        Self {
            series: RwLock::new(HashMap::new()),
        }
    }

    /// Runs `f` on the series of `key`, created by `make` the first time.
    fn with(&self, key: K, make: impl FnOnce() -> V, f: impl FnOnce(&V)) {
        {
            let series = self.series.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(value) = series.get(&key) {
                f(value);
                return;
            }
        }
        let mut series = self.series.write().unwrap_or_else(PoisonError::into_inner);
        f(series.entry(key).or_insert_with(make));
    }

    /// Every series as (rendered labels, value), in label order, for the exposition.
    fn each(&self, labels: impl Fn(&K) -> String, mut f: impl FnMut(&str, &V)) {
        let series = self.series.read().unwrap_or_else(PoisonError::into_inner);
        let mut rows: Vec<(String, &V)> = series.iter().map(|(k, v)| (labels(k), v)).collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        for (labels, value) in rows {
            f(&labels, value);
        }
    }

    /// `f` of every series, in no particular order.
    fn collect<T>(&self, f: impl Fn(&K, &V) -> T) -> Vec<T> {
        let series = self.series.read().unwrap_or_else(PoisonError::into_inner);
        series.iter().map(|(k, v)| f(k, v)).collect()
    }

    fn len(&self) -> usize {
        self.series
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

struct HttpSeries {
    requests: Counter,
    latency: Histogram,
}

/// Route templates interned to small ids; ids 0, 1 and 2 are the fixed labels.
struct Routes {
    ids: HashMap<Box<str>, u16>,
    names: Vec<Box<str>>,
}

impl Routes {
    fn new() -> Self {
        let mut routes = Self {
            ids: HashMap::new(),
            names: Vec::new(),
        };
        for fixed in [ROUTE_UNMATCHED, ROUTE_GATEWAY, ROUTE_OTHER] {
            routes.ids.insert(fixed.into(), routes.names.len() as u16);
            routes.names.push(fixed.into());
        }
        routes
    }
}

const ROUTE_ID_UNMATCHED: u16 = 0;
const ROUTE_ID_GATEWAY: u16 = 1;
const ROUTE_ID_OTHER: u16 = 2;

/// The route of a request as the HTTP layer knows it.
#[derive(Debug, Clone, Copy)]
pub enum Route<'a> {
    /// The template of the matched route (`/v1/users/{id}`), never the path itself.
    Template(&'a str),
    Gateway,
    Unmatched,
}

/// The methods kept apart; any other is `other`.
fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

struct Inner {
    version: &'static str,
    /// Configured appids; the index is the label id, `apps.len()` is `unknown`.
    apps: Vec<Box<str>>,
    app_ids: HashMap<Box<str>, u16>,
    routes: RwLock<Routes>,
    http: Family<(u16, &'static str, u16), HttpSeries>,
    logins: Family<(u16, &'static str), Counter>,
    wechat_calls: Family<(&'static str, WechatOutcome), Counter>,
    wechat_latency: Family<&'static str, Histogram>,
    token_refreshes: Family<(u16, TokenTrigger, bool), Counter>,
    refresh_rotations: Counter,
    refresh_reuse: Counter,
    rate_limited: Family<(&'static str, &'static str), Counter>,
    shared_errors: Family<&'static str, Counter>,
    database_errors: Family<(&'static str, &'static str), Counter>,
    sessions_active: AtomicI64,
    /// When `sessions_active` was counted (Unix ms); `i64::MIN` before the first count.
    sessions_counted_at: AtomicI64,
    sessions_counting: AtomicBool,
    // Audit log and retention.
    audit_write_failures: Counter,
    retention_purged: Family<RetentionTable, Counter>,
}

/// What the retention purge deletes, as the `table` label of `wxlogin_retention_purged_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetentionTable {
    Sessions,
    RefreshTokens,
    LoginTickets,
    AuditEvents,
}

impl RetentionTable {
    pub const ALL: [Self; 4] = [
        Self::Sessions,
        Self::RefreshTokens,
        Self::LoginTickets,
        Self::AuditEvents,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sessions => "sessions",
            Self::RefreshTokens => "refresh_tokens",
            Self::LoginTickets => "login_tickets",
            Self::AuditEvents => "audit_events",
        }
    }
}

/// The metrics of one server; cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl Default for Metrics {
    /// Metrics without configured apps (a client or a store built on its own, in tools and tests).
    fn default() -> Self {
        Self::new(std::iter::empty::<&str>())
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Metrics for the configured `appids`: only these become `appid` labels.
    pub fn new<S: AsRef<str>>(appids: impl IntoIterator<Item = S>) -> Self {
        let apps: Vec<Box<str>> = appids.into_iter().map(|a| a.as_ref().into()).collect();
        let app_ids = apps
            .iter()
            .enumerate()
            .map(|(i, a)| (a.clone(), i as u16))
            .collect();
        let metrics = Self(Arc::new(Inner {
            version: env!("CARGO_PKG_VERSION"),
            apps,
            app_ids,
            routes: RwLock::new(Routes::new()),
            http: Family::new(),
            logins: Family::new(),
            wechat_calls: Family::new(),
            wechat_latency: Family::new(),
            token_refreshes: Family::new(),
            refresh_rotations: Counter::default(),
            refresh_reuse: Counter::default(),
            rate_limited: Family::new(),
            shared_errors: Family::new(),
            database_errors: Family::new(),
            sessions_active: AtomicI64::new(0),
            sessions_counted_at: AtomicI64::new(i64::MIN),
            sessions_counting: AtomicBool::new(false),
            audit_write_failures: Counter::default(),
            retention_purged: Family::new(),
        }));
        for table in RetentionTable::ALL {
            metrics
                .0
                .retention_purged
                .with(table, Counter::default, |_| {});
        }
        // Series that alerts divide by or take rates of exist from the start, at zero.
        for app in 0..metrics.0.apps.len() as u16 {
            for outcome in ["new", "returning"] {
                metrics
                    .0
                    .logins
                    .with((app, outcome), Counter::default, |_| {});
            }
            for trigger in TokenTrigger::ALL {
                for ok in [true, false] {
                    let key = (app, trigger, ok);
                    metrics
                        .0
                        .token_refreshes
                        .with(key, Counter::default, |_| {});
                }
            }
        }
        metrics
    }

    fn app_id(&self, appid: Option<&str>) -> u16 {
        appid
            .and_then(|a| self.0.app_ids.get(a).copied())
            .unwrap_or(self.0.apps.len() as u16)
    }

    fn app_label(&self, id: u16) -> &str {
        self.0
            .apps
            .get(usize::from(id))
            .map_or(APP_UNKNOWN, |a| a.as_ref())
    }

    fn route_id(&self, route: Route<'_>) -> u16 {
        let template = match route {
            Route::Unmatched => return ROUTE_ID_UNMATCHED,
            Route::Gateway => return ROUTE_ID_GATEWAY,
            Route::Template(template) => template,
        };
        if let Some(id) = self
            .0
            .routes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .ids
            .get(template)
        {
            return *id;
        }
        let mut routes = self
            .0
            .routes
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(id) = routes.ids.get(template) {
            return *id;
        }
        if routes.names.len() >= MAX_ROUTES {
            return ROUTE_ID_OTHER;
        }
        let id = routes.names.len() as u16;
        routes.names.push(template.into());
        routes.ids.insert(template.into(), id);
        id
    }

    /// One HTTP request answered with `status` after `elapsed`.
    pub fn http_request(&self, route: Route<'_>, method: &str, status: u16, elapsed: Duration) {
        let key = (self.route_id(route), method_label(method), status);
        let make = || HttpSeries {
            requests: Counter::default(),
            latency: Histogram::new(HTTP_BUCKETS),
        };
        self.0.http.with(key, make, |series| {
            series.requests.inc();
            series.latency.observe(elapsed);
        });
    }

    /// One login: `new`, `returning` or the error code; `appid` counts only if configured.
    pub fn login(&self, appid: Option<&str>, outcome: &'static str) {
        let key = (self.app_id(appid), outcome);
        self.0.logins.with(key, Counter::default, Counter::inc);
    }

    /// One HTTP exchange with WeChat (each attempt of a retried call counts).
    pub fn wechat_call(&self, api: &'static str, outcome: WechatOutcome, elapsed: Duration) {
        self.0
            .wechat_calls
            .with((api, outcome), Counter::default, Counter::inc);
        self.0.wechat_latency.with(
            api,
            || Histogram::new(WECHAT_BUCKETS),
            |h| h.observe(elapsed),
        );
    }

    /// One access-token fetch from WeChat for a configured app, and whether it worked.
    pub fn access_token_refresh(&self, appid: &str, trigger: TokenTrigger, ok: bool) {
        let Some(app) = self.0.app_ids.get(appid).copied() else {
            return;
        };
        self.0
            .token_refreshes
            .with((app, trigger, ok), Counter::default, Counter::inc);
    }

    /// A refresh token exchanged for a new pair.
    pub fn refresh_rotated(&self) {
        self.0.refresh_rotations.inc();
    }

    /// A rotated refresh token presented again: its session was revoked.
    pub fn refresh_reuse_detected(&self) {
        self.0.refresh_reuse.inc();
    }

    /// A request refused by `[rate_limits]`.
    pub fn rate_limited(&self, endpoint: &'static str, scope: &'static str) {
        self.0
            .rate_limited
            .with((endpoint, scope), Counter::default, Counter::inc);
    }

    /// A call of the shared state (claims, leases, events, limiter, values) that failed.
    pub fn shared_state_error(&self, operation: &'static str) {
        self.0
            .shared_errors
            .with(operation, Counter::default, Counter::inc);
    }

    /// A store operation that failed, by operation and kind (`unavailable`, `corrupt`, `other`).
    pub fn database_error(&self, operation: &'static str, kind: &'static str) {
        self.0
            .database_errors
            .with((operation, kind), Counter::default, Counter::inc);
    }

    /// A count of live sessions is due when the last one is older than `max_age_ms` at `now_ms`
    /// and nobody else is counting: then the caller counts and [`SessionsCount::set`]s it.
    pub fn sessions_active_due(&self, now_ms: i64, max_age_ms: i64) -> Option<SessionsCount<'_>> {
        let counted_at = self.0.sessions_counted_at.load(Ordering::Relaxed);
        if counted_at != i64::MIN && now_ms.saturating_sub(counted_at) < max_age_ms {
            return None;
        }
        self.0
            .sessions_counting
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .ok()?;
        Some(SessionsCount {
            metrics: self,
            now_ms,
        })
    }

    /// An audit log entry that could not be written (the change it records stands).
    pub fn audit_write_failed(&self) {
        self.0.audit_write_failures.inc();
    }

    /// Rows the retention purge deleted from `table`.
    pub fn retention_purged(&self, table: RetentionTable, rows: u64) {
        self.0.retention_purged.with(table, Counter::default, |c| {
            c.0.fetch_add(rows, Ordering::Relaxed);
        });
    }

    /// How many series there are in all (a bound the tests hold).
    /// The calls to WeChat that did not succeed, as (api, errcode label, count), since this
    /// process started, most first (the admin console's overview).
    pub fn wechat_failures(&self) -> Vec<(&'static str, String, u64)> {
        let mut rows: Vec<_> = self
            .0
            .wechat_calls
            .collect(|(api, outcome), c| {
                let code = match outcome {
                    WechatOutcome::Errcode(0) => return None,
                    WechatOutcome::Errcode(n) => n.to_string(),
                    WechatOutcome::Failed(what) => (*what).to_owned(),
                };
                Some((*api, code, c.get()))
            })
            .into_iter()
            .flatten()
            .filter(|(_, _, n)| *n > 0)
            .collect();
        rows.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| (a.0, &a.1).cmp(&(b.0, &b.1))));
        rows
    }

    /// The access-token fetches of `appid` since this process started: (succeeded, failed).
    pub fn access_token_refreshes(&self, appid: &str) -> (u64, u64) {
        let Some(app) = self.0.app_ids.get(appid).copied() else {
            return (0, 0);
        };
        self.0
            .token_refreshes
            .collect(|(a, _, ok), c| (*a == app, *ok, c.get()))
            .into_iter()
            .filter(|(a, _, _)| *a)
            .fold(
                (0, 0),
                |(good, bad), (_, ok, n)| {
                    if ok { (good + n, bad) } else { (good, bad + n) }
                },
            )
    }

    pub fn series_count(&self) -> usize {
        let inner = &self.0;
        inner.http.len()
            + inner.logins.len()
            + inner.wechat_calls.len()
            + inner.wechat_latency.len()
            + inner.token_refreshes.len()
            + inner.rate_limited.len()
            + inner.shared_errors.len()
            + inner.database_errors.len()
            + inner.retention_purged.len()
            + 5
    }

    /// Every series in the Prometheus text format.
    pub fn render(&self) -> String {
        let inner = &self.0;
        let mut out = String::with_capacity(16 * 1024);
        let routes: Vec<Box<str>> = inner
            .routes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .names
            .clone();
        let route = |id: u16| {
            routes
                .get(usize::from(id))
                .map_or(ROUTE_OTHER, |r| r.as_ref())
        };

        header(
            &mut out,
            "wxlogin_build_info",
            "gauge",
            "Always 1; the version of this server.",
        );
        let _ = writeln!(
            out,
            "wxlogin_build_info{{version=\"{}\"}} 1",
            escape(inner.version)
        );

        let http_labels = |(r, m, s): &(u16, &'static str, u16)| {
            format!(
                "route=\"{}\",method=\"{m}\",status=\"{s}\"",
                escape(route(*r))
            )
        };
        header(
            &mut out,
            "wxlogin_http_requests_total",
            "counter",
            "HTTP requests answered, by route template, method and status.",
        );
        inner.http.each(http_labels, |labels, s| {
            let _ = writeln!(
                out,
                "wxlogin_http_requests_total{{{labels}}} {}",
                s.requests.get()
            );
        });
        header(
            &mut out,
            "wxlogin_http_request_duration_seconds",
            "histogram",
            "HTTP request latency, by route template, method and status.",
        );
        inner.http.each(http_labels, |labels, s| {
            s.latency
                .write(&mut out, "wxlogin_http_request_duration_seconds", labels);
        });

        header(
            &mut out,
            "wxlogin_logins_total",
            "counter",
            "Logins with a WeChat code, by appid and outcome (new, returning or the error code).",
        );
        inner.logins.each(
            |(app, outcome)| {
                format!(
                    "appid=\"{}\",outcome=\"{outcome}\"",
                    escape(self.app_label(*app))
                )
            },
            |labels, c| {
                let _ = writeln!(out, "wxlogin_logins_total{{{labels}}} {}", c.get());
            },
        );

        header(
            &mut out,
            "wxlogin_wechat_calls_total",
            "counter",
            "HTTP exchanges with WeChat (each attempt), by API and errcode (0: success; or timeout, \
             connect, transport, http_status, malformed, unknown).",
        );
        inner.wechat_calls.each(
            |(api, outcome)| {
                let code = match outcome {
                    WechatOutcome::Errcode(n) => n.to_string(),
                    WechatOutcome::Failed(what) => (*what).to_owned(),
                };
                format!("api=\"{api}\",errcode=\"{code}\"")
            },
            |labels, c| {
                let _ = writeln!(out, "wxlogin_wechat_calls_total{{{labels}}} {}", c.get());
            },
        );
        header(
            &mut out,
            "wxlogin_wechat_call_duration_seconds",
            "histogram",
            "Latency of HTTP exchanges with WeChat, by API.",
        );
        inner.wechat_latency.each(
            |api| format!("api=\"{api}\""),
            |labels, h| h.write(&mut out, "wxlogin_wechat_call_duration_seconds", labels),
        );

        header(
            &mut out,
            "wxlogin_wechat_access_token_refreshes_total",
            "counter",
            "Access tokens fetched from WeChat, by appid, trigger (request, proactive, \
             invalidated) and result (ok, error).",
        );
        inner.token_refreshes.each(
            |(app, trigger, ok)| {
                format!(
                    "appid=\"{}\",trigger=\"{}\",result=\"{}\"",
                    escape(self.app_label(*app)),
                    trigger.as_str(),
                    if *ok { "ok" } else { "error" }
                )
            },
            |labels, c| {
                let _ = writeln!(
                    out,
                    "wxlogin_wechat_access_token_refreshes_total{{{labels}}} {}",
                    c.get()
                );
            },
        );

        header(
            &mut out,
            "wxlogin_refresh_rotations_total",
            "counter",
            "Refresh tokens exchanged for a new pair.",
        );
        let _ = writeln!(
            out,
            "wxlogin_refresh_rotations_total {}",
            inner.refresh_rotations.get()
        );
        header(
            &mut out,
            "wxlogin_refresh_reuse_detected_total",
            "counter",
            "Rotated refresh tokens presented again (the session was revoked).",
        );
        let _ = writeln!(
            out,
            "wxlogin_refresh_reuse_detected_total {}",
            inner.refresh_reuse.get()
        );

        header(
            &mut out,
            "wxlogin_rate_limited_total",
            "counter",
            "Requests refused by [rate_limits], by endpoint and scope (per_ip, per_user, per_app: the limit that was full).",
        );
        inner.rate_limited.each(
            |(endpoint, scope)| format!("endpoint=\"{endpoint}\",scope=\"{scope}\""),
            |labels, c| {
                let _ = writeln!(out, "wxlogin_rate_limited_total{{{labels}}} {}", c.get());
            },
        );

        header(
            &mut out,
            "wxlogin_shared_state_errors_total",
            "counter",
            "Failed calls of the shared state (memory or Redis), by operation.",
        );
        inner.shared_errors.each(
            |operation| format!("operation=\"{operation}\""),
            |labels, c| {
                let _ = writeln!(
                    out,
                    "wxlogin_shared_state_errors_total{{{labels}}} {}",
                    c.get()
                );
            },
        );

        header(
            &mut out,
            "wxlogin_database_errors_total",
            "counter",
            "Failed store operations, by operation and kind (unavailable, corrupt, other).",
        );
        inner.database_errors.each(
            |(operation, kind)| format!("operation=\"{operation}\",kind=\"{kind}\""),
            |labels, c| {
                let _ = writeln!(out, "wxlogin_database_errors_total{{{labels}}} {}", c.get());
            },
        );

        header(
            &mut out,
            "wxlogin_sessions_active",
            "gauge",
            "Sessions neither revoked nor expired, in the whole database (counted at most once a \
             minute).",
        );
        let _ = writeln!(
            out,
            "wxlogin_sessions_active {}",
            inner.sessions_active.load(Ordering::Relaxed)
        );

        header(
            &mut out,
            "wxlogin_audit_write_failures_total",
            "counter",
            "Audit log entries that could not be written (the changes they record stand).",
        );
        let _ = writeln!(
            out,
            "wxlogin_audit_write_failures_total {}",
            inner.audit_write_failures.get()
        );
        header(
            &mut out,
            "wxlogin_retention_purged_total",
            "counter",
            "Rows the retention purge deleted, by table (sessions, refresh_tokens, login_tickets, \
             audit_events).",
        );
        inner.retention_purged.each(
            |table| format!("table=\"{}\"", table.as_str()),
            |labels, c| {
                let _ = writeln!(
                    out,
                    "wxlogin_retention_purged_total{{{labels}}} {}",
                    c.get()
                );
            },
        );
        out
    }
}

/// The right to count live sessions, taken by [`Metrics::sessions_active_due`]; dropping it
/// without a count lets the next scrape try again.
pub struct SessionsCount<'a> {
    metrics: &'a Metrics,
    now_ms: i64,
}

impl SessionsCount<'_> {
    pub fn set(self, live: u64) {
        let inner = &self.metrics.0;
        inner
            .sessions_active
            .store(i64::try_from(live).unwrap_or(i64::MAX), Ordering::Relaxed);
        inner
            .sessions_counted_at
            .store(self.now_ms, Ordering::Relaxed);
    }
}

impl Drop for SessionsCount<'_> {
    fn drop(&mut self) {
        self.metrics
            .0
            .sessions_counting
            .store(false, Ordering::Release);
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value as the text format needs it: backslash, double quote and newline escaped.
fn escape(value: &str) -> std::borrow::Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return value.into();
    }
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_sum_in_seconds() {
        let m = Metrics::new(["wx0000000000000001"]);
        m.http_request(
            Route::Template("/v1/me"),
            "GET",
            200,
            Duration::from_millis(3),
        );
        m.http_request(
            Route::Template("/v1/me"),
            "GET",
            200,
            Duration::from_secs(20),
        );
        let text = m.render();
        assert!(text.contains(
            "wxlogin_http_request_duration_seconds_bucket{route=\"/v1/me\",method=\"GET\",status=\"200\",le=\"0.001\"} 0"
        ));
        assert!(text.contains(
            "wxlogin_http_request_duration_seconds_bucket{route=\"/v1/me\",method=\"GET\",status=\"200\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "wxlogin_http_request_duration_seconds_bucket{route=\"/v1/me\",method=\"GET\",status=\"200\",le=\"+Inf\"} 2"
        ));
        assert!(text.contains(
            "wxlogin_http_request_duration_seconds_sum{route=\"/v1/me\",method=\"GET\",status=\"200\"} 20.003"
        ));
        assert!(text.contains(
            "wxlogin_http_requests_total{route=\"/v1/me\",method=\"GET\",status=\"200\"} 2"
        ));
    }

    #[test]
    fn unknown_appids_and_methods_make_no_label_and_routes_are_capped() {
        let m = Metrics::new(["wx0000000000000001"]);
        m.login(Some("wxffffffffffffffff"), "unknown_app");
        m.login(None, "invalid_request");
        m.access_token_refresh("wxffffffffffffffff", TokenTrigger::Request, true);
        m.http_request(Route::Unmatched, "BREW", 404, Duration::ZERO);
        for i in 0..(MAX_ROUTES + 10) {
            let template = format!("/r{i}");
            m.http_request(Route::Template(&template), "GET", 200, Duration::ZERO);
        }
        let text = m.render();
        assert!(!text.contains("wxffffffffffffffff"));
        assert!(!text.contains("BREW"));
        assert!(text.contains("wxlogin_logins_total{appid=\"unknown\",outcome=\"unknown_app\"} 1"));
        assert!(
            text.contains("route=\"other\",method=\"GET\",status=\"200\""),
            "routes beyond the cap are `other`"
        );
        assert!(text.contains("route=\"unmatched\",method=\"other\",status=\"404\""));
    }

    #[test]
    fn sessions_are_counted_once_per_period_by_one_caller() {
        let m = Metrics::default();
        let due = m.sessions_active_due(1_000, 60_000).unwrap();
        assert!(m.sessions_active_due(1_000, 60_000).is_none(), "one counts");
        due.set(7);
        assert!(m.sessions_active_due(30_000, 60_000).is_none(), "fresh");
        assert!(m.render().contains("wxlogin_sessions_active 7"));
        drop(m.sessions_active_due(61_000, 60_000).unwrap());
        assert!(
            m.sessions_active_due(61_000, 60_000).is_some(),
            "a dropped count is retried"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(escape("/v1/users/{id}"), "/v1/users/{id}");
    }
}
