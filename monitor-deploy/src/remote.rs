//! The POSIX `sh` scripts monitor-deploy runs on a host (`remote/*.sh`, checked by
//! `shellcheck`), and the parsing of what they print.
//!
//! Each step is one round trip over the master: the probe learns everything the upload and the
//! start need at once (machine type, the agents already there with their hashes, whether the
//! running agent is the one the last deploy started, the address the host sees us come from,
//! and the server's address resolved on the host by `getent`). A script is sent as variables
//! followed by its files: the names of the agent's state directory and its exit codes from
//! [`monitor_core::agent`] (so they are spelled once), then this run's values, each quoted for
//! sh; the files themselves hold no value of their own. Not here: running them.

use monitor_core::agent::{self, exit, file};

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

/// What the last deploy started, as the probe found it still running.
#[derive(Debug, PartialEq, Eq)]
pub struct Deployed {
    pub version: String,
    pub interval_secs: u64,
    pub settings_sha256: String,
}

/// What [`probe`] printed.
#[derive(Debug, Default)]
pub struct Probe {
    pub machine: String,
    /// `$HOME` on the host, where the agent's state directory is.
    pub home: Option<String>,
    /// First field of `$SSH_CONNECTION`: our address as the host sees it.
    pub client_addr: Option<String>,
    /// `(sha256, path)` of each agent already on the host.
    pub agents: Vec<(String, String)>,
    /// Addresses `getent ahosts` gave for the server's host name.
    pub resolved: Vec<String>,
    /// Pid of the live agent `agent.pid` names.
    pub running: Option<String>,
    /// That agent is the one the last deploy started, with this version, interval and settings.
    pub deployed: Option<Deployed>,
    /// It has samples it could not deliver yet: then `last_sent` (unix ms) and the host's `now`
    /// (unix s) tell whether it delivers at all.
    pub spooled: bool,
    pub last_sent: Option<i64>,
    pub now: Option<i64>,
}

impl Probe {
    pub fn parse(stdout: &str) -> Probe {
        let mut probe = Probe::default();
        for line in stdout.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            match key {
                "machine" => probe.machine = value.trim().to_owned(),
                // As it is: a home may end in a space.
                "home" => probe.home = Some(value.to_owned()).filter(|h| !h.is_empty()),
                "conn" => {
                    probe.client_addr = value.split_whitespace().next().map(str::to_owned);
                }
                "have" => {
                    if let Some((hash, path)) = value.split_once(' ') {
                        probe.agents.push((hash.to_owned(), path.to_owned()));
                    }
                }
                "running" => probe.running = Some(value.trim().to_owned()),
                "deployed" => {
                    let mut words = value.split_whitespace();
                    if let (Some(version), Some(Ok(interval_secs)), Some(sha), None) = (
                        words.next(),
                        words.next().map(str::parse),
                        words.next(),
                        words.next(),
                    ) {
                        probe.deployed = Some(Deployed {
                            version: version.to_owned(),
                            interval_secs,
                            settings_sha256: sha.to_owned(),
                        });
                    }
                }
                "spooled" => probe.spooled = true,
                "last_sent" => probe.last_sent = value.trim().parse().ok(),
                "now" => probe.now = value.trim().parse().ok(),
                "addr" if !probe.resolved.iter().any(|a| a == value) => {
                    probe.resolved.push(value.to_owned());
                }
                _ => {}
            }
        }
        probe
    }

    /// The pid of an agent that the last deploy started with `version`, `interval_secs` and
    /// settings whose hash is `settings_sha256`, and that is delivering (nothing spooled, or a
    /// successful send recently enough for `--status` to call it delivering): then a deploy
    /// has nothing to do. Otherwise it is restarted, so its first sample tells whether
    /// monitord is reachable now.
    pub fn running_unchanged(
        &self,
        version: &str,
        interval_secs: u64,
        settings_sha256: &str,
    ) -> Option<&str> {
        let wanted = Deployed {
            version: version.to_owned(),
            interval_secs,
            settings_sha256: settings_sha256.to_owned(),
        };
        let delivering = !self.spooled
            || crate::last_send::LastSend::judge(self.last_sent, self.now, interval_secs, 1)
                .is_delivering();
        (self.deployed.as_ref() == Some(&wanted) && delivering)
            .then_some(self.running.as_deref())
            .flatten()
    }

    /// True when the agent of `version` on the host has `sha256`.
    pub fn has_agent(&self, version: &str, sha256: &str) -> bool {
        let suffix = format!("/{version}/{}", agent::BINARY);
        self.agents
            .iter()
            .any(|(hash, path)| hash == sha256 && path.ends_with(&suffix))
    }
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
