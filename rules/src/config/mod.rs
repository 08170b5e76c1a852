//! The rule file: its TOML schema, the loader, and the validated [`Rules`].
//!
//! # Format
//!
//! ```toml
//! version = 1                       # optional; the only version is 1
//!
//! [defaults]
//! unknown = "internet"              # enclave for addresses in no enclave
//! tz = "UTC"                        # time zone of windows that name none
//!
//! [[enclaves]]
//! name = "provider-mgmt"            # letters, digits, '-', '_', '.'
//! kind = "provider"                 # customer | provider | client | external
//! networks = ["10.10.0.0/16", "2001:db8:10::/48"]
//! vlans = [110, "untagged"]         # optional VLAN scope
//! description = "..."               # optional, for humans
//!
//! [[host_groups]]
//! name = "jump-hosts"
//! enclave = "provider-mgmt"
//! hosts = ["10.10.1.10", "10.10.1.11"]   # addresses or networks inside the enclave
//!
//! [[relationships]]
//! name = "jump-to-customer-a"
//! from = "jump-hosts"               # enclave or host group (the originator)
//! to = "customer-a"                 # enclave or host group (the responder)
//! services = ["tcp/3389", "tcp/22", "tcp/8000-8100", "udp/161", "icmp", "any"]
//! windows = [{ days = "weekdays", start = "20:00", end = "22:00", tz = "Europe/Berlin" }]
//! max_bytes_per_day = "20 GB"       # or an integer number of bytes
//!
//! [detector]                        # all optional, see DetectorSettings
//! ```
//!
//! - Addresses in no enclave belong to `[defaults] unknown`, or, when that
//!   is not set, to an implicit enclave `internet` of kind `external` (which
//!   relationships may name). Only that default enclave may have no
//!   networks.
//! - Enclave and host-group names share one namespace (a relationship end
//!   can be either); relationship names have their own.
//! - Two enclaves may not share addresses unless VLAN scopes tell them
//!   apart: both scoped, to disjoint VLANs, or one scoped and one not (the
//!   scoped one wins on its VLANs). See [`crate::enclave`].
//! - Host-group members must lie inside one of their enclave's networks
//!   (members of the default enclave: outside every other enclave).
//! - A window opens at `start` on each of its `days` (`["mon", "tue"]`,
//!   `["mon-fri"]`, `"weekdays"`, `"weekends"`, `"daily"`; default daily)
//!   and closes at `end`, on the next day when `end` is not after `start`;
//!   `end = "24:00"` closes at midnight. `tz` is an IANA name or an offset
//!   such as `"+02:00"`.
//!
//! # Validation
//!
//! [`Rules::from_str`] checks everything before returning and reports every
//! problem, each with file, line, field path and message, as [`RuleErrors`]:
//! TOML syntax, unknown keys, wrong types, missing keys, bad networks, host
//! bits set, bad VLAN ids, bad services, duplicate names, undefined
//! references, host-group members outside their enclave, overlapping
//! enclaves, windows that can never match, unknown time zones, and the
//! ranges of every `[detector]` setting.

pub mod detector;
pub(crate) mod reader;

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use ipnet::IpNet;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::enclave::{Enclave, EnclaveId, EnclaveKind, EnclaveMap, Location, VlanTag};
use crate::error::{RuleError, RuleErrors};
use crate::hostgroup::{HostGroup, HostGroupId};
use crate::relationship::{parse_clock, Days, Endpoint, Relationship, TimeWindow, Zone};
pub use detector::DetectorSettings;
use reader::{as_str, as_table, as_uint, items, join, type_name, Diag, Table, Val};

/// The name of the implicit enclave for addresses in no enclave.
pub const INTERNET: &str = "internet";

/// A validated rule file: enclaves, host groups, relationships, detector
/// settings, and the enclave lookup built from them.
#[derive(Debug, Clone)]
pub struct Rules {
    file: String,
    enclaves: Vec<Enclave>,
    host_groups: Vec<HostGroup>,
    relationships: Vec<Relationship>,
    detector: DetectorSettings,
    default_tz: Zone,
    map: EnclaveMap,
}

