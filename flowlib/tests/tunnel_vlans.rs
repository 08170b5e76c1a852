//! Flows inside a tunnel are keyed and reported with the inner frame's
//! VLAN tags only, as Zeek does (it builds a fresh packet for a tunnel's
//! payload: `IPTunnel.cc` `build_inner_packet`, `Packet::Init` clearing
//! `vlan` and `inner_vlan`). Captures written with flowlib's pcap writer
//! and read back with its reader, or taken from the corpus.

mod captures;

use captures::{corpus, records};
use etherparse::PacketBuilder;
use flowlib::pcap_reader::PcapReader;
use flowlib::pcap_writer::{PcapWriter, Resolution};
use flowlib::{LinkType, Proto, Timestamp};

/// An Ethernet frame with 802.1Q tags of these ids after the MAC
/// addresses (outermost first) around `ethertype` and `payload`.
fn tagged_frame(ids: &[u16], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    for id in ids {
        v.extend_from_slice(&[0x81, 0x00]);
        v.extend_from_slice(&id.to_be_bytes());
    }
    v.extend_from_slice(&ethertype.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// An inner Ethernet/IPv4/UDP frame from `src` to `dst`.
fn inner_udp(src: ([u8; 4], u16), dst: ([u8; 4], u16), len: usize) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2([6; 6], [7; 6])
        .ipv4(src.0, dst.0, 64)
        .udp(src.1, dst.1)
        .write(&mut v, &vec![0x5a; len])
        .unwrap();
    v
}

/// `inner` in VXLAN (VNI 42) between two VTEPs, on outer VLAN `vlan`.
fn vxlan(vlan: u16, from_a: bool, inner: &[u8]) -> Vec<u8> {
    let mut payload = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
    payload.extend_from_slice(inner);
    let (a, b) = ([192, 0, 2, 1], [192, 0, 2, 2]);
    let (src, dst) = if from_a { (a, b) } else { (b, a) };
    let mut ip = Vec::new();
    PacketBuilder::ipv4(src, dst, 64)
        .udp(49152, 4789)
        .write(&mut ip, &payload)
        .unwrap();
    tagged_frame(&[vlan], 0x0800, &ip)
}

#[test]
fn a_vxlan_flow_whose_request_and_reply_ride_different_outer_vlans_is_one_connection() {
    let client = ([10, 1, 0, 5], 40001);
    let server = ([10, 1, 0, 9], 8080);
    let mut w = PcapWriter::new(Vec::new(), Resolution::Micros, 0, LinkType::ETHERNET).unwrap();
    let t0 = Timestamp::from_micros(1_772_438_400, 0);
    for (i, (vlan, from_client)) in [(100, true), (200, false), (100, true), (200, false)]
        .into_iter()
        .enumerate()
    {
        let inner = if from_client {
            inner_udp(client, server, 30)
        } else {
            inner_udp(server, client, 60)
        };
        let f = vxlan(vlan, from_client, &inner);
        let ts = t0.plus(std::time::Duration::from_millis(10 * i as u64));
        w.write_packet(ts, &f, f.len() as u32).unwrap();
    }
    let out = records(&w.into_inner().unwrap());
    let inner: Vec<_> = out.iter().filter(|r| r.resp_p == 8080).collect();
    assert_eq!(inner.len(), 1, "one connection, not one per outer VLAN");
    let r = inner[0];
    assert_eq!((r.orig_pkts, r.resp_pkts), (2, 2));
    assert_eq!((r.vlan, r.inner_vlan), (None, None));
    // Each direction rides its own VXLAN flow (source port 49152 to 4789
    // both ways), so there are two parents, as in Zeek.
    assert_eq!(r.tunnel_parents.len(), 2);
    // The VXLAN flows themselves are the outer packets: keyed by their VLAN.
    let mut outer: Vec<_> = out
        .iter()
        .filter(|r| r.resp_p == 4789)
        .map(|r| (r.vlan, r.orig_pkts + r.resp_pkts))
        .collect();
    outer.sort();
    assert_eq!(outer, [(Some(100), 2), (Some(200), 2)]);
}

#[test]
fn erspan_on_outer_qinq_reports_the_mirrored_frames_own_vlan() {
    // GRE with a sequence number, ERSPAN type II header, then the mirrored
    // frame: on VLAN 20, or untagged.
    let erspan = |mirrored: &[u8]| {
        let mut gre = vec![0x10, 0, 0x88, 0xbe, 0, 0, 0, 1];
        gre.extend_from_slice(&[0x10, 0, 0, 1, 0, 0, 0, 0]);
        gre.extend_from_slice(mirrored);
        let mut ip = Vec::new();
        PacketBuilder::ipv4([192, 0, 2, 1], [192, 0, 2, 2], 64)
            .write(&mut ip, etherparse::IpNumber(47), &gre)
            .unwrap();
        tagged_frame(&[300, 301], 0x0800, &ip)
    };
    let on_vlan_20 = {
        let plain = inner_udp(([10, 2, 0, 1], 5000), ([10, 2, 0, 2], 6000), 10);
        let mut v = plain[..12].to_vec();
        v.extend_from_slice(&[0x81, 0x00, 0x00, 20]);
        v.extend_from_slice(&plain[12..]);
        v
    };
    let untagged = inner_udp(([10, 3, 0, 1], 5000), ([10, 3, 0, 2], 6000), 10);
    let mut w = PcapWriter::new(Vec::new(), Resolution::Micros, 0, LinkType::ETHERNET).unwrap();
    let t0 = Timestamp::from_micros(1_772_438_400, 0);
    for f in [erspan(&on_vlan_20), erspan(&untagged)] {
        w.write_packet(t0, &f, f.len() as u32).unwrap();
    }
    let out = records(&w.into_inner().unwrap());
    let mut vlans: Vec<_> = out
        .iter()
        .map(|r| (r.orig_h.to_string(), r.vlan, r.inner_vlan))
        .collect();
    vlans.sort();
    assert_eq!(
        vlans,
        [
            ("10.2.0.1".to_string(), Some(20), None),
            ("10.3.0.1".to_string(), None, None),
        ]
    );
}

#[test]
fn the_dns_flow_inside_pptp_gre_has_no_vlan_though_its_carrier_is_on_vlan_100() {
    let path = corpus().join("pcaps/tunnel-gre-pptp.pcap");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // The capture's frames are on VLAN 100.
    let mut reader = PcapReader::new(&bytes[..]).unwrap();
    let first = reader.next_packet().unwrap().unwrap();
    assert_eq!(&first.data[12..16], &[0x81, 0x00, 0x00, 100]);
    let out = records(&bytes);
    let dns: Vec<_> = out.iter().filter(|r| r.resp_p == 53).collect();
    assert_eq!(dns.len(), 1);
    assert_eq!(dns[0].proto, Proto::Udp);
    assert_eq!((dns[0].vlan, dns[0].inner_vlan), (None, None));
    assert_eq!(dns[0].tunnel_parents.len(), 1);
}
