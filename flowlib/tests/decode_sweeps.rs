//! Truncation and bit-flip sweeps over the decoder: for every packet shape
//! in `shapes`, every prefix and every single-bit flip is decoded, and each
//! result must be either a decoded packet (flagged truncated exactly when
//! it was cut) or a named weird; every variant is also run through a
//! `FlowMeter`, whose counters must account for each packet exactly once.

mod shapes;

use flowlib::decode::{FlowPacket, PacketView, Transport};
use flowlib::{FlowMeter, FlowTable, TableConfig, Timestamp, Weird, WeirdCounts};
use std::collections::BTreeMap;

/// Weirds that a packet cut short (by a snaplen or otherwise) may give: the
/// header it ended in is incomplete.
const CUT_WEIRDS: &[Weird] = &[
    Weird::TruncatedLinkHeader,
    Weird::TruncatedVlanTag,
    Weird::TruncatedMpls,
    Weird::TruncatedPpp,
    Weird::TruncatedIpHeader,
    Weird::BadIpv6ExtensionHeader,
    Weird::TruncatedTcpHeader,
    Weird::TruncatedUdpHeader,
    Weird::TruncatedIcmpHeader,
    Weird::TruncatedSctpHeader,
    Weird::TruncatedTunnelHeader,
];

/// Every field of a flow-bearing packet that comes from headers, and the
/// captured payload it exposes: reading them must not panic, and the
/// captured payload lies inside the captured bytes.
fn check_flow_packet(p: &FlowPacket<'_>, cap_len: usize, what: &str) {
    let (key, _) = FlowTable::key_of(p);
    let _ = key.symmetric_hash();
    let _ = p.transport.ports();
    assert!(
        p.ip.header_len >= 20 || p.ip.src.is_ipv6(),
        "{what}: IPv4 header length {} below 20",
        p.ip.header_len
    );
    if let Transport::Tcp(t) = p.transport {
        assert!(
            t.payload.len() <= cap_len,
            "{what}: payload beyond the capture"
        );
    }
}

/// The inner packet's identity: addresses, protocol and ports.
fn identity(p: &FlowPacket<'_>) -> String {
    format!(
        "{} {} {} {:?} {:?}",
        p.ip.src,
        p.ip.dst,
        p.ip.proto,
        p.transport.ports(),
        p.tunnel.map(|t| t.kind)
    )
}

/// Tallies of one sweep, for the summary assertions.
#[derive(Default)]
struct Tally {
    decoded: u64,
    weirds: WeirdCounts,
}

impl Tally {
    fn count(&mut self, r: &Result<PacketView<'_>, flowlib::decode::DecodeError>) {
        match r {
            Ok(_) => self.decoded += 1,
            Err(e) => self.weirds.add(e.weird),
        }
    }
}

/// Feeds `variants` through a fresh meter and checks that it counts every
/// packet exactly once and agrees with the decoder on each weird.
fn meter_agrees(shape: &shapes::Shape, variants: &[(Vec<u8>, u32)], tally: &Tally) {
    let mut meter = FlowMeter::new(TableConfig::default()).unwrap();
    let mut out = Vec::new();
    for (i, (bytes, wire)) in variants.iter().enumerate() {
        let ts = Timestamp::from_micros(1_700_000_000 + i as i64, 0);
        meter.process(bytes, shape.link, ts, *wire, &mut out);
    }
    meter.finish(&mut out);
    let s = meter.stats();
    assert_eq!(s.packets, variants.len() as u64, "{}", shape.name);
    assert_eq!(
        s.packets,
        s.decoded + s.weirds.total(),
        "{}: every packet is decoded or a weird",
        shape.name
    );
    for w in Weird::ALL {
        if matches!(w, Weird::UnattributedFragment | Weird::NoNextHeader) {
            continue; // decided by the meter, not the decoder
        }
        assert_eq!(
            s.weirds.get(*w),
            tally.weirds.get(*w),
            "{}: meter and decoder disagree on {w}",
            shape.name
        );
    }
    let t = meter.table_stats();
    let ended: u64 = t.ended.iter().sum::<u64>()
        - t.ended(flowlib::EndReason::Active)
        - t.ended(flowlib::EndReason::Start);
    assert_eq!(
        t.created, ended,
        "{}: every flow created was ended",
        shape.name
    );
    let first = Timestamp::from_micros(1_700_000_000, 0);
    let last = Timestamp::from_micros(1_700_000_000 + variants.len() as i64, 0);
    for r in &out {
        let end = r.ts.plus(r.duration.unwrap_or_default());
        assert!(
            first <= r.ts && end <= last,
            "{}: record {} spans {}..{}, outside the packets' times",
            shape.name,
            r.uid,
            r.ts,
            end
        );
        assert!(
            r.orig_pkts + r.resp_pkts > 0,
            "{}: empty record",
            shape.name
        );
    }
}

#[test]
fn there_are_at_least_forty_distinct_shapes() {
    let all = shapes::all();
    assert!(all.len() >= 40, "{} shapes", all.len());
    let mut names: Vec<_> = all.iter().map(|s| s.name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), all.len(), "shape names are unique");
}

