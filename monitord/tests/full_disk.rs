//! A full disk under the database: monitord answers 503 with `Retry-After` (the agent keeps
//! the sample and resends it), says once in its log what is wrong and what to do, keeps
//! running, and stores again as soon as there is room. Nothing answered 200 is lost, nothing
//! is stored twice. A real filesystem filling up (a small tmpfs), not an injected error.

use std::fs;

use testkit::monitord::{Monitord, now_ms, sample};
use testkit::util::{self, Tmpfs};

use crate::support::{bin, counts};

/// Bounds the search for the first refusal: the database's free pages run out long before.
const MAX_TRIES: i64 = 3_000;

#[test]
fn a_full_disk_answers_503_then_stores_again_losing_nothing() {
    if !util::runnable_as_root("mounting a small tmpfs for the database") {
        return;
    }
    let mut m = Monitord::prepare(bin(), &["web1"]);
    let disk = m.dir().join("disk");
    fs::create_dir(&disk).unwrap();
    let tmpfs = Tmpfs::mount(&disk, "4m");
    let xml = Monitord::config_xml(&["web1".to_owned()])
        .replace(r#"database="db.sqlite3""#, r#"database="disk/db.sqlite3""#);
    fs::write(m.config_path(), xml).unwrap();
    m.spawn();

    let put = |seq: i64| {
        m.put_sample("web1", &sample("full", seq, now_ms()))
            .expect("monitord answers")
    };
    assert_eq!(put(1).status, 200, "before the disk fills: {}", m.stderr());
    let filled = tmpfs.fill("filler");
    assert!(filled > 0, "the filler took no space");

    let mut answered_200 = vec![1];
    let mut refused = None;
    for seq in 2..=MAX_TRIES {
        let response = put(seq);
        match response.status {
            200 => answered_200.push(seq),
            503 => {
                let retry = response.header("retry-after").unwrap_or("");
                assert!(
                    retry.parse::<u32>().is_ok_and(|s| (1..=60).contains(&s)),
                    "503 without a small Retry-After: {:?}",
                    response.headers
                );
                refused = Some(seq);
                break;
            }
            other => panic!("seq {seq} on a full disk: {other} {}", response.text()),
        }
    }
    let refused = refused.unwrap_or_else(|| {
        panic!(
            "{MAX_TRIES} samples on a full disk and never a 503: {}",
            m.stderr()
        )
    });
    // Still full: the same sample is refused again, and monitord is still running.
    assert_eq!(
        put(refused).status,
        503,
        "a retry while the disk is still full"
    );
    let log = m.stderr();
    assert!(
        log.contains("disk is full") && log.contains("free space on the filesystem holding"),
        "monitord's log should say the disk is full and what to do:\n{log}"
    );

    fs::remove_file(disk.join("filler")).unwrap();
    // The agent's retry after Retry-After: now stored.
    assert_eq!(
        put(refused).status,
        200,
        "after space was freed: {}",
        m.stderr()
    );
    answered_200.push(refused);
    let next = refused + 1;
    assert_eq!(put(next).status, 200);
    answered_200.push(next);
    let log = m.stderr();
    assert!(
        log.contains("storing again"),
        "monitord's log should say when it stores again:\n{log}"
    );

    m.terminate();
    m.spawn();
    let stored = counts(&m.samples("web1"));
    for seq in &answered_200 {
        assert_eq!(
            stored.get(&("full".to_owned(), *seq)),
            Some(&1),
            "seq {seq} was answered 200 and must be stored exactly once"
        );
    }
    assert_eq!(stored.len(), answered_200.len(), "stored: {stored:?}");
}
