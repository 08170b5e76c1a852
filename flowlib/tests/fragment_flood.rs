//! 1 M never-completed fragmented datagrams against the fragment tracker's
//! caps (issue 6, item 5). Its own test binary: it measures the process's
//! resident set.

use flowlib::{ConnRecord, FlowMeter, LinkType, TableConfig, Timestamp, Weird};

const DST: [u8; 4] = [10, 0, 0, 2];

/// An Ethernet/IPv4 fragment: `payload` at byte `offset` (a multiple of 8)
/// of datagram `id`, from `src`.
fn fragment(src: [u8; 4], id: u16, offset: u32, more: bool, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 2, 2, 2, 2, 2, 4, 4, 4, 4, 4, 4, 0x08, 0x00];
    let total = (20 + payload.len()) as u16;
    let flags_off = ((offset / 8) as u16) | if more { 0x2000 } else { 0 };
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&id.to_be_bytes());
    f.extend_from_slice(&flags_off.to_be_bytes());
    f.extend_from_slice(&[64, 17, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&DST);
    f.extend_from_slice(payload);
    f
}

/// Resident set size of this process in bytes.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn a_million_never_completed_datagrams_stay_within_the_caps() {
    const TRAINS: usize = 4096;
    const BYTES: usize = 2 << 20;
    let cfg = TableConfig {
        max_fragment_trains: TRAINS,
        max_fragment_bytes: BYTES,
        ..TableConfig::default()
    };
    let mut meter = FlowMeter::new(cfg).unwrap();
    let mut out: Vec<ConnRecord> = Vec::new();
    // Small fragments first (the train cap binds), then large ones (the
    // byte cap binds).
    let small: Vec<u8> = (0..8u8).collect();
    let large: Vec<u8> = (0..1400u32).map(|i| (i * 7) as u8).collect();
    let first_of = |payload: &[u8]| {
        let mut v = vec![0x13, 0x88, 0, 53, 0x1f, 0x40, 0, 0]; // UDP 5000 -> 53, 8000 bytes
        v.extend_from_slice(payload);
        v
    };
    let (first_small, first_large) = (first_of(&small), first_of(&large));
    let before = rss_bytes();
    let mut peak_memory = 0;
    for i in 0..1_000_000u32 {
        // Distinct datagrams (ids, and sources beyond 65536): first
        // fragments whose rest never comes, half of them; the other half
        // a lone middle fragment.
        let src = [10, 0, (i >> 16) as u8, 1];
        let (first, middle) = if i < 500_000 {
            (&first_small, &small)
        } else {
            (&first_large, &large)
        };
        let f = if i % 2 == 0 {
            fragment(src, i as u16, 0, true, first)
        } else {
            fragment(src, i as u16, 1600, true, middle)
        };
        let ts = Timestamp::from_micros(1_772_438_400, i * 10);
        meter.process(&f, LinkType::ETHERNET, ts, f.len() as u32, &mut out);
        assert!(meter.fragment_charged_bytes() <= BYTES);
        if i % 10_000 == 0 {
            peak_memory = peak_memory.max(meter.fragment_memory_bytes());
        }
        let fr = &meter.stats().fragments;
        let gone = fr.evicted_train_cap + fr.evicted_byte_cap + fr.expired;
        assert!(fr.trains - gone <= TRAINS as u64, "the train cap holds");
    }
    let grown = rss_bytes().saturating_sub(before);
    let s = meter.stats().clone();
    eprintln!(
        "{:?}\npeak tracker memory {peak_memory} bytes, RSS grew {grown} bytes, {} records",
        s.fragments,
        out.len()
    );
    assert_eq!(s.fragments.trains, 1_000_000);
    assert!(s.fragments.peak_bytes <= BYTES as u64);
    assert!(s.fragments.evicted_train_cap > 450_000, "{:?}", s.fragments);
    assert!(s.fragments.evicted_byte_cap > 450_000, "{:?}", s.fragments);
    assert_eq!(
        s.fragments.evicted_train_cap + s.fragments.evicted_byte_cap + meter_live(&meter),
        1_000_000,
        "every datagram is live or counted as evicted"
    );
    assert_eq!(s.fragments.expired, 0, "all within the 30 s timeout");
    // The lone middle fragments wait for first fragments that never come:
    // unattributed when their train is evicted, or at the end.
    assert_eq!(
        s.weirds.get(Weird::UnattributedFragment) + s.fragments.waiting,
        500_000
    );
    assert!(s.fragments.waiting > 0);
    assert_eq!(
        s.packets,
        s.decoded + s.weirds.total() + s.fragments.waiting
    );
    meter.finish(&mut out);
    let end = meter.stats();
    assert_eq!(end.weirds.get(Weird::UnattributedFragment), 500_000);
    assert_eq!((end.fragments.waiting, end.fragments.waited), (0, 0));
    assert_eq!(end.packets, end.decoded + end.weirds.total());
    // The byte cap plus the map and queue the train cap bounds (the map
    // may double once through deleted slots: 2 x 4096 entries of ~150 B
    // in 16 384 buckets).
    assert!(peak_memory <= BYTES + TRAINS * 640, "{peak_memory}");
    // The process grew by no more than that, with 4 MiB for the rest
    // (16 UDP flows, allocator slack).
    assert!(
        grown as usize <= BYTES + TRAINS * 640 + (4 << 20),
        "{grown}"
    );
}

/// Trains the tracker holds now.
fn meter_live(meter: &FlowMeter) -> u64 {
    let f = &meter.stats().fragments;
    f.trains - f.evicted_train_cap - f.evicted_byte_cap - f.expired
}
