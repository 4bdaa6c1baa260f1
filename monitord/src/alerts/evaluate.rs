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

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use diesel::prelude::*;
use monitor_core::Sample;
use monitor_core::config::Client;
use monitor_core::sample::TopProcess;
use tokio::sync::Notify;

use super::machine::{self, Notice, Phase, RuleState};
use super::mail::{self, ClientInfo, HostDownMail, Mail, ThresholdMail};
use super::measure::{comparison, format_span, measure};
use super::store::{self, HOST_DOWN_RULE, NewOutboxRow};
use crate::clock::Clock;
use crate::state::{Shared, Snapshot};
use crate::store::batch::{BatchHook, Committed};
use crate::store::read;

/// Samples shown in the "last samples" table of a mail.
const RECENT_SHOWN: usize = 5;
/// How many intervals back those samples are looked for (bounded, as this runs inside the
/// writer's transaction).
const RECENT_INTERVALS: u32 = 10;

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

#[derive(Debug, Default)]
struct Book {
    /// Not-ok states by client, then rule name (a handful per client: a list beats a map,
    /// and a lookup by `&str` allocates nothing on the per-sample path).
    states: HashMap<String, Vec<(String, Entry)>>,
    /// Index of each client in the running config, rebuilt when a reload swaps it.
    clients: ClientIndex,
    /// When each client's last sample arrived (server clock).
    last_seen: HashMap<String, i64>,
    /// Changed by a transaction of [`Caller`] whose commit has not been reported yet.
    tentative: [bool; 2],
    /// Loaded from the database at least once.
    loaded: bool,
    /// Outbox rows were written since the sender was last woken (a spurious wake after a
    /// rollback costs one query; a missed one would delay mail).
    wrote_mail: bool,
}

/// Who changes the states, each on its own connection.
#[derive(Debug, Clone, Copy)]
enum Caller {
    Writer = 0,
    Timer = 1,
}

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    state: RuleState,
    detail: Option<String>,
}

impl Entry {
    /// Whether `other` differs in what is stored: the value alone changes with every sample
    /// and is kept in memory only (the table holds the value at the last change).
    fn same_stored(&self, other: &Entry) -> bool {
        let (a, b) = (&self.state, &other.state);
        a.phase == b.phase
            && a.since_ms == b.since_ms
            && a.notified_ms == b.notified_ms
            && self.detail == other.detail
    }
}

#[derive(Debug, Default)]
struct ClientIndex {
    /// The snapshot the index was built for (by address; a reload makes a new one).
    built_for: usize,
    by_name: HashMap<String, usize>,
}

impl ClientIndex {
    fn refresh(&mut self, snapshot: &Arc<Snapshot>) {
        let id = Arc::as_ptr(snapshot) as usize;
        if self.built_for != id {
            self.by_name = snapshot
                .config
                .clients
                .iter()
                .enumerate()
                .map(|(i, c)| (c.name.clone(), i))
                .collect();
            self.built_for = id;
        }
    }

