//! Baselines: what normal traffic across the trust boundaries looks like,
//! learned from a period of traffic, saved to a file and loaded later.
//!
//! For every pair of hosts whose connections cross an enclave boundary (or
//! touch a host group) a baseline records the services used, the hours of
//! the week they talked, how much the originator sent per connection, and
//! on which services the pair was periodic (beacon-like) while learning, so known
//! periodic services (monitoring polls, update checks) are recognised
//! rather than hard-coded.
//!
//! The file is JSON with a format name and a version; a file of another
//! format or version is refused with a clear error.

use crate::config::detector::Beacon;
use crate::detector::behaviour::{staging_slice, SlicedBytes};
use crate::detector::BeaconTracker;
use crate::enclave::EnclaveKind;
use crate::enclave::Location;
use crate::Rules;
use flowlib::{ConnRecord, EndReason, Timestamp};
use hashbrown::HashMap;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;
use thiserror::Error;

/// The format name written in every baseline file.
pub const FORMAT: &str = "flowmon-baseline";
/// The version this build reads and writes.
pub const VERSION: u32 = 1;

/// How far below the detector's beacon threshold a service's learning-period
/// score may be and still count as known periodic.
const LEARNING_MARGIN: f64 = 0.1;

/// Why a baseline file could not be used.
#[derive(Debug, Error)]
pub enum BaselineError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a baseline (or is damaged).
    #[error("{path}: not a baseline file: {message}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The file is a baseline of another version.
    #[error("{path}: baseline format version {found}, this sensor reads version {expected}; learn it again with `sensor baseline learn`")]
    Version {
        /// The file.
        path: String,
        /// The version in the file.
        found: u32,
        /// The version this build reads.
        expected: u32,
    },
}

/// Running statistics of bytes per connection.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ByteStats {
    /// Connections counted.
    pub count: u64,
    /// Sum of bytes.
    pub sum: u64,
    /// Largest value.
    pub max: u64,
}

impl ByteStats {
    fn add(&mut self, v: u64) {
        self.count += 1;
        self.sum = self.sum.saturating_add(v);
        self.max = self.max.max(v);
    }

    /// Adds another pair's statistics.
    fn merge(&mut self, o: &ByteStats) {
        self.count += o.count;
        self.sum = self.sum.saturating_add(o.sum);
        self.max = self.max.max(o.max);
    }

    /// Mean bytes per connection.
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }
}

/// What was learned about one (originator, responder) pair.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairProfile {
    /// Originator.
    pub orig: IpAddr,
    /// Responder.
    pub resp: IpAddr,
    /// Outer VLAN id (tenants may reuse addresses on other VLANs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    /// Services used, as `proto/port` (`icmp` for ICMP).
    pub services: BTreeSet<String>,
    /// Hours of the week (0 = Monday 00:00 UTC .. 167) with a connection start.
    pub hours: BTreeSet<u8>,
    /// Bytes sent by the originator per connection.
    pub orig_bytes: ByteStats,
    /// Connections seen.
    pub connections: u64,
    /// Services on which the pair's connections were periodic (beacon-like)
    /// while learning: known periodic services, not reported as beacons.
    pub periodic_services: BTreeSet<String>,
}

impl PairProfile {
    /// Adds what `o` learned about the same pair.
    fn merge(&mut self, o: PairProfile) {
        self.services.extend(o.services);
        self.hours.extend(o.hours);
        self.orig_bytes.merge(&o.orig_bytes);
        self.connections += o.connections;
        self.periodic_services.extend(o.periodic_services);
    }
}

/// A learned baseline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`] when written by this build.
    pub version: u32,
    /// The rule file the boundaries came from.
    pub rules_file: String,
    /// Capture time of the first connection learned.
    pub first_ts: f64,
    /// Capture time of the last connection learned.
    pub last_ts: f64,
    /// Connections learned.
    pub connections: u64,
    /// Profiles, keyed `"orig resp"` (plus `" vlan N"` when tagged).
    pub pairs: BTreeMap<String, PairProfile>,
    /// The most each host pulled from internal hosts within one staging
    /// window (`[detector.staging]` window) while learning, keyed by
    /// address (plus `" vlan N"` when tagged); hosts that pulled nothing
    /// are absent. `None` in a baseline learned before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staging_pulls: Option<BTreeMap<String, u64>>,
}

