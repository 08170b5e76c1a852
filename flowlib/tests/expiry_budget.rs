//! Bounded expiry work per packet (`TableConfig::max_timer_expires`, issue
//! 6 item 6): a budget of 1, of 8 and no budget give the same records, on
//! the capture corpus and on a generated capture with a ten-year jump of
//! the clock, with the table's invariants holding after every packet.

mod captures;

use captures::corpus;
use etherparse::PacketBuilder;
use flowlib::pcap_reader::PcapReader;
use flowlib::pcap_writer::{PcapWriter, Resolution};
use flowlib::{ConnRecord, FlowMeter, LinkType, TableConfig, Timestamp};
use std::path::PathBuf;
use std::time::Duration;

/// Budgets compared: no bound (0, the reference), one entry, eight.
const BUDGETS: [usize; 3] = [0, 1, 8];

/// Timeouts short enough for timers to fire inside the corpus captures.
fn short_timeouts() -> TableConfig {
    let secs = Duration::from_secs;
    TableConfig {
        tcp_idle: secs(20),
        udp_idle: secs(3),
        dns_idle: secs(1),
        icmp_idle: secs(2),
        other_idle: secs(2),
        tcp_close_delay: secs(1),
        tcp_attempt_delay: secs(1),
        active_timeout: Some(secs(7)),
        ..TableConfig::default()
    }
}

/// What one run gave: every record (sorted by its full debug form, which
/// includes the time it became due), and whether a backlog was ever left.
struct Run {
    records: Vec<String>,
    backlog_seen: bool,
    packets: usize,
}

/// Feeds `packets` through a meter with budget `budget`, checking the
/// table's invariants after every packet, then finishes it.
fn run(cfg: &TableConfig, budget: usize, link: LinkType, packets: &[(Timestamp, Vec<u8>)]) -> Run {
    let mut m = FlowMeter::new(TableConfig {
        max_timer_expires: budget,
        ..cfg.clone()
    })
    .unwrap();
    let mut out: Vec<ConnRecord> = Vec::new();
    let mut backlog_seen = false;
    for (i, (ts, f)) in packets.iter().enumerate() {
        m.process(f, link, *ts, f.len() as u32, &mut out);
        backlog_seen |= m.backlog_since().is_some();
        if let Err(e) = m.check_table_invariants() {
            panic!("budget {budget}, after packet {i}: {e}");
        }
    }
    m.finish(&mut out);
    m.check_table_invariants().unwrap();
    assert_eq!(m.live_flows(), 0);
    let s = m.table_stats();
    assert_eq!(s.created, s.finished(), "conservation at the end");
    let mut records: Vec<String> = out.iter().map(|r| format!("{r:?}")).collect();
    records.sort();
    Run {
        records,
        backlog_seen,
        packets: packets.len(),
    }
}

/// Runs every budget and asserts the records equal the unbounded run's.
/// Returns whether a budget left a backlog.
fn assert_same_records(
    name: &str,
    cfg: &TableConfig,
    link: LinkType,
    packets: &[(Timestamp, Vec<u8>)],
) -> bool {
    let reference = run(cfg, BUDGETS[0], link, packets);
    assert!(!reference.backlog_seen, "{name}: no budget, no backlog");
    let mut backlog = false;
    for &budget in &BUDGETS[1..] {
        let r = run(cfg, budget, link, packets);
        assert_eq!(
            r.records.len(),
            reference.records.len(),
            "{name}, budget {budget}"
        );
        for (a, b) in r.records.iter().zip(&reference.records) {
            assert_eq!(a, b, "{name}, budget {budget}");
        }
        backlog |= r.backlog_seen;
        assert_eq!(r.packets, reference.packets);
    }
    backlog
}

