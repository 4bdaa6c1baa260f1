//! The contract between monitor-agent and whoever runs it (monitor-deploy, an admin's own unit
//! or script): the agent's exit codes, the names of the files in its state directory, and the
//! line it prints when monitord refuses a sample. The agent writes by these names and codes,
//! and monitor-deploy reads by them (in Rust, and in the shell scripts it runs on a host, which
//! get them as variables), so each is spelled once, here.
//!
//! Not here: what the files hold beyond their names (the agent's `state` and `spool` modules),
//! or the settings JSON ([`crate::settings`]).

/// The agent's state directory, relative to the home of the user it runs as; the per-version
/// directories monitor-deploy uploads to are inside it (`<dir>/<version>/monitor-agent`).
pub const STATE_DIR_IN_HOME: &str = ".cache/monitor-agent";

/// The agent binary's file name, which is also its process name (`/proc/PID/comm`).
pub const BINARY: &str = "monitor-agent";

/// Where `scripts/build-agent` leaves the static agent for `machine` (`x86_64`, `aarch64`),
/// relative to a Cargo target directory: `<machine>-unknown-linux-gnu/agent/monitor-agent`.
/// monitor-deploy looks there beside itself; the tests and benchmarks look there first.
pub fn built_under_target(machine: &str) -> String {
    format!("{machine}-unknown-linux-gnu/agent/{BINARY}")
}

/// The files of the state directory.
pub mod file {
    /// The settings last received on stdin (mode 0600: it holds the keys).
    pub const SETTINGS: &str = "settings.json";
    /// Pid of the continuous agent, detached or started by a boot hook.
    pub const PID: &str = "agent.pid";
    /// Unix milliseconds when monitord last stored a sample from this agent.
    pub const LAST_SENT: &str = "last_sent";
    /// Unsent samples, one JSON line each.
    pub const SPOOL: &str = "spool";
    /// Byte offset of the oldest unsent line in [`SPOOL`].
    pub const SPOOL_HEAD: &str = "spool.head";
    /// The log of an agent whose stderr leads nowhere (detached, or started by `@reboot`).
    pub const LOG: &str = "agent.log";
    /// [`LOG`] once it outgrew its bound (the one before is dropped).
    pub const LOG_ROTATED: &str = "agent.log.1";
    /// Written by monitor-deploy, not the agent: `pid version interval settings-sha256` of the
    /// agent the last deploy started, so the next deploy can leave an unchanged one alone.
    pub const DEPLOYED: &str = "deployed";
    /// Written by monitor-deploy next to each uploaded binary: its SHA-256 in hex, so a probe
    /// need not hash the binary again.
    pub const BINARY_SHA256: &str = "monitor-agent.sha256";
}

/// Exit status of `monitor-agent --once` and `--detach` (the first sample's fate).
pub mod exit {
    /// monitord stored the sample.
    pub const STORED: u8 = 0;
    /// monitord refused the sample (400/401/404/413/422: stderr names the status with
    /// [`refusal`](super::refusal)), or the agent itself failed.
    pub const FAILED: u8 = 1;
    /// Bad command line or settings.
    pub const USAGE: u8 = 2;
    /// monitord could not be reached or was unavailable; with `--detach` the agent keeps the
    /// sample and retries in the background.
    pub const UNAVAILABLE: u8 = 3;
}

/// How the agent names monitord's answer in its one-line reasons: `HTTP 422: <detail>`.
pub fn http_reason(status: u16, detail: &str) -> String {
    if detail.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {detail}")
    }
}

/// The line (after `monitor-agent: `) the agent prints when monitord refused `what` ("the
/// sample", "the first sample") with `reason` from [`http_reason`].
pub fn refusal(what: &str, reason: &str) -> String {
    format!("{REFUSED} {what}: {reason}")
}

const REFUSED: &str = "monitord refused";

/// A refusal the agent reported in `stderr` (see [`refusal`]): the HTTP status, so whoever ran
/// it can say what to check for that status, and the reason from [`http_reason`] on
/// (`HTTP 422: ts is …`).
pub fn parse_refusal(stderr: &str) -> Option<(u16, &str)> {
    let after = &stderr[stderr.find(REFUSED)? + REFUSED.len()..];
    let reason = &after[after.find(": HTTP ")? + ": ".len()..];
    let digits = reason["HTTP ".len()..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?;
    let status = (digits.len() == 3).then(|| digits.parse().ok()).flatten()?;
    Some((status, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_its_status_to_whoever_reads_it() {
        let line = refusal(
            "the first sample",
            &http_reason(422, "ts is 900 s ahead of the server clock"),
        );
        assert_eq!(
            line,
            "monitord refused the first sample: HTTP 422: ts is 900 s ahead of the server clock"
        );
        assert_eq!(
            parse_refusal(&format!("monitor-agent: {line}")),
            Some((422, "HTTP 422: ts is 900 s ahead of the server clock"))
        );
        assert_eq!(
            parse_refusal(&refusal("the sample", &http_reason(401, ""))),
            Some((401, "HTTP 401"))
        );
        // Not a refusal: unavailable, or another failure that happens to mention HTTP.
        assert_eq!(
            parse_refusal("monitor-agent: monitord unavailable: HTTP 503: store is busy"),
            None
        );
        assert_eq!(parse_refusal("monitor-agent: cannot read HTTP 4"), None);
        assert_eq!(
            parse_refusal("monitord refused the sample: HTTP 4041"),
            None
        );
    }
}
