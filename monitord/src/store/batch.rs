//! The writer's seam: what a group commit hands to the rest of monitord, and the two
//! moments at which others may act on it.
//!
//! A [`BatchHook`] runs [`BatchHook::in_batch`] inside the batch's transaction, after the
//! samples are inserted, on the writer's connection: what it writes commits with the samples
//! or rolls back with them (alert states and their mail do). Then, once the transaction has
//! committed, [`BatchHook::committed`] (wake a sender, publish a total). The store knows no
//! hook by name: alerts (`alerts::evaluate`), the late-sample marks of the rollups
//! (`history::rollup::LateSamples`) and the newest values kept in memory (`recent`) plug in
//! here.
//!
//! Not here: the writer itself (see [`super::writer`]).

use diesel::SqliteConnection;
use diesel::result::QueryResult;
use monitor_core::Sample;

/// A newly stored sample, as the rest of the batch transaction sees it (duplicates are not
/// handed on).
#[derive(Debug)]
pub struct Committed<'a> {
    pub client_id: i64,
    pub client: &'a str,
    pub sample: &'a Sample,
}

/// Something that runs with every batch the writer commits.
pub trait BatchHook: Send + Sync + std::fmt::Debug {
    /// Inside the batch's transaction, after its samples are inserted. An error rolls the
    /// whole batch back (its requests are answered 503 and resent by their agents).
    fn in_batch(&self, conn: &mut SqliteConnection, stored: &[Committed<'_>]) -> QueryResult<()>;

    /// After the batch's transaction committed.
    fn committed(&self) {}
}
