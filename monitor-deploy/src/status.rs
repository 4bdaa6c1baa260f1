//! The `--status` and `--stop` actions on one host: run the script and turn what it printed
//! into the line the user reads. Not here: the scripts themselves ([`crate::remote`]).

use std::time::Duration;

use monitor_core::agent::file;
use monitor_core::config::Client;

use crate::outcome::{Failure, Step};
use crate::remote;
use crate::ssh::{self, Connection};
use monitor_deploy::last_send::LastSend;

/// Stops the agent and removes its boot hooks.
pub async fn stop(conn: &Connection, timeout: Duration) -> Result<(Step, String), Failure> {
    let out = ssh::run_script(&conn.session, &remote::stop(), None, timeout)
        .await
        .map_err(|e| Failure::new(Step::Stop, e))?;
    let stopped = out.stdout.lines().find_map(|l| l.strip_prefix("stopped="));
    let mut message = match stopped {
        Some(pids) => format!("stopped the agent (pid {pids})"),
        None => "no agent was running".to_owned(),
    };
    for how in out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("unpersisted="))
    {
        message.push_str(&format!(", removed its {how} boot hook"));
    }
    Ok((Step::Stop, message))
}

/// Whether the agent runs and delivers; a failure when it does not.
pub async fn status(
    conn: &Connection,
    client: &Client,
    timeout: Duration,
) -> Result<(Step, String), Failure> {
    let out = ssh::run_script(&conn.session, &remote::status(), None, timeout)
        .await
        .map_err(|e| Failure::new(Step::Status, e))?;
    let field = |key: &str| {
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    // An agent a boot unit started logs to the journal, not to agent.log.
    let journal = field("journal");
    let log = match (journal, field("log")) {
        (Some(j), _) => format!("; it logs to the journal: {j}"),
        (None, Some(l)) => format!("; last log: {l}"),
        (None, None) => String::new(),
    };
    let pending = field("pending")
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(0);
    let waiting = if pending > 0 {
        format!(", {pending} bytes of samples NOT YET DELIVERED")
    } else {
        ", nothing waiting to be sent".to_owned()
    };
    let Some(pid) = field("pid") else {
        return Err(Failure::new(
            Step::Status,
            format!("the agent is not running{log}; start it with monitor-deploy NAME"),
        ));
    };
    // The interval the agent runs with; config.xml's when its command line does not say.
    let interval_secs = field("cmd")
        .and_then(|cmd| {
            let mut words = cmd.split_whitespace();
            words.find(|w| *w == "--interval")?;
            words.next()?.parse::<u64>().ok()
        })
        .unwrap_or(client.interval.as_secs())
        .max(1);
    let send = LastSend::judge(
        field("last_sent").and_then(|v| v.parse().ok()),
        field("now").and_then(|v| v.parse().ok()),
        interval_secs,
        pending,
    );
    let message = format!(
        "running, pid {pid}, version {}, {send}{waiting}{log}",
        field("version").unwrap_or("unknown")
    );
    if send.is_delivering() {
        Ok((Step::Status, message))
    } else {
        Err(Failure::new(
            Step::Status,
            format!(
                "{message}; the agent is NOT DELIVERING: check that monitord runs and that this host reaches <server url> ({} on the host says why)",
                journal.unwrap_or(file::LOG)
            ),
        ))
    }
}
