//! Drift: what changed between two inventories — the periodic review of
//! every relationship across the trust boundaries.
//!
//! A relationship (same originator and responder side) has **appeared**
//! when only the new inventory has it, **vanished** when only the old one
//! has it, and **changed** when both have it and
//! - its set of services differs (a service added or no longer used), or
//! - it was active at hours of the week it never was before (hours no
//!   longer used are shown but do not count on their own: a shorter review
//!   period naturally covers fewer hours), or
//! - its volume per day changed by at least [`DriftSettings::volume_factor`]
//!   (up or down). Volumes are compared per day of each inventory's period
//!   so periods of different lengths compare fairly, and on the bytes both
//!   inventories know (the originators' only when one side is a baseline).

use super::{Inventory, Level, Row, Side};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// The default [`DriftSettings::volume_factor`]: doubled or halved.
pub const DEFAULT_VOLUME_FACTOR: f64 = 2.0;

/// Thresholds of a drift comparison.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct DriftSettings {
    /// A relationship's volume per day changed when new/old or old/new is at
    /// least this factor (> 1).
    pub volume_factor: f64,
}

impl Default for DriftSettings {
    fn default() -> Self {
        DriftSettings {
            volume_factor: DEFAULT_VOLUME_FACTOR,
        }
    }
}

/// What happened to one relationship.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Only in the new inventory.
    Appeared,
    /// Only in the old inventory.
    Vanished,
    /// In both, with different services, new hours or another volume.
    Changed,
}

impl ChangeKind {
    /// The name used in tables.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Appeared => "appeared",
            ChangeKind::Vanished => "vanished",
            ChangeKind::Changed => "changed",
        }
    }
}

/// One relationship that drifted.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DriftEntry {
    /// What happened.
    pub change: ChangeKind,
    /// The originators' side.
    pub orig: Side,
    /// The responders' side.
    pub resp: Side,
    /// Services only the new inventory has.
    pub services_added: BTreeSet<String>,
    /// Services only the old inventory has.
    pub services_removed: BTreeSet<String>,
    /// Hours of the week only the new inventory has.
    pub hours_added: BTreeSet<u8>,
    /// Hours of the week only the old inventory has.
    pub hours_removed: BTreeSet<u8>,
    /// Bytes per day in the old inventory (0 when it did not have the row).
    pub old_bytes_per_day: f64,
    /// Bytes per day in the new inventory (0 when it does not have the row).
    pub new_bytes_per_day: f64,
    /// Connections in the old and new inventory.
    pub connections: (u64, u64),
    /// The volume changed beyond the factor.
    pub volume_changed: bool,
    /// The new row's verdict (`allowed`, `partly`, `not allowed`,
    /// `unknown`), or the old one's for a vanished relationship.
    pub verdict: &'static str,
}

impl DriftEntry {
    /// What changed, in words, for tables.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        let list = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(" ");
        if !self.services_added.is_empty() {
            parts.push(format!("services +{}", list(&self.services_added)));
        }
        if !self.services_removed.is_empty() {
            parts.push(format!("services -{}", list(&self.services_removed)));
        }
        if self.change == ChangeKind::Changed {
            if !self.hours_added.is_empty() {
                parts.push(format!("new hours {}", hours_text(&self.hours_added)));
            }
            if self.volume_changed {
                parts.push(format!(
                    "volume {}/day -> {}/day",
                    human_bytes(self.old_bytes_per_day),
                    human_bytes(self.new_bytes_per_day)
                ));
            }
        }
        parts.join("; ")
    }
}

/// The result of comparing two inventories.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Drift {
    /// Always `flowmon-drift`.
    pub format: &'static str,
    /// The thresholds used.
    pub settings: DriftSettings,
    /// The level compared at.
    pub level: Level,
    /// The old inventory's period (first, last capture time) and source.
    pub old_period: (f64, f64, String),
    /// The new inventory's period and source.
    pub new_period: (f64, f64, String),
    /// Relationships present in both and unchanged.
    pub unchanged: usize,
    /// The relationships that drifted: appeared, vanished, changed, each
    /// ordered by originator then responder.
    pub entries: Vec<DriftEntry>,
}

