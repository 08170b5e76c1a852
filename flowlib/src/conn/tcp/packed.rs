//! A TCP connection's state as the flow table stores it: the part every
//! live connection needs, packed into 64 bytes, and the rest out of line in
//! the connection's [`TcpCold`] slot (and, rarer still, its
//! [`Extra`](crate::conn::Extra) slot), allocated only for connections that
//! need it.
//!
//! A packet runs the state machine on this packed form in place (see
//! `in_place`), without unpacking it; the unpacked [`TcpConn`] is built
//! for records, and packing is lossless: every value the machine holds
//! comes back exactly.
//!
//! Inline, per endpoint: the endpoint states, flags, and the 32-bit sequence
//! numbers (start, last, highest ACK) plus the reassembly positions (`next`,
//! `trim`) in 32 bits and the sequence / ACK wrap counts in 4 bits each: an
//! endpoint that has sent less than 4 GiB and wrapped fewer than 16 times,
//! which is nearly every one, needs nothing more. One that grows past either
//! becomes *wide* and keeps those values in full in its extra slot.
//!
//! The history keeps its seen bits, length and first 9 letters inline (64
//! bits); the letters after those are out of line.
//!
//! Out of line (the cold slot): what only some connections ever set, and
//! whose absence means zero: history letters past the 9th, the FIN
//! position, the relative sequence numbers
//! of the last SYN, FIN and RST (for the history's repeat test), the scaled
//! counters of retransmissions, zero windows and gaps, `missed_bytes` and the
//! out-of-order block slot.
//!
//! The attempt deadline and the close deadline share one field: once a
//! connection has closed (FIN exchange or RST) it can never again be an
//! unanswered attempt (an endpoint that closed never returns to a handshake
//! state, and its peer is not inactive), so the attempt deadline is never
//! read again.

use super::{EpState, Reassembly, TcpConn, TcpEndpoint};
use crate::conn::history::{History, ScaledCounter, INLINE_LETTERS, MORE_BYTES};
use crate::conn::SideSlab;
use crate::record::EndReason;
use crate::time::Timestamp;

/// Bits of [`PackedTcp::flags`] (per endpoint, low nibble).
pub(super) mod flag {
    pub const DID_CLOSE: u8 = 1;
    pub const SEEN: u8 = 2;
    pub const FIN_SEEN: u8 = 4;
    /// `next`, `trim` and the wrap counts are in the extra slot.
    pub const WIDE: u8 = 8;
    /// Connection-wide bits, in `flags[0]`'s high nibble.
    pub const PARTIAL: u8 = 0x10;
    pub const CLOSE_SHIFT: u8 = 5;
    pub const CLOSE_MASK: u8 = 3 << CLOSE_SHIFT;
}

/// Index of each 32-bit value in [`PackedTcp::seq`]'s per-endpoint arrays.
pub(super) const START: usize = 0;
pub(super) const LAST: usize = 1;
pub(super) const ACK: usize = 2;
pub(super) const NEXT: usize = 3;
pub(super) const TRIM: usize = 4;

/// Wrap counts kept inline (4 bits each).
pub(super) const MAX_INLINE_WRAPS: u32 = 15;

/// The rarely set part of one TCP endpoint (see the module docs).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct ColdEp {
    pub(super) fin_seq: u64,
    pub(super) hist_last_syn: u32,
    pub(super) hist_last_fin: u32,
    pub(super) hist_last_rst: u32,
    pub(super) rxmit: ScaledCounter,
    pub(super) zero_window: ScaledCounter,
    pub(super) gaps: ScaledCounter,
}

/// Full sequence positions of a wide endpoint, in the connection's extra slot.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TcpWide {
    pub(super) next: u64,
    pub(super) trim: u64,
    pub(super) seq_wraps: u32,
    pub(super) ack_wraps: u32,
}

