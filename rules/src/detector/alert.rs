//! Alerts: what the detector reports, with every reason and its weight.

use crate::config::detector::{Reason, Severity};
use flowlib::export::json_value::{addr, array, optional, string, timestamp, uint};
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

impl Alert {
    /// Appends the alert as a JSON object (no newline) to `out`: the bytes
    /// `serde_json::to_writer` writes for its `Serialize` (same keys in the
    /// same order, same omissions), built directly, at a fraction of the
    /// cost (a detector on a busy boundary writes tens of thousands).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"event\":");
        string(out, self.event);
        out.extend_from_slice(b",\"ts\":");
        timestamp(out, self.ts);
        out.extend_from_slice(b",\"alert_id\":");
        string(out, &self.alert_id);
        out.extend_from_slice(b",\"uid\":");
        string(out, &self.uid);
        out.extend_from_slice(b",\"community_id\":");
        string(out, &self.community_id);
        out.extend_from_slice(b",\"id.orig_h\":");
        addr(out, self.orig_h);
        out.extend_from_slice(b",\"id.orig_p\":");
        uint(out, self.orig_p.into());
        out.extend_from_slice(b",\"id.resp_h\":");
        addr(out, self.resp_h);
        out.extend_from_slice(b",\"id.resp_p\":");
        uint(out, self.resp_p.into());
        out.extend_from_slice(b",\"proto\":");
        string(out, &self.proto);
        optional(out, b",\"vlan\":", self.vlan.map(u64::from), uint);
        out.extend_from_slice(b",\"score\":");
        uint(out, self.score.into());
        out.extend_from_slice(b",\"severity\":");
        string(out, self.severity);
        out.extend_from_slice(b",\"reasons\":");
        array(out, &self.reasons, |out, hit| {
            out.extend_from_slice(b"{\"reason\":");
            string(out, hit.reason.as_str());
            out.extend_from_slice(b",\"weight\":");
            uint(out, hit.weight.into());
            out.extend_from_slice(b",\"detail\":");
            string(out, &hit.detail);
            out.push(b'}');
        });
        optional(
            out,
            b",\"relationship\":",
            self.relationship.as_deref(),
            string,
        );
        out.extend_from_slice(b",\"orig_enclave\":");
        string(out, &self.orig_enclave);
        out.extend_from_slice(b",\"resp_enclave\":");
        string(out, &self.resp_enclave);
        optional(
            out,
            b",\"orig_host_group\":",
            self.orig_host_group.as_deref(),
            string,
        );
        optional(
            out,
            b",\"resp_host_group\":",
            self.resp_host_group.as_deref(),
            string,
        );
        out.extend_from_slice(b",\"techniques\":");
        array(out, &self.techniques, |out, t| string(out, t));
        out.extend_from_slice(b",\"count\":");
        uint(out, self.count);
        out.extend_from_slice(b",\"last_ts\":");
        timestamp(out, self.last_ts);
        out.push(b'}');
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn address() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<u32>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
            (any::<u128>(), 0u32..128)
                .prop_map(|(a, zeros)| IpAddr::V6(Ipv6Addr::from(a >> zeros))),
        ]
    }

    /// Text with what JSON must escape, and characters it must not.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[A-Za-z0-9_ .>/-]{0,24}",
            "[a-z\"\\\\\\x00-\\x1f\\x7f\u{e9}\u{2028}\u{1F600} ]{0,12}",
        ]
    }

    fn reason() -> impl Strategy<Value = Reason> {
        (0..Reason::ALL.len()).prop_map(|i| Reason::ALL[i])
    }

    prop_compose! {
        fn alert()(
            (update, ts, last_ts, alert_id, uid, community_id) in
                (any::<bool>(), any::<i64>(), any::<i64>(), text(), text(), text()),
            (orig_h, orig_p, resp_h, resp_p, proto, vlan) in (
                address(), any::<u16>(), address(), any::<u16>(), text(),
                proptest::option::of(any::<u16>()),
            ),
            (score, severity, count) in (any::<u8>(), 0usize..4, any::<u64>()),
            reasons in proptest::collection::vec((reason(), any::<u8>(), text()), 0..4),
            names in (text(), text(), proptest::option::of(text()),
                proptest::option::of(text()), proptest::option::of(text())),
            techniques in proptest::collection::vec(0usize..4, 0..4),
        ) -> Alert {
            let (orig_enclave, resp_enclave, relationship, orig_host_group, resp_host_group) = names;
            Alert {
                event: if update { "update" } else { "alert" },
                ts: Timestamp(ts),
                alert_id,
                uid,
                community_id,
                orig_h,
                orig_p,
                resp_h,
                resp_p,
                proto,
                ip_proto: 6,
                vlan,
                inner_vlan: None,
                score,
                severity: ["low", "medium", "high", "critical"][severity],
                reasons: reasons
                    .into_iter()
                    .map(|(reason, weight, detail)| ReasonHit { reason, weight, detail })
                    .collect(),
                relationship,
                orig_enclave,
                resp_enclave,
                orig_host_group,
                resp_host_group,
                techniques: techniques.into_iter().map(|i| ["T1199", "T1046", "T1021.001", "T1074"][i]).collect(),
                count,
                last_ts: Timestamp(last_ts),
                primary: Reason::NoRelationship,
            }
        }
    }

    proptest! {
        #[test]
        fn json_is_the_text_serde_writes(a in alert()) {
            let mut ours = Vec::new();
            a.write_json(&mut ours);
            prop_assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(&a).unwrap()
            );
        }
    }
}
