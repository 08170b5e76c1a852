//! TCP details checked against what Zeek does: gap accounting
//! (`missed_bytes`, history `G`) when segments arrive out of order (only
//! bytes that never came are missed, however many pieces wait above a
//! hole), history repeats, and the attempt timeout.

use etherparse::PacketBuilder;
use flowlib::{ConnRecord, FlowMeter, LinkType, TableConfig, Timestamp};

const CLIENT: [u8; 4] = [10, 0, 0, 1];
const SERVER: [u8; 4] = [10, 0, 0, 2];
const C_ISN: u32 = 1000;
const S_ISN: u32 = 5000;

struct Run {
    meter: FlowMeter,
    out: Vec<ConnRecord>,
    t: i64,
}

impl Run {
    fn new() -> Run {
        Run {
            meter: FlowMeter::new(TableConfig::default()).unwrap(),
            out: Vec::new(),
            t: 1_772_438_400_000,
        }
    }

    /// One segment; `from_client` picks the direction.
    fn seg(&mut self, from_client: bool, flags: &str, seq: u32, ack: u32, len: usize) {
        self.seg_after(0, from_client, flags, seq, ack, len);
    }

    /// One segment `wait_ms` after the previous one.
    fn seg_after(
        &mut self,
        wait_ms: i64,
        from_client: bool,
        flags: &str,
        seq: u32,
        ack: u32,
        len: usize,
    ) {
        self.t += wait_ms;
        let (src, dst, sp, dp) = if from_client {
            (CLIENT, SERVER, 40000, 80)
        } else {
            (SERVER, CLIENT, 80, 40000)
        };
        let mut b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4(src, dst, 64)
            .tcp(sp, dp, seq, 65535);
        for f in flags.chars() {
            b = match f {
                'S' => b.syn(),
                'A' => b.ack(ack),
                'F' => b.fin(),
                'R' => b.rst(),
                _ => unreachable!(),
            };
        }
        let mut frame = Vec::new();
        b.write(&mut frame, &vec![0x61; len]).unwrap();
        self.t += 1;
        let ts = Timestamp::from_micros(self.t / 1000, (self.t % 1000) as u32 * 1000);
        self.meter.process(
            &frame,
            LinkType::ETHERNET,
            ts,
            frame.len() as u32,
            &mut self.out,
        );
    }

    /// Handshake; returns the client's first data sequence number.
    fn open(&mut self) -> u32 {
        self.seg(true, "S", C_ISN, 0, 0);
        self.seg(false, "SA", S_ISN, C_ISN + 1, 0);
        self.seg(true, "A", C_ISN + 1, S_ISN + 1, 0);
        C_ISN + 1
    }

    fn close(mut self, client_next: u32) -> ConnRecord {
        self.seg(true, "FA", client_next, S_ISN + 1, 0);
        self.seg(false, "FA", S_ISN + 1, client_next + 1, 0);
        self.seg(true, "A", client_next + 1, S_ISN + 2, 0);
        self.meter.finish(&mut self.out);
        assert_eq!(self.out.len(), 1, "{:?}", self.out);
        self.out.pop().unwrap()
    }
}

/// Segment 0 (100 bytes) is lost on its way past the sensor; segments
/// 1..=n arrive, then 0 is sent again and everything is acknowledged.
fn lost_then_retransmitted(n: u32, duplicate: bool) -> ConnRecord {
    let mut r = Run::new();
    let base = r.open();
    for i in 1..=n {
        r.seg(true, "A", base + 100 * i, S_ISN + 1, 100);
        if duplicate && i == 1 {
            r.seg(true, "A", base + 100 * i, S_ISN + 1, 100);
        }
    }
    r.seg(true, "A", base, S_ISN + 1, 100);
    let next = base + 100 * (n + 1);
    r.seg(false, "A", S_ISN + 1, next, 0);
    r.close(next)
}

#[test]
fn pieces_above_a_hole_that_is_filled_later_are_not_missed() {
    for n in [1, 2, 3, 5, 20] {
        for duplicate in [false, true] {
            let c = lost_then_retransmitted(n, duplicate);
            assert_eq!(
                c.missed_bytes, 0,
                "{n} pieces (duplicate {duplicate}): {c:?}"
            );
            assert!(!c.history.contains('G'), "{n}: {}", c.history);
            assert_eq!(c.orig_bytes, Some(u64::from(100 * (n + 1))), "{n}");
        }
    }
}

#[test]
fn a_hole_never_filled_is_missed_once() {
    let mut r = Run::new();
    let base = r.open();
    // Bytes 0..100 never come; 100..600 do, in five pieces.
    for i in 1..=5 {
        r.seg(true, "A", base + 100 * i, S_ISN + 1, 100);
    }
    let next = base + 600;
    r.seg(false, "A", S_ISN + 1, next, 0);
    let c = r.close(next);
    assert_eq!(c.missed_bytes, 100, "{c:?}");
    assert!(c.history.contains('G'), "{}", c.history);
}

/// Zeek writes a letter again for a reset at another sequence number; two
/// resets before the connection's first sequence number are at two places.
#[test]
fn resets_before_the_first_sequence_number_are_told_apart() {
    let mut r = Run::new();
    r.open();
    r.seg(true, "R", C_ISN - 100, 0, 0);
    r.seg(true, "R", C_ISN - 200, 0, 0);
    r.meter.finish(&mut r.out);
    assert_eq!(r.out.len(), 1, "{:?}", r.out);
    assert_eq!(r.out[0].history, "ShARR");
}

/// Zeek arms its attempt timer (5 s) only for a connection that starts
/// with a SYN: a SYN after a mid-stream start does not end the connection
/// 5 s later.
#[test]
fn a_syn_after_a_mid_stream_start_arms_no_attempt_timeout() {
    let mut r = Run::new();
    r.seg(true, "A", C_ISN + 1, S_ISN + 1, 100);
    r.seg(true, "S", C_ISN, 0, 0);
    r.seg_after(20_000, true, "A", C_ISN + 101, S_ISN + 1, 100);
    r.meter.finish(&mut r.out);
    assert_eq!(r.out.len(), 1, "{:?}", r.out);
    assert_eq!(r.out[0].orig_pkts, 3);
    // A connection that starts with an unanswered SYN still ends after 5 s:
    // the next SYN 7 s later is another connection.
    let mut r = Run::new();
    r.seg(true, "S", C_ISN, 0, 0);
    r.seg_after(7_000, true, "S", C_ISN, 0, 0);
    r.meter.finish(&mut r.out);
    assert_eq!(r.out.len(), 2, "{:?}", r.out);
    assert!(r.out.iter().all(|c| c.conn_state.name() == "S0"));
}