impl Rules {
    /// Reads and validates the rule file at `path`. The file name in errors
    /// is `path` as given.
    pub fn load(path: impl AsRef<Path>) -> Result<Rules, RuleErrors> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| {
            RuleErrors::new(vec![RuleError::new(
                name.clone(),
                None,
                "",
                format!("cannot read the rule file: {e}"),
            )])
        })?;
        match std::str::from_utf8(&bytes) {
            Ok(text) => Rules::from_str(text, &name),
            Err(e) => {
                // TOML is UTF-8: say where the first bad byte is.
                let good = &bytes[..e.valid_up_to()];
                let line = 1 + good.iter().filter(|b| **b == b'\n').count();
                // Characters, not bytes, from the line's start (valid UTF-8 up
                // to the bad byte).
                let line_start = good.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
                let column = 1 + std::str::from_utf8(&good[line_start..])
                    .map_or(good.len() - line_start, |t| t.chars().count());
                Err(RuleErrors::new(vec![RuleError::new(
                    name,
                    Some(line),
                    "",
                    format!(
                        "not valid UTF-8 at byte {} (column {column}); rule files are UTF-8 text",
                        e.valid_up_to()
                    ),
                )]))
            }
        }
    }

    /// Validates rule-file `text`; `file_name` is what errors call the file.
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(text: &str, file_name: &str) -> Result<Rules, RuleErrors> {
        let mut d = Diag::new(file_name, text);
        let (root, syntax) = DeTable::parse_recoverable(text);
        if !syntax.is_empty() {
            // Only the first: what the parser recovers into after it is
            // mostly echoes of the same mistake.
            if let Some(e) = syntax.first() {
                let span = e.span().unwrap_or(0..0);
                d.error(&span, "", format!("TOML syntax: {}", e.message()));
            }
            return Err(RuleErrors::new(d.errors));
        }
        let top = Table {
            table: root.get_ref(),
            span: root.span(),
            path: String::new(),
        };
        let rules = Loader::default().load(&mut d, &top, file_name);
        match rules {
            Some(r) if d.errors.is_empty() => Ok(r),
            _ => {
                if d.errors.is_empty() {
                    d.errors
                        .push(RuleError::new(file_name, None, "", "invalid rule file"));
                }
                Err(RuleErrors::new(d.errors))
            }
        }
    }

    /// The file name the rules were loaded from.
    pub fn file_name(&self) -> &str {
        &self.file
    }

    /// Every enclave, the default one included; [`EnclaveId::index`] indexes it.
    pub fn enclaves(&self) -> &[Enclave] {
        &self.enclaves
    }

    /// One enclave.
    ///
    /// # Panics
    /// If `id` is not from these rules.
    pub fn enclave(&self, id: EnclaveId) -> &Enclave {
        &self.enclaves[id.index()]
    }

    /// The enclave called `name`.
    pub fn enclave_by_name(&self, name: &str) -> Option<EnclaveId> {
        self.enclaves
            .iter()
            .position(|e| e.name == name)
            .map(|i| EnclaveId(i as u32))
    }

    /// Every host group; [`HostGroupId::index`] indexes it.
    pub fn host_groups(&self) -> &[HostGroup] {
        &self.host_groups
    }

    /// One host group.
    ///
    /// # Panics
    /// If `id` is not from these rules.
    pub fn host_group(&self, id: HostGroupId) -> &HostGroup {
        &self.host_groups[id.index()]
    }

    /// The host group called `name`.
    pub fn host_group_by_name(&self, name: &str) -> Option<HostGroupId> {
        self.host_groups
            .iter()
            .position(|g| g.name == name)
            .map(|i| HostGroupId(i as u32))
    }

    /// The relationships, in file order.
    pub fn relationships(&self) -> &[Relationship] {
        &self.relationships
    }

    /// The detector settings.
    pub fn detector(&self) -> &DetectorSettings {
        &self.detector
    }

    /// The enclave addresses in no enclave belong to.
    pub fn default_enclave(&self) -> EnclaveId {
        self.map.default_enclave()
    }

    /// The time zone of windows that name none (`[defaults] tz`, else UTC).
    pub fn default_tz(&self) -> Zone {
        self.default_tz
    }

    /// The enclave lookup.
    pub fn enclave_map(&self) -> &EnclaveMap {
        &self.map
    }

    /// Where `addr`, seen with outer VLAN id `vlan`, is.
    #[inline]
    pub fn locate(&self, addr: IpAddr, vlan: Option<u16>) -> Location {
        self.map.locate(addr, vlan)
    }

    /// Whether an address located at `loc` is inside relationship end `ep`:
    /// in the enclave, or a member of the host group (in its enclave).
    pub fn endpoint_contains(&self, ep: Endpoint, addr: IpAddr, loc: Location) -> bool {
        match ep {
            Endpoint::Enclave(e) => loc.enclave == e,
            Endpoint::HostGroup(g) => {
                let group = self.host_group(g);
                loc.enclave == group.enclave && group.contains(addr)
            }
        }
    }

    /// The name of a relationship end.
    pub fn endpoint_name(&self, ep: Endpoint) -> &str {
        match ep {
            Endpoint::Enclave(e) => self.enclave(e).name(),
            Endpoint::HostGroup(g) => self.host_group(g).name(),
        }
    }

    /// Counts for a human.
    pub fn summary(&self) -> Summary {
        let mut s = Summary {
            file: self.file.clone(),
            enclaves: self.enclaves.len(),
            by_kind: EnclaveKind::ALL.map(|k| (k, 0)),
            vlan_scoped: 0,
            networks_v4: 0,
            networks_v6: 0,
            host_groups: self.host_groups.len(),
            members: self.host_groups.iter().map(|g| g.members.len()).sum(),
            relationships: self.relationships.len(),
            with_windows: self
                .relationships
                .iter()
                .filter(|r| !r.windows.is_empty())
                .count(),
            with_ceiling: self
                .relationships
                .iter()
                .filter(|r| r.max_bytes_per_day.is_some())
                .count(),
            default_enclave: self.enclave(self.default_enclave()).name.clone(),
            default_kind: self.enclave(self.default_enclave()).kind,
            default_implicit: self.enclave(self.default_enclave()).implicit,
        };
        for e in &self.enclaves {
            if let Some(slot) = s.by_kind.iter_mut().find(|(k, _)| *k == e.kind) {
                slot.1 += 1;
            }
            s.vlan_scoped += usize::from(e.vlans.is_some());
            for n in &e.networks {
                match n {
                    IpNet::V4(_) => s.networks_v4 += 1,
                    IpNet::V6(_) => s.networks_v6 += 1,
                }
            }
        }
        s
    }
}

