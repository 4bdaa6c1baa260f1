//! The one writer: a thread that owns the database's write connection, with a bounded queue in
//! front of it. It takes everything queued (up to [`BATCH_MAX`]), stores it in one
//! transaction (group commit), and only then answers each request, so a 200 always means
//! committed. A full queue is refused at once ([`QueueFull`], answered 503); a batch that
//! cannot commit (the database stays locked past [`super::BUSY_TIMEOUT`], disk full, …) is
//! rolled back whole and every request in it is answered [`Receipt::Unavailable`] (503): nothing
//! lost, nothing half-stored.
//!
//! A replay is recognised by [`Seen`], the stored `(instance, seq)` pairs held in memory
//! (loaded from the database by the first batch), so a sample costs one appended row and no
//! index lookup; it forgets instances whose samples have all aged past the acceptance window
//! (see [`super::seen`]), checked every [`FORGET_EVERY`]. Ids of clients, instances, metas
//! and disks are cached too (see [`super::ids`]).
//!
//! Whatever else must commit with the samples (alert states and their mail) plugs in as a
//! [`BatchHook`] (see [`super::batch`]); the writer names none of them. The background
//! passes' writes (compaction, rollups, expiry, the alert timers) come through the same queue
//! ([`WriterHandle::run`]) and run between batches, in a transaction of their own (each in a
//! savepoint), as far as their budget of the writer's time allows (see [`super::handoff`]):
//! this connection is the only one of monitord that commits (see [`super::background`]).
//!
//! Not here: HTTP (see [`crate::http`]), reading samples back (see [`super::read`]).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{
    Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError, sync_channel,
};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection as _;
use diesel::prelude::*;
use monitor_core::Sample;
use tokio::sync::oneshot;

use super::batch::{BatchHook, Committed};
use super::error::StoreError;
use super::handoff::{Budget, Task, Write};
use super::ids::{Cache, client_cache, disk, instance, meta};
use super::schema::{RawRow, raw_samples};
use super::seen::Seen;
use super::stored::{DiskValues, Values, kib};
use super::top::{LatestTops, TOP_EVERY};
use super::trouble::Trouble;
use crate::clock::Clock;
use crate::telemetry::Histogram;

/// Requests waiting for the writer; one more is answered 503.
pub const QUEUE_CAPACITY: usize = 16_384;
/// The most samples one transaction takes.
pub const BATCH_MAX: usize = 4_096;

/// A batch commit at least this slow is logged (with its size and duration).
pub const SLOW_COMMIT: Duration = Duration::from_millis(500);

/// The writer connection's page cache, in KiB (SQLite's default is 2 MB). The background
/// writes touch blocks and rollup packs all over the file; with 2 MB they pushed the samples'
/// own pages (the raw table's newest pages and its index, the id tables) out, and each batch
/// read them back: at 500 hosts and a year's file (1 GB) a batch cost 20–33 % more a sample
/// beside the passes, 6–13 % with 64 MB (`xtask bench history`). SQLite fills it only with
/// pages it reads, so a small database costs little.
pub const PAGE_CACHE_KIB: u32 = 65_536;

/// How often the replay guard forgets instances past the acceptance window.
pub const FORGET_EVERY: Duration = Duration::from_secs(3600);

/// What the writer hands back for a submitted sample: stored, already stored, or not now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    /// Newly committed.
    Stored,
    /// `(instance, seq)` was already stored for this client; nothing new was written.
    Duplicate,
    /// The batch could not be committed; the client should retry.
    Unavailable,
}

/// The queue is full: monitord is overloaded right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the writer queue is full")]
pub struct QueueFull;

/// One sample waiting to be stored.
#[derive(Debug)]
struct Job {
    client: Arc<str>,
    sample: Sample,
    /// Computed by the request handler, so the writer thread does less.
    values: Values,
    reply: oneshot::Sender<Receipt>,
}

