//! Rollup buckets as stored: in packs of up to [`PACK_BUCKETS`] consecutive buckets of one
//! client's tier, one row each (`rollup_packs`), every bucket written as a change from the
//! one before ([`Bucket::encode_after`]). One row per bucket cost 209 bytes a 1-hour bucket
//! in `xtask bench history` (165 of payload, each bucket self-contained, plus 44 of key and
//! b-tree), 3.3 bytes a stored value; a pack shares the key and most of the numbers.
//!
//! A pack's `data`: a version, the number of buckets, and per bucket its place in the pack
//! (the gap after the one before) and the bucket. Its row also says how many buckets and
//! samples it holds and its first bucket's start, for the tier statistics.
//!
//! Everything that reads or changes rollups goes through here: [`read`], [`write`],
//! [`remove`], [`first_at_or_after`], [`expire_step`]. Changing one bucket rewrites its pack
//! (24 buckets of a few hundred bytes): the late-sample recomputation and expiry do so
//! rarely. [`convert_legacy`] moves the rows of the one-bucket-per-row table into packs.

use std::collections::BTreeMap;

use diesel::prelude::*;

use super::bucket::Bucket;
use crate::store::codec::{Corrupt, get_varint, put_varint};
use crate::store::error::StoreError;
use crate::store::schema::{rollup_packs, rollups};

/// Buckets a pack holds at most: a day of the 1-hour tier.
pub const PACK_BUCKETS: i64 = 24;
const VERSION: u64 = 1;

/// The start of the pack that holds the bucket starting at `bucket_ms` of a tier of `step`.
pub fn pack_start(bucket_ms: i64, step: i64) -> i64 {
    let span = step * PACK_BUCKETS;
    // Saturating: callers ask for "from the beginning" with i64::MIN.
    bucket_ms.div_euclid(span).saturating_mul(span)
}

/// A pack's buckets by start.
pub type Buckets = BTreeMap<i64, Bucket>;

pub fn encode(pack_ms: i64, step: i64, buckets: &Buckets) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + buckets.len() * 96);
    put_varint(&mut out, VERSION);
    put_varint(&mut out, buckets.len() as u64);
    let (mut prev, mut next_index) = (None, 0);
    for (bucket_ms, bucket) in buckets {
        let index = (bucket_ms - pack_ms) / step;
        put_varint(&mut out, (index - next_index) as u64);
        bucket.encode_after(prev, &mut out);
        (prev, next_index) = (Some(bucket), index + 1);
    }
    out
}

pub fn decode(pack_ms: i64, step: i64, data: &[u8]) -> Result<Buckets, Corrupt> {
    let mut pos = 0;
    if get_varint(data, &mut pos)? != VERSION {
        return Err(Corrupt("unknown rollup pack version"));
    }
    let count = get_varint(data, &mut pos)?;
    let mut out = Buckets::new();
    let (mut prev, mut next_index) = (None::<Bucket>, 0u64);
    for _ in 0..count {
        let index = next_index
            .checked_add(get_varint(data, &mut pos)?)
            .filter(|i| *i < PACK_BUCKETS as u64)
            .ok_or(Corrupt("a rollup bucket outside its pack"))?;
        let bucket = Bucket::decode_after(prev.as_ref(), data, &mut pos)?;
        out.insert(pack_ms + index as i64 * step, bucket.clone());
        (prev, next_index) = (Some(bucket), index + 1);
    }
    if pos != data.len() {
        return Err(Corrupt("trailing bytes after a rollup pack"));
    }
    Ok(out)
}

