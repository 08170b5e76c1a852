//! Suricata's EVE JSON: alerts as `event_type: "alert"` and connection
//! records as `event_type: "flow"`, so the SIEM integrations built for
//! Suricata (Elastic, Splunk, Wazuh) ingest them unchanged.
//!
//! Field names and types follow Suricata's "Eve JSON Format" documentation
//! (common section, alert and flow events). What EVE has no field for is
//! kept, never dropped: every event carries a `flowmon` object (the plain
//! JSON alert or connection record), which Suricata consumers ignore.
//!
//! - `timestamp`: Suricata's form, `2026-03-02T08:00:00.000000+0000`
//!   (capture time, UTC).
//! - `flow_id`: a 51-bit number derived from the connection's `uid` (itself
//!   derived from the flow key and start time), so an alert and the flow
//!   event of the same connection share it, and the same input always gives
//!   the same ids; 51 bits stay exact in any JSON reader.
//! - Alerts: each detector reason has a stable `signature_id`, `signature`
//!   and `category` ([`signature`]); the alert is named by its primary
//!   reason. The score maps to Suricata's severity (1 highest) by
//!   [`eve_severity`].

use chrono::{DateTime, Datelike, Timelike};
use flowlib::{ConnRecord, ConnState, EndReason, Proto, Timestamp};
use rules::config::detector::Reason;
use rules::detector::Alert;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::IpAddr;

/// Suricata's generator id for rule-based alerts.
pub const GID: u32 = 1;

/// One row of the signature table: what an alert named by a reason is
/// called in EVE.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    /// `alert.signature_id` (in the 1000000-1999999 range kept for local rules).
    pub id: u32,
    /// `alert.rev`.
    pub rev: u32,
    /// `alert.signature`.
    pub name: &'static str,
    /// `alert.category`, one of the classification names Suricata ships.
    pub category: &'static str,
}

const POLICY: &str = "Potential Corporate Privacy Violation";
const BAD: &str = "Potentially Bad Traffic";

/// The stable signature of the alerts a reason names.
pub fn signature(reason: Reason) -> Signature {
    let (id, name, category) = match reason {
        Reason::NoRelationship => (
            1_200_001,
            "FLOWMON POLICY Connection across a trust boundary that no relationship allows",
            POLICY,
        ),
        Reason::CrossCustomer => (
            1_200_002,
            "FLOWMON POLICY Connection between two customers' enclaves",
            POLICY,
        ),
        Reason::OutsideWindow => (
            1_200_003,
            "FLOWMON POLICY Relationship used outside its time windows",
            POLICY,
        ),
        Reason::UnapprovedHost => (
            1_200_004,
            "FLOWMON POLICY Relationship used from a host outside its host group",
            POLICY,
        ),
        Reason::OverVolume => (
            1_200_005,
            "FLOWMON POLICY Relationship above its daily volume ceiling",
            POLICY,
        ),
        Reason::AdminProtocol => (
            1_200_006,
            "FLOWMON POLICY Administrative protocol across a trust boundary",
            POLICY,
        ),
        Reason::NewPair => (
            1_200_007,
            "FLOWMON BASELINE Host pair never seen in the baseline",
            BAD,
        ),
        Reason::NewService => (
            1_200_008,
            "FLOWMON BASELINE Service never seen in the baseline for this pair",
            BAD,
        ),
        Reason::NewHour => (
            1_200_009,
            "FLOWMON BASELINE Provider session at an hour never seen in the baseline",
            BAD,
        ),
        Reason::FanOut => (
            1_200_010,
            "FLOWMON SCAN One source reaching many hosts or ports",
            "Detection of a Network Scan",
        ),
        Reason::Beacon => (
            1_200_011,
            "FLOWMON C2 Periodic beaconing across a trust boundary",
            "A Network Trojan was detected",
        ),
        Reason::Volume => (
            1_200_012,
            "FLOWMON EXFIL Upload far above the pair's baseline",
            BAD,
        ),
        Reason::Staging => (
            1_200_013,
            "FLOWMON EXFIL Internal staging followed by a comparable upload",
            BAD,
        ),
        Reason::LongSession => (
            1_200_014,
            "FLOWMON POLICY Very long session across a trust boundary",
            "Misc activity",
        ),
    };
    Signature {
        id,
        rev: 1,
        name,
        category,
    }
}

/// Suricata's severity (1 is the most severe) for our severity names:
/// critical and high 1, medium 2, low 3. Our own name and score stay in
/// `alert.metadata`.
pub fn eve_severity(severity: &str) -> u8 {
    match severity {
        "critical" | "high" => 1,
        "medium" => 2,
        _ => 3,
    }
}

