//! Wall times as every output line writes them: RFC 3339 in UTC with nine
//! fraction digits, always, so that times of one width sort as strings
//! (`.18909692Z` before `.198671335Z` did not).

use time::{macros::format_description, OffsetDateTime, UtcOffset};

/// `2026-12-07T13:57:35.000000000Z`.
pub fn rfc3339(t: OffsetDateTime) -> String {
    const FORMAT: &[time::format_description::FormatItem<'static>] =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z");
    t.to_offset(UtcOffset::UTC)
        .format(FORMAT)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000000000Z".into())
}

/// ns since the epoch as [`rfc3339`]; out of range, the epoch.
pub fn rfc3339_ns(unix_ns: i128) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(unix_ns)
        .map(rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000000000Z".into())
}

/// Now, as [`rfc3339`].
pub fn now() -> String {
    rfc3339(OffsetDateTime::now_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_time_has_nine_fraction_digits_and_sorts_as_a_string() {
        let a = rfc3339_ns(1_764_000_000_189_096_920);
        let b = rfc3339_ns(1_764_000_000_198_671_335);
        let c = rfc3339_ns(1_764_000_001_000_000_000);
        assert_eq!(a, "2025-11-24T16:00:00.189096920Z");
        assert_eq!(b, "2025-11-24T16:00:00.198671335Z");
        assert_eq!(c, "2025-11-24T16:00:01.000000000Z");
        assert!(a < b && b < c);
        assert_eq!(a.len(), b.len());
        assert_eq!(b.len(), c.len());
    }

    #[test]
    fn an_offset_is_written_as_utc() {
        let t = OffsetDateTime::from_unix_timestamp(0)
            .expect("epoch")
            .to_offset(UtcOffset::from_hms(1, 0, 0).expect("offset"));
        assert_eq!(rfc3339(t), "1970-01-01T00:00:00.000000000Z");
    }
}
