//! The replay guard: which `(instance, seq)` pairs are stored, as ranges of seqs per
//! instance. The writer keeps it in memory, loaded once from the database (raw rows and
//! `packed_seqs`) and then updated only after its own commits; no other process stores
//! samples, and compaction moves samples without changing which pairs are stored. An agent's
//! seqs are consecutive, so an instance costs one range however many samples it sent.
//!
//! Bounded by age, not by count: each instance remembers the newest `ts` stored for it, and
//! an instance whose newest sample is older than [`FORGET_AFTER_MS`] (the 7-day acceptance
//! window plus a day of slack for clock steps) is forgotten ([`Seen::forget_older_than`],
//! which the writer runs hourly). That is safe because a replayed sample carries its original
//! `ts`, and one that old is refused (422) before the writer sees it. Every agent start makes
//! a new instance, so without this the guard would grow with every restart ever made. Packed
//! ranges from before `packed_seqs.ts_max` existed count as new when loaded.

use std::collections::HashMap;

use diesel::prelude::*;

use monitor_core::sample::MAX_AGE_MS;

use super::schema::{packed_seqs, raw_samples};

/// How old an instance's newest stored sample may get before the guard forgets it.
pub const FORGET_AFTER_MS: i64 = MAX_AGE_MS + 24 * 3600 * 1000;
const _: () = assert!(FORGET_AFTER_MS > MAX_AGE_MS);

/// Closed ranges of seqs, sorted and neither overlapping nor touching.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeqRanges(Vec<(i64, i64)>);

impl SeqRanges {
    pub fn contains(&self, seq: i64) -> bool {
        let i = self.0.partition_point(|&(lo, _)| lo <= seq);
        i > 0 && self.0[i - 1].1 >= seq
    }

    pub fn insert(&mut self, seq: i64) {
        self.insert_range(seq, seq);
    }

    /// Adds `lo..=hi`, merging with every range it overlaps or touches.
    pub fn insert_range(&mut self, lo: i64, hi: i64) {
        // The common case: the next seq of a running agent.
        if let Some(last) = self.0.last_mut() {
            if last.0 <= lo && lo <= last.1.saturating_add(1) {
                last.1 = last.1.max(hi);
                return;
            }
        }
        let start = self.0.partition_point(|&(_, h)| h.saturating_add(1) < lo);
        let end = self.0.partition_point(|&(l, _)| l <= hi.saturating_add(1));
        if start == end {
            self.0.insert(start, (lo, hi));
            return;
        }
        let merged = (lo.min(self.0[start].0), hi.max(self.0[end - 1].1));
        self.0.splice(start..end, [merged]);
    }

    pub fn ranges(&self) -> &[(i64, i64)] {
        &self.0
    }
}

/// Every stored `(instance, seq)` younger than [`FORGET_AFTER_MS`].
#[derive(Debug, Default)]
pub struct Seen {
    /// Per instance: its seqs and the newest `ts` among them.
    instances: HashMap<i64, (SeqRanges, i64)>,
}

impl Seen {
    /// Reads the stored pairs from both tiers, leaving out what is already forgettable.
    pub fn load(conn: &mut SqliteConnection, now_ms: i64) -> QueryResult<Seen> {
        let cutoff = now_ms - FORGET_AFTER_MS;
        let mut seen = Seen::default();
        for (instance_id, lo, hi, ts_max) in packed_seqs::table
            .filter(
                packed_seqs::ts_max
                    .ge(cutoff)
                    .or(packed_seqs::ts_max.is_null()),
            )
            .select((
                packed_seqs::instance_id,
                packed_seqs::lo,
                packed_seqs::hi,
                packed_seqs::ts_max,
            ))
            .load::<(i64, i64, i64, Option<i64>)>(conn)?
        {
            let entry = seen.entry(instance_id, ts_max.unwrap_or(now_ms));
            entry.insert_range(lo, hi);
        }
        for (instance_id, seq, ts) in raw_samples::table
            .filter(raw_samples::ts.ge(cutoff))
            .select((raw_samples::instance_id, raw_samples::seq, raw_samples::ts))
            .order((raw_samples::instance_id, raw_samples::seq))
            .load::<(i64, i64, i64)>(conn)?
        {
            seen.insert(instance_id, seq, ts);
        }
        Ok(seen)
    }

    fn entry(&mut self, instance_id: i64, ts: i64) -> &mut SeqRanges {
        let (ranges, newest) = self
            .instances
            .entry(instance_id)
            .or_insert_with(|| (SeqRanges::default(), ts));
        *newest = (*newest).max(ts);
        ranges
    }

    pub fn contains(&self, instance_id: i64, seq: i64) -> bool {
        self.instances
            .get(&instance_id)
            .is_some_and(|(r, _)| r.contains(seq))
    }

    /// Records a stored sample of `instance_id` collected at `ts`.
    pub fn insert(&mut self, instance_id: i64, seq: i64, ts: i64) {
        self.entry(instance_id, ts).insert(seq);
    }

    /// Forgets every instance whose newest sample is older than `now_ms - FORGET_AFTER_MS`;
    /// returns how many.
    pub fn forget_older_than(&mut self, now_ms: i64) -> usize {
        let cutoff = now_ms - FORGET_AFTER_MS;
        let before = self.instances.len();
        self.instances.retain(|_, (_, newest)| *newest >= cutoff);
        before - self.instances.len()
    }

    /// Instances remembered.
    pub fn len(&self) -> usize {
        self.instances.len()
    }

    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_and_answer() {
        let mut r = SeqRanges::default();
        for seq in [5, 6, 7, 1, 3, 2, 10, 9] {
            r.insert(seq);
        }
        assert_eq!(r.ranges(), &[(1, 3), (5, 7), (9, 10)]);
        r.insert(4);
        assert_eq!(r.ranges(), &[(1, 7), (9, 10)]);
        r.insert_range(0, 20);
        assert_eq!(r.ranges(), &[(0, 20)]);
        assert!(r.contains(0) && r.contains(20) && !r.contains(21) && !r.contains(-1));
        let mut gaps = SeqRanges::default();
        gaps.insert_range(10, 12);
        gaps.insert_range(1, 2);
        gaps.insert_range(20, 30);
        assert_eq!(gaps.ranges(), &[(1, 2), (10, 12), (20, 30)]);
        assert!(!gaps.contains(5) && gaps.contains(11) && !gaps.contains(19));
    }

    #[test]
    fn instances_are_forgotten_once_their_newest_sample_is_past_the_window() {
        let now = 1_790_000_000_000;
        let mut seen = Seen::default();
        seen.insert(1, 0, now - FORGET_AFTER_MS - 1000);
        seen.insert(1, 1, now - FORGET_AFTER_MS - 500);
        // Instance 2 has an old sample and a recent one: the recent one keeps it.
        seen.insert(2, 0, now - FORGET_AFTER_MS - 1000);
        seen.insert(2, 1, now - 1000);
        assert_eq!(seen.forget_older_than(now), 1);
        assert_eq!(seen.len(), 1);
        assert!(!seen.contains(1, 0) && !seen.contains(1, 1));
        assert!(seen.contains(2, 0) && seen.contains(2, 1));
        // The window is the acceptance window and more: a sample young enough to be
        // accepted is never forgotten.
        seen.insert(3, 0, now - MAX_AGE_MS);
        assert_eq!(seen.forget_older_than(now), 0);
    }
}
