//! Alerts: what the detector reports, with every reason and its weight.

use crate::config::detector::{Reason, Severity};
use flowlib::{ConnRecord, Timestamp};
use serde::{Serialize, Serializer};
use std::net::IpAddr;

/// One reason that contributed to a score.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReasonHit {
    /// The reason.
    #[serde(serialize_with = "reason_name")]
    pub reason: Reason,
    /// Points it added to the score.
    pub weight: u8,
    /// What exactly was seen, for the analyst.
    pub detail: String,
}

fn reason_name<S: Serializer>(r: &Reason, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(r.as_str())
}

/// An alert, as one JSON line. Joins to connection records by `uid` and to
/// Zeek or Suricata data by `community_id`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    /// `alert` when first raised; `update` when a deduplicated alert's
    /// count and last time are reported.
    pub event: &'static str,
    /// Capture time the evidence was complete.
    #[serde(serialize_with = "flowlib::record::ts_secs")]
    pub ts: Timestamp,
    /// Stable id of this alert (updates repeat it).
    pub alert_id: String,
    /// The connection that raised it.
    pub uid: String,
    /// Community ID of that connection.
    pub community_id: String,
    /// Originator address.
    #[serde(rename = "id.orig_h")]
    pub orig_h: IpAddr,
    /// Originator port.
    #[serde(rename = "id.orig_p")]
    pub orig_p: u16,
    /// Responder address.
    #[serde(rename = "id.resp_h")]
    pub resp_h: IpAddr,
    /// Responder port.
    #[serde(rename = "id.resp_p")]
    pub resp_p: u16,
    /// Transport protocol.
    pub proto: String,
    /// IP protocol number (not in our JSON, where `proto` names it; EVE
    /// and other exports name protocols Zeek calls `unknown_transport`).
    #[serde(skip)]
    pub ip_proto: u8,
    /// Outer VLAN id of the connection, if tagged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    /// Inner (customer) VLAN id of a QinQ connection. Not in our JSON,
    /// whose alert format has no such field; EVE lists it after the outer
    /// one, as Suricata and our flow events do.
    #[serde(skip)]
    pub inner_vlan: Option<u16>,
    /// 0-100: the sum of the reasons' weights, capped.
    pub score: u8,
    /// `low`, `medium`, `high` or `critical`, from the score.
    pub severity: &'static str,
    /// Every reason with its weight.
    pub reasons: Vec<ReasonHit>,
    /// The relationship the connection was checked against, if one applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relationship: Option<String>,
    /// Enclave of the originator.
    pub orig_enclave: String,
    /// Enclave of the responder.
    pub resp_enclave: String,
    /// Host group of the originator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orig_host_group: Option<String>,
    /// Host group of the responder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resp_host_group: Option<String>,
    /// MITRE ATT&CK technique ids.
    pub techniques: Vec<&'static str>,
    /// Connections this alert stands for (deduplication).
    pub count: u64,
    /// Capture time of the last of them.
    #[serde(serialize_with = "flowlib::record::ts_secs")]
    pub last_ts: Timestamp,
    /// The reason that names the alert (the strongest policy reason, or the
    /// behaviour that fired); alerts are counted and deduplicated by it.
    /// Not written in the JSON line (its `reasons` list every reason).
    #[serde(skip)]
    pub primary: Reason,
}

/// Severity name for a score.
pub fn severity(score: u8, s: &Severity) -> &'static str {
    if score >= s.critical {
        "critical"
    } else if score >= s.high {
        "high"
    } else if score >= s.medium {
        "medium"
    } else {
        "low"
    }
}

/// ATT&CK techniques for a set of reasons on a connection.
pub fn techniques(reasons: &[ReasonHit], r: &ConnRecord, provider_side: bool) -> Vec<&'static str> {
    let mut t = Vec::new();
    let mut add = |id: &'static str| {
        if !t.contains(&id) {
            t.push(id);
        }
    };
    for hit in reasons {
        match hit.reason {
            Reason::NoRelationship
            | Reason::CrossCustomer
            | Reason::OutsideWindow
            | Reason::UnapprovedHost
            | Reason::NewPair
            | Reason::NewService
            | Reason::NewHour => {
                if provider_side || hit.reason == Reason::CrossCustomer {
                    add("T1199");
                }
            }
            Reason::AdminProtocol => {}
            Reason::FanOut => add("T1046"),
            Reason::Beacon => add("T1071"),
            Reason::OverVolume | Reason::Volume => add("T1048"),
            Reason::Staging => {
                add("T1074");
                add("T1041");
            }
            Reason::LongSession => {}
        }
    }
    // Remote services by the responder port, whenever anything fired.
    if !reasons.is_empty() && r.proto == flowlib::Proto::Tcp {
        match r.resp_p {
            3389 => add("T1021.001"),
            445 | 139 => add("T1021.002"),
            135 => add("T1021.003"),
            22 => add("T1021.004"),
            5900..=5903 => add("T1021.005"),
            5985 | 5986 => add("T1021.006"),
            _ => {}
        }
    }
    t
}
