//! Relationships: which traffic between enclaves is expected. A
//! relationship allows connections **from** an enclave or host group **to**
//! an enclave or host group, on some services, optionally only inside time
//! windows and up to a daily volume.
//!
//! Services are written `proto/port`, `proto/first-last` or `proto`:
//! `tcp/3389`, `tcp/8000-8100`, `udp/161`, `icmp`, `any`. Time windows are
//! local wall-clock times in a time zone (IANA names such as
//! `Europe/Berlin`, with their daylight-saving rules, or fixed offsets such
//! as `+02:00`); a window whose end is before its start runs past midnight
//! into the next day.

use std::fmt;
use std::str::FromStr;

use chrono::{Offset, TimeZone};
use flowlib::Timestamp;

use crate::enclave::EnclaveId;
use crate::hostgroup::HostGroupId;

/// A transport protocol as rule files name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    /// TCP (IP protocol 6).
    Tcp,
    /// UDP (17).
    Udp,
    /// SCTP (132).
    Sctp,
    /// ICMP for IPv4 (1) or IPv6 (58): `icmp` means "ping and friends" on
    /// either family.
    Icmp,
    /// ICMPv6 only (58).
    Icmp6,
    /// Any IP protocol.
    Any,
}

impl Proto {
    /// The rule-file name.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
            Proto::Icmp => "icmp",
            Proto::Icmp6 => "icmp6",
            Proto::Any => "any",
        }
    }

    /// Whether this protocol has ports.
    pub fn has_ports(self) -> bool {
        matches!(self, Proto::Tcp | Proto::Udp | Proto::Sctp)
    }

    /// Whether packets of IP protocol number `ip_proto` are this protocol.
    pub fn matches(self, ip_proto: u8) -> bool {
        match self {
            Proto::Tcp => ip_proto == 6,
            Proto::Udp => ip_proto == 17,
            Proto::Sctp => ip_proto == 132,
            Proto::Icmp => ip_proto == 1 || ip_proto == 58,
            Proto::Icmp6 => ip_proto == 58,
            Proto::Any => true,
        }
    }
}

/// An inclusive port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    /// First port.
    pub first: u16,
    /// Last port (>= `first`).
    pub last: u16,
}

impl PortRange {
    /// Whether `port` is in the range.
    pub fn contains(self, port: u16) -> bool {
        self.first <= port && port <= self.last
    }
}

/// A protocol and, for TCP/UDP/SCTP, the responder's ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Service {
    /// The protocol.
    pub proto: Proto,
    /// The responder port range; `None` means every port.
    pub ports: Option<PortRange>,
}

impl Service {
    /// Whether a connection of IP protocol `ip_proto` to responder port
    /// `port` is this service (the port is ignored for portless protocols).
    pub fn matches(&self, ip_proto: u8, port: u16) -> bool {
        self.proto.matches(ip_proto) && self.ports.is_none_or(|r| r.contains(port))
    }
}

impl FromStr for Service {
    type Err = String;

    /// Parses `tcp/3389`, `tcp/8000-8100`, `udp/161`, `tcp`, `icmp`, `any`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, ports) = match s.split_once('/') {
            Some((n, p)) => (n, Some(p)),
            None => (s, None),
        };
        let proto = match name.to_ascii_lowercase().as_str() {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            "sctp" => Proto::Sctp,
            "icmp" => Proto::Icmp,
            "icmp6" | "ipv6-icmp" | "icmpv6" => Proto::Icmp6,
            "any" => Proto::Any,
            _ => {
                return Err(format!(
                    "{s:?} is not a valid service (unknown protocol {name:?}; expected tcp, udp, sctp, icmp, icmp6 or any)"
                ))
            }
        };
        let Some(ports) = ports else {
            return Ok(Service { proto, ports: None });
        };
        if !proto.has_ports() {
            return Err(format!(
                "{s:?} is not a valid service ({name} has no ports)"
            ));
        }
        let port = |p: &str| -> Result<u16, String> {
            match decimal::<u16>(p.trim()) {
                Some(0) => Err(format!("{s:?} is not a valid service (port 0)")),
                Some(v) => Ok(v),
                None => Err(format!(
                    "{s:?} is not a valid service (bad port {p:?}; expected 1-65535)"
                )),
            }
        };
        let range = match ports.split_once('-') {
            Some((a, b)) => {
                let (first, last) = (port(a)?, port(b)?);
                if first > last {
                    return Err(format!(
                        "{s:?} is not a valid service (port range {first}-{last} is backwards)"
                    ));
                }
                PortRange { first, last }
            }
            None => {
                let p = port(ports)?;
                PortRange { first: p, last: p }
            }
        };
        Ok(Service {
            proto,
            ports: Some(range),
        })
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.proto.as_str())?;
        match self.ports {
            Some(r) if r.first == r.last => write!(f, "/{}", r.first),
            Some(r) => write!(f, "/{}-{}", r.first, r.last),
            None => Ok(()),
        }
    }
}

