//! Sending one sealed sample: `PUT {url}/v1/samples/{name}` over plain HTTP/1.1, and what the
//! answer means for the sample ([`Verdict`], parsed by the library's `response` module).
//!
//! Hand-written over `std::net::TcpStream` because the agent needs one request shape and a
//! status line, and an HTTP client crate (ureq without TLS) adds ~430 KB to a binary that must
//! stay under 1.5 MB. The server is addressed by IP only: a static glibc binary that resolved
//! names would load the host's own `libnss_*` at run time (DESIGN.md), so the URL must hold an
//! address and the name, if any, goes in the `host` setting for the `Host` header.
//!
//! Not here: retrying, the spool, or sealing (monitor-core's envelope does that).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use monitor_core::settings::SettingsError;
use monitor_core::{AgentSettings, ClientKeys, envelope};

pub use monitor_agent::response::Verdict;
use monitor_agent::response::{classify, header_end, is_complete};

/// Connect, read and write timeouts: monitord answers once the sample is committed, which
/// takes milliseconds unless something is wrong.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The most of a response that is read; monitord's answers are short JSON.
const MAX_RESPONSE: usize = 16 * 1024;

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

/// `10.0.0.5:8750`, `[::1]:8750`, `10.0.0.5` (port 80) or `localhost:8750`.
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
