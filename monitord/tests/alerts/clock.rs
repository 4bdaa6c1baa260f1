//! The built-in clock rule against a real monitord: a client whose clock stays wrong is
//! mailed after 10 minutes (the test moves monitord's clock), shown in `monitord clients`,
//! logged once, and mailed again when its clock is right; a clock so far ahead that its
//! samples are refused (422) is told too, not only refused.

use std::time::Duration;

use super::{Feeder, MAIL_WAIT, QUIET, subjects, web1_mailing_ops};

const BEHIND_MS: i64 = 252_000;

#[test]
fn a_clock_behind_for_ten_minutes_is_mailed_shown_and_its_fix_mailed() {
    let (smtp, m) = web1_mailing_ops(r#"<alert type="cpu" limit="90%"/>"#);
    let mut f = Feeder::new("web1");
    let behind = |s: &mut serde_json::Value| {
        let ts = s["ts"].as_i64().unwrap();
        s["ts"] = (ts - BEHIND_MS).into();
        s["cpu_percent"] = 99.0.into();
    };
    f.send(&m, behind);
    // Not evaluated (history, by its ts) and not mailed before 10 minutes.
    testkit::util::wait_until(MAIL_WAIT, "the clock rule to be pending", || {
        m.command_ok(&["clients"])
            .contains("clock 4m12s behind (pending)")
    });
    assert!(smtp.settle(Duration::from_secs(6)).is_empty());

    m.advance_clock(Duration::from_secs(601));
    f.send(&m, behind);
    let mail = smtp.wait_for(1, MAIL_WAIT);
    assert_eq!(
        mail[0].subject,
        "[monitord] FIRING web1: clock 4m12s behind"
    );
    assert!(mail[0].body.contains("timedatectl"), "{}", mail[0].body);
    let listing = m.command_ok(&["clients"]);
    println!("monitord clients:\n{listing}");
    assert!(listing.contains("clock 4m12s behind (firing)"), "{listing}");
    let log = m.stderr();
    let told: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("web1: clock 4m12s behind for 10m"))
        .collect();
    assert_eq!(told.len(), 1, "once per episode:\n{log}");
    assert!(told[0].contains("client=web1"), "{}", told[0]);

    // The clock is fixed: the next sample is current, the rule resolves, and the sample
    // is evaluated again (the cpu rule fires).
    f.cpu(&m, 99.0);
    let mail = smtp.wait_for(3, MAIL_WAIT);
    let mut got = subjects(&mail);
    got.sort();
    assert_eq!(
        got,
        [
            "[monitord] FIRING web1: clock 4m12s behind",
            "[monitord] FIRING web1: cpu 99.0% > 90%",
            "[monitord] RESOLVED web1: clock within 1s",
        ]
    );
    assert_eq!(smtp.settle(QUIET).len(), 3);
}

#[test]
fn a_clock_so_far_ahead_that_samples_are_refused_is_told_too() {
    let (smtp, m) = web1_mailing_ops("");
    let ahead = |m: &testkit::monitord::Monitord, seq: i64| {
        let s = testkit::monitord::sample("ahead", seq, m.now_ms() + 15 * 60_000);
        let r = m.put_sample("web1", &s).expect("PUT a sample");
        assert_eq!(r.status, 422, "{}", r.text());
    };
    ahead(&m, 1);
    testkit::util::wait_until(MAIL_WAIT, "the clock rule to be pending", || {
        m.command_ok(&["clients"])
            .contains("clock 15m ahead (pending)")
    });
    m.advance_clock(Duration::from_secs(601));
    ahead(&m, 2);
    // Host down fires too (nothing is stored), but the clock mail says why.
    testkit::util::wait_until(MAIL_WAIT, "the clock mail", || {
        subjects(&smtp.messages()).contains(&"[monitord] FIRING web1: clock 15m ahead".to_owned())
    });
}