#[test]
fn corpus_captures_give_the_same_records_with_budgets_1_8_and_none() {
    let dir = corpus().join("pcaps");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .collect();
    names.sort();
    let (mut compared, mut with_backlog) = (0, 0);
    for path in &names {
        let bytes = std::fs::read(path).unwrap();
        let Ok(mut reader) = PcapReader::new(&bytes[..]) else {
            continue; // malformed file headers: covered by the broken-capture tests
        };
        let link = reader.header().link;
        let mut packets = Vec::new();
        // Up to the first broken record, as a replay would.
        while let Ok(Some(p)) = reader.next_packet() {
            packets.push((p.ts, p.data.to_vec()));
        }
        if packets.len() < 2 {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy();
        for cfg in [TableConfig::default(), short_timeouts()] {
            if assert_same_records(&name, &cfg, link, &packets) {
                with_backlog += 1;
            }
        }
        compared += 1;
    }
    eprintln!("{compared} captures compared; a budget left a backlog in {with_backlog} runs");
    assert!(
        compared >= 40,
        "only {compared} captures read from {}",
        dir.display()
    );
    assert!(
        with_backlog >= 10,
        "the budget was exercised in only {with_backlog} runs"
    );
}

const START: i64 = 1_772_438_400;
const TEN_YEARS: i64 = 10 * 365 * 86_400;

fn udp(src: ([u8; 4], u16), dst: ([u8; 4], u16), len: usize) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4(src.0, dst.0, 64)
        .udp(src.1, dst.1)
        .write(&mut v, &vec![0u8; len])
        .unwrap();
    v
}

fn tcp(
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    seq: u32,
    ack: Option<u32>,
    flags: &str,
    len: usize,
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4(src.0, dst.0, 64)
        .tcp(src.1, dst.1, seq, 64_000);
    if flags.contains('S') {
        b = b.syn();
    }
    if flags.contains('F') {
        b = b.fin();
    }
    if let Some(a) = ack {
        b = b.ack(a);
    }
    let mut v = Vec::new();
    b.write(&mut v, &vec![0u8; len]).unwrap();
    v
}

fn host(net: u8, i: u32) -> ([u8; 4], u16) {
    (
        [10, net, (i >> 8) as u8, i as u8],
        20_000 + (i % 5000) as u16,
    )
}

const SERVER: ([u8; 4], u16) = ([192, 0, 2, 10], 443);
const DNS: ([u8; 4], u16) = ([192, 0, 2, 53], 53);

/// Ten minutes of mixed traffic (UDP and DNS flows, complete and closed TCP
/// connections, established ones left open, unanswered SYNs, long flows
/// with interim records), then a jump of ten years after which packets
/// return on many of the same connections and new ones start; written
/// with flowlib's pcap writer and read back with its reader.
fn ten_year_jump_capture() -> Vec<(Timestamp, Vec<u8>)> {
    let mut pkts: Vec<(Timestamp, Vec<u8>)> = Vec::new();
    let at = |s: i64, us: u32| Timestamp::from_micros(START + s, us);
    for i in 0..1500u32 {
        let s = i64::from(i % 600);
        let c = host(1, i);
        let srv = if i % 3 == 0 { DNS } else { SERVER };
        pkts.push((at(s, i), udp(c, srv, 40)));
        pkts.push((at(s, 1000 + i), udp(srv, c, 90)));
    }
    for i in 0..600u32 {
        let s = i64::from(i % 590);
        let c = host(2, i);
        pkts.push((at(s, 0), tcp(c, SERVER, 100, None, "S", 0)));
        pkts.push((at(s, 100), tcp(SERVER, c, 900, Some(101), "SA", 0)));
        pkts.push((at(s, 200), tcp(c, SERVER, 101, Some(901), "A", 50)));
        if i % 2 == 0 {
            pkts.push((at(s + 1, 0), tcp(c, SERVER, 151, Some(901), "FA", 0)));
            pkts.push((at(s + 1, 100), tcp(SERVER, c, 901, Some(152), "FA", 0)));
        }
    }
    for i in 0..400u32 {
        pkts.push((
            at(i64::from(i % 600), 500),
            tcp(host(3, i), SERVER, 7, None, "S", 0),
        ));
    }
    // Long flows: data every 10 s for ten minutes (interim records).
    for i in 0..40u32 {
        let c = host(4, i);
        pkts.push((at(0, 10 + i), tcp(c, SERVER, 1, None, "S", 0)));
        pkts.push((at(0, 60 + i), tcp(SERVER, c, 1, Some(2), "SA", 0)));
        for k in 0..60u32 {
            pkts.push((
                at(i64::from(k) * 10 + 1, i),
                tcp(c, SERVER, 2 + k * 10, Some(2), "A", 10),
            ));
        }
    }
    // Ten years later: packets on old connections and new ones, interleaved.
    let later = |n: u32| Timestamp::from_micros(START + 600 + TEN_YEARS, n * 50);
    let mut n = 0;
    let mut next = || {
        n += 1;
        later(n)
    };
    for i in 0..600u32 {
        pkts.push((next(), udp(host(1, i * 2), SERVER, 40)));
        pkts.push((next(), tcp(host(2, i), SERVER, 151, Some(901), "A", 10)));
        pkts.push((next(), udp(host(5, i), DNS, 30)));
        if i < 400 {
            pkts.push((next(), tcp(host(3, i), SERVER, 7, None, "S", 0)));
        }
        if i < 40 {
            pkts.push((next(), tcp(host(4, i), SERVER, 700, Some(2), "A", 10)));
        }
    }
    written_and_read_back(pkts)
}

