//! The profile: `PATCH /v1/me`, `PUT /v1/me/avatar`, `GET /v1/avatars/{name}`.

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::helpers::*;

const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";
const JPEG: &[u8] = b"\xFF\xD8\xFF\xE0\0\x10JFIF\0\x01\x01\0\0\x01\0\x01\0\0\xFF\xD9";
const WEBP: &[u8] =
    b"RIFF\x1a\0\0\0WEBPVP8L\x0d\0\0\0\x2f\0\0\0\x10\x07\x10\x11\x11\x88\x88\xfe\x07\0";

/// The server's `public_url` in these tests (the listening port is chosen by the OS).
const PUBLIC_URL: &str = "https://login.example.test";

async fn spawn() -> TestApp {
    TestApp::spawn_with(|s| s.server.public_url = Some(PUBLIC_URL.to_owned())).await
}

fn public_avatar_url(name: &str) -> String {
    format!("{PUBLIC_URL}/v1/avatars/{name}")
}

async fn get_avatar(app: &TestApp, name: &str) -> reqwest::Response {
    app.http
        .get(app.url(&format!("/v1/avatars/{name}")))
        .send()
        .await
        .unwrap()
}

pub const BOUNDARY: &str = "wxlogin-test-boundary-7d3c";

/// A multipart body with one part named `field`, declared as `content_type`.
pub fn multipart(field: &str, content_type: &str, bytes: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"avatar\"\r\n\
         Content-Type: {content_type}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn put_avatar_raw(
    app: &TestApp,
    token: &str,
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    app.http
        .put(app.url("/v1/me/avatar"))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn upload(app: &TestApp, token: &str, declared: &str, bytes: &[u8]) -> reqwest::Response {
    put_avatar_raw(
        app,
        token,
        &format!("multipart/form-data; boundary={BOUNDARY}"),
        multipart("file", declared, bytes),
    )
    .await
}

async fn patch_me(app: &TestApp, token: &str, body: serde_json::Value) -> reqwest::Response {
    app.http
        .patch(app.url("/v1/me"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn me(app: &TestApp, token: &str) -> serde_json::Value {
    let response = app.get_authed("/v1/me", token).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn token(login: &serde_json::Value) -> &str {
    login["access_token"].as_str().unwrap()
}

/// Where avatar files were kept before the database held them.
fn avatars_dir(app: &TestApp) -> std::path::PathBuf {
    app.state.settings.server.data_dir.join("avatars")
}

/// Whether `app` serves the image named after `bytes`, and serves exactly those bytes.
async fn serves(app: &TestApp, bytes: &[u8], extension: &str) -> bool {
    let response = get_avatar(app, &name_of(bytes, extension)).await;
    match response.status().as_u16() {
        200 => {
            assert_eq!(response.bytes().await.unwrap().as_ref(), bytes);
            true
        }
        404 => {
            assert_error(response, 404, "not_found").await;
            false
        }
        other => panic!("GET avatar: {other}"),
    }
}

fn name_of(bytes: &[u8], extension: &str) -> String {
    format!("{}.{extension}", hex::encode(Sha256::digest(bytes)))
}

#[tokio::test]
async fn a_new_user_has_no_nickname_and_no_avatar() {
    let app = spawn().await;
    let login = app.login("newbie").await;
    assert_eq!(login["user"]["nickname"], serde_json::Value::Null);
    assert_eq!(login["user"]["avatar_url"], serde_json::Value::Null);
    let me = me(&app, token(&login)).await;
    assert_eq!(me["nickname"], serde_json::Value::Null);
    assert_eq!(me["avatar_url"], serde_json::Value::Null);
}

#[tokio::test]
async fn patch_sets_a_trimmed_nickname_and_null_clears_it() {
    let app = spawn().await;
    let login = app.login("nick").await;
    let response = patch_me(
        &app,
        token(&login),
        json!({ "nickname": "  小明 \u{3000}" }),
    )
    .await;
    assert_eq!(response.status(), 200);
    let profile: serde_json::Value = response.json().await.unwrap();
    assert_eq!(profile["nickname"], "小明");
    assert_eq!(profile["id"], login["user"]["id"]);
    assert!(profile["created_at"].is_string());
    assert_eq!(me(&app, token(&login)).await["nickname"], "小明");

    let cjk = "微".repeat(64);
    let response = patch_me(&app, token(&login), json!({ "nickname": cjk })).await;
    assert_eq!(response.status(), 200, "64 CJK characters fit");
    assert_eq!(me(&app, token(&login)).await["nickname"], cjk.as_str());

    let response = patch_me(&app, token(&login), json!({ "nickname": null })).await;
    assert_eq!(response.status(), 200);
    let profile: serde_json::Value = response.json().await.unwrap();
    assert_eq!(profile["nickname"], serde_json::Value::Null);
}

#[tokio::test]
async fn bad_nicknames_are_refused_and_nothing_is_stored() {
    let app = spawn().await;
    let login = app.login("strict").await;
    assert_eq!(
        patch_me(&app, token(&login), json!({ "nickname": "Ming" }))
            .await
            .status(),
        200
    );
    for bad in [
        json!({ "nickname": "" }),
        json!({ "nickname": "   " }),
        json!({ "nickname": "a".repeat(65) }),
        json!({ "nickname": "微".repeat(65) }),
        json!({ "nickname": "bad\u{0007}bell" }),
        json!({ "nickname": "two\nlines" }),
        json!({ "nickname": "zero\u{200B}width" }),
        json!({ "nickname": "\u{202E}reversed" }),
        json!({ "nickname": 42 }),
        json!({}),
    ] {
        let response = patch_me(&app, token(&login), bad.clone()).await;
        let body = assert_error(response, 400, "invalid_request").await;
        assert!(
            body["message"].as_str().unwrap().contains("nickname"),
            "{bad}: {body}"
        );
    }
    assert_eq!(me(&app, token(&login)).await["nickname"], "Ming");
}

#[tokio::test]
async fn every_profile_write_needs_a_token() {
    let app = spawn().await;
    let response = app
        .http
        .patch(app.url("/v1/me"))
        .json(&json!({ "nickname": "x" }))
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "invalid_token").await;
    let response = app
        .http
        .put(app.url("/v1/me/avatar"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(multipart("file", "image/png", PNG))
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "invalid_token").await;
    let response = put_avatar_raw(
        &app,
        "not-a-token",
        &format!("multipart/form-data; boundary={BOUNDARY}"),
        multipart("file", "image/png", PNG),
    )
    .await;
    assert_error(response, 401, "invalid_token").await;
    assert!(!serves(&app, PNG, "png").await);
}

#[tokio::test]
async fn png_jpeg_and_webp_are_stored_and_served_back() {
    let app = spawn().await;
    let login = app.login("pics").await;
    for (bytes, extension, content_type) in [
        (PNG, "png", "image/png"),
        (JPEG, "jpg", "image/jpeg"),
        (WEBP, "webp", "image/webp"),
    ] {
        let response = upload(&app, token(&login), content_type, bytes).await;
        assert_eq!(response.status(), 200, "{content_type}");
        let profile: serde_json::Value = response.json().await.unwrap();
        let name = name_of(bytes, extension);
        let url = public_avatar_url(&name);
        assert_eq!(profile["avatar_url"], url.as_str());
        assert_eq!(me(&app, token(&login)).await["avatar_url"], url.as_str());

        let served = get_avatar(&app, &name).await;
        assert_eq!(served.status(), 200);
        let headers = served.headers().clone();
        assert_eq!(headers["content-type"], content_type);
        assert_eq!(
            headers["cache-control"],
            "public, max-age=31536000, immutable"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(served.bytes().await.unwrap().as_ref(), bytes);
    }
    assert!(
        !avatars_dir(&app).exists(),
        "avatars are kept in the database, not in files"
    );
}

#[tokio::test]
async fn the_format_is_sniffed_not_taken_from_the_part_header() {
    let app = spawn().await;
    let login = app.login("liar").await;
    let response = upload(&app, token(&login), "image/jpeg", PNG).await;
    assert_eq!(response.status(), 200);
    let profile: serde_json::Value = response.json().await.unwrap();
    let name = name_of(PNG, "png");
    assert!(
        profile["avatar_url"].as_str().unwrap().ends_with(&name),
        "{profile}"
    );
    let served = app
        .http
        .get(app.url(&format!("/v1/avatars/{name}")))
        .send()
        .await
        .unwrap();
    assert_eq!(served.headers()["content-type"], "image/png");

    let text = b"hello, this is not an image".as_slice();
    let response = upload(&app, token(&login), "image/png", text).await;
    assert_error(response, 415, "unsupported_media_type").await;
    assert!(serves(&app, PNG, "png").await);
    assert!(
        me(&app, token(&login)).await["avatar_url"]
            .as_str()
            .unwrap()
            .ends_with(&name_of(PNG, "png")),
        "the avatar is unchanged"
    );
}

#[tokio::test]
async fn an_avatar_over_the_limit_is_refused() {
    let app = TestApp::spawn_with(|s| s.server.avatar_max_bytes = 1024).await;
    let login = app.login("big").await;
    let mut big = PNG.to_vec();
    big.resize(1025, 0);
    let response = upload(&app, token(&login), "image/png", &big).await;
    assert_error(response, 413, "payload_too_large").await;
    assert!(!serves(&app, &big, "png").await);
    assert_eq!(
        me(&app, token(&login)).await["avatar_url"],
        serde_json::Value::Null
    );

    // Far over the limit: refused on the declared length.
    let mut huge = PNG.to_vec();
    huge.resize(64 * 1024, 0);
    let response = upload(&app, token(&login), "image/png", &huge).await;
    assert_error(response, 413, "payload_too_large").await;

    let mut fits = PNG.to_vec();
    fits.resize(1024, 0);
    assert_eq!(
        upload(&app, token(&login), "image/png", &fits)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn an_avatar_larger_than_the_json_body_limit_is_accepted() {
    let app = spawn().await;
    let login = app.login("large").await;
    let mut large = JPEG.to_vec();
    large.resize(200 * 1024, 7);
    let response = upload(&app, token(&login), "image/jpeg", &large).await;
    assert_eq!(response.status(), 200);
    assert!(serves(&app, &large, "jpg").await);
}

#[tokio::test]
async fn a_malformed_upload_is_a_bad_request() {
    let app = spawn().await;
    let login = app.login("malformed").await;
    let response = put_avatar_raw(
        &app,
        token(&login),
        &format!("multipart/form-data; boundary={BOUNDARY}"),
        multipart("picture", "image/png", PNG),
    )
    .await;
    let body = assert_error(response, 400, "invalid_request").await;
    assert!(body["message"].as_str().unwrap().contains("file"), "{body}");

    let response = put_avatar_raw(&app, token(&login), "image/png", PNG.to_vec()).await;
    assert_error(response, 415, "unsupported_media_type").await;

    let response = put_avatar_raw(
        &app,
        token(&login),
        "multipart/form-data",
        multipart("file", "image/png", PNG),
    )
    .await;
    assert_error(response, 400, "invalid_request").await;
    assert!(!serves(&app, PNG, "png").await);
}

#[tokio::test]
async fn a_second_upload_removes_the_previous_image() {
    let app = spawn().await;
    let login = app.login("again").await;
    assert_eq!(
        upload(&app, token(&login), "image/png", PNG).await.status(),
        200
    );
    assert!(serves(&app, PNG, "png").await);
    assert_eq!(
        upload(&app, token(&login), "image/webp", WEBP)
            .await
            .status(),
        200
    );
    assert!(serves(&app, WEBP, "webp").await);
    assert!(
        !serves(&app, PNG, "png").await,
        "the replaced image is gone"
    );

    // The same image again keeps it.
    assert_eq!(
        upload(&app, token(&login), "image/webp", WEBP)
            .await
            .status(),
        200
    );
    assert!(serves(&app, WEBP, "webp").await);
}

#[tokio::test]
async fn an_image_shared_by_two_users_stays_while_one_still_uses_it() {
    let app = spawn().await;
    let alice = app.login("share-alice").await;
    let bob = app.login("share-bob").await;
    assert_eq!(
        upload(&app, token(&alice), "image/png", PNG).await.status(),
        200
    );
    assert_eq!(
        upload(&app, token(&bob), "image/png", PNG).await.status(),
        200
    );
    assert_eq!(
        upload(&app, token(&alice), "image/jpeg", JPEG)
            .await
            .status(),
        200
    );
    assert!(serves(&app, PNG, "png").await, "bob still shows the png");
    assert!(serves(&app, JPEG, "jpg").await);
    assert_eq!(
        me(&app, token(&bob)).await["avatar_url"],
        public_avatar_url(&name_of(PNG, "png")).as_str()
    );

    // Bob leaves it too: now it goes.
    assert_eq!(
        upload(&app, token(&bob), "image/jpeg", JPEG).await.status(),
        200
    );
    assert!(!serves(&app, PNG, "png").await);
    assert!(serves(&app, JPEG, "jpg").await);
}

#[tokio::test]
async fn unknown_and_malformed_avatar_names_are_not_found() {
    let app = spawn().await;
    let login = app.login("names").await;
    assert_eq!(
        upload(&app, token(&login), "image/png", PNG).await.status(),
        200
    );
    let hash = hex::encode(Sha256::digest(PNG));
    for name in [
        format!("{}.png", "0".repeat(64)),
        format!("{hash}.gif"),
        format!("{hash}.jpg"),
        format!("{hash}.PNG"),
        format!("{}.png", hash.to_uppercase()),
        hash.clone(),
        "..%2Fwxlogin.db".to_owned(),
        "%2E%2E%2Fx".to_owned(),
        "..%5Cx".to_owned(),
        ".upload-0".to_owned(),
    ] {
        let response = app
            .http
            .get(app.url(&format!("/v1/avatars/{name}")))
            .send()
            .await
            .unwrap();
        assert_error(response, 404, "not_found").await;
    }
}

#[tokio::test]
async fn login_and_refresh_show_the_avatar_url() {
    let app = spawn().await;
    let first = app.login("shown").await;
    assert_eq!(
        upload(&app, token(&first), "image/png", PNG).await.status(),
        200
    );
    assert_eq!(
        patch_me(&app, token(&first), json!({ "nickname": "Shown" }))
            .await
            .status(),
        200
    );
    let url = public_avatar_url(&name_of(PNG, "png"));
    let again = app.login("shown").await;
    assert_eq!(again["user"]["avatar_url"], url.as_str());
    assert_eq!(again["user"]["nickname"], "Shown");
    let refreshed: serde_json::Value = app
        .post_json(
            "/v1/auth/refresh",
            json!({ "refresh_token": again["refresh_token"] }),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(refreshed["user"]["avatar_url"], url.as_str());
}

#[tokio::test]
async fn the_profile_endpoints_are_documented() {
    let doc = serde_json::to_value(wxlogin::http::openapi()).unwrap();
    let paths = &doc["paths"];
    assert!(paths["/v1/me"]["get"].is_object());
    assert!(paths["/v1/me"]["patch"].is_object());
    assert!(
        paths["/v1/me/avatar"]["put"]["requestBody"]["content"]["multipart/form-data"].is_object()
    );
    assert!(paths["/v1/avatars/{name}"]["get"].is_object());
}

/// `wx.request` cannot send PATCH and `wx.uploadFile` only posts: PUT /v1/me and
/// POST /v1/me/avatar do the same as PATCH and PUT.
#[tokio::test]
async fn the_methods_a_mini_program_can_send_work_too() {
    let app = spawn().await;
    let login = app.login("wxapi").await;
    let response = app
        .http
        .put(app.url("/v1/me"))
        .bearer_auth(token(&login))
        .json(&json!({ "nickname": " 小红 " }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(me(&app, token(&login)).await["nickname"], "小红");

    let response = app
        .http
        .post(app.url("/v1/me/avatar"))
        .bearer_auth(token(&login))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(multipart("file", "image/png", PNG))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let url = public_avatar_url(&name_of(PNG, "png"));
    assert_eq!(me(&app, token(&login)).await["avatar_url"], url.as_str());

    let doc = serde_json::to_value(wxlogin::http::openapi()).unwrap();
    assert!(doc["paths"]["/v1/me"]["put"].is_object());
    assert!(doc["paths"]["/v1/me/avatar"]["post"].is_object());
}

/// A second instance on `first`'s database and simulator, with a data directory of its own (as a
/// second machine has).
async fn second_instance(first: &TestApp) -> TestApp {
    first
        .spawn_beside(|s| s.server.public_url = Some(PUBLIC_URL.to_owned()))
        .await
}

/// Uploads on either instance are served by both; a replaced image leaves both once its last user
/// has moved on.
async fn instances_share_avatars(a: &TestApp, b: &TestApp) {
    assert_ne!(
        a.state.settings.server.data_dir,
        b.state.settings.server.data_dir
    );
    let alice = a.login("instances-alice").await;
    let bob = a.login("instances-bob").await;
    assert_eq!(
        upload(a, token(&alice), "image/png", PNG).await.status(),
        200
    );
    assert!(serves(b, PNG, "png").await, "uploaded on A, served by B");
    assert_eq!(
        me(b, token(&alice)).await["avatar_url"],
        public_avatar_url(&name_of(PNG, "png")).as_str()
    );

    // Bob uploads the same image through B, then Alice replaces hers through B.
    assert_eq!(upload(b, token(&bob), "image/png", PNG).await.status(), 200);
    assert_eq!(
        upload(b, token(&alice), "image/jpeg", JPEG).await.status(),
        200
    );
    assert!(serves(a, JPEG, "jpg").await);
    assert!(serves(a, PNG, "png").await, "bob still shows the png");

    // Bob moves on through A: the png is gone from both.
    assert_eq!(
        upload(a, token(&bob), "image/webp", WEBP).await.status(),
        200
    );
    for app in [a, b] {
        assert!(!serves(app, PNG, "png").await);
        assert!(serves(app, JPEG, "jpg").await);
        assert!(serves(app, WEBP, "webp").await);
        assert!(!avatars_dir(app).exists(), "no instance writes files");
    }
}

#[tokio::test]
async fn an_avatar_uploaded_on_one_instance_is_served_by_another_on_sqlite() {
    let a = spawn().await;
    let b = second_instance(&a).await;
    instances_share_avatars(&a, &b).await;
}

#[tokio::test]
async fn an_avatar_uploaded_on_one_instance_is_served_by_another_on_postgres() {
    let Some(schema) = postgres_schema().await else {
        return;
    };
    let url = schema.url.clone();
    schema
        .run(async move {
            let a = TestApp::spawn_with(|s| {
                s.server.public_url = Some(PUBLIC_URL.to_owned());
                s.database.url = Some(url);
            })
            .await;
            let b = second_instance(&a).await;
            instances_share_avatars(&a, &b).await;
        })
        .await;
}

/// A deployment from before avatars were kept in the database: the database at migration 0004
/// (the migration files before 0005, applied as that release did) with one user per entry of
/// `avatars` pointing at its name, and `<data_dir>/avatars/<name>` holding the bytes where given.
pub(crate) async fn legacy_deployment(
    data_dir: &std::path::Path,
    url: &str,
    avatars: &[(&str, Option<&[u8]>)],
) -> Vec<wxlogin::domain::UserId> {
    let backend = if url.starts_with("postgres") {
        "postgres"
    } else {
        "sqlite"
    };
    let before = tempfile::tempdir().unwrap();
    let all = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    for entry in std::fs::read_dir(all).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name().to_string_lossy().as_ref() < "0005" {
            std::fs::copy(entry.path(), before.path().join(entry.file_name())).unwrap();
        }
    }
    let migrator = sqlx::migrate::Migrator::new(before.path()).await.unwrap();
    if backend == "postgres" {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        migrator.run(&pool).await.unwrap();
        pool.close().await;
    } else {
        use std::str::FromStr;
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
            .unwrap()
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        migrator.run(&pool).await.unwrap();
        pool.close().await;
    }

    let mut settings = wxlogin::config::Settings::default();
    settings.database.url = Some(url.to_owned());
    let store = wxlogin::app::open_store(&settings).await.unwrap();
    let files = data_dir.join("avatars");
    std::fs::create_dir_all(&files).unwrap();
    let mut users = Vec::new();
    for (name, bytes) in avatars {
        let at = 1_700_000_000_000;
        let id = wxlogin::domain::UserId::generate(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(at as u64),
        );
        store
            .create_user(&wxlogin::store::User {
                id: id.clone(),
                nickname: None,
                avatar: Some((*name).to_owned()),
                created_at: at,
                updated_at: at,
                banned_at: None,
                phone: None,
            })
            .await
            .unwrap();
        if let Some(bytes) = bytes {
            std::fs::write(files.join(name), bytes).unwrap();
        }
        users.push(id);
    }
    users
}

/// Bytes that sniff as PNG and differ from every other test's.
fn unique_png() -> Vec<u8> {
    let mut png = PNG.to_vec();
    png.extend_from_slice(&rand::random::<[u8; 16]>());
    png
}

/// The avatar files of an existing deployment: those still referenced are imported when the
/// upgraded server starts (migration 0005 applied to a database with data); a corrupt, an
/// oversized or a missing file is skipped without stopping the start; the files stay; a second
/// start imports nothing and serves from the database alone.
async fn legacy_avatar_files_are_imported_at_start(url: String) {
    let dir = tempfile::tempdir().unwrap();
    let good = unique_png();
    let good_name = name_of(&good, "png");
    let mut corrupt = b"this was an avatar before the disk ate it ".to_vec();
    corrupt.extend_from_slice(&rand::random::<[u8; 16]>());
    let corrupt_name = name_of(&corrupt, "png");
    let mut big = unique_png();
    big.resize(2048, 0);
    let big_name = name_of(&big, "png");
    let gone_name = name_of(&unique_png(), "png");
    let users = legacy_deployment(
        dir.path(),
        &url,
        &[
            (&good_name, Some(&good)),
            (&good_name, None),
            (&corrupt_name, Some(&corrupt)),
            (&big_name, Some(&big)),
            (&gone_name, None),
        ],
    )
    .await;
    // A file no user points at any more.
    let orphan = unique_png();
    std::fs::write(
        dir.path().join("avatars").join(name_of(&orphan, "png")),
        &orphan,
    )
    .unwrap();

    let data_dir = dir.path().to_owned();
    let (database, max) = (url.clone(), 1024);
    let mut app = TestApp::spawn_with(move |s| {
        s.server.public_url = Some(PUBLIC_URL.to_owned());
        s.server.data_dir = data_dir;
        s.server.avatar_max_bytes = max;
        s.database.url = Some(database);
    })
    .await;
    assert!(serves(&app, &good, "png").await);
    for user in &users[..2] {
        assert_eq!(
            app.internal_user(user.as_str()).await["avatar_url"],
            public_avatar_url(&good_name).as_str()
        );
    }
    assert!(
        !serves(&app, &corrupt, "png").await,
        "a corrupt file is skipped"
    );
    assert!(
        !serves(&app, &big, "png").await,
        "an oversized file is skipped"
    );
    assert!(
        !serves(&app, &orphan, "png").await,
        "an unused file stays out"
    );
    assert_error(get_avatar(&app, &gone_name).await, 404, "not_found").await;
    let logs = logs_text();
    for skipped in [&corrupt_name, &big_name] {
        assert!(
            logs.lines()
                .any(|l| l.contains("avatar file not imported") && l.contains(skipped.as_str())),
            "{skipped} logged"
        );
    }
    for name in [&good_name, &corrupt_name, &big_name] {
        assert!(dir.path().join("avatars").join(name).exists(), "files stay");
    }

    // The files are no longer needed: a restart without them still serves the imported one.
    let sealing_key = app.state.settings.security.sealing_key.clone();
    app.stop().await;
    std::fs::remove_dir_all(dir.path().join("avatars")).unwrap();
    let data_dir = dir.path().to_owned();
    let again = TestApp::spawn_with(move |s| {
        s.server.public_url = Some(PUBLIC_URL.to_owned());
        s.server.data_dir = data_dir;
        s.database.url = Some(url);
        s.security.sealing_key = sealing_key;
    })
    .await;
    assert!(serves(&again, &good, "png").await);
    assert!(!serves(&again, &corrupt, "png").await);
}

#[tokio::test]
async fn legacy_avatar_files_are_imported_at_start_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("legacy.db").display());
    legacy_avatar_files_are_imported_at_start(url).await;
}

#[tokio::test]
async fn legacy_avatar_files_are_imported_at_start_on_postgres() {
    let Some(schema) = postgres_schema().await else {
        return;
    };
    let url = schema.url.clone();
    schema
        .run(legacy_avatar_files_are_imported_at_start(url))
        .await;
}
