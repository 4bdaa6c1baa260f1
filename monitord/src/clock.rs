//! The server's one wall clock. Everything that compares with "now" — the sample's
//! acceptance window, alert `for` and `repeat`, host down, the outbox's retry times, the
//! replay guard, compaction — asks the [`Clock`] it was handed, so a test moves time
//! instead of sleeping through it.
//!
//! Three kinds: the system clock (what monitord runs on); a manual clock that only moves
//! when told ([`Clock::manual`], for unit tests); and, in debug builds only, the system
//! clock shifted by the milliseconds written in the file that `MONITORD_TEST_TIME_OFFSET_FILE`
//! names, re-read at every look, so the integration tests can move a running monitord's
//! time forward (three minutes of host silence in a moment). Release builds ignore that
//! variable.
//!
//! Not here: pacing (how often a timer ticks, how long a request may take), which is real
//! time and uses `Instant`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The environment variable a debug build reads its time offset file from.
pub const TEST_OFFSET_ENV: &str = "MONITORD_TEST_TIME_OFFSET_FILE";

/// A wall clock in unix milliseconds. Cheap to clone; clones share the time.
#[derive(Debug, Clone)]
pub struct Clock(Arc<Kind>);

#[derive(Debug)]
enum Kind {
    System,
    Manual(AtomicI64),
    /// The system clock plus the offset in this file (absent or unreadable: no offset).
    OffsetFile(PathBuf),
}

impl Clock {
    /// The system's wall clock.
    pub fn system() -> Clock {
        Clock(Arc::new(Kind::System))
    }

    /// A clock standing at `start_ms` until [`Clock::advance`] moves it.
    pub fn manual(start_ms: i64) -> Clock {
        Clock(Arc::new(Kind::Manual(AtomicI64::new(start_ms))))
    }

    /// What the daemon and the commands run on: the system clock, or in a debug build with
    /// [`TEST_OFFSET_ENV`] set, the system clock shifted by that file's milliseconds.
    pub fn from_env() -> Clock {
        if cfg!(debug_assertions) {
            if let Some(path) = std::env::var_os(TEST_OFFSET_ENV) {
                return Clock(Arc::new(Kind::OffsetFile(path.into())));
            }
        }
        Clock::system()
    }

    /// Now, in unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        match &*self.0 {
            Kind::System => system_ms(),
            Kind::Manual(ms) => ms.load(Ordering::Acquire),
            Kind::OffsetFile(path) => {
                let offset = std::fs::read_to_string(path)
                    .ok()
                    .and_then(|text| text.trim().parse::<i64>().ok())
                    .unwrap_or(0);
                system_ms() + offset
            }
        }
    }

    /// Moves a manual clock forward; other clocks cannot be moved (a programming error).
    pub fn advance(&self, by: Duration) {
        match &*self.0 {
            Kind::Manual(ms) => {
                ms.fetch_add(by.as_millis() as i64, Ordering::AcqRel);
            }
            other => panic!("only a manual clock can be advanced, not {other:?}"),
        }
    }
}

fn system_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_clones_share_it() {
        let clock = Clock::manual(1_000);
        let clone = clock.clone();
        assert_eq!(clock.now_ms(), 1_000);
        clone.advance(Duration::from_secs(3));
        assert_eq!(clock.now_ms(), 4_000);
    }

    #[test]
    fn an_offset_file_shifts_the_system_clock() {
        let dir = std::env::temp_dir().join(format!("monitord-clock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("offset");
        let clock = Clock(Arc::new(Kind::OffsetFile(file.clone())));
        // Absent: the system clock.
        assert!((clock.now_ms() - system_ms()).abs() < 1_000);
        std::fs::write(&file, "180000\n").unwrap();
        let shifted = clock.now_ms() - system_ms();
        assert!((179_000..=180_000).contains(&shifted), "{shifted}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