/// Sorts `pkts` by time, writes them with flowlib's pcap writer and reads
/// them back with its reader.
fn written_and_read_back(mut pkts: Vec<(Timestamp, Vec<u8>)>) -> Vec<(Timestamp, Vec<u8>)> {
    pkts.sort_by_key(|(ts, _)| *ts);
    let mut w =
        PcapWriter::new(Vec::new(), Resolution::Micros, 65_535, LinkType::ETHERNET).unwrap();
    for (ts, f) in &pkts {
        w.write_packet(*ts, f, f.len() as u32).unwrap();
    }
    let bytes = w.into_inner().unwrap();
    let mut r = PcapReader::new(&bytes[..]).unwrap();
    let mut back = Vec::new();
    while let Some(p) = r.next_packet().unwrap() {
        back.push((p.ts, p.data.to_vec()));
    }
    assert_eq!(back.len(), pkts.len());
    back
}

#[test]
fn a_ten_year_jump_gives_the_same_records_with_budgets_1_8_and_none() {
    let packets = ten_year_jump_capture();
    let cfg = TableConfig {
        active_timeout: Some(Duration::from_secs(120)),
        ..TableConfig::default()
    };
    assert!(assert_same_records(
        "ten-year jump",
        &cfg,
        LinkType::ETHERNET,
        &packets
    ));
    // Under a flow cap the backlog is drained before anything is evicted.
    let capped = TableConfig {
        max_flows: 2500,
        ..cfg
    };
    assert!(assert_same_records(
        "ten-year jump, 2500 flows",
        &capped,
        LinkType::ETHERNET,
        &packets
    ));
}

#[test]
fn a_full_table_drains_its_backlog_before_evicting() {
    // 500 unanswered SYNs, each replacing an earlier SYN on its tuple
    // (a new ISN: the first connection ends, `reuse`, and leaves a stale
    // timer entry), and 500 established connections fill a table of 1000.
    // Ten years later 1000 new UDP flows arrive. Without a budget the
    // first of them ends all 1000 (idle). With a budget of 1 the stale
    // entries come first in the backlog and end nothing: a new flow must
    // drain the backlog until a connection has ended, never evict one.
    let at = |s: i64, us: u32| Timestamp::from_micros(START + s, us);
    let mut pkts = Vec::new();
    for i in 0..500u32 {
        pkts.push((at(0, i), tcp(host(7, i), SERVER, 9, None, "S", 0)));
        pkts.push((
            at(0, 500_000 + i),
            tcp(host(7, i), SERVER, 90_000, None, "S", 0),
        ));
        let c = host(6, i);
        pkts.push((at(1, i), tcp(c, SERVER, 1, None, "S", 0)));
        pkts.push((at(1, 1000 + i), tcp(SERVER, c, 1, Some(2), "SA", 0)));
        pkts.push((at(1, 2000 + i), tcp(c, SERVER, 2, Some(2), "A", 5)));
    }
    for i in 0..1000u32 {
        let ts = Timestamp::from_micros(START + 2 + TEN_YEARS, i);
        pkts.push((ts, udp(host(8, i), DNS, 20)));
    }
    let pkts = written_and_read_back(pkts);
    let cfg = TableConfig {
        max_flows: 1000,
        ..TableConfig::default()
    };
    assert!(assert_same_records(
        "full table",
        &cfg,
        LinkType::ETHERNET,
        &pkts
    ));
    let mut m = FlowMeter::new(TableConfig {
        max_timer_expires: 1,
        ..cfg
    })
    .unwrap();
    let mut out = Vec::new();
    for (ts, f) in &pkts {
        m.process(f, LinkType::ETHERNET, *ts, f.len() as u32, &mut out);
    }
    let s = m.table_stats();
    assert_eq!(
        (s.evicted_half_open, s.evicted_oldest, s.refused_no_memory),
        (0, 0, 0)
    );
    assert_eq!(s.ended(flowlib::EndReason::Reuse), 500, "{s:?}");
    assert_eq!(s.ended(flowlib::EndReason::Idle), 1000, "{s:?}");
}
