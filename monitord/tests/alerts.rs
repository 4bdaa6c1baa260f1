//! Alerts end to end: a real monitord fed sealed samples whose values the test controls, and
//! a real SMTP server (aiosmtpd) on loopback whose received mail the tests read. Covers
//! firing once, `for`, `repeat`, resolving, `clear`, the top process in the mail, host down,
//! an SMTP outage, restarts and `kill -9` while firing (and the one window where a kill re-sends
//! a mail: with the same Message-ID), a delivery cut off by SIGTERM,
//! late (spooled) samples, a rule removed by a reload, `send-test-mail`, STARTTLS trusted through
//! `<smtp ca-file>`, a recipient refused with 550, and temporary failures (451) retried for
//! more than a day and given up after two.

use std::time::{Duration, SystemTime};

use testkit::monitord::{Monitord, now_ms, sample};
use testkit::smtp::{Received, SmtpOptions, SmtpServer, seconds_between};

use crate::support::bin;

mod clock;
mod mail_setup;

const MAIL_WAIT: Duration = Duration::from_secs(20);
/// How long "no (further) mail" is watched for.
const QUIET: Duration = Duration::from_secs(3);

/// A monitord whose config.xml has `<smtp>` pointing at `smtp` and the given `<client>`s.
pub fn monitord(smtp: &SmtpServer, smtp_attrs: &str, clients: &str) -> Monitord {
    let mut m = Monitord::prepare(bin(), &[]);
    write_config(&m, smtp, smtp_attrs, clients);
    m.spawn();
    m
}

fn write_config(m: &Monitord, smtp: &SmtpServer, smtp_attrs: &str, clients: &str) {
    write_config_port(m, smtp.port(), smtp_attrs, clients);
}

fn write_config_port(m: &Monitord, smtp_port: u16, smtp_attrs: &str, clients: &str) {
    let xml = format!(
        "<monitor>\n  <server listen=\"127.0.0.1:0\" database=\"db.sqlite3\" key-file=\"master.key\"/>\n  \
         <smtp host=\"127.0.0.1\" port=\"{}\" from=\"monitord@test.example\" {smtp_attrs}/>\n{clients}\n</monitor>\n",
        smtp_port
    );
    std::fs::write(m.config_path(), xml).expect("write config.xml");
}

/// Sends samples of one client with increasing `seq`; `set` changes the sample's values.
pub struct Feeder {
    name: &'static str,
    instance: String,
    seq: i64,
}

impl Feeder {
    pub fn new(name: &'static str) -> Feeder {
        Feeder {
            name,
            instance: format!("alerts-{}", now_ms()),
            seq: 0,
        }
    }

    /// PUTs one sample and returns when its 200 arrived.
    pub fn send(&mut self, m: &Monitord, set: impl FnOnce(&mut serde_json::Value)) -> SystemTime {
        self.seq += 1;
        let mut s = sample(&self.instance, self.seq, m.now_ms());
        set(&mut s);
        let r = m.put_sample(self.name, &s).expect("PUT a sample");
        assert_eq!(
            r.status,
            200,
            "sample refused: {}; monitord's log:\n{}",
            r.text(),
            m.stderr()
        );
        SystemTime::now()
    }

    pub fn cpu(&mut self, m: &Monitord, cpu: f64) -> SystemTime {
        self.send(m, |s| s["cpu_percent"] = cpu.into())
    }
}

fn subjects(mail: &[Received]) -> Vec<String> {
    mail.iter().map(|r| r.subject.clone()).collect()
}

pub fn client(mail: &str, alerts: &str) -> String {
    format!(
        "  <client name=\"web1\" ip=\"127.0.0.1\" username=\"monitor\" mail=\"{mail}\" interval=\"10s\">\n{alerts}\n  </client>"
    )
}

