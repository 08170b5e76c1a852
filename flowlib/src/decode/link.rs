//! Link layers and everything between the link header and IP: VLAN tags,
//! MPLS, PPPoE, PPP, VN-Tag, 802.2 SNAP.

use super::{
    be16, be32, byte, err, need, DecodeError, Decoder, Next, MAX_MPLS_LABELS, MAX_VLAN_TAGS,
};
use crate::weird::Weird;
use crate::LinkType;

/// EtherTypes flowlib follows.
mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const IPV6: u16 = 0x86dd;
    pub const VLAN: u16 = 0x8100;
    pub const QINQ: u16 = 0x88a8;
    pub const QINQ_OLD: u16 = 0x9100;
    pub const QINQ_OLD2: u16 = 0x9200;
    pub const MPLS_UNICAST: u16 = 0x8847;
    pub const MPLS_MULTICAST: u16 = 0x8848;
    pub const PPPOE_SESSION: u16 = 0x8864;
    pub const VNTAG: u16 = 0x8926;
}

impl<'a> Decoder<'a> {
    /// Decodes the capture's link header; returns the offset after it and
    /// what follows.
    pub(super) fn link_header(&mut self, link: LinkType) -> Result<(usize, Next), DecodeError> {
        let data = self.data;
        match link {
            LinkType::ETHERNET => {
                if data.len() < 14 {
                    return err(Weird::TruncatedLinkHeader, 0);
                }
                Ok((0, Next::Ethernet))
            }
            LinkType::LINUX_SLL => {
                // 16 bytes: packet type, ARPHRD type, address length, 8 bytes
                // of address, protocol (an EtherType for most ARPHRD types).
                need(data, 0, 16, Weird::TruncatedLinkHeader)?;
                let proto = be16(data, 14, Weird::TruncatedLinkHeader)?;
                Ok((16, Next::EtherType(proto)))
            }
            LinkType::LINUX_SLL2 => {
                // 20 bytes: protocol first, then reserved, ifindex, ARPHRD, ...
                let proto = be16(data, 0, Weird::TruncatedLinkHeader)?;
                if data.len() < 20 {
                    return err(Weird::TruncatedLinkHeader, 0);
                }
                Ok((20, Next::EtherType(proto)))
            }
            LinkType::NULL | LinkType::LOOP => {
                let raw = be32(data, 0, Weird::TruncatedLinkHeader)?;
                // DLT_NULL stores the family in the capturing host's byte
                // order; DLT_LOOP in network order. Accept either.
                let family = if raw & 0xffff_0000 != 0 && raw & 0x0000_ffff == 0 {
                    raw.swap_bytes()
                } else {
                    raw
                };
                match family {
                    2 => Ok((4, Next::Ip(Some(4)))),
                    // AF_INET6 on the BSDs (24, 28, 30) and Linux (10).
                    10 | 24 | 28 | 30 => Ok((4, Next::Ip(Some(6)))),
                    _ => err(Weird::UnknownLoopbackFamily, 0),
                }
            }
            LinkType::PPP => Ok((0, Next::Ppp)),
            LinkType::RAW => Ok((0, Next::Ip(None))),
            LinkType::IPV4 => Ok((0, Next::Ip(Some(4)))),
            LinkType::IPV6 => Ok((0, Next::Ip(Some(6)))),
            _ => err(Weird::UnsupportedLinkType, 0),
        }
    }