/// Capture time in Suricata's timestamp form, in UTC:
/// `YYYY-MM-DDTHH:MM:SS.ffffff+0000`.
pub fn timestamp(ts: Timestamp) -> String {
    let micros = ts.0.div_euclid(1_000);
    let secs = micros.div_euclid(1_000_000);
    let sub = micros.rem_euclid(1_000_000);
    match DateTime::from_timestamp(secs, 0) {
        // By components: much cheaper than parsing a format string per call.
        Some(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{sub:06}+0000",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        // Outside chrono's range (hundreds of thousands of years): clamp.
        None => "1970-01-01T00:00:00.000000+0000".to_owned(),
    }
}

/// The EVE `flow_id` of a connection: a 51-bit hash of its `uid`, never 0.
pub fn flow_id(uid: &str) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in uid.as_bytes() {
        h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
    }
    (flowlib::key::mix64(h) & ((1 << 51) - 1)).max(1)
}

/// EVE's `proto`: Suricata's protocol names, the number otherwise.
pub fn proto_name(ip_proto: u8) -> String {
    match ip_proto {
        6 => "TCP".into(),
        17 => "UDP".into(),
        1 => "ICMP".into(),
        58 => "IPv6-ICMP".into(),
        132 => "SCTP".into(),
        47 => "GRE".into(),
        n => n.to_string(),
    }
}

/// The common section every EVE event starts with.
#[derive(Serialize)]
struct Header<'a> {
    timestamp: String,
    flow_id: u64,
    event_type: &'a str,
    src_ip: IpAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    src_port: Option<u16>,
    dest_ip: IpAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    dest_port: Option<u16>,
    proto: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    vlan: Vec<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    icmp_type: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    icmp_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_icmp_type: Option<u16>,
    community_id: &'a str,
}

/// Ports, or for ICMP the type and (one-way messages) the code or
/// (two-way messages) the type of the answer, as our records know them.
struct Endpoints {
    src_port: Option<u16>,
    dest_port: Option<u16>,
    icmp_type: Option<u16>,
    icmp_code: Option<u16>,
    response_icmp_type: Option<u16>,
}

fn endpoints(ip_proto: u8, orig_p: u16, resp_p: u16) -> Endpoints {
    if matches!(ip_proto, 1 | 58) {
        let one_way = flowlib::key::icmp_ports(ip_proto == 58, orig_p as u8, 0).2;
        Endpoints {
            src_port: None,
            dest_port: None,
            icmp_type: Some(orig_p),
            icmp_code: one_way.then_some(resp_p),
            response_icmp_type: (!one_way).then_some(resp_p),
        }
    } else {
        Endpoints {
            src_port: Some(orig_p),
            dest_port: Some(resp_p),
            icmp_type: None,
            icmp_code: None,
            response_icmp_type: None,
        }
    }
}

#[derive(Serialize)]
struct AlertBody {
    action: &'static str,
    gid: u32,
    signature_id: u32,
    rev: u32,
    signature: &'static str,
    category: &'static str,
    severity: u8,
    metadata: BTreeMap<&'static str, Vec<String>>,
}

#[derive(Serialize)]
struct AlertEvent<'a> {
    #[serde(flatten)]
    header: Header<'a>,
    alert: AlertBody,
    flowmon: &'a Alert,
}

/// The EVE event type of an alert line: `alert` when raised; a
/// deduplicated alert's final count is reported as `alert_update` (ours,
/// so that Suricata consumers do not count it as a second alert).
pub fn alert_event_type(a: &Alert) -> &'static str {
    if a.event == "update" {
        "alert_update"
    } else {
        "alert"
    }
}

/// Writes one alert as an EVE line.
pub fn write_alert<W: Write>(out: &mut W, a: &Alert) -> io::Result<()> {
    let sig = signature(a.primary);
    let ip_proto = a.ip_proto;
    let ends = endpoints(ip_proto, a.orig_p, a.resp_p);
    let mut metadata: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    metadata.insert("flowmon_score", vec![a.score.to_string()]);
    metadata.insert("flowmon_severity", vec![a.severity.to_owned()]);
    metadata.insert(
        "flowmon_reasons",
        a.reasons
            .iter()
            .map(|r| r.reason.as_str().to_owned())
            .collect(),
    );
    metadata.insert("flowmon_uid", vec![a.uid.clone()]);
    metadata.insert("flowmon_alert_id", vec![a.alert_id.clone()]);
    metadata.insert("flowmon_count", vec![a.count.to_string()]);
    metadata.insert("orig_enclave", vec![a.orig_enclave.clone()]);
    metadata.insert("resp_enclave", vec![a.resp_enclave.clone()]);
    if let Some(rel) = &a.relationship {
        metadata.insert("relationship", vec![rel.clone()]);
    }
    if !a.techniques.is_empty() {
        metadata.insert(
            "mitre_technique_id",
            a.techniques.iter().map(|t| (*t).to_owned()).collect(),
        );
    }
    let event = AlertEvent {
        header: Header {
            timestamp: timestamp(a.ts),
            flow_id: flow_id(&a.uid),
            event_type: alert_event_type(a),
            src_ip: a.orig_h,
            src_port: ends.src_port,
            dest_ip: a.resp_h,
            dest_port: ends.dest_port,
            // As the flow events name it (GRE, 253, ...), never Zeek's
            // `unknown_transport`.
            proto: proto_name(ip_proto),
            // Outer, then inner, as in the flow events.
            vlan: a.vlan.into_iter().chain(a.inner_vlan).collect(),
            icmp_type: ends.icmp_type,
            icmp_code: ends.icmp_code,
            response_icmp_type: ends.response_icmp_type,
            community_id: &a.community_id,
        },
        alert: AlertBody {
            action: "allowed",
            gid: GID,
            signature_id: sig.id,
            rev: sig.rev,
            signature: sig.name,
            category: sig.category,
            severity: eve_severity(a.severity),
            metadata,
        },
        flowmon: a,
    };
    write_line(out, &event)
}

