//! The daemon's life: a client added to config.xml while it runs is accepted without a
//! reload, SIGTERM answers the requests in flight and exits 0, and bad start-up input
//! (missing or open key, bad config) is refused with a clear message that holds no secret.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use testkit::monitord::{Monitord, now_ms, sample, sample_path};
use testkit::{agent, util};

use crate::support::{bin, counts, expect_status, hex, secrets_of};

#[test]
fn a_client_added_while_running_is_accepted_without_reload() {
    let mut m = Monitord::start(bin(), &["web1"]);
    let s = sample("new", 1, now_ms());
    let r = m.put_sample("web2", &s).unwrap();
    expect_status(&r, 404, "web2 before it is configured", &[]);
    m.add_client("web2");
    // Re-read at most once a second after the file's mtime changed: allow a few seconds.
    util::wait_until(
        Duration::from_secs(10),
        "web2 accepted after config.xml changed",
        || {
            std::thread::sleep(Duration::from_millis(200));
            m.put_sample("web2", &s)
                .map(|r| r.status == 200)
                .unwrap_or(false)
        },
    );
    assert_eq!(m.samples("web2").len(), 1);
}

#[test]
fn sigterm_answers_requests_in_flight_and_exits_0() {
    let mut m = Monitord::start(bin(), &["web1"]);
    // Requests whose head is in and whose body is still arriving when SIGTERM comes.
    let mut in_flight = Vec::new();
    for seq in 0..3 {
        let body = m.seal("web1", sample("term", seq, now_ms()).to_string().as_bytes());
        let head = format!(
            "PUT {} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            sample_path("web1"),
            body.len()
        );
        let mut stream = util::connect(m.addr()).unwrap();
        let (first, rest) = body.as_bytes().split_at(body.len() / 2);
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(first).unwrap();
        in_flight.push((stream, rest.to_vec()));
    }
    std::thread::sleep(Duration::from_millis(300));
    m.signal("TERM");
    std::thread::sleep(Duration::from_millis(300));
    for (stream, rest) in &mut in_flight {
        stream.write_all(rest).unwrap();
        let r = util::read_response(stream).unwrap_or_else(|e| {
            panic!(
                "no answer to a request in flight ({e}); monitord's stderr:\n{}",
                m.stderr()
            )
        });
        expect_status(&r, 200, "request in flight at SIGTERM", &[]);
    }
    let status = m.wait_exit(Duration::from_secs(30));
    assert!(
        status.success(),
        "exit status {status}; stderr:\n{}",
        m.stderr()
    );
    assert!(
        std::net::TcpStream::connect(m.addr()).is_err(),
        "still accepting after exit"
    );
    m.spawn();
    let stored = counts(&m.samples("web1"));
    assert_eq!(
        stored.len(),
        3,
        "every answered request is stored: {stored:?}"
    );
}

