//! Generator tests: every frame is parsed back with etherparse and checked
//! against the conversation's description and ground truth.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use flowlib::Timestamp;

use crate::*;

fn t0() -> Timestamp {
    Timestamp::from_micros(1_772_438_400, 0)
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// What a frame says, reduced to what the tests check.
#[derive(Debug, Clone)]
struct Parsed {
    src: SocketAddr,
    dst: SocketAddr,
    ip_len: u64,
    payload: usize,
    vlan: Option<u16>,
    tcp: Option<(u32, u32, bool, bool, bool, bool)>, // seq, ack, syn, ack flag, fin, rst
    proto: u8,
}

fn parse(frame: &[u8]) -> Parsed {
    let p = SlicedPacket::from_ethernet(frame).expect("generated frame parses");
    let vlan = p.vlan_ids().first().map(|v| v.value());
    let (sip, dip, ip_len, proto): (IpAddr, IpAddr, u64, u8) = match p.net.as_ref().unwrap() {
        NetSlice::Ipv4(v4) => {
            let h = v4.header();
            (
                h.source_addr().into(),
                h.destination_addr().into(),
                u64::from(h.total_len()),
                h.protocol().0,
            )
        }
        NetSlice::Ipv6(v6) => {
            let h = v6.header();
            (
                h.source_addr().into(),
                h.destination_addr().into(),
                u64::from(h.payload_length()) + 40,
                h.next_header().0,
            )
        }
        other => panic!("unexpected net layer {other:?}"),
    };
    let (sport, dport, payload, tcp) = match p.transport.as_ref().unwrap() {
        TransportSlice::Tcp(t) => (
            t.source_port(),
            t.destination_port(),
            t.payload().len(),
            Some((
                t.sequence_number(),
                t.acknowledgment_number(),
                t.syn(),
                t.ack(),
                t.fin(),
                t.rst(),
            )),
        ),
        TransportSlice::Udp(u) => (
            u.source_port(),
            u.destination_port(),
            u.payload().len(),
            None,
        ),
        TransportSlice::Icmpv4(i) => (0, 0, i.payload().len(), None),
        TransportSlice::Icmpv6(i) => (0, 0, i.payload().len(), None),
        other => panic!("unexpected transport {other:?}"),
    };
    Parsed {
        src: SocketAddr::new(sip, sport),
        dst: SocketAddr::new(dip, dport),
        ip_len,
        payload,
        vlan,
        tcp,
        proto,
    }
}

/// Checks TCP sequence/ack continuity over a conversation's frames and that
/// the counters match [`Conversation::expected`].
fn check_conversation(c: &Conversation) {
    let frames = packets(c);
    let e = c.expected();
    assert!(!frames.is_empty());
    assert_eq!(frames[0].0, c.start);
    assert_eq!(frames.last().unwrap().0, e.last_ts);
    let (mut op, mut ob, mut oi, mut rp, mut rb, mut ri) = (0, 0, 0, 0, 0, 0);
    // Next expected sequence number per direction, once known.
    let mut next: [Option<u32>; 2] = [None, None];
    let mut prev_ts = c.start;
    for (ts, f) in &frames {
        assert!(*ts >= prev_ts, "timestamps go backwards");
        prev_ts = *ts;
        let p = parse(f);
        assert_eq!(p.vlan, c.vlan);
        let from_client = p.src.port() == c.client.port() && p.dst.port() == c.server.port();
        if c.protocol != Protocol::IcmpEcho {
            assert!(from_client || (p.src.port() == c.server.port()));
        } else {
            from_client_icmp_check(&p, c);
        }
        let from_client = if c.protocol == Protocol::IcmpEcho {
            p.src.ip() == c.client.ip()
        } else {
            from_client
        };
        if from_client {
            op += 1;
            ob += p.payload as u64;
            oi += p.ip_len;
        } else {
            rp += 1;
            rb += p.payload as u64;
            ri += p.ip_len;
        }
        if let Some((seq, ack, syn, ackf, fin, rst)) = p.tcp {
            let (me, peer) = if from_client { (0, 1) } else { (1, 0) };
            if let Some(n) = next[me] {
                if !(rst && !from_client && c.close == Close::Rejected) {
                    assert_eq!(seq, n, "sequence gap in {:?}", c.close);
                }
            }
            if ackf {
                if let Some(n) = next[peer] {
                    assert_eq!(ack, n, "ack does not match peer's next sequence");
                }
            }
            if !rst {
                let adv = p.payload as u32 + u32::from(syn) + u32::from(fin);
                next[me] = Some(seq.wrapping_add(adv));
            }
            if syn && !ackf && from_client && c.close == Close::NoAnswer {
                // Retransmissions reuse the ISN.
                next[me] = Some(seq);
            }
        }
    }
    assert_eq!((op, ob, oi), (e.orig_pkts, e.orig_bytes, e.orig_ip_bytes));
    assert_eq!((rp, rb, ri), (e.resp_pkts, e.resp_bytes, e.resp_ip_bytes));
}

fn from_client_icmp_check(p: &Parsed, c: &Conversation) {
    assert!(p.proto == 1 || p.proto == 58);
    assert!(p.src.ip() == c.client.ip() || p.src.ip() == c.server.ip());
}

#[test]
fn normal_tcp_close_is_sf_with_full_history() {
    let c = Conversation::tcp(sa("10.20.1.5:50000"), sa("203.0.113.5:443"), t0())
        .bytes(3000, 500)
        .close(Close::Fin);
    let e = c.expected();
    assert_eq!(e.conn_state, "SF");
    assert_eq!(e.history, "ShADadFf");
    assert_eq!(e.orig_bytes, 3000);
    assert_eq!(e.resp_bytes, 500);
    check_conversation(&c);
}

#[test]
fn segments_are_mss_sized() {
    let c = Conversation::tcp(sa("10.20.1.5:50000"), sa("10.40.0.9:445"), t0())
        .bytes(100, 100_000)
        .mss(1000);
    let sizes: Vec<usize> = packets(&c).iter().map(|(_, f)| parse(f).payload).collect();
    assert!(sizes.iter().all(|&s| s <= 1000));
    assert_eq!(sizes.iter().filter(|&&s| s == 1000).count(), 100);
    check_conversation(&c);
}

#[test]
fn multi_round_sessions_keep_sequence_continuity() {
    for (cb, sb, rounds) in [
        (5_000, 200_000, 7),
        (0, 10_000, 3),
        (10_000, 0, 2),
        (1, 1, 50),
    ] {
        for close in [
            Close::Fin,
            Close::RstByClient,
            Close::RstByServer,
            Close::Open,
        ] {
            let c = Conversation::tcp(sa("10.10.1.10:40001"), sa("10.20.10.5:3389"), t0())
                .bytes(cb, sb)
                .rounds(rounds)
                .close(close);
            check_conversation(&c);
        }
    }
}

#[test]
fn close_styles_give_zeek_states_and_histories() {
    let base =
        Conversation::tcp(sa("10.20.1.5:50001"), sa("10.30.1.5:445"), t0()).bytes(3000, 3000);
    let cases = [
        (Close::Fin, "SF", "ShADadFf"),
        (Close::RstByClient, "RSTO", "ShADadR"),
        (Close::RstByServer, "RSTR", "ShADadr"),
        (Close::Open, "S1", "ShADad"),
        (Close::Rejected, "REJ", "Sr"),
        (Close::NoAnswer, "S0", "S"),
    ];
    for (close, state, history) in cases {
        let c = base.clone().close(close);
        let e = c.expected();
        assert_eq!(
            (e.conn_state, e.history.as_str()),
            (state, history),
            "{close:?}"
        );
        check_conversation(&c);
    }
}

#[test]
fn rejected_syn_is_answered_by_rst_ack() {
    let c =
        Conversation::tcp(sa("10.20.1.5:50001"), sa("10.30.1.5:139"), t0()).close(Close::Rejected);
    let f = packets(&c);
    assert_eq!(f.len(), 2);
    let syn = parse(&f[0].1).tcp.unwrap();
    let rst = parse(&f[1].1).tcp.unwrap();
    assert!(syn.2 && !syn.3);
    assert!(rst.5 && rst.3);
    assert_eq!(rst.1, syn.0.wrapping_add(1));
    let e = c.expected();
    assert_eq!(
        (e.orig_pkts, e.resp_pkts, e.orig_bytes, e.resp_bytes),
        (1, 1, 0, 0)
    );
}

#[test]
fn unanswered_syn_is_retransmitted_with_backoff() {
    let c = Conversation::tcp(sa("10.20.1.5:50001"), sa("198.51.100.7:8443"), t0())
        .close(Close::NoAnswer)
        .syn_attempts(3);
    let f = packets(&c);
    assert_eq!(f.len(), 3);
    let seqs: Vec<u32> = f.iter().map(|(_, b)| parse(b).tcp.unwrap().0).collect();
    assert!(seqs.iter().all(|&s| s == seqs[0]));
    assert!(f[1].0.since(f[0].0) >= Duration::from_secs(1));
    assert!(f[2].0.since(f[1].0) >= Duration::from_secs(2));
    let e = c.expected();
    assert_eq!(
        (e.conn_state, e.history.as_str(), e.orig_pkts),
        ("S0", "S", 3)
    );
    assert_eq!(e.orig_ip_bytes, 3 * 44);
}

#[test]
fn udp_request_response_and_unanswered() {
    let c = Conversation::udp(sa("10.20.1.5:53124"), sa("10.40.0.53:53"), t0()).bytes(40, 120);
    let e = c.expected();
    assert_eq!((e.conn_state, e.history.as_str()), ("SF", "Dd"));
    assert_eq!(
        (e.orig_pkts, e.resp_pkts, e.orig_ip_bytes, e.resp_ip_bytes),
        (1, 1, 68, 148)
    );
    check_conversation(&c);
    let first = &packets(&c)[0].1;
    let p = SlicedPacket::from_ethernet(first).unwrap();
    let Some(TransportSlice::Udp(u)) = p.transport else {
        panic!("not udp")
    };
    // DNS-like: a query header with one question.
    assert_eq!(&u.payload()[2..6], &[0x01, 0x00, 0x00, 0x01]);

    let c = c.bytes(40, 0).rounds(3);
    let e = c.expected();
    assert_eq!(
        (e.conn_state, e.history.as_str(), e.orig_pkts, e.resp_pkts),
        ("S0", "D", 3, 0)
    );
    check_conversation(&c);
}

#[test]
fn icmp_echo_mirrors_payload() {
    let c = Conversation::icmp_echo(
        "10.10.2.20".parse().unwrap(),
        "10.20.0.1".parse().unwrap(),
        0x4242,
        t0(),
    )
    .bytes(112, 112)
    .rounds(2);
    let e = c.expected();
    assert_eq!((e.conn_state, e.history.as_str()), ("OTH", ""));
    assert_eq!(
        (e.orig_pkts, e.orig_bytes, e.orig_ip_bytes),
        (2, 112, 2 * 84)
    );
    assert_eq!((e.resp_pkts, e.resp_bytes), (2, 112));
    check_conversation(&c);
}

#[test]
fn ipv6_and_vlan_frames_parse() {
    let c = Conversation::tcp(
        sa("[2001:db8:a::10]:51000"),
        sa("[2001:db8:ffff::5]:443"),
        t0(),
    )
    .bytes(2000, 9000)
    .vlan(30);
    check_conversation(&c);
    let e = c.expected();
    // SYN carries a 4-byte MSS option: 40 + 24.
    assert_eq!(packets(&c).len() as u64, e.orig_pkts + e.resp_pkts);
    let ping = Conversation::icmp_echo(
        "2001:db8:a::10".parse().unwrap(),
        "2001:db8:ffff::5".parse().unwrap(),
        7,
        t0(),
    )
    .vlan(30);
    check_conversation(&ping);
}

#[test]
fn generation_is_deterministic() {
    let a: Vec<_> = TrafficMix::realistic(7, 300).frames().collect();
    let b: Vec<_> = TrafficMix::realistic(7, 300).frames().collect();
    assert_eq!(a, b);
    let c: Vec<_> = TrafficMix::realistic(8, 300).frames().collect();
    assert_ne!(a, c);
}

type Key = (SocketAddr, SocketAddr, Option<u16>);

fn key_of(c: &Conversation) -> Key {
    (c.client, c.server, c.vlan)
}

#[test]
fn realistic_mix_is_ordered_and_matches_ground_truth() {
    let mut mix = TrafficMix::realistic(42, 3000);
    let convs = mix.conversations().to_vec();
    let mut truth: HashMap<Key, Expected> = HashMap::new();
    for c in &convs {
        let prev = truth.insert(key_of(c), c.expected());
        assert!(prev.is_none(), "5-tuples must be unique");
        if c.protocol == Protocol::Tcp {
            check_conversation(c);
        }
    }
    // (pkts, payload) each way, keyed by the conversation it belongs to.
    let mut seen: HashMap<Key, [u64; 4]> = HashMap::new();
    let pings: HashMap<(IpAddr, IpAddr), Key> = convs
        .iter()
        .filter(|c| c.protocol == Protocol::IcmpEcho)
        .map(|c| ((c.client.ip(), c.server.ip()), key_of(c)))
        .collect();
    let mut prev = Timestamp(i64::MIN);
    let mut n = 0u64;
    for (ts, f) in mix.frames() {
        assert!(ts >= prev);
        prev = ts;
        n += 1;
        let p = parse(&f);
        let icmp = p.proto == 1 || p.proto == 58;
        let (key, orig) = if let Some(k) = pings.get(&(p.src.ip(), p.dst.ip())).filter(|_| icmp) {
            (*k, true)
        } else if icmp {
            (pings[&(p.dst.ip(), p.src.ip())], false)
        } else if truth.contains_key(&(p.src, p.dst, p.vlan)) {
            ((p.src, p.dst, p.vlan), true)
        } else {
            ((p.dst, p.src, p.vlan), false)
        };
        let e = seen.entry(key).or_default();
        let i = if orig { 0 } else { 2 };
        e[i] += 1;
        e[i + 1] += p.payload as u64;
    }
    let total: u64 = truth.values().map(|e| e.orig_pkts + e.resp_pkts).sum();
    assert_eq!(n, total);
    for c in &convs {
        if c.protocol == Protocol::IcmpEcho {
            // Several pings can share an address pair; covered above by totals.
            continue;
        }
        let e = &truth[&key_of(c)];
        let s = seen.get(&key_of(c)).copied().unwrap_or_default();
        assert_eq!(
            s,
            [e.orig_pkts, e.orig_bytes, e.resp_pkts, e.resp_bytes],
            "{c:?}"
        );
    }
    // The mix has the promised variety.
    let states: std::collections::HashSet<&str> = truth.values().map(|e| e.conn_state).collect();
    for s in ["SF", "S0", "REJ", "RSTO", "RSTR", "OTH"] {
        assert!(states.contains(s), "no {s} in the mix");
    }
    assert!(convs.iter().any(|c| c.vlan.is_some()));
    assert!(convs.iter().any(|c| c.is_ipv6()));
}

#[test]
fn lazy_interleave_holds_only_live_flows() {
    let cfg = MixConfig {
        arrival_window: Duration::from_secs(600),
        ..MixConfig::new(3, 20_000)
    };
    let mut it = Interleave::new(RealisticFlows::new(cfg));
    let mut buf = Vec::new();
    let mut max_live = 0;
    let mut n = 0u64;
    while it.next_into(&mut buf).is_some() {
        max_live = max_live.max(it.live());
        n += 1;
    }
    assert_eq!(it.conversations_started(), 20_000);
    assert!(n > 20_000);
    // Arrivals spread over 10 minutes: far fewer than all flows are live at once.
    assert!(max_live < 5_000, "max live {max_live}");
}
