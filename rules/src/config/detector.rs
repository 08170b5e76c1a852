//! The `[detector]` table: weights per reason, score thresholds, the
//! windows and thresholds of the behavioural reasons, and what to ignore.
//!
//! Every key is optional and validated now; what the detector does with
//! them is the detector's business (this crate's later `detector` module).

use std::fmt;
use std::time::Duration;

use ipnet::IpNet;

use super::reader::{as_str, items, join, Diag, Table};
use super::{parse_bytes, parse_duration, parse_network, Names};
use crate::enclave::EnclaveId;
use crate::hostgroup::HostGroupId;
use crate::relationship::{Endpoint, Service};

/// Why a connection scores: the reasons the detector can give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// No relationship allows this pair, service or direction.
    NoRelationship,
    /// Traffic between two different customers' enclaves.
    CrossCustomer,
    /// An allowed relationship used outside its time windows.
    OutsideWindow,
    /// An allowed relationship used from a host outside its host group.
    UnapprovedHost,
    /// An allowed relationship above its daily volume ceiling.
    OverVolume,
    /// An administrative protocol (RDP, SMB, WinRM, SSH, RPC/WMI, VNC)
    /// across the boundary.
    AdminProtocol,
    /// A pair of hosts never seen in the baseline.
    NewPair,
    /// A service never seen in the baseline for a known pair.
    NewService,
    /// An hour of the week never seen in the baseline for a provider session.
    NewHour,
    /// One source reaching many hosts or ports in a short window.
    FanOut,
    /// Regular timing and sizes between a pair.
    Beacon,
    /// Uploads out of line with the baseline.
    Volume,
    /// Staging: pulling large volumes internally, then a comparable upload.
    Staging,
    /// A very long session across the boundary.
    LongSession,
}

impl Reason {
    /// Every reason, in the order weights are listed.
    pub const ALL: [Reason; 14] = [
        Reason::NoRelationship,
        Reason::CrossCustomer,
        Reason::OutsideWindow,
        Reason::UnapprovedHost,
        Reason::OverVolume,
        Reason::AdminProtocol,
        Reason::NewPair,
        Reason::NewService,
        Reason::NewHour,
        Reason::FanOut,
        Reason::Beacon,
        Reason::Volume,
        Reason::Staging,
        Reason::LongSession,
    ];

    /// The name used in rule files and alerts.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NoRelationship => "no_relationship",
            Reason::CrossCustomer => "cross_customer",
            Reason::OutsideWindow => "outside_window",
            Reason::UnapprovedHost => "unapproved_host",
            Reason::OverVolume => "over_volume",
            Reason::AdminProtocol => "admin_protocol",
            Reason::NewPair => "new_pair",
            Reason::NewService => "new_service",
            Reason::NewHour => "new_hour",
            Reason::FanOut => "fan_out",
            Reason::Beacon => "beacon",
            Reason::Volume => "volume",
            Reason::Staging => "staging",
            Reason::LongSession => "long_session",
        }
    }

    /// Parses a rule-file name.
    pub fn parse(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The weight a reason has unless the rule file says otherwise.
    pub fn default_weight(self) -> u8 {
        match self {
            Reason::NoRelationship => 60,
            Reason::CrossCustomer => 90,
            Reason::OutsideWindow => 50,
            Reason::UnapprovedHost => 60,
            Reason::OverVolume => 40,
            Reason::AdminProtocol => 20,
            Reason::NewPair => 15,
            Reason::NewService => 15,
            Reason::NewHour => 10,
            Reason::FanOut => 50,
            Reason::Beacon => 50,
            Reason::Volume => 40,
            Reason::Staging => 50,
            Reason::LongSession => 20,
        }
    }

    fn list() -> String {
        Reason::ALL
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Points (0-100) per reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weights([u8; 14]);

impl Weights {
    /// The weight of `reason`.
    pub fn get(&self, reason: Reason) -> u8 {
        self.0[reason as usize]
    }

    /// Sets the weight of `reason` (clamped to 100).
    pub fn set(&mut self, reason: Reason, weight: u8) {
        self.0[reason as usize] = weight.min(100);
    }
}

impl Default for Weights {
    fn default() -> Self {
        let mut w = Weights([0; 14]);
        for r in Reason::ALL {
            w.set(r, r.default_weight());
        }
        w
    }
}

/// Score thresholds for severities; below `medium` is low.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Severity {
    /// Lowest score that is medium.
    pub medium: u8,
    /// Lowest score that is high.
    pub high: u8,
    /// Lowest score that is critical.
    pub critical: u8,
}

impl Default for Severity {
    fn default() -> Self {
        Severity {
            medium: 40,
            high: 70,
            critical: 90,
        }
    }
}

/// Most hosts, and most ports on one host, a source's fan-out state holds
/// in a window: `min_hosts` and `min_ports` above it could never be met.
pub const MAX_FAN_OUT_COUNT: u32 = 4096;

/// Most connections a pair's beacon history holds: `min_connections`
/// above it could never be met.
pub const MAX_BEACON_CONNECTIONS: u32 = 1024;

/// Longest beacon window: a pair's history holds connection starts as
/// 32-bit millisecond offsets (2³² ms, about 49.7 days).
pub const MAX_BEACON_WINDOW: Duration = Duration::from_millis(u32::MAX as u64);

const FAN_OUT_CAP: &str = ": a source's fan-out state holds at most 4096 hosts and 4096 ports";
const BEACON_CAP: &str = ": a pair's beacon history holds at most 1024 connections";

/// Fan-out (scans, lateral movement): one source, many targets, short time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FanOut {
    /// How far back to count.
    pub window: Duration,
    /// Distinct destination hosts that make a fan-out.
    pub min_hosts: u32,
    /// Distinct destination ports on one host that make a fan-out.
    pub min_ports: u32,
}

