//! Enclaves: named sets of networks with a kind, and the map that tells
//! which enclave (and host group) an address belongs to.
//!
//! [`EnclaveMap::locate`] answers for every packet. Its rules:
//!
//! 1. An enclave **scoped** to VLANs (`vlans = [110]`) matches only packets on
//!    those VLANs (`"untagged"` in the list stands for frames without a VLAN
//!    tag; VLAN id 0, a priority tag, counts as untagged). On such a VLAN the
//!    scoped enclaves are searched first, longest prefix wins, and their
//!    match takes precedence over unscoped enclaves. This is how two
//!    customers using the same private range are told apart.
//! 2. Otherwise the longest prefix among the **unscoped** enclaves' networks
//!    and host-group members wins.
//! 3. An address in no enclave belongs to the **default** enclave (the
//!    implicit `internet`, kind `external`, unless the rule file names
//!    another in `[defaults] unknown`).
//!
//! A packet with no VLAN and no scoped enclave for untagged frames costs one
//! [`PrefixTable`] lookup.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::hostgroup::{HostGroup, HostGroupId};
use crate::lookup::PrefixTable;

/// What an enclave is to the provider whose rules these are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EnclaveKind {
    /// A customer network the provider manages.
    Customer,
    /// The provider's own networks (management, jump hosts, monitoring).
    Provider,
    /// Another customer of the same provider, seen from a customer's side.
    Client,
    /// Everything else: the internet, partners, SaaS.
    External,
}

impl EnclaveKind {
    /// All kinds, in the order summaries list them.
    pub const ALL: [EnclaveKind; 4] = [
        EnclaveKind::Provider,
        EnclaveKind::Customer,
        EnclaveKind::Client,
        EnclaveKind::External,
    ];

    /// The name used in rule files: `customer`, `provider`, `client`, `external`.
    pub fn as_str(self) -> &'static str {
        match self {
            EnclaveKind::Customer => "customer",
            EnclaveKind::Provider => "provider",
            EnclaveKind::Client => "client",
            EnclaveKind::External => "external",
        }
    }

    /// Parses the rule-file name of a kind.
    pub fn parse(s: &str) -> Option<EnclaveKind> {
        EnclaveKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for EnclaveKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of an enclave's VLAN scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VlanTag {
    /// Frames without a VLAN tag (or with VLAN id 0, a priority tag).
    Untagged,
    /// Frames whose outer VLAN id is this (1-4094).
    Id(u16),
}

impl VlanTag {
    /// The tag a packet with this outer VLAN id belongs to.
    pub fn of(vlan: Option<u16>) -> VlanTag {
        match vlan {
            None | Some(0) => VlanTag::Untagged,
            Some(v) => VlanTag::Id(v),
        }
    }
}

impl fmt::Display for VlanTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VlanTag::Untagged => f.write_str("untagged"),
            VlanTag::Id(v) => write!(f, "{v}"),
        }
    }
}

/// Index of an enclave in [`Rules::enclaves`](crate::Rules::enclaves).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EnclaveId(pub(crate) u32);

impl EnclaveId {
    /// The id of the enclave at `index` in a list of enclaves.
    pub fn new(index: u32) -> Self {
        EnclaveId(index)
    }

    /// The position in the enclave list.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A named set of networks with a kind and an optional VLAN scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enclave {
    pub(crate) name: String,
    pub(crate) kind: EnclaveKind,
    pub(crate) networks: Vec<IpNet>,
    pub(crate) vlans: Option<Vec<VlanTag>>,
    pub(crate) description: Option<String>,
    pub(crate) implicit: bool,
}

impl Enclave {
    /// Builds an enclave. `vlans: None` matches every VLAN.
    pub fn new(
        name: impl Into<String>,
        kind: EnclaveKind,
        networks: Vec<IpNet>,
        vlans: Option<Vec<VlanTag>>,
    ) -> Self {
        Enclave {
            name: name.into(),
            kind,
            networks,
            vlans,
            description: None,
            implicit: false,
        }
    }

    /// The name, unique among enclaves and host groups.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The kind.
    pub fn kind(&self) -> EnclaveKind {
        self.kind
    }

    /// The networks (may be empty for the default enclave).
    pub fn networks(&self) -> &[IpNet] {
        &self.networks
    }

    /// The VLAN scope, or `None` when the enclave matches on every VLAN.
    pub fn vlans(&self) -> Option<&[VlanTag]> {
        self.vlans.as_deref()
    }

    /// Whether a packet with this outer VLAN id can belong to the enclave.
    pub fn matches_vlan(&self, vlan: Option<u16>) -> bool {
        match &self.vlans {
            None => true,
            Some(tags) => tags.contains(&VlanTag::of(vlan)),
        }
    }

