//! Alerts: the limits of config.xml evaluated on every stored sample, their state kept in
//! SQLite, and the mail they cause, written to an outbox in the same transaction as the
//! samples and delivered by a sender task that retries until the SMTP server takes it.
//!
//! - [`measure`]: the value a rule reads from a sample, and how values read in subjects.
//! - [`machine`]: the pure state machine (ok → pending → firing → resolved), host down.
//! - [`mail`]: subjects and bodies.
//!
//! Not here: storing samples (the writer calls in here inside its batch transaction).
//!
//! Not done yet (for the next session):
//! - persistence (state + outbox tables), the evaluator inside the writer's transaction
//! - the sender task (mail-send), the host-down timer, `monitord alerts`, `send-test-mail`
//! - integration tests with a real SMTP server (`testkit::smtp`, `monitord/tests/alerts.rs`)

pub mod machine;
pub mod mail;
pub mod measure;
