//! `<history>`: how long samples are kept raw, and the rollup tiers after that.
//!
//! ```xml
//! <history raw="30d">                 <!-- at most one; this is the default -->
//!   <rollup step="1h" keep="5y"/>     <!-- zero or more, steps increasing, each a multiple of the last -->
//! </history>
//! ```
//! Checked here: durations, steps increasing and each a multiple of the one before (so a
//! coarser bucket is made of whole finer ones), every `keep` at least its step, and `raw`
//! at least the 7 days a sample may arrive late (rollups are recomputed from raw samples
//! when a late one lands in a closed bucket).

use std::time::Duration;

use super::checker::Checker;
use super::duration::{format_duration, parse_duration};
use super::model::{History, Keep, Tier};
use super::parse::RawElement;

const HISTORY_ATTRS: [&str; 1] = ["raw"];
const ROLLUP_ATTRS: [&str; 2] = ["step", "keep"];
const DAY: u64 = 86_400;
/// How late a sample may arrive (DESIGN.md: `ts` up to 7 days old is accepted).
const LATE_WINDOW: Duration = Duration::from_secs(7 * DAY);

/// The default: raw samples 30 days, then 1-hour rollups for 5 years.
pub fn default_history() -> History {
    History {
        raw: Duration::from_secs(30 * DAY),
        tiers: vec![Tier {
            step: Duration::from_secs(3600),
            keep: Keep::For(Duration::from_secs(5 * 365 * DAY)),
        }],
    }
}

pub(super) fn history(ck: &mut Checker, el: Option<&RawElement>) -> History {
    let Some(el) = el else {
        return default_history();
    };
    ck.check_attrs(el, &HISTORY_ATTRS);
    ck.check_text(el);
    let mut history = History {
        raw: default_history().raw,
        tiers: Vec::new(),
    };
    if let Some(v) = el.attr("raw") {
        match parse_duration(v) {
            Some(d) if d >= LATE_WINDOW => history.raw = d,
            Some(_) => ck.bad_value(
                el,
                "raw",
                v,
                "is shorter than 7d: samples up to 7 days late are accepted and rollups are \
                 recomputed from the raw samples, so keep them at least 7d"
                    .into(),
            ),
            None => ck.bad_value(el, "raw", v, "is not a duration: expected e.g. 30d".into()),
        }
    }
    for child in &el.children {
        if child.name != "rollup" {
            ck.unknown_element(child, &el.name, &["rollup"]);
            continue;
        }
        if let Some(tier) = rollup(ck, child, history.tiers.last()) {
            history.tiers.push(tier);
        }
    }
    history
}

fn rollup(ck: &mut Checker, el: &RawElement, finer: Option<&Tier>) -> Option<Tier> {
    ck.check_attrs(el, &ROLLUP_ATTRS);
    ck.check_leaf(el);
    let (Some(step_text), Some(keep_text)) = (el.attr("step"), el.attr("keep")) else {
        ck.error(
            el,
            "needs both `step` and `keep`, e.g. <rollup step=\"1h\" keep=\"5y\"/>",
        );
        return None;
    };
    let step = match parse_duration(step_text) {
        Some(d) if d.as_secs() >= 60 && d.as_secs() % 60 == 0 => d,
        Some(_) => {
            ck.bad_value(
                el,
                "step",
                step_text,
                "must be whole minutes, at least 1m".into(),
            );
            return None;
        }
        None => {
            ck.bad_value(
                el,
                "step",
                step_text,
                "is not a duration: expected e.g. 1h".into(),
            );
            return None;
        }
    };
    let keep = if keep_text.trim() == "forever" {
        Keep::Forever
    } else {
        match parse_duration(keep_text) {
            Some(d) if d >= step => Keep::For(d),
            Some(_) => {
                ck.bad_value(
                    el,
                    "keep",
                    keep_text,
                    format!("is shorter than the step ({step_text})"),
                );
                return None;
            }
            None => {
                ck.bad_value(
                    el,
                    "keep",
                    keep_text,
                    "is not a duration or `forever`: expected e.g. 5y".into(),
                );
                return None;
            }
        }
    };
    if let Some(finer) = finer {
        let (f, s) = (finer.step.as_secs(), step.as_secs());
        if s <= f || s % f != 0 {
            ck.bad_value(
                el,
                "step",
                step_text,
                format!(
                    "must be larger than the step before it ({}) and a whole multiple of it",
                    format_duration(finer.step)
                ),
            );
            return None;
        }
    }
    Some(Tier { step, keep })
}
