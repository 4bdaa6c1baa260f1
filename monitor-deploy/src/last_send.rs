//! Whether an agent delivers: its last successful send (`last_sent`, written by the agent)
//! judged against its interval on the host's own clock. `--status` reports it, and a deploy
//! leaves a running agent alone only while it delivers. Imports nothing else of the crate.

use std::fmt;

/// When the agent last delivered a sample, judged against its interval on the host's clock.
#[derive(Debug, PartialEq)]
pub enum LastSend {
    /// `at` (unix ms), `age_secs` before the host's now.
    Recent { at: i64, age_secs: i64 },
    /// Longer ago than [`STALE_INTERVALS`] intervals.
    Stale {
        at: i64,
        age_secs: i64,
        interval_secs: u64,
    },
    /// Nothing recorded and samples waiting: it has never delivered one.
    Never,
    /// Nothing recorded, nothing waiting (an agent too old to record it).
    Unknown,
}

/// A last send older than this many intervals means the agent is not delivering (one missed
/// sample is a hiccup; the agent's retry backoff may take up to an interval more).
const STALE_INTERVALS: u64 = 3;

impl LastSend {
    pub fn judge(
        last_ms: Option<i64>,
        now_secs: Option<i64>,
        interval_secs: u64,
        pending: u64,
    ) -> LastSend {
        match (last_ms, now_secs) {
            (Some(at), Some(now)) => {
                // Both from the host's clock; one stepped back reads as "just now". Both are
                // what the host printed, and the interval may come from its agent's command
                // line: saturate rather than overflow on absurd values.
                let age_secs = now.saturating_sub(at.div_euclid(1000)).max(0);
                if age_secs as u64 > STALE_INTERVALS.saturating_mul(interval_secs) {
                    LastSend::Stale {
                        at,
                        age_secs,
                        interval_secs,
                    }
                } else {
                    LastSend::Recent { at, age_secs }
                }
            }
            _ if pending > 0 => LastSend::Never,
            _ => LastSend::Unknown,
        }
    }

    pub fn is_delivering(&self) -> bool {
        matches!(self, LastSend::Recent { .. } | LastSend::Unknown)
    }
}

impl fmt::Display for LastSend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = |ms: i64| monitor_core::time::Utc::from_unix_ms(ms);
        match self {
            LastSend::Recent { at: ms, age_secs } => {
                write!(f, "last successful send {} ({age_secs} s ago)", at(*ms))
            }
            LastSend::Stale {
                at: ms,
                age_secs,
                interval_secs,
            } => write!(
                f,
                "last successful send {} ({age_secs} s ago: STALE, more than {STALE_INTERVALS} x its {interval_secs} s interval)",
                at(*ms)
            ),
            LastSend::Never => f.write_str("no sample delivered since it started"),
            LastSend::Unknown => {
                f.write_str("last successful send not recorded by this agent version")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_send_is_stale_after_three_intervals_on_the_hosts_clock() {
        let at = 1_795_838_399_500; // 2026-11-28 03:59:59.5 UTC
        let now = 1_795_838_399;
        let recent = LastSend::judge(Some(at), Some(now + 30), 10, 0);
        assert_eq!(recent, LastSend::Recent { at, age_secs: 30 });
        assert!(recent.is_delivering());
        assert_eq!(
            recent.to_string(),
            "last successful send 2026-11-28 03:59:59 UTC (30 s ago)"
        );
        let stale = LastSend::judge(Some(at), Some(now + 31), 10, 0);
        assert!(!stale.is_delivering());
        assert!(
            stale
                .to_string()
                .contains("31 s ago: STALE, more than 3 x its 10 s interval")
        );
        // A host clock stepped back is not an age below zero.
        assert_eq!(
            LastSend::judge(Some(at), Some(now - 5), 10, 0),
            LastSend::Recent { at, age_secs: 0 }
        );
        assert_eq!(LastSend::judge(None, Some(now), 10, 120), LastSend::Never);
        assert!(!LastSend::Never.is_delivering());
        assert_eq!(LastSend::judge(None, Some(now), 10, 0), LastSend::Unknown);
    }

    #[test]
    fn absurd_values_from_the_host_do_not_overflow() {
        // fuzz/artifacts/probe: a probe's real output judged with the largest interval
        // (3 x u64::MAX overflowed), and clocks at the ends of i64 (now - at overflowed).
        let at = 1_796_454_693_727;
        assert_eq!(
            LastSend::judge(Some(at), Some(1_796_454_720), u64::MAX, 1),
            LastSend::Recent { at, age_secs: 27 }
        );
        assert_eq!(
            LastSend::judge(Some(i64::MAX), Some(i64::MIN), 10, 1),
            LastSend::Recent {
                at: i64::MAX,
                age_secs: 0
            }
        );
        let stale = LastSend::judge(Some(i64::MIN), Some(i64::MAX), 10, 1);
        assert!(!stale.is_delivering());
        let _ = stale.to_string();
    }
}
