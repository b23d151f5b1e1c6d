//! Connection handling over raw sockets: header-read and idle timeouts, the connection limit, the
//! request-head limits and graceful shutdown. The timeouts are real socket timeouts, so these tests
//! wait real time: every limit is set to a few hundred milliseconds to keep the waits short.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, assert_error};

/// How long a test waits at most for something the server must do within a few hundred ms.
const PATIENCE: Duration = Duration::from_secs(3);

async fn connect(app: &TestApp) -> TcpStream {
    let addr = app.address.trim_start_matches("http://");
    TcpStream::connect(addr).await.unwrap()
}

const GET_HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: wxlogin\r\n\r\n";

/// Reads one response (head and `content-length` body) and returns it as text.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut chunk))
            .await
            .expect("a response in time")
            .unwrap();
        assert!(n > 0, "connection closed before a full response: {text:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Asserts that the server keeps `stream` open for at least `open`, then closes it (EOF or reset)
/// within [`PATIENCE`].
async fn open_then_closed(stream: &mut TcpStream, open: Duration) {
    let mut chunk = [0u8; 1024];
    assert!(
        tokio::time::timeout(open, stream.read(&mut chunk))
            .await
            .is_err(),
        "closed (or answered) within {open:?}, before its time"
    );
    closed_within(stream, PATIENCE).await;
}

/// Waits until the server closes `stream` (EOF or reset).
async fn closed_within(stream: &mut TcpStream, limit: Duration) {
    let mut chunk = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit, stream.read(&mut chunk)).await {
            Err(_) => panic!("the server kept the connection open for {limit:?}"),
            Ok(Ok(0) | Err(_)) => return,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn a_slowloris_client_is_closed_after_the_header_read_timeout() {
    let app = TestApp::spawn_with(|s| {
        s.server.header_read_timeout_ms = 300;
        s.server.idle_timeout_ms = 60_000;
    })
    .await;
    let mut stream = connect(&app).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: wxlogin\r\n")
        .await
        .unwrap();
    // A header line every 50 ms, never the end of the head: bytes do not reset the timer.
    let mut chunk = [0u8; 1024];
    let mut lines = 0;
    let closed = loop {
        if lines == 60 {
            break false;
        }
        if stream
            .write_all(format!("x-slow-{lines}: 1\r\n").as_bytes())
            .await
            .is_err()
        {
            break true;
        }
        lines += 1;
        // Real time: the point is a client slower than the server's real timeout.
        match tokio::time::timeout(Duration::from_millis(50), stream.read(&mut chunk)).await {
            Err(_) => continue,
            Ok(Ok(0) | Err(_)) => break true,
            Ok(Ok(n)) => panic!("an answer to a partial head: {:?}", &chunk[..n]),
        }
    };
    assert!(closed, "the slow client was not cut off within 3 s");
    assert!(
        lines >= 4,
        "cut off after {lines} lines, before the timeout"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let app = TestApp::spawn_with(|s| {
        s.server.header_read_timeout_ms = 5_000;
        s.server.idle_timeout_ms = 300;
    })
    .await;
    let mut stream = connect(&app).await;
    stream.write_all(GET_HEALTHZ).await.unwrap();
    assert!(read_response(&mut stream).await.starts_with("HTTP/1.1 200"));
    // Keep-alive: a second request on the same connection works.
    stream.write_all(GET_HEALTHZ).await.unwrap();
    assert!(read_response(&mut stream).await.starts_with("HTTP/1.1 200"));
    open_then_closed(&mut stream, Duration::from_millis(150)).await;
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_header_read_timeout() {
    let app = TestApp::spawn_with(|s| {
        s.server.header_read_timeout_ms = 300;
        s.server.idle_timeout_ms = 60_000;
    })
    .await;
    let mut stream = connect(&app).await;
    open_then_closed(&mut stream, Duration::from_millis(150)).await;
}

#[tokio::test]
async fn over_max_connections_new_ones_are_shed_while_open_ones_keep_working() {
    let app = TestApp::spawn_with(|s| s.server.max_connections = 2).await;
    let mut first = connect(&app).await;
    let mut second = connect(&app).await;
    for stream in [&mut first, &mut second] {
        stream.write_all(GET_HEALTHZ).await.unwrap();
        assert!(read_response(stream).await.starts_with("HTTP/1.1 200"));
    }

    let mut third = connect(&app).await;
    let mut shed = Vec::new();
    tokio::time::timeout(PATIENCE, third.read_to_end(&mut shed))
        .await
        .expect("the connection over the limit is closed at once")
        .unwrap();
    let shed = String::from_utf8(shed).unwrap();
    assert!(shed.starts_with("HTTP/1.1 503"), "{shed}");
    assert!(
        shed.to_ascii_lowercase().contains("retry-after: 1"),
        "{shed}"
    );
    let body: serde_json::Value =
        serde_json::from_str(shed.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(body["error"], "unavailable");
    assert!(body["request_id"].as_str().is_some_and(|id| !id.is_empty()));

    // The open connections are untouched.
    first.write_all(GET_HEALTHZ).await.unwrap();
    assert!(read_response(&mut first).await.starts_with("HTTP/1.1 200"));

    // A closed connection frees its place (the server notices the close asynchronously, so the
    // new connection may have to try a few times).
    drop(second);
    let mut admitted = false;
    for _ in 0..30 {
        let mut stream = connect(&app).await;
        stream.write_all(GET_HEALTHZ).await.unwrap();
        let mut chunk = [0u8; 16];
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut chunk))
            .await
            .unwrap()
            .unwrap_or(0);
        if chunk[..n].starts_with(b"HTTP/1.1 200") {
            admitted = true;
            break;
        }
        // Real time: the server's own task has to run to release the place.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        admitted,
        "a place freed by a closed connection is not reused"
    );
}

#[tokio::test]
async fn ordinary_requests_answer_during_a_slowloris_of_many_connections() {
    let app = TestApp::spawn_with(|s| {
        s.server.header_read_timeout_ms = 500;
        s.server.max_connections = 1_000;
    })
    .await;
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut stream = connect(&app).await;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: wxlogin\r\nx-slow: ")
            .await
            .unwrap();
        slow.push(stream);
    }
    for _ in 0..10 {
        let response = tokio::time::timeout(PATIENCE, app.http.get(app.url("/healthz")).send())
            .await
            .expect("an ordinary request answers during the slowloris")
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    for stream in &mut slow {
        closed_within(stream, PATIENCE).await;
    }
}

#[tokio::test]
async fn oversized_request_heads_get_431_and_long_targets_414_in_the_envelope() {
    let app = TestApp::spawn_with(|s| {
        s.server.max_header_bytes = 8_192;
        s.server.max_uri_bytes = 2_048;
    })
    .await;
    let big = "a".repeat(10_000);
    let response = app
        .http
        .get(app.url("/healthz"))
        .header("x-big", &big)
        .send()
        .await
        .unwrap();
    assert_error(response, 431, "headers_too_large").await;

    let mut many = app.http.get(app.url("/healthz"));
    for i in 0..150 {
        many = many.header(format!("x-h-{i}"), "1");
    }
    assert_error(many.send().await.unwrap(), 431, "headers_too_large").await;

    let long = app.url(&format!("/healthz?q={}", "b".repeat(3_000)));
    assert_error(
        app.http.get(long).send().await.unwrap(),
        414,
        "uri_too_long",
    )
    .await;

    // Within the limits all is as before.
    let response = app
        .http
        .get(app.url(&format!("/healthz?q={}", "b".repeat(1_000))))
        .header("x-big", "a".repeat(4_000))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_request_finish_and_refuses_new_connections() {
    let mut app = TestApp::spawn_with(|s| s.server.shutdown_grace_ms = 5_000).await;
    app.wx
        .fault(json!({"api": "jscode2session", "latency_ms": 400, "times": 1}))
        .await;
    let url = app.url("/v1/auth/wechat/login");
    let body = json!({"appid": crate::helpers::DEMO_APPID, "code": app.code_for("late")});
    let in_flight = tokio::spawn({
        let http = app.http.clone();
        async move { http.post(url).json(&body).send().await }
    });
    // Real time: the request must have reached the server (and WeChat's delay) before the stop.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let address = app.address.clone();
    app.stop().await;
    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status(), 200, "the in-flight login finished");
    let refused = reqwest::Client::new()
        .get(format!("{address}/healthz"))
        .send()
        .await;
    assert!(refused.is_err(), "no new connections after the stop");
}
