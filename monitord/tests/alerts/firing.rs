//! When a rule fires and resolves: once per incident, `for`, `repeat`, `clear`, the top process
//! and the fullest mount in the mail, uptime's reboot, late (spooled) samples left unevaluated,
//! a rule removed by a reload, and `monitord alerts --json` listing it all.

use std::time::Duration;

use testkit::monitord::now_ms;
use testkit::smtp::seconds_between;

use super::{
    Feeder, MAIL_WAIT, QUIET, client, subjects, wait_until_sent, web1_mailing_ops, write_config,
};

#[test]
fn fires_once_resolves_once_and_names_the_top_process() {
    let (smtp, m) = web1_mailing_ops(r#"<alert type="cpu" limit="90%"/>"#);
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
    let (smtp, m) = web1_mailing_ops(r#"<alert type="memory" limit="50%" for="3s"/>"#);
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
    let (smtp, m) = web1_mailing_ops(r#"<alert type="load" limit="8" repeat="3s"/>"#);
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
    let (smtp, m) = web1_mailing_ops(r#"<alert type="cpu" limit="90%" clear="75%"/>"#);
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
fn disk_names_the_fullest_mount_and_uptime_says_rebooted() {
    let (smtp, m) =
        web1_mailing_ops(r#"<alert type="disk" limit="90%"/><alert type="uptime" limit="10m"/>"#);
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
fn late_samples_from_a_spool_are_stored_but_not_evaluated() {
    let (smtp, m) = web1_mailing_ops(r#"<alert type="cpu" limit="90%"/>"#);
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
    let (smtp, m) = web1_mailing_ops(r#"<alert type="cpu" limit="90%"/>"#);
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
fn alerts_json_lists_every_rule_and_the_outbox() {
    let (smtp, m) = web1_mailing_ops(
        r#"<alert type="cpu" limit="90%"/><alert type="disk" limit="90%" for="1h"/>"#,
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
