//! History against a real monitord and its real SQLite file: samples sent through the
//! ingest listener over six days, rolled up, then monitord's clock moved three days on so
//! the oldest are past the raw tier's keep. A range spanning the 1-hour tier and the raw
//! tier reads as continuous buckets whose avg/min/max match the values sent; expiry removes
//! exactly the raw samples past `keep` while ingest keeps answering 200; a late sample
//! drained from a spool lands in its closed bucket (and the day above it); `monitord stats`
//! reports every tier.

use std::collections::BTreeMap;
use std::time::Duration;

use testkit::monitord::{Monitord, sample};

use crate::support::{bin, expect_status};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn monitord_with_history() -> Monitord {
    let mut m = Monitord::prepare(bin(), &["web1"]);
    let xml = std::fs::read_to_string(m.config_path()).unwrap().replace(
        "<monitor>\n",
        "<monitor>\n  <history raw=\"7d\">\n    <rollup step=\"1h\" keep=\"30d\"/>\n    \
             <rollup step=\"1d\" keep=\"1y\"/>\n  </history>\n",
    );
    std::fs::write(m.config_path(), xml).unwrap();
    m.spawn();
    m
}

/// The cpu value of the i-th sample: wanders, with two decimals, as stored.
fn cpu(i: i64) -> f64 {
    ((i * 37 + i * i % 11) % 9000) as f64 / 100.0
}

/// `[ts, avg, min, max]` per hour bucket of `(ts, value)`, as the API computes it.
fn expected_buckets(sent: &[(i64, f64)], step: i64) -> BTreeMap<i64, (f64, f64, f64, usize)> {
    let mut out: BTreeMap<i64, (f64, f64, f64, usize)> = BTreeMap::new();
    for &(ts, v) in sent {
        let e = out
            .entry(ts.div_euclid(step) * step)
            .or_insert((0.0, f64::MAX, f64::MIN, 0));
        e.0 += v;
        e.1 = e.1.min(v);
        e.2 = e.2.max(v);
        e.3 += 1;
    }
    out
}

fn series(m: &Monitord, since: &str, step: &str) -> serde_json::Value {
    let out = m.command_ok(&[
        "samples", "web1", "--since", since, "--step", step, "--json",
    ]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn check(points: &serde_json::Value, expected: &BTreeMap<i64, (f64, f64, f64, usize)>) {
    let points = points.as_array().expect("an array of buckets");
    let got: Vec<i64> = points
        .iter()
        .map(|p| p[0].as_f64().unwrap() as i64)
        .collect();
    let want: Vec<i64> = expected.keys().copied().collect();
    assert_eq!(got, want, "bucket starts");
    for p in points {
        let (sum, min, max, n) = expected[&(p[0].as_f64().unwrap() as i64)];
        // The API gives two decimals: within half a hundredth of the true average (comparing
        // with a rounded expectation instead fails when the true one ends in ~5).
        let avg = sum / n as f64;
        assert!(
            (p[1].as_f64().unwrap() - avg).abs() <= 0.005 + 1e-9,
            "avg {p} vs {avg}"
        );
        assert_eq!(p[2].as_f64().unwrap(), min, "min of {p}");
        assert_eq!(p[3].as_f64().unwrap(), max, "max of {p}");
    }
}

#[test]
fn tiers_roll_up_expire_exactly_and_read_as_one_series() {
    let m = monitord_with_history();
    let start = m.now_ms() - 6 * DAY;
    // Six days, a sample every 10 minutes.
    let mut sent: Vec<(i64, f64)> = Vec::new();
    for i in 0..(6 * 144) {
        let ts = start + i * 600_000;
        let mut s = sample("six-days", i + 1, ts);
        s["cpu_percent"] = cpu(i).into();
        let r = m.put_sample("web1", &s).unwrap();
        expect_status(&r, 200, "a sample of the last six days", &[]);
        sent.push((ts, cpu(i)));
    }
    m.command_ok(&["compact"]);

    // Three days on: the first two days are past the raw tier's 7 days.
    m.advance_clock(Duration::from_secs(3 * 86_400));
    let now = m.now_ms();
    let mut seq = 10_000;
    let mut send_now = |m: &Monitord, sent: &mut Vec<(i64, f64)>, at: i64| {
        seq += 1;
        let mut s = sample("now", seq, at);
        s["cpu_percent"] = cpu(seq).into();
        let r = m.put_sample("web1", &s).unwrap();
        expect_status(&r, 200, "a current sample", &[]);
        sent.push((at, cpu(seq)));
    };
    // Ingest goes on while expiry runs.
    let compacting = std::thread::scope(|scope| {
        let handle = scope.spawn(|| m.command_ok(&["compact"]));
        for k in 0..20 {
            send_now(&m, &mut sent, now - 20_000 + k * 1000);
        }
        handle.join().expect("compact")
    });
    println!("monitord compact: {compacting}");

    // Raw: exactly the samples of the last 7 days are left.
    let raw = m.command_ok(&["samples", "web1", "--since", "10d", "--json"]);
    let raw: Vec<serde_json::Value> = serde_json::from_str(&raw).unwrap();
    let cutoff = now - 7 * DAY;
    let want = sent.iter().filter(|(ts, _)| *ts >= cutoff).count();
    assert_eq!(raw.len(), want, "raw samples left after expiry");
    assert!(raw.iter().all(|s| s["ts"].as_i64().unwrap() >= cutoff));

    // Nine days in 1-hour buckets: the old part from the 1h tier, the newest from raw.
    let got = series(&m, "9d", "1h");
    assert_eq!(got["tier"], "1h", "{got}");
    assert_eq!(got["step_ms"], HOUR);
    let from = got["from"].as_i64().unwrap();
    // What the range's buckets hold: every sample from the start of from's hour.
    let in_range = |sent: &[(i64, f64)]| -> Vec<(i64, f64)> {
        let first = from.div_euclid(HOUR) * HOUR;
        sent.iter()
            .copied()
            .filter(|(ts, _)| *ts >= first)
            .collect()
    };
    check(
        &got["series"]["cpu_percent"],
        &expected_buckets(&in_range(&sent), HOUR),
    );

    // A late sample from a spool, five days back, lands in its closed hour and day.
    let late_ts = now - 5 * DAY + 17 * 60_000;
    let mut s = sample("spool", 1, late_ts);
    s["cpu_percent"] = 99.99.into();
    expect_status(
        &m.put_sample("web1", &s).unwrap(),
        200,
        "a late sample",
        &[],
    );
    sent.push((late_ts, 99.99));
    m.command_ok(&["compact"]);
    let got = series(&m, "9d", "1h");
    check(
        &got["series"]["cpu_percent"],
        &expected_buckets(&in_range(&sent), HOUR),
    );
    let days = series(&m, "9d", "1d");
    check(
        &days["series"]["cpu_percent"],
        &expected_buckets(&in_range(&sent), DAY),
    );

    let stats: serde_json::Value =
        serde_json::from_str(&m.command_ok(&["stats", "--json"])).unwrap();
    println!("monitord stats --json: {stats}");
    let tiers = stats["tiers"].as_array().expect("tiers");
    let names: Vec<&str> = tiers.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["raw", "1h", "1d"]);
    assert_eq!(tiers[0]["rows"].as_u64().unwrap() as usize, want + 1);
    assert_eq!(tiers[0]["keep_s"], 7 * 86_400);
    assert!(tiers[1]["rows"].as_i64().unwrap() >= 24 * 6);
    assert!(
        tiers.iter().all(|t| t["bytes"].as_i64().unwrap() > 0),
        "{stats}"
    );
}
