//! Where monitord's log lines go: the journal when systemd runs it (`JOURNAL_STREAM` set),
//! human-readable stderr otherwise. Journal fields are written without tracing-journald's
//! `F_` prefix, so an event's `client` field is `CLIENT=` and `journalctl -u monitord
//! CLIENT=web1` works. `MONITORD_LOG` takes an `EnvFilter` directive (default `info`).
//! [`Budget`] keeps a flood of one kind of line (refused requests) from flooding the log.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

pub fn init() {
    let filter =
        || EnvFilter::try_from_env("MONITORD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        if let Ok(journald) = tracing_journald::layer() {
            tracing_subscriber::registry()
                .with(filter())
                .with(journald.with_field_prefix(None))
                .init();
            return;
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// How many lines of one kind, per key, are logged one by one in a window of time: past
/// that they are counted, and the count comes back as a [`Skipped`] once the window is over
/// (from the next [`Budget::allow`] for that key, or from [`Budget::flush`] on a timer), for
/// one line that says how many there were. So a flood of refused requests cannot flood the
/// journal (which would drop lines of its own accord, unsaid), and nothing goes unsaid.
#[derive(Debug)]
pub struct Budget {
    per_window: u32,
    window: Duration,
    keys: Mutex<HashMap<String, Window>>,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    logged: u32,
    skipped: BTreeMap<u16, u64>,
}

/// Lines not logged one by one in a window that is over: by key, then by status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub key: String,
    pub by_status: BTreeMap<u16, u64>,
}

impl Skipped {
    pub fn total(&self) -> u64 {
        self.by_status.values().sum()
    }

    /// `2 × 401, 40 × 408`.
    pub fn statuses(&self) -> String {
        self.by_status
            .iter()
            .map(|(status, n)| format!("{n} × {status}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Budget {
    pub fn new(per_window: u32, window: Duration) -> Budget {
        Budget {
            per_window,
            window,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// Whether to log this line of `key` (with `status`) one by one; and what was skipped
    /// for `key` in its window that just ended, if anything.
    pub fn allow(&self, key: &str, status: u16) -> (bool, Option<Skipped>) {
        let now = Instant::now();
        let mut keys = self.keys.lock().expect("log budget lock poisoned");
        let window = keys.entry(key.to_owned()).or_insert_with(|| Window {
            started: now,
            logged: 0,
            skipped: BTreeMap::new(),
        });
        let mut ended = None;
        if now.duration_since(window.started) >= self.window {
            ended = Self::skipped(key, window);
            *window = Window {
                started: now,
                logged: 0,
                skipped: BTreeMap::new(),
            };
        }
        let allowed = window.logged < self.per_window;
        if allowed {
            window.logged += 1;
        } else {
            *window.skipped.entry(status).or_default() += 1;
        }
        (allowed, ended)
    }

    /// What was skipped in every window that is over; forgets those keys.
    pub fn flush(&self) -> Vec<Skipped> {
        let now = Instant::now();
        let mut keys = self.keys.lock().expect("log budget lock poisoned");
        let mut out = Vec::new();
        keys.retain(|key, window| {
            if now.duration_since(window.started) < self.window {
                return true;
            }
            out.extend(Self::skipped(key, window));
            false
        });
        out
    }

    fn skipped(key: &str, window: &Window) -> Option<Skipped> {
        (!window.skipped.is_empty()).then(|| Skipped {
            key: key.to_owned(),
            by_status: window.skipped.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_logs_the_first_lines_of_a_window_and_counts_the_rest() {
        let budget = Budget::new(2, Duration::from_millis(200));
        assert_eq!(budget.allow("web1", 401), (true, None));
        assert_eq!(budget.allow("web1", 401), (true, None));
        assert_eq!(budget.allow("web1", 401), (false, None));
        assert_eq!(budget.allow("web1", 408), (false, None));
        // Keys have budgets of their own.
        assert_eq!(budget.allow("db1", 401), (true, None));
        assert!(budget.flush().is_empty(), "no window is over yet");
        std::thread::sleep(Duration::from_millis(250));
        let (allowed, ended) = budget.allow("web1", 401);
        assert!(allowed, "a new window");
        let ended = ended.expect("the last window's count");
        assert_eq!((ended.key.as_str(), ended.total()), ("web1", 2));
        assert_eq!(ended.statuses(), "1 × 401, 1 × 408");
        // db1 skipped nothing: flushing says nothing of it, and forgets it.
        std::thread::sleep(Duration::from_millis(250));
        for _ in 0..3 {
            budget.allow("web1", 401);
        }
        std::thread::sleep(Duration::from_millis(250));
        let flushed = budget.flush();
        assert_eq!(flushed.len(), 1, "{flushed:?}");
        assert_eq!((flushed[0].key.as_str(), flushed[0].total()), ("web1", 1));
        assert!(budget.keys.lock().unwrap().is_empty());
    }
}
