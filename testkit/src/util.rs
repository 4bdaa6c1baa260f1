//! Small helpers every integration test needs: temporary directories removed on drop, free
//! loopback ports, bounded waiting, skipping tests that need root (never silently, never in
//! CI), a small tmpfs that really fills up, and a tiny HTTP/1.1 client over a raw `TcpStream`.
//!
//! The HTTP client is deliberately raw: the tests send malformed, chunked and oversized
//! bodies and a well-behaved client library would refuse or "fix" them. It always sends
//! `Connection: close` and reads the answer until the server closes. Not here: anything
//! that starts a program (see the sibling modules).

use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use tempfile::TempDir;

/// A fresh temporary directory, removed with everything in it when dropped.
pub fn temp_dir(purpose: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("monitord-test-{purpose}-"))
        .tempdir()
        .expect("create a temporary directory")
}

/// The target directories build outputs are looked for in, most likely first:
/// `$CARGO_TARGET_DIR` when set; the one this executable was built into (a test binary sits in
/// `<target>/debug/deps/`, xtask in `<target>/release/`), so running either by hand works too;
/// and the workspace's own `target/`.
pub fn target_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    if let Ok(exe) = std::env::current_exe() {
        dirs.extend(exe.ancestors().skip(1).take(4).map(Path::to_path_buf));
    }
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    dirs
}

/// `relative` (e.g. `release/monitord`) in the first of [`target_dirs`] that has it; else the
/// path it was expected at in the first, for the message saying how to build it.
pub fn build_output(relative: &str) -> Result<PathBuf, PathBuf> {
    let dirs = target_dirs();
    dirs.iter()
        .map(|dir| dir.join(relative))
        .find(|path| path.is_file())
        .ok_or_else(|| dirs[0].join(relative))
}

/// A loopback port that was free a moment ago. Prefer handing a program port 0 and reading
/// the port it bound; use this only for programs that cannot report their port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}

/// Calls `probe` until it returns `Some`, at most until `timeout`; panics naming `what`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Calls `cond` until it is true, at most until `timeout`; returns whether it became true, for
/// a test that reports a failed wait with more than a name (say, a process's stderr).
pub fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Calls `cond` until it is true, at most until `timeout`; panics naming `what`.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    wait_for(timeout, what, || cond().then_some(()));
}

/// True when this process runs as root.
pub fn is_root() -> bool {
    // /proc/self belongs to the process's effective user; no unsafe geteuid needed.
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// True when running in CI (`CI` set and not empty), where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// For tests that cannot run here: returns `false` after printing why when `available` is
/// false outside CI; in CI it panics instead, because there nothing is skipped.
/// Use as `if !util::runnable(cond, "reason") { return; }`.
pub fn runnable(available: bool, reason: &str) -> bool {
    if available {
        return true;
    }
    assert!(!in_ci(), "cannot run in CI: {reason}");
    eprintln!("SKIPPED: {reason} (set up by scripts/test; skips are refused when CI is set)");
    false
}

/// For tests (or the part of a test) that need a program: true when `program` is on `PATH`;
/// else see [`runnable`]. `package` is the Debian package that installs it.
pub fn have_program(program: &str, package: &str) -> bool {
    let found = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    });
    runnable(
        found,
        &format!("`{program}` is not installed (apt-get install {package}; scripts/test does)"),
    )
}

/// For tests that need root: see [`runnable`].
pub fn runnable_as_root(what: &str) -> bool {
    runnable(is_root(), &format!("{what} needs root"))
}

/// A tmpfs of a fixed size mounted on a directory (root only), unmounted on drop: a disk
/// that really fills up, for the tests of what happens then.
#[derive(Debug)]
pub struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it, e.g. `2m`) on `path`, an
    /// existing empty directory.
    pub fn mount(path: &Path, size: &str) -> Tmpfs {
        let status = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(path)
            .status()
            .expect("run mount");
        assert!(status.success(), "mount a tmpfs on {}", path.display());
        Tmpfs {
            path: path.to_owned(),
        }
    }

    /// Writes zeros to `file` until the filesystem is full; returns the bytes written.
    pub fn fill(&self, file: &str) -> u64 {
        let mut out = std::fs::File::create(self.path.join(file)).expect("create the filler");
        let chunk = vec![0u8; 4096];
        let mut written = 0;
        loop {
            match out.write(&chunk) {
                Ok(0) => return written,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(28) => return written, // ENOSPC
                Err(e) => panic!("fill {}: {e}", self.path.display()),
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a process still holding a file there must not keep the mount alive.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

/// An HTTP response as the tests see it.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics (showing the body) when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response {} body is not JSON ({e}): {:?}",
                self.status,
                self.text()
            )
        })
    }
}

