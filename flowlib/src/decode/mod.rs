//! Zero-copy packet decoding.
//!
//! [`PacketView::parse`] is the only way in: it takes the captured bytes, the
//! capture's [`LinkType`], the capture timestamp and the original (wire)
//! length, and returns a view that borrows the bytes. It never allocates and
//! never panics, whatever the input: every slice access is checked, and a
//! packet that cannot be decoded comes back as a [`DecodeError`] naming a
//! [`Weird`] reason and the byte offset where decoding stopped.
//!
//! What is understood:
//! - link types: Ethernet, Linux SLL and SLL2, raw IP (101, 228, 229), BSD
//!   null / loopback (0, 108), PPP (9);
//! - inside frames: 802.1Q / 802.1ad tags (outer and inner VLAN id kept),
//!   MPLS label stacks, PPPoE sessions, Cisco VN-Tag, 802.2 SNAP;
//! - IPv4 with options, IPv6 with extension headers (through etherparse's
//!   header slices), IP fragments (flagged, see [`Fragment`]);
//! - TCP, UDP, ICMP, ICMPv6, SCTP and any other IP protocol by number;
//! - tunnels, decapsulated so flows are keyed on the innermost packet: GRE
//!   (keys, sequence numbers, ERSPAN II/III, PPTP enhanced GRE), VXLAN, Geneve,
//!   IP-in-IP (4in4, 6in4, 4in6, 6in6), GTP-U, Teredo, AYIYA, MPLS over UDP.
//!
//! Snaplen truncation is not an error: a packet whose payload was cut by the
//! snaplen decodes normally with [`PacketView::truncated`] set; only a header
//! that is cut off makes a packet undecodable.

mod ip;
mod ipv6_ext;
mod link;
mod tunnel;

use crate::time::Timestamp;
use crate::weird::Weird;
use crate::LinkType;
use std::fmt;
use std::net::IpAddr;

/// How many UDP-based encapsulations (each one a flow of its own) a single
/// packet may carry before its inner packet; deeper nesting is a
/// [`Weird::TunnelsTooDeep`].
pub const MAX_ENCAPS: usize = 3;

/// Maximum nesting of tunnels of any kind (GRE, IP-in-IP, UDP-based); deeper
/// nesting is a [`Weird::TunnelsTooDeep`].
pub const MAX_TUNNEL_DEPTH: usize = 4;

/// Maximum 802.1Q / 802.1ad tags in one frame (QinQ uses two; some carrier
/// networks three); more is a [`Weird::TooManyVlanTags`].
pub const MAX_VLAN_TAGS: usize = 8;

/// Maximum MPLS labels in one stack; a deeper stack is a
/// [`Weird::TooManyMplsLabels`].
pub const MAX_MPLS_LABELS: usize = 16;

/// Maximum IPv6 extension headers in one IPv6 header chain (RFC 8200 lets
/// each appear once, destination options twice); a longer chain is a
/// [`Weird::TooManyIpv6ExtensionHeaders`].
pub const MAX_IPV6_EXT_HEADERS: usize = 16;

/// Maximum layers (link headers, tags, label stacks, IP headers, tunnel
/// headers) decoded in one packet, whatever their kind; more is a
/// [`Weird::TooManyHeaders`]. Together with the limits above, this bounds
/// the work per packet independently of its contents.
pub const MAX_LAYERS: usize = 64;

/// A packet that could not be decoded: why, and where decoding stopped.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct DecodeError {
    /// The named reason, counted by the caller.
    pub weird: Weird,
    /// Byte offset into the captured bytes of the header that failed (or of
    /// the first byte that could not be followed); never beyond the
    /// captured length.
    pub offset: usize,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.weird, self.offset)
    }
}

impl std::error::Error for DecodeError {}

/// The kind of encapsulation a packet arrived through.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum TunnelKind {
    /// Generic Routing Encapsulation (RFC 2784/2890), incl. transparent Ethernet bridging.
    Gre,
    /// Cisco ERSPAN type I/II/III carried in GRE.
    Erspan,
    /// PPTP's enhanced GRE (version 1) carrying PPP.
    Pptp,
    /// IPv4 or IPv6 directly inside IPv4 or IPv6 (protocols 4 and 41).
    IpInIp,
    /// VXLAN over UDP (RFC 7348).
    Vxlan,
    /// Geneve over UDP (RFC 8926).
    Geneve,
    /// GTP-U (GPRS tunnelling, user plane) over UDP.
    GtpU,
    /// Teredo (RFC 4380): IPv6 over UDP.
    Teredo,
    /// AYIYA ("anything in anything") over UDP.
    Ayiya,
    /// MPLS over UDP (RFC 7510).
    MplsOverUdp,
}