/// Counts of what a rule file defines; `Display` prints them for a human.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The file name.
    pub file: String,
    /// Enclaves, the default one included.
    pub enclaves: usize,
    /// Enclaves per kind (provider, customer, client, external).
    pub by_kind: [(EnclaveKind, usize); 4],
    /// Enclaves with a VLAN scope.
    pub vlan_scoped: usize,
    /// IPv4 enclave networks.
    pub networks_v4: usize,
    /// IPv6 enclave networks.
    pub networks_v6: usize,
    /// Host groups.
    pub host_groups: usize,
    /// Host-group members (addresses and networks).
    pub members: usize,
    /// Relationships.
    pub relationships: usize,
    /// Relationships limited to time windows.
    pub with_windows: usize,
    /// Relationships with a volume ceiling.
    pub with_ceiling: usize,
    /// The enclave of addresses in no enclave.
    pub default_enclave: String,
    /// Its kind.
    pub default_kind: EnclaveKind,
    /// Whether it is the implicit `internet`.
    pub default_implicit: bool,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kinds = self
            .by_kind
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ");
        writeln!(f, "{}: valid", self.file)?;
        writeln!(
            f,
            "  enclaves       {:>4}  ({kinds}; {} scoped by VLAN)",
            self.enclaves, self.vlan_scoped
        )?;
        writeln!(
            f,
            "  networks       {:>4}  ({} IPv4, {} IPv6)",
            self.networks_v4 + self.networks_v6,
            self.networks_v4,
            self.networks_v6
        )?;
        writeln!(
            f,
            "  host groups    {:>4}  ({} members)",
            self.host_groups, self.members
        )?;
        writeln!(
            f,
            "  relationships  {:>4}  ({} with time windows, {} with a volume ceiling)",
            self.relationships, self.with_windows, self.with_ceiling
        )?;
        write!(
            f,
            "  unknown addresses -> {} ({}{})",
            self.default_enclave,
            self.default_kind,
            if self.default_implicit {
                ", implicit"
            } else {
                ""
            }
        )
    }
}

/// Enclave and host-group names, for resolving references.
#[derive(Debug, Default)]
pub(crate) struct Names {
    map: HashMap<String, Endpoint>,
}

impl Names {
    pub(crate) fn get(&self, name: &str) -> Option<Endpoint> {
        self.map.get(name).copied()
    }
}

/// Parses an address (a /32 or /128) or a network; host bits must be clear.
/// An IPv4-mapped IPv6 address or network (`::ffff:10.1.0.0/112`) is the
/// IPv4 one (`10.1.0.0/16`), as lookups see mapped addresses.
pub fn parse_network(s: &str) -> Result<IpNet, String> {
    parse_network_as_written(s).map(unmapped)
}

/// An IPv4-mapped IPv6 network (inside `::ffff:0:0/96`) as the IPv4
/// network it stands for; any other network as it is.
fn unmapped(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(n) if n.prefix_len() >= 96 => match n.network().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, n.prefix_len() - 96).map_or(net, IpNet::V4),
            None => net,
        },
        _ => net,
    }
}

fn parse_network_as_written(s: &str) -> Result<IpNet, String> {
    let Some((addr, len)) = s.split_once('/') else {
        return s
            .parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| format!("{s:?} is not a valid address or network"));
    };
    let Ok(ip) = addr.parse::<IpAddr>() else {
        return Err(format!(
            "{s:?} is not a valid network (bad address {addr:?})"
        ));
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    // Digits only: Rust's integer parsing would take "+8".
    let digits = !len.is_empty() && len.bytes().all(|b| b.is_ascii_digit());
    let len = match len.parse::<u8>() {
        _ if !digits => {
            return Err(format!(
                "{s:?} is not a valid network (bad prefix length {len:?})"
            ))
        }
        Ok(n) if n <= max => n,
        Ok(n) => {
            return Err(format!(
                "{s:?} is not a valid network (prefix length {n} > {max})"
            ))
        }
        Err(_) => {
            return Err(format!(
                "{s:?} is not a valid network (prefix length {len} > {max})"
            ))
        }
    };
    let net = IpNet::new(ip, len).map_err(|_| format!("{s:?} is not a valid network"))?;
    if net.trunc() != net {
        return Err(format!(
            "{s:?} has host bits set (the network is {}; write that, or the address alone)",
            net.trunc()
        ));
    }
    Ok(net)
}

/// A network for messages: single addresses without `/32` or `/128`.
fn show(n: &IpNet) -> String {
    if n.prefix_len() == n.max_prefix_len() {
        n.addr().to_string()
    } else {
        n.to_string()
    }
}

/// Longest duration accepted: 5000 weeks. Windows are compared with
/// capture times in nanoseconds (`i64`), which a longer one would overflow.
const MAX_DURATION_SECS: u64 = 5000 * 7 * 86_400;

