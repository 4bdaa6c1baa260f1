//! Hostile connections, in small numbers (the load is `xtask bench hostile`): a body dribbled
//! at 1 byte/s is cut off with 408 and the connection closed within the body timeout, a head
//! dribbled the same way and a connection that says nothing are closed within the head
//! timeout, and a normal sample sent meanwhile is stored at once. Same for the web listener's
//! slow head. The timeouts are monitord's (10 s each); the test takes ~12 s.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use testkit::monitord::{Monitord, now_ms, sample, sample_path};

use crate::support::{bin, counts, expect_status, secrets_of};

/// monitord's `REQUEST_HEAD_TIMEOUT` and `http::BODY_TIMEOUT`.
const TIMEOUT: Duration = Duration::from_secs(10);
/// What the test allows beyond it (timers, a loaded machine).
const SLACK: Duration = Duration::from_secs(8);

/// What a hostile connection saw: the status of the answer, if any, and when the server
/// closed the connection, counted from the connect.
#[derive(Debug)]
struct Closed {
    status: Option<u16>,
    after: Duration,
}

/// Connects, writes `head` at once, then `dribble` one byte a second (a writer thread) while
/// reading until the server closes; gives up after `TIMEOUT + SLACK`.
fn hostile(addr: SocketAddr, head: &str, dribble: &str) -> thread::JoinHandle<Closed> {
    hostile_for(addr, head, dribble, TIMEOUT + SLACK)
}

/// [`hostile`], giving up after `patience` without a byte from the server.
fn hostile_for(
    addr: SocketAddr,
    head: &str,
    dribble: &str,
    patience: Duration,
) -> thread::JoinHandle<Closed> {
    let (head, dribble) = (head.to_owned(), dribble.as_bytes().to_vec());
    thread::spawn(move || {
        let start = Instant::now();
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream.write_all(head.as_bytes()).expect("write the head");
        let mut writer = stream.try_clone().expect("clone the stream");
        thread::spawn(move || {
            for byte in dribble {
                thread::sleep(Duration::from_secs(1));
                // The server closing is what the test waits for: stop writing then.
                if writer.write_all(&[byte]).is_err() {
                    break;
                }
            }
        });
        stream
            .set_read_timeout(Some(patience))
            .expect("set a read timeout");
        let mut answer = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            match stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
                // A reset after the answer is a close too.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!(
                    "the server kept a hostile connection open for {:?} ({e}); it answered {:?}",
                    start.elapsed(),
                    String::from_utf8_lossy(&answer)
                ),
            }
        }
        let status = String::from_utf8_lossy(&answer)
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok());
        Closed {
            status,
            after: start.elapsed(),
        }
    })
}

fn closed_in_time(what: &str, closed: &Closed, status: Option<u16>) {
    assert_eq!(closed.status, status, "{what}: {closed:?}");
    assert!(
        closed.after >= TIMEOUT - Duration::from_secs(1) && closed.after <= TIMEOUT + SLACK,
        "{what}: closed after {:?}, expected about {TIMEOUT:?}",
        closed.after
    );
}

#[test]
fn slow_bodies_and_heads_are_cut_off_while_samples_get_through() {
    let m = Monitord::start(bin(), &["web1"]);
    let secrets = secrets_of(&m, &["web1"]);
    let path = sample_path("web1");
    let long_body = "A".repeat(100);

    let slow_body = hostile(
        m.addr(),
        &format!(
            "PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n"
        ),
        &long_body,
    );
    let slow_head = hostile(m.addr(), "PUT ", &format!("{path} HTTP/1.1\r\nHost: x\r\n"));
    let silent = hostile(m.addr(), "", "");
    let web_slow_head = hostile(
        m.web_addr(),
        "GET /api/v1/clients HTTP/1.1\r\n",
        "Host: x\r\n",
    );

    // Meanwhile a real sample is stored at once, and the read API answers.
    thread::sleep(Duration::from_secs(2));
    let started = Instant::now();
    let r = m
        .put_sample("web1", &sample("fast", 1, now_ms()))
        .expect("a normal PUT beside the slow ones");
    expect_status(&r, 200, "a sample beside slow connections", &secrets);
    let r = m
        .web_get("/api/v1/clients", &[])
        .expect("a GET beside the slow ones");
    assert_eq!(r.status, 200, "the read API beside slow connections");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a PUT and a GET took {:?} beside 4 slow connections",
        started.elapsed()
    );

    // The body timer starts once the head is in: 408, then the connection is closed.
    closed_in_time(
        "a body at 1 byte/s",
        &slow_body.join().expect("slow body thread"),
        Some(408),
    );
    // actix answers a head that is not in after its timeout with 408 as well.
    closed_in_time(
        "a head at 1 byte/s",
        &slow_head.join().expect("slow head thread"),
        Some(408),
    );
    closed_in_time(
        "a connection that sends nothing",
        &silent.join().expect("silent thread"),
        Some(408),
    );
    closed_in_time(
        "a head at 1 byte/s to the web listener",
        &web_slow_head.join().expect("web slow head thread"),
        Some(408),
    );

    let stored = counts(&m.samples("web1"));
    assert_eq!(
        stored.len(),
        1,
        "only the normal sample is stored: {stored:?}"
    );
    let log = m.stderr();
    assert!(
        log.contains("web1: refused a body that took over 10 s, from 127.0.0.1:"),
        "the cut-off body is logged with its peer; stderr:\n{log}"
    );
}

