//! The HTTP load generator: many keep-alive HTTP/1.1 connections (one per task, each writing
//! prepared requests and reading answers itself, `httparse` for the status line and headers)
//! sending pre-sealed `PUT /v1/samples/{name}` bodies to one loopback server.
//!
//! Two ways to drive it:
//! - [`closed_loop`]: every connection sends its next body as soon as the previous one is
//!   answered; the count of 200s over the elapsed time is the peak rate.
//! - [`open_loop`]: bodies are scheduled at a fixed rate regardless of answers, and latency is
//!   counted from the scheduled moment whenever a connection was still busy with an earlier
//!   request, so a slow server cannot hide its queueing (no coordinated omission).
//!
//! Not here: what the bodies contain (see `fleet`) or which server listens (see `server`).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Request, header};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::fleet::SealedSample;

/// What one run of requests came back with.
#[derive(Debug, Default)]
pub struct Tally {
    /// Answered 200 (for monitord: committed).
    pub ok: u64,
    /// Other statuses, by code (a 503 means monitord's queue was full).
    pub refused: BTreeMap<u16, u64>,
    /// Connection errors (each followed by a reconnect).
    pub errors: u64,
    /// From the first request to the last answer.
    pub elapsed: Duration,
    /// Open loop only: per-request latency of the 200s.
    pub latencies: Vec<Duration>,
}