enum Msg {
    /// Boxed: a job is several hundred bytes and the queue holds thousands of slots.
    Job(Box<Job>),
    Task(Box<dyn Task>),
    Stop,
}

/// Where request handlers hand samples to the writer. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WriterHandle {
    tx: SyncSender<Msg>,
    stored: Arc<AtomicU64>,
    /// For `/metrics`: samples waiting, and how long each batch took to commit.
    gauges: Arc<WriterGauges>,
}

/// What the writer exposes to `/metrics`, updated without a lock.
#[derive(Debug, Default)]
pub struct WriterGauges {
    pub queued: std::sync::atomic::AtomicUsize,
    pub commit_duration: Histogram,
    /// Time spent on the background passes' writes, commits included (ns).
    pub background_nanos: AtomicU64,
}

impl WriterGauges {
    /// Time the writer has spent on the background passes' writes since start.
    pub fn background(&self) -> Duration {
        Duration::from_nanos(self.background_nanos.load(Ordering::Relaxed))
    }
}

impl WriterHandle {
    /// Queues a validated sample; the receiver resolves once its batch has committed (or failed).
    pub fn submit(
        &self,
        client: Arc<str>,
        sample: Sample,
    ) -> Result<oneshot::Receiver<Receipt>, QueueFull> {
        let (reply, rx) = oneshot::channel();
        let values = Values::of(&sample);
        let job = Job {
            client,
            sample,
            values,
            reply,
        };
        // Counted before it is queued, so the writer never takes it from a count of zero.
        self.gauges.queued.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(Msg::Job(Box::new(job))) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.gauges.queued.fetch_sub(1, Ordering::Relaxed);
                Err(QueueFull)
            }
        }
    }

    /// Runs `write` on the writer's connection, between two batches of samples once the
    /// background writes' budget allows (in a transaction with the other background writes
    /// waiting, in a savepoint of its own), and waits until that transaction has ended: the
    /// result is `write`'s once it committed, [`StoreError::NotCommitted`] if it did not.
    /// For the background passes' threads (it blocks; never call it from the writer or an
    /// async task): see [`super::background`].
    pub fn run<T, F>(&self, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut SqliteConnection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = sync_channel(1);
        let task = Write {
            write: Some(write),
            done: None,
            reply,
        };
        // `send` waits for room: a background pass waits, a request is refused instead.
        self.tx
            .send(Msg::Task(Box::new(task)))
            .map_err(|_| StoreError::WriterStopped)?;
        answer.recv().map_err(|_| StoreError::WriterStopped)?
    }

    /// Samples newly stored since start (for `STATUS=`).
    pub fn stored_total(&self) -> u64 {
        self.stored.load(Ordering::Relaxed)
    }

    /// Queue depth and commit durations, for `/metrics`.
    pub fn gauges(&self) -> &WriterGauges {
        &self.gauges
    }
}

/// The writer thread.
#[derive(Debug)]
pub struct Writer {
    handle: WriterHandle,
    thread: JoinHandle<()>,
}

impl Writer {
    /// Starts the writer on a connection from [`super::open_for_writing`]; `hooks` run with
    /// every batch, in this order.
    pub fn start(
        mut conn: SqliteConnection,
        clock: Clock,
        hooks: Vec<Arc<dyn BatchHook>>,
    ) -> std::io::Result<Writer> {
        let (tx, rx) = sync_channel(QUEUE_CAPACITY);
        let stored = Arc::new(AtomicU64::new(0));
        let gauges = Arc::new(WriterGauges::default());
        if let Err(e) = conn.batch_execute(&format!("PRAGMA cache_size = -{PAGE_CACHE_KIB};")) {
            tracing::warn!("the writer keeps SQLite's default page cache of 2 MB: {e}");
        }
        let trouble = Trouble::new(&mut conn);
        let mut state = WriterState {
            conn,
            cache: Cache::default(),
            seen: None,
            forgot_at: Instant::now(),
            tops: LatestTops::default(),
            stored: stored.clone(),
            gauges: gauges.clone(),
            clock,
            hooks,
            trouble,
        };
        let thread = std::thread::Builder::new()
            .name("writer".into())
            .spawn(move || state.run(&rx))?;
        Ok(Writer {
            handle: WriterHandle { tx, stored, gauges },
            thread,
        })
    }

