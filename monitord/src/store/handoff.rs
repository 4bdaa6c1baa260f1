//! What the background passes hand the writer, and how much of its time they get: a
//! [`Write`] is a pass's write waiting in the writer's queue, run between two batches of
//! samples in a transaction of the background writes, in a savepoint of its own, and
//! answered once that transaction has ended (see [`super::writer::WriterHandle::run`]); the
//! [`Budget`] decides when the writer runs them.
//!
//! Not here: how a pass reads and what it writes (see [`super::background`]).

use std::sync::mpsc::SyncSender;
use std::time::Duration;

use diesel::prelude::*;

use super::error::StoreError;

/// A background pass's write waiting for the writer (see [`super::writer::WriterHandle::run`]).
pub(super) trait Task: Send {
    /// Inside the background writes' transaction, in a savepoint of its own.
    fn run(&mut self, conn: &mut SqliteConnection);
    /// Once that transaction has ended: `Ok` if it committed.
    fn answer(self: Box<Self>, transaction: Result<(), &diesel::result::Error>);
}

pub(super) struct Write<T, F> {
    pub(super) write: Option<F>,
    pub(super) done: Option<Result<T, StoreError>>,
    pub(super) reply: SyncSender<Result<T, StoreError>>,
}

impl<T, F> Task for Write<T, F>
where
    T: Send,
    F: FnOnce(&mut SqliteConnection) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, conn: &mut SqliteConnection) {
        if let Some(write) = self.write.take() {
            // Nested in the background writes' transaction, Diesel makes this a savepoint: a
            // failed write rolls back alone, and the others still commit.
            self.done = Some(conn.transaction(write));
        }
    }

    fn answer(self: Box<Self>, transaction: Result<(), &diesel::result::Error>) {
        let result = match (transaction, self.done) {
            (Ok(()), Some(done)) => done,
            (Ok(()), None) => Err(StoreError::NotCommitted("it was not run".into())),
            (Err(e), _) => Err(StoreError::NotCommitted(e.to_string())),
        };
        // The pass may have gone away; nothing to tell then.
        let _ = self.reply.send(result);
    }
}

/// How much of the writer's time the background writes may take: all of its idle time, and
/// a [`Budget::SHARE`]th of the time it spends on batches of samples. So a burst of ingest
/// (agents draining their spools after an outage, say) keeps nineteen twentieths of the
/// writer even while every pass has work, and the passes catch up once it is over; at a
/// fleet's real rate the writer is idle nearly all the time and a pass's write runs at once.
/// A background write's time is all of it, its commit and fsync included (the writer commits
/// them apart from the samples for that). A twentieth, not a tenth: the passes' reading
/// takes a share of the machine's CPU too.
#[derive(Debug, Default)]
pub(super) struct Budget {
    /// Time background writes may still take, in ns (negative: overspent).
    credit_ns: i128,
}

impl Budget {
    /// Samples' time per unit of background time at saturation.
    pub(super) const SHARE: u32 = 19;
    /// The most credit kept: an idle minute does not buy a minute of background writes in
    /// the middle of a burst.
    const MAX: Duration = Duration::from_millis(200);

    fn add(&mut self, d: Duration) {
        self.credit_ns = (self.credit_ns + d.as_nanos() as i128).min(Self::MAX.as_nanos() as i128);
    }

    /// The writer waited this long for work.
    pub(super) fn idle(&mut self, waited: Duration) {
        self.add(waited);
    }

    /// The writer spent this long on a batch's samples.
    pub(super) fn samples(&mut self, took: Duration) {
        self.add(took / Self::SHARE);
    }

    /// A background write took this long.
    pub(super) fn spent(&mut self, took: Duration) {
        self.credit_ns -= took.as_nanos() as i128;
    }

    /// Whether a background write may run now.
    pub(super) fn available(&self) -> bool {
        self.credit_ns > 0
    }

    /// The credit left, for a run of background writes that stops once it has spent it.
    pub(super) fn left(&self) -> Duration {
        Duration::from_nanos(u64::try_from(self.credit_ns).unwrap_or(0))
    }

    /// How long an idle writer waits until a background write may run.
    pub(super) fn until_available(&self) -> Duration {
        Duration::from_nanos(u64::try_from(-self.credit_ns).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn background_writes_get_the_idle_time_and_a_nineteenth_of_the_samples_time() {
        let ms = Duration::from_millis;
        let mut budget = Budget::default();
        assert!(!budget.available());
        // 190 ms on samples buy 10 ms.
        budget.samples(ms(190));
        assert!(budget.available());
        assert_eq!(budget.left(), ms(10));
        budget.spent(ms(15));
        assert!(!budget.available());
        assert_eq!(budget.until_available(), ms(5));
        // An idle minute buys at most 200 ms.
        budget.idle(Duration::from_secs(60));
        budget.spent(ms(199));
        assert!(budget.available());
        budget.spent(ms(2));
        assert!(!budget.available());
    }
}
