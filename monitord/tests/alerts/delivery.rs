//! Getting the mail out: an SMTP outage, temporary failures (451) retried for more than a day
//! and given up after two, STARTTLS and implicit TLS trusted through `<smtp ca-file>`, SMTP
//! auth, a recipient refused with 550, a server that never answers, and `send-test-mail`.

use std::time::Duration;

use testkit::monitord::Monitord;
use testkit::smtp::{SmtpOptions, SmtpServer};

use super::{
    Feeder, MAIL_WAIT, QUIET, client, monitord, outbox_row, stalled_server, subjects, write_config,
    write_config_port,
};
use crate::support::bin;

#[test]
fn smtp_outage_delays_mail_but_every_mail_arrives_once() {
    let mut smtp = SmtpServer::start(SmtpOptions::default());
    let m = monitord(
        &smtp,
        "",
        &client(
            "ops@test.example, oncall@test.example",
            r#"<alert type="cpu" limit="90%"/><alert type="processes" limit="900"/>"#,
        ),
    );
    smtp.stop();
    let mut f = Feeder::new("web1");
    f.send(&m, |s| {
        s["cpu_percent"] = 97.0.into();
        s["processes"] = 950.into();
    });
    // Two rules × two recipients wait in the outbox through at least one failed attempt.
    testkit::util::wait_until(MAIL_WAIT, "a failed delivery attempt in the log", || {
        m.stderr().contains("not delivered yet")
    });
    std::thread::sleep(Duration::from_secs(2));
    smtp.start_again();
    // Backoff: 5 s, then 10 s; the next try after the restart is at most ~10 s away.
    let mail = smtp.wait_for(4, Duration::from_secs(40));
    let after = smtp.settle(QUIET);
    assert_eq!(after.len(), 4, "{:?}", subjects(&after));
    let mut got: Vec<(String, String)> = mail
        .iter()
        .map(|r| (r.rcpt_tos.join(","), r.subject.clone()))
        .collect();
    got.sort();
    let cpu = "[monitord] FIRING web1: cpu 97.0% > 90%".to_string();
    let procs = "[monitord] FIRING web1: processes 950 > 900".to_string();
    assert_eq!(
        got,
        [
            ("oncall@test.example".into(), cpu.clone()),
            ("oncall@test.example".into(), procs.clone()),
            ("ops@test.example".into(), cpu),
            ("ops@test.example".into(), procs),
        ]
    );
}

#[test]
fn temporary_failures_are_retried_for_at_least_a_day_and_given_up_after_two() {
    // The server defers both recipients (451) for ever. Two days cannot pass in a test, so
    // while monitord is stopped the rows are aged in its real database with sqlite3: one was
    // written 25 hours ago (still retried), the other two days and a minute ago (given up).
    let smtp = SmtpServer::start(SmtpOptions {
        defer: vec!["late@test.example".into(), "patient@test.example".into()],
        ..SmtpOptions::default()
    });
    let mut m = monitord(
        &smtp,
        "",
        &client(
            "late@test.example, patient@test.example",
            r#"<alert type="cpu" limit="90%"/>"#,
        ),
    );
    Feeder::new("web1").cpu(&m, 95.0);
    testkit::util::wait_until(MAIL_WAIT, "a deferred attempt for each recipient", || {
        ["late@test.example", "patient@test.example"]
            .iter()
            .all(|to| outbox_row(&m, to)["attempts"].as_i64() >= Some(1))
    });
    let status = m.terminate();
    assert!(status.success(), "SIGTERM exit: {status}");

    const HOUR_MS: i64 = 3_600_000;
    let age = |to: &str, by_ms: i64| {
        format!(
            "UPDATE outbox SET created_ms = created_ms - {by_ms}, \
             next_attempt_ms = created_ms - {by_ms} WHERE recipient = '{to}';"
        )
    };
    let sql = age("late@test.example", 48 * HOUR_MS + 60_000)
        + &age("patient@test.example", 25 * HOUR_MS);
    let out = std::process::Command::new("sqlite3")
        .arg(m.db_path())
        .arg(&sql)
        .output()
        .expect("run sqlite3 (the test command installs it)");
    assert!(
        out.status.success(),
        "sqlite3: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    m.spawn();
    testkit::util::wait_until(MAIL_WAIT, "the two-day-old row to be given up", || {
        outbox_row(&m, "late@test.example")["status"] == "failed"
    });
    let late = outbox_row(&m, "late@test.example");
    assert_eq!(late["attempts"], 2, "{late}");
    let error = late["last_error"].as_str().unwrap_or("");
    assert!(
        error.starts_with("given up") && error.contains("451"),
        "{late}"
    );

    // The 25-hour-old row is tried after the restart and again at its next retry (10 s).
    testkit::util::wait_until(
        Duration::from_secs(30),
        "a 25 h old row retried twice",
        || outbox_row(&m, "patient@test.example")["attempts"].as_i64() >= Some(3),
    );
    let patient = outbox_row(&m, "patient@test.example");
    assert_eq!(patient["status"], "pending", "{patient}");
    // Meanwhile the given-up row was left alone, and said so in the log exactly once.
    assert_eq!(outbox_row(&m, "late@test.example")["attempts"], 2);
    let log = m.stderr();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("late@test.example"))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].contains("given up after 2d") && lines[0].contains("client=web1"),
        "{}",
        lines[0]
    );
    assert!(smtp.messages().is_empty(), "a deferred mail was accepted");
}

