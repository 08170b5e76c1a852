//! Connection records: what a finished (or long-running) flow reports, with
//! Zeek conn.log's fields and meanings, plus Community ID, the end reason and
//! the enclave of each side.

use crate::time::Timestamp;
use serde::{Serialize, Serializer};
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// Transport protocol as Zeek's `proto` field names it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP or ICMPv6.
    Icmp,
    /// SCTP (Zeek logs SCTP as `unknown_transport`; we keep its ports).
    Sctp,
    /// Any other IP protocol; see `ip_proto`.
    Unknown,
}

impl Proto {
    /// Maps an IP protocol number.
    pub fn from_ip_proto(n: u8) -> Proto {
        match n {
            6 => Proto::Tcp,
            17 => Proto::Udp,
            1 | 58 => Proto::Icmp,
            132 => Proto::Sctp,
            _ => Proto::Unknown,
        }
    }

    /// The name written in logs.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
            Proto::Sctp => "sctp",
            Proto::Unknown => "unknown_transport",
        }
    }
}

/// Zeek's `conn_state` summary of a connection.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConnState {
    /// Connection attempt seen, no reply.
    S0,
    /// Connection established, not terminated.
    S1,
    /// Normal establishment and termination.
    SF,
    /// Connection attempt rejected.
    REJ,
    /// Established, originator attempted close, no reply from responder.
    S2,
    /// Established, responder attempted close, no reply from originator.
    S3,
    /// Established, originator aborted (sent a RST).
    RSTO,
    /// Responder sent a RST.
    RSTR,
    /// Originator sent a SYN followed by a RST, never saw a SYN-ACK.
    RSTOS0,
    /// Responder sent a SYN-ACK followed by a RST, never saw a SYN from the originator.
    RSTRH,
    /// Originator sent a SYN followed by a FIN, never saw a SYN-ACK ("half-open").
    SH,
    /// Responder sent a SYN-ACK followed by a FIN, never saw a SYN from the originator.
    SHR,
    /// No SYN seen, just midstream traffic (or a non-TCP/UDP protocol).
    OTH,
}

impl ConnState {
    /// The code written in logs.
    pub fn name(self) -> &'static str {
        match self {
            ConnState::S0 => "S0",
            ConnState::S1 => "S1",
            ConnState::SF => "SF",
            ConnState::REJ => "REJ",
            ConnState::S2 => "S2",
            ConnState::S3 => "S3",
            ConnState::RSTO => "RSTO",
            ConnState::RSTR => "RSTR",
            ConnState::RSTOS0 => "RSTOS0",
            ConnState::RSTRH => "RSTRH",
            ConnState::SH => "SH",
            ConnState::SHR => "SHR",
            ConnState::OTH => "OTH",
        }
    }
}

/// Why a record was emitted.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EndReason {
    /// Closed by a FIN exchange.
    Fin,
    /// Closed by a RST.
    Rst,
    /// No packet for the protocol's idle timeout.
    Idle,
    /// Interim record of a flow still running (active timeout).
    Active,
    /// Removed to stay under the table's flow cap.
    Evicted,
    /// A new connection reused the same addresses and ports (a SYN with a
    /// new initial sequence number), as Zeek's connection reuse.
    Reuse,
    /// The input ended.
    Eof,
    /// The process was asked to stop.
    Shutdown,
    /// Not an end: the connection's first packet was just seen (only with
    /// [`crate::TableConfig::report_starts`]), so policy checks can act at
    /// once. Start records are for detectors, not for connection logs; to
    /// stay cheap they carry no `community_id` (see
    /// [`ConnRecord::computed_community_id`]).
    Start,
}

impl EndReason {
    /// The name written in logs.
    pub fn name(self) -> &'static str {
        match self {
            EndReason::Fin => "fin",
            EndReason::Rst => "rst",
            EndReason::Idle => "idle",
            EndReason::Active => "active",
            EndReason::Evicted => "evicted",
            EndReason::Reuse => "reuse",
            EndReason::Eof => "eof",
            EndReason::Shutdown => "shutdown",
            EndReason::Start => "start",
        }
    }

    /// Every reason, in declaration order.
    pub const ALL: [EndReason; 9] = [
        EndReason::Fin,
        EndReason::Rst,
        EndReason::Idle,
        EndReason::Active,
        EndReason::Evicted,
        EndReason::Reuse,
        EndReason::Eof,
        EndReason::Shutdown,
        EndReason::Start,
    ];
}

