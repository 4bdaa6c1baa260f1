//! [`Alerts`]: the alert states of every client, kept in memory over the `alert_states`
//! table, and the two places that change them: [`Alerts::evaluate`], called by the writer
//! inside its batch transaction, and [`Alerts::check_timers`], called by the timer inside
//! its own. Every change is written (state row, outbox rows) on the caller's connection, so
//! it commits or rolls back with the transaction that caused it.
//!
//! Locking: a caller holds SQLite's write lock (an immediate transaction) before it takes
//! the in-memory lock, always in that order, so the two never deadlock. The memory copy is
//! marked tentative (per caller) until that caller reports its commit; whoever next finds
//! any mark (while holding the write lock) reloads it from the database, which is right
//! whether the marked transaction committed or rolled back.
//!
//! [`Alerts`] is the writer's [`BatchHook`]: the store calls it without knowing what it is.
//!
//! Not here: SMTP (see [`super::sender`]), the timer loop (see [`super::timer`]).

use std::sync::{Arc, Mutex, MutexGuard};

use diesel::prelude::*;
use monitor_core::Sample;
use tokio::sync::Notify;

use super::book::{Book, Caller, Entry, ok_entry};
use super::machine::{self, Phase, RuleState};
use super::skew::{self, CLOCK_RULE, ClockWatch};
use super::tables::{self, HOST_DOWN_RULE};
use super::update::Updater;
use crate::clock::Clock;
use crate::state::{Shared, Snapshot};
use crate::store::batch::{BatchHook, Committed};

/// The alert side of monitord, shared by the writer, the timer and the sender.
#[derive(Debug)]
pub struct Alerts {
    /// The running config.xml; a reload shows here at the next evaluation.
    shared: Arc<Shared>,
    book: Mutex<Book>,
    /// Wakes the sender when a commit wrote outbox rows.
    wake: Notify,
    clock: Clock,
    /// Fed by the ingest handler, read by the timer.
    clock_watch: Arc<ClockWatch>,
    started_ms: i64,
    /// The domain of Message-IDs and the default From.
    host: String,
}

impl Alerts {
    pub fn new(shared: Arc<Shared>, clock: Clock) -> Alerts {
        let host = gethostname::gethostname()
            .to_str()
            .filter(|h| !h.is_empty())
            .unwrap_or("localhost")
            .to_owned();
        Alerts {
            shared,
            book: Mutex::new(Book::default()),
            wake: Notify::new(),
            clock_watch: Arc::default(),
            started_ms: clock.now_ms(),
            clock,
            host,
        }
    }

    /// The running config.xml (and client keys); rules a reload removed resolve quietly.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.shared.snapshot()
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// The clock every alert decision reads.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Resolves once a commit has written outbox rows (or at once if one did since last time).
    pub async fn mail_written(&self) {
        self.wake.notified().await;
    }

    /// The writer's transaction (with [`Alerts::evaluate`]) committed: the memory copy is
    /// the database's again, and the sender is woken when it wrote mail.
    pub fn committed(&self) {
        self.commit_of(Caller::Writer);
    }

    /// Like [`Alerts::committed`], for the transaction of [`Alerts::check_timers`].
    pub fn timers_committed(&self) {
        self.commit_of(Caller::Timer);
    }

    fn commit_of(&self, caller: Caller) {
        let mut book = self.lock();
        book.tentative[caller as usize] = false;
        if std::mem::take(&mut book.wrote_mail) {
            self.wake.notify_one();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the memory lock; the caller must already hold the database's write lock.
    fn book_for_writing(
        &self,
        conn: &mut SqliteConnection,
        caller: Caller,
    ) -> QueryResult<MutexGuard<'_, Book>> {
        let mut book = self.lock();
        if book.tentative.contains(&true) || !book.loaded {
            book.states.clear();
            for row in tables::load_states(conn)? {
                let entry = Entry {
                    state: row.state(),
                    detail: row.detail,
                };
                book.states
                    .entry(row.client)
                    .or_default()
                    .push((row.rule, entry));
            }
            book.loaded = true;
            book.tentative = [false; 2];
        }
        book.tentative[caller as usize] = true;
        Ok(book)
    }

    /// Evaluates newly stored samples, inside the writer's batch transaction. Call
    /// [`Alerts::committed`] once that transaction has committed.
    pub fn evaluate<'s>(
        &self,
        conn: &mut SqliteConnection,
        samples: impl IntoIterator<Item = (&'s str, &'s Sample)>,
    ) -> QueryResult<()> {
        let snapshot = self.snapshot();
        let config = &snapshot.config;
        let now = self.clock.now_ms();
        let mut book = self.book_for_writing(conn, Caller::Writer)?;
        book.clients.refresh(&snapshot);
        let mut updater = Updater {
            conn,
            book: &mut book,
            host: &self.host,
            now,
        };
        for (name, sample) in samples {
            let Some(client) = updater.book.clients.get(config, name) else {
                continue;
            };
            updater.sample_arrived(client)?;
            if machine::is_current(sample.ts, client.interval, now) {
                updater.evaluate_rules(client, sample)?;
            }
        }
        Ok(())
    }

