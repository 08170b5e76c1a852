//! Bounded work per packet: absurd header chains (100 VLAN tags, 1000 MPLS
//! labels, 1000 IPv6 extension headers, tunnels nested 10 deep) stop after
//! a documented number of layers with a named weird, counted by the meter.
//! The error offset shows how far decoding went: it is the same for a chain
//! just over the limit and for one a hundred times longer.

mod shapes;

use flowlib::decode::{
    PacketView, MAX_ENCAPS, MAX_IPV6_EXT_HEADERS, MAX_MPLS_LABELS, MAX_TUNNEL_DEPTH, MAX_VLAN_TAGS,
};
use flowlib::{FlowMeter, LinkType, TableConfig, Timestamp, Weird};
use shapes::ipproto::*;
use shapes::*;

/// Decodes `frame` (Ethernet) and returns the weird and the offset where
/// decoding stopped; also checks the meter counts it under that weird.
fn stops(frame: &[u8]) -> (Weird, usize) {
    let e = PacketView::parse(frame, LinkType::ETHERNET, Timestamp(0), frame.len() as u32)
        .expect_err("decoding must stop at a limit");
    let mut meter = FlowMeter::new(TableConfig::default()).unwrap();
    let mut out = Vec::new();
    meter.process(
        frame,
        LinkType::ETHERNET,
        Timestamp(0),
        frame.len() as u32,
        &mut out,
    );
    meter.finish(&mut out);
    assert!(out.is_empty(), "no flow from a packet over a limit");
    assert_eq!(meter.stats().packets, 1);
    assert_eq!(
        meter.stats().weirds.get(e.weird),
        1,
        "counted as {}",
        e.weird
    );
    assert!(e.weird.is_malformed());
    (e.weird, e.offset)
}

fn decodes(frame: &[u8]) -> PacketView<'_> {
    PacketView::parse(frame, LinkType::ETHERNET, Timestamp(0), frame.len() as u32)
        .unwrap_or_else(|e| panic!("within the limits, decoding succeeds: {e}"))
}

fn tcp_v4() -> Vec<u8> {
    ipv4(A4, B4, TCP, &tcp(50000, 443, 0x18, &[], b"data"))
}

#[test]
fn hundred_stacked_vlan_tags_stop_after_the_limit() {
    let limit_offset = 14 + 4 * MAX_VLAN_TAGS;
    for n in [MAX_VLAN_TAGS + 1, 100, 10_000] {
        let frame = eth_tagged(&vec![0x8100; n], 0x0800, &tcp_v4());
        assert_eq!(
            stops(&frame),
            (Weird::TooManyVlanTags, limit_offset),
            "{n} tags"
        );
        assert_eq!(Weird::TooManyVlanTags.name(), "too_many_vlan_tags");
    }
    let ok = eth_tagged(&[0x88a8; MAX_VLAN_TAGS], 0x0800, &tcp_v4());
    let v = decodes(&ok);
    // As Zeek: the first tag, and the last one as the inner VLAN.
    let last = 100 + MAX_VLAN_TAGS as u16 - 1;
    assert_eq!((v.inner.vlan, v.inner.inner_vlan), (Some(100), Some(last)));
}

#[test]
fn thousand_mpls_labels_stop_after_the_limit() {
    let limit_offset = 14 + 4 * MAX_MPLS_LABELS;
    for n in [MAX_MPLS_LABELS + 1, 1000, 100_000] {
        let frame = eth(0x8847, &mpls(n, &tcp_v4()));
        assert_eq!(
            stops(&frame),
            (Weird::TooManyMplsLabels, limit_offset),
            "{n} labels"
        );
    }
    assert_eq!(Weird::TooManyMplsLabels.name(), "too_many_mpls_labels");
    decodes(&eth(0x8847, &mpls(MAX_MPLS_LABELS, &tcp_v4())));
}

/// IPv6 with `n` destination-options headers before TCP.
fn ipv6_with_ext_headers(n: usize) -> Vec<u8> {
    let mut p = Vec::new();
    for i in 0..n {
        p.extend(ext(if i + 1 == n { TCP } else { DEST_OPTS }, 0));
    }
    p.extend(tcp(50000, 22, 0x18, &[], b"x"));
    eth(0x86dd, &ipv6(a6(), b6(), DEST_OPTS, &p))
}