#[test]
fn starttls_trusts_the_test_certificate_only_through_ca_file() {
    let smtp = SmtpServer::start(SmtpOptions {
        starttls: true,
        ..SmtpOptions::default()
    });
    let ca = smtp.ca_file().expect("a CA file");
    let rule = r#"<alert type="cpu" limit="90%"/>"#;
    // Without ca-file the certificate is not trusted: nothing is delivered, the mail waits.
    let mut m = monitord(
        &smtp,
        r#"security="starttls""#,
        &client("ops@test.example", rule),
    );
    Feeder::new("web1").cpu(&m, 95.0);
    testkit::util::wait_until(MAIL_WAIT, "a refused TLS handshake in the log", || {
        m.stderr().contains("not delivered yet")
    });
    assert!(
        smtp.messages().is_empty(),
        "delivered to an untrusted server"
    );

    m.kill9();
    let attrs = format!(r#"security="starttls" ca-file="{}""#, ca.display());
    write_config(&m, &smtp, &attrs, &client("ops@test.example", rule));
    m.spawn();
    // The mail from before the restart goes out at its next retry, over TLS.
    let mail = smtp.wait_for(1, Duration::from_secs(30));
    assert!(mail[0].tls, "delivered without STARTTLS");
    assert_eq!(mail[0].subject, "[monitord] FIRING web1: cpu 95.0% > 90%");
    assert_eq!(smtp.settle(QUIET).len(), 1);
}

#[test]
fn implicit_tls_with_ca_file() {
    let smtp = SmtpServer::start(SmtpOptions {
        implicit_tls: true,
        ..SmtpOptions::default()
    });
    let ca = smtp.ca_file().expect("a CA file");
    let attrs = format!(r#"security="tls" ca-file="{}""#, ca.display());
    let m = monitord(
        &smtp,
        &attrs,
        &client(
            "ops@test.example",
            r#"<alert type="processes" limit="900"/>"#,
        ),
    );
    Feeder::new("web1").send(&m, |s| s["processes"] = 950.into());
    let mail = smtp.wait_for(1, MAIL_WAIT);
    assert!(mail[0].tls, "delivered without TLS");
    assert_eq!(
        mail[0].subject,
        "[monitord] FIRING web1: processes 950 > 900"
    );
}

#[test]
fn smtp_auth_with_the_password_from_password_file() {
    let smtp = SmtpServer::start(SmtpOptions {
        auth: Some(("alerts".into(), "s3cret & more".into())),
        ..SmtpOptions::default()
    });
    let rule = client("ops@test.example", r#"<alert type="cpu" limit="90%"/>"#);
    let mut m = Monitord::prepare(bin(), &[]);
    std::fs::write(m.dir().join("smtp.pass"), "wr0ng-pass-42\n").expect("write smtp.pass");
    let attrs = r#"username="alerts" password-file="smtp.pass""#;
    write_config(&m, &smtp, attrs, &rule);
    m.spawn();
    Feeder::new("web1").cpu(&m, 95.0);
    testkit::util::wait_until(MAIL_WAIT, "a refused login in the log", || {
        m.stderr().contains("refused the login")
    });
    assert!(
        smtp.messages().is_empty(),
        "delivered with a wrong password"
    );
    assert!(
        !m.stderr().contains("wr0ng-pass-42"),
        "the password is in the log"
    );

    // The operator fixes the file; the mail waiting in the outbox goes out at its next try.
    std::fs::write(m.dir().join("smtp.pass"), "s3cret & more\n").expect("write smtp.pass");
    let mail = smtp.wait_for(1, Duration::from_secs(30));
    assert_eq!(mail[0].subject, "[monitord] FIRING web1: cpu 95.0% > 90%");
}

#[test]
fn a_refused_recipient_is_recorded_and_the_other_still_gets_the_mail() {
    let smtp = SmtpServer::start(SmtpOptions {
        reject: vec!["nobody@test.example".into()],
        ..SmtpOptions::default()
    });
    let m = monitord(
        &smtp,
        "",
        &client(
            // Listed twice: still one mail.
            "nobody@test.example, ops@test.example, ops@test.example",
            r#"<alert type="cpu" limit="90%"/>"#,
        ),
    );
    Feeder::new("web1").cpu(&m, 95.0);
    let mail = smtp.wait_for(1, MAIL_WAIT);
    assert_eq!(mail[0].rcpt_tos, ["ops@test.example"]);
    // Past the first retry delay (5 s): a permanent refusal is not tried again.
    std::thread::sleep(Duration::from_secs(7));
    assert_eq!(smtp.messages().len(), 1, "{:?}", subjects(&smtp.messages()));
    let log = m.stderr();
    let attempts = log
        .lines()
        .filter(|l| l.contains("nobody@test.example") && l.contains("alert mail"))
        .count();
    assert_eq!(attempts, 1, "the refused recipient was tried again:\n{log}");
    let listing = m.command_ok(&["alerts"]);
    println!("monitord alerts:\n{listing}");
    let row = listing
        .lines()
        .find(|l| l.contains("nobody@test.example"))
        .unwrap_or_else(|| panic!("`monitord alerts` does not list the refused mail:\n{listing}"));
    assert!(row.contains("failed") && row.contains("550"), "{row}");
    assert!(listing.contains("firing"), "{listing}");

    let json = m.alerts();
    let outbox = json["outbox"].as_array().expect("an outbox array");
    let row = |to: &str| {
        outbox
            .iter()
            .find(|r| r["recipient"] == to)
            .unwrap_or_else(|| panic!("no outbox row for {to}: {json}"))
    };
    assert_eq!(outbox.len(), 2, "{json}");
    let refused = row("nobody@test.example");
    assert_eq!(refused["status"], "failed");
    assert_eq!(refused["attempts"], 1);
    assert!(
        refused["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("550")),
        "{refused}"
    );
    assert_eq!(row("ops@test.example")["status"], "sent");
    assert_eq!(
        refused["message_id"],
        row("ops@test.example")["message_id"],
        "one mail, one Message-ID for all its recipients"
    );
}

#[test]
fn a_server_that_never_answers_times_out_and_the_mail_is_retried() {
    let (stall_port, accepted) = stalled_server();
    let mut m = Monitord::prepare(bin(), &[]);
    let rule = client("ops@test.example", r#"<alert type="cpu" limit="90%"/>"#);
    write_config_port(&m, stall_port, "", &rule);
    m.spawn();
    Feeder::new("web1").cpu(&m, 95.0);
    accepted
        .recv_timeout(MAIL_WAIT)
        .expect("a connection attempt");
    // 30 s SMTP timeout, then the row waits 5 s and the next attempt connects again.
    testkit::util::wait_until(Duration::from_secs(50), "the timeout in the log", || {
        m.stderr().contains("no answer after")
    });
    accepted
        .recv_timeout(Duration::from_secs(20))
        .expect("a second attempt after the timeout");
}

#[test]
fn send_test_mail_checks_the_smtp_settings() {
    let mut smtp = SmtpServer::start(SmtpOptions::default());
    let m = monitord(&smtp, "", &client("ops@test.example", ""));
    let out = m.command(&["send-test-mail", "admin@test.example"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mail = smtp.wait_for(1, MAIL_WAIT);
    assert_eq!(mail[0].rcpt_tos, ["admin@test.example"]);
    assert_eq!(mail[0].subject, "[monitord] test mail");

    smtp.stop();
    let out = m.command(&["send-test-mail", "admin@test.example"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("admin@test.example") && err.contains("<smtp>"),
        "{err}"
    );
}
