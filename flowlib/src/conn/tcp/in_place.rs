//! Zeek's TCP machine run directly on the packed state ([`PackedTcp`]):
//! a packet reads and writes the inline fields where they are (states,
//! flags, 32-bit sequence numbers, the history's seen bits and first
//! letters) and touches the connection's cold slot only for what lives
//! there (FIN / SYN / RST positions, scaled counters, missed bytes, letters
//! past the ninth, out-of-order blocks), allocating it on the first value
//! that is not zero. An endpoint whose positions outgrow 32 bits, or whose
//! wrap counts outgrow 4, becomes wide: its values move to the extra slot,
//! in full.
//!
//! The logic is that of [`TcpConn::segment`](super::TcpConn), step for
//! step; a property test runs both on the same segments and compares every
//! value.

use super::packed::{
    flag, state_code, state_of, PackedTcp, TcpCold, TcpWide, ACK, LAST, MAX_INLINE_WRAPS, NEXT,
    START, TRIM,
};
use super::{
    relative_seq, seq_delta, side_blocks, Data, EpState, OooSlab, Reassembly, SegmentOutcome,
    TOO_LARGE_SEQ_DELTA,
};
use crate::conn::history::{bit, cased, letter_code, INLINE_LETTERS, MAX_LEN};
use crate::conn::SideSlab;
use crate::decode::TcpSegment;
use crate::record::EndReason;
use crate::time::Timestamp;

/// Bit of the history word where the length starts (after 2 x 7 seen bits).
const LEN_SHIFT: u32 = 14;
/// Bit of the history word where the inline letters start.
const LETTERS_SHIFT: u32 = 19;

/// A TCP connection's side slots: its cold slot id (in the connection's
/// common part) and the table's side slabs.
pub(crate) struct Side<'a> {
    /// The connection's [`TcpCold`] slot (slot + 1), 0 = none yet.
    pub(crate) id: &'a mut u32,
    /// The table's side slabs.
    pub(crate) slab: &'a mut SideSlab,
}

impl Side<'_> {
    fn cold(&self) -> Option<&TcpCold> {
        self.slab.tcp.get(*self.id)
    }

    fn cold_mut(&mut self) -> &mut TcpCold {
        self.slab.tcp.get_or_alloc(self.id)
    }

    /// The full positions of wide endpoint `s`.
    fn wide(&self, s: usize) -> TcpWide {
        self.cold()
            .and_then(|c| self.slab.extra.get(c.extra))
            .map(|x| x.tcp_wide[s])
            .unwrap_or_default()
    }

    fn wide_mut(&mut self, s: usize) -> &mut TcpWide {
        let cold = self.slab.tcp.get_or_alloc(self.id);
        &mut self.slab.extra.get_or_alloc(&mut cold.extra).tcp_wide[s]
    }

    /// Sets a cold value through `f`, unless it is zero and there is no
    /// cold slot (a missing slot reads as zero).
    fn set_cold(&mut self, nonzero: bool, f: impl FnOnce(&mut TcpCold)) {
        if nonzero || *self.id != 0 {
            f(self.cold_mut());
        }
    }

    fn fin_seq(&self, s: usize) -> u64 {
        self.cold().map_or(0, |c| c.ep[s].fin_seq)
    }

    fn ooo(&self) -> u32 {
        self.cold().map_or(0, |c| c.ooo)
    }
}

/// Which scaled counter of an endpoint.
#[derive(Copy, Clone)]
enum Counter {
    Rxmit,
    ZeroWindow,
    Gaps,
}

impl PackedTcp {
    fn has(&self, s: usize, f: u8) -> bool {
        self.flags[s] & f != 0
    }

    fn set(&mut self, s: usize, f: u8) {
        self.flags[s] |= f;
    }

    fn prev_state(&self, s: usize) -> EpState {
        state_of(self.states[s] >> 4)
    }

    fn set_state(&mut self, s: usize, st: EpState) {
        let cur = self.states[s] & 0xf;
        if state_code(st) != cur {
            self.states[s] = state_code(st) | cur << 4;
        }
    }

    fn is_partial(&self) -> bool {
        self.flags[0] & flag::PARTIAL != 0
    }

