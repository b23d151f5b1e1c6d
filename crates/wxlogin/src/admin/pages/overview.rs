//! The overview: logins by outcome and new users over a selectable range (from the audit log, so
//! for the whole deployment), live sessions, each app's access-token health, and the calls to
//! WeChat that failed, by errcode (this server's counters since it started: the deployment's are
//! in the metrics, `docs/operations.md`). Charts are SVG drawn here; hours and days begin at the
//! viewer's midnight.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::super::context::{Console, Viewer, html};
use super::super::i18n::Lang;
use super::parts::failure;
use super::{Section, code, escape, page, table};
use crate::services::admin::{self as actions, AdminError, TokenStatus};
use crate::services::audit::EventType;
use crate::store::{AuditCount, AuditCountQuery};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

/// The ranges the overview offers: its key, its length, and the length of one bar.
const RANGES: [(&str, i64, i64); 3] = [
    ("24h", DAY, HOUR),
    ("7d", 7 * DAY, DAY),
    ("30d", 30 * DAY, DAY),
];

#[derive(Deserialize, Default)]
pub(crate) struct Range {
    #[serde(default)]
    range: String,
}

/// The colours of the series (and of their legend).
const NEW: &str = "#2d6cdf";
const RETURNING: &str = "#7fb27f";

/// `GET /?range=24h|7d|30d`.
pub(crate) async fn show(
    State(console): State<Console>,
    viewer: Viewer,
    Query(range): Query<Range>,
) -> Response {
    let lang = viewer.lang;
    let (key, length, bar) = RANGES
        .iter()
        .copied()
        .find(|(k, ..)| *k == range.range)
        .unwrap_or(RANGES[0]);
    let now = console.now();
    let offset = viewer.tz.offset_millis();
    // Whole bars: the first begins at the bucket boundary at or before `now - length`.
    let first = (now - length + offset).div_euclid(bar);
    let last = (now + offset).div_euclid(bar);
    let query = AuditCountQuery {
        kinds: vec![
            EventType::Login.as_str().to_owned(),
            EventType::Registration.as_str().to_owned(),
        ],
        since: first * bar - offset,
        bucket_ms: bar,
        offset_ms: offset,
    };
    let counts = match console.app.store.count_audit_events(&query).await {
        Ok(counts) => counts,
        Err(e) => return failure(&viewer, &AdminError::Store(e)),
    };
    let live = match console.app.store.count_live_sessions(now).await {
        Ok(n) => n,
        Err(e) => return failure(&viewer, &AdminError::Store(e)),
    };
    let series = Series::of(&counts, first, last);
    let labels: Vec<String> = (first..=last)
        .map(|b| {
            let start = b * bar - offset;
            if bar == HOUR {
                format!("{}h", viewer.tz.minute(start).get(11..13).unwrap_or(""))
            } else {
                viewer.tz.day(start)
            }
        })
        .collect();
    let per = if bar == HOUR {
        lang.t("per hour", "每小时")
    } else {
        lang.t("per day", "每天")
    };
    let mut body = range_links(lang, key);
    let total_logins: u64 = series.new.iter().chain(&series.returning).sum();
    let total_new: u64 = series.new.iter().sum();
    body.push_str(&format!(
        "<div class=\"cards\">\n\
         <div class=\"card\"><div>{}</div><div class=\"figure\">{live}</div></div>\n\
         <div class=\"card\"><div>{}</div><div class=\"figure\">{total_logins}</div></div>\n\
         <div class=\"card\"><div>{}</div><div class=\"figure\">{total_new}</div></div>\n\
         </div>\n",
        lang.t("Live sessions", "有效会话"),
        lang.t("Logins in the range", "范围内登录次数"),
        lang.t("New users in the range", "范围内新用户"),
    ));
    body.push_str(&bar_chart(
        "logins",
        &format!("{} {per}", lang.t("Logins by outcome", "登录（按结果）")),
        &labels,
        &[
            (lang.t("new user", "新用户"), NEW, &series.new),
            (lang.t("returning", "老用户"), RETURNING, &series.returning),
        ],
    ));
    let new_users_title = format!("{} {per}", lang.t("New users", "新用户"));
    body.push_str(&bar_chart(
        "new-users",
        &new_users_title,
        &labels,
        &[(lang.t("new user", "新用户"), NEW, &series.new)],
    ));
    body.push_str(&tokens(&console, &viewer).await);
    body.push_str(&wechat_errors(&console, lang));
    html(
        StatusCode::OK,
        page(
            &viewer,
            Section::Overview,
            lang.t("Overview", "概览"),
            &body,
        ),
    )
}

