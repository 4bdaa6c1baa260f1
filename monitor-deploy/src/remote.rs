//! The POSIX `sh` scripts monitor-deploy runs on a host (`remote/*.sh`, checked by
//! `shellcheck`), and the parsing of what they print (the probe's in the library's `probe`
//! module, re-exported here).
//!
//! Each step is one round trip over the master: the probe learns everything the upload and the
//! start need at once (machine type, the agents already there with their hashes, whether the
//! running agent is the one the last deploy started, the address the host sees us come from,
//! and the server's address resolved on the host by `getent`). A script is sent as variables
//! followed by its files: the names of the agent's state directory and its exit codes from
//! [`monitor_core::agent`] (so they are spelled once), then this run's values, each quoted for
//! sh; the files themselves hold no value of their own. Not here: running them.

use monitor_core::agent::{self, exit, file};

pub use monitor_deploy::probe::Probe;

const ALIVE_SH: &str = include_str!("remote/alive.sh");
const STOP_AGENT_SH: &str = include_str!("remote/stop_agent.sh");
const PERSIST_SH: &str = include_str!("remote/persist.sh");
const UNPERSIST_SH: &str = include_str!("remote/unpersist.sh");
const PROBE_SH: &str = include_str!("remote/probe.sh");
const START_SH: &str = include_str!("remote/start.sh");
const ONCE_SH: &str = include_str!("remote/once.sh");
const STOP_SH: &str = include_str!("remote/stop.sh");
const STATUS_SH: &str = include_str!("remote/status.sh");
const DIAGNOSE_SH: &str = include_str!("remote/diagnose.sh");

/// The agent contract as shell variables: `(name, value)`, set at the top of every script that
/// mentions the name.
fn contract() -> [(&'static str, String); 11] {
    [
        ("agent_binary", agent::BINARY.to_owned()),
        ("pid_file", file::PID.to_owned()),
        ("deployed_file", file::DEPLOYED.to_owned()),
        ("settings_file", file::SETTINGS.to_owned()),
        ("last_sent_file", file::LAST_SENT.to_owned()),
        ("log_file", file::LOG.to_owned()),
        ("spool_file", file::SPOOL.to_owned()),
        ("spool_head_file", file::SPOOL_HEAD.to_owned()),
        ("binary_sha256_file", file::BINARY_SHA256.to_owned()),
        ("exit_stored", exit::STORED.to_string()),
        ("exit_unavailable", exit::UNAVAILABLE.to_string()),
    ]
}

/// `parts` after their variables: `$base` (the agent's state directory under the host's
/// `$HOME`), the contract's variables that `parts` use (shellcheck would call the others
/// unused), and `values`.
fn script(values: &[(&str, &str)], parts: &[&str]) -> String {
    let body = parts.concat();
    let mut text = format!("base=\"$HOME\"/{}\n", quote(agent::STATE_DIR_IN_HOME));
    for (name, value) in contract() {
        if body.contains(&format!("${name}")) || body.contains(&format!("${{{name}")) {
            text.push_str(&format!("{name}={}\n", quote(&value)));
        }
    }
    for (name, value) in values {
        text.push_str(&format!("{name}={}\n", quote(value)));
    }
    text.push_str(&body);
    text
}

/// Everything the deploy needs to know about a host, in one round trip (see `probe.sh`);
/// `resolve` is monitord's host name when `<server url>` names one.
pub fn probe(resolve: Option<&str>) -> String {
    script(&[("resolve", resolve.unwrap_or(""))], &[ALIVE_SH, PROBE_SH])
}

/// Replaces a running agent with `version` in continuous mode (settings, whose hash is
/// `settings_sha256`, on stdin); once its first sample is stored, makes it come back after a
/// reboot, and records in `deployed` what runs for the next [`probe`] (see `start.sh`).
pub fn start(version: &str, interval_secs: u64, settings_sha256: &str) -> String {
    script(
        &[
            ("version", version),
            ("interval", &interval_secs.to_string()),
            ("settings_sha256", settings_sha256),
        ],
        &[ALIVE_SH, STOP_AGENT_SH, PERSIST_SH, UNPERSIST_SH, START_SH],
    )
}

/// Runs `version` once in the foreground (settings on stdin); a running agent is left alone.
pub fn once(version: &str) -> String {
    script(&[("version", version)], &[ONCE_SH])
}

/// Stops the agent and removes its boot hooks.
pub fn stop() -> String {
    script(&[], &[ALIVE_SH, STOP_AGENT_SH, UNPERSIST_SH, STOP_SH])
}

/// Whether the agent runs and delivers, and the last line of its log (see `status.sh`).
pub fn status() -> String {
    script(&[], &[ALIVE_SH, STATUS_SH])
}

/// Facts about the directory of agent `version` on the host after the agent could not be
/// written there (`write_test`: also try mkdir and creating a file) or run from there: see
/// `diagnose.sh`, and [`crate::diagnose`] for what they mean.
pub fn diagnose(version: &str, write_test: bool) -> String {
    script(
        &[
            ("version", version),
            ("write_test", if write_test { "1" } else { "0" }),
        ],
        &[DIAGNOSE_SH],
    )
}

/// Single-quotes `word` for sh (when it holds anything but plain characters).
fn quote(word: &str) -> String {
    shell_escape::unix::escape(word.into()).into_owned()
}

#[cfg(test)]
mod tests;
