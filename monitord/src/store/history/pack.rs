//! Rollup buckets as stored: in packs of consecutive buckets of one client's tier, one row
//! each (`rollup_packs`), every bucket written as a change from the one before
//! ([`Bucket::encode_after`]), a pack's `data` at most [`PACK_BYTES`] (~2 KB).
//!
//! Why packs, and why by size. One row per bucket cost 209 bytes a 1-hour bucket in `xtask
//! bench history` (165 of payload, each bucket self-contained, plus 44 of key and b-tree),
//! 3.3 bytes a stored value. Packs of a day (24 buckets, ~2.7 KB) shared the key and halved
//! the numbers, but a row that size does not fit a 4 KB page's b-tree cell in a WITHOUT ROWID
//! table and spilled into an overflow page of its own: 196 bytes a bucket. A pack is now
//! closed when the next bucket would take it past [`PACK_BYTES`], so two fill a page of an
//! ordinary table (rowid, with a unique index on client, tier and first bucket), whatever the
//! host's number of disks.
//!
//! A pack is keyed by its first bucket's start (`first_ms`) and holds the buckets from there
//! up to the next pack's first. Its `data`: a version, the number of buckets, and per bucket
//! the steps since the bucket before (0 for the first) and the bucket. The row also says how
//! many buckets and samples it holds, for the tier statistics.
//!
//! Everything that reads or changes rollups goes through here: [`read`],
//! [`first_at_or_after`], [`write`], and for a background pass, which works out on its own
//! connection what the writer then writes, [`plan`], [`plan_remove`], [`read_expired`] and
//! [`write_expired`] (a [`Plan`] writes nothing if a pack it rewrites changed meanwhile).
//! Buckets appended in time order (the rollup pass) fill a pack and open the next; one
//! written into the middle of a full pack (a late recomputation) splits it in two. [`convert_legacy`] moves the rows of the
//! one-bucket-per-row table into packs.

use std::collections::BTreeMap;

use diesel::prelude::*;

use super::bucket::Bucket;
use crate::store::codec::{Corrupt, get_varint, put_varint};
use crate::store::error::StoreError;
use crate::store::schema::{clients, rollup_packs, rollups};

/// A pack's `data` at most, unless one bucket alone is larger: two such rows fill a 4 KB
/// page (SQLite's default, which monitord keeps). A row adds ~25 bytes (record header,
/// client, tier, first bucket, counts) and its cell ~5 (length, rowid), two cell pointers and
/// the page header 12: 2 × 2,030 + 12 ≤ 4,096. At 1,900 a year of 500 hosts took 135 bytes a
/// 1-hour bucket for 114 of payload; nearer the page, less is left empty.
pub const PACK_BYTES: usize = 2_000;
const VERSION: u64 = 1;

/// A pack's buckets by start.
pub type Buckets = BTreeMap<i64, Bucket>;

pub fn encode(step: i64, buckets: &Buckets) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + buckets.len() * 128);
    put_varint(&mut out, VERSION);
    put_varint(&mut out, buckets.len() as u64);
    let mut prev: Option<(i64, &Bucket)> = None;
    for (&bucket_ms, bucket) in buckets {
        let steps = prev.map_or(0, |(ms, _)| (bucket_ms - ms) / step);
        put_varint(&mut out, steps as u64);
        bucket.encode_after(prev.map(|(_, b)| b), &mut out);
        prev = Some((bucket_ms, bucket));
    }
    out
}

