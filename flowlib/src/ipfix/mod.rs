//! IPFIX export of connection records (RFC 7011), one biflow per record
//! (RFC 5103).
//!
//! [`Encoder`] packs [`ConnRecord`]s into IPFIX messages no larger than a
//! configured limit (for UDP, below the path MTU); the transport (UDP, TCP)
//! is the caller's. It writes the message header with the observation
//! domain id and the sequence number (data records sent before this message
//! in the current transport session, modulo 2^32; template records do not
//! count), a template set when due, and data sets. No wall clock is read
//! here: the caller passes each message's export time.
//!
//! # Templates
//! Two templates, 256 for IPv4 and 257 for IPv6 records, with these fields
//! (IANA element ids; `R` = RFC 5103 reverse element, PEN 29305, i.e. the
//! responder-to-originator direction):
//!
//! | field | element | from the record |
//! |---|---|---|
//! | source address | `sourceIPv4Address` 8 / `sourceIPv6Address` 27 | `id.orig_h` |
//! | destination address | `destinationIPv4Address` 12 / `destinationIPv6Address` 28 | `id.resp_h` |
//! | ports | `sourceTransportPort` 7, `destinationTransportPort` 11 | `id.orig_p`, `id.resp_p` (0 for ICMP) |
//! | protocol | `protocolIdentifier` 4 | `ip_proto` |
//! | ICMP | `icmpTypeCodeIPv4` 32 / `icmpTypeCodeIPv6` 139 | type * 256 + code (code 0 for two-way messages such as echo, whose code is 0 by definition) |
//! | VLANs | `vlanId` 58, `dot1qCustomerVlanId` 245 | `vlan`, `inner_vlan` (0 when absent) |
//! | times | `flowStartMilliseconds` 152, `flowEndMilliseconds` 153 | `ts`, `ts + duration` |
//! | originator counters | `packetTotalCount` 86, `octetTotalCount` 85 | `orig_pkts`, `orig_ip_bytes` |
//! | responder counters | `R packetTotalCount` 86, `R octetTotalCount` 85 | `resp_pkts`, `resp_ip_bytes` |
//! | TCP flags | `R tcpControlBits` 6, `tcpControlBits` 6 | derived from `history` (see [`derive::tcp_flags`]); one octet (reduced-size encoding), reverse first (nfdump 1.7.1 takes the last one for the forward value) |
//! | end reason | `flowEndReason` 136 | see [`derive::flow_end_reason`] |
//! | direction | `biflowDirection` 239 | 1 (initiator): the source is the originator |
//!
//! Counters are *total* counts (since the flow started), not deltas: an
//! interim record (end reason `active`, flowEndReason 2) and the final
//! record each carry the flow's totals, as our JSON records do. Octets are
//! IP-level (`*_ip_bytes`), as IPFIX defines them.
//!
//! # Enterprise-specific elements
//! What IANA has no element for is exported as variable-length UTF-8
//! strings under one Private Enterprise Number: by default 32473, the
//! number IANA reserves for documentation and examples (RFC 5612), because
//! the project has none registered; [`ExportConfig::enterprise_number`]
//! replaces it once one is. Ids under that PEN:
//!
//! | id | name | content |
//! |---|---|---|
//! | 1 | `connState` | Zeek's `conn_state` (`SF`, `S0`, `REJ`, ...) |
//! | 2 | `connHistory` | Zeek's `history` letters |
//! | 3 | `origEnclave` | enclave of the originator (empty without rules) |
//! | 4 | `respEnclave` | enclave of the responder (empty without rules) |
//! | 5 | `communityId` | Community ID v1, seed 0 |
//! | 6 | `connUid` | the record's `uid`, to join with JSON / TSV records |
//!
//! # Panics
//! None: every length is checked; a record that cannot be encoded is an
//! [`IpfixError`] and the encoder stays usable.

pub mod derive;
pub mod element;
pub mod encoder;