    fn set_partial(&mut self, on: bool) {
        if on {
            self.flags[0] |= flag::PARTIAL;
        } else {
            self.flags[0] &= !flag::PARTIAL;
        }
    }

    fn is_wide(&self, s: usize) -> bool {
        self.has(s, flag::WIDE)
    }

    /// Moves endpoint `s`'s positions and wrap counts to the extra slot.
    #[cold]
    #[inline(never)]
    fn widen<'s>(&mut self, side: &'s mut Side<'_>, s: usize) -> &'s mut TcpWide {
        if !self.is_wide(s) {
            let w = TcpWide {
                next: u64::from(self.seq[s][NEXT]),
                trim: u64::from(self.seq[s][TRIM]),
                seq_wraps: u32::from(self.wraps[s] & 0xf),
                ack_wraps: u32::from(self.wraps[s] >> 4),
            };
            self.seq[s][NEXT] = 0;
            self.seq[s][TRIM] = 0;
            self.wraps[s] = 0;
            self.set(s, flag::WIDE);
            *side.wide_mut(s) = w;
        }
        side.wide_mut(s)
    }

    fn seq_wraps(&self, side: &Side<'_>, s: usize) -> u32 {
        if self.is_wide(s) {
            side.wide(s).seq_wraps
        } else {
            u32::from(self.wraps[s] & 0xf)
        }
    }

    fn ack_wraps(&self, side: &Side<'_>, s: usize) -> u32 {
        if self.is_wide(s) {
            side.wide(s).ack_wraps
        } else {
            u32::from(self.wraps[s] >> 4)
        }
    }

    fn set_seq_wraps(&mut self, side: &mut Side<'_>, s: usize, v: u32) {
        if !self.is_wide(s) && v <= MAX_INLINE_WRAPS {
            self.wraps[s] = (self.wraps[s] & 0xf0) | v as u8;
        } else {
            self.widen(side, s).seq_wraps = v;
        }
    }

    fn set_ack_wraps(&mut self, side: &mut Side<'_>, s: usize, v: u32) {
        if !self.is_wide(s) && v <= MAX_INLINE_WRAPS {
            self.wraps[s] = (self.wraps[s] & 0x0f) | (v as u8) << 4;
        } else {
            self.widen(side, s).ack_wraps = v;
        }
    }

    /// Endpoint `s`'s reassembly positions.
    fn reasm(&self, side: &Side<'_>, s: usize) -> Reassembly {
        if self.is_wide(s) {
            let w = side.wide(s);
            Reassembly {
                next: w.next,
                trim: w.trim,
            }
        } else {
            Reassembly {
                next: u64::from(self.seq[s][NEXT]),
                trim: u64::from(self.seq[s][TRIM]),
            }
        }
    }

    #[inline(always)]
    fn set_reasm(&mut self, side: &mut Side<'_>, s: usize, r: Reassembly) {
        let fits = r.next <= u64::from(u32::MAX) && r.trim <= u64::from(u32::MAX);
        if !self.is_wide(s) && fits {
            self.seq[s][NEXT] = r.next as u32;
            self.seq[s][TRIM] = r.trim as u32;
        } else {
            let w = self.widen(side, s);
            w.next = r.next;
            w.trim = r.trim;
        }
    }

    /// Zeek's `InitSeq` for endpoint `s`.
    fn init_seq(&mut self, side: &mut Side<'_>, s: usize, start: u32, last: u32) {
        self.seq[s][START] = start;
        self.seq[s][ACK] = start;
        self.seq[s][LAST] = last;
        self.set_seq_wraps(side, s, 0);
        self.set_ack_wraps(side, s, 0);
    }

    #[inline(always)]
    fn update_last_seq_value(&mut self, side: &mut Side<'_>, s: usize, v: u32) {
        if v < self.seq[s][LAST] {
            let w = self.seq_wraps(side, s) + 1;
            self.set_seq_wraps(side, s, w);
        }
        self.seq[s][LAST] = v;
    }

    fn is_clean(&self, s: usize) -> bool {
        let st = self.code(s);
        st == EpState::Established as u8
            || (st == EpState::Closed as u8 && self.prev_state(s) == EpState::Established)
    }