/// Parses a duration: `"30s"`, `"5m"`, `"1h30m"`, `"2d"`, `"1w"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!("{s:?} is not a valid duration (expected e.g. \"30s\", \"5m\", \"1h30m\", \"2d\")")
    };
    let mut total: u64 = 0;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match rest[..unit_len].trim() {
            "s" | "sec" => 1,
            "m" | "min" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total = n
            .checked_mul(unit)
            .and_then(|x| total.checked_add(x))
            .ok_or_else(bad)?;
    }
    if total == 0 {
        return Err(format!(
            "{s:?} is not a valid duration (must be longer than 0)"
        ));
    }
    if total > MAX_DURATION_SECS {
        return Err(format!("{s:?} is too long (at most 5000w, about 96 years)"));
    }
    Ok(Duration::from_secs(total))
}

/// Parses a byte count: an integer, or a string such as `"20 GB"`,
/// `"1.5 GiB"`, `"500MB"` (k/M/G/T are powers of 1000, Ki/Mi/Gi/Ti of 1024).
pub(crate) fn parse_bytes(d: &mut Diag<'_>, v: &Val<'_>, field: &str) -> Option<u64> {
    if let DeValue::Integer(_) = v.get_ref() {
        return as_uint(d, v, field).map(|n| *n.get_ref());
    }
    let s = as_str(d, v, field)?;
    match bytes_from_str(s.get_ref()) {
        Ok(n) => Some(n),
        Err(m) => {
            d.error(&s.span(), field, m);
            None
        }
    }
}

fn bytes_from_str(s: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "{s:?} is not a valid size (expected e.g. 1000000, \"500 MB\", \"20 GB\", \"1.5 GiB\")"
        )
    };
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(t.len());
    let num: f64 = t[..split].replace('_', "").parse().map_err(|_| bad())?;
    let mult: f64 = match t[split..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    let n = num * mult;
    if !n.is_finite() || n >= u64::MAX as f64 {
        return Err(bad());
    }
    Ok(n.round() as u64)
}

/// Checks a name's spelling.
fn check_name(d: &mut Diag<'_>, name: &Spanned<&str>, field: &str) -> bool {
    let n = *name.get_ref();
    let ok = !n.is_empty()
        && n.len() <= 64
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        d.error(
            &name.span(),
            field,
            format!("{n:?} is not a valid name (1-64 characters: letters, digits, '-', '_', '.')"),
        );
    }
    ok
}

/// An enclave as read, with the spans validation needs.
struct EnclaveIn<'a> {
    path: String,
    name: Option<Spanned<&'a str>>,
    kind: EnclaveKind,
    networks: Vec<(IpNet, Range<usize>, String)>,
    /// Where to report "no networks", when `networks` is absent or `[]`.
    no_networks: Option<Range<usize>>,
    vlans: Option<Vec<VlanTag>>,
    description: Option<String>,
}

/// A host group as read.
struct GroupIn<'a> {
    path: String,
    name: Option<Spanned<&'a str>>,
    enclave: Option<Spanned<&'a str>>,
    members: Vec<(IpNet, Range<usize>, String)>,
    description: Option<String>,
}

#[derive(Default)]
struct Loader {
    default_tz: Option<Zone>,
}