/// monitord's `connections::REQUEST_LIMIT`: a later request of a kept-alive connection must be
/// answered within it of its first byte.
const REQUEST_LIMIT: Duration = Duration::from_secs(30);

/// actix's head timer covers a connection's first request only: a client that completes one
/// request and then dribbles the next head on the kept-alive connection is closed too, on
/// both listeners, within `REQUEST_LIMIT` of that head's first byte. ~32 s.
#[test]
fn a_kept_alive_connection_dribbling_its_next_request_is_closed() {
    let m = Monitord::start(bin(), &["web1"]);
    let next = "GET /api/v1/clients HTTP/1.1\r\nHost: x\r\nX-Slow: ".to_owned() + &"a".repeat(60);
    let first = "GET /api/v1/clients HTTP/1.1\r\nHost: x\r\n\r\n";
    let patience = REQUEST_LIMIT + SLACK;
    let web = hostile_for(m.web_addr(), first, &next, patience);
    // Ingest answers a GET with 404 or 405 and keeps the connection, as it should.
    let ingest = hostile_for(m.addr(), first, &next, patience);
    for (what, closed) in [("web", web), ("ingest", ingest)] {
        let closed = closed.join().expect("hostile thread");
        assert!(
            closed.status.is_some(),
            "{what}: the first request was answered"
        );
        // The next head's first byte goes out 1 s after the connect.
        let from_first_byte = closed.after.saturating_sub(Duration::from_secs(1));
        assert!(
            from_first_byte >= REQUEST_LIMIT - Duration::from_secs(1)
                && from_first_byte <= REQUEST_LIMIT + SLACK,
            "{what}: closed {:?} after the next head began, expected about {REQUEST_LIMIT:?}",
            from_first_byte
        );
    }
}

/// monitord's `http::REFUSALS_PER_MINUTE`.
const REFUSALS_PER_MINUTE: usize = 20;

/// A flood of refused requests costs the log a bounded number of lines a minute: per client
/// of config.xml, and for all other names together (the count of the rest comes in one line
/// when the minute is over: a unit test of `logging::Budget` covers that).
#[test]
fn a_flood_of_refusals_is_logged_a_few_lines_a_minute() {
    let m = Monitord::start(bin(), &["web1"]);
    for i in 0..REFUSALS_PER_MINUTE + 15 {
        assert_eq!(m.put("web1", b"not an envelope").unwrap().status, 400);
        assert_eq!(m.put(&format!("stranger{i}"), b"x").unwrap().status, 400);
    }
    let log = m.stderr();
    let lines = |prefix: &str| log.lines().filter(|l| l.contains(prefix)).count();
    assert_eq!(lines("web1: refused"), REFUSALS_PER_MINUTE, "{log}");
    assert_eq!(lines("stranger"), REFUSALS_PER_MINUTE, "{log}");
    let counts = m.web_get("/metrics", &[]).unwrap().text();
    assert!(
        counts.contains(&format!(
            "monitord_requests_total{{status=\"400\"}} {}",
            2 * (REFUSALS_PER_MINUTE + 15)
        )),
        "/metrics counts every refusal:\n{counts}"
    );
}
