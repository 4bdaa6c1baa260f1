//! Running a program to its end within a deadline: stdin written and closed, stdout and stderr
//! drained on threads (a chatty child never blocks on a full pipe), and a child still running
//! at the deadline killed and reported with what it had written. The waiting is `wait-timeout`'s
//! (SIGCHLD, no polling loop).
//!
//! Not here: long-running servers the tests talk to (see `monitord`, `smtp`, `sshd`).

use std::fmt;
use std::io::{self, Write as _};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

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
