//! Tunnel headers: GRE (incl. ERSPAN and PPTP) and the UDP-based tunnels.

use super::ip::IpStep;
use super::{
    be16, byte, err, need, DecodeError, Decoder, FlowPacket, Next, TunnelKind, MAX_ENCAPS,
};
use crate::weird::Weird;

/// UDP ports of the tunnels flowlib decapsulates.
mod port {
    pub const VXLAN: u16 = 4789;
    pub const GENEVE: u16 = 6081;
    pub const GTP_U: u16 = 2152;
    pub const TEREDO: u16 = 3544;
    pub const AYIYA: u16 = 5072;
    pub const MPLS_OVER_UDP: u16 = 6635;
}

impl<'a> Decoder<'a> {
    /// Decodes a GRE header at `off`; returns where the payload starts, what
    /// it is and which kind of tunnel this is.
    pub(super) fn gre(
        &mut self,
        off: usize,
        end: usize,
    ) -> Result<(usize, Next, TunnelKind), DecodeError> {
        let d = &self.data[..end];
        let t = Weird::TruncatedTunnelHeader;
        let flags = byte(d, off, t)?;
        let flags2 = byte(d, off + 1, t)?;
        let proto = be16(d, off + 2, t)?;
        let (checksum, routing, key, seq) = (
            flags & 0x80 != 0,
            flags & 0x40 != 0,
            flags & 0x20 != 0,
            flags & 0x10 != 0,
        );
        let mut len = 4;
        let kind = match flags2 & 0x07 {
            0 => {
                if routing {
                    // Source routing (RFC 1701) is obsolete; its entries are
                    // variable-length and nobody sends them.
                    return err(Weird::UnsupportedGre, off);
                }
                len += 4 * (usize::from(checksum) + usize::from(key) + usize::from(seq));
                TunnelKind::Gre
            }
            1 => {
                // PPTP's enhanced GRE: key (payload length + call id) always,
                // sequence and acknowledgement numbers optional.
                if proto != 0x880b || !key {
                    return err(Weird::UnsupportedGre, off);
                }
                len += 4 + 4 * usize::from(seq) + 4 * usize::from(flags2 & 0x80 != 0);
                TunnelKind::Pptp
            }
            _ => return err(Weird::UnsupportedGre, off),
        };
        let inner = off + len;
        if d.len() < inner {
            return err(t, off);
        }
        Ok(match proto {
            0x0800 => (inner, Next::Ip(Some(4)), kind),
            0x86dd => (inner, Next::Ip(Some(6)), kind),
            0x6558 => (inner, Next::Ethernet, kind),
            0x8847 | 0x8848 => (inner, Next::Mpls, kind),
            0x880b => {
                if inner >= d.len() {
                    // An acknowledgement-only PPTP packet carries no PPP
                    // frame (its key's payload length is 0); otherwise the
                    // PPP frame was cut off.
                    let payload_len = be16(d, off + 4, t)?;
                    let weird = if payload_len == 0 {
                        Weird::NonIpFrame
                    } else {
                        Weird::TruncatedPpp
                    };
                    return err(weird, inner);
                }
                (inner, Next::Ppp, kind)
            }
            // ERSPAN type II has an 8-byte header and GRE sequence numbers;
            // type I has neither.
            0x88be => (
                inner + if seq { 8 } else { 0 },
                Next::Ethernet,
                TunnelKind::Erspan,
            ),
            0x22eb => {
                // ERSPAN type III: 12 bytes, plus 8 of platform-specific
                // sub-header when its O flag is set.
                need(d, inner, 12, t)?;
                let o = byte(d, inner + 11, t)? & 0x01;
                (
                    inner + 12 + 8 * usize::from(o),
                    Next::Ethernet,
                    TunnelKind::Erspan,
                )
            }
            _ => return err(Weird::UnsupportedGre, off),
        })
    }

    /// If `outer` is a UDP datagram to or from a tunnel port and its payload
    /// at `off..end` looks like that tunnel, records the outer datagram as an
    /// encapsulation and returns where the inner packet starts.
    pub(super) fn udp_tunnel(
        &mut self,
        outer: &FlowPacket<'a>,
        off: usize,
        end: usize,
    ) -> Result<Option<IpStep<'a>>, DecodeError> {
        let (sp, dp) = outer.transport.ports();
        let is = |p: u16| sp == p || dp == p;
        let p = self.data.get(off..end).unwrap_or(&[]);
        let found = if is(port::VXLAN) {
            vxlan(p).map(|(o, n)| (o, n, TunnelKind::Vxlan))
        } else if is(port::GENEVE) {
            geneve(p).map(|(o, n)| (o, n, TunnelKind::Geneve))
        } else if is(port::GTP_U) {
            gtp_u(p).map(|(o, n)| (o, n, TunnelKind::GtpU))
        } else if is(port::TEREDO) {
            teredo(p).map(|(o, n)| (o, n, TunnelKind::Teredo))
        } else if is(port::AYIYA) {
            ayiya(p).map(|(o, n)| (o, n, TunnelKind::Ayiya))
        } else if is(port::MPLS_OVER_UDP) {
            Some((0, Next::Mpls, TunnelKind::MplsOverUdp))
        } else {
            // Teredo relays use arbitrary ports: recognise the payload, as
            // Zeek does, but only with Teredo or link-local addresses inside.
            teredo(p)
                .filter(|(o, _)| teredo_addresses(&p[*o..]))
                .map(|(o, n)| (o, n, TunnelKind::Teredo))
        };
        let Some((inner, next, kind)) = found else {
            return Ok(None);
        };
        if self.n_encaps == MAX_ENCAPS {
            return err(Weird::TunnelsTooDeep, off);
        }
        self.fallback = Some((*outer, self.n_encaps));
        self.encaps[self.n_encaps] = Some(*outer);
        self.n_encaps += 1;
        self.enter_tunnel(kind, &outer.ip, (sp, dp), off, end)?;
        Ok(Some(IpStep::Continue(off + inner, next)))
    }
}

