//! The store end to end on a real SQLite file: writer → raw tier → compact → read back.

use std::path::PathBuf;
use std::sync::Arc;

use diesel::connection::SimpleConnection as _;
use monitor_core::Sample;
use monitor_core::sample::{Disk, Memory, Swap, TopProcess};

use super::compact::{self, Policy};
use super::read;
use super::stored::as_stored;
use super::writer::{Receipt, Writer};
use crate::clock::Clock;

pub(super) fn temp_db(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("monitord-store-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("db.sqlite3")
}

/// Samples of `hosts` hosts whose values wander like real ones, `per_host` each, 10 s apart.
pub(super) fn fleet(hosts: usize, per_host: usize) -> Vec<(String, Sample)> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % 10_000) as f64 / 10_000.0 - 0.5
    };
    let start = Clock::system().now_ms() - 3 * 86_400_000;
    let mut out = Vec::new();
    for h in 0..hosts {
        let (mut cpu, mut used, mut load, mut disk) = (20.0, 4e9, 1.0, 40e9);
        for i in 0..per_host {
            cpu = f64::clamp(cpu + rnd() * 10.0, 0.0, 100.0);
            used = f64::clamp(used + rnd() * 5e7, 1e9, 7e9);
            load = f64::max(load + rnd() * 0.2, 0.0);
            disk = f64::clamp(disk + rnd() * 1e6, 1e9, 90e9);
            let total = 8_000_000_000i64;
            let used_b = (used as i64) / 4096 * 4096;
            let disk_used = (disk as i64) / 4096 * 4096;
            out.push((
                format!("host{h}"),
                Sample {
                    v: 1,
                    agent: Some("0.1.0".into()),
                    instance: format!("inst{h}-{}", i / 5000),
                    seq: i as i64,
                    ts: start + i as i64 * 10_000 + (rnd() * 20.0) as i64,
                    hostname: Some(format!("host{h}")),
                    os: Some("Debian 12".into()),
                    cpu_percent: (cpu * 100.0).round() / 100.0,
                    memory: Memory {
                        total,
                        used: used_b,
                        available: total - used_b,
                        percent: (used_b as f64 * 10_000.0 / total as f64).round() / 100.0,
                    },
                    swap: Some(Swap {
                        total: 1 << 30,
                        used: 0,
                        percent: 0.0,
                    }),
                    uptime_s: Some(86_400 + i as i64 * 10),
                    load: Some([load, load * 0.9, load * 0.8]),
                    disks: vec![
                        Disk {
                            mount: "/".into(),
                            fs: "ext4".into(),
                            total: 100_000_000_000,
                            used: disk_used,
                            avail: Some(100_000_000_000 - disk_used - 5_000_000_000),
                        },
                        Disk {
                            mount: "/boot/efi".into(),
                            fs: "vfat".into(),
                            total: 536_834_048,
                            used: 6_221_824,
                            avail: None,
                        },
                    ],
                    processes: Some(150 + (rnd() * 4.0) as i64),
                    top: vec![TopProcess {
                        pid: 1000 + i as i64,
                        name: "postgres".into(),
                        cpu_percent: 12.5,
                        rss: 1 << 27,
                    }],
                },
            ));
        }
    }
    out
}

pub(super) fn submit_all(writer: &Writer, samples: &[(String, Sample)]) -> Vec<Receipt> {
    let handle = writer.handle();
    let pending: Vec<_> = samples
        .iter()
        .map(|(client, s)| {
            handle
                .submit(Arc::from(client.as_str()), s.clone())
                .unwrap()
        })
        .collect();
    pending
        .into_iter()
        .map(|rx| rx.blocking_recv().unwrap())
        .collect()
}

/// The writer on a new database at `path`, on the system clock, with no hook.
fn writer_without_hooks(path: &std::path::Path) -> Writer {
    Writer::start(
        super::open_for_writing(path).unwrap(),
        Clock::system(),
        Vec::new(),
    )
    .unwrap()
}