/// The key of a host in [`Baseline::staging_pulls`].
fn host_key(host: IpAddr, vlan: Option<u16>) -> String {
    match vlan {
        Some(v) if v != 0 => format!("{host} vlan {v}"),
        _ => host.to_string(),
    }
}

/// The host and VLAN of a [`Baseline::staging_pulls`] key (none for text
/// that is not one: no host could be looked up by it).
fn parse_host_key(key: &str) -> Option<(IpAddr, Option<u16>)> {
    match key.split_once(" vlan ") {
        Some((host, vlan)) => Some((host.parse().ok()?, Some(vlan.parse().ok()?))),
        None => Some((key.parse().ok()?, None)),
    }
}

/// A service as [`service_of`] names it, for matching without text: the
/// protocol and the responder port (none for ICMP).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct ServiceKey(flowlib::Proto, u16);

impl ServiceKey {
    fn of(r: &ConnRecord) -> ServiceKey {
        match r.proto {
            flowlib::Proto::Icmp => ServiceKey(flowlib::Proto::Icmp, 0),
            p => ServiceKey(p, r.resp_p),
        }
    }

    /// The key of a name [`service_of`] wrote (none for other text: no
    /// connection has that service).
    fn parse(name: &str) -> Option<ServiceKey> {
        use flowlib::Proto;
        if name == Proto::Icmp.name() {
            return Some(ServiceKey(Proto::Icmp, 0));
        }
        let (proto, port) = name.split_once('/')?;
        let proto = [Proto::Tcp, Proto::Udp, Proto::Sctp, Proto::Unknown]
            .into_iter()
            .find(|p| p.name() == proto)?;
        Some(ServiceKey(proto, port.parse().ok()?))
    }

    /// The sorted keys of `names`.
    fn all(names: &BTreeSet<String>) -> Box<[ServiceKey]> {
        let mut keys: Vec<ServiceKey> = names.iter().filter_map(|n| ServiceKey::parse(n)).collect();
        keys.sort_unstable();
        keys.into()
    }
}

/// A pair's profile with its services as keys.
pub(crate) struct KnownPair {
    /// The profile as learned.
    pub(crate) profile: PairProfile,
    services: Box<[ServiceKey]>,
    periodic: Box<[ServiceKey]>,
}

impl KnownPair {
    /// Whether the pair used `r`'s service while learning.
    pub(crate) fn used_service_of(&self, r: &ConnRecord) -> bool {
        self.services.binary_search(&ServiceKey::of(r)).is_ok()
    }

    /// Whether `r`'s service was periodic for the pair while learning.
    pub(crate) fn periodic_service_of(&self, r: &ConnRecord) -> bool {
        self.periodic.binary_search(&ServiceKey::of(r)).is_ok()
    }
}

/// A baseline as the detector consults it for every connection: pairs and
/// hosts found by their addresses in hash maps, services by their keys,
/// not by formatting text keys and searching the file's ordered maps.
pub(crate) struct BaselineIndex {
    pairs: HashMap<(IpAddr, IpAddr, Option<u16>), KnownPair>,
    /// `None` for a baseline learned before it kept hosts' pulls.
    staging_pulls: Option<HashMap<(IpAddr, Option<u16>), u64>>,
}

impl BaselineIndex {
    pub(crate) fn new(b: Baseline) -> BaselineIndex {
        BaselineIndex {
            pairs: b
                .pairs
                .into_values()
                .map(|p| {
                    let key = (p.orig, p.resp, p.vlan.filter(|v| *v != 0));
                    let pair = KnownPair {
                        services: ServiceKey::all(&p.services),
                        periodic: ServiceKey::all(&p.periodic_services),
                        profile: p,
                    };
                    (key, pair)
                })
                .collect(),
            staging_pulls: b.staging_pulls.map(|pulls| {
                pulls
                    .iter()
                    .filter_map(|(key, bytes)| Some((parse_host_key(key)?, *bytes)))
                    .collect()
            }),
        }
    }

    /// [`Baseline::pair`].
    pub(crate) fn pair(&self, orig: IpAddr, resp: IpAddr, vlan: Option<u16>) -> Option<&KnownPair> {
        self.pairs.get(&(orig, resp, vlan.filter(|v| *v != 0)))
    }

