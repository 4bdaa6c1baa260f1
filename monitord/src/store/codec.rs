//! Binary layouts of stored samples: the per-sample disk list of the raw tier, and the packed
//! block that `compact` builds from many samples of one client.
//!
//! A block is columnar: one column per field, each value written as the difference from a
//! prediction (the previous value, or what the other fields imply, e.g. `available ≈ total −
//! used`), zigzag-encoded as a varint, with runs of zeros collapsed to two bytes. Hosts change
//! slowly, so most columns are long runs of zeros and a sample costs a handful of bytes.
//! Decoding gives back exactly the integers that were encoded (lossless at stored precision).
//!
//! Not here: rounding to stored precision ([`super::stored`]) or SQL ([`super::compact`]).

use super::stored::{DiskValues, Values};

/// One sample in the form blocks hold: database ids instead of names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedRow {
    pub instance_id: i64,
    pub seq: i64,
    pub meta_id: i64,
    pub values: Values,
    pub disks: Vec<DiskValues>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored sample data is corrupt: {0}")]
pub struct Corrupt(pub(super) &'static str);

const BLOCK_VERSION: u64 = 1;

pub(super) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub(super) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(super) fn get_varint(buf: &[u8], pos: &mut usize) -> Result<u64, Corrupt> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*pos).ok_or(Corrupt("truncated varint"))?;
        *pos += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(Corrupt("varint too long"))
}

/// The disks of one raw sample: count, then per disk id, total, used, avail + 1 (0: absent).
pub fn encode_disks(disks: &[DiskValues], out: &mut Vec<u8>) {
    put_varint(out, disks.len() as u64);
    for d in disks {
        put_varint(out, d.disk_id as u64);
        put_varint(out, d.total as u64);
        put_varint(out, d.used as u64);
        put_varint(out, d.avail.map_or(0, |a| a as u64 + 1));
    }
}

pub fn decode_disks(buf: &[u8]) -> Result<Vec<DiskValues>, Corrupt> {
    let mut pos = 0;
    let n = get_varint(buf, &mut pos)?;
    if n > buf.len() as u64 {
        return Err(Corrupt("disk count"));
    }
    let mut disks = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let disk_id = get_varint(buf, &mut pos)? as i64;
        let total = get_varint(buf, &mut pos)? as i64;
        let used = get_varint(buf, &mut pos)? as i64;
        let avail = get_varint(buf, &mut pos)?.checked_sub(1).map(|a| a as i64);
        disks.push(DiskValues {
            disk_id,
            total,
            used,
            avail,
        });
    }
    Ok(disks)
}

/// A column of zigzag varints with zero runs collapsed to `0, varint(run - 1)`.
#[derive(Default)]
struct ColumnWriter {
    bytes: Vec<u8>,
    zeros: u64,
}

impl ColumnWriter {
    fn push(&mut self, v: i64) {
        if v == 0 {
            self.zeros += 1;
            return;
        }
        self.flush();
        put_varint(&mut self.bytes, zigzag(v));
    }

    fn flush(&mut self) {
        if self.zeros > 0 {
            self.bytes.push(0);
            put_varint(&mut self.bytes, self.zeros - 1);
            self.zeros = 0;
        }
    }
}

struct ColumnReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    zeros: u64,
}

impl ColumnReader<'_> {
    fn next(&mut self) -> Result<i64, Corrupt> {
        if self.zeros > 0 {
            self.zeros -= 1;
            return Ok(0);
        }
        let v = get_varint(self.bytes, &mut self.pos)?;
        if v == 0 {
            self.zeros = get_varint(self.bytes, &mut self.pos)?;
            return Ok(0);
        }
        Ok(unzigzag(v))
    }
}

/// Column numbers; the order is part of the block format.
mod col {
    pub const TS: usize = 0;
    pub const INSTANCE: usize = 1;
    pub const SEQ: usize = 2;
    pub const META: usize = 3;
    pub const FLAGS: usize = 4;
    pub const CPU: usize = 5;
    pub const MEM_TOTAL: usize = 6;
    pub const MEM_USED: usize = 7;
    pub const MEM_AVAIL: usize = 8;
    pub const MEM_PCT: usize = 9;
    pub const SWAP_TOTAL: usize = 10;
    pub const SWAP_USED: usize = 11;
    pub const SWAP_PCT: usize = 12;
    pub const UPTIME: usize = 13;
    pub const LOAD: usize = 14; // 14, 15, 16
    pub const PROCESSES: usize = 17;
    pub const DISK_COUNT: usize = 18;
    pub const DISK_ID: usize = 19;
    pub const DISK_TOTAL: usize = 20;
    pub const DISK_USED: usize = 21;
    pub const DISK_AVAIL: usize = 22;
    pub const COUNT: usize = 23;
}