    fn get<'c>(&self, config: &'c monitor_core::config::Config, name: &str) -> Option<&'c Client> {
        self.by_name.get(name).and_then(|&i| config.clients.get(i))
    }
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
        let mut tx = Tx {
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
        let mut tx = Tx {
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

/// One transaction's view: the connection, the locked memory copy, the time.
struct Tx<'a, 'b> {
    conn: &'a mut SqliteConnection,
    book: &'a mut MutexGuard<'b, Book>,
    host: &'a str,
    now: i64,
}

impl Tx<'_, '_> {
    fn state(&self, client: &str, rule: &str) -> Entry {
        self.book
            .states
            .get(client)
            .and_then(|rules| rules.iter().find(|(r, _)| r == rule))
            .map_or_else(ok_entry, |(_, e)| e.clone())
    }

    /// Keeps `entry` in memory, and in the table when more than the value changed.
    fn set_state(&mut self, client: &str, rule: &str, entry: Entry) -> QueryResult<()> {
        if !self.state(client, rule).same_stored(&entry) {
            store::save_state(
                self.conn,
                client,
                rule,
                &entry.state,
                entry.detail.as_deref(),
                self.now,
            )?;
        }
        self.remember(client, rule, entry);
        Ok(())
    }

    fn remember(&mut self, client: &str, rule: &str, entry: Entry) {
        let ok = entry.state.phase == Phase::Ok;
        let Some(rules) = self.book.states.get_mut(client) else {
            if !ok {
                let rules = vec![(rule.to_owned(), entry)];
                self.book.states.insert(client.to_owned(), rules);
            }
            return;
        };
        match rules.iter().position(|(r, _)| r == rule) {
            Some(i) if ok => {
                rules.swap_remove(i);
            }
            Some(i) => rules[i].1 = entry,
            None if ok => {}
            None => rules.push((rule.to_owned(), entry)),
        }
        if rules.is_empty() {
            self.book.states.remove(client);
        }
    }

    /// Notes when the client was last heard from, and resolves host down.
    fn sample_arrived(&mut self, client: &Client) -> QueryResult<()> {
        let previous = match self.book.last_seen.get_mut(&client.name) {
            Some(seen) => Some(std::mem::replace(seen, self.now)),
            None => {
                self.book.last_seen.insert(client.name.clone(), self.now);
                None
            }
        };
        let down = self.state(&client.name, HOST_DOWN_RULE);
        if let Some(silence) = machine::sample_arrived(down.state, self.now) {
            tracing::info!(client = %client.name, rule = %HOST_DOWN_RULE, silence_s = silence.as_secs(), "{}: up again after {}: host down resolved", client.name, format_span(silence));
            self.set_state(&client.name, HOST_DOWN_RULE, ok_entry())?;
            let recent = self.recent(client, self.now);
            let mail = mail::host_down(&HostDownMail {
                client: info(client),
                silence,
                down: false,
                last_seen_ms: previous.unwrap_or(down.state.since_ms),
                threshold: machine::host_down_after(client.interval),
                recent: &recent,
            });
            self.write_mail(client, HOST_DOWN_RULE, &mail)?;
        }
        Ok(())
    }

    fn evaluate_rules(&mut self, client: &Client, sample: &Sample) -> QueryResult<()> {
        for rule in &client.alerts {
            let Some(measured) = measure(rule.kind, sample) else {
                continue;
            };
            let name = rule.kind.as_str();
            let before = self.state(&client.name, name);
            let step = machine::step(rule, before.state, measured.value, self.now);
            if step.state.phase != before.state.phase {
                let to = step.state.phase;
                let what = match &measured.mount {
                    Some(mount) => format!("{name} {mount}"),
                    None => name.to_owned(),
                };
                tracing::info!(
                    client = %client.name, rule = %name, value = measured.value,
                    from = %before.state.phase.as_str(), to = %to.as_str(),
                    "{}: {what} {}, {}", client.name, to.as_str(),
                    comparison(rule, measured.value, to == Phase::Ok)
                );
            }
            self.set_state(
                &client.name,
                name,
                Entry {
                    state: step.state,
                    detail: measured.mount.clone(),
                },
            )?;
            let Some(notice) = step.notice else {
                continue;
            };
            let recent = self.recent(client, self.now);
            // The sample's own `top` is the freshest; the stored one (written at most every
            // few seconds per client) covers samples that carry none.
            let top = if sample.top.is_empty() {
                self.latest_top(&client.name)
            } else {
                sample.top.clone()
            };
            let since_ms = if notice == Notice::Resolved {
                before.state.since_ms
            } else {
                step.state.since_ms
            };
            let mail = mail::threshold(&ThresholdMail {
                client: info(client),
                rule,
                notice,
                measure: &measured,
                since_ms,
                now_ms: self.now,
                recent: &recent,
                top: &top,
            });
            self.write_mail(client, name, &mail)?;
        }
        Ok(())
    }

    fn check_down(&mut self, client: &Client, last_seen: i64) -> QueryResult<()> {
        let before = self.state(&client.name, HOST_DOWN_RULE);
        let Some(down) = machine::check_down(before.state, last_seen, client.interval, self.now)
        else {
            return Ok(());
        };
        tracing::warn!(client = %client.name, rule = %HOST_DOWN_RULE, silence_s = down.value, "{}: host down, no sample for {}", client.name,
            format_span(Duration::from_secs(down.value.max(0.0) as u64)));
        self.set_state(
            &client.name,
            HOST_DOWN_RULE,
            Entry {
                state: down,
                detail: None,
            },
        )?;
        let recent = self.recent(client, last_seen);
        let mail = mail::host_down(&HostDownMail {
            client: info(client),
            silence: Duration::from_millis((self.now - last_seen).max(0) as u64),
            down: true,
            last_seen_ms: last_seen,
            threshold: machine::host_down_after(client.interval),
            recent: &recent,
        });
        self.write_mail(client, HOST_DOWN_RULE, &mail)
    }

    /// The client's last few stored samples up to `until_ms`, from the database (so they survive a restart;
    /// this transaction's own samples are already there). Mail goes out without them rather
    /// than not at all when they cannot be read.
    fn recent(&mut self, client: &Client, until_ms: i64) -> Vec<Sample> {
        let window = (client.interval * RECENT_INTERVALS).max(Duration::from_secs(60));
        let since = until_ms - window.as_millis() as i64;
        let client = client.name.as_str();
        match read::samples_since(self.conn, client, since) {
            Ok(samples) => {
                let mut samples = samples.unwrap_or_default();
                let keep = samples.len().saturating_sub(RECENT_SHOWN);
                samples.drain(..keep);
                samples
            }
            Err(e) => {
                tracing::warn!(client = %client, "cannot read recent samples for an alert mail: {e}");
                Vec::new()
            }
        }
    }

    /// The latest `top` monitord keeps for the client.
    fn latest_top(&mut self, client: &str) -> Vec<TopProcess> {
        match read::latest_top(self.conn, client) {
            Ok(top) => top.map(|(_, top)| top).unwrap_or_default(),
            Err(e) => {
                tracing::warn!(client = %client, "cannot read the top processes for an alert mail: {e}");
                Vec::new()
            }
        }
    }

    /// One outbox row per recipient, all with one Message-ID, in this transaction.
    fn write_mail(&mut self, client: &Client, rule: &str, mail: &Mail) -> QueryResult<()> {
        if client.mail.is_empty() {
            return Ok(());
        }
        let message_id = message_id(self.now, self.host);
        // An address listed twice gets the mail once (and would break the outbox's
        // (message_id, recipient) key, failing the whole batch of samples).
        let mut recipients: Vec<&String> = Vec::with_capacity(client.mail.len());
        for to in &client.mail {
            if !recipients.iter().any(|r| r.eq_ignore_ascii_case(to)) {
                recipients.push(to);
            }
        }
        let rows: Vec<NewOutboxRow> = recipients
            .into_iter()
            .map(|to| NewOutboxRow {
                message_id: &message_id,
                recipient: to,
                client: &client.name,
                rule,
                subject: &mail.subject,
                body: &mail.body,
                created_ms: self.now,
                next_attempt_ms: self.now,
            })
            .collect();
        store::insert_outbox(self.conn, &rows)?;
        tracing::info!(client = %client.name, rule = %rule, recipients = rows.len(), subject = %mail.subject,
            "{}: alert mail queued for {} recipient(s): {}", client.name, rows.len(), mail.subject);
        self.book.wrote_mail = true;
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

fn ok_entry() -> Entry {
    Entry {
        state: RuleState::OK,
        detail: None,
    }
}

fn info(client: &Client) -> ClientInfo<'_> {
    ClientInfo {
        name: &client.name,
        address: &client.ip,
    }
}

/// `<1795839120000.9f2c4e1a7b3d5c60@host>`: unique without coordination, fixed at insert.
/// The counter makes two ids of one process differ even if the random source fails.
pub fn message_id(now_ms: i64, host: &str) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let random = getrandom::u64().unwrap_or(u64::from(std::process::id()));
    format!("<{now_ms}.{seq}.{random:016x}@{host}>")
}
