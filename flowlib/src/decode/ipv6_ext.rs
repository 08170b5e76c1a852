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
}

/// Walks the extension headers that start at `off` in `data` (which ends
/// where the IPv6 packet ends), the first one being `first`. Hop-by-hop
/// options are only allowed first (RFC 8200); a header cut off, or one
/// that claims more bytes than are there, is a
/// [`Weird::BadIpv6ExtensionHeader`]; more than [`MAX_IPV6_EXT_HEADERS`] is a
/// [`Weird::TooManyIpv6ExtensionHeaders`]. The walk ends at the fragment
/// header of a non-first fragment: what follows it is the middle of the
/// datagram's fragmentable part, not a header (RFC 8200 4.5); `next` is
/// then the fragment header's next header.
pub(super) fn walk(data: &[u8], off: usize, first: u8) -> Result<ExtChain, DecodeError> {
    let mut next = first;
    let mut at = off;
    let mut fragment = None;
    let mut unfragmentable = 0;
    let mut count = 0;
    loop {
        let len = match next {
            ext::HOP_BY_HOP if count > 0 => return err(Weird::BadIpv6ExtensionHeader, at),
            ext::HOP_BY_HOP | ext::ROUTING | ext::DEST_OPTIONS => {
                (usize::from(len_byte(data, at)?) + 1) * 8
            }
            ext::FRAGMENT => 8,
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
                return Ok(ExtChain {
                    len: unfragmentable,
                    next: h[0],
                    fragment,
                    unfragmentable,
                });
            }
        }
        next = h[0];
        at += len;
    }
}

/// The length byte of the extension header at `at`; a header cut before it
/// fails at its start.
fn len_byte(data: &[u8], at: usize) -> Result<u8, DecodeError> {
    match data.get(at + 1) {
        Some(b) => Ok(*b),
        None => err(Weird::BadIpv6ExtensionHeader, at.min(data.len())),
    }
}