fn range_links(lang: Lang, current: &str) -> String {
    let mut out = format!(
        "<nav class=\"pager\" aria-label=\"{}\">",
        lang.t("Time range", "时间范围")
    );
    for (key, ..) in RANGES {
        let label = match key {
            "24h" => lang.t("Last 24 hours", "最近 24 小时"),
            "7d" => lang.t("Last 7 days", "最近 7 天"),
            _ => lang.t("Last 30 days", "最近 30 天"),
        };
        let here = if key == current {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(out, "<a href=\"/?range={key}\"{here}>{label}</a>");
    }
    out.push_str("</nav>\n");
    out
}

/// Logins by bar: new users (a login that created the user, or a registration that did) and
/// returning ones.
#[derive(Debug, PartialEq, Eq)]
struct Series {
    new: Vec<u64>,
    returning: Vec<u64>,
}

impl Series {
    fn of(counts: &[AuditCount], first: i64, last: i64) -> Self {
        let len = usize::try_from(last - first + 1).unwrap_or(0);
        let mut series = Self {
            new: vec![0; len],
            returning: vec![0; len],
        };
        for count in counts {
            let Ok(i) = usize::try_from(count.bucket - first) else {
                continue;
            };
            if i >= len {
                continue;
            }
            let details: serde_json::Value =
                serde_json::from_str(&count.details).unwrap_or_default();
            let n = u64::try_from(count.count).unwrap_or(0);
            let new = match count.kind.as_str() {
                "login" => details["outcome"] == "new",
                "registration" => details["new"] == true,
                _ => continue,
            };
            if new {
                series.new[i] += n;
            } else {
                series.returning[i] += n;
            }
        }
        series
    }
}

/// A bar chart of stacked `series` (name, colour, one value per label), as SVG with a title and
/// a legend; the numbers are in the bars' titles too (a pointer shows them, a reader reads them).
fn bar_chart(
    id: &str,
    title: &str,
    labels: &[String],
    series: &[(&str, &str, &Vec<u64>)],
) -> String {
    const WIDTH: f64 = 960.0;
    const HEIGHT: f64 = 220.0;
    const LEFT: f64 = 40.0;
    const BOTTOM: f64 = 24.0;
    let n = labels.len().max(1);
    let totals: Vec<u64> = (0..n)
        .map(|i| {
            series
                .iter()
                .map(|(_, _, v)| v.get(i).copied().unwrap_or(0))
                .sum()
        })
        .collect();
    let max = totals.iter().copied().max().unwrap_or(0).max(1);
    let plot = HEIGHT - BOTTOM - 8.0;
    let step = (WIDTH - LEFT) / n as f64;
    let width = (step * 0.8).max(1.0);
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-labelledby=\"{id}-title\" \
         xmlns=\"http://www.w3.org/2000/svg\">\n<title id=\"{id}-title\">{}</title>\n\
         <line x1=\"{LEFT}\" y1=\"{y0}\" x2=\"{WIDTH}\" y2=\"{y0}\" stroke=\"#9aa4ae\"/>\n\
         <text x=\"{tx}\" y=\"12\" font-size=\"11\" text-anchor=\"end\" fill=\"#5c6670\">{max}</text>\n\
         <text x=\"{tx}\" y=\"{y0}\" font-size=\"11\" text-anchor=\"end\" fill=\"#5c6670\">0</text>\n",
        escape(title),
        y0 = HEIGHT - BOTTOM,
        tx = LEFT - 6.0,
    );
    let every = n.div_ceil(12);
    for (i, label) in labels.iter().enumerate() {
        let x = LEFT + step * i as f64 + (step - width) / 2.0;
        let mut y = HEIGHT - BOTTOM;
        for (name, colour, values) in series {
            let value = values.get(i).copied().unwrap_or(0);
            if value == 0 {
                continue;
            }
            let h = plot * value as f64 / max as f64;
            y -= h;
            let _ = writeln!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{width:.1}\" height=\"{h:.1}\" \
                 fill=\"{colour}\"><title>{}: {} {value}</title></rect>",
                escape(label),
                escape(name)
            );
        }
        if i % every == 0 {
            let _ = writeln!(
                svg,
                "<text x=\"{:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\" \
                 fill=\"#5c6670\">{}</text>",
                x + width / 2.0,
                HEIGHT - 8.0,
                escape(label)
            );
        }
    }
    svg.push_str("</svg>\n");
    let mut legend = String::from("<div class=\"legend\">");
    for (name, colour, values) in series {
        let total: u64 = values.iter().sum();
        let _ = write!(
            legend,
            "<span><svg width=\"12\" height=\"12\" aria-hidden=\"true\"><rect width=\"12\" \
             height=\"12\" fill=\"{colour}\"/></svg> {} ({total})</span>",
            escape(name)
        );
    }
    legend.push_str("</div>");
    format!(
        "<figure>\n<figcaption>{}</figcaption>\n{svg}{legend}\n</figure>\n",
        escape(title)
    )
}

