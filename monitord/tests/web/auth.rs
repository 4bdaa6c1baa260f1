//! Basic auth on the web listener: no header and a wrong password are 401 with the realm, a
//! right one (written by `monitord passwd` or by `htpasswd -B`) is 200, a reload re-reads the
//! file, repeated failures from one address are 429, and a users-file others may read stops
//! monitord from starting.

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;
use std::time::Duration;

use testkit::monitord::Monitord;
use testkit::util;

use super::{basic, fleet_with_an_alert, passwd};
use crate::support::bin;

const WITH_USERS: &str = r#"listen="127.0.0.1:0" users-file="web.users""#;

fn htpasswd_available() -> bool {
    Command::new("htpasswd")
        .arg("-h")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stderr).contains("-B"))
}

#[test]
fn users_from_passwd_and_htpasswd_get_in_and_failures_are_limited() {
    let mut m = fleet_with_an_alert(WITH_USERS);
    let out = passwd(&m, "alice", "web.users", "s3cret pass");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = std::fs::metadata(m.dir().join("web.users"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o007, 0, "a new users-file is {mode:o}");
    let htpasswd = htpasswd_available();
    if util::runnable(
        htpasswd,
        "htpasswd not found (Debian package apache2-utils)",
    ) {
        let status = Command::new("htpasswd")
            .args(["-B", "-C", "5", "-b"])
            .arg(m.dir().join("web.users"))
            .args(["bob", "bobs-pw"])
            .status()
            .unwrap();
        assert!(status.success());
        // As an admin would after htpasswd, which leaves the file as umask says.
        std::fs::set_permissions(
            m.dir().join("web.users"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }
    m.spawn();

    let none = m.web_get("/api/v1/clients", &[]).unwrap();
    assert_eq!(none.status, 401);
    assert_eq!(
        none.header("www-authenticate"),
        Some(r#"Basic realm="monitord""#)
    );
    assert_eq!(
        m.web_get("/metrics", &[]).unwrap().status,
        401,
        "/metrics is behind auth too"
    );
    let wrong = m
        .web_get("/api/v1/clients", &[&basic("alice", "guess")])
        .unwrap();
    assert_eq!(wrong.status, 401);
    assert_eq!(
        wrong.header("www-authenticate"),
        Some(r#"Basic realm="monitord""#)
    );
    assert!(wrong.json()["error"].is_string());
    let right = m
        .web_get("/api/v1/clients", &[&basic("alice", "s3cret pass")])
        .unwrap();
    assert_eq!(right.status, 200, "{}", right.text());
    assert_eq!(right.json().as_array().unwrap().len(), 2);
    if htpasswd {
        let bob = m.web_get("/metrics", &[&basic("bob", "bobs-pw")]).unwrap();
        assert_eq!(bob.status, 200, "an htpasswd -B user: {}", bob.text());
    }
    util::wait_until(
        Duration::from_secs(5),
        "the failure logged with the peer",
        || {
            m.stderr()
                .contains("wrong user name or password from 127.0.0.1")
        },
    );

    // `monitord passwd` replaces alice's password; SIGHUP makes the daemon read it.
    let out = passwd(&m, "alice", "web.users", "new-pw");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("replaced"),
        "{out:?}"
    );
    let reloads = m.stderr().matches("SIGHUP: reloaded config.xml").count();
    m.signal("HUP");
    // Waiting on the log, not by trying the new password: each try before the reload would
    // be one more failure towards the limit checked below (seen on a loaded machine).
    util::wait_until(Duration::from_secs(10), "the reload", || {
        m.stderr().matches("SIGHUP: reloaded config.xml").count() > reloads
    });
    assert_eq!(
        m.web_get("/api/v1/alerts", &[&basic("alice", "new-pw")])
            .unwrap()
            .status,
        200,
        "the new password"
    );
    assert_eq!(
        m.web_get("/api/v1/alerts", &[&basic("alice", "s3cret pass")])
            .unwrap()
            .status,
        401
    );

    // That was failure 2; up to 10 in a minute are 401, past that the address gets 429,
    // whatever it sends, and no bcrypt is spent on it.
    for n in 3..=11 {
        let r = m
            .web_get("/api/v1/clients", &[&basic("alice", &format!("guess{n}"))])
            .unwrap();
        assert_eq!(r.status, 401, "failure {n}");
    }
    let limited = m
        .web_get("/api/v1/clients", &[&basic("alice", "new-pw")])
        .unwrap();
    assert_eq!(limited.status, 429, "{}", limited.text());
    assert!(limited.json()["error"].is_string());
    m.terminate();
}

#[test]
fn a_users_file_others_can_read_is_refused() {
    let mut m = Monitord::prepare(bin(), &["web1"]);
    m.set_web(WITH_USERS);
    let out = passwd(&m, "alice", "web.users", "pw");
    assert!(out.status.success());
    let file = m.dir().join("web.users");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();

    let check = m.command(&["check-config"]);
    assert_eq!(check.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(
        stderr.contains("config.xml:4: web: `users-file`"),
        "{stderr}"
    );
    assert!(stderr.contains("mode 0644"), "{stderr}");

    let daemon = m.run_to_exit(&[], Duration::from_secs(30));
    assert!(!daemon.status.success());
    let stderr = String::from_utf8_lossy(&daemon.stderr);
    assert!(stderr.contains("mode 0644"), "{stderr}");
}
