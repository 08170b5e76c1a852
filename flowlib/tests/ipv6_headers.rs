//! IPv6 extension headers that change what Zeek makes of a packet: a type 0
//! routing header names the connection's responder (its final
//! destination), checked against Zeek's own output on the corpus capture.

use flowlib::pcap_reader::PcapReader;
use flowlib::{ConnRecord, FlowMeter, TableConfig};
use std::net::IpAddr;
use std::path::PathBuf;

fn corpus() -> PathBuf {
    std::env::var_os("FLOWMON_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"))
}

/// Every record of a pcap file's bytes, through a meter with Zeek's
/// default timeouts.
fn records(pcap: &[u8]) -> Vec<ConnRecord> {
    let mut reader = PcapReader::new(pcap).unwrap();
    let link = reader.header().link;
    let mut meter = FlowMeter::new(TableConfig::default());
    let mut out = Vec::new();
    while let Some(p) = reader.next_packet().unwrap() {
        meter.process(p.data, link, p.ts, p.wire_len, &mut out);
    }
    meter.finish(&mut out);
    out
}

/// The value of `name=` in a line of Zeek's record printing
/// (`[orig_h=..., orig_p=53/udp, resp_h=..., ...]`).
fn field<'a>(line: &'a str, name: &str) -> &'a str {
    let start = line.find(&format!("{name}=")).unwrap() + name.len() + 1;
    let rest = &line[start..];
    &rest[..rest.find([',', ']']).unwrap()]
}

#[test]
fn a_type_0_routing_header_makes_its_last_address_the_responder_as_in_zeek() {
    let c = corpus();
    let pcap = std::fs::read(c.join("pcaps/ipv6-ext-hbh-routing0.pcap")).unwrap();
    let expected = std::fs::read_to_string(
        c.join("expected/ipv6-ext-hbh-routing0.pcap.zeek-core.ipv6_ext_headers.output.txt"),
    )
    .unwrap();
    // Zeek's conn id, printed by the btest's handler.
    let id = expected
        .lines()
        .find(|l| l.starts_with("[orig_h="))
        .expect("a conn id line");
    let zeek_orig: IpAddr = field(id, "orig_h").parse().unwrap();
    let zeek_resp: IpAddr = field(id, "resp_h").parse().unwrap();
    assert_eq!(zeek_resp, "2001:78:1:32::2".parse::<IpAddr>().unwrap());
    // ... which is not the IPv6 header's destination.
    assert!(expected.contains("dst=2001:4f8:4:7:2e0:81ff:fe52:9a6b"));

    let out = records(&pcap);
    assert_eq!(out.len(), 1);
    let r = &out[0];
    assert_eq!((r.orig_h, r.resp_h), (zeek_orig, zeek_resp));
    assert_eq!((r.orig_p, r.resp_p), (53, 53));
    // Community ID v1 of udp [2001:4f8:4:7:2e0:81ff:fe52:ffff]:53 ->
    // [2001:78:1:32::2]:53, computed independently (SHA-1 over seed 0,
    // the ordered addresses, protocol 17, padding and the ports).
    assert_eq!(r.community_id, "1:gLLH7aWRiORXp5P9gyGGf4BNqwU=");
}