/// The packs of one client's tier that may hold buckets in `[from, to)`.
fn packs(
    conn: &mut SqliteConnection,
    client_id: i64,
    step: i64,
    from: i64,
    to: i64,
) -> Result<Vec<(i64, Buckets)>, StoreError> {
    let rows = rollup_packs::table
        .filter(rollup_packs::client_id.eq(client_id))
        .filter(rollup_packs::step_s.eq(step / 1000))
        .filter(rollup_packs::pack_ms.ge(pack_start(from, step)))
        .filter(rollup_packs::pack_ms.lt(to))
        .order(rollup_packs::pack_ms)
        .select((rollup_packs::pack_ms, rollup_packs::data))
        .load::<(i64, Vec<u8>)>(conn)?;
    let mut out = Vec::with_capacity(rows.len());
    for (pack_ms, data) in rows {
        out.push((pack_ms, decode(pack_ms, step, &data)?));
    }
    Ok(out)
}

/// The buckets of one client's tier starting in `[from, to)`, oldest first.
pub fn read(
    conn: &mut SqliteConnection,
    client_id: i64,
    step: i64,
    from: i64,
    to: i64,
) -> Result<Vec<(i64, Bucket)>, StoreError> {
    Ok(packs(conn, client_id, step, from, to)?
        .into_iter()
        .flat_map(|(_, buckets)| buckets)
        .filter(|(ms, _)| (from..to).contains(ms))
        .collect())
}

/// Writes (or replaces) `buckets` of one client's tier, pack by pack.
pub fn write(
    conn: &mut SqliteConnection,
    client_id: i64,
    step: i64,
    buckets: impl IntoIterator<Item = (i64, Bucket)>,
) -> Result<(), StoreError> {
    let mut by_pack: BTreeMap<i64, Buckets> = BTreeMap::new();
    for (ms, bucket) in buckets {
        by_pack
            .entry(pack_start(ms, step))
            .or_default()
            .insert(ms, bucket);
    }
    for (pack_ms, new) in by_pack {
        let mut pack = load(conn, client_id, step, pack_ms)?;
        pack.extend(new);
        store(conn, client_id, step, pack_ms, &pack)?;
    }
    Ok(())
}

/// Removes the bucket starting at `bucket_ms` of one client's tier, if there is one.
pub fn remove(
    conn: &mut SqliteConnection,
    client_id: i64,
    step: i64,
    bucket_ms: i64,
) -> Result<(), StoreError> {
    let pack_ms = pack_start(bucket_ms, step);
    let mut pack = load(conn, client_id, step, pack_ms)?;
    if pack.remove(&bucket_ms).is_some() {
        store(conn, client_id, step, pack_ms, &pack)?;
    }
    Ok(())
}

/// The start of the first bucket of one client's tier at or after `from`.
pub fn first_at_or_after(
    conn: &mut SqliteConnection,
    client_id: i64,
    step: i64,
    from: i64,
) -> Result<Option<i64>, StoreError> {
    // The pack holding `from` may end before it; the next one then has the answer.
    let rows = rollup_packs::table
        .filter(rollup_packs::client_id.eq(client_id))
        .filter(rollup_packs::step_s.eq(step / 1000))
        .filter(rollup_packs::pack_ms.ge(pack_start(from, step)))
        .order(rollup_packs::pack_ms)
        .select((rollup_packs::pack_ms, rollup_packs::data))
        .limit(2)
        .load::<(i64, Vec<u8>)>(conn)?;
    for (pack_ms, data) in rows {
        if let Some(ms) = decode(pack_ms, step, &data)?
            .into_keys()
            .find(|ms| *ms >= from)
        {
            return Ok(Some(ms));
        }
    }
    Ok(None)
}

