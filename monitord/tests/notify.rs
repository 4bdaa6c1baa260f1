//! What monitord tells systemd, read from a real `NOTIFY_SOCKET` (a unix datagram socket the
//! test binds, as systemd does): READY=1 once serving, STATUS= with clients, samples/s and
//! the firing alerts, WATCHDOG=1 when WATCHDOG_USEC asks for it, RELOADING=1 with
//! MONOTONIC_USEC on SIGHUP and READY=1 after it, STOPPING=1 on SIGTERM.

use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use testkit::smtp::{SmtpOptions, SmtpServer};
use testkit::util;

use crate::alerts::{Feeder, client, monitord};

const WAIT: Duration = Duration::from_secs(20);

/// The datagrams received so far, each as text.
struct NotifySocket {
    _dir: util::TempDir,
    path: String,
    received: Arc<Mutex<Vec<String>>>,
}

impl NotifySocket {
    fn bind() -> NotifySocket {
        let dir = util::temp_dir("notify");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                sink.lock().expect("notify lock").push(text);
            }
        });
        NotifySocket {
            path: path.to_str().expect("a UTF-8 path").to_owned(),
            _dir: dir,
            received,
        }
    }

    fn all(&self) -> Vec<String> {
        self.received.lock().expect("notify lock").clone()
    }

    /// Waits for a datagram after the first `skip` ones for which `wanted` holds; returns
    /// its index.
    fn wait(&self, skip: usize, what: &str, wanted: impl Fn(&str) -> bool) -> usize {
        util::wait_for(WAIT, what, || {
            self.all()
                .iter()
                .enumerate()
                .skip(skip)
                .find(|(_, d)| wanted(d))
                .map(|(i, _)| i)
        })
    }
}

fn lines(datagram: &str) -> Vec<&str> {
    datagram.lines().collect()
}

#[test]
fn ready_status_with_firing_alerts_watchdog_reloading_with_monotonic_usec_and_stopping() {
    let smtp = SmtpServer::start(SmtpOptions::default());
    let mut m = monitord(
        &smtp,
        "",
        &client("ops@test.example", r#"<alert type="cpu" limit="90%"/>"#),
    );
    // The helper started it without NOTIFY_SOCKET; start it again as systemd would.
    m.kill9();
    let notify = NotifySocket::bind();
    // STATUS= and WATCHDOG=1 go out every WATCHDOG_USEC / 2: one second here.
    m.spawn_with_env(&[
        ("NOTIFY_SOCKET", notify.path.as_str()),
        ("WATCHDOG_USEC", "2000000"),
    ]);
    let ready = notify.wait(0, "READY=1", |d| lines(d).contains(&"READY=1"));
    let status = |d: &str| {
        lines(d)
            .iter()
            .find_map(|l| l.strip_prefix("STATUS="))
            .map(str::to_owned)
    };
    let i = notify.wait(0, "STATUS= with no firing alert", |d| {
        status(d).is_some_and(|s| s.starts_with("1 client, ") && s.contains(" 0 alerts firing"))
    });
    assert!(
        lines(&notify.all()[i]).contains(&"WATCHDOG=1"),
        "{:?}",
        notify.all()[i]
    );

    Feeder::new("web1").cpu(&m, 95.0);
    let i = notify.wait(i + 1, "STATUS= naming 1 firing alert", |d| {
        status(d).is_some_and(|s| s.contains(" 1 alert firing"))
    });
    let text = status(&notify.all()[i]).expect("a STATUS= line");
    println!("STATUS={text}");
    assert!(text.contains(" samples/s, "), "{text}");

    m.signal("HUP");
    let reloading = notify.wait(ready + 1, "RELOADING=1", |d| {
        lines(d).contains(&"RELOADING=1")
    });
    let datagram = notify.all()[reloading].clone();
    let usec: u64 = lines(&datagram)
        .iter()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("RELOADING=1 without MONOTONIC_USEC: {datagram:?}"))
        .parse()
        .unwrap_or_else(|e| panic!("MONOTONIC_USEC is not a number ({e}): {datagram:?}"));
    assert!(usec > 0);
    notify.wait(reloading + 1, "READY=1 after the reload", |d| {
        lines(d).contains(&"READY=1")
    });
    // A second reload carries a later time.
    m.signal("HUP");
    let again = notify.wait(reloading + 1, "a second RELOADING=1", |d| {
        lines(d).contains(&"RELOADING=1")
    });
    let later: u64 = lines(&notify.all()[again])
        .iter()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .and_then(|v| v.parse().ok())
        .expect("MONOTONIC_USEC on the second reload");
    assert!(later > usec, "{later} after {usec}");

    let exit = m.terminate();
    assert!(exit.success(), "SIGTERM exit: {exit}");
    notify.wait(again + 1, "STOPPING=1", |d| {
        lines(d).contains(&"STOPPING=1")
    });
}
