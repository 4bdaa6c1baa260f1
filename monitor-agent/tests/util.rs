//! Running the agent binary in tests, with a temporary state directory.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The agent cargo built for this test run (a normal, dynamic debug build).
pub fn agent() -> &'static str {
    env!("CARGO_BIN_EXE_monitor-agent")
}

/// A fresh directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "monitor-agent-test-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the agent with `stdin` piped in (then closed); killed after 30 s.
pub fn run(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(agent())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start monitor-agent");
    let mut pipe = child.stdin.take().unwrap();
    // The agent may exit before reading (a usage error); a broken pipe is fine then.
    let _ = pipe.write_all(stdin.as_bytes());
    drop(pipe);
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("monitor-agent {args:?} still running after 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// An address where nothing listens: a port the OS just handed out and took back.
pub fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

pub fn settings_json(url: &str) -> String {
    format!(
        r#"{{"name":"web1","enc":"{}","mac":"{}","url":"{url}"}}"#,
        "ab".repeat(16),
        "cd".repeat(32)
    )
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
