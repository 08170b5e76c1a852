//! Packet shapes for the decoder sweeps and work-limit tests, built byte by
//! byte here: every link type flowlib decodes, tags and label stacks, IPv4
//! options, IPv6 extension chains, every TCP option kind, ICMP errors
//! quoting inner packets, and every tunnel type.
#![allow(dead_code)]

use flowlib::LinkType;

/// One packet shape: a name, its link type and its bytes.
pub struct Shape {
    pub name: &'static str,
    pub link: LinkType,
    pub bytes: Vec<u8>,
}

pub const A4: [u8; 4] = [10, 1, 0, 1];
pub const B4: [u8; 4] = [10, 2, 0, 2];
pub const OUTER_A4: [u8; 4] = [192, 0, 2, 1];
pub const OUTER_B4: [u8; 4] = [192, 0, 2, 2];

pub fn a6() -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    a[15] = 1;
    a
}

pub fn b6() -> [u8; 16] {
    let mut a = a6();
    a[15] = 2;
    a
}

/// Teredo-prefixed IPv6 address (2001:0::/32).
pub fn teredo6() -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&[0x20, 0x01, 0, 0]);
    a[15] = 9;
    a
}

/// IP protocol numbers.
pub mod ipproto {
    pub const ICMP: u8 = 1;
    pub const IPIP: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6: u8 = 41;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const GRE: u8 = 47;
    pub const AUTH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const NO_NEXT: u8 = 59;
    pub const DEST_OPTS: u8 = 60;
    pub const OSPF: u8 = 89;
    pub const SCTP: u8 = 132;
}

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in bytes.chunks(2) {
        let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// IPv4 with `options` (padded to 4 bytes), DF clear, given fragment field.
pub fn ipv4_full(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    options: &[u8],
    frag: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut opts = options.to_vec();
    while opts.len() % 4 != 0 {
        opts.push(0);
    }
    let hl = 20 + opts.len();
    let total = (hl + payload.len()) as u16;
    let mut h = vec![0x40 | (hl / 4) as u8, 0];
    h.extend(total.to_be_bytes());
    h.extend([0x12, 0x34]);
    h.extend(frag.to_be_bytes());
    h.extend([64, proto, 0, 0]);
    h.extend(src);
    h.extend(dst);
    h.extend(opts);
    let c = checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend(payload);
    h
}

pub fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
    ipv4_full(src, dst, proto, &[], 0, payload)
}

/// IPv6 whose payload (extension headers included) is `payload`.
pub fn ipv6(src: [u8; 16], dst: [u8; 16], next: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend((payload.len() as u16).to_be_bytes());
    h.extend([next, 64]);
    h.extend(src);
    h.extend(dst);
    h.extend(payload);
    h
}

/// A generic IPv6 extension header (hop-by-hop, routing, destination
/// options) of `8 * (1 + units)` bytes.
pub fn ext(next: u8, units: u8) -> Vec<u8> {
    let mut e = vec![next, units];
    e.resize(8 * (1 + usize::from(units)), 0);
    if e.len() >= 8 {
        e[2] = 1; // PadN
        e[3] = (e.len() - 4) as u8;
    }
    e
}

pub fn frag_ext(next: u8, offset: u16, more: bool, id: u32) -> Vec<u8> {
    let mut e = vec![next, 0];
    e.extend((offset & 0xfff8 | u16::from(more)).to_be_bytes());
    e.extend(id.to_be_bytes());
    e
}

/// IPsec authentication header with a 12-byte ICV.
pub fn auth_ext(next: u8) -> Vec<u8> {
    let mut e = vec![next, 4, 0, 0];
    e.extend(0x100u32.to_be_bytes()); // SPI
    e.extend(1u32.to_be_bytes()); // sequence
    e.extend([0xab; 12]);
    e
}

