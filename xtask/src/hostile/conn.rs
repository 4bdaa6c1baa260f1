//! The connections of `xtask bench hostile`: the good requests (an agent's PUT, a reader's
//! GET) and the hostile ones (silent, idle after a request, a head or a body at 1 byte/s),
//! and the bookkeeping of what each went through. Not here: the phases and the report (see
//! the parent module).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use monitor_core::envelope::{self, ClientKeys};
use rand::SeedableRng as _;
use rand::rngs::SmallRng;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep, sleep_until, timeout};

use crate::fleet::Host;

/// A good request that takes longer than this counts as failed.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The body a slow sender announces (under ingest's 64 KiB limit, so it is not refused at once).
pub(super) const SLOW_BODY_LEN: usize = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Kind {
    /// Connects and sends nothing.
    Silent,
    /// Sends one request, reads the answer, then sits on the keep-alive connection.
    KeepAlive,
    /// Sends a request head one byte a second.
    SlowHead,
    /// Sends a complete head, then the body one byte a second.
    SlowBody,
}

impl Kind {
    pub(super) fn describe(self) -> &'static str {
        match self {
            Kind::Silent => "idle, silent",
            Kind::KeepAlive => "idle after a request",
            Kind::SlowHead => "head at 1 byte/s",
            Kind::SlowBody => "body at 1 byte/s",
        }
    }
}

/// Which listener a phase aims at, and what its requests look like there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Listener {
    Ingest,
    Web,
}

/// What the hostile connections of one kind went through.
#[derive(Debug, Default)]
pub(super) struct KindStats {
    pub(super) connects: u64,
    pub(super) connect_errors: u64,
    /// From connect to the server's close, one per close.
    pub(super) closed_after: Vec<Duration>,
    /// Answers with that status before the close (408 for a timeout).
    pub(super) statuses: BTreeMap<u16, u64>,
}

/// Every hostile connection's shared bookkeeping.
#[derive(Debug, Default)]
pub(super) struct Hostile {
    pub(super) kinds: Mutex<BTreeMap<Kind, KindStats>>,
    pub(super) open: AtomicUsize,
}

impl Hostile {
    pub(super) fn with(&self, kind: Kind, f: impl FnOnce(&mut KindStats)) {
        f(self
            .kinds
            .lock()
            .expect("stats lock")
            .entry(kind)
            .or_default());
    }
}

/// The good requests of one phase.
#[derive(Debug, Default)]
pub(super) struct Good {
    pub(super) sent: u64,
    pub(super) ok: u64,
    pub(super) refused: BTreeMap<u16, u64>,
    pub(super) errors: u64,
    pub(super) latencies: Vec<Duration>,
}

impl Good {
    pub(super) fn quantile(&self, q: f64) -> Duration {
        let mut l = self.latencies.clone();
        if l.is_empty() {
            return Duration::ZERO;
        }
        l.sort_unstable();
        l[((l.len() - 1) as f64 * q).round() as usize]
    }
}

