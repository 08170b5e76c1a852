//! The fragment tracker under hostile fragments (issue 6, item 5): caps by
//! trains and bytes with counted evictions, and a named anomaly for each
//! kind of odd fragment.

use flowlib::{ConnRecord, FlowMeter, LinkType, TableConfig, Timestamp, Weird};

const SRC: [u8; 4] = [10, 0, 0, 1];
const DST: [u8; 4] = [10, 0, 0, 2];

/// An Ethernet/IPv4 fragment: `payload` at byte `offset` (a multiple of 8)
/// of datagram `id`. The header checksum is left 0 (not checked).
fn fragment(id: u16, offset: u32, more: bool, proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 2, 2, 2, 2, 2, 4, 4, 4, 4, 4, 4, 0x08, 0x00];
    let total = (20 + payload.len()) as u16;
    let flags_off = ((offset / 8) as u16) | if more { 0x2000 } else { 0 };
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&id.to_be_bytes());
    f.extend_from_slice(&flags_off.to_be_bytes());
    f.extend_from_slice(&[64, proto, 0, 0]);
    f.extend_from_slice(&SRC);
    f.extend_from_slice(&DST);
    f.extend_from_slice(payload);
    f
}

/// A UDP header (ports 5000 -> 53) claiming `len` bytes, then `data`.
fn udp(len: u16, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&5000u16.to_be_bytes());
    v.extend_from_slice(&53u16.to_be_bytes());
    v.extend_from_slice(&len.to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(data);
    v
}

