//! The dashboard's charts as SVG, drawn on the server: one function, [`chart`], turns a series
//! of `[ts, avg, min, max]` buckets (what [`crate::store::history::series`] returns) into an
//! avg line over its min–max band, with the alert rule's `limit` and `clear` as horizontal
//! lines, the spans an alert was firing shaded, and axis ticks; [`sparkline`] is its tiny
//! sibling for the fleet table. Every bucket gets a transparent hit strip with a `<title>`,
//! so hovering shows its time and values even with JavaScript off.
//!
//! Pure functions of their inputs (no clock, no database), unit-tested on the numbers. Not
//! here: which series or rules a page shows (see [`super::host`]).

use std::fmt::Write as _;

use monitor_core::time::Utc;

use super::format::esc;
use crate::store::history::series::Point;

/// Margins around the plot area, in SVG units: room for the y labels left, x labels below.
pub const LEFT: f64 = 48.0;
pub const RIGHT: f64 = 8.0;
pub const TOP: f64 = 8.0;
pub const BOTTOM: f64 = 20.0;

/// How a value reads on an axis and in a tooltip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unit {
    /// 0–100; the y axis is always 0–100.
    Percent,
    /// Load, processes: the y axis from 0 to a round number above the highest value or line.
    Number,
}

impl Unit {
    pub fn format(self, v: f64) -> String {
        match self {
            Unit::Percent => format!("{v:.1}%"),
            Unit::Number if v.fract() == 0.0 || v.abs() >= 100.0 => format!("{v:.0}"),
            Unit::Number => format!("{v:.2}"),
        }
    }
}

/// The frame of one chart: its size and the time range it spans.
#[derive(Debug, Clone, Copy)]
pub struct Frame {
    pub width: f64,
    pub height: f64,
    pub from: i64,
    pub to: i64,
    /// The buckets' width (ms): a point sits at its bucket's middle; a gap of more than two
    /// steps breaks the line.
    pub step_ms: i64,
    pub unit: Unit,
}

/// A horizontal line at a rule's value: `limit`, or `clear` when it differs.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    pub value: f64,
    pub kind: &'static str,
}

/// A span (unix ms) when an alert was firing; `to` is now for one still firing.
pub type Span = (i64, i64);

impl Frame {
    fn plot_width(&self) -> f64 {
        self.width - LEFT - RIGHT
    }

    /// The x of a moment, clamped to the plot area.
    pub fn x(&self, ts: i64) -> f64 {
        let span = (self.to - self.from).max(1) as f64;
        let f = ((ts - self.from) as f64 / span).clamp(0.0, 1.0);
        LEFT + f * self.plot_width()
    }

    /// The y of a value on an axis from 0 to `top`.
    pub fn y(&self, v: f64, top: f64) -> f64 {
        let f = (v / top).clamp(0.0, 1.0);
        TOP + (1.0 - f) * (self.height - TOP - BOTTOM)
    }

    /// The top of the y axis: 100 for percentages, else a round number at or above every
    /// max and every line, so a limit is never drawn off the chart.
    pub fn y_top(&self, points: &[Point], limits: &[Limit]) -> f64 {
        if self.unit == Unit::Percent {
            return 100.0;
        }
        let high = points
            .iter()
            .map(|p| p.3)
            .chain(limits.iter().map(|l| l.value))
            .fold(0.0_f64, f64::max);
        nice_ceiling(high * 1.05)
    }
}

/// The smallest of 1, 2, 2.5, 5 × 10^k at or above `v` (1 for nothing to show).
pub fn nice_ceiling(v: f64) -> f64 {
    if v.is_nan() || v <= 0.0 {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|c| *c >= v * (1.0 - 1e-9))
        .unwrap_or(10.0 * mag)
}

/// Spacing of the x ticks: the first of these that gives at most 7 ticks.
const TICK_STEPS_S: [i64; 14] = [
    60,
    300,
    600,
    900,
    1800,
    3600,
    3 * 3600,
    6 * 3600,
    12 * 3600,
    86_400,
    2 * 86_400,
    7 * 86_400,
    14 * 86_400,
    30 * 86_400,
];

/// The x ticks of a frame: (ts, label), aligned to UTC multiples of their spacing.
pub fn x_ticks(from: i64, to: i64) -> Vec<(i64, String)> {
    let span_s = ((to - from) / 1000).max(1);
    let step_s = TICK_STEPS_S
        .iter()
        .copied()
        .find(|s| span_s / s <= 7)
        .unwrap_or(61 * 86_400);
    let step = step_s * 1000;
    let mut ts = from.div_euclid(step) * step;
    if ts < from {
        ts += step;
    }
    let mut out = Vec::new();
    while ts <= to {
        let t = Utc::from_unix_ms(ts);
        let label = if step_s >= 86_400 {
            format!("{:02}-{:02}", t.month, t.day)
        } else {
            format!("{:02}:{:02}", t.hour, t.minute)
        };
        out.push((ts, label));
        ts += step;
    }
    out
}