#[test]
fn fires_once_resolves_once_and_names_the_top_process() {
    let smtp = SmtpServer::start(SmtpOptions::default());
    let m = monitord(
        &smtp,
        "",
        &client("ops@test.example", r#"<alert type="cpu" limit="90%"/>"#),
    );
    let mut f = Feeder::new("web1");
    f.cpu(&m, 50.0);
    let breach_ok = f.send(&m, |s| {
        s["cpu_percent"] = 95.0.into();
        s["top"] = serde_json::json!([
            {"pid": 4242, "name": "stress-ng", "cpu_percent": 93.5, "rss": 1_048_576},
            {"pid": 1, "name": "init", "cpu_percent": 0.1, "rss": 8_388_608}
        ]);
    });
    let mail = smtp.wait_for(1, MAIL_WAIT);
    let latency = seconds_between(breach_ok, mail[0].accepted_at);
    println!("breach -> mail latency: {:.0} ms", latency * 1000.0);
    assert!(
        latency <= 2.0,
        "the mail took {latency:.3} s after the sample's 200"
    );

    let fired = &mail[0];
    println!("{}\n\n{}", fired.subject, fired.body);
    assert_eq!(fired.subject, "[monitord] FIRING web1: cpu 95.0% > 90%");
    assert_eq!(fired.rcpt_tos, ["ops@test.example"]);
    assert_eq!(fired.mail_from, "monitord@test.example");
    assert!(fired.header("Date").is_some(), "no Date header");
    let id = fired.header("Message-ID").expect("a Message-ID header");
    assert!(
        id.starts_with('<') && id.ends_with('>') && id.contains('@'),
        "{id}"
    );
    for needle in [
        "Client:   web1",
        "Address:  127.0.0.1",
        "stress-ng",
        "4242",
        "Since",
        "Last samples",
        "   95.0 ",
    ] {
        assert!(
            fired.body.contains(needle),
            "body lacks {needle:?}:\n{}",
            fired.body
        );
    }

    // Still over the limit: no second mail.
    f.cpu(&m, 97.0);
    f.cpu(&m, 99.0);
    assert_eq!(
        smtp.settle(QUIET).len(),
        1,
        "a mail per sample while firing"
    );

    f.cpu(&m, 40.0);
    let mail = smtp.wait_for(2, MAIL_WAIT);
    assert_eq!(mail[1].subject, "[monitord] RESOLVED web1: cpu 40.0% ≤ 90%");
    f.cpu(&m, 30.0);
    assert_eq!(
        smtp.settle(QUIET).len(),
        2,
        "{:?}",
        subjects(&smtp.messages())
    );
}

#[test]
fn for_holds_back_a_blip_and_fires_when_it_lasts() {
    let smtp = SmtpServer::start(SmtpOptions::default());
    let m = monitord(
        &smtp,
        "",
        &client(
            "ops@test.example",
            r#"<alert type="memory" limit="50%" for="3s"/>"#,
        ),
    );
    let mut f = Feeder::new("web1");
    let mem = |p: f64| move |s: &mut serde_json::Value| s["memory"]["percent"] = p.into();
    f.send(&m, mem(73.2));
    std::thread::sleep(Duration::from_secs(2));
    f.send(&m, mem(20.0));
    std::thread::sleep(Duration::from_millis(1500));
    f.send(&m, mem(73.2));
    assert_eq!(
        smtp.settle(QUIET).len(),
        0,
        "a blip shorter than `for` was mailed"
    );
    // Over the limit since the last send, more than 3 s by now.
    f.send(&m, mem(73.2));
    let mail = smtp.wait_for(1, MAIL_WAIT);
    assert_eq!(
        mail[0].subject,
        "[monitord] FIRING web1: memory 73.2% > 50%"
    );
}

#[test]
fn repeat_re_sends_while_firing() {
    let smtp = SmtpServer::start(SmtpOptions::default());
    let m = monitord(
        &smtp,
        "",
        &client(
            "ops@test.example",
            r#"<alert type="load" limit="8" repeat="3s"/>"#,
        ),
    );
    let mut f = Feeder::new("web1");
    let load = |s: &mut serde_json::Value| s["load"] = serde_json::json!([12.5, 3.0, 1.0]);
    f.send(&m, load);
    smtp.wait_for(1, MAIL_WAIT);
    f.send(&m, load);
    std::thread::sleep(Duration::from_millis(3200));
    f.send(&m, load);
    let mail = smtp.wait_for(2, MAIL_WAIT);
    f.send(&m, load);
    let mail_after = smtp.settle(QUIET);
    assert_eq!(mail_after.len(), 2, "{:?}", subjects(&mail_after));
    for r in &mail {
        assert_eq!(r.subject, "[monitord] FIRING web1: load 12.5 > 8");
    }
    assert_ne!(mail[0].header("Message-ID"), mail[1].header("Message-ID"));
}

#[test]
fn clear_keeps_it_firing_between_clear_and_limit() {
    let smtp = SmtpServer::start(SmtpOptions::default());
    let m = monitord(
        &smtp,
        "",
        &client(
            "ops@test.example",
            r#"<alert type="cpu" limit="90%" clear="75%"/>"#,
        ),
    );
    let mut f = Feeder::new("web1");
    f.cpu(&m, 97.0);
    smtp.wait_for(1, MAIL_WAIT);
    f.cpu(&m, 80.0);
    f.cpu(&m, 89.0);
    f.cpu(&m, 76.0);
    assert_eq!(smtp.settle(QUIET).len(), 1, "resolved above `clear`");
    f.cpu(&m, 70.0);
    let mail = smtp.wait_for(2, MAIL_WAIT);
    assert_eq!(
        subjects(&mail),
        [
            "[monitord] FIRING web1: cpu 97.0% > 90%",
            "[monitord] RESOLVED web1: cpu 70.0% ≤ 75%"
        ]
    );
}

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

/// The status of every outbox row, newest first, as `monitord alerts --json` lists them.
fn outbox_statuses(m: &Monitord) -> Vec<String> {
    let listing = m.alerts();
    listing["outbox"]
        .as_array()
        .unwrap_or_else(|| panic!("no outbox array: {listing}"))
        .iter()
        .map(|r| r["status"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// Waits until `count` outbox rows exist and every one is marked sent: only then is a
/// delivery final, a crash before it is re-sent (with the same Message-ID).
fn wait_until_sent(m: &Monitord, count: usize) {
    testkit::util::wait_until(MAIL_WAIT, "the outbox rows to be marked sent", || {
        let statuses = outbox_statuses(m);
        statuses.len() == count && statuses.iter().all(|s| s == "sent")
    });
}

fn message_ids(mail: &[Received]) -> Vec<String> {
    mail.iter()
        .map(|r| r.header("Message-ID").expect("a Message-ID header"))
        .collect()
}

#[test]
fn restart_or_kill_9_while_firing_sends_no_second_mail() {
    let smtp = SmtpServer::start(SmtpOptions::default());
    let mut m = monitord(
        &smtp,
        "",
        &client("ops@test.example", r#"<alert type="cpu" limit="90%"/>"#),
    );
    let mut f = Feeder::new("web1");
    f.cpu(&m, 95.0);
    smtp.wait_for(1, MAIL_WAIT);
    // The server stores a mail before monitord hears its 250; a kill in between re-sends it
    // (see `a_kill_between_the_servers_250_and_the_outbox_commit_re_sends_the_same_message`).
    // Here the delivery is final before the kill.
    wait_until_sent(&m, 1);

    m.kill9();
    m.spawn();
    f.cpu(&m, 96.0);
    let mail = smtp.settle(QUIET);
    assert_eq!(
        mail.len(),
        1,
        "re-sent after kill -9: {:?}",
        subjects(&mail)
    );

    let status = m.terminate();
    assert!(status.success(), "SIGTERM exit: {status}");
    m.spawn();
    f.cpu(&m, 97.0);
    let mail = smtp.settle(QUIET);
    assert_eq!(
        mail.len(),
        1,
        "re-sent after a restart: {:?}",
        subjects(&mail)
    );

    f.cpu(&m, 10.0);
    let mail = smtp.wait_for(2, MAIL_WAIT);
    assert_eq!(mail[1].subject, "[monitord] RESOLVED web1: cpu 10.0% ≤ 90%");
    let mail = smtp.settle(QUIET);
    assert_eq!(mail.len(), 2, "{:?}", subjects(&mail));
    let ids: std::collections::BTreeSet<String> = message_ids(&mail).into_iter().collect();
    assert_eq!(ids.len(), 2, "FIRING and RESOLVED share a Message-ID");
}

#[test]
fn a_kill_between_the_servers_250_and_the_outbox_commit_re_sends_the_same_message() {
    // The one window where a mail can go out twice: the server has the mail, monitord is
    // killed before it reads the 250 and marks the row. After the restart the row is still
    // pending and goes out again, with the same Message-ID, so the receiver can tell.
    let smtp = SmtpServer::start(SmtpOptions {
        hold_reply: Duration::from_secs(5),
        ..SmtpOptions::default()
    });
    let mut m = monitord(
        &smtp,
        "",
        &client("ops@test.example", r#"<alert type="cpu" limit="90%"/>"#),
    );
    let mut f = Feeder::new("web1");
    f.cpu(&m, 95.0);
    smtp.wait_for(1, MAIL_WAIT);
    assert_eq!(outbox_statuses(&m), ["pending"], "marked before the 250");
    m.kill9();
    m.spawn();
    f.cpu(&m, 96.0);
    let mail = smtp.wait_for(2, MAIL_WAIT);
    wait_until_sent(&m, 1);
    let mail_after = smtp.settle(QUIET);
    assert_eq!(mail_after.len(), 2, "{:?}", subjects(&mail_after));
    assert_eq!(mail[0].subject, mail[1].subject);
    assert_eq!(mail[0].subject, "[monitord] FIRING web1: cpu 95.0% > 90%");
    let ids = message_ids(&mail);
    assert_eq!(
        ids[0], ids[1],
        "the re-sent mail is not recognisably the same"
    );
    assert_eq!(mail[0].header("Date"), mail[1].header("Date"));
}

/// One outbox row of `monitord alerts --json`, by recipient.
fn outbox_row(m: &Monitord, to: &str) -> serde_json::Value {
    let json = m.alerts();
    json["outbox"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["recipient"] == to).cloned())
        .unwrap_or_else(|| panic!("no outbox row for {to}: {json}"))
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
fn alerts_json_lists_every_rule_and_the_outbox() {
    let smtp = SmtpServer::start(SmtpOptions::default());
    let m = monitord(
        &smtp,
        "",
        &client(
            "ops@test.example",
            r#"<alert type="cpu" limit="90%"/><alert type="disk" limit="90%" for="1h"/>"#,
        ),
    );
    let empty = m.alerts();
    assert_eq!(empty["outbox"], serde_json::json!([]), "{empty}");
    let before = now_ms();
    Feeder::new("web1").send(&m, |s| {
        s["cpu_percent"] = 95.0.into();
        s["disks"] = serde_json::json!([
            {"mount": "/var", "fs": "xfs", "total": 1000, "used": 931, "avail": 69}
        ]);
    });
    let mail = smtp.wait_for(1, MAIL_WAIT);
    wait_until_sent(&m, 1);
    let json = m.alerts();
    println!("{json:#}");
    let state = |rule: &str| {
        json["states"]
            .as_array()
            .expect("a states array")
            .iter()
            .find(|s| s["client"] == "web1" && s["rule"] == rule)
            .unwrap_or_else(|| panic!("no state for web1/{rule}: {json}"))
            .clone()
    };
    assert_eq!(json["states"].as_array().map(Vec::len), Some(3), "{json}");
    let cpu = state("cpu");
    assert_eq!(cpu["phase"], "firing");
    assert_eq!(cpu["value"], 95.0);
    assert_eq!(cpu["condition"], "> 90%");
    let since = cpu["since_ms"].as_i64().expect("since_ms of a firing rule");
    assert!(since >= before - 1000 && since <= now_ms(), "{cpu}");
    let disk = state("disk");
    assert_eq!(disk["phase"], "pending", "`for` holds it back");
    assert_eq!(disk["detail"], "/var");
    let down = state("down");
    assert_eq!(down["phase"], "ok");
    assert_eq!(down["since_ms"], serde_json::Value::Null);
    assert_eq!(down["value"], serde_json::Value::Null);
    assert_eq!(down["condition"], "no sample for 3m");

    let outbox = json["outbox"].as_array().expect("an outbox array");
    assert_eq!(outbox.len(), 1, "{json}");
    let row = &outbox[0];
    assert_eq!(row["status"], "sent");
    assert_eq!(row["recipient"], "ops@test.example");
    assert_eq!(row["client"], "web1");
    assert_eq!(row["rule"], "cpu");
    assert_eq!(row["attempts"], 1);
    assert_eq!(row["subject"].as_str(), Some(mail[0].subject.as_str()));
    assert_eq!(
        row["message_id"].as_str(),
        mail[0].header("Message-ID").as_deref(),
        "the listed Message-ID is not the one the mail carried"
    );
    assert!(row["done_ms"].as_i64().is_some_and(|d| d >= since), "{row}");
    assert_eq!(row["last_error"], serde_json::Value::Null);
}

#[test]
fn host_down_fires_after_three_minutes_of_silence_and_the_next_sample_resolves_it() {
    // The 3-minute floor is the product's; a 10 s interval does not shorten it. The test
    // moves monitord's clock instead of waiting.
    let smtp = SmtpServer::start(SmtpOptions::default());
    let m = monitord(&smtp, "", &client("ops@test.example", ""));
    let mut f = Feeder::new("web1");
    f.cpu(&m, 5.0);
    m.advance_clock(Duration::from_secs(160));
    // Past two host-down ticks (5 s), real time passing too: 171 s of silence is not down.
    assert!(
        smtp.settle(Duration::from_secs(11)).is_empty(),
        "down before 3 minutes of silence"
    );
    m.advance_clock(Duration::from_secs(15));
    let mail = smtp.wait_for(1, MAIL_WAIT);
    assert_eq!(
        mail[0].subject,
        "[monitord] FIRING web1: down, no sample for 3m"
    );
    f.cpu(&m, 5.0);
    let mail = smtp.wait_for(2, MAIL_WAIT);
    assert_eq!(
        mail[1].subject,
        "[monitord] RESOLVED web1: up again after 3m"
    );
    assert_eq!(smtp.settle(QUIET).len(), 2);
}

#[test]
fn late_samples_from_a_spool_are_stored_but_not_evaluated() {
    let smtp = SmtpServer::start(SmtpOptions::default());
    let m = monitord(
        &smtp,
        "",
        &client("ops@test.example", r#"<alert type="cpu" limit="90%"/>"#),
    );
    let mut f = Feeder::new("web1");
    // Interval 10 s: a sample collected 60 s ago is history (older than 2 × interval).
    f.send(&m, |s| {
        s["cpu_percent"] = 99.0.into();
        s["ts"] = (now_ms() - 60_000).into();
    });
    assert!(smtp.settle(QUIET).is_empty(), "a drained sample fired");
    f.cpu(&m, 99.0);
    let mail = smtp.wait_for(1, MAIL_WAIT);
    assert_eq!(mail[0].subject, "[monitord] FIRING web1: cpu 99.0% > 90%");
}

#[test]
fn a_rule_removed_by_a_reload_resolves_quietly() {
    let smtp = SmtpServer::start(SmtpOptions::default());
    let m = monitord(
        &smtp,
        "",
        &client("ops@test.example", r#"<alert type="cpu" limit="90%"/>"#),
    );
    Feeder::new("web1").cpu(&m, 99.0);
    smtp.wait_for(1, MAIL_WAIT);
    assert!(m.command_ok(&["alerts"]).contains("firing"));

    write_config(
        &m,
        &smtp,
        "",
        &client("ops@test.example", r#"<alert type="memory" limit="90%"/>"#),
    );
    m.signal("HUP");
    testkit::util::wait_until(MAIL_WAIT, "the removed rule's state to go", || {
        !m.command_ok(&["alerts"]).contains("firing")
    });
    let mail = smtp.settle(QUIET);
    assert_eq!(mail.len(), 1, "{:?}", subjects(&mail));
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

#[test]
fn a_delivery_cut_off_by_sigterm_stays_in_the_outbox() {
    let (stall_port, accepted) = stalled_server();
    let smtp = SmtpServer::start(SmtpOptions::default());
    let rule = client("ops@test.example", r#"<alert type="cpu" limit="90%"/>"#);
    let mut m = Monitord::prepare(bin(), &[]);
    write_config_port(&m, stall_port, "", &rule);
    m.spawn();

    Feeder::new("web1").cpu(&m, 95.0);
    accepted
        .recv_timeout(MAIL_WAIT)
        .expect("monitord to connect to the stalled SMTP server");
    let status = m.terminate();
    assert!(status.success(), "SIGTERM exit: {status}");

    write_config(&m, &smtp, "", &rule);
    m.spawn();
    let mail = smtp.wait_for(1, MAIL_WAIT);
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
fn disk_names_the_fullest_mount_and_uptime_says_rebooted() {
    let smtp = SmtpServer::start(SmtpOptions::default());
    let m = monitord(
        &smtp,
        "",
        &client(
            "ops@test.example",
            r#"<alert type="disk" limit="90%"/><alert type="uptime" limit="10m"/>"#,
        ),
    );
    Feeder::new("web1").send(&m, |s| {
        s["uptime_s"] = 180.into();
        s["disks"] = serde_json::json!([
            {"mount": "/", "fs": "ext4", "total": 1000, "used": 100, "avail": 900},
            {"mount": "/var", "fs": "xfs", "total": 1000, "used": 931, "avail": 69}
        ]);
    });
    smtp.wait_for(2, MAIL_WAIT);
    let mut got = subjects(&smtp.settle(QUIET));
    got.sort();
    assert_eq!(
        got,
        [
            "[monitord] FIRING web1: disk /var 93.1% > 90%",
            "[monitord] FIRING web1: uptime 3m < 10m (rebooted)"
        ]
    );
}

#[test]
fn monitord_s_own_downtime_does_not_count_as_host_silence() {
    // Silence counts from the later of the last sample and monitord's start: a client silent
    // while monitord was down gets its full 3 minutes after monitord is back. The test moves
    // monitord's clock instead of waiting.
    let smtp = SmtpServer::start(SmtpOptions::default());
    let mut m = monitord(&smtp, "", &client("ops@test.example", ""));
    Feeder::new("web1").cpu(&m, 5.0);
    m.kill9();
    m.advance_clock(Duration::from_secs(60));
    m.spawn();
    m.advance_clock(Duration::from_secs(160));
    assert!(
        smtp.settle(Duration::from_secs(11)).is_empty(),
        "host down counted monitord's own downtime: {:?}; monitord's log:\n{}",
        subjects(&smtp.messages()),
        m.stderr()
    );
    m.advance_clock(Duration::from_secs(15));
    let mail = smtp.wait_for(1, MAIL_WAIT);
    assert_eq!(
        mail[0].subject,
        "[monitord] FIRING web1: down, no sample for 3m"
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

/// A "server" that accepts connections and never says a word: deliveries hang in flight.
/// Returns its port and a channel that receives one message per accepted connection.
fn stalled_server() -> (u16, std::sync::mpsc::Receiver<()>) {
    let stall = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = stall.local_addr().expect("local address").port();
    let (accepted_tx, accepted) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in stall.incoming().take(8).flatten() {
            held.push(conn);
            let _ = accepted_tx.send(());
        }
    });
    (port, accepted)
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