impl TunnelKind {
    /// Lower-case name, as Zeek's tunnel.log writes tunnel types.
    pub fn name(self) -> &'static str {
        match self {
            TunnelKind::Gre => "gre",
            TunnelKind::Erspan => "erspan",
            TunnelKind::Pptp => "pptp",
            TunnelKind::IpInIp => "ip",
            TunnelKind::Vxlan => "vxlan",
            TunnelKind::Geneve => "geneve",
            TunnelKind::GtpU => "gtpv1",
            TunnelKind::Teredo => "teredo",
            TunnelKind::Ayiya => "ayiya",
            TunnelKind::MplsOverUdp => "mpls_over_udp",
        }
    }
}

/// The outer connection a tunnelled packet travelled through.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tunnel {
    /// What kind of tunnel.
    pub kind: TunnelKind,
    /// Outer source address.
    pub src: IpAddr,
    /// Outer destination address.
    pub dst: IpAddr,
    /// Outer source port (0 for GRE and IP-in-IP).
    pub src_port: u16,
    /// Outer destination port (0 for GRE and IP-in-IP).
    pub dst_port: u16,
    /// Outer IP protocol (47 GRE, 4/41 IP-in-IP, 17 UDP).
    pub proto: u8,
}

impl Tunnel {
    /// The same tunnel with its endpoints in a fixed order, so both
    /// directions compare equal.
    pub fn canonical(self) -> Tunnel {
        if (self.src, self.src_port) <= (self.dst, self.dst_port) {
            self
        } else {
            Tunnel {
                src: self.dst,
                dst: self.src,
                src_port: self.dst_port,
                dst_port: self.src_port,
                ..self
            }
        }
    }
}

/// Where a packet sits in a fragmented IP datagram.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Fragment {
    /// IPv4 identification or IPv6 fragment identification.
    pub id: u32,
    /// Fragment offset in bytes.
    pub offset: u32,
    /// More fragments follow.
    pub more: bool,
    /// Bytes of the datagram's fragmentable part this fragment carries, as
    /// its IP length states them (IPv4: the payload; IPv6: what follows
    /// the fragment header).
    pub len: u32,
}

/// The IP layer of a flow-bearing packet.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct IpInfo {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Transport protocol number (after any IPv6 extension headers).
    pub proto: u8,
    /// IP packet length as the header states it (IPv4 total length, IPv6
    /// 40 + payload length); the captured length when the header says 0 (TSO /
    /// BIG TCP / jumbograms). This is what Zeek counts as `ip_bytes`.
    pub ip_len: u32,
    /// Bytes of IP header, including IPv4 options and IPv6 extension headers.
    pub header_len: u32,
    /// Set when this packet is an IP fragment.
    pub fragment: Option<Fragment>,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
}

/// TCP flag bits as they appear in the header's flags byte.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// FIN bit.
    pub const FIN: u8 = 0x01;
    /// SYN bit.
    pub const SYN: u8 = 0x02;
    /// RST bit.
    pub const RST: u8 = 0x04;
    /// PSH bit.
    pub const PSH: u8 = 0x08;
    /// ACK bit.
    pub const ACK: u8 = 0x10;
    /// URG bit.
    pub const URG: u8 = 0x20;

    /// FIN set.
    pub fn fin(self) -> bool {
        self.0 & Self::FIN != 0
    }
    /// SYN set.
    pub fn syn(self) -> bool {
        self.0 & Self::SYN != 0
    }
    /// RST set.
    pub fn rst(self) -> bool {
        self.0 & Self::RST != 0
    }
    /// PSH set.
    pub fn psh(self) -> bool {
        self.0 & Self::PSH != 0
    }
    /// ACK set.
    pub fn ack(self) -> bool {
        self.0 & Self::ACK != 0
    }
    /// URG set.
    pub fn urg(self) -> bool {
        self.0 & Self::URG != 0
    }
}

/// A decoded TCP segment.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TcpSegment<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Flags.
    pub flags: TcpFlags,
    /// Advertised window (unscaled).
    pub window: u16,
    /// Payload length according to the IP length fields (not the captured bytes).
    pub payload_len: u32,
    /// The captured part of the payload (shorter than `payload_len` under snaplen).
    pub payload: &'a [u8],
}

