//! The real static agent for tests: where `scripts/build-agent` leaves it, and running it
//! with settings JSON on stdin (never argv, as monitor-deploy does) and a temporary state
//! directory, so no test touches `~/.cache/monitor-agent`.
//!
//! Not here: building the agent (that is `scripts/build-agent`, run by `scripts/test`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use monitor_core::agent::built_under_target;

use crate::{process, util};

/// The static agent for this machine (monitor-core's [`built_under_target`] under
/// [`util::target_dirs`]), or what to do when it has not been built: the one rule the tests,
/// the benchmarks and the tools use to find it.
pub fn find_binary() -> Result<PathBuf, String> {
    let built = built_under_target(std::env::consts::ARCH);
    util::build_output(&built).map_err(|expected| {
        format!(
            "the static agent ({}) is missing: build it with `scripts/build-agent` (with the \
             same CARGO_TARGET_DIR), or run everything with `scripts/test`",
            expected.display()
        )
    })
}

/// The static agent; panics naming `scripts/build-agent` when it has not been built.
pub fn binary() -> PathBuf {
    find_binary().unwrap_or_else(|why| panic!("{why}"))
}

/// For tests of the static agent itself: `None` after printing why when it has not been built
/// (refused in CI, where `scripts/test` builds it first; see [`util::runnable`]).
pub fn binary_or_skip() -> Option<PathBuf> {
    match find_binary() {
        Ok(path) => Some(path),
        Err(why) => {
            util::runnable(false, &why);
            None
        }
    }
}

/// Runs the agent to completion with `settings` (JSON) on stdin, `--dir dir`, and `args`.
/// Bounded: an agent still running after `timeout` is killed and the test fails.
pub fn run(settings: &str, dir: &Path, args: &[&str], timeout: Duration) -> Output {
    let mut cmd = Command::new(binary());
    cmd.args(args).arg("--dir").arg(dir);
    process::output_within(&mut cmd, settings.as_bytes(), timeout)
        .unwrap_or_else(|e| panic!("monitor-agent {args:?}: {e}"))
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
    std::io::Write::write_all(&mut stdin, settings.as_bytes())
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