/// VXLAN: 8 bytes with the I (valid VNI) flag, then Ethernet.
fn vxlan(p: &[u8]) -> Option<(usize, Next)> {
    (p.len() >= 8 + 14 && p[0] & 0x08 != 0).then_some((8, Next::Ethernet))
}

/// Geneve: version 0, 8 bytes plus options, then the protocol it names.
fn geneve(p: &[u8]) -> Option<(usize, Next)> {
    let b0 = *p.first()?;
    if b0 >> 6 != 0 {
        return None;
    }
    let len = 8 + usize::from(b0 & 0x3f) * 4;
    let proto = u16::from_be_bytes([*p.get(2)?, *p.get(3)?]);
    if p.len() <= len {
        return None;
    }
    match proto {
        0x6558 => Some((len, Next::Ethernet)),
        0x0800 => Some((len, Next::Ip(Some(4)))),
        0x86dd => Some((len, Next::Ip(Some(6)))),
        _ => None,
    }
}

/// GTP-U: version 1, protocol type GTP, message type G-PDU (255); optional
/// sequence / N-PDU / extension header fields; then an IP packet.
fn gtp_u(p: &[u8]) -> Option<(usize, Next)> {
    let b0 = *p.first()?;
    if b0 >> 5 != 1 || b0 & 0x10 == 0 || *p.get(1)? != 0xff {
        return None;
    }
    let mut len = 8;
    if b0 & 0x07 != 0 {
        len = 12;
        let mut next_ext = *p.get(11)?;
        let mut hops = 0;
        while next_ext != 0 {
            let ext_len = usize::from(*p.get(len)?) * 4;
            hops += 1;
            if ext_len == 0 || hops > 16 {
                return None;
            }
            next_ext = *p.get(len + ext_len - 1)?;
            len += ext_len;
        }
    }
    match *p.get(len)? >> 4 {
        4 => Some((len, Next::Ip(Some(4)))),
        6 => Some((len, Next::Ip(Some(6)))),
        _ => None,
    }
}

/// Teredo: optional authentication and origin-indication headers, then an
/// IPv6 packet whose length matches the datagram exactly (as Zeek requires,
/// to avoid decapsulating ordinary traffic on port 3544).
fn teredo(p: &[u8]) -> Option<(usize, Next)> {
    let mut off = 0;
    if p.get(0..2)? == [0, 1] {
        let id_len = usize::from(*p.get(2)?);
        let au_len = usize::from(*p.get(3)?);
        off += 4 + id_len + au_len + 8 + 1;
    }
    if p.get(off..off + 2)? == [0, 0] {
        off += 8;
    }
    let ip = p.get(off..)?;
    if ip.len() < 40 || ip[0] >> 4 != 6 {
        return None;
    }
    let plen = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    (40 + plen == ip.len()).then_some((off, Next::Ip(Some(6))))
}

/// Whether the IPv6 header at the start of `ip` has a Teredo
/// (2001:0::/32) or link-local (fe80::/10) source or destination.
fn teredo_addresses(ip: &[u8]) -> bool {
    let is_teredo =
        |a: &[u8]| a[..4] == [0x20, 0x01, 0, 0] || (a[0] == 0xfe && a[1] & 0xc0 == 0x80);
    ip.len() >= 40 && (is_teredo(&ip[8..24]) || is_teredo(&ip[24..40]))
}

/// AYIYA: 8 fixed bytes, an identity of 2^idlen bytes and a signature of
/// siglen 4-byte words; only "forward" packets carry IP.
fn ayiya(p: &[u8]) -> Option<(usize, Next)> {
    if p.len() < 8 {
        return None;
    }
    let id_len = 1usize << (p[0] >> 4);
    let sig_len = usize::from(p[1] >> 4) * 4;
    let opcode = p[2] & 0x0f;
    let len = 8 + id_len + sig_len;
    if opcode != 1 || p.len() <= len {
        return None;
    }
    match p[3] {
        4 => Some((len, Next::Ip(Some(4)))),
        41 => Some((len, Next::Ip(Some(6)))),
        _ => None,
    }
}