/// The rarely set part of a TCP connection (96 bytes), in its cold slot.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TcpCold {
    pub(super) ep: [ColdEp; 2],
    /// History letters past the inline ones.
    pub(super) more_letters: [u8; MORE_BYTES],
    pub(super) missed_bytes: u64,
    /// Out-of-order blocks in the table's [`super::OooSlab`] (slot + 1), 0 = none.
    pub(super) ooo: u32,
    /// The connection's [`Extra`](crate::conn::Extra) slot (slot + 1), 0 = none.
    pub(crate) extra: u32,
}

/// A TCP connection's state machine and history, packed (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PackedTcp {
    /// Attempt deadline until the connection closes, then its close
    /// deadline (nanoseconds, as two halves to keep 4-byte alignment).
    pub(super) at: [u32; 2],
    /// Per endpoint: start, last, ACK, next and trim ([`START`]...).
    pub(super) seq: [[u32; 5]; 2],
    /// Per endpoint: state | previous state << 4.
    pub(super) states: [u8; 2],
    /// Per endpoint: [`flag`] bits.
    pub(super) flags: [u8; 2],
    /// Per endpoint: sequence wraps | ACK wraps << 4 (unless wide).
    pub(super) wraps: [u8; 2],
    /// The history's inline part ([`History::split`]), in two halves.
    pub(super) history: [u32; 2],
}

pub(super) fn state_code(s: EpState) -> u8 {
    s as u8
}

/// [`EpState`] by its code (`state as u8`); codes past the last are
/// never stored and read as inactive.
const STATE_OF: [EpState; 16] = {
    let mut t = [EpState::Inactive; 16];
    t[1] = EpState::SynSent;
    t[2] = EpState::SynAckSent;
    t[3] = EpState::Partial;
    t[4] = EpState::Established;
    t[5] = EpState::Closed;
    t[6] = EpState::Reset;
    t
};

pub(super) fn state_of(code: u8) -> EpState {
    STATE_OF[usize::from(code & 0xf)]
}

/// The cold state of a connection that has none.
const NO_COLD_EP: ColdEp = ColdEp {
    fin_seq: 0,
    hist_last_syn: 0,
    hist_last_fin: 0,
    hist_last_rst: 0,
    rxmit: ScaledCounter::ZERO,
    zero_window: ScaledCounter::ZERO,
    gaps: ScaledCounter::ZERO,
};
static NO_COLD: TcpCold = TcpCold {
    ep: [NO_COLD_EP; 2],
    more_letters: [0; MORE_BYTES],
    missed_bytes: 0,
    ooo: 0,
    extra: 0,
};

impl ColdEp {
    fn is_empty(&self) -> bool {
        (self.fin_seq | u64::from(self.hist_last_syn | self.hist_last_fin | self.hist_last_rst))
            == 0
            && self.rxmit.is_zero()
            && self.zero_window.is_zero()
            && self.gaps.is_zero()
    }
}

pub(super) fn close_code(r: Option<EndReason>) -> u8 {
    match r {
        None => 0,
        Some(EndReason::Rst) => 2,
        // Only FIN and RST close a connection.
        Some(_) => 1,
    }
}

fn close_of(code: u8) -> Option<EndReason> {
    match code {
        1 => Some(EndReason::Fin),
        2 => Some(EndReason::Rst),
        _ => None,
    }
}

pub(super) fn split(t: Timestamp) -> [u32; 2] {
    let v = t.0 as u64;
    [v as u32, (v >> 32) as u32]
}

fn join(halves: [u32; 2]) -> Timestamp {
    Timestamp((u64::from(halves[0]) | u64::from(halves[1]) << 32) as i64)
}

impl PackedTcp {
    /// A new connection's state: inactive endpoints (which need no side
    /// slot) and `history`.
    pub(crate) fn new(history: History, side: &mut u32, slab: &mut SideSlab) -> Self {
        Self::with(&TcpConn::default(), &history, side, slab)
    }

