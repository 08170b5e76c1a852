//! Longest-prefix matching over IPv4 and IPv6 networks.
//!
//! [`PrefixTable`] maps every address to the payload of the longest network
//! that contains it. It is built once (rule files change rarely, packets
//! arrive constantly) and then only read:
//!
//! - Nested prefixes are **flattened** at build time into a sorted list of
//!   non-overlapping intervals that cover the whole address space, each with
//!   the payload of the longest prefix covering it (or none). A lookup is
//!   then "the last interval starting at or before the address".
//! - **IPv4** adds a direct index on the top 8 to 16 bits (once the table
//!   has more than a few dozen intervals; sized to about two intervals per
//!   slot, so it never costs more memory than the intervals): it narrows the
//!   search to the intervals that touch the address's slot, usually one to
//!   three, so a lookup is one index read plus a tiny binary search.
//! - **IPv6** searches the `u128` interval starts through a small cache-
//!   resident summary (every 16th start) and then one 16-entry block.
//!
//! Ties (the same network given twice) go to the entry given last. No lookup
//! allocates or panics; building costs `O(n log n)`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Interval counts up to this are searched without the IPv4 index.
const V4_INDEX_MIN: usize = 64;
/// IPv6 summary stride.
const V6_BLOCK: usize = 16;

/// An unsigned address type (`u32` for IPv4, `u128` for IPv6).
trait Bits: Copy + Ord + Default {
    const MAX: Self;
    fn succ(self) -> Self;
}

impl Bits for u32 {
    const MAX: Self = u32::MAX;
    fn succ(self) -> Self {
        self + 1
    }
}

impl Bits for u128 {
    const MAX: Self = u128::MAX;
    fn succ(self) -> Self {
        self + 1
    }
}

/// One prefix to flatten: `[first, last]`, its length, its order of arrival.
#[derive(Clone, Copy)]
struct Span<A, T> {
    first: A,
    last: A,
    len: u8,
    order: usize,
    value: T,
}

/// Sorted interval starts (the first is always 0) and their payloads.
#[derive(Debug, Clone)]
struct Intervals<A, T> {
    starts: Vec<A>,
    values: Vec<Option<T>>,
}

impl<A: Bits, T: Copy + PartialEq> Intervals<A, T> {
    /// Flattens possibly nested prefixes into non-overlapping intervals.
    fn flatten(mut spans: Vec<Span<A, T>>) -> Self {
        // Outer prefixes before the inner ones they contain; at equal
        // prefixes, arrival order (the later wins, being pushed last).
        spans.sort_by_key(|a| (a.first, a.len, a.order));
        let mut out = Intervals {
            starts: vec![A::default()],
            values: vec![None],
        };
        let mut stack: Vec<Span<A, T>> = Vec::with_capacity(130);
        for s in spans {
            while let Some(top) = stack.last().copied() {
                if top.last >= s.first {
                    break;
                }
                stack.pop();
                // `top.last < s.first <= MAX`, so the successor exists.
                let next = stack.last().map(|n| n.value);
                out.emit(top.last.succ(), next);
            }
            out.emit(s.first, Some(s.value));
            stack.push(s);
        }
        while let Some(top) = stack.pop() {
            if top.last == A::MAX {
                break;
            }
            let next = stack.last().map(|n| n.value);
            out.emit(top.last.succ(), next);
        }
        out
    }

    /// Appends "from `start` on, `value`", merging with what is already there.
    fn emit(&mut self, start: A, value: Option<T>) {
        let n = self.starts.len();
        if self.starts[n - 1] == start {
            self.values[n - 1] = value;
            if n >= 2 && self.values[n - 2] == value {
                self.starts.pop();
                self.values.pop();
            }
        } else if self.values[n - 1] != value {
            self.starts.push(start);
            self.values.push(value);
        }
    }

    /// Index of the last interval in `lo..=hi` starting at or before `addr`.
    /// Requires `starts[lo] <= addr`.
    #[inline]
    fn find_in(&self, addr: A, lo: usize, hi: usize) -> usize {
        let window = &self.starts[lo..=hi];
        lo + window.partition_point(|&s| s <= addr) - 1
    }
}

/// IPv4 intervals plus the optional index on the top `bits` bits.
#[derive(Debug, Clone)]
struct V4<T> {
    iv: Intervals<u32, T>,
    /// `index[b]`: the interval containing `b << (32 - bits)`; the last
    /// entry is the last interval. Empty for small tables.
    index: Vec<u32>,
    /// How many top bits index (8-16), sized to the table: about two
    /// intervals per slot, so the index costs what the intervals cost.
    bits: u32,
}