impl Loader {
    fn load(&mut self, d: &mut Diag<'_>, top: &Table<'_, '_>, file: &str) -> Option<Rules> {
        top.check_keys(
            d,
            &[
                "version",
                "defaults",
                "enclaves",
                "host_groups",
                "relationships",
                "detector",
            ],
        );
        if let Some(v) = top.uint(d, "version") {
            if *v.get_ref() != 1 {
                d.error(
                    &v.span(),
                    "version",
                    format!(
                        "unsupported rule-file version {} (this build reads version 1)",
                        v.get_ref()
                    ),
                );
            }
        }

        // [defaults]
        let mut unknown = None;
        if let Some(t) = top.sub_table(d, "defaults", "defaults") {
            t.check_keys(d, &["unknown", "tz"]);
            unknown = t.str(d, "unknown", false);
            if let Some(tz) = t.str(d, "tz", false) {
                match tz.get_ref().parse::<Zone>() {
                    Ok(z) => self.default_tz = Some(z),
                    Err(m) => d.error(&tz.span(), "defaults.tz", m),
                }
            }
        }
        let default_tz = self.default_tz.unwrap_or(Zone::UTC);

        // [[enclaves]]
        let mut enclaves_in = Vec::new();
        if let Some(arr) = top.array(d, "enclaves", true) {
            for (i, v) in items(arr).iter().enumerate() {
                let path = format!("enclaves[{i}]");
                if let Some(t) = as_table(d, v, &path) {
                    enclaves_in.push(read_enclave(d, &t, path.clone()));
                }
            }
            if items(arr).is_empty() {
                d.error(&arr.span(), "enclaves", "no enclaves defined");
            }
        }

        // [[host_groups]]
        let mut groups_in = Vec::new();
        if let Some(arr) = top.array(d, "host_groups", false) {
            for (i, v) in items(arr).iter().enumerate() {
                let path = format!("host_groups[{i}]");
                if let Some(t) = as_table(d, v, &path) {
                    groups_in.push(read_group(d, &t, path.clone()));
                }
            }
        }

        // Names: one namespace for enclaves and host groups.
        let mut names = Names::default();
        let mut seen: HashMap<String, (String, usize)> = HashMap::new();
        let mut enclaves: Vec<Enclave> = Vec::new();
        for e in &enclaves_in {
            let id = EnclaveId(enclaves.len() as u32);
            let name = e
                .name
                .as_ref()
                .map(|n| n.get_ref().to_string())
                .unwrap_or_default();
            if let Some(n) = &e.name {
                if claim(d, &mut seen, n, &e.path) {
                    names.map.insert(name.clone(), Endpoint::Enclave(id));
                }
            }
            enclaves.push(Enclave {
                name,
                kind: e.kind,
                networks: e.networks.iter().map(|(n, _, _)| *n).collect(),
                vlans: e.vlans.clone(),
                description: e.description.clone(),
                implicit: false,
            });
        }
        for (g, group) in groups_in.iter().enumerate() {
            if let Some(n) = &group.name {
                if claim(d, &mut seen, n, &group.path) {
                    names.map.insert(
                        n.get_ref().to_string(),
                        Endpoint::HostGroup(HostGroupId(g as u32)),
                    );
                }
            }
        }

        // The default enclave.
        let default = match &unknown {
            Some(u) => match names.get(u.get_ref()) {
                Some(Endpoint::Enclave(e)) => Some(e),
                Some(Endpoint::HostGroup(_)) => {
                    d.error(
                        &u.span(),
                        "defaults.unknown",
                        format!("{:?} is a host group, not an enclave", u.get_ref()),
                    );
                    None
                }
                None => {
                    d.error(
                        &u.span(),
                        "defaults.unknown",
                        format!("{:?} is not a defined enclave", u.get_ref()),
                    );
                    None
                }
            },
            None => match names.get(INTERNET) {
                Some(Endpoint::Enclave(e)) => Some(e),
                Some(Endpoint::HostGroup(_)) => None, // reported below as a clash
                None => {
                    let id = EnclaveId(enclaves.len() as u32);
                    let mut e = Enclave::new(INTERNET, EnclaveKind::External, Vec::new(), None);
                    e.implicit = true;
                    e.description = Some("addresses in no other enclave".into());
                    enclaves.push(e);
                    names.map.insert(INTERNET.into(), Endpoint::Enclave(id));
                    Some(id)
                }
            },
        };
        if unknown.is_none() {
            if let (Some(Endpoint::HostGroup(g)), Some(group)) = (
                names.get(INTERNET),
                groups_in
                    .iter()
                    .find(|g| g.name.as_ref().is_some_and(|n| *n.get_ref() == INTERNET)),
            ) {
                let _ = g;
                if let Some(n) = &group.name {
                    d.error(
                        &n.span(),
                        &format!("{}.name", group.path),
                        "\"internet\" is the implicit enclave for unknown addresses; name the host group otherwise or set [defaults] unknown",
                    );
                }
            }
        }

        // Only the default enclave may have no networks.
        for (i, e) in enclaves_in.iter().enumerate() {
            let Some(span) = &e.no_networks else {
                continue;
            };
            if default != Some(EnclaveId(i as u32)) && e.name.is_some() {
                d.error(
                    span,
                    &format!("{}.networks", e.path),
                    format!(
                        "enclave {:?} has no networks (only the default enclave for unknown addresses may have none)",
                        enclaves[i].name
                    ),
                );
            }
        }

        check_overlaps(d, &enclaves_in);

        // Host groups: resolve the enclave, check members lie inside.
        let mut host_groups = Vec::new();
        for group in &groups_in {
            let mut enclave = EnclaveId(0);
            if let Some(en) = &group.enclave {
                match names.get(en.get_ref()) {
                    Some(Endpoint::Enclave(e)) => {
                        enclave = e;
                        check_members(d, group, e, &enclaves, &enclaves_in, default == Some(e));
                    }
                    Some(Endpoint::HostGroup(_)) => d.error(
                        &en.span(),
                        &format!("{}.enclave", group.path),
                        format!("{:?} is a host group, not an enclave", en.get_ref()),
                    ),
                    None => d.error(
                        &en.span(),
                        &format!("{}.enclave", group.path),
                        format!("{:?} is not a defined enclave", en.get_ref()),
                    ),
                }
            }
            host_groups.push(HostGroup {
                name: group
                    .name
                    .as_ref()
                    .map(|n| n.get_ref().to_string())
                    .unwrap_or_default(),
                enclave,
                members: group.members.iter().map(|(n, _, _)| *n).collect(),
                description: group.description.clone(),
            });
        }

        // [[relationships]]
        let mut relationships = Vec::new();
        let mut rel_names: HashMap<String, (String, usize)> = HashMap::new();
        if let Some(arr) = top.array(d, "relationships", false) {
            for (i, v) in items(arr).iter().enumerate() {
                let path = format!("relationships[{i}]");
                if let Some(t) = as_table(d, v, &path) {
                    if let Some(r) = read_relationship(d, &t, &names, default_tz, &mut rel_names) {
                        relationships.push(r);
                    }
                }
            }
        }

        // [detector]
        let detector = match top.sub_table(d, "detector", "detector") {
            Some(t) => detector::read(d, &t, &names),
            None => DetectorSettings::default(),
        };

        let default = default?;
        if !d.errors.is_empty() {
            return None;
        }
        let map = EnclaveMap::new(&enclaves, &host_groups, default);
        Some(Rules {
            file: file.to_string(),
            enclaves,
            host_groups,
            relationships,
            detector,
            default_tz,
            map,
        })
    }
}