/// A TCP header (SYN, ports 40000 -> 80), `data_offset` in 32-bit words.
fn tcp_header() -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&40000u16.to_be_bytes());
    v.extend_from_slice(&80u16.to_be_bytes());
    v.extend_from_slice(&1u32.to_be_bytes());
    v.extend_from_slice(&0u32.to_be_bytes());
    v.extend_from_slice(&[0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    v
}

struct Run {
    meter: FlowMeter,
    out: Vec<ConnRecord>,
    t: i64,
}

impl Run {
    fn new(cfg: TableConfig) -> Run {
        Run {
            meter: FlowMeter::new(cfg).unwrap(),
            out: Vec::new(),
            t: 1_772_438_400_000_000,
        }
    }

    fn feed(&mut self, frame: &[u8]) {
        self.t += 10;
        let ts = Timestamp(self.t * 1000);
        let len = frame.len() as u32;
        self.meter
            .process(frame, LinkType::ETHERNET, ts, len, &mut self.out);
    }

    fn anomalies(&self, w: Weird) -> u64 {
        self.meter.stats().anomalies.get(w)
    }
}

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

#[test]
fn clean_fragments_raise_nothing_and_join_their_flow() {
    let mut r = Run::new(TableConfig::default());
    let data = bytes(200, 1);
    let first = udp(208, &data[..96]);
    r.feed(&fragment(7, 0, true, 17, &first));
    r.feed(&fragment(7, 104, false, 17, &data[96..]));
    r.meter.finish(&mut r.out);
    assert_eq!(r.meter.stats().anomalies.total(), 0);
    assert_eq!(r.meter.stats().weirds.total(), 0);
    assert_eq!(r.out.len(), 1);
    // As in Zeek, the datagram is one packet; its IP bytes are all there.
    assert_eq!(r.out[0].orig_ip_bytes, 20 + 208);
}

#[test]
fn overlap_with_the_same_bytes_is_fragment_overlap() {
    let mut r = Run::new(TableConfig::default());
    let data = bytes(200, 1);
    let first = udp(208, &data[..96]); // datagram bytes 0..104
    r.feed(&fragment(7, 0, true, 17, &first));
    // Bytes 96..200 from byte 96: 8 bytes overlap, the same ones (more
    // to come: the datagram is not complete yet).
    r.feed(&fragment(7, 96, true, 17, &data[88..192]));
    assert_eq!(r.anomalies(Weird::FragmentOverlap), 1);
    assert_eq!(r.anomalies(Weird::FragmentInconsistency), 0);
    // Exactly the same fragment again (a duplicate): an overlap too.
    r.feed(&fragment(7, 96, true, 17, &data[88..192]));
    assert_eq!(r.anomalies(Weird::FragmentOverlap), 2);
    r.feed(&fragment(7, 200, false, 17, &data[192..]));
    assert_eq!(r.meter.stats().decoded, 4, "anomalies do not drop packets");
}

#[test]
fn a_complete_datagram_frees_its_ip_id_for_the_next_one() {
    // Two different datagrams, one after the other, with the same IP id
    // (it wraps after 65 536 datagrams of a host pair): the second is not
    // compared with the first one's bytes.
    let mut r = Run::new(TableConfig::default());
    for seed in [1, 2] {
        let data = bytes(200, seed);
        r.feed(&fragment(7, 0, true, 17, &udp(208, &data[..96])));
        r.feed(&fragment(7, 104, false, 17, &data[96..]));
    }
    assert_eq!(r.meter.stats().anomalies.total(), 0);
    assert_eq!(r.meter.stats().fragments.completed, 2);
    r.meter.finish(&mut r.out);
    assert_eq!(r.out.len(), 1);
    assert_eq!(r.out[0].orig_pkts, 2);
    assert_eq!(r.out[0].orig_ip_bytes, 2 * (20 + 208));
}

#[test]
fn a_duplicate_of_a_complete_datagrams_fragment_still_counts_in_its_flow() {
    // A span port's copy of every fragment, each right after the original:
    // the last copy comes after the datagram is complete.
    let data = bytes(300, 1);
    let frames = [
        fragment(7, 0, true, 17, &udp(308, &data[..96])),
        fragment(7, 104, true, 17, &data[96..200]),
        fragment(7, 208, false, 17, &data[200..]),
    ];
    let mut r = Run::new(TableConfig::default());
    for f in &frames {
        r.feed(f);
        r.feed(f);
    }
    let s = r.meter.stats();
    assert_eq!((s.packets, s.decoded, s.weirds.total()), (6, 6, 0));
    assert_eq!(
        s.anomalies.get(Weird::FragmentOverlap),
        3,
        "each copy is an overlap"
    );
    assert_eq!(s.fragments.completed, 1);
    // A fragment with other bytes after completion is a new datagram with
    // this id (the receiver is done with the first), not an inconsistency;
    // its first fragment never comes.
    let mut other = data[96..200].to_vec();
    other[0] ^= 0xff;
    r.feed(&fragment(7, 104, true, 17, &other));
    r.meter.finish(&mut r.out);
    let s = r.meter.stats();
    assert_eq!(s.anomalies.get(Weird::FragmentInconsistency), 0);
    assert_eq!(s.weirds.get(Weird::UnattributedFragment), 1);
}

#[test]
fn a_datagram_whose_fragments_come_out_of_order_completes_too() {
    let mut r = Run::new(TableConfig::default());
    let data = bytes(300, 1);
    // First fragment, then the last, then the middle one.
    r.feed(&fragment(8, 0, true, 17, &udp(308, &data[..96])));
    r.feed(&fragment(8, 208, false, 17, &data[200..]));
    assert_eq!(r.meter.stats().fragments.completed, 0);
    r.feed(&fragment(8, 104, true, 17, &data[96..200]));
    assert_eq!(r.meter.stats().fragments.completed, 1);
    assert_eq!(r.meter.stats().anomalies.total(), 0);
    assert_eq!(r.meter.stats().weirds.total(), 0);
}

/// An Ethernet/IPv6 fragment from 2001:db8::1 to 2001:db8::2: `ext` (the
/// extension headers after the fragment header, in a first fragment; the
/// fragment header's next header is `ext_next` when `ext` is given) then
/// `payload`, at byte `offset` of datagram `id`.
fn fragment6(id: u32, offset: u32, more: bool, next: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 2, 2, 2, 2, 2, 4, 4, 4, 4, 4, 4, 0x86, 0xdd];
    let plen = (8 + payload.len()) as u16;
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&plen.to_be_bytes());
    f.extend_from_slice(&[44, 64]);
    let mut src = [0u8; 16];
    src[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    let mut dst = src;
    src[15] = 1;
    dst[15] = 2;
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    let off_flags = (offset as u16) | u16::from(more);
    f.extend_from_slice(&[next, 0]);
    f.extend_from_slice(&off_flags.to_be_bytes());
    f.extend_from_slice(&id.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[test]
fn ipv6_fragments_with_a_destination_options_header_join_their_flow() {
    // The fragmentable part starts with Destination Options (8 bytes),
    // then UDP. The second fragment's header names Destination Options as
    // its next header too; what follows it is the middle of the datagram.
    let data = bytes(200, 5);
    let mut first = vec![17, 0, 1, 4, 0, 0, 0, 0]; // next UDP, PadN
    first.extend_from_slice(&udp(208, &data[..88]));
    let mut r = Run::new(TableConfig::default());
    r.feed(&fragment6(42, 0, true, 60, &first));
    r.feed(&fragment6(42, 104, false, 60, &data[88..]));
    r.meter.finish(&mut r.out);
    let s = r.meter.stats();
    assert_eq!(
        (s.decoded, s.weirds.total(), s.anomalies.total()),
        (2, 0, 0)
    );
    assert_eq!(s.fragments.completed, 1);
    assert_eq!(r.out.len(), 1);
    // As Zeek counts a reassembled datagram: one packet, every byte.
    assert_eq!(r.out[0].orig_ip_bytes, 40 + 8 + 8 + 208);
    assert_eq!(r.out[0].orig_bytes, Some(200));
}

#[test]
fn overlap_with_different_bytes_is_fragment_inconsistency() {
    let mut r = Run::new(TableConfig::default());
    let data = bytes(200, 1);
    r.feed(&fragment(9, 0, true, 17, &udp(208, &data[..96])));
    let mut other = data[88..].to_vec();
    other[3] ^= 0xff; // byte 99 differs from what the first fragment said
    r.feed(&fragment(9, 96, false, 17, &other));
    assert_eq!(r.anomalies(Weird::FragmentInconsistency), 1);
    assert_eq!(r.anomalies(Weird::FragmentOverlap), 0);
    // RFC 1858's overlapping fragment attack: offset 8 rewrites the TCP
    // header's flags.
    let mut tcp = tcp_header();
    tcp.extend_from_slice(&bytes(60, 3));
    r.feed(&fragment(10, 0, true, 6, &tcp));
    let mut rewrite = tcp[8..24].to_vec();
    rewrite[5] = 0x12; // flags byte 13 of the TCP header: SYN -> SYN+ACK
    r.feed(&fragment(10, 8, true, 6, &rewrite));
    assert_eq!(r.anomalies(Weird::FragmentInconsistency), 2);
}

#[test]
fn tiny_first_fragment_is_its_own_weird() {
    let mut r = Run::new(TableConfig::default());
    // RFC 1858: 8 bytes of TCP header, the flags in the next fragment.
    let tcp = tcp_header();
    r.feed(&fragment(11, 0, true, 6, &tcp[..8]));
    assert_eq!(r.meter.stats().weirds.get(Weird::TinyFirstFragment), 1);
    assert_eq!(r.meter.stats().weirds.get(Weird::TruncatedTcpHeader), 0);
    // The rest waits for a first fragment that made no flow; at the end
    // it cannot be attributed, and says so.
    r.feed(&fragment(11, 8, false, 6, &tcp[8..]));
    assert_eq!(r.meter.stats().fragments.waiting, 1);
    r.meter.finish(&mut r.out);
    assert_eq!(r.meter.stats().weirds.get(Weird::UnattributedFragment), 1);
    let s = r.meter.stats();
    assert_eq!(s.packets, s.decoded + s.weirds.total());
}

#[test]
fn small_non_last_fragment_is_excessively_small() {
    let mut r = Run::new(TableConfig::default());
    // A whole TCP header but a 40-byte IP packet, more to follow.
    r.feed(&fragment(12, 0, true, 6, &tcp_header()));
    assert_eq!(r.anomalies(Weird::ExcessivelySmallFragment), 1);
    // A small last fragment is normal.
    r.feed(&fragment(12, 24, false, 6, &bytes(8, 0)));
    assert_eq!(r.anomalies(Weird::ExcessivelySmallFragment), 1);
    assert_eq!(r.meter.stats().weirds.total(), 0);
}

#[test]
fn fragment_past_65535_is_excessively_large() {
    let mut r = Run::new(TableConfig::default());
    r.feed(&fragment(13, 0, true, 17, &udp(0, &bytes(100, 0))));
    // The largest offset IPv4 can state (8191 * 8) plus 16 bytes.
    r.feed(&fragment(13, 65528, false, 17, &bytes(16, 0)));
    assert_eq!(r.anomalies(Weird::ExcessivelyLargeFragment), 1);
    // Ending exactly at 65535 is still a datagram.
    r.feed(&fragment(14, 65528, false, 17, &bytes(7, 0)));
    assert_eq!(r.anomalies(Weird::ExcessivelyLargeFragment), 1);
    // (Its first fragment never comes: unattributed at the end.)
    r.meter.finish(&mut r.out);
    let s = r.meter.stats();
    assert_eq!(s.packets, s.decoded + s.weirds.total());
}

#[test]
fn fragments_before_their_first_fragment_wait_for_it() {
    // The last fragment first (as some stacks send them), then the first:
    // the datagram is counted whole, as in order.
    let data = bytes(200, 1);
    let mut r = Run::new(TableConfig::default());
    r.feed(&fragment(7, 104, false, 17, &data[96..]));
    let s = r.meter.stats();
    assert_eq!((s.packets, s.decoded, s.weirds.total()), (1, 0, 0));
    assert_eq!(s.fragments.waiting, 1, "counted when its first comes");
    r.feed(&fragment(7, 0, true, 17, &udp(208, &data[..96])));
    r.meter.finish(&mut r.out);
    let s = r.meter.stats();
    assert_eq!((s.packets, s.decoded, s.weirds.total()), (2, 2, 0));
    assert_eq!((s.fragments.waiting, s.fragments.waited), (0, 1));
    assert_eq!(s.fragments.completed, 1);
    assert_eq!(r.out.len(), 1);
    // One datagram, every byte of it (at one instant, as Zeek sees a
    // datagram it reassembled: no duration).
    assert_eq!((r.out[0].orig_pkts, r.out[0].orig_ip_bytes), (1, 20 + 208));
}

#[test]
fn a_fragment_whose_first_never_comes_is_unattributed_when_its_train_expires() {
    let mut r = Run::new(TableConfig::default());
    r.feed(&fragment(9, 104, false, 17, &bytes(96, 3)));
    assert_eq!(r.meter.stats().weirds.total(), 0);
    // Another datagram 31 s later: the first one's train has expired.
    r.t += 31_000_000;
    r.feed(&fragment(10, 0, true, 17, &udp(100, &bytes(92, 4))));
    let s = r.meter.stats();
    assert_eq!(s.weirds.get(Weird::UnattributedFragment), 1);
    assert_eq!((s.fragments.waiting, s.fragments.expired), (0, 1));
    assert_eq!(
        s.packets,
        s.decoded + s.weirds.total() + s.fragments.waiting
    );
}
