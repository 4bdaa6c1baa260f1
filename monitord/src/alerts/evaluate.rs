//! [`Alerts`]: the alert states of every client, kept in memory over the `alert_states`
//! table, and the two places that change them: [`Alerts::evaluate`], called by the writer
//! inside its batch transaction, and [`Alerts::check_host_down`], called by the timer inside
//! its own. Every change is written (state row, outbox rows) on the caller's connection, so
//! it commits or rolls back with the transaction that caused it.
//!
//! Locking: a caller holds SQLite's write lock (an immediate transaction) before it takes
//! the in-memory lock, always in that order, so the two never deadlock. The memory copy is
//! marked tentative until the caller reports the commit; whoever next finds it tentative
//! (while holding the write lock) reloads it from the database, which is right whether the
//! last transaction committed or rolled back.
//!
//! Not here: SMTP (see [`super::sender`]), the timer loop (see [`super::sender::run`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use diesel::prelude::*;
use monitor_core::Sample;
use monitor_core::config::Client;
use monitor_core::sample::TopProcess;
use tokio::sync::Notify;

use super::machine::{self, Notice, Phase, RuleState};
use super::mail::{self, ClientInfo, HostDownMail, Mail, ThresholdMail};
use super::measure::measure;
use super::store::{self, HOST_DOWN_RULE, NewOutboxRow};
use crate::state::{Shared, Snapshot};

/// Samples kept per client for the "last samples" table of a mail.
const RECENT_KEPT: usize = 5;

/// The alert side of monitord, shared by the writer, the timer and the sender.
#[derive(Debug)]
pub struct Alerts {
    /// The running config.xml; a reload shows here at the next evaluation.
    shared: Arc<Shared>,
    book: Mutex<Book>,
    /// Wakes the sender when a commit wrote outbox rows.
    wake: Notify,
    started_ms: i64,
    /// The domain of Message-IDs and the default From.
    host: String,
}

