//! [`Recent`]: each client's newest sample and its last hour of CPU, in memory, kept current
//! by the writer's seam ([`BatchHook`]) as batches commit, so the fleet listing (the API's
//! clients, `/metrics`, the fleet page and its sparklines) reads no sample from the database.
//! Read from the store, the listing cost one newest-sample read per client (60–170 ms for
//! 500 clients in `xtask bench history`) and a sparkline 5 ms per client.
//!
//! Seeded from the database: [`Recent::seed`] reads a client's newest sample (and, when
//! asked, its last hour) the first time it is needed; monitord seeds every client's newest
//! sample before it serves and their hours in the background. A sample committed meanwhile
//! wins over what a seed read, by `ts`, so the seed can never hide a newer sample.
//!
//! Not here: alert states (one small table, read with the listing) or anything older than an
//! hour (the history tiers, [`super::history::series`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use diesel::SqliteConnection;
use diesel::result::QueryResult;
use monitor_core::Sample;
use monitor_core::config::History;

use super::batch::{BatchHook, Committed};
use super::history::series::{self, Point};
use super::{StoreError, read, stored};

pub const HOUR_MS: i64 = 3_600_000;
const MINUTE_MS: i64 = 60_000;

/// What the fleet listing knows of every client, in memory.
#[derive(Debug, Default)]
pub struct Recent {
    clients: RwLock<HashMap<String, ClientRecent>>,
    /// What the batch being written stored, by client: published when it commits (a batch
    /// that rolls back never reaches [`BatchHook::committed`], and the next batch's
    /// [`BatchHook::in_batch`] starts this afresh).
    pending: Mutex<HashMap<String, Batch>>,
}

#[derive(Debug, Default)]
struct ClientRecent {
    latest: Option<Arc<Sample>>,
    /// CPU by minute (start of the minute → its samples), at most an hour behind `latest`.
    cpu: BTreeMap<i64, Minute>,
    /// The database was asked for this client's newest sample / its last hour.
    latest_seeded: bool,
    hour_seeded: bool,
}

/// One client's share of a batch: its newest sample, whole, and every sample's CPU, so a
/// spool of a thousand samples costs one copy of a sample, not a thousand.
#[derive(Debug)]
struct Batch {
    newest: Sample,
    cpu: Vec<(i64, f64)>,
}

#[derive(Debug, Clone, Copy)]
struct Minute {
    sum: f64,
    count: u32,
    min: f64,
    max: f64,
}

impl Minute {
    fn of(value: f64) -> Minute {
        Minute {
            sum: value,
            count: 1,
            min: value,
            max: value,
        }
    }

    fn add(&mut self, value: f64) {
        self.sum += value;
        self.count += 1;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }
}

impl ClientRecent {
    /// Takes a committed batch's samples in: the newest (if it is newer) and each one's CPU.
    fn add(&mut self, batch: Batch) {
        for (ts, cpu) in batch.cpu {
            self.cpu
                .entry(ts.div_euclid(MINUTE_MS) * MINUTE_MS)
                .and_modify(|m| m.add(cpu))
                .or_insert_with(|| Minute::of(cpu));
        }
        if self.latest.as_ref().is_none_or(|l| batch.newest.ts > l.ts) {
            // As a read from the store would give it, whichever way it came in.
            self.latest = Some(Arc::new(stored::as_stored(&batch.newest)));
        }
        self.trim();
    }

    /// Drops the minutes more than an hour older than the newest sample.
    fn trim(&mut self) {
        if let Some(newest) = self.latest.as_ref().map(|l| l.ts) {
            let oldest = (newest - HOUR_MS).div_euclid(MINUTE_MS) * MINUTE_MS;
            self.cpu = self.cpu.split_off(&oldest);
        }
    }
}

impl Recent {
    pub fn new() -> Recent {
        Recent::default()
    }

    /// `name`'s newest sample, `None` if it never sent one. Reads the database only the first
    /// time a client is asked for (and its last hour too when `hour` is set).
    pub fn latest(
        &self,
        conn: &mut SqliteConnection,
        name: &str,
        hour: Option<(Duration, &History, i64)>,
    ) -> Result<Option<Arc<Sample>>, StoreError> {
        self.seed(conn, name, hour)?;
        Ok(self.read(name, |c| c.latest.clone()).flatten())
    }

    /// `name`'s CPU over the hour before `now`: one point a minute (middle of the minute,
    /// average, min, max), oldest first, from the minute that holds `now` − 1 h on. Empty
    /// until the hour is seeded or samples arrive.
    pub fn cpu_hour(&self, name: &str, now: i64) -> Vec<Point> {
        let first = (now - HOUR_MS).div_euclid(MINUTE_MS) * MINUTE_MS;
        self.read(name, |c| {
            c.cpu
                .range(first..=now)
                .map(|(&t, m)| (t + MINUTE_MS / 2, m.sum / f64::from(m.count), m.min, m.max))
                .collect()
        })
        .unwrap_or_default()
    }

    fn read<T>(&self, name: &str, f: impl FnOnce(&ClientRecent) -> T) -> Option<T> {
        self.clients
            .read()
            .expect("recent lock poisoned")
            .get(name)
            .map(f)
    }

