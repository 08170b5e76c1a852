//! What each fuzz target does with its input, and the invariants it checks.
//!
//! The targets in `fuzz_targets/` are one line each; the work is here so
//! that `tests/fuzz_regressions.rs` (ordinary `cargo test`) replays every
//! committed crash input through exactly the same code. A panic or a failed
//! assertion here is a crash.

use flowlib::decode::PacketView;
use flowlib::pcap_reader::PcapReader;
use flowlib::pcapng::PcapNgReader;
use flowlib::{ConnRecord, EndReason, FlowMeter, FlowTable, LinkType, TableConfig, Timestamp};
use std::io::Cursor;
use std::time::Duration;

/// The link types the decoder supports, chosen by the first input byte.
pub const LINK_TYPES: [LinkType; 9] = [
    LinkType::NULL,
    LinkType::ETHERNET,
    LinkType::PPP,
    LinkType::RAW,
    LinkType::LOOP,
    LinkType::LINUX_SLL,
    LinkType::IPV4,
    LinkType::IPV6,
    LinkType::LINUX_SLL2,
];

/// Decoder target. Input: one byte choosing the link type (index into
/// [`LINK_TYPES`], modulo), one byte of extra wire length (a snaplen cut
/// when non-zero), then the captured bytes.
///
/// Checks: a decoded packet is flagged truncated exactly when the wire was
/// longer, exposes only captured bytes, and has a key; an error's offset
/// lies within the capture; the meter counts the packet exactly once, under
/// the decoder's weird if it failed.
pub fn decode(data: &[u8]) {
    let [link, extra, packet @ ..] = data else {
        return;
    };
    let link = LINK_TYPES[usize::from(*link) % LINK_TYPES.len()];
    let cap = packet.len() as u32;
    let wire = cap + u32::from(*extra);
    let ts = Timestamp::from_micros(1_700_000_000, 0);
    let result = PacketView::parse(packet, link, ts, wire);
    match &result {
        Ok(v) => {
            assert_eq!(v.cap_len, cap);
            assert_eq!(v.wire_len, wire);
            assert_eq!(v.truncated, wire > cap);
            for p in v.flow_packets() {
                let (key, _) = FlowTable::key_of(p);
                let _ = flowlib::key::community_id(key.lo, key.hi, key.proto, false);
                if let flowlib::decode::Transport::Tcp(t) = p.transport {
                    assert!(t.payload.len() <= packet.len());
                }
            }
        }
        Err(e) => {
            assert!(
                e.offset <= packet.len(),
                "{e} beyond {} bytes",
                packet.len()
            );
        }
    }
    let mut meter = FlowMeter::new(TableConfig::default()).unwrap();
    let mut out = Vec::new();
    meter.process(packet, link, ts, wire, &mut out);
    meter.finish(&mut out);
    let s = meter.stats();
    assert_eq!(s.packets, 1);
    assert_eq!(s.decoded + s.weirds.total(), 1);
    if let Err(e) = result {
        assert_eq!(s.weirds.get(e.weird), 1);
    }
    check_records(&out, ts, ts);
}

/// Capture-file target. Input: one byte choosing the reader (even: classic
/// pcap, odd: pcapng), then the whole file.
///
/// Every packet read is metered; reading ends at the end of the file or
/// at a typed error. Checks: packet data never exceeds the reader's caps,
/// the meter counts every packet read once, every created flow ends with
/// one record.
pub fn capture_file(data: &[u8]) {
    let [which, file @ ..] = data else {
        return;
    };
    let mut meter = FlowMeter::new(TableConfig::default()).unwrap();
    let mut out = Vec::new();
    let mut packets = 0u64;
    if which % 2 == 0 {
        let Ok(mut r) = PcapReader::new(Cursor::new(file)) else {
            return;
        };
        let link = r.header().link;
        loop {
            match r.next_packet() {
                Ok(Some(p)) => {
                    assert!(p.data.len() <= flowlib::pcap_reader::MAX_CAPLEN as usize);
                    assert!(p.data.len() <= file.len());
                    meter.process(p.data, link, p.ts, p.wire_len, &mut out);
                    packets += 1;
                }
                Ok(None) => break,
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    break;
                }
            }
        }
    } else {
        let mut r = PcapNgReader::new(Cursor::new(file));
        loop {
            match r.next_packet() {
                Ok(Some(p)) => {
                    assert!(p.data.len() <= file.len());
                    meter.process(p.data, p.link, p.ts, p.wire_len, &mut out);
                    packets += 1;
                }
                Ok(None) => break,
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    break;
                }
            }
            assert!(r.packets() >= packets);
        }
    }
    meter.finish(&mut out);
    let s = meter.stats();
    assert_eq!(s.packets, packets);
    assert_eq!(s.decoded + s.weirds.total(), packets);
    let t = meter.table_stats();
    assert_eq!(t.created, final_records(&out));
}

