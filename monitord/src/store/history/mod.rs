//! History that lasts: the raw tier kept `<history raw>`, then rollup tiers of fixed-size
//! buckets (min, max, sum and count per field), each kept as long as its `keep` (see the
//! config's `<history>`), and the expiry that holds the database to that.
//!
//! - [`bucket`]: one bucket's numbers and their layout; merging is exact.
//! - [`pack`]: buckets as stored, consecutive ones of a client's tier to a row of ~2 KB.
//! - [`rollup`]: the background pass that writes closed buckets, and the writer's hook
//!   that marks buckets a late sample fell into.
//! - [`expire`]: deleting what is past `keep`, in bounded steps.
//! - [`series`]: reading a client's range from the tier that fits, for the API.
//! - [`tier_stats`]: rows, bytes and the oldest time per tier, for `monitord stats`.
//!
//! Not here: raw samples themselves (see [`super::writer`], [`super::compact`]).

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use monitor_core::config::{History, Keep, format_duration};

use super::StoreError;
use super::background::Writes;

pub mod bucket;
pub mod expire;
pub mod pack;
pub mod rollup;
pub mod series;

/// Rolls up every closed bucket, then deletes what is past `keep`: what the daemon's
/// history timer and `monitord compact` run. `interval_of` gives a client's interval. Reads
/// on `conn`, writes through `writes` (see [`super::background`]).
pub fn maintain(
    conn: &mut SqliteConnection,
    writes: Writes<'_>,
    history: &History,
    interval_of: &dyn Fn(&str) -> std::time::Duration,
    now_ms: i64,
) -> Result<(rollup::Report, expire::Report), StoreError> {
    let rolled = rollup::rollup_pass(conn, writes, &history.tiers, interval_of, now_ms)?;
    let expired = expire::expire(conn, writes, history, now_ms)?;
    Ok((rolled, expired))
}

/// One tier as `monitord stats` reports it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TierStats {
    /// `raw` or the step (`1h`).
    pub name: String,
    /// `null` for `forever`.
    pub keep_s: Option<i64>,
    /// Samples (raw) or buckets.
    pub rows: i64,
    /// Pages of its tables and indexes (rollup tiers share one table: split by payload).
    pub bytes: i64,
    pub oldest_ms: Option<i64>,
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    oldest: Option<i64>,
}

fn keep_s(keep: Keep) -> Option<i64> {
    match keep {
        Keep::For(d) => Some(d.as_secs() as i64),
        Keep::Forever => None,
    }
}

/// Each tier's rows, bytes and oldest time.
pub fn tier_stats(
    conn: &mut SqliteConnection,
    history: &History,
) -> Result<Vec<TierStats>, StoreError> {
    let pages = |conn: &mut SqliteConnection, names: &str| -> Result<i64, StoreError> {
        let sql = format!(
            "SELECT 'bytes' AS name, COALESCE(SUM(pgsize), 0) AS n, NULL AS oldest \
             FROM dbstat WHERE name IN ({names})"
        );
        Ok(diesel::sql_query(sql).get_result::<Row>(conn)?.n)
    };
    let raw = diesel::sql_query(
        "SELECT 'raw' AS name, \
           (SELECT COUNT(*) FROM raw_samples) + \
           (SELECT COALESCE(SUM(samples), 0) FROM sample_blocks) AS n, \
           (SELECT MIN(m) FROM (SELECT MIN(ts) AS m FROM raw_samples \
                                UNION ALL SELECT MIN(ts_min) FROM sample_blocks)) AS oldest",
    )
    .get_result::<Row>(conn)?;
    let mut out = vec![TierStats {
        name: raw.name,
        keep_s: keep_s(Keep::For(history.raw)),
        rows: raw.n,
        bytes: pages(
            conn,
            "'raw_samples', 'raw_samples_by_time', 'sample_blocks', 'sample_blocks_by_client_time'",
        )?,
        oldest_ms: raw.oldest,
    }];
    let rollup_bytes = pages(conn, "'rollups', 'rollup_packs', 'rollup_packs_by_client'")?;
    let payload = diesel::sql_query(
        "SELECT 'all' AS name, COALESCE(SUM(LENGTH(data) + 40), 0) AS n, NULL AS oldest \
         FROM rollup_packs",
    )
    .get_result::<Row>(conn)?
    .n
    .max(1);
    for tier in &history.tiers {
        let step_s = tier.step.as_secs() as i64;
        let row = diesel::sql_query(format!(
            "SELECT 'tier' AS name, COALESCE(SUM(buckets), 0) AS n, MIN(first_ms) AS oldest \
             FROM rollup_packs WHERE step_s = {step_s}"
        ))
        .get_result::<Row>(conn)?;
        let share = diesel::sql_query(format!(
            "SELECT 'share' AS name, COALESCE(SUM(LENGTH(data) + 40), 0) AS n, NULL AS oldest \
             FROM rollup_packs WHERE step_s = {step_s}"
        ))
        .get_result::<Row>(conn)?
        .n;
        out.push(TierStats {
            name: format_duration(tier.step),
            keep_s: keep_s(tier.keep),
            rows: row.n,
            bytes: (rollup_bytes as i128 * share as i128 / payload as i128) as i64,
            oldest_ms: row.oldest,
        });
    }
    Ok(out)
}
