//! The relationship inventory: every observed relationship between enclaves
//! and host groups (originator side → responder side), with its services,
//! first and last seen, connections, bytes each way, the hours of the week
//! it was active, and whether a rule allows it.
//!
//! An [`InventoryBuilder`] is fed finished connection records (start and
//! interim records are skipped: the final record carries the totals). With
//! a rule set every record is located (VLAN-aware, as the enclave model is)
//! and checked against the relationships by the detector's own policy check,
//! so "allowed" means exactly what it means to the detector. Without rules,
//! the enclave and host-group columns a sensor wrote into the records are
//! used and "allowed" is unknown.
//!
//! Connections inside one enclave that touch no host group are not
//! relationships across a boundary: they are counted
//! ([`Inventory::internal_connections`]) but not listed, as the baseline
//! and the detector treat them. Records that cannot be placed are counted
//! under a named reason in [`Inventory::skipped`].
//!
//! [`drift`] compares two inventories (or baselines turned into
//! inventories with [`Inventory::from_baseline`]).

pub mod drift;

use crate::baseline::{hour_of_week, service_of, Baseline};
use crate::detector::policy;
use crate::Rules;
use flowlib::{ConnRecord, EndReason};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use thiserror::Error;

/// The format name written in every inventory file.
pub const FORMAT: &str = "flowmon-inventory";
/// The version this build reads and writes.
pub const VERSION: u32 = 1;

/// Why an inventory file could not be used.
#[derive(Debug, Error)]
pub enum InventoryError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not an inventory of this version (or is damaged).
    #[error("{path}: not a {FORMAT} version {VERSION} file: {message}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// How finely relationship ends are told apart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Enclave and, where the host is in one, host group.
    #[default]
    HostGroup,
    /// Enclave only.
    Enclave,
}

/// One end of a relationship: an enclave and perhaps a host group in it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Side {
    /// The enclave's name.
    pub enclave: String,
    /// The host group's name, if the host is in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_group: Option<String>,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host_group {
            Some(g) => write!(f, "{}/{}", self.enclave, g),
            None => f.write_str(&self.enclave),
        }
    }
}

/// One observed relationship (originator side → responder side).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The originators' side.
    pub orig: Side,
    /// The responders' side.
    pub resp: Side,
    /// Services used, as `proto/port` (`icmp` for ICMP).
    pub services: BTreeSet<String>,
    /// Application protocols, where the records named one (`service`).
    #[serde(default)]
    pub app_services: BTreeSet<String>,
    /// Services with at least one connection no relationship allowed.
    #[serde(default)]
    pub not_allowed_services: BTreeSet<String>,
    /// Capture time of the first connection's start (seconds).
    pub first_seen: f64,
    /// Capture time of the last packet of the last connection (seconds).
    pub last_seen: f64,
    /// Connections.
    pub connections: u64,
    /// Connections a relationship allowed (service, hosts and time); `None`
    /// when no rules were applied.
    pub allowed_connections: Option<u64>,
    /// Names of the relationships that allowed connections.
    #[serde(default)]
    pub relationships: BTreeSet<String>,
    /// Payload bytes sent by the originators.
    pub orig_bytes: u64,
    /// Payload bytes sent by the responders; `None` when not known (rows
    /// from a baseline).
    pub resp_bytes: Option<u64>,
    /// Hours of the week (0 = Monday 00:00 UTC .. 167) with a connection start.
    pub hours: BTreeSet<u8>,
    /// Outer VLAN ids the connections were seen on.
    #[serde(default)]
    pub vlans: BTreeSet<u16>,
}

/// Whether the rules allow a relationship.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every connection was allowed by a relationship.
    Allowed,
    /// Some connections were allowed, some not.
    Partly,
    /// No connection was allowed.
    NotAllowed,
    /// No rules were applied.
    Unknown,
}

impl Verdict {
    /// The name used in tables and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::Partly => "partly",
            Verdict::NotAllowed => "not allowed",
            Verdict::Unknown => "unknown",
        }
    }
}

impl Row {
    fn empty(orig: Side, resp: Side) -> Row {
        Row {
            orig,
            resp,
            services: BTreeSet::new(),
            app_services: BTreeSet::new(),
            not_allowed_services: BTreeSet::new(),
            first_seen: f64::INFINITY,
            last_seen: f64::NEG_INFINITY,
            connections: 0,
            allowed_connections: Some(0),
            relationships: BTreeSet::new(),
            orig_bytes: 0,
            resp_bytes: Some(0),
            hours: BTreeSet::new(),
            vlans: BTreeSet::new(),
        }
    }

