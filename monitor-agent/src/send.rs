//! Sending one sealed sample: `PUT {url}/v1/samples/{name}` over plain HTTP/1.1, and what the
//! answer means for the sample ([`Verdict`]).
//!
//! Hand-written over `std::net::TcpStream` because the agent needs one request shape and a
//! status line, and an HTTP client crate (ureq without TLS) adds ~430 KB to a binary that must
//! stay under 1.5 MB. The server is addressed by IP only: a static glibc binary that resolved
//! names would load the host's own `libnss_*` at run time (docs/DESIGN.md), so the URL must hold
//! an address and the name, if any, goes in the `host` setting for the `Host` header.
//!
//! Not here: retrying, the spool, or sealing (monitor-core's envelope does that).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use monitor_core::settings::SettingsError;
use monitor_core::{AgentSettings, ClientKeys, envelope};

/// Connect, read and write timeouts: monitord answers once the sample is committed, which
/// takes milliseconds unless something is wrong.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The most of a response that is read; monitord's answers are short JSON.
const MAX_RESPONSE: usize = 16 * 1024;
/// The longest `Retry-After` honoured, so a wrong header cannot park the agent for a day.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// What monitord's answer to one PUT means for the sample.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// 200: monitord committed it.
    Stored,
    /// 4xx: monitord will never take this sample; resending cannot fix it.
    Rejected { status: u16, reason: String },
    /// No connection, a timeout, 5xx (503 above all): keep it and try again later.
    Unavailable {
        reason: String,
        retry_after: Option<Duration>,
    },
}

/// Where and as whom samples are sent; built once from the settings.
#[derive(Debug)]
pub struct Endpoint {
    addr: SocketAddr,
    host_header: String,
    path: String,
    name: String,
    keys: ClientKeys,
}

impl Endpoint {
    /// Checks the URL (`http://ADDRESS[:PORT][/prefix]`) and keys of the settings.
    pub fn new(settings: &AgentSettings) -> Result<Endpoint, SettingsError> {
        let keys = settings.keys()?;
        let bad_url = SettingsError::Invalid {
            field: "url",
            expected: "http://ADDRESS:PORT with an IP address (the agent does not resolve \
                       host names: put the name in `host`)",
        };
        let rest = settings
            .url
            .strip_prefix("http://")
            .ok_or(bad_url.clone())?;
        let (authority, prefix) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let addr = parse_authority(authority).ok_or(bad_url)?;
        let host_header = settings
            .host
            .clone()
            .unwrap_or_else(|| authority.to_owned());
        let path = format!(
            "{}/v1/samples/{}",
            prefix.trim_end_matches('/'),
            percent_encode(&settings.name)
        );
        Ok(Endpoint {
            addr,
            host_header,
            path,
            name: settings.name.clone(),
            keys,
        })
    }

    /// Seals `json` and PUTs it; never panics, every failure is an [`Verdict`].
    pub fn send(&self, json: &str) -> Verdict {
        let body = envelope::seal(&self.keys, &self.name, json.as_bytes());
        match self.exchange(&body) {
            Ok(response) => classify(&response),
            Err(e) => Verdict::Unavailable {
                reason: format!("{}: {e}", self.addr),
                retry_after: None,
            },
        }
    }

    fn exchange(&self, body: &str) -> std::io::Result<Vec<u8>> {
        let mut stream = TcpStream::connect_timeout(&self.addr, TIMEOUT)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        let head = format!(
            "PUT {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: monitor-agent/{}\r\n\
             Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.path,
            self.host_header,
            env!("CARGO_PKG_VERSION"),
            body.len()
        );
        stream.write_all(head.as_bytes())?;
        stream.write_all(body.as_bytes())?;
        read_response(&mut stream)
    }
}

/// Reads until the response is complete (by Content-Length), the peer closes, or
/// [`MAX_RESPONSE`] bytes: whichever comes first.
fn read_response(stream: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            // Already holding a full head is enough: the status is what matters.
            Err(e) if header_end(&buf).is_some() && is_timeout(&e) => break,
            Err(e) => return Err(e),
        };
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() >= MAX_RESPONSE || is_complete(&buf) {
            break;
        }
    }
    if header_end(&buf).is_none() && !buf.starts_with(b"HTTP/") {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the connection closed without an HTTP response",
        ));
    }
    Ok(buf)
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

fn header_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

fn is_complete(buf: &[u8]) -> bool {
    let Some(end) = header_end(buf) else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    match header(&head, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        Some(len) => buf.len() >= end + len,
        None => buf.ends_with(b"0\r\n\r\n") && header(&head, "transfer-encoding").is_some(),
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then_some(value.trim())
    })
}

