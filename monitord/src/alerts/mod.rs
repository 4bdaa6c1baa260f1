//! Alerts: the limits of config.xml evaluated on every stored sample, their state kept in
//! SQLite, and the mail they cause, written to an outbox in the same transaction as the
//! samples and delivered by a sender task that retries until the SMTP server takes it.
//!
//! - [`measure`]: the value a rule reads from a sample, and how values read in subjects.
//! - [`machine`]: the pure state machine (ok → pending → firing → resolved), host down.
//! - [`mail`]: subjects and bodies.
//! - [`store`]: the `alert_states` and `outbox` tables.
//! - [`evaluate`]: [`Alerts`], the states in memory over the table, changed only inside the
//!   transaction of whoever holds the write lock (the writer's batch, the host-down timer).
//! - [`smtp`]: one SMTP session (mail-send), TLS and the verdict per recipient.
//! - [`sender`]: the alerts thread: outbox delivery with backoff, and the host-down timer.
//! - [`cli`]: `monitord alerts` and `monitord send-test-mail`.
//!
//! Not here: storing samples (the writer calls [`Alerts::evaluate`] inside its batch
//! transaction and [`Alerts::committed`] after it).
//!
//! Not done yet (for the next session):
//! - wiring into `serve` (writer call, AlertTasks start/stop, set_config on reload)
//! - `monitord alerts`, `monitord send-test-mail ADDRESS`
//! - integration tests with a real SMTP server (`testkit::smtp`, `monitord/tests/alerts.rs`)

pub mod cli;
pub mod evaluate;
pub mod machine;
pub mod mail;
pub mod measure;
pub mod sender;
pub mod smtp;
pub mod store;

pub use evaluate::Alerts;
pub use sender::AlertTasks;
