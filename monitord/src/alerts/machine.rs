//! The per-(client, rule) state machine, pure: ok → pending (`for`) → firing → resolved → ok,
//! with `repeat` and `clear`, and the built-in host-down rule. Times are milliseconds on the
//! server clock; nothing here reads a clock, a database or a socket, so every path is a unit
//! test.
//!
//! Not here: where states are stored ([`super::tables`]) or what a mail says ([`super::mail`]).

use std::time::Duration;

use monitor_core::config::AlertRule;

/// Where one (client, rule) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Ok,
    /// Over the limit since `since_ms`, waiting for `for` to pass.
    Pending,
    Firing,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Ok => "ok",
            Phase::Pending => "pending",
            Phase::Firing => "firing",
        }
    }

    pub fn from_name(name: &str) -> Option<Phase> {
        [Phase::Ok, Phase::Pending, Phase::Firing]
            .into_iter()
            .find(|p| p.as_str() == name)
    }
}

/// The stored state of one (client, rule).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RuleState {
    pub phase: Phase,
    /// Pending or firing: when the value first crossed the limit (so "since when" in a mail
    /// covers the `for` wait too). Host down: when the last sample arrived.
    pub since_ms: i64,
    /// Firing: when the last FIRING mail (first or repeat) was written, for `repeat`.
    pub notified_ms: i64,
    /// The last value evaluated (host down: the silence in seconds).
    pub value: f64,
}

impl RuleState {
    pub const OK: RuleState = RuleState {
        phase: Phase::Ok,
        since_ms: 0,
        notified_ms: 0,
        value: 0.0,
    };
}

/// A change that is worth a mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    Firing,
    /// `repeat` elapsed while still firing.
    Repeat,
    Resolved,
}

/// The outcome of one evaluation: the new state, and a mail to write if any.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    pub state: RuleState,
    pub notice: Option<Notice>,
}

/// What one evaluation needs to know of a rule: whether the value crosses the limit, whether
/// it is back at `clear`, how long it must hold, how often to repeat. A configured rule
/// ([`step`]) and the built-in clock rule (see [`super::skew`]) both come down to this.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    pub breached: bool,
    pub cleared: bool,
    pub hold: Duration,
    pub repeat: Option<Duration>,
}

/// Evaluates one value of `rule` at `now_ms` against the previous `state`.
pub fn step(rule: &AlertRule, state: RuleState, value: f64, now_ms: i64) -> Step {
    let verdict = Verdict {
        breached: rule.breached(value),
        cleared: rule.cleared(value),
        hold: rule.hold,
        repeat: rule.repeat,
    };
    advance(verdict, state, value, now_ms)
}

/// The state machine itself: `value` is only recorded, `verdict` decides.
pub fn advance(verdict: Verdict, state: RuleState, value: f64, now_ms: i64) -> Step {
    let hold = millis(verdict.hold);
    let keep = |phase, since_ms, notified_ms| RuleState {
        phase,
        since_ms,
        notified_ms,
        value,
    };
    match state.phase {
        Phase::Ok | Phase::Pending if !verdict.breached => Step {
            state: keep(Phase::Ok, 0, 0),
            notice: None,
        },
        Phase::Ok | Phase::Pending => {
            let since = if state.phase == Phase::Ok {
                now_ms
            } else {
                state.since_ms
            };
            if now_ms - since >= hold {
                Step {
                    state: keep(Phase::Firing, since, now_ms),
                    notice: Some(Notice::Firing),
                }
            } else {
                Step {
                    state: keep(Phase::Pending, since, 0),
                    notice: None,
                }
            }
        }
        // Hysteresis: a firing alert stays firing until the value is back at `clear`,
        // even when it is already on the good side of `limit`.
        Phase::Firing if verdict.cleared => Step {
            state: keep(Phase::Ok, 0, 0),
            notice: Some(Notice::Resolved),
        },
        Phase::Firing => match verdict.repeat {
            Some(every) if now_ms - state.notified_ms >= millis(every) => Step {
                state: keep(Phase::Firing, state.since_ms, now_ms),
                notice: Some(Notice::Repeat),
            },
            _ => Step {
                state: keep(Phase::Firing, state.since_ms, state.notified_ms),
                notice: None,
            },
        },
    }
}

/// The shortest silence that counts as down, whatever the interval.
pub const HOST_DOWN_MIN: Duration = Duration::from_secs(180);

/// How long a client may stay silent before it is down: 3 × its interval, at least 3 minutes.
pub fn host_down_after(interval: Duration) -> Duration {
    (interval * 3).max(HOST_DOWN_MIN)
}

/// The host-down check a timer runs: `last_seen_ms` is the later of the client's last sample
/// and monitord's start. Returns the firing state when the client just went down.
pub fn check_down(
    state: RuleState,
    last_seen_ms: i64,
    interval: Duration,
    now_ms: i64,
) -> Option<RuleState> {
    let silence = now_ms - last_seen_ms;
    if state.phase != Phase::Firing && silence > millis(host_down_after(interval)) {
        Some(RuleState {
            phase: Phase::Firing,
            since_ms: last_seen_ms,
            notified_ms: now_ms,
            value: (silence / 1000) as f64,
        })
    } else {
        None
    }
}