/// One bounded step of expiry in the tier of `step`: removes up to `limit` packs' worth of
/// buckets starting at or before `last_ms` (whole packs, or the old part of the pack that
/// straddles it). Returns the buckets removed and the packs touched.
pub fn expire_step(
    conn: &mut SqliteConnection,
    step: i64,
    last_ms: i64,
    limit: i64,
) -> Result<(i64, usize), StoreError> {
    let old = rollup_packs::table
        .filter(rollup_packs::step_s.eq(step / 1000))
        .filter(rollup_packs::first_ms.le(last_ms))
        .select((
            rollup_packs::client_id,
            rollup_packs::pack_ms,
            rollup_packs::buckets,
            rollup_packs::data,
        ))
        .limit(limit)
        .load::<(i64, i64, i64, Vec<u8>)>(conn)?;
    let mut removed = 0;
    for (client_id, pack_ms, buckets, data) in &old {
        let mut pack = decode(*pack_ms, step, data)?;
        pack.retain(|ms, _| *ms > last_ms);
        removed += buckets - pack.len() as i64;
        store(conn, *client_id, step, *pack_ms, &pack)?;
    }
    Ok((removed, old.len()))
}

/// Whether the tier of `step` has a bucket starting at or before `last_ms`.
pub fn any_at_or_before(conn: &mut SqliteConnection, step: i64, last_ms: i64) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        rollup_packs::table
            .filter(rollup_packs::step_s.eq(step / 1000))
            .filter(rollup_packs::first_ms.le(last_ms)),
    ))
    .get_result(conn)
}

fn load(
    conn: &mut SqliteConnection,
    client_id: i64,
    step: i64,
    pack_ms: i64,
) -> Result<Buckets, StoreError> {
    let data = rollup_packs::table
        .find((client_id, step / 1000, pack_ms))
        .select(rollup_packs::data)
        .first::<Vec<u8>>(conn)
        .optional()?;
    Ok(match data {
        Some(data) => decode(pack_ms, step, &data)?,
        None => Buckets::new(),
    })
}

/// Writes `pack` as the pack at `pack_ms`, or deletes the row when it is empty.
fn store(
    conn: &mut SqliteConnection,
    client_id: i64,
    step: i64,
    pack_ms: i64,
    pack: &Buckets,
) -> Result<(), StoreError> {
    let key = (client_id, step / 1000, pack_ms);
    let Some(&first_ms) = pack.keys().next() else {
        diesel::delete(rollup_packs::table.find(key)).execute(conn)?;
        return Ok(());
    };
    diesel::replace_into(rollup_packs::table)
        .values((
            rollup_packs::client_id.eq(client_id),
            rollup_packs::step_s.eq(step / 1000),
            rollup_packs::pack_ms.eq(pack_ms),
            rollup_packs::first_ms.eq(first_ms),
            rollup_packs::buckets.eq(pack.len() as i64),
            rollup_packs::samples.eq(pack.values().map(|b| b.samples).sum::<i64>()),
            rollup_packs::data.eq(encode(pack_ms, step, pack)),
        ))
        .execute(conn)?;
    Ok(())
}

/// Rows of the one-bucket-per-row table moved into packs in one transaction.
const CONVERT_ROWS: i64 = 20_000;

