//! Zeek's TCP endpoint state machine, sequence-space byte accounting and
//! ACK-driven content-gap detection (`missed_bytes`).
//!
//! The state is stored packed ([`PackedTcp`]) and the machine runs on it
//! in place (`in_place`); [`TcpConn`] is the unpacked form, built for
//! records and kept with its own machine as the reference the in-place one
//! is tested against.
//!
//! Endpoints are indexed by *side* (0 = the flow key's `lo` endpoint, 1 =
//! `hi`); roles (originator / responder) are a separate, flippable mapping.

use super::history::ScaledCounter;
#[cfg(test)]
use super::history::{bit, History};
#[cfg(test)]
use crate::decode::TcpSegment;

mod in_place;
mod packed;

pub(crate) use in_place::Side;
pub(crate) use packed::{PackedTcp, TcpCold, TcpWide};

/// Sequence jumps larger than this on SYN/RST are not trusted.
const TOO_LARGE_SEQ_DELTA: i32 = 1_048_576;

/// Out-of-order data blocks remembered per endpoint for gap accounting
/// (contiguous and overlapping pieces are merged into one block: a lost
/// segment followed by any number of others is one).
const MAX_BLOCKS: usize = 8;

/// State of one TCP endpoint, with Zeek's meanings.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum EpState {
    #[default]
    Inactive,
    SynSent,
    SynAckSent,
    Partial,
    Established,
    Closed,
    Reset,
}

impl EpState {
    fn is_handshake(self) -> bool {
        matches!(
            self,
            EpState::Inactive | EpState::SynSent | EpState::SynAckSent
        )
    }
}

/// Received-data bookkeeping, enough to find the holes an ACK reveals.
/// Out-of-order blocks live out of line, in an [`OooSlab`], and only while
/// there are any.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Reassembly {
    /// Next relative sequence number not yet received in order.
    next: u64,
    /// Highest relative sequence number acknowledged so far.
    trim: u64,
}

impl Default for Reassembly {
    fn default() -> Self {
        Reassembly { next: 1, trim: 0 }
    }
}

/// Where new data went.
enum Data {
    /// It extends (or repeats) the in-order data.
    InOrder,
    /// It is above the in-order data: a block `[start, end)` to remember.
    OutOfOrder(u64, u64),
}

/// Out-of-order data blocks `[start, end)` above an endpoint's `next`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Blocks {
    start: [u64; MAX_BLOCKS],
    end: [u64; MAX_BLOCKS],
    n: u8,
}

impl Blocks {
    /// Remembers data `[start, end)` received out of order, merged with
    /// every block it overlaps or touches. With every slot taken by other
    /// blocks it is forgotten: if it is ever acknowledged it is counted as
    /// missed, the conservative error.
    fn insert(&mut self, start: u64, end: u64) {
        let (mut lo, mut hi) = (start, end);
        let mut i = 0;
        while i < usize::from(self.n) {
            if self.start[i] <= hi && lo <= self.end[i] {
                lo = lo.min(self.start[i]);
                hi = hi.max(self.end[i]);
                self.remove(i);
            } else {
                i += 1;
            }
        }
        let n = usize::from(self.n);
        if n < MAX_BLOCKS {
            self.start[n] = lo;
            self.end[n] = hi;
            self.n += 1;
        }
    }

    fn remove(&mut self, i: usize) {
        let n = usize::from(self.n);
        self.start[i] = self.start[n - 1];
        self.end[i] = self.end[n - 1];
        self.n -= 1;
    }
}

/// Out-of-order blocks of the connections that have any: both endpoints'
/// in one slot, slots recycled through a free list.
#[derive(Debug, Default)]
pub(crate) struct OooSlab {
    slots: Vec<[Blocks; 2]>,
    free: Vec<u32>,
    /// Slots taken and given back so far (wrapping).
    changes: u32,
}