/// The pack whose first bucket starts at `first_ms`.
pub fn decode(first_ms: i64, step: i64, data: &[u8]) -> Result<Buckets, Corrupt> {
    let mut pos = 0;
    if get_varint(data, &mut pos)? != VERSION {
        return Err(Corrupt("unknown rollup pack version"));
    }
    let count = get_varint(data, &mut pos)?;
    let mut out = Buckets::new();
    let (mut prev, mut at) = (None::<Bucket>, first_ms);
    for i in 0..count {
        let steps = i64::try_from(get_varint(data, &mut pos)?)
            .ok()
            .filter(|s| (i == 0) == (*s == 0))
            .ok_or(Corrupt("rollup buckets out of order in a pack"))?;
        at = steps
            .checked_mul(step)
            .and_then(|d| at.checked_add(d))
            .ok_or(Corrupt("a rollup bucket out of time"))?;
        let bucket = Bucket::decode_after(prev.as_ref(), data, &mut pos)?;
        out.insert(at, bucket.clone());
        prev = Some(bucket);
    }
    if pos != data.len() {
        return Err(Corrupt("trailing bytes after a rollup pack"));
    }
    Ok(out)
}

/// One stored pack: its row id and data as read, and its buckets.
#[derive(Debug, Default)]
struct Pack {
    id: Option<i64>,
    read: Option<Vec<u8>>,
    buckets: Buckets,
    /// The next pack's first bucket, if any: this pack holds what starts before it.
    until: Option<i64>,
}

fn tier(client_id: i64, step: i64) -> (i64, i64) {
    (client_id, step / 1000)
}

/// The first bucket of the pack that holds `at` (the last pack starting at or before it).
fn holding_start(
    conn: &mut SqliteConnection,
    client_id: i64,
    step: i64,
    at: i64,
) -> QueryResult<Option<i64>> {
    let (client_id, step_s) = tier(client_id, step);
    rollup_packs::table
        .filter(rollup_packs::client_id.eq(client_id))
        .filter(rollup_packs::step_s.eq(step_s))
        .filter(rollup_packs::first_ms.le(at))
        .select(diesel::dsl::max(rollup_packs::first_ms))
        .first::<Option<i64>>(conn)
}

/// A pack row as read.
struct Stored {
    id: i64,
    first_ms: i64,
    /// `data` as stored, to tell later whether the row is unchanged.
    data: Vec<u8>,
    buckets: Buckets,
}

/// The packs of one client's tier that start at or after `from`, up to `limit`, oldest first.
fn packs_from(
    conn: &mut SqliteConnection,
    client_id: i64,
    step: i64,
    from: i64,
    to: i64,
    limit: i64,
) -> Result<Vec<Stored>, StoreError> {
    let (client_id, step_s) = tier(client_id, step);
    let rows = rollup_packs::table
        .filter(rollup_packs::client_id.eq(client_id))
        .filter(rollup_packs::step_s.eq(step_s))
        .filter(rollup_packs::first_ms.ge(from))
        .filter(rollup_packs::first_ms.lt(to))
        .order(rollup_packs::first_ms)
        .select((rollup_packs::id, rollup_packs::first_ms, rollup_packs::data))
        .limit(limit)
        .load::<(i64, i64, Vec<u8>)>(conn)?;
    let mut out = Vec::with_capacity(rows.len());
    for (id, first_ms, data) in rows {
        let buckets = decode(first_ms, step, &data)?;
        out.push(Stored {
            id,
            first_ms,
            data,
            buckets,
        });
    }
    Ok(out)
}

/// The pack that holds `at` (or, when none starts at or before it, an empty one that will
/// start there), with where the next pack starts.
fn load_for(
    conn: &mut SqliteConnection,
    client_id: i64,
    step: i64,
    at: i64,
) -> Result<Pack, StoreError> {
    let start = holding_start(conn, client_id, step, at)?;
    let mut found = packs_from(conn, client_id, step, start.unwrap_or(at), i64::MAX, 2)?;
    let mut pack = Pack::default();
    if start.is_some() && !found.is_empty() {
        let stored = found.remove(0);
        (pack.id, pack.read, pack.buckets) = (Some(stored.id), Some(stored.data), stored.buckets);
    }
    pack.until = found.first().map(|p| p.first_ms);
    Ok(pack)
}

/// Pack rows to write, worked out from what was read ([`plan`], [`plan_remove`],
/// [`read_expired`]) and written by [`Plan::apply`], on the same connection or, for a
/// background pass, by the writer (see [`crate::store::background`]).
#[derive(Debug, Default)]
pub struct Plan {
    saves: Vec<Save>,
}