impl Drift {
    /// Entries of one kind.
    pub fn of(&self, kind: ChangeKind) -> impl Iterator<Item = &DriftEntry> {
        self.entries.iter().filter(move |e| e.change == kind)
    }
}

/// Compares `old` with `new`. Inventories at different levels are both
/// compared at enclave level.
pub fn diff(old: &Inventory, new: &Inventory, settings: &DriftSettings) -> Drift {
    let level = if old.level == new.level {
        old.level
    } else {
        Level::Enclave
    };
    let (old, new) = (old.at_level(level), new.at_level(level));
    let index = |inv: &Inventory| -> BTreeMap<(Side, Side), Row> {
        inv.rows.iter().map(|r| (r.key(), r.clone())).collect()
    };
    let (a, b) = (index(&old), index(&new));
    let both_resp_known = old.rows.iter().all(|r| r.resp_bytes.is_some())
        && new.rows.iter().all(|r| r.resp_bytes.is_some());
    let volume = |r: &Row, inv: &Inventory| -> f64 {
        let bytes = if both_resp_known {
            r.total_bytes()
        } else {
            r.orig_bytes
        };
        bytes as f64 / inv.period_days()
    };
    let mut entries = Vec::new();
    let mut unchanged = 0;
    let keys: BTreeSet<&(Side, Side)> = a.keys().chain(b.keys()).collect();
    for key in keys {
        let (o, n) = (a.get(key), b.get(key));
        let empty = BTreeSet::new();
        let no_hours = BTreeSet::new();
        let services = |r: Option<&Row>| r.map(|r| &r.services).unwrap_or(&empty).clone();
        let hours = |r: Option<&Row>| r.map(|r| &r.hours).unwrap_or(&no_hours).clone();
        let (so, sn) = (services(o), services(n));
        let (ho, hn) = (hours(o), hours(n));
        let old_v = o.map_or(0.0, |r| volume(r, &old));
        let new_v = n.map_or(0.0, |r| volume(r, &new));
        let (lo, hi) = (old_v.min(new_v), old_v.max(new_v));
        let volume_changed = hi > 0.0 && (lo == 0.0 || hi / lo >= settings.volume_factor);
        let mut e = DriftEntry {
            change: ChangeKind::Changed,
            orig: key.0.clone(),
            resp: key.1.clone(),
            services_added: sn.difference(&so).cloned().collect(),
            services_removed: so.difference(&sn).cloned().collect(),
            hours_added: hn.difference(&ho).copied().collect(),
            hours_removed: ho.difference(&hn).copied().collect(),
            old_bytes_per_day: old_v,
            new_bytes_per_day: new_v,
            connections: (
                o.map_or(0, |r| r.connections),
                n.map_or(0, |r| r.connections),
            ),
            volume_changed,
            verdict: n.or(o).map_or("unknown", |r| r.verdict().as_str()),
        };
        match (o, n) {
            (None, Some(_)) => e.change = ChangeKind::Appeared,
            (Some(_), None) => e.change = ChangeKind::Vanished,
            _ => {
                let changed = !e.services_added.is_empty()
                    || !e.services_removed.is_empty()
                    || !e.hours_added.is_empty()
                    || volume_changed;
                if !changed {
                    unchanged += 1;
                    continue;
                }
            }
        }
        entries.push(e);
    }
    entries.sort_by(|x, y| (x.change, &x.orig, &x.resp).cmp(&(y.change, &y.orig, &y.resp)));
    Drift {
        format: "flowmon-drift",
        settings: *settings,
        level,
        old_period: (old.first_ts, old.last_ts, old.source.clone()),
        new_period: (new.first_ts, new.last_ts, new.source.clone()),
        unchanged,
        entries,
    }
}