/// Claims a name in the shared namespace; reports a duplicate.
fn claim(
    d: &mut Diag<'_>,
    seen: &mut HashMap<String, (String, usize)>,
    name: &Spanned<&str>,
    path: &str,
) -> bool {
    let line = d.line(name.span().start);
    match seen.get(*name.get_ref()) {
        Some((other, other_line)) => {
            let msg = format!(
                "duplicate name {:?} (already used by {other} on line {other_line})",
                name.get_ref()
            );
            d.error(&name.span(), &format!("{path}.name"), msg);
            false
        }
        None => {
            seen.insert(name.get_ref().to_string(), (path.to_string(), line));
            true
        }
    }
}

fn read_description(d: &mut Diag<'_>, t: &Table<'_, '_>) -> Option<String> {
    t.str(d, "description", false)
        .map(|s| s.get_ref().to_string())
}

/// Reads a list of networks under `key`, each with its span and field path.
fn read_networks(
    d: &mut Diag<'_>,
    t: &Table<'_, '_>,
    key: &str,
    required: bool,
) -> Vec<(IpNet, Range<usize>, String)> {
    let mut out = Vec::new();
    let Some(arr) = t.array(d, key, required) else {
        return out;
    };
    for (i, v) in items(arr).iter().enumerate() {
        let field = format!("{}.{key}[{i}]", t.path);
        let Some(s) = as_str(d, v, &field) else {
            continue;
        };
        match parse_network(s.get_ref()) {
            Ok(n) => out.push((n, s.span(), field)),
            Err(m) => d.error(&s.span(), &field, m),
        }
    }
    out
}

fn read_enclave<'a>(d: &mut Diag<'_>, t: &Table<'a, '_>, path: String) -> EnclaveIn<'a> {
    t.check_keys(d, &["name", "kind", "networks", "vlans", "description"]);
    let name = t.str(d, "name", true);
    let name = name.filter(|n| check_name(d, n, &join(&path, "name")));
    let kind = match t.str(d, "kind", true) {
        Some(k) => EnclaveKind::parse(k.get_ref()).unwrap_or_else(|| {
            d.error(
                &k.span(),
                &join(&path, "kind"),
                format!(
                    "unknown kind {:?} (expected customer, provider, client or external)",
                    k.get_ref()
                ),
            );
            EnclaveKind::Customer
        }),
        None => EnclaveKind::Customer,
    };
    let networks = read_networks(d, t, "networks", false);
    let no_networks = match t.get("networks") {
        None => Some(t.span.clone()),
        Some(v) if matches!(v.get_ref(), DeValue::Array(a) if a.is_empty()) => Some(v.span()),
        Some(_) => None,
    };
    let mut vlans = None;
    if let Some(arr) = t.array(d, "vlans", false) {
        let mut tags = Vec::new();
        for (i, v) in items(arr).iter().enumerate() {
            let field = format!("{path}.vlans[{i}]");
            let tag = match v.get_ref() {
                DeValue::Integer(_) => match as_uint(d, v, &field).map(|n| *n.get_ref()) {
                    Some(n @ 1..=4094) => Some(VlanTag::Id(n as u16)),
                    Some(n) => {
                        d.error(
                            &v.span(),
                            &field,
                            format!("VLAN id {n} is out of range (1-4094; use \"untagged\" for frames without a VLAN tag)"),
                        );
                        None
                    }
                    None => None,
                },
                DeValue::String(s) if s.as_ref() == "untagged" => Some(VlanTag::Untagged),
                DeValue::String(s) => {
                    d.error(
                        &v.span(),
                        &field,
                        format!(
                            "{:?} is not a VLAN (expected an id 1-4094 or \"untagged\")",
                            s.as_ref()
                        ),
                    );
                    None
                }
                other => {
                    d.error(
                        &v.span(),
                        &field,
                        format!(
                            "expected a VLAN id or \"untagged\", found {}",
                            type_name(other)
                        ),
                    );
                    None
                }
            };
            if let Some(tag) = tag {
                if !tags.contains(&tag) {
                    tags.push(tag);
                }
            }
        }
        if items(arr).is_empty() {
            d.error(
                &arr.span(),
                &join(&path, "vlans"),
                "empty VLAN list: the enclave would match no packet (remove `vlans` to match every VLAN)",
            );
        }
        vlans = Some(tags);
    }
    EnclaveIn {
        name,
        kind,
        networks,
        no_networks,
        vlans,
        description: read_description(d, t),
        path,
    }
}