/// The transport layer of a flow-bearing packet.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Transport<'a> {
    /// TCP.
    Tcp(TcpSegment<'a>),
    /// UDP.
    Udp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
        /// Payload bytes according to the length fields.
        payload_len: u32,
    },
    /// ICMP (v4 or v6).
    Icmp {
        /// ICMPv6 rather than ICMPv4.
        v6: bool,
        /// Message type.
        icmp_type: u8,
        /// Message code.
        code: u8,
        /// Bytes after the 8-byte ICMP header, as Zeek counts ICMP payload.
        payload_len: u32,
    },
    /// SCTP (common header only).
    Sctp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
        /// Verification tag.
        vtag: u32,
        /// Bytes after the 12-byte common header.
        payload_len: u32,
    },
    /// Any other IP protocol: no ports.
    Other {
        /// Bytes after the IP header(s).
        payload_len: u32,
    },
    /// A non-first IP fragment: the transport header is in another packet.
    /// The flow table attributes it through its fragment tracker.
    NonFirstFragment {
        /// Bytes of this fragment's payload.
        payload_len: u32,
    },
}

impl Transport<'_> {
    /// Source and destination ports (0 for protocols without ports).
    pub fn ports(&self) -> (u16, u16) {
        match *self {
            Transport::Tcp(ref t) => (t.src_port, t.dst_port),
            Transport::Udp {
                src_port, dst_port, ..
            }
            | Transport::Sctp {
                src_port, dst_port, ..
            } => (src_port, dst_port),
            Transport::Icmp { .. }
            | Transport::Other { .. }
            | Transport::NonFirstFragment { .. } => (0, 0),
        }
    }

    /// Payload bytes this packet carries above its transport header.
    pub fn payload_len(&self) -> u32 {
        match *self {
            Transport::Tcp(ref t) => t.payload_len,
            Transport::Udp { payload_len, .. }
            | Transport::Icmp { payload_len, .. }
            | Transport::Sctp { payload_len, .. }
            | Transport::Other { payload_len }
            | Transport::NonFirstFragment { payload_len } => payload_len,
        }
    }
}

/// One IP packet that updates one flow: the innermost packet of a frame, or
/// a UDP-based tunnel's outer packet (which is a flow of its own, as in Zeek).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FlowPacket<'a> {
    /// Outer 802.1Q / 802.1ad VLAN id of the frame carrying this packet
    /// (for a packet inside a tunnel: of the tunnel's inner frame, so none
    /// when the tunnel carries IP directly; the outer frame's tags are not
    /// the inner packet's, as in Zeek).
    pub vlan: Option<u16>,
    /// Inner (second) VLAN id, of the same frame.
    pub inner_vlan: Option<u16>,
    /// IP layer.
    pub ip: IpInfo,
    /// Transport layer.
    pub transport: Transport<'a>,
    /// The innermost tunnel this packet was carried in, if any.
    pub tunnel: Option<Tunnel>,
    /// The captured IP payload of a fragment (transport header included in
    /// a first fragment), for the fragment tracker's overlap checks; empty
    /// when the packet is not a fragment.
    pub fragment_bytes: &'a [u8],
}

/// A decoded packet: a borrowed view of the captured bytes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PacketView<'a> {
    /// Capture timestamp.
    pub ts: Timestamp,
    /// Length on the wire.
    pub wire_len: u32,
    /// Captured length.
    pub cap_len: u32,
    /// The capture cut the packet short (snaplen): payload sizes come from
    /// the headers, not from the captured bytes.
    pub truncated: bool,
    /// UDP-based tunnel packets wrapping [`PacketView::inner`], outermost first.
    encaps: [Option<FlowPacket<'a>>; MAX_ENCAPS],
    /// The innermost flow-bearing packet.
    pub inner: FlowPacket<'a>,
}