/// Hours of the week as compact day/hour ranges: `mon 20-21, tue 03`.
pub fn hours_text(hours: &BTreeSet<u8>) -> String {
    const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let mut out: Vec<String> = Vec::new();
    let v: Vec<u8> = hours.iter().copied().collect();
    let mut i = 0;
    while i < v.len() {
        let day = v[i] / 24;
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 && v[j + 1] / 24 == day {
            j += 1;
        }
        let (a, b) = (v[i] % 24, v[j] % 24);
        let name = DAYS.get(day as usize).copied().unwrap_or("?");
        if a == b {
            out.push(format!("{name} {a:02}"));
        } else {
            out.push(format!("{name} {a:02}-{b:02}"));
        }
        i = j + 1;
    }
    out.join(", ")
}

/// Bytes for people: `512 B`, `1.5 kB`, `2.0 MB`, `3.1 GB` (powers of 1000).
pub fn human_bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{FORMAT, VERSION};

    fn row(o: &str, d: &str, services: &[&str], hours: &[u8], bytes: u64) -> Row {
        Row {
            orig: Side {
                enclave: o.into(),
                host_group: None,
            },
            resp: Side {
                enclave: d.into(),
                host_group: None,
            },
            services: services.iter().map(|s| s.to_string()).collect(),
            app_services: BTreeSet::new(),
            not_allowed_services: BTreeSet::new(),
            first_seen: 0.0,
            last_seen: 86_400.0,
            connections: 1,
            allowed_connections: Some(1),
            relationships: BTreeSet::new(),
            orig_bytes: bytes,
            resp_bytes: Some(0),
            hours: hours.iter().copied().collect(),
            vlans: BTreeSet::new(),
        }
    }

    fn inv(rows: Vec<Row>) -> Inventory {
        Inventory {
            format: FORMAT.into(),
            version: VERSION,
            source: "capture".into(),
            rules_file: None,
            level: Level::Enclave,
            first_ts: 0.0,
            last_ts: 86_400.0,
            connections: rows.len() as u64,
            internal_connections: 0,
            skipped: BTreeMap::new(),
            rows,
        }
    }

    #[test]
    fn appeared_vanished_and_each_kind_of_change() {
        let old = inv(vec![
            row("a", "b", &["tcp/22"], &[20], 1000),
            row("a", "c", &["udp/53"], &[1], 1000),
            row("a", "d", &["tcp/443"], &[1, 2], 1000),
            row("a", "e", &["tcp/443"], &[1], 1000),
            row("a", "f", &["tcp/443"], &[1], 1000),
        ]);
        let new = inv(vec![
            row("a", "b", &["tcp/22", "tcp/3389"], &[20], 1000),
            row("a", "d", &["tcp/443"], &[1, 3], 1000),
            row("a", "e", &["tcp/443"], &[1], 1999),
            row("a", "f", &["tcp/443"], &[1], 2000),
            row("x", "y", &["tcp/445"], &[1], 1),
        ]);
        let d = diff(&old, &new, &DriftSettings::default());
        let names = |k| {
            d.of(k)
                .map(|e| format!("{}>{}", e.orig, e.resp))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(ChangeKind::Appeared), ["x>y"]);
        assert_eq!(names(ChangeKind::Vanished), ["a>c"]);
        assert_eq!(names(ChangeKind::Changed), ["a>b", "a>d", "a>f"]);
        assert_eq!(d.unchanged, 1);
        let b = d.of(ChangeKind::Changed).next().unwrap();
        assert_eq!(b.summary(), "services +tcp/3389");
        let f = d.of(ChangeKind::Changed).nth(2).unwrap();
        assert!(f.volume_changed);
        assert_eq!(f.summary(), "volume 1.0 kB/day -> 2.0 kB/day");
    }

    #[test]
    fn hours_print_as_day_ranges() {
        let h: BTreeSet<u8> = [20, 21, 22, 27, 167].into_iter().collect();
        assert_eq!(hours_text(&h), "mon 20-22, tue 03, sun 23");
    }
}
