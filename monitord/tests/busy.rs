//! 503 with `Retry-After` from a real cause: another process (the `sqlite3` CLI) holds the
//! database's write lock longer than monitord's writer waits. Also checks the storage
//! contract that makes this possible: WAL mode, and readers not blocked by that lock.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, Command, Stdio};

use testkit::monitord::{Monitord, now_ms, sample};
use testkit::util;

use crate::support::{bin, counts, expect_status, secrets_of};

/// A `sqlite3` process holding `BEGIN EXCLUSIVE` until dropped.
struct WriteLock(Child);

impl WriteLock {
    fn take(db: &std::path::Path) -> WriteLock {
        let mut child = Command::new("sqlite3")
            .arg(db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run the sqlite3 CLI (installed by scripts/test)");
        let stdin = child.stdin.as_mut().expect("piped stdin");
        // monitord's writer may be mid-commit: wait for it rather than fail.
        stdin
            .write_all(b".timeout 10000\nBEGIN EXCLUSIVE;\nSELECT 'locked';\n")
            .expect("talk to sqlite3");
        stdin.flush().expect("talk to sqlite3");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().expect("piped stdout"))
            .read_line(&mut line)
            .expect("read from sqlite3");
        assert_eq!(line.trim(), "locked", "sqlite3 did not take the lock");
        WriteLock(child)
    }
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        if let Some(stdin) = self.0.stdin.as_mut() {
            let _ = stdin.write_all(b"ROLLBACK;\n.quit\n");
        }
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

fn sqlite(db: &std::path::Path, sql: &str) -> String {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .expect("run the sqlite3 CLI");
    assert!(
        out.status.success(),
        "sqlite3 {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn a_locked_database_answers_503_with_retry_after_then_recovers() {
    if !util::runnable(
        Command::new("sqlite3").arg("-version").output().is_ok(),
        "the sqlite3 CLI is not installed",
    ) {
        return;
    }
    let m = Monitord::start(bin(), &["web1"]);
    let secrets = secrets_of(&m, &["web1"]);
    let first = sample("busy", 1, now_ms());
    expect_status(
        &m.put_sample("web1", &first).unwrap(),
        200,
        "before the lock",
        &secrets,
    );
    assert_eq!(sqlite(&m.db_path(), "PRAGMA journal_mode;"), "wal");

    let held = sample("busy", 2, now_ms());
    {
        let _lock = WriteLock::take(&m.db_path());
        let r = m
            .put_sample("web1", &held)
            .expect("an answer while the lock is held");
        expect_status(&r, 503, "database locked by another process", &secrets);
        let retry: u64 = r
            .header("retry-after")
            .unwrap_or_else(|| panic!("503 without Retry-After: {:?}", r.headers))
            .parse()
            .expect("Retry-After is a number of seconds");
        assert!(
            (1..=120).contains(&retry),
            "Retry-After {retry} is not a small number of seconds"
        );
        // Readers (operator commands) are not blocked by a writer.
        assert_eq!(
            m.samples("web1").len(),
            1,
            "monitord samples while the lock is held"
        );
    }
    // Lock released: the retry the agent would make is stored, once.
    util::wait_until(
        std::time::Duration::from_secs(30),
        "a 200 after the lock is released",
        || {
            m.put_sample("web1", &held)
                .map(|r| r.status == 200)
                .unwrap_or(false)
        },
    );
    let stored = counts(&m.samples("web1"));
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert!(stored.values().all(|&n| n == 1), "stored twice: {stored:?}");
}
