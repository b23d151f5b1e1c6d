//! The code of docs/integrations.md cannot rot: every block that names a file is that file, and the
//! Node and Python files are run against a live wxlogin, each accepting its good tokens and
//! refusing the bad ones.
//!
//! Without Node.js 20+ and `examples/verify/node/node_modules` (`npm ci` there), or without a Python
//! with PyJWT (`examples/verify/python/.venv`, see `scripts/test.sh`), the runners say so and skip;
//! in CI (`CI=true`) they fail instead.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use common::{LiveWxlogin, dead_url, hs256, unsigned};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

/// The files the docs must show, whole.
const SHOWN: [&str; 5] = [
    "examples/verify/node/express.mjs",
    "examples/verify/node/koa.mjs",
    "examples/verify/node/jsonwebtoken.mjs",
    "examples/verify/python/verify.py",
    "crates/wxlogin-verify/examples/axum.rs",
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The fenced code blocks of a Markdown text, each without its fences.
fn code_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        if line.starts_with("```") {
            match current.take() {
                Some(block) => blocks.push(block),
                None => current = Some(String::new()),
            }
        } else if let Some(block) = current.as_mut() {
            block.push_str(line);
            block.push('\n');
        }
    }
    assert!(current.is_none(), "an unclosed code block");
    blocks
}

#[test]
fn the_integration_docs_show_the_example_files_verbatim() {
    let doc = read("docs/integrations.md");
    let mut shown = BTreeSet::new();
    for block in code_blocks(&doc) {
        let first = block.lines().next().unwrap_or("");
        let Some(path) = first
            .strip_prefix("// ")
            .or_else(|| first.strip_prefix("# "))
            .filter(|p| p.starts_with("examples/") || p.starts_with("crates/"))
        else {
            continue;
        };
        let file = read(path);
        assert!(
            block == file,
            "the block for {path} in docs/integrations.md differs from the file; copy the file into the doc"
        );
        shown.insert(path.to_owned());
    }
    for path in SHOWN {
        assert!(
            shown.contains(path),
            "docs/integrations.md does not show {path}"
        );
    }
}

#[test]
fn the_code_blocks_are_read_whole() {
    let blocks = code_blocks("a\n```js\n// x.mjs\nlet a;\n\nb();\n```\ntext\n```\nc\n```\n");
    assert_eq!(blocks, ["// x.mjs\nlet a;\n\nb();\n", "c\n"]);
}

// ---- running the snippets ------------------------------------------------------------------------

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips (saying why) outside CI; fails in CI.
fn skip(what: &str, why: &str) {
    assert!(!in_ci(), "CI=true but {what} cannot run: {why}");
    let _ = writeln!(std::io::stderr(), "skipped: {what} ({why})");
}

fn node_ready() -> Result<(), String> {
    let ok = Command::new("node")
        .args([
            "-e",
            "process.exit(Number(process.versions.node.split('.')[0]) >= 20 ? 0 : 1)",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return Err("Node.js 20+ not found".into());
    }
    if !repo_root()
        .join("examples/verify/node/node_modules")
        .is_dir()
    {
        return Err("run `npm ci` in examples/verify/node".into());
    }
    Ok(())
}

fn python() -> Result<PathBuf, String> {
    let venv = repo_root().join("examples/verify/python/.venv/bin/python");
    let python = if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    };
    let ok = Command::new(&python)
        .args(["-c", "import jwt, cryptography"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(python)
    } else {
        Err("no Python with PyJWT[crypto]: create examples/verify/python/.venv from its requirements.txt".into())
    }
}

/// A snippet process, killed on drop; its stdout arrives line by line.
struct Snippet {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: UnboundedReceiver<String>,
}

impl Snippet {
    fn start(name: &str, program: &Path, script: &str, wx: &LiveWxlogin, jwks_url: &str) -> Self {
        let mut child = Command::new(program)
            .arg(repo_root().join(script))
            .current_dir(repo_root())
            .env("WXLOGIN_JWKS_URL", jwks_url)
            .env("WXLOGIN_ISSUER", &wx.issuer)
            .env("WXLOGIN_AUDIENCE", &wx.audience)
            .env("PORT", "0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            child,
            lines,
        }
    }

    async fn next_line(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(30), self.lines.recv())
            .await
            .unwrap_or_else(|_| panic!("{} said nothing for 30 s", self.name))
            .unwrap_or_else(|| panic!("{} exited", self.name))
    }

    /// For servers: the base URL from their `listening on PORT` line.
    async fn base_url(&mut self) -> String {
        let line = self.next_line().await;
        let port = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("{}: unexpected first line {line:?}", self.name));
        format!("http://127.0.0.1:{port}")
    }

    /// For line scripts: one token in, one JSON verdict out.
    async fn verdict(&mut self, token: &str) -> serde_json::Value {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{token}").unwrap();
        stdin.flush().unwrap();
        let line = self.next_line().await;
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{}: {line:?}: {e}", self.name))
    }
}