impl<'a> PacketView<'a> {
    /// Decodes one captured packet.
    ///
    /// `data` are the captured bytes, `wire_len` the original length (at least
    /// `data.len()`; a smaller value is treated as `data.len()`).
    /// Never panics and never allocates.
    pub fn parse(
        data: &'a [u8],
        link: LinkType,
        ts: Timestamp,
        wire_len: u32,
    ) -> Result<PacketView<'a>, DecodeError> {
        let cap_len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let wire_len = wire_len.max(cap_len);
        let mut dec = Decoder {
            data,
            wire_len: wire_len as usize,
            truncated: wire_len > cap_len,
            vlan: None,
            inner_vlan: None,
            tunnel: None,
            depth: 0,
            vlan_tags: 0,
            encaps: [None; MAX_ENCAPS],
            n_encaps: 0,
            partial: false,
            fragment_bytes: &[],
            fallback: None,
        };
        let inner = dec.run(link)?;
        Ok(PacketView {
            ts,
            wire_len,
            cap_len,
            truncated: dec.truncated,
            encaps: dec.encaps,
            inner,
        })
    }

    /// The UDP-based tunnel packets around the inner packet, outermost first.
    /// Each one also updates a flow of its own.
    pub fn encapsulations(&self) -> impl Iterator<Item = &FlowPacket<'a>> {
        self.encaps.iter().map_while(|e| e.as_ref())
    }

    /// Every flow update this packet makes: the encapsulations, then the inner packet.
    pub fn flow_packets(&self) -> impl Iterator<Item = &FlowPacket<'a>> {
        self.encapsulations().chain(std::iter::once(&self.inner))
    }
}

/// What the layer after the current one is.
#[derive(Copy, Clone, Debug)]
pub(crate) enum Next {
    /// An Ethernet II frame (inside a tunnel).
    Ethernet,
    /// A payload identified by EtherType.
    EtherType(u16),
    /// IPv4 or IPv6 by its version nibble; `Some(v)` requires that version.
    Ip(Option<u8>),
    /// PPP with its protocol field first (after any address/control bytes).
    Ppp,
    /// An MPLS label stack.
    Mpls,
}

