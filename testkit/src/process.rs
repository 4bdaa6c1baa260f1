//! Child processes with deadlines. Running a program to its end: stdin written and closed,
//! stdout and stderr drained on threads (a chatty child never blocks on a full pipe), and a
//! child still running at the deadline killed and reported with what it had written; the
//! waiting is `wait-timeout`'s. Starting a server that says where it listens: a
//! `listening on ADDR` line on stderr, as monitord and xtask's empty handler log it.
//!
//! Not here: what is particular to one server (see `monitord`, `smtp`, `sshd`).

use std::fmt;
use std::io::{self, BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wait_timeout::ChildExt as _;

/// Why [`output_within`] has no output of a finished program.
#[derive(Debug)]
pub enum RunError {
    /// The program could not be started.
    Spawn { program: String, error: io::Error },
    /// Still running at the deadline: killed; `output` is what it wrote until then.
    TimedOut {
        program: String,
        limit: Duration,
        output: Output,
    },
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Spawn { program, error } => write!(f, "cannot run {program}: {error}"),
            RunError::TimedOut {
                program,
                limit,
                output,
            } => write!(
                f,
                "{program} still running after {limit:?}, killed; its stderr:\n{}",
                String::from_utf8_lossy(&output.stderr)
            ),
        }
    }
}

impl std::error::Error for RunError {}

/// Runs `cmd` with `stdin` written to it (then closed; a program that exits without reading
/// it is fine) and its stdout and stderr collected, for at most `limit`.
pub fn output_within(cmd: &mut Command, stdin: &[u8], limit: Duration) -> Result<Output, RunError> {
    let program = format!("{:?}", cmd.get_program());
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| RunError::Spawn {
            program: program.clone(),
            error,
        })?;
    let mut pipe = child.stdin.take().expect("piped stdin");
    // The program may exit before reading (a usage error): a broken pipe is fine then.
    let _ = pipe.write_all(stdin);
    drop(pipe);
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let finished = wait_within(&mut child, limit);
    let status = finished.unwrap_or_else(|| {
        let _ = child.kill();
        child.wait().expect("reap the killed child")
    });
    let output = Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    match finished {
        Some(_) => Ok(output),
        None => Err(RunError::TimedOut {
            program,
            limit,
            output,
        }),
    }
}

/// Waits at most `limit` for `child` to exit; `None` when it still runs (it is left running).
pub fn wait_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    child.wait_timeout(limit).expect("wait for a child process")
}

/// Starts `cmd` with stderr piped and waits at most `limit` for it to log `listening on ADDR`.
/// Every stderr line, before and after, is appended to `log` (by a thread that keeps draining
/// the pipe). The error says why it did not get there (it exited, or said nothing in time) and
/// includes the log; the child is then reaped.
pub fn spawn_listening(
    cmd: &mut Command,
    limit: Duration,
    log: Arc<Mutex<String>>,
) -> Result<(Child, SocketAddr), String> {
    let program = format!("{:?}", cmd.get_program());
    let mut child = cmd
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().expect("piped stderr");
    let lines = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = listening_addr(&line) {
                let _ = tx.send(addr);
            }
            let mut lines = lines.lock().expect("log lock");
            lines.push_str(&line);
            lines.push('\n');
        }
    });
    let log_so_far = || log.lock().expect("log lock").clone();
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(addr) = rx.recv_timeout(Duration::from_millis(100)) {
            return Ok((child, addr));
        }
        if let Some(status) = child.try_wait().expect("poll the child") {
            // Let the reader thread take in the last lines.
            std::thread::sleep(Duration::from_millis(100));
            return Err(format!(
                "{program} exited ({status}) before listening; stderr:\n{}",
                log_so_far()
            ));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{program} did not log `listening on ADDR` within {limit:?}; stderr:\n{}",
                log_so_far()
            ));
        }
    }
}

/// Finds `ADDR` in a line containing `listening on ADDR`.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    addr_after(line, "listening on ")
}

/// The address right after `marker` in a log line (`web listener on 127.0.0.1:8751 (…)`).
pub fn addr_after(line: &str, marker: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(marker)? + marker.len()..];
    let word: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != ',' && *c != '"' && *c != ';')
        .collect();
    word.parse().ok()
}

fn drain(pipe: Option<impl io::Read + Send + 'static>) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        buf
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_listening_address_in_log_lines() {
        let line = "2026-11-28T04:00:00Z  INFO monitord: listening on 127.0.0.1:40123";
        assert_eq!(
            listening_addr(line),
            Some("127.0.0.1:40123".parse().unwrap())
        );
        assert_eq!(
            listening_addr("listening on [::1]:8750, 3 clients"),
            Some("[::1]:8750".parse().unwrap())
        );
        assert_eq!(listening_addr("starting"), None);
    }

    #[test]
    fn collects_the_output_of_a_program_that_ends() {
        let out = output_within(
            Command::new("sh").args(["-c", "cat; echo oops >&2; exit 3"]),
            b"hello",
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"hello");
        assert_eq!(out.stderr, b"oops\n");
    }

    #[test]
    fn kills_a_program_still_running_at_the_deadline() {
        let err = output_within(
            Command::new("sh").args(["-c", "echo started >&2; exec sleep 30"]),
            b"",
            Duration::from_millis(300),
        )
        .unwrap_err();
        let RunError::TimedOut { output, .. } = &err else {
            panic!("{err}")
        };
        assert!(!output.status.success());
        assert!(err.to_string().contains("started"), "{err}");
    }
}
