//! The console's two languages and the viewer's time zone.
//!
//! The language is the `wxlogin_lang` cookie (set by the switch in every page's header), else the
//! best of `zh` and `en` in `Accept-Language`, else English. Every text is written as a pair in
//! the page that shows it (`lang.t("Users", "用户")`), so that nothing is ever left untranslated
//! in a table somewhere else.
//!
//! The time zone is the `wxlogin_tz` cookie, minutes east of UTC, which `/console.js` sets from
//! the browser's own clock (and reloads the page once when it changed); without it, UTC. Every
//! time is shown in it, and the overview's hours and days begin at its midnight.

use axum::http::{HeaderMap, header};

pub(crate) const LANG_COOKIE: &str = "wxlogin_lang";
pub(crate) const TZ_COOKIE: &str = "wxlogin_tz";

/// Offsets in use on Earth run from UTC−12:00 to UTC+14:00.
const MAX_OFFSET_MINUTES: i32 = 14 * 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    En,
    Zh,
}

impl Lang {
    pub(crate) fn code(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Zh => "zh-CN",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        let primary = text.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        match primary.as_str() {
            "en" => Some(Self::En),
            "zh" => Some(Self::Zh),
            _ => None,
        }
    }

    /// The text in this language.
    pub(crate) fn t<'a>(self, en: &'a str, zh: &'a str) -> &'a str {
        match self {
            Self::En => en,
            Self::Zh => zh,
        }
    }

    /// The cookie's language, else `Accept-Language`'s preferred one of ours, else English.
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        if let Some(lang) = cookie(headers, LANG_COOKIE).and_then(|v| Self::parse(&v)) {
            return lang;
        }
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .and_then(accept_language)
            .unwrap_or(Self::En)
    }
}

/// The language of ours with the highest weight (the first of equals); `None` when neither is
/// listed.
fn accept_language(header: &str) -> Option<Lang> {
    let mut best: Option<(Lang, u16)> = None;
    for item in header.split(',') {
        let mut parts = item.split(';');
        let Some(lang) = parts.next().and_then(Lang::parse) else {
            continue;
        };
        let weight = parts
            .find_map(|p| p.trim().strip_prefix("q="))
            .map_or(1000, |q| {
                q.trim()
                    .parse::<f32>()
                    .map_or(0, |q| (q.clamp(0.0, 1.0) * 1000.0) as u16)
            });
        if weight > 0 && best.is_none_or(|(_, w)| weight > w) {
            best = Some((lang, weight));
        }
    }
    best.map(|(lang, _)| lang)
}

/// A cookie's value from the request's `Cookie` headers.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.to_owned())
}

/// The viewer's offset from UTC, in minutes east.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Tz(i32);

impl Tz {
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        cookie(headers, TZ_COOKIE)
            .and_then(|v| v.parse::<i32>().ok())
            .filter(|m| m.abs() <= MAX_OFFSET_MINUTES)
            .map_or(Self(0), Self)
    }

    #[cfg(test)]
    pub(crate) fn minutes(minutes: i32) -> Self {
        Self(minutes)
    }

    pub(crate) fn offset_millis(self) -> i64 {
        i64::from(self.0) * 60_000
    }

    /// `UTC+08:00`.
    pub(crate) fn label(self) -> String {
        let sign = if self.0 < 0 { '-' } else { '+' };
        let m = self.0.unsigned_abs();
        format!("UTC{sign}{:02}:{:02}", m / 60, m % 60)
    }

    /// `2026-12-01 18:30` in this zone.
    pub(crate) fn minute(self, unix_ms: i64) -> String {
        let (date, secs) = self.civil(unix_ms);
        format!("{date} {:02}:{:02}", secs / 3600, secs / 60 % 60)
    }

    /// `2026-12-01 18:30:05` in this zone.
    pub(crate) fn second(self, unix_ms: i64) -> String {
        let (date, secs) = self.civil(unix_ms);
        format!(
            "{date} {:02}:{:02}:{:02}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )
    }

    /// `12-01` (month and day) in this zone.
    pub(crate) fn day(self, unix_ms: i64) -> String {
        let (date, _) = self.civil(unix_ms);
        date.get(5..).unwrap_or(&date).to_owned()
    }

    /// The date (`YYYY-MM-DD`) and the second of its day.
    fn civil(self, unix_ms: i64) -> (String, i64) {
        let local = unix_ms.div_euclid(1000) + i64::from(self.0) * 60;
        let days = local.div_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        (format!("{y:04}-{m:02}-{d:02}"), local.rem_euclid(86_400))
    }
}

/// Howard Hinnant's `civil_from_days`: the proleptic Gregorian date of a day count from
/// 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn the_language_comes_from_the_cookie_then_accept_language() {
        assert_eq!(Lang::of(&headers(&[])), Lang::En);
        let zh = [("accept-language", "zh-CN,zh;q=0.9,en;q=0.8")];
        assert_eq!(Lang::of(&headers(&zh)), Lang::Zh);
        let en = [("accept-language", "fr;q=1, en-US;q=0.9, zh-TW;q=0.5")];
        assert_eq!(Lang::of(&headers(&en)), Lang::En);
        let weighted = [("accept-language", "en;q=0.3, zh-Hans;q=0.7")];
        assert_eq!(Lang::of(&headers(&weighted)), Lang::Zh);
        let neither = [("accept-language", "de, fr;q=0.5")];
        assert_eq!(Lang::of(&headers(&neither)), Lang::En);
        let refused = [("accept-language", "zh;q=0, en;q=0.1")];
        assert_eq!(Lang::of(&headers(&refused)), Lang::En);
        let chosen = [
            ("accept-language", "zh-CN"),
            ("cookie", "a=b; wxlogin_lang=en"),
        ];
        assert_eq!(Lang::of(&headers(&chosen)), Lang::En);
        let junk = [("accept-language", "zh-CN"), ("cookie", "wxlogin_lang=xx")];
        assert_eq!(Lang::of(&headers(&junk)), Lang::Zh);
    }

    #[test]
    fn times_are_shown_in_the_viewers_zone() {
        // 2026-12-01T17:30:05Z
        let at = 1_796_146_205_000;
        assert_eq!(Tz::default().second(at), "2026-12-01 17:30:05");
        let beijing = Tz::of(&headers(&[("cookie", "wxlogin_tz=480")]));
        assert_eq!(beijing.minute(at), "2026-12-02 01:30");
        assert_eq!(beijing.day(at), "12-02");
        assert_eq!(beijing.label(), "UTC+08:00");
        let west = Tz::minutes(-150);
        assert_eq!(west.minute(at), "2026-12-01 15:00");
        assert_eq!(west.label(), "UTC-02:30");
        assert_eq!(Tz::default().second(0), "1970-01-01 00:00:00");
        assert_eq!(Tz::default().second(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(Tz::default().minute(-60_000), "1969-12-31 23:59");
        for bad in ["wxlogin_tz=9999", "wxlogin_tz=x", "wxlogin_tz=-841"] {
            let map = HeaderMap::from_iter([(header::COOKIE, HeaderValue::from_str(bad).unwrap())]);
            assert_eq!(Tz::of(&map), Tz::default(), "{bad}");
        }
    }
}
