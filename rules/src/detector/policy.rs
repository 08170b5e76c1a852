//! Policy reasons: the connection checked against the relationships. These
//! are decided on the connection's first packet.

use crate::config::detector::Reason;
use crate::enclave::{EnclaveKind, Location};
use crate::relationship::Endpoint;
use crate::Rules;
use flowlib::ConnRecord;

/// What the relationships say about one connection.
#[derive(Debug, Default)]
pub(crate) struct PolicyVerdict {
    /// Policy reasons found (before weighting and ignore lists); their
    /// explanations are written by [`detail`] only when an alert is raised.
    pub(crate) reasons: Vec<Reason>,
    /// Index of the relationship the connection was checked against.
    pub(crate) relationship: Option<usize>,
    /// The relationship allows the connection (service, host and time).
    pub(crate) allowed: bool,
    /// The two ends are in different enclaves.
    pub(crate) crosses: bool,
    /// One end is in a provider enclave.
    pub(crate) provider_side: bool,
    /// The connection crosses a boundary or touches a host group: it is scored.
    pub(crate) scored: bool,
}

fn is_customer(kind: EnclaveKind) -> bool {
    matches!(kind, EnclaveKind::Customer | EnclaveKind::Client)
}

/// The service as a rule file writes it, for messages (`tcp/22`, `icmp`),
/// in three pieces; `port` holds the port's digits.
fn service_text<'a>(r: &ConnRecord, port: &'a mut [u8; 5]) -> [&'a str; 3] {
    match r.proto {
        flowlib::Proto::Icmp => ["icmp", "", ""],
        p => [p.name(), "/", decimal(r.resp_p, port)],
    }
}

/// The decimal digits of `v` (as its `Display` writes them), in `buf`.
fn decimal(mut v: u16, buf: &mut [u8; 5]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    // ASCII digits: never the empty fallback.
    std::str::from_utf8(&buf[i..]).unwrap_or_default()
}

/// Where a connection stands without looking at the relationships:
/// `crosses`, `provider_side` and `scored` as [`check`] sets them, no
/// reasons, no relationship.
pub(crate) fn scope(rules: &Rules, o: Location, d: Location) -> PolicyVerdict {
    let (oe, de) = (rules.enclave(o.enclave), rules.enclave(d.enclave));
    let crosses = o.enclave != d.enclave;
    PolicyVerdict {
        crosses,
        provider_side: oe.kind() == EnclaveKind::Provider || de.kind() == EnclaveKind::Provider,
        scored: crosses || o.host_group.is_some() || d.host_group.is_some(),
        ..PolicyVerdict::default()
    }
}

/// Checks `r` (originator in `o`, responder in `d`) against every relationship.
pub(crate) fn check(rules: &Rules, r: &ConnRecord, o: Location, d: Location) -> PolicyVerdict {
    let mut v = scope(rules, o, d);
    if !v.scored {
        return v;
    }
    let (oe, de) = (rules.enclave(o.enclave), rules.enclave(d.enclave));
    let (mut outside, mut unapproved) = (None, None);
    for (i, rel) in rules.relationships().iter().enumerate() {
        let from_ok = rules.endpoint_contains(rel.from(), r.orig_h, o);
        let to_ok = rules.endpoint_contains(rel.to(), r.resp_h, d);
        if !to_ok || !rel.allows_service(r.ip_proto, r.resp_p) {
            continue;
        }
        if from_ok {
            if rel.allows_time(r.ts) {
                v.allowed = true;
                v.relationship = Some(i);
                break;
            }
            outside.get_or_insert(i);
        } else if let Endpoint::HostGroup(g) = rel.from() {
            // The pair of enclaves is allowed, but only from approved hosts.
            if rules.host_group(g).enclave == o.enclave {
                unapproved.get_or_insert(i);
            }
        }
    }
    if v.allowed {
        // Allowed: only the administrative-protocol note below applies.
    } else if let Some(i) = outside {
        v.relationship = Some(i);
        v.reasons.push(Reason::OutsideWindow);
    } else if let Some(i) = unapproved {
        v.relationship = Some(i);
        v.reasons.push(Reason::UnapprovedHost);
    } else if v.crosses {
        v.reasons.push(Reason::NoRelationship);
        if is_customer(oe.kind()) && is_customer(de.kind()) {
            v.reasons.push(Reason::CrossCustomer);
        }
    }
    if v.crosses
        && rules
            .detector()
            .admin_services
            .iter()
            .any(|s| s.matches(r.ip_proto, r.resp_p))
    {
        v.reasons.push(Reason::AdminProtocol);
    }
    v
}