    /// The most `host` pulled from internal hosts in one staging window
    /// while learning (0 if nothing), or `None` if the baseline did not
    /// keep hosts' pulls.
    pub(crate) fn staging_pull(&self, host: IpAddr, vlan: Option<u16>) -> Option<u64> {
        let pulls = self.staging_pulls.as_ref()?;
        Some(
            pulls
                .get(&(host, vlan.filter(|v| *v != 0)))
                .copied()
                .unwrap_or(0),
        )
    }
}

/// VLAN id 0 (a priority tag) counts as untagged, as in the enclave map.
fn pair_key(orig: IpAddr, resp: IpAddr, vlan: Option<u16>) -> String {
    match vlan {
        Some(v) if v != 0 => format!("{orig} {resp} vlan {v}"),
        _ => format!("{orig} {resp}"),
    }
}

/// The service of a connection as the baseline names it.
pub fn service_of(r: &ConnRecord) -> String {
    match r.proto {
        flowlib::Proto::Icmp => "icmp".to_owned(),
        p => format!("{}/{}", p.name(), r.resp_p),
    }
}

/// Hour of the week (0 = Monday 00:00 UTC) of a capture time.
pub fn hour_of_week(ts: Timestamp) -> u8 {
    // 1970-01-01 was a Thursday: day 0 is weekday 3 (Monday = 0).
    let days = ts.secs().div_euclid(86_400);
    let weekday = (days + 3).rem_euclid(7);
    let hour = ts.secs().rem_euclid(86_400) / 3600;
    (weekday * 24 + hour) as u8
}