/// Final records (not interim `active` nor `start` ones).
fn final_records(out: &[ConnRecord]) -> u64 {
    out.iter()
        .filter(|r| !matches!(r.end_reason, EndReason::Active | EndReason::Start))
        .count() as u64
}

/// Records lie within the packets' times and carry at least one packet.
fn check_records(out: &[ConnRecord], first: Timestamp, last: Timestamp) {
    for r in out {
        let end = r.ts.plus(r.duration.unwrap_or_default());
        assert!(
            first <= r.ts && end <= last,
            "record {} spans {}..{} outside {first}..{last}",
            r.uid,
            r.ts,
            end
        );
        if r.end_reason != EndReason::Start {
            assert!(
                r.orig_pkts + r.resp_pkts > 0,
                "record {} has no packet",
                r.uid
            );
        }
    }
}

/// Reads input bytes, yielding zeros once they run out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A raw IPv4 packet between two of 8 hosts, chosen by the input: TCP with
/// arbitrary flags, sequence numbers and payload, UDP, ICMP (echo or an
/// error), or another protocol; sometimes a fragment.
fn ops_packet(b: &mut Bytes<'_>) -> Vec<u8> {
    let sel = b.u8();
    let hosts = b.u8();
    let src = [10, 0, 0, hosts & 7];
    let dst = [10, 0, 0, (hosts >> 3) & 7];
    let sp: u16 = 1000 + u16::from(b.u8() & 3);
    let dp: u16 = [22, 53, 80, 3389][usize::from(sel >> 6)];
    let payload_len = usize::from(b.u8() & 0x3f);
    let (proto, l4) = match sel & 3 {
        0 => {
            let flags = b.u8();
            let seq = u32::from(b.u16()) << 8;
            let ack = u32::from(b.u16()) << 8;
            let mut t = Vec::new();
            t.extend(sp.to_be_bytes());
            t.extend(dp.to_be_bytes());
            t.extend(seq.to_be_bytes());
            t.extend(ack.to_be_bytes());
            t.extend([0x50, flags, 0x01, 0x00, 0, 0, 0, 0]);
            t.resize(20 + payload_len, 0x61);
            (6u8, t)
        }
        1 => {
            let mut u = Vec::new();
            u.extend(sp.to_be_bytes());
            u.extend(dp.to_be_bytes());
            u.extend(((8 + payload_len) as u16).to_be_bytes());
            u.extend([0, 0]);
            u.resize(8 + payload_len, 0x62);
            (17, u)
        }
        2 => {
            let t = [8, 0, 3, 11][usize::from(sel >> 2 & 3)];
            let mut m = vec![t, 0, 0, 0, 0, 1, 0, u8::from(sel & 0x10 != 0)];
            m.resize(8 + payload_len, 0x63);
            (1, m)
        }
        _ => (b.u8(), vec![0x64; payload_len]),
    };
    // Fragment field: mostly none, sometimes a first or later fragment.
    let frag: u16 = match b.u8() & 0x0f {
        0 => 0x2000,
        1 => 0x0008,
        _ => 0,
    };
    let total = (20 + l4.len()) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend(total.to_be_bytes());
    ip.extend([0, sel]);
    ip.extend(frag.to_be_bytes());
    ip.extend([64, proto, 0, 0]);
    ip.extend(src);
    ip.extend(dst);
    ip.extend(l4);
    ip
}

