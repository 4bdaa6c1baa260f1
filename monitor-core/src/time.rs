//! Unix time to a UTC calendar date and clock, without a date crate (the static agent stays
//! small): Howard Hinnant's civil-from-days, proleptic Gregorian. The programs that print a
//! time for people (the agent's log, `monitor-deploy --status`, monitord's commands and mail)
//! format these fields; nothing here reads a clock or knows about time zones.

use std::fmt;

/// A moment in UTC, to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    pub year: i64,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

impl Utc {
    /// The moment `ms` milliseconds after 1970-01-01T00:00:00Z (before it when negative).
    pub fn from_unix_ms(ms: i64) -> Utc {
        Utc::from_unix_secs(ms.div_euclid(1000))
    }

    pub fn from_unix_secs(secs: i64) -> Utc {
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        // Every value below fits its type: day 1..=31, month 1..=12, the clock from `rem`.
        Utc {
            year: yoe + era * 400 + i64::from(month <= 2),
            month: month as u8,
            day: day as u8,
            hour: (rem / 3600) as u8,
            minute: (rem % 3600 / 60) as u8,
            second: (rem % 60) as u8,
        }
    }

    /// `2026-11-28 04:12:00`, for tables whose column header already says UTC
    /// (`monitord clients`, `monitord samples`).
    pub fn date_time(&self) -> String {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// `2026-11-28T04:12:00Z` (RFC 3339), for logs.
    pub fn rfc3339(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// `2026-11-28 04:12:00 UTC`, for people (`monitor-deploy --status`, monitord's mail and
/// `monitord alerts`).
impl fmt::Display for Utc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so a width in a table's format string (`{:<24}`) applies.
        f.pad(&format!("{} UTC", self.date_time()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_moments() {
        assert_eq!(Utc::from_unix_secs(0).rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(
            Utc::from_unix_secs(951_782_400).rfc3339(),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            Utc::from_unix_ms(1_795_838_399_999).to_string(),
            "2026-11-28 03:59:59 UTC"
        );
        assert_eq!(Utc::from_unix_ms(-1).rfc3339(), "1969-12-31T23:59:59Z");
    }

    /// Each output format, at moments that catch off-by-ones: the epoch, a leap day, the
    /// last second of a year, a century that is not a leap year, milliseconds dropped (never
    /// rounded up).
    #[test]
    fn each_format() {
        let formats = |ms: i64| {
            let t = Utc::from_unix_ms(ms);
            (t.date_time(), t.to_string(), t.rfc3339())
        };
        let expect = |d: &str| (d.to_owned(), format!("{d} UTC"), d.replace(' ', "T") + "Z");
        assert_eq!(formats(0), expect("1970-01-01 00:00:00"));
        assert_eq!(formats(951_782_400_000), expect("2000-02-29 00:00:00"));
        assert_eq!(formats(1_790_000_000_123), expect("2026-09-21 14:13:20"));
        assert_eq!(formats(1_795_839_120_000), expect("2026-11-28 04:12:00"));
        assert_eq!(formats(1_798_761_599_999), expect("2026-12-31 23:59:59"));
        assert_eq!(formats(4_107_542_400_000), expect("2100-03-01 00:00:00"));
        assert_eq!(formats(-86_400_000), expect("1969-12-31 00:00:00"));
        assert_eq!(
            format!("[{:<26}]", Utc::from_unix_secs(0)),
            "[1970-01-01 00:00:00 UTC   ]"
        );
    }
}
