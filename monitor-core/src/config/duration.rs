//! Durations as config.xml writes them: `45s`, `5m`, `2h`, `1d`, combinations like `1h30m`,
//! and a bare number meaning seconds; and back again for messages (`3m`, `1h30m`).

use std::time::Duration;

/// Parses `45s`, `5m`, `2h`, `1d`, `1h30m` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for ch in text.chars() {
        if ch.is_ascii_digit() {
            digits.push(ch);
            continue;
        }
        let unit = match ch {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            // A year of 365 days: what `keep="5y"` means.
            'y' => 365 * 86_400,
            _ => return None,
        };
        let n: u64 = digits.parse().ok()?;
        digits.clear();
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    if !digits.is_empty() {
        return None;
    }
    Some(Duration::from_secs(total))
}

/// Formats whole seconds the way config.xml writes them: `0s`, `45s`, `3m`, `1h30m`, `2d4h`.
pub fn format_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, suffix) in [(86_400, 'd'), (3600, 'h'), (60, 'm'), (1, 's')] {
        if secs >= unit {
            out.push_str(&format!("{}{suffix}", secs / unit));
            secs %= unit;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        let s = |n| Some(Duration::from_secs(n));
        assert_eq!(parse_duration("45s"), s(45));
        assert_eq!(parse_duration("5m"), s(300));
        assert_eq!(parse_duration("2h"), s(7200));
        assert_eq!(parse_duration("1d"), s(86_400));
        assert_eq!(parse_duration("1h30m"), s(5400));
        assert_eq!(parse_duration("30"), s(30));
        for bad in ["", "m", "5x", "1.5h", "-5s", "5m3", "h1"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_back() {
        for (secs, text) in [
            (0, "0s"),
            (45, "45s"),
            (180, "3m"),
            (5400, "1h30m"),
            (93_600, "1d2h"),
        ] {
            assert_eq!(format_duration(Duration::from_secs(secs)), text);
            assert_eq!(parse_duration(text), Some(Duration::from_secs(secs)));
        }
    }
}