/// One pack row to write: a new one, or one read before, rewritten or deleted.
#[derive(Debug)]
struct Save {
    /// The row rewritten and its data as read; `None` for a new row.
    was: Option<(i64, Vec<u8>)>,
    client_id: i64,
    step_s: i64,
    /// The row anew: (first bucket, buckets, samples, data); `None` deletes it.
    row: Option<(i64, i64, i64, Vec<u8>)>,
}

impl Save {
    fn of(client_id: i64, step: i64, pack: &mut Pack) -> Save {
        let row = pack.buckets.keys().next().map(|&first_ms| {
            (
                first_ms,
                pack.buckets.len() as i64,
                pack.buckets.values().map(|b| b.samples).sum::<i64>(),
                encode(step, &pack.buckets),
            )
        });
        let was = pack.id.take().zip(pack.read.take());
        Save {
            was,
            client_id,
            step_s: step / 1000,
            row,
        }
    }

    /// Whether the row it rewrites is still as read (a new row always is).
    fn unchanged(&self, conn: &mut SqliteConnection) -> QueryResult<bool> {
        let Some((id, data)) = &self.was else {
            return Ok(true);
        };
        diesel::select(diesel::dsl::exists(
            rollup_packs::table
                .find(id)
                .filter(rollup_packs::data.eq(data)),
        ))
        .get_result(conn)
    }

    fn write(self, conn: &mut SqliteConnection) -> QueryResult<()> {
        let id = self.was.map(|(id, _)| id);
        let Some((first_ms, buckets, samples, data)) = self.row else {
            if let Some(id) = id {
                diesel::delete(rollup_packs::table.find(id)).execute(conn)?;
            }
            return Ok(());
        };
        let values = (
            rollup_packs::client_id.eq(self.client_id),
            rollup_packs::step_s.eq(self.step_s),
            rollup_packs::first_ms.eq(first_ms),
            rollup_packs::buckets.eq(buckets),
            rollup_packs::samples.eq(samples),
            rollup_packs::data.eq(data),
        );
        match id {
            Some(id) => diesel::update(rollup_packs::table.find(id))
                .set(values)
                .execute(conn)?,
            None => diesel::insert_into(rollup_packs::table)
                .values(values)
                .execute(conn)?,
        };
        Ok(())
    }
}

impl Plan {
    /// Writes the planned rows if every row they rewrite is still as read; otherwise writes
    /// nothing and says [`StoreError::Changed`].
    pub fn apply(self, conn: &mut SqliteConnection) -> Result<(), StoreError> {
        for save in &self.saves {
            if !save.unchanged(conn)? {
                return Err(StoreError::Changed);
            }
        }
        for save in self.saves {
            save.write(conn)?;
        }
        Ok(())
    }

    fn save(&mut self, client_id: i64, step: i64, pack: &mut Pack) {
        self.saves.push(Save::of(client_id, step, pack));
    }
}

/// The buckets of one client's tier starting in `[from, to)`, oldest first.
pub fn read(
    conn: &mut SqliteConnection,
    client_id: i64,
    step: i64,
    from: i64,
    to: i64,
) -> Result<Vec<(i64, Bucket)>, StoreError> {
    Ok(packs_between(conn, client_id, step, from, to)?
        .into_iter()
        .flatten()
        .filter(|(ms, _)| (from..to).contains(ms))
        .collect())
}

/// The packs of one client's tier that hold buckets starting in `[from, to)`, whole (for
/// `xtask bench history`'s look at the layout).
pub fn packs_between(
    conn: &mut SqliteConnection,
    client_id: i64,
    step: i64,
    from: i64,
    to: i64,
) -> Result<Vec<Buckets>, StoreError> {
    let start = holding_start(conn, client_id, step, from)?.unwrap_or(from);
    Ok(packs_from(conn, client_id, step, start, to, i64::MAX)?
        .into_iter()
        .map(|p| p.buckets)
        .collect())
}