impl OooSlab {
    /// Bytes held, for accounting.
    pub(crate) fn capacity_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<[Blocks; 2]>()
            + self.free.capacity() * std::mem::size_of::<u32>()
    }

    /// Slots in use.
    pub(crate) fn in_use(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Bytes of one slot.
    pub(crate) fn entry_bytes(&self) -> usize {
        std::mem::size_of::<[Blocks; 2]>()
    }

    /// Slots taken and given back so far (wrapping): unchanged means the
    /// slab allocated nothing.
    pub(crate) fn changes(&self) -> u32 {
        self.changes
    }

    fn alloc(&mut self) -> u32 {
        self.changes = self.changes.wrapping_add(1);
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Default::default();
                i + 1
            }
            None => {
                self.slots.push(Default::default());
                self.slots.len() as u32
            }
        }
    }

    fn release(&mut self, id: u32) {
        if id != 0 {
            self.changes = self.changes.wrapping_add(1);
            self.free.push(id - 1);
        }
    }
}

impl Reassembly {
    /// Records data `[start, end)` as received in order, if it is; else
    /// returns the block to remember out of order. `None`: nothing new.
    fn data(&mut self, start: u64, end: u64) -> Option<Data> {
        let start = start.max(self.trim.min(end));
        if start >= end {
            return None;
        }
        if start <= self.next {
            self.next = self.next.max(end);
            Some(Data::InOrder)
        } else {
            Some(Data::OutOfOrder(start, end))
        }
    }

    /// Moves `next` over blocks that have become contiguous.
    fn absorb_blocks(&mut self, b: &mut Blocks) {
        loop {
            let mut advanced = false;
            let mut i = 0;
            while i < usize::from(b.n) {
                if b.start[i] <= self.next {
                    self.next = self.next.max(b.end[i]);
                    b.remove(i);
                    advanced = true;
                } else {
                    i += 1;
                }
            }
            if !advanced {
                break;
            }
        }
    }

    /// The peer acknowledged everything below `up_to`: returns the bytes
    /// that were never received (the gaps), advancing past them.
    fn undelivered(&mut self, up_to: u64, blocks: Option<&mut Blocks>, mut gap: impl FnMut(u64)) {
        if let Some(b) = blocks {
            // Blocks in sequence order between next and up_to.
            loop {
                let mut best: Option<usize> = None;
                for i in 0..usize::from(b.n) {
                    let s = b.start[i];
                    if s < up_to && best.is_none_or(|j| s < b.start[j]) {
                        best = Some(i);
                    }
                }
                let Some(i) = best else { break };
                let (s, e) = (b.start[i], b.end[i]);
                if s > self.next {
                    gap(s - self.next);
                }
                self.next = self.next.max(e);
                b.remove(i);
            }
        }
        if up_to > self.next {
            gap(up_to - self.next);
            self.next = up_to;
        }
    }
}

/// One TCP endpoint.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TcpEndpoint {
    pub(crate) state: EpState,
    pub(crate) prev_state: EpState,
    pub(crate) did_close: bool,
    seen: bool,
    /// At least one FIN sent (Zeek counts them; only "any" matters).
    fin_seen: bool,
    start_seq: u32,
    last_seq: u32,
    ack_seq: u32,
    seq_wraps: u32,
    ack_wraps: u32,
    fin_seq: u64,
    /// Relative sequence numbers (low 32 bits) of the last SYN, FIN and RST,
    /// for telling repeats from retransmissions in the history.
    hist_last_syn: u32,
    hist_last_fin: u32,
    hist_last_rst: u32,
    rxmit: ScaledCounter,
    zero_window: ScaledCounter,
    gaps: ScaledCounter,
    reasm: Reassembly,
}

impl TcpEndpoint {
    #[cfg(test)]
    fn set_state(&mut self, s: EpState) {
        if s != self.state {
            self.prev_state = self.state;
            self.state = s;
        }
    }

    #[cfg(test)]
    fn init_seq(&mut self, start: u32, last: u32) {
        self.start_seq = start;
        self.ack_seq = start;
        self.last_seq = last;
        self.seq_wraps = 0;
        self.ack_wraps = 0;
    }

    #[cfg(test)]
    fn update_last_seq_value(&mut self, v: u32) {
        if v < self.last_seq {
            self.seq_wraps += 1;
        }
        self.last_seq = v;
    }

    fn no_data_acked(&self) -> bool {
        let ack = (u64::from(self.ack_wraps) << 32) + u64::from(self.ack_seq);
        let start = u64::from(self.start_seq);
        ack == start || ack == start + 1
    }

