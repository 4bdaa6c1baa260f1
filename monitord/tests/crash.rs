//! `kill -9` of monitord while several senders PUT concurrently, 20 rounds: every sample
//! that was answered 200 is in the database after the restart, and none is stored twice,
//! not even the ones re-sent because their answer was lost with the process.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use monitor_core::envelope;
use testkit::monitord::{Monitord, now_ms, sample, sample_path};
use testkit::util;

use crate::support::{bin, counts, identity};

const ROUNDS: usize = 20;
const SENDERS: usize = 4;

/// What one sender saw in one round.
#[derive(Default)]
struct Sent {
    acked: Vec<i64>,
    /// Sent but unanswered (the process died): stored or not, the retry must not duplicate.
    unknown: Vec<i64>,
}

fn send_until_dead(m: &Monitord, name: &str, instance: &str) -> Sent {
    let keys = m.keys(name);
    let path = sample_path(name);
    let mut sent = Sent::default();
    let deadline = Instant::now() + Duration::from_secs(10);
    for seq in 0.. {
        if Instant::now() > deadline {
            break;
        }
        let plain = sample(instance, seq, now_ms()).to_string();
        let body = envelope::seal(&keys, name, plain.as_bytes());
        match util::put(m.addr(), &path, body.as_bytes()) {
            Ok(r) if r.status == 200 => sent.acked.push(seq),
            Ok(r) => panic!("{name} seq {seq}: unexpected {} {:?}", r.status, r.text()),
            Err(_) => {
                sent.unknown.push(seq);
                break;
            }
        }
    }
    sent
}

#[test]
fn kill_9_loses_no_acknowledged_sample_and_duplicates_none() {
    let names: Vec<String> = (0..SENDERS).map(|i| format!("crash{i}")).collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut m = Monitord::start(bin(), &name_refs);
    let mut expected: Vec<BTreeSet<(String, i64)>> = vec![BTreeSet::new(); SENDERS];
    let started = Instant::now();
    for round in 0..ROUNDS {
        let sent: Vec<Sent> = std::thread::scope(|scope| {
            let senders: Vec<_> = names
                .iter()
                .map(|name| {
                    let m = &m;
                    scope.spawn(move || send_until_dead(m, name, &format!("r{round}")))
                })
                .collect();
            // Vary the moment of death from round to round.
            std::thread::sleep(Duration::from_millis(150 + (round as u64 * 97) % 500));
            // SIGKILL from inside the scope: the senders are mid-request.
            let pid = m.pid();
            let status = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()
                .unwrap();
            assert!(status.success());
            senders.into_iter().map(|h| h.join().unwrap()).collect()
        });
        m.restart();
        for (i, (name, sent)) in names.iter().zip(&sent).enumerate() {
            let stored = counts(&m.samples(name));
            for seq in &sent.acked {
                assert!(
                    stored.contains_key(&(format!("r{round}"), *seq)),
                    "round {round}: {name} seq {seq} was answered 200 but is not stored"
                );
            }
            // Re-send what got no answer, as an agent's spool would.
            for seq in &sent.unknown {
                let s = sample(&format!("r{round}"), *seq, now_ms());
                let r = m.put_sample(name, &s).expect("an answer after restart");
                assert_eq!(r.status, 200, "re-send after restart: {:?}", r.text());
            }
            expected[i].extend(
                sent.acked
                    .iter()
                    .chain(&sent.unknown)
                    .map(|s| (format!("r{round}"), *s)),
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "20 rounds take too long"
        );
    }
    let mut total_acked = 0;
    for (name, expected) in names.iter().zip(&expected) {
        let samples = m.samples(name);
        let stored = counts(&samples);
        let twice: Vec<_> = stored.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "{name}: stored more than once: {twice:?}");
        let keys: BTreeSet<_> = samples.iter().map(identity).collect();
        let missing: Vec<_> = expected.difference(&keys).collect();
        assert!(missing.is_empty(), "{name}: missing {missing:?}");
        total_acked += expected.len();
    }
    assert!(
        total_acked >= ROUNDS * SENDERS,
        "the senders barely sent anything ({total_acked})"
    );
    // The rest of the test ran without it; this last check is skipped saying so (not in CI).
    if util::have_program("sqlite3", "sqlite3") {
        let out = std::process::Command::new("sqlite3")
            .arg(m.db_path())
            .arg("PRAGMA integrity_check;")
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    }
}
