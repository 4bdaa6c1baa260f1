//! The timer of the built-in rules (host down, and a wrong client clock: see
//! [`super::skew`]): every [`HOST_DOWN_TICK`] it asks [`Alerts::timers_due`] (from memory)
//! and only then hands [`Alerts::check_timers`] to the writer, which runs it between two
//! batches of samples (see [`crate::store::background`]). It runs on its own thread, so a
//! slow SMTP server never delays it and it never waits behind the outbox.
//!
//! Not here: the rule itself (see [`super::machine::check_down`]) or the mail it writes.

use std::sync::Arc;
use std::time::Duration;

use super::evaluate::Alerts;
use crate::periodic::Periodic;
use crate::store::StoreError;
use crate::store::writer::WriterHandle;

/// How often the host-down check runs.
pub const HOST_DOWN_TICK: Duration = Duration::from_secs(5);

/// Starts the timer; its checks are written by `writer`.
pub fn start(alerts: Arc<Alerts>, writer: WriterHandle) -> std::io::Result<Periodic> {
    Periodic::start("host-down", HOST_DOWN_TICK, move || check(&writer, &alerts))
}

fn check(writer: &WriterHandle, alerts: &Arc<Alerts>) {
    if !alerts.timers_due() {
        return;
    }
    let checking = alerts.clone();
    match writer.run(move |conn| Ok(checking.check_timers(conn)?)) {
        Ok(()) => alerts.timers_committed(),
        Err(StoreError::WriterStopped) => {}
        Err(e) => tracing::warn!("host-down check failed, trying again shortly: {e}"),
    }
}