/// A sample arrived: a firing host-down resolves. Returns how long the host was silent.
pub fn sample_arrived(state: RuleState, now_ms: i64) -> Option<Duration> {
    (state.phase == Phase::Firing)
        .then(|| Duration::from_millis((now_ms - state.since_ms).max(0) as u64))
}

/// Whether a sample collected at `ts_ms` is recent enough to evaluate: within 2 × interval of
/// the server clock. Older ones are an agent draining its spool: history, stored only.
pub fn is_current(ts_ms: i64, interval: Duration, now_ms: i64) -> bool {
    now_ms - ts_ms <= millis(interval * 2)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use monitor_core::config::AlertKind;

    fn rule(limit: f64, clear: f64, hold_s: u64, repeat_s: Option<u64>) -> AlertRule {
        AlertRule {
            kind: AlertKind::Cpu,
            limit,
            clear,
            hold: Duration::from_secs(hold_s),
            repeat: repeat_s.map(Duration::from_secs),
        }
    }

    /// Feeds `(seconds, value)` pairs and returns the notices with their times.
    fn run(rule: &AlertRule, feed: &[(i64, f64)]) -> Vec<(i64, Notice)> {
        let mut state = RuleState::OK;
        let mut out = Vec::new();
        for &(t, v) in feed {
            let s = step(rule, state, v, t * 1000);
            state = s.state;
            if let Some(n) = s.notice {
                out.push((t, n));
            }
        }
        out
    }

    #[test]
    fn fires_once_and_resolves_once() {
        let r = rule(90.0, 90.0, 0, None);
        let feed = [(0, 50.0), (10, 95.0), (20, 99.0), (30, 91.0), (40, 90.0)];
        assert_eq!(
            run(&r, &feed),
            vec![(10, Notice::Firing), (40, Notice::Resolved)]
        );
    }

    #[test]
    fn for_holds_back_a_blip() {
        let r = rule(90.0, 90.0, 60, None);
        let blip = [(0, 95.0), (30, 95.0), (40, 10.0), (50, 95.0), (100, 95.0)];
        assert_eq!(run(&r, &blip), vec![]);
        let long = [(0, 95.0), (30, 95.0), (60, 95.0)];
        assert_eq!(run(&r, &long), vec![(60, Notice::Firing)]);
    }

    #[test]
    fn repeat_re_notifies_while_firing() {
        let r = rule(90.0, 90.0, 0, Some(60));
        let feed = [(0, 95.0), (30, 95.0), (60, 95.0), (90, 95.0), (120, 95.0)];
        assert_eq!(
            run(&r, &feed),
            vec![
                (0, Notice::Firing),
                (60, Notice::Repeat),
                (120, Notice::Repeat)
            ]
        );
    }

    #[test]
    fn clear_holds_between_clear_and_limit() {
        let r = rule(90.0, 75.0, 0, None);
        let feed = [(0, 95.0), (10, 80.0), (20, 89.0), (30, 76.0), (40, 75.0)];
        assert_eq!(
            run(&r, &feed),
            vec![(0, Notice::Firing), (40, Notice::Resolved)]
        );
        // Pending is not sticky: below the limit is enough to go back to ok.
        let p = rule(90.0, 75.0, 60, None);
        assert_eq!(run(&p, &[(0, 95.0), (10, 80.0), (70, 95.0)]), vec![]);
    }

    #[test]
    fn uptime_fires_below_and_resolves_at_or_above() {
        let r = AlertRule {
            kind: AlertKind::Uptime,
            limit: 600.0,
            clear: 600.0,
            hold: Duration::ZERO,
            repeat: None,
        };
        let feed = [(0, 5000.0), (10, 180.0), (20, 400.0), (30, 600.0)];
        assert_eq!(
            run(&r, &feed),
            vec![(10, Notice::Firing), (30, Notice::Resolved)]
        );
    }

    #[test]
    fn since_covers_the_for_wait() {
        let r = rule(90.0, 90.0, 60, None);
        let a = step(&r, RuleState::OK, 95.0, 1_000);
        let b = step(&r, a.state, 95.0, 61_000);
        assert_eq!(b.notice, Some(Notice::Firing));
        assert_eq!(b.state.since_ms, 1_000);
    }

    #[test]
    fn host_down_needs_three_intervals_and_at_least_three_minutes() {
        let s = Duration::from_secs;
        assert_eq!(host_down_after(s(10)), s(180));
        assert_eq!(host_down_after(s(60)), s(180));
        assert_eq!(host_down_after(s(300)), s(900));
        let ok = RuleState::OK;
        assert_eq!(check_down(ok, 0, s(10), 180_000), None);
        let down = check_down(ok, 0, s(10), 181_000).unwrap();
        assert_eq!(down.phase, Phase::Firing);
        assert_eq!(down.value, 181.0);
        // Already down: no second notice.
        assert_eq!(check_down(down, 0, s(10), 500_000), None);
        assert_eq!(sample_arrived(down, 420_000), Some(s(420)));
        assert_eq!(sample_arrived(ok, 420_000), None);
    }

    #[test]
    fn late_samples_are_history() {
        let i = Duration::from_secs(30);
        assert!(is_current(100_000, i, 160_000));
        assert!(!is_current(100_000, i, 160_001));
    }
}
