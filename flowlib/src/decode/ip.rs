//! IPv4 and IPv6 (through etherparse's header slices) and the transport
//! headers above them.

use super::{be16, be32, byte, err, DecodeError, Decoder, FlowPacket, Fragment, IpInfo, Next};
use super::{TcpFlags, TcpSegment, Transport, Tunnel, TunnelKind, MAX_TUNNEL_DEPTH};
use crate::weird::Weird;
use etherparse::err::{ipv4, ipv6, tcp};
use etherparse::{Ipv4HeaderSlice, Ipv6HeaderSlice, TcpHeaderSlice};
use std::net::IpAddr;

/// IP protocol numbers flowlib treats specially.
pub(crate) mod proto {
    pub const ICMP: u8 = 1;
    pub const IPIP: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6: u8 = 41;
    pub const GRE: u8 = 47;
    pub const ICMPV6: u8 = 58;
    pub const SCTP: u8 = 132;
}

/// Result of decoding an IP packet: the flow-bearing packet, or a tunnel to
/// descend into.
pub(crate) enum IpStep<'a> {
    Done(FlowPacket<'a>),
    Continue(usize, Next),
}

/// The bounds of one IP packet inside the decoder's bytes.
struct IpBounds {
    /// Offset of the transport header (after all IP headers).
    l4_off: usize,
    /// Offset of a fragment's share of the datagram (IPv6: after the
    /// fragment header, before any extension header that follows it).
    fragmentable_off: usize,
    /// End of the IP packet within the captured bytes.
    end: usize,
    /// Transport bytes according to the IP length fields.
    l4_len: u32,
}

