//! A connection record as one JSON object, written straight into a byte
//! buffer: the bytes `serde_json::to_writer` writes for the record's
//! derived `Serialize` (same keys in the same order, same omissions, same
//! number and address text), at a fraction of the cost. Keys are
//! constants; the values are written by [`super::json_value`].

use super::json_value::{addr, array, boolean, float, optional, string, timestamp, uint};
use crate::record::{micros_f64, ConnRecord};

/// Appends `r` as a JSON object (no newline) to `out`.
pub(crate) fn write_record(r: &ConnRecord, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"ts\":");
    timestamp(out, r.ts);
    out.extend_from_slice(b",\"uid\":");
    string(out, &r.uid);
    out.extend_from_slice(b",\"id.orig_h\":");
    addr(out, r.orig_h);
    out.extend_from_slice(b",\"id.orig_p\":");
    uint(out, r.orig_p.into());
    out.extend_from_slice(b",\"id.resp_h\":");
    addr(out, r.resp_h);
    out.extend_from_slice(b",\"id.resp_p\":");
    uint(out, r.resp_p.into());
    out.extend_from_slice(b",\"proto\":");
    string(out, r.proto.name());
    optional(out, b",\"service\":", r.service.as_deref(), string);
    let duration = r.duration.map(|d| micros_f64(d.as_nanos() as i64));
    optional(out, b",\"duration\":", duration, float);
    optional(out, b",\"orig_bytes\":", r.orig_bytes, uint);
    optional(out, b",\"resp_bytes\":", r.resp_bytes, uint);
    out.extend_from_slice(b",\"conn_state\":");
    string(out, r.conn_state.name());
    optional(out, b",\"local_orig\":", r.local_orig, boolean);
    optional(out, b",\"local_resp\":", r.local_resp, boolean);
    out.extend_from_slice(b",\"missed_bytes\":");
    uint(out, r.missed_bytes);
    if !r.history.is_empty() {
        out.extend_from_slice(b",\"history\":");
        string(out, &r.history);
    }
    out.extend_from_slice(b",\"orig_pkts\":");
    uint(out, r.orig_pkts);
    out.extend_from_slice(b",\"orig_ip_bytes\":");
    uint(out, r.orig_ip_bytes);
    out.extend_from_slice(b",\"resp_pkts\":");
    uint(out, r.resp_pkts);
    out.extend_from_slice(b",\"resp_ip_bytes\":");
    uint(out, r.resp_ip_bytes);
    if !r.tunnel_parents.is_empty() {
        out.extend_from_slice(b",\"tunnel_parents\":");
        array(out, &r.tunnel_parents, |out, t| string(out, t));
    }
    optional(out, b",\"vlan\":", r.vlan.map(u64::from), uint);
    optional(out, b",\"inner_vlan\":", r.inner_vlan.map(u64::from), uint);
    out.extend_from_slice(b",\"ip_proto\":");
    uint(out, r.ip_proto.into());
    out.extend_from_slice(b",\"community_id\":");
    string(out, &r.community_id);
    out.extend_from_slice(b",\"end_reason\":");
    string(out, r.end_reason.name());
    let names = [
        (&b",\"orig_enclave\":"[..], &r.orig_enclave),
        (b",\"resp_enclave\":", &r.resp_enclave),
        (b",\"orig_host_group\":", &r.orig_host_group),
        (b",\"resp_host_group\":", &r.resp_host_group),
    ];
    for (key, value) in names {
        optional(out, key, value.as_deref(), string);
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{ConnState, EndReason, Proto};
    use crate::Timestamp;
    use proptest::prelude::*;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    use std::time::Duration;

    fn serde_text(r: &ConnRecord) -> String {
        serde_json::to_string(r).unwrap()
    }

    fn ours(r: &ConnRecord) -> String {
        let mut out = Vec::new();
        write_record(r, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn address() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<u32>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
            // Runs of zeros, v4-mapped and v4-compatible forms: the
            // standard library's compressions.
            (any::<u128>(), 0u32..128, any::<bool>()).prop_map(|(a, zeros, mapped)| {
                let a = a >> zeros;
                let a = if mapped {
                    a & 0xffff_ffff | 0xffff << 32
                } else {
                    a
                };
                IpAddr::V6(Ipv6Addr::from(a))
            }),
        ]
    }

    /// Text with what JSON must escape: quotes, backslashes, control
    /// characters, and multi-byte characters that it must not.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[A-Za-z0-9_-]{0,12}",
            "[a-z\"\\\\\\x00-\\x1f\\x7f\u{e9}\u{2028}\u{1F600} ]{0,12}",
        ]
    }

    prop_compose! {
        fn record()(
            (ts, uid, orig_h, orig_p, resp_h, resp_p) in
                (any::<i64>(), text(), address(), any::<u16>(), address(), any::<u16>()),
            (proto, service, duration, orig_bytes, resp_bytes) in (
                0usize..4,
                proptest::option::of(text()),
                proptest::option::of(0u64..u64::MAX / 4),
                proptest::option::of(any::<u64>()),
                proptest::option::of(any::<u64>()),
            ),
            (state, local_orig, local_resp, missed_bytes, history) in (
                0usize..13,
                proptest::option::of(any::<bool>()),
                proptest::option::of(any::<bool>()),
                any::<u64>(),
                text(),
            ),
            counts in any::<[u64; 4]>(),
            (tunnel_parents, vlan, inner_vlan, ip_proto, community_id, reason) in (
                proptest::collection::vec(text(), 0..3),
                proptest::option::of(any::<u16>()),
                proptest::option::of(any::<u16>()),
                any::<u8>(),
                text(),
                0usize..9,
            ),
            names in proptest::array::uniform4(proptest::option::of(text())),
        ) -> ConnRecord {
            let protos = [Proto::Tcp, Proto::Udp, Proto::Icmp, Proto::Unknown];
            let states = [
                ConnState::S0, ConnState::S1, ConnState::SF, ConnState::REJ,
                ConnState::S2, ConnState::S3, ConnState::RSTO, ConnState::RSTR,
                ConnState::RSTOS0, ConnState::RSTRH, ConnState::SH, ConnState::SHR,
                ConnState::OTH,
            ];
            let reasons = [
                EndReason::Fin, EndReason::Rst, EndReason::Idle, EndReason::Active,
                EndReason::Eof, EndReason::Shutdown, EndReason::Start, EndReason::Evicted,
                EndReason::Reuse,
            ];
            let [orig_enclave, resp_enclave, orig_host_group, resp_host_group] = names;
            ConnRecord {
                ts: Timestamp(ts),
                uid,
                orig_h,
                orig_p,
                resp_h,
                resp_p,
                proto: protos[proto],
                service,
                duration: duration.map(Duration::from_nanos),
                orig_bytes,
                resp_bytes,
                conn_state: states[state],
                local_orig,
                local_resp,
                missed_bytes,
                history,
                orig_pkts: counts[0],
                orig_ip_bytes: counts[1],
                resp_pkts: counts[2],
                resp_ip_bytes: counts[3],
                tunnel_parents,
                vlan,
                inner_vlan,
                ip_proto,
                community_id,
                end_reason: reasons[reason],
                emitted: Timestamp(ts),
                orig_enclave,
                resp_enclave,
                orig_host_group,
                resp_host_group,
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn writes_what_serde_json_writes(r in record()) {
            prop_assert_eq!(ours(&r), serde_text(&r));
        }
    }

    #[test]
    fn writes_what_serde_json_writes_for_every_demo_record() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../demo/msp-demo.pcap");
        let file = std::fs::File::open(path).unwrap();
        let mut reader =
            crate::pcap_reader::PcapReader::new(std::io::BufReader::new(file)).unwrap();
        let mut meter = crate::FlowMeter::new(crate::TableConfig {
            report_starts: true,
            ..crate::TableConfig::default()
        })
        .unwrap();
        let link = reader.header().link;
        let mut records = Vec::new();
        while let Some(p) = reader.next_packet().unwrap() {
            meter.process(p.data, link, p.ts, p.wire_len, &mut records);
        }
        meter.flush(EndReason::Eof, &mut records);
        assert!(records.len() > 100, "{} records", records.len());
        for r in &records {
            assert_eq!(ours(r), serde_text(r));
        }
    }
}