#[test]
fn every_shape_decodes_whole_and_untruncated() {
    for s in shapes::all() {
        let len = s.bytes.len() as u32;
        let v = PacketView::parse(&s.bytes, s.link, Timestamp(0), len)
            .unwrap_or_else(|e| panic!("{}: {e}", s.name));
        assert!(!v.truncated, "{}", s.name);
        assert_eq!(v.cap_len, len, "{}", s.name);
        for p in v.flow_packets() {
            check_flow_packet(p, s.bytes.len(), s.name);
        }
        // Tunnel shapes really decapsulate (not fall back to the outer packet).
        let expect = [
            ("gre_", "gre"),
            ("erspan_", "erspan"),
            ("pptp_", "pptp"),
            ("ipip_", "ip"),
            ("vxlan", "vxlan"),
            ("geneve_", "geneve"),
            ("gtpu_", "gtpv1"),
            ("teredo", "teredo"),
            ("ayiya", "ayiya"),
            ("mpls_over_udp", "mpls_over_udp"),
        ];
        if let Some((_, kind)) = expect.iter().find(|(p, _)| s.name.starts_with(p)) {
            let t = v
                .inner
                .tunnel
                .unwrap_or_else(|| panic!("{}: no tunnel", s.name));
            assert_eq!(t.kind.name(), *kind, "{}", s.name);
        }
    }
}

#[test]
fn every_prefix_is_a_truncated_packet_or_a_cut_header() {
    let mut by_weird: BTreeMap<&str, u64> = BTreeMap::new();
    for s in shapes::all() {
        let full_len = s.bytes.len();
        let full = PacketView::parse(&s.bytes, s.link, Timestamp(0), full_len as u32).unwrap();
        let mut variants = Vec::new();
        let mut tally = Tally::default();
        for n in 0..full_len {
            let prefix = &s.bytes[..n];
            // Cut by a snaplen: the wire length says the packet was longer.
            let r = PacketView::parse(prefix, s.link, Timestamp(0), full_len as u32);
            tally.count(&r);
            match &r {
                Ok(v) => {
                    assert!(v.truncated, "{} cut at {n}: not flagged truncated", s.name);
                    assert_eq!(v.cap_len as usize, n);
                    assert_eq!(v.wire_len as usize, full_len);
                    for p in v.flow_packets() {
                        check_flow_packet(p, n, s.name);
                    }
                    // Sizes come from the headers: when the cut packet reaches
                    // the same inner packet, it has the same sizes.
                    if identity(&v.inner) == identity(&full.inner) {
                        assert_eq!(
                            v.inner.transport.payload_len(),
                            full.inner.transport.payload_len(),
                            "{} cut at {n}: payload length from the headers",
                            s.name
                        );
                        assert_eq!(v.inner.ip.ip_len, full.inner.ip.ip_len, "{}", s.name);
                    }
                }
                Err(e) => {
                    assert!(
                        CUT_WEIRDS.contains(&e.weird),
                        "{} cut at {n}: {} is not a cut-header weird",
                        s.name,
                        e.weird
                    );
                    assert!(
                        e.offset <= n,
                        "{} cut at {n}: error offset {}",
                        s.name,
                        e.offset
                    );
                    *by_weird.entry(e.weird.name()).or_default() += 1;
                }
            }
            variants.push((prefix.to_vec(), full_len as u32));

            // The same bytes without a snaplen: an IP length beyond the frame
            // is inconsistent, not truncated.
            let r = PacketView::parse(prefix, s.link, Timestamp(0), n as u32);
            tally.count(&r);
            match &r {
                Ok(v) => assert!(!v.truncated, "{} cut at {n} without snaplen", s.name),
                Err(e) => assert!(
                    CUT_WEIRDS.contains(&e.weird) || e.weird == Weird::IpLengthExceedsFrame,
                    "{} cut at {n} without snaplen: {}",
                    s.name,
                    e.weird
                ),
            }
            variants.push((prefix.to_vec(), n as u32));
        }
        meter_agrees(&s, &variants, &tally);
    }
    // The sweep exercised many different cut headers.
    assert!(by_weird.len() >= 8, "{by_weird:?}");
}

#[test]
fn every_single_bit_flip_decodes_or_is_a_named_weird() {
    let mut flips = 0u64;
    let mut total = Tally::default();
    for s in shapes::all() {
        let len = s.bytes.len();
        let mut variants = Vec::with_capacity(len * 8);
        let mut tally = Tally::default();
        for bit in 0..len * 8 {
            let mut b = s.bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            let r = PacketView::parse(&b, s.link, Timestamp(0), len as u32);
            tally.count(&r);
            total.count(&r);
            match &r {
                Ok(v) => {
                    assert_eq!(v.cap_len as usize, len);
                    for p in v.flow_packets() {
                        check_flow_packet(p, len, s.name);
                    }
                }
                Err(e) => {
                    assert!(Weird::ALL.contains(&e.weird));
                    assert!(!e.weird.name().is_empty());
                    assert!(e.offset <= len, "{} bit {bit}: offset {}", s.name, e.offset);
                }
            }
            flips += 1;
            variants.push((b, len as u32));
        }
        meter_agrees(&s, &variants, &tally);
    }
    assert_eq!(flips, total.decoded + total.weirds.total());
    // Flips hit both headers that still decode and ones that do not.
    assert!(total.decoded > 0 && total.weirds.total() > 0);
}
