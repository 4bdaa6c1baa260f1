//! The outbox sender: delivers alert mail over SMTP.
//!
//! It wakes when a commit wrote outbox rows (so a mail leaves within moments of the sample
//! that caused it), when the next retry is due, and at least every [`WAKE_EVERY`]. Each row
//! is tried on its own: a 5xx for one recipient (or for the message) marks
//! that row failed (logged once) and the others still go; a temporary failure retries with
//! backoff, 5 s doubling to 10 min, until the row is two days old. A server that refuses the
//! session or our sender fails every row alike: that is `<smtp>` being wrong, so the rows wait
//! and retry like a temporary failure, the advice is logged once per run of such failures,
//! and a reload of config.xml makes every waiting row due at once. A row is marked sent only
//! after the server accepted it, so a delivery cut off by SIGTERM or a crash is sent again
//! after a restart, with the same Message-ID.
//!
//! The thread has its own single-threaded runtime and its own database connection: its few
//! writes never wait behind HTTP work, and diesel's blocking calls never stall actix.
//!
//! Not here: the host-down timer (see [`super::timer`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use diesel::prelude::*;
use tokio::sync::Notify;

use super::evaluate::Alerts;
use super::smtp::{DeliveryError, Outgoing, Session, from_address};
use super::tables::{self, OutboxRow};
use crate::clock::Clock;
use crate::state::Snapshot;

/// The longest the sender sleeps: it looks for a reload (and rows due) at least this often.
const WAKE_EVERY: Duration = Duration::from_secs(5);
/// The first retry delay; it doubles per attempt up to [`RETRY_MAX`].
pub const RETRY_FIRST: Duration = Duration::from_secs(5);
pub const RETRY_MAX: Duration = Duration::from_secs(600);
/// Temporary failures are retried this long before the row is given up.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(2 * 86_400);
/// Delivered and failed rows are kept this long for `monitord alerts`.
const KEEP_DONE: Duration = Duration::from_secs(30 * 86_400);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Attempts to record a delivery's outcome (each waits up to busy_timeout for the lock).
const RECORD_TRIES: u32 = 5;
/// Rows taken per pass; the pass repeats while rows are due, at most [`BATCHES_PER_WAKE`]
/// times before the loop sleeps.
const BATCH: i64 = 100;
const BATCHES_PER_WAKE: usize = 10;

/// The running sender thread.
#[derive(Debug)]
pub struct OutboxSender {
    stop: Arc<Notify>,
    thread: JoinHandle<()>,
}

impl OutboxSender {
    /// Starts the thread over the database at `db_path` (already migrated by the writer).
    pub fn start(alerts: Arc<Alerts>, db_path: PathBuf) -> std::io::Result<OutboxSender> {
        let stop = Arc::new(Notify::new());
        let stop_rx = stop.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("outbox".into())
            .spawn(move || runtime.block_on(run(alerts, db_path, stop_rx)))?;
        Ok(OutboxSender { stop, thread })
    }

    /// Stops at the next await point; a delivery in flight is abandoned and stays pending.
    pub fn shutdown(self) {
        self.stop.notify_one();
        if self.thread.join().is_err() {
            tracing::error!("the outbox sender thread panicked");
        }
    }
}

/// What one pass of the sender works with.
struct Pass<'a> {
    conn: &'a mut SqliteConnection,
    alerts: &'a Alerts,
    clock: &'a Clock,
}

async fn run(alerts: Arc<Alerts>, db_path: PathBuf, stop: Arc<Notify>) {
    let mut conn = loop {
        match crate::store::open_existing(&db_path) {
            Ok(conn) => break conn,
            Err(e) => {
                tracing::error!("the outbox sender cannot open the database, retrying in 5 s: {e}");
                tokio::select! {
                    () = stop.notified() => return,
                    () = tokio::time::sleep(RETRY_FIRST) => {}
                }
            }
        }
    };
    super::smtp::prepare_tls(&alerts.snapshot().config.smtp);
    let clock = alerts.clock().clone();
    let mut next_prune = tokio::time::Instant::now();
    let mut health = MailHealth::default();
    loop {
        let mut pass = Pass {
            conn: &mut conn,
            alerts: &alerts,
            clock: &clock,
        };
        // A DELETE takes the write lock even when it matches nothing: not every wake.
        if tokio::time::Instant::now() >= next_prune {
            pass.prune();
            next_prune = tokio::time::Instant::now() + PRUNE_EVERY;
        }
        health.retry_after_reload(&mut pass, &alerts.snapshot());
        let next_due = tokio::select! {
            () = stop.notified() => return,
            next = pass.deliver_due(&mut health) => next,
        };
        let mut wake_at = tokio::time::Instant::now() + WAKE_EVERY;
        if let Some(due_ms) = next_due {
            let wait = Duration::from_millis((due_ms - clock.now_ms()).max(0) as u64);
            wake_at = wake_at.min(tokio::time::Instant::now() + wait);
        }
        tokio::select! {
            () = stop.notified() => return,
            () = alerts.mail_written() => {}
            () = tokio::time::sleep_until(wake_at) => {}
        }
    }
}