/// Writes (or replaces) `buckets` of one client's tier: [`plan`], then [`Plan::apply`].
pub fn write(
    conn: &mut SqliteConnection,
    client_id: i64,
    step: i64,
    buckets: impl IntoIterator<Item = (i64, Bucket)>,
) -> Result<(), StoreError> {
    plan(conn, client_id, step, buckets)?.apply(conn)
}

/// The pack rows that write (or replace) `buckets` of one client's tier, worked out from the
/// packs as they are now.
pub fn plan(
    conn: &mut SqliteConnection,
    client_id: i64,
    step: i64,
    buckets: impl IntoIterator<Item = (i64, Bucket)>,
) -> Result<Plan, StoreError> {
    let sorted: Buckets = buckets.into_iter().collect();
    let mut plan = Plan::default();
    let mut cur: Option<Pack> = None;
    for (at, bucket) in sorted {
        let fits = |p: &Pack| {
            p.until.is_none_or(|u| at < u) && p.buckets.keys().next().is_none_or(|f| at >= *f)
        };
        let mut pack = match cur.take() {
            Some(p) if fits(&p) => p,
            other => {
                if let Some(mut p) = other {
                    plan.save(client_id, step, &mut p);
                }
                load_for(conn, client_id, step, at)?
            }
        };
        let appended = pack
            .buckets
            .keys()
            .next_back()
            .is_none_or(|last| at > *last);
        pack.buckets.insert(at, bucket);
        if pack.buckets.len() > 1 && encode(step, &pack.buckets).len() > PACK_BYTES {
            if appended {
                // Full: this bucket opens the next pack.
                let bucket = pack.buckets.remove(&at).expect("inserted above");
                plan.save(client_id, step, &mut pack);
                pack.buckets = Buckets::from([(at, bucket)]);
            } else {
                // Written into the middle of a full pack: split it in two.
                let middle = *pack
                    .buckets
                    .keys()
                    .nth(pack.buckets.len() / 2)
                    .expect("two or more buckets");
                let second = pack.buckets.split_off(&middle);
                plan.save(client_id, step, &mut pack);
                let mut second = Pack {
                    buckets: second,
                    ..Pack::default()
                };
                plan.save(client_id, step, &mut second);
                continue;
            }
        }
        cur = Some(pack);
    }
    if let Some(mut p) = cur {
        plan.save(client_id, step, &mut p);
    }
    Ok(plan)
}

/// The pack rows that remove the bucket starting at `bucket_ms` of one client's tier.
pub fn plan_remove(
    conn: &mut SqliteConnection,
    client_id: i64,
    step: i64,
    bucket_ms: i64,
) -> Result<Plan, StoreError> {
    let mut plan = Plan::default();
    let mut pack = load_for(conn, client_id, step, bucket_ms)?;
    if pack.buckets.remove(&bucket_ms).is_some() {
        plan.save(client_id, step, &mut pack);
    }
    Ok(plan)
}

/// The start of the first bucket of one client's tier at or after `from`.
pub fn first_at_or_after(
    conn: &mut SqliteConnection,
    client_id: i64,
    step: i64,
    from: i64,
) -> Result<Option<i64>, StoreError> {
    // The pack holding `from` may end before it; the next one then has the answer.
    let start = holding_start(conn, client_id, step, from)?.unwrap_or(from);
    for p in packs_from(conn, client_id, step, start, i64::MAX, 2)? {
        if let Some(ms) = p.buckets.into_keys().find(|ms| *ms >= from) {
            return Ok(Some(ms));
        }
    }
    Ok(None)
}

/// A pack with buckets past its tier's keep, as read: the row that deletes it or writes
/// again what is left, and how many buckets that removes.
#[derive(Debug)]
pub struct ExpiredPack {
    save: Save,
    removed: i64,
}