    /// Whether the rules allow this relationship.
    pub fn verdict(&self) -> Verdict {
        match self.allowed_connections {
            None => Verdict::Unknown,
            Some(a) if a >= self.connections => Verdict::Allowed,
            Some(0) => Verdict::NotAllowed,
            Some(_) => Verdict::Partly,
        }
    }

    /// Bytes both ways (the originators' only when the responders' are not
    /// known).
    pub fn total_bytes(&self) -> u64 {
        self.orig_bytes.saturating_add(self.resp_bytes.unwrap_or(0))
    }

    /// The key `orig -> resp`.
    pub fn key(&self) -> (Side, Side) {
        (self.orig.clone(), self.resp.clone())
    }

    fn merge(&mut self, o: &Row) {
        self.services.extend(o.services.iter().cloned());
        self.app_services.extend(o.app_services.iter().cloned());
        self.not_allowed_services
            .extend(o.not_allowed_services.iter().cloned());
        self.first_seen = self.first_seen.min(o.first_seen);
        self.last_seen = self.last_seen.max(o.last_seen);
        self.connections += o.connections;
        self.allowed_connections = match (self.allowed_connections, o.allowed_connections) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
        self.relationships.extend(o.relationships.iter().cloned());
        self.orig_bytes = self.orig_bytes.saturating_add(o.orig_bytes);
        self.resp_bytes = match (self.resp_bytes, o.resp_bytes) {
            (Some(a), Some(b)) => Some(a.saturating_add(b)),
            _ => None,
        };
        self.hours.extend(o.hours.iter().copied());
        self.vlans.extend(o.vlans.iter().copied());
    }
}

/// An inventory: the relationships observed over a period.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`] when written by this build.
    pub version: u32,
    /// Where the rows came from: `capture`, `records` or `baseline`.
    pub source: String,
    /// The rule file that placed hosts and decided "allowed", if any.
    pub rules_file: Option<String>,
    /// How finely relationship ends are told apart.
    pub level: Level,
    /// Capture time of the first connection, inside one enclave too
    /// (seconds; 0 when there is none).
    pub first_ts: f64,
    /// Capture time of the last packet seen (seconds; 0 when empty).
    pub last_ts: f64,
    /// Connections listed in the rows.
    pub connections: u64,
    /// Connections inside one enclave touching no host group (not listed).
    pub internal_connections: u64,
    /// Records that could not be placed, by reason.
    pub skipped: BTreeMap<String, u64>,
    /// The relationships, ordered by originator then responder side.
    pub rows: Vec<Row>,
}

/// A period stored as first and last capture times (seconds), as
/// inventories and drifts keep it: (0, 0) is an input without connections.
pub fn period(first: f64, last: f64) -> Option<(f64, f64)> {
    (first != 0.0 || last != 0.0).then_some((first, last))
}