fn read_back(path: &std::path::Path, client: &str) -> Vec<Sample> {
    let mut conn = super::open_existing(path).unwrap();
    read::samples_since(&mut conn, client, 0).unwrap().unwrap()
}

#[test]
fn every_value_survives_writing_and_compaction() {
    let path = temp_db("roundtrip");
    let samples = fleet(4, 3000);
    let writer = writer_without_hooks(&path);
    let outcomes = submit_all(&writer, &samples);
    assert!(outcomes.iter().all(|o| *o == Receipt::Stored));

    let expected = |client: &str| -> Vec<Sample> {
        let mut v: Vec<Sample> = samples
            .iter()
            .filter(|(c, _)| c == client)
            .map(|(_, s)| as_stored(s))
            .collect();
        v.sort_by_key(|s| s.ts);
        v
    };
    assert_eq!(read_back(&path, "host1"), expected("host1"));

    // As the daemon's timer does it: read on a connection of its own, written by the writer.
    let mut conn = super::open_read_only(&path).unwrap();
    let handle = writer.handle();
    let writes = super::background::Writes::Writer(&handle);
    let report =
        compact::compact(&mut conn, writes, Policy::ALL, Clock::system().now_ms()).unwrap();
    compact::release_free_pages(&mut conn, writes).unwrap();
    assert_eq!(report.samples, samples.len() as i64);
    // 3,000 samples 10 s apart (8.3 hours) a client: two blocks each, none longer than 6 hours.
    #[derive(diesel::QueryableByName)]
    struct Blocks {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        longest: i64,
    }
    let blocks: Blocks = diesel::RunQueryDsl::get_result(
        diesel::sql_query(
            "SELECT COUNT(*) AS n, MAX(ts_max - ts_min) AS longest FROM sample_blocks",
        ),
        &mut conn,
    )
    .unwrap();
    assert_eq!(blocks.n, 8);
    assert!(
        blocks.longest < compact::BLOCK_SPAN_MS,
        "{}",
        blocks.longest
    );
    // What packing freed went back to the file system, but for a tenth of the (small) file.
    let (free, pages) = compact::free_pages(&mut conn).unwrap();
    assert!(free > 0 && free <= pages / 10, "{free} free of {pages}");
    for h in 0..4 {
        let client = format!("host{h}");
        assert_eq!(read_back(&path, &client), expected(&client), "{client}");
    }

    // Replays of packed and of raw samples store nothing new; a new seq does.
    let again = submit_all(&writer, &samples[..10]);
    assert!(again.iter().all(|o| *o == Receipt::Duplicate), "{again:?}");
    let mut next = samples[samples.len() - 1].clone();
    next.1.seq += 1;
    next.1.ts += 10_000;
    let next_again = next.clone();
    assert_eq!(submit_all(&writer, &[next.clone()]), vec![Receipt::Stored]);
    assert_eq!(submit_all(&writer, &[next]), vec![Receipt::Duplicate]);

    // A new writer (a restart) knows every stored pair, packed or raw.
    writer.shutdown();
    let writer = writer_without_hooks(&path);
    let replay = [samples[0].clone(), next_again];
    assert_eq!(
        submit_all(&writer, &replay),
        vec![Receipt::Duplicate, Receipt::Duplicate]
    );

    let stats = read::stats(&mut conn).unwrap();
    assert_eq!(stats.samples, samples.len() as i64 + 1);
    assert_eq!(stats.clients, 4);
    eprintln!("after compaction: {stats:?}");
    // What the samples cost, without the schema's fixed pages (one per table and index,
    // whatever is stored: an empty database's size).
    let empty = temp_db("empty");
    let empty_bytes = read::stats(&mut super::open_for_writing(&empty).unwrap())
        .unwrap()
        .db_bytes;
    let per_sample = (stats.db_bytes - empty_bytes) as f64 / stats.samples as f64;
    assert!(
        per_sample <= 24.0,
        "{per_sample} bytes per sample: {stats:?}"
    );

    let (ts, top) = read::latest_top(&mut conn, "host3").unwrap().unwrap();
    assert_eq!(ts, samples.last().unwrap().1.ts + 10_000);
    assert_eq!(top[0].name, "postgres");
    writer.shutdown();
}