impl Tally {
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        for (code, n) in other.refused {
            *self.refused.entry(code).or_default() += n;
        }
        self.errors += other.errors;
        self.latencies.extend(other.latencies);
    }

    /// Latency at quantile `q` (0..=1) of the 200s.
    pub fn quantile(&mut self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        self.latencies.sort_unstable();
        let i = ((self.latencies.len() - 1) as f64 * q).round() as usize;
        self.latencies[i]
    }

    /// `0`, or e.g. `503 ×120, 3 connection errors`.
    pub fn refusals(&self) -> String {
        let mut parts: Vec<String> = self
            .refused
            .iter()
            .map(|(code, n)| format!("{code} ×{n}"))
            .collect();
        if self.errors > 0 {
            parts.push(format!("{} connection errors", self.errors));
        }
        if parts.is_empty() {
            "none".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

/// Where and what to send: the server, the client names, and the bodies in sending order.
#[derive(Debug, Clone)]
pub struct Work {
    pub addr: SocketAddr,
    /// Per client, the request head up to the `Content-Length` value.
    heads: Arc<[String]>,
    pub bodies: Arc<[SealedSample]>,
}

impl Work {
    pub fn new(addr: SocketAddr, names: &[String], bodies: Arc<[SealedSample]>) -> Work {
        Work {
            addr,
            heads: names
                .iter()
                .map(|n| {
                    format!(
                        "PUT /v1/samples/{n} HTTP/1.1\r\nHost: {addr}\r\n\
                         Content-Type: text/plain\r\nContent-Length: "
                    )
                })
                .collect(),
            bodies,
        }
    }

    /// Request `i` as it goes on the wire, written into `out`.
    fn request(&self, i: usize, out: &mut Vec<u8>) {
        let sample = &self.bodies[i];
        out.clear();
        out.extend_from_slice(self.heads[sample.client].as_bytes());
        write!(out, "{}\r\n\r\n", sample.body.len()).expect("writing to a Vec cannot fail");
        out.extend_from_slice(&sample.body);
    }
}

/// One keep-alive HTTP/1.1 connection that writes a prepared request and reads the answer
/// in the same task, as `wrk` does: no per-request task hand-over or header map, so the load
/// generator takes as little as it can of the cores it shares with the server under test.
/// Reconnects after an error.
struct Connection {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    request: Vec<u8>,
    answer: Vec<u8>,
}

impl Connection {
    async fn open(addr: SocketAddr) -> anyhow::Result<Connection> {
        let mut c = Connection {
            addr,
            stream: None,
            request: Vec::with_capacity(2048),
            answer: Vec::with_capacity(1024),
        };
        c.stream = Some(c.connect().await?);
        Ok(c)
    }

    async fn connect(&self) -> anyhow::Result<TcpStream> {
        let stream = TcpStream::connect(self.addr)
            .await
            .with_context(|| format!("cannot connect to {}", self.addr))?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    /// Sends request `i` of `work` and reads the whole answer; `Err` means the connection broke.
    async fn send(&mut self, work: &Work, i: usize) -> anyhow::Result<u16> {
        work.request(i, &mut self.request);
        let stream = match &mut self.stream {
            Some(s) => s,
            None => self.stream.insert(self.connect().await?),
        };
        let result = exchange(stream, &self.request, &mut self.answer).await;
        match result {
            Ok((status, keep_alive)) => {
                if !keep_alive {
                    self.stream = None;
                }
                Ok(status)
            }
            Err(e) => {
                self.stream = None;
                Err(e)
            }
        }
    }
}

/// Writes `request`, then reads one answer with a `Content-Length` body into `buf`: its status
/// and whether the connection stays open.
async fn exchange(
    stream: &mut TcpStream,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> anyhow::Result<(u16, bool)> {
    stream.write_all(request).await?;
    buf.clear();
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut response = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(head) = response.parse(buf)? {
            let status = response.code.unwrap_or(0);
            let mut length = 0;
            let mut keep_alive = true;
            for h in response.headers.iter() {
                if h.name.eq_ignore_ascii_case("content-length") {
                    length = std::str::from_utf8(h.value)?.trim().parse::<usize>()?;
                } else if h.name.eq_ignore_ascii_case("connection") {
                    keep_alive = !h.value.eq_ignore_ascii_case(b"close");
                } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                    anyhow::bail!("chunked answers are not expected from a PUT here");
                }
            }
            while buf.len() < head + length {
                read_more(stream, buf).await?;
            }
            return Ok((status, keep_alive));
        }
        read_more(stream, buf).await?;
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<()> {
    buf.reserve(1024);
    if stream.read_buf(buf).await? == 0 {
        anyhow::bail!("the server closed the connection");
    }
    Ok(())
}

/// Sends bodies `range` as fast as `connections` connections allow, until they run out or
/// `limit` has passed (answers in flight then are still awaited and counted).
pub async fn closed_loop(
    work: &Work,
    range: std::ops::Range<usize>,
    connections: usize,
    limit: Duration,
) -> anyhow::Result<Tally> {
    let next = Arc::new(AtomicUsize::new(range.start));
    let mut conns = Vec::with_capacity(connections);
    for _ in 0..connections {
        conns.push(Connection::open(work.addr).await?);
    }
    let start = Instant::now();
    let deadline = start + limit;
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut conn| {
            let work = work.clone();
            let next = next.clone();
            let end = range.end;
            tokio::spawn(async move {
                let mut outcome = Tally::default();
                while Instant::now() < deadline {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= end {
                        break;
                    }
                    record(&mut outcome, conn.send(&work, i).await, None);
                }
                outcome
            })
        })
        .collect();
    let mut total = Tally::default();
    for task in tasks {
        total.merge(task.await?);
    }
    total.elapsed = start.elapsed();
    Ok(total)
}

/// Sends bodies `range` at `rate` per second spread over `connections` connections, for at
/// most `limit`, and records each 200's latency.
pub async fn open_loop(
    work: &Work,
    range: std::ops::Range<usize>,
    connections: usize,
    rate: f64,
    limit: Duration,
) -> anyhow::Result<Tally> {
    let count = range.len().min((rate * limit.as_secs_f64()) as usize);
    let mut conns = Vec::with_capacity(connections);
    for _ in 0..connections {
        conns.push(Connection::open(work.addr).await?);
    }
    let start = Instant::now() + Duration::from_millis(50);
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(k, mut conn)| {
            let work = work.clone();
            let first = range.start;
            tokio::spawn(async move {
                let mut outcome = Tally::default();
                let mut free_since = start;
                // Connection k sends requests k, k + n, k + 2n, … of the schedule.
                for j in (k..count).step_by(connections) {
                    let scheduled = start + Duration::from_secs_f64(j as f64 / rate);
                    // Busy past the scheduled moment: the wait behind the earlier request is
                    // the server's latency too. Otherwise the timer's own lateness is not.
                    let from = if free_since > scheduled {
                        scheduled
                    } else {
                        tokio::time::sleep_until(scheduled).await;
                        Instant::now()
                    };
                    let result = conn.send(&work, first + j).await;
                    free_since = Instant::now();
                    record(&mut outcome, result, Some(free_since - from));
                }
                outcome
            })
        })
        .collect();
    let mut total = Tally::default();
    for task in tasks {
        total.merge(task.await?);
    }
    total.elapsed = start.elapsed();
    Ok(total)
}

/// One `GET path` on a fresh connection: the status and the body's length (a scrape).
pub async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, usize)> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let request = Request::builder()
        .uri(path)
        .header(header::HOST, addr.to_string())
        .body(Full::new(Bytes::new()))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body.len()))
}

fn record(outcome: &mut Tally, result: anyhow::Result<u16>, latency: Option<Duration>) {
    match result {
        Ok(200) => {
            outcome.ok += 1;
            outcome.latencies.extend(latency);
        }
        Ok(code) => *outcome.refused.entry(code).or_default() += 1,
        Err(_) => outcome.errors += 1,
    }
}
