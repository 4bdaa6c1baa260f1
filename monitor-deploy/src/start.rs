//! The start and first-sample steps: the start script replaces a running agent with the one
//! just checked or uploaded (settings on its stdin), the agent sends its first sample before
//! it detaches (or, with `--once`, sends one and exits), and its exit code and one-line reason
//! are turned into what the user reads: what runs, or what failed and what to check.
//! Not here: the script itself ([`crate::remote`]).

use std::time::Duration;

use monitor_core::agent::{self, exit};

use crate::diagnose::Facts;
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
    /// The client's name, as the agent sends it and monitord looks it up.
    pub client: &'a str,
    pub version: &'a str,
    /// Continuous mode with this interval; `None`: `--once`.
    pub interval_secs: Option<u64>,
    pub settings_json: &'a str,
    pub settings_sha256: &'a str,
    /// The URL the agent PUTs to (for the messages).
    pub url: &'a str,
    /// The host's machine type (for the messages).
    pub machine: &'a str,
    /// The login (for the messages).
    pub user: &'a str,
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
    if out.code == Some(i32::from(SH_CANNOT_EXECUTE)) {
        if let Some(message) = cannot_execute(conn, start, timeout).await {
            return Err(Failure::new(Step::Start, message));
        }
    }
    judge(start, &out)
}

/// Why sh could not execute the agent, when the host's mounts show it (`noexec`).
async fn cannot_execute(conn: &Connection, start: &Start<'_>, timeout: Duration) -> Option<String> {
    let in_home = format!("{}/{}", agent::STATE_DIR_IN_HOME, start.version);
    Facts::gather(conn, start.version, false, timeout)
        .await?
        .exec_failure(&format!("~/{in_home}"), start.user)
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
        Some(exit::FAILED) => match agent::parse_refusal(&out.stderr) {
            Some((status, reason)) => Err(Failure::new(
                Step::FirstSample,
                format!(
                    "monitord at {url} refused the first sample ({reason}); {}",
                    refusal_advice(start, status, reason)
                ),
            )),
            None => Err(not_delivered(start, out)),
        },
        _ => Err(not_delivered(start, out)),
    }
}

/// The first sample did not reach monitord, or the agent failed before sending it.
fn not_delivered(start: &Start<'_>, out: &RemoteOutput) -> Failure {
    let unavailable = out.code == Some(i32::from(exit::UNAVAILABLE));
    Failure::new(
        Step::FirstSample,
        format!(
            "the agent could not deliver its first sample to {}: {}; check that monitord runs and that this host can reach it (firewall, <server url> in config.xml){}",
            start.url,
            if out.stderr.is_empty() {
                "no reason given"
            } else {
                &out.stderr
            },
            // Unavailable: the agent runs on, spooling, and sends once it can.
            if unavailable && start.interval_secs.is_some() {
                format!("; {}", boot_note(&out.stdout))
            } else {
                String::new()
            }
        ),
    )
}

/// What to check when monitord reached and refused the first sample, by the status the agent
/// reported: monitord answered, so the network is not the problem.
fn refusal_advice(start: &Start<'_>, status: u16, reason: &str) -> String {
    let client = start.client;
    match status {
        401 => format!(
            "the agent's keys do not match monitord's: check that monitor-deploy and monitord read the same master key (<server key-file> in each one's config.xml; compare `sha256sum` of both files) and that monitord's config.xml names this client `{client}`"
        ),
        404 => format!(
            "monitord does not know a client named `{client}`: add it to config.xml on the monitord host (or fix its name there), run `monitord check-config`, then `systemctl reload monitord`"
        ),
        422 if reason.contains("ts is") => "the host's clock is off: compare `date -u` there with monitord's host, and check time sync on the host (`timedatectl status`: NTP service active, clock synchronized)".to_owned(),
        422 => format!(
            "the agent measured values monitord calls impossible: check the reason above, and that the agent ({}) is from the same release as monitord",
            start.version
        ),
        400 => format!(
            "monitord cannot read the agent's sample: is the agent ({}) from the same release as monitord?",
            start.version
        ),
        _ => "resending cannot fix it: check monitord's log (`journalctl -u monitord`) for why".to_owned(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(stderr: &str) -> Failure {
        let start = Start {
            client: "web1",
            version: "0.1.0",
            interval_secs: Some(10),
            settings_json: "{}",
            settings_sha256: "feed",
            url: "http://10.0.0.5:8750",
            machine: "x86_64",
            user: "u",
        };
        let out = RemoteOutput {
            code: Some(i32::from(exit::FAILED)),
            stdout: String::new(),
            stderr: stderr.to_owned(),
        };
        judge(&start, &out).unwrap_err()
    }

    /// monitord answered: the advice is about what its status means, never the network.
    #[test]
    fn a_refused_first_sample_gets_the_advice_for_its_status() {
        let line = |status, detail| {
            format!(
                "monitor-agent: {}",
                agent::refusal("the first sample", &agent::http_reason(status, detail))
            )
        };
        for (status, detail, advice) in [
            (401, "tag mismatch", "same master key"),
            (
                404,
                "unknown client",
                "add it to config.xml on the monitord host",
            ),
            (
                422,
                "ts is 1200 s ahead of the server clock (at most 600 s allowed): check the client's clock",
                "timedatectl",
            ),
            (422, "memory used is above total", "impossible"),
            (400, "not a valid sample", "same release"),
        ] {
            let failure = refused(&line(status, detail));
            assert_eq!(failure.step, Step::FirstSample);
            assert!(
                failure.message.contains(advice),
                "{status}: {}",
                failure.message
            );
            assert!(failure.message.contains(detail), "{}", failure.message);
            assert!(!failure.message.contains("firewall"), "{}", failure.message);
        }
        // Not a refusal: the agent failed otherwise, and the old advice stands.
        let failure = refused("monitor-agent: collecting the sample: no /proc");
        assert!(failure.message.contains("firewall"), "{}", failure.message);
    }
}
