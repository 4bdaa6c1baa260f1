//! Alerts end to end: a real monitord fed sealed samples whose values the test controls, and
//! a real SMTP server (aiosmtpd) on loopback whose received mail the tests read. The tests are
//! in the submodules by subject: [`firing`] (fires, `for`, `repeat`, `clear`, disk, uptime,
//! late samples, reloads, `alerts --json`), [`delivery`] (outage, retries, TLS, auth, a refused
//! recipient, timeouts, `send-test-mail`), [`restarts`] (`kill -9`, SIGTERM, restart while
//! firing), [`host_down`], [`clock`] (clock skew), and [`mail_setup`] (a wrong `<smtp>` keeps the mail
//! queued).
//!
//! Here: what they share — the monitord with `<smtp>`, the sample [`Feeder`], and readers of
//! the mail and of the outbox.

use std::time::{Duration, SystemTime};

use testkit::monitord::{Monitord, now_ms, sample};
use testkit::smtp::{Received, SmtpOptions, SmtpServer};

use crate::support::bin;

mod clock;
mod delivery;
mod firing;
mod host_down;
mod mail_setup;
mod restarts;

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

/// A monitord with one client, web1, whose `alerts` mail ops@test.example through a fresh
/// SMTP server: the start of most alert tests.
pub fn web1_mailing_ops(alerts: &str) -> (SmtpServer, Monitord) {
    let smtp = SmtpServer::start(SmtpOptions::default());
    let m = monitord(&smtp, "", &client("ops@test.example", alerts));
    (smtp, m)
}

pub fn client(mail: &str, alerts: &str) -> String {
    format!(
        "  <client name=\"web1\" ip=\"127.0.0.1\" username=\"monitor\" mail=\"{mail}\" interval=\"10s\">\n{alerts}\n  </client>"
    )
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

/// One outbox row of `monitord alerts --json`, by recipient.
fn outbox_row(m: &Monitord, to: &str) -> serde_json::Value {
    let json = m.alerts();
    json["outbox"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["recipient"] == to).cloned())
        .unwrap_or_else(|| panic!("no outbox row for {to}: {json}"))
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