/// A time zone: an IANA zone (with its daylight-saving history and rules,
/// from the tz database compiled into `chrono-tz`) or a fixed UTC offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zone(ZoneRepr);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ZoneRepr {
    /// Seconds east of UTC.
    Fixed(i32),
    Named(chrono_tz::Tz),
}

impl Zone {
    /// UTC.
    pub const UTC: Zone = Zone(ZoneRepr::Fixed(0));

    /// The offset from UTC, in seconds east, at `unix_secs`.
    pub fn offset_at(&self, unix_secs: i64) -> i32 {
        match self.0 {
            ZoneRepr::Fixed(s) => s,
            ZoneRepr::Named(tz) => match chrono::DateTime::from_timestamp(unix_secs, 0) {
                Some(t) => tz
                    .offset_from_utc_datetime(&t.naive_utc())
                    .fix()
                    .local_minus_utc(),
                None => 0,
            },
        }
    }

    /// The zone's name: the IANA name, or the offset as `+HH:MM`.
    pub fn name(&self) -> String {
        match self.0 {
            ZoneRepr::Fixed(0) => "UTC".to_string(),
            ZoneRepr::Fixed(s) => {
                let sign = if s < 0 { '-' } else { '+' };
                let m = s.unsigned_abs() / 60;
                format!("{sign}{:02}:{:02}", m / 60, m % 60)
            }
            ZoneRepr::Named(tz) => tz.name().to_string(),
        }
    }
}

impl FromStr for Zone {
    type Err = String;

    /// Parses `UTC`, `Z`, `+02:00`, `-05:30`, `UTC+2`, or an IANA name.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "{s:?} is not a known time zone (expected an IANA name such as \"Europe/Berlin\", \"UTC\", or an offset such as \"+02:00\")"
            )
        };
        if matches!(s, "UTC" | "utc" | "Z" | "GMT") {
            return Ok(Zone::UTC);
        }
        let offset = s
            .strip_prefix("UTC")
            .or_else(|| s.strip_prefix("GMT"))
            .unwrap_or(s);
        if let Some(rest) = offset
            .strip_prefix('+')
            .or_else(|| offset.strip_prefix('-'))
        {
            let sign = if offset.starts_with('-') { -1 } else { 1 };
            let (h, m) = match rest.split_once(':') {
                Some((h, m)) if m.len() == 2 => (h, m),
                Some(_) => return Err(bad()),
                None if rest.len() == 4 => rest.split_at(2),
                None => (rest, "0"),
            };
            let (Some(h), Some(m)) = (decimal::<i32>(h), decimal::<i32>(m)) else {
                return Err(bad());
            };
            if !(0..60).contains(&m) || h > 14 || (h == 14 && m > 0) || h < 0 {
                return Err(format!(
                    "{s:?} is not a valid UTC offset (expected -14:00 to +14:00)"
                ));
            }
            return Ok(Zone(ZoneRepr::Fixed(sign * (h * 3600 + m * 60))));
        }
        s.parse::<chrono_tz::Tz>()
            .map(|tz| Zone(ZoneRepr::Named(tz)))
            .map_err(|_| bad())
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// A set of weekdays, Monday = bit 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Days(u8);

