//! Reading stored samples back, from both tiers, for the operator commands (and for alert
//! mail, which quotes recent samples and the latest `top`). Everything here only reads, so it
//! is safe while monitord runs: in WAL mode a reader never blocks the writer.
//!
//! Not here: rounding or layouts (see [`super::stored`], [`super::codec`]).

use std::collections::HashMap;

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use monitor_core::Sample;
use monitor_core::sample::TopProcess;

use super::StoreError;
use super::codec::{PackedRow, decode_block};
use super::schema::{
    RawRow, client_top, clients, disks, instances, metas, raw_samples, sample_blocks,
};
use super::stored::{Meta, NamedDisk, to_sample};

/// A client known to the database and its newest sample, if any.
#[derive(Debug, Clone)]
pub struct ClientLatest {
    pub name: String,
    pub latest: Option<Sample>,
}

/// What `monitord stats` shows.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Stats {
    pub clients: i64,
    /// Stored samples over all tiers.
    pub samples: i64,
    /// Size of the main database file in use (pages × page size).
    pub db_bytes: i64,
    pub bytes_per_sample: f64,
}

/// Turns ids back into names for one client's rows.
struct Names {
    instances: HashMap<i64, String>,
    disks: HashMap<i64, (String, String)>,
    metas: HashMap<i64, Meta>,
}

impl Names {
    fn load(conn: &mut SqliteConnection, client_id: i64) -> Result<Names, StoreError> {
        let instances = instances::table
            .filter(instances::client_id.eq(client_id))
            .select((instances::id, instances::name))
            .load::<(i64, String)>(conn)?
            .into_iter()
            .collect();
        let disks = disks::table
            .filter(disks::client_id.eq(client_id))
            .select((disks::id, disks::mount, disks::fs))
            .load::<(i64, String, String)>(conn)?
            .into_iter()
            .map(|(id, m, f)| (id, (m, f)))
            .collect();
        Ok(Names {
            instances,
            disks,
            metas: HashMap::new(),
        })
    }

    fn sample(
        &mut self,
        conn: &mut SqliteConnection,
        row: PackedRow,
    ) -> Result<Sample, StoreError> {
        if let std::collections::hash_map::Entry::Vacant(slot) = self.metas.entry(row.meta_id) {
            let (hostname, os, agent) = metas::table
                .find(row.meta_id)
                .select((metas::hostname, metas::os, metas::agent))
                .first::<(Option<String>, Option<String>, Option<String>)>(conn)?;
            slot.insert(Meta {
                hostname,
                os,
                agent,
            });
        }
        let meta = &self.metas[&row.meta_id];
        let instance = self
            .instances
            .get(&row.instance_id)
            .cloned()
            .unwrap_or_default();
        let disks = row.disks.into_iter().map(|d| {
            let (mount, fs) = self.disks.get(&d.disk_id).cloned().unwrap_or_default();
            NamedDisk {
                mount,
                fs,
                total: d.total,
                used: d.used,
                avail: d.avail,
            }
        });
        Ok(to_sample(instance, row.seq, meta, &row.values, disks))
    }
}

