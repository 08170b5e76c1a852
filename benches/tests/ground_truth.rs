//! Ground truth: flowlib's records for generated conversations equal what
//! Zeek's conn.log says about them (flowbench's [`Expected`]), field by field,
//! for every TCP close style, UDP and ICMP echo, over IPv4 and IPv6, with
//! and without a VLAN tag, all interleaved in one capture.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use flowbench::{Close, Conversation, Expected, Protocol, SplitMix64, TrafficMix, DEFAULT_START};
use flowlib::{ConnRecord, FlowMeter, LinkType, Proto, TableConfig, Timestamp};

/// A distinct client address per conversation, so records map back to
/// conversations by address pair (ICMP keys carry no echo identifier).
fn client(i: u32, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0x10,
            0,
            0,
            0,
            (i >> 16) as u16,
            i as u16,
        ))
    } else {
        IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 64, 0, 0)) + i))
    }
}

fn server(i: u32, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0xffff,
            0,
            0,
            0,
            0,
            1 + (i % 200) as u16,
        ))
    } else {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1 + (i % 200) as u8))
    }
}

const CLOSES: [Close; 6] = [
    Close::Fin,
    Close::RstByClient,
    Close::RstByServer,
    Close::Rejected,
    Close::NoAnswer,
    Close::Open,
];

/// A few hundred conversations: every close style, UDP answered and not,
/// ICMP echo answered and not, each over IPv4 and IPv6, untagged and on a
/// VLAN, with varied sizes, rounds and timing, starting within 20 s.
fn conversations() -> Vec<Conversation> {
    let mut rng = SplitMix64::new(0x9e0d);
    let mut convs = Vec::new();
    let mut i = 0u32;
    for rep in 0..10 {
        for v6 in [false, true] {
            for vlan in [None, Some(100 + rep as u16)] {
                let mut next = |rng: &mut SplitMix64| {
                    i += 1;
                    let start = Timestamp(DEFAULT_START.0 + rng.below(20_000_000) as i64 * 1_000);
                    let port = 32_768 + (i % 28_000) as u16;
                    (
                        SocketAddr::new(client(i, v6), port),
                        server(i, v6),
                        start,
                        Duration::from_micros(rng.range(200, 50_000)),
                    )
                };
                for close in CLOSES {
                    let (c, s, start, spacing) = next(&mut rng);
                    let port = [443u16, 80, 22, 445][rng.below(4) as usize];
                    let rounds = rng.range(1, 4) as u32;
                    let mut conv = Conversation::tcp(c, SocketAddr::new(s, port), start)
                        .bytes(rng.range(0, 6_000), rng.range(0, 60_000))
                        .rounds(rounds)
                        .spacing(spacing)
                        .close(close)
                        .syn_attempts(rng.range(1, 3) as u8);
                    if rng.permille(300) {
                        conv = conv.mss(536);
                    }
                    if let Some(id) = vlan {
                        conv = conv.vlan(id);
                    }
                    convs.push(conv);
                }
                for answered in [true, false] {
                    let (c, s, start, spacing) = next(&mut rng);
                    let rounds = rng.range(1, 3) as u32;
                    // At least one byte per datagram: Zeek counts an empty
                    // datagram in history too, the generator does not.
                    let resp = if answered {
                        rng.range(u64::from(rounds), 1_400)
                    } else {
                        0
                    };
                    let port = [53u16, 123, 161][rng.below(3) as usize];
                    let mut conv = Conversation::udp(c, SocketAddr::new(s, port), start)
                        .bytes(rng.range(u64::from(rounds), 600), resp)
                        .rounds(rounds)
                        .spacing(spacing);
                    if let Some(id) = vlan {
                        conv = conv.vlan(id);
                    }
                    convs.push(conv);
                }
                for answered in [true, false] {
                    let (c, s, start, spacing) = next(&mut rng);
                    let rounds = rng.range(1, 4) as u32;
                    let per_ping = rng.range(0, 1_000);
                    let mut conv = Conversation::icmp_echo(c.ip(), s, c.port(), start)
                        .bytes(per_ping * u64::from(rounds), if answered { 1 } else { 0 })
                        .rounds(rounds)
                        .spacing(spacing);
                    if let Some(id) = vlan {
                        conv = conv.vlan(id);
                    }
                    convs.push(conv);
                }
            }
        }
    }
    convs
}

/// The record fields the generator predicts, from a record.
fn observed(r: &ConnRecord) -> Vec<(&'static str, String)> {
    vec![
        ("conn_state", r.conn_state.name().to_owned()),
        ("history", r.history.clone()),
        ("orig_pkts", r.orig_pkts.to_string()),
        ("resp_pkts", r.resp_pkts.to_string()),
        ("orig_ip_bytes", r.orig_ip_bytes.to_string()),
        ("resp_ip_bytes", r.resp_ip_bytes.to_string()),
        ("orig_bytes", format!("{:?}", r.orig_bytes)),
        ("resp_bytes", format!("{:?}", r.resp_bytes)),
        ("ts", r.ts.to_string()),
        ("duration", format!("{:?}", r.duration)),
        ("vlan", format!("{:?}", r.vlan)),
        ("ports", format!("{} -> {}", r.orig_p, r.resp_p)),
    ]
}

