//! Where a rollup bucket's bytes go: its payload split by part of the layout that
//! `monitord::store::history::bucket` documents (in a pack, each bucket after the one before
//! it: per group of fields a mask of those some samples lack and their counts, then per field
//! the change of its min, max − min and sum − n × min, LEB128 varints), and by field.
//! Diagnosis for the bytes-per-value goal; nothing here is timed.

use std::collections::BTreeMap;

use diesel::SqliteConnection;
use monitord::store::history::bucket::{Agg, Bucket, DISK_FIELDS, SCALARS};
use monitord::store::history::pack;

use super::fill::{HOUR_MS, HostGen};

fn varint_len(v: u64) -> u64 {
    u64::from((64 - v.leading_zeros()).max(1).div_ceil(7))
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Payload bytes by part and by field, over some clients' buckets.
#[derive(Debug, Default)]
pub struct Breakdown {
    pub buckets: u64,
    /// Place in the pack, change of the sample count, disk ids.
    pub framing: u64,
    /// [counts (masks and the counts of samples lacking a field), change of min, range,
    /// excess] over every field.
    pub parts: [u64; 4],
    pub by_field: BTreeMap<String, u64>,
}

impl Breakdown {
    /// One group of fields (the scalars, or one disk's) of a bucket written after `before`.
    fn add_group(&mut self, names: &[String], samples: i64, aggs: &[Agg], before: &[Agg]) {
        let mut lacking = 0u64;
        for (i, agg) in aggs.iter().enumerate() {
            if agg.n != samples {
                lacking |= 1 << i;
                self.parts[0] += varint_len((samples - agg.n) as u64);
            }
        }
        self.parts[0] += varint_len(lacking);
        for ((name, agg), before) in names.iter().zip(aggs).zip(before) {
            let mut bytes = [0, 0, 0];
            if agg.n > 0 {
                let base = if before.n > 0 { before.min } else { 0 };
                bytes[0] = varint_len(zigzag(agg.min - base));
                bytes[1] = varint_len((agg.max - agg.min) as u64);
                bytes[2] = varint_len((agg.sum - agg.n * agg.min) as u64);
            }
            for (p, b) in self.parts[1..].iter_mut().zip(bytes) {
                *p += b;
            }
            *self.by_field.entry(name.clone()).or_default() += bytes.iter().sum::<u64>();
        }
    }

    pub fn payload(&self) -> u64 {
        self.framing + self.parts.iter().sum::<u64>()
    }

    /// `mem_total 9.1, …` in bytes per bucket, largest first.
    pub fn largest_fields(&self, n: usize) -> String {
        let mut fields: Vec<(&String, &u64)> = self.by_field.iter().collect();
        fields.sort_by(|a, b| b.1.cmp(a.1));
        fields
            .iter()
            .take(n)
            .map(|(f, b)| format!("{f} {:.1}", **b as f64 / self.buckets.max(1) as f64))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The 1-hour buckets of every `every`-th host over `[from, to)`.
pub fn breakdown(
    conn: &mut SqliteConnection,
    hosts: &[HostGen],
    every: usize,
    (from, to): (i64, i64),
) -> anyhow::Result<Breakdown> {
    let mut out = Breakdown::default();
    let scalars: Vec<String> = SCALARS.iter().map(|s| (*s).to_owned()).collect();
    let disk_fields: Vec<String> = DISK_FIELDS.iter().map(|f| format!("disk {f}")).collect();
    let none = [Agg::default(); DISK_FIELDS.len()];
    for h in hosts.iter().step_by(every.max(1)) {
        for pack in pack::packs_between(conn, h.client_id, HOUR_MS, from, to)? {
            // Each pack starts afresh.
            let mut before = Bucket::default();
            for b in pack.into_values() {
                out.buckets += 1;
                // Steps since the bucket before, change of the sample count, the disks.
                out.framing += 1 + varint_len(zigzag(b.samples - before.samples));
                out.framing += if b.disks.keys().eq(before.disks.keys()) {
                    1
                } else {
                    1 + b
                        .disks
                        .keys()
                        .map(|id| varint_len(zigzag(*id)))
                        .sum::<u64>()
                };
                out.add_group(&scalars, b.samples, &b.scalars, &before.scalars);
                for (id, aggs) in &b.disks {
                    let was = before.disks.get(id).unwrap_or(&none);
                    out.add_group(&disk_fields, b.samples, aggs, was);
                }
                before = b;
            }
        }
    }
    Ok(out)
}
