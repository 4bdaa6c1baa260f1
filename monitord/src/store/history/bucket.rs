//! A rollup bucket: how many samples fell in a span of time and, for every numeric field,
//! how many carried it and their min, max and sum, at stored precision (integers: percent
//! and load × 100, sizes in KiB, seconds, counts). Merging two buckets is exact, so a coarser
//! tier is derived from a finer one and an average is always sum / count, never an average
//! of averages. The same type folds raw samples for the read API, so raw and rolled-up
//! spans read alike.
//!
//! Stored in packs of consecutive buckets ([`super::pack`]), each bucket written after the
//! one before it ([`Bucket::encode_after`], varints, see [`crate::store::codec`]): the
//! change in its sample count; a bit mask of the scalar fields (in [`SCALARS`] order) that
//! fewer samples carried, and `samples − n` for each; per scalar with `n > 0` its min as a
//! change from the previous bucket's min, `max − min` and `sum − n × min`; then its disks
//! (`0` when they are the previous bucket's, else their count + 1 and ids) and, per disk,
//! the same for each of [`DISK_FIELDS`]. Relative to the bucket before and to its own min,
//! the numbers stay small: a field that did not move costs three bytes, a disk's size one.
//!
//! [`Bucket::decode_v1`] reads the layout of one bucket per row that came before packs
//! (every number relative to the bucket itself), for the conversion at start.

use std::collections::BTreeMap;

use crate::store::codec::{Corrupt, get_varint, put_varint, unzigzag, zigzag};
use crate::store::stored::{DiskValues, Values};

const VERSION: u64 = 1;

/// The scalar fields, in stored order, by the names the read API gives their series.
pub const SCALARS: [&str; 13] = [
    "cpu_percent",
    "memory_percent",
    "memory_used",
    "memory_available",
    "memory_total",
    "swap_percent",
    "swap_used",
    "swap_total",
    "uptime_s",
    "load1",
    "load5",
    "load15",
    "processes",
];

/// Each disk's fields; `percent` is `used / (used + avail)` (or `used / total`), as `df`.
pub const DISK_FIELDS: [&str; 4] = ["total", "used", "avail", "percent"];

/// Count, min, max and sum of one field over a bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Agg {
    pub n: i64,
    pub min: i64,
    pub max: i64,
    pub sum: i64,
}

impl Agg {
    pub fn add(&mut self, v: i64) {
        self.merge(&Agg {
            n: 1,
            min: v,
            max: v,
            sum: v,
        });
    }

    pub fn merge(&mut self, other: &Agg) {
        if other.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = *other;
            return;
        }
        self.n += other.n;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    pub fn avg(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum as f64 / self.n as f64)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bucket {
    pub samples: i64,
    pub scalars: [Agg; SCALARS.len()],
    /// By disk id (the `disks` table).
    pub disks: BTreeMap<i64, [Agg; DISK_FIELDS.len()]>,
}

impl Bucket {
    /// Adds one stored sample.
    pub fn add(&mut self, v: &Values, disks: &[DiskValues]) {
        self.samples += 1;
        let s = &mut self.scalars;
        s[0].add(v.cpu);
        s[1].add(v.mem_pct);
        s[2].add(v.mem_used);
        s[3].add(v.mem_avail);
        s[4].add(v.mem_total);
        if let Some([total, used, pct]) = v.swap {
            s[5].add(pct);
            s[6].add(used);
            s[7].add(total);
        }
        if let Some(up) = v.uptime {
            s[8].add(up);
        }
        if let Some([l1, l5, l15]) = v.load {
            s[9].add(l1);
            s[10].add(l5);
            s[11].add(l15);
        }
        if let Some(p) = v.processes {
            s[12].add(p);
        }
        for d in disks {
            let aggs = self.disks.entry(d.disk_id).or_default();
            aggs[0].add(d.total);
            aggs[1].add(d.used);
            if let Some(avail) = d.avail {
                aggs[2].add(avail);
            }
            aggs[3].add(disk_percent(d));
        }
    }