impl Days {
    /// Monday to Sunday, the rule-file names.
    pub const NAMES: [&'static str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    /// Every day.
    pub const DAILY: Days = Days(0x7f);
    /// Monday to Friday.
    pub const WEEKDAYS: Days = Days(0x1f);
    /// Saturday and Sunday.
    pub const WEEKENDS: Days = Days(0x60);

    /// No days.
    pub fn none() -> Days {
        Days(0)
    }

    /// Whether `day` (0 = Monday .. 6 = Sunday) is in the set.
    pub fn contains(self, day: u32) -> bool {
        day < 7 && self.0 & (1 << day) != 0
    }

    /// Adds `day` (0 = Monday).
    pub fn insert(&mut self, day: u32) {
        if day < 7 {
            self.0 |= 1 << day;
        }
    }

    /// Adds every day of `other`.
    pub fn extend(&mut self, other: Days) {
        self.0 |= other.0;
    }

    /// True when no day is in the set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Parses one day name (`mon`, `monday`), a range (`mon-fri`, which may
    /// wrap: `fri-mon`), or `weekdays`, `weekends`, `daily`.
    pub fn parse_item(s: &str) -> Result<Days, String> {
        let lower = s.trim().to_ascii_lowercase();
        match lower.as_str() {
            "daily" | "everyday" | "all" => return Ok(Days::DAILY),
            "weekdays" => return Ok(Days::WEEKDAYS),
            "weekends" => return Ok(Days::WEEKENDS),
            _ => {}
        }
        let day = |d: &str| -> Result<u32, String> {
            Self::day_index(d).ok_or_else(|| {
                format!(
                    "unknown day {d:?} (expected mon, tue, wed, thu, fri, sat, sun, a range such as \"mon-fri\", \"weekdays\", \"weekends\" or \"daily\")"
                )
            })
        };
        let mut out = Days::none();
        match lower.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day(a)?, day(b)?);
                let mut d = a;
                loop {
                    out.insert(d);
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => out.insert(day(&lower)?),
        }
        Ok(out)
    }

    fn day_index(d: &str) -> Option<u32> {
        const FULL: [&str; 7] = [
            "monday",
            "tuesday",
            "wednesday",
            "thursday",
            "friday",
            "saturday",
            "sunday",
        ];
        let d = d.trim();
        (0..7u32).find(|&i| Self::NAMES[i as usize] == d || FULL[i as usize] == d)
    }
}

impl fmt::Display for Days {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Days::DAILY => f.write_str("daily"),
            Days::WEEKDAYS => f.write_str("weekdays"),
            Days::WEEKENDS => f.write_str("weekends"),
            _ => {
                let names: Vec<&str> = (0..7)
                    .filter(|&d| self.contains(d))
                    .map(|d| Self::NAMES[d as usize])
                    .collect();
                f.write_str(&names.join(","))
            }
        }
    }
}

/// A number written in decimal digits only (Rust's integer parsing would
/// also take a leading `+`).
fn decimal<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses a wall-clock time `HH:MM` (or `HH:MM:SS`) into seconds since
/// midnight. `24:00` is accepted only when `allow_24` (as a window's end).
pub fn parse_clock(s: &str, allow_24: bool) -> Result<u32, String> {
    let bad = || format!("{s:?} is not a valid time (expected HH:MM, 00:00 to 23:59)");
    let mut parts = s.split(':');
    let (Some(h), Some(m)) = (parts.next(), parts.next()) else {
        return Err(bad());
    };
    let sec = parts.next();
    if parts.next().is_some() || h.is_empty() || h.len() > 2 || m.len() != 2 {
        return Err(bad());
    }
    let (Some(h), Some(m)) = (decimal::<u32>(h), decimal::<u32>(m)) else {
        return Err(bad());
    };
    let sec = match sec {
        None => 0,
        Some(x) if x.len() == 2 => decimal::<u32>(x).ok_or_else(bad)?,
        Some(_) => return Err(bad()),
    };
    let t = h * 3600 + m * 60 + sec;
    if h == 24 && m == 0 && sec == 0 {
        if allow_24 {
            return Ok(86_400);
        }
        return Err(format!(
            "{s:?} is not a valid start time (24:00 is only an end)"
        ));
    }
    if h > 23 || m > 59 || sec > 59 {
        return Err(bad());
    }
    Ok(t)
}

/// Recurring local times at which a relationship may be used.
///
/// The window opens at `start` on each of its `days` (local time in its
/// zone) and closes at `end`; when `end <= start` it closes at `end` on the
/// next day (so `days = ["fri"], start = "22:00", end = "02:00"` is Friday
/// 22:00 to Saturday 02:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    days: Days,
    start: u32,
    end: u32,
    zone: Zone,
}

impl TimeWindow {
    /// Builds a window from seconds since local midnight.
    ///
    /// Errors if it can never match: no days, `start == end`, or times out
    /// of range (`start` < 86400, `end` <= 86400).
    pub fn new(days: Days, start: u32, end: u32, zone: Zone) -> Result<TimeWindow, String> {
        if days.is_empty() {
            return Err("the window has no days, so it can never match".into());
        }
        if start >= 86_400 || end > 86_400 {
            return Err("time out of range".into());
        }
        if start == end {
            let hint = if start == 0 {
                " (use end = \"24:00\" for a whole day)"
            } else {
                ""
            };
            return Err(format!(
                "start and end are both {}, so the window can never match{hint}",
                clock(start)
            ));
        }
        Ok(TimeWindow {
            days,
            start,
            end,
            zone,
        })
    }

