//! The built-in `clock` rule: a client whose clock is wrong.
//!
//! Samples collected more than 2 × interval before the server's "now" are history (a spool
//! draining after an outage) and are stored without being evaluated. A client whose own
//! clock is behind would therefore never get an alert, silently. So the ingest handler
//! measures, for every authentic sample that is the client's newest so far, how far its
//! `ts` is from the server clock on arrival ([`ClockWatch::observe`]). A spool drains oldest
//! first and ends with a current sample, so its newest sample measures no offset; a wrong
//! clock keeps measuring one. The host-down timer turns fresh measurements into the rule's
//! state: more than 2 × interval off starts it, held for [`CLOCK_HOLD`] it fires (mail), back
//! within 2 × interval it resolves (mail). Samples refused with 422 because their `ts` is
//! out of the acceptance window count too: a clock 15 minutes ahead is told, not only
//! refused.
//!
//! Not here: the state machine ([`super::machine::advance`]) and the mail ([`super::mail`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::machine::Verdict;

/// The rule's name in `alert_states`, the outbox and the API.
pub const CLOCK_RULE: &str = "clock";
/// How long a wrong clock must be seen before it is mailed.
pub const CLOCK_HOLD: Duration = Duration::from_secs(600);

/// What the ingest handler saw of each client's clock.
#[derive(Debug, Default)]
pub struct ClockWatch {
    seen: Mutex<HashMap<String, Observation>>,
}

/// The client's newest sample so far and how far off its `ts` was when it arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    pub newest_ts: i64,
    /// Server clock minus the sample's `ts` on arrival: positive when the client's clock is
    /// behind, negative when it is ahead.
    pub offset_ms: i64,
    /// Not yet evaluated by the timer.
    pub fresh: bool,
}

impl ClockWatch {
    /// Notes an authentic sample of `client` collected at `ts`, arriving at `now_ms`. Only a
    /// sample newer than every earlier one measures the clock: a replay or a drained spool
    /// sample is old by nature.
    pub fn observe(&self, client: &str, ts: i64, now_ms: i64) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let observation = Observation {
            newest_ts: ts,
            offset_ms: now_ms - ts,
            fresh: true,
        };
        match seen.get_mut(client) {
            Some(known) if ts <= known.newest_ts => {}
            Some(known) => *known = observation,
            None => {
                seen.insert(client.to_owned(), observation);
            }
        }
    }

    /// The fresh observations, without marking them.
    pub fn fresh(&self) -> Vec<(String, Observation)> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.iter()
            .filter(|(_, o)| o.fresh)
            .map(|(c, o)| (c.clone(), *o))
            .collect()
    }

    /// Marks `client`'s observation evaluated, unless a newer one arrived meanwhile.
    pub fn evaluated(&self, client: &str, observation: &Observation) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = seen.get_mut(client) {
            if known.newest_ts == observation.newest_ts {
                known.fresh = false;
            }
        }
    }
}

/// What the state machine needs to know of an offset for a client sampling every `interval`.
pub fn verdict(offset_ms: i64, interval: Duration) -> Verdict {
    let within = offset_ms.unsigned_abs() as u128 <= (interval * 2).as_millis();
    Verdict {
        breached: !within,
        cleared: within,
        hold: CLOCK_HOLD,
        repeat: None,
    }
}

/// `4m12s behind`, `3s ahead`, `0s`: the offset as subjects and log lines say it.
pub fn describe(offset_ms: i64) -> String {
    let secs = (offset_ms.unsigned_abs() + 500) / 1000;
    let span = monitor_core::config::format_duration(Duration::from_secs(secs));
    let span = if secs == 0 { "0s".to_owned() } else { span };
    match offset_ms {
        o if o > 0 && secs > 0 => format!("{span} behind"),
        o if o < 0 && secs > 0 => format!("{span} ahead"),
        _ => span,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_newer_sample_measures_the_clock() {
        let watch = ClockWatch::default();
        watch.observe("web1", 1_000_000, 1_250_000);
        let first = watch.fresh()[0].1;
        assert_eq!(first.offset_ms, 250_000);
        watch.evaluated("web1", &first);
        assert!(watch.fresh().is_empty());
        // A replay or a spool sample older than the newest changes nothing.
        watch.observe("web1", 900_000, 1_300_000);
        assert!(watch.fresh().is_empty());
        watch.observe("web1", 1_290_000, 1_300_000);
        assert_eq!(watch.fresh()[0].1.offset_ms, 10_000);
    }

    #[test]
    fn a_newer_observation_stays_fresh_when_an_older_one_is_marked() {
        let watch = ClockWatch::default();
        watch.observe("web1", 1_000, 2_000);
        let old = watch.fresh()[0].1;
        watch.observe("web1", 3_000, 4_000);
        watch.evaluated("web1", &old);
        assert_eq!(watch.fresh().len(), 1);
    }

    #[test]
    fn within_two_intervals_is_right_beyond_is_wrong() {
        let ten = Duration::from_secs(10);
        assert!(!verdict(20_000, ten).breached);
        assert!(verdict(20_001, ten).breached);
        assert!(verdict(-20_001, ten).breached);
        assert!(verdict(-5_000, ten).cleared);
    }

    #[test]
    fn offsets_read_like_the_design() {
        assert_eq!(describe(252_000), "4m12s behind");
        assert_eq!(describe(-252_400), "4m12s ahead");
        assert_eq!(describe(4_600), "5s behind");
        assert_eq!(describe(300), "0s");
    }
}