/// Per-packet decoding state: where we are and what we have learned.
pub(crate) struct Decoder<'a> {
    pub(crate) data: &'a [u8],
    /// The frame's length on the wire (at least `data.len()`).
    pub(crate) wire_len: usize,
    pub(crate) truncated: bool,
    pub(crate) vlan: Option<u16>,
    pub(crate) inner_vlan: Option<u16>,
    pub(crate) tunnel: Option<Tunnel>,
    pub(crate) depth: usize,
    /// 802.1Q / 802.1ad tags seen so far in the current frame (a tunnel's
    /// inner frame starts again at 0).
    pub(crate) vlan_tags: usize,
    pub(crate) encaps: [Option<FlowPacket<'a>>; MAX_ENCAPS],
    pub(crate) n_encaps: usize,
    /// Inside the first fragment of a fragmented packet: inner length fields
    /// may describe more bytes than are here.
    pub(crate) partial: bool,
    /// The IP payload of the fragment being decoded (empty if none).
    pub(crate) fragment_bytes: &'a [u8],
    /// The outer UDP packet of the innermost UDP tunnel entered, and the
    /// number of encapsulations before it: if the tunnel's payload does not
    /// decode, the packet is that plain UDP packet instead.
    pub(crate) fallback: Option<(FlowPacket<'a>, usize)>,
}

/// Shorthand for a decode error.
pub(crate) fn err<T>(weird: Weird, offset: usize) -> Result<T, DecodeError> {
    Err(DecodeError { weird, offset })
}

/// Checks that a `len`-byte header starts at `off`, or fails with `weird`
/// at the header's start.
pub(crate) fn need(data: &[u8], off: usize, len: usize, weird: Weird) -> Result<(), DecodeError> {
    if data.len() < off.saturating_add(len) {
        return err(weird, off.min(data.len()));
    }
    Ok(())
}

/// Reads a big-endian u16 at `off`, or fails with `weird`.
pub(crate) fn be16(data: &[u8], off: usize, weird: Weird) -> Result<u16, DecodeError> {
    match data.get(off..off + 2) {
        Some(b) => Ok(u16::from_be_bytes([b[0], b[1]])),
        None => err(weird, off),
    }
}

/// Reads a big-endian u32 at `off`, or fails with `weird`.
pub(crate) fn be32(data: &[u8], off: usize, weird: Weird) -> Result<u32, DecodeError> {
    match data.get(off..off + 4) {
        Some(b) => Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        None => err(weird, off),
    }
}

/// Reads one byte at `off`, or fails with `weird`.
pub(crate) fn byte(data: &[u8], off: usize, weird: Weird) -> Result<u8, DecodeError> {
    match data.get(off) {
        Some(b) => Ok(*b),
        None => err(weird, off),
    }
}

/// Whether `weird` is one of the per-packet work limits.
fn is_limit(weird: Weird) -> bool {
    matches!(
        weird,
        Weird::TooManyHeaders
            | Weird::TooManyVlanTags
            | Weird::TooManyMplsLabels
            | Weird::TooManyIpv6ExtensionHeaders
            | Weird::TunnelsTooDeep
    )
}

impl<'a> Decoder<'a> {
    /// Decodes the whole packet. A failure inside a UDP tunnel's payload
    /// falls back to the outer UDP packet: the datagram was real, only its
    /// content was not what the port suggested. Hitting a work limit does
    /// not: such a packet is counted under its limit's weird.
    fn run(&mut self, link: LinkType) -> Result<FlowPacket<'a>, DecodeError> {
        match self.layers(link) {
            Ok(packet) => Ok(packet),
            Err(e) if is_limit(e.weird) => Err(e),
            Err(e) => match self.fallback.take() {
                Some((outer, n_encaps)) => {
                    for slot in &mut self.encaps[n_encaps..] {
                        *slot = None;
                    }
                    self.n_encaps = n_encaps;
                    Ok(outer)
                }
                None => Err(e),
            },
        }
    }

    fn layers(&mut self, link: LinkType) -> Result<FlowPacket<'a>, DecodeError> {
        let (mut off, mut next) = self.link_header(link)?;
        // Bounded: at most MAX_LAYERS steps, each of bounded work.
        for _ in 0..MAX_LAYERS {
            match next {
                Next::Ethernet => {
                    need(self.data, off, 14, Weird::TruncatedLinkHeader)?;
                    let ethertype = be16(self.data, off + 12, Weird::TruncatedLinkHeader)?;
                    off += 14;
                    next = Next::EtherType(ethertype);
                }
                Next::EtherType(t) => {
                    let (o, n) = self.ethertype(t, off)?;
                    off = o;
                    next = n;
                }
                Next::Ppp => {
                    let (o, n) = self.ppp(off)?;
                    off = o;
                    next = n;
                }
                Next::Mpls => {
                    let (o, n) = self.mpls(off)?;
                    off = o;
                    next = n;
                }
                Next::Ip(version) => match self.ip(off, version)? {
                    ip::IpStep::Done(packet) => return Ok(packet),
                    ip::IpStep::Continue(o, n) => {
                        off = o;
                        next = n;
                    }
                },
            }
        }
        err(Weird::TooManyHeaders, off)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    /// An inner Ethernet/IPv4/UDP frame.
    fn inner_frame() -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([192, 0, 2, 1], [192, 0, 2, 2], 64)
            .udp(5353, 53)
            .write(&mut v, b"query")
            .unwrap();
        v
    }

    /// Ethernet/IPv4/GRE with the given GRE header, carrying `payload`.
    fn gre(gre_header: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut ip = Vec::new();
        ip.extend_from_slice(gre_header);
        ip.extend_from_slice(payload);
        let mut v = Vec::new();
        PacketBuilder::ethernet2([3; 6], [4; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .write(&mut v, etherparse::IpNumber(47), &ip)
            .unwrap();
        v
    }

    fn assert_inner_udp(frame: &[u8], kind: TunnelKind) {
        let v =
            PacketView::parse(frame, LinkType::ETHERNET, Timestamp(0), frame.len() as u32).unwrap();
        assert_eq!(v.inner.ip.src, IpAddr::from([192, 0, 2, 1]));
        assert_eq!(v.inner.transport.ports(), (5353, 53));
        assert_eq!(v.inner.transport.payload_len(), 5);
        let t = v.inner.tunnel.expect("tunnel parent");
        assert_eq!(
            (t.kind, t.src, t.proto),
            (kind, IpAddr::from([10, 0, 0, 1]), 47)
        );
        assert_eq!(
            v.encapsulations().count(),
            0,
            "GRE is not a flow of its own"
        );
    }

    #[test]
    fn erspan_type_iii_with_and_without_platform_subheader() {
        let mut hdr = vec![0x10, 0, 0x22, 0xeb, 0, 0, 0, 1]; // S flag, seq
        let erspan = [0x20, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]; // ver 2, O=0
        let mut payload = erspan.to_vec();
        payload.extend(inner_frame());
        assert_inner_udp(&gre(&hdr, &payload), TunnelKind::Erspan);

        let mut with_platform = erspan.to_vec();
        with_platform[11] |= 0x01;
        with_platform.extend([0u8; 8]);
        with_platform.extend(inner_frame());
        assert_inner_udp(&gre(&hdr, &with_platform), TunnelKind::Erspan);

        // ERSPAN type II: 8-byte header after a GRE header with a sequence number.
        hdr[2..4].copy_from_slice(&[0x88, 0xbe]);
        let mut ii = vec![0x10, 0, 0, 1, 0, 0, 0, 0];
        ii.extend(inner_frame());
        assert_inner_udp(&gre(&hdr, &ii), TunnelKind::Erspan);
    }

    #[test]
    fn gre_with_checksum_key_and_sequence_carrying_ethernet() {
        let hdr = [0xb0, 0, 0x65, 0x58, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 1];
        assert_inner_udp(&gre(&hdr, &inner_frame()), TunnelKind::Gre);
    }

    #[test]
    fn truncated_gre_header_is_a_named_weird() {
        let frame = gre(&[0xb0, 0, 0x65, 0x58, 0, 0], &[]);
        let e = PacketView::parse(&frame, LinkType::ETHERNET, Timestamp(0), frame.len() as u32)
            .unwrap_err();
        assert_eq!(e.weird, Weird::TruncatedTunnelHeader);
        assert_eq!(
            e.offset, 34,
            "the GRE header starts after Ethernet and IPv4"
        );
    }

    #[test]
    fn vxlan_outer_udp_is_a_flow_and_the_inner_packet_is_keyed() {
        let mut vx = vec![0x08, 0, 0, 0, 0, 0, 0x2a, 0];
        vx.extend(inner_frame());
        let mut frame = Vec::new();
        PacketBuilder::ethernet2([3; 6], [4; 6])
            .single_vlan(etherparse::VlanId::try_new(30).unwrap())
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(40000, 4789)
            .write(&mut frame, &vx)
            .unwrap();
        let v = PacketView::parse(&frame, LinkType::ETHERNET, Timestamp(0), frame.len() as u32)
            .unwrap();
        let outer: Vec<_> = v.encapsulations().collect();
        assert_eq!(outer.len(), 1);
        assert_eq!(outer[0].transport.ports(), (40000, 4789));
        assert_eq!(outer[0].vlan, Some(30));
        assert_eq!(v.inner.transport.ports(), (5353, 53));
        assert_eq!(v.inner.tunnel.unwrap().kind, TunnelKind::Vxlan);
    }

    #[test]
    fn udp_on_a_tunnel_port_that_is_not_a_tunnel_stays_plain_udp() {
        let mut frame = Vec::new();
        PacketBuilder::ethernet2([3; 6], [4; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(40000, 4789)
            .write(&mut frame, &[0x08, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff])
            .unwrap();
        let v = PacketView::parse(&frame, LinkType::ETHERNET, Timestamp(0), frame.len() as u32)
            .unwrap();
        assert_eq!(v.encapsulations().count(), 0);
        assert_eq!(v.inner.transport.ports(), (40000, 4789));
        assert!(v.inner.tunnel.is_none());
    }

    #[test]
    fn snaplen_cut_payload_is_a_flag_not_an_error() {
        let mut frame = Vec::new();
        PacketBuilder::ethernet2([3; 6], [4; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(1, 2, 3, 4)
            .write(&mut frame, &[0u8; 1000])
            .unwrap();
        let wire = frame.len() as u32;
        let v = PacketView::parse(&frame[..96], LinkType::ETHERNET, Timestamp(0), wire).unwrap();
        assert!(v.truncated);
        match v.inner.transport {
            Transport::Tcp(t) => {
                assert_eq!(t.payload_len, 1000);
                assert_eq!(t.payload.len(), 96 - 54);
            }
            other => panic!("{other:?}"),
        }
        // The same bytes without a snaplen cut are an inconsistent packet.
        let e = PacketView::parse(&frame[..96], LinkType::ETHERNET, Timestamp(0), 96).unwrap_err();
        assert_eq!(e.weird, Weird::IpLengthExceedsFrame);
    }

    /// `inner_frame()` with 802.1Q tags of these ids (priority 3) after
    /// the MAC addresses, outermost first.
    fn tagged(ids: &[u16]) -> Vec<u8> {
        tag(&inner_frame(), ids)
    }

    /// The Ethernet frame `plain` with 802.1Q tags of these ids (priority
    /// 3) after the MAC addresses, outermost first.
    fn tag(plain: &[u8], ids: &[u16]) -> Vec<u8> {
        let mut v = plain[..12].to_vec();
        for id in ids {
            v.extend_from_slice(&[0x81, 0x00]);
            v.extend_from_slice(&(0x6000 | id).to_be_bytes());
        }
        v.extend_from_slice(&plain[12..]);
        v
    }

    fn parse(frame: &[u8]) -> PacketView<'_> {
        PacketView::parse(frame, LinkType::ETHERNET, Timestamp(0), frame.len() as u32).unwrap()
    }

    #[test]
    fn a_tunnelled_packet_carries_its_inner_frames_vlans_not_the_outer_ones() {
        // ERSPAN type II on outer QinQ 300/301, mirroring a frame of VLAN 20.
        let hdr = [0x10, 0, 0x88, 0xbe, 0, 0, 0, 1];
        let mut erspan = vec![0x10, 0x14, 0, 1, 0, 0, 0, 0];
        erspan.extend(tag(&inner_frame(), &[20]));
        let frame = tag(&gre(&hdr, &erspan), &[300, 301]);
        let v = parse(&frame);
        assert_eq!(v.inner.tunnel.unwrap().kind, TunnelKind::Erspan);
        assert_eq!((v.inner.vlan, v.inner.inner_vlan), (Some(20), None));
        // The same frame mirrored untagged: no VLAN at all.
        let mut erspan = vec![0x10, 0x14, 0, 1, 0, 0, 0, 0];
        erspan.extend(inner_frame());
        let frame = tag(&gre(&hdr, &erspan), &[300, 301]);
        let v = parse(&frame);
        assert_eq!((v.inner.vlan, v.inner.inner_vlan), (None, None));

        // GRE carrying IPv4 directly, on VLAN 100: no inner frame, no VLAN.
        let ip_only = &inner_frame()[14..];
        let frame = tag(&gre(&[0, 0, 0x08, 0], ip_only), &[100]);
        let v = parse(&frame);
        assert_eq!(v.inner.tunnel.unwrap().kind, TunnelKind::Gre);
        assert_eq!(v.inner.transport.ports(), (5353, 53));
        assert_eq!((v.inner.vlan, v.inner.inner_vlan), (None, None));

        // VXLAN on VLAN 30: the outer UDP flow keeps 30, the inner frame's
        // own tag (7) is the inner packet's only one.
        let mut vx = vec![0x08, 0, 0, 0, 0, 0, 0x2a, 0];
        vx.extend(tag(&inner_frame(), &[7]));
        let mut frame = Vec::new();
        PacketBuilder::ethernet2([3; 6], [4; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(40000, 4789)
            .write(&mut frame, &vx)
            .unwrap();
        let frame = tag(&frame, &[30]);
        let v = parse(&frame);
        let outer: Vec<_> = v.encapsulations().collect();
        assert_eq!((outer[0].vlan, outer[0].inner_vlan), (Some(30), None));
        assert_eq!((v.inner.vlan, v.inner.inner_vlan), (Some(7), None));
    }

    #[test]
    fn vlan_tags_are_limited_per_frame_not_per_packet() {
        // Six tags outside a VXLAN tunnel and six inside: each frame is
        // under MAX_VLAN_TAGS, so the packet decodes.
        let ids = [11, 12, 13, 14, 15, 16];
        let mut vx = vec![0x08, 0, 0, 0, 0, 0, 0x2a, 0];
        vx.extend(tag(&inner_frame(), &ids));
        let mut frame = Vec::new();
        PacketBuilder::ethernet2([3; 6], [4; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(40000, 4789)
            .write(&mut frame, &vx)
            .unwrap();
        let frame = tag(&frame, &ids);
        let v = parse(&frame);
        assert_eq!(v.inner.transport.ports(), (5353, 53));
        // Zeek's fields: the first tag, and the last one as the inner VLAN.
        assert_eq!((v.inner.vlan, v.inner.inner_vlan), (Some(11), Some(16)));
    }

    #[test]
    fn vlan_id_0_is_a_priority_tag_not_a_vlan() {
        let vlans = |ids: &[u16]| {
            let f = tagged(ids);
            let v =
                PacketView::parse(&f, LinkType::ETHERNET, Timestamp(0), f.len() as u32).unwrap();
            assert_eq!(v.inner.transport.ports(), (5353, 53));
            (v.inner.vlan, v.inner.inner_vlan)
        };
        assert_eq!(vlans(&[]), (None, None));
        assert_eq!(vlans(&[0]), (None, None));
        assert_eq!(vlans(&[100]), (Some(100), None));
        // As Zeek fills its fields: a zero id leaves the slot for the next.
        assert_eq!(vlans(&[0, 100]), (Some(100), None));
        assert_eq!(vlans(&[100, 0]), (Some(100), None));
        assert_eq!(vlans(&[100, 200]), (Some(100), Some(200)));
        // Zeek's VLAN analyzer: a third tag overwrites the inner VLAN.
        assert_eq!(vlans(&[100, 200, 300]), (Some(100), Some(300)));
        assert_eq!(vlans(&[100, 200, 0]), (Some(100), None));
        assert_eq!(vlans(&[0, 0, 100, 200]), (Some(100), Some(200)));
    }

    /// Ethernet / IPv6 (2001:db8::1 -> 2001:db8::2) with these extension
    /// header bytes (the first one's type `first`) before UDP 5353 -> 53.
    fn ipv6_with(first: u8, ext: &[u8]) -> Vec<u8> {
        let mut udp = vec![0x14, 0xe9, 0, 53, 0, 13, 0, 0];
        udp.extend_from_slice(b"query");
        let mut v = vec![1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 0x86, 0xdd];
        v.extend_from_slice(&[0x60, 0, 0, 0]);
        v.extend_from_slice(&((ext.len() + udp.len()) as u16).to_be_bytes());
        v.extend_from_slice(&[first, 64]);
        v.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        v.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        v.extend_from_slice(ext);
        v.extend_from_slice(&udp);
        v
    }

    /// A routing header of `routing_type` with `segments_left`, listing
    /// 2001:db8::a and 2001:db8::b (length 4), followed by `next`.
    fn routing(next: u8, routing_type: u8, segments_left: u8) -> Vec<u8> {
        let mut h = vec![next, 4, routing_type, segments_left, 0, 0, 0, 0];
        for last in [0x0a, 0x0b] {
            h.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            h.push(last);
        }
        h
    }

    #[test]
    fn a_type_0_routing_header_with_segments_left_names_the_destination() {
        let dst = |first: u8, ext: &[u8]| {
            let f = ipv6_with(first, ext);
            let v = parse(&f);
            assert_eq!(v.inner.transport.ports(), (5353, 53));
            v.inner.ip.dst.to_string()
        };
        assert_eq!(dst(43, &routing(17, 0, 2)), "2001:db8::b");
        assert_eq!(dst(43, &routing(17, 0, 1)), "2001:db8::b");
        // No segments left: the header's destination is the last one.
        assert_eq!(dst(43, &routing(17, 0, 0)), "2001:db8::2");
        // Type 2 (Mobile IPv6, off in Zeek's default build) and others.
        assert_eq!(dst(43, &routing(17, 2, 1)), "2001:db8::2");
        assert_eq!(dst(43, &routing(17, 4, 1)), "2001:db8::2");
        // An odd length is not a list of addresses (Zeek: odd_routing0_len).
        let mut odd = routing(17, 0, 1);
        odd[1] = 3;
        odd.truncate(32);
        assert_eq!(dst(43, &odd), "2001:db8::2");
        // After hop-by-hop options; and the first routing header wins.
        let mut chain = vec![43, 0, 1, 4, 0, 0, 0, 0];
        chain.extend(routing(43, 0, 2));
        let mut second = routing(17, 0, 2);
        second[24..40]
            .copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xc]);
        chain.extend(second);
        assert_eq!(dst(0, &chain), "2001:db8::b");
        // Behind the fragment header of a whole datagram (an atomic
        // fragment): followed. Behind a first fragment's, which the later
        // fragments do not repeat: not followed, so all fragments of the
        // datagram have one destination.
        let mut atomic = vec![43, 0, 0, 0, 0, 0, 0, 7];
        atomic.extend(routing(17, 0, 2));
        assert_eq!(dst(44, &atomic), "2001:db8::b");
        let mut first = atomic.clone();
        first[3] = 1; // more fragments
        assert_eq!(dst(44, &first), "2001:db8::2");
    }

    #[test]
    fn a_stated_ip_length_past_the_wire_frame_is_refused_even_when_cut_by_snaplen() {
        let mut frame = Vec::new();
        PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1000, 2000)
            .write(&mut frame, &[0x5a; 58])
            .unwrap();
        let wire = frame.len() as u32; // 100 bytes: IP 86
        let view = PacketView::parse(&frame[..60], LinkType::ETHERNET, Timestamp(0), wire).unwrap();
        assert!(view.truncated);
        assert_eq!(view.inner.ip.ip_len, 86);
        // The same cut frame whose header claims 1500 bytes: more than the
        // 86 bytes after the Ethernet header on the wire.
        frame[16..18].copy_from_slice(&1500u16.to_be_bytes());
        let e =
            PacketView::parse(&frame[..60], LinkType::ETHERNET, Timestamp(0), wire).unwrap_err();
        assert_eq!((e.weird, e.offset), (Weird::IpLengthExceedsFrame, 14));
    }
}
