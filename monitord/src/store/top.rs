//! The latest `top` of each client, kept in the `client_top` table (not per sample).
//!
//! Rewriting a client's row for every sample would be the writer's second-largest write
//! under a flood (a spool draining, a benchmark), so the writer keeps the newest `top` per
//! client in memory and writes a client's row at most every [`TOP_EVERY`], plus whatever is
//! still unwritten once the queue goes quiet. Agents sending every 10 s or more see each of
//! their samples' `top` written. Alert mail takes `top` from the batch's own samples, so it
//! is never behind.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use monitor_core::sample::TopProcess;

use super::batch::Committed;

/// How often at most one client's row is rewritten.
pub const TOP_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Latest {
    ts: i64,
    top: Vec<TopProcess>,
    /// Newer than what the table holds.
    dirty: bool,
    written_at: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct LatestTops {
    clients: HashMap<i64, Latest>,
}

impl LatestTops {
    /// Takes the newest `top` of each client from newly stored samples (by `ts`: a draining
    /// spool sends old samples late).
    pub fn record(&mut self, committed: &[Committed]) {
        for c in committed.iter().filter(|c| !c.sample.top.is_empty()) {
            let latest = self.clients.entry(c.client_id).or_insert(Latest {
                ts: i64::MIN,
                top: Vec::new(),
                dirty: false,
                written_at: None,
            });
            if c.sample.ts >= latest.ts {
                latest.ts = c.sample.ts;
                latest.top.clone_from(&c.sample.top);
                latest.dirty = true;
            }
        }
    }

    pub fn has_unwritten(&self) -> bool {
        self.clients.values().any(|l| l.dirty)
    }

    /// Upserts the rows that are due (all unwritten ones with `all`); returns the clients
    /// written, to pass to [`LatestTops::written`] once the transaction has committed.
    pub fn write_due(
        &self,
        conn: &mut SqliteConnection,
        now: Instant,
        all: bool,
    ) -> QueryResult<Vec<i64>> {
        let mut written = Vec::new();
        for (&client_id, latest) in &self.clients {
            let due = latest.dirty
                && (all
                    || latest
                        .written_at
                        .is_none_or(|at| now.duration_since(at) >= TOP_EVERY));
            if !due {
                continue;
            }
            let top = serde_json::to_string(&latest.top).expect("top processes serialize");
            diesel::sql_query(
                "INSERT INTO client_top (client_id, ts, top) VALUES (?, ?, ?) \
                 ON CONFLICT (client_id) DO UPDATE SET ts = excluded.ts, top = excluded.top \
                 WHERE excluded.ts >= client_top.ts",
            )
            .bind::<BigInt, _>(client_id)
            .bind::<BigInt, _>(latest.ts)
            .bind::<Text, _>(top)
            .execute(conn)?;
            written.push(client_id);
        }
        Ok(written)
    }

    pub fn written(&mut self, clients: &[i64], now: Instant) {
        for id in clients {
            if let Some(latest) = self.clients.get_mut(id) {
                latest.dirty = false;
                latest.written_at = Some(now);
            }
        }
    }

    /// After a rolled-back batch: what it recorded came from samples that were not stored.
    pub fn forget(&mut self) {
        self.clients.clear();
    }
}