    /// Packs `tcp` and `history`.
    fn with(tcp: &TcpConn, history: &History, side: &mut u32, slab: &mut SideSlab) -> Self {
        let mut p = PackedTcp {
            at: [0; 2],
            seq: [[0; 5]; 2],
            states: [0; 2],
            flags: [0; 2],
            wraps: [0; 2],
            history: [0; 2],
        };
        p.pack(tcp, history, side, slab);
        p
    }

    /// The history so far, with its letters in cold slot `side` of `slab`.
    pub(crate) fn history(&self, side: u32, slab: &SideSlab) -> History {
        let inline = u64::from(self.history[0]) | u64::from(self.history[1]) << 32;
        let more = slab
            .tcp
            .get(side)
            .map_or([0; MORE_BYTES], |c| c.more_letters);
        History::join(inline, &more)
    }

    /// State of the endpoint on key side `s`.
    pub(crate) fn state(&self, s: usize) -> EpState {
        state_of(self.code(s))
    }

    /// [`EpState`] code (`state as u8`) of the endpoint on key side `s`:
    /// compared without converting, on the hot path.
    pub(super) fn code(&self, s: usize) -> u8 {
        self.states[s & 1] & 0xf
    }

    /// Why the connection closed completely, if it has.
    pub(crate) fn close_reason(&self) -> Option<EndReason> {
        close_of((self.flags[0] & flag::CLOSE_MASK) >> flag::CLOSE_SHIFT)
    }

    /// The close deadline once closed, else the attempt deadline
    /// (`Timestamp(i64::MAX)` = not an attempt yet).
    pub(crate) fn at(&self) -> Timestamp {
        join(self.at)
    }

    /// Whether the connection left the handshake (the idle timeout switches
    /// from UDP's to TCP's): either endpoint is past `SynAckSent`.
    pub(crate) fn past_handshake(&self) -> bool {
        const LAST_HANDSHAKE: u8 = EpState::SynAckSent as u8;
        debug_assert!(EpState::Inactive.is_handshake() && EpState::SynSent.is_handshake());
        self.code(0) > LAST_HANDSHAKE || self.code(1) > LAST_HANDSHAKE
    }

    /// Neither endpoint has sent anything yet (the connection's first
    /// packet is about to be applied).
    pub(crate) fn untouched(&self) -> bool {
        self.code(0) == EpState::Inactive as u8 && self.code(1) == EpState::Inactive as u8
    }

    /// [`TcpConn::is_attempt`] without unpacking.
    pub(crate) fn is_attempt(&self, orig: usize) -> bool {
        let o = self.code(orig);
        (o == EpState::SynSent as u8 || o == EpState::SynAckSent as u8)
            && self.code(1 - (orig & 1)) == EpState::Inactive as u8
    }

    /// When the TCP state machine ends the connection, if it does: the
    /// close deadline once closed (FIN or RST), else the attempt deadline
    /// of an unanswered attempt.
    pub(crate) fn due(&self, orig: usize) -> Option<(Timestamp, EndReason)> {
        let at = self.at();
        match self.close_reason() {
            Some(r) => Some((at, r)),
            None if at.0 != i64::MAX && self.is_attempt(orig) => Some((at, EndReason::Idle)),
            None => None,
        }
    }

