//! How numbers, times and durations read on the dashboard's pages. Templates escape what they
//! print; [`esc`] is for the SVG the chart functions build as strings.

use monitor_core::time::Utc;

/// `&`, `<`, `>`, `"` and `'` as entities.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `12.5%`, or `–` for nothing.
pub fn percent(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.1}%"))
}

/// `0.50`, or `–`.
pub fn number(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.2}"))
}

/// Whole seconds, coarsely, as a person reads them: `45s`, `12m`, `3h 5m`, `41d 2h`.
pub fn duration_s(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// `2026-11-28 04:12:00 UTC`.
pub fn time(ms: i64) -> String {
    Utc::from_unix_ms(ms).to_string()
}

/// `2026-11-28 04:12` (for tables whose header says UTC).
pub fn time_short(ms: i64) -> String {
    let t = Utc::from_unix_ms(ms);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        t.year, t.month, t.day, t.hour, t.minute
    )
}

/// `3m ago`, `never`.
pub fn ago(ms: Option<i64>, now: i64) -> String {
    match ms {
        None => "never".into(),
        Some(ms) => format!("{} ago", duration_s((now - ms) / 1000)),
    }
}

/// Bytes as `512 MiB`, `1.2 GiB`.
pub fn bytes(n: i64) -> String {
    let mut v = n as f64;
    for unit in ["B", "KiB", "MiB", "GiB", "TiB"] {
        if v < 1024.0 || unit == "TiB" {
            return if unit == "B" || v >= 100.0 {
                format!("{v:.0} {unit}")
            } else {
                format!("{v:.1} {unit}")
            };
        }
        v /= 1024.0;
    }
    unreachable!("the loop returns at TiB")
}

/// A value of rule `rule` as its limit is written: `%` for cpu, memory, swap and disk,
/// a duration for uptime, a number otherwise.
pub fn rule_value(rule: &str, v: f64) -> String {
    match rule {
        "cpu" | "memory" | "swap" | "disk" => format!("{v:.1}%"),
        "uptime" | "down" | "clock" => duration_s(v as i64),
        "processes" => format!("{v:.0}"),
        _ => format!("{v:.2}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_as_people_write_them() {
        assert_eq!(
            esc(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(duration_s(59), "59s");
        assert_eq!(duration_s(3599), "59m");
        assert_eq!(duration_s(3660), "1h 1m");
        assert_eq!(duration_s(90_000), "1d 1h");
        assert_eq!(bytes(10_485_760), "10.0 MiB");
        assert_eq!(bytes(500), "500 B");
        assert_eq!(percent(None), "–");
        assert_eq!(rule_value("cpu", 97.04), "97.0%");
        assert_eq!(rule_value("processes", 950.0), "950");
        assert_eq!(ago(Some(0), 120_000), "2m ago");
        assert_eq!(time_short(0), "1970-01-01 00:00");
    }
}
