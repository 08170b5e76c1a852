//! The canonical bidirectional flow key, its symmetric hash, ICMP port
//! mapping and Community ID v1.

use base64::Engine as _;
use sha1::{Digest, Sha1};
use std::net::IpAddr;

/// IP protocol numbers with ports in the key.
const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;
const SCTP: u8 = 132;

/// One end of a connection: address and port (or ICMP type/code mapping).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// IP address.
    pub addr: IpAddr,
    /// Port; for ICMP the type (source) or counterpart type / code (destination).
    pub port: u16,
}

/// A canonical, direction-free flow key: both directions of a connection
/// produce the same key, the lower endpoint first.
///
/// The same 5-tuple on two VLANs is two flows: the VLAN ids are part of the key.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    /// The lower of the two endpoints (by address, then port).
    pub lo: Endpoint,
    /// The higher of the two endpoints.
    pub hi: Endpoint,
    /// IP protocol number.
    pub proto: u8,
    /// Outer VLAN id.
    pub vlan: Option<u16>,
    /// Inner VLAN id.
    pub inner_vlan: Option<u16>,
}

impl FlowKey {
    /// Builds the key of a packet from `src` to `dst`; also returns whether
    /// `src` is the key's `lo` endpoint.
    pub fn new(
        src: Endpoint,
        dst: Endpoint,
        proto: u8,
        vlan: Option<u16>,
        inner_vlan: Option<u16>,
    ) -> (FlowKey, bool) {
        let src_is_lo = src <= dst;
        let (lo, hi) = if src_is_lo { (src, dst) } else { (dst, src) };
        (
            FlowKey {
                lo,
                hi,
                proto,
                vlan,
                inner_vlan,
            },
            src_is_lo,
        )
    }

    /// A hash of the key that is the same in both directions (the key is
    /// canonical), stable across runs and platforms: use it to pick a shard
    /// and to derive identifiers.
    pub fn symmetric_hash(&self) -> u64 {
        let mut h = StableHasher::default();
        h.addr(self.lo.addr);
        h.addr(self.hi.addr);
        h.word(u64::from(self.lo.port) << 16 | u64::from(self.hi.port));
        h.word(
            u64::from(self.proto)
                | u64::from(self.vlan.map_or(0, |v| u32::from(v) | 0x1_0000)) << 8
                | u64::from(self.inner_vlan.map_or(0, |v| u32::from(v) | 0x1_0000)) << 28,
        );
        h.finish()
    }
}

/// A small deterministic 64-bit hasher (multiply-xorshift), so that shard
/// choice and uids do not depend on a per-process random seed.
#[derive(Default)]
struct StableHasher(u64);

