//! The replay guard: which `(instance, seq)` pairs are stored, as ranges of seqs per
//! instance. The writer keeps it in memory, loaded once from the database (raw rows and
//! `packed_seqs`) and then updated only after its own commits; no other process stores
//! samples, and compaction moves samples without changing which pairs are stored. An agent's
//! seqs are consecutive, so an instance costs one range however many samples it sent.

use std::collections::HashMap;

use diesel::prelude::*;

use super::schema::{packed_seqs, raw_samples};

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

/// Every stored `(instance, seq)`.
#[derive(Debug, Default)]
pub struct Seen {
    instances: HashMap<i64, SeqRanges>,
}

impl Seen {
    /// Reads the stored pairs from both tiers.
    pub fn load(conn: &mut SqliteConnection) -> QueryResult<Seen> {
        let mut seen = Seen::default();
        for (instance_id, lo, hi) in packed_seqs::table
            .select((packed_seqs::instance_id, packed_seqs::lo, packed_seqs::hi))
            .load::<(i64, i64, i64)>(conn)?
        {
            seen.instances
                .entry(instance_id)
                .or_default()
                .insert_range(lo, hi);
        }
        for (instance_id, seq) in raw_samples::table
            .select((raw_samples::instance_id, raw_samples::seq))
            .order((raw_samples::instance_id, raw_samples::seq))
            .load::<(i64, i64)>(conn)?
        {
            seen.insert(instance_id, seq);
        }
        Ok(seen)
    }

    pub fn contains(&self, instance_id: i64, seq: i64) -> bool {
        self.instances
            .get(&instance_id)
            .is_some_and(|r| r.contains(seq))
    }

    pub fn insert(&mut self, instance_id: i64, seq: i64) {
        self.instances.entry(instance_id).or_default().insert(seq);
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
}