    /// The full state back.
    pub(crate) fn unpack(&self, side: u32, slab: &SideSlab) -> TcpConn {
        let cold = slab.tcp.get(side).unwrap_or(&NO_COLD);
        let closed = self.close_reason();
        let at = self.at();
        let endpoint = |s: usize| {
            let q = &self.seq[s];
            let c = &cold.ep[s];
            let f = self.flags[s];
            let wide = f & flag::WIDE != 0;
            let (next, trim, seq_wraps, ack_wraps) = if wide {
                let w = slab
                    .extra
                    .get(cold.extra)
                    .map(|x| x.tcp_wide[s])
                    .unwrap_or_default();
                (w.next, w.trim, w.seq_wraps, w.ack_wraps)
            } else {
                (
                    u64::from(q[NEXT]),
                    u64::from(q[TRIM]),
                    u32::from(self.wraps[s] & 0xf),
                    u32::from(self.wraps[s] >> 4),
                )
            };
            TcpEndpoint {
                state: state_of(self.states[s] & 0xf),
                prev_state: state_of(self.states[s] >> 4),
                did_close: f & flag::DID_CLOSE != 0,
                seen: f & flag::SEEN != 0,
                fin_seen: f & flag::FIN_SEEN != 0,
                start_seq: q[START],
                last_seq: q[LAST],
                ack_seq: q[ACK],
                seq_wraps,
                ack_wraps,
                fin_seq: c.fin_seq,
                hist_last_syn: c.hist_last_syn,
                hist_last_fin: c.hist_last_fin,
                hist_last_rst: c.hist_last_rst,
                rxmit: c.rxmit,
                zero_window: c.zero_window,
                gaps: c.gaps,
                reasm: Reassembly { next, trim },
            }
        };
        TcpConn {
            ep: [endpoint(0), endpoint(1)],
            is_partial: self.flags[0] & flag::PARTIAL != 0,
            close_reason: closed,
            close_at: if closed.is_some() { at } else { Timestamp(0) },
            attempt_at: if closed.is_some() {
                Timestamp(i64::MAX)
            } else {
                at
            },
            missed_bytes: cold.missed_bytes,
            ooo: cold.ooo,
        }
    }

