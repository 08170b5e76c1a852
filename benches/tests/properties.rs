//! Properties of flowlib checked over arbitrary and generated input: the flow
//! key is symmetric, decoding never panics on any bytes of any link type,
//! every packet is counted exactly once, and records are deterministic and
//! independent of how often the clock is advanced between packets.
//!
//! These live in flowbench (not flowlib) so they can use its traffic
//! generator; flowbench depends on flowlib, not the other way round.

use std::net::IpAddr;
use std::time::Duration;

use flowbench::{MixConfig, RealisticFlows, SplitMix64, TrafficMix};
use flowlib::decode::{FlowPacket, Transport};
use flowlib::key::Endpoint;
use flowlib::{
    ConnRecord, FlowKey, FlowMeter, LinkType, PacketView, TableConfig, Timestamp, Weird,
};
use proptest::prelude::*;

/// Every link type `PacketView::parse` claims to understand.
const LINK_TYPES: [LinkType; 9] = [
    LinkType::ETHERNET,
    LinkType::LINUX_SLL,
    LinkType::LINUX_SLL2,
    LinkType::NULL,
    LinkType::LOOP,
    LinkType::PPP,
    LinkType::RAW,
    LinkType::IPV4,
    LinkType::IPV6,
];

fn ts0() -> Timestamp {
    Timestamp::from_micros(1_772_438_400, 0)
}

/// A table config without interim records, so that every packet is counted
/// in exactly one record.
fn no_interim() -> TableConfig {
    TableConfig {
        active_timeout: None,
        ..TableConfig::default()
    }
}

/// The frames of `flows` realistic conversations, in capture order.
fn realistic_frames(seed: u64, flows: usize) -> Vec<(Timestamp, Vec<u8>)> {
    TrafficMix::realistic(seed, flows).frames().collect()
}

/// The IP packet inside a generated Ethernet frame (untagged or one 802.1Q tag).
fn ip_packet(frame: &[u8]) -> &[u8] {
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    if ethertype == 0x8100 {
        &frame[18..]
    } else {
        &frame[14..]
    }
}

/// Re-frames a generated Ethernet frame for another link type, keeping its IP packet.
fn reframe(frame: &[u8], link: LinkType) -> Vec<u8> {
    let ip = ip_packet(frame);
    let v6 = ip[0] >> 4 == 6;
    let ethertype: u16 = if v6 { 0x86dd } else { 0x0800 };
    let mut out = Vec::with_capacity(ip.len() + 20);
    match link {
        LinkType::ETHERNET => return frame.to_vec(),
        LinkType::RAW | LinkType::IPV4 | LinkType::IPV6 => {}
        LinkType::NULL => {
            // Host byte order of a little-endian BSD box: AF_INET 2, AF_INET6 30.
            out.extend_from_slice(&(if v6 { 30u32 } else { 2 }).to_le_bytes());
        }
        LinkType::LOOP => out.extend_from_slice(&(if v6 { 24u32 } else { 2 }).to_be_bytes()),
        LinkType::PPP => {
            out.extend_from_slice(&[0xff, 0x03]);
            out.extend_from_slice(&(if v6 { 0x0057u16 } else { 0x0021 }).to_be_bytes());
        }
        LinkType::LINUX_SLL => {
            // Packet type "to us", ARPHRD_ETHER, 6-byte address, padding, protocol.
            out.extend_from_slice(&[0, 0, 0, 1, 0, 6]);
            out.extend_from_slice(&frame[6..12]);
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&ethertype.to_be_bytes());
        }
        LinkType::LINUX_SLL2 => {
            out.extend_from_slice(&ethertype.to_be_bytes());
            out.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 1, 0, 6]);
            out.extend_from_slice(&frame[6..12]);
            out.extend_from_slice(&[0, 0]);
        }
        other => panic!("no framing for {other}"),
    }
    out.extend_from_slice(ip);
    out
}

/// An Ethernet ARP request (who-has 10.1.1.1 tell 10.1.1.2).
fn arp_frame() -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x08, 0x06]);
    f.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 10, 1, 1, 2]);
    f.extend_from_slice(&[0, 0, 0, 0, 0, 0, 10, 1, 1, 1]);
    f.resize(60, 0);
    f
}

fn arb_addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u8; 16]>().prop_map(IpAddr::from),
        // Few distinct values, so equal addresses (ties on the port) come up.
        (0u8..3).prop_map(|b| IpAddr::from([10, 0, 0, b])),
    ]
}

