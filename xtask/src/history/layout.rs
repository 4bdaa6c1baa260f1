//! Where a rollup bucket's bytes go: its payload split by part of the layout that
//! `monitord::store::history::bucket` documents (per field: the count of samples that lack
//! it, then min, max − min and sum − n × min, LEB128 varints), and by field. Diagnosis for
//! the bytes-per-value goal; nothing here is timed.

use std::collections::BTreeMap;

use diesel::SqliteConnection;
use monitord::store::history::bucket::{Agg, DISK_FIELDS, SCALARS};
use monitord::store::history::rollup;

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
    /// Version, disk count and disk ids.
    pub framing: u64,
    /// [count, min, range, excess] over every field.
    pub parts: [u64; 4],
    pub by_field: BTreeMap<String, u64>,
}

impl Breakdown {
    fn add(&mut self, field: &str, samples: i64, agg: &Agg) {
        let mut bytes = [varint_len((samples - agg.n) as u64), 0, 0, 0];
        if agg.n > 0 {
            bytes[1] = varint_len(zigzag(agg.min));
            bytes[2] = varint_len((agg.max - agg.min) as u64);
            bytes[3] = varint_len((agg.sum - agg.n * agg.min) as u64);
        }
        for (p, b) in self.parts.iter_mut().zip(bytes) {
            *p += b;
        }
        *self.by_field.entry(field.to_owned()).or_default() += bytes.iter().sum::<u64>();
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
    for h in hosts.iter().step_by(every.max(1)) {
        for (_, b) in rollup::stored_buckets(conn, h.client_id, HOUR_MS, from, to)? {
            out.buckets += 1;
            out.framing += 1 + varint_len(b.disks.len() as u64);
            for (name, agg) in SCALARS.iter().zip(&b.scalars) {
                out.add(name, b.samples, agg);
            }
            for (id, aggs) in &b.disks {
                out.framing += varint_len(zigzag(*id));
                for (name, agg) in DISK_FIELDS.iter().zip(aggs) {
                    out.add(&format!("disk {name}"), b.samples, agg);
                }
            }
        }
    }
    Ok(out)
}