    /// Stores `t` and `history`, moving what does not fit inline to the cold
    /// slot `side` of `slab` and its extra slot (allocated on first need).
    pub(crate) fn pack(
        &mut self,
        t: &TcpConn,
        history: &History,
        side: &mut u32,
        slab: &mut SideSlab,
    ) {
        let (inline, more_letters) = history.split();
        self.history = [inline as u32, (inline >> 32) as u32];
        let mut need_cold =
            *side != 0 || t.missed_bytes != 0 || t.ooo != 0 || history.len() > INLINE_LETTERS;
        let mut cold_ep = [NO_COLD_EP; 2];
        let mut wide_eps: Option<[TcpWide; 2]> = None;
        for (s, e) in t.ep.iter().enumerate() {
            let wide = self.flags[s] & flag::WIDE != 0
                || e.reasm.next > u64::from(u32::MAX)
                || e.reasm.trim > u64::from(u32::MAX)
                || e.seq_wraps > MAX_INLINE_WRAPS
                || e.ack_wraps > MAX_INLINE_WRAPS;
            self.seq[s] = [
                e.start_seq,
                e.last_seq,
                e.ack_seq,
                e.reasm.next as u32,
                e.reasm.trim as u32,
            ];
            self.states[s] = state_code(e.state) | state_code(e.prev_state) << 4;
            self.flags[s] = (u8::from(e.did_close) * flag::DID_CLOSE)
                | (u8::from(e.seen) * flag::SEEN)
                | (u8::from(e.fin_seen) * flag::FIN_SEEN)
                | (u8::from(wide) * flag::WIDE);
            self.wraps[s] = if wide {
                0
            } else {
                (e.seq_wraps | e.ack_wraps << 4) as u8
            };
            let c = ColdEp {
                fin_seq: e.fin_seq,
                hist_last_syn: e.hist_last_syn,
                hist_last_fin: e.hist_last_fin,
                hist_last_rst: e.hist_last_rst,
                rxmit: e.rxmit,
                zero_window: e.zero_window,
                gaps: e.gaps,
            };
            if wide {
                wide_eps.get_or_insert_with(Default::default)[s] = TcpWide {
                    next: e.reasm.next,
                    trim: e.reasm.trim,
                    seq_wraps: e.seq_wraps,
                    ack_wraps: e.ack_wraps,
                };
            }
            need_cold |= wide || !c.is_empty();
            cold_ep[s] = c;
        }
        if t.is_partial {
            self.flags[0] |= flag::PARTIAL;
        }
        self.flags[0] |= close_code(t.close_reason) << flag::CLOSE_SHIFT;
        self.at = split(if t.close_reason.is_some() {
            t.close_at
        } else {
            t.attempt_at
        });
        if need_cold {
            let cold = slab.tcp.get_or_alloc(side);
            cold.ep = cold_ep;
            cold.more_letters = more_letters;
            cold.missed_bytes = t.missed_bytes;
            cold.ooo = t.ooo;
            if let Some(w) = wide_eps {
                slab.extra.get_or_alloc(&mut cold.extra).tcp_wide = w;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state with every field set to something other than its default,
    /// including values that need the wide form.
    fn busy(wide: bool) -> TcpConn {
        let mut t = TcpConn::default();
        for (s, e) in t.ep.iter_mut().enumerate() {
            let k = s as u32 + 1;
            e.state = EpState::Closed;
            e.prev_state = EpState::Established;
            e.did_close = true;
            e.seen = true;
            e.fin_seen = s == 0;
            e.start_seq = 0xffff_0000 + k;
            e.last_seq = 7 * k;
            e.ack_seq = 9 * k;
            e.seq_wraps = if wide { 300 } else { 15 };
            e.ack_wraps = if wide { 16 } else { 3 };
            e.fin_seq = 5_000_000_000 + u64::from(k);
            e.hist_last_syn = k;
            e.hist_last_fin = 2 * k;
            e.hist_last_rst = 3 * k;
            for _ in 0..k * 11 {
                e.rxmit.bump();
                e.gaps.bump();
            }
            e.zero_window.bump();
            e.reasm = Reassembly {
                next: if wide { 1 << 40 } else { u64::from(u32::MAX) },
                trim: 12_345 * u64::from(k),
            };
        }
        t.is_partial = true;
        t.close_reason = Some(EndReason::Rst);
        t.close_at = Timestamp(-1_234_567_890_123);
        t.attempt_at = Timestamp(i64::MAX);
        t.missed_bytes = 1 << 33;
        t.ooo = 4;
        t
    }

    #[test]
    fn packing_gives_back_every_value() {
        for wide in [false, true] {
            let mut slab = SideSlab::default();
            let mut side = 0;
            let t = busy(wide);
            let mut h = History::default();
            for _ in 0..12 {
                h.add(wide, b'T');
            }
            let p = PackedTcp::with(&t, &h, &mut side, &mut slab);
            assert_ne!(side, 0, "cold values need a side slot");
            assert_eq!(p.unpack(side, &slab), t, "wide: {wide}");
            assert_eq!(p.history(side, &slab), h);
            assert_eq!(p.state(0), EpState::Closed);
            assert_eq!(p.close_reason(), Some(EndReason::Rst));
            assert_eq!(p.at(), t.close_at);
        }
    }

    #[test]
    fn a_fresh_or_clean_connection_needs_no_side_slot() {
        let mut slab = SideSlab::default();
        let mut side = 0;
        let mut t = TcpConn::default();
        let mut p = PackedTcp::new(History::default(), &mut side, &mut slab);
        assert_eq!(p.unpack(side, &slab), t);
        t.ep[0].state = EpState::Established;
        t.ep[0].start_seq = u32::MAX;
        t.ep[0].last_seq = 1000;
        t.ep[0].seq_wraps = 1;
        t.ep[1].reasm.next = 1 << 31;
        t.attempt_at = Timestamp(5_000_000_000);
        p.pack(&t, &History::default(), &mut side, &mut slab);
        assert_eq!(side, 0);
        assert_eq!(p.unpack(side, &slab), t);
        assert!(p.is_attempt(0) || p.state(0) == EpState::Established);
    }

    const STATES: [EpState; 7] = [
        EpState::Inactive,
        EpState::SynSent,
        EpState::SynAckSent,
        EpState::Partial,
        EpState::Established,
        EpState::Closed,
        EpState::Reset,
    ];

    /// One endpoint from arbitrary values; sizes drawn around the inline
    /// limits (4 GiB positions, 16 wraps) so both forms are exercised.
    fn endpoint(v: &[u64]) -> TcpEndpoint {
        let around = |x: u64, limit: u64| {
            if x % 2 == 0 {
                x % limit
            } else {
                limit - 2 + x % 5
            }
        };
        let mut e = TcpEndpoint {
            state: STATES[v[0] as usize % 7],
            prev_state: STATES[v[1] as usize % 7],
            did_close: v[2] & 1 != 0,
            seen: v[2] & 2 != 0,
            fin_seen: v[2] & 4 != 0,
            start_seq: v[3] as u32,
            last_seq: (v[3] >> 32) as u32,
            ack_seq: v[4] as u32,
            seq_wraps: around(v[5], 16) as u32,
            ack_wraps: around(v[6], 16) as u32,
            fin_seq: if v[2] & 8 != 0 { v[7] } else { 0 },
            reasm: Reassembly {
                next: around(v[8], 1 << 32),
                trim: around(v[9], 1 << 32),
            },
            ..TcpEndpoint::default()
        };
        if v[2] & 16 != 0 {
            e.hist_last_syn = v[4] as u32;
            e.hist_last_fin = (v[4] >> 32) as u32;
            e.hist_last_rst = v[7] as u32;
            for _ in 0..v[10] % 30 {
                e.rxmit.bump();
            }
            for _ in 0..v[10] % 7 {
                e.zero_window.bump();
                e.gaps.bump();
            }
        }
        e
    }

    proptest::proptest! {
        /// Packing then unpacking gives back any state the machine can
        /// hold (attempt and close deadlines as it uses them) and any
        /// history, whatever goes inline or out of line.
        #[test]
        fn packing_round_trips_any_state(
            a in proptest::collection::vec(proptest::prelude::any::<u64>(), 11),
            b in proptest::collection::vec(proptest::prelude::any::<u64>(), 11),
            conn in proptest::prelude::any::<(u8, i64, u64, u32, bool)>(),
            letters in proptest::collection::vec(0usize..23, 0..32),
        ) {
            let (close, at, missed, ooo, partial) = conn;
            let close_reason = match close % 3 {
                0 => None,
                1 => Some(EndReason::Fin),
                _ => Some(EndReason::Rst),
            };
            let t = TcpConn {
                ep: [endpoint(&a), endpoint(&b)],
                is_partial: partial,
                close_reason,
                close_at: if close_reason.is_some() { Timestamp(at) } else { Timestamp(0) },
                attempt_at: if close_reason.is_some() { Timestamp(i64::MAX) } else { Timestamp(at) },
                missed_bytes: if close % 2 == 0 { missed } else { 0 },
                ooo: ooo % 3,
            };
            let mut h = History::default();
            for (i, &l) in letters.iter().enumerate() {
                h.add(i % 2 == 0, b"^SHADFRIQTWGshadfriqtwg"[l]);
            }
            let mut slab = SideSlab::default();
            let mut side = 0;
            let mut p = PackedTcp::new(History::default(), &mut side, &mut slab);
            p.pack(&t, &h, &mut side, &mut slab);
            proptest::prop_assert_eq!(p.unpack(side, &slab), t);
            proptest::prop_assert_eq!(p.history(side, &slab), h);
            // Packing the unpacked state again changes nothing.
            let before = p.clone();
            let again = p.unpack(side, &slab);
            p.pack(&again, &h, &mut side, &mut slab);
            proptest::prop_assert_eq!(p, before);
        }
    }

    #[test]
    fn packed_state_fits_its_budget() {
        assert!(std::mem::size_of::<PackedTcp>() <= 64);
        assert!(std::mem::size_of::<TcpCold>() <= 96);
    }
}
