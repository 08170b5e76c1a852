//! Capture clocks that misbehave (issue 6, item 6): backward jumps, a jump
//! of ten years (with and without a bound on the expiry work of one
//! packet), timestamps at 0 and at the end of pcap's u32 seconds, and
//! nanosecond files, read back through flowlib's own pcap reader.

use etherparse::PacketBuilder;
use flowlib::pcap_reader::PcapReader;
use flowlib::pcap_writer::{PcapWriter, Resolution};
use flowlib::{ConnRecord, EndReason, FlowMeter, LinkType, TableConfig, Timestamp};
use std::time::{Duration, Instant};

fn udp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, len: usize) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4(src, dst, 64)
        .udp(sport, dport)
        .write(&mut v, &vec![0u8; len])
        .unwrap();
    v
}

fn feed(m: &mut FlowMeter, f: &[u8], ts: Timestamp, out: &mut Vec<ConnRecord>) {
    m.process(f, LinkType::ETHERNET, ts, f.len() as u32, out);
}

const START: i64 = 1_772_438_400;
const FLOWS: u32 = 50_000;

/// A meter holding `FLOWS` UDP flows started over 500 seconds (100 a
/// second, so the timer wheel holds 500 distinct seconds), with an idle
/// timeout of an hour, firing at most `budget` timer entries per packet
/// (0: all).
fn loaded_meter(budget: usize) -> (FlowMeter, Timestamp) {
    let mut m = FlowMeter::new(TableConfig {
        udp_idle: Duration::from_secs(3600),
        max_timer_expires: budget,
        ..TableConfig::default()
    })
    .unwrap();
    let mut out = Vec::new();
    let mut ts = Timestamp::from_micros(START, 0);
    for i in 0..FLOWS {
        ts = Timestamp::from_micros(START + i64::from(i / 100), (i % 100) * 10_000);
        let f = udp(
            [10, 1, (i >> 8) as u8, i as u8],
            5000,
            [10, 2, 0, 1],
            9000,
            20,
        );
        feed(&mut m, &f, ts, &mut out);
    }
    assert!(out.is_empty());
    assert_eq!(m.live_flows(), FLOWS as usize);
    (m, ts)
}

/// A packet of a new flow (number `n`) from outside the loaded ones.
fn new_flow(n: u32) -> Vec<u8> {
    udp([192, 0, (n >> 8) as u8, n as u8], 1, [192, 0, 2, 2], 2, 10)
}

/// Applies one packet `gap` after `last`; returns its records and the
/// time it took.
fn jump(m: &mut FlowMeter, last: Timestamp, gap: Duration) -> (Vec<ConnRecord>, Duration) {
    let f = new_flow(0);
    let mut out = Vec::with_capacity(FLOWS as usize + 1);
    let started = Instant::now();
    feed(m, &f, last.plus(gap), &mut out);
    (out, started.elapsed())
}

const TEN_YEARS: Duration = Duration::from_secs(10 * 365 * 86_400);

#[test]
fn a_ten_year_jump_expires_everything_without_walking_the_seconds_between() {
    // No budget: one packet expires every due flow.
    let (mut near, last) = loaded_meter(0);
    let (mut far, _) = loaded_meter(0);
    // Same flows, same expiries: a jump of two hours, and one of ten years.
    let (near_out, near_time) = jump(&mut near, last, Duration::from_secs(7200));
    let (far_out, far_time) = jump(&mut far, last, TEN_YEARS);
    eprintln!(
        "{FLOWS} flows expired by one packet: 2 h jump {near_time:?}, 10 y jump {far_time:?} \
         (ratio {:.2})",
        far_time.as_secs_f64() / near_time.as_secs_f64()
    );
    for out in [&near_out, &far_out] {
        assert_eq!(out.len(), FLOWS as usize);
        assert!(out.iter().all(|r| r.end_reason == EndReason::Idle));
        assert!(out.iter().all(|r| r.ts.secs() < START + 500));
        assert!(out.iter().all(|r| r.duration.is_none()), "one packet each");
    }
    assert_eq!(near.live_flows(), 1, "only the new packet's flow");
    assert_eq!(far.live_flows(), 1);
    // Walking 315 million one-second ticks would take seconds; visiting the
    // 500 seconds that hold timers takes as long as for a two-hour jump.
    assert!(
        far_time < near_time * 5 + Duration::from_millis(50),
        "{far_time:?} vs {near_time:?}"
    );
    // The table keeps working after the jump.
    let mut out = Vec::new();
    let later = last.plus(TEN_YEARS).plus(Duration::from_secs(1));
    feed(
        &mut far,
        &udp([192, 0, 2, 2], 2, [192, 0, 0, 0], 1, 10),
        later,
        &mut out,
    );
    far.finish(&mut out);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].orig_pkts, out[0].resp_pkts), (1, 1));
    assert_eq!(out[0].duration, Some(Duration::from_secs(1)));
}