    /// Payload bytes sent, from sequence space as Zeek's `TCP_Endpoint::Size`.
    fn size(&self, peer: &TcpEndpoint) -> u64 {
        if self.prev_state == EpState::SynSent
            && self.state == EpState::Reset
            && peer.state == EpState::Inactive
            && !self.no_data_acked()
        {
            return 0;
        }
        let last = (u64::from(self.seq_wraps) << 32) + u64::from(self.last_seq);
        let ack = (u64::from(self.ack_wraps) << 32) + u64::from(self.ack_seq);
        // Minus the SYN octet (also faked for connections seen mid-stream).
        let mut size = last
            .max(ack)
            .saturating_sub(u64::from(self.start_seq))
            .saturating_sub(1);
        if self.fin_seen && size > 0 {
            size -= 1;
        }
        size
    }

    /// Both "clean" for gap reporting: established, or closed from established.
    #[cfg(test)]
    fn is_clean(&self) -> bool {
        self.state == EpState::Established
            || (self.state == EpState::Closed && self.prev_state == EpState::Established)
    }
}

/// What a segment did to the connection.
#[derive(Copy, Clone, Debug, Default)]
pub(crate) struct SegmentOutcome {
    /// The segment moves the connection's last-activity time.
    pub(crate) touch: bool,
    /// Roles were swapped (SYN / SYN-ACK reversal).
    pub(crate) flipped: bool,
    /// The connection is now completely closed (removal after the close delay).
    pub(crate) close_complete: bool,
}

/// TCP state of one connection.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct TcpConn {
    pub(crate) ep: [TcpEndpoint; 2],
    is_partial: bool,
    /// Why the connection closed completely (FIN exchange or RST), if it has.
    pub(crate) close_reason: Option<crate::record::EndReason>,
    /// Removal time after the complete close (valid with `close_reason`).
    pub(crate) close_at: crate::time::Timestamp,
    /// When an unanswered attempt is given up; `Timestamp(i64::MAX)` = not
    /// an attempt (yet).
    pub(crate) attempt_at: crate::time::Timestamp,
    pub(crate) missed_bytes: u64,
    /// Out-of-order blocks in the [`OooSlab`] (slot + 1), 0 = none.
    ooo: u32,
}

impl Default for TcpConn {
    fn default() -> Self {
        TcpConn {
            ep: Default::default(),
            is_partial: false,
            close_reason: None,
            close_at: crate::time::Timestamp(0),
            attempt_at: crate::time::Timestamp(i64::MAX),
            missed_bytes: 0,
            ooo: 0,
        }
    }
}

/// Side `s`'s out-of-order blocks in slot `id` (+ 1) of `ooo`.
fn side_blocks(ooo: &mut OooSlab, id: u32, s: usize) -> Option<&mut Blocks> {
    let slot = ooo.slots.get_mut(id.checked_sub(1)? as usize)?;
    Some(&mut slot[s])
}

