//! A mail setup that is wrong for every mail — a relay that refuses our sender, a server
//! that refuses the session — keeps the alert mail queued instead of throwing it away: the
//! advice is logged once for the run, and after the operator fixes `<smtp>` and reloads,
//! every waiting mail is delivered exactly once.

use std::time::Duration;

use testkit::monitord::Monitord;
use testkit::smtp::{SmtpOptions, SmtpServer};

use super::{Feeder, MAIL_WAIT, QUIET, client, outbox_row, subjects, write_config_port};
use crate::support::bin;

const RECIPIENTS: [&str; 2] = ["ops@test.example", "oncall@test.example"];

/// A cpu alert for two recipients fires; both rows wait in the outbox through at least two
/// refused attempts each, with the advice logged once, and none is given up.
fn fire_and_watch_it_wait(m: &Monitord, refusal: &str) {
    Feeder::new("web1").cpu(m, 95.0);
    testkit::util::wait_until(
        Duration::from_secs(40),
        "two refused attempts per row",
        || {
            RECIPIENTS
                .iter()
                .all(|to| outbox_row(m, to)["attempts"].as_i64() >= Some(2))
        },
    );
    for to in RECIPIENTS {
        let row = outbox_row(m, to);
        assert_eq!(
            row["status"], "pending",
            "a setup problem failed the row: {row}"
        );
        let error = row["last_error"].as_str().unwrap_or("");
        assert!(error.contains(refusal), "{row}");
    }
    let log = m.stderr();
    let advice: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("alert mail cannot be sent"))
        .collect();
    assert_eq!(advice.len(), 1, "the advice once per run:\n{log}");
    assert!(
        advice[0].contains(refusal) && advice[0].contains("systemctl reload monitord"),
        "{}",
        advice[0]
    );
}

/// After the fix and a reload, each recipient gets the mail once and both rows are sent.
fn expect_each_delivered_once(m: &Monitord, smtp: &SmtpServer) {
    // Reloaded rows are due at once; the sender looks within its 5 s tick.
    let mail = smtp.wait_for(2, Duration::from_secs(20));
    let settled = smtp.settle(QUIET);
    assert_eq!(settled.len(), 2, "{:?}", subjects(&settled));
    let mut to: Vec<String> = mail.iter().map(|r| r.rcpt_tos.join(",")).collect();
    to.sort();
    assert_eq!(to, ["oncall@test.example", "ops@test.example"]);
    for r in &mail {
        assert_eq!(r.subject, "[monitord] FIRING web1: cpu 95.0% > 90%");
    }
    testkit::util::wait_until(MAIL_WAIT, "both rows marked sent", || {
        RECIPIENTS
            .iter()
            .all(|to| outbox_row(m, to)["status"] == "sent")
    });
    assert!(
        m.stderr().contains("alert mail goes out again"),
        "{}",
        m.stderr()
    );
}

fn rule() -> String {
    client(&RECIPIENTS.join(", "), r#"<alert type="cpu" limit="90%"/>"#)
}

#[test]
fn a_refused_sender_keeps_the_mail_until_smtp_from_is_fixed() {
    let smtp = SmtpServer::start(SmtpOptions {
        refuse_from: vec!["monitord@test.example".into()],
        ..SmtpOptions::default()
    });
    let mut m = Monitord::prepare(bin(), &[]);
    write_config_port(&m, smtp.port(), "", &rule());
    m.spawn();
    fire_and_watch_it_wait(&m, "refused our sender: 550");
    assert!(smtp.messages().is_empty());

    // The operator gives the relay a sender it takes; write_config_port's own `from` is the
    // refused one, so this config names the port itself.
    let xml = std::fs::read_to_string(m.config_path())
        .expect("read config.xml")
        .replace("monitord@test.example", "alerts@test.example");
    std::fs::write(m.config_path(), xml).expect("write config.xml");
    m.signal("HUP");
    expect_each_delivered_once(&m, &smtp);
    assert!(
        smtp.messages()
            .iter()
            .all(|r| r.mail_from == "alerts@test.example")
    );
}

#[test]
fn a_refused_session_keeps_the_mail_until_smtp_points_at_the_right_server() {
    let wrong = SmtpServer::start(SmtpOptions {
        refuse_session: true,
        ..SmtpOptions::default()
    });
    let right = SmtpServer::start(SmtpOptions::default());
    let mut m = Monitord::prepare(bin(), &[]);
    write_config_port(&m, wrong.port(), "", &rule());
    m.spawn();
    fire_and_watch_it_wait(&m, "refused the session: 554");

    write_config_port(&m, right.port(), "", &rule());
    m.signal("HUP");
    expect_each_delivered_once(&m, &right);
    assert!(wrong.messages().is_empty());
}