    pub fn merge(&mut self, other: &Bucket) {
        self.samples += other.samples;
        for (mine, theirs) in self.scalars.iter_mut().zip(&other.scalars) {
            mine.merge(theirs);
        }
        for (id, theirs) in &other.disks {
            let mine = self.disks.entry(*id).or_default();
            for (m, t) in mine.iter_mut().zip(theirs) {
                m.merge(t);
            }
        }
    }

    /// Appends this bucket to `out`, relative to `prev` (the bucket before it in its pack).
    pub fn encode_after(&self, prev: Option<&Bucket>, out: &mut Vec<u8>) {
        let empty = Bucket::default();
        let prev = prev.unwrap_or(&empty);
        put_varint(out, zigzag(self.samples - prev.samples));
        put_aggs_after(out, self.samples, &self.scalars, &prev.scalars);
        if self.disks.keys().eq(prev.disks.keys()) {
            put_varint(out, 0);
        } else {
            put_varint(out, self.disks.len() as u64 + 1);
            let mut last = 0;
            for id in self.disks.keys() {
                put_varint(out, zigzag(id - last));
                last = *id;
            }
        }
        let none = [Agg::default(); DISK_FIELDS.len()];
        for (id, aggs) in &self.disks {
            let before = prev.disks.get(id).unwrap_or(&none);
            put_aggs_after(out, self.samples, aggs, before);
        }
    }

    /// Reads a bucket [`Bucket::encode_after`] wrote after `prev`, from `data` at `pos`.
    pub fn decode_after(
        prev: Option<&Bucket>,
        data: &[u8],
        pos: &mut usize,
    ) -> Result<Bucket, Corrupt> {
        let empty = Bucket::default();
        let prev = prev.unwrap_or(&empty);
        let samples = prev
            .samples
            .checked_add(unzigzag(get_varint(data, pos)?))
            .filter(|n| *n > 0)
            .ok_or(Corrupt("a rollup bucket without samples"))?;
        let mut bucket = Bucket {
            samples,
            ..Bucket::default()
        };
        get_aggs_after(data, pos, samples, &mut bucket.scalars, &prev.scalars)?;
        let ids: Vec<i64> = match get_varint(data, pos)? {
            0 => prev.disks.keys().copied().collect(),
            n if n - 1 > MAX_DISKS => return Err(Corrupt("too many disks in a rollup bucket")),
            n => {
                let mut last = 0i64;
                let mut ids = Vec::new();
                for _ in 1..n {
                    last = last
                        .checked_add(unzigzag(get_varint(data, pos)?))
                        .ok_or(Corrupt("bad disk id"))?;
                    ids.push(last);
                }
                ids
            }
        };
        let none = [Agg::default(); DISK_FIELDS.len()];
        for id in ids {
            let before = prev.disks.get(&id).unwrap_or(&none);
            let mut aggs = [Agg::default(); DISK_FIELDS.len()];
            get_aggs_after(data, pos, samples, &mut aggs, before)?;
            bucket.disks.insert(id, aggs);
        }
        Ok(bucket)
    }

    /// One bucket per row, as stored before packs; for [`super::pack`]'s conversion only.
    #[cfg(test)]
    pub fn encode_v1(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        put_varint(&mut out, VERSION);
        for agg in &self.scalars {
            put_agg(&mut out, self.samples, agg);
        }
        put_varint(&mut out, self.disks.len() as u64);
        for (id, aggs) in &self.disks {
            put_varint(&mut out, zigzag(*id));
            for agg in aggs {
                put_agg(&mut out, self.samples, agg);
            }
        }
        out
    }