impl Default for FanOut {
    fn default() -> Self {
        FanOut {
            window: Duration::from_secs(300),
            min_hosts: 20,
            min_ports: 25,
        }
    }
}

/// Beaconing, scored like RITA's beacon model.
///
/// A beacon is found once its pair's history holds `min_connections`
/// check-ins, so the slowest period found is about `window /
/// (min_connections - 1)`: with the defaults (5 days, 20) a check-in
/// every 6 hours and more often. A day's window found nothing slower than
/// one every 72 minutes. Fewer check-ins would find slow beacons sooner
/// but let irregular traffic look regular by chance more often.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Beacon {
    /// How much history one pair's score looks at: check-ins that started
    /// longer than this before the pair's latest are forgotten. At most
    /// [`MAX_BEACON_WINDOW`] (about 49 days).
    pub window: Duration,
    /// Distinct check-ins (connections started at least a second apart)
    /// needed before a pair is scored: enough intervals to judge their
    /// regularity (fewer let irregular traffic look regular by chance).
    pub min_connections: u32,
    /// Beacon score (0-1) at or above which the reason fires.
    pub min_score: f64,
}

impl Default for Beacon {
    fn default() -> Self {
        Beacon {
            window: Duration::from_secs(5 * 24 * 3600),
            min_connections: 20,
            min_score: 0.8,
        }
    }
}

/// Uploads out of line with the baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Volume {
    /// Multiple of the baseline that is out of line.
    pub factor: f64,
    /// Bytes below which volume never counts.
    pub min_bytes: u64,
}

impl Default for Volume {
    fn default() -> Self {
        Volume {
            factor: 10.0,
            min_bytes: 10_000_000,
        }
    }
}

/// Staging: a host pulls from internal hosts, then uploads a comparable amount.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Staging {
    /// The longest gap between pulling and uploading.
    pub window: Duration,
    /// Bytes pulled within the window that make a staged collection,
    /// without a baseline (or with one learned before baselines kept the
    /// hosts' pulls). With one, a host's threshold is out of line with what
    /// it pulled while learning: `[detector.volume]` factor times the most
    /// it pulled in one window, at least that section's min_bytes.
    pub min_bytes: u64,
    /// What the host then uploads out of its enclave within the window (in
    /// one connection or several), as a fraction of what it pulled, that
    /// counts as comparable.
    pub upload_ratio: f64,
    /// How long a staged collection (the threshold pulled within one
    /// window) stays staged: an upload up to this long after the pulls
    /// counts, not only one within the window (collections are often left
    /// for hours, or overnight, before they leave). At least the window.
    pub hold: Duration,
}

impl Default for Staging {
    fn default() -> Self {
        Staging {
            window: Duration::from_secs(2 * 3600),
            min_bytes: 100_000_000,
            upload_ratio: 0.5,
            hold: Duration::from_secs(24 * 3600),
        }
    }
}

/// Very long sessions across the boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongSession {
    /// Duration at or above which a session is very long.
    pub min_duration: Duration,
}

