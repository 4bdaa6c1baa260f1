//! The start and first-sample steps: the start script replaces a running agent with the one
//! just checked or uploaded (settings on its stdin), the agent sends its first sample before
//! it detaches (or, with `--once`, sends one and exits), and its exit code and one-line reason
//! are turned into what the user reads: what runs, or what failed and what to check.
//! Not here: the script itself ([`crate::remote`]).

use std::time::Duration;

use monitor_core::agent::{self, exit};

use crate::outcome::{Failure, Step};
use crate::remote;
use crate::ssh::{self, Connection, RemoteOutput};

/// sh's exit status for a command it found but could not run (`noexec`, another machine's
/// binary), and for one it did not find.
const SH_CANNOT_EXECUTE: u8 = 126;
const SH_NOT_FOUND: u8 = 127;

/// What is started, and where it sends.
#[derive(Debug)]
pub struct Start<'a> {
    pub version: &'a str,
    /// Continuous mode with this interval; `None`: `--once`.
    pub interval_secs: Option<u64>,
    pub settings_json: &'a str,
    pub settings_sha256: &'a str,
    /// The URL the agent PUTs to (for the messages).
    pub url: &'a str,
    /// The host's machine type (for the messages).
    pub machine: &'a str,
}

/// Runs the start script; on success, what was done (for the summary line).
pub async fn run(
    conn: &Connection,
    start: &Start<'_>,
    timeout: Duration,
) -> Result<Vec<String>, Failure> {
    let script = match start.interval_secs {
        Some(interval_secs) => remote::start(start.version, interval_secs, start.settings_sha256),
        None => remote::once(start.version),
    };
    let mut input = start.settings_json.as_bytes().to_vec();
    input.push(b'\n');
    let out = ssh::run_script(&conn.session, &script, Some(&input), timeout)
        .await
        .map_err(|e| Failure::new(Step::Start, format!("starting the agent: {e}")))?;
    judge(start, &out)
}

/// The start script's result as the user reads it.
fn judge(start: &Start<'_>, out: &RemoteOutput) -> Result<Vec<String>, Failure> {
    let once = start.interval_secs.is_none();
    let url = start.url;
    match out.code.and_then(|c| u8::try_from(c).ok()) {
        Some(exit::STORED) if once => Ok(vec![format!("sent one sample to {url}")]),
        Some(exit::STORED) => Ok(vec![
            format!("running, first sample sent to {url}"),
            boot_note(&out.stdout),
        ]),
        Some(exit::USAGE) => Err(Failure::new(
            Step::Start,
            format!(
                "the agent refused its command line or settings ({}); is the agent ({}) from the same release as monitor-deploy {}?",
                out.stderr,
                start.version,
                env!("CARGO_PKG_VERSION")
            ),
        )),
        Some(SH_CANNOT_EXECUTE | SH_NOT_FOUND) => Err(Failure::new(
            Step::Start,
            format!(
                "the agent cannot be run on the host ({}); check that ~/{} is not on a noexec file system and that the binary fits the machine ({})",
                out.stderr,
                agent::STATE_DIR_IN_HOME,
                start.machine
            ),
        )),
        code => Err(Failure::new(
            Step::FirstSample,
            format!(
                "the agent could not deliver its first sample to {url}: {}; check that monitord runs and that this host can reach it (firewall, <server url> in config.xml){}",
                if out.stderr.is_empty() {
                    "no reason given"
                } else {
                    &out.stderr
                },
                // Unavailable: the agent runs on, spooling, and sends once it can.
                if code == Some(exit::UNAVAILABLE) && !once {
                    format!("; {}", boot_note(&out.stdout))
                } else {
                    String::new()
                }
            ),
        )),
    }
}

/// What the start script said about coming back after a reboot.
fn boot_note(stdout: &str) -> String {
    match stdout.lines().find_map(|l| l.strip_prefix("persist=")) {
        Some("systemd") => "starts at boot (systemd unit monitor-agent.service)".into(),
        Some("user-unit") => "starts at boot (systemd user unit, lingering)".into(),
        Some("crontab") => "starts at boot (@reboot crontab line)".into(),
        _ => "WARNING: the agent will not come back after a reboot (no systemd for this user, no lingering, no crontab on the host)".into(),
    }
}