impl Baseline {
    /// Loads and checks a baseline file.
    pub fn load(path: &Path) -> Result<Baseline, BaselineError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| BaselineError::Io {
            path: p.clone(),
            source,
        })?;
        // The format and version first (every other field skipped, not
        // built), so that another file is named as such before its fields
        // are read as a baseline's.
        #[derive(Deserialize)]
        struct Head {
            format: Option<serde_json::Value>,
            version: Option<serde_json::Value>,
        }
        let head: Head = serde_json::from_str(&text).map_err(|e| BaselineError::Format {
            path: p.clone(),
            message: e.to_string(),
        })?;
        if head.format.as_ref().and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(BaselineError::Format {
                path: p,
                message: format!("no \"format\": \"{FORMAT}\" field"),
            });
        }
        let Some(found) = head.version.as_ref().and_then(|v| v.as_u64()) else {
            return Err(BaselineError::Format {
                path: p,
                message: "no \"version\" number".to_owned(),
            });
        };
        if found != u64::from(VERSION) {
            return Err(BaselineError::Version {
                path: p,
                found: u32::try_from(found).unwrap_or(u32::MAX),
                expected: VERSION,
            });
        }
        let mut baseline: Baseline =
            serde_json::from_str(&text).map_err(|e| BaselineError::Format {
                path: p.clone(),
                message: e.to_string(),
            })?;
        baseline.untag_vlan_zero();
        // Hours of the week are 0 (Monday 00:00 UTC) to 167.
        for (key, pair) in &baseline.pairs {
            if let Some(h) = pair.hours.iter().find(|h| **h >= 168) {
                return Err(BaselineError::Format {
                    path: p,
                    message: format!(
                        "pair \"{key}\": hour of the week {h} is out of range (0-167)"
                    ),
                });
            }
        }
        Ok(baseline)
    }

    /// Files learned before VLAN id 0 counted as untagged keep such pairs
    /// apart (`" vlan 0"`): they join the untagged pair, where lookups
    /// find them.
    fn untag_vlan_zero(&mut self) {
        let tagged: Vec<String> = self
            .pairs
            .iter()
            .filter(|(_, p)| p.vlan == Some(0))
            .map(|(k, _)| k.clone())
            .collect();
        for key in tagged {
            let Some(mut pair) = self.pairs.remove(&key) else {
                continue;
            };
            pair.vlan = None;
            match self.pairs.entry(pair_key(pair.orig, pair.resp, None)) {
                std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().merge(pair),
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(pair);
                }
            }
        }
    }

    /// Writes the baseline as JSON.
    pub fn save(&self, path: &Path) -> Result<(), BaselineError> {
        let text = serde_json::to_string_pretty(self).expect("a baseline serialises");
        std::fs::write(path, text).map_err(|source| BaselineError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// The profile of a pair (on a VLAN), if it was seen.
    pub fn pair(&self, orig: IpAddr, resp: IpAddr, vlan: Option<u16>) -> Option<&PairProfile> {
        self.pairs.get(&pair_key(orig, resp, vlan))
    }
}

/// Learns a baseline from connection records.
pub struct BaselineBuilder {
    rules: Rules,
    pairs: BTreeMap<String, PairProfile>,
    /// The detector's beacon tracker, run over the learning capture with
    /// the threshold lowered by [`LEARNING_MARGIN`].
    beacons: BeaconTracker,
    /// Its settings.
    beacon: Beacon,
    first: Option<Timestamp>,
    last: Option<Timestamp>,
    connections: u64,
    /// Each host's pulls from internal hosts by slice of the staging
    /// window, and the most it pulled in one window.
    pulls: BTreeMap<(IpAddr, Option<u16>), (SlicedBytes, u64)>,
}

impl BaselineBuilder {
    /// A builder whose boundaries come from `rules`.
    pub fn new(rules: Rules) -> BaselineBuilder {
        let mut beacon = rules.detector().beacon;
        // Generous on purpose: a service that was nearly periodic while
        // learning is normal, even if it scores a little higher later.
        beacon.min_score = (beacon.min_score - LEARNING_MARGIN).max(f64::EPSILON);
        BaselineBuilder {
            rules,
            pairs: BTreeMap::new(),
            beacons: BeaconTracker::default(),
            beacon,
            first: None,
            last: None,
            connections: 0,
            pulls: BTreeMap::new(),
        }
    }

    /// Learns from one record (finished connections only; start and interim
    /// records are skipped).
    pub fn observe(&mut self, r: &ConnRecord) {
        if matches!(r.end_reason, EndReason::Start | EndReason::Active) {
            return;
        }
        let (o, d): (Location, Location) = (
            self.rules.locate(r.orig_h, r.vlan),
            self.rules.locate(r.resp_h, r.vlan),
        );
        self.learn_pulls(r, o, d);
        if o.enclave == d.enclave && o.host_group.is_none() && d.host_group.is_none() {
            return;
        }
        self.first = Some(self.first.map_or(r.ts, |f| f.min(r.ts)));
        self.last = Some(self.last.map_or(r.ts, |l| l.max(r.ts)));
        self.connections += 1;
        let key = pair_key(r.orig_h, r.resp_h, r.vlan);
        let p = self.pairs.entry(key).or_insert_with(|| PairProfile {
            orig: r.orig_h,
            resp: r.resp_h,
            vlan: r.vlan.filter(|v| *v != 0),
            services: BTreeSet::new(),
            hours: BTreeSet::new(),
            orig_bytes: ByteStats::default(),
            connections: 0,
            periodic_services: BTreeSet::new(),
        });
        p.services.insert(service_of(r));
        p.hours.insert(hour_of_week(r.ts));
        p.orig_bytes.add(r.orig_bytes.unwrap_or(0));
        p.connections += 1;
        // Known periodic is what the detector would report as a beacon
        // (its tracker, window and evidence needed), per service as it
        // scores them: a host pinged and polled over SNMP has two regular
        // series, not one irregular one.
        if self.beacons.observe(r, &self.beacon).is_some() {
            p.periodic_services.insert(service_of(r));
        }
    }

    /// What each end of a connection between two internal hosts pulled
    /// from the other, as the detector's staging tracker counts it.
    fn learn_pulls(&mut self, r: &ConnRecord, o: Location, d: Location) {
        let internal = |l: Location| self.rules.enclave(l.enclave).kind() != EnclaveKind::External;
        if !(internal(o) && internal(d)) {
            return;
        }
        let slice = staging_slice(&self.rules.detector().staging);
        let vlan = r.vlan.filter(|v| *v != 0);
        for (host, bytes) in [
            (r.orig_h, r.resp_bytes.unwrap_or(0)),
            (r.resp_h, r.orig_bytes.unwrap_or(0)),
        ] {
            if bytes == 0 {
                continue;
            }
            let (slices, most) = self
                .pulls
                .entry((host, vlan))
                .or_insert_with(|| (SlicedBytes::new(r.ts), 0));
            // Records come in about end order: a pull too old for the
            // window kept is left out (as the detector leaves it out).
            if slices.add(r.ts, bytes, slice) {
                let (in_window, _, _) = slices.in_window(r.ts, slice, r.ts);
                *most = (*most).max(in_window);
            }
        }
    }

    /// The baseline learned so far.
    pub fn finish(self) -> Baseline {
        let secs = |t: Option<Timestamp>| t.map_or(0.0, |t| t.0 as f64 / 1e9);
        Baseline {
            format: FORMAT.to_owned(),
            version: VERSION,
            rules_file: self.rules.file_name().to_owned(),
            first_ts: secs(self.first),
            last_ts: secs(self.last),
            connections: self.connections,
            pairs: self.pairs,
            staging_pulls: Some(
                self.pulls
                    .into_iter()
                    .map(|((host, vlan), (_, most))| (host_key(host, vlan), most))
                    .collect(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_finds_what_the_text_keys_name() {
        let hosts: Vec<(IpAddr, Option<u16>)> = vec![
            ("10.0.0.1".parse().unwrap(), None),
            ("10.0.0.1".parse().unwrap(), Some(110)),
            ("2001:db8::1".parse().unwrap(), Some(4094)),
            ("::ffff:10.0.0.1".parse().unwrap(), None),
        ];
        for (host, vlan) in &hosts {
            assert_eq!(
                parse_host_key(&host_key(*host, *vlan)),
                Some((*host, *vlan))
            );
        }
        assert_eq!(parse_host_key("10.0.0.1 vlan x"), None);
        let profile = |orig: IpAddr, resp: IpAddr, vlan| PairProfile {
            orig,
            resp,
            vlan,
            services: BTreeSet::new(),
            hours: BTreeSet::new(),
            orig_bytes: ByteStats::default(),
            connections: 1,
            periodic_services: BTreeSet::new(),
        };
        let mut pairs = BTreeMap::new();
        for (i, (a, vlan)) in hosts.iter().enumerate() {
            let (b, _) = hosts[(i + 1) % hosts.len()];
            pairs.insert(pair_key(*a, b, *vlan), profile(*a, b, *vlan));
        }
        let baseline = Baseline {
            format: FORMAT.to_owned(),
            version: VERSION,
            rules_file: "r.toml".to_owned(),
            first_ts: 0.0,
            last_ts: 0.0,
            connections: 4,
            pairs,
            staging_pulls: Some(hosts.iter().map(|(h, v)| (host_key(*h, *v), 7)).collect()),
        };
        let index = BaselineIndex::new(baseline.clone());
        for (i, (a, vlan)) in hosts.iter().enumerate() {
            let (b, _) = hosts[(i + 1) % hosts.len()];
            let found = |x, y| index.pair(x, y, *vlan).map(|k| &k.profile);
            assert_eq!(found(*a, b), baseline.pair(*a, b, *vlan));
            assert!(found(*a, b).is_some());
            assert_eq!(found(b, *a), baseline.pair(b, *a, *vlan));
            assert_eq!(index.staging_pull(*a, *vlan), Some(7));
        }
        // VLAN 0 is untagged; a host that pulled nothing pulled 0.
        assert_eq!(index.staging_pull(hosts[0].0, Some(0)), Some(7));
        assert_eq!(
            index.staging_pull("10.9.9.9".parse().unwrap(), None),
            Some(0)
        );
        let old = BaselineIndex::new(Baseline {
            staging_pulls: None,
            ..baseline
        });
        assert_eq!(old.staging_pull(hosts[0].0, None), None);
    }

    #[test]
    fn a_service_key_is_the_key_of_the_name_service_of_writes() {
        use flowlib::Proto;
        let mut r = crate::test_records::tcp("10.0.0.1", "10.0.0.2", 443, 0, (1, 1));
        for (proto, ip_proto) in [
            (Proto::Tcp, 6),
            (Proto::Udp, 17),
            (Proto::Icmp, 1),
            (Proto::Sctp, 132),
            (Proto::Unknown, 47),
        ] {
            for port in [0, 8, 443, 65535] {
                r.proto = proto;
                r.ip_proto = ip_proto;
                r.resp_p = port;
                assert_eq!(
                    ServiceKey::parse(&service_of(&r)),
                    Some(ServiceKey::of(&r)),
                    "{}",
                    service_of(&r)
                );
            }
        }
        assert_eq!(ServiceKey::parse("tcp/http"), None);
        assert_eq!(ServiceKey::parse("gre/1"), None);
    }

    #[test]
    fn hour_of_week_starts_on_monday_utc() {
        // 2026-03-02 was a Monday.
        assert_eq!(hour_of_week(Timestamp::from_micros(1_772_409_600, 0)), 0);
        assert_eq!(
            hour_of_week(Timestamp::from_micros(1_772_409_600 + 3 * 3600, 0)),
            3
        );
        assert_eq!(
            hour_of_week(Timestamp::from_micros(
                1_772_409_600 + 6 * 86_400 + 23 * 3600,
                0
            )),
            167
        );
    }

    #[test]
    fn files_of_another_format_or_version_are_refused() {
        let dir = std::env::temp_dir().join(format!("flowmon-baseline-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let other = dir.join("other.json");
        std::fs::write(&other, r#"{"format":"something-else","version":1}"#).unwrap();
        assert!(matches!(
            Baseline::load(&other),
            Err(BaselineError::Format { .. })
        ));
        let old = dir.join("old.json");
        std::fs::write(&old, r#"{"format":"flowmon-baseline","version":99}"#).unwrap();
        let e = Baseline::load(&old).unwrap_err();
        assert!(e.to_string().contains("version 99"), "{e}");
        let unversioned = dir.join("unversioned.json");
        std::fs::write(&unversioned, r#"{"format":"flowmon-baseline"}"#).unwrap();
        let e = Baseline::load(&unversioned).unwrap_err();
        assert!(e.to_string().contains("no \"version\" number"), "{e}");
        assert!(matches!(
            Baseline::load(&dir.join("missing.json")),
            Err(BaselineError::Io { .. })
        ));
    }

    #[test]
    fn vlan_zero_is_learned_and_looked_up_as_untagged() {
        let rules = Rules::from_str(
            r#"
[[enclaves]]
name = "provider"
kind = "provider"
networks = ["10.10.0.0/16"]

[[enclaves]]
name = "customer"
kind = "customer"
networks = ["10.20.0.0/16"]
"#,
            "vlan0.toml",
        )
        .unwrap();
        let record = |vlan: Option<u16>| ConnRecord {
            vlan,
            ..crate::test_records::tcp("10.10.0.1", "10.20.0.1", 22, 1_772_409_600, (10, 10))
        };
        let mut b = BaselineBuilder::new(rules);
        b.observe(&record(Some(0)));
        b.observe(&record(None));
        b.observe(&record(Some(7)));
        let base = b.finish();
        let (o, d) = ("10.10.0.1".parse().unwrap(), "10.20.0.1".parse().unwrap());
        let untagged = base.pair(o, d, None).expect("learned untagged");
        assert_eq!((untagged.connections, untagged.vlan), (2, None));
        assert_eq!(base.pair(o, d, Some(0)).map(|p| p.connections), Some(2));
        assert_eq!(base.pair(o, d, Some(7)).map(|p| p.connections), Some(1));
        assert_eq!(base.pairs.len(), 2);

        // A file learned before VLAN 0 counted as untagged: its
        // "vlan 0" pair joins the untagged one when loaded.
        let dir = std::env::temp_dir().join(format!("flowmon-baseline-v0-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let old = dir.join("old.json");
        let mut v = serde_json::to_value(&base).unwrap();
        let mut tagged = v["pairs"]["10.10.0.1 10.20.0.1"].clone();
        tagged["vlan"] = serde_json::json!(0);
        tagged["connections"] = serde_json::json!(5);
        tagged["services"] = serde_json::json!(["tcp/3389"]);
        v["pairs"]["10.10.0.1 10.20.0.1 vlan 0"] = tagged;
        std::fs::write(&old, v.to_string()).unwrap();
        let loaded = Baseline::load(&old).unwrap();
        assert_eq!(loaded.pairs.len(), 2, "{:?}", loaded.pairs.keys());
        let merged = loaded.pair(o, d, Some(0)).unwrap();
        assert_eq!((merged.connections, merged.vlan), (7, None));
        assert!(merged.services.contains("tcp/3389") && merged.services.contains("tcp/22"));
        std::fs::remove_dir_all(&dir).unwrap();

        // Saved and loaded back whole; an hour of the week past 167 is refused.
        let dir = std::env::temp_dir().join(format!("flowmon-baseline-h-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("b.json");
        base.save(&path).unwrap();
        assert_eq!(Baseline::load(&path).unwrap(), base);
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        v["pairs"]["10.10.0.1 10.20.0.1"]["hours"] = serde_json::json!([3, 200]);
        std::fs::write(&path, v.to_string()).unwrap();
        let e = Baseline::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("pair \"10.10.0.1 10.20.0.1\": hour of the week 200 is out of range"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
