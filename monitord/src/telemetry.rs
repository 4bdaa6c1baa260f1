//! monitord's own counters, cheap enough for every request and every batch: plain atomics that
//! the ingest handler and the writer bump and `/metrics` reads (see [`crate::web::metrics`]).
//!
//! Not here: rendering them (the web listener's business) or anything read from the database.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Ingest requests answered, by HTTP status; one relaxed increment per request.
#[derive(Debug)]
pub struct RequestCounts {
    by_status: Box<[AtomicU64; 600]>,
}

impl Default for RequestCounts {
    fn default() -> RequestCounts {
        RequestCounts {
            by_status: Box::new(std::array::from_fn(|_| AtomicU64::new(0))),
        }
    }
}

impl RequestCounts {
    pub fn record(&self, status: u16) {
        if let Some(slot) = self.by_status.get(usize::from(status)) {
            slot.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `(status, count)` for every status answered at least once, by status.
    pub fn snapshot(&self) -> Vec<(u16, u64)> {
        self.by_status
            .iter()
            .enumerate()
            .filter_map(|(status, n)| {
                let n = n.load(Ordering::Relaxed);
                (n > 0).then_some((status as u16, n))
            })
            .collect()
    }
}

/// Upper bounds (seconds) of the commit-duration buckets: an fsync on a good disk is well
/// under a millisecond; a batch past [`crate::store::writer::SLOW_COMMIT`] is logged.
pub const COMMIT_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// A Prometheus histogram of durations over [`COMMIT_BUCKETS`], lock-free.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Per bucket, not cumulative; the last slot is +Inf.
    counts: [AtomicU64; COMMIT_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

/// What `/metrics` prints of a [`Histogram`].
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound, cumulative count)`, +Inf last as `f64::INFINITY`.
    pub buckets: Vec<(f64, u64)>,
    pub sum_seconds: f64,
    pub count: u64,
}

impl Histogram {
    pub fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let slot = COMMIT_BUCKETS
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(COMMIT_BUCKETS.len());
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(
            u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(self.counts.len());
        for (i, n) in self.counts.iter().enumerate() {
            cumulative += n.load(Ordering::Relaxed);
            let le = COMMIT_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY);
            buckets.push((le, cumulative));
        }
        HistogramSnapshot {
            buckets,
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            count: cumulative,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_inclusive() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(1));
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_secs(9));
        let s = h.snapshot();
        assert_eq!(s.buckets[0], (0.001, 2));
        assert_eq!(s.buckets[4], (0.025, 2));
        assert_eq!(s.buckets[5], (0.05, 3));
        assert_eq!(s.buckets[11], (5.0, 3));
        assert_eq!(s.buckets[12], (f64::INFINITY, 4));
        assert_eq!(s.count, 4);
        assert!((s.sum_seconds - 9.0315).abs() < 1e-9, "{}", s.sum_seconds);
    }

    #[test]
    fn request_counts_list_only_answered_statuses() {
        let c = RequestCounts::default();
        c.record(200);
        c.record(200);
        c.record(503);
        c.record(999);
        assert_eq!(c.snapshot(), [(200, 2), (503, 1)]);
    }
}