#[derive(Serialize)]
struct FlowBody {
    pkts_toserver: u64,
    pkts_toclient: u64,
    bytes_toserver: u64,
    bytes_toclient: u64,
    start: String,
    end: String,
    age: u64,
    state: &'static str,
    reason: &'static str,
    alerted: bool,
}

#[derive(Serialize)]
struct TcpBody {
    tcp_flags: String,
    tcp_flags_ts: String,
    tcp_flags_tc: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    syn: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    fin: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    rst: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    ack: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'static str>,
}

#[derive(Serialize)]
struct FlowEvent<'a> {
    #[serde(flatten)]
    header: Header<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    app_proto: Option<&'a str>,
    flow: FlowBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    tcp: Option<TcpBody>,
    flowmon: &'a ConnRecord,
}

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

/// The TCP flags each side is known to have sent, from Zeek's history
/// letters (upper case: originator = to server): `S` SYN, `H` SYN+ACK,
/// `A` ACK, `F` FIN, `R` RST, `I` FIN+RST, `Q` SYN (with a FIN or RST we
/// cannot tell apart). Letters record the first occurrence of each event,
/// which is all a union of flags needs; flags no letter records (PSH, URG,
/// ECE, CWR, and ACK on data packets) are not claimed.
pub fn tcp_flags_from_history(history: &str) -> (u8, u8) {
    let (mut ts, mut tc) = (0u8, 0u8);
    for c in history.chars() {
        let f = match c.to_ascii_uppercase() {
            'S' | 'Q' => SYN,
            'H' => SYN | ACK,
            'A' => ACK,
            'F' => FIN,
            'R' => RST,
            'I' => FIN | RST,
            _ => 0,
        };
        if c.is_ascii_uppercase() {
            ts |= f;
        } else {
            tc |= f;
        }
    }
    (ts, tc)
}

/// Suricata's flow `state`: `closed` for TCP that ended with a FIN or RST
/// exchange, `established` once both sides sent, `new` before.
fn flow_state(r: &ConnRecord) -> &'static str {
    let tcp_closed = r.proto == Proto::Tcp
        && (matches!(r.end_reason, EndReason::Fin | EndReason::Rst)
            || matches!(
                r.conn_state,
                ConnState::SF
                    | ConnState::REJ
                    | ConnState::RSTO
                    | ConnState::RSTR
                    | ConnState::RSTOS0
                    | ConnState::RSTRH
            ));
    if tcp_closed && r.end_reason != EndReason::Active {
        "closed"
    } else if r.orig_pkts > 0 && r.resp_pkts > 0 {
        "established"
    } else {
        "new"
    }
}

/// Suricata's flow `reason` (`timeout`, `forced`, `shutdown`) for our end
/// reasons; the exact one is in `flowmon.end_reason`.
pub fn flow_reason(r: EndReason) -> &'static str {
    match r {
        EndReason::Fin
        | EndReason::Rst
        | EndReason::Idle
        | EndReason::Active
        | EndReason::Start => "timeout",
        EndReason::Evicted | EndReason::Reuse => "forced",
        EndReason::Eof | EndReason::Shutdown => "shutdown",
    }
}