macro_rules! serialize_by_name {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    )*};
}
serialize_by_name!(Proto, ConnState, EndReason);

/// Serialises a capture time as seconds with microsecond precision, as Zeek
/// logs `time` fields (for `#[serde(serialize_with = ...)]`).
pub fn ts_secs<S: Serializer>(ts: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(micros_f64(ts.0))
}

fn duration_secs<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(micros_f64(d.as_nanos() as i64)),
        None => s.serialize_none(),
    }
}

/// Nanoseconds to seconds, rounded to whole microseconds as Zeek logs them.
pub(crate) fn micros_f64(nanos: i64) -> f64 {
    nanos.div_euclid(1_000) as f64 / 1e6
}

/// One connection record. Field names and meanings follow Zeek's conn.log;
/// JSON output uses exactly these names, absent values are left out.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConnRecord {
    /// Time of the connection's first packet.
    #[serde(serialize_with = "ts_secs")]
    pub ts: Timestamp,
    /// Unique identifier of the connection ("C" + base62), stable for the same input.
    pub uid: String,
    /// Originator address.
    #[serde(rename = "id.orig_h")]
    pub orig_h: IpAddr,
    /// Originator port (ICMP: message type).
    #[serde(rename = "id.orig_p")]
    pub orig_p: u16,
    /// Responder address.
    #[serde(rename = "id.resp_h")]
    pub resp_h: IpAddr,
    /// Responder port (ICMP: counterpart type or code).
    #[serde(rename = "id.resp_p")]
    pub resp_p: u16,
    /// Transport protocol.
    pub proto: Proto,
    /// Application protocol, when identified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Time from first to last packet; unset for a single-packet connection.
    #[serde(
        serialize_with = "duration_secs",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration: Option<Duration>,
    /// Originator payload bytes (TCP: from sequence numbers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orig_bytes: Option<u64>,
    /// Responder payload bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resp_bytes: Option<u64>,
    /// Connection state summary.
    pub conn_state: ConnState,
    /// Originator is in the local networks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_orig: Option<bool>,
    /// Responder is in the local networks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_resp: Option<bool>,
    /// Bytes missed in content gaps (TCP).
    pub missed_bytes: u64,
    /// State history (Zeek's letters; upper case = originator).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub history: String,
    /// Originator packets.
    pub orig_pkts: u64,
    /// Originator IP-level bytes (IP length fields).
    pub orig_ip_bytes: u64,
    /// Responder packets.
    pub resp_pkts: u64,
    /// Responder IP-level bytes.
    pub resp_ip_bytes: u64,
    /// Uids of the tunnels that carried this connection.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tunnel_parents: Vec<String>,
    /// Outer VLAN id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    /// Inner VLAN id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inner_vlan: Option<u16>,
    /// IP protocol number.
    pub ip_proto: u8,
    /// Community ID v1 (seed 0).
    pub community_id: String,
    /// Why this record was emitted.
    pub end_reason: EndReason,
    /// Capture time at which the record became due: the timeout deadline
    /// for idle and closed connections and interim records, the packet's
    /// time for reuse and eviction, the latest capture time for end of
    /// input. Not logged; outputs order records by it (then by uid), which
    /// makes the order independent of how work is split across threads.
    #[serde(skip)]
    pub emitted: Timestamp,
    /// Enclave of the originator, when an enclave map is applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orig_enclave: Option<String>,
    /// Enclave of the responder, when an enclave map is applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resp_enclave: Option<String>,
    /// Host group of the originator (jump hosts, backup servers, ...), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orig_host_group: Option<String>,
    /// Host group of the responder, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resp_host_group: Option<String>,
}

impl ConnRecord {
    /// The record's Community ID: `community_id` when set, else computed
    /// from the record's addresses, ports and protocol (start records leave
    /// it empty).
    pub fn computed_community_id(&self) -> String {
        if !self.community_id.is_empty() {
            return self.community_id.clone();
        }
        let one_way = matches!(self.ip_proto, 1 | 58)
            && crate::key::icmp_ports(self.ip_proto == 58, self.orig_p as u8, 0).2;
        crate::key::community_id(
            crate::key::Endpoint {
                addr: self.orig_h,
                port: self.orig_p,
            },
            crate::key::Endpoint {
                addr: self.resp_h,
                port: self.resp_p,
            },
            self.ip_proto,
            one_way,
        )
    }
}