    /// The free-text description from the rule file.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// True for the `internet` enclave the loader adds when the rule file
    /// neither defines it nor names another default.
    pub fn is_implicit(&self) -> bool {
        self.implicit
    }
}

/// Where an address is: its enclave and, if it is a member of one, its most
/// specific host group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Location {
    /// The enclave.
    pub enclave: EnclaveId,
    /// The most specific host group containing the address (at equal
    /// prefixes, the one defined last), if any.
    pub host_group: Option<HostGroupId>,
}

/// Number of slots in the per-VLAN table index: ids 0-4095.
const VLAN_IDS: usize = 4096;

/// The enclave lookup: one prefix table for unscoped enclaves plus one per
/// VLAN scope (see the [module docs](self) for the precedence rules).
#[derive(Debug, Clone)]
pub struct EnclaveMap {
    global: PrefixTable<u32>,
    /// Tables for scoped enclaves; `scoped[slot - 1]`.
    scoped: Vec<PrefixTable<u32>>,
    /// VLAN id to slot in `scoped` plus one (0: no scoped table). Empty when
    /// no enclave is scoped to a VLAN id.
    vlan_slot: Vec<u16>,
    /// Slot of the scoped table for untagged frames plus one (0: none).
    untagged_slot: u16,
    locations: Vec<Location>,
    default: Location,
}

impl EnclaveMap {
    /// Builds the map. Host groups must name enclaves in `enclaves`; each
    /// member is placed in its enclave's scope.
    ///
    /// # Panics
    /// If a host group names an enclave index outside `enclaves`, or there
    /// are more than 65535 distinct VLAN scopes (there are at most 4095).
    pub fn new(enclaves: &[Enclave], host_groups: &[HostGroup], default: EnclaveId) -> Self {
        let mut locations = Vec::new();
        let mut global = Vec::new();
        let mut scoped: Vec<(VlanTag, Vec<(IpNet, u32)>)> = Vec::new();
        let mut place = |scope: Option<&[VlanTag]>, net: IpNet, loc: u32| match scope {
            None => global.push((net, loc)),
            Some(tags) => {
                for &tag in tags {
                    match scoped.iter_mut().find(|(t, _)| *t == tag) {
                        Some((_, list)) => list.push((net, loc)),
                        None => scoped.push((tag, vec![(net, loc)])),
                    }
                }
            }
        };
        for (i, e) in enclaves.iter().enumerate() {
            let loc = locations.len() as u32;
            locations.push(Location {
                enclave: EnclaveId(i as u32),
                host_group: None,
            });
            for &net in &e.networks {
                place(e.vlans(), net, loc);
            }
        }
        // Host groups after enclaves: at an equal prefix the group wins.
        for (g, group) in host_groups.iter().enumerate() {
            let loc = locations.len() as u32;
            locations.push(Location {
                enclave: group.enclave,
                host_group: Some(HostGroupId(g as u32)),
            });
            let scope = enclaves[group.enclave.index()].vlans();
            for &net in &group.members {
                place(scope, net, loc);
            }
        }
        let mut vlan_slot = Vec::new();
        let mut untagged_slot = 0;
        let mut tables = Vec::with_capacity(scoped.len());
        for (k, (tag, list)) in scoped.into_iter().enumerate() {
            let slot = u16::try_from(k + 1).expect("at most 4095 VLAN scopes");
            match tag {
                VlanTag::Untagged => untagged_slot = slot,
                VlanTag::Id(v) => {
                    if vlan_slot.is_empty() {
                        vlan_slot = vec![0; VLAN_IDS];
                    }
                    if let Some(s) = vlan_slot.get_mut(usize::from(v)) {
                        *s = slot;
                    }
                }
            }
            tables.push(PrefixTable::new(list));
        }
        EnclaveMap {
            global: PrefixTable::new(global),
            scoped: tables,
            vlan_slot,
            untagged_slot,
            locations,
            default: Location {
                enclave: default,
                host_group: None,
            },
        }
    }

    /// The enclave and host group of `addr` seen in a packet with outer VLAN
    /// id `vlan`. Every address has a location (the default enclave at
    /// worst). An IPv4-mapped IPv6 address (`::ffff:10.1.2.3`) is where its
    /// IPv4 address is. Never panics.
    #[inline]
    pub fn locate(&self, addr: IpAddr, vlan: Option<u16>) -> Location {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        let slot = match vlan {
            None | Some(0) => self.untagged_slot,
            Some(v) => self.vlan_slot.get(usize::from(v)).copied().unwrap_or(0),
        };
        if slot != 0 {
            if let Some(t) = self.scoped.get(usize::from(slot) - 1) {
                if let Some(loc) = t.get(addr) {
                    return self.location(loc);
                }
            }
        }
        match self.global.get(addr) {
            Some(loc) => self.location(loc),
            None => self.default,
        }
    }