    /// How many (client, rule) states are firing, for `STATUS=`. From memory: right after a
    /// transaction that has not committed yet it may be one off, which a status line can bear.
    pub fn firing_count(&self) -> usize {
        self.lock()
            .states
            .values()
            .flatten()
            .filter(|(_, e)| e.state.phase == Phase::Firing)
            .count()
    }

    /// Whether [`Alerts::check_timers`] has anything to do, judged from memory alone, so
    /// the timer takes the database's write lock only then (not every few seconds). A fresh
    /// clock measurement that can change nothing (right, and the rule is ok) is marked
    /// evaluated here.
    pub fn timers_due(&self) -> bool {
        let snapshot = self.snapshot();
        let config = &snapshot.config;
        let now = self.clock.now_ms();
        let book = self.lock();
        if book.tentative.contains(&true) || !book.loaded {
            return true;
        }
        let stale = book.states.iter().any(|(client, rules)| {
            rules
                .iter()
                .any(|(rule, _)| !rule_exists(config.client(client), rule))
        });
        let state_of = |client: &str, rule: &str| {
            book.states
                .get(client)
                .and_then(|rules| rules.iter().find(|(r, _)| r == rule))
                .map_or(RuleState::OK, |(_, e)| e.state)
        };
        let down = config.clients.iter().any(|client| {
            let last_seen = book
                .last_seen
                .get(&client.name)
                .copied()
                .unwrap_or(self.started_ms)
                .max(self.started_ms);
            let down = state_of(&client.name, HOST_DOWN_RULE);
            machine::check_down(down, last_seen, client.interval, now).is_some()
        });
        let mut clock = false;
        for (name, observed) in self.clock_watch.fresh() {
            let Some(client) = config.client(&name) else {
                self.clock_watch.evaluated(&name, &observed);
                continue;
            };
            let breached = skew::verdict(observed.offset_ms, client.interval).breached;
            if breached || state_of(&name, CLOCK_RULE).phase != Phase::Ok {
                clock = true;
            } else {
                self.clock_watch.evaluated(&name, &observed);
            }
        }
        stale || down || clock
    }

    /// The timer's checks, inside its own immediate transaction (then call
    /// [`Alerts::timers_committed`]): host down, the clock rule on fresh measurements, and,
    /// quietly, the states of rules and clients that config.xml no longer has resolved (no
    /// mail about a rule nobody has any more).
    pub fn check_timers(&self, conn: &mut SqliteConnection) -> QueryResult<()> {
        let snapshot = self.snapshot();
        let config = &snapshot.config;
        let now = self.clock.now_ms();
        let mut book = self.book_for_writing(conn, Caller::Timer)?;
        let mut updater = Updater {
            conn,
            book: &mut book,
            host: &self.host,
            now,
        };
        let gone: Vec<(String, String)> = updater
            .book
            .states
            .iter()
            .flat_map(|(client, rules)| rules.iter().map(move |(rule, _)| (client, rule)))
            .filter(|(client, rule)| !rule_exists(config.client(client), rule))
            .map(|(c, r)| (c.clone(), r.clone()))
            .collect();
        for (client, rule) in gone {
            tracing::info!(client = %client, rule = %rule, "{client}: {rule} resolved quietly: the rule or the client left config.xml");
            tables::delete_state(updater.conn, &client, &rule)?;
            super::incidents::resolved(updater.conn, &client, &rule, now)?;
            updater.remember(&client, &rule, ok_entry());
        }
        for client in &config.clients {
            let last_seen = updater
                .book
                .last_seen
                .get(&client.name)
                .copied()
                .unwrap_or(self.started_ms)
                .max(self.started_ms);
            updater.check_down(client, last_seen)?;
        }
        for (name, observed) in self.clock_watch.fresh() {
            if let Some(client) = config.client(&name) {
                updater.check_clock(client, &observed)?;
            }
            self.clock_watch.evaluated(&name, &observed);
        }
        Ok(())
    }

    /// What the ingest handler tells of each client's clock.
    pub fn clock_watch(&self) -> Arc<ClockWatch> {
        self.clock_watch.clone()
    }
}

/// Whether `rule` still applies to `client` (`None`: config.xml no longer has it): the
/// built-in rules apply to every client, the others while the client lists them.
fn rule_exists(client: Option<&monitor_core::config::Client>, rule: &str) -> bool {
    client.is_some_and(|c| {
        rule == HOST_DOWN_RULE
            || rule == CLOCK_RULE
            || c.alerts.iter().any(|a| a.kind.as_str() == rule)
    })
}

impl BatchHook for Alerts {
    fn in_batch(&self, conn: &mut SqliteConnection, stored: &[Committed<'_>]) -> QueryResult<()> {
        self.evaluate(conn, stored.iter().map(|c| (c.client, c.sample)))
    }

    fn committed(&self) {
        Alerts::committed(self);
    }
}