#[test]
fn a_ten_year_jump_expires_everything_with_bounded_work_per_packet() {
    let (mut unbounded, last) = loaded_meter(0);
    let (_, one_packet) = jump(&mut unbounded, last, TEN_YEARS);
    for budget in [1usize, 8, 300] {
        let (mut m, last) = loaded_meter(budget);
        let after = last.plus(TEN_YEARS);
        let mut all = Vec::new();
        let mut out = Vec::new();
        let mut packets = 0usize;
        let mut times = Vec::new();
        // New flows arrive after the jump, one every microsecond.
        loop {
            out.clear();
            let f = new_flow(packets as u32);
            let ts = after.plus(Duration::from_micros(packets as u64));
            let started = Instant::now();
            feed(&mut m, &f, ts, &mut out);
            times.push(started.elapsed());
            packets += 1;
            assert!(
                out.len() <= budget,
                "budget {budget}: packet {packets} emitted {}",
                out.len()
            );
            all.append(&mut out);
            let s = m.table_stats();
            assert_eq!(
                s.created,
                m.live_flows() as u64 + s.finished(),
                "conservation"
            );
            if packets % 500 == 0 || m.backlog_since().is_none() {
                m.check_table_invariants().unwrap();
            }
            if m.backlog_since().is_none() {
                break;
            }
            assert!(
                m.backlog_since().unwrap().secs() < START + 500 + 3600,
                "the backlog is due before the jump"
            );
        }
        // Every due entry ended one flow: drained within ceil(due / budget).
        assert!(
            packets <= (FLOWS as usize).div_ceil(budget),
            "budget {budget}: {packets} packets"
        );
        assert_eq!(all.len(), FLOWS as usize);
        assert!(all.iter().all(|r| r.end_reason == EndReason::Idle));
        assert!(all.iter().all(|r| r.ts.secs() < START + 500));
        assert_eq!(m.live_flows(), packets, "the new flows");
        times.sort();
        let median = times[times.len() / 2];
        let p99 = times[times.len() * 99 / 100];
        let ratio = |d: Duration| d.as_secs_f64() / one_packet.as_secs_f64();
        eprintln!(
            "budget {budget}: {FLOWS} flows expired over {packets} packets; per packet median \
             {median:?}, 99th percentile {p99:?} ({:.5} and {:.5} of the {one_packet:?} the \
             one unbounded packet took)",
            ratio(median),
            ratio(p99)
        );
    }
}

