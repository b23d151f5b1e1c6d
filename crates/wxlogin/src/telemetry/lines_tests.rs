//! The line format: where a request's context goes, in text and JSON, and colours only when asked.
#![allow(clippy::unwrap_used)]
use std::sync::{Arc, Mutex};

use super::*;
use crate::domain::UserId;
use crate::telemetry::request::{in_request, record_client_ip, record_user};

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl io::Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What `work` logs at INFO in `lines` format; a request context around the first event.
fn logged(lines: Lines, ansi: bool, user: &UserId) -> String {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let builder = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(ansi);
    let run = || {
        let context = RequestContext::new("r-1".into(), axum::http::Method::POST, None);
        futures::executor::block_on(in_request(context, async {
            record_client_ip("203.0.113.9".parse().unwrap());
            record_user(user);
            tracing::warn!(errcode = -1, rid = "a\"b", "WeChat unavailable");
        }));
        tracing::info!(version = "1", "outside");
    };
    match lines {
        Lines::Text => {
            tracing::subscriber::with_default(builder.event_format(lines).finish(), run);
        }
        Lines::Json => {
            tracing::subscriber::with_default(builder.json().event_format(lines).finish(), run);
        }
    }
    String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
}

#[test]
fn text_lines_carry_the_request_where_its_span_was_and_colours_only_when_asked() {
    let user = UserId::generate(std::time::UNIX_EPOCH);
    let plain = logged(Lines::Text, false, &user);
    let lines: Vec<&str> = plain.lines().collect();
    assert_eq!(lines.len(), 2, "{plain}");
    let (time, rest) = lines[0].split_once(' ').unwrap();
    assert!(humantime::parse_rfc3339(time).is_ok(), "{time}");
    assert_eq!(
        rest,
        format!(
            " WARN request{{request_id=r-1 method=POST route=- client_ip=203.0.113.9 \
             user={user}}}: wxlogin::telemetry::lines::tests: WeChat unavailable errcode=-1 \
             rid=\"a\\\"b\""
        )
    );
    assert!(
        lines[1].ends_with("  INFO wxlogin::telemetry::lines::tests: outside version=\"1\""),
        "{}",
        lines[1]
    );
    assert!(!plain.contains('\u{1b}'));
    let coloured = logged(Lines::Text, true, &user);
    assert!(coloured.contains("\u{1b}[33m WARN\u{1b}[0m"), "{coloured}");
    assert!(coloured.contains("\u{1b}[1mrequest\u{1b}[0m"), "{coloured}");
}

#[test]
fn json_lines_carry_the_request_as_its_span_and_nothing_outside_one() {
    let user = UserId::generate(std::time::UNIX_EPOCH);
    let text = logged(Lines::Json, false, &user);
    let objects: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objects.len(), 2, "{text}");
    let inside = &objects[0];
    assert_eq!(inside["level"], "WARN");
    assert_eq!(inside["target"], "wxlogin::telemetry::lines::tests");
    assert_eq!(
        inside["fields"],
        serde_json::json!({"message": "WeChat unavailable", "errcode": -1, "rid": "a\"b"})
    );
    let span = serde_json::json!({
        "client_ip": "203.0.113.9",
        "method": "POST",
        "request_id": "r-1",
        "route": "-",
        "user": user.as_str(),
        "name": "request",
    });
    assert_eq!(inside["span"], span);
    assert_eq!(inside["spans"], serde_json::json!([span]));
    assert!(
        humantime::parse_rfc3339(inside["timestamp"].as_str().unwrap()).is_ok(),
        "{inside}"
    );
    let outside = &objects[1];
    assert_eq!(outside["fields"]["version"], "1");
    assert!(outside.get("span").is_none() && outside.get("spans").is_none());
}