    /// Reads a bucket of the layout before packs (see the module's doc).
    pub fn decode_v1(samples: i64, data: &[u8]) -> Result<Bucket, Corrupt> {
        let mut pos = 0;
        if get_varint(data, &mut pos)? != VERSION {
            return Err(Corrupt("unknown rollup bucket version"));
        }
        let mut bucket = Bucket {
            samples,
            ..Bucket::default()
        };
        for agg in &mut bucket.scalars {
            *agg = get_agg(data, &mut pos, samples)?;
        }
        let disks = get_varint(data, &mut pos)?;
        for _ in 0..disks {
            let id = unzigzag(get_varint(data, &mut pos)?);
            let mut aggs = [Agg::default(); DISK_FIELDS.len()];
            for agg in &mut aggs {
                *agg = get_agg(data, &mut pos, samples)?;
            }
            bucket.disks.insert(id, aggs);
        }
        if pos != data.len() {
            return Err(Corrupt("trailing bytes after a rollup bucket"));
        }
        Ok(bucket)
    }
}

/// A disk's use in percent × 100, as `df` shows it.
fn disk_percent(d: &DiskValues) -> i64 {
    let whole = match d.avail {
        Some(avail) => d.used + avail,
        None => d.total,
    };
    if whole <= 0 {
        0
    } else {
        (d.used as i128 * 10_000 / whole as i128) as i64
    }
}

/// Disks a bucket may hold at most (a corrupt count must not allocate without end).
const MAX_DISKS: u64 = 4096;

/// A field's min is written as a change from the same field's min in the bucket before, or
/// from 0 when that one had no value.
fn base(before: &Agg) -> i64 {
    if before.n > 0 { before.min } else { 0 }
}

fn put_aggs_after(out: &mut Vec<u8>, samples: i64, aggs: &[Agg], before: &[Agg]) {
    let mut lacking = 0u64;
    for (i, agg) in aggs.iter().enumerate() {
        if agg.n != samples {
            lacking |= 1 << i;
        }
    }
    put_varint(out, lacking);
    for agg in aggs.iter().filter(|a| a.n != samples) {
        put_varint(out, (samples - agg.n) as u64);
    }
    for (agg, before) in aggs.iter().zip(before) {
        if agg.n > 0 {
            put_varint(out, zigzag(agg.min.wrapping_sub(base(before))));
            put_varint(out, (agg.max - agg.min) as u64);
            put_varint(out, (agg.sum - agg.n * agg.min) as u64);
        }
    }
}

fn get_aggs_after(
    data: &[u8],
    pos: &mut usize,
    samples: i64,
    aggs: &mut [Agg],
    before: &[Agg],
) -> Result<(), Corrupt> {
    let lacking = get_varint(data, pos)?;
    if lacking >> aggs.len() != 0 {
        return Err(Corrupt("a rollup field mask names no field"));
    }
    for (i, agg) in aggs.iter_mut().enumerate() {
        agg.n = samples;
        if lacking & (1 << i) != 0 {
            let missing =
                i64::try_from(get_varint(data, pos)?).map_err(|_| Corrupt("bad count"))?;
            agg.n = samples - missing;
            if agg.n < 0 || missing == 0 {
                return Err(Corrupt("a rollup field counted wrong"));
            }
        }
    }
    for (agg, before) in aggs.iter_mut().zip(before) {
        if agg.n > 0 {
            agg.min = base(before).wrapping_add(unzigzag(get_varint(data, pos)?));
            agg.max = agg.min.wrapping_add(get_varint(data, pos)? as i64);
            agg.sum = agg
                .n
                .wrapping_mul(agg.min)
                .wrapping_add(get_varint(data, pos)? as i64);
        } else {
            *agg = Agg::default();
        }
    }
    Ok(())
}

#[cfg(test)]
fn put_agg(out: &mut Vec<u8>, samples: i64, agg: &Agg) {
    put_varint(out, (samples - agg.n) as u64);
    if agg.n > 0 {
        put_varint(out, zigzag(agg.min));
        put_varint(out, (agg.max - agg.min) as u64);
        put_varint(out, (agg.sum - agg.n * agg.min) as u64);
    }
}

fn get_agg(data: &[u8], pos: &mut usize, samples: i64) -> Result<Agg, Corrupt> {
    let missing = i64::try_from(get_varint(data, pos)?).map_err(|_| Corrupt("bad count"))?;
    let n = samples - missing;
    if n < 0 {
        return Err(Corrupt(
            "a field counted more often than its bucket's samples",
        ));
    }
    if n == 0 {
        return Ok(Agg::default());
    }
    let min = unzigzag(get_varint(data, pos)?);
    let range = get_varint(data, pos)? as i64;
    let excess = get_varint(data, pos)? as i64;
    Ok(Agg {
        n,
        min,
        max: min + range,
        sum: n * min + excess,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(ts: i64, cpu: i64, used: i64) -> Values {
        Values {
            ts,
            cpu,
            mem_total: 8_000_000,
            mem_used: used,
            mem_avail: 8_000_000 - used,
            mem_pct: used * 10_000 / 8_000_000,
            swap: Some([1_000_000, 0, 0]),
            uptime: Some(1000 + ts / 1000),
            load: Some([150, 120, 100]),
            processes: Some(200),
        }
    }

    fn disk(used: i64) -> DiskValues {
        DiskValues {
            disk_id: 7,
            total: 100_000_000,
            used,
            avail: Some(100_000_000 - used),
        }
    }

    fn encode(b: &Bucket) -> Vec<u8> {
        let mut out = Vec::new();
        b.encode_after(None, &mut out);
        out
    }

    fn decode(data: &[u8]) -> Bucket {
        let mut pos = 0;
        let b = Bucket::decode_after(None, data, &mut pos).unwrap();
        assert_eq!(pos, data.len());
        b
    }

    #[test]
    fn round_trips_and_merging_equals_adding_all() {
        let mut whole = Bucket::default();
        let (mut a, mut b) = (Bucket::default(), Bucket::default());
        for i in 0..120 {
            let v = values(i * 30_000, 500 + (i * 37) % 3000, 4_000_000 + i * 1000);
            let d = [disk(40_000_000 + i * 10)];
            whole.add(&v, &d);
            if i < 50 { a.add(&v, &d) } else { b.add(&v, &d) }
        }
        let mut merged = a.clone();
        merged.merge(&b);
        assert_eq!(merged, whole);
        let data = encode(&whole);
        assert_eq!(decode(&data), whole);
        let v1 = whole.encode_v1();
        assert_eq!(Bucket::decode_v1(whole.samples, &v1).unwrap(), whole);
        assert_eq!(whole.scalars[0].n, 120);
        assert_eq!(whole.scalars[0].min, 500);
        // 13 scalars and one disk's 4 fields, min, max and sum each: a fast-moving hour
        // (cpu all over the place, memory and uptime climbing) stays under 2.5 bytes a value.
        let values = (SCALARS.len() + DISK_FIELDS.len()) * 3;
        assert!(
            data.len() * 2 < 5 * values,
            "{} bytes for {values} values",
            data.len()
        );
    }

    #[test]
    fn a_field_some_samples_lack_is_averaged_over_those_that_have_it() {
        let mut b = Bucket::default();
        let mut v = values(0, 100, 4_000_000);
        b.add(&v, &[]);
        v.load = None;
        b.add(&v, &[]);
        assert_eq!(b.scalars[9].n, 1);
        assert_eq!(b.scalars[9].avg(), Some(150.0));
        assert_eq!(decode(&encode(&b)), b);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Bucket::decode_v1(3, &[]).is_err());
        assert!(Bucket::decode_v1(3, &[1, 200]).is_err());
        assert!(Bucket::decode_v1(1, &[1, 5]).is_err());
        for data in [
            &[][..],
            &[2, 0xff, 0xff, 0xff],
            &[0],
            &[2, 1, 9],
            &[2, 0x80],
        ] {
            assert!(
                Bucket::decode_after(None, data, &mut 0).is_err(),
                "{data:?}"
            );
        }
    }

    #[test]
    fn a_bucket_after_a_like_one_costs_little() {
        let hour = |h: i64| {
            let mut b = Bucket::default();
            for i in 0..60 {
                let t = h * 3_600_000 + i * 60_000;
                b.add(
                    &values(t, 500 + (i * 37) % 300, 4_000_000 + h * 5000 + i * 10),
                    &[disk(40_000_000 + h * 100)],
                );
            }
            b
        };
        let (first, second) = (hour(0), hour(1));
        let mut out = Vec::new();
        first.encode_after(None, &mut out);
        let alone = out.len();
        second.encode_after(Some(&first), &mut out);
        let after = out.len() - alone;
        let mut pos = 0;
        let a = Bucket::decode_after(None, &out, &mut pos).unwrap();
        let b = Bucket::decode_after(Some(&a), &out, &mut pos).unwrap();
        assert_eq!((a, b, pos), (first, second, out.len()));
        // Disk sizes, memory total and the process count repeat: one byte each.
        assert!(
            after + 20 < alone,
            "{after} bytes after the first, {alone} alone"
        );
    }
}