impl Inventory {
    /// Loads and checks an inventory file (JSON).
    pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| InventoryError::Io {
            path: p.clone(),
            source,
        })?;
        Inventory::from_json(&text).map_err(|message| InventoryError::Format { path: p, message })
    }

    /// Parses an inventory from JSON, checking its format and version.
    pub fn from_json(text: &str) -> Result<Inventory, String> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if v.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(format!("no \"format\": \"{FORMAT}\" field"));
        }
        let found = v.get("version").and_then(|x| x.as_u64()).unwrap_or(0);
        if found != u64::from(VERSION) {
            return Err(format!("version {found}"));
        }
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    /// The inventory as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("an inventory serialises")
    }

    /// The same relationships with host groups merged into their enclaves.
    pub fn by_enclave(&self) -> Inventory {
        let mut rows: BTreeMap<(Side, Side), Row> = BTreeMap::new();
        for r in &self.rows {
            let strip = |s: &Side| Side {
                enclave: s.enclave.clone(),
                host_group: None,
            };
            let (o, d) = (strip(&r.orig), strip(&r.resp));
            let mut part = r.clone();
            part.orig = o.clone();
            part.resp = d.clone();
            match rows.get_mut(&(o.clone(), d.clone())) {
                Some(row) => row.merge(&part),
                None => {
                    rows.insert((o, d), part);
                }
            }
        }
        // Traffic inside one enclave that only touched a host group stays
        // listed: it is a relationship of that enclave with itself.
        Inventory {
            level: Level::Enclave,
            rows: rows.into_values().collect(),
            ..self.clone()
        }
    }

    /// An inventory at `level` (rolled up if this one is finer).
    pub fn at_level(&self, level: Level) -> Inventory {
        match (self.level, level) {
            (Level::HostGroup, Level::Enclave) => self.by_enclave(),
            _ => self.clone(),
        }
    }

    /// The period the input covered (first connection to last packet,
    /// capture time in seconds); `None` for an input without connections.
    pub fn period(&self) -> Option<(f64, f64)> {
        period(self.first_ts, self.last_ts)
    }

    /// Length of the period in days (at least one hour), for volumes per day.
    pub fn period_days(&self) -> f64 {
        ((self.last_ts - self.first_ts) / 86_400.0).max(1.0 / 24.0)
    }

    /// Turns a learned baseline into an inventory: every host pair located
    /// with `rules` (VLAN-aware) and summed per relationship. Baselines keep
    /// no per-connection times or responder bytes, so rows span the whole
    /// learning period, `resp_bytes` and "allowed" are unknown.
    pub fn from_baseline(b: &Baseline, rules: &Rules) -> Inventory {
        let mut rows: BTreeMap<(Side, Side), Row> = BTreeMap::new();
        let mut internal = 0;
        for p in b.pairs.values() {
            let (o, d) = (rules.locate(p.orig, p.vlan), rules.locate(p.resp, p.vlan));
            if o.enclave == d.enclave && o.host_group.is_none() && d.host_group.is_none() {
                internal += p.connections;
                continue;
            }
            let key = (side(rules, o), side(rules, d));
            let row = rows
                .entry(key.clone())
                .or_insert_with(|| Row::empty(key.0, key.1));
            row.allowed_connections = None;
            row.resp_bytes = None;
            row.services.extend(p.services.iter().cloned());
            row.hours.extend(p.hours.iter().copied());
            row.connections += p.connections;
            row.orig_bytes = row.orig_bytes.saturating_add(p.orig_bytes.sum);
            row.first_seen = b.first_ts;
            row.last_seen = b.last_ts;
            row.vlans.extend(p.vlan);
        }
        Inventory {
            format: FORMAT.to_owned(),
            version: VERSION,
            source: "baseline".to_owned(),
            rules_file: Some(rules.file_name().to_owned()),
            level: Level::HostGroup,
            first_ts: b.first_ts,
            last_ts: b.last_ts,
            connections: rows.values().map(|r| r.connections).sum(),
            internal_connections: internal,
            skipped: BTreeMap::new(),
            rows: rows.into_values().collect(),
        }
    }
}

fn side(rules: &Rules, l: crate::Location) -> Side {
    Side {
        enclave: rules.enclave(l.enclave).name().to_owned(),
        host_group: l.host_group.map(|g| rules.host_group(g).name().to_owned()),
    }
}

/// Reason a record was skipped: the rules were not given and the record
/// carries no enclave columns.
pub const SKIP_NO_ENCLAVE_COLUMNS: &str = "no_enclave_columns";

/// Builds an inventory from connection records.
pub struct InventoryBuilder {
    rules: Option<Rules>,
    source: String,
    rows: BTreeMap<(Side, Side), Row>,
    internal: u64,
    skipped: BTreeMap<String, u64>,
    first: f64,
    last: f64,
}

impl InventoryBuilder {
    /// A builder placing hosts with `rules` (or, without, by the records'
    /// enclave columns); `source` names the input (`capture`, `records`).
    pub fn new(rules: Option<Rules>, source: &str) -> InventoryBuilder {
        InventoryBuilder {
            rules,
            source: source.to_owned(),
            rows: BTreeMap::new(),
            internal: 0,
            skipped: BTreeMap::new(),
            first: f64::INFINITY,
            last: f64::NEG_INFINITY,
        }
    }

