//! The Information Elements a connection record is exported with, and the
//! two templates (IPv4, IPv6) built from them.

/// Private Enterprise Number of the RFC 5103 reverse Information Elements:
/// an IANA element carried with this PEN describes the reverse direction
/// (responder to originator) of a biflow.
pub const REVERSE_PEN: u32 = 29305;

/// The enterprise number used for our own elements unless configured
/// otherwise: 32473, which IANA reserves for documentation and examples
/// (RFC 5612). The project has no registered PEN; a deployment that owns one
/// sets it with [`crate::ipfix::ExportConfig::enterprise_number`].
pub const DEFAULT_ENTERPRISE_NUMBER: u32 = 32473;

/// Field length that marks a variable-length element in a template
/// (RFC 7011 section 7).
pub const VARIABLE_LENGTH: u16 = 0xFFFF;

/// Template id of IPv4 connection records.
pub const TEMPLATE_IPV4: u16 = 256;
/// Template id of IPv6 connection records.
pub const TEMPLATE_IPV6: u16 = 257;

/// Whose number space an element id belongs to.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Space {
    /// IANA's registry (enterprise bit clear).
    Iana,
    /// IANA's element, reverse direction (RFC 5103, PEN 29305).
    Reverse,
    /// Our enterprise-specific elements (the configured PEN).
    Ours,
}

/// A field of a template: an element id, its number space and its length.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// Element id (without the enterprise bit).
    pub id: u16,
    /// Number space.
    pub space: Space,
    /// Encoded length in octets, or [`VARIABLE_LENGTH`].
    pub length: u16,
    /// What the field carries.
    pub value: Value,
}

/// Which part of a connection record a field carries.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// Originator address.
    SourceAddress,
    /// Responder address.
    DestinationAddress,
    /// Originator port (0 for ICMP and protocols without ports).
    SourcePort,
    /// Responder port (0 for ICMP and protocols without ports).
    DestinationPort,
    /// IP protocol number.
    Protocol,
    /// ICMP type * 256 + code (0 for other protocols).
    IcmpTypeCode,
    /// Outer VLAN id (0: none).
    Vlan,
    /// Inner VLAN id (0: none).
    InnerVlan,
    /// First packet, milliseconds since the epoch.
    StartMillis,
    /// Last packet, milliseconds since the epoch.
    EndMillis,
    /// Originator packets.
    OrigPackets,
    /// Originator IP-level octets.
    OrigOctets,
    /// Responder packets.
    RespPackets,
    /// Responder IP-level octets.
    RespOctets,
    /// TCP flags seen from the originator.
    OrigTcpFlags,
    /// TCP flags seen from the responder.
    RespTcpFlags,
    /// IPFIX flowEndReason.
    EndReason,
    /// IPFIX biflowDirection.
    BiflowDirection,
    /// Zeek conn_state.
    ConnState,
    /// Zeek history.
    History,
    /// Enclave of the originator.
    OrigEnclave,
    /// Enclave of the responder.
    RespEnclave,
    /// Community ID v1.
    CommunityId,
    /// Connection uid.
    Uid,
}

/// Our enterprise-specific element ids (under the configured PEN), all
/// variable-length UTF-8 strings.
pub mod ours {
    /// Zeek's `conn_state`.
    pub const CONN_STATE: u16 = 1;
    /// Zeek's `history`.
    pub const HISTORY: u16 = 2;
    /// Enclave of the originator (empty without rules).
    pub const ORIG_ENCLAVE: u16 = 3;
    /// Enclave of the responder (empty without rules).
    pub const RESP_ENCLAVE: u16 = 4;
    /// Community ID v1 (seed 0).
    pub const COMMUNITY_ID: u16 = 5;
    /// The record's uid, to join with the JSON / TSV records.
    pub const UID: u16 = 6;
}

const fn iana(id: u16, length: u16, value: Value) -> Field {
    Field {
        id,
        space: Space::Iana,
        length,
        value,
    }
}

const fn reverse(id: u16, length: u16, value: Value) -> Field {
    Field {
        id,
        space: Space::Reverse,
        length,
        value,
    }
}

const fn own(id: u16, value: Value) -> Field {
    Field {
        id,
        space: Space::Ours,
        length: VARIABLE_LENGTH,
        value,
    }
}

/// The fields after the addresses, shared by both templates except the ICMP
/// type/code element, which differs by IP version.
const fn common(icmp_type_code: u16) -> [Field; 20] {
    [
        iana(7, 2, Value::SourcePort),
        iana(11, 2, Value::DestinationPort),
        iana(4, 1, Value::Protocol),
        iana(icmp_type_code, 2, Value::IcmpTypeCode),
        iana(58, 2, Value::Vlan),
        iana(245, 2, Value::InnerVlan),
        iana(152, 8, Value::StartMillis),
        iana(153, 8, Value::EndMillis),
        iana(86, 8, Value::OrigPackets),
        iana(85, 8, Value::OrigOctets),
        reverse(86, 8, Value::RespPackets),
        reverse(85, 8, Value::RespOctets),
        // Reverse before forward: nfdump 1.7.1 decodes a reverse element
        // it has no reverse mapping for as the forward one, and the later
        // field wins; this order leaves it the originator's flags. One
        // octet (RFC 7011 reduced-size encoding; the flags we derive are
        // all in the low octet): pmacct 1.7.7 reads only the first octet.
        reverse(6, 1, Value::RespTcpFlags),
        iana(6, 1, Value::OrigTcpFlags),
        iana(136, 1, Value::EndReason),
        iana(239, 1, Value::BiflowDirection),
        own(ours::CONN_STATE, Value::ConnState),
        own(ours::HISTORY, Value::History),
        own(ours::ORIG_ENCLAVE, Value::OrigEnclave),
        own(ours::RESP_ENCLAVE, Value::RespEnclave),
    ]
}

const fn template(src: u16, dst: u16, addr_len: u16, icmp: u16) -> [Field; 24] {
    let c = common(icmp);
    [
        iana(src, addr_len, Value::SourceAddress),
        iana(dst, addr_len, Value::DestinationAddress),
        c[0],
        c[1],
        c[2],
        c[3],
        c[4],
        c[5],
        c[6],
        c[7],
        c[8],
        c[9],
        c[10],
        c[11],
        c[12],
        c[13],
        c[14],
        c[15],
        c[16],
        c[17],
        c[18],
        c[19],
        own(ours::COMMUNITY_ID, Value::CommunityId),
        own(ours::UID, Value::Uid),
    ]
}

/// Fields of the IPv4 template (sourceIPv4Address 8, destinationIPv4Address
/// 12, icmpTypeCodeIPv4 32, then the common fields).
pub const IPV4_FIELDS: [Field; 24] = template(8, 12, 4, 32);
/// Fields of the IPv6 template (sourceIPv6Address 27, destinationIPv6Address
/// 28, icmpTypeCodeIPv6 139, then the common fields).
pub const IPV6_FIELDS: [Field; 24] = template(27, 28, 16, 139);