impl<T: Copy + PartialEq> V4<T> {
    fn new(iv: Intervals<u32, T>) -> Self {
        let n = iv.starts.len();
        if n <= V4_INDEX_MIN {
            return V4 {
                iv,
                index: Vec::new(),
                bits: 0,
            };
        }
        let bits = (usize::BITS - (n / 2).leading_zeros()).clamp(8, 16);
        let shift = 32 - bits;
        let slots = 1usize << bits;
        let mut index = Vec::with_capacity(slots + 1);
        let mut i = 0usize;
        for b in 0..slots {
            let base = (b as u32) << shift;
            while i + 1 < n && iv.starts[i + 1] <= base {
                i += 1;
            }
            index.push(i as u32);
        }
        index.push((n - 1) as u32);
        V4 { iv, index, bits }
    }

    #[inline]
    fn get(&self, addr: u32) -> Option<T> {
        let i = if self.index.is_empty() {
            self.iv.find_in(addr, 0, self.iv.starts.len() - 1)
        } else {
            // `bits` is 8-16 and `index` has 2^bits + 1 entries.
            let b = (addr >> (32 - self.bits)) as usize;
            let (lo, hi) = (self.index[b] as usize, self.index[b + 1] as usize);
            if lo == hi {
                lo
            } else {
                self.iv.find_in(addr, lo, hi)
            }
        };
        self.iv.values[i]
    }
}

/// IPv6 intervals plus a summary of every 16th start.
#[derive(Debug, Clone)]
struct V6<T> {
    iv: Intervals<u128, T>,
    summary: Vec<u128>,
}

impl<T: Copy + PartialEq> V6<T> {
    fn new(iv: Intervals<u128, T>) -> Self {
        let summary = iv.starts.iter().step_by(V6_BLOCK).copied().collect();
        V6 { iv, summary }
    }

    #[inline]
    fn get(&self, addr: u128) -> Option<T> {
        // summary[0] == starts[0] == 0 <= addr, so the block exists.
        let block = self.summary.partition_point(|&s| s <= addr) - 1;
        let lo = block * V6_BLOCK;
        let hi = (lo + V6_BLOCK - 1).min(self.iv.starts.len() - 1);
        self.iv.values[self.iv.find_in(addr, lo, hi)]
    }
}

/// A longest-prefix-match table from IPv4 and IPv6 networks to payloads.
///
/// ```
/// use rules::lookup::PrefixTable;
/// let t = PrefixTable::new([
///     ("10.0.0.0/8".parse().unwrap(), 1),
///     ("10.20.0.0/16".parse().unwrap(), 2),
///     ("2001:db8::/32".parse().unwrap(), 3),
/// ]);
/// assert_eq!(t.get("10.20.1.1".parse().unwrap()), Some(2));
/// assert_eq!(t.get("10.21.1.1".parse().unwrap()), Some(1));
/// assert_eq!(t.get("2001:db8::1".parse().unwrap()), Some(3));
/// assert_eq!(t.get("192.0.2.1".parse().unwrap()), None);
/// ```
#[derive(Debug, Clone)]
pub struct PrefixTable<T> {
    v4: V4<T>,
    v6: V6<T>,
    prefixes: usize,
}

impl<T: Copy + PartialEq> PrefixTable<T> {
    /// Builds the table. Host bits in a network are ignored
    /// (`10.1.2.3/8` is `10.0.0.0/8`). At equal networks the later entry wins.
    pub fn new(entries: impl IntoIterator<Item = (IpNet, T)>) -> Self {
        let mut s4 = Vec::new();
        let mut s6 = Vec::new();
        for (order, (net, value)) in entries.into_iter().enumerate() {
            match net {
                IpNet::V4(n) => s4.push(Span {
                    first: u32::from(n.network()),
                    last: u32::from(n.broadcast()),
                    len: n.prefix_len(),
                    order,
                    value,
                }),
                IpNet::V6(n) => s6.push(Span {
                    first: u128::from(n.network()),
                    last: u128::from(n.broadcast()),
                    len: n.prefix_len(),
                    order,
                    value,
                }),
            }
        }
        let prefixes = s4.len() + s6.len();
        PrefixTable {
            v4: V4::new(Intervals::flatten(s4)),
            v6: V6::new(Intervals::flatten(s6)),
            prefixes,
        }
    }

