//! The IPv6 extension header chain, walked with a bound on its length.

use super::{err, DecodeError, Fragment, MAX_IPV6_EXT_HEADERS};
use crate::weird::Weird;

/// Extension header protocol numbers this walk steps over.
mod ext {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const AUTH: u8 = 51;
    pub const DEST_OPTIONS: u8 = 60;
    /// Encapsulating Security Payload: ends the chain, as in Zeek.
    pub const ESP: u8 = 50;
}

/// What an IPv6 extension header chain held.
pub(super) struct ExtChain {
    /// Bytes of extension headers.
    pub(super) len: usize,
    /// The protocol after the last extension header.
    pub(super) next: u8,
    /// The fragment header, when it fragments the payload.
    pub(super) fragment: Option<Fragment>,
    /// Bytes of extension headers up to and including the fragment header
    /// (where the fragmentable part starts); 0 without one.
    pub(super) unfragmentable: usize,
    /// The final destination a type 0 routing header names (see
    /// [`final_destination`]), which replaces the IPv6 header's.
    pub(super) final_dst: Option<[u8; 16]>,
}

/// Walks the extension headers that start at `off` in `data` (which ends
/// where the IPv6 packet ends), the first one being `first`. Hop-by-hop
/// options are only allowed first (RFC 8200); a header cut off, or one
/// that claims more bytes than are there, is a
/// [`Weird::BadIpv6ExtensionHeader`]; more than [`MAX_IPV6_EXT_HEADERS`] is a
/// [`Weird::TooManyIpv6ExtensionHeaders`]. The walk ends at the fragment
/// header of a non-first fragment: what follows it is the middle of the
/// datagram's fragmentable part, not a header (RFC 8200 4.5); `next` is
/// then the fragment header's next header. A chain that reaches ESP (in
/// any fragment) is a [`Weird::Ipv6Esp`]: no flow, as in Zeek.
pub(super) fn walk(data: &[u8], off: usize, first: u8) -> Result<ExtChain, DecodeError> {
    let mut next = first;
    let mut at = off;
    let mut fragment = None;
    let mut unfragmentable = 0;
    let mut final_dst = None;
    let mut count = 0;
    loop {
        let len = match next {
            ext::HOP_BY_HOP if count > 0 => return err(Weird::BadIpv6ExtensionHeader, at),
            ext::HOP_BY_HOP | ext::ROUTING | ext::DEST_OPTIONS => {
                (usize::from(len_byte(data, at)?) + 1) * 8
            }
            ext::FRAGMENT => 8,
            ext::ESP => return err(Weird::Ipv6Esp, at),
            // RFC 4302: length in 4-byte words minus 2; at least the 12
            // fixed bytes.
            ext::AUTH => match len_byte(data, at)? {
                0 => return err(Weird::BadIpv6ExtensionHeader, at),
                n => (usize::from(n) + 2) * 4,
            },
            _ => {
                return Ok(ExtChain {
                    len: at - off,
                    next,
                    fragment,
                    unfragmentable,
                    final_dst,
                })
            }
        };
        if count == MAX_IPV6_EXT_HEADERS {
            return err(Weird::TooManyIpv6ExtensionHeaders, at);
        }
        count += 1;
        let Some(h) = data.get(at..at + len) else {
            return err(Weird::BadIpv6ExtensionHeader, at);
        };
        // Not behind the fragment header of a fragment, which only the
        // first fragment carries: every fragment of a datagram has the same
        // destination (Zeek would read it after reassembly). The first
        // routing header that names one wins, as in Zeek.
        if next == ext::ROUTING && fragment.is_none() && final_dst.is_none() {
            final_dst = final_destination(h);
        }
        if next == ext::FRAGMENT {
            let offset = u32::from(u16::from_be_bytes([h[2], h[3]]) & 0xfff8);
            let more = h[3] & 0x01 != 0;
            unfragmentable = at + len - off;
            if offset > 0 || more {
                fragment = Some(Fragment {
                    id: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
                    offset,
                    more,
                    // Set by the caller, which knows the stated length.
                    len: 0,
                });
            }
            if offset > 0 {
                if h[0] == ext::ESP {
                    return err(Weird::Ipv6Esp, at + len);
                }
                return Ok(ExtChain {
                    len: unfragmentable,
                    next: h[0],
                    fragment,
                    unfragmentable,
                    final_dst,
                });
            }
        }
        next = h[0];
        at += len;
    }
}

/// The final destination of a routing header `h` (all of its bytes), as
/// Zeek takes it (`IPv6_Hdr_Chain::ProcessRoutingHeader`, IP.cc): for a
/// type 0 header (RFC 2460, deprecated by RFC 5095) with segments left and
/// an even length of at least 2 (whole addresses), its last address, which
/// Zeek's `DstAddr()` then reports as the packet's destination. Other
/// types name none: type 2 (Mobile IPv6) only with Zeek built with
/// `--enable-mobile-ipv6`, which is not the default.
fn final_destination(h: &[u8]) -> Option<[u8; 16]> {
    let (len, routing_type, segments_left) = (*h.get(1)?, *h.get(2)?, *h.get(3)?);
    if routing_type != 0 || segments_left == 0 || len < 2 || len % 2 != 0 {
        return None;
    }
    h.get(h.len().checked_sub(16)?..)?.try_into().ok()
}

/// The length byte of the extension header at `at`; a header cut before it
/// fails at its start.
fn len_byte(data: &[u8], at: usize) -> Result<u8, DecodeError> {
    match data.get(at + 1) {
        Some(b) => Ok(*b),
        None => err(Weird::BadIpv6ExtensionHeader, at.min(data.len())),
    }
}
