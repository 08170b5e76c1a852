//! Named reasons why a packet was not (fully) turned into a flow update.
//!
//! Every packet handed to flowlib ends up either as a flow update or counted
//! under exactly one [`Weird`] reason, so `packets == decoded + sum(weirds)`.
//! A few reasons are anomalies of packets that were still decoded
//! (overlapping or odd-sized fragments); those are counted apart, in
//! [`crate::MeterStats::anomalies`], outside that sum.
//! The reasons are `Copy` and index a fixed array, cheap enough to count per
//! packet.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use std::fmt;

macro_rules! weirds {
    ($( $(#[$doc:meta])* $variant:ident => $name:literal, $malformed:literal; )*) => {
        /// Why a packet did not become a flow update (or why part of it was lost).
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Weird {
            $( $(#[$doc])* $variant, )*
        }

        impl Weird {
            /// Every reason, in declaration order.
            pub const ALL: &'static [Weird] = &[ $( Weird::$variant, )* ];
            /// Number of distinct reasons.
            pub const COUNT: usize = Weird::ALL.len();

            /// Stable snake_case name, used in summaries, logs and metrics.
            pub fn name(self) -> &'static str {
                match self { $( Weird::$variant => $name, )* }
            }

            /// `true` for broken or truncated input; `false` for well-formed
            /// traffic that simply carries no IP flow (ARP, STP, ...).
            pub fn is_malformed(self) -> bool {
                match self { $( Weird::$variant => $malformed, )* }
            }
        }
    };
}

weirds! {
    /// The capture's link type is not one flowlib decodes.
    UnsupportedLinkType => "unsupported_link_type", true;
    /// Captured bytes end inside the link-layer header.
    TruncatedLinkHeader => "truncated_link_header", true;
    /// Captured bytes end inside an 802.1Q/802.1ad tag.
    TruncatedVlanTag => "truncated_vlan_tag", true;
    /// Captured bytes end inside an MPLS label stack.
    TruncatedMpls => "truncated_mpls", true;
    /// Captured bytes end inside a PPPoE or PPP header.
    TruncatedPpp => "truncated_ppp", true;
    /// More layers in one packet than flowlib follows
    /// ([`crate::decode::MAX_LAYERS`]), whatever their kind.
    TooManyHeaders => "too_many_headers", true;
    /// More stacked 802.1Q / 802.1ad tags than [`crate::decode::MAX_VLAN_TAGS`].
    TooManyVlanTags => "too_many_vlan_tags", true;
    /// An MPLS label stack deeper than [`crate::decode::MAX_MPLS_LABELS`].
    TooManyMplsLabels => "too_many_mpls_labels", true;
    /// More IPv6 extension headers than [`crate::decode::MAX_IPV6_EXT_HEADERS`].
    TooManyIpv6ExtensionHeaders => "too_many_ipv6_extension_headers", true;
    /// Tunnels nested deeper than [`crate::decode::MAX_TUNNEL_DEPTH`] (or more
    /// UDP-based encapsulations than [`crate::decode::MAX_ENCAPS`]).
    TunnelsTooDeep => "tunnels_too_deep", true;
    /// A BSD loopback address family that is neither IPv4 nor IPv6.
    UnknownLoopbackFamily => "unknown_loopback_family", false;
    /// A frame whose EtherType (or PPP protocol) is not IP: ARP, LLDP, STP, ...
    NonIpFrame => "non_ip_frame", false;
    /// Captured bytes end inside the IP header.
    TruncatedIpHeader => "truncated_ip_header", true;
    /// The IP version nibble is neither 4 nor 6, or does not match the link type.
    BadIpVersion => "bad_ip_version", true;
    /// IPv4 IHL below 5.
    BadIpv4HeaderLength => "bad_ipv4_header_length", true;
    /// IPv4 total length smaller than its own header.
    BadIpv4TotalLength => "bad_ipv4_total_length", true;
    /// The IP total length claims more bytes than the frame holds (and the
    /// capture was not cut by its snaplen).
    IpLengthExceedsFrame => "ip_length_exceeds_frame", true;
    /// IPv6 extension header chain truncated or malformed.
    BadIpv6ExtensionHeader => "bad_ipv6_extension_header", true;
    /// Captured bytes end inside the TCP header.
    TruncatedTcpHeader => "truncated_tcp_header", true;
    /// TCP data offset below 5.
    BadTcpDataOffset => "bad_tcp_data_offset", true;
    /// Captured bytes end inside the UDP header.
    TruncatedUdpHeader => "truncated_udp_header", true;
    /// Captured bytes end inside the ICMP / ICMPv6 header.
    TruncatedIcmpHeader => "truncated_icmp_header", true;
    /// Captured bytes end inside the SCTP common header.
    TruncatedSctpHeader => "truncated_sctp_header", true;
    /// Captured bytes end inside a tunnel header (GRE, ERSPAN, GTP-U, ...).
    TruncatedTunnelHeader => "truncated_tunnel_header", true;
    /// A GRE header with an unknown version or protocol that cannot be followed.
    UnsupportedGre => "unsupported_gre", false;
    /// An IPv6 packet whose next header is "no next header" (59): nothing to
    /// key a flow on (Teredo bubbles, probes).
    NoNextHeader => "no_next_header", false;
    /// An IPv6 packet whose extension header chain ends at ESP (50): what
    /// follows is encrypted, so there is nothing to key a flow on. Zeek
    /// makes no connection of it either (its IPv6 header chain stops at ESP
    /// and `IPAnalyzer::AnalyzePacket` returns before any session); IPv4
    /// ESP is an `unknown_transport` connection in both.
    Ipv6Esp => "ipv6_esp", false;
    /// A non-first IP fragment whose first fragment was never seen (or was evicted).
    UnattributedFragment => "unattributed_fragment", false;
    /// A packet that would have started a connection, refused by the flow
    /// table: the memory cap left no room and nothing could be evicted
    /// ([`crate::table::TableStats::refused_no_memory`]), or a bare SYN
    /// while the table was full (flow cap or memory cap) and mostly
    /// half-open, with [`crate::TableConfig::refuse_syns_when_full`]
    /// ([`crate::table::TableStats::refused_syn_when_full`]).
    FlowTableFull => "flow_table_full", false;
    /// A first IP fragment too small to hold its TCP or UDP header (RFC
    /// 1858's tiny fragment attack): not decoded.
    TinyFirstFragment => "tiny_first_fragment", true;
    /// Anomaly (counted in [`crate::MeterStats::anomalies`], the packet is
    /// still decoded): a fragment overlaps an earlier one of its datagram
    /// with the same bytes (Zeek's name).
    FragmentOverlap => "fragment_overlap", false;
    /// Anomaly: a fragment overlaps an earlier one with different bytes,
    /// so receivers may reassemble different datagrams (Zeek's name).
    FragmentInconsistency => "fragment_inconsistency", true;
    /// Anomaly: a fragment other than the last one under 64 bytes of IP
    /// packet (Zeek's name and threshold).
    ExcessivelySmallFragment => "excessively_small_fragment", true;
    /// Anomaly: a fragment extending past byte 65535 of its datagram, more
    /// than an IP datagram can hold (Zeek's name; the ping of death).
    ExcessivelyLargeFragment => "excessively_large_fragment", true;
}

impl fmt::Display for Weird {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A counter per [`Weird`] reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeirdCounts {
    counts: [u64; Weird::COUNT],
}

// Written out: arrays derive `Default` only up to 32 elements.
impl Default for WeirdCounts {
    fn default() -> WeirdCounts {
        WeirdCounts {
            counts: [0; Weird::COUNT],
        }
    }
}

impl WeirdCounts {
    /// Adds one packet under `reason`.
    #[inline]
    pub fn add(&mut self, reason: Weird) {
        self.counts[reason as usize] += 1;
    }

    /// Counts `n` packets for one reason.
    pub fn add_n(&mut self, reason: Weird, n: u64) {
        self.counts[reason as usize] += n;
    }

    /// The count for one reason.
    pub fn get(&self, reason: Weird) -> u64 {
        self.counts[reason as usize]
    }

    /// Sum over all reasons.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Adds every counter of `other` into `self` (merging shards).
    pub fn merge(&mut self, other: &WeirdCounts) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
    }

    /// Non-zero counters, in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = (Weird, u64)> + '_ {
        Weird::ALL
            .iter()
            .map(|w| (*w, self.counts[*w as usize]))
            .filter(|(_, n)| *n > 0)
    }
}

impl Serialize for WeirdCounts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (w, n) in self.iter() {
            map.serialize_entry(w.name(), &n)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_snake_case() {
        let mut names: Vec<_> = Weird::ALL.iter().map(|w| w.name()).collect();
        assert!(names.iter().all(|n| n
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())));
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Weird::COUNT);
    }

    #[test]
    fn counts_merge_and_total() {
        let mut a = WeirdCounts::default();
        a.add(Weird::NonIpFrame);
        a.add(Weird::NonIpFrame);
        let mut b = WeirdCounts::default();
        b.add(Weird::TruncatedTcpHeader);
        a.merge(&b);
        assert_eq!(a.total(), 3);
        assert_eq!(a.get(Weird::NonIpFrame), 2);
        assert_eq!(a.iter().count(), 2);
    }
}
