//! `--log-journal`: besides the terminal output, one journal entry per host as it finishes
//! and one for the run, so a deploy run from a timer or by hand leaves a record next to
//! monitord's. Fields are written without tracing-journald's `F_` prefix: `HOST`, `STEP`,
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
pub fn host_done(result: &HostResult) {
    let duration_ms = result.duration.as_millis() as u64;
    let (host, step) = (&result.host, result.step);
    if result.ok {
        tracing::info!(host = %host, step = %step, result = "ok", duration_ms,
            "{host}: {}", result.message);
    } else {
        tracing::error!(host = %host, step = %step, result = "failed", duration_ms,
            "{host}: failed at {step}: {}", result.message);
    }
}

/// The run as a whole.
pub fn run_done(results: &[HostResult], action: Action) {
    let failed = results.iter().filter(|r| !r.ok).count();
    let what = match action {
        Action::Deploy => "deploy",
        Action::Once => "--once",
        Action::Stop => "--stop",
        Action::Status => "--status",
    };
    tracing::info!(
        hosts = results.len(),
        failed,
        "{what}: {} of {} hosts ok, {failed} failed",
        results.len() - failed,
        results.len()
    );
}