/// One agent: a request every `interval` from `first` until `end`, each on a new connection.
#[allow(clippy::too_many_arguments)]
pub(super) async fn agent(
    addr: SocketAddr,
    listener: Listener,
    names: Arc<[String]>,
    keys: Arc<[ClientKeys]>,
    i: usize,
    first: Instant,
    interval: Duration,
    end: Instant,
) -> Good {
    let name = &names[i];
    // A new instance per phase, as a restarted agent has: its samples are new, not replays.
    let mut rng = SmallRng::seed_from_u64(testkit::monitord::now_ms() as u64 ^ (i as u64) << 48);
    let mut host = Host::new(name, testkit::monitord::now_ms(), &mut rng);
    let mut good = Good::default();
    let mut scheduled = first;
    while scheduled < end {
        sleep_until(scheduled).await;
        let request = match listener {
            Listener::Ingest => {
                let mut sample = host.next_sample(&mut rng);
                sample.ts = testkit::monitord::now_ms();
                let json = serde_json::to_vec(&sample).expect("a sample serializes");
                let body = envelope::seal(&keys[i], name, &json);
                format!(
                    "PUT /v1/samples/{name} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/plain\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            }
            Listener::Web => {
                format!("GET /api/v1/clients HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
            }
        };
        good.sent += 1;
        match timeout(REQUEST_TIMEOUT, exchange(addr, request.as_bytes())).await {
            Ok(Ok(200)) => {
                good.ok += 1;
                good.latencies.push(scheduled.elapsed());
            }
            Ok(Ok(code)) => *good.refused.entry(code).or_default() += 1,
            Ok(Err(_)) | Err(_) => good.errors += 1,
        }
        scheduled += interval;
    }
    good
}

/// Connects, writes `request` (with `Connection: close`) and reads to the end: the status.
pub(super) async fn exchange(addr: SocketAddr, request: &[u8]) -> anyhow::Result<u16> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    stream.write_all(request).await?;
    let mut answer = Vec::with_capacity(4096);
    stream.read_to_end(&mut answer).await?;
    status_of(&answer).context("no status line in the answer")
}

pub(super) fn status_of(answer: &[u8]) -> Option<u16> {
    let line = answer.split(|&b| b == b'\r').next()?;
    std::str::from_utf8(line)
        .ok()?
        .split(' ')
        .nth(1)?
        .parse()
        .ok()
}

/// One hostile connection slot: from `first` until `end`, keeps a connection of `kind` open,
/// reconnecting whenever the server closes it, and records when it did.
pub(super) async fn hold(
    addr: SocketAddr,
    listener: Listener,
    kind: Kind,
    first: Instant,
    end: Instant,
    shared: Arc<Hostile>,
) {
    let path = match listener {
        Listener::Ingest => "/v1/samples/agent001",
        Listener::Web => "/api/v1/clients",
    };
    let (opening, dribble): (String, &[u8]) = match kind {
        Kind::Silent => (String::new(), b""),
        Kind::KeepAlive => (format!("GET /idle HTTP/1.1\r\nHost: {addr}\r\n\r\n"), b""),
        Kind::SlowHead => (
            format!("PUT {path} HTTP/1.1\r\n"),
            b"Host: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ),
        Kind::SlowBody => (
            format!(
                "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/plain\r\n\
                 Content-Length: {SLOW_BODY_LEN}\r\n\r\n"
            ),
            b"A",
        ),
    };
    sleep_until(first).await;
    while Instant::now() < end {
        // At most one connect a second per slot: a connection the server answers and closes at
        // once (the web listener reads no body) must not turn this into a connect flood.
        let pace = Instant::now() + Duration::from_secs(1);
        let connected = timeout(Duration::from_secs(10), TcpStream::connect(addr)).await;
        let Ok(Ok(mut stream)) = connected else {
            shared.with(kind, |s| s.connect_errors += 1);
            sleep(Duration::from_secs(1)).await;
            continue;
        };
        let opened = Instant::now();
        shared.with(kind, |s| s.connects += 1);
        shared.open.fetch_add(1, Ordering::Relaxed);
        let closed = keep_open(&mut stream, &opening, dribble, end).await;
        shared.open.fetch_sub(1, Ordering::Relaxed);
        match closed {
            Some(status) => shared.with(kind, |s| {
                s.closed_after.push(opened.elapsed());
                if let Some(code) = status {
                    *s.statuses.entry(code).or_default() += 1;
                }
            }),
            None => return,
        }
        sleep_until(pace.min(end)).await;
    }
}

/// Writes `opening`, then one byte of `dribble` a second (cycling), reading whatever comes.
/// `Some(first status answered)` when the server closed the connection, `None` at `end`.
pub(super) async fn keep_open(
    stream: &mut TcpStream,
    opening: &str,
    dribble: &[u8],
    end: Instant,
) -> Option<Option<u16>> {
    if !opening.is_empty() && stream.write_all(opening.as_bytes()).await.is_err() {
        return Some(None);
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    let mut next_byte = Instant::now() + Duration::from_secs(1);
    let mut k = 0;
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return Some(status_of(&answer)),
                Ok(n) => {
                    if answer.len() < 64 {
                        answer.extend_from_slice(&buf[..n.min(64)]);
                    }
                }
            },
            () = sleep_until(next_byte), if !dribble.is_empty() => {
                if stream.write_all(&dribble[k % dribble.len()..][..1]).await.is_err() {
                    return Some(status_of(&answer));
                }
                k += 1;
                next_byte += Duration::from_secs(1);
            }
            () = sleep_until(end) => return None,
        }
    }
}