    /// Reads from the database what is not in memory yet of `name`: its newest sample, and
    /// with `hour` = (its interval, the history tiers, now) the hour before now, minute by
    /// minute. Minutes that samples committed since have filled are kept as they are.
    pub fn seed(
        &self,
        conn: &mut SqliteConnection,
        name: &str,
        hour: Option<(Duration, &History, i64)>,
    ) -> Result<(), StoreError> {
        let (latest_done, hour_done) = self
            .read(name, |c| (c.latest_seeded, c.hour_seeded))
            .unwrap_or((false, false));
        if latest_done && (hour_done || hour.is_none()) {
            // The usual case once started: nothing to read, no write lock.
            return Ok(());
        }
        let latest = if latest_done {
            None
        } else {
            read::latest(conn, name)?
        };
        let minutes = match hour {
            Some((interval, history, now)) if !hour_done => {
                // Minute buckets (or the interval's multiple nearest above) from the minute
                // that holds now − 1 h to now, inclusive: 62 at most.
                let first = (now - HOUR_MS).div_euclid(MINUTE_MS) * MINUTE_MS;
                let range = (first, now + 1, HOUR_MS / MINUTE_MS + 2);
                let points = series::series(conn, name, interval, history, range, now)?
                    .and_then(|mut s| s.series.remove("cpu_percent"))
                    .unwrap_or_default();
                Some(points)
            }
            _ => None,
        };
        let mut clients = self.clients.write().expect("recent lock poisoned");
        let client = clients.entry(name.to_owned()).or_default();
        if !latest_done {
            client.latest_seeded = true;
            if let Some(sample) = latest {
                if client.latest.as_ref().is_none_or(|l| sample.ts > l.ts) {
                    client.latest = Some(Arc::new(sample));
                }
            }
        }
        if let Some(points) = minutes {
            client.hour_seeded = true;
            for (ts, avg, min, max) in points {
                let minute = ts.div_euclid(MINUTE_MS) * MINUTE_MS;
                client.cpu.entry(minute).or_insert(Minute {
                    sum: avg,
                    count: 1,
                    min,
                    max,
                });
            }
        }
        client.trim();
        Ok(())
    }
}

impl BatchHook for Recent {
    fn in_batch(&self, _conn: &mut SqliteConnection, stored: &[Committed<'_>]) -> QueryResult<()> {
        let mut pending = self.pending.lock().expect("recent lock poisoned");
        pending.clear();
        for c in stored {
            let (ts, cpu) = (c.sample.ts, c.sample.cpu_percent);
            match pending.get_mut(c.client) {
                Some(batch) => {
                    batch.cpu.push((ts, cpu));
                    if ts > batch.newest.ts {
                        batch.newest = c.sample.clone();
                    }
                }
                None => {
                    let batch = Batch {
                        newest: c.sample.clone(),
                        cpu: vec![(ts, cpu)],
                    };
                    pending.insert(c.client.to_owned(), batch);
                }
            }
        }
        Ok(())
    }

    fn committed(&self) {
        let pending = std::mem::take(&mut *self.pending.lock().expect("recent lock poisoned"));
        if pending.is_empty() {
            return;
        }
        let mut clients = self.clients.write().expect("recent lock poisoned");
        for (name, batch) in pending {
            clients.entry(name).or_default().add(batch);
        }
    }
}

#[cfg(test)]
mod tests {
    use diesel::Connection as _;

    use super::*;

    fn sample(ts: i64, cpu: f64) -> Sample {
        let mut json = testkit::monitord::sample("i", ts / 1000, ts);
        json["cpu_percent"] = cpu.into();
        serde_json::from_value(json).unwrap()
    }

    fn batch(recent: &Recent, samples: &[Sample]) {
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        let stored: Vec<Committed<'_>> = samples
            .iter()
            .map(|sample| Committed {
                client_id: 1,
                client: "web1",
                sample,
            })
            .collect();
        recent.in_batch(&mut conn, &stored).unwrap();
    }

    #[test]
    fn only_committed_batches_count_and_the_newest_ts_wins() {
        let recent = Recent::new();
        let t = 1_800_000_000_000 - 1_800_000_000_000 % HOUR_MS;
        // Rolled back: in_batch ran, committed never did.
        batch(&recent, &[sample(t + 50_000, 99.0)]);
        batch(
            &recent,
            &[sample(t + 10_000, 10.0), sample(t + 20_000, 30.0)],
        );
        recent.committed();
        assert_eq!(
            recent.read("web1", |c| c.latest.as_ref().unwrap().ts),
            Some(t + 20_000)
        );
        // A spool draining an older sample leaves the newest alone but counts in its minute.
        batch(&recent, &[sample(t + 5_000, 50.0)]);
        recent.committed();
        assert_eq!(
            recent.read("web1", |c| c.latest.as_ref().unwrap().ts),
            Some(t + 20_000)
        );
        assert_eq!(
            recent.cpu_hour("web1", t + 60_000),
            [(t + 30_000, 30.0, 10.0, 50.0)]
        );
        // An hour later the first minute has gone.
        batch(&recent, &[sample(t + HOUR_MS + 60_000, 70.0)]);
        recent.committed();
        let hour = recent.cpu_hour("web1", t + HOUR_MS + 60_000);
        assert_eq!(hour, [(t + HOUR_MS + 90_000, 70.0, 70.0, 70.0)]);
        assert!(recent.cpu_hour("nobody", t).is_empty());
    }
}