    /// The days on which the window opens.
    pub fn days(&self) -> Days {
        self.days
    }

    /// Opening time, seconds after local midnight.
    pub fn start(&self) -> u32 {
        self.start
    }

    /// Closing time, seconds after local midnight (on the next day when not
    /// after `start`).
    pub fn end(&self) -> u32 {
        self.end
    }

    /// The time zone of `start` and `end`.
    pub fn zone(&self) -> Zone {
        self.zone
    }

    /// Whether the window is open at capture time `ts` (open at `start`,
    /// closed at `end`).
    pub fn contains(&self, ts: Timestamp) -> bool {
        self.opened_on(ts).is_some()
    }

    /// The local day (days since 1970-01-01 in the window's zone) on which
    /// the opening of the window that is open at capture time `ts` began,
    /// if it is open: for a window that runs past midnight, the day before
    /// when `ts` is after midnight. One night's window is one opening.
    pub fn opened_on(&self, ts: Timestamp) -> Option<i64> {
        let utc = ts.secs();
        let local = utc + i64::from(self.zone.offset_at(utc));
        let day_number = local.div_euclid(86_400);
        // 1970-01-01 was a Thursday (Monday = 0 makes it 3).
        let weekday = (day_number + 3).rem_euclid(7) as u32;
        let t = local.rem_euclid(86_400) as u32;
        if self.start < self.end {
            (self.days.contains(weekday) && self.start <= t && t < self.end).then_some(day_number)
        } else if self.days.contains(weekday) && t >= self.start {
            Some(day_number)
        } else {
            let yesterday = (weekday + 6) % 7;
            (self.days.contains(yesterday) && t < self.end).then_some(day_number - 1)
        }
    }
}

fn clock(secs: u32) -> String {
    if secs % 60 == 0 {
        format!("{:02}:{:02}", secs / 3600, secs / 60 % 60)
    } else {
        format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
    }
}

impl fmt::Display for TimeWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}-{} {}",
            self.days,
            clock(self.start),
            clock(self.end),
            self.zone
        )
    }
}

/// One end of a relationship.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// Any address in the enclave.
    Enclave(EnclaveId),
    /// Only members of the host group.
    HostGroup(HostGroupId),
}

/// Expected traffic: from one enclave or host group to another, on some
/// services, in some windows, up to a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relationship {
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) from: Endpoint,
    pub(crate) to: Endpoint,
    pub(crate) services: Vec<Service>,
    pub(crate) windows: Vec<TimeWindow>,
    pub(crate) max_bytes_per_day: Option<u64>,
}

impl Relationship {
    /// The name, unique among relationships.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The free-text description from the rule file.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// Where connections may come from (the originator).
    pub fn from(&self) -> Endpoint {
        self.from
    }

    /// Where connections may go to (the responder).
    pub fn to(&self) -> Endpoint {
        self.to
    }

    /// The allowed services (never empty).
    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// The windows; empty means at any time.
    pub fn windows(&self) -> &[TimeWindow] {
        &self.windows
    }

    /// The most bytes (both directions) expected per day, if limited: per
    /// local day of the rule file's zone, or, with windows, per day a
    /// window opened (a night's window past midnight is one day).
    pub fn max_bytes_per_day(&self) -> Option<u64> {
        self.max_bytes_per_day
    }

    /// Whether a connection of IP protocol `ip_proto` to responder port
    /// `port` is one of the services.
    pub fn allows_service(&self, ip_proto: u8, port: u16) -> bool {
        self.services.iter().any(|s| s.matches(ip_proto, port))
    }