#[derive(Debug, Default)]
struct Book {
    /// Not-ok states by (client, rule name).
    states: HashMap<(String, String), Entry>,
    /// When each client's last sample arrived (server clock).
    last_seen: HashMap<String, i64>,
    recent: HashMap<String, VecDeque<Sample>>,
    top: HashMap<String, Vec<TopProcess>>,
    /// Changed by a transaction whose commit has not been reported yet.
    tentative: bool,
    /// Loaded from the database at least once.
    loaded: bool,
    /// The tentative changes include outbox rows.
    wrote_mail: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    state: RuleState,
    detail: Option<String>,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Alerts {
    pub fn new(shared: Arc<Shared>) -> Alerts {
        let host = gethostname::gethostname()
            .to_str()
            .filter(|h| !h.is_empty())
            .unwrap_or("localhost")
            .to_owned();
        Alerts {
            shared,
            book: Mutex::new(Book::default()),
            wake: Notify::new(),
            started_ms: now_ms(),
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

    /// Resolves once a commit has written outbox rows (or at once if one did since last time).
    pub async fn mail_written(&self) {
        self.wake.notified().await;
    }

    /// The caller's transaction committed: the memory copy is the database's again, and the
    /// sender is woken when it wrote mail.
    pub fn committed(&self) {
        let mut book = self.lock();
        book.tentative = false;
        if std::mem::take(&mut book.wrote_mail) {
            self.wake.notify_one();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the memory lock; the caller must already hold the database's write lock.
    fn book_for_writing(&self, conn: &mut SqliteConnection) -> QueryResult<MutexGuard<'_, Book>> {
        let mut book = self.lock();
        if book.tentative || !book.loaded {
            book.states = store::load_states(conn)?
                .into_iter()
                .map(|row| {
                    let entry = Entry {
                        state: row.state(),
                        detail: row.detail,
                    };
                    ((row.client, row.rule), entry)
                })
                .collect();
            book.loaded = true;
            book.tentative = false;
            book.wrote_mail = false;
        }
        book.tentative = true;
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
        let now = now_ms();
        let mut book = self.book_for_writing(conn)?;
        let mut tx = Tx {
            conn,
            book: &mut book,
            host: &self.host,
            now,
        };
        for (name, sample) in samples {
            let Some(client) = config.client(name) else {
                continue;
            };
            tx.sample_arrived(client, sample)?;
            if machine::is_current(sample.ts, client.interval, now) {
                tx.evaluate_rules(client, sample)?;
            }
        }
        Ok(())
    }

    /// The host-down timer's check, inside its own immediate transaction; also resolves,
    /// quietly, the states of rules and clients that config.xml no longer has (no mail
    /// about a rule nobody has any more).
    pub fn check_host_down(&self, conn: &mut SqliteConnection) -> QueryResult<()> {
        let snapshot = self.snapshot();
        let config = &snapshot.config;
        let now = now_ms();
        let mut book = self.book_for_writing(conn)?;
        let mut tx = Tx {
            conn,
            book: &mut book,
            host: &self.host,
            now,
        };
        let gone: Vec<(String, String)> = tx
            .book
            .states
            .keys()
            .filter(|(client, rule)| match config.client(client) {
                None => true,
                Some(c) => {
                    rule != HOST_DOWN_RULE && !c.alerts.iter().any(|a| a.kind.as_str() == rule)
                }
            })
            .cloned()
            .collect();
        for (client, rule) in gone {
            tracing::info!(client = %client, rule = %rule, "rule or client removed from config.xml, resolved quietly");
            store::delete_state(tx.conn, &client, &rule)?;
            tx.book.states.remove(&(client, rule));
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
            .get(&(client.to_owned(), rule.to_owned()))
            .cloned()
            .unwrap_or(Entry {
                state: RuleState::OK,
                detail: None,
            })
    }

    fn set_state(&mut self, client: &str, rule: &str, entry: Entry) -> QueryResult<()> {
        let key = (client.to_owned(), rule.to_owned());
        if self.book.states.get(&key) == Some(&entry)
            || (entry.state.phase == Phase::Ok && !self.book.states.contains_key(&key))
        {
            return Ok(());
        }
        store::save_state(
            self.conn,
            client,
            rule,
            &entry.state,
            entry.detail.as_deref(),
            self.now,
        )?;
        if entry.state.phase == Phase::Ok {
            self.book.states.remove(&key);
        } else {
            self.book.states.insert(key, entry);
        }
        Ok(())
    }

    /// Keeps what mails need (recent samples, latest `top`), and resolves host down.
    fn sample_arrived(&mut self, client: &Client, sample: &Sample) -> QueryResult<()> {
        let previous = self.book.last_seen.insert(client.name.clone(), self.now);
        if !client.mail.is_empty() {
            let recent = self.book.recent.entry(client.name.clone()).or_default();
            // A spool drains oldest first; keep the table in collection order regardless.
            let at = recent.partition_point(|s| s.ts <= sample.ts);
            recent.insert(at, sample.clone());
            if recent.len() > RECENT_KEPT {
                recent.pop_front();
            }
            if !sample.top.is_empty() {
                self.book
                    .top
                    .insert(client.name.clone(), sample.top.clone());
            }
        }
        let down = self.state(&client.name, HOST_DOWN_RULE);
        if let Some(silence) = machine::sample_arrived(down.state, self.now) {
            tracing::info!(client = %client.name, rule = HOST_DOWN_RULE, silence_s = silence.as_secs(), "host is up again: resolved");
            self.set_state(&client.name, HOST_DOWN_RULE, ok_entry())?;
            let recent = self.recent(&client.name);
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
                tracing::info!(
                    client = %client.name, rule = name, value = measured.value,
                    from = before.state.phase.as_str(), to = step.state.phase.as_str(),
                    "alert state changed"
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
            let recent = self.recent(&client.name);
            let top = self.book.top.get(&client.name).cloned().unwrap_or_default();
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
        tracing::warn!(client = %client.name, rule = HOST_DOWN_RULE, silence_s = down.value, "no sample: host is down");
        self.set_state(
            &client.name,
            HOST_DOWN_RULE,
            Entry {
                state: down,
                detail: None,
            },
        )?;
        let recent = self.recent(&client.name);
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

    fn recent(&self, client: &str) -> Vec<Sample> {
        self.book
            .recent
            .get(client)
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// One outbox row per recipient, all with one Message-ID, in this transaction.
    fn write_mail(&mut self, client: &Client, rule: &str, mail: &Mail) -> QueryResult<()> {
        if client.mail.is_empty() {
            return Ok(());
        }
        let message_id = message_id(self.now, self.host);
        let rows: Vec<NewOutboxRow> = client
            .mail
            .iter()
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
        tracing::info!(client = %client.name, rule, recipients = rows.len(), subject = %mail.subject, "alert mail queued");
        self.book.wrote_mail = true;
        Ok(())
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
pub fn message_id(now_ms: i64, host: &str) -> String {
    let random = getrandom::u64().unwrap_or_else(|_| now_ms as u64 ^ u64::from(std::process::id()));
    format!("<{now_ms}.{random:016x}@{host}>")
}