#[test]
fn a_locked_database_answers_unavailable_and_loses_nothing() {
    let path = temp_db("locked");
    let samples = fleet(1, 3);
    let writer = writer_without_hooks(&path);
    assert_eq!(submit_all(&writer, &samples[..1]), vec![Receipt::Stored]);

    let mut other = super::open_existing(&path).unwrap();
    other.batch_execute("BEGIN EXCLUSIVE;").unwrap();
    assert_eq!(
        submit_all(&writer, &samples[1..2]),
        vec![Receipt::Unavailable]
    );
    other.batch_execute("COMMIT;").unwrap();

    assert_eq!(
        submit_all(&writer, &samples[1..]),
        vec![Receipt::Stored, Receipt::Stored]
    );
    let stored: Vec<i64> = read_back(&path, "host0").iter().map(|s| s.seq).collect();
    assert_eq!(stored, vec![0, 1, 2]);
    writer.shutdown();
}

#[test]
fn frequent_passes_grow_blocks_instead_of_adding_small_ones() {
    let path = temp_db("grow");
    let samples = fleet(2, 300);
    let writer = writer_without_hooks(&path);
    let mut conn = super::open_existing(&path).unwrap();
    for part in samples.chunks(50) {
        assert!(
            submit_all(&writer, part)
                .iter()
                .all(|o| *o == Receipt::Stored)
        );
        compact::compact(
            &mut conn,
            super::background::Writes::Here,
            Policy::ALL,
            Clock::system().now_ms(),
        )
        .unwrap();
    }
    let blocks: i64 = diesel::RunQueryDsl::get_result(
        diesel::QueryDsl::count(super::schema::sample_blocks::table),
        &mut conn,
    )
    .unwrap();
    assert_eq!(blocks, 2, "one block per client");
    let expected: Vec<Sample> = samples[300..].iter().map(|(_, s)| as_stored(s)).collect();
    assert_eq!(read_back(&path, "host1"), expected);
    writer.shutdown();
}

