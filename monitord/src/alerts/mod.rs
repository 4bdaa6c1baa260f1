//! Alerts: the limits of config.xml evaluated on every stored sample, their state kept in
//! SQLite, and the mail they cause, written to an outbox in the same transaction as the
//! samples and delivered by a sender task that retries until the SMTP server takes it.
//!
//! - [`measure`]: the value a rule reads from a sample, and how values read in subjects.
//! - [`machine`]: the pure state machine (ok → pending → firing → resolved), host down.
//! - [`mail`]: subjects and bodies.
//! - [`store`]: the `alert_states` and `outbox` tables.
//! - [`incidents`]: every firing → resolved episode, kept after it is over.
//! - [`evaluate`]: [`Alerts`], the states in memory (`book`) over the table, changed only
//!   inside the transaction of whoever holds the write lock (the writer's batch, the
//!   host-down timer), through an `update::Updater`.
//! - [`smtp`]: one SMTP session (mail-send), TLS and the verdict per recipient.
//! - [`sender`]: the outbox sender thread: delivery with backoff.
//! - [`timer`]: the timer of the built-in rules: host down and [`skew`] (a wrong client clock).
//! - [`cli`]: `monitord alerts` and `monitord send-test-mail`.
//!
//! Not here: storing samples ([`Alerts`] is a `BatchHook` of the writer: evaluated inside
//! its batch transaction, told after the commit; `serve` starts [`OutboxSender`] and the
//! [`timer`]).
//!
//! Not done yet (for the next session):
//! - A mail accepted by the SMTP server but not yet marked sent when monitord is killed is
//!   sent again after restart (same Message-ID, by design); untested because the window is
//!   milliseconds wide.
//! - The two host-down tests take ~3 and ~4 min (the 3-minute floor is the product's; there
//!   is no test switch); they run in parallel with the rest.
//! - Not covered by a test: the 2-day give-up of temporary failures (unit-tested backoff only).
//! - A 503 was seen once under parallel test load ("storage unavailable" while the alerts
//!   thread and the writer share the database); not reproduced in many runs since.
//! - `monitord alerts --json` does not exist; the listing is for people.
//! - Outbox delivery is one row at a time over one session per pass; fine for alert volumes,
//!   not tuned for thousands of mails at once (no grouping of recipients per message).
//! - Not measured against the ingest benchmark: evaluation runs in the writer's transaction;
//!   per sample it only looks up states in memory (writes happen on state changes), but it
//!   reads the last samples and `top` from the database when it writes a mail.

mod book;
pub mod cli;
pub mod evaluate;
pub mod incidents;
pub mod machine;
pub mod mail;
pub mod measure;
pub mod sender;
pub mod skew;
pub mod smtp;
pub mod store;
pub mod timer;
mod update;

#[cfg(test)]
mod tests;

pub use evaluate::Alerts;
pub use sender::OutboxSender;
