//! The timer of the built-in rules (host down, and a wrong client clock: see
//! [`super::skew`]): every [`HOST_DOWN_TICK`] it asks [`Alerts::timers_due`] (from memory)
//! and only then takes the database's write lock for [`Alerts::check_timers`], in a
//! transaction of its own. It runs on its own thread and connection, so a slow SMTP
//! server never delays it and it never waits behind the outbox.
//!
//! Not here: the rule itself (see [`super::machine::check_down`]) or the mail it writes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;

use super::evaluate::Alerts;
use crate::periodic::Periodic;

/// How often the host-down check runs.
pub const HOST_DOWN_TICK: Duration = Duration::from_secs(5);

/// Starts the timer over the database at `db_path` (already migrated by the writer).
pub fn start(alerts: Arc<Alerts>, db_path: PathBuf) -> std::io::Result<Periodic> {
    let mut conn: Option<SqliteConnection> = None;
    Periodic::start("host-down", HOST_DOWN_TICK, move || {
        if conn.is_none() {
            match crate::store::open_existing(&db_path) {
                Ok(opened) => conn = Some(opened),
                Err(e) => {
                    tracing::error!("the host-down check cannot open the database, retrying: {e}");
                    return;
                }
            }
        }
        if let Some(conn) = conn.as_mut() {
            check(conn, &alerts);
        }
    })
}

fn check(conn: &mut SqliteConnection, alerts: &Alerts) {
    if alerts.timers_due() {
        let turn = crate::store::background_turn();
        let checked = conn.immediate_transaction(|conn| alerts.check_timers(conn));
        drop(turn);
        match checked {
            Ok(()) => alerts.timers_committed(),
            Err(e) => tracing::warn!("host-down check failed, trying again shortly: {e}"),
        }
    }
}