const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// `PUT path` with a `Content-Length` body.
pub fn put(addr: SocketAddr, path: &str, body: &[u8]) -> io::Result<Response> {
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    send_raw(addr, head.as_bytes(), body)
}

/// `GET path`.
pub fn get(addr: SocketAddr, path: &str) -> io::Result<Response> {
    let head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    send_raw(addr, head.as_bytes(), b"")
}

/// `GET path` with extra header lines (`Name: value`, e.g. an `Authorization`).
pub fn get_with(addr: SocketAddr, path: &str, headers: &[&str]) -> io::Result<Response> {
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    send_raw(addr, head.as_bytes(), b"")
}

/// `PUT path` with the body sent in `Transfer-Encoding: chunked` pieces of `chunk` bytes.
pub fn put_chunked(
    addr: SocketAddr,
    path: &str,
    body: &[u8],
    chunk: usize,
) -> io::Result<Response> {
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    let mut encoded = Vec::with_capacity(body.len() + body.len() / chunk.max(1) * 8 + 8);
    for piece in body.chunks(chunk.max(1)) {
        encoded.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        encoded.extend_from_slice(piece);
        encoded.extend_from_slice(b"\r\n");
    }
    encoded.extend_from_slice(b"0\r\n\r\n");
    send_raw(addr, head.as_bytes(), &encoded)
}

/// Writes `head` then `rest` and reads the response. A server may answer (e.g. 413) and close
/// before it has read everything; a failed write of `rest` is therefore not an error as long
/// as a response arrives.
pub fn send_raw(addr: SocketAddr, head: &[u8], rest: &[u8]) -> io::Result<Response> {
    let mut stream = connect(addr)?;
    stream.write_all(head)?;
    let wrote = stream.write_all(rest).and_then(|()| stream.flush());
    match read_response(&mut stream) {
        Ok(response) => Ok(response),
        Err(read_err) => Err(wrote.err().unwrap_or(read_err)),
    }
}

/// Connects with the tests' I/O timeouts set, so no test hangs on a silent server.
pub fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(stream)
}

/// Reads one response from a `Connection: close` exchange: until the server closes, or until
/// `Content-Length` bytes of body arrived.
pub fn read_response(stream: &mut TcpStream) -> io::Result<Response> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            break end;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "connection closed before a complete response head (got {:?})",
                    String::from_utf8_lossy(&buf)
                ),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = buf[head_end + 4..].to_vec();
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    loop {
        if length.is_some_and(|len| body.len() >= len) {
            break;
        }
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(e),
        }
    }
    if let Some(len) = length {
        if body.len() < len {
            return Err(bad(format!(
                "response body cut short: {} of {len} bytes",
                body.len()
            )));
        }
        body.truncate(len);
    } else if chunked {
        body = dechunk(&body)?;
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = find(data, b"\r\n").ok_or_else(|| bad("chunk size line".into()))?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| bad(format!("bad chunk size {size_text:?}")))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err(bad("chunk cut short".into()));
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dechunk_joins_pieces() {
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n").unwrap(),
            b"abcde"
        );
        assert!(dechunk(b"5\r\nab").is_err());
    }

    #[test]
    fn reads_a_response_from_a_real_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = vec![0u8; 4096];
            let n = s.read(&mut req).unwrap();
            assert!(req[..n].starts_with(b"PUT /x HTTP/1.1\r\n"));
            s.write_all(b"HTTP/1.1 503 Busy\r\nRetry-After: 2\r\nContent-Length: 2\r\n\r\n{}")
                .unwrap();
        });
        let r = put(addr, "/x", b"body").unwrap();
        server.join().unwrap();
        assert_eq!(r.status, 503);
        assert_eq!(r.header("Retry-After"), Some("2"));
        assert_eq!(r.json(), serde_json::json!({}));
    }
}