    /// Adds one record (start and interim records are skipped).
    pub fn observe(&mut self, r: &ConnRecord) {
        if matches!(r.end_reason, EndReason::Start | EndReason::Active) {
            return;
        }
        // The period is the whole input's, inside one enclave too: volumes
        // per day divide by it, so a week and a day compare fairly.
        let start = r.ts.as_secs_f64();
        let end = start + r.duration.map_or(0.0, |d| d.as_secs_f64());
        self.first = self.first.min(start);
        self.last = self.last.max(end);
        let (o, d, allowed, relationship) = match &self.rules {
            Some(rules) => {
                let (lo, ld) = (
                    rules.locate(r.orig_h, r.vlan),
                    rules.locate(r.resp_h, r.vlan),
                );
                let v = policy::check(rules, r, lo, ld);
                if !v.scored {
                    self.internal += 1;
                    return;
                }
                let rel = v
                    .relationship
                    .filter(|_| v.allowed)
                    .map(|i| rules.relationships()[i].name().to_owned());
                (side(rules, lo), side(rules, ld), Some(v.allowed), rel)
            }
            None => {
                let (Some(oe), Some(de)) = (&r.orig_enclave, &r.resp_enclave) else {
                    *self
                        .skipped
                        .entry(SKIP_NO_ENCLAVE_COLUMNS.to_owned())
                        .or_default() += 1;
                    return;
                };
                let o = Side {
                    enclave: oe.clone(),
                    host_group: r.orig_host_group.clone(),
                };
                let d = Side {
                    enclave: de.clone(),
                    host_group: r.resp_host_group.clone(),
                };
                if o.enclave == d.enclave && o.host_group.is_none() && d.host_group.is_none() {
                    self.internal += 1;
                    return;
                }
                (o, d, None, None)
            }
        };
        let row = self
            .rows
            .entry((o.clone(), d.clone()))
            .or_insert_with(|| Row::empty(o, d));
        let service = service_of(r);
        if allowed == Some(false) {
            row.not_allowed_services.insert(service.clone());
        }
        row.services.insert(service);
        if let Some(s) = &r.service {
            row.app_services.insert(s.clone());
        }
        row.first_seen = row.first_seen.min(start);
        row.last_seen = row.last_seen.max(end);
        row.connections += 1;
        row.allowed_connections = match (row.allowed_connections, allowed) {
            (Some(n), Some(a)) => Some(n + u64::from(a)),
            _ => None,
        };
        row.relationships.extend(relationship);
        row.orig_bytes = row.orig_bytes.saturating_add(r.orig_bytes.unwrap_or(0));
        row.resp_bytes = row
            .resp_bytes
            .map(|b| b.saturating_add(r.resp_bytes.unwrap_or(0)));
        row.hours.insert(hour_of_week(r.ts));
        row.vlans.extend(r.vlan);
    }