    /// Counts one occurrence on endpoint `s`'s counter; whether to record it.
    fn bump(side: &mut Side<'_>, s: usize, which: Counter) -> bool {
        let ep = &mut side.cold_mut().ep[s];
        match which {
            Counter::Rxmit => ep.rxmit.bump(),
            Counter::ZeroWindow => ep.zero_window.bump(),
            Counter::Gaps => ep.gaps.bump(),
        }
    }

    fn history_word(&self) -> u64 {
        u64::from(self.history[0]) | u64::from(self.history[1]) << 32
    }

    fn set_history_word(&mut self, h: u64) {
        self.history = [h as u32, (h >> 32) as u32];
    }

    /// [`History::check`](crate::conn::history::History::check) in place.
    fn hist_check(&mut self, side: &mut Side<'_>, is_orig: bool, mask: u16, letter: u8) -> bool {
        let m = u64::from(mask & 0x7f) << if is_orig { 0 } else { 7 };
        let h = self.history_word();
        if h & m != 0 {
            return true;
        }
        self.set_history_word(h | m);
        self.hist_push(side, cased(is_orig, letter));
        false
    }

    /// [`History::add`](crate::conn::history::History::add) in place.
    fn hist_add(&mut self, side: &mut Side<'_>, is_orig: bool, letter: u8) {
        self.hist_push(side, cased(is_orig, letter));
    }

    /// Appends a letter: inline while there is room, then in the cold slot.
    fn hist_push(&mut self, side: &mut Side<'_>, c: u8) {
        let mut h = self.history_word();
        let len = (h >> LEN_SHIFT & 0x1f) as usize;
        if len >= MAX_LEN {
            return;
        }
        let code = letter_code(c);
        debug_assert!(code != 0, "history letter {c} outside the alphabet");
        if code == 0 {
            return;
        }
        if len < INLINE_LETTERS {
            h |= u64::from(code) << (LETTERS_SHIFT as usize + 5 * len);
        } else {
            let more = &mut side.cold_mut().more_letters;
            let b = (len - INLINE_LETTERS) * 5;
            for k in 0..5 {
                if code >> k & 1 != 0 {
                    more[(b + k) / 8] |= 1 << ((b + k) % 8);
                }
            }
        }
        h += 1 << LEN_SHIFT;
        self.set_history_word(h);
    }

    /// Sets the attempt deadline of a connection not yet closed, or the
    /// close deadline.
    fn set_at(&mut self, t: Timestamp) {
        self.at = super::packed::split(t);
    }

    /// Sets when an unanswered attempt is given up, the first time the
    /// connection is one (see [`TcpConn::attempt_at`](super::TcpConn)).
    pub(crate) fn note_attempt(&mut self, orig: usize, at: impl FnOnce() -> Timestamp) {
        if self.close_reason().is_none() && self.at().0 == i64::MAX && self.is_attempt(orig) {
            self.set_at(at());
        }
    }

    /// Records the complete close (FIN exchange, or RST) at `at` + the close
    /// delay, once.
    pub(crate) fn note_close(&mut self, at: Timestamp) {
        if self.close_reason().is_some() {
            return;
        }
        let reset = self.code(0) == EpState::Reset as u8 || self.code(1) == EpState::Reset as u8;
        let code = if reset { 2 } else { 1 };
        debug_assert_eq!(
            super::packed::close_code(Some(if reset {
                EndReason::Rst
            } else {
                EndReason::Fin
            })),
            code
        );
        self.flags[0] = (self.flags[0] & !flag::CLOSE_MASK) | code << flag::CLOSE_SHIFT;
        self.set_at(at);
    }

    /// [`TcpConn::is_reuse`](super::TcpConn) on the packed state: does
    /// this SYN start a new connection on the same tuple?
    pub(crate) fn is_reuse(&self, seg: &TcpSegment<'_>, orig: usize) -> bool {
        if !seg.flags.syn() {
            return false;
        }
        let resp = 1 - orig;
        let mut conn_orig = orig;
        if seg.flags.ack() {
            if self.code(orig) != EpState::Inactive as u8 {
                return false;
            }
            conn_orig = resp;
        }
        if !(self.has(0, flag::DID_CLOSE) || self.has(1, flag::DID_CLOSE)) {
            if seg.seq == self.seq[conn_orig][START] {
                return false;
            }
            if !seg.flags.ack()
                && self.code(conn_orig) == EpState::SynAckSent as u8
                && self.code(resp) == EpState::Inactive as u8
                && seg.seq == self.seq[resp][START]
            {
                return false;
            }
        }
        true
    }

