//! A real browser for the admin console's tests: Debian's chromedriver (a child process on a port
//! of its own, shared by the tests that run at the same time) and a headless Chromium session per
//! test, 1366×900, on a fresh profile, asking for the language the test chose. Outside CI a
//! machine without them skips the test (`skipped: …`); in CI (`CI=true`) that fails instead.
//!
//! Only the `intl.accept_languages` preference changes the `Accept-Language` header Chromium
//! sends; `--lang=` does not on Linux (nor the language of the browser's own messages, such as
//! form validation bubbles), so it is not passed.
//!
//! Finding an element waits for it up to 10 s (the session's implicit wait), so that a test never
//! races the page; to check that something is absent, ask with `execute` instead.
//!
//! Script executed through WebDriver runs even under the console's `default-src 'none'` policy,
//! which keeps blocking the page's own inline script: the checks below rely on the first, a test
//! in `console_browser.rs` on the second.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use fantoccini::actions::{InputSource as _, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

use crate::helpers::{in_ci, skip_outside_ci};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
pub const WIDTH: u32 = 1366;
pub const HEIGHT: u32 = 900;
/// How long a wait for an element may take before the test fails.
const WAIT: Duration = Duration::from_secs(10);

/// chromedriver on `127.0.0.1:port`. Dropped, it quits every browser it started (killing it
/// would leave them running) and is then killed.
struct Chromedriver {
    child: Child,
    port: u16,
}

impl Chromedriver {
    /// The one running for the tests in flight, or a new one.
    fn shared() -> Arc<Self> {
        static RUNNING: Mutex<Weak<Chromedriver>> = Mutex::new(Weak::new());
        let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(driver) = running.upgrade() {
            return driver;
        }
        let driver = Arc::new(Self::start());
        *running = Arc::downgrade(&driver);
        driver
    }

