//! monitord stopped while an alert fires or its mail is in flight: a restart or `kill -9` sends
//! no second mail, the one window where a kill re-sends one does so with the same Message-ID,
//! and a delivery cut off by SIGTERM stays in the outbox.

use std::time::Duration;

use testkit::monitord::Monitord;
use testkit::smtp::{SmtpOptions, SmtpServer};

use super::{
    Feeder, MAIL_WAIT, QUIET, client, message_ids, monitord, outbox_statuses, stalled_server,
    subjects, wait_until_sent, web1_mailing_ops, write_config, write_config_port,
};
use crate::support::bin;

#[test]
fn restart_or_kill_9_while_firing_sends_no_second_mail() {
    let (smtp, mut m) = web1_mailing_ops(r#"<alert type="cpu" limit="90%"/>"#);
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
