//! Running the agent binary in tests, on testkit's harness: temporary state directories,
//! bounded runs, the skip policy. Only what is particular to these tests is here.

use std::process::{Command, Output};
use std::time::Duration;

pub use testkit::util::{TempDir, temp_dir, wait_until};

/// The agent cargo built for this test run (a normal, dynamic debug build).
pub fn agent() -> &'static str {
    env!("CARGO_BIN_EXE_monitor-agent")
}

/// Runs the agent with `stdin` piped in (then closed); killed after 30 s.
pub fn run(args: &[&str], stdin: &str) -> Output {
    testkit::process::output_within(
        Command::new(agent()).args(args),
        stdin.as_bytes(),
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("monitor-agent {args:?}: {e}"))
}

/// An address where nothing listens: a port the OS just handed out and took back.
pub fn closed_port_url() -> String {
    format!("http://127.0.0.1:{}", testkit::util::free_port())
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