fn read_group<'a>(d: &mut Diag<'_>, t: &Table<'a, '_>, path: String) -> GroupIn<'a> {
    t.check_keys(d, &["name", "enclave", "hosts", "description"]);
    let name = t.str(d, "name", true);
    let name = name.filter(|n| check_name(d, n, &join(&path, "name")));
    let enclave = t.str(d, "enclave", true);
    let members = read_networks(d, t, "hosts", true);
    if let Some(arr) = t.get("hosts") {
        if items(arr).is_empty() && matches!(arr.get_ref(), DeValue::Array(_)) {
            d.error(&arr.span(), &join(&path, "hosts"), "empty host group");
        }
    }
    GroupIn {
        path,
        name,
        enclave,
        members,
        description: read_description(d, t),
    }
}

/// Whether two VLAN scopes leave a packet that both enclaves would claim
/// with equal precedence; returns a description of the clash.
fn scope_clash(a: &Option<Vec<VlanTag>>, b: &Option<Vec<VlanTag>>) -> Option<String> {
    match (a, b) {
        (None, None) => Some("neither has a VLAN scope to tell them apart".into()),
        (Some(x), Some(y)) => x.iter().find(|t| y.contains(t)).map(|t| match t {
            VlanTag::Untagged => "both are scoped to untagged frames".to_string(),
            VlanTag::Id(v) => format!("both are scoped to VLAN {v}"),
        }),
        _ => None,
    }
}

/// Reports networks of different enclaves that overlap where VLAN scopes
/// don't tell them apart. Sweeps the networks sorted by start: CIDRs either
/// nest or are disjoint, so every network still open contains the next.
fn check_overlaps(d: &mut Diag<'_>, enclaves: &[EnclaveIn<'_>]) {
    struct Item<'e> {
        first: u128,
        last: u128,
        len: u8,
        v6: bool,
        enclave: usize,
        net: &'e (IpNet, Range<usize>, String),
    }
    let mut all: Vec<Item<'_>> = Vec::new();
    for (e, enc) in enclaves.iter().enumerate() {
        for net in &enc.networks {
            let (first, last, v6) = match net.0 {
                IpNet::V4(n) => (
                    u32::from(n.network()).into(),
                    u32::from(n.broadcast()).into(),
                    false,
                ),
                IpNet::V6(n) => (u128::from(n.network()), u128::from(n.broadcast()), true),
            };
            all.push(Item {
                first,
                last,
                len: net.0.prefix_len(),
                v6,
                enclave: e,
                net,
            });
        }
    }
    all.sort_by_key(|i| (i.v6, i.first, i.len, i.net.1.start));
    let mut open: Vec<&Item<'_>> = Vec::new();
    for item in &all {
        while open
            .last()
            .is_some_and(|o| o.v6 != item.v6 || o.last < item.first)
        {
            open.pop();
        }
        for o in &open {
            if o.enclave == item.enclave {
                continue;
            }
            let (a, b) = (&enclaves[o.enclave], &enclaves[item.enclave]);
            let Some(why) = scope_clash(&a.vlans, &b.vlans) else {
                continue;
            };
            // Report at whichever comes later in the file.
            let (here, there, there_enc) = if item.net.1.start >= o.net.1.start {
                (item.net, o.net, a)
            } else {
                (o.net, item.net, b)
            };
            let other_name = there_enc.name.as_ref().map(|n| *n.get_ref()).unwrap_or("?");
            let line = d.line(there.1.start);
            d.error(
                &here.1,
                &here.2,
                format!(
                    "{} overlaps {} of enclave {other_name:?} (line {line}) and {why}",
                    show(&here.0),
                    show(&there.0)
                ),
            );
        }
        open.push(item);
    }
}

