//! `--log-journal`: besides the terminal output, one journal entry per host as it finishes
//! and one for the run, so a deploy run from a timer or by hand leaves a record next to
//! monitord's. The MESSAGE alone says what happened (host, what was done or which step failed,
//! how long, the cause and what to check), as `journalctl` shows nothing else by default; the
//! fields are for filtering, written without tracing-journald's `F_` prefix: `HOST`, `STEP`,
//! `RESULT` (`ok` or `failed`), `DURATION_MS`, found with
//! `journalctl -t monitor-deploy HOST=web1`. Without the flag no subscriber is installed and
//! these events cost nothing. Not here: what the user sees on stdout (see [`crate::report`]).

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::outcome::{Action, HostResult};

/// Sends the events below to the journal; a journal that cannot be reached is reported on
/// stderr and the run goes on without it.
pub fn init() {
    match tracing_journald::layer() {
        Ok(layer) => tracing_subscriber::registry()
            .with(layer.with_field_prefix(None))
            .init(),
        Err(e) => eprintln!(
            "monitor-deploy: --log-journal: cannot reach the journal ({e}); logging to the terminal only"
        ),
    }
}

/// One host finished (success or failure).
pub fn host_done(result: &HostResult, action: Action) {
    let duration_ms = result.duration.as_millis() as u64;
    let (host, step) = (&result.host, result.step);
    let message = host_message(result, action);
    if result.ok {
        tracing::info!(host = %host, step = %step, result = "ok", duration_ms, "{message}");
    } else {
        tracing::error!(host = %host, step = %step, result = "failed", duration_ms, "{message}");
    }
}

/// The run as a whole.
pub fn run_done(results: &[HostResult], action: Action) {
    let failed = results.iter().filter(|r| !r.ok).count();
    let message = run_message(results, action);
    tracing::info!(hosts = results.len(), failed, "{message}");
}

/// The entry's MESSAGE for one host, which is what `journalctl` shows: it must say what
/// happened without the fields, e.g. `web1: deployed in 1.2 s: uploaded agent 0.1.0 (1417 KiB),
/// running, …` or `web1: deploy failed at upload after 0.8 s: <cause>; <what to check>`.
fn host_message(result: &HostResult, action: Action) -> String {
    let (host, step, secs) = (&result.host, result.step, result.duration.as_secs_f64());
    if result.ok {
        let done = match action {
            Action::Deploy => "deployed",
            Action::Once => "sent one sample",
            Action::Stop => "stopped",
            Action::Status => "agent delivering",
        };
        format!("{host}: {done} in {secs:.1} s: {}", result.message)
    } else {
        format!(
            "{host}: {} failed at {step} after {secs:.1} s: {}",
            action_name(action),
            result.message
        )
    }
}

/// At most this many failed hosts are named in the run's entry.
const NAMED_FAILURES: usize = 10;

/// The run's MESSAGE, naming the failed hosts with their step: `deploy: 18 of 20 hosts ok,
/// 2 failed: web3 (connect), db1 (first sample)`.
fn run_message(results: &[HostResult], action: Action) -> String {
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.ok)
        .map(|r| format!("{} ({})", r.host, r.step))
        .collect();
    let mut message = format!(
        "{}: {} of {} hosts ok, {} failed",
        action_name(action),
        results.len() - failed.len(),
        results.len(),
        failed.len()
    );
    if !failed.is_empty() {
        message.push_str(": ");
        message.push_str(&failed[..failed.len().min(NAMED_FAILURES)].join(", "));
        if failed.len() > NAMED_FAILURES {
            message.push_str(&format!(" and {} more", failed.len() - NAMED_FAILURES));
        }
    }
    message
}

fn action_name(action: Action) -> &'static str {
    match action {
        Action::Deploy => "deploy",
        Action::Once => "--once",
        Action::Stop => "--stop",
        Action::Status => "--status",
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::outcome::Step;

    fn result(host: &str, ok: bool, step: Step, message: &str) -> HostResult {
        HostResult {
            host: host.to_owned(),
            step,
            message: message.to_owned(),
            ok,
            duration: Duration::from_millis(1234),
        }
    }

    /// journalctl shows MESSAGE only: it names the host, what was done or failed where, how
    /// long it took, and the cause with what to check.
    #[test]
    fn messages_say_what_happened_without_the_fields() {
        let ok = result(
            "web1",
            true,
            Step::FirstSample,
            "uploaded agent 0.1.0 (1417 KiB), running, first sample sent to http://10.0.0.5:8750",
        );
        assert_eq!(
            host_message(&ok, Action::Deploy),
            "web1: deployed in 1.2 s: uploaded agent 0.1.0 (1417 KiB), running, first sample sent to http://10.0.0.5:8750"
        );
        let failed = result(
            "db1",
            false,
            Step::Upload,
            "writing /home/m/.cache/monitor-agent/0.1.0/x: No space left on device; check the disk",
        );
        assert_eq!(
            host_message(&failed, Action::Deploy),
            "db1: deploy failed at upload after 1.2 s: writing /home/m/.cache/monitor-agent/0.1.0/x: No space left on device; check the disk"
        );
        let stale = result(
            "web2",
            false,
            Step::Status,
            "running, pid 7, …; NOT DELIVERING",
        );
        assert!(
            host_message(&stale, Action::Status).starts_with("web2: --status failed at status")
        );

        let mut run = vec![ok, failed];
        assert_eq!(
            run_message(&run, Action::Deploy),
            "deploy: 1 of 2 hosts ok, 1 failed: db1 (upload)"
        );
        for i in 0..11 {
            run.push(result(&format!("h{i}"), false, Step::Connect, "refused"));
        }
        let many = run_message(&run, Action::Deploy);
        assert!(
            many.starts_with("deploy: 1 of 13 hosts ok, 12 failed: db1 (upload), h0 (connect),")
                && many.ends_with("h8 (connect) and 2 more"),
            "{many}"
        );
    }
}
