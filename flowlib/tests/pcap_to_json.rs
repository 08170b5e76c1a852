//! The `pcap_to_json` example's conversion, run on a capture written by our
//! own `PcapWriter`: the records it writes, their order, and what it does
//! with a capture cut short.

#[path = "../examples/pcap_to_json.rs"]
#[allow(dead_code)]
mod pcap_to_json;

use etherparse::PacketBuilder;
use flowlib::pcap_reader::{PcapError, PcapReader};
use flowlib::pcap_writer::{PcapWriter, Resolution};
use flowlib::{ConnRecord, FlowMeter, LinkType, TableConfig, Timestamp};
use serde_json::Value;

const CLIENT: [u8; 4] = [10, 0, 0, 5];
const SERVER: [u8; 4] = [10, 0, 0, 80];

fn tcp(from_client: bool, seq: u32, ack: u32, flags: &str, payload: &[u8]) -> Vec<u8> {
    let (src, dst, sp, dp) = if from_client {
        (CLIENT, SERVER, 50000, 80)
    } else {
        (SERVER, CLIENT, 80, 50000)
    };
    let mut b = PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4(src, dst, 64)
        .tcp(sp, dp, seq, 64240);
    if flags.contains('S') {
        b = b.syn();
    }
    if flags.contains('A') {
        b = b.ack(ack);
    }
    if flags.contains('F') {
        b = b.fin();
    }
    let mut f = Vec::new();
    b.write(&mut f, payload).unwrap();
    f
}

fn udp(src_port: u16, dst: [u8; 4], dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4(CLIENT, dst, 64)
        .udp(src_port, dst_port)
        .write(&mut f, payload)
        .unwrap();
    f
}

/// A TCP session (closed by FINs), a UDP flow that idles out, and six UDP
/// flows still open at the end of the capture.
fn capture() -> Vec<u8> {
    let mut frames = vec![
        (0.0, tcp(true, 100, 0, "S", b"")),
        (0.01, tcp(false, 900, 101, "SA", b"")),
        (0.02, tcp(true, 101, 901, "A", b"")),
        (0.03, tcp(true, 101, 901, "A", b"GET /")),
        (0.04, tcp(true, 106, 901, "FA", b"")),
        (0.05, tcp(false, 901, 107, "FA", b"")),
        (0.06, tcp(true, 107, 902, "A", b"")),
        (1.0, udp(40000, [10, 0, 0, 9], 9999, b"once")),
    ];
    for i in 0..6u8 {
        let at = 100.0 + f64::from(i);
        frames.push((at, udp(41000 + u16::from(i), [10, 0, 1, i], 7000, b"open")));
    }
    let mut w = PcapWriter::new(Vec::new(), Resolution::Micros, 0, LinkType::ETHERNET).unwrap();
    for (at, f) in frames {
        let ts =
            Timestamp::from_micros(1_772_438_400, 0).plus(std::time::Duration::from_secs_f64(at));
        w.write_packet(ts, &f, f.len() as u32).unwrap();
    }
    w.into_inner().unwrap()
}

/// The records a meter gives for `file`, in its own order.
fn meter_records(file: &[u8]) -> Vec<ConnRecord> {
    let mut r = PcapReader::new(file).unwrap();
    let mut meter = FlowMeter::new(TableConfig::default()).unwrap();
    let mut out = Vec::new();
    while let Some(p) = r.next_packet().unwrap() {
        meter.process(p.data, LinkType::ETHERNET, p.ts, p.wire_len, &mut out);
    }
    meter.finish(&mut out);
    out
}

fn lines(out: &[u8]) -> Vec<Value> {
    std::str::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_example_writes_every_record_as_json_in_the_sensors_order() {
    let file = capture();
    let mut out = Vec::new();
    let s = pcap_to_json::convert(&file[..], &mut out).unwrap();
    assert!(s.input_error.is_none());
    assert_eq!((s.records, s.meter.packets, s.meter.decoded), (8, 14, 14));
    let got = lines(&out);
    assert_eq!(got.len(), 8);

    let tcp = got.iter().find(|r| r["proto"] == "tcp").unwrap();
    assert_eq!(tcp["conn_state"], "SF");
    assert_eq!(tcp["history"], "ShADFf");
    assert_eq!(
        (tcp["orig_bytes"].as_u64(), tcp["resp_bytes"].as_u64()),
        (Some(5), Some(0))
    );
    assert_eq!(tcp["end_reason"], "fin");
    let reasons: Vec<&str> = got
        .iter()
        .map(|r| r["end_reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        ["fin", "idle", "eof", "eof", "eof", "eof", "eof", "eof"]
    );

    // The order is (emitted, uid, end reason); the meter's own order (the
    // open flows by start time) is not.
    let mut native = meter_records(&file);
    let native_uids: Vec<String> = native.iter().map(|r| r.uid.clone()).collect();
    native
        .sort_by(|a, b| (a.emitted, &a.uid, a.end_reason).cmp(&(b.emitted, &b.uid, b.end_reason)));
    let sorted_uids: Vec<String> = native.iter().map(|r| r.uid.clone()).collect();
    let got_uids: Vec<&str> = got.iter().map(|r| r["uid"].as_str().unwrap()).collect();
    assert_eq!(got_uids, sorted_uids);
    assert_ne!(sorted_uids, native_uids, "the sort changed the order");

    // The same capture gives the same bytes.
    let mut again = Vec::new();
    pcap_to_json::convert(&file[..], &mut again).unwrap();
    assert_eq!(out, again);
}

#[test]
fn a_capture_cut_short_still_gives_the_records_of_the_packets_before() {
    let file = capture();
    // Cut inside the last packet: the records of the 13 packets before it.
    let cut = &file[..file.len() - 10];
    let mut out = Vec::new();
    let s = pcap_to_json::convert(cut, &mut out).unwrap();
    assert!(matches!(
        s.input_error,
        Some(PcapError::Truncated { record: 14, .. })
    ));
    assert_eq!((s.records, s.meter.packets), (7, 13));
    assert_eq!(lines(&out).len(), 7);
    // Not a pcap file at all.
    let err = pcap_to_json::convert(&b"not a capture, clearly"[..], &mut out).unwrap_err();
    assert!(
        matches!(
            err,
            pcap_to_json::Error::Capture(PcapError::BadFileHeader { .. })
        ),
        "{err}"
    );
}