    /// Follows one EtherType-identified header at `off`.
    pub(super) fn ethertype(&mut self, t: u16, off: usize) -> Result<(usize, Next), DecodeError> {
        let data = self.data;
        match t {
            ethertype::IPV4 => Ok((off, Next::Ip(Some(4)))),
            ethertype::IPV6 => Ok((off, Next::Ip(Some(6)))),
            ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_OLD | ethertype::QINQ_OLD2 => {
                self.vlan_tags += 1;
                if self.vlan_tags > MAX_VLAN_TAGS {
                    return err(Weird::TooManyVlanTags, off);
                }
                let tci = be16(data, off, Weird::TruncatedVlanTag)?;
                let next = be16(data, off + 2, Weird::TruncatedVlanTag)?;
                // As Zeek's VLAN analyzer fills its fields: the first tag
                // is the VLAN, every later one overwrites the inner VLAN (a
                // third tag's id is the one kept). Id 0 (an 802.1p priority
                // tag) is no VLAN: it leaves the VLAN for the next tag, and
                // as a later tag it clears the inner VLAN.
                let id = Some(tci & 0x0fff).filter(|id| *id != 0);
                if self.vlan.is_none() {
                    self.vlan = id;
                } else {
                    self.inner_vlan = id;
                }
                Ok((off + 4, Next::EtherType(next)))
            }
            ethertype::MPLS_UNICAST | ethertype::MPLS_MULTICAST => Ok((off, Next::Mpls)),
            ethertype::PPPOE_SESSION => {
                // version/type, code, session id, length; then PPP protocol.
                if data.len() < off + 6 {
                    return err(Weird::TruncatedPpp, off);
                }
                Ok((off + 6, Next::Ppp))
            }
            ethertype::VNTAG => {
                // 4 bytes of tag, then the real EtherType.
                need(data, off, 6, Weird::TruncatedLinkHeader)?;
                let next = be16(data, off + 4, Weird::TruncatedLinkHeader)?;
                Ok((off + 6, Next::EtherType(next)))
            }
            len if len < 0x0600 => {
                // 802.3 length field: 802.2 LLC follows. Only SNAP carries an EtherType.
                let dsap = byte(data, off, Weird::TruncatedLinkHeader)?;
                let ssap = byte(data, off + 1, Weird::TruncatedLinkHeader)?;
                if dsap == 0xaa && ssap == 0xaa {
                    need(data, off, 8, Weird::TruncatedLinkHeader)?;
                    let next = be16(data, off + 6, Weird::TruncatedLinkHeader)?;
                    Ok((off + 8, Next::EtherType(next)))
                } else {
                    err(Weird::NonIpFrame, off)
                }
            }
            _ => err(Weird::NonIpFrame, off),
        }
    }

    /// PPP (HDLC-like framing optional): address/control bytes, then a 1- or
    /// 2-byte protocol field.
    pub(super) fn ppp(&mut self, off: usize) -> Result<(usize, Next), DecodeError> {
        let data = self.data;
        let mut off = off;
        match data.get(off..off + 2) {
            Some([0xff, 0x03]) => off += 2,
            // An address byte cut before its control byte.
            None if data.get(off) == Some(&0xff) => return err(Weird::TruncatedPpp, off),
            _ => {}
        }
        let first = byte(data, off, Weird::TruncatedPpp)?;
        // Protocol field compression: an odd first byte is a 1-byte protocol.
        let (proto, len) = if first & 1 == 1 {
            (u16::from(first), 1)
        } else {
            (be16(data, off, Weird::TruncatedPpp)?, 2)
        };
        let off = off + len;
        match proto {
            0x0021 => Ok((off, Next::Ip(Some(4)))),
            0x0057 => Ok((off, Next::Ip(Some(6)))),
            0x0281 | 0x0283 => Ok((off, Next::Mpls)),
            _ => err(Weird::NonIpFrame, off),
        }
    }

    /// An MPLS label stack, then IP guessed from the version nibble (as Zeek
    /// and tcpdump do when no control word says otherwise).
    pub(super) fn mpls(&mut self, off: usize) -> Result<(usize, Next), DecodeError> {
        let data = self.data;
        let mut off = off;
        for _ in 0..MAX_MPLS_LABELS {
            let entry = be32(data, off, Weird::TruncatedMpls)?;
            off += 4;
            if entry & 0x100 != 0 {
                // Bottom of stack.
                return match byte(data, off, Weird::TruncatedMpls)? >> 4 {
                    4 => Ok((off, Next::Ip(Some(4)))),
                    6 => Ok((off, Next::Ip(Some(6)))),
                    _ => err(Weird::NonIpFrame, off),
                };
            }
        }
        err(Weird::TooManyMplsLabels, off)
    }
}
