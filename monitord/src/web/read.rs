//! What the web listener reads from the database, on read-only connections of its own
//! ([`store::open_read_only`]: they can neither write nor checkpoint, so nothing on this
//! listener can change the database), kept in a small pool.
//!
//! Callers run these on actix's blocking pool (`web::block`), never on a worker thread, so a
//! slow query never stalls the listener. Samples come through [`store::read`]; the alert
//! tables through [`crate::alerts::tables`]'s definitions. Not here: JSON or metric shapes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use monitor_core::Sample;
use monitor_core::config::Config;

use crate::alerts::tables::{HOST_DOWN_RULE, OutboxRow, StateRow, load_states, outbox};
use crate::store::recent::Recent;
use crate::store::{self, StoreError};

/// Idle connections kept for the next request; more may be open while requests overlap.
const IDLE_MAX: usize = 4;

/// Read-only connections to the database, opened on demand and reused.
pub struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<SqliteConnection>>,
}

impl std::fmt::Debug for ReadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadPool")
            .field("path", &self.path)
            .finish()
    }
}

impl ReadPool {
    pub fn new(path: PathBuf) -> ReadPool {
        ReadPool {
            path,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `f` on a read-only connection. Blocking: call it from the blocking pool.
    pub fn with<T>(
        &self,
        f: impl FnOnce(&mut SqliteConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let idle = self.idle.lock().expect("pool lock poisoned").pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => store::open_read_only(&self.path)?,
        };
        let result = f(&mut conn);
        // A connection whose query failed may be in a bad state: let it go.
        if result.is_ok() {
            let mut idle = self.idle.lock().expect("pool lock poisoned");
            if idle.len() < IDLE_MAX {
                idle.push(conn);
            }
        }
        result
    }
}

/// One client of config.xml with what the database knows of it.
#[derive(Debug, Clone)]
pub struct ClientView {
    pub name: String,
    pub ip: String,
    pub interval_s: u64,
    pub tags: Vec<String>,
    /// The alert rules config.xml gives it (`memory`, `cpu`, …), without the built-in ones.
    pub rules: Vec<String>,
    pub latest: Option<Arc<Sample>>,
    /// Its rules that are not ok (pending or firing), built-in ones included.
    pub alerts: Vec<StateRow>,
}

impl ClientView {
    /// `never` (no sample), `down` (the host-down rule fires), else the worst phase of its
    /// rules: `firing`, `pending` or `ok`.
    pub fn state(&self) -> &'static str {
        let phase = |p: &str| self.alerts.iter().any(|a| a.phase == p);
        if self.latest.is_none() {
            "never"
        } else if self
            .alerts
            .iter()
            .any(|a| a.rule == HOST_DOWN_RULE && a.phase == "firing")
        {
            "down"
        } else if phase("firing") {
            "firing"
        } else if phase("pending") {
            "pending"
        } else {
            "ok"
        }
    }
}

/// Every client of `config`, in config.xml order, with its latest sample (from memory,
/// [`Recent`]) and alert states. With `hour_at` = now, each client's last hour is made ready
/// in [`Recent`] too, for a sparkline.
pub fn fleet(
    conn: &mut SqliteConnection,
    config: &Config,
    recent: &Recent,
    hour_at: Option<i64>,
) -> Result<Vec<ClientView>, StoreError> {
    let mut states: HashMap<String, Vec<StateRow>> = HashMap::new();
    for row in load_states(conn)? {
        states.entry(row.client.clone()).or_default().push(row);
    }
    let mut out = Vec::with_capacity(config.clients.len());
    for c in &config.clients {
        out.push(ClientView {
            name: c.name.clone(),
            ip: c.ip.clone(),
            interval_s: c.interval.as_secs(),
            tags: c.tags.clone(),
            rules: c
                .alerts
                .iter()
                .map(|r| r.kind.as_str().to_owned())
                .collect(),
            latest: recent.latest(
                conn,
                &c.name,
                hour_at.map(|now| (c.interval, &config.history, now)),
            )?,
            alerts: states.remove(&c.name).unwrap_or_default(),
        });
    }
    Ok(out)
}

/// Every alert state that is not ok, by client and rule.
pub fn alert_states(conn: &mut SqliteConnection) -> Result<Vec<StateRow>, StoreError> {
    Ok(load_states(conn)?)
}

/// Outbox rows written at or after `since_ms`, newest first (at most `limit`).
pub fn outbox_since(
    conn: &mut SqliteConnection,
    since_ms: i64,
    limit: i64,
) -> Result<Vec<OutboxRow>, StoreError> {
    Ok(outbox::table
        .filter(outbox::created_ms.ge(since_ms))
        .order(outbox::id.desc())
        .limit(limit)
        .select(OutboxRow::as_select())
        .load(conn)?)
}

#[derive(QueryableByName)]
struct StatusCount {
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Number {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// What `/metrics` reads besides the clients: outbox rows by status, the database's size.
#[derive(Debug, Clone, Default)]
pub struct Health {
    pub outbox: HashMap<String, i64>,
    pub database_bytes: i64,
}

pub fn health(conn: &mut SqliteConnection) -> Result<Health, StoreError> {
    let outbox = diesel::sql_query("SELECT status, COUNT(*) AS n FROM outbox GROUP BY status")
        .load::<StatusCount>(conn)?
        .into_iter()
        .map(|r| (r.status, r.n))
        .collect();
    let database_bytes = diesel::sql_query(
        "SELECT page_count * page_size AS n FROM pragma_page_count(), pragma_page_size()",
    )
    .get_result::<Number>(conn)?
    .n;
    Ok(Health {
        outbox,
        database_bytes,
    })
}
