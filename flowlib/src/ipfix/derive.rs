//! Values IPFIX wants that a connection record holds in another form: TCP
//! flags from Zeek's history letters, flowEndReason from our end reason, the
//! ICMP type/code from Zeek's port mapping.

use crate::record::{ConnRecord, EndReason};

/// TCP flag bits as tcpControlBits (IANA element 6) numbers them.
pub mod tcp {
    /// FIN.
    pub const FIN: u16 = 0x01;
    /// SYN.
    pub const SYN: u16 = 0x02;
    /// RST.
    pub const RST: u16 = 0x04;
    /// ACK.
    pub const ACK: u16 = 0x10;
}

/// The TCP flags each side is known to have sent, `(originator, responder)`,
/// derived from the history letters (upper case: originator): `S` SYN, `H`
/// SYN+ACK, `A` ACK, `F` FIN, `R` RST, `I` FIN+RST, `Q` SYN (with FIN or
/// RST, which one the letter does not say). `D` (data) and the other letters
/// imply no flag. History records the first occurrence of each event, so the
/// result is the union of flags certainly seen; 0 for non-TCP records.
pub fn tcp_flags(r: &ConnRecord) -> (u16, u16) {
    if r.ip_proto != 6 {
        return (0, 0);
    }
    let (mut orig, mut resp) = (0u16, 0u16);
    for c in r.history.chars() {
        let bits = match c.to_ascii_uppercase() {
            'S' => tcp::SYN,
            'H' => tcp::SYN | tcp::ACK,
            'A' => tcp::ACK,
            'F' => tcp::FIN,
            'R' => tcp::RST,
            'I' => tcp::FIN | tcp::RST,
            'Q' => tcp::SYN,
            _ => 0,
        };
        if c.is_ascii_uppercase() {
            orig |= bits;
        } else {
            resp |= bits;
        }
    }
    (orig, resp)
}

/// flowEndReason values (RFC 7012, IANA element 136).
pub mod end_reason {
    /// idle timeout.
    pub const IDLE_TIMEOUT: u8 = 1;
    /// active timeout.
    pub const ACTIVE_TIMEOUT: u8 = 2;
    /// end of flow detected.
    pub const END_OF_FLOW: u8 = 3;
    /// forced end.
    pub const FORCED_END: u8 = 4;
    /// lack of resources.
    pub const LACK_OF_RESOURCES: u8 = 5;
}

/// Our end reason as flowEndReason: `fin`, `rst` and `reuse` (a new SYN on
/// the same tuple ends the old connection) are the end of the flow
/// detected; `idle` and `active` the timeouts; `evicted` (flow cap) lack of
/// resources; `eof`, `shutdown` (and `start`, never exported) a forced end.
pub fn flow_end_reason(reason: EndReason) -> u8 {
    match reason {
        EndReason::Fin | EndReason::Rst | EndReason::Reuse => end_reason::END_OF_FLOW,
        EndReason::Idle => end_reason::IDLE_TIMEOUT,
        EndReason::Active => end_reason::ACTIVE_TIMEOUT,
        EndReason::Evicted => end_reason::LACK_OF_RESOURCES,
        EndReason::Eof | EndReason::Shutdown | EndReason::Start => end_reason::FORCED_END,
    }
}

/// `(source port, destination port, icmpTypeCode)`: ICMP records keep the
/// message type in `orig_p` and, for one-way messages, the code in `resp_p`
/// (two-way messages such as echo have code 0 and the counterpart type in
/// `resp_p`); their ports are exported as 0 and the type and code as
/// type * 256 + code. Other protocols keep their ports.
pub fn ports_and_icmp(r: &ConnRecord) -> (u16, u16, u16) {
    match r.ip_proto {
        1 | 58 => {
            let icmp_type = r.orig_p.min(255) as u8;
            let one_way = crate::key::icmp_ports(r.ip_proto == 58, icmp_type, 0).2;
            let code = if one_way { r.resp_p.min(255) } else { 0 };
            (0, 0, u16::from(icmp_type) << 8 | code)
        }
        _ => (r.orig_p, r.resp_p, 0),
    }
}

/// Milliseconds since the epoch of the first and the last packet.
pub fn start_end_millis(r: &ConnRecord) -> (u64, u64) {
    let start = r.ts.0.div_euclid(1_000_000).max(0) as u64;
    let end = match r.duration {
        Some(d) => r.ts.plus(d).0.div_euclid(1_000_000).max(0) as u64,
        None => start,
    };
    (start, end)
}