/// Zeek's duration: last packet minus first, except that once both sides
/// of a TCP connection have sent a FIN the clock stops (`last_time` is only
/// updated while not both endpoints `did_close`), so the final ACK of a FIN
/// close does not count. flowbench's `Expected::duration` includes it.
fn zeek_duration(c: &Conversation, e: &Expected) -> Duration {
    if c.protocol == Protocol::Tcp && c.close == Close::Fin {
        let frames = flowbench::packets(c);
        let second_fin = frames[frames.len() - 2].0;
        second_fin.since(e.first_ts)
    } else {
        e.duration()
    }
}

/// The same fields as the generator predicts them (Zeek leaves `duration`
/// and the payload byte counts unset for a single-instant connection).
fn predicted(c: &Conversation, e: &Expected) -> Vec<(&'static str, String)> {
    let duration = zeek_duration(c, e);
    let has_duration = duration > Duration::ZERO;
    let ports = match (c.protocol, c.is_ipv6()) {
        (Protocol::IcmpEcho, false) => "8 -> 0".to_owned(),
        (Protocol::IcmpEcho, true) => "128 -> 129".to_owned(),
        _ => format!("{} -> {}", c.client.port(), c.server.port()),
    };
    vec![
        ("conn_state", e.conn_state.to_owned()),
        ("history", e.history.clone()),
        ("orig_pkts", e.orig_pkts.to_string()),
        ("resp_pkts", e.resp_pkts.to_string()),
        ("orig_ip_bytes", e.orig_ip_bytes.to_string()),
        ("resp_ip_bytes", e.resp_ip_bytes.to_string()),
        (
            "orig_bytes",
            format!("{:?}", has_duration.then_some(e.orig_bytes)),
        ),
        (
            "resp_bytes",
            format!("{:?}", has_duration.then_some(e.resp_bytes)),
        ),
        ("ts", e.first_ts.to_string()),
        (
            "duration",
            format!("{:?}", has_duration.then_some(duration)),
        ),
        ("vlan", format!("{:?}", c.vlan)),
        ("ports", ports),
    ]
}

fn proto_of(c: &Conversation) -> Proto {
    match c.protocol {
        Protocol::Tcp => Proto::Tcp,
        Protocol::Udp => Proto::Udp,
        Protocol::IcmpEcho => Proto::Icmp,
    }
}

/// Every conversation yields exactly one record, from its client to its
/// server, whose state, history, packet, IP byte and payload byte counts,
/// start and duration are the Zeek ground truth.
#[test]
fn records_of_generated_conversations_match_zeek_ground_truth() {
    let convs = conversations();
    assert!(convs.len() >= 300, "{} conversations", convs.len());
    let mut mix: TrafficMix = convs.iter().cloned().collect();
    let mut meter = FlowMeter::new(TableConfig::default()).unwrap();
    let mut records = Vec::new();
    let mut frames = 0u64;
    for (ts, f) in mix.frames() {
        meter.process(&f, LinkType::ETHERNET, ts, f.len() as u32, &mut records);
        frames += 1;
    }
    meter.finish(&mut records);
    assert_eq!(
        meter.stats().decoded,
        frames,
        "weirds: {:?}",
        meter.stats().weirds
    );

    let by_hosts: HashMap<(IpAddr, IpAddr), &Conversation> = convs
        .iter()
        .map(|c| ((c.client.ip(), c.server.ip()), c))
        .collect();
    assert_eq!(by_hosts.len(), convs.len(), "address pairs are unique");
    let mut seen: HashMap<(IpAddr, IpAddr), usize> = HashMap::new();
    let mut mismatches = Vec::new();
    for r in &records {
        let Some(c) = by_hosts.get(&(r.orig_h, r.resp_h)) else {
            mismatches.push(format!(
                "record {} -> {} ({} {}) matches no conversation from its originator",
                r.orig_h, r.resp_h, r.proto, r.history
            ));
            continue;
        };
        *seen.entry((r.orig_h, r.resp_h)).or_default() += 1;
        assert_eq!(r.proto, proto_of(c));
        let e = c.expected();
        let got = observed(r);
        let want = predicted(c, &e);
        let diffs: Vec<String> = got
            .iter()
            .zip(&want)
            .filter(|(g, w)| g.1 != w.1)
            .map(|(g, w)| format!("{}: flowlib {} / zeek {}", g.0, g.1, w.1))
            .collect();
        if !diffs.is_empty() {
            mismatches.push(format!(
                "{:?} {:?} {} -> {} vlan {:?} ({} B / {} B, {} rounds): {}",
                c.protocol,
                c.close,
                c.client,
                c.server,
                c.vlan,
                c.client_bytes,
                c.server_bytes,
                c.rounds,
                diffs.join("; ")
            ));
        }
    }
    for c in &convs {
        let n = seen
            .get(&(c.client.ip(), c.server.ip()))
            .copied()
            .unwrap_or(0);
        if n != 1 {
            mismatches.push(format!(
                "{:?} {:?} {} -> {}: {n} records, want 1",
                c.protocol, c.close, c.client, c.server
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} conversations differ from the ground truth:\n{}",
        mismatches.len(),
        convs.len(),
        mismatches.join("\n")
    );
}