impl Pass<'_> {
    /// Drops delivered and failed rows past [`KEEP_DONE`], and incidents resolved before
    /// the coarsest history tier's keep.
    fn prune(&mut self) {
        let now = self.clock.now_ms();
        let before = now - KEEP_DONE.as_millis() as i64;
        if let Err(e) = tables::prune(self.conn, before) {
            tracing::warn!("could not prune old outbox rows: {e}");
        }
        let history = &self.alerts.snapshot().config.history;
        let keep = history
            .tiers
            .last()
            .map_or(monitor_core::config::Keep::For(history.raw), |t| t.keep);
        if let Some(cutoff) = keep.cutoff_ms(now) {
            if let Err(e) = super::incidents::prune(self.conn, cutoff) {
                tracing::warn!("could not prune old alert incidents: {e}");
            }
        }
    }

    /// Delivers the due rows; returns when the next pending row is due. Bounded, so that rows
    /// which cannot be marked (a broken database) are not re-sent in a tight loop.
    async fn deliver_due(&mut self, health: &mut MailHealth) -> Option<i64> {
        for _ in 0..BATCHES_PER_WAKE {
            let now = self.clock.now_ms();
            let rows = match tables::due(self.conn, now, BATCH) {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!("cannot read the outbox, trying again in 5 s: {e}");
                    return Some(now + RETRY_FIRST.as_millis() as i64);
                }
            };
            if rows.is_empty() {
                break;
            }
            self.deliver_rows(&rows, health).await;
        }
        tables::next_due(self.conn).ok().flatten()
    }

    async fn deliver_rows(&mut self, rows: &[OutboxRow], health: &mut MailHealth) {
        let snapshot = self.alerts.snapshot();
        let smtp = &snapshot.config.smtp;
        let from = from_address(smtp, self.alerts.host());
        let mut session: Option<Session> = None;
        let mut unreachable: Option<DeliveryError> = None;
        for row in rows {
            if session.as_ref().is_none_or(Session::is_broken) && unreachable.is_none() {
                match Session::connect(smtp, from.clone()).await {
                    Ok(s) => session = Some(s),
                    Err(e) => unreachable = Some(e),
                }
            }
            let result = match (&mut session, &unreachable) {
                (_, Some(e)) => Err(e.clone()),
                (Some(s), None) => s.deliver(&outgoing(row)).await,
                (None, None) => unreachable!("connected above"),
            };
            health.note(&result, &snapshot);
            self.record(row, result);
        }
        if let Some(s) = session.filter(|s| !s.is_broken()) {
            s.quit().await;
        }
    }
}

fn outgoing(row: &OutboxRow) -> Outgoing<'_> {
    Outgoing {
        message_id: &row.message_id,
        created_ms: row.created_ms,
        to: &row.recipient,
        subject: &row.subject,
        body: &row.body,
    }
}

/// What a delivery attempt does to its row.
enum Verdict {
    Sent,
    /// Final: a 5xx, or retries given up.
    Failed(String),
    /// Try again at the time given.
    Retry(i64, String),
}