/// Reports host-group members outside their enclave.
fn check_members(
    d: &mut Diag<'_>,
    group: &GroupIn<'_>,
    e: EnclaveId,
    enclaves: &[Enclave],
    enclaves_in: &[EnclaveIn<'_>],
    is_default: bool,
) {
    let enclave = &enclaves[e.index()];
    for (m, span, field) in &group.members {
        if enclave.networks.iter().any(|n| n.contains(m)) {
            continue;
        }
        if is_default {
            // The default enclave holds every address no other enclave has.
            let clash = enclaves_in.iter().enumerate().find_map(|(i, other)| {
                if i == e.index() {
                    return None;
                }
                other
                    .networks
                    .iter()
                    .find(|(n, _, _)| n.contains(m) || m.contains(n))
                    .map(|(n, _, _)| (i, *n))
            });
            match clash {
                None => continue,
                Some((i, n)) => d.error(
                    span,
                    field,
                    format!(
                        "{} is not in enclave {:?}: it overlaps {} of enclave {:?}",
                        show(m),
                        enclave.name,
                        show(&n),
                        enclaves[i].name
                    ),
                ),
            }
            continue;
        }
        let nets = enclave
            .networks
            .iter()
            .map(show)
            .collect::<Vec<_>>()
            .join(", ");
        d.error(
            span,
            field,
            format!(
                "{} is not inside enclave {:?} ({nets})",
                show(m),
                enclave.name
            ),
        );
    }
}

fn resolve(d: &mut Diag<'_>, names: &Names, v: &Spanned<&str>, field: &str) -> Option<Endpoint> {
    let r = names.get(v.get_ref());
    if r.is_none() {
        d.error(
            &v.span(),
            field,
            format!("{:?} is not a defined enclave or host group", v.get_ref()),
        );
    }
    r
}

fn read_relationship(
    d: &mut Diag<'_>,
    t: &Table<'_, '_>,
    names: &Names,
    default_tz: Zone,
    seen: &mut HashMap<String, (String, usize)>,
) -> Option<Relationship> {
    let path = t.path.as_str();
    t.check_keys(
        d,
        &[
            "name",
            "description",
            "from",
            "to",
            "services",
            "windows",
            "max_bytes_per_day",
        ],
    );
    let name = t.str(d, "name", true);
    let name = name.filter(|n| check_name(d, n, &join(path, "name")));
    if let Some(n) = &name {
        claim(d, seen, n, path);
    }
    let from = t
        .str(d, "from", true)
        .and_then(|v| resolve(d, names, &v, &join(path, "from")));
    let to = t
        .str(d, "to", true)
        .and_then(|v| resolve(d, names, &v, &join(path, "to")));
    let services = detector::services(d, t, "services", true);
    if let (Some(s), Some(arr)) = (&services, t.get("services")) {
        if s.is_empty() {
            d.error(
                &arr.span(),
                &join(path, "services"),
                "empty service list: the relationship would allow nothing (use [\"any\"] for every service)",
            );
        }
    }
    let mut windows = Vec::new();
    let mut windows_ok = true;
    if let Some(arr) = t.array(d, "windows", false) {
        if items(arr).is_empty() {
            d.error(
                &arr.span(),
                &join(path, "windows"),
                "empty window list: remove `windows` to allow any time",
            );
        }
        for (i, v) in items(arr).iter().enumerate() {
            let wpath = format!("{path}.windows[{i}]");
            match as_table(d, v, &wpath).and_then(|w| read_window(d, &w, default_tz)) {
                Some(w) => windows.push(w),
                None => windows_ok = false,
            }
        }
    }
    let mut max_bytes_per_day = None;
    if let Some(v) = t.get("max_bytes_per_day") {
        let field = join(path, "max_bytes_per_day");
        match parse_bytes(d, v, &field) {
            Some(0) => d.error(
                &v.span(),
                &field,
                "a ceiling of 0 bytes allows nothing; remove the relationship instead",
            ),
            Some(n) => max_bytes_per_day = Some(n),
            None => {}
        }
    }
    let description = read_description(d, t);
    if !windows_ok {
        return None;
    }
    Some(Relationship {
        name: name?.get_ref().to_string(),
        description,
        from: from?,
        to: to?,
        services: services?,
        windows,
        max_bytes_per_day,
    })
}

fn read_window(d: &mut Diag<'_>, t: &Table<'_, '_>, default_tz: Zone) -> Option<TimeWindow> {
    let path = t.path.as_str();
    t.check_keys(d, &["days", "start", "end", "tz"]);
    let mut ok = true;
    let mut days = Days::DAILY;
    if let Some(v) = t.get("days") {
        let field = join(path, "days");
        let parse_one =
            |d: &mut Diag<'_>, s: &Spanned<&str>, field: &str, acc: &mut Days| -> bool {
                match Days::parse_item(s.get_ref()) {
                    Ok(x) => {
                        acc.extend(x);
                        true
                    }
                    Err(m) => {
                        d.error(&s.span(), field, m);
                        false
                    }
                }
            };
        days = Days::none();
        match v.get_ref() {
            DeValue::String(_) => {
                if let Some(s) = as_str(d, v, &field) {
                    ok &= parse_one(d, &s, &field, &mut days);
                }
            }
            DeValue::Array(a) => {
                if a.is_empty() {
                    d.error(
                        &v.span(),
                        &field,
                        "empty day list: the window can never match",
                    );
                    ok = false;
                }
                for (i, item) in a.iter().enumerate() {
                    let f = format!("{field}[{i}]");
                    match as_str(d, item, &f) {
                        Some(s) => ok &= parse_one(d, &s, &f, &mut days),
                        None => ok = false,
                    }
                }
            }
            other => {
                d.error(
                    &v.span(),
                    &field,
                    format!(
                        "expected a day list or \"weekdays\", found {}",
                        type_name(other)
                    ),
                );
                ok = false;
            }
        }
    }
    let clock = |d: &mut Diag<'_>, key: &str, end: bool| -> Option<u32> {
        let s = t.str(d, key, true)?;
        match parse_clock(s.get_ref(), end) {
            Ok(v) => Some(v),
            Err(m) => {
                d.error(&s.span(), &join(path, key), m);
                None
            }
        }
    };
    let start = clock(d, "start", false);
    let end = clock(d, "end", true);
    let mut zone = Some(default_tz);
    if let Some(tz) = t.str(d, "tz", false) {
        zone = match tz.get_ref().parse::<Zone>() {
            Ok(z) => Some(z),
            Err(m) => {
                d.error(&tz.span(), &join(path, "tz"), m);
                None
            }
        };
    }
    let (start, end, zone) = (start?, end?, zone?);
    // With the days already reported, still check the times.
    let check_days = if ok { days } else { Days::DAILY };
    match TimeWindow::new(check_days, start, end, zone) {
        Ok(w) if ok => Some(w),
        Ok(_) => None,
        Err(m) => {
            d.error(&t.span, path, m);
            None
        }
    }
}