#[test]
fn the_newest_top_is_written_once_the_queue_goes_quiet() {
    let path = temp_db("top");
    let samples = fleet(1, 3);
    let writer = writer_without_hooks(&path);
    for s in &samples {
        assert_eq!(
            submit_all(&writer, std::slice::from_ref(s)),
            vec![Receipt::Stored]
        );
    }
    let mut conn = super::open_existing(&path).unwrap();
    let newest = samples[2].1.ts;
    let deadline = std::time::Instant::now() + super::top::TOP_EVERY * 3;
    loop {
        let (ts, _) = read::latest_top(&mut conn, "host0").unwrap().unwrap();
        if ts == newest {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "top still from {ts}, not {newest}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    writer.shutdown();
}

/// The minutes of `samples` (one client's) from the one holding `now` − 1 h up to `now`:
/// (minute, average CPU).
fn cpu_minutes(samples: &[&Sample], now: i64) -> Vec<(i64, f64)> {
    let mut minutes: std::collections::BTreeMap<i64, (f64, f64)> = Default::default();
    let first = (now - 3_600_000).div_euclid(60_000);
    for s in samples
        .iter()
        .filter(|s| s.ts.div_euclid(60_000) >= first && s.ts <= now)
    {
        let m = minutes.entry(s.ts.div_euclid(60_000)).or_default();
        *m = (m.0 + s.cpu_percent, m.1 + 1.0);
    }
    minutes
        .into_iter()
        .map(|(m, (sum, n))| (m, sum / n))
        .collect()
}

#[test]
fn recent_follows_the_writer_and_a_seed_from_the_store_agrees_with_it() {
    use super::recent::Recent;
    use monitor_core::config::default_history;

    let path = temp_db("recent");
    let samples = fleet(2, 600);
    let recent = Arc::new(Recent::new());
    let writer = Writer::start(
        super::open_for_writing(&path).unwrap(),
        Clock::system(),
        vec![recent.clone()],
    )
    .unwrap();
    assert!(
        submit_all(&writer, &samples)
            .iter()
            .all(|o| *o == Receipt::Stored)
    );
    writer.shutdown();

    let mut conn = super::open_existing(&path).unwrap();
    let seeded = Recent::new();
    let history = default_history();
    for h in 0..2 {
        let name = format!("host{h}");
        let mine: Vec<&Sample> = samples
            .iter()
            .filter(|(c, _)| *c == name)
            .map(|(_, s)| s)
            .collect();
        let newest = mine.iter().max_by_key(|s| s.ts).unwrap();
        let now = newest.ts;
        // Kept by the writer: the newest sample as the store gives it back, and every
        // sample's CPU in its minute.
        let latest = recent.latest(&mut conn, &name, None).unwrap().unwrap();
        assert_eq!(*latest, as_stored(newest), "{name}");
        let expected = cpu_minutes(&mine, now);
        let hour = recent.cpu_hour(&name, now);
        assert_eq!(hour.len(), expected.len(), "{name}");
        for (point, (minute, avg)) in hour.iter().zip(&expected) {
            assert_eq!(point.0.div_euclid(60_000), *minute);
            assert!((point.1 - avg).abs() < 1e-9, "{point:?} vs {avg}");
        }
        // Read from the store by a daemon that just started: the same, within stored precision.
        let interval = std::time::Duration::from_secs(10);
        let from_store = seeded
            .latest(&mut conn, &name, Some((interval, &history, now)))
            .unwrap()
            .unwrap();
        assert_eq!(*from_store, *latest);
        let hour_from_store = seeded.cpu_hour(&name, now);
        assert_eq!(hour_from_store.len(), expected.len(), "{name}");
        for (a, b) in hour_from_store.iter().zip(&hour) {
            assert_eq!(a.0, b.0);
            assert!((a.1 - b.1).abs() < 0.01, "{a:?} vs {b:?}");
        }
    }
    assert!(recent.latest(&mut conn, "nobody", None).unwrap().is_none());
}

#[test]
fn a_history_pass_with_nothing_closed_takes_no_write_lock() {
    use monitor_core::config::{History, Keep, Tier};
    use std::time::Duration;

    let path = temp_db("idle-pass");
    let samples = fleet(2, 400);
    let writer = writer_without_hooks(&path);
    assert!(
        submit_all(&writer, &samples)
            .iter()
            .all(|o| *o == Receipt::Stored)
    );
    let history = History {
        raw: Duration::from_secs(30 * 86_400),
        tiers: vec![Tier {
            step: Duration::from_secs(3600),
            keep: Keep::Forever,
        }],
    };
    let interval = |_: &str| Duration::from_secs(10);
    let now = samples.iter().map(|(_, s)| s.ts).max().unwrap() + 3_600_000;
    let mut conn = super::open_existing(&path).unwrap();
    let (rolled, _) = super::history::maintain(
        &mut conn,
        super::background::Writes::Here,
        &history,
        &interval,
        now,
    )
    .unwrap();
    assert!(rolled.buckets > 0, "{rolled:?}");

    // Another process holds the write lock: a pass that finds nothing closed and nothing to
    // expire must not wait for it (it would fail after the busy timeout).
    let mut other = super::open_existing(&path).unwrap();
    other.batch_execute("BEGIN IMMEDIATE;").unwrap();
    let again = super::history::maintain(
        &mut conn,
        super::background::Writes::Here,
        &history,
        &interval,
        now,
    );
    other.batch_execute("COMMIT;").unwrap();
    let (rolled, expired) = again.unwrap();
    assert_eq!((rolled.buckets, rolled.late), (0, 0));
    assert_eq!((expired.raw_samples, expired.rollups), (0, 0));
    writer.shutdown();
}