const HAS_SWAP: i64 = 1;
const HAS_UPTIME: i64 = 2;
const HAS_LOAD: i64 = 4;
const HAS_PROCESSES: i64 = 8;

/// `used / total` in hundredths of a percent, which is what agents send as `percent`.
fn predicted_pct(used: i64, total: i64) -> i64 {
    if total <= 0 {
        0
    } else {
        (used * 10_000 + total / 2) / total
    }
}

/// What the encoder and decoder both remember about the rows so far: each value is written
/// as its difference from a prediction made from this state.
#[derive(Default)]
struct Predictor {
    ts: i64,
    ts_step: i64,
    instance: i64,
    seq: i64,
    meta: i64,
    flags: i64,
    v: Values,
    swap: [i64; 3],
    uptime: i64,
    uptime_ts: i64,
    load: [i64; 3],
    processes: i64,
    /// `avail` is predicted from `total − used − reserved`; reserved space rarely changes.
    mem_reserved: i64,
    disks: Vec<DiskValues>,
    disk_reserved: Vec<i64>,
}

fn flags_of(v: &Values) -> i64 {
    let mut f = 0;
    if v.swap.is_some() {
        f |= HAS_SWAP;
    }
    if v.uptime.is_some() {
        f |= HAS_UPTIME;
    }
    if v.load.is_some() {
        f |= HAS_LOAD;
    }
    if v.processes.is_some() {
        f |= HAS_PROCESSES;
    }
    f
}

/// Uptime grows with the clock: `uptime − ⌊ts / 1000⌋` is the boot time, which stays put.
fn expected_uptime(p: &Predictor, ts: i64) -> i64 {
    p.uptime - p.uptime_ts.div_euclid(1000) + ts.div_euclid(1000)
}

/// Packs rows (in the order given) into one block.
pub fn encode_block(rows: &[PackedRow]) -> Vec<u8> {
    let mut cols: Vec<ColumnWriter> = (0..col::COUNT).map(|_| ColumnWriter::default()).collect();
    let mut p = Predictor::default();
    for r in rows {
        let v = &r.values;
        let step = v.ts - p.ts;
        cols[col::TS].push(step - p.ts_step);
        p.ts_step = step;
        p.ts = v.ts;
        cols[col::INSTANCE].push(r.instance_id - p.instance);
        let seq_base = if r.instance_id == p.instance {
            p.seq + 1
        } else {
            0
        };
        cols[col::SEQ].push(r.seq - seq_base);
        p.instance = r.instance_id;
        p.seq = r.seq;
        cols[col::META].push(r.meta_id - p.meta);
        p.meta = r.meta_id;
        let flags = flags_of(v);
        cols[col::FLAGS].push(flags - p.flags);
        p.flags = flags;

        cols[col::CPU].push(v.cpu - p.v.cpu);
        cols[col::MEM_TOTAL].push(v.mem_total - p.v.mem_total);
        cols[col::MEM_USED].push(v.mem_used - p.v.mem_used);
        let reserved = v.mem_total - v.mem_used - v.mem_avail;
        cols[col::MEM_AVAIL].push(reserved - p.mem_reserved);
        p.mem_reserved = reserved;
        cols[col::MEM_PCT].push(v.mem_pct - predicted_pct(v.mem_used, v.mem_total));
        if let Some(s) = v.swap {
            cols[col::SWAP_TOTAL].push(s[0] - p.swap[0]);
            cols[col::SWAP_USED].push(s[1] - p.swap[1]);
            cols[col::SWAP_PCT].push(s[2] - predicted_pct(s[1], s[0]));
            p.swap = s;
        }
        if let Some(u) = v.uptime {
            cols[col::UPTIME].push(u - expected_uptime(&p, v.ts));
            p.uptime = u;
            p.uptime_ts = v.ts;
        }
        if let Some(l) = v.load {
            for i in 0..3 {
                cols[col::LOAD + i].push(l[i] - p.load[i]);
            }
            p.load = l;
        }
        if let Some(n) = v.processes {
            cols[col::PROCESSES].push(n - p.processes);
            p.processes = n;
        }
        encode_row_disks(&mut cols, &mut p, &r.disks);
        p.v = v.clone();
    }
    let mut out = Vec::new();
    put_varint(&mut out, BLOCK_VERSION);
    put_varint(&mut out, rows.len() as u64);
    put_varint(&mut out, col::COUNT as u64);
    for mut c in cols {
        c.flush();
        put_varint(&mut out, c.bytes.len() as u64);
        out.extend_from_slice(&c.bytes);
    }
    out
}