pub fn udp(sp: u16, dp: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend(sp.to_be_bytes());
    u.extend(dp.to_be_bytes());
    u.extend(((8 + payload.len()) as u16).to_be_bytes());
    u.extend([0, 0]);
    u.extend(payload);
    u
}

pub fn tcp(sp: u16, dp: u16, flags: u8, options: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut opts = options.to_vec();
    while opts.len() % 4 != 0 {
        opts.push(0); // EOL padding
    }
    let hl = 20 + opts.len();
    let mut t = Vec::new();
    t.extend(sp.to_be_bytes());
    t.extend(dp.to_be_bytes());
    t.extend(1000u32.to_be_bytes());
    t.extend(2000u32.to_be_bytes());
    t.push(((hl / 4) as u8) << 4);
    t.push(flags);
    t.extend(64240u16.to_be_bytes());
    t.extend([0, 0, 0, 0]);
    t.extend(opts);
    t.extend(payload);
    t
}

pub fn icmp(icmp_type: u8, code: u8, rest: &[u8]) -> Vec<u8> {
    let mut m = vec![icmp_type, code, 0, 0, 0, 0, 0, 0];
    m.extend(rest);
    m
}

pub fn sctp(sp: u16, dp: u16) -> Vec<u8> {
    let mut s = Vec::new();
    s.extend(sp.to_be_bytes());
    s.extend(dp.to_be_bytes());
    s.extend(0xdead_beefu32.to_be_bytes());
    s.extend([0, 0, 0, 0]);
    // INIT chunk
    s.extend([1, 0, 0, 20]);
    s.extend([0u8; 16]);
    s
}

pub fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    f.extend(ethertype.to_be_bytes());
    f.extend(payload);
    f
}

/// Ethernet carrying a stack of 802.1Q/802.1ad tags (`tpids[i]` is the
/// type field announcing tag `i`), then `inner_type` and `payload`.
pub fn eth_tagged(tpids: &[u16], inner_type: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    f.extend(tpids[0].to_be_bytes());
    for (i, _) in tpids.iter().enumerate() {
        f.extend((100 + i as u16).to_be_bytes());
        let next = tpids.get(i + 1).copied().unwrap_or(inner_type);
        f.extend(next.to_be_bytes());
    }
    f.extend(payload);
    f
}

/// An MPLS label stack of `n` labels, bottom-of-stack on the last.
pub fn mpls(n: usize, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    for i in 0..n {
        let label = (16 + i as u32) << 12;
        let bos = if i + 1 == n { 0x100 } else { 0 };
        m.extend((label | bos | 64).to_be_bytes());
    }
    m.extend(payload);
    m
}

pub fn gre(flags: u8, ver: u8, proto: u16, extra: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut g = vec![flags, ver];
    g.extend(proto.to_be_bytes());
    g.extend(extra);
    g.extend(payload);
    g
}

/// The innermost packet most tunnels carry: IPv4/UDP 5353 -> 53.
pub fn inner_v4_udp() -> Vec<u8> {
    ipv4(A4, B4, ipproto::UDP, &udp(5353, 53, b"query"))
}

pub fn inner_v6_udp() -> Vec<u8> {
    ipv6(a6(), b6(), ipproto::UDP, &udp(5353, 53, b"query"))
}

pub fn inner_eth_v4_udp() -> Vec<u8> {
    eth(0x0800, &inner_v4_udp())
}

/// Ethernet / outer IPv4 / UDP `sp -> dp` carrying `payload`.
pub fn outer_udp(sp: u16, dp: u16, payload: &[u8]) -> Vec<u8> {
    eth(
        0x0800,
        &ipv4(OUTER_A4, OUTER_B4, ipproto::UDP, &udp(sp, dp, payload)),
    )
}

/// Ethernet / outer IPv4 / GRE.
pub fn outer_gre(g: &[u8]) -> Vec<u8> {
    eth(0x0800, &ipv4(OUTER_A4, OUTER_B4, ipproto::GRE, g))
}