impl Pass<'_> {
    /// Writes the attempt's outcome to the row, and logs it with `client=` and `rule=`.
    fn record(&mut self, row: &OutboxRow, result: Result<(), DeliveryError>) {
        let now = self.clock.now_ms();
        let conn = &mut *self.conn;
        let attempt = row.attempts + 1;
        let (client, rule, to) = (&row.client, &row.rule, &row.recipient);
        // The journal's MESSAGE says it all (`web1: FIRING alert mail to ops@… delivered
        // (attempt 2)`); the fields are for filtering.
        let mail = format!("{client}: {} alert mail to {to}", mail_word(&row.subject));
        let outcome = match result {
            Ok(()) => {
                tracing::info!(client = %client, rule = %rule, to = %to, attempt,
                message_id = %row.message_id, after_ms = now - row.created_ms,
                "{mail} delivered (attempt {attempt})");
                Verdict::Sent
            }
            Err(e) if e.is_refusal() => {
                tracing::error!(client = %client, rule = %rule, to = %to, attempt,
                "{mail} refused for good, not retrying: {e}");
                Verdict::Failed(e.to_string())
            }
            Err(e) if now - row.created_ms >= GIVE_UP_AFTER.as_millis() as i64 => {
                tracing::error!(client = %client, rule = %rule, to = %to, attempt,
                "{mail} given up after {} of failures: {e}",
                monitor_core::config::format_duration(GIVE_UP_AFTER));
                Verdict::Failed(format!("given up: {e}"))
            }
            Err(e) => {
                let delay = retry_delay(attempt);
                if e.is_setup() {
                    // [`MailHealth`] said it once for the whole run; one line per row would bury it.
                    tracing::debug!(client = %client, rule = %rule, to = %to, attempt,
                    retry_in_s = delay.as_secs(), "{mail} waits for <smtp> to be fixed: {e}");
                } else {
                    tracing::warn!(client = %client, rule = %rule, to = %to, attempt,
                    retry_in_s = delay.as_secs(),
                    "{mail} not delivered yet (attempt {attempt}, next in {}s): {e}", delay.as_secs());
                }
                Verdict::Retry(now + delay.as_millis() as i64, e.to_string())
            }
        };
        // A delivered row that stays pending would be mailed again, so a busy database (the
        // writer holding the lock past busy_timeout under heavy ingest) is waited out.
        for try_no in 1..=RECORD_TRIES {
            let written = match &outcome {
                Verdict::Sent => tables::mark_sent(conn, row.id, now),
                Verdict::Failed(error) => tables::mark_failed(conn, row.id, now, error),
                Verdict::Retry(next, error) => tables::mark_retry(conn, row.id, *next, error),
            };
            match written {
                Ok(()) => return,
                Err(e) if try_no == RECORD_TRIES => {
                    // The row stays as it was: at worst it is tried again (same Message-ID).
                    tracing::error!(client = %client, rule = %rule, to = %to,
                    "cannot record a delivery attempt: {e}");
                }
                Err(_) => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }
}

/// `FIRING` or `RESOLVED`, read off the subject monitord wrote (`[monitord] FIRING web1: …`).
fn mail_word(subject: &str) -> &str {
    subject
        .strip_prefix("[monitord] ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or("alert")
}

/// Whether the mail settings work: a run of deliveries refused for `<smtp>` (the session or
/// our sender) is logged once when it starts and once when it ends, and a reload during it
/// retries every waiting mail at once.
#[derive(Debug, Default)]
struct MailHealth {
    /// While deliveries fail for the settings: the configuration they were tried with.
    failing_with: Option<Arc<Snapshot>>,
}

impl MailHealth {
    fn note(&mut self, result: &Result<(), DeliveryError>, snapshot: &Arc<Snapshot>) {
        match result {
            Err(e) if e.is_setup() => {
                if self.failing_with.is_none() {
                    tracing::error!(
                        "alert mail cannot be sent: {e}. Every mail stays in the outbox and is \
                         retried; fix <smtp> in {} and run `systemctl reload monitord` \
                         (`monitord send-test-mail ADDRESS` checks the settings)",
                        snapshot.config.path.display()
                    );
                }
                self.failing_with = Some(snapshot.clone());
            }
            // A temporary failure says nothing about the settings either way.
            Err(DeliveryError::Temporary(_)) => {}
            Ok(()) | Err(_) => {
                if self.failing_with.take().is_some() {
                    tracing::info!("alert mail goes out again: the SMTP server accepts our mail");
                }
            }
        }
    }

    /// After a reload while the settings were failing, every waiting mail is due now.
    fn retry_after_reload(&mut self, pass: &mut Pass<'_>, current: &Arc<Snapshot>) {
        let Some(failing_with) = &self.failing_with else {
            return;
        };
        if Arc::ptr_eq(failing_with, current) {
            return;
        }
        match tables::retry_all_now(pass.conn, pass.clock.now_ms()) {
            Ok(waiting) => {
                tracing::info!(
                    "config.xml reloaded: trying the {waiting} waiting alert mail(s) now"
                );
                self.failing_with = Some(current.clone());
            }
            Err(e) => tracing::warn!("cannot reschedule the waiting alert mail: {e}"),
        }
    }
}

/// 5 s after the first failure, doubling, at most 10 min.
pub fn retry_delay(attempt: i32) -> Duration {
    let doublings = attempt.saturating_sub(1).clamp(0, 16) as u32;
    (RETRY_FIRST * 2u32.pow(doublings)).min(RETRY_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_five_seconds_to_ten_minutes() {
        let secs: Vec<u64> = (1..=9).map(|a| retry_delay(a).as_secs()).collect();
        assert_eq!(secs, [5, 10, 20, 40, 80, 160, 320, 600, 600]);
        assert_eq!(retry_delay(1000), RETRY_MAX);
        // At 10 min a try, 24 h of outage is well within the give-up horizon.
        assert!(GIVE_UP_AFTER >= Duration::from_secs(86_400));
    }
}