/// Writes one connection record as an EVE `flow` line; `alerted` says
/// whether an alert was raised on this connection.
pub fn write_flow<W: Write>(out: &mut W, r: &ConnRecord, alerted: bool) -> io::Result<()> {
    let ends = endpoints(r.ip_proto, r.orig_p, r.resp_p);
    let end = r.duration.map_or(r.ts, |d| r.ts.plus(d));
    let tcp = (r.proto == Proto::Tcp).then(|| {
        let (ts, tc) = tcp_flags_from_history(&r.history);
        let all = ts | tc;
        TcpBody {
            tcp_flags: format!("{all:02x}"),
            tcp_flags_ts: format!("{ts:02x}"),
            tcp_flags_tc: format!("{tc:02x}"),
            syn: all & SYN != 0,
            fin: all & FIN != 0,
            rst: all & RST != 0,
            ack: all & ACK != 0,
            state: match r.conn_state {
                ConnState::S0 => Some("syn_sent"),
                ConnState::S1 => Some("established"),
                ConnState::SF
                | ConnState::REJ
                | ConnState::RSTO
                | ConnState::RSTR
                | ConnState::RSTOS0
                | ConnState::RSTRH => Some("closed"),
                _ => None,
            },
        }
    });
    let event = FlowEvent {
        header: Header {
            // As Suricata, the time the flow was logged: when the record
            // became due (its timeout, its end, the end of input).
            timestamp: timestamp(r.emitted.max(end)),
            flow_id: flow_id(&r.uid),
            event_type: "flow",
            src_ip: r.orig_h,
            src_port: ends.src_port,
            dest_ip: r.resp_h,
            dest_port: ends.dest_port,
            proto: proto_name(r.ip_proto),
            vlan: r.vlan.into_iter().chain(r.inner_vlan).collect(),
            icmp_type: ends.icmp_type,
            icmp_code: ends.icmp_code,
            response_icmp_type: ends.response_icmp_type,
            community_id: &r.community_id,
        },
        app_proto: r.service.as_deref(),
        flow: FlowBody {
            pkts_toserver: r.orig_pkts,
            pkts_toclient: r.resp_pkts,
            bytes_toserver: r.orig_ip_bytes,
            bytes_toclient: r.resp_ip_bytes,
            start: timestamp(r.ts),
            end: timestamp(end),
            age: end.secs().saturating_sub(r.ts.secs()).max(0) as u64,
            state: flow_state(r),
            reason: flow_reason(r.end_reason),
            alerted,
        },
        tcp,
        flowmon: r,
    };
    write_line(out, &event)
}

/// Alert line formats.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AlertFormat {
    /// Our JSON lines (score, reasons, enclaves, techniques).
    Json,
    /// Suricata EVE `alert` events (our alert kept in `flowmon`).
    Eve,
}

impl AlertFormat {
    /// Writes one alert line in this format.
    pub fn write<W: Write>(self, out: &mut W, a: &Alert) -> io::Result<()> {
        match self {
            AlertFormat::Json => {
                let mut line = Vec::with_capacity(768);
                a.write_json(&mut line);
                line.push(b'\n');
                out.write_all(&line)
            }
            AlertFormat::Eve => write_alert(out, a),
        }
    }
}

/// Writes `v` as one JSON line, serialized into a buffer first and handed
/// to `out` in one `write_all` (serde_json writes a line as dozens of small
/// pieces, each costly through a rotating file over a `BufWriter`).
fn write_line<W: Write, T: Serialize>(out: &mut W, v: &T) -> io::Result<()> {
    let mut line = Vec::with_capacity(768);
    serde_json::to_writer(&mut line, v).map_err(io::Error::from)?;
    line.push(b'\n');
    out.write_all(&line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_in_suricatas_form() {
        let t = Timestamp::from_micros(1_772_438_400, 251_547);
        assert_eq!(timestamp(t), "2026-03-02T08:00:00.251547+0000");
        assert_eq!(timestamp(Timestamp(0)), "1970-01-01T00:00:00.000000+0000");
        // Nanoseconds are cut to microseconds, before the epoch too.
        assert_eq!(timestamp(Timestamp(-1)), "1969-12-31T23:59:59.999999+0000");
    }

    #[test]
    fn every_reason_has_its_own_signature_id() {
        let mut ids: Vec<u32> = Reason::ALL.iter().map(|r| signature(*r).id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), Reason::ALL.len());
        assert!(ids.iter().all(|id| (1_000_000..2_000_000).contains(id)));
    }

    #[test]
    fn flow_ids_are_stable_nonzero_and_exact_in_json() {
        let a = flow_id("CoYqIC0GnLlJjs2Ywt");
        assert_eq!(a, flow_id("CoYqIC0GnLlJjs2Ywt"));
        assert_ne!(a, flow_id("CoYqIC0GnLlJjs2Ywu"));
        assert!(a > 0 && a < 1 << 51);
    }

    #[test]
    fn tcp_flags_come_from_the_history_letters() {
        // A normal connection: SYN, SYN-ACK, ACK, data, FINs both ways.
        assert_eq!(
            tcp_flags_from_history("ShADadFf"),
            (SYN | ACK | FIN, SYN | ACK | FIN)
        );
        assert_eq!(tcp_flags_from_history("Sr"), (SYN, RST));
        assert_eq!(tcp_flags_from_history(""), (0, 0));
    }
}
