//! [`Updater`]: how one transaction changes alert states — a sample arriving (host down
//! resolves), a sample evaluated against the client's rules, the host-down check — each
//! change written as a state row and, when it is worth one, a mail in the outbox, on the
//! caller's connection so it commits or rolls back with what caused it.
//!
//! Not here: when these run and under which locks (see [`super::evaluate`]).

use std::sync::MutexGuard;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use diesel::prelude::*;
use monitor_core::Sample;
use monitor_core::config::Client;
use monitor_core::sample::TopProcess;

use super::book::{Book, Entry, ok_entry};
use super::incidents::{self, Fired};
use super::machine::{self, Notice, Phase};
use super::mail::{self, ClientInfo, ClockMail, HostDownMail, Mail, ThresholdMail};
use super::measure::{comparison, format_span, measure};
use super::skew::{self, CLOCK_RULE, Observation};
use super::tables::{self, HOST_DOWN_RULE, NewOutboxRow};
use crate::store::read;

/// Samples shown in the "last samples" table of a mail.
const RECENT_SHOWN: usize = 5;
/// How many intervals back those samples are looked for (bounded, as this runs inside the
/// writer's transaction).
const RECENT_INTERVALS: u32 = 10;

/// The changes one transaction makes to the alert states: it holds the caller's connection
/// (inside its immediate transaction), the locked memory copy and the time, writes each
/// state change and its mail on that connection, and keeps the memory copy in step.
pub struct Updater<'a, 'b> {
    pub conn: &'a mut SqliteConnection,
    pub book: &'a mut MutexGuard<'b, Book>,
    pub host: &'a str,
    pub now: i64,
}

impl Updater<'_, '_> {
    pub fn state(&self, client: &str, rule: &str) -> Entry {
        self.book
            .states
            .get(client)
            .and_then(|rules| rules.iter().find(|(r, _)| r == rule))
            .map_or_else(ok_entry, |(_, e)| e.clone())
    }

    /// Keeps `entry` in memory, and in the table when more than the value changed.
    pub fn set_state(&mut self, client: &str, rule: &str, entry: Entry) -> QueryResult<()> {
        if !self.state(client, rule).same_stored(&entry) {
            tables::save_state(
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

    pub fn remember(&mut self, client: &str, rule: &str, entry: Entry) {
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
    pub fn sample_arrived(&mut self, client: &Client) -> QueryResult<()> {
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
            let silent_s = silence.as_secs_f64().round();
            incidents::worse(self.conn, &client.name, HOST_DOWN_RULE, silent_s, false)?;
            incidents::resolved(self.conn, &client.name, HOST_DOWN_RULE, self.now)?;
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

    pub fn evaluate_rules(&mut self, client: &Client, sample: &Sample) -> QueryResult<()> {
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
            let below = rule.kind.fires_below();
            if before.state.phase == Phase::Firing && step.state.phase == Phase::Firing {
                incidents::worse(self.conn, &client.name, name, measured.value, below)?;
            }
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
            match notice {
                Notice::Firing => incidents::fired(
                    self.conn,
                    &Fired {
                        client: &client.name,
                        rule: name,
                        now_ms: self.now,
                        value: measured.value,
                        limit: Some(rule.limit),
                        top: &top,
                    },
                )?,
                Notice::Resolved => incidents::resolved(self.conn, &client.name, name, self.now)?,
                Notice::Repeat => {}
            }
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

    /// Evaluates the built-in clock rule on a fresh measurement of the client's clock.
    pub fn check_clock(&mut self, client: &Client, observed: &Observation) -> QueryResult<()> {
        let before = self.state(&client.name, CLOCK_RULE);
        let offset = observed.offset_ms;
        let verdict = skew::verdict(offset, client.interval);
        let step = machine::advance(verdict, before.state, offset as f64 / 1000.0, self.now);
        self.set_state(
            &client.name,
            CLOCK_RULE,
            Entry {
                state: step.state,
                detail: None,
            },
        )?;
        let described = skew::describe(offset);
        match step.notice {
            Some(Notice::Firing) => tracing::warn!(
                client = %client.name, rule = %CLOCK_RULE, offset_ms = offset,
                "{}: clock {described} for {}: its samples are stored but not evaluated for alerts \
                 while it is off; check time synchronisation on the client (timedatectl)",
                client.name, format_span(Duration::from_millis((self.now - step.state.since_ms).max(0) as u64))
            ),
            Some(Notice::Resolved) => tracing::info!(
                client = %client.name, rule = %CLOCK_RULE, offset_ms = offset,
                "{}: clock right again ({described} off): clock resolved", client.name
            ),
            _ => {
                if before.state.phase == Phase::Ok && step.state.phase == Phase::Pending {
                    tracing::debug!(client = %client.name, rule = %CLOCK_RULE, offset_ms = offset,
                        "{}: clock {described}; mailed if it lasts {}", client.name,
                        format_span(skew::CLOCK_HOLD));
                }
                return Ok(());
            }
        }
        let firing = step.notice == Some(Notice::Firing);
        if firing {
            let fired = Fired {
                client: &client.name,
                rule: CLOCK_RULE,
                now_ms: self.now,
                value: offset as f64 / 1000.0,
                limit: None,
                top: &[],
            };
            incidents::fired(self.conn, &fired)?;
        } else {
            incidents::resolved(self.conn, &client.name, CLOCK_RULE, self.now)?;
        }
        let mail = mail::clock(&ClockMail {
            client: info(client),
            offset_ms: offset,
            firing,
            since_ms: if firing {
                step.state.since_ms
            } else {
                before.state.since_ms
            },
            allowed: client.interval * 2,
        });
        self.write_mail(client, CLOCK_RULE, &mail)
    }

    pub fn check_down(&mut self, client: &Client, last_seen: i64) -> QueryResult<()> {
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
        let top = self.latest_top(&client.name);
        let fired = Fired {
            client: &client.name,
            rule: HOST_DOWN_RULE,
            now_ms: self.now,
            value: down.value,
            limit: Some(machine::host_down_after(client.interval).as_secs_f64()),
            top: &top,
        };
        incidents::fired(self.conn, &fired)?;
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
    pub fn recent(&mut self, client: &Client, until_ms: i64) -> Vec<Sample> {
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
    pub fn latest_top(&mut self, client: &str) -> Vec<TopProcess> {
        match read::latest_top(self.conn, client) {
            Ok(top) => top.map(|(_, top)| top).unwrap_or_default(),
            Err(e) => {
                tracing::warn!(client = %client, "cannot read the top processes for an alert mail: {e}");
                Vec::new()
            }
        }
    }

    /// One outbox row per recipient, all with one Message-ID, in this transaction.
    pub fn write_mail(&mut self, client: &Client, rule: &str, mail: &Mail) -> QueryResult<()> {
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
        tables::insert_outbox(self.conn, &rows)?;
        tracing::info!(client = %client.name, rule = %rule, recipients = rows.len(), subject = %mail.subject,
            "{}: alert mail queued for {} recipient(s): {}", client.name, rows.len(), mail.subject);
        self.book.wrote_mail = true;
        Ok(())
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
