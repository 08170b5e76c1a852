//! UDP connections to a DNS responder port expire as Zeek's DNS analyzer
//! expires them (`DNS_Analyzer::ExpireTimer`, DNS.cc): a check
//! `dns_session_timeout` (10 s) after the start and every 10 s after that,
//! ending the connection at the first check that finds it silent for 9 s.
//! Other UDP connections, also those from port 53, keep UDP's 60 s idle
//! timeout. Captures written with flowlib's pcap writer and read back.

use etherparse::PacketBuilder;
use flowlib::pcap_reader::PcapReader;
use flowlib::pcap_writer::{PcapWriter, Resolution};
use flowlib::{ConnRecord, EndReason, FlowMeter, LinkType, TableConfig, Timestamp};
use std::time::Duration;

const T0: i64 = 1_772_438_400;

fn at(secs: f64) -> Timestamp {
    Timestamp::from_micros(T0, 0).plus(Duration::from_secs_f64(secs))
}

fn udp(src: ([u8; 4], u16), dst: ([u8; 4], u16), len: usize) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4(src.0, dst.0, 64)
        .udp(src.1, dst.1)
        .write(&mut v, &vec![0x61; len])
        .unwrap();
    v
}

/// The records of these packets (sorted by time first), written to a pcap
/// file and read back through a meter with Zeek's default timeouts; a
/// last unrelated packet at 100 s lets every timer fire.
fn records(mut packets: Vec<(f64, Vec<u8>)>) -> Vec<ConnRecord> {
    packets.push((100.0, udp(([192, 0, 2, 1], 1), ([192, 0, 2, 2], 2), 0)));
    packets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut w = PcapWriter::new(Vec::new(), Resolution::Micros, 0, LinkType::ETHERNET).unwrap();
    for (t, f) in &packets {
        w.write_packet(at(*t), f, f.len() as u32).unwrap();
    }
    let bytes = w.into_inner().unwrap();
    let mut reader = PcapReader::new(&bytes[..]).unwrap();
    let mut meter = FlowMeter::new(TableConfig::default()).unwrap();
    let mut out = Vec::new();
    while let Some(p) = reader.next_packet().unwrap() {
        meter.process(p.data, LinkType::ETHERNET, p.ts, p.wire_len, &mut out);
    }
    meter.finish(&mut out);
    out.retain(|r| r.orig_p != 1);
    out
}

const A: [u8; 4] = [10, 0, 0, 1];
const B: [u8; 4] = [10, 0, 0, 53];

/// A query from `port` to B:53 (`true`) or its reply.
fn dns(port: u16, query: bool) -> Vec<u8> {
    if query {
        udp((A, port), (B, 53), 20)
    } else {
        udp((B, 53), (A, port), 40)
    }
}

/// (orig_p, packets, start, when the record was due, end reason).
fn summary(out: &[ConnRecord]) -> Vec<(u16, u64, Timestamp, Timestamp, EndReason)> {
    let mut v: Vec<_> = out
        .iter()
        .map(|r| {
            (
                r.orig_p,
                r.orig_pkts + r.resp_pkts,
                r.ts,
                r.emitted,
                r.end_reason,
            )
        })
        .collect();
    v.sort_by_key(|s| (s.0, s.2));
    v
}

#[test]
fn a_query_9_5_s_after_the_reply_is_a_new_connection_at_the_10_s_check() {
    // Zeek's check at 10 s finds 9 s of silence (since the reply at 1 s):
    // the connection ends at 10 s, the query at 10.5 s starts another.
    let out = records(vec![
        (0.0, dns(40001, true)),
        (1.0, dns(40001, false)),
        (10.5, dns(40001, true)),
    ]);
    assert_eq!(
        summary(&out),
        [
            (40001, 2, at(0.0), at(10.0), EndReason::Idle),
            (40001, 1, at(10.5), at(20.5), EndReason::Idle),
        ]
    );
}

#[test]
fn an_11_s_gap_across_a_check_that_found_the_connection_active_is_one_connection() {
    // Checks at 10 s (5 s of silence: re-armed), 20 s (4 s) and 30 s
    // (14 s: ends). Zeek logs one connection of 3 packets.
    let out = records(vec![
        (0.0, dns(40002, true)),
        (5.0, dns(40002, false)),
        (16.0, dns(40002, true)),
    ]);
    assert_eq!(
        summary(&out),
        [(40002, 3, at(0.0), at(30.0), EndReason::Idle)]
    );
}

#[test]
fn a_reply_seen_first_is_flipped_and_still_a_dns_connection() {
    // The first packet comes from port 53: Zeek flips it, so 53 is the
    // responder's port and the DNS timer applies (check at 10 s: 10 s of
    // silence).
    let out = records(vec![(0.0, dns(40003, false)), (12.0, dns(40003, false))]);
    assert_eq!(
        summary(&out),
        [
            (40003, 1, at(0.0), at(10.0), EndReason::Idle),
            (40003, 1, at(12.0), at(22.0), EndReason::Idle),
        ]
    );
}

#[test]
fn udp_from_port_53_to_a_responder_port_that_is_not_dns_keeps_the_udp_timeout() {
    // Not flipped: a broadcast destination, and a responder port (123)
    // that is a likely server port too. Zeek attaches the DNS analyzer by
    // the responder port only, so these are plain UDP (60 s): one
    // connection each despite the 15 s gap.
    let bcast = [255, 255, 255, 255];
    let out = records(vec![
        (0.0, udp(([10, 0, 0, 5], 53), (bcast, 40000), 30)),
        (15.0, udp(([10, 0, 0, 5], 53), (bcast, 40000), 30)),
        (0.0, udp(([10, 0, 0, 6], 53), ([10, 0, 0, 7], 123), 48)),
        (15.0, udp(([10, 0, 0, 6], 53), ([10, 0, 0, 7], 123), 48)),
    ]);
    let mut got: Vec<_> = out
        .iter()
        .map(|r| (r.resp_p, r.orig_pkts, r.emitted, r.end_reason))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            (123, 2, at(75.0), EndReason::Idle),
            (40000, 2, at(75.0), EndReason::Idle),
        ]
    );
}