impl<'a> Decoder<'a> {
    /// Decodes the IP header at `off` and whatever sits on top of it.
    pub(super) fn ip(&mut self, off: usize, want: Option<u8>) -> Result<IpStep<'a>, DecodeError> {
        let version = byte(self.data, off, Weird::TruncatedIpHeader)? >> 4;
        match (version, want) {
            (4, None | Some(4)) => self.ipv4(off),
            (6, None | Some(6)) => self.ipv6(off),
            _ => err(Weird::BadIpVersion, off),
        }
    }

    /// Checks a stated IP length against the captured bytes.
    fn bounds(
        &self,
        off: usize,
        header_len: usize,
        ip_len: usize,
    ) -> Result<IpBounds, DecodeError> {
        let available = self.data.len() - off;
        if ip_len < header_len {
            return err(Weird::BadIpv4TotalLength, off);
        }
        let end = if ip_len > available {
            // Cut by the snaplen, or the rest lives in the outer packet's
            // other fragments: decode what is here, sizes come from headers.
            // A stated length past the frame's end on the wire is wrong
            // either way (outside a fragment, which holds only part).
            let on_wire = self.wire_len.saturating_sub(off);
            if (!self.truncated || ip_len > on_wire) && !self.partial {
                return err(Weird::IpLengthExceedsFrame, off);
            }
            self.data.len()
        } else {
            off + ip_len
        };
        Ok(IpBounds {
            l4_off: off + header_len,
            fragmentable_off: off + header_len,
            end,
            l4_len: (ip_len - header_len) as u32,
        })
    }

    fn ipv4(&mut self, off: usize) -> Result<IpStep<'a>, DecodeError> {
        let h = Ipv4HeaderSlice::from_slice(&self.data[off..]).map_err(|e| DecodeError {
            weird: match e {
                ipv4::HeaderSliceError::Len(_) => Weird::TruncatedIpHeader,
                ipv4::HeaderSliceError::Content(ipv4::HeaderError::UnexpectedVersion {
                    ..
                }) => Weird::BadIpVersion,
                ipv4::HeaderSliceError::Content(_) => Weird::BadIpv4HeaderLength,
            },
            offset: off,
        })?;
        let header_len = h.slice().len();
        let stated = usize::from(h.total_len());
        // A total length of 0 is what TSO / BIG TCP captures carry.
        let ip_len = if stated == 0 {
            self.data.len() - off
        } else {
            stated
        };
        let b = self.bounds(off, header_len, ip_len)?;
        let frag_off = u32::from(h.fragments_offset().byte_offset());
        let fragment = (h.more_fragments() || frag_off > 0).then_some(Fragment {
            id: u32::from(h.identification()),
            offset: frag_off,
            more: h.more_fragments(),
            len: b.l4_len,
        });
        let info = IpInfo {
            src: IpAddr::from(h.source()),
            dst: IpAddr::from(h.destination()),
            proto: h.protocol().0,
            ip_len: ip_len as u32,
            header_len: header_len as u32,
            fragment,
            ttl: h.ttl(),
        };
        self.above_ip(info, b)
    }

    fn ipv6(&mut self, off: usize) -> Result<IpStep<'a>, DecodeError> {
        let h = Ipv6HeaderSlice::from_slice(&self.data[off..]).map_err(|e| DecodeError {
            weird: match e {
                ipv6::HeaderSliceError::Len(_) => Weird::TruncatedIpHeader,
                ipv6::HeaderSliceError::Content(_) => Weird::BadIpVersion,
            },
            offset: off,
        })?;
        let stated = usize::from(h.payload_length());
        // Payload length 0 means a jumbogram (or TSO): take what was captured.
        let ip_len = if stated == 0 {
            self.data.len() - off
        } else {
            40 + stated
        };
        let b = self.bounds(off, 40, ip_len)?;
        let chain = super::ipv6_ext::walk(&self.data[..b.end], b.l4_off, h.next_header().0)?;
        let (ext_len, next) = (chain.len, chain.next);
        let fragment = chain.fragment.map(|f| Fragment {
            len: b.l4_len.saturating_sub(chain.unfragmentable as u32),
            ..f
        });
        // A type 0 routing header's final destination is the packet's, as
        // Zeek's IPv6_Hdr_Chain::DstAddr() reports it.
        let dst = chain.final_dst.unwrap_or(h.destination());
        let info = IpInfo {
            src: IpAddr::from(h.source_addr()),
            dst: IpAddr::from(dst),
            proto: next,
            ip_len: ip_len as u32,
            header_len: (40 + ext_len) as u32,
            fragment,
            ttl: h.hop_limit(),
        };
        let b = IpBounds {
            l4_off: b.l4_off + ext_len,
            fragmentable_off: (b.l4_off + chain.unfragmentable).min(b.end),
            end: b.end,
            l4_len: b.l4_len.saturating_sub(ext_len as u32),
        };
        self.above_ip(info, b)
    }

    /// Decodes the transport header (or tunnel) on top of an IP header.
    fn above_ip(&mut self, info: IpInfo, b: IpBounds) -> Result<IpStep<'a>, DecodeError> {
        self.fragment_bytes = match info.fragment {
            Some(_) => self.data.get(b.fragmentable_off..b.end).unwrap_or_default(),
            None => &[],
        };
        if let Some(frag) = info.fragment {
            let header_min = match info.proto {
                proto::TCP => 20,
                proto::UDP => 8,
                _ => 0,
            };
            if frag.offset == 0 && frag.more && b.l4_len < header_min {
                // RFC 1858: a first fragment too small for the transport
                // header (its flags or ports come in a later fragment).
                return err(Weird::TinyFirstFragment, b.l4_off);
            }
            if frag.offset > 0 {
                return Ok(IpStep::Done(self.flow_packet(
                    info,
                    Transport::NonFirstFragment {
                        payload_len: b.l4_len,
                    },
                )));
            }
            // A first fragment: headers inside it may describe more bytes
            // than it holds.
            self.partial = true;
        }
        let data = self.data;
        let l4 = &data[b.l4_off..b.end];
        let transport = match info.proto {
            proto::TCP => {
                let t = TcpHeaderSlice::from_slice(l4).map_err(|e| DecodeError {
                    weird: match e {
                        tcp::HeaderSliceError::Len(_) => Weird::TruncatedTcpHeader,
                        tcp::HeaderSliceError::Content(_) => Weird::BadTcpDataOffset,
                    },
                    offset: b.l4_off,
                })?;
                let hl = t.slice().len();
                Transport::Tcp(TcpSegment {
                    src_port: t.source_port(),
                    dst_port: t.destination_port(),
                    seq: t.sequence_number(),
                    ack: t.acknowledgment_number(),
                    flags: TcpFlags(l4[13]),
                    window: t.window_size(),
                    payload_len: b.l4_len.saturating_sub(hl as u32),
                    payload: &l4[hl..],
                })
            }
            proto::UDP => {
                if l4.len() < 8 {
                    return err(Weird::TruncatedUdpHeader, b.l4_off);
                }
                let src_port = be16(l4, 0, Weird::TruncatedUdpHeader)?;
                let dst_port = be16(l4, 2, Weird::TruncatedUdpHeader)?;
                let udp_len = u32::from(be16(l4, 4, Weird::TruncatedUdpHeader)?);
                // The UDP length covers the whole datagram, also when this is
                // its first fragment; 0 (jumbograms) or nonsense falls back to IP.
                let payload_len =
                    if udp_len >= 8 && (udp_len <= b.l4_len || info.fragment.is_some()) {
                        udp_len - 8
                    } else {
                        b.l4_len.saturating_sub(8)
                    };
                let packet = self.flow_packet(
                    info,
                    Transport::Udp {
                        src_port,
                        dst_port,
                        payload_len,
                    },
                );
                if let Some(step) = self.udp_tunnel(&packet, b.l4_off + 8, b.end)? {
                    return Ok(step);
                }
                return Ok(IpStep::Done(packet));
            }
            proto::ICMP | proto::ICMPV6 => {
                let v6 = info.proto == proto::ICMPV6;
                if v6 != matches!(info.src, IpAddr::V6(_)) {
                    Transport::Other {
                        payload_len: b.l4_len,
                    }
                } else {
                    let icmp_type = byte(l4, 0, Weird::TruncatedIcmpHeader)?;
                    let code = byte(l4, 1, Weird::TruncatedIcmpHeader)?;
                    be16(l4, 2, Weird::TruncatedIcmpHeader)?;
                    Transport::Icmp {
                        v6,
                        icmp_type,
                        code,
                        payload_len: b.l4_len.saturating_sub(8),
                    }
                }
            }
            proto::SCTP => {
                let src_port = be16(l4, 0, Weird::TruncatedSctpHeader)?;
                let dst_port = be16(l4, 2, Weird::TruncatedSctpHeader)?;
                let vtag = be32(l4, 4, Weird::TruncatedSctpHeader)?;
                be32(l4, 8, Weird::TruncatedSctpHeader)?;
                Transport::Sctp {
                    src_port,
                    dst_port,
                    vtag,
                    payload_len: b.l4_len.saturating_sub(12),
                }
            }
            proto::IPIP | proto::IPV6 => {
                let version = if info.proto == proto::IPIP { 4 } else { 6 };
                self.enter_tunnel(TunnelKind::IpInIp, &info, (0, 0), b.l4_off, b.end)?;
                return Ok(IpStep::Continue(b.l4_off, Next::Ip(Some(version))));
            }
            proto::GRE => {
                let (off, next, kind) = self.gre(b.l4_off, b.end)?;
                self.enter_tunnel(kind, &info, (0, 0), b.l4_off, b.end)?;
                return Ok(IpStep::Continue(off, next));
            }
            _ => Transport::Other {
                payload_len: b.l4_len,
            },
        };
        Ok(IpStep::Done(self.flow_packet(info, transport)))
    }

    /// Builds the flow-bearing packet with the current link-level context.
    pub(super) fn flow_packet(&self, ip: IpInfo, transport: Transport<'a>) -> FlowPacket<'a> {
        FlowPacket {
            vlan: self.vlan,
            inner_vlan: self.inner_vlan,
            ip,
            transport,
            tunnel: self.tunnel,
            fragment_bytes: self.fragment_bytes,
        }
    }

    /// Records that decoding descends into a tunnel whose outer packet is
    /// `outer` (with these ports) and whose header starts at `at`, and
    /// limits the view to the outer packet's bytes, which end at `end`.
    ///
    /// The inner packet starts with no VLAN: like Zeek, which builds a
    /// fresh packet for a tunnel's payload (`IPTunnel.cc`
    /// `build_inner_packet`, with `Packet::Init` clearing `vlan` and
    /// `inner_vlan`), flows inside a tunnel carry only the tags of the
    /// inner frame itself (VXLAN, Geneve, ERSPAN, GRE with Ethernet
    /// inside), none for IP carried directly. The outer frame's tags stay
    /// with the outer packet (a UDP tunnel's flow of its own).
    pub(super) fn enter_tunnel(
        &mut self,
        kind: TunnelKind,
        outer: &IpInfo,
        (src_port, dst_port): (u16, u16),
        at: usize,
        end: usize,
    ) -> Result<(), DecodeError> {
        self.depth += 1;
        if self.depth > MAX_TUNNEL_DEPTH {
            return err(Weird::TunnelsTooDeep, at);
        }
        self.tunnel = Some(Tunnel {
            kind,
            src: outer.src,
            dst: outer.dst,
            src_port,
            dst_port,
            proto: outer.proto,
        });
        self.vlan = None;
        self.inner_vlan = None;
        self.vlan_tags = 0;
        self.data = &self.data[..end];
        Ok(())
    }
}