pub use element::{DEFAULT_ENTERPRISE_NUMBER, REVERSE_PEN, TEMPLATE_IPV4, TEMPLATE_IPV6};
pub use encoder::{Encoder, Message};

use thiserror::Error;

#[cfg(doc)]
use crate::record::ConnRecord;

/// Message size limit for UDP: a 1500-octet Ethernet MTU less IPv6 (40) and
/// UDP (8) headers, with room to spare for tunnels.
pub const DEFAULT_UDP_MESSAGE_LEN: usize = 1400;
/// Message size limit for TCP, where a message may span segments.
pub const DEFAULT_TCP_MESSAGE_LEN: usize = 65_000;
/// Largest message one UDP datagram over IPv4 carries: the 65535 octets of
/// an IPv4 packet less the IPv4 (20) and UDP (8) headers. A larger one is
/// refused by the socket (`EMSGSIZE`).
pub const MAX_UDP_MESSAGE_LEN_V4: usize = 65_507;
/// Largest message one UDP datagram over IPv6 carries: the 65535 octets of
/// the payload length field less the UDP header (8), with no extension
/// headers (the sender adds none) and no jumbograms.
pub const MAX_UDP_MESSAGE_LEN_V6: usize = 65_527;

/// What the encoder needs to know about the export.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ExportConfig {
    /// Observation domain id written in every message header.
    pub observation_domain: u32,
    /// Largest message, header included, in octets (512..=65535; over
    /// UDP at most [`MAX_UDP_MESSAGE_LEN_V4`] or [`MAX_UDP_MESSAGE_LEN_V6`],
    /// which the caller, who knows the transport, checks).
    pub max_message_len: usize,
    /// PEN of our enterprise-specific elements.
    pub enterprise_number: u32,
    /// Pad every set to a multiple of 4 octets (RFC 7011 section 3.3.1
    /// allows it; off by default, as most exporters send no padding).
    pub pad_sets: bool,
}

impl Default for ExportConfig {
    fn default() -> Self {
        ExportConfig {
            observation_domain: 1,
            max_message_len: DEFAULT_UDP_MESSAGE_LEN,
            enterprise_number: DEFAULT_ENTERPRISE_NUMBER,
            pad_sets: false,
        }
    }
}

/// Why a record or a configuration was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum IpfixError {
    /// The configured message size limit is out of range.
    #[error("IPFIX message size limit {limit} is out of range ({min}..=65535)")]
    MessageLimit {
        /// The limit asked for.
        limit: usize,
        /// The smallest limit accepted.
        min: usize,
    },
    /// One record does not fit in a message of its own of the configured
    /// size (templates aside: they can go in a message before it).
    #[error(
        "record {uid} of {len} octets needs a message of {need} octets on its own, \
         more than the IPFIX message size limit of {limit}"
    )]
    RecordTooLarge {
        /// The record's uid.
        uid: String,
        /// Encoded record length.
        len: usize,
        /// The message it needs on its own: header, set header, record
        /// (and padding, when sets are padded).
        need: usize,
        /// The message size limit.
        limit: usize,
    },
    /// The record's originator and responder addresses are of different
    /// families (IPv4 and IPv6): neither template holds both.
    #[error("record {uid}: originator and responder addresses are of different families (IPv4 and IPv6)")]
    MixedFamilies {
        /// The record's uid.
        uid: String,
    },
    /// A string field is longer than a variable-length field can hold.
    #[error("record {uid}: a string field of {len} octets exceeds IPFIX's 65532")]
    FieldTooLong {
        /// The record's uid.
        uid: String,
        /// The string's length.
        len: usize,
    },
}

impl IpfixError {
    /// A short stable name for counting (`record_too_large`, ...).
    pub fn reason(&self) -> &'static str {
        match self {
            IpfixError::MessageLimit { .. } => "message_limit",
            IpfixError::RecordTooLarge { .. } => "record_too_large",
            IpfixError::MixedFamilies { .. } => "mixed_families",
            IpfixError::FieldTooLong { .. } => "field_too_long",
        }
    }
}

#[cfg(test)]
mod tests;