    /// The inventory of everything observed.
    pub fn finish(self) -> Inventory {
        let empty = self.first > self.last;
        Inventory {
            format: FORMAT.to_owned(),
            version: VERSION,
            source: self.source,
            rules_file: self.rules.as_ref().map(|r| r.file_name().to_owned()),
            level: Level::HostGroup,
            first_ts: if empty { 0.0 } else { self.first },
            last_ts: if empty { 0.0 } else { self.last },
            connections: self.rows.values().map(|r| r.connections).sum(),
            internal_connections: self.internal,
            skipped: self.skipped,
            rows: self.rows.into_values().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = r#"
        [[enclaves]]
        name = "provider"
        kind = "provider"
        networks = ["10.10.0.0/16"]

        [[enclaves]]
        name = "customer-a"
        kind = "customer"
        networks = ["10.20.0.0/16"]

        [[host_groups]]
        name = "jump-hosts"
        enclave = "provider"
        hosts = ["10.10.1.10"]

        [[relationships]]
        name = "maintenance"
        from = "jump-hosts"
        to = "customer-a"
        services = ["tcp/3389"]
        windows = [{ days = "daily", start = "20:00", end = "22:00" }]
    "#;

    fn rec(orig: &str, resp: &str, port: u16, ts: i64, bytes: (u64, u64)) -> ConnRecord {
        crate::test_records::tcp(orig, resp, port, ts, bytes)
    }

    // 2026-03-02 (a Monday) 00:00 UTC.
    const MONDAY: i64 = 1_772_409_600;

    #[test]
    fn the_period_is_the_whole_inputs_not_only_the_boundary_traffics() {
        let rules = Rules::from_str(RULES, "t.toml").unwrap();
        let mut b = InventoryBuilder::new(Some(rules), "capture");
        // A week of traffic inside customer-a, one boundary connection on
        // its first morning: volumes per day divide by the week.
        for day in 0..7 {
            b.observe(&rec(
                "10.20.0.6",
                "10.20.0.5",
                445,
                MONDAY + day * 86_400,
                (1, 2),
            ));
        }
        b.observe(&rec("10.10.5.50", "10.20.0.5", 445, MONDAY + 3600, (1, 2)));
        let inv = b.finish();
        assert_eq!(
            inv.period(),
            Some((MONDAY as f64, (MONDAY + 6 * 86_400 + 10) as f64))
        );
        assert!(
            (inv.period_days() - 6.0).abs() < 0.01,
            "{}",
            inv.period_days()
        );
        // Nothing but traffic inside one enclave: still its real period.
        let rules = Rules::from_str(RULES, "t.toml").unwrap();
        let mut b = InventoryBuilder::new(Some(rules), "capture");
        b.observe(&rec("10.20.0.6", "10.20.0.5", 445, MONDAY, (1, 2)));
        let inv = b.finish();
        assert_eq!(
            (inv.connections, inv.period()),
            (0, Some((MONDAY as f64, (MONDAY + 10) as f64)))
        );
        // And nothing at all: no period.
        let inv = InventoryBuilder::new(None, "empty").finish();
        assert_eq!(inv.period(), None);
    }

    #[test]
    fn rows_sum_connections_and_say_whether_a_rule_allows_them() {
        let rules = Rules::from_str(RULES, "t.toml").unwrap();
        let mut b = InventoryBuilder::new(Some(rules), "capture");
        // Inside the window, outside it, and an unapproved source.
        b.observe(&rec(
            "10.10.1.10",
            "10.20.0.5",
            3389,
            MONDAY + 20 * 3600,
            (100, 2000),
        ));
        b.observe(&rec(
            "10.10.1.10",
            "10.20.0.5",
            3389,
            MONDAY + 3 * 3600,
            (10, 20),
        ));
        b.observe(&rec("10.10.5.50", "10.20.0.5", 445, MONDAY + 3600, (1, 2)));
        // Inside customer-a, no host group: not a relationship.
        b.observe(&rec("10.20.0.6", "10.20.0.5", 445, MONDAY, (1, 2)));
        let inv = b.finish();
        assert_eq!(inv.internal_connections, 1);
        assert_eq!(inv.connections, 3);
        assert_eq!(inv.rows.len(), 2);
        let jump = &inv.rows[1];
        assert_eq!(jump.orig.to_string(), "provider/jump-hosts");
        assert_eq!(jump.resp.to_string(), "customer-a");
        assert_eq!(jump.connections, 2);
        assert_eq!(jump.allowed_connections, Some(1));
        assert_eq!(jump.verdict(), Verdict::Partly);
        assert_eq!((jump.orig_bytes, jump.resp_bytes), (110, Some(2020)));
        assert_eq!(jump.hours, BTreeSet::from([3, 20]));
        assert_eq!(jump.relationships, BTreeSet::from(["maintenance".into()]));
        assert_eq!(jump.first_seen, (MONDAY + 3 * 3600) as f64);
        assert_eq!(jump.last_seen, (MONDAY + 20 * 3600 + 10) as f64);
        let other = &inv.rows[0];
        assert_eq!(other.orig.to_string(), "provider");
        assert_eq!(other.verdict(), Verdict::NotAllowed);
        assert_eq!(
            other.not_allowed_services,
            BTreeSet::from(["tcp/445".into()])
        );
        let by_enclave = inv.by_enclave();
        assert_eq!(by_enclave.rows.len(), 1);
        assert_eq!(by_enclave.rows[0].connections, 3);
        assert_eq!(by_enclave.rows[0].allowed_connections, Some(1));
        let back = Inventory::from_json(&inv.to_json()).unwrap();
        assert_eq!(back, inv);
    }

    #[test]
    fn without_rules_the_enclave_columns_place_records_and_unplaceable_ones_are_counted() {
        let mut b = InventoryBuilder::new(None, "records");
        let mut r = rec("10.10.1.10", "10.20.0.5", 3389, MONDAY, (1, 1));
        b.observe(&r);
        r.orig_enclave = Some("provider".into());
        r.resp_enclave = Some("customer-a".into());
        b.observe(&r);
        let inv = b.finish();
        assert_eq!(inv.skipped.get(SKIP_NO_ENCLAVE_COLUMNS), Some(&1));
        assert_eq!(inv.rows.len(), 1);
        assert_eq!(inv.rows[0].verdict(), Verdict::Unknown);
    }

    #[test]
    fn files_of_another_format_are_refused() {
        assert!(Inventory::from_json(r#"{"format":"flowmon-baseline","version":1}"#).is_err());
        assert!(
            Inventory::from_json(r#"{"format":"flowmon-inventory","version":9}"#)
                .unwrap_err()
                .contains("version 9")
        );
    }
}