fn encode_row_disks(cols: &mut [ColumnWriter], p: &mut Predictor, disks: &[DiskValues]) {
    cols[col::DISK_COUNT].push(disks.len() as i64 - p.disks.len() as i64);
    p.disk_reserved
        .resize(disks.len().max(p.disk_reserved.len()), 0);
    for (j, d) in disks.iter().enumerate() {
        let prev = p.disks.get(j).cloned().unwrap_or_default();
        cols[col::DISK_ID].push(d.disk_id - prev.disk_id);
        cols[col::DISK_TOTAL].push(d.total - prev.total);
        cols[col::DISK_USED].push(d.used - prev.used);
        // Present: zigzag(change of reserved) × 2, so the common case is 0; absent: 1.
        match d.avail {
            Some(a) => {
                let reserved = d.total - d.used - a;
                cols[col::DISK_AVAIL].push(zigzag(reserved - p.disk_reserved[j]) as i64 * 2);
                p.disk_reserved[j] = reserved;
            }
            None => cols[col::DISK_AVAIL].push(1),
        }
    }
    p.disks.clear();
    p.disks.extend_from_slice(disks);
}

/// Unpacks a block into its rows, in the order they were packed.
pub fn decode_block(data: &[u8]) -> Result<Vec<PackedRow>, Corrupt> {
    let mut pos = 0;
    if get_varint(data, &mut pos)? != BLOCK_VERSION {
        return Err(Corrupt("unknown block version"));
    }
    let n = get_varint(data, &mut pos)?;
    let ncols = get_varint(data, &mut pos)? as usize;
    if ncols != col::COUNT || n > 1 << 24 {
        return Err(Corrupt("block header"));
    }
    let mut cols = Vec::with_capacity(ncols);
    for _ in 0..ncols {
        let len = get_varint(data, &mut pos)? as usize;
        let bytes = data
            .get(pos..pos.saturating_add(len))
            .ok_or(Corrupt("column length"))?;
        pos += len;
        cols.push(ColumnReader {
            bytes,
            pos: 0,
            zeros: 0,
        });
    }
    let mut p = Predictor::default();
    let mut rows = Vec::with_capacity(n as usize);
    for _ in 0..n {
        rows.push(decode_row(&mut cols, &mut p)?);
    }
    Ok(rows)
}

fn decode_row(cols: &mut [ColumnReader], p: &mut Predictor) -> Result<PackedRow, Corrupt> {
    let step = p.ts_step + cols[col::TS].next()?;
    let ts = p.ts + step;
    p.ts_step = step;
    p.ts = ts;
    let instance_id = p.instance + cols[col::INSTANCE].next()?;
    let seq_base = if instance_id == p.instance {
        p.seq + 1
    } else {
        0
    };
    let seq = seq_base + cols[col::SEQ].next()?;
    p.instance = instance_id;
    p.seq = seq;
    let meta_id = p.meta + cols[col::META].next()?;
    p.meta = meta_id;
    let flags = p.flags + cols[col::FLAGS].next()?;
    p.flags = flags;

    let mut v = Values {
        ts,
        cpu: p.v.cpu + cols[col::CPU].next()?,
        mem_total: p.v.mem_total + cols[col::MEM_TOTAL].next()?,
        mem_used: p.v.mem_used + cols[col::MEM_USED].next()?,
        ..Values::default()
    };
    p.mem_reserved += cols[col::MEM_AVAIL].next()?;
    v.mem_avail = v.mem_total - v.mem_used - p.mem_reserved;
    v.mem_pct = predicted_pct(v.mem_used, v.mem_total) + cols[col::MEM_PCT].next()?;
    if flags & HAS_SWAP != 0 {
        let total = p.swap[0] + cols[col::SWAP_TOTAL].next()?;
        let used = p.swap[1] + cols[col::SWAP_USED].next()?;
        let pct = predicted_pct(used, total) + cols[col::SWAP_PCT].next()?;
        p.swap = [total, used, pct];
        v.swap = Some(p.swap);
    }
    if flags & HAS_UPTIME != 0 {
        let u = expected_uptime(p, ts) + cols[col::UPTIME].next()?;
        p.uptime = u;
        p.uptime_ts = ts;
        v.uptime = Some(u);
    }
    if flags & HAS_LOAD != 0 {
        for i in 0..3 {
            p.load[i] += cols[col::LOAD + i].next()?;
        }
        v.load = Some(p.load);
    }
    if flags & HAS_PROCESSES != 0 {
        p.processes += cols[col::PROCESSES].next()?;
        v.processes = Some(p.processes);
    }
    let disks = decode_row_disks(cols, p)?;
    p.v = v.clone();
    Ok(PackedRow {
        instance_id,
        seq,
        meta_id,
        values: v,
        disks,
    })
}