#[test]
fn sigterm_while_senders_put_exits_0_and_keeps_every_200() {
    let mut m = Monitord::start(bin(), &["web1", "web2", "web3"]);
    let names = ["web1", "web2", "web3"];
    let answered = AtomicUsize::new(0);
    let acked: Vec<Vec<i64>> = std::thread::scope(|scope| {
        let senders: Vec<_> = names
            .iter()
            .map(|name| {
                let (m, answered) = (&m, &answered);
                scope.spawn(move || {
                    let mut acked = Vec::new();
                    for seq in 0..10_000 {
                        match m.put_sample(name, &sample("term", seq, now_ms())) {
                            Ok(r) if r.status == 200 => acked.push(seq),
                            Ok(r) => panic!("{name}: unexpected {} {:?}", r.status, r.text()),
                            // Refused or reset: monitord has stopped accepting.
                            Err(_) => break,
                        }
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    acked
                })
            })
            .collect();
        // SIGTERM once the senders are in full swing, however slow the machine is.
        util::wait_until(Duration::from_secs(30), "30 answered PUTs", || {
            answered.load(Ordering::Relaxed) >= 30
        });
        m.signal("TERM");
        senders.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let status = m.wait_exit(Duration::from_secs(30));
    assert!(
        status.success(),
        "exit status {status}; stderr:\n{}",
        m.stderr()
    );
    m.spawn();
    for (name, acked) in names.iter().zip(&acked) {
        assert!(!acked.is_empty(), "{name} got no 200");
        let stored = counts(&m.samples(name));
        for seq in acked {
            assert_eq!(
                stored.get(&("term".to_owned(), *seq)),
                Some(&1),
                "{name} seq {seq}"
            );
        }
    }
}

fn assert_refused(m: &Monitord, what: &str, expect_in_stderr: &[&str], secrets: &[String]) {
    let out = m.run_to_exit(&[], Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{what}: monitord started anyway");
    for needle in expect_in_stderr {
        assert!(
            stderr.contains(needle),
            "{what}: stderr lacks {needle:?}:\n{stderr}"
        );
    }
    for secret in secrets {
        assert!(
            !stderr.contains(secret.as_str()),
            "{what}: stderr leaks a secret:\n{stderr}"
        );
    }
}

#[test]
fn bad_start_up_input_is_refused_clearly() {
    let m = Monitord::prepare(bin(), &["web1"]);
    let key = hex(m.master_key().bytes());

    std::fs::set_permissions(m.key_path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_refused(
        &m,
        "a key others can read",
        &["master.key"],
        std::slice::from_ref(&key),
    );
    std::fs::set_permissions(m.key_path(), std::fs::Permissions::from_mode(0o600)).unwrap();

    let regen = std::process::Command::new(bin())
        .arg("gen-key")
        .arg(m.key_path())
        .output()
        .unwrap();
    assert_eq!(
        regen.status.code(),
        Some(1),
        "gen-key over an existing key must refuse"
    );
    assert_eq!(
        hex(m.master_key().bytes()),
        key,
        "the existing key is untouched"
    );

    let xml = std::fs::read_to_string(m.config_path()).unwrap();
    std::fs::write(
        m.config_path(),
        xml.replace("username=", "colour=\"red\" username="),
    )
    .unwrap();
    assert_refused(
        &m,
        "an unknown attribute",
        &["config.xml:3", "colour"],
        std::slice::from_ref(&key),
    );
    let check = m.command(&["check-config", m.config_path().to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(1), "check-config on a bad file");
    std::fs::write(m.config_path(), xml).unwrap();

    std::fs::remove_file(m.key_path()).unwrap();
    assert_refused(&m, "no master key", &["gen-key"], &[]);
}

#[test]
fn the_agent_reports_bad_settings_and_refusals_without_secrets() {
    let m = Monitord::start(bin(), &["web1"]);
    let state = util::temp_dir("agent");
    let keys = m.keys("web1");
    let secrets = secrets_of(&m, &["web1"]);

    // A malformed field is named, its value never echoed.
    let bad = format!(
        r#"{{"name":"web1","enc":"{}zz","mac":"{}","url":"{}"}}"#,
        &hex(keys.enc())[..30],
        hex(keys.mac()),
        m.url()
    );
    let out = agent::run(&bad, state.path(), &["--once"], Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "agent accepted a malformed enc");
    assert!(
        stderr.contains("enc"),
        "the error names the field: {stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    for s in &secrets {
        assert!(
            !stderr.contains(s.as_str()),
            "agent leaks a secret: {stderr}"
        );
    }

    // Keys of another master: monitord says 401, the agent exits non-zero with one line.
    let other =
        monitor_core::ClientKeys::derive(&monitor_core::MasterKey::from_bytes([9; 32]), "web1");
    let wrong = monitor_core::AgentSettings::new("web1", &other, &m.url(), None).to_json();
    let out = agent::run(&wrong, state.path(), &["--once"], Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "agent --once succeeded with the wrong key"
    );
    assert!(
        stderr.contains("401"),
        "the reason names the status: {stderr}"
    );
    assert!(
        !stderr.contains(&hex(other.mac())),
        "agent leaks its key: {stderr}"
    );
    assert!(m.samples("web1").is_empty());
}

#[test]
fn check_config_as_the_service_user_is_quiet_about_the_deployers_ssh_credentials() {
    // The packaged unit runs `monitord check-config` as user monitord (ExecStartPre), which
    // must not read root's SSH key or password file, and does not need to: only
    // monitor-deploy does. Files monitord itself reads (an SMTP password file) still warn,
    // and so does a credential that does not exist at all. Here `nobody` plays monitord.
    if !util::runnable_as_root("running check-config as another user") {
        return;
    }
    let dir = util::temp_dir("service-user");
    let path = |name: &str| dir.path().join(name);
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for secret in ["id_ed25519", "smtp.pass"] {
        std::fs::write(path(secret), "secret\n").unwrap();
        std::fs::set_permissions(path(secret), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::write(
        path("config.xml"),
        r#"<monitor>
  <smtp host="127.0.0.1" username="alerts" password-file="smtp.pass"/>
  <defaults username="monitor" key="id_ed25519" mail="ops@example.test"/>
  <client name="web1" ip="192.0.2.11"/>
  <client name="web2" ip="192.0.2.12" password-file="missing.pass"/>
</monitor>
"#,
    )
    .unwrap();
    std::fs::set_permissions(path("config.xml"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = path("config.xml");
    let check = |as_nobody: bool| {
        let mut cmd = if as_nobody {
            let mut c = std::process::Command::new("setpriv");
            c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]);
            c.arg(bin());
            c
        } else {
            std::process::Command::new(bin())
        };
        let out = cmd
            .arg("check-config")
            .arg(&config)
            .output()
            .expect("run monitord check-config");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "check-config failed: {stderr}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "OK: 2 clients, 0 alert rules"
        );
        stderr
    };

    let warnings = check(true);
    println!("as nobody:\n{warnings}");
    assert!(
        !warnings.contains("id_ed25519"),
        "warned about the deployer's key:\n{warnings}"
    );
    assert!(
        warnings.contains("smtp.pass") && warnings.contains("cannot be read by this user"),
        "no warning about monitord's own unreadable SMTP password file:\n{warnings}"
    );
    assert!(
        warnings.contains("missing.pass") && warnings.contains("does not exist"),
        "no warning about a credential that does not exist:\n{warnings}"
    );
    assert_eq!(warnings.lines().count(), 2, "{warnings}");

    // Root, who deploys, can read both; only the missing file is left to warn about.
    let warnings = check(false);
    assert_eq!(warnings.lines().count(), 1, "{warnings}");
    assert!(warnings.contains("missing.pass"), "{warnings}");
}

#[test]
fn a_second_monitord_on_the_same_database_refuses_to_start() {
    let mut m = Monitord::start(bin(), &["web1"]);
    let first = m.pid();
    // Same config.xml, so the same database; `listen` is port 0, so only the lock can stop it.
    let out = m.run_to_exit(&[], Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "the second monitord: {stderr}");
    let db = m.db_path().display().to_string();
    for needle in [&format!("pid {first}"), &db, &"another monitord".to_owned()] {
        assert!(
            stderr.contains(needle.as_str()),
            "stderr lacks {needle:?}:\n{stderr}"
        );
    }
    let r = m.put_sample("web1", &sample("lock", 0, now_ms())).unwrap();
    expect_status(&r, 200, "the first monitord after the second gave up", &[]);

    // kill -9 leaves the lock file behind, and no lock: the next start just works.
    m.kill9();
    assert!(m.dir().join("db.sqlite3.lock").exists());
    m.spawn();
    let r = m.put_sample("web1", &sample("lock", 1, now_ms())).unwrap();
    expect_status(&r, 200, "after kill -9 and a restart", &[]);
    assert_eq!(m.samples("web1").len(), 2);
}

#[test]
fn a_damaged_database_is_refused_named_and_left_as_it_was() {
    let mut m = Monitord::start(bin(), &["web1"]);
    for seq in 1..=200 {
        let r = m
            .put_sample("web1", &sample("damage", seq, now_ms()))
            .unwrap();
        expect_status(&r, 200, "a sample", &[]);
    }
    assert!(m.terminate().success());
    // Everything in the main file, then a page in the middle overwritten: what a bad
    // disk or a careless copy does.
    let db = m.db_path();
    let out = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg("PRAGMA wal_checkpoint(TRUNCATE);")
        .output()
        .expect("run sqlite3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut bytes = std::fs::read(&db).unwrap();
    assert!(
        bytes.len() > 4 * 4096,
        "a database of {} bytes",
        bytes.len()
    );
    for b in &mut bytes[2 * 4096..3 * 4096] {
        *b = 0xA5;
    }
    std::fs::write(&db, &bytes).unwrap();

    let out = m.run_to_exit(&[], Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("is damaged")
            && stderr.contains(&db.display().to_string())
            && stderr.contains(".recover"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(&db).unwrap(),
        bytes,
        "monitord changed the damaged file"
    );
}
