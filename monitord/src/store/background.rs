//! Background passes (compaction, rollups, expiry, the alert timers) read on a connection of
//! their own and hand what they write to the writer, which runs it between two batches of
//! samples, as far as the passes' budget of its time allows
//! ([`super::writer::WriterHandle::run`], [`super::handoff::Budget`]). So the writer's
//! connection is the only one of monitord that commits: no pass ever holds SQLite's write
//! lock while ingest waits, a burst of ingest keeps nearly all of the writer, and the writer's
//! page cache stays warm (in WAL mode SQLite empties a connection's cache whenever another
//! connection has committed, and the writer's next rows go on the pages the expiry freed). `monitord compact`, a process of
//! its own, writes [`Writes::Here`] instead.
//!
//! A pass works in rounds: it reads a round (a chunk of raw rows, windows of buckets, a step
//! of expiry) in one read transaction ([`snapshot`]), so it sees one state of the database,
//! computes what to write from it, and hands that over. Between the read and the write the
//! writer may have stored samples, and another process may have written: each write checks
//! that the rows it rewrites or deletes are still what was read, and writes nothing of a
//! round whose rows changed ([`StoreError::Changed`]: the pass reads them again). Samples
//! stored meanwhile are the rollups' affair: see [`super::history::rollup`].
//!
//! Not here: the writer's batches (see [`super::writer`]), what each pass does.

use std::time::{Duration, Instant};

use diesel::prelude::*;

use super::error::StoreError;
use super::writer::WriterHandle;

/// Where a background pass's writes go.
#[derive(Debug, Clone, Copy)]
pub enum Writes<'w> {
    /// Into a write transaction of the pass's own connection: `monitord compact`, tests.
    Here,
    /// To the daemon's writer, which runs it between two batches of samples.
    Writer(&'w WriterHandle),
}

impl Writes<'_> {
    /// Runs `write` where these writes go and returns once it has committed; `conn` is the
    /// pass's own connection (written on only for [`Writes::Here`]).
    pub fn run<T, F>(&self, conn: &mut SqliteConnection, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut SqliteConnection) -> Result<T, StoreError> + Send + 'static,
    {
        match self {
            Writes::Here => conn.immediate_transaction(write),
            Writes::Writer(writer) => writer.run(write),
        }
    }

    /// [`Writes::run`], except that a write whose rows changed since they were read
    /// ([`StoreError::Changed`]) gives `None` (nothing of it was kept).
    pub fn run_unless_changed<T, F>(
        &self,
        conn: &mut SqliteConnection,
        write: F,
    ) -> Result<Option<T>, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut SqliteConnection) -> Result<T, StoreError> + Send + 'static,
    {
        match self.run(conn, write) {
            Ok(t) => Ok(Some(t)),
            Err(StoreError::Changed) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Runs `read` in one read transaction, so all its queries see the database as it was when
/// the first one ran.
pub fn snapshot<T>(
    conn: &mut SqliteConnection,
    read: impl FnOnce(&mut SqliteConnection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.transaction(read)
}

/// How long a pass reads for one round at most before it hands the round's writes over
/// (while it has more than one thing to read: a round is one client's window of buckets,
/// or one late bucket, per client). Each round waits for one batch of the writer, so rounds
/// worth 25 ms of reading keep a pass from waiting a batch for every client, and keep each
/// write small next to a batch of samples.
pub const ROUND: Duration = Duration::from_millis(25);

/// Whether a round that started at `started` has read for long enough (see [`ROUND`]).
pub fn round_is_full(started: Instant) -> bool {
    started.elapsed() >= ROUND
}

/// `n` as a count of rows SQLite reported, checked against `expected`: a delete or update
/// that met fewer rows than were read means they changed ([`StoreError::Changed`]).
pub fn expect_rows(n: usize, expected: usize) -> Result<(), StoreError> {
    if n == expected {
        Ok(())
    } else {
        Err(StoreError::Changed)
    }
}