    fn start() -> Self {
        let mut child = Command::new(CHROMEDRIVER)
            .args(["--port=0", "--log-level=SEVERE"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{CHROMEDRIVER} does not start: {e}"));
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // It picks a free port itself and says which once it listens.
        let port = loop {
            let line = lines
                .next()
                .expect("chromedriver exited before it listened")
                .unwrap();
            if let Some(port) = line.strip_prefix("ChromeDriver was started successfully on port ")
            {
                break port.trim_end_matches('.').parse().unwrap();
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        blocking_request(self.port, "GET", "/shutdown");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request to chromedriver, answered before it returns; for `Drop`, which cannot await.
/// Reads the answer by its length: chromedriver says `Connection: close` but keeps it open.
fn blocking_request(port: u16, method: &str, path: &str) {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(WAIT));
    let request =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return;
    }
    let mut answer = BufReader::new(stream);
    let mut length = 0;
    let mut line = String::new();
    while answer.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
        line.clear();
    }
    let _ = answer.read_exact(&mut vec![0; length]);
}

/// A headless Chromium session on the console at `base` (`http://host:port`). Dropped, it quits
/// the browser and removes its profile.
pub struct Browser {
    client: Client,
    base: String,
    session: String,
    driver: Arc<Chromedriver>,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        blocking_request(
            self.driver.port,
            "DELETE",
            &format!("/session/{}", self.session),
        );
    }
}

impl Browser {
    /// A browser that asks for English; `None` (after saying `skipped: …`) outside CI on a machine
    /// without chromedriver and Chromium.
    pub async fn open(base: &str) -> Option<Self> {
        Self::open_in(base, "en-US,en").await
    }

    /// A browser whose `Accept-Language` lists `languages` (e.g. `"zh-CN,zh"`), with q-values
    /// added by Chromium (`zh-CN,zh;q=0.9`).
    pub async fn open_in(base: &str, languages: &str) -> Option<Self> {
        if let Some(missing) = [CHROMEDRIVER, CHROMIUM]
            .into_iter()
            .find(|p| !Path::new(p).exists())
        {
            assert!(!in_ci(), "CI=true but {missing} is not installed");
            // Said once for the whole binary, not once per browser test.
            static NOTICE: std::sync::Once = std::sync::Once::new();
            NOTICE.call_once(|| {
                skip_outside_ci(
                    "the console's browser tests",
                    &format!("{missing} not found: apt-get install chromium chromium-driver"),
                );
            });
            return None;
        }
        let driver = Chromedriver::shared();
        let profile = tempfile::tempdir().unwrap();
        let capabilities: fantoccini::wd::Capabilities = serde_json::from_value(json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-component-update",
                    "--force-device-scale-factor=1",
                    format!("--window-size={WIDTH},{HEIGHT}"),
                    format!("--user-data-dir={}", profile.path().display()),
                ],
                "prefs": { "intl.accept_languages": languages },
            },
        }))
        .unwrap();
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver.url())
            .await
            .unwrap_or_else(|e| panic!("chromedriver does not open a Chromium session: {e}"));
        let session = client.session_id().await.unwrap().unwrap();
        let waits = fantoccini::wd::TimeoutConfiguration::new(None, None, Some(WAIT));
        client.update_timeouts(waits).await.unwrap();
        Some(Self {
            client,
            base: base.trim_end_matches('/').to_owned(),
            session,
            driver,
            _profile: profile,
        })
    }

    /// The underlying WebDriver client, for what the helpers below do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Loads `path` of the console (or an absolute URL) and waits for it to load.
    pub async fn goto(&self, path: &str) {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        self.client.goto(&url).await.unwrap();
    }

    /// The address of the page shown: `http://127.0.0.1:PORT/login`.
    pub async fn url(&self) -> String {
        self.client.current_url().await.unwrap().to_string()
    }

    /// The path (and query) of the page shown: `/login`.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    pub async fn title(&self) -> String {
        self.client.title().await.unwrap()
    }

    /// Waits (up to 10 s) until an element matches `selector`.
    pub async fn wait_for(&self, selector: &str) {
        self.find(selector).await;
    }

    /// The first element matching `selector`, waited for up to 10 s (the session's implicit
    /// wait, kept by chromedriver).
    async fn find(&self, selector: &str) -> fantoccini::elements::Element {
        match self.client.find(Locator::Css(selector)).await {
            Ok(element) => element,
            Err(e) => panic!("no {selector} on {}: {e}", self.path().await),
        }
    }

    /// Types `text` into the field, replacing what it held.
    pub async fn fill(&self, selector: &str, text: &str) {
        let field = self.find(selector).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// Clicks the element, and returns: for a click that loads a page, `follow`.
    pub async fn click(&self, selector: &str) {
        self.find(selector).await.click().await.unwrap();
    }

    /// Clicks a link or button that loads a page, and waits for the page.
    pub async fn follow(&self, selector: &str) {
        let element = self.find(selector).await;
        self.leaving().await;
        element.click().await.unwrap();
        self.arrived().await;
    }

    /// Submits the form with its first submit button (a `button` without a type is one), as a
    /// click would, and waits for the page that answers.
    pub async fn submit(&self, form: &str) {
        let button = self
            .find(form)
            .await
            .find(Locator::Css(
                "button:not([type]), button[type=submit], input[type=submit]",
            ))
            .await
            .unwrap_or_else(|e| panic!("{form} has no submit button: {e}"));
        self.leaving().await;
        button.click().await.unwrap();
        self.arrived().await;
    }

    /// Marks the page shown, so that `arrived` can tell the next one from it: chromedriver may
    /// answer a click before the navigation it starts has begun, and a form posted to its own
    /// address comes back at the same URL.
    async fn leaving(&self) {
        self.execute(
            "document.documentElement.setAttribute('data-left', '')",
            vec![],
        )
        .await;
    }

    async fn arrived(&self) {
        self.find("html:not([data-left])").await;
    }

    /// The rendered text of the page, as a person reads it.
    pub async fn text(&self) -> String {
        self.text_of("body").await
    }

    /// The rendered text of the first element matching `selector`.
    pub async fn text_of(&self, selector: &str) -> String {
        self.find(selector).await.text().await.unwrap()
    }

    /// Runs `script` (a function body: `return …`, `arguments[0]`…) in the page.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.client.execute(script, args).await.unwrap()
    }

    /// The value of the browser's cookie `name` for this page, HttpOnly ones included.
    pub async fn cookie(&self, name: &str) -> Option<String> {
        let cookies = self.client.get_all_cookies().await.unwrap();
        cookies
            .iter()
            .find(|c| c.name() == name)
            .map(|c| c.value().to_owned())
    }

    /// Saves the page's viewport (the window's width; its height less headless Chromium's frame)
    /// as `target/console-screenshots/NAME.png` and, with
    /// `WXLOGIN_UPDATE_SCREENSHOTS=1`, as `docs/images/console-NAME.png` too.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "{name}: lower case, digits and dashes"
        );
        let png = self.client.screenshot().await.unwrap();
        let dir = target_dir().join("console-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, &png).unwrap();
        if std::env::var("WXLOGIN_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
            let images = workspace_dir().join("docs/images");
            std::fs::create_dir_all(&images).unwrap();
            std::fs::write(images.join(format!("console-{name}.png")), &png).unwrap();
        }
        path
    }

    /// Fails with the list of problems unless: the page has a language; every visible input,
    /// select and textarea has a label (`label[for=id]` with text, a wrapping label or
    /// `aria-label`/`aria-labelledby`); every visible button and link has a name; every image
    /// and SVG that is not `aria-hidden` has alt text, a `<title>` or `aria-label`; and the page is
    /// no wider than the window.
    pub async fn assert_accessible(&self) {
        let problems = self.execute(ACCESSIBILITY, vec![]).await;
        let problems: Vec<String> = serde_json::from_value(problems).unwrap();
        assert!(
            problems.is_empty(),
            "{} is not accessible:\n{}",
            self.path().await,
            problems.join("\n")
        );
    }

    /// Presses Tab until the focus leaves the page or comes back to where it started, and
    /// returns the elements it went through: `input#name`, `input[name=q]` (no id),
    /// `button "Sign in"` (neither). Starts from the focus at the call: after `goto`, the top.
    pub async fn tab_order(&self) -> Vec<String> {
        let mut order = Vec::new();
        for _ in 0..100 {
            let tab = KeyActions::new("keyboard".to_owned())
                .then(KeyAction::Down {
                    value: Key::Tab.into(),
                })
                .then(KeyAction::Up {
                    value: Key::Tab.into(),
                });
            self.client.perform_actions(tab).await.unwrap();
            let Value::String(focused) = self.execute(FOCUSED, vec![]).await else {
                break;
            };
            if order.first() == Some(&focused) {
                break;
            }
            order.push(focused);
        }
        order
    }
}