    #[inline]
    fn location(&self, loc: u32) -> Location {
        self.locations
            .get(loc as usize)
            .copied()
            .unwrap_or(self.default)
    }

    /// The enclave addresses in no enclave belong to.
    pub fn default_enclave(&self) -> EnclaveId {
        self.default.enclave
    }

    /// Number of networks and host-group members indexed, over all scopes.
    pub fn prefixes(&self) -> usize {
        self.global.prefixes() + self.scoped.iter().map(PrefixTable::prefixes).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn enclave(name: &str, nets: &[&str], vlans: Option<Vec<VlanTag>>) -> Enclave {
        Enclave::new(
            name,
            EnclaveKind::Customer,
            nets.iter().map(|s| net(s)).collect(),
            vlans,
        )
    }

    #[test]
    fn two_customers_on_one_range_are_told_apart_by_vlan() {
        let enclaves = vec![
            Enclave::new("internet", EnclaveKind::External, vec![], None),
            enclave("provider", &["10.10.0.0/16"], None),
            enclave("a", &["10.0.0.0/16"], Some(vec![VlanTag::Id(110)])),
            enclave("b", &["10.0.0.0/16"], Some(vec![VlanTag::Id(120)])),
        ];
        let groups = vec![HostGroup::new(
            "b-dc",
            EnclaveId(3),
            vec![net("10.0.0.10/32")],
        )];
        let m = EnclaveMap::new(&enclaves, &groups, EnclaveId(0));
        let at = |a: &str, v: Option<u16>| m.locate(ip(a), v);
        assert_eq!(at("10.0.1.1", Some(110)).enclave, EnclaveId(2));
        assert_eq!(at("10.0.1.1", Some(120)).enclave, EnclaveId(3));
        assert_eq!(at("10.0.0.10", Some(120)).host_group, Some(HostGroupId(0)));
        assert_eq!(at("10.0.0.10", Some(110)).host_group, None);
        assert_eq!(
            at("10.0.1.1", None).enclave,
            EnclaveId(0),
            "untagged: in neither"
        );
        assert_eq!(at("10.0.1.1", Some(999)).enclave, EnclaveId(0));
        assert_eq!(
            at("10.10.1.1", Some(110)).enclave,
            EnclaveId(1),
            "unscoped on any VLAN"
        );
        assert_eq!(at("10.10.1.1", Some(4095)).enclave, EnclaveId(1));
        assert_eq!(at("10.10.1.1", Some(u16::MAX)).enclave, EnclaveId(1));
    }

    #[test]
    fn a_scoped_match_takes_precedence_over_a_longer_unscoped_one() {
        let enclaves = vec![
            Enclave::new("internet", EnclaveKind::External, vec![], None),
            enclave("wide", &["10.0.0.0/8"], Some(vec![VlanTag::Id(30)])),
            enclave("narrow", &["10.20.0.0/16"], None),
        ];
        let m = EnclaveMap::new(&enclaves, &[], EnclaveId(0));
        assert_eq!(m.locate(ip("10.20.0.1"), Some(30)).enclave, EnclaveId(1));
        assert_eq!(m.locate(ip("10.20.0.1"), None).enclave, EnclaveId(2));
    }

    #[test]
    fn untagged_scope_and_vlan_zero_are_the_same() {
        let enclaves = vec![
            Enclave::new("internet", EnclaveKind::External, vec![], None),
            enclave(
                "b",
                &["10.30.0.0/16"],
                Some(vec![VlanTag::Id(30), VlanTag::Untagged]),
            ),
        ];
        let m = EnclaveMap::new(&enclaves, &[], EnclaveId(0));
        for v in [None, Some(0), Some(30)] {
            assert_eq!(m.locate(ip("10.30.1.1"), v).enclave, EnclaveId(1), "{v:?}");
        }
        assert_eq!(m.locate(ip("10.30.1.1"), Some(31)).enclave, EnclaveId(0));
    }

    #[test]
    fn host_groups_nest_inside_their_enclave() {
        let enclaves = vec![
            Enclave::new("internet", EnclaveKind::External, vec![], None),
            enclave("provider", &["10.10.0.0/16", "2001:db8:10::/48"], None),
        ];
        let groups = vec![
            HostGroup::new("mgmt", EnclaveId(1), vec![net("10.10.1.0/24")]),
            HostGroup::new(
                "jump",
                EnclaveId(1),
                vec![net("10.10.1.10/31"), net("2001:db8:10::10/128")],
            ),
        ];
        let m = EnclaveMap::new(&enclaves, &groups, EnclaveId(0));
        let g = |a: &str| m.locate(ip(a), None).host_group;
        assert_eq!(g("10.10.1.10"), Some(HostGroupId(1)));
        assert_eq!(g("10.10.1.11"), Some(HostGroupId(1)));
        assert_eq!(g("10.10.1.12"), Some(HostGroupId(0)));
        assert_eq!(g("10.10.2.12"), None);
        assert_eq!(g("2001:db8:10::10"), Some(HostGroupId(1)));
        assert_eq!(m.locate(ip("2001:db8:10::11"), None).enclave, EnclaveId(1));
        assert_eq!(m.locate(ip("2001:db8:11::11"), None).enclave, EnclaveId(0));
    }

    /// Naive reference for `locate`: scoped candidates first, then unscoped,
    /// longest prefix, ties to the later entry (host groups after enclaves).
    fn naive(
        enclaves: &[Enclave],
        groups: &[HostGroup],
        addr: IpAddr,
        vlan: Option<u16>,
    ) -> Location {
        let mut cands: Vec<(bool, u8, usize, Location)> = Vec::new();
        let mut order = 0;
        for (i, e) in enclaves.iter().enumerate() {
            for n in &e.networks {
                order += 1;
                if n.contains(&addr) && e.matches_vlan(vlan) {
                    let loc = Location {
                        enclave: EnclaveId(i as u32),
                        host_group: None,
                    };
                    cands.push((e.vlans.is_some(), n.prefix_len(), order, loc));
                }
            }
        }
        for (g, group) in groups.iter().enumerate() {
            let e = &enclaves[group.enclave.index()];
            for n in &group.members {
                order += 1;
                if n.contains(&addr) && e.matches_vlan(vlan) {
                    let loc = Location {
                        enclave: group.enclave,
                        host_group: Some(HostGroupId(g as u32)),
                    };
                    cands.push((e.vlans.is_some(), n.prefix_len(), order, loc));
                }
            }
        }
        cands
            .into_iter()
            .max_by_key(|c| (c.0, c.1, c.2))
            .map(|c| c.3)
            .unwrap_or(Location {
                enclave: EnclaveId(0),
                host_group: None,
            })
    }

    fn v4(hi: u32, lo: u32, len: u8) -> IpNet {
        let a = (10 << 24) | (hi << 20) | (lo >> 12);
        IpNet::V4(ipnet::Ipv4Net::new(a.into(), len).unwrap().trunc())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(150))]