/// The analyst's explanation of a policy reason; written only for alerts.
pub(crate) fn detail(
    rules: &Rules,
    r: &ConnRecord,
    o: Location,
    d: Location,
    v: &PolicyVerdict,
    reason: Reason,
) -> String {
    let (oe, de) = (
        rules.enclave(o.enclave).name(),
        rules.enclave(d.enclave).name(),
    );
    let mut port = [0u8; 5];
    let [svc_a, svc_b, svc_c] = service_text(r, &mut port);
    let rel = v.relationship.map(|i| &rules.relationships()[i]);
    // Pieces joined with one allocation (these are written for every
    // alert).
    match (reason, rel) {
        (Reason::OutsideWindow, Some(rel)) => [
            svc_a,
            svc_b,
            svc_c,
            " allowed by ",
            rel.name(),
            " only inside its time windows",
        ]
        .concat(),
        (Reason::UnapprovedHost, Some(rel)) => format!(
            "{} is not in {}, the only hosts {} allows",
            r.orig_h,
            rules.endpoint_name(rel.from()),
            rel.name()
        ),
        (Reason::NoRelationship, _) => [
            "no relationship allows ",
            oe,
            " -> ",
            de,
            " on ",
            svc_a,
            svc_b,
            svc_c,
        ]
        .concat(),
        (Reason::CrossCustomer, _) => {
            ["between two customers' enclaves (", oe, " -> ", de, ")"].concat()
        }
        (Reason::AdminProtocol, _) => [
            "administrative protocol ",
            svc_a,
            svc_b,
            svc_c,
            " across the boundary",
        ]
        .concat(),
        (other, _) => other.as_str().to_owned(),
    }
}

/// Whether the ignore lists exclude this connection.
pub(crate) fn ignored(rules: &Rules, r: &ConnRecord, o: Location, d: Location) -> bool {
    let ig = &rules.detector().ignore;
    ig.hosts
        .iter()
        .any(|n| n.contains(&r.orig_h) || n.contains(&r.resp_h))
        || ig
            .enclaves
            .iter()
            .any(|e| *e == o.enclave || *e == d.enclave)
        || ig.host_groups.iter().any(|g| {
            // Membership, not the most specific label: a host of a group
            // nested inside an ignored one is ignored too.
            let group = Endpoint::HostGroup(*g);
            rules.endpoint_contains(group, r.orig_h, o)
                || rules.endpoint_contains(group, r.resp_h, d)
        })
        || ig.services.iter().any(|s| s.matches(r.ip_proto, r.resp_p))
}

/// Whether a reason counts (not on the ignore list).
pub(crate) fn counts(rules: &Rules, reason: Reason) -> bool {
    !rules.detector().ignore.reasons.contains(&reason)
}

#[cfg(test)]
mod tests {
    use super::decimal;

    #[test]
    fn decimal_is_the_display_text() {
        for v in [
            0u16, 1, 9, 10, 22, 99, 100, 445, 999, 1000, 3389, 9999, 10000, 65535,
        ] {
            let mut buf = [0u8; 5];
            assert_eq!(decimal(v, &mut buf), v.to_string());
        }
    }
}