/// Up to `limit` packs of the tier of `step` holding buckets that start at or before
/// `last_ms`, with what is left of each. Client by client (`client_id IN clients`): SQLite
/// seeks the unique index once per client, so no index by age is needed (it cost 1.2 bytes
/// a bucket).
pub fn read_expired(
    conn: &mut SqliteConnection,
    step: i64,
    last_ms: i64,
    limit: i64,
) -> Result<Vec<ExpiredPack>, StoreError> {
    let old = rollup_packs::table
        .filter(rollup_packs::client_id.eq_any(clients::table.select(clients::id)))
        .filter(rollup_packs::step_s.eq(step / 1000))
        .filter(rollup_packs::first_ms.le(last_ms))
        .select((
            rollup_packs::id,
            rollup_packs::client_id,
            rollup_packs::first_ms,
            rollup_packs::buckets,
            rollup_packs::data,
        ))
        .limit(limit)
        .load::<(i64, i64, i64, i64, Vec<u8>)>(conn)?;
    let mut out = Vec::with_capacity(old.len());
    for (id, client_id, first_ms, buckets, data) in old {
        let mut left = decode(first_ms, step, &data)?;
        left.retain(|ms, _| *ms > last_ms);
        let removed = buckets - left.len() as i64;
        let mut pack = Pack {
            id: Some(id),
            read: Some(data),
            buckets: left,
            until: None,
        };
        out.push(ExpiredPack {
            save: Save::of(client_id, step, &mut pack),
            removed,
        });
    }
    Ok(out)
}