    /// The payload of the longest network containing `addr`.
    #[inline]
    pub fn get(&self, addr: IpAddr) -> Option<T> {
        match addr {
            IpAddr::V4(a) => self.get_v4(a),
            IpAddr::V6(a) => self.get_v6(a),
        }
    }

    /// [`get`](Self::get) for an IPv4 address.
    #[inline]
    pub fn get_v4(&self, addr: Ipv4Addr) -> Option<T> {
        self.v4.get(u32::from(addr))
    }

    /// [`get`](Self::get) for an IPv6 address.
    #[inline]
    pub fn get_v6(&self, addr: Ipv6Addr) -> Option<T> {
        self.v6.get(u128::from(addr))
    }

    /// How many networks the table was built from.
    pub fn prefixes(&self) -> usize {
        self.prefixes
    }

    /// How many flattened intervals (IPv4, IPv6) the lookups search.
    pub fn intervals(&self) -> (usize, usize) {
        (self.v4.iv.starts.len(), self.v6.iv.starts.len())
    }

    /// True when built from no networks.
    pub fn is_empty(&self) -> bool {
        self.prefixes == 0
    }
}

impl<T: Copy + PartialEq> Default for PrefixTable<T> {
    fn default() -> Self {
        PrefixTable::new(std::iter::empty())
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

    /// Longest matching prefix by linear search; ties to the later entry.
    fn naive(entries: &[(IpNet, u32)], addr: IpAddr) -> Option<u32> {
        entries
            .iter()
            .enumerate()
            .filter(|(_, (n, _))| n.contains(&addr))
            .max_by_key(|(i, (n, _))| (n.prefix_len(), *i))
            .map(|(_, (_, v))| *v)
    }

    #[test]
    fn empty_table_matches_nothing() {
        let t: PrefixTable<u32> = PrefixTable::default();
        assert!(t.is_empty());
        assert_eq!(t.get(ip("0.0.0.0")), None);
        assert_eq!(t.get(ip("255.255.255.255")), None);
        assert_eq!(t.get(ip("::")), None);
        assert_eq!(t.get(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")), None);
    }

    #[test]
    fn nested_prefixes_resume_the_outer_payload_after_the_inner_ends() {
        let t = PrefixTable::new([
            (net("10.0.0.0/8"), 1),
            (net("10.20.0.0/16"), 2),
            (net("10.20.10.5/32"), 3),
        ]);
        assert_eq!(t.get(ip("10.20.10.4")), Some(2));
        assert_eq!(t.get(ip("10.20.10.5")), Some(3));
        assert_eq!(t.get(ip("10.20.10.6")), Some(2));
        assert_eq!(t.get(ip("10.21.0.0")), Some(1));
        assert_eq!(t.get(ip("9.255.255.255")), None);
        assert_eq!(t.get(ip("11.0.0.0")), None);
    }

    #[test]
    fn default_routes_and_the_top_of_the_address_space() {
        let t = PrefixTable::new([
            (net("0.0.0.0/0"), 1),
            (net("255.255.255.255/32"), 2),
            (net("::/0"), 3),
            (net("ffff::/16"), 4),
        ]);
        assert_eq!(t.get(ip("1.2.3.4")), Some(1));
        assert_eq!(t.get(ip("255.255.255.255")), Some(2));
        assert_eq!(t.get(ip("255.255.255.254")), Some(1));
        assert_eq!(t.get(ip("::1")), Some(3));
        assert_eq!(t.get(ip("ffff::1")), Some(4));
    }

    #[test]
    fn the_same_network_twice_goes_to_the_later_entry() {
        let t = PrefixTable::new([(net("10.0.0.0/8"), 1), (net("10.0.0.0/8"), 2)]);
        assert_eq!(t.get(ip("10.1.1.1")), Some(2));
    }

    #[test]
    fn adjacent_networks_with_one_payload_merge_into_one_interval() {
        let t = PrefixTable::new([(net("10.0.0.0/9"), 7), (net("10.128.0.0/9"), 7)]);
        assert_eq!(t.intervals().0, 3, "none, 10/8 as one, none");
    }

    #[test]
    fn the_v4_index_agrees_with_plain_search_on_a_large_table() {
        let mut entries = Vec::new();
        for i in 0..500u32 {
            let a = Ipv4Addr::from(i.wrapping_mul(2_654_435_761));
            let len = 8 + (i % 25) as u8;
            entries.push((IpNet::V4(ipnet::Ipv4Net::new(a, len).unwrap().trunc()), i));
        }
        let t = PrefixTable::new(entries.clone());
        assert!(t.intervals().0 > V4_INDEX_MIN);
        for k in 0..20_000u32 {
            let a = IpAddr::V4(Ipv4Addr::from(k.wrapping_mul(0x9e37_79b9)));
            assert_eq!(t.get(a), naive(&entries, a), "{a}");
        }
    }

    #[test]
    fn the_widest_v4_index_agrees_with_searching_every_interval() {
        let mut entries = Vec::new();
        let mut x = 1u64;
        for i in 0..80_000u32 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let len = 8 + ((x >> 40) % 25) as u8;
            let net = ipnet::Ipv4Net::new(Ipv4Addr::from((x >> 8) as u32), len).unwrap();
            entries.push((IpNet::V4(net.trunc()), i));
        }
        let t = PrefixTable::new(entries);
        assert_eq!(t.v4.bits, 16);
        let last = t.v4.iv.starts.len() - 1;
        for k in 0..200_000u32 {
            let a = k.wrapping_mul(0x9e37_79b9);
            let plain = t.v4.iv.values[t.v4.iv.find_in(a, 0, last)];
            assert_eq!(t.get_v4(Ipv4Addr::from(a)), plain, "{}", Ipv4Addr::from(a));
        }
    }

    fn v4_net() -> impl Strategy<Value = IpNet> {
        // Few distinct high bits so random prefixes nest and collide often.
        (0u32..16, any::<u32>(), 0u8..=32).prop_map(|(hi, lo, len)| {
            let a = (hi << 28) | (lo >> 4);
            IpNet::V4(ipnet::Ipv4Net::new(Ipv4Addr::from(a), len).unwrap().trunc())
        })
    }

    fn v6_net() -> impl Strategy<Value = IpNet> {
        (0u128..8, any::<u128>(), 0u8..=128).prop_map(|(hi, lo, len)| {
            let a = (hi << 125) | (lo >> 3);
            IpNet::V6(ipnet::Ipv6Net::new(Ipv6Addr::from(a), len).unwrap().trunc())
        })
    }

    /// Addresses at, just inside and just outside the edges of the networks,
    /// plus random ones.
    fn probes(entries: &[(IpNet, u32)], random: &[u128]) -> Vec<IpAddr> {
        let mut out = Vec::new();
        for (n, _) in entries {
            match n {
                IpNet::V4(n) => {
                    let (f, l) = (u32::from(n.network()), u32::from(n.broadcast()));
                    for a in [f, l, f.wrapping_sub(1), l.wrapping_add(1), f + (l - f) / 2] {
                        out.push(IpAddr::V4(Ipv4Addr::from(a)));
                    }
                }
                IpNet::V6(n) => {
                    let (f, l) = (u128::from(n.network()), u128::from(n.broadcast()));
                    for a in [f, l, f.wrapping_sub(1), l.wrapping_add(1), f + (l - f) / 2] {
                        out.push(IpAddr::V6(Ipv6Addr::from(a)));
                    }
                }
            }
        }
        for &r in random {
            out.push(IpAddr::V4(Ipv4Addr::from(r as u32)));
            out.push(IpAddr::V6(Ipv6Addr::from(r)));
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn lookup_agrees_with_a_naive_scan(
            nets in prop::collection::vec(prop_oneof![v4_net(), v6_net()], 0..120),
            payloads in prop::collection::vec(0u32..6, 120),
            random in prop::collection::vec(any::<u128>(), 64),
        ) {
            let entries: Vec<(IpNet, u32)> =
                nets.into_iter().zip(payloads).collect();
            let t = PrefixTable::new(entries.clone());
            for a in probes(&entries, &random) {
                prop_assert_eq!(t.get(a), naive(&entries, a), "address {}", a);
            }
        }

        #[test]
        fn lookup_with_the_v4_index_agrees_with_a_naive_scan(
            nets in prop::collection::vec(v4_net(), 150..300),
            random in prop::collection::vec(any::<u128>(), 64),
        ) {
            let entries: Vec<(IpNet, u32)> =
                nets.into_iter().enumerate().map(|(i, n)| (n, i as u32)).collect();
            let t = PrefixTable::new(entries.clone());
            for a in probes(&entries, &random) {
                prop_assert_eq!(t.get(a), naive(&entries, a), "address {}", a);
            }
        }
    }
}
