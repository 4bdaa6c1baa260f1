//! `--log-journal`: besides the terminal output, one journal entry per host as it finishes
//! and one for the run, so a deploy run from a timer or by hand leaves a record next to
//! monitord's. Fields are written without tracing-journald's `F_` prefix: `HOST`, `STEP`,
//! `RESULT` (`ok` or `failed`), `DURATION_MS`, found with
//! `journalctl -t monitor-deploy HOST=web1`. Without the flag no subscriber is installed and
//! these events cost nothing. Not here: what the user sees on stdout (see [`crate::report`]).

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::Action;
use crate::deploy::Outcome;

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
pub fn host_done(outcome: &Outcome) {
    let duration_ms = outcome.duration.as_millis() as u64;
    let (host, step) = (&outcome.host, outcome.step);
    if outcome.ok {
        tracing::info!(host = %host, step = %step, result = "ok", duration_ms,
            "{host}: {}", outcome.message);
    } else {
        tracing::error!(host = %host, step = %step, result = "failed", duration_ms,
            "{host}: failed at {step}: {}", outcome.message);
    }
}

/// The run as a whole.
pub fn run_done(outcomes: &[Outcome], action: Action) {
    let failed = outcomes.iter().filter(|o| !o.ok).count();
    let what = match action {
        Action::Deploy => "deploy",
        Action::Once => "--once",
        Action::Stop => "--stop",
        Action::Status => "--status",
    };
    tracing::info!(
        hosts = outcomes.len(),
        failed,
        "{what}: {} of {} hosts ok, {failed} failed",
        outcomes.len() - failed,
        outcomes.len()
    );
}