#[test]
fn thousand_ipv6_extension_headers_stop_after_the_limit() {
    let limit_offset = 14 + 40 + 8 * MAX_IPV6_EXT_HEADERS;
    // 1000 headers of 8 bytes fit in one IPv6 payload (8 kB jumbo frame).
    for n in [MAX_IPV6_EXT_HEADERS + 1, 1000, 8000] {
        let frame = ipv6_with_ext_headers(n);
        assert_eq!(
            stops(&frame),
            (Weird::TooManyIpv6ExtensionHeaders, limit_offset),
            "{n} extension headers"
        );
    }
    assert_eq!(
        Weird::TooManyIpv6ExtensionHeaders.name(),
        "too_many_ipv6_extension_headers"
    );
    let ok = ipv6_with_ext_headers(MAX_IPV6_EXT_HEADERS);
    let v = decodes(&ok);
    assert_eq!(v.inner.ip.proto, TCP);
    assert_eq!(
        v.inner.ip.header_len as usize,
        40 + 8 * MAX_IPV6_EXT_HEADERS
    );
}

/// `depth` tunnels of one kind around an IPv4/UDP packet, each layer
/// built by `wrap` from the IPv4 packet inside it.
fn nested(depth: usize, wrap: impl Fn(Vec<u8>) -> Vec<u8>) -> Vec<u8> {
    let mut ip = inner_v4_udp();
    for _ in 0..depth {
        ip = wrap(ip);
    }
    eth(0x0800, &ip)
}

fn ipip(inner: Vec<u8>) -> Vec<u8> {
    ipv4(OUTER_A4, OUTER_B4, IPIP, &inner)
}

fn gre_v4(inner: Vec<u8>) -> Vec<u8> {
    ipv4(
        OUTER_A4,
        OUTER_B4,
        GRE,
        &gre(0x20, 0, 0x0800, &[0, 0, 0, 1], &inner),
    )
}

fn vxlan(inner: Vec<u8>) -> Vec<u8> {
    let mut v = vec![0x08, 0, 0, 0, 0, 0, 0x2a, 0];
    v.extend(eth(0x0800, &inner));
    ipv4(OUTER_A4, OUTER_B4, UDP, &udp(40000, 4789, &v))
}

/// Builds one tunnel layer around an IPv4 packet.
type Wrap = dyn Fn(Vec<u8>) -> Vec<u8>;

fn mixed(i: usize) -> impl Fn(Vec<u8>) -> Vec<u8> {
    move |inner| match i % 3 {
        0 => ipip(inner),
        1 => gre_v4(inner),
        _ => vxlan(inner),
    }
}

#[test]
fn tunnels_nested_ten_deep_stop_after_the_limit() {
    let kinds: [(&str, &Wrap, usize); 3] = [
        ("ip-in-ip", &ipip, MAX_TUNNEL_DEPTH),
        ("gre", &gre_v4, MAX_TUNNEL_DEPTH),
        ("vxlan", &vxlan, MAX_ENCAPS),
    ];
    for (name, wrap, limit) in kinds {
        let over = stops(&nested(limit + 1, wrap));
        assert_eq!(over.0, Weird::TunnelsTooDeep, "{name}");
        for depth in [10, 50] {
            // Work does not grow with the nesting: decoding stops at the
            // same layer from the outside, at the same byte.
            assert_eq!(
                stops(&nested(depth, wrap)),
                over,
                "{name} {depth} deep stops where {} deep does",
                limit + 1
            );
        }
        assert_eq!(Weird::TunnelsTooDeep.name(), "tunnels_too_deep");
        let ok = nested(limit, wrap);
        let v = decodes(&ok);
        assert_eq!(v.inner.transport.ports(), (5353, 53), "{name} at the limit");
    }
    // Mixed kinds, 10 deep.
    let mut ip = inner_v4_udp();
    for i in 0..10 {
        ip = mixed(i)(ip);
    }
    assert_eq!(stops(&eth(0x0800, &ip)).0, Weird::TunnelsTooDeep);
}