        #[test]
        fn locate_agrees_with_a_naive_scan(
            specs in prop::collection::vec(
                (prop::collection::vec((0u32..4, any::<u32>(), 8u8..=32), 1..6),
                 prop::option::of(prop::collection::vec(prop_oneof![Just(None), (1u16..4).prop_map(Some)], 1..3))),
                1..8),
            groups in prop::collection::vec((0usize..8, prop::collection::vec((0u32..4, any::<u32>(), 12u8..=32), 1..4)), 0..6),
            probes in prop::collection::vec((0u32..4, any::<u32>(), prop_oneof![Just(None), (0u16..5).prop_map(Some)]), 200),
        ) {
            let mut enclaves = vec![Enclave::new("internet", EnclaveKind::External, vec![], None)];
            for (k, (nets, vlans)) in specs.iter().enumerate() {
                let nets = nets.iter().map(|&(h, l, len)| v4(h, l, len)).collect();
                let vlans = vlans.as_ref().map(|v| {
                    v.iter().map(|&t| t.map_or(VlanTag::Untagged, VlanTag::Id)).collect()
                });
                enclaves.push(Enclave::new(format!("e{k}"), EnclaveKind::Customer, nets, vlans));
            }
            let groups: Vec<HostGroup> = groups
                .iter()
                .enumerate()
                .map(|(g, (e, members))| {
                    let e = 1 + e % specs.len();
                    HostGroup::new(
                        format!("g{g}"),
                        EnclaveId(e as u32),
                        members.iter().map(|&(h, l, len)| v4(h, l, len)).collect(),
                    )
                })
                .collect();
            let m = EnclaveMap::new(&enclaves, &groups, EnclaveId(0));
            for &(h, l, vlan) in &probes {
                let a = IpAddr::V4(((10 << 24) | (h << 20) | (l >> 12)).into());
                prop_assert_eq!(m.locate(a, vlan), naive(&enclaves, &groups, a, vlan), "{} {:?}", a, vlan);
            }
        }
    }
}
