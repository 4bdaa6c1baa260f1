//! `Sample::parse` and `validate(now)` on arbitrary bytes (the plaintext of an opened envelope).
//!
//! Properties: neither panics; a parsed and validated sample holds what the contract promises
//! monitord's storage and alerts: `v` 1, percentages within 0–100 (also each disk's, as `df`
//! computes it), sizes not negative and `used` not above `total`, `ts` inside the window.
#![no_main]

use libfuzzer_sys::fuzz_target;
use monitor_core::sample::{MAX_AGE_MS, MAX_AHEAD_MS, Sample};

/// The server clock of every run (unix ms, 2026-09-21): fixed, so a crash reproduces.
const NOW: i64 = 1_790_000_000_000;

fn in_percent(value: f64) -> bool {
    value.is_finite() && (0.0..=100.0).contains(&value)
}

fuzz_target!(|data: &[u8]| {
    let Ok(sample) = Sample::parse(data) else {
        return;
    };
    assert_eq!(sample.v, 1);
    if sample.validate(NOW).is_err() {
        return;
    }
    assert!(sample.ts <= NOW + MAX_AHEAD_MS && sample.ts >= NOW - MAX_AGE_MS);
    assert!(in_percent(sample.cpu_percent));
    let m = &sample.memory;
    assert!(in_percent(m.percent));
    assert!(m.total >= 0 && m.used >= 0 && m.available >= 0 && m.used <= m.total);
    if let Some(s) = &sample.swap {
        assert!(in_percent(s.percent));
        assert!(s.used >= 0 && s.used <= s.total);
    }
    for d in &sample.disks {
        assert!(d.used >= 0 && d.used <= d.total && d.avail.is_none_or(|a| a >= 0));
        assert!(in_percent(d.percent()), "disk {} is {}%", d.mount, d.percent());
    }
    if let Some(fullest) = sample.fullest_disk() {
        assert!(in_percent(fullest.percent()));
    }
    if let Some(load) = sample.load {
        assert!(load.iter().all(|l| l.is_finite() && *l >= 0.0));
    }
});
