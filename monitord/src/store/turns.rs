//! Turns to write: this process's write transactions take turns through one fair mutex, so
//! the writer's batches of samples never starve behind a background pass (compaction,
//! rollups, expiry, the alert timers) and a pass leaves most of the time to a busy writer.
//! [`background_steps`] runs a pass's steps in transactions of about
//! [`BACKGROUND_TRANSACTION`] each.
//!
//! Not here: SQLite's own lock and busy handler, which other processes (the operator's
//! commands) still meet (see [`super::BUSY_TIMEOUT`]).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use parking_lot::{FairMutex, FairMutexGuard};

/// The turn to write, for this process's write transactions: the writer's batches
/// ([`ingest_turn`]), the background passes' short steps ([`background_turn`]: compaction,
/// rollups, expiry, the alert timers), anything else ([`write_turn`]). Take it just before
/// `immediate_transaction` and drop it right after.
///
/// Why turns: left to SQLite's lock alone, a background pass's back-to-back transactions kept
/// the writer out for seconds, because SQLite's busy handler makes a waiting connection sleep
/// between retries (up to 100 ms) and it seldom woke in the gap between two steps; its
/// batches then failed after [`super::BUSY_TIMEOUT`] and were answered 503 (`xtask bench history`:
/// ingest at 2 % of its rate beside a loop of passes). A fair mutex hands the turn to
/// whoever waits the moment it is released, and a pass leaves most of the time to a busy
/// writer. Other processes (the operator's commands) still meet SQLite's lock and its busy
/// handler; one monitord has one database, so one turn per process is enough.
static WRITE_TURN: FairMutex<()> = parking_lot::const_fair_mutex(());
/// When the writer last took its turn for a batch of samples, in ms since [`epoch`]; 0
/// before it ever did.
static WRITER_WROTE_MS: AtomicU64 = AtomicU64::new(0);
/// Of the time both want to write, the share background passes leave to the writer: after
/// a transaction that held the turn for d, a pass waits 19 d while the writer is busy, so it
/// writes at most a twentieth of the time. Not a tenth: a pass slows the writer beyond its
/// turns too (its commits empty the writer's page cache, its freed pages are the writer's
/// next ones), and with a tenth ingest beside back-to-back passes kept 0.75–0.79 of its rate
/// (`xtask bench history`, 100 hosts, medians of three rounds; the writer on a CPU 77 % of
/// the time against 85 % alone); with a twentieth 0.81, the writer on a CPU 81 %. The cost: at
/// saturation a pass takes twice as long.
const WRITER_SHARE: u32 = 19;
/// The writer counts as busy for this long after its last batch.
const WRITER_BUSY_FOR: Duration = Duration::from_secs(1);
/// A pass never waits longer than this after one step (a step holds the turn for a few ms to
/// a few hundred; this only bounds a pathological one).
const MAX_BACKGROUND_WAIT: Duration = Duration::from_secs(30);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// The writer's turn to write a batch of samples (see [`WRITE_TURN`]); background passes
/// then count the writer as busy for [`WRITER_BUSY_FOR`].
pub fn ingest_turn() -> FairMutexGuard<'static, ()> {
    let turn = WRITE_TURN.lock();
    let now = u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX);
    WRITER_WROTE_MS.store(now.max(1), Ordering::Relaxed);
    turn
}

/// The turn to write (see [`WRITE_TURN`]) for a write that is neither a batch of samples
/// nor a background pass's step.
pub fn write_turn() -> FairMutexGuard<'static, ()> {
    WRITE_TURN.lock()
}

/// A background pass's turn to write one step (see [`WRITE_TURN`]). When it is dropped, and
/// the writer wrote a batch within the last second, the pass waits [`WRITER_SHARE`] times as long
/// as it held the turn (at most [`MAX_BACKGROUND_WAIT`]), so at peak ingest a pass takes at
/// most a twentieth of the time to write; an idle
/// writer costs a pass nothing.
///
/// A pass that writes in more than one step runs them through [`background_steps`].
pub fn background_turn() -> BackgroundTurn {
    BackgroundTurn {
        turn: Some(WRITE_TURN.lock()),
        since: Instant::now(),
    }
}

/// See [`background_turn`].
#[derive(Debug)]
pub struct BackgroundTurn {
    turn: Option<FairMutexGuard<'static, ()>>,
    since: Instant,
}

impl Drop for BackgroundTurn {
    fn drop(&mut self) {
        let held = self.since.elapsed();
        drop(self.turn.take());
        let wrote = WRITER_WROTE_MS.load(Ordering::Relaxed);
        let busy = wrote > 0
            && epoch()
                .elapsed()
                .saturating_sub(Duration::from_millis(wrote))
                < WRITER_BUSY_FOR;
        if busy {
            std::thread::sleep((held * WRITER_SHARE).min(MAX_BACKGROUND_WAIT));
        }
    }
}

/// How long one transaction of a background pass runs its steps before it commits and hands
/// the turn back. Few full transactions cost the writer less than many small ones: every
/// commit is an fsync the writer waits out, and in WAL mode every commit of another
/// connection empties the writer's page cache, so its next batch reads its pages again.
/// Long enough to hold many steps (a rollup window, an expiry of 2,000 rows: 0.1–5 ms), short
/// enough that the writer's queue (16,384 samples) takes what arrives meanwhile even at
/// 100,000 samples/s.
pub const BACKGROUND_TRANSACTION: Duration = Duration::from_millis(25);

/// Runs a background pass's `step` until it says there is no more to do (`Ok(false)`), in
/// write transactions of about [`BACKGROUND_TRANSACTION`], each under a [`background_turn`]
/// (so a busy writer gets nineteen twentieths of the time). A step sees the database as the steps
/// before it in the same transaction left it; an error rolls back the steps of its
/// transaction, and those committed before stay.
pub fn background_steps<E>(
    conn: &mut SqliteConnection,
    mut step: impl FnMut(&mut SqliteConnection) -> Result<bool, E>,
) -> Result<(), E>
where
    E: From<diesel::result::Error>,
{
    loop {
        let _turn = background_turn();
        let started = Instant::now();
        let more = conn.immediate_transaction::<_, E, _>(|conn| {
            loop {
                if !step(conn)? {
                    return Ok(false);
                }
                if started.elapsed() >= BACKGROUND_TRANSACTION {
                    return Ok(true);
                }
            }
        })?;
        if !more {
            return Ok(());
        }
    }
}