impl Drop for Snippet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The tokens every snippet must accept or refuse, from one live wxlogin.
struct Cases {
    good: Vec<(&'static str, String, String)>,
    bad: Vec<(&'static str, String)>,
}

async fn cases(wx: &LiveWxlogin) -> Cases {
    let login = wx.login_response("alice").await;
    let alice = login["access_token"].as_str().unwrap().to_owned();
    let alice_id = login["user"]["id"].as_str().unwrap().to_owned();
    let claims = wx.claims();
    let kid = wx.current_kid();
    let with = |field: &str, value: &str| {
        let mut claims = claims.clone();
        claims[field] = value.into();
        claims
    };
    let tampered = {
        let token = wx.sign("at+jwt", &claims);
        let mut parts: Vec<&str> = token.split('.').collect();
        let other = wx.sign("at+jwt", &with("sub", "u_admin"));
        let payload = other.split('.').nth(1).unwrap().to_owned();
        parts[1] = &payload;
        parts.join(".")
    };
    let jwks = reqwest::get(wx.jwks_url())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    Cases {
        good: vec![
            ("a fresh login", alice, alice_id),
            (
                "the server's key and claims",
                wx.sign("at+jwt", &claims),
                "u_forged".into(),
            ),
        ],
        bad: vec![
            ("expired", wx.login_in_the_past("bob", 3600).await),
            (
                "another audience",
                wx.sign("at+jwt", &with("aud", "billing")),
            ),
            (
                "another issuer",
                wx.sign("at+jwt", &with("iss", "https://evil.example")),
            ),
            ("typ JWT", wx.sign("JWT", &claims)),
            ("alg none", unsigned(&kid, &claims)),
            ("HS256 keyed with the JWKS", hs256(&kid, &jwks, &claims)),
            ("an unpublished key", wx.sign_with_unknown_key(&claims).0),
            ("a tampered payload", tampered),
            ("garbage", "garbage".into()),
        ],
    }
}

/// Checks a `GET /me` server snippet: the good tokens pass (200 with the user), the bad ones get a
/// 401 with the Bearer challenge, as do a missing header and another scheme.
async fn check_server(name: &str, url: &str, cases: &Cases) {
    let http = reqwest::Client::new();
    let me = format!("{url}/me");
    for (case, token, sub) in &cases.good {
        let response = http.get(&me).bearer_auth(token).send().await.unwrap();
        assert_eq!(response.status(), 200, "{name} must accept {case}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["id"], sub.as_str(), "{name}: {case}: {body}");
    }
    for (case, token) in &cases.bad {
        let response = http.get(&me).bearer_auth(token).send().await.unwrap();
        assert_eq!(response.status(), 401, "{name} must refuse {case}");
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer error=\"invalid_token\""
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_token", "{name}: {case}: {body}");
    }
    let response = http.get(&me).send().await.unwrap();
    assert_eq!(response.status(), 401, "{name}: no Authorization header");
    let response = http
        .get(&me)
        .basic_auth("alice", Some("secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "{name}: Basic");
}

async fn check_script(snippet: &mut Snippet, cases: &Cases) {
    let name = snippet.name.clone();
    for (case, token, sub) in &cases.good {
        let verdict = snippet.verdict(token).await;
        assert_eq!(
            verdict["valid"], true,
            "{name} must accept {case}: {verdict}"
        );
        assert_eq!(verdict["sub"], sub.as_str(), "{name}: {case}");
    }
    for (case, token) in &cases.bad {
        let verdict = snippet.verdict(token).await;
        assert_eq!(
            verdict["valid"], false,
            "{name} must refuse {case}: {verdict}"
        );
    }
}

/// The snippets fetched the JWKS for the first tokens, so the key wxlogin rotates to is unknown to
/// them; once their 10 s refetch cooldown has passed, its tokens must pass (and the old key's too).
async fn rotate(wx: &LiveWxlogin) -> Vec<(&'static str, String, String)> {
    let old = wx.login_response("carol").await;
    wx.rotate_key();
    let new = wx.login_response("dave").await;
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    [
        ("a token of the previous key", old),
        ("a token of the rotated key", new),
    ]
    .into_iter()
    .map(|(case, login)| {
        (
            case,
            login["access_token"].as_str().unwrap().to_owned(),
            login["user"]["id"].as_str().unwrap().to_owned(),
        )
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_snippets_accept_good_tokens_and_refuse_bad_ones() {
    if let Err(why) = node_ready() {
        return skip("the Node.js snippets of docs/integrations.md", &why);
    }
    let node = PathBuf::from("node");
    let wx = LiveWxlogin::spawn().await;
    let cases = cases(&wx).await;
    let jwks_url = wx.jwks_url();

    let mut express = Snippet::start(
        "express.mjs",
        &node,
        "examples/verify/node/express.mjs",
        &wx,
        &jwks_url,
    );
    let mut koa = Snippet::start(
        "koa.mjs",
        &node,
        "examples/verify/node/koa.mjs",
        &wx,
        &jwks_url,
    );
    let mut jsonwebtoken = Snippet::start(
        "jsonwebtoken.mjs",
        &node,
        "examples/verify/node/jsonwebtoken.mjs",
        &wx,
        &jwks_url,
    );
    let express_url = express.base_url().await;
    let koa_url = koa.base_url().await;
    check_server("express.mjs", &express_url, &cases).await;
    check_server("koa.mjs", &koa_url, &cases).await;
    check_script(&mut jsonwebtoken, &cases).await;

    let rotated = Cases {
        good: rotate(&wx).await,
        bad: Vec::new(),
    };
    check_server("express.mjs", &express_url, &rotated).await;
    check_server("koa.mjs", &koa_url, &rotated).await;
    check_script(&mut jsonwebtoken, &rotated).await;

    // Keys that cannot be fetched are the service's trouble, not the token's: 503, not 401.
    let dead = dead_url();
    for script in [
        "examples/verify/node/express.mjs",
        "examples/verify/node/koa.mjs",
    ] {
        let mut server = Snippet::start(script, &node, script, &wx, &dead);
        let url = server.base_url().await;
        let response = reqwest::Client::new()
            .get(format!("{url}/me"))
            .bearer_auth(&cases.good[0].1)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 503, "{script} without its JWKS");
        assert_eq!(response.headers()["retry-after"], "5");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_snippet_accepts_good_tokens_and_refuses_bad_ones() {
    let python = match python() {
        Ok(python) => python,
        Err(why) => return skip("the Python snippet of docs/integrations.md", &why),
    };
    let wx = LiveWxlogin::spawn().await;
    let cases = cases(&wx).await;
    let mut verify = Snippet::start(
        "verify.py",
        &python,
        "examples/verify/python/verify.py",
        &wx,
        &wx.jwks_url(),
    );
    check_script(&mut verify, &cases).await;
    let rotated = Cases {
        good: rotate(&wx).await,
        bad: Vec::new(),
    };
    check_script(&mut verify, &rotated).await;

    // Without its JWKS, the snippet refuses (and says why).
    let mut offline = Snippet::start(
        "verify.py",
        &python,
        "examples/verify/python/verify.py",
        &wx,
        &dead_url(),
    );
    let verdict = offline.verdict(&cases.good[0].1).await;
    assert_eq!(verdict["valid"], false, "{verdict}");
    assert!(
        verdict["error"].as_str().unwrap().contains("fetch"),
        "{verdict}"
    );
}
