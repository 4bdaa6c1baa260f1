//! monitord's integration tests: one test binary (fast to link), one module per concern.
//! Every test runs the real monitord binary (and, where it says so, the real static agent or
//! the independent Python envelope) on loopback; nothing is mocked.

mod support;

mod alerts;
mod busy;
mod commands;
mod crash;
mod full_disk;
mod history;
mod hostile;
mod ingest;
mod lifecycle;
mod notify;
mod python_envelope;
mod statuses;
mod web;
