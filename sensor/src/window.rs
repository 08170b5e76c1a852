//! A capture-time window given on the command line as `FROM..TO`, each end
//! RFC 3339 (`2026-03-02T08:00:00Z`, `2026-03-02T09:00:00.5+01:00`) or
//! seconds since the epoch (`1772438400`, `1772438400.25`); either end may
//! be left open (`FROM..`, `..TO`).

use flowlib::Timestamp;
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// A closed or half-open interval of capture time (ends included).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct TimeWindow {
    /// Earliest time, if bounded.
    pub from: Option<Timestamp>,
    /// Latest time, if bounded.
    pub to: Option<Timestamp>,
}

/// Why a time window does not parse.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WindowError {
    /// No `..` between the ends.
    #[error("expected FROM..TO, FROM.. or ..TO")]
    NoRange,
    /// Both ends left open.
    #[error("give at least one end: FROM..TO, FROM.. or ..TO")]
    Unbounded,
    /// An end is neither RFC 3339 nor epoch seconds.
    #[error(
        "{0:?} is neither an RFC 3339 time (2026-03-02T08:00:00Z) nor seconds since the epoch"
    )]
    BadTime(String),
    /// The window ends before it starts.
    #[error("the window ends before it starts")]
    Reversed,
}

impl TimeWindow {
    /// Whether a connection active from `first` to `last` (its first and
    /// last packets) overlaps the window.
    pub fn overlaps(&self, first: Timestamp, last: Timestamp) -> bool {
        self.from.is_none_or(|from| last >= from) && self.to.is_none_or(|to| first <= to)
    }
}

impl FromStr for TimeWindow {
    type Err = WindowError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (from, to) = s.split_once("..").ok_or(WindowError::NoRange)?;
        let end = |t: &str| {
            let t = t.trim();
            (!t.is_empty()).then(|| parse_time(t)).transpose()
        };
        let w = TimeWindow {
            from: end(from)?,
            to: end(to)?,
        };
        match (w.from, w.to) {
            (None, None) => Err(WindowError::Unbounded),
            (Some(f), Some(t)) if f > t => Err(WindowError::Reversed),
            _ => Ok(w),
        }
    }
}

impl fmt::Display for TimeWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = |t: Option<Timestamp>| {
            t.map(|t| format!("{}.{:09}", t.secs(), t.subsec_nanos()))
                .unwrap_or_default()
        };
        write!(f, "{}..{}", end(self.from), end(self.to))
    }
}

/// One end: epoch seconds (with up to nine decimals) or RFC 3339.
fn parse_time(t: &str) -> Result<Timestamp, WindowError> {
    let bad = || WindowError::BadTime(t.to_owned());
    if t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let (secs, frac) = t.split_once('.').unwrap_or((t, ""));
        if secs.is_empty() || frac.len() > 9 || frac.contains('.') {
            return Err(bad());
        }
        let secs: i64 = secs.parse().map_err(|_| bad())?;
        let nanos: u32 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<9}").parse().map_err(|_| bad())?
        };
        return Ok(Timestamp::from_nanos(secs, nanos));
    }
    let dt = chrono::DateTime::parse_from_rfc3339(t).map_err(|_| bad())?;
    Ok(Timestamp::from_nanos(
        dt.timestamp(),
        dt.timestamp_subsec_nanos().min(999_999_999),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(secs: i64, nanos: u32) -> Option<Timestamp> {
        Some(Timestamp::from_nanos(secs, nanos))
    }

    #[test]
    fn epoch_seconds_and_rfc3339_ends_parse_to_the_same_instants() {
        let w: TimeWindow = "1772438400..1772442000.25".parse().unwrap();
        assert_eq!(
            (w.from, w.to),
            (ts(1_772_438_400, 0), ts(1_772_442_000, 250_000_000))
        );
        let w: TimeWindow = "2026-03-02T08:00:00Z..2026-03-02T10:00:00.25+01:00"
            .parse()
            .unwrap();
        assert_eq!(
            (w.from, w.to),
            (ts(1_772_438_400, 0), ts(1_772_442_000, 250_000_000))
        );
    }

    #[test]
    fn open_ends_are_allowed_but_not_both() {
        let w: TimeWindow = "1772438400..".parse().unwrap();
        assert_eq!((w.from, w.to), (ts(1_772_438_400, 0), None));
        let w: TimeWindow = "..2026-03-02T08:00:00Z".parse().unwrap();
        assert_eq!((w.from, w.to), (None, ts(1_772_438_400, 0)));
        assert_eq!("..".parse::<TimeWindow>(), Err(WindowError::Unbounded));
    }

    #[test]
    fn malformed_windows_are_refused_with_the_reason() {
        assert_eq!(
            "1772438400".parse::<TimeWindow>(),
            Err(WindowError::NoRange)
        );
        assert_eq!("20..10".parse::<TimeWindow>(), Err(WindowError::Reversed));
        assert_eq!(
            "yesterday..".parse::<TimeWindow>(),
            Err(WindowError::BadTime("yesterday".into()))
        );
        assert!(matches!(
            "1.2.3..".parse::<TimeWindow>(),
            Err(WindowError::BadTime(_))
        ));
        assert!(matches!(
            "1.1234567891..".parse::<TimeWindow>(),
            Err(WindowError::BadTime(_))
        ));
    }

    #[test]
    fn overlap_includes_both_ends() {
        let w: TimeWindow = "100..200".parse().unwrap();
        assert!(w.overlaps(ts(50, 0).unwrap(), ts(100, 0).unwrap()));
        assert!(w.overlaps(ts(200, 0).unwrap(), ts(300, 0).unwrap()));
        assert!(w.overlaps(ts(150, 0).unwrap(), ts(160, 0).unwrap()));
        assert!(!w.overlaps(ts(50, 0).unwrap(), ts(99, 999_999_999).unwrap()));
        assert!(!w.overlaps(ts(200, 1).unwrap(), ts(300, 0).unwrap()));
    }
}
