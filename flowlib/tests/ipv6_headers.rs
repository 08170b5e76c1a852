//! IPv6 extension headers that change what Zeek makes of a packet: a type 0
//! routing header names the connection's responder (its final
//! destination), checked against Zeek's own output on the corpus capture;
//! a chain ending at ESP makes no connection.

mod captures;
mod shapes;

use captures::{corpus, meter_pcap as run, records};
use flowlib::pcap_writer::{PcapWriter, Resolution};
use flowlib::{LinkType, Proto, Timestamp, Weird};
use shapes::ipproto::*;
use shapes::*;
use std::net::IpAddr;

/// These Ethernet frames as a pcap file, one a second.
fn capture(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut w = PcapWriter::new(Vec::new(), Resolution::Micros, 0, LinkType::ETHERNET).unwrap();
    for (i, f) in frames.iter().enumerate() {
        let ts = Timestamp::from_micros(1_772_438_400 + i as i64, 0);
        w.write_packet(ts, f, f.len() as u32).unwrap();
    }
    w.into_inner().unwrap()
}

/// An ESP header (SPI, sequence number) and 24 bytes of ciphertext.
fn esp() -> Vec<u8> {
    let mut e = vec![0, 0, 0x10, 0x01, 0, 0, 0, 1];
    e.extend([0xc3; 24]);
    e
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

#[test]
fn ipv6_esp_makes_no_connection_and_is_counted_as_ipv6_esp() {
    let v6 = |next: u8, payload: &[u8]| eth(0x86dd, &ipv6(a6(), b6(), next, payload));
    let mut after_ah = auth_ext(50);
    after_ah.extend(esp());
    let mut after_dst_opts = ext(50, 0);
    after_dst_opts.extend(esp());
    let mut later_fragment = frag_ext(50, 64, false, 9);
    later_fragment.extend([0xc3; 16]);
    let frames = [
        v6(50, &esp()),
        v6(AUTH, &after_ah),
        v6(DEST_OPTS, &after_dst_opts),
        v6(FRAGMENT, &later_fragment),
    ];
    let (out, stats) = run(&capture(&frames));
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(stats.packets, 4);
    assert_eq!(stats.weirds.get(Weird::Ipv6Esp), 4);
    assert_eq!(stats.packets, stats.decoded + stats.weirds.total());
}

#[test]
fn ipv4_esp_is_still_an_unknown_transport_connection_as_in_zeek() {
    let frame = eth(0x0800, &ipv4(A4, B4, 50, &esp()));
    let (out, stats) = run(&capture(&[frame]));
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].proto, out[0].ip_proto), (Proto::Unknown, 50));
    assert_eq!(stats.decoded, 1);
}

#[test]
fn ipv6_esp_in_teredo_leaves_only_the_outer_udp_connection() {
    let inner = ipv6(teredo6(), b6(), 50, &esp());
    let frame = outer_udp(40000, 3544, &inner);
    let (out, stats) = run(&capture(&[frame]));
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!((out[0].proto, out[0].resp_p), (Proto::Udp, 3544));
    assert_eq!(stats.decoded, 1);
}