/// Moves every row of the table of one bucket per row (`rollups`, before packs) into packs,
/// in bounded transactions; returns how many buckets moved. Nothing to do, at once, on a
/// database that never had them.
pub fn convert_legacy(conn: &mut SqliteConnection) -> Result<i64, StoreError> {
    let mut moved = 0;
    loop {
        let n = conn.immediate_transaction(|conn| {
            let rows = rollups::table
                .order((rollups::client_id, rollups::step_s, rollups::bucket_ms))
                .select((
                    rollups::client_id,
                    rollups::step_s,
                    rollups::bucket_ms,
                    rollups::samples,
                    rollups::data,
                ))
                .limit(CONVERT_ROWS)
                .load::<(i64, i64, i64, i64, Vec<u8>)>(conn)?;
            let mut by_tier: BTreeMap<(i64, i64), Vec<(i64, Bucket)>> = BTreeMap::new();
            for (client_id, step_s, bucket_ms, samples, data) in &rows {
                let bucket = Bucket::decode_v1(*samples, data)?;
                by_tier
                    .entry((*client_id, *step_s))
                    .or_default()
                    .push((*bucket_ms, bucket));
            }
            for ((client_id, step_s), buckets) in by_tier {
                for (bucket_ms, _) in &buckets {
                    diesel::delete(rollups::table.find((client_id, step_s, bucket_ms)))
                        .execute(conn)?;
                }
                write(conn, client_id, step_s * 1000, buckets)?;
            }
            Ok::<_, StoreError>(rows.len() as i64)
        })?;
        moved += n;
        if n < CONVERT_ROWS {
            return Ok(moved);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(samples: i64, cpu: i64) -> Bucket {
        let mut b = Bucket {
            samples,
            ..Bucket::default()
        };
        b.scalars[0] = super::super::bucket::Agg {
            n: samples,
            min: cpu,
            max: cpu + 10,
            sum: cpu * samples + 5,
        };
        b
    }

    #[test]
    fn rows_of_one_bucket_each_move_into_packs_when_the_database_opens() {
        let dir = std::env::temp_dir().join(format!("monitord-packs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("db.sqlite3");
        let mut conn = crate::store::open_for_writing(&path).unwrap();
        let step = 3_600_000;
        // 30 hours of client 1 (two packs) and a day-tier bucket of client 2, as the layout
        // before packs stored them.
        let mut rows = Vec::new();
        for h in 0..30 {
            rows.push((
                1,
                step,
                1_800_000_000_000 / step * step + h * step,
                bucket(60, 100 + h),
            ));
        }
        rows.push((
            2,
            86_400_000,
            1_800_028_800_000 / 86_400_000 * 86_400_000,
            bucket(24, 7),
        ));
        for (client_id, step, ms, b) in &rows {
            diesel::insert_into(rollups::table)
                .values((
                    rollups::client_id.eq(client_id),
                    rollups::step_s.eq(step / 1000),
                    rollups::bucket_ms.eq(ms),
                    rollups::samples.eq(b.samples),
                    rollups::data.eq(b.encode_v1()),
                ))
                .execute(&mut conn)
                .unwrap();
        }
        drop(conn);
        let mut conn = crate::store::open_for_writing(&path).unwrap();
        let left: i64 = rollups::table.count().get_result(&mut conn).unwrap();
        assert_eq!(left, 0);
        for client_id in [1, 2] {
            let step = rows.iter().find(|r| r.0 == client_id).unwrap().1;
            let expected: Vec<(i64, Bucket)> = rows
                .iter()
                .filter(|r| r.0 == client_id)
                .map(|r| (r.2, r.3.clone()))
                .collect();
            assert_eq!(
                read(&mut conn, client_id, step, 0, i64::MAX).unwrap(),
                expected
            );
        }
        let packs: i64 = rollup_packs::table.count().get_result(&mut conn).unwrap();
        assert_eq!(packs, 3);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_pack_round_trips_with_gaps_and_refuses_garbage() {
        let step = 3_600_000;
        let pack_ms = pack_start(1_800_000_000_000, step);
        assert_eq!(pack_start(pack_ms + 23 * step, step), pack_ms);
        assert_eq!(pack_start(pack_ms + 24 * step, step), pack_ms + 24 * step);
        assert!(pack_start(i64::MIN, step) <= i64::MIN + 24 * step);
        let buckets: Buckets = [(0, 60, 500), (1, 60, 520), (5, 12, 900), (23, 60, 10)]
            .into_iter()
            .map(|(i, n, cpu)| (pack_ms + i * step, bucket(n, cpu)))
            .collect();
        let data = encode(pack_ms, step, &buckets);
        assert_eq!(decode(pack_ms, step, &data).unwrap(), buckets);
        assert!(decode(pack_ms, step, &data[..data.len() - 1]).is_err());
        let mut longer = data.clone();
        longer.push(0);
        assert!(decode(pack_ms, step, &longer).is_err());
        // A bucket index past the pack's end.
        assert!(decode(pack_ms, step, &[1, 1, 24, 2, 0, 0, 0]).is_err());
        assert!(decode(pack_ms, step, &[2, 0]).is_err(), "unknown version");
    }
}