fn shape(name: &'static str, link: LinkType, bytes: Vec<u8>) -> Shape {
    Shape { name, link, bytes }
}

/// Every shape the sweeps run over.
pub fn all() -> Vec<Shape> {
    use ipproto::*;
    let e = LinkType::ETHERNET;
    let tcp_v4 = ipv4(A4, B4, TCP, &tcp(50000, 443, 0x18, &[], b"hello world"));
    let syn_opts = [
        2, 4, 0x05, 0xb4, // MSS
        1,    // NOP
        3, 3, 7, // window scale
        4, 2, // SACK permitted
        8, 10, 0, 0, 0, 1, 0, 0, 0, 0, // timestamps
        0, // EOL
    ];
    let sack = [
        1, 1, 5, 18, 0, 0, 3, 0xe8, 0, 0, 7, 0xd0, 0, 0, 0x0b, 0xb8, 0, 0, 0x0f, 0xa0,
    ];
    let mut md5 = vec![1, 1, 19, 18];
    md5.extend([0x5a; 16]);
    let mut ao = vec![1, 1, 29, 16, 1, 2];
    ao.extend([0x33; 12]);
    let mptcp = [30, 12, 0x00, 0x81, 0, 0, 0, 0, 0, 0, 0, 1];
    let tfo = [34, 10, 1, 2, 3, 4, 5, 6, 7, 8];
    let uto = [28, 4, 0x80, 0x3c];
    let exp = [253, 6, 0xf9, 0x89, 0, 0, 254, 4, 0x34, 0x56];
    let unknown_kind = [99, 3, 0];

    let icmp_quote_udp = icmp(3, 3, &inner_v4_udp());
    let mut quoted_tcp = ipv4(B4, A4, TCP, &tcp(443, 50000, 0x02, &[], b""));
    quoted_tcp.truncate(28); // ICMP errors quote the IP header + 8 bytes
    let icmp6_quote = icmp(1, 4, &ipv6(b6(), a6(), UDP, &udp(5353, 53, b"q")));
    let mut too_big = vec![0, 0, 0x05, 0xdc];
    too_big.extend(&ipv6(a6(), b6(), TCP, &tcp(1, 2, 0x10, &[], &[0; 32]))[..48]);

    let erspan3 = {
        let mut h = vec![0x20, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        h.extend(inner_eth_v4_udp());
        h
    };
    let erspan3_platform = {
        let mut h = vec![0x20, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01];
        h.extend([0u8; 8]);
        h.extend(inner_eth_v4_udp());
        h
    };
    let erspan2 = {
        let mut h = vec![0x10, 0x64, 0, 0, 0, 0, 0, 0];
        h.extend(inner_eth_v4_udp());
        h
    };
    let ppp_v4 = {
        let mut p = vec![0xff, 0x03, 0x00, 0x21];
        p.extend(inner_v4_udp());
        p
    };
    let vxlan = {
        let mut v = vec![0x08, 0, 0, 0, 0, 0, 0x2a, 0];
        v.extend(inner_eth_v4_udp());
        v
    };
    let geneve_opts = {
        // 2 words of options, protocol Ethernet
        let mut g = vec![0x02, 0, 0x65, 0x58, 0, 0, 0x2a, 0];
        g.extend([0x01, 0x02, 0x80, 0x01, 0xaa, 0xbb, 0xcc, 0xdd]);
        g.extend(inner_eth_v4_udp());
        g
    };
    let geneve_v4 = {
        let mut g = vec![0x00, 0, 0x08, 0x00, 0, 0, 0x2a, 0];
        g.extend(inner_v4_udp());
        g
    };
    let gtp = |flags: u8, ext: &[u8], inner: &[u8]| {
        let mut g = vec![flags, 0xff];
        g.extend(((ext.len() + inner.len()) as u16).to_be_bytes());
        g.extend([0, 0, 0, 1]);
        g.extend(ext);
        g.extend(inner);
        g
    };
    // sequence + N-PDU + next extension type 0x85 (PDU session container),
    // one 4-byte extension, then no more.
    let gtp_ext = [0, 1, 0, 0x85, 1, 0x10, 0x09, 0x00];
    let teredo_plain = ipv6(teredo6(), b6(), UDP, &udp(3544, 3544, b"v6"));
    let teredo_origin = {
        let mut t = vec![0, 0, 0x0d, 0x96, 0x3f, 0xff, 0xfd, 0xfe];
        t.extend(&teredo_plain);
        t
    };
    let teredo_auth = {
        let mut t = vec![0, 1, 2, 1, b'i', b'd', 0xaa];
        t.extend([0u8; 8]); // nonce
        t.push(0); // confirmation
        t.extend(&teredo_plain);
        t
    };
    let ayiya = {
        let mut a = vec![0x41, 0x52, 0x11, 41, 0, 0, 0, 0];
        a.extend([0x11; 16]); // identity (2^4 bytes)
        a.extend([0x22; 20]); // signature (5 words)
        a.extend(inner_v6_udp());
        a
    };
    // hop-by-hop -> destination options -> routing -> fragment (atomic) ->
    // authentication -> destination options -> TCP
    let ext_chain = {
        let mut p = ext(DEST_OPTS, 0);
        p.extend(ext(ROUTING, 0));
        p.extend(ext(FRAGMENT, 1));
        p.extend(frag_ext(AUTH, 0, false, 7));
        p.extend(auth_ext(DEST_OPTS));
        p.extend(ext(TCP, 0));
        p.extend(tcp(50000, 22, 0x18, &[], b"ssh"));
        p
    };
    let v6_first_frag = {
        let mut p = frag_ext(UDP, 0, true, 0x1234);
        p.extend(udp(5353, 53, &[0x41; 40]));
        p
    };
    let v6_later_frag = {
        let mut p = frag_ext(UDP, 48, false, 0x1234);
        p.extend([0x41; 24]);
        p
    };
    let ipv4_opts = [
        7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, // record route (2 slots)
        1, // NOP
        68, 12, 5, 0, 0, 0, 0, 1, 0, 0, 0, 2, // timestamp
        148, 4, 0, 0, // router alert
    ];
    let sll = {
        let mut f = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00];
        f.extend(&tcp_v4);
        f
    };
    let sll2 = {
        let mut f = vec![
            0x86, 0xdd, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0,
        ];
        f.extend(ipv6(
            a6(),
            b6(),
            TCP,
            &tcp(50000, 443, 0x02, &syn_opts, b""),
        ));
        f
    };
    let null_le = {
        let mut f = 2u32.to_le_bytes().to_vec();
        f.extend(&tcp_v4);
        f
    };
    let loop_v6 = {
        let mut f = 24u32.to_be_bytes().to_vec();
        f.extend(inner_v6_udp());
        f
    };

    vec![
        // Link types.
        shape("ethernet_ipv4_tcp", e, eth(0x0800, &tcp_v4)),
        shape("linux_sll_ipv4_tcp", LinkType::LINUX_SLL, sll),
        shape(
            "linux_sll2_ipv6_tcp_syn_options",
            LinkType::LINUX_SLL2,
            sll2,
        ),
        shape("null_le_ipv4_tcp", LinkType::NULL, null_le),
        shape("loop_be_ipv6_udp", LinkType::LOOP, loop_v6),
        shape("ppp_hdlc_ipv4_udp", LinkType::PPP, ppp_v4),
        shape("raw_ipv4_tcp", LinkType::RAW, tcp_v4.clone()),
        shape("raw_ipv6_udp", LinkType::RAW, inner_v6_udp()),
        shape("linktype_ipv4_udp", LinkType::IPV4, inner_v4_udp()),
        shape("linktype_ipv6_udp", LinkType::IPV6, inner_v6_udp()),
        // Between link and IP.
        shape("vlan_8021q", e, eth_tagged(&[0x8100], 0x0800, &tcp_v4)),
        shape(
            "qinq_88a8_8100",
            e,
            eth_tagged(&[0x88a8, 0x8100], 0x86dd, &inner_v6_udp()),
        ),
        shape(
            "qinq_old_9100_triple",
            e,
            eth_tagged(&[0x9100, 0x9200, 0x8100], 0x0800, &tcp_v4),
        ),
        shape("mpls_two_labels_ipv4", e, eth(0x8847, &mpls(2, &tcp_v4))),
        shape(
            "mpls_multicast_ipv6",
            e,
            eth(0x8848, &mpls(1, &inner_v6_udp())),
        ),
        shape(
            "vlan_mpls",
            e,
            eth_tagged(&[0x8100], 0x8847, &mpls(3, &inner_v4_udp())),
        ),
        shape("pppoe_session_ipv4", e, {
            let mut p = vec![0x11, 0, 0x00, 0x01];
            p.extend(((2 + tcp_v4.len()) as u16).to_be_bytes());
            p.extend([0x00, 0x21]);
            p.extend(&tcp_v4);
            eth(0x8864, &p)
        }),
        shape("pppoe_session_ipv6_compressed_proto", e, {
            let v6 = inner_v6_udp();
            let mut p = vec![0x11, 0, 0x00, 0x01];
            p.extend(((1 + v6.len()) as u16).to_be_bytes());
            p.push(0x57);
            p.extend(&v6);
            eth(0x8864, &p)
        }),
        shape("vntag", e, {
            let mut p = vec![0x80, 0x01, 0x00, 0x02, 0x08, 0x00];
            p.extend(&tcp_v4);
            eth(0x8926, &p)
        }),
        shape("llc_snap", e, {
            let mut p = vec![0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00];
            p.extend(&tcp_v4);
            eth((p.len()) as u16, &p)
        }),
        // IP layer.
        shape(
            "ipv4_options_rr_ts_ra",
            e,
            eth(
                0x0800,
                &ipv4_full(A4, B4, UDP, &ipv4_opts, 0, &udp(1, 2, b"x")),
            ),
        ),
        shape(
            "ipv4_first_fragment",
            e,
            eth(
                0x0800,
                &ipv4_full(A4, B4, UDP, &[], 0x2000, &udp(5353, 53, &[0x41; 40])[..24]),
            ),
        ),
        shape(
            "ipv4_later_fragment",
            e,
            eth(0x0800, &ipv4_full(A4, B4, UDP, &[], 3, &[0x41; 24])),
        ),
        shape(
            "ipv6_ext_chain_hbh_dst_rt_frag_ah_dst",
            e,
            eth(0x86dd, &ipv6(a6(), b6(), 0, &ext_chain)),
        ),
        shape(
            "ipv6_first_fragment",
            e,
            eth(0x86dd, &ipv6(a6(), b6(), FRAGMENT, &v6_first_frag)),
        ),
        shape(
            "ipv6_later_fragment",
            e,
            eth(0x86dd, &ipv6(a6(), b6(), FRAGMENT, &v6_later_frag)),
        ),
        shape(
            "ipv6_no_next_header",
            e,
            eth(0x86dd, &ipv6(a6(), b6(), NO_NEXT, &[])),
        ),
        // Transports and every TCP option kind.
        shape(
            "tcp_syn_mss_nop_ws_sackok_ts_eol",
            e,
            eth(
                0x0800,
                &ipv4(A4, B4, TCP, &tcp(50000, 443, 0x02, &syn_opts, b"")),
            ),
        ),
        shape(
            "tcp_sack_blocks",
            e,
            eth(
                0x0800,
                &ipv4(A4, B4, TCP, &tcp(50000, 443, 0x10, &sack, b"")),
            ),
        ),
        shape(
            "tcp_md5_signature",
            e,
            eth(
                0x0800,
                &ipv4(A4, B4, TCP, &tcp(179, 50000, 0x18, &md5, b"bgp")),
            ),
        ),
        shape(
            "tcp_ao",
            e,
            eth(
                0x0800,
                &ipv4(A4, B4, TCP, &tcp(179, 50001, 0x18, &ao, b"bgp")),
            ),
        ),
        shape(
            "tcp_mptcp_capable",
            e,
            eth(
                0x0800,
                &ipv4(A4, B4, TCP, &tcp(50000, 80, 0x02, &mptcp, b"")),
            ),
        ),
        shape(
            "tcp_fast_open_cookie",
            e,
            eth(
                0x0800,
                &ipv4(A4, B4, TCP, &tcp(50000, 80, 0x02, &tfo, b"GET")),
            ),
        ),
        shape(
            "tcp_user_timeout",
            e,
            eth(0x0800, &ipv4(A4, B4, TCP, &tcp(50000, 80, 0x10, &uto, b""))),
        ),
        shape(
            "tcp_experimental_253_254",
            e,
            eth(0x0800, &ipv4(A4, B4, TCP, &tcp(50000, 80, 0x10, &exp, b""))),
        ),
        shape(
            "tcp_unknown_option_kind",
            e,
            eth(
                0x0800,
                &ipv4(A4, B4, TCP, &tcp(50000, 80, 0x10, &unknown_kind, b"")),
            ),
        ),
        shape(
            "ipv6_tcp_rst",
            e,
            eth(
                0x86dd,
                &ipv6(a6(), b6(), TCP, &tcp(22, 50000, 0x14, &[], b"")),
            ),
        ),
        shape("udp_dns", e, eth(0x0800, &inner_v4_udp())),
        shape(
            "sctp_init",
            e,
            eth(0x0800, &ipv4(A4, B4, SCTP, &sctp(5000, 5001))),
        ),
        shape(
            "other_protocol_ospf",
            e,
            eth(0x0800, &ipv4(A4, B4, OSPF, &[2, 1, 0, 44, 1, 1, 1, 1])),
        ),
        // ICMP.
        shape(
            "icmp_echo",
            e,
            eth(0x0800, &ipv4(A4, B4, ICMP, &icmp(8, 0, b"ping"))),
        ),
        shape(
            "icmp_unreachable_quoting_udp",
            e,
            eth(0x0800, &ipv4(B4, A4, ICMP, &icmp_quote_udp)),
        ),
        shape(
            "icmp_time_exceeded_quoting_tcp",
            e,
            eth(0x0800, &ipv4(B4, A4, ICMP, &icmp(11, 0, &quoted_tcp))),
        ),
        shape(
            "icmpv6_echo",
            e,
            eth(0x86dd, &ipv6(a6(), b6(), ICMPV6, &icmp(128, 0, b"ping"))),
        ),
        shape(
            "icmpv6_unreachable_quoting_udp",
            e,
            eth(0x86dd, &ipv6(b6(), a6(), ICMPV6, &icmp6_quote)),
        ),
        shape(
            "icmpv6_packet_too_big_quoting_tcp",
            e,
            eth(
                0x86dd,
                &ipv6(b6(), a6(), ICMPV6, &icmp(2, 0, &too_big[4..])),
            ),
        ),
        // Tunnels.
        shape(
            "gre_ipv4",
            e,
            outer_gre(&gre(0, 0, 0x0800, &[], &inner_v4_udp())),
        ),
        shape(
            "gre_checksum_key_seq_ethernet",
            e,
            outer_gre(&gre(
                0xb0,
                0,
                0x6558,
                &[0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 1],
                &inner_eth_v4_udp(),
            )),
        ),
        shape(
            "gre_key_ipv6",
            e,
            outer_gre(&gre(0x20, 0, 0x86dd, &[0, 0, 0, 9], &inner_v6_udp())),
        ),
        shape(
            "gre_mpls",
            e,
            outer_gre(&gre(0, 0, 0x8847, &[], &mpls(2, &inner_v4_udp()))),
        ),
        shape(
            "erspan_type1",
            e,
            outer_gre(&gre(0, 0, 0x88be, &[], &inner_eth_v4_udp())),
        ),
        shape(
            "erspan_type2",
            e,
            outer_gre(&gre(0x10, 0, 0x88be, &[0, 0, 0, 1], &erspan2)),
        ),
        shape(
            "erspan_type3",
            e,
            outer_gre(&gre(0x10, 0, 0x22eb, &[0, 0, 0, 1], &erspan3)),
        ),
        shape(
            "erspan_type3_platform_subheader",
            e,
            outer_gre(&gre(0x10, 0, 0x22eb, &[0, 0, 0, 1], &erspan3_platform)),
        ),
        shape("pptp_enhanced_gre", e, {
            let ppp = {
                let mut p = vec![0xff, 0x03, 0x00, 0x21];
                p.extend(inner_v4_udp());
                p
            };
            let mut key = (ppp.len() as u16).to_be_bytes().to_vec();
            key.extend([0, 5, 0, 0, 0, 1, 0, 0, 0, 0]); // call id, seq, ack
            outer_gre(&gre(0x30, 0x81, 0x880b, &key, &ppp))
        }),
        shape(
            "ipip_4in4",
            e,
            eth(0x0800, &ipv4(OUTER_A4, OUTER_B4, IPIP, &inner_v4_udp())),
        ),
        shape(
            "ipip_6in4",
            e,
            eth(0x0800, &ipv4(OUTER_A4, OUTER_B4, IPV6, &inner_v6_udp())),
        ),
        shape(
            "ipip_4in6",
            e,
            eth(0x86dd, &ipv6(b6(), a6(), IPIP, &inner_v4_udp())),
        ),
        shape(
            "ipip_6in6",
            e,
            eth(0x86dd, &ipv6(b6(), a6(), IPV6, &inner_v6_udp())),
        ),
        shape("vxlan", e, outer_udp(40000, 4789, &vxlan)),
        shape(
            "geneve_options_ethernet",
            e,
            outer_udp(40000, 6081, &geneve_opts),
        ),
        shape("geneve_ipv4", e, outer_udp(40000, 6081, &geneve_v4)),
        shape(
            "gtpu_ipv4",
            e,
            outer_udp(2152, 2152, &gtp(0x30, &[], &inner_v4_udp())),
        ),
        shape(
            "gtpu_extension_headers_ipv6",
            e,
            outer_udp(2152, 2152, &gtp(0x36, &gtp_ext, &inner_v6_udp())),
        ),
        shape("teredo", e, outer_udp(40000, 3544, &teredo_plain)),
        shape(
            "teredo_origin_indication",
            e,
            outer_udp(3544, 40000, &teredo_origin),
        ),
        shape(
            "teredo_authentication",
            e,
            outer_udp(3544, 40000, &teredo_auth),
        ),
        shape(
            "teredo_on_other_port",
            e,
            outer_udp(40000, 50000, &teredo_plain),
        ),
        shape("ayiya", e, outer_udp(40000, 5072, &ayiya)),
        shape(
            "mpls_over_udp",
            e,
            outer_udp(40000, 6635, &mpls(1, &inner_v4_udp())),
        ),
        shape(
            "vxlan_in_gre_in_vlan",
            e,
            eth_tagged(
                &[0x8100],
                0x0800,
                &ipv4(
                    OUTER_A4,
                    OUTER_B4,
                    GRE,
                    &gre(
                        0,
                        0,
                        0x0800,
                        &[],
                        &ipv4([172, 16, 0, 1], [172, 16, 0, 2], UDP, &udp(1, 4789, &vxlan)),
                    ),
                ),
            ),
        ),
    ]
}