impl Default for LongSession {
    fn default() -> Self {
        LongSession {
            min_duration: Duration::from_secs(8 * 3600),
        }
    }
}

/// What the detector never scores.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ignore {
    /// Connections with either end in these networks.
    pub hosts: Vec<IpNet>,
    /// Connections with either end in these host groups.
    pub host_groups: Vec<HostGroupId>,
    /// Connections with either end in these enclaves.
    pub enclaves: Vec<EnclaveId>,
    /// Connections on these services.
    pub services: Vec<Service>,
    /// Reasons never given.
    pub reasons: Vec<Reason>,
}

/// The `[detector]` table, with defaults for everything not given.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorSettings {
    /// Lowest score (0-100) that raises an alert.
    pub alert_threshold: u8,
    /// One alert per (source, destination, reason) per this window.
    pub dedup_window: Duration,
    /// Points per reason.
    pub weights: Weights,
    /// Score thresholds per severity.
    pub severity: Severity,
    /// The services counted as administrative protocols.
    pub admin_services: Vec<Service>,
    /// Fan-out settings.
    pub fan_out: FanOut,
    /// Beacon settings.
    pub beacon: Beacon,
    /// Volume settings.
    pub volume: Volume,
    /// Staging settings.
    pub staging: Staging,
    /// Long-session settings.
    pub long_session: LongSession,
    /// What to ignore.
    pub ignore: Ignore,
}

/// RDP, SMB, NetBIOS session, WinRM, SSH, Telnet, RPC endpoint mapper (for
/// WMI/DCOM), VNC.
pub const DEFAULT_ADMIN_SERVICES: [&str; 9] = [
    "tcp/3389",
    "udp/3389",
    "tcp/445",
    "tcp/139",
    "tcp/5985-5986",
    "tcp/22",
    "tcp/23",
    "tcp/135",
    "tcp/5900-5903",
];

impl Default for DetectorSettings {
    fn default() -> Self {
        DetectorSettings {
            alert_threshold: 40,
            dedup_window: Duration::from_secs(3600),
            weights: Weights::default(),
            severity: Severity::default(),
            admin_services: DEFAULT_ADMIN_SERVICES
                .iter()
                .filter_map(|s| s.parse().ok())
                .collect(),
            fan_out: FanOut::default(),
            beacon: Beacon::default(),
            volume: Volume::default(),
            staging: Staging::default(),
            long_session: LongSession::default(),
            ignore: Ignore::default(),
        }
    }
}

/// Reads a score (0-100).
fn score(d: &mut Diag<'_>, t: &Table<'_, '_>, key: &str) -> Option<u8> {
    let v = t.uint(d, key)?;
    if *v.get_ref() > 100 {
        d.error(
            &v.span(),
            &join(&t.path, key),
            format!("{} is out of range (0-100)", v.get_ref()),
        );
        return None;
    }
    Some(*v.get_ref() as u8)
}

/// Reads a positive count.
fn count(d: &mut Diag<'_>, t: &Table<'_, '_>, key: &str, max: u32, why: &str) -> Option<u32> {
    let v = t.uint(d, key)?;
    match u32::try_from(*v.get_ref()) {
        Ok(n) if n > 0 && n <= max => Some(n),
        _ => {
            d.error(
                &v.span(),
                &join(&t.path, key),
                format!("{} is out of range (1-{max}){why}", v.get_ref()),
            );
            None
        }
    }
}

/// Reads a duration string such as `"5m"`.
fn duration(d: &mut Diag<'_>, t: &Table<'_, '_>, key: &str) -> Option<Duration> {
    let s = t.str(d, key, false)?;
    match parse_duration(s.get_ref()) {
        Ok(v) => Some(v),
        Err(m) => {
            d.error(&s.span(), &join(&t.path, key), m);
            None
        }
    }
}

/// Reads a byte count (integer or `"10 MB"`).
fn bytes(d: &mut Diag<'_>, t: &Table<'_, '_>, key: &str) -> Option<u64> {
    let v = t.get(key)?;
    match parse_bytes(d, v, &join(&t.path, key)) {
        Some(0) => {
            d.error(&v.span(), &join(&t.path, key), "must be more than 0 bytes");
            None
        }
        other => other,
    }
}