/// Table target. Input: two configuration bytes (flow cap 1-64, timeouts,
/// active timeout, start records, expiry budget, SYN flood emergency mode
/// on or off), then operations: a packet (after a time
/// step), a time advance (small, or a jump of up to ~18 hours), or a flush.
///
/// After every operation the table's own invariants must hold
/// ([`FlowTable::check_invariants`]: conservation, index, no negative
/// durations, every flow filed in the timer wheel, the exact half-open
/// count), and records lie within
/// the times seen; at the end, a flush leaves the table empty and the
/// final records add up to the flows created.
pub fn table_ops(data: &[u8]) {
    let mut b = Bytes(data);
    let c1 = b.u8();
    let c2 = b.u8();
    let cfg = TableConfig {
        max_flows: 1 + usize::from(c1 & 0x3f),
        tcp_idle: Duration::from_secs(1 + u64::from(c2 & 0x0f) * 20),
        udp_idle: Duration::from_secs(1 + u64::from(c2 >> 4) * 4),
        active_timeout: (c1 & 0x40 != 0).then(|| Duration::from_secs(30)),
        report_starts: c1 & 0x80 != 0,
        // Starts kept compact, taken after every operation below.
        compact_starts: (c1 ^ c2) & 0x01 != 0,
        // 0 (every due timer), or a budget of 1 to 3 leaving a backlog.
        max_timer_expires: (usize::from(c1) + usize::from(c2)) % 4,
        // The SYN flood emergency mode (default on) or eviction for SYNs.
        refuse_syns_when_full: (c1 ^ c2) & 0x20 == 0,
        ..TableConfig::default()
    };
    let mut table = FlowTable::new(cfg).unwrap();
    let start = Timestamp::from_micros(1_700_000_000, 0);
    let mut now = start;
    let mut out = Vec::new();
    let mut ops = 0;
    while !b.is_empty() && ops < 2000 {
        ops += 1;
        match b.u8() % 8 {
            0..=5 => {
                now = now.plus(Duration::from_millis(u64::from(b.u8()) * 10));
                let packet = ops_packet(&mut b);
                // Decode through the real decoder (raw IPv4 link type).
                let wire = packet.len() as u32 + u32::from(b.u8() & 0x10);
                if let Ok(v) = PacketView::parse(&packet, LinkType::RAW, now, wire) {
                    for p in v.flow_packets() {
                        if matches!(
                            p.transport,
                            flowlib::decode::Transport::NonFirstFragment { .. }
                        ) {
                            let (key, lo) = FlowTable::key_of(p);
                            table.add_fragment(&key, lo, p.ip.ip_len, now, &mut out);
                        } else {
                            table.update(p, now, !v.truncated, &mut out);
                        }
                    }
                }
            }
            6 => {
                let step = u64::from(b.u16());
                let step = if step & 0x8000 != 0 {
                    Duration::from_secs((step & 0x7fff) * 2)
                } else {
                    Duration::from_millis(step * 10)
                };
                now = now.plus(step);
                table.advance(now, &mut out);
            }
            _ => {
                let reason = if b.u8() & 1 == 0 {
                    EndReason::Eof
                } else {
                    EndReason::Shutdown
                };
                table.flush(reason, &mut out);
                assert!(table.is_empty());
            }
        }
        let mut starts = Vec::new();
        table.take_starts(&mut starts);
        out.extend(starts.iter().map(flowlib::start::ConnStart::record));
        if let Err(e) = table.check_invariants() {
            panic!("after operation {ops}: {e}");
        }
        assert!(table.len() <= table.config().max_flows);
        check_records(&out, start, now);
    }
    table.flush(EndReason::Eof, &mut out);
    table
        .check_invariants()
        .unwrap_or_else(|e| panic!("after the final flush: {e}"));
    assert!(table.is_empty());
    assert_eq!(table.stats().created, final_records(&out));
    check_records(&out, start, now);
}

/// Rule-file target. Input: a rule file (UTF-8, lossily).
///
/// Loading either validates or returns errors that each name the file and
/// have a message; a loaded rule set locates addresses drawn from the
/// input, and its relationships answer service and time questions, without
/// panicking.
pub fn rule_file(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match rules::Rules::from_str(&text, "fuzz.toml") {
        Ok(r) => {
            let seed = data
                .iter()
                .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(*b)));
            let addrs = [
                std::net::IpAddr::from([10, 20, 0, 5]),
                std::net::IpAddr::from(seed.to_be_bytes()[..4].try_into().unwrap_or([0; 4])),
                std::net::IpAddr::from(std::net::Ipv6Addr::from(
                    u128::from(seed) << 64 | u128::from(seed),
                )),
            ];
            for a in addrs {
                for vlan in [None, Some((seed & 0x0fff) as u16)] {
                    let loc = r.locate(a, vlan);
                    let _ = r.enclave(loc.enclave).name();
                    if let Some(g) = loc.host_group {
                        let _ = r.host_group(g).name();
                    }
                }
            }
            let ts = Timestamp::from_micros((seed % 8_000_000_000) as i64 - 1_000_000_000, 0);
            for rel in r.relationships() {
                let _ = rel.allows_service((seed & 0xff) as u8, (seed >> 8) as u16);
                let _ = rel.allows_time(ts);
            }
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "an error result holds errors");
            for e in errors.iter() {
                assert_eq!(e.file(), "fuzz.toml");
                assert!(!e.message().is_empty());
                assert!(!e.to_string().is_empty());
            }
        }
    }
}
