//! A rollup bucket: how many samples fell in a span of time and, for every numeric field,
//! how many carried it and their min, max and sum, at stored precision (integers: percent
//! and load × 100, sizes in KiB, seconds, counts). Merging two buckets is exact, so a coarser
//! tier is derived from a finer one and an average is always sum / count, never an average
//! of averages. The same type folds raw samples for the read API, so raw and rolled-up
//! spans read alike.
//!
//! Layout of `data` (varints, see [`crate::store::codec`]): a version, then per scalar field
//! in [`SCALARS`] order `samples − n`, and when `n > 0` zigzag(min), `max − min` and
//! `sum − n × min`; then the number of disks and per disk its id and the same four numbers
//! for each of [`DISK_FIELDS`]. Values relative to the bucket's own min keep them small: a
//! field that did not move costs three bytes.

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

    pub fn encode(&self) -> Vec<u8> {
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

    pub fn decode(samples: i64, data: &[u8]) -> Result<Bucket, Corrupt> {
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
        let data = whole.encode();
        assert_eq!(Bucket::decode(whole.samples, &data).unwrap(), whole);
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
        let round = Bucket::decode(b.samples, &b.encode()).unwrap();
        assert_eq!(round, b);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Bucket::decode(3, &[]).is_err());
        assert!(Bucket::decode(3, &[1, 200]).is_err());
        assert!(Bucket::decode(1, &[1, 5]).is_err());
    }
}