/// Maps a raw response to what the agent does with the sample.
fn classify(response: &[u8]) -> Verdict {
    let end = header_end(response).unwrap_or(response.len());
    let head = String::from_utf8_lossy(&response[..end]);
    let status = head
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok());
    let Some(status) = status else {
        return Verdict::Unavailable {
            reason: "the answer is not HTTP".into(),
            retry_after: None,
        };
    };
    let reason = || reason(status, &response[end..]);
    match status {
        200..=299 => Verdict::Stored,
        // Timeouts and rate limits pass; every other refusal is about the sample or the keys.
        408 | 429 | 500..=599 => Verdict::Unavailable {
            reason: reason(),
            retry_after: header(&head, "retry-after")
                .and_then(|v| v.parse::<u64>().ok())
                .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER)),
        },
        _ => Verdict::Rejected {
            status,
            reason: reason(),
        },
    }
}

/// `HTTP 422: memory used (…) is above total (…)`: the status and monitord's short reason
/// (its JSON `error` or `message`, else the body's first line), cut to one line.
fn reason(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let from_json = serde_json::from_str::<serde_json::Value>(text.trim())
        .ok()
        .and_then(|v| {
            ["error", "message", "reason"]
                .iter()
                .find_map(|k| v.get(k).and_then(|m| m.as_str()).map(str::to_owned))
        });
    let detail = from_json.unwrap_or_else(|| text.lines().next().unwrap_or("").trim().to_owned());
    let detail: String = detail.chars().take(200).collect();
    monitor_core::agent::http_reason(status, &detail)
}

/// `10.0.0.5:8750`, `[::1]:8750`, `10.0.0.5` (port 80) or `localhost:8750`.
/// Hand-written: the `url` crate (with its IDNA tables) would grow the static agent far more.
fn parse_authority(authority: &str) -> Option<SocketAddr> {
    if let Ok(addr) = authority.parse::<SocketAddr>() {
        return Some(addr);
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        match after {
            "" => (host, 80),
            port => (host, port.strip_prefix(':')?.parse().ok()?),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, port.parse().ok()?),
            None => (authority, 80),
        }
    };
    let ip = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse().ok()?
    };
    Some(SocketAddr::new(ip, port))
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
/// Hand-written: the `percent-encoding` crate measured 960 bytes more in the static agent.
fn percent_encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_percent_encoded() {
        assert_eq!(percent_encode("web1.example_a-b"), "web1.example_a-b");
        assert_eq!(percent_encode("[::1]:2222"), "%5B%3A%3A1%5D%3A2222");
    }

    #[test]
    fn authorities_are_addresses_only() {
        let sa = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(parse_authority("10.0.0.5:8750"), Some(sa("10.0.0.5:8750")));
        assert_eq!(parse_authority("[::1]:8750"), Some(sa("[::1]:8750")));
        assert_eq!(parse_authority("10.0.0.5"), Some(sa("10.0.0.5:80")));
        assert_eq!(parse_authority("[::1]"), Some(sa("[::1]:80")));
        assert_eq!(parse_authority("localhost:9"), Some(sa("127.0.0.1:9")));
        assert_eq!(parse_authority("monitor.example.com:8750"), None);
        assert_eq!(parse_authority("10.0.0.5:http"), None);
    }

    fn settings(url: &str, host: Option<&str>) -> AgentSettings {
        let keys = ClientKeys::from_bytes([1; 16], [2; 32]);
        AgentSettings::new("[::1]:22", &keys, url, host)
    }

    #[test]
    fn endpoint_path_and_host_header() {
        let e = Endpoint::new(&settings("http://127.0.0.1:8750/", None)).unwrap();
        assert_eq!(e.path, "/v1/samples/%5B%3A%3A1%5D%3A22");
        assert_eq!(e.host_header, "127.0.0.1:8750");
        let e = Endpoint::new(&settings("http://10.1.2.3:80/mon", Some("mon.example"))).unwrap();
        assert_eq!(e.path, "/mon/v1/samples/%5B%3A%3A1%5D%3A22");
        assert_eq!(e.host_header, "mon.example");
        let err = Endpoint::new(&settings("http://mon.example:8750", None)).unwrap_err();
        assert!(err.to_string().contains("`url`"), "{err}");
    }

    #[test]
    fn statuses_decide_the_samples_fate() {
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(classify(ok), Verdict::Stored);
        let busy = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2\r\ncontent-length: 26\r\n\r\n{\"error\":\"store is busy\"}";
        assert_eq!(
            classify(busy),
            Verdict::Unavailable {
                reason: "HTTP 503: store is busy".into(),
                retry_after: Some(Duration::from_secs(2)),
            }
        );
        for status in [400, 401, 404, 413, 422] {
            let r = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
            assert!(
                matches!(classify(r.as_bytes()), Verdict::Rejected { status: s, .. } if s == status),
                "{status}"
            );
        }
        assert!(matches!(classify(b"garbage"), Verdict::Unavailable { .. }));
    }

    #[test]
    fn responses_end_by_length_or_chunks() {
        assert!(is_complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
        ));
        assert!(!is_complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}"
        ));
        assert!(is_complete(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
        ));
    }

    #[test]
    fn refused_connections_are_unavailable() {
        // A port just released by the OS: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = Endpoint::new(&settings(&format!("http://127.0.0.1:{port}"), None)).unwrap();
        assert!(matches!(e.send("{}"), Verdict::Unavailable { .. }));
    }
}