    /// [`TcpConn::segment`](super::TcpConn) on the packed state: processes
    /// one segment sent by `s`; `orig` is the originator's side (flipped in
    /// place on a SYN / SYN-ACK reversal). `complete` says the payload was
    /// fully captured.
    // One caller (`Conn::update`); inlined there it costs about 40
    // instructions a packet less (callgrind).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(crate) fn segment(
        &mut self,
        side: &mut Side<'_>,
        seg: &TcpSegment<'_>,
        s: usize,
        orig: &mut usize,
        complete: bool,
        ooo: &mut OooSlab,
    ) -> SegmentOutcome {
        let p = 1 - s;
        let mut out = SegmentOutcome::default();
        let flags = seg.flags;
        let (syn, fin, rst, ack) = (flags.syn(), flags.fin(), flags.rst(), flags.ack());
        let len = seg.payload_len;
        let is_orig = s == *orig;

        // Zeek's SetPartialStatus.
        if is_orig {
            if !self.has(s, flag::SEEN) {
                self.set_partial(!syn || ack);
            }
        } else if !self.has(s, flag::SEEN) && !self.is_partial() {
            self.set_partial(!syn);
        }

        let seg_len = if rst {
            u32::from(syn) + u32::from(fin)
        } else {
            len.wrapping_add(u32::from(syn) + u32::from(fin))
        };
        let seq_one_past = seg.seq.wrapping_add(seg_len);
        self.init_endpoint(side, s, syn, seg.seq, seq_one_past);

        let rel = relative_seq(
            self.seq[s][START],
            seg.seq,
            self.seq[s][LAST],
            self.seq_wraps(side, s),
        );
        let underflow = rel.is_none();
        let rel_seq = rel.map_or(-1, |v| v as i64);
        // Before the start, Zeek's relative number is the (wrapped)
        // distance back: two resets there are two places, not one.
        let hist_seq = rel.map_or_else(
            || i64::from(seq_delta(seg.seq, self.seq[s][START])),
            |v| v as i64,
        );

        self.history_letters(side, s, is_orig, syn, fin, rst, ack, hist_seq, len);

        // Zero window (W/w), before the state machine.
        if seg.window == 0
            && !rst
            && self.code(p) != EpState::Closed as u8
            && self.code(s) != EpState::Reset as u8
            && Self::bump(side, s, Counter::ZeroWindow)
        {
            self.hist_add(side, is_orig, b'W');
        }

        out.touch = !(self.has(0, flag::DID_CLOSE) && self.has(1, flag::DID_CLOSE));

        if fin {
            self.set(s, flag::FIN_SEEN);
            let v = (rel_seq.max(0) as u64).wrapping_add(u64::from(seg_len));
            side.set_cold(v != 0, |c| c.ep[s].fin_seq = v);
        }

        let mut rel_ack: Option<u64> = None;
        if ack {
            if self.code(p) == EpState::Inactive as u8 {
                rel_ack = Some(1);
                let a = seg.ack.wrapping_sub(1);
                self.init_seq(side, p, a, a);
            } else {
                let peer_ack = self.seq[p][ACK];
                let r = relative_seq(
                    self.seq[p][START],
                    seg.ack,
                    peer_ack,
                    self.ack_wraps(side, p),
                );
                if r.is_some() && !rst {
                    let delta = seq_delta(seg.ack, peer_ack);
                    if delta > 0 && !(seg.ack == 0 && delta > TOO_LARGE_SEQ_DELTA) {
                        if seg.ack < peer_ack {
                            let w = self.ack_wraps(side, p) + 1;
                            self.set_ack_wraps(side, p, w);
                        }
                        self.seq[p][ACK] = seg.ack;
                    }
                }
                rel_ack = r;
            }
        }

        self.update_last_seq(side, s, is_orig, seq_one_past, syn, fin, rst, len);

        let (do_close, flipped) = self.state_machine(s, *orig, syn, fin, rst, ack, seg.seq, len);
        if flipped {
            *orig = 1 - *orig;
            self.hist_push(side, b'^');
            out.flipped = true;
        }

        if let Some(rel_ack) = rel_ack {
            self.ack_received(side, p, rel_ack, *orig, ooo);
        }

        let rel_data_seq = if syn { rel_seq + 1 } else { rel_seq };
        if len > 0 && complete && !rst && !underflow {
            let start = rel_data_seq.max(0) as u64;
            let mut reasm = self.reasm(side, s);
            match reasm.data(start, start + u64::from(len)) {
                Some(Data::InOrder) => {
                    if let Some(b) = side_blocks(ooo, side.ooo(), s) {
                        reasm.absorb_blocks(b);
                    }
                    self.set_reasm(side, s, reasm);
                }
                None => {}
                Some(Data::OutOfOrder(start, end)) => {
                    let mut id = side.ooo();
                    if id == 0 {
                        id = ooo.alloc();
                        side.cold_mut().ooo = id;
                    }
                    if let Some(b) = side_blocks(ooo, id, s) {
                        b.insert(start, end);
                    }
                }
            }
        }

        if do_close && !self.has(s, flag::DID_CLOSE) {
            self.set(s, flag::DID_CLOSE);
            out.close_complete = self.code(s) == EpState::Reset as u8
                || self.has(p, flag::DID_CLOSE)
                || self.code(p) == EpState::Inactive as u8;
        }
        self.set(s, flag::SEEN);
        let id = side.ooo();
        if id != 0 {
            let both = id.checked_sub(1).and_then(|i| ooo.slots.get(i as usize));
            if both.is_none_or(|[b0, b1]| b0.n == 0 && b1.n == 0) {
                ooo.release(id);
                side.cold_mut().ooo = 0;
            }
        }
        out
    }

    /// Zeek's `init_endpoint`: (re)initialises the sender's sequence space.
    fn init_endpoint(
        &mut self,
        side: &mut Side<'_>,
        s: usize,
        syn: bool,
        seq: u32,
        seq_one_past: u32,
    ) {
        match self.state(s) {
            EpState::Inactive => {
                if syn {
                    self.init_seq(side, s, seq, seq_one_past);
                } else {
                    self.init_seq(side, s, seq.wrapping_sub(1), seq);
                }
            }
            EpState::SynSent | EpState::SynAckSent => {
                if syn && seq != self.seq[s][START] {
                    self.init_seq(side, s, seq, seq_one_past);
                }
            }
            EpState::Established | EpState::Partial => {
                if syn {
                    self.init_seq(side, s, seq, seq_one_past);
                }
            }
            EpState::Reset => {
                if syn && self.prev_state(s) == EpState::Inactive {
                    self.init_seq(side, s, seq, seq_one_past);
                }
            }
            EpState::Closed => {}
        }
    }

    /// The history letters for the segment's flags (before the state machine).
    #[allow(clippy::too_many_arguments)]
    fn history_letters(
        &mut self,
        side: &mut Side<'_>,
        s: usize,
        is_orig: bool,
        syn: bool,
        fin: bool,
        rst: bool,
        ack: bool,
        rel_seq: i64,
        len: u32,
    ) {
        let bits = u32::from(syn) + u32::from(fin) + u32::from(rst);
        // Compared in 32 bits: a repeat 4 GiB away is not told apart.
        let rel = rel_seq as u32;
        if bits >= 2 {
            if fin && rst {
                self.hist_check(side, is_orig, bit::FIN_RST, b'I');
            } else {
                self.hist_check(side, is_orig, bit::MULTI_FLAG, b'Q');
            }
        } else if bits == 1 {
            let last = side.cold().map(|c| c.ep[s]).unwrap_or_default();
            if syn {
                let letter = if ack { b'H' } else { b'S' };
                if self.hist_check(side, is_orig, bit::SYN, letter) && rel != last.hist_last_syn {
                    self.hist_add(side, is_orig, letter);
                }
                side.set_cold(rel != 0, |c| c.ep[s].hist_last_syn = rel);
            }
            if fin {
                let key = (rel_seq + i64::from(len)) as u32;
                if self.hist_check(side, is_orig, bit::FIN, b'F') && key != last.hist_last_fin {
                    self.hist_add(side, is_orig, b'F');
                }
                side.set_cold(key != 0, |c| c.ep[s].hist_last_fin = key);
            }
            if rst {
                if self.hist_check(side, is_orig, bit::RST, b'R') && rel != last.hist_last_rst {
                    self.hist_add(side, is_orig, b'R');
                }
                side.set_cold(rel != 0, |c| c.ep[s].hist_last_rst = rel);
            }
        } else if len > 0 {
            self.hist_check(side, is_orig, bit::DATA, b'D');
        } else if ack {
            self.hist_check(side, is_orig, bit::ACK, b'A');
        }
    }

    /// Zeek's `update_last_seq`, incl. retransmission detection (T/t).
    #[allow(clippy::too_many_arguments)]
    fn update_last_seq(
        &mut self,
        side: &mut Side<'_>,
        s: usize,
        is_orig: bool,
        last: u32,
        syn: bool,
        fin: bool,
        rst: bool,
        len: u32,
    ) {
        let (start_seq, last_seq) = (self.seq[s][START], self.seq[s][LAST]);
        let delta = seq_delta(last, last_seq);
        if (syn || rst) && !(-TOO_LARGE_SEQ_DELTA..=TOO_LARGE_SEQ_DELTA).contains(&delta) {
            // Not trusted.
        } else if fin && last_seq == start_seq.wrapping_add(1) {
            self.update_last_seq_value(side, s, last);
        } else if self.code(s) == EpState::Reset as u8 {
            // Nothing after a RST is trusted.
        } else if delta > 0 {
            self.update_last_seq_value(side, s, last);
        } else if len > 0 && Self::bump(side, s, Counter::Rxmit) {
            self.hist_add(side, is_orig, b'T');
        }
    }

    /// Zeek's `UpdateStateMachine`; returns (close this endpoint, roles flipped).
    #[allow(clippy::too_many_arguments)]
    fn state_machine(
        &mut self,
        s: usize,
        orig: usize,
        syn: bool,
        fin: bool,
        rst: bool,
        ack: bool,
        seq: u32,
        len: u32,
    ) -> (bool, bool) {
        use EpState::*;
        let p = 1 - s;
        let is_orig = s == orig;
        let mut do_close = false;
        let mut flipped = false;
        match self.state(s) {
            Inactive => {
                if syn {
                    if is_orig {
                        self.set_state(s, if ack { SynAckSent } else { SynSent });
                    } else {
                        if !ack && self.state(p) == SynAckSent && seq == self.seq[s][START] {
                            // SYN / SYN-ACK reversal: the SYN-ACK sender was
                            // really the responder.
                            self.set_partial(false);
                            flipped = true;
                            self.set_state(p, Established);
                        }
                        if self.state(p) == SynSent {
                            self.set_state(p, Established);
                        }
                        self.set_state(s, Established);
                    }
                }
                if fin {
                    self.set_state(s, Closed);
                    do_close = true;
                }
                if rst {
                    self.set_state(s, Reset);
                    do_close = true;
                }
                if self.state(s) == Inactive {
                    if !is_orig && len == 0 && self.state(p) == SynSent {
                        // An ACK of a SYN sent before the SYN-ACK: stay inactive.
                    } else if ack && self.state(p) == Established {
                        self.set_state(s, Established);
                        self.set_partial(false);
                    } else {
                        self.set_state(s, Partial);
                    }
                }
            }
            SynSent | SynAckSent => {
                if fin {
                    self.set_state(s, Closed);
                    do_close = true;
                }
                if rst {
                    self.set_state(s, Reset);
                    do_close = true;
                }
            }
            Established | Partial => {
                if syn && self.state(s) == Partial && self.state(p) == Inactive && !ack {
                    self.set_state(s, SynSent);
                }
                if fin && !rst {
                    self.set_state(s, Closed);
                    if self.state(p) == Reset && self.prev_state(p) == Closed {
                        self.set_state(p, Closed);
                    }
                    do_close = true;
                } else if rst {
                    self.set_state(s, Reset);
                    do_close = true;
                }
            }
            Closed => {
                if rst && self.state(p) != Closed {
                    self.set_state(s, Reset);
                    if !self.has(s, flag::DID_CLOSE) {
                        do_close = true;
                    }
                }
            }
            Reset => {}
        }
        (do_close, flipped)
    }

    /// The peer acknowledged up to `rel_ack` of side `e`'s data: trims, and
    /// counts never-received bytes below it as gaps.
    fn ack_received(
        &mut self,
        side: &mut Side<'_>,
        e: usize,
        rel_ack: u64,
        orig: usize,
        ooo: &mut OooSlab,
    ) {
        let clean = self.is_clean(0) && self.is_clean(1);
        let mut seq = rel_ack;
        if self.has(e, flag::FIN_SEEN) {
            let fin_seq = side.fin_seq(e);
            if seq >= fin_seq {
                seq = fin_seq.saturating_sub(1);
            }
        }
        let mut reasm = self.reasm(side, e);
        if seq <= reasm.trim {
            return;
        }
        reasm.trim = seq;
        if seq <= reasm.next || (seq <= 2 && self.is_partial()) {
            self.set_reasm(side, e, reasm);
            return;
        }
        let mut missed = 0;
        let mut gaps = 0;
        let blocks = side_blocks(ooo, side.ooo(), e);
        reasm.undelivered(seq, blocks, |n| {
            missed += n;
            gaps += 1;
        });
        self.set_reasm(side, e, reasm);
        if clean && missed > 0 {
            side.cold_mut().missed_bytes += missed;
            for _ in 0..gaps {
                if Self::bump(side, e, Counter::Gaps) {
                    self.hist_add(side, e == orig, b'G');
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::TcpConn;
    use super::*;
    use crate::conn::history::History;
    use crate::decode::TcpFlags;

    /// One segment for [`run_both`]: sender side, flags, seq, ack, window,
    /// payload length, fully captured.
    type Seg = (usize, u8, u32, u32, u16, u32, bool);

    /// Runs `segs` through the reference machine on the unpacked state and
    /// through the in-place machine on the packed state, checking after
    /// every segment that both hold the same values, history and roles and
    /// report the same outcome. Returns the packed side slot used.
    fn run_both(flipped: bool, segs: &[Seg]) -> (u32, SideSlab) {
        let mut history = History::default();
        if flipped {
            history.flip();
        }
        let mut slab = SideSlab::default();
        let mut id = 0;
        let mut packed = PackedTcp::new(history, &mut id, &mut slab);
        let mut reference = TcpConn::default();
        let (mut ooo_ref, mut ooo_packed) = (OooSlab::default(), OooSlab::default());
        let start_orig = usize::from(flipped);
        let (mut orig_ref, mut orig_packed) = (start_orig, start_orig);
        for (i, &(s, flags, seq, ack, window, len, complete)) in segs.iter().enumerate() {
            let seg = TcpSegment {
                src_port: 1,
                dst_port: 2,
                seq,
                ack,
                flags: TcpFlags(flags),
                window,
                payload_len: len,
                payload: &[],
            };
            assert_eq!(
                packed.is_reuse(&seg, orig_packed),
                reference.is_reuse(&seg, orig_ref),
                "segment {i}: reuse"
            );
            let a = reference.segment(&seg, s, &mut orig_ref, complete, &mut history, &mut ooo_ref);
            let mut side = Side {
                id: &mut id,
                slab: &mut slab,
            };
            let b = packed.segment(
                &mut side,
                &seg,
                s,
                &mut orig_packed,
                complete,
                &mut ooo_packed,
            );
            let at = format!("segment {i}: {seg:?}");
            assert_eq!(
                (a.touch, a.flipped, a.close_complete),
                (b.touch, b.flipped, b.close_complete),
                "{at}"
            );
            assert_eq!(orig_ref, orig_packed, "{at}");
            assert_eq!(packed.unpack(id, &slab), reference, "{at}");
            assert_eq!(packed.history(id, &slab), history, "{at}");
            assert_eq!(ooo_ref.slots, ooo_packed.slots, "{at}");
        }
        (id, slab)
    }

    const SYN: u8 = TcpFlags::SYN;
    const ACK_: u8 = TcpFlags::ACK;
    const FIN: u8 = TcpFlags::FIN;
    const RST: u8 = TcpFlags::RST;

    #[test]
    fn a_clean_handshake_and_exchange_needs_no_side_slot() {
        let segs = [
            (0, SYN, 100, 0, 1000, 0, true),
            (1, SYN | ACK_, 500, 101, 1000, 0, true),
            (0, ACK_, 101, 501, 1000, 0, true),
            (0, ACK_, 101, 501, 1000, 50, true),
            (1, ACK_, 501, 151, 1000, 70, true),
            (0, ACK_, 151, 571, 1000, 0, true),
        ];
        let (id, slab) = run_both(false, &segs);
        assert_eq!(id, 0, "nothing cold");
        assert_eq!(slab.tcp.in_use(), 0);
    }

    #[test]
    fn long_histories_gaps_and_wide_positions_match_the_reference() {
        let mut segs = vec![
            (0, SYN, u32::MAX - 10, 0, 1000, 0, true),
            (1, SYN | ACK_, 7, u32::MAX - 9, 1000, 0, true),
            (0, ACK_, u32::MAX - 9, 8, 1000, 0, true),
        ];
        // 40 GiB in order from side 0 (wraps past 4 bits, positions past
        // 32), each 1 GiB acknowledged; a hole, zero windows, retransmissions.
        let mut seq = (u32::MAX - 9) as u64;
        for i in 0..40u64 {
            let len = 1u32 << 30;
            segs.push((0, ACK_, seq as u32, 8, 1000, len, i != 17));
            seq += u64::from(len);
            segs.push((
                1,
                ACK_,
                8,
                seq as u32,
                if i % 9 == 0 { 0 } else { 1000 },
                0,
                true,
            ));
            if i % 5 == 0 {
                segs.push((0, ACK_, (seq - 100) as u32, 8, 1000, 100, true));
            }
        }
        segs.push((0, FIN | ACK_, seq as u32, 8, 1000, 0, true));
        segs.push((1, FIN | ACK_, 8, seq as u32 + 1, 1000, 0, true));
        segs.push((0, RST, seq as u32 + 1, 0, 0, 0, true));
        let (id, slab) = run_both(true, &segs);
        assert_ne!(id, 0);
        assert_eq!(slab.extra.in_use(), 1, "the wide endpoint's extra slot");
    }

    fn seg_strategy(
    ) -> impl proptest::strategy::Strategy<Value = (usize, u8, i64, i64, u16, u32, bool)> {
        use proptest::prelude::*;
        (
            0usize..2,
            prop_oneof![
                Just(SYN),
                Just(SYN | ACK_),
                Just(ACK_),
                Just(FIN | ACK_),
                Just(RST),
                Just(RST | ACK_),
                any::<u8>().prop_map(|f| f & 0x17),
            ],
            prop_oneof![-3000i64..3000, -(1i64 << 31)..(1i64 << 31)],
            prop_oneof![-3000i64..3000, any::<u32>().prop_map(i64::from)],
            prop_oneof![Just(0u16), Just(1000u16)],
            prop_oneof![Just(0u32), 1u32..1500, 0u32..(1 << 31)],
            prop_oneof![Just(true), Just(true), Just(false)],
        )
    }

    proptest::proptest! {
        /// Any sequence of segments (sequence numbers walking forwards and
        /// backwards from each side's own, acknowledgements of the peer's
        /// or arbitrary) leaves the in-place machine exactly where the
        /// reference leaves the unpacked state.
        #[test]
        fn in_place_machine_equals_the_reference(
            flipped in proptest::prelude::any::<bool>(),
            isn in proptest::prelude::any::<[u32; 2]>(),
            steps in proptest::collection::vec(seg_strategy(), 1..60),
        ) {
            let mut cursor = [i64::from(isn[0]), i64::from(isn[1])];
            let segs: Vec<Seg> = steps
                .iter()
                .map(|&(s, flags, dseq, dack, window, len, complete)| {
                    cursor[s] += dseq;
                    let seq = cursor[s] as u32;
                    cursor[s] += i64::from(len);
                    let ack = if dack.abs() < 3000 {
                        (cursor[1 - s] + dack) as u32
                    } else {
                        dack as u32
                    };
                    (s, flags, seq, ack, window, len, complete)
                })
                .collect();
            run_both(flipped, &segs);
        }
    }
}