/// The target directory of the workspace (`CARGO_TARGET_DIR` when set).
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace_dir().join(dir),
        None => workspace_dir().join("target"),
    }
}

fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The focused element, described as `tab_order` says; `null` when nothing in the page has focus.
const FOCUSED: &str = r#"
const e = document.activeElement;
if (!e || e === document.body || e === document.documentElement) return null;
const tag = e.tagName.toLowerCase();
if (e.id) return tag + '#' + e.id;
if (e.name) return tag + '[name=' + e.name + ']';
return tag + ' "' + (e.innerText || e.value || '').trim() + '"';
"#;

const ACCESSIBILITY: &str = r#"
const problems = [];
const visible = (e) => {
  const style = getComputedStyle(e);
  const box = e.getBoundingClientRect();
  return style.display !== 'none' && style.visibility !== 'hidden' && (box.width > 0 || box.height > 0);
};
const hidden = (e) => e.closest('[aria-hidden="true"]') !== null;
const describe = (e) => {
  const tag = e.tagName.toLowerCase();
  if (e.id) return tag + '#' + e.id;
  if (e.getAttribute('name')) return tag + '[name=' + e.getAttribute('name') + ']';
  return tag + ' ' + e.outerHTML.slice(0, 80);
};
const text = (e) => (e && (e.innerText || e.textContent) || '').trim();
const named = (e) => (e.getAttribute('aria-label') || '').trim() !== '' ||
  (e.getAttribute('aria-labelledby') || '').split(/\s+/).some((id) => text(document.getElementById(id)) !== '');
if (!(document.documentElement.getAttribute('lang') || '').trim()) problems.push('<html> has no lang');
for (const e of document.querySelectorAll('input, select, textarea')) {
  if (e.type === 'hidden' || !visible(e)) continue;
  const byFor = e.id && [...document.querySelectorAll('label[for="' + CSS.escape(e.id) + '"]')].some((l) => text(l) !== '');
  const wrapping = e.closest('label') && text(e.closest('label')) !== '';
  if (!byFor && !wrapping && !named(e)) problems.push('no label: ' + describe(e));
}
for (const e of document.querySelectorAll('button, a[href], input[type=submit], input[type=button]')) {
  if (!visible(e) || hidden(e)) continue;
  if (text(e) === '' && !(e.value || '').trim() && !named(e) && !e.getAttribute('title')) problems.push('no name: ' + describe(e));
}
for (const e of document.querySelectorAll('img')) {
  if (hidden(e)) continue;
  if (!(e.getAttribute('alt') || '').trim() && !named(e)) problems.push('no alt text: ' + describe(e));
}
for (const e of document.querySelectorAll('svg')) {
  if (hidden(e) || e.parentElement.closest('svg')) continue;
  const title = [...e.children].some((c) => c.tagName.toLowerCase() === 'title' && text(c) !== '');
  if (!title && !named(e)) problems.push('no <title> or aria-label: ' + describe(e));
}
const width = document.documentElement.scrollWidth;
if (width > window.innerWidth) problems.push('wider than the window: ' + width + 'px > ' + window.innerWidth + 'px');
return problems;
"#;

#[tokio::test]
async fn the_browser_asks_for_its_language_in_a_window_of_its_size() {
    // A page that shows the header it was asked with.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = axum::Router::new().route(
        "/",
        axum::routing::get(|headers: axum::http::HeaderMap| async move {
            let asked = headers
                .get("accept-language")
                .map_or("none", |v| v.to_str().unwrap_or("?"))
                .to_owned();
            axum::response::Html(format!(
                "<!doctype html><html lang=\"en\"><title>t</title><p id=\"asked\">{asked}</p>"
            ))
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });

    let Some(chinese) = Browser::open_in(&base, "zh-CN,zh").await else {
        return;
    };
    let english = Browser::open(&base).await.unwrap();
    chinese.goto("/").await;
    english.goto("/").await;
    assert_eq!(chinese.text_of("#asked").await, "zh-CN,zh;q=0.9");
    assert_eq!(english.text_of("#asked").await, "en-US,en;q=0.9");
    assert_eq!(
        chinese.execute("return navigator.language", vec![]).await,
        "zh-CN"
    );
    // Two browsers, one chromedriver.
    assert_eq!(chinese.driver.port, english.driver.port);
    assert_eq!(
        english.client().get_window_size().await.unwrap(),
        (u64::from(WIDTH), u64::from(HEIGHT))
    );
    let width = english.execute("return window.innerWidth", vec![]).await;
    assert_eq!(width, WIDTH);
    english.assert_accessible().await;
}