/// `2026-11-28 04:12 UTC`, what a hover shows.
pub fn when(ts: i64) -> String {
    let t = Utc::from_unix_ms(ts);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year, t.month, t.day, t.hour, t.minute
    )
}

/// Runs of points with no gap wider than two steps: each becomes its own line and band.
fn runs(points: &[Point], step_ms: i64) -> Vec<&[Point]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..points.len() {
        if points[i].0 - points[i - 1].0 > 2 * step_ms.max(1) {
            out.push(&points[start..i]);
            start = i;
        }
    }
    if start < points.len() {
        out.push(&points[start..]);
    }
    out
}

/// The SVG of one chart. `points` are buckets oldest first; `limits` the rule's lines;
/// `shaded` the spans an alert fired. The root carries `data-from`, `data-to`, `data-x0`
/// and `data-x1` (the plot area in SVG units), which the page's script turns a drag into a
/// range with.
pub fn chart(
    points: &[Point],
    frame: &Frame,
    limits: &[Limit],
    shaded: &[Span],
    label: &str,
) -> String {
    let (w, h) = (frame.width, frame.height);
    let top = frame.y_top(points, limits);
    let mut s = String::with_capacity(512 + points.len() * 160);
    let _ = write!(
        s,
        r#"<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="{}" data-from="{}" data-to="{}" data-x0="{LEFT}" data-x1="{}" data-points="{}">"#,
        esc(label),
        frame.from,
        frame.to,
        w - RIGHT,
        points.len(),
    );
    let (y0, y1) = (frame.y(top, top), frame.y(0.0, top));
    for &(a, b) in shaded {
        if b <= frame.from || a >= frame.to {
            continue;
        }
        let (xa, xb) = (frame.x(a), frame.x(b));
        let _ = write!(
            s,
            r#"<rect class="firing" x="{xa:.1}" y="{y0:.1}" width="{:.1}" height="{:.1}" data-from="{a}" data-to="{b}"><title>firing {} – {}</title></rect>"#,
            (xb - xa).max(1.0),
            y1 - y0,
            when(a),
            when(b),
        );
    }
    // The y grid: quarters of the axis.
    for i in 0..=4 {
        let v = top * f64::from(i) / 4.0;
        let y = frame.y(v, top);
        let _ = write!(
            s,
            r#"<line class="grid" x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}"/><text class="tick" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            w - RIGHT,
            LEFT - 4.0,
            y + 4.0,
            frame.unit.format(v),
        );
    }
    for (ts, text) in x_ticks(frame.from, frame.to) {
        let x = frame.x(ts);
        let _ = write!(
            s,
            r#"<line class="grid" x1="{x:.1}" x2="{x:.1}" y1="{y0:.1}" y2="{y1:.1}"/><text class="tick" x="{x:.1}" y="{:.1}" text-anchor="middle">{text}</text>"#,
            h - 5.0,
        );
    }
    let half = frame.step_ms / 2;
    for run in runs(points, frame.step_ms) {
        let mut band = String::from("M");
        for p in run {
            let _ = write!(band, "{:.1},{:.1} ", frame.x(p.0 + half), frame.y(p.3, top));
        }
        for p in run.iter().rev() {
            let _ = write!(band, "{:.1},{:.1} ", frame.x(p.0 + half), frame.y(p.2, top));
        }
        let _ = write!(s, r#"<path class="band" d="{}Z"/>"#, band.trim_end());
        let mut line = String::from("M");
        for p in run {
            let _ = write!(line, "{:.1},{:.1} ", frame.x(p.0 + half), frame.y(p.1, top));
        }
        if run.len() == 1 {
            // One bucket: a dot, or nothing would show.
            let p = run[0];
            let _ = write!(
                s,
                r#"<circle class="dot" cx="{:.1}" cy="{:.1}" r="2"/>"#,
                frame.x(p.0 + half),
                frame.y(p.1, top)
            );
        }
        let _ = write!(s, r#"<path class="avg" d="{}"/>"#, line.trim_end());
    }
    for l in limits {
        let y = frame.y(l.value, top);
        let _ = write!(
            s,
            r#"<line class="{}" x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" data-value="{}"><title>{} {}</title></line>"#,
            l.kind,
            w - RIGHT,
            l.value,
            l.kind,
            frame.unit.format(l.value),
        );
    }
    // Hit strips, one per bucket, as wide as the bucket: hover (title, and the script's
    // readout) without hunting for a 1-pixel line.
    let strip = (frame.x(frame.from + frame.step_ms) - frame.x(frame.from)).max(1.0);
    for p in points {
        let x = frame.x(p.0);
        let _ = write!(
            s,
            r#"<rect class="pt" x="{x:.1}" y="{y0:.1}" width="{strip:.1}" height="{:.1}"><title>{}: {} (min {}, max {})</title></rect>"#,
            y1 - y0,
            when(p.0),
            frame.unit.format(p.1),
            frame.unit.format(p.2),
            frame.unit.format(p.3),
        );
    }
    s.push_str("</svg>");
    s
}

/// A 100×20 line of avg values on 0–100 (CPU over the last hour) for the fleet table; a dot
/// for a single point (a host that just started sending), which a line cannot show; empty
/// without points.
pub fn sparkline(points: &[Point], from: i64, to: i64) -> String {
    let (w, h) = (100.0, 20.0);
    let span = (to - from).max(1) as f64;
    let at = |p: &Point| {
        let x = ((p.0 - from) as f64 / span).clamp(0.0, 1.0) * w;
        let y = h - 1.0 - (p.1 / 100.0).clamp(0.0, 1.0) * (h - 2.0);
        (x, y)
    };
    let shape = match points {
        [] => return String::new(),
        [only] => {
            let (x, y) = at(only);
            format!(r#"<circle cx="{x:.0}" cy="{y:.0}" r="1.5"/>"#)
        }
        _ => {
            let mut d = String::from("M");
            for p in points {
                let (x, y) = at(p);
                let _ = write!(d, "{x:.0},{y:.0} ");
            }
            format!(r#"<path d="{}"/>"#, d.trim_end())
        }
    };
    format!(r#"<svg class="spark" viewBox="0 0 {w} {h}" aria-hidden="true">{shape}</svg>"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(unit: Unit) -> Frame {
        // Plot area 48..392 (344 wide) by 8..92 (84 high): easy numbers.
        Frame {
            width: 400.0,
            height: 112.0,
            from: 0,
            to: 3_440_000,
            step_ms: 10_000,
            unit,
        }
    }

    /// Every `x,y` pair of a path's `d`.
    fn coords(d: &str) -> Vec<(f64, f64)> {
        d.trim_start_matches('M')
            .trim_end_matches('Z')
            .split_whitespace()
            .map(|pair| {
                let (x, y) = pair.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect()
    }

    /// The `d` of every `<path class="{class}"`.
    fn paths(svg: &str, class: &str) -> Vec<String> {
        let marker = format!(r#"<path class="{class}" d=""#);
        svg.match_indices(&marker)
            .map(|(i, _)| {
                let rest = &svg[i + marker.len()..];
                rest[..rest.find('"').unwrap()].to_owned()
            })
            .collect()
    }

    fn attr(element: &str, name: &str) -> f64 {
        let marker = format!(r#" {name}=""#);
        let rest = &element[element.find(&marker).unwrap() + marker.len()..];
        rest[..rest.find('"').unwrap()].parse().unwrap()
    }

    fn elements<'a>(svg: &'a str, start: &str) -> Vec<&'a str> {
        svg.match_indices(start)
            .map(|(i, _)| {
                let rest = &svg[i..];
                &rest[..rest.find('>').unwrap()]
            })
            .collect()
    }

    #[test]
    fn points_become_the_avg_line_and_the_band_at_their_coordinates() {
        let f = frame(Unit::Percent);
        // Buckets at 0 and 10 s (middles 5 s, 15 s); 3440 s over 344 units: 1 unit per 10 s.
        let points = [(0, 50.0, 25.0, 75.0), (10_000, 100.0, 0.0, 100.0)];
        let svg = chart(&points, &f, &[], &[], "cpu");
        let avg = paths(&svg, "avg");
        assert_eq!(avg.len(), 1);
        // x: 48 + 0.5 and 48 + 1.5; y: 8 + (1 - v/100) * 84.
        assert_eq!(coords(&avg[0]), [(48.5, 50.0), (49.5, 8.0)]);
        let band = paths(&svg, "band");
        assert_eq!(
            coords(&band[0]),
            [(48.5, 29.0), (49.5, 8.0), (49.5, 92.0), (48.5, 71.0)],
            "max forward, then min backward"
        );
        assert_eq!(elements(&svg, r#"<rect class="pt""#).len(), 2);
        assert!(svg.contains(r#"data-points="2""#), "{svg}");
        assert!(svg.contains("<title>1970-01-01 00:00 UTC: 50.0% (min 25.0%, max 75.0%)</title>"));
    }

    #[test]
    fn a_gap_of_more_than_two_steps_breaks_the_line() {
        let f = frame(Unit::Percent);
        let points = [
            (0, 1.0, 1.0, 1.0),
            (10_000, 1.0, 1.0, 1.0),
            (30_000, 1.0, 1.0, 1.0), // two steps later: still joined
            (100_000, 1.0, 1.0, 1.0),
        ];
        let svg = chart(&points, &f, &[], &[], "cpu");
        let avg = paths(&svg, "avg");
        assert_eq!(avg.len(), 2, "{svg}");
        assert_eq!(coords(&avg[0]).len(), 3);
        assert_eq!(coords(&avg[1]).len(), 1);
        assert_eq!(elements(&svg, r#"<circle class="dot""#).len(), 1);
    }

    #[test]
    fn limit_and_clear_lines_sit_at_the_rules_values() {
        let f = frame(Unit::Percent);
        let limits = [
            Limit {
                value: 90.0,
                kind: "limit",
            },
            Limit {
                value: 75.0,
                kind: "clear",
            },
        ];
        let svg = chart(&[(0, 10.0, 10.0, 10.0)], &f, &limits, &[], "cpu");
        let limit = elements(&svg, r#"<line class="limit""#);
        assert_eq!(limit.len(), 1);
        // 8 + (1 - 0.9) * 84 = 16.4
        assert_eq!(attr(limit[0], "y1"), 16.4);
        assert_eq!(attr(limit[0], "data-value"), 90.0);
        assert_eq!((attr(limit[0], "x1"), attr(limit[0], "x2")), (48.0, 392.0));
        let clear = elements(&svg, r#"<line class="clear""#);
        assert_eq!(attr(clear[0], "y1"), 29.0);
    }

    #[test]
    fn a_number_axis_reaches_above_the_highest_value_and_the_limit() {
        let f = frame(Unit::Number);
        let points = [(0, 3.0, 1.0, 4.2)];
        assert_eq!(f.y_top(&points, &[]), 5.0);
        let limit = [Limit {
            value: 8.0,
            kind: "limit",
        }];
        assert_eq!(f.y_top(&points, &limit), 10.0);
        let svg = chart(&points, &f, &limit, &[], "load");
        // 8 on an axis to 10: 8 + 0.2 * 84
        assert_eq!(
            attr(elements(&svg, r#"<line class="limit""#)[0], "y1"),
            24.8
        );
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(123.0), 200.0);
        assert_eq!(nice_ceiling(2.1), 2.5);
    }

    #[test]
    fn firing_spans_are_shaded_within_the_frame() {
        let f = frame(Unit::Percent);
        // 100 s..200 s: x 58..68; one starting before the frame is clipped at its left edge;
        // one wholly after it is not drawn.
        let shaded = [
            (100_000, 200_000),
            (-50_000, 20_000),
            (5_000_000, 6_000_000),
        ];
        let svg = chart(&[], &f, &[], &shaded, "cpu");
        let rects = elements(&svg, r#"<rect class="firing""#);
        assert_eq!(rects.len(), 2, "{svg}");
        assert_eq!((attr(rects[0], "x"), attr(rects[0], "width")), (58.0, 10.0));
        assert_eq!((attr(rects[0], "y"), attr(rects[0], "height")), (8.0, 84.0));
        assert_eq!((attr(rects[1], "x"), attr(rects[1], "width")), (48.0, 2.0));
    }

    #[test]
    fn x_ticks_are_aligned_and_labelled_in_utc() {
        // One hour from 00:07: ticks every 10 minutes from 00:10.
        let ticks = x_ticks(7 * 60_000, 67 * 60_000);
        let labels: Vec<&str> = ticks.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(
            labels,
            ["00:10", "00:20", "00:30", "00:40", "00:50", "01:00"]
        );
        // Thirty days: weekly, by date.
        let ticks = x_ticks(0, 30 * 86_400_000);
        assert_eq!(ticks[0].1, "01-01");
        assert!(ticks.len() <= 7, "{ticks:?}");
    }

    #[test]
    fn the_sparkline_spans_its_hour() {
        let svg = sparkline(
            &[(0, 0.0, 0.0, 0.0), (3_600_000, 100.0, 0.0, 100.0)],
            0,
            3_600_000,
        );
        assert!(svg.contains(r#"d="M0,19 100,1""#), "{svg}");
        assert_eq!(sparkline(&[], 0, 1), "");
        // One point: a dot where the line would start, at 50 % CPU half way up.
        let svg = sparkline(&[(1_800_000, 50.0, 50.0, 50.0)], 0, 3_600_000);
        assert!(
            svg.contains(r#"<circle cx="50" cy="10" r="1.5"/>"#),
            "{svg}"
        );
    }
}
