//! Capture link types (the `LINKTYPE_*` values of pcap and pcapng files).

use std::fmt;

/// A capture's link-layer header type, as stored in a pcap file header or a
/// pcapng interface description block (`LINKTYPE_*` numbering).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkType(pub u32);

impl LinkType {
    /// BSD loopback (`DLT_NULL`): a 4-byte address family in host byte order.
    pub const NULL: LinkType = LinkType(0);
    /// Ethernet II / 802.3.
    pub const ETHERNET: LinkType = LinkType(1);
    /// PPP in HDLC-like framing (`DLT_PPP`).
    pub const PPP: LinkType = LinkType(9);
    /// Raw IP, version read from the first nibble (`LINKTYPE_RAW`).
    pub const RAW: LinkType = LinkType(101);
    /// OpenBSD loopback (`DLT_LOOP`): a 4-byte address family in network byte order.
    pub const LOOP: LinkType = LinkType(108);
    /// Linux cooked capture v1 (`DLT_LINUX_SLL`).
    pub const LINUX_SLL: LinkType = LinkType(113);
    /// Raw IPv4 only (`LINKTYPE_IPV4`).
    pub const IPV4: LinkType = LinkType(228);
    /// Raw IPv6 only (`LINKTYPE_IPV6`).
    pub const IPV6: LinkType = LinkType(229);
    /// Linux cooked capture v2 (`DLT_LINUX_SLL2`).
    pub const LINUX_SLL2: LinkType = LinkType(276);

    /// Maps a libpcap `DLT_*` value (what `pcap_datalink()` returns) to the
    /// `LINKTYPE_*` numbering used here. They differ only for a few
    /// historical values, e.g. `DLT_RAW` is 12 (or 14 on OpenBSD) while
    /// `LINKTYPE_RAW` is 101.
    pub fn from_dlt(dlt: u32) -> LinkType {
        match dlt {
            12 | 14 => LinkType::RAW,
            other => LinkType(other),
        }
    }

    /// Whether [`crate::decode::PacketView::parse`] understands this link type.
    pub fn is_supported(self) -> bool {
        matches!(self.0, 0 | 1 | 9 | 101 | 108 | 113 | 228 | 229 | 276)
    }

    /// The conventional short name (`"EN10MB"`, `"LINUX_SLL"`, ...), or `None` for
    /// a number this crate has no name for.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "NULL",
            1 => "EN10MB",
            9 => "PPP",
            101 => "RAW",
            108 => "LOOP",
            113 => "LINUX_SLL",
            228 => "IPV4",
            229 => "IPV6",
            276 => "LINUX_SLL2",
            _ => return None,
        })
    }
}

impl fmt::Display for LinkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{} ({})", n, self.0),
            None => write!(f, "link type {}", self.0),
        }
    }
}
