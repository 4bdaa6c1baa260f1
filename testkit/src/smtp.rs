//! A real SMTP server on loopback for tests: Python's `aiosmtpd` (installed by the test
//! command) driven by `tests/python/smtp_sink.py`, the same script scripts/demo runs. It binds
//! `127.0.0.1:0` and reports its port; each accepted message is written as one JSON file
//! (envelope, raw data, whether the session was under TLS, when it was accepted), which
//! [`SmtpServer::messages`] reads back.
//!
//! Options: STARTTLS or implicit TLS with a certificate made at start (a throwaway CA signs a server
//! certificate for `127.0.0.1` and `localhost`; the CA's PEM is what a test names in
//! `<smtp ca-file>`), recipients refused with `550` or deferred with `451`, a sender refused
//! with `550` at MAIL FROM, the whole session refused with `554` at EHLO, required AUTH, and a
//! slow `250` after DATA (the mail is stored before the client hears it was). [`SmtpServer::stop`] and
//! [`SmtpServer::start_again`] simulate an outage on the same port.
//!
//! Not here: anything about what monitord sends — the tests assert on that.

use std::fs;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::util::{self, TempDir};

const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The server, shared with scripts/demo: one script, run from the source tree.
fn sink_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/python/smtp_sink.py")
}

/// What the server is told to do.
#[derive(Debug, Clone, Default)]
pub struct SmtpOptions {
    /// Offer STARTTLS (and require it before MAIL) with a certificate made at start.
    pub starttls: bool,
    /// Speak TLS from the first byte (`<smtp security="tls">`), same certificate.
    pub implicit_tls: bool,
    /// Recipients answered `550` at RCPT.
    pub reject: Vec<String>,
    /// Require AUTH (PLAIN or LOGIN) with this user name and password before MAIL.
    pub auth: Option<(String, String)>,
    /// Recipients answered `451` at RCPT: a temporary failure, every time.
    pub defer: Vec<String>,
    /// Senders answered `550` at MAIL FROM (a relay that does not take our `from`).
    pub refuse_from: Vec<String>,
    /// EHLO answered `554`: the server refuses the whole session.
    pub refuse_session: bool,
    /// Store each message, then wait this long before answering `250` to its DATA: a
    /// client that dies meanwhile has delivered the mail without learning it.
    pub hold_reply: Duration,
}

/// One message the server accepted.
#[derive(Debug, Clone)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    /// Headers and body as transmitted.
    pub data: String,
    /// The Subject header, decoded (`≤` and `≥` are not ASCII).
    pub subject: String,
    /// The plain-text body, decoded from its transfer encoding.
    pub body: String,
    /// Whether the session had switched to TLS.
    pub tls: bool,
    pub accepted_at: SystemTime,
}

impl Received {
    /// The first header named `name` (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let lines = self.data.split("\r\n").flat_map(|l| l.split('\n'));
        let mut found: Option<String> = None;
        for line in lines {
            if line.is_empty() {
                break;
            }
            if let Some(value) = &mut found {
                if line.starts_with([' ', '\t']) {
                    value.push(' ');
                    value.push_str(line.trim());
                    continue;
                }
                break;
            }
            match line.split_once(':') {
                Some((n, v)) if n.eq_ignore_ascii_case(name) => found = Some(v.trim().to_owned()),
                _ => {}
            }
        }
        found
    }
}

/// A running (or stopped) SMTP server with its own directory.
#[derive(Debug)]
pub struct SmtpServer {
    dir: TempDir,
    options: SmtpOptions,
    port: u16,
    child: Option<Child>,
}

impl SmtpServer {
    pub fn start(options: SmtpOptions) -> SmtpServer {
        let dir = util::temp_dir("smtp");
        fs::create_dir(dir.path().join("mail")).expect("create the mail directory");
        if options.starttls || options.implicit_tls {
            crate::certs::make_certificates(dir.path());
        }
        let mut server = SmtpServer {
            dir,
            options,
            port: 0,
            child: None,
        };
        server.spawn();
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The CA certificate (PEM) that signed the server's certificate, for `<smtp ca-file>`.
    pub fn ca_file(&self) -> Option<PathBuf> {
        (self.options.starttls || self.options.implicit_tls).then(|| self.dir.path().join("ca.pem"))
    }

    /// Kills the server: connections are refused until [`start_again`](Self::start_again).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, with the same certificate.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the SMTP server is already running");
        self.spawn();
    }