/// Each app's shared access token: how long it has left, and this server's failed fetches.
async fn tokens(console: &Console, viewer: &Viewer) -> String {
    let lang = viewer.lang;
    let admin = console.admin(viewer);
    let now = console.now();
    let mut rows = Vec::new();
    for app in &console.app.settings.apps {
        let health = match actions::access_token_status(&admin, &app.appid).await {
            Ok(TokenStatus::Shared(Some(facts))) if facts.expires_at_ms > now + 5 * 60_000 => {
                format!(
                    "<span class=\"badge good\">{}</span> {} {}",
                    lang.t("valid", "有效"),
                    (facts.expires_at_ms - now) / 60_000,
                    lang.t("min left", "分钟后到期")
                )
            }
            Ok(TokenStatus::Shared(Some(_))) => format!(
                "<span class=\"badge\">{}</span>",
                lang.t("renewing (under 5 min left)", "续期中（不足 5 分钟）")
            ),
            Ok(_) => lang
                .t(
                    "none yet: fetched at the first need",
                    "尚无：首次需要时获取",
                )
                .to_owned(),
            Err(_) => format!(
                "<span class=\"badge bad\">{}</span>",
                lang.t("shared state unavailable", "共享状态不可用")
            ),
        };
        let (fetched, failed) = console
            .app
            .metrics
            .access_token_refreshes(app.appid.as_str());
        let failures = if failed > 0 {
            format!("<span class=\"badge bad\">{failed}</span>")
        } else {
            "0".to_owned()
        };
        rows.push(vec![
            format!("<a href=\"/apps\">{}</a>", code(app.appid.as_str())),
            health,
            fetched.to_string(),
            failures,
        ]);
    }
    format!(
        "<h2>{}</h2>\n{}",
        lang.t("Access-token health", "access_token 状态"),
        table(
            lang.t("Per app", "按小程序"),
            &[
                "appid",
                lang.t("Shared token", "共享令牌"),
                lang.t("Fetched here", "本实例获取"),
                lang.t("Failed here", "本实例失败"),
            ],
            &rows,
            lang.t("No app is configured.", "未配置小程序。"),
        )
    )
}

/// The calls to WeChat that failed, by API and errcode, on this server since it started.
fn wechat_errors(console: &Console, lang: Lang) -> String {
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    let rows: Vec<Vec<String>> = console
        .app
        .metrics
        .wechat_failures()
        .into_iter()
        .map(|(api, errcode, n)| {
            *totals.entry(errcode.clone()).or_default() += n;
            vec![code(api), code(&errcode), n.to_string()]
        })
        .collect();
    format!(
        "<h2>{}</h2>\n<p class=\"empty\">{}</p>\n{}",
        lang.t("WeChat errors by errcode", "微信错误（按 errcode）"),
        lang.t(
            "This server since it started; the deployment's are in the metrics (wxlogin_wechat_calls_total).",
            "本实例自启动以来；整个部署的数据见指标 wxlogin_wechat_calls_total。"
        ),
        table(
            lang.t("Failed calls", "失败的调用"),
            &["API", "errcode", lang.t("Calls", "次数")],
            &rows,
            lang.t("No failed call.", "没有失败的调用。"),
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(bucket: i64, kind: &str, details: &str, count: i64) -> AuditCount {
        AuditCount {
            bucket,
            kind: kind.to_owned(),
            details: details.to_owned(),
            count,
        }
    }

    #[test]
    fn logins_and_registrations_fall_into_their_bars() {
        let counts = [
            count(9, "login", r#"{"outcome":"new"}"#, 4),
            count(10, "login", r#"{"outcome":"new"}"#, 2),
            count(10, "login", r#"{"outcome":"returning"}"#, 5),
            count(12, "registration", r#"{"policy":"closed","new":true}"#, 1),
            count(12, "registration", r#"{"policy":"closed","new":false}"#, 3),
            count(13, "login", r#"{"outcome":"new"}"#, 7),
        ];
        let series = Series::of(&counts, 10, 12);
        assert_eq!(series.new, vec![2, 0, 1]);
        assert_eq!(series.returning, vec![5, 0, 3]);
    }

    #[test]
    fn a_chart_scales_to_its_largest_bar_and_names_every_series() {
        let labels: Vec<String> = (0..3).map(|i| format!("{i}h")).collect();
        let a = vec![1, 0, 4];
        let b = vec![1, 0, 0];
        let svg = bar_chart(
            "x",
            "Logins <per hour>",
            &labels,
            &[("a", "#000", &a), ("b", "#fff", &b)],
        );
        assert!(svg.contains("<title id=\"x-title\">Logins &lt;per hour&gt;</title>"));
        assert!(
            svg.contains(">4</text>"),
            "the scale's top is the largest stack: {svg}"
        );
        assert_eq!(svg.matches("<rect x=").count(), 3, "no bar for a zero");
        assert!(svg.contains("2h: a 4"));
        assert!(svg.contains("a (5)") && svg.contains("b (1)"));
        assert!(!svg.contains("style="), "the CSP forbids inline style");
    }
}