fn decode_row_disks(
    cols: &mut [ColumnReader],
    p: &mut Predictor,
) -> Result<Vec<DiskValues>, Corrupt> {
    let count = p.disks.len() as i64 + cols[col::DISK_COUNT].next()?;
    if !(0..=4096).contains(&count) {
        return Err(Corrupt("disk count"));
    }
    let count = count as usize;
    p.disk_reserved.resize(count.max(p.disk_reserved.len()), 0);
    let mut disks = Vec::with_capacity(count);
    for j in 0..count {
        let prev = p.disks.get(j).cloned().unwrap_or_default();
        let disk_id = prev.disk_id + cols[col::DISK_ID].next()?;
        let total = prev.total + cols[col::DISK_TOTAL].next()?;
        let used = prev.used + cols[col::DISK_USED].next()?;
        let code = cols[col::DISK_AVAIL].next()?;
        let avail = if code == 1 {
            None
        } else {
            p.disk_reserved[j] += unzigzag((code / 2) as u64);
            Some(total - used - p.disk_reserved[j])
        };
        disks.push(DiskValues {
            disk_id,
            total,
            used,
            avail,
        });
    }
    p.disks.clone_from(&disks);
    Ok(disks)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host whose values wander like a real one's, with the odd restart and missing field.
    pub(crate) fn wandering_rows(n: usize) -> Vec<PackedRow> {
        let mut rows = Vec::with_capacity(n);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move |m: i64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % (2 * m as u64 + 1)) as i64 - m
        };
        let (mut cpu, mut used, mut disk_used) = (2000i64, 500_000i64, 9_000_000);
        let (mut load, mut load5, mut load15) = (150i64, 150i64, 150i64);
        let (mut instance, mut seq, mut ts) = (1i64, 0i64, 1_790_000_000_000i64);
        for i in 0..n {
            if i % 400 == 399 {
                instance += 1;
                seq = 0;
            }
            ts += 10_000 + rnd(5);
            cpu = (cpu + rnd(300)).clamp(0, 10_000);
            used = (used + rnd(2000)).clamp(0, 1_000_000);
            load = (load + rnd(20)).max(0);
            load5 += (load - load5) / 5;
            load15 += (load - load15) / 15;
            disk_used = (disk_used + rnd(50)).clamp(0, 20_000_000);
            let total = 1_000_000;
            rows.push(PackedRow {
                instance_id: instance,
                seq,
                meta_id: 3 + (i / 500) as i64,
                values: Values {
                    ts,
                    cpu,
                    mem_total: total,
                    mem_used: used,
                    mem_avail: total - used - (i / 700) as i64,
                    mem_pct: predicted_pct(used, total) + i64::from(i % 5 == 0),
                    swap: (!(100..150).contains(&i)).then_some([2_000_000, 1000, 5]),
                    uptime: (i > 20).then_some(3600 + (ts - 1_790_000_000_000) / 1000),
                    load: Some([load, load5, load15]),
                    processes: (i % 50 != 0).then_some(120 + rnd(1)),
                },
                disks: (0..(2 + usize::from(i >= 1000)))
                    .map(|j| DiskValues {
                        disk_id: 10 + j as i64,
                        total: 20_000_000,
                        used: disk_used + j as i64,
                        avail: (j != 2).then_some(20_000_000 - disk_used - 1_000_000),
                    })
                    .collect(),
            });
            seq += 1 + (i % 97 == 0) as i64;
        }
        rows
    }

    #[test]
    fn blocks_give_back_every_value() {
        let rows = wandering_rows(2000);
        let block = encode_block(&rows);
        assert_eq!(decode_block(&block).unwrap(), rows);
        let per_sample = block.len() as f64 / rows.len() as f64;
        assert!(per_sample < 14.0, "{per_sample} bytes per sample");
    }

    #[test]
    fn extreme_values_round_trip() {
        let mut rows = wandering_rows(3);
        rows[1].values.mem_total = i64::MAX / 20_000;
        rows[1].values.cpu = 0;
        rows[2].seq = i64::MAX / 2;
        rows[2].disks.clear();
        assert_eq!(decode_block(&encode_block(&rows)).unwrap(), rows);
        assert_eq!(decode_block(&encode_block(&[])).unwrap(), vec![]);
    }

    #[test]
    fn raw_disks_round_trip_and_garbage_is_an_error() {
        let disks = wandering_rows(3).pop().unwrap().disks;
        let mut buf = Vec::new();
        encode_disks(&disks, &mut buf);
        assert_eq!(decode_disks(&buf).unwrap(), disks);
        assert!(decode_disks(&buf[..buf.len() - 1]).is_err());
        assert!(decode_block(&[1, 5, 23, 0xff]).is_err());
    }
}
