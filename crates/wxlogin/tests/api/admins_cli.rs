//! `wxlogin admins add | list | remove | reset-password | totp` through the real binary, on the
//! database of a running server (a SQLite file, then PostgreSQL on WXLOGIN_TEST_POSTGRES_URL):
//! passwords from standard input, argon2id hashes in the table and in no output, TOTP secrets
//! whose codes verify once through `services::admins`, and the audit entries naming the operator.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use hmac::{Hmac, Mac as _};
use serde_json::{Value, json};
use wxlogin::domain::{AdminName, AdminRole};
use wxlogin::services::admins::verify_totp_code;
use wxlogin::store::AdminAccount;

use crate::admin_cli::on_both_backends;
use crate::helpers::*;

const ALICE_PASSWORD: &str = "alice's long passphrase";
const BOB_PASSWORD: &str = "bob-password-1234";

struct Ran {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs `wxlogin ARGS --config <the app's deployment>` with `stdin` piped in (so not a terminal:
/// the password is its first line). The passwords the test uses are remembered as secrets, so
/// that no output (and no log of the server) may contain them.
async fn cli(app: &TestApp, args: &[&str], stdin: &str) -> Ran {
    let config = app.write_cli_config();
    let mut command = Command::new(env!("CARGO_BIN_EXE_wxlogin"));
    command
        .args(args)
        .arg("--config")
        .arg(&config)
        .env_remove("WXLOGIN_CONFIG")
        .env("USER", "ops-dave")
        .env("WXLOGIN_LOG", "warn")
        .env("WXLOGIN_METRICS__LISTEN", "")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let stdin = stdin.to_owned();
    let output = tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().unwrap();
        // A verb that fails before reading closes the pipe: a failed write is no error here.
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let ran = Ran {
        success: output.status.success(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    };
    for secret in [ALICE_PASSWORD, BOB_PASSWORD] {
        app.remember_secret(secret);
    }
    app.assert_no_secret_in(&ran.stdout);
    app.assert_no_secret_in(&ran.stderr);
    ran
}

async fn ok(app: &TestApp, args: &[&str], stdin: &str) -> String {
    let ran = cli(app, args, stdin).await;
    assert!(ran.success, "{args:?} failed: {}", ran.stderr);
    ran.stdout
}

/// A verb that must fail: its one line on standard error, which must contain `expected`.
async fn fails(app: &TestApp, args: &[&str], stdin: &str, expected: &str) {
    let ran = cli(app, args, stdin).await;
    assert!(!ran.success, "{args:?} succeeded: {}", ran.stdout);
    let lines: Vec<&str> = ran.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: one line: {}", ran.stderr);
    assert!(lines[0].starts_with("wxlogin: "), "{}", lines[0]);
    assert!(lines[0].contains(expected), "{args:?}: {}", lines[0]);
}

async fn list_json(app: &TestApp) -> Vec<Value> {
    let out = ok(app, &["admins", "list", "--json"], "").await;
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

async fn account(app: &TestApp, name: &str) -> AdminAccount {
    app.state
        .store
        .get_admin(&AdminName::parse(name).unwrap())
        .await
        .unwrap()
        .unwrap()
}

/// The audit entries of `kind`, newest first.
async fn audit(app: &TestApp, kind: &str) -> Vec<Value> {
    ok(app, &["audit", "list", "--type", kind, "--json"], "")
        .await
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// RFC 6238 with HMAC-SHA1, 6 digits, 30 s steps, computed here from the URI's base32 secret.
fn code_at(secret_base32: &str, unix_secs: i64) -> String {
    let secret = data_encoding::BASE32_NOPAD
        .decode(secret_base32.as_bytes())
        .unwrap();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(&secret).unwrap();
    mac.update(&(unix_secs / 30).to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let at = usize::from(digest[19] & 0xf);
    let value = u32::from_be_bytes(digest[at..at + 4].try_into().unwrap()) & 0x7fff_ffff;
    format!("{:06}", value % 1_000_000)
}

#[tokio::test]
async fn admins_are_added_listed_given_new_passwords_and_removed() {
    on_both_backends(
        |_| {},
        |app| async move {
            let added = ok(
                &app,
                &["admins", "add", "alice", "--role", "owner"],
                &format!("{ALICE_PASSWORD}\n"),
            )
            .await;
            assert!(
                added.contains("added administrator alice (owner)"),
                "{added}"
            );
            assert!(added.contains("run `wxlogin admins totp alice`"), "{added}");
            let added = ok(
                &app,
                &[
                    "admins",
                    "add",
                    "bob",
                    "--role",
                    "viewer",
                    "--actor",
                    "ops-carol",
                ],
                // A Windows line ending and no more lines: the first line is the password.
                &format!("{BOB_PASSWORD}\r\n"),
            )
            .await;
            assert!(!added.contains("totp"), "{added}");

            // Argon2id with the documented parameters, in the table only.
            let alice = account(&app, "alice").await;
            assert!(
                alice
                    .password_hash
                    .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
                "an argon2id PHC string"
            );
            assert!(wxlogin::crypto::verify_password(
                &alice.password_hash,
                ALICE_PASSWORD
            ));
            assert!(alice.totp_required);
            let bob = account(&app, "bob").await;
            assert!(wxlogin::crypto::verify_password(
                &bob.password_hash,
                BOB_PASSWORD
            ));
            assert!(!bob.totp_required);
            assert_eq!(bob.role, AdminRole::Viewer);
            app.remember_secret(alice.password_hash.clone());
            app.remember_secret(bob.password_hash.clone());

            let table = ok(&app, &["admins", "list"], "").await;
            let lines: Vec<Vec<&str>> = table
                .lines()
                .map(|l| l.split_whitespace().collect())
                .collect();
            assert_eq!(lines[0], ["NAME", "ROLE", "TOTP", "LOCKED", "CREATED"]);
            assert_eq!(lines[1][..5], ["alice", "owner", "off", "(required)", "no"]);
            assert_eq!(lines[2][..4], ["bob", "viewer", "off", "no"]);
            let listed = list_json(&app).await;
            assert_eq!(listed.len(), 2);
            let keys: Vec<&String> = listed[0].as_object().unwrap().keys().collect();
            assert_eq!(
                keys,
                [
                    "created_at",
                    "failed_attempts",
                    "locked",
                    "locked_until",
                    "name",
                    "role",
                    "totp",
                    "totp_required",
                    "updated_at"
                ]
            );
            assert_eq!(listed[0]["name"], "alice");
            assert_eq!(listed[0]["totp"], "off");
            assert_eq!(listed[0]["totp_required"], true);
            assert_eq!(listed[1]["role"], "viewer");
            assert_eq!(listed[1]["locked"], false);

            // A locked administrator (as the console's lockout will leave one) is unlocked by a
            // new password.
            let mut lee = account(&app, "bob").await;
            lee.name = AdminName::parse("lee").unwrap();
            lee.role = AdminRole::Operator;
            lee.failed_attempts = 5;
            lee.locked_until = Some(app.state.clock.unix_millis() + 3_600_000);
            app.state.store.insert_admin(&lee).await.unwrap();
            let listed = list_json(&app).await;
            assert_eq!(listed[2]["name"], "lee");
            assert_eq!(listed[2]["locked"], true);
            assert_eq!(listed[2]["failed_attempts"], 5);
            assert!(listed[2]["locked_until"].is_string());
            let table = ok(&app, &["admins", "list"], "").await;
            assert!(
                table
                    .lines()
                    .any(|l| l.starts_with("lee ") && l.contains("until ")),
                "{table}"
            );
            let reset = ok(
                &app,
                &["admins", "reset-password", "lee"],
                &format!("{ALICE_PASSWORD}\n"),
            )
            .await;
            assert!(reset.contains("lifted its sign-in lockout"), "{reset}");
            let lee = account(&app, "lee").await;
            assert_eq!((lee.failed_attempts, lee.locked_until), (0, None));
            assert!(wxlogin::crypto::verify_password(
                &lee.password_hash,
                ALICE_PASSWORD
            ));
            assert!(!wxlogin::crypto::verify_password(
                &lee.password_hash,
                BOB_PASSWORD
            ));
            let reset = ok(
                &app,
                &["admins", "reset-password", "bob"],
                &format!("{ALICE_PASSWORD}\n"),
            )
            .await;
            assert_eq!(reset.trim(), "replaced the password of bob");

            let removed = ok(&app, &["admins", "remove", "bob"], "").await;
            assert_eq!(removed.trim(), "removed administrator bob (viewer)");
            let removed = ok(&app, &["admins", "remove", "lee"], "").await;
            assert_eq!(removed.trim(), "removed administrator lee (operator)");
            fails(
                &app,
                &["admins", "remove", "alice"],
                "",
                "`alice` is the last owner",
            )
            .await;
            let listed = list_json(&app).await;
            assert_eq!(listed.len(), 1);
            assert_eq!(listed[0]["name"], "alice");

            // Every change is in the audit log, naming the operator: --actor, else $USER.
            let added = audit(&app, "admin_added").await;
            assert_eq!(added.len(), 2);
            assert_eq!(
                added[0]["actor"],
                json!({"kind": "admin", "id": "ops-carol"})
            );
            assert_eq!(
                added[0]["details"],
                json!({"admin": "bob", "role": "viewer"})
            );
            assert_eq!(
                added[1]["actor"],
                json!({"kind": "admin", "id": "ops-dave"})
            );
            assert_eq!(
                added[1]["details"],
                json!({"admin": "alice", "role": "owner"})
            );
            let resets = audit(&app, "admin_password_reset").await;
            let details: Vec<&Value> = resets.iter().map(|e| &e["details"]).collect();
            assert_eq!(
                details,
                [
                    &json!({"admin": "bob", "unlocked": false}),
                    &json!({"admin": "lee", "unlocked": true})
                ]
            );
            let removed = audit(&app, "admin_removed").await;
            assert_eq!(removed.len(), 2, "the refused removal is not recorded");
            assert_eq!(
                removed[1]["details"],
                json!({"admin": "bob", "role": "viewer"})
            );
            assert_eq!(removed[0]["user_id"], Value::Null);
        },
    )
    .await;
}

#[tokio::test]
async fn bad_admin_input_fails_with_one_clear_line_and_changes_nothing() {
    on_both_backends(
        |_| {},
        |app| async move {
            let add =
                |name: &'static str, role: &'static str| ["admins", "add", name, "--role", role];
            fails(
                &app,
                &add("amy", "viewer"),
                "short pass\n",
                "too short: it needs at least 12",
            )
            .await;
            let long = format!("{}\n", "p".repeat(1025));
            fails(
                &app,
                &add("amy", "viewer"),
                &long,
                "too long: it may have at most 1024",
            )
            .await;
            let very_long = "p".repeat(100_000);
            fails(&app, &add("amy", "viewer"), &very_long, "too long").await;
            fails(
                &app,
                &add("amy", "viewer"),
                "",
                "no password on standard input",
            )
            .await;
            fails(
                &app,
                &add("amy", "viewer"),
                "\n",
                "no password on standard input",
            )
            .await;
            fails(
                &app,
                &add("Amy", "viewer"),
                &format!("{BOB_PASSWORD}\n"),
                "invalid name `Amy`: an administrator name is 1 to 64 of a-z, 0-9",
            )
            .await;
            fails(
                &app,
                &add("a b", "viewer"),
                &format!("{BOB_PASSWORD}\n"),
                "invalid name",
            )
            .await;
            let long_name = "a".repeat(65);
            fails(
                &app,
                &["admins", "add", &long_name, "--role", "viewer"],
                &format!("{BOB_PASSWORD}\n"),
                "invalid name",
            )
            .await;
            fails(
                &app,
                &add("amy", "admin"),
                &format!("{BOB_PASSWORD}\n"),
                "--role `admin`: a role is viewer, operator or owner",
            )
            .await;
            assert!(list_json(&app).await.is_empty(), "nothing was added");

            ok(&app, &add("amy", "operator"), &format!("{BOB_PASSWORD}\n")).await;
            fails(
                &app,
                &add("amy", "viewer"),
                &format!("{ALICE_PASSWORD}\n"),
                "an administrator named `amy` exists already",
            )
            .await;
            let amy = account(&app, "amy").await;
            assert_eq!(amy.role, AdminRole::Operator, "the first one stays");
            assert!(wxlogin::crypto::verify_password(
                &amy.password_hash,
                BOB_PASSWORD
            ));

            for verb in ["remove", "totp"] {
                fails(
                    &app,
                    &["admins", verb, "nobody"],
                    "",
                    "no administrator named `nobody`",
                )
                .await;
            }
            fails(
                &app,
                &["admins", "reset-password", "nobody"],
                &format!("{BOB_PASSWORD}\n"),
                "no administrator named `nobody`",
            )
            .await;
            fails(
                &app,
                &["admins", "reset-password", "amy"],
                "short\n",
                "too short",
            )
            .await;
            assert!(wxlogin::crypto::verify_password(
                &account(&app, "amy").await.password_hash,
                BOB_PASSWORD
            ));

            // The last owner stays, whoever else there is.
            ok(&app, &add("root", "owner"), &format!("{BOB_PASSWORD}\n")).await;
            fails(
                &app,
                &["admins", "remove", "root"],
                "",
                "`root` is the last owner: add another owner before removing it",
            )
            .await;
            ok(&app, &add("root2", "owner"), &format!("{BOB_PASSWORD}\n")).await;
            ok(&app, &["admins", "remove", "root"], "").await;
            fails(&app, &["admins", "remove", "root2"], "", "last owner").await;
            assert_eq!(audit(&app, "admin_added").await.len(), 3);
            assert_eq!(audit(&app, "admin_removed").await.len(), 1);
            assert!(audit(&app, "admin_password_reset").await.is_empty());
        },
    )
    .await;
}

#[tokio::test]
async fn totp_enrolment_prints_a_uri_whose_codes_verify_once_each() {
    on_both_backends(
        |_| {},
        |app| async move {
            ok(
                &app,
                &["admins", "add", "alice", "--role", "owner"],
                &format!("{ALICE_PASSWORD}\n"),
            )
            .await;
            ok(
                &app,
                &["admins", "add", "bob", "--role", "operator"],
                &format!("{BOB_PASSWORD}\n"),
            )
            .await;
            let out = ok(
                &app,
                &["admins", "totp", "alice", "--actor", "ops-carol"],
                "",
            )
            .await;
            let uri = out.lines().next().unwrap();
            let rest = uri
                .strip_prefix("otpauth://totp/wxlogin:alice?secret=")
                .unwrap();
            let (secret, params) = rest.split_once('&').unwrap();
            assert_eq!(params, "issuer=wxlogin&algorithm=SHA1&digits=6&period=30");
            assert_eq!(secret.len(), 32, "160 bits in base32");
            let qr: Vec<&str> = out
                .lines()
                .skip(1)
                .take_while(|l| l.contains('█'))
                .collect();
            assert!(qr.len() >= 15, "a QR code in block characters:\n{out}");
            assert!(!out.contains("previous"));

            // The stored value is sealed: neither the secret nor its bytes are in it.
            let alice = account(&app, "alice").await;
            let sealed = alice.sealed_totp_secret.clone().unwrap();
            let raw = data_encoding::BASE32_NOPAD
                .decode(secret.as_bytes())
                .unwrap();
            assert!(!sealed.windows(raw.len()).any(|w| w == raw.as_slice()));
            assert!(!String::from_utf8_lossy(&sealed).contains(secret));
            app.remember_secret(secret);

            let store = app.state.store.as_ref();
            let sealing = app.state.settings.security.sealing_key.clone().unwrap();
            let name = AdminName::parse("alice").unwrap();
            let now = app.state.clock.unix_millis();
            let code = code_at(secret, now / 1000);
            let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
            assert!(
                !verify_totp_code(store, &sealing, &name, &wrong, now)
                    .await
                    .unwrap()
            );
            assert!(
                verify_totp_code(store, &sealing, &name, &code, now)
                    .await
                    .unwrap()
            );
            assert!(
                !verify_totp_code(store, &sealing, &name, &code, now)
                    .await
                    .unwrap(),
                "used once"
            );
            app.wx.clock.advance(Duration::from_secs(30));
            let now = app.state.clock.unix_millis();
            assert!(
                !verify_totp_code(store, &sealing, &name, &code, now)
                    .await
                    .unwrap(),
                "still spent a step later"
            );
            let next = code_at(secret, now / 1000);
            assert!(
                verify_totp_code(store, &sealing, &name, &next, now)
                    .await
                    .unwrap()
            );
            let listed = list_json(&app).await;
            assert_eq!(listed[0]["totp"], "on");
            assert_eq!(listed[1]["totp"], "off");

            // Copied to another administrator, the sealed secret does not open there.
            let bob = AdminName::parse("bob").unwrap();
            assert!(store.set_admin_totp(&bob, &sealed, now).await.unwrap());
            app.wx.clock.advance(Duration::from_secs(30));
            let now = app.state.clock.unix_millis();
            let code = code_at(secret, now / 1000);
            assert!(
                !verify_totp_code(store, &sealing, &bob, &code, now)
                    .await
                    .unwrap()
            );

            // A new secret replaces the old one at once.
            let out = ok(&app, &["admins", "totp", "alice"], "").await;
            assert!(
                out.contains("the previous TOTP secret of alice no longer works"),
                "{out}"
            );
            let new_secret = out
                .lines()
                .next()
                .unwrap()
                .split(['=', '&'])
                .nth(1)
                .unwrap()
                .to_owned();
            assert_ne!(new_secret, secret);
            assert!(
                !verify_totp_code(store, &sealing, &name, &code, now)
                    .await
                    .unwrap()
            );
            assert_eq!(list_json(&app).await[0]["totp"], "pending");
            assert!(
                verify_totp_code(
                    store,
                    &sealing,
                    &name,
                    &code_at(&new_secret, now / 1000),
                    now
                )
                .await
                .unwrap()
            );
            app.remember_secret(new_secret);

            // Recorded, naming the operator, never the secret; later output shows no secret.
            let enrolled = audit(&app, "admin_totp_enrolled").await;
            assert_eq!(enrolled.len(), 2);
            assert_eq!(
                enrolled[0]["details"],
                json!({"admin": "alice", "replaced": true})
            );
            assert_eq!(
                enrolled[1]["details"],
                json!({"admin": "alice", "replaced": false})
            );
            assert_eq!(
                enrolled[1]["actor"],
                json!({"kind": "admin", "id": "ops-carol"})
            );
            ok(&app, &["admins", "list"], "").await;
        },
    )
    .await;
}