fn seq_delta(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

/// Zeek's `get_relative_seq`: sequence number relative to the endpoint's
/// start, with wraps; `None` on underflow.
fn relative_seq(start: u32, cur: u32, last: u32, wraps: u32) -> Option<u64> {
    let delta = seq_delta(cur, last);
    let mut wraps = i64::from(wraps);
    if delta < 0 && cur > last {
        wraps -= 1;
    } else if delta > 0 && cur < last {
        wraps += 1;
    }
    if wraps <= 0 {
        let d = seq_delta(cur, start);
        (d >= 0).then_some(d as u64)
    } else {
        Some(((wraps as u64) << 32) + u64::from(cur)).map(|v| v.wrapping_sub(u64::from(start)))
    }
}

impl TcpConn {
    /// Payload bytes of `side`.
    pub(crate) fn size(&self, side: usize) -> u64 {
        self.ep[side].size(&self.ep[1 - side])
    }

    /// Gives the connection's out-of-order blocks back (when it ends).
    pub(crate) fn release(&mut self, ooo: &mut OooSlab) {
        ooo.release(self.ooo);
        self.ooo = 0;
    }
}

/// The state machine on the unpacked state: the reference the packed,
/// in-place machine ([`PackedTcp::segment`]) is tested against.
#[cfg(test)]
impl TcpConn {
    /// Whether either side has closed (FIN or RST processed).
    pub(crate) fn is_closed(&self) -> bool {
        self.ep[0].did_close || self.ep[1].did_close
    }

    /// Zeek's `IsReuse`: does this SYN start a new connection on the same tuple?
    pub(crate) fn is_reuse(&self, seg: &TcpSegment<'_>, orig: usize) -> bool {
        if !seg.flags.syn() {
            return false;
        }
        let resp = 1 - orig;
        let mut conn_orig = orig;
        if seg.flags.ack() {
            if self.ep[orig].state != EpState::Inactive {
                return false;
            }
            conn_orig = resp;
        }
        if !self.is_closed() {
            let co = &self.ep[conn_orig];
            if seg.seq == co.start_seq {
                return false;
            }
            if !seg.flags.ack()
                && co.state == EpState::SynAckSent
                && self.ep[resp].state == EpState::Inactive
                && seg.seq == self.ep[resp].start_seq
            {
                return false;
            }
        }
        true
    }

    /// Processes one segment sent by `s`; `orig` is the originator's side
    /// (flipped in place on a SYN / SYN-ACK reversal). `complete` says the
    /// payload was fully captured.
    pub(crate) fn segment(
        &mut self,
        seg: &TcpSegment<'_>,
        s: usize,
        orig: &mut usize,
        complete: bool,
        hist: &mut History,
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
            if !self.ep[s].seen {
                self.is_partial = !syn || ack;
            }
        } else if !self.ep[s].seen && !self.is_partial {
            self.is_partial = !syn;
        }

        let seg_len = if rst {
            u32::from(syn) + u32::from(fin)
        } else {
            len.wrapping_add(u32::from(syn) + u32::from(fin))
        };
        let seq_one_past = seg.seq.wrapping_add(seg_len);
        self.init_endpoint(s, syn, seg.seq, seq_one_past);

        let e = &self.ep[s];
        let rel = relative_seq(e.start_seq, seg.seq, e.last_seq, e.seq_wraps);
        let underflow = rel.is_none();
        let rel_seq = rel.map_or(-1, |v| v as i64);
        // Before the start, Zeek's relative number is the (wrapped)
        // distance back: two resets there are two places, not one.
        let hist_seq = rel.map_or_else(|| i64::from(seq_delta(seg.seq, e.start_seq)), |v| v as i64);

        self.history(hist, s, is_orig, syn, fin, rst, ack, hist_seq, len);

        // Zero window (W/w), before the state machine.
        if seg.window == 0
            && !rst
            && self.ep[p].state != EpState::Closed
            && self.ep[s].state != EpState::Reset
            && self.ep[s].zero_window.bump()
        {
            hist.add(is_orig, b'W');
        }

        out.touch = !(self.ep[0].did_close && self.ep[1].did_close);

        if fin {
            let e = &mut self.ep[s];
            e.fin_seen = true;
            e.fin_seq = (rel_seq.max(0) as u64).wrapping_add(u64::from(seg_len));
        }

        let mut rel_ack: Option<u64> = None;
        if ack {
            if self.ep[p].state == EpState::Inactive {
                rel_ack = Some(1);
                let peer = &mut self.ep[p];
                let a = seg.ack.wrapping_sub(1);
                peer.init_seq(a, a);
            } else {
                let peer = &self.ep[p];
                let r = relative_seq(peer.start_seq, seg.ack, peer.ack_seq, peer.ack_wraps);
                if r.is_some() && !rst {
                    let peer = &mut self.ep[p];
                    let delta = seq_delta(seg.ack, peer.ack_seq);
                    if delta > 0 && !(seg.ack == 0 && delta > TOO_LARGE_SEQ_DELTA) {
                        if seg.ack < peer.ack_seq {
                            peer.ack_wraps += 1;
                        }
                        peer.ack_seq = seg.ack;
                    }
                }
                rel_ack = r;
            }
        }

        self.update_last_seq(s, is_orig, seq_one_past, syn, fin, rst, len, hist);

        let (do_close, flipped) = self.state_machine(s, *orig, syn, fin, rst, ack, seg.seq, len);
        if flipped {
            *orig = 1 - *orig;
            hist.flip();
            out.flipped = true;
        }

        if let Some(rel_ack) = rel_ack {
            self.ack_received(p, rel_ack, *orig, hist, ooo);
        }

        let rel_data_seq = if syn { rel_seq + 1 } else { rel_seq };
        if len > 0 && complete && !rst && !underflow {
            let start = rel_data_seq.max(0) as u64;
            let reasm = &mut self.ep[s].reasm;
            match reasm.data(start, start + u64::from(len)) {
                Some(Data::InOrder) => {
                    if let Some(b) = side_blocks(ooo, self.ooo, s) {
                        reasm.absorb_blocks(b);
                    }
                }
                None => {}
                Some(Data::OutOfOrder(start, end)) => {
                    if self.ooo == 0 {
                        self.ooo = ooo.alloc();
                    }
                    if let Some(b) = side_blocks(ooo, self.ooo, s) {
                        b.insert(start, end);
                    }
                }
            }
        }

        if do_close && !self.ep[s].did_close {
            self.ep[s].did_close = true;
            out.close_complete = self.ep[s].state == EpState::Reset
                || self.ep[p].did_close
                || self.ep[p].state == EpState::Inactive;
        }
        self.ep[s].seen = true;
        if self.ooo != 0 {
            let both = self
                .ooo
                .checked_sub(1)
                .and_then(|i| ooo.slots.get(i as usize));
            if both.is_none_or(|[b0, b1]| b0.n == 0 && b1.n == 0) {
                self.release(ooo);
            }
        }
        out
    }

    /// Zeek's `init_endpoint`: (re)initialises the sender's sequence space.
    fn init_endpoint(&mut self, s: usize, syn: bool, seq: u32, seq_one_past: u32) {
        let e = &mut self.ep[s];
        match e.state {
            EpState::Inactive => {
                if syn {
                    e.init_seq(seq, seq_one_past);
                } else {
                    e.init_seq(seq.wrapping_sub(1), seq);
                }
            }
            EpState::SynSent | EpState::SynAckSent => {
                if syn && seq != e.start_seq {
                    e.init_seq(seq, seq_one_past);
                }
            }
            EpState::Established | EpState::Partial => {
                if syn {
                    e.init_seq(seq, seq_one_past);
                }
            }
            EpState::Reset => {
                if syn && e.prev_state == EpState::Inactive {
                    e.init_seq(seq, seq_one_past);
                }
            }
            EpState::Closed => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn history(
        &mut self,
        hist: &mut History,
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
        let e = &mut self.ep[s];
        // Compared in 32 bits: a repeat 4 GiB away is not told apart.
        let rel = rel_seq as u32;
        if bits >= 2 {
            if fin && rst {
                hist.check(is_orig, bit::FIN_RST, b'I');
            } else {
                hist.check(is_orig, bit::MULTI_FLAG, b'Q');
            }
        } else if bits == 1 {
            if syn {
                let letter = if ack { b'H' } else { b'S' };
                if hist.check(is_orig, bit::SYN, letter) && rel != e.hist_last_syn {
                    hist.add(is_orig, letter);
                }
                e.hist_last_syn = rel;
            }
            if fin {
                let key = (rel_seq + i64::from(len)) as u32;
                if hist.check(is_orig, bit::FIN, b'F') && key != e.hist_last_fin {
                    hist.add(is_orig, b'F');
                }
                e.hist_last_fin = key;
            }
            if rst {
                if hist.check(is_orig, bit::RST, b'R') && rel != e.hist_last_rst {
                    hist.add(is_orig, b'R');
                }
                e.hist_last_rst = rel;
            }
        } else if len > 0 {
            hist.check(is_orig, bit::DATA, b'D');
        } else if ack {
            hist.check(is_orig, bit::ACK, b'A');
        }
    }

    /// Zeek's `update_last_seq`, incl. retransmission detection (T/t).
    #[allow(clippy::too_many_arguments)]
    fn update_last_seq(
        &mut self,
        s: usize,
        is_orig: bool,
        last: u32,
        syn: bool,
        fin: bool,
        rst: bool,
        len: u32,
        hist: &mut History,
    ) {
        let e = &mut self.ep[s];
        let delta = seq_delta(last, e.last_seq);
        if (syn || rst) && !(-TOO_LARGE_SEQ_DELTA..=TOO_LARGE_SEQ_DELTA).contains(&delta) {
            // Not trusted.
        } else if fin && e.last_seq == e.start_seq.wrapping_add(1) {
            e.update_last_seq_value(last);
        } else if e.state == EpState::Reset {
            // Nothing after a RST is trusted.
        } else if delta > 0 {
            e.update_last_seq_value(last);
        } else if len > 0 && e.rxmit.bump() {
            hist.add(is_orig, b'T');
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
        let p = 1 - s;
        let is_orig = s == orig;
        let mut do_close = false;
        let mut flipped = false;
        match self.ep[s].state {
            EpState::Inactive => {
                if syn {
                    if is_orig {
                        let st = if ack {
                            EpState::SynAckSent
                        } else {
                            EpState::SynSent
                        };
                        self.ep[s].set_state(st);
                    } else {
                        if !ack
                            && self.ep[p].state == EpState::SynAckSent
                            && seq == self.ep[s].start_seq
                        {
                            // SYN / SYN-ACK reversal: the SYN-ACK sender was
                            // really the responder.
                            self.is_partial = false;
                            flipped = true;
                            self.ep[p].set_state(EpState::Established);
                        }
                        if self.ep[p].state == EpState::SynSent {
                            self.ep[p].set_state(EpState::Established);
                        }
                        self.ep[s].set_state(EpState::Established);
                    }
                }
                if fin {
                    self.ep[s].set_state(EpState::Closed);
                    do_close = true;
                }
                if rst {
                    self.ep[s].set_state(EpState::Reset);
                    do_close = true;
                }
                if self.ep[s].state == EpState::Inactive {
                    if !is_orig && len == 0 && self.ep[p].state == EpState::SynSent {
                        // An ACK of a SYN sent before the SYN-ACK: stay inactive.
                    } else if ack && self.ep[p].state == EpState::Established {
                        self.ep[s].set_state(EpState::Established);
                        self.is_partial = false;
                    } else {
                        self.ep[s].set_state(EpState::Partial);
                    }
                }
            }
            EpState::SynSent | EpState::SynAckSent => {
                if fin {
                    self.ep[s].set_state(EpState::Closed);
                    do_close = true;
                }
                if rst {
                    self.ep[s].set_state(EpState::Reset);
                    do_close = true;
                }
            }
            EpState::Established | EpState::Partial => {
                if syn
                    && self.ep[s].state == EpState::Partial
                    && self.ep[p].state == EpState::Inactive
                    && !ack
                {
                    self.ep[s].set_state(EpState::SynSent);
                }
                if fin && !rst {
                    self.ep[s].set_state(EpState::Closed);
                    if self.ep[p].state == EpState::Reset
                        && self.ep[p].prev_state == EpState::Closed
                    {
                        self.ep[p].set_state(EpState::Closed);
                    }
                    do_close = true;
                } else if rst {
                    self.ep[s].set_state(EpState::Reset);
                    do_close = true;
                }
            }
            EpState::Closed => {
                if rst && self.ep[p].state != EpState::Closed {
                    self.ep[s].set_state(EpState::Reset);
                    if !self.ep[s].did_close {
                        do_close = true;
                    }
                }
            }
            EpState::Reset => {}
        }
        (do_close, flipped)
    }

    /// The peer acknowledged up to `rel_ack` of side `e`'s data: trims, and
    /// counts never-received bytes below it as gaps.
    fn ack_received(
        &mut self,
        e: usize,
        rel_ack: u64,
        orig: usize,
        hist: &mut History,
        ooo: &mut OooSlab,
    ) {
        let clean = self.ep[0].is_clean() && self.ep[1].is_clean();
        let is_partial = self.is_partial;
        let ep = &mut self.ep[e];
        let mut seq = rel_ack;
        if ep.fin_seen && seq >= ep.fin_seq {
            seq = ep.fin_seq.saturating_sub(1);
        }
        if seq <= ep.reasm.trim {
            return;
        }
        ep.reasm.trim = seq;
        if seq <= ep.reasm.next {
            return;
        }
        if seq <= 2 && is_partial {
            return;
        }
        let mut missed = 0;
        let mut gaps = 0;
        let blocks = side_blocks(ooo, self.ooo, e);
        ep.reasm.undelivered(seq, blocks, |n| {
            missed += n;
            gaps += 1;
        });
        if clean && missed > 0 {
            self.missed_bytes += missed;
            for _ in 0..gaps {
                if self.ep[e].gaps.bump() {
                    hist.add(e == orig, b'G');
                }
            }
        }
    }
}