    pub fn handle(&self) -> WriterHandle {
        self.handle.clone()
    }

    /// Stores everything already queued, then stops. Call once no new requests can arrive.
    pub fn shutdown(self) {
        // `send` waits for room: everything queued before Stop is still stored.
        let _ = self.handle.tx.send(Msg::Stop);
        if self.thread.join().is_err() {
            tracing::error!("the writer thread panicked");
        }
    }
}

struct WriterState {
    conn: SqliteConnection,
    cache: Cache,
    /// `None` until the first batch loads it (inside its transaction).
    seen: Option<Seen>,
    /// When `seen` last forgot old instances.
    forgot_at: Instant,
    tops: LatestTops,
    stored: Arc<AtomicU64>,
    gauges: Arc<WriterGauges>,
    clock: Clock,
    hooks: Vec<Arc<dyn BatchHook>>,
    trouble: Trouble,
}

impl WriterState {
    fn run(&mut self, rx: &Receiver<Msg>) {
        let mut batch = Vec::with_capacity(BATCH_MAX);
        let mut tasks: VecDeque<Box<dyn Task>> = VecDeque::new();
        let mut budget = Budget::default();
        loop {
            // Wait for samples, or until the budget lets a waiting background write run;
            // while some `top` is unwritten, wake up when the queue goes quiet to write it.
            let for_tasks = (!tasks.is_empty()).then(|| budget.until_available());
            let for_tops = self.tops.has_unwritten().then_some(TOP_EVERY);
            let since = Instant::now();
            let first = match for_tasks.into_iter().chain(for_tops).min() {
                Some(wait) => rx.recv_timeout(wait),
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            let waited = since.elapsed();
            budget.idle(waited);
            let mut stop = false;
            match first {
                Ok(Msg::Job(job)) => batch.push(*job),
                Ok(Msg::Task(task)) => tasks.push_back(task),
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => stop = true,
                // Quiet for TOP_EVERY, not only for a background write's wait.
                Err(RecvTimeoutError::Timeout) => {
                    if self.tops.has_unwritten() && waited >= TOP_EVERY {
                        self.flush_tops();
                    }
                }
            }
            while !stop && batch.len() < BATCH_MAX {
                match rx.try_recv() {
                    Ok(Msg::Job(job)) => batch.push(*job),
                    Ok(Msg::Task(task)) => tasks.push_back(task),
                    Ok(Msg::Stop) | Err(TryRecvError::Disconnected) => stop = true,
                    Err(TryRecvError::Empty) => break,
                }
            }
            // Stopping: everything queued is written, whatever the budget.
            let run_tasks = !tasks.is_empty() && (stop || budget.available());
            if !batch.is_empty() || run_tasks {
                self.commit_batch(&mut batch, &mut tasks, &mut budget, stop);
            }
            if stop {
                self.flush_tops();
                return;
            }
        }
    }

    /// Writes every unwritten `top`; on failure they stay unwritten for the next try.
    fn flush_tops(&mut self) {
        let now = Instant::now();
        let tops = &self.tops;
        let written = self
            .conn
            .immediate_transaction(|conn| tops.write_due(conn, now, true));
        match written {
            Ok(written) => self.tops.written(&written, now),
            Err(e) => tracing::debug!("could not write the latest top processes yet: {e}"),
        }
    }

    /// One transaction for the whole batch, then one answer per request; then, as far as
    /// `budget` allows (all of them when `all`), the background writes waiting in `tasks`.
    fn commit_batch(
        &mut self,
        batch: &mut Vec<Job>,
        tasks: &mut VecDeque<Box<dyn Task>>,
        budget: &mut Budget,
        all: bool,
    ) {
        if !batch.is_empty() {
            let took = self.store_batch(batch);
            budget.samples(took);
        }
        if !tasks.is_empty() && (all || budget.available()) {
            let took = self.run_tasks(tasks, budget, all);
            budget.spent(took);
        }
    }

    /// Stores `batch` in one transaction and answers each request; returns how long it took.
    fn store_batch(&mut self, batch: &mut Vec<Job>) -> Duration {
        self.gauges.queued.fetch_sub(batch.len(), Ordering::Relaxed);
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut added = HashMap::new();
        let mut rows = Vec::with_capacity(batch.len());
        let now = Instant::now();
        let tops = &mut self.tops;
        let mut tops_written = Vec::new();
        let result = self.conn.immediate_transaction(|conn| {
            if self.seen.is_none() {
                self.seen = Some(Seen::load(conn, self.clock.now_ms())?);
            }
            let seen = self.seen.as_ref().expect("loaded above");
            outcomes.clear();
            added.clear();
            rows.clear();
            for job in batch.iter() {
                let (outcome, client_id, row) =
                    store_one(conn, &mut self.cache, seen, &mut added, job)?;
                outcomes.push((outcome, client_id));
                rows.extend(row);
            }
            // Before alerts run: their mail quotes the latest samples, these included.
            insert_rows(conn, &rows)?;
            let committed: Vec<Committed> = batch
                .iter()
                .zip(&outcomes)
                .filter_map(|(job, (outcome, client_id))| {
                    (*outcome == Receipt::Stored).then_some(Committed {
                        client_id: *client_id,
                        client: &job.client,
                        sample: &job.sample,
                    })
                })
                .collect();
            tops.record(&committed);
            tops_written = tops.write_due(conn, now, false)?;
            // Alert state changes and outbox rows commit with the samples that caused them.
            for hook in &self.hooks {
                hook.in_batch(conn, &committed)?;
            }
            QueryResult::Ok(())
        });
        if result.is_ok() {
            for hook in &self.hooks {
                hook.committed();
            }
            self.tops.written(&tops_written, now);
            if let Some(seen) = &mut self.seen {
                for ((instance_id, seq), ts) in added {
                    seen.insert(instance_id, seq, ts);
                }
                if self.forgot_at.elapsed() >= FORGET_EVERY {
                    self.forgot_at = Instant::now();
                    let forgotten = seen.forget_older_than(self.clock.now_ms());
                    if forgotten > 0 {
                        tracing::info!(
                            forgotten,
                            remembered = seen.len(),
                            "replay guard: forgot agent instances whose samples are all past the 7-day window"
                        );
                    }
                }
            }
        }
        let took = now.elapsed();
        if result.is_ok() {
            self.gauges.commit_duration.observe(took);
            if took >= SLOW_COMMIT {
                // Every request of the batch waited this long: worth a line when it happens,
                // so an operator (or a benchmark's log) can tell a slow disk from a slow
                // monitord.
                tracing::warn!(
                    samples = batch.len(),
                    ms = took.as_millis() as u64,
                    "a batch of samples took {} ms to commit (storing, alerts, fsync and any WAL checkpoint)",
                    took.as_millis()
                );
            }
        }
        match &result {
            Ok(()) => self.trouble.recovered(),
            Err(e) => {
                // Ids created inside the rolled-back transaction no longer exist.
                self.cache = Cache::default();
                self.tops.forget();
                self.trouble.failed(e, batch.len());
            }
        }
        let mut stored = 0;
        for (i, job) in batch.drain(..).enumerate() {
            let outcome = match (&result, outcomes.get(i)) {
                (Ok(()), Some((outcome, _))) => *outcome,
                _ => Receipt::Unavailable,
            };
            stored += u64::from(outcome == Receipt::Stored);
            // The requester may have gone away; the sample is stored all the same.
            let _ = job.reply.send(outcome);
        }
        self.stored.fetch_add(stored, Ordering::Relaxed);
        took
    }

    /// Runs background writes from the front of `tasks` in one transaction of their own, each
    /// in a savepoint, while `budget` allows (all of them when `all`), then answers them;
    /// returns how long it took, commit and fsync included, for the budget. A transaction of
    /// their own, not the samples': their pages' share of a commit cannot be told apart, and
    /// counted as the samples' time it bought the passes more of the writer, not less (a
    /// fifth of it beside saturated ingest, where the budget meant a twentieth).
    fn run_tasks(
        &mut self,
        tasks: &mut VecDeque<Box<dyn Task>>,
        budget: &Budget,
        all: bool,
    ) -> Duration {
        let started = Instant::now();
        let mut ran: Vec<Box<dyn Task>> = Vec::new();
        let result = self.conn.immediate_transaction(|conn| {
            // The first runs whatever the budget; the others while it lasts.
            while let Some(mut task) = tasks.pop_front() {
                task.run(conn);
                ran.push(task);
                if !all && started.elapsed() >= budget.left() {
                    break;
                }
            }
            QueryResult::Ok(())
        });
        for task in ran {
            task.answer(result.as_ref().map(|_| ()));
        }
        let took = started.elapsed();
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.gauges
            .background_nanos
            .fetch_add(nanos, Ordering::Relaxed);
        if took >= SLOW_COMMIT {
            tracing::warn!(
                ms = took.as_millis() as u64,
                "the background passes' writes took {} ms to commit (compaction, rollups, expiry, alert timers)",
                took.as_millis()
            );
        }
        // A write that did not commit is answered so, and its pass says why.
        took
    }
}

/// The row to store for one sample, unless its `(instance, seq)` is already stored or
/// earlier in this batch (`added`, which joins `seen` once the batch commits); creates the
/// client, instance, meta and disk rows it refers to when they are new.
fn store_one(
    conn: &mut SqliteConnection,
    cache: &mut Cache,
    seen: &Seen,
    added: &mut HashMap<(i64, i64), i64>,
    job: &Job,
) -> QueryResult<(Receipt, i64, Option<RawRow>)> {
    let client = client_cache(conn, cache, &job.client)?;
    let s = &job.sample;
    let instance_id = instance(conn, client, &s.instance)?;
    if seen.contains(instance_id, s.seq) || added.insert((instance_id, s.seq), s.ts).is_some() {
        return Ok((Receipt::Duplicate, client.id, None));
    }
    let meta_id = meta(conn, client, s)?;
    let mut disk_values = Vec::with_capacity(s.disks.len());
    for d in &s.disks {
        disk_values.push(DiskValues {
            disk_id: disk(conn, client, &d.mount, &d.fs)?,
            total: kib(d.total),
            used: kib(d.used),
            avail: d.avail.map(kib),
        });
    }
    let row = RawRow::new(instance_id, s.seq, meta_id, &job.values, &disk_values);
    Ok((Receipt::Stored, client.id, Some(row)))
}

/// Rows per multi-row INSERT. A fixed count gives the statement a type of its own, so Diesel
/// prepares it once and then only binds; one INSERT per row spent more time in Diesel's
/// statement cache than in SQLite, and a `Vec` of rows is prepared anew every time.
const INSERT_ROWS: usize = 32;

/// Appends `rows` to the raw tier: [`INSERT_ROWS`] at a time, then the rest one by one.
fn insert_rows(conn: &mut SqliteConnection, rows: &[RawRow]) -> QueryResult<()> {
    let mut chunks = rows.chunks_exact(INSERT_ROWS);
    for chunk in &mut chunks {
        let chunk: &[RawRow; INSERT_ROWS] = chunk.try_into().expect("chunks_exact");
        diesel::insert_into(raw_samples::table)
            .values(chunk)
            .execute(conn)?;
    }
    for row in chunks.remainder() {
        diesel::insert_into(raw_samples::table)
            .values(row)
            .execute(conn)?;
    }
    Ok(())
}
