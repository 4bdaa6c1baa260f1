//! Settings: from stdin or the state directory's `settings.json`; errors name the field and
//! never echo key material; unreachable monitord is exit 3 and the sample is spooled.

use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use monitor_core::AgentSettings;

use crate::util::{self, TempDir};

fn once(dir: &TempDir, stdin: &str) -> std::process::Output {
    util::run(&["--once", "--dir", dir.path().to_str().unwrap()], stdin)
}

#[test]
fn a_missing_field_is_named() {
    let dir = util::temp_dir("missing");
    let json = format!(
        r#"{{"name":"web1","enc":"{}","url":"http://127.0.0.1:9"}}"#,
        "ab".repeat(16)
    );
    let out = once(&dir, &json);
    let err = util::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("`mac`") && err.contains("missing"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn malformed_keys_are_named_but_never_echoed() {
    let dir = util::temp_dir("malformed");
    let secret_mac = "5e".repeat(32);
    let bad_enc = "not-hex-but-secret-0123456789abc"; // 32 characters, not hex
    let json = format!(
        r#"{{"name":"web1","enc":"{bad_enc}","mac":"{secret_mac}","url":"http://127.0.0.1:9"}}"#
    );
    let out = once(&dir, &json);
    let err = util::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("`enc`"), "{err}");
    assert!(
        !err.contains(bad_enc) && !err.contains(&secret_mac),
        "{err}"
    );

    let out = once(&dir, r#"{"name": "web1", "enc": "#);
    let err = util::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("JSON"), "{err}");

    let json = util::settings_json("http://monitor.example.com:8750");
    let err = util::stderr(&once(&dir, &json));
    assert!(err.contains("`url`") && err.contains("IP address"), "{err}");
    assert!(!err.contains(&"cd".repeat(32)), "{err}");
}

#[test]
fn without_settings_the_error_says_where_they_come_from() {
    let dir = util::temp_dir("none");
    let out = once(&dir, "");
    let err = util::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("stdin") && err.contains("settings.json"),
        "{err}"
    );
}

#[test]
fn unreachable_monitord_is_exit_3_with_one_line() {
    let dir = util::temp_dir("unreachable");
    let out = once(&dir, &util::settings_json(&util::closed_port_url()));
    let err = util::stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("unavailable"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // --once keeps no settings: they came on stdin for this run only.
    assert!(!dir.path().join("settings.json").exists());
}

#[test]
fn interval_keeps_settings_private_and_spools_while_monitord_is_away() {
    let dir = util::temp_dir("interval");
    let json = util::settings_json(&util::closed_port_url());
    let mut child = Command::new(util::agent())
        .args(["--interval", "1", "--dir", dir.path().to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), json.as_bytes()).unwrap();
    let spool = dir.path().join("spool");
    let spooled = || {
        std::fs::read_to_string(&spool)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    testkit::util::eventually(Duration::from_secs(20), || spooled() >= 2);
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let err = util::stderr(&out);
    assert!(spooled() >= 2, "samples were not spooled; stderr:\n{err}");
    assert!(err.contains("monitord unavailable"), "{err}");

    let saved = dir.path().join("settings.json");
    let mode = std::fs::metadata(&saved).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "settings.json mode {mode:o}");
    let kept = AgentSettings::parse(&std::fs::read(&saved).unwrap()).unwrap();
    assert_eq!(
        kept.to_json(),
        AgentSettings::parse(json.as_bytes()).unwrap().to_json()
    );

    // The spooled lines are whole samples, oldest first.
    let text = std::fs::read_to_string(&spool).unwrap();
    let seqs: Vec<i64> = text
        .lines()
        .map(|l| monitor_core::Sample::parse(l.as_bytes()).unwrap().seq)
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");

    // Empty stdin: the saved settings are used (and still point at the closed port).
    let out = once(&dir, "");
    assert_eq!(out.status.code(), Some(3), "{}", util::stderr(&out));
}
