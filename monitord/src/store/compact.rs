//! Packing the raw tier: a client's older raw samples move into [`sample_blocks`] rows of up
//! to [`BLOCK_MAX`] samples each (see [`super::codec`]), and their `(instance, seq)` pairs into
//! `packed_seqs` ranges, so a replay of a packed sample is still answered "duplicate".
//!
//! Runs on its own connection, one short transaction per block, so ingest waits at most for
//! one block's worth of work. Used by the daemon's timer and by `monitord compact`.
//!
//! [`sample_blocks`]: super::schema::sample_blocks

use std::time::Duration;

use diesel::connection::SimpleConnection as _;
use diesel::prelude::*;
use diesel::sql_types::BigInt;

use super::StoreError;
use super::codec::encode_block;
use super::schema::{RawRow, instances, packed_seqs, raw_samples, sample_blocks};

/// The most samples one block holds.
pub const BLOCK_MAX: i64 = 4_096;

/// Which raw samples to pack.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Leave samples younger than this raw (recent samples are read most).
    pub settle: Duration,
    /// Pack a client once it has at least this many settled raw samples…
    pub min_samples: i64,
    /// …or once its oldest raw sample is older than this.
    pub max_age: Duration,
}

impl Policy {
    /// The daemon's timer: blocks big enough to be dense, nothing raw for long.
    pub const TIMER: Policy = Policy {
        settle: Duration::from_secs(10 * 60),
        min_samples: 256,
        max_age: Duration::from_secs(6 * 3600),
    };
    /// `monitord compact`: everything, now.
    pub const ALL: Policy = Policy {
        settle: Duration::ZERO,
        min_samples: 1,
        max_age: Duration::ZERO,
    };
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    pub samples: i64,
    pub blocks: i64,
}

#[derive(QueryableByName)]
struct Candidate {
    #[diesel(sql_type = BigInt)]
    client_id: i64,
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = BigInt)]
    oldest: i64,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Packs what `policy` selects, as of `now_ms`.
pub fn compact(
    conn: &mut SqliteConnection,
    policy: Policy,
    now_ms: i64,
) -> Result<Report, StoreError> {
    let cutoff = now_ms.saturating_sub(ms(policy.settle));
    let candidates = diesel::sql_query(
        "SELECT i.client_id AS client_id, COUNT(*) AS n, MIN(r.ts) AS oldest \
         FROM raw_samples r JOIN instances i ON i.id = r.instance_id \
         WHERE r.ts <= ? GROUP BY i.client_id",
    )
    .bind::<BigInt, _>(cutoff)
    .load::<Candidate>(conn)?;
    let mut report = Report::default();
    for c in candidates {
        let due = c.n >= policy.min_samples || c.oldest <= now_ms - ms(policy.max_age);
        if !due {
            continue;
        }
        loop {
            let packed =
                conn.immediate_transaction(|conn| pack_one_block(conn, c.client_id, cutoff))?;
            if packed == 0 {
                break;
            }
            report.samples += packed;
            report.blocks += 1;
            if packed < BLOCK_MAX {
                break;
            }
        }
    }
    Ok(report)
}

/// Hands pages freed by packing back to the file system (the database is created with
/// `auto_vacuum = INCREMENTAL`).
pub fn release_free_pages(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    conn.batch_execute("PRAGMA incremental_vacuum;")?;
    Ok(())
}

/// Moves up to [`BLOCK_MAX`] of the client's oldest raw samples (`ts <= cutoff`) into a block.
fn pack_one_block(
    conn: &mut SqliteConnection,
    client_id: i64,
    cutoff: i64,
) -> Result<i64, StoreError> {
    let client_instances = instances::table
        .filter(instances::client_id.eq(client_id))
        .select(instances::id);
    let raw = raw_samples::table
        .filter(raw_samples::instance_id.eq_any(client_instances))
        .filter(raw_samples::ts.le(cutoff))
        .order((raw_samples::ts, raw_samples::instance_id, raw_samples::seq))
        .limit(BLOCK_MAX)
        .select(RawRow::as_select())
        .load(conn)?;
    if raw.is_empty() {
        return Ok(0);
    }
    let mut keys = Vec::with_capacity(raw.len());
    let mut rows = Vec::with_capacity(raw.len());
    for r in raw {
        keys.push((r.instance_id, r.seq));
        rows.push(r.into_packed()?);
    }
    let ts_min = rows.iter().map(|r| r.values.ts).min().unwrap_or(0);
    let ts_max = rows.iter().map(|r| r.values.ts).max().unwrap_or(0);
    diesel::insert_into(sample_blocks::table)
        .values((
            sample_blocks::client_id.eq(client_id),
            sample_blocks::ts_min.eq(ts_min),
            sample_blocks::ts_max.eq(ts_max),
            sample_blocks::samples.eq(rows.len() as i64),
            sample_blocks::data.eq(encode_block(&rows)),
        ))
        .execute(conn)?;
    for &(instance_id, seq) in &keys {
        diesel::delete(raw_samples::table.find((instance_id, seq))).execute(conn)?;
    }
    keys.sort_unstable();
    for (instance_id, lo, hi) in ranges(&keys) {
        add_packed_range(conn, instance_id, lo, hi)?;
    }
    Ok(keys.len() as i64)
}

/// Sorted `(instance, seq)` pairs as closed runs of consecutive seqs.
fn ranges(keys: &[(i64, i64)]) -> Vec<(i64, i64, i64)> {
    let mut out: Vec<(i64, i64, i64)> = Vec::new();
    for &(instance, seq) in keys {
        match out.last_mut() {
            Some((i, _, hi)) if *i == instance && *hi + 1 == seq => *hi = seq,
            _ => out.push((instance, seq, seq)),
        }
    }
    out
}

/// Records `lo..=hi` as packed, merged with any range it touches, and raises `packed_max`.
fn add_packed_range(
    conn: &mut SqliteConnection,
    instance_id: i64,
    lo: i64,
    hi: i64,
) -> QueryResult<()> {
    let touching = packed_seqs::table
        .filter(packed_seqs::instance_id.eq(instance_id))
        .filter(packed_seqs::lo.le(hi.saturating_add(1)))
        .filter(packed_seqs::hi.ge(lo.saturating_sub(1)))
        .select((packed_seqs::lo, packed_seqs::hi))
        .load::<(i64, i64)>(conn)?;
    let new_lo = touching.iter().map(|r| r.0).fold(lo, i64::min);
    let new_hi = touching.iter().map(|r| r.1).fold(hi, i64::max);
    for (old_lo, _) in touching {
        diesel::delete(packed_seqs::table.find((instance_id, old_lo))).execute(conn)?;
    }
    diesel::insert_into(packed_seqs::table)
        .values((
            packed_seqs::instance_id.eq(instance_id),
            packed_seqs::lo.eq(new_lo),
            packed_seqs::hi.eq(new_hi),
        ))
        .execute(conn)?;
    diesel::update(instances::table.find(instance_id))
        .filter(instances::packed_max.lt(new_hi))
        .set(instances::packed_max.eq(new_hi))
        .execute(conn)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_split_on_gaps_and_instances() {
        let keys = [(1, 0), (1, 1), (1, 2), (1, 5), (2, 6), (2, 7)];
        assert_eq!(ranges(&keys), vec![(1, 0, 2), (1, 5, 5), (2, 6, 7)]);
    }
}