    /// Whether `ts` is inside one of the windows (always, when there are
    /// none).
    pub fn allows_time(&self, ts: Timestamp) -> bool {
        self.windows.is_empty() || self.windows.iter().any(|w| w.contains(ts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Capture time for a UTC date and time.
    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> Timestamp {
        let t = chrono::NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, mi, 0)
            .unwrap()
            .and_utc()
            .timestamp();
        Timestamp::from_micros(t, 0)
    }

    fn window(days: &str, start: &str, end: &str, tz: &str) -> TimeWindow {
        TimeWindow::new(
            Days::parse_item(days).unwrap(),
            parse_clock(start, false).unwrap(),
            parse_clock(end, true).unwrap(),
            tz.parse().unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn services_parse_and_print_back() {
        for s in [
            "tcp/3389",
            "udp/161",
            "tcp/8000-8100",
            "icmp",
            "any",
            "tcp",
            "icmp6",
        ] {
            assert_eq!(s.parse::<Service>().unwrap().to_string(), s);
        }
        let rdp: Service = "tcp/3389".parse().unwrap();
        assert!(rdp.matches(6, 3389));
        assert!(!rdp.matches(17, 3389));
        assert!(!rdp.matches(6, 3390));
        let icmp: Service = "icmp".parse().unwrap();
        assert!(icmp.matches(1, 0) && icmp.matches(58, 0) && !icmp.matches(6, 0));
    }

    #[test]
    fn bad_services_say_why() {
        let e = |s: &str| s.parse::<Service>().unwrap_err();
        assert!(e("tcp/70000").contains("bad port \"70000\""));
        assert!(e("tcp/0").contains("port 0"));
        assert!(e("tpc/22").contains("unknown protocol \"tpc\""));
        assert!(e("icmp/8").contains("icmp has no ports"));
        assert!(e("tcp/9000-8000").contains("backwards"));
        assert!(e("tcp/").contains("bad port"));
        assert!(e("tcp/+80").contains("bad port \"+80\""));
        assert!(e("tcp/80-+90").contains("bad port \"+90\""));
    }

    #[test]
    fn zones_parse_offsets_and_iana_names() {
        assert_eq!("+02:00".parse::<Zone>().unwrap().offset_at(0), 7200);
        assert_eq!("-05:30".parse::<Zone>().unwrap().offset_at(0), -19_800);
        assert_eq!("UTC+1".parse::<Zone>().unwrap().offset_at(0), 3600);
        assert_eq!("Asia/Kolkata".parse::<Zone>().unwrap().offset_at(0), 19_800);
        assert!("Mars/Olympus".parse::<Zone>().is_err());
        assert!("+15:00".parse::<Zone>().is_err());
        // Minutes are two digits; no second sign.
        assert_eq!("+0530".parse::<Zone>().unwrap().offset_at(0), 19_800);
        assert!("+5:3".parse::<Zone>().is_err());
        assert!("++5".parse::<Zone>().is_err());
        assert!("+5:+30".parse::<Zone>().is_err());
    }

    #[test]
    fn berlin_follows_eu_summer_time() {
        let berlin: Zone = "Europe/Berlin".parse().unwrap();
        let off = |ts: Timestamp| berlin.offset_at(ts.secs());
        // 2026: summer time from Sun 29 March 01:00 UTC to Sun 25 October 01:00 UTC.
        assert_eq!(off(utc(2026, 3, 29, 0, 59)), 3600);
        assert_eq!(off(utc(2026, 3, 29, 1, 0)), 7200);
        assert_eq!(off(utc(2026, 10, 25, 0, 59)), 7200);
        assert_eq!(off(utc(2026, 10, 25, 1, 0)), 3600);
    }

    #[test]
    fn new_york_follows_us_daylight_time_and_sydney_the_au_rule() {
        let ny: Zone = "America/New_York".parse().unwrap();
        // 2026: DST from Sun 8 March 02:00 EST (07:00 UTC) to Sun 1 November 02:00 EDT (06:00 UTC).
        assert_eq!(ny.offset_at(utc(2026, 3, 8, 6, 59).secs()), -5 * 3600);
        assert_eq!(ny.offset_at(utc(2026, 3, 8, 7, 0).secs()), -4 * 3600);
        assert_eq!(ny.offset_at(utc(2026, 11, 1, 5, 59).secs()), -4 * 3600);
        assert_eq!(ny.offset_at(utc(2026, 11, 1, 6, 0).secs()), -5 * 3600);
        let syd: Zone = "Australia/Sydney".parse().unwrap();
        // Southern hemisphere: daylight time in January, standard in July.
        assert_eq!(syd.offset_at(utc(2026, 1, 15, 0, 0).secs()), 11 * 3600);
        assert_eq!(syd.offset_at(utc(2026, 7, 15, 0, 0).secs()), 10 * 3600);
        let tokyo: Zone = "Asia/Tokyo".parse().unwrap();
        assert_eq!(tokyo.offset_at(utc(2026, 7, 15, 0, 0).secs()), 9 * 3600);
    }

    #[test]
    fn a_berlin_evening_window_moves_in_utc_with_summer_time() {
        let w = window("weekdays", "20:00", "22:00", "Europe/Berlin");
        // Monday 2 March 2026 (winter, UTC+1): 19:00-21:00 UTC.
        assert!(!w.contains(utc(2026, 3, 2, 18, 59)));
        assert!(w.contains(utc(2026, 3, 2, 19, 0)));
        assert!(w.contains(utc(2026, 3, 2, 20, 59)));
        assert!(!w.contains(utc(2026, 3, 2, 21, 0)));
        // Monday 6 July 2026 (summer, UTC+2): 18:00-20:00 UTC.
        assert!(w.contains(utc(2026, 7, 6, 18, 0)));
        assert!(!w.contains(utc(2026, 7, 6, 20, 0)));
        // Saturday 7 March 2026: closed.
        assert!(!w.contains(utc(2026, 3, 7, 19, 30)));
    }

    #[test]
    fn a_window_past_midnight_belongs_to_the_day_it_opens() {
        let w = window("fri", "22:00", "02:00", "UTC");
        // Friday 6 March 2026 23:00 and Saturday 01:59 are in; Friday 01:00 is not.
        assert!(w.contains(utc(2026, 3, 6, 23, 0)));
        assert!(w.contains(utc(2026, 3, 7, 1, 59)));
        assert!(!w.contains(utc(2026, 3, 7, 2, 0)));
        assert!(!w.contains(utc(2026, 3, 6, 1, 0)));
        assert!(!w.contains(utc(2026, 3, 7, 23, 0)));
    }

    #[test]
    fn a_sunday_night_window_wraps_into_monday() {
        let w = window("sun", "23:00", "01:00", "+01:00");
        // Sunday 8 March 2026 23:30 local = 22:30 UTC; Monday 00:30 local = Sunday 23:30 UTC.
        assert!(w.contains(utc(2026, 3, 8, 22, 30)));
        assert!(w.contains(utc(2026, 3, 8, 23, 30)));
        assert!(!w.contains(utc(2026, 3, 9, 0, 0)));
    }

    #[test]
    fn whole_days_and_timestamps_before_1970() {
        let w = window("thu", "00:00", "24:00", "UTC");
        assert!(
            w.contains(Timestamp::from_micros(0, 0)),
            "1970-01-01 was a Thursday"
        );
        assert!(
            !w.contains(Timestamp::from_micros(-1, 0)),
            "1969-12-31 was a Wednesday"
        );
        let wed = window("wed", "23:59", "24:00", "UTC");
        assert!(wed.contains(Timestamp::from_micros(-1, 0)));
    }

    #[test]
    fn windows_that_cannot_match_are_refused() {
        let z = Zone::UTC;
        assert!(TimeWindow::new(Days::none(), 0, 3600, z)
            .unwrap_err()
            .contains("no days"));
        assert!(TimeWindow::new(Days::DAILY, 3600, 3600, z)
            .unwrap_err()
            .contains("both 01:00"));
        assert!(TimeWindow::new(Days::DAILY, 0, 0, z)
            .unwrap_err()
            .contains("both 00:00"));
        assert!(TimeWindow::new(Days::DAILY, 0, 86_400, z).is_ok());
    }

    #[test]
    fn day_names_ranges_and_bad_days() {
        assert_eq!(Days::parse_item("mon-fri").unwrap(), Days::WEEKDAYS);
        assert_eq!(Days::parse_item("Saturday").unwrap().to_string(), "sat");
        assert_eq!(
            Days::parse_item("fri-mon").unwrap().to_string(),
            "mon,fri,sat,sun"
        );
        assert!(Days::parse_item("funday")
            .unwrap_err()
            .contains("unknown day \"funday\""));
        assert!(parse_clock("+8:05", false).is_err());
        assert!(parse_clock("8:+5", false).is_err());
        assert_eq!(parse_clock("8:05", false), Ok(8 * 3600 + 300));
        assert!(parse_clock("25:00", false).is_err());
        assert!(parse_clock("24:00", false).is_err());
        assert_eq!(parse_clock("24:00", true).unwrap(), 86_400);
        assert_eq!(parse_clock("8:30", false).unwrap(), 8 * 3600 + 1800);
        assert!(parse_clock("8.30", false).is_err());
    }
}