/// Reads a positive number, at most `max`.
fn positive(d: &mut Diag<'_>, t: &Table<'_, '_>, key: &str, max: Option<f64>) -> Option<f64> {
    let v = t.number(d, key)?;
    let n = *v.get_ref();
    if n <= 0.0 || max.is_some_and(|m| n > m) {
        let range = match max {
            Some(m) => format!("more than 0, at most {m}"),
            None => "more than 0".to_string(),
        };
        d.error(
            &v.span(),
            &join(&t.path, key),
            format!("{n} is out of range ({range})"),
        );
        return None;
    }
    Some(n)
}

/// Reads a list of service strings.
pub(crate) fn services(
    d: &mut Diag<'_>,
    t: &Table<'_, '_>,
    key: &str,
    required: bool,
) -> Option<Vec<Service>> {
    let arr = t.array(d, key, required)?;
    let path = join(&t.path, key);
    let mut out = Vec::new();
    let mut ok = true;
    for (i, v) in items(arr).iter().enumerate() {
        let field = format!("{path}[{i}]");
        let Some(s) = as_str(d, v, &field) else {
            ok = false;
            continue;
        };
        match s.get_ref().parse::<Service>() {
            Ok(svc) => out.push(svc),
            Err(m) => {
                d.error(&s.span(), &field, m);
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// Reads `[detector]`.
pub(crate) fn read(d: &mut Diag<'_>, t: &Table<'_, '_>, names: &Names) -> DetectorSettings {
    let mut s = DetectorSettings::default();
    t.check_keys(
        d,
        &[
            "alert_threshold",
            "dedup_window",
            "weights",
            "severity",
            "admin_services",
            "fan_out",
            "beacon",
            "volume",
            "staging",
            "long_session",
            "ignore",
        ],
    );
    if let Some(v) = score(d, t, "alert_threshold") {
        s.alert_threshold = v;
    }
    if let Some(v) = duration(d, t, "dedup_window") {
        s.dedup_window = v;
    }
    if let Some(v) = services(d, t, "admin_services", false) {
        s.admin_services = v;
    }

    let path = join(&t.path, "weights");
    if let Some(w) = t.sub_table(d, "weights", &path) {
        for (k, _) in w.table.iter() {
            let key: &str = k.get_ref();
            match Reason::parse(key) {
                Some(r) => {
                    if let Some(v) = score(d, &w, key) {
                        s.weights.set(r, v);
                    }
                }
                None => d.error(
                    &k.span(),
                    &join(&path, key),
                    format!(
                        "unknown reason `{key}` (expected one of {})",
                        Reason::list()
                    ),
                ),
            }
        }
    }

    let path = join(&t.path, "severity");
    if let Some(sv) = t.sub_table(d, "severity", &path) {
        sv.check_keys(d, &["medium", "high", "critical"]);
        let medium = score(d, &sv, "medium");
        let high = score(d, &sv, "high");
        let critical = score(d, &sv, "critical");
        let new = Severity {
            medium: medium.unwrap_or(s.severity.medium),
            high: high.unwrap_or(s.severity.high),
            critical: critical.unwrap_or(s.severity.critical),
        };
        if new.medium <= new.high && new.high <= new.critical {
            s.severity = new;
        } else {
            d.error(
                &sv.span,
                &path,
                format!(
                    "thresholds must rise: medium ({}) <= high ({}) <= critical ({})",
                    new.medium, new.high, new.critical
                ),
            );
        }
    }

    let path = join(&t.path, "fan_out");
    if let Some(f) = t.sub_table(d, "fan_out", &path) {
        f.check_keys(d, &["window", "min_hosts", "min_ports"]);
        if let Some(v) = duration(d, &f, "window") {
            s.fan_out.window = v;
        }
        if let Some(v) = count(d, &f, "min_hosts", MAX_FAN_OUT_COUNT, FAN_OUT_CAP) {
            s.fan_out.min_hosts = v;
        }
        if let Some(v) = count(d, &f, "min_ports", MAX_FAN_OUT_COUNT, FAN_OUT_CAP) {
            s.fan_out.min_ports = v;
        }
    }

    let path = join(&t.path, "beacon");
    if let Some(b) = t.sub_table(d, "beacon", &path) {
        b.check_keys(d, &["window", "min_connections", "min_score"]);
        if let Some(v) = duration(d, &b, "window") {
            if v <= MAX_BEACON_WINDOW {
                s.beacon.window = v;
            } else if let Some(w) = b.str(d, "window", false) {
                d.error(
                    &w.span(),
                    &join(&b.path, "window"),
                    format!(
                        "\"{}\" is too long (at most 49d, about 2^32 ms: a pair's beacon history holds its connections' starts as 32-bit millisecond offsets)",
                        w.get_ref()
                    ),
                );
            }
        }
        if let Some(v) = count(d, &b, "min_connections", MAX_BEACON_CONNECTIONS, BEACON_CAP) {
            s.beacon.min_connections = v;
        }
        if let Some(v) = positive(d, &b, "min_score", Some(1.0)) {
            s.beacon.min_score = v;
        }
    }

    let path = join(&t.path, "volume");
    if let Some(v) = t.sub_table(d, "volume", &path) {
        v.check_keys(d, &["factor", "min_bytes"]);
        if let Some(x) = positive(d, &v, "factor", None) {
            s.volume.factor = x;
        }
        if let Some(x) = bytes(d, &v, "min_bytes") {
            s.volume.min_bytes = x;
        }
    }

    let path = join(&t.path, "staging");
    if let Some(v) = t.sub_table(d, "staging", &path) {
        v.check_keys(d, &["window", "min_bytes", "upload_ratio", "hold"]);
        if let Some(x) = duration(d, &v, "window") {
            s.staging.window = x;
        }
        if let Some(x) = bytes(d, &v, "min_bytes") {
            s.staging.min_bytes = x;
        }
        if let Some(x) = positive(d, &v, "upload_ratio", None) {
            s.staging.upload_ratio = x;
        }
        if let Some(x) = duration(d, &v, "hold") {
            s.staging.hold = x;
        }
    }

    let path = join(&t.path, "long_session");
    if let Some(v) = t.sub_table(d, "long_session", &path) {
        v.check_keys(d, &["min_duration"]);
        if let Some(x) = duration(d, &v, "min_duration") {
            s.long_session.min_duration = x;
        }
    }

    let path = join(&t.path, "ignore");
    if let Some(ig) = t.sub_table(d, "ignore", &path) {
        ig.check_keys(
            d,
            &["hosts", "host_groups", "enclaves", "services", "reasons"],
        );
        if let Some(arr) = ig.array(d, "hosts", false) {
            for (i, v) in items(arr).iter().enumerate() {
                let field = format!("{path}.hosts[{i}]");
                if let Some(sv) = as_str(d, v, &field) {
                    match parse_network(sv.get_ref()) {
                        Ok(n) => s.ignore.hosts.push(n),
                        Err(m) => d.error(&sv.span(), &field, m),
                    }
                }
            }
        }
        for (key, want_group) in [("host_groups", true), ("enclaves", false)] {
            let Some(arr) = ig.array(d, key, false) else {
                continue;
            };
            for (i, v) in items(arr).iter().enumerate() {
                let field = format!("{path}.{key}[{i}]");
                let Some(sv) = as_str(d, v, &field) else {
                    continue;
                };
                let name = *sv.get_ref();
                match (names.get(name), want_group) {
                    (Some(Endpoint::HostGroup(g)), true) => s.ignore.host_groups.push(g),
                    (Some(Endpoint::Enclave(e)), false) => s.ignore.enclaves.push(e),
                    (Some(_), true) => d.error(
                        &sv.span(),
                        &field,
                        format!("{name:?} is an enclave, not a host group"),
                    ),
                    (Some(_), false) => d.error(
                        &sv.span(),
                        &field,
                        format!("{name:?} is a host group, not an enclave"),
                    ),
                    (None, true) => d.error(
                        &sv.span(),
                        &field,
                        format!("{name:?} is not a defined host group"),
                    ),
                    (None, false) => d.error(
                        &sv.span(),
                        &field,
                        format!("{name:?} is not a defined enclave"),
                    ),
                }
            }
        }
        if let Some(v) = services(d, &ig, "services", false) {
            s.ignore.services = v;
        }
        if let Some(arr) = ig.array(d, "reasons", false) {
            for (i, v) in items(arr).iter().enumerate() {
                let field = format!("{path}.reasons[{i}]");
                if let Some(sv) = as_str(d, v, &field) {
                    match Reason::parse(sv.get_ref()) {
                        Some(r) => s.ignore.reasons.push(r),
                        None => d.error(
                            &sv.span(),
                            &field,
                            format!(
                                "unknown reason {:?} (expected one of {})",
                                sv.get_ref(),
                                Reason::list()
                            ),
                        ),
                    }
                }
            }
        }
    }
    s
}