#[test]
fn backward_jumps_are_counted_and_durations_stay_non_negative() {
    let mut m = FlowMeter::new(TableConfig::default()).unwrap();
    let mut out = Vec::new();
    let a = udp([10, 0, 0, 1], 5000, [10, 0, 0, 2], 9000, 10);
    let b = udp([10, 0, 0, 2], 9000, [10, 0, 0, 1], 5000, 10);
    feed(&mut m, &a, Timestamp::from_micros(START, 0), &mut out);
    feed(&mut m, &b, Timestamp::from_micros(START + 2, 0), &mut out);
    // A day back, then to 0, then forward again.
    feed(
        &mut m,
        &a,
        Timestamp::from_micros(START - 86_400, 0),
        &mut out,
    );
    feed(&mut m, &a, Timestamp(0), &mut out);
    feed(&mut m, &b, Timestamp::from_micros(START + 3, 0), &mut out);
    assert_eq!(m.stats().clock_backwards, 2);
    m.finish(&mut out);
    assert_eq!(out.len(), 1);
    let r = &out[0];
    assert_eq!(r.ts, Timestamp::from_micros(START, 0));
    assert_eq!(r.duration, Some(Duration::from_secs(3)));
    assert_eq!((r.orig_pkts, r.resp_pkts), (3, 2));
}

/// Writes `packets` to an in-memory pcap file and reads them back.
fn roundtrip(
    resolution: Resolution,
    packets: &[(Timestamp, Vec<u8>)],
) -> Vec<(Timestamp, Vec<u8>)> {
    let mut w = PcapWriter::new(Vec::new(), resolution, 65535, LinkType::ETHERNET).unwrap();
    for (ts, f) in packets {
        w.write_packet(*ts, f, f.len() as u32).unwrap();
    }
    let bytes = w.into_inner().unwrap();
    let mut r = PcapReader::new(&bytes[..]).unwrap();
    let mut back = Vec::new();
    while let Some(p) = r.next_packet().unwrap() {
        back.push((p.ts, p.data.to_vec()));
    }
    back
}

#[test]
fn timestamps_at_zero_at_2106_and_in_nanoseconds_work_without_overflow() {
    let a = udp([10, 0, 0, 1], 5000, [10, 0, 0, 2], 9000, 10);
    let b = udp([10, 0, 0, 2], 9000, [10, 0, 0, 1], 5000, 10);
    let last_second = i64::from(u32::MAX); // 2106-02-07 06:28:15 UTC
    let cases = [
        // The epoch itself, microseconds.
        (
            Resolution::Micros,
            vec![
                (Timestamp(0), a.clone()),
                (Timestamp::from_micros(0, 1), b.clone()),
            ],
            Duration::from_micros(1),
        ),
        // The last second pcap can state, to the last nanosecond.
        (
            Resolution::Nanos,
            vec![
                (Timestamp::from_nanos(last_second, 0), a.clone()),
                (Timestamp::from_nanos(last_second, 999_999_999), b.clone()),
            ],
            Duration::from_nanos(999_999_999),
        ),
        // Nanosecond resolution: a 1 ns exchange.
        (
            Resolution::Nanos,
            vec![
                (Timestamp::from_nanos(START, 7), a.clone()),
                (Timestamp::from_nanos(START, 8), b.clone()),
            ],
            Duration::from_nanos(1),
        ),
    ];
    for (resolution, packets, duration) in cases {
        let back = roundtrip(resolution, &packets);
        assert_eq!(
            back, packets,
            "{resolution:?} keeps every timestamp exactly"
        );
        let mut m = FlowMeter::new(TableConfig::default()).unwrap();
        let mut out = Vec::new();
        for (ts, f) in &back {
            feed(&mut m, f, *ts, &mut out);
        }
        // Timers far beyond the last packet, near the end of i64 nanoseconds.
        m.advance(back[1].0.plus(Duration::from_secs(3600)), &mut out);
        assert_eq!(out.len(), 1, "{resolution:?}");
        let r = &out[0];
        assert_eq!(r.ts, packets[0].0);
        assert_eq!(r.duration, Some(duration));
        assert_eq!(r.end_reason, EndReason::Idle);
        assert_eq!((r.orig_pkts, r.resp_pkts), (1, 1));
    }
    // Past 2106 the writer refuses rather than wrapping.
    let mut w = PcapWriter::new(Vec::new(), Resolution::Nanos, 0, LinkType::ETHERNET).unwrap();
    let err = w
        .write_packet(
            Timestamp::from_nanos(last_second + 1, 0),
            &a,
            a.len() as u32,
        )
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}
