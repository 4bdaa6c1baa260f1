//! [`Alerts`]: the alert states of every client, kept in memory over the `alert_states`
//! table, and the two places that change them: [`Alerts::evaluate`], called by the writer
//! inside its batch transaction, and [`Alerts::check_host_down`], called by the timer inside
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
use super::store::{self, HOST_DOWN_RULE};
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

    /// Like [`Alerts::committed`], for the transaction of [`Alerts::check_host_down`].
    pub fn host_down_committed(&self) {
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
            for row in store::load_states(conn)? {
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
        let mut tx = Updater {
            conn,
            book: &mut book,
            host: &self.host,
            now,
        };
        for (name, sample) in samples {
            let Some(client) = tx.book.clients.get(config, name) else {
                continue;
            };
            tx.sample_arrived(client)?;
            if machine::is_current(sample.ts, client.interval, now) {
                tx.evaluate_rules(client, sample)?;
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

    /// Whether [`Alerts::check_host_down`] has anything to do, judged from memory alone, so
    /// the timer takes the database's write lock only then (not every few seconds).
    pub fn host_down_due(&self) -> bool {
        let snapshot = self.snapshot();
        let config = &snapshot.config;
        let now = self.clock.now_ms();
        let book = self.lock();
        if book.tentative.contains(&true) || !book.loaded {
            return true;
        }
        let stale = book.states.iter().any(|(client, rules)| {
            let configured = config.client(client);
            rules.iter().any(|(rule, _)| match configured {
                None => true,
                Some(c) => {
                    rule != HOST_DOWN_RULE && !c.alerts.iter().any(|a| a.kind.as_str() == rule)
                }
            })
        });
        stale
            || config.clients.iter().any(|client| {
                let last_seen = book
                    .last_seen
                    .get(&client.name)
                    .copied()
                    .unwrap_or(self.started_ms)
                    .max(self.started_ms);
                let down = book
                    .states
                    .get(&client.name)
                    .and_then(|rules| rules.iter().find(|(r, _)| r == HOST_DOWN_RULE))
                    .map_or(RuleState::OK, |(_, e)| e.state);
                machine::check_down(down, last_seen, client.interval, now).is_some()
            })
    }

    /// The host-down timer's check, inside its own immediate transaction (then call
    /// [`Alerts::host_down_committed`]); also resolves,
    /// quietly, the states of rules and clients that config.xml no longer has (no mail
    /// about a rule nobody has any more).
    pub fn check_host_down(&self, conn: &mut SqliteConnection) -> QueryResult<()> {
        let snapshot = self.snapshot();
        let config = &snapshot.config;
        let now = self.clock.now_ms();
        let mut book = self.book_for_writing(conn, Caller::Timer)?;
        let mut tx = Updater {
            conn,
            book: &mut book,
            host: &self.host,
            now,
        };
        let gone: Vec<(String, String)> = tx
            .book
            .states
            .iter()
            .flat_map(|(client, rules)| rules.iter().map(move |(rule, _)| (client, rule)))
            .filter(|(client, rule)| match config.client(client) {
                None => true,
                Some(c) => {
                    *rule != HOST_DOWN_RULE && !c.alerts.iter().any(|a| a.kind.as_str() == *rule)
                }
            })
            .map(|(c, r)| (c.clone(), r.clone()))
            .collect();
        for (client, rule) in gone {
            tracing::info!(client = %client, rule = %rule, "{client}: {rule} resolved quietly: the rule or the client left config.xml");
            store::delete_state(tx.conn, &client, &rule)?;
            tx.remember(&client, &rule, ok_entry());
        }
        for client in &config.clients {
            let last_seen = tx
                .book
                .last_seen
                .get(&client.name)
                .copied()
                .unwrap_or(self.started_ms)
                .max(self.started_ms);
            tx.check_down(client, last_seen)?;
        }
        Ok(())
    }
}
impl BatchHook for Alerts {
    fn in_batch(&self, conn: &mut SqliteConnection, stored: &[Committed<'_>]) -> QueryResult<()> {
        self.evaluate(conn, stored.iter().map(|c| (c.client, c.sample)))
    }

    fn committed(&self) {
        Alerts::committed(self);
    }
}