fn arb_endpoint() -> impl Strategy<Value = Endpoint> {
    (arb_addr(), prop_oneof![any::<u16>(), 0u16..3])
        .prop_map(|(addr, port)| Endpoint { addr, port })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Both directions of a packet give the same key and the same shard hash;
    /// exactly one of them is the `lo` side unless the endpoints are equal.
    #[test]
    fn flow_key_is_symmetric_in_its_endpoints(
        a in arb_endpoint(),
        b_or_a in prop_oneof![arb_endpoint().prop_map(Some), Just(None)],
        proto in any::<u8>(),
        vlan in proptest::option::of(0u16..4096),
        inner_vlan in proptest::option::of(0u16..4096),
    ) {
        let b = b_or_a.unwrap_or(a);
        let (ab, a_is_lo) = FlowKey::new(a, b, proto, vlan, inner_vlan);
        let (ba, b_is_lo) = FlowKey::new(b, a, proto, vlan, inner_vlan);
        prop_assert_eq!(ab, ba);
        prop_assert_eq!(ab.symmetric_hash(), ba.symmetric_hash());
        if a == b {
            prop_assert!(a_is_lo && b_is_lo);
        } else {
            prop_assert_ne!(a_is_lo, b_is_lo);
        }
        prop_assert!(ab.lo <= ab.hi);
        prop_assert_eq!(if a_is_lo { ab.lo } else { ab.hi }, a);
        prop_assert_eq!((ab.proto, ab.vlan, ab.inner_vlan), (proto, vlan, inner_vlan));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// `PacketView::parse` returns (never panics) on arbitrary bytes of every
    /// supported link type, with any wire length, and so does `FlowMeter::process`.
    #[test]
    fn decoding_arbitrary_bytes_never_panics(
        data in proptest::collection::vec(any::<u8>(), 0..2000),
        wire_extra in prop_oneof![Just(0u32), any::<u32>()],
    ) {
        let wire_len = (data.len() as u32).saturating_add(wire_extra);
        let mut meter = FlowMeter::new(TableConfig::default()).unwrap();
        let mut out = Vec::new();
        for link in LINK_TYPES {
            if let Ok(view) = PacketView::parse(&data, link, ts0(), wire_len) {
                // Walking the view is part of the contract too.
                for p in view.flow_packets() {
                    let _ = (p.transport.ports(), p.transport.payload_len());
                }
            }
            meter.process(&data, link, ts0(), wire_len, &mut out);
        }
        meter.finish(&mut out);
        let s = meter.stats();
        prop_assert_eq!(s.packets, LINK_TYPES.len() as u64);
        prop_assert_eq!(s.packets, s.decoded + s.weirds.total());
    }

    /// Same, from a generated well-formed packet of each link type with
    /// arbitrary bytes overwritten and an arbitrary cut: this reaches deep
    /// into IP, transport and tunnel headers, which random bytes rarely do.
    #[test]
    fn decoding_mutated_real_packets_never_panics(
        seed in any::<u64>(),
        edits in proptest::collection::vec((any::<u16>(), any::<u8>()), 0..8),
        cut in any::<u16>(),
        link_index in 0..LINK_TYPES.len(),
    ) {
        let conv = RealisticFlows::new(MixConfig::new(seed, 1)).next().unwrap();
        let link = LINK_TYPES[link_index];
        let mut meter = FlowMeter::new(TableConfig::default()).unwrap();
        let mut out = Vec::new();
        for (ts, frame) in conv.frames().take(6) {
            let mut data = reframe(&frame, link);
            for &(at, byte) in &edits {
                let at = usize::from(at) % data.len();
                data[at] = byte;
            }
            let wire_len = data.len() as u32;
            data.truncate(usize::from(cut) % (data.len() + 1));
            let _ = PacketView::parse(&data, link, ts, wire_len);
            meter.process(&data, link, ts, wire_len, &mut out);
            meter.process(&data, link, ts, data.len() as u32, &mut out);
        }
        meter.finish(&mut out);
        let s = meter.stats();
        prop_assert_eq!(s.packets, s.decoded + s.weirds.total());
    }
}

/// The flow-relevant content of a decoded packet, without the link layer.
fn flow_content(p: &FlowPacket<'_>) -> String {
    let transport = match p.transport {
        Transport::Tcp(t) => format!(
            "tcp {}>{} seq {} ack {} flags {:#x} len {}",
            t.src_port, t.dst_port, t.seq, t.ack, t.flags.0, t.payload_len
        ),
        other => format!("{other:?}"),
    };
    format!("{:?} {transport}", p.ip)
}

/// The same IP packet framed for every link type decodes to the same flow packet.
#[test]
fn every_link_type_decodes_the_same_ip_packet() {
    for (ts, frame) in realistic_frames(3, 40) {
        let eth = PacketView::parse(&frame, LinkType::ETHERNET, ts, frame.len() as u32)
            .expect("generated frames decode");
        let want = flow_content(&eth.inner);
        let v6 = matches!(eth.inner.ip.src, IpAddr::V6(_));
        for link in LINK_TYPES {
            if (link == LinkType::IPV4 && v6) || (link == LinkType::IPV6 && !v6) {
                continue;
            }
            let data = reframe(&frame, link);
            let view = PacketView::parse(&data, link, ts, data.len() as u32)
                .unwrap_or_else(|e| panic!("{link}: {e}"));
            assert_eq!(flow_content(&view.inner), want, "{link}");
            assert!(!view.truncated, "{link}");
        }
    }
}

/// What happened to the frames fed to a meter, counted independently of it.
#[derive(Debug, Default)]
struct Tally {
    /// Flow updates: one per flow-bearing packet of each decoded frame.
    updates: u64,
}

/// Feeds `frames` to `meter` one at a time, counting flow updates from the
/// meter's per-packet outcome and an independent parse of each frame.
fn feed(
    meter: &mut FlowMeter,
    frames: &[(Timestamp, Vec<u8>, u32)],
    out: &mut Vec<ConnRecord>,
) -> Tally {
    let mut tally = Tally::default();
    for (ts, data, wire_len) in frames {
        let before = meter.stats().clone();
        meter.process(data, LinkType::ETHERNET, *ts, *wire_len, out);
        let after = meter.stats();
        assert_eq!(after.packets, before.packets + 1);
        let decoded = after.decoded - before.decoded;
        let weird = after.weirds.total() - before.weirds.total();
        // A non-first fragment may wait for its first fragment (counted
        // then, with it, or as unattributed when its train ends): the
        // packets waiting are part of the count.
        let waiting = after.fragments.waiting as i64 - before.fragments.waiting as i64;
        assert_eq!(
            (decoded + weird) as i64 + waiting,
            1,
            "each packet counted exactly once"
        );
        let unattributed = after.weirds.get(Weird::UnattributedFragment)
            - before.weirds.get(Weird::UnattributedFragment);
        let no_next =
            after.weirds.get(Weird::NoNextHeader) - before.weirds.get(Weird::NoNextHeader);
        if let Ok(view) = PacketView::parse(data, LinkType::ETHERNET, *ts, *wire_len) {
            // Flow updates that add a packet to a record: a non-first
            // fragment adds its bytes to its datagram's packet (Zeek counts
            // a fragmented datagram once), and an IPv6 packet with no next
            // header makes no connection.
            let whole = view
                .flow_packets()
                .filter(|p| {
                    !matches!(p.transport, Transport::NonFirstFragment { .. }) && p.ip.proto != 59
                })
                .count() as u64;
            if decoded == 0 {
                // Only an unattributed fragment or an empty IPv6 packet is a
                // decodable weird, or a fragment waiting for its first;
                // whole packets around it still count.
                let waits = matches!(view.inner.transport, Transport::NonFirstFragment { .. });
                assert!(
                    unattributed + no_next >= 1 || waits,
                    "decodable packet counted as {:?}",
                    after.weirds
                );
            }
            tally.updates += whole;
        } else {
            assert_eq!(decoded, 0, "undecodable packet counted as decoded");
        }
    }
    tally
}

fn pkts_in(records: &[ConnRecord]) -> u64 {
    records.iter().map(|r| r.orig_pkts + r.resp_pkts).sum()
}

/// Untouched generated traffic: every frame decodes and becomes exactly one
/// packet of exactly one record.
#[test]
fn every_generated_packet_lands_in_exactly_one_record() {
    let frames: Vec<_> = realistic_frames(5, 1500)
        .into_iter()
        .map(|(ts, f)| {
            let len = f.len() as u32;
            (ts, f, len)
        })
        .collect();
    let mut meter = FlowMeter::new(no_interim()).unwrap();
    let mut out = Vec::new();
    let tally = feed(&mut meter, &frames, &mut out);
    meter.finish(&mut out);
    let s = meter.stats();
    assert_eq!(s.packets, frames.len() as u64);
    assert_eq!(s.decoded, s.packets, "weirds: {:?}", s.weirds);
    assert_eq!(
        tally.updates, s.decoded,
        "no tunnels: one update per packet"
    );
    assert_eq!(pkts_in(&out), s.decoded);
    assert_eq!(meter.table_stats().created, out.len() as u64);
}

/// Corrupts generated traffic: snaplen cuts (wire length kept), malformed
/// cuts (wire length = captured length), bit flips, and ARP frames between.
fn corrupted_traffic(seed: u64, flows: usize) -> Vec<(Timestamp, Vec<u8>, u32)> {
    let mut rng = SplitMix64::new(seed);
    let mut out = Vec::new();
    for (ts, mut f) in realistic_frames(seed, flows) {
        let mut wire_len = f.len() as u32;
        if rng.permille(30) {
            out.push((ts, arp_frame(), 60));
        }
        match rng.below(100) {
            0..=5 => {
                let cut = rng.below(f.len() as u64 + 1) as usize;
                f.truncate(cut);
            }
            6..=11 => {
                let cut = rng.below(f.len() as u64 + 1) as usize;
                f.truncate(cut);
                wire_len = cut as u32;
            }
            12..=19 => {
                for _ in 0..rng.range(1, 3) {
                    let bit = rng.below(f.len() as u64 * 8) as usize;
                    f[bit / 8] ^= 1 << (bit % 8);
                }
            }
            _ => {}
        }
        out.push((ts, f, wire_len));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// With truncated, bit-flipped and non-IP frames mixed in, every packet is
    /// either decoded or counted under one weird reason, and the records hold
    /// exactly one packet per flow update (a UDP tunnel packet updates two flows).
    #[test]
    fn corrupted_traffic_counts_every_packet_exactly_once(seed in any::<u64>()) {
        let frames = corrupted_traffic(seed, 200);
        let mut meter = FlowMeter::new(no_interim()).unwrap();
        let mut out = Vec::new();
        let tally = feed(&mut meter, &frames, &mut out);
        meter.finish(&mut out);
        let s = meter.stats();
        prop_assert_eq!(s.packets, frames.len() as u64);
        prop_assert_eq!(s.packets, s.decoded + s.weirds.total());
        prop_assert!(s.weirds.get(Weird::NonIpFrame) > 0);
        prop_assert_eq!(pkts_in(&out), tally.updates);
    }
}

fn json_lines(records: &[ConnRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| serde_json::to_string(r).expect("records serialise"))
        .collect()
}

/// Runs `frames` through a fresh meter; `advance_every` > 0 also advances
/// the clock to a point between consecutive packets every that many packets.
fn run(
    frames: &[(Timestamp, Vec<u8>)],
    cfg: &TableConfig,
    advance_every: usize,
    seed: u64,
) -> Vec<String> {
    let mut meter = FlowMeter::new(cfg.clone()).unwrap();
    let mut rng = SplitMix64::new(seed);
    let mut out = Vec::new();
    for (i, (ts, f)) in frames.iter().enumerate() {
        meter.process(f, LinkType::ETHERNET, *ts, f.len() as u32, &mut out);
        if advance_every > 0 && i % advance_every == 0 {
            if let Some((next, _)) = frames.get(i + 1) {
                let gap = next.0 - ts.0;
                let at = Timestamp(ts.0 + rng.below(gap as u64 + 1) as i64);
                meter.advance(at, &mut out);
            }
        }
    }
    meter.finish(&mut out);
    json_lines(&out)
}

/// Configs that exercise idle timeouts and interim records inside a short capture.
fn timing_configs() -> Vec<TableConfig> {
    vec![
        TableConfig::default(),
        TableConfig {
            active_timeout: Some(Duration::from_secs(7)),
            udp_idle: Duration::from_secs(3),
            icmp_idle: Duration::from_secs(2),
            tcp_idle: Duration::from_secs(20),
            ..TableConfig::default()
        },
    ]
}

/// The same input gives byte-identical records, in the same order.
#[test]
fn same_traffic_gives_identical_records() {
    let frames = realistic_frames(9, 1500);
    for cfg in timing_configs() {
        let a = run(&frames, &cfg, 0, 0);
        let b = run(&frames, &cfg, 0, 0);
        assert!(!a.is_empty());
        assert_eq!(a, b);
    }
}

/// Records do not depend on how often capture time is advanced between
/// packets (a live capture that goes idle calls `advance`; a replay does not).
#[test]
fn advancing_the_clock_between_packets_does_not_change_records() {
    // Slow flows so idle timeouts and interim records fire between packets.
    let cfg = MixConfig {
        spacing_percent: 1_000,
        ..MixConfig::new(21, 1200)
    };
    let frames: Vec<_> = flowbench::Interleave::new(RealisticFlows::new(cfg)).collect();
    for tc in timing_configs() {
        let mut plain = run(&frames, &tc, 0, 0);
        // Every kind of ending happens in this capture, so timers are exercised.
        let short = tc.active_timeout == Some(Duration::from_secs(7));
        let reasons: &[&str] = if short {
            &["idle", "fin", "rst", "active"]
        } else {
            &["idle", "fin", "rst", "eof"]
        };
        for reason in reasons {
            let tag = format!("\"end_reason\":\"{reason}\"");
            assert!(plain.iter().any(|r| r.contains(&tag)), "no {reason} record");
        }
        plain.sort();
        for (every, seed) in [(1, 1), (7, 2), (101, 3)] {
            let mut advanced = run(&frames, &tc, every, seed);
            advanced.sort();
            assert_eq!(
                plain.len(),
                advanced.len(),
                "advance every {every} packets, {tc:?}"
            );
            for (p, a) in plain.iter().zip(&advanced) {
                assert_eq!(p, a, "advance every {every} packets, {tc:?}");
            }
        }
    }
}
