use std::sync::{Arc, Mutex, OnceLock};
use wechat_mock::{MockConfig, MockHandle};
use wxlogin::clock::ManualClock;
use wxlogin::domain::{AppId, AppSecret};
use wxlogin::wechat::{ClientConfig, RetryPolicy, WechatClient};

pub const DEMO_APPID: &str = "wx0000000000000001";
pub const DEMO_SECRET: &str = "0123456789abcdef0123456789abcdef";

/// Every log line of the whole test binary, at TRACE, `log` records included.
pub fn captured_logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = Capture(buffer.clone());
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .try_init();
        buffer
    })
}

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn logs_text() -> String {
    String::from_utf8_lossy(&captured_logs().lock().unwrap()).into_owned()
}

/// The simulator on port 0 with the demo app and a clock the test moves.
pub struct TestWechat {
    pub handle: MockHandle,
    pub clock: ManualClock,
}

impl TestWechat {
    pub async fn spawn() -> Self {
        captured_logs();
        let clock = ManualClock::starting_now();
        let handle = wechat_mock::spawn(MockConfig::demo().with_clock(clock.shared()))
            .await
            .expect("simulator starts");
        Self { handle, clock }
    }

    pub fn mock(&self) -> &wechat_mock::Mock {
        self.handle.mock()
    }

    pub fn client(&self) -> WechatClient {
        client_for(&self.handle.base_url())
    }
}

/// A client with short timeouts and near-zero backoff, so failure paths are quick.
pub fn client_for(base_url: &str) -> WechatClient {
    client_with_timeout(base_url, 500)
}

pub fn client_with_timeout(base_url: &str, timeout_ms: u64) -> WechatClient {
    WechatClient::new(&ClientConfig {
        base_url: base_url.to_owned(),
        connect_timeout_ms: timeout_ms,
        timeout_ms,
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay_ms: 1,
            max_delay_ms: 5,
        },
    })
    .expect("client builds")
}

pub fn demo_app() -> (AppId, AppSecret) {
    (
        AppId::parse(DEMO_APPID).unwrap(),
        AppSecret::parse(DEMO_SECRET).unwrap(),
    )
}

impl TestWechat {
    /// Sets a fault through the simulator's control API, as any client of it would.
    pub async fn fault(&self, fault: serde_json::Value) {
        let status = reqwest::Client::new()
            .post(format!("{}/__mock/faults", self.handle.base_url()))
            .json(&fault)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 204, "fault accepted");
    }

    /// Calls received per API, from the simulator's control API.
    pub async fn calls(&self, api: &str) -> u64 {
        let stats: serde_json::Value =
            reqwest::get(format!("{}/__mock/stats", self.handle.base_url()))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        stats["calls"][api].as_u64().unwrap_or(0)
    }
}