    fn spawn(&mut self) {
        let dir = self.dir.path();
        let mut cmd = Command::new("python3");
        cmd.arg(sink_script())
            .arg("serve")
            .arg(self.port.to_string())
            .arg(dir.join("mail"))
            .arg(self.options.reject.join(","));
        let mode = match (self.options.starttls, self.options.implicit_tls) {
            (_, true) => "tls",
            (true, false) => "starttls",
            (false, false) => "plain",
        };
        cmd.arg(mode);
        cmd.env("SMTP_TEST_DEFER", self.options.defer.join(","))
            .env("SMTP_TEST_REFUSE_FROM", self.options.refuse_from.join(","))
            .env(
                "SMTP_TEST_REFUSE_EHLO",
                if self.options.refuse_session {
                    "1"
                } else {
                    "0"
                },
            )
            .env(
                "SMTP_TEST_HOLD_S",
                self.options.hold_reply.as_secs_f64().to_string(),
            );
        if let Some((user, password)) = &self.options.auth {
            cmd.env("SMTP_TEST_USER", user)
                .env("SMTP_TEST_PASSWORD", password);
        }
        if mode != "plain" {
            cmd.arg(dir.join("server.pem")).arg(dir.join("server.key"));
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run python3 (the test command installs it with aiosmtpd)");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix("listening on ") {
                    let _ = tx.send(port.trim().parse::<u16>().ok());
                }
            }
        });
        let port = rx.recv_timeout(START_TIMEOUT).ok().flatten();
        let Some(port) = port else {
            let _ = child.kill();
            let status = child.wait();
            panic!(
                "the test SMTP server did not start ({status:?}); is aiosmtpd installed \
                 (`pip install aiosmtpd`, done by scripts/test)?"
            );
        };
        self.port = port;
        self.child = Some(child);
    }

    /// Every message accepted so far, in the order accepted.
    pub fn messages(&self) -> Vec<Received> {
        let mut names: Vec<PathBuf> = fs::read_dir(self.dir.path().join("mail"))
            .expect("read the mail directory")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        names.sort();
        names.iter().map(|p| read_message(p)).collect()
    }

    /// Waits until at least `count` messages were accepted; returns them all.
    pub fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Received> {
        util::wait_for(
            timeout,
            &format!("{count} mail(s) at the test SMTP server"),
            || {
                let all = self.messages();
                (all.len() >= count).then_some(all)
            },
        )
    }

    /// Waits `quiet` and returns what arrived, for asserting that nothing (more) came.
    pub fn settle(&self, quiet: Duration) -> Vec<Received> {
        std::thread::sleep(quiet);
        self.messages()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn read_message(path: &Path) -> Received {
    let text = fs::read_to_string(path).expect("read a received message");
    let v: serde_json::Value = serde_json::from_str(&text).expect("a received message is JSON");
    let secs = v["accepted_at"].as_f64().unwrap_or(0.0);
    Received {
        mail_from: v["mail_from"].as_str().unwrap_or("").to_owned(),
        rcpt_tos: v["rcpt_tos"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        data: v["data"].as_str().unwrap_or("").to_owned(),
        subject: v["subject"].as_str().unwrap_or("").to_owned(),
        body: v["body"].as_str().unwrap_or("").to_owned(),
        tls: v["tls"].as_bool().unwrap_or(false),
        accepted_at: UNIX_EPOCH + Duration::from_secs_f64(secs),
    }
}

/// Seconds between `earlier` and `later`, for latency figures.
pub fn seconds_between(earlier: SystemTime, later: SystemTime) -> f64 {
    later
        .duration_since(earlier)
        .map_or_else(|e| -e.duration().as_secs_f64(), |d| d.as_secs_f64())
}