impl StableHasher {
    fn word(&mut self, w: u64) {
        self.0 = mix64(self.0 ^ w.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    }

    fn addr(&mut self, a: IpAddr) {
        match a {
            IpAddr::V4(v4) => self.word(u64::from(u32::from(v4))),
            IpAddr::V6(v6) => {
                let n = u128::from(v6);
                self.word(n as u64);
                self.word((n >> 64) as u64 ^ 0x6);
            }
        }
    }

    fn finish(&self) -> u64 {
        mix64(self.0)
    }
}

/// The finaliser of SplitMix64: a bijective 64-bit mix.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Maps an ICMP type and code to the (source, destination) "ports" Zeek and
/// Community ID use: the type, and the type of the matching reply (or
/// request) for two-way messages, else the code. The flag says whether the
/// message is one-way (errors, redirects, ...).
pub fn icmp_ports(v6: bool, icmp_type: u8, code: u8) -> (u16, u16, bool) {
    let counterpart = if v6 {
        match icmp_type {
            128 => Some(129),
            129 => Some(128),
            130 => Some(131),
            131 => Some(130),
            133 => Some(134),
            134 => Some(133),
            135 => Some(136),
            136 => Some(135),
            139 => Some(140),
            140 => Some(139),
            144 => Some(145),
            145 => Some(144),
            _ => None,
        }
    } else {
        match icmp_type {
            8 => Some(0),
            0 => Some(8),
            13 => Some(14),
            14 => Some(13),
            15 => Some(16),
            16 => Some(15),
            17 => Some(18),
            18 => Some(17),
            10 => Some(9),
            9 => Some(10),
            _ => None,
        }
    };
    match counterpart {
        Some(c) => (u16::from(icmp_type), c, false),
        None => (u16::from(icmp_type), u16::from(code), true),
    }
}

/// Whether ICMP type `t` is the answering half of a two-way exchange (echo
/// reply, router advertisement, ...): such a packet's sender is the
/// responder of the connection.
pub fn icmp_is_reply(v6: bool, t: u8) -> bool {
    if v6 {
        matches!(t, 129 | 131 | 134 | 136 | 140 | 145)
    } else {
        matches!(t, 0 | 14 | 16 | 18 | 9)
    }
}

/// Computes a Community ID v1 flow hash (`"1:<base64 sha1>"`) with seed 0.
///
/// `src`/`dst` are the connection's originator and responder; ports are
/// ignored for protocols without them. ICMP ports must already be mapped
/// with [`icmp_ports`] (`one_way` comes from there).
pub fn community_id(src: Endpoint, dst: Endpoint, proto: u8, one_way: bool) -> String {
    community_id_seeded(0, src, dst, proto, one_way)
}

/// [`community_id`] with an explicit seed.
pub fn community_id_seeded(
    seed: u16,
    src: Endpoint,
    dst: Endpoint,
    proto: u8,
    one_way: bool,
) -> String {
    let has_ports = matches!(proto, TCP | UDP | SCTP | ICMP | ICMPV6);
    let (mut a, mut b) = (src, dst);
    if !has_ports {
        a.port = 0;
        b.port = 0;
    }
    let ordered = a.addr < b.addr || (a.addr == b.addr && a.port < b.port);
    // One-way ICMP messages (errors, redirects) keep their direction.
    let swap = !(ordered || (matches!(proto, ICMP | ICMPV6) && one_way));
    if swap {
        std::mem::swap(&mut a, &mut b);
    }
    let mut h = Sha1::new();
    h.update(seed.to_be_bytes());
    for addr in [a.addr, b.addr] {
        match addr {
            IpAddr::V4(v4) => h.update(v4.octets()),
            IpAddr::V6(v6) => h.update(v6.octets()),
        }
    }
    h.update([proto, 0]);
    if has_ports {
        h.update(a.port.to_be_bytes());
        h.update(b.port.to_be_bytes());
    }
    format!(
        "1:{}",
        base64::engine::general_purpose::STANDARD.encode(h.finalize())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(a: &str, port: u16) -> Endpoint {
        Endpoint {
            addr: a.parse().unwrap(),
            port,
        }
    }

    #[test]
    fn key_is_the_same_in_both_directions() {
        let a = ep("10.0.0.1", 1234);
        let b = ep("10.0.0.2", 80);
        let (k1, lo1) = FlowKey::new(a, b, 6, Some(10), None);
        let (k2, lo2) = FlowKey::new(b, a, 6, Some(10), None);
        assert_eq!(k1, k2);
        assert_ne!(lo1, lo2);
        assert_eq!(k1.symmetric_hash(), k2.symmetric_hash());
        let (k3, _) = FlowKey::new(a, b, 6, Some(11), None);
        assert_ne!(k1, k3, "same 5-tuple on another VLAN is another flow");
        assert_ne!(k1.symmetric_hash(), k3.symmetric_hash());
    }

    /// Vectors from Zeek's Community ID baseline in the corpus.
    #[test]
    fn community_id_matches_zeek_for_tcp_icmp_and_icmp6() {
        assert_eq!(
            community_id(
                ep("141.142.228.5", 59856),
                ep("192.150.187.43", 80),
                6,
                false
            ),
            "1:yvyB8h+3dnggTZW0UEITWCst97w="
        );
        assert_eq!(
            community_id(ep("192.168.0.89", 8), ep("192.168.0.1", 0), 1, false),
            "1:X0snYXpgwiv9TZtqg64sgzUn6Dk="
        );
        let (s, d, one_way) = icmp_ports(true, 3, 0);
        assert!(one_way);
        assert_eq!(
            community_id(
                ep("3ffe:501:0:1802:260:97ff:feb6:7ff0", s),
                ep("3ffe:507:0:1:200:86ff:fe05:80da", d),
                58,
                one_way
            ),
            "1:bnQKq8A2r//dWnkRW2EYcMhShjc="
        );
        let (s, d, one_way) = icmp_ports(true, 1, 4);
        assert_eq!(
            community_id(
                ep("3ffe:507:0:1:200:86ff:fe05:80da", s),
                ep("3ffe:501:4819::42", d),
                58,
                one_way
            ),
            "1:jwuBy9UWZK1KUFqJV5cHdVpfrlY="
        );
        let (s, d, one_way) = icmp_ports(true, 135, 0);
        assert_eq!(
            community_id(
                ep("3ffe:507:0:1:260:97ff:fe07:69ea", s),
                ep("3ffe:507:0:1:200:86ff:fe05:80da", d),
                58,
                one_way
            ),
            "1:BtEUCMYecYjJ7spEkVZDiCFaMTY="
        );
        assert_eq!(
            community_id(ep("192.168.170.8", 0), ep("192.168.170.56", 0), 132, false),
            "1:U5cVwrVgLshgANPmc8hKzEcqp1M=",
            "with ports 0 as Zeek sees SCTP"
        );
    }
}