/// Raw rows and packed rows of one client with `from_ms <= ts < to_ms`, oldest first.
pub fn rows_between(
    conn: &mut SqliteConnection,
    client_id: i64,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<PackedRow>, StoreError> {
    let client_instances = instances::table
        .filter(instances::client_id.eq(client_id))
        .select(instances::id);
    let mut rows = Vec::new();
    for raw in raw_samples::table
        .filter(raw_samples::instance_id.eq_any(client_instances))
        .filter(raw_samples::ts.ge(from_ms))
        .filter(raw_samples::ts.lt(to_ms))
        .select(RawRow::as_select())
        .load(conn)?
    {
        rows.push(raw.into_packed()?);
    }
    let blocks = sample_blocks::table
        .filter(sample_blocks::client_id.eq(client_id))
        .filter(sample_blocks::ts_max.ge(from_ms))
        .filter(sample_blocks::ts_min.lt(to_ms))
        .select(sample_blocks::data)
        .load::<Vec<u8>>(conn)?;
    for data in blocks {
        rows.extend(
            decode_block(&data)?
                .into_iter()
                .filter(|r| r.values.ts >= from_ms && r.values.ts < to_ms),
        );
    }
    rows.sort_by_key(|r| (r.values.ts, r.instance_id, r.seq));
    Ok(rows)
}

/// A lower bound of the first `ts` at or after `from_ms` among one client's samples (exact
/// for raw rows; for a packed block that reaches past `from_ms`, its start or `from_ms`):
/// where a pass looking for data may skip to.
pub fn first_ts_at_or_after(
    conn: &mut SqliteConnection,
    client_id: i64,
    from_ms: i64,
) -> Result<Option<i64>, StoreError> {
    let client_instances = instances::table
        .filter(instances::client_id.eq(client_id))
        .select(instances::id);
    let raw = raw_samples::table
        .filter(raw_samples::instance_id.eq_any(client_instances))
        .filter(raw_samples::ts.ge(from_ms))
        .select(diesel::dsl::min(raw_samples::ts))
        .first::<Option<i64>>(conn)?;
    let packed = sample_blocks::table
        .filter(sample_blocks::client_id.eq(client_id))
        .filter(sample_blocks::ts_max.ge(from_ms))
        .select(diesel::dsl::min(sample_blocks::ts_min))
        .first::<Option<i64>>(conn)?
        .map(|ts| ts.max(from_ms));
    Ok(match (raw, packed) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

/// The id the database gives client `name`, if it has seen it.
pub fn client_id(conn: &mut SqliteConnection, name: &str) -> Result<Option<i64>, StoreError> {
    Ok(clients::table
        .filter(clients::name.eq(name))
        .select(clients::id)
        .first(conn)
        .optional()?)
}

/// The mount of each of a client's disk ids.
pub fn disk_mounts(
    conn: &mut SqliteConnection,
    client_id: i64,
) -> Result<HashMap<i64, String>, StoreError> {
    Ok(disks::table
        .filter(disks::client_id.eq(client_id))
        .select((disks::id, disks::mount))
        .load::<(i64, String)>(conn)?
        .into_iter()
        .collect())
}

/// Every stored sample of client `name` collected at or after `since_ms`, oldest first;
/// `None` when the database has never seen the client.
pub fn samples_since(
    conn: &mut SqliteConnection,
    name: &str,
    since_ms: i64,
) -> Result<Option<Vec<Sample>>, StoreError> {
    let Some(id) = client_id(conn, name)? else {
        return Ok(None);
    };
    let mut names = Names::load(conn, id)?;
    let rows = rows_between(conn, id, since_ms, i64::MAX)?;
    let mut samples = Vec::with_capacity(rows.len());
    for row in rows {
        samples.push(names.sample(conn, row)?);
    }
    Ok(Some(samples))
}

/// The newest sample of one client, from whichever tier holds it.
pub fn latest(conn: &mut SqliteConnection, name: &str) -> Result<Option<Sample>, StoreError> {
    let Some(id) = client_id(conn, name)? else {
        return Ok(None);
    };
    let client_instances = instances::table
        .filter(instances::client_id.eq(id))
        .select(instances::id);
    let raw = raw_samples::table
        .filter(raw_samples::instance_id.eq_any(client_instances))
        .order(raw_samples::ts.desc())
        .select(RawRow::as_select())
        .first(conn)
        .optional()?;
    let mut best = raw.map(RawRow::into_packed).transpose()?;
    // The newest block is read and decoded only when it holds something newer than the
    // newest raw row: while a host reports, its newest samples are raw (compaction leaves
    // the last minutes), and decoding a block of thousands of samples per client made
    // the clients listing cost ~0.6 ms a client (`xtask bench history`).
    let newest_packed = sample_blocks::table
        .filter(sample_blocks::client_id.eq(id))
        .select(diesel::dsl::max(sample_blocks::ts_max))
        .first::<Option<i64>>(conn)?;
    let block = match newest_packed {
        Some(ts_max) if best.as_ref().is_none_or(|b| ts_max > b.values.ts) => sample_blocks::table
            .filter(sample_blocks::client_id.eq(id))
            .order(sample_blocks::ts_max.desc())
            .select(sample_blocks::data)
            .first::<Vec<u8>>(conn)
            .optional()?,
        _ => None,
    };
    if let Some(data) = block {
        for row in decode_block(&data)? {
            if best.as_ref().is_none_or(|b| row.values.ts > b.values.ts) {
                best = Some(row);
            }
        }
    }
    let mut names = Names::load(conn, id)?;
    best.map(|row| names.sample(conn, row)).transpose()
}

/// Every client the database knows, by name, with its newest sample.
pub fn clients_latest(conn: &mut SqliteConnection) -> Result<Vec<ClientLatest>, StoreError> {
    let names = clients::table
        .order(clients::name)
        .select(clients::name)
        .load::<String>(conn)?;
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let latest = latest(conn, &name)?;
        out.push(ClientLatest { name, latest });
    }
    Ok(out)
}

/// The `top` of the newest sample that carried one, and that sample's `ts`.
pub fn latest_top(
    conn: &mut SqliteConnection,
    name: &str,
) -> Result<Option<(i64, Vec<TopProcess>)>, StoreError> {
    let row = client_top::table
        .inner_join(clients::table)
        .filter(clients::name.eq(name))
        .select((client_top::ts, client_top::top))
        .first::<(i64, String)>(conn)
        .optional()?;
    Ok(row.and_then(|(ts, json)| serde_json::from_str(&json).ok().map(|top| (ts, top))))
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn scalar(conn: &mut SqliteConnection, sql: &str) -> Result<i64, StoreError> {
    Ok(diesel::sql_query(sql).get_result::<Count>(conn)?.n)
}

pub fn stats(conn: &mut SqliteConnection) -> Result<Stats, StoreError> {
    let clients = scalar(conn, "SELECT COUNT(*) AS n FROM clients")?;
    let samples = scalar(
        conn,
        "SELECT (SELECT COUNT(*) FROM raw_samples) \
         + (SELECT COALESCE(SUM(samples), 0) FROM sample_blocks) AS n",
    )?;
    let db_bytes = scalar(
        conn,
        "SELECT page_count * page_size AS n FROM pragma_page_count(), pragma_page_size()",
    )?;
    let bytes_per_sample = if samples > 0 {
        (db_bytes as f64 / samples as f64 * 10.0).round() / 10.0
    } else {
        0.0
    };
    Ok(Stats {
        clients,
        samples,
        db_bytes,
        bytes_per_sample,
    })
}