/// Deletes the packs read by [`read_expired`], or writes them again with what is left; a
/// pack written since it was read is left for the next round. Returns the buckets removed.
pub fn write_expired(
    conn: &mut SqliteConnection,
    packs: Vec<ExpiredPack>,
) -> Result<i64, StoreError> {
    let mut removed = 0;
    for p in packs {
        if p.save.unchanged(conn)? {
            p.save.write(conn)?;
            removed += p.removed;
        }
    }
    Ok(removed)
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
        let (dir, mut conn) = temp_db("legacy-rollups");
        let path = dir.join("db.sqlite3");
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
        assert_eq!(packs, 2, "one pack per client: 30 small buckets fit one");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_pack_round_trips_with_gaps_and_refuses_garbage() {
        let step = 3_600_000;
        let first = 1_800_000_000_000 / step * step;
        let buckets: Buckets = [(0, 60, 500), (1, 60, 520), (5, 12, 900), (23, 60, 10)]
            .into_iter()
            .map(|(i, n, cpu)| (first + i * step, bucket(n, cpu)))
            .collect();
        let data = encode(step, &buckets);
        assert_eq!(decode(first, step, &data).unwrap(), buckets);
        assert!(decode(first, step, &data[..data.len() - 1]).is_err());
        let mut longer = data.clone();
        longer.push(0);
        assert!(decode(first, step, &longer).is_err());
        // The first bucket must be at the pack's start, the others after it.
        assert!(decode(first, step, &[1, 1, 3, 2, 0, 0, 0]).is_err());
        assert!(decode(first, step, &[2, 0]).is_err(), "unknown version");
    }

    /// A temporary database, opened for writing.
    fn temp_db(tag: &str) -> (std::path::PathBuf, SqliteConnection) {
        let dir = std::env::temp_dir().join(format!("monitord-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let conn = crate::store::open_for_writing(&dir.join("db.sqlite3")).unwrap();
        (dir, conn)
    }

    #[test]
    fn packs_fill_up_to_their_size_and_a_write_in_the_middle_splits_one() {
        let (dir, mut conn) = temp_db("packs");
        diesel::insert_into(clients::table)
            .values((clients::id.eq(1), clients::name.eq("web1")))
            .execute(&mut conn)
            .unwrap();
        let step = 3_600_000;
        let t0 = 1_800_000_000_000 / step * step;
        let mut expected = Buckets::new();
        // A week of hours, appended in order as the rollup pass does, a day at a time.
        for day in 0..7 {
            let day: Buckets = (0..24)
                .map(|h| {
                    let at = t0 + (day * 24 + h) * step;
                    (at, bucket(60, 100 + (day * 24 + h) * 7 % 900))
                })
                .collect();
            write(&mut conn, 1, step, day.clone()).unwrap();
            expected.extend(day);
        }
        let all = |conn: &mut SqliteConnection| read(conn, 1, step, i64::MIN, i64::MAX).unwrap();
        assert_eq!(
            all(&mut conn),
            expected.clone().into_iter().collect::<Vec<_>>()
        );
        let sizes = |conn: &mut SqliteConnection| -> Vec<usize> {
            rollup_packs::table
                .select(rollup_packs::data)
                .load::<Vec<u8>>(conn)
                .unwrap()
                .iter()
                .map(Vec::len)
                .collect()
        };
        let before = sizes(&mut conn);
        assert!(before.len() > 1, "{before:?}");
        assert!(before.iter().all(|n| *n <= PACK_BYTES), "{before:?}");
        assert!(
            before[..before.len() - 1]
                .iter()
                .all(|n| *n > PACK_BYTES - 200),
            "all but the last pack are full: {before:?}"
        );
        // A late recomputation rewrites a bucket in the middle, bigger than it was.
        let mut big = bucket(60, 5);
        big.scalars[1] = big.scalars[0];
        big.scalars[2] = super::super::bucket::Agg {
            n: 60,
            min: 1 << 40,
            max: 1 << 41,
            sum: 60 << 41,
        };
        let middle = t0 + 30 * step;
        write(&mut conn, 1, step, [(middle, big.clone())]).unwrap();
        expected.insert(middle, big);
        assert_eq!(
            all(&mut conn),
            expected.clone().into_iter().collect::<Vec<_>>()
        );
        assert!(sizes(&mut conn).iter().all(|n| *n <= PACK_BYTES));
        // Reading any span, the first bucket from any time, removing one.
        let span = read(&mut conn, 1, step, t0 + 25 * step, t0 + 50 * step).unwrap();
        assert_eq!(span.len(), 25);
        assert_eq!(span[0].0, t0 + 25 * step);
        assert_eq!(
            first_at_or_after(&mut conn, 1, step, t0 + 30 * step + 1).unwrap(),
            Some(t0 + 31 * step)
        );
        assert_eq!(
            first_at_or_after(&mut conn, 1, step, t0 + 168 * step).unwrap(),
            None
        );
        plan_remove(&mut conn, 1, step, t0)
            .unwrap()
            .apply(&mut conn)
            .unwrap();
        expected.remove(&t0);
        assert_eq!(
            all(&mut conn),
            expected.clone().into_iter().collect::<Vec<_>>()
        );
        // Expiry, in steps of one pack: everything up to the cutoff goes, nothing after it.
        let cutoff = t0 + 100 * step;
        let mut removed = 0;
        loop {
            let old = read_expired(&mut conn, step, cutoff, 1).unwrap();
            if old.is_empty() {
                break;
            }
            removed += write_expired(&mut conn, old).unwrap();
        }
        assert_eq!(removed, expected.range(..=cutoff).count() as i64);
        expected.retain(|ms, _| *ms > cutoff);
        assert_eq!(all(&mut conn), expected.into_iter().collect::<Vec<_>>());
        // A pack written between the read and the write is left alone.
        write(&mut conn, 1, step, [(cutoff + step, bucket(1, 1))]).unwrap();
        let old = read_expired(&mut conn, step, cutoff + step, 1).unwrap();
        assert_eq!(old.len(), 1);
        write(&mut conn, 1, step, [(cutoff + step, bucket(2, 2))]).unwrap();
        assert_eq!(write_expired(&mut conn, old).unwrap(), 0);
        assert!(
            read(&mut conn, 1, step, cutoff, cutoff + 2 * step)
                .unwrap()
                .iter()
                .any(|(ms, _)| *ms == cutoff + step)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
