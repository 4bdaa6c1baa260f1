//! The real static agent for tests: where `scripts/build-agent` leaves it, and running it
//! with settings JSON on stdin (never argv, as monitor-deploy does) and a temporary state
//! directory, so no test touches `~/.cache/monitor-agent`.
//!
//! Not here: building the agent (that is `scripts/build-agent`, run by `scripts/test`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The static agent: `$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/agent/monitor-agent`.
/// Panics naming `scripts/build-agent` when it has not been built.
pub fn binary() -> PathBuf {
    const REL: &str = "x86_64-unknown-linux-gnu/agent/monitor-agent";
    // CARGO_TARGET_DIR when cargo runs the tests; else the target directory this test binary
    // sits in (`<target>/debug/deps/tests-…`), so running it by hand works too.
    let mut candidates: Vec<PathBuf> = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    if let Ok(exe) = std::env::current_exe() {
        candidates.extend(exe.ancestors().skip(1).take(4).map(Path::to_path_buf));
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    if let Some(found) = candidates.iter().map(|t| t.join(REL)).find(|p| p.is_file()) {
        return found;
    }
    panic!(
        "the static agent ({REL} under {}) is missing: build it with `scripts/build-agent` \
         (with the same CARGO_TARGET_DIR), or run everything with `scripts/test`",
        candidates[0].display()
    );
}

/// Runs the agent to completion with `settings` (JSON) on stdin, `--dir dir`, and `args`.
/// Bounded: an agent still running after `timeout` is killed and the test fails.
pub fn run(settings: &str, dir: &Path, args: &[&str], timeout: Duration) -> Output {
    let mut child = spawn(settings, dir, args);
    let deadline = Instant::now() + timeout;
    while child.try_wait().expect("poll the agent").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("reap the agent");
            panic!(
                "monitor-agent {args:?} still running after {timeout:?}; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child
        .wait_with_output()
        .expect("collect the agent's output")
}

/// `monitor-agent --once`: sends one sample; asserts exit 0 and returns the output.
pub fn once(settings: &str, dir: &Path) -> Output {
    let out = run(settings, dir, &["--once"], Duration::from_secs(60));
    assert!(
        out.status.success(),
        "monitor-agent --once failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Starts the agent with `settings` on stdin (then closed), `--dir dir` and `args`; stdout and
/// stderr are piped. The caller stops it (`Child::kill`) — see [`Running`] for a guard.
pub fn spawn(settings: &str, dir: &Path, args: &[&str]) -> Child {
    let mut child = Command::new(binary())
        .args(args)
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start monitor-agent");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin
        .write_all(settings.as_bytes())
        .expect("write settings to the agent");
    drop(stdin);
    child
}

/// A running agent that is killed when dropped.
#[derive(Debug)]
pub struct Running(pub Child);

impl Running {
    pub fn start(settings: &str, dir: &Path, args: &[&str]) -> Running {
        Running(spawn(settings, dir, args))
    }

    /// Kills the agent and returns what it wrote to stderr.
    pub fn stop(mut self) -> String {
        let _ = self.0.kill();
        let mut stderr = String::new();
        if let Some(mut pipe) = self.0.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
        }
        let _ = self.0.wait();
        stderr
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
