//! One connection's state: counters per direction, Zeek's history, the
//! protocol-specific state machine, and when the connection ends.

mod history;
mod ports;
mod tcp;

use crate::chunked::ChunkedVec;
use crate::config::TableConfig;
use crate::decode::{FlowPacket, Transport, Tunnel};
use crate::key::{community_id, icmp_ports, Endpoint, FlowKey};
use crate::record::{ConnRecord, ConnState, EndReason, Proto};
use crate::start::{ConnStart, HISTORY_BYTES, UID_BYTES};
use crate::time::Timestamp;
use history::History;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use tcp::{EpState, Side, TcpConn, TcpWide};
pub(crate) use tcp::{OooSlab, PackedTcp, TcpCold};

pub use ports::is_likely_server_port;

/// UDP ports Zeek's DNS analyzer is attached to (DNS, NetBIOS name
/// service, mDNS, LLMNR: `DNS::ports` in `base/protocols/dns/main.zeek`),
/// by the responder's port only, as Zeek attaches analyzers
/// (`analyzer::Manager::BuildInitialAnalyzerTree` looks up `RespPort()`).
const DNS_PORTS: [u16; 4] = [53, 137, 5353, 5355];

/// Most tunnel parents remembered per connection.
const MAX_TUNNEL_PARENTS: usize = 4;

/// How a non-TCP connection is metered.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum SmallKind {
    Udp,
    /// UDP to a responder port Zeek's DNS analyzer claims, whose expiry
    /// timer ends the connection (see [`Conn::dns_expiry`]).
    UdpDns,
    Icmp,
    /// An ICMP message without a reply type (errors, redirects, ...).
    IcmpOneWay,
    Other,
}

/// State of a UDP, ICMP or other-protocol connection.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Small {
    kind: SmallKind,
    /// Payload bytes per key side (TCP's come from sequence numbers); in
    /// the side slot once any counter of the connection outgrew 32 bits.
    payload: [u32; 2],
}

/// Protocol state of a new connection: TCP's goes to the table's TCP slab
/// (packed, see [`PackedTcp`]), everything else's next to the common part.
pub(crate) enum NewState {
    /// A TCP connection: its history (its state machine starts inactive).
    Tcp(History),
    /// Any other protocol.
    Small(Small),
}

/// Mutable access to a connection's protocol state.
pub(crate) enum StateMut<'a> {
    /// TCP: packed state machine and history, and the table's out-of-order
    /// blocks.
    Tcp(&'a mut PackedTcp, &'a mut OooSlab),
    /// Any other protocol.
    Small(&'a mut Small),
}

/// Read access to a connection's protocol state.
#[derive(Copy, Clone)]
pub(crate) enum StateRef<'a> {
    /// TCP: packed state machine and history.
    Tcp(&'a PackedTcp),
    /// Any other protocol.
    Small(&'a Small),
}

impl PackedTcp {
    /// Read access.
    pub(crate) fn as_ref(&self) -> StateRef<'_> {
        StateRef::Tcp(self)
    }

    /// Write access, with the table's out-of-order block slab.
    pub(crate) fn as_mut<'a>(&'a mut self, ooo: &'a mut OooSlab) -> StateMut<'a> {
        StateMut::Tcp(self, ooo)
    }

    /// Gives the connection's out-of-order blocks back when it ends (its
    /// side slots are freed by [`Conn::release`]).
    pub(crate) fn release(&self, side: u32, slab: &SideSlab, ooo: &mut OooSlab) {
        self.unpack(side, slab).release(ooo);
    }
}

/// Bits of [`Conn::bits`]: the history of a non-TCP connection, which only
/// ever holds `^`, `D` and `d`, and where the counters are.
mod small_hist {
    /// Roles were flipped at the start (`^` first).
    pub const FLIPPED: u8 = 1;
    /// The originator sent (`D`).
    pub const ORIG: u8 = 2;
    /// The responder sent (`d`).
    pub const RESP: u8 = 4;
    /// The responder's `d` came before the originator's `D`.
    pub const RESP_FIRST: u8 = 8;
    /// Packet, IP byte and payload counters are in the [`super::Extra`]
    /// slot (one of them outgrew 32 bits).
    pub const WIDE: u8 = 0x80;
    /// A TCP connection: [`super::Conn::side`] names a [`super::TcpCold`].
    pub const TCP: u8 = 0x40;
}

/// [`Conn::timer`]: not filed yet.
const TIMER_NONE: i32 = i32::MIN;
/// [`Conn::timer`]: the slot is too far from the start for 32 bits and is
/// in the side slot.
const TIMER_IN_SIDE: i32 = i32::MAX;

/// The part of a live connection every protocol has (48 bytes). Counters
/// are 32-bit; a connection whose counter outgrows that keeps all its
/// counters, in full, in its side slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conn {
    /// First packet's time (nanoseconds, as two halves to keep the struct
    /// 4-byte aligned: no padding where the slab entry joins it).
    start: [u32; 2],
    /// Last packet's time that moved it (see [`Conn::update`]).
    last: [u32; 2],
    /// The timer-wheel slot this connection is filed under, in seconds from
    /// its start's second; [`TIMER_NONE`] or [`TIMER_IN_SIDE`].
    timer: i32,
    /// Interim records emitted so far: the next is due at start + active
    /// timeout x (interims + 1).
    interims: u32,
    /// Packets per key side (0 = key.lo, 1 = key.hi), unless wide.
    pkts: [u32; 2],
    /// IP bytes per key side, unless wide.
    ip_bytes: [u32; 2],
    /// This connection's slot in the table's [`SideSlab`] ([`TcpCold`] for
    /// TCP, [`Extra`] for the others), 0 = none.
    pub(crate) side: u32,
    /// The table's generation of the slab slot holding this connection
    /// (odd while live; kept here, where it fills what would be padding).
    pub(crate) gen: u16,
    /// Side (0 = key.lo, 1 = key.hi) of the originator.
    orig: u8,
    /// [`small_hist`] bits.
    bits: u8,
}

/// What only some connections need, out of line: tunnel parents, counters
/// that outgrew 32 bits, a far timer slot, TCP sequence positions past
/// 4 GiB. A UDP / ICMP / other connection's [`Conn::side`] names its slot
/// here; a TCP connection's names its [`TcpCold`] slot, which names this one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Extra {
    /// Ids of the tunnels that carried the connection ([`Tunnel`] ids, 0 =
    /// free slot).
    tunnels: [u64; MAX_TUNNEL_PARENTS],
    /// Full counters of a wide connection.
    pkts: [u64; 2],
    ip_bytes: [u64; 2],
    payload: [u64; 2],
    /// The timer slot, with [`TIMER_IN_SIDE`].
    timer_slot: i64,
    /// Full sequence positions of wide TCP endpoints.
    pub(crate) tcp_wide: [TcpWide; 2],
    /// Earlier connections on the same key that started at the same
    /// instant (a 5-tuple reused within one timestamp): mixed into the uid
    /// so each connection has its own ([`conn_uid`]).
    uid_seq: u32,
}

/// Slots of `T` recycled through a free list; a slot's id is its index + 1,
/// 0 = none.
#[derive(Debug)]
pub(crate) struct Slab<T> {
    slots: ChunkedVec<T>,
    free: Vec<u32>,
    /// Slots taken and given back so far (wrapping): unchanged means the
    /// slab allocated nothing.
    changes: u32,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: ChunkedVec::default(),
            free: Vec::new(),
            changes: 0,
        }
    }
}

impl<T: Default> Slab<T> {
    /// Bytes held, for accounting.
    pub(crate) fn capacity_bytes(&self) -> usize {
        self.slots.capacity_bytes() + self.free.capacity() * std::mem::size_of::<u32>()
    }

    /// Slots in use.
    pub(crate) fn in_use(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Bytes of one slot.
    pub(crate) fn entry_bytes(&self) -> usize {
        std::mem::size_of::<T>()
    }

    /// Allocates slots, exactly, until `n` are allocated (in use or not).
    pub(crate) fn reserve_to(&mut self, n: usize) {
        if n > self.slots.capacity() {
            self.slots.reserve_exact(n.saturating_sub(self.slots.len()));
        }
    }

    /// Slot `id`, if it is one.
    pub(crate) fn get(&self, id: u32) -> Option<&T> {
        self.slots.get(id.checked_sub(1)? as usize)
    }

    /// Slot `id` for writing, if it is one.
    pub(crate) fn get_mut(&mut self, id: u32) -> Option<&mut T> {
        self.slots.get_mut(id.checked_sub(1)? as usize)
    }

    /// Slot `id`, allocated first (and `id` set) if it is 0.
    pub(crate) fn get_or_alloc(&mut self, id: &mut u32) -> &mut T {
        let i = match id.checked_sub(1) {
            Some(i) if (i as usize) < self.slots.len() => i as usize,
            _ => {
                self.changes = self.changes.wrapping_add(1);
                let i = match self.free.pop() {
                    Some(i) => {
                        self.slots[i as usize] = T::default();
                        i as usize
                    }
                    None => {
                        self.slots.push(T::default());
                        self.slots.len() - 1
                    }
                };
                *id = i as u32 + 1;
                i
            }
        };
        &mut self.slots[i]
    }

    /// Frees slot `id` (when its connection ends).
    pub(crate) fn release(&mut self, id: &mut u32) {
        if *id != 0 {
            self.changes = self.changes.wrapping_add(1);
            self.free.push(*id - 1);
            *id = 0;
        }
    }
}

/// The out-of-line state of a table's connections: TCP's rarely set state
/// ([`TcpCold`]: FIN and RST positions, retransmission / zero-window / gap
/// counters, missed bytes, out-of-order slot), and the rarer [`Extra`]s.
#[derive(Debug, Default)]
pub(crate) struct SideSlab {
    /// TCP connections' cold state.
    pub(crate) tcp: Slab<TcpCold>,
    /// Extras of any connection.
    pub(crate) extra: Slab<Extra>,
}

impl SideSlab {
    /// Bytes held, for accounting.
    pub(crate) fn capacity_bytes(&self) -> usize {
        self.tcp.capacity_bytes() + self.extra.capacity_bytes()
    }

    /// Slots taken and given back so far, both kinds (wrapping): unchanged
    /// means the side slabs allocated nothing.
    pub(crate) fn changes(&self) -> u32 {
        self.tcp.changes.wrapping_add(self.extra.changes)
    }
}

fn add_tunnel(extra: &mut Extra, tunnel: u64) {
    for slot in &mut extra.tunnels {
        if *slot == tunnel {
            return;
        }
        if *slot == 0 {
            *slot = tunnel;
            return;
        }
    }
}

/// A timestamp as two 32-bit halves (low, high).
fn split_time(t: Timestamp) -> [u32; 2] {
    let v = t.0 as u64;
    [v as u32, (v >> 32) as u32]
}

/// [`split_time`]'s halves back as a timestamp.
fn join_time(halves: [u32; 2]) -> Timestamp {
    Timestamp((u64::from(halves[0]) | u64::from(halves[1]) << 32) as i64)
}

/// Whether the packet's sender is the key's `lo` side.
fn side_of(src_is_lo: bool) -> usize {
    if src_is_lo {
        0
    } else {
        1
    }
}

/// Zeek's ports for a packet: real ports, or ICMP type / counterpart.
pub(crate) fn packet_endpoints(p: &FlowPacket<'_>) -> (Endpoint, Endpoint, bool) {
    let (sp, dp, one_way) = match p.transport {
        Transport::Icmp {
            v6,
            icmp_type,
            code,
            ..
        } => icmp_ports(v6, icmp_type, code),
        ref t => {
            let (s, d) = t.ports();
            (s, d, false)
        }
    };
    (
        Endpoint {
            addr: p.ip.src,
            port: sp,
        },
        Endpoint {
            addr: p.ip.dst,
            port: dp,
        },
        one_way,
    )
}

impl Conn {
    /// Starts a connection from its first packet. `src_is_lo` says which key
    /// side sent it.
    pub(crate) fn new(p: &FlowPacket<'_>, src_is_lo: bool, ts: Timestamp) -> (Conn, NewState) {
        let sender = side_of(src_is_lo);
        let (src, dst, one_way) = packet_endpoints(p);
        let mut flip = false;
        let small = |kind| {
            NewState::Small(Small {
                kind,
                payload: [0; 2],
            })
        };
        let mut state = match p.transport {
            Transport::Tcp(ref seg) => {
                if seg.flags.syn() {
                    // A SYN-ACK seen first comes from the responder.
                    flip = seg.flags.ack();
                } else {
                    let ls = is_likely_server_port(6, src.port);
                    let ld = is_likely_server_port(6, dst.port);
                    flip = ls && (!ld || src.port < dst.port);
                }
                NewState::Tcp(History::default())
            }
            Transport::Udp { .. } => {
                flip = is_likely_server_port(17, src.port)
                    && !is_likely_server_port(17, dst.port)
                    && dst.addr != IpAddr::V4(Ipv4Addr::BROADCAST);
                let resp_port = if flip { src.port } else { dst.port };
                small(if DNS_PORTS.contains(&resp_port) {
                    SmallKind::UdpDns
                } else {
                    SmallKind::Udp
                })
            }
            // ICMP never flips: the first sender is the originator, as in Zeek.
            Transport::Icmp { .. } => small(if one_way {
                SmallKind::IcmpOneWay
            } else {
                SmallKind::Icmp
            }),
            _ => small(SmallKind::Other),
        };
        let orig = if flip { 1 - sender } else { sender };
        let mut bits = 0;
        if let NewState::Tcp(..) = state {
            bits |= small_hist::TCP;
        }
        if flip {
            match &mut state {
                NewState::Tcp(history) => history.flip(),
                NewState::Small(_) => bits |= small_hist::FLIPPED,
            }
        }
        let conn = Conn {
            start: split_time(ts),
            last: split_time(ts),
            timer: TIMER_NONE,
            interims: 0,
            pkts: [0; 2],
            ip_bytes: [0; 2],
            side: 0,
            gen: 0,
            orig: orig as u8,
            bits,
        };
        (conn, state)
    }

    /// The timer-wheel slot this connection is filed under (`i64::MIN` =
    /// none yet).
    pub(crate) fn timer_slot(&self, slab: &SideSlab) -> i64 {
        match self.timer {
            TIMER_NONE => i64::MIN,
            TIMER_IN_SIDE => self.extra(slab).map_or(i64::MIN, |s| s.timer_slot),
            off => self.start().secs() + i64::from(off),
        }
    }

    /// Records the timer-wheel slot this connection is filed under.
    pub(crate) fn set_timer_slot(&mut self, slot: i64, slab: &mut SideSlab) {
        let off = slot
            .checked_sub(self.start().secs())
            .and_then(|d| i32::try_from(d).ok())
            .filter(|&d| d != TIMER_NONE && d != TIMER_IN_SIDE);
        match off {
            Some(off) => self.timer = off,
            None if slot == i64::MIN => self.timer = TIMER_NONE,
            None => {
                self.extra_mut(slab).timer_slot = slot;
                self.timer = TIMER_IN_SIDE;
            }
        }
    }

    /// When the next interim record is due; `Timestamp(i64::MAX)` = never.
    fn interim_at(&self, cfg: &TableConfig) -> Timestamp {
        match cfg.active_timeout {
            Some(d) if self.interims == 0 => self.start().plus(d),
            Some(d) => {
                let at = i128::from(self.start().0)
                    + d.as_nanos() as i128 * (i128::from(self.interims) + 1);
                Timestamp(i64::try_from(at).unwrap_or(i64::MAX))
            }
            None => Timestamp(i64::MAX),
        }
    }

    /// This connection's [`Extra`] slot, if it has one.
    fn extra<'a>(&self, slab: &'a SideSlab) -> Option<&'a Extra> {
        let id = if self.bits & small_hist::TCP != 0 {
            slab.tcp.get(self.side)?.extra
        } else {
            self.side
        };
        slab.extra.get(id)
    }

    /// This connection's [`Extra`] slot, allocated on first need.
    fn extra_mut<'a>(&mut self, slab: &'a mut SideSlab) -> &'a mut Extra {
        if self.bits & small_hist::TCP != 0 {
            let cold = slab.tcp.get_or_alloc(&mut self.side);
            slab.extra.get_or_alloc(&mut cold.extra)
        } else {
            slab.extra.get_or_alloc(&mut self.side)
        }
    }

    fn is_wide(&self) -> bool {
        self.bits & small_hist::WIDE != 0
    }

    /// Packets sent by key side `s`.
    fn pkts(&self, s: usize, slab: &SideSlab) -> u64 {
        if self.is_wide() {
            self.extra(slab).map_or(0, |x| x.pkts[s])
        } else {
            u64::from(self.pkts[s])
        }
    }

    /// IP bytes sent by key side `s`.
    fn ip_bytes(&self, s: usize, slab: &SideSlab) -> u64 {
        if self.is_wide() {
            self.extra(slab).map_or(0, |x| x.ip_bytes[s])
        } else {
            u64::from(self.ip_bytes[s])
        }
    }

    /// Payload bytes of a non-TCP connection sent by key side `s`.
    fn payload(&self, small: &Small, s: usize, slab: &SideSlab) -> u64 {
        if self.is_wide() {
            self.extra(slab).map_or(0, |x| x.payload[s])
        } else {
            u64::from(small.payload[s])
        }
    }

    /// Adds to key side `s`'s counters, moving them all to the side slot
    /// when one would outgrow 32 bits.
    #[inline]
    fn count(
        &mut self,
        s: usize,
        pkts: u32,
        ip_bytes: u32,
        small: Option<&mut Small>,
        payload: u32,
        slab: &mut SideSlab,
    ) {
        if !self.is_wide() {
            let p = self.pkts[s].checked_add(pkts);
            let b = self.ip_bytes[s].checked_add(ip_bytes);
            match (p, b, small) {
                (Some(p), Some(b), None) => {
                    self.pkts[s] = p;
                    self.ip_bytes[s] = b;
                    return;
                }
                (Some(p), Some(b), Some(sm)) => match sm.payload[s].checked_add(payload) {
                    Some(l) => {
                        self.pkts[s] = p;
                        self.ip_bytes[s] = b;
                        sm.payload[s] = l;
                    }
                    None => self.count_wide(s, pkts, ip_bytes, Some(sm), payload, slab),
                },
                (_, _, small) => self.count_wide(s, pkts, ip_bytes, small, payload, slab),
            }
            return;
        }
        self.count_wide(s, pkts, ip_bytes, small, payload, slab);
    }

    /// [`Conn::count`] once a counter would outgrow (or has outgrown) 32
    /// bits: every counter, in full, in the side slot.
    #[cold]
    fn count_wide(
        &mut self,
        s: usize,
        pkts: u32,
        ip_bytes: u32,
        mut small: Option<&mut Small>,
        payload: u32,
        slab: &mut SideSlab,
    ) {
        if !self.is_wide() {
            let side = self.extra_mut(slab);
            side.pkts = self.pkts.map(u64::from);
            side.ip_bytes = self.ip_bytes.map(u64::from);
            if let Some(sm) = &mut small {
                side.payload = sm.payload.map(u64::from);
                sm.payload = [0; 2];
            }
            self.pkts = [0; 2];
            self.ip_bytes = [0; 2];
            self.bits |= small_hist::WIDE;
        }
        let side = self.extra_mut(slab);
        side.pkts[s] += u64::from(pkts);
        side.ip_bytes[s] += u64::from(ip_bytes);
        if small.is_some() {
            side.payload[s] += u64::from(payload);
        }
    }

    /// How many earlier connections on this key started at the same
    /// instant ([`conn_uid`]'s `seq`).
    pub(crate) fn uid_seq(&self, slab: &SideSlab) -> u32 {
        self.extra(slab).map_or(0, |x| x.uid_seq)
    }

    /// Sets [`Conn::uid_seq`] (a side slot is taken only when it is not 0).
    pub(crate) fn set_uid_seq(&mut self, slab: &mut SideSlab, seq: u32) {
        if seq != 0 {
            self.extra_mut(slab).uid_seq = seq;
        }
    }

    /// Frees the connection's side slots and what hangs from them (when it
    /// ends).
    pub(crate) fn release(&mut self, state: StateMut<'_>, slab: &mut SideSlab) {
        if let StateMut::Tcp(t, ooo) = state {
            t.release(self.side, slab, ooo);
            if let Some(cold) = slab.tcp.get_mut(self.side) {
                slab.extra.release(&mut cold.extra);
            }
            slab.tcp.release(&mut self.side);
        } else {
            slab.extra.release(&mut self.side);
        }
    }

    /// Whether this is a half-open connection: an unanswered attempt (the
    /// originator sent a SYN, the responder has said nothing).
    pub(crate) fn is_attempt(&self, state: StateRef<'_>) -> bool {
        matches!(state, StateRef::Tcp(t) if t.is_attempt(self.orig()))
    }

    /// Time of the first packet.
    pub(crate) fn start(&self) -> Timestamp {
        join_time(self.start)
    }

    /// Time of the last packet that moved the connection's activity.
    pub(crate) fn last(&self) -> Timestamp {
        join_time(self.last)
    }

    /// Moves the last activity time to `ts` if that is later.
    fn set_last(&mut self, ts: Timestamp) {
        if ts > self.last() {
            self.last = split_time(ts);
        }
    }

    fn orig(&self) -> usize {
        usize::from(self.orig)
    }

    /// Whether this packet starts a new connection on the same key (Zeek's
    /// TCP connection reuse: a SYN with a new initial sequence number).
    pub(crate) fn is_reuse(&self, state: StateRef<'_>, p: &FlowPacket<'_>) -> bool {
        match (state, &p.transport) {
            (StateRef::Tcp(t), Transport::Tcp(seg)) if seg.flags.syn() => {
                t.is_reuse(seg, self.orig())
            }
            _ => false,
        }
    }

    /// Applies one packet sent by the key side given by `src_is_lo`.
    /// `complete` says its payload was fully captured.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn update(
        &mut self,
        state: StateMut<'_>,
        slab: &mut SideSlab,
        p: &FlowPacket<'_>,
        src_is_lo: bool,
        ts: Timestamp,
        complete: bool,
        cfg: &TableConfig,
    ) {
        let s = side_of(src_is_lo);
        if let Some(t) = p.tunnel {
            add_tunnel(self.extra_mut(slab), tunnel_id(&t));
        }
        let mut touch = true;
        let mut small_count = None;
        let mut payload = 0;
        match (state, &p.transport) {
            (StateMut::Tcp(packed, ooo), Transport::Tcp(seg)) => {
                let first_packet = packed.untouched();
                let mut orig = self.orig();
                let mut side = Side {
                    id: &mut self.side,
                    slab,
                };
                let out = packed.segment(&mut side, seg, s, &mut orig, complete, ooo);
                self.orig = orig as u8;
                touch = out.touch;
                if touch {
                    self.set_last(ts);
                }
                // As Zeek's attempt timer: armed by a connection's first
                // packet, a SYN (or SYN-ACK) from an endpoint not yet seen;
                // a SYN after a mid-stream start arms nothing.
                if first_packet {
                    packed.note_attempt(orig, || ts.plus(cfg.tcp_attempt_delay));
                }
                if out.close_complete {
                    packed.note_close(self.last().plus(cfg.tcp_close_delay));
                }
            }
            (StateMut::Small(small), Transport::Udp { payload_len, .. })
                if matches!(small.kind, SmallKind::Udp | SmallKind::UdpDns) =>
            {
                let is_orig = s == self.orig();
                let bit = if is_orig {
                    small_hist::ORIG
                } else {
                    small_hist::RESP
                };
                if self.bits & (small_hist::ORIG | small_hist::RESP) == 0 && !is_orig {
                    self.bits |= small_hist::RESP_FIRST;
                }
                self.bits |= bit;
                payload = *payload_len;
                small_count = Some(small);
            }
            (StateMut::Small(small), Transport::Icmp { payload_len, .. })
                if matches!(small.kind, SmallKind::Icmp | SmallKind::IcmpOneWay) =>
            {
                payload = *payload_len;
                small_count = Some(small);
            }
            (StateMut::Small(small), _) => small_count = Some(small),
            _ => {}
        }
        if touch {
            self.set_last(ts);
        }
        self.count(s, 1, p.ip.ip_len, small_count, payload, slab);
    }

    /// Counts a non-first IP fragment attributed to this connection. Like
    /// Zeek, which counts a reassembled datagram once, the datagram is one
    /// packet (its first fragment) and its IP bytes are the reassembled
    /// length: the first fragment's, plus each later fragment's data.
    pub(crate) fn add_fragment(
        &mut self,
        state: StateMut<'_>,
        slab: &mut SideSlab,
        src_is_lo: bool,
        data_len: u32,
        ts: Timestamp,
    ) {
        let small = match state {
            StateMut::Small(small) => Some(small),
            StateMut::Tcp(..) => None,
        };
        self.count(side_of(src_is_lo), 0, data_len, small, 0, slab);
        self.set_last(ts);
    }

    /// Idle timeout in force: TCP uses UDP's until the handshake completes,
    /// as Zeek does. A DNS connection also has [`Conn::dns_expiry`].
    fn idle_timeout(&self, state: StateRef<'_>, cfg: &TableConfig) -> Duration {
        match state {
            StateRef::Tcp(t) if t.past_handshake() => cfg.tcp_idle,
            StateRef::Tcp(..) => cfg.udp_idle,
            StateRef::Small(s) => match s.kind {
                SmallKind::Udp | SmallKind::UdpDns => cfg.udp_idle,
                SmallKind::Icmp | SmallKind::IcmpOneWay => cfg.icmp_idle,
                SmallKind::Other => cfg.other_idle,
            },
        }
    }

    /// When Zeek's DNS analyzer removes this UDP connection if no further
    /// packet arrives (`DNS_Analyzer::ExpireTimer`, DNS.cc): its timer
    /// first fires `dns_session_timeout` (`period`) after the start and
    /// again `period` after each firing that finds the connection active,
    /// and removes it once the silence has lasted `period` minus one
    /// second. That is the first firing time at least `period - 1 s` after
    /// the last packet. Zeek fires a timer when the next packet of any
    /// connection moves its clock; like all of the table's timers, this one
    /// fires on time (as it does in Zeek on busy links). No state is kept:
    /// the firing times follow from the start.
    fn dns_expiry(&self, period: Duration) -> Timestamp {
        let period = u64::try_from(period.as_nanos()).unwrap_or(u64::MAX);
        let grace = period.saturating_sub(1_000_000_000);
        let start = self.start().0;
        let since_start = self.last().0.saturating_sub(start).max(0) as u64;
        let wait = since_start.saturating_add(grace);
        // The first firing at or after `wait` (the first one at the
        // earliest), as a multiple of `period`.
        let firings = match period {
            0 => 1,
            p => wait.div_ceil(p).max(1),
        };
        let at = i128::from(start) + i128::from(firings) * i128::from(period);
        Timestamp(i64::try_from(at).unwrap_or(i64::MAX))
    }

    /// When the connection is due to end (or to report an interim record)
    /// if no further packet arrives, and why.
    pub(crate) fn deadline(
        &self,
        state: StateRef<'_>,
        cfg: &TableConfig,
    ) -> (Timestamp, EndReason) {
        let mut best = (
            self.last().plus(self.idle_timeout(state, cfg)),
            EndReason::Idle,
        );
        if let StateRef::Small(Small {
            kind: SmallKind::UdpDns,
            ..
        }) = state
        {
            best.0 = best.0.min(self.dns_expiry(cfg.dns_idle));
        }
        if let StateRef::Tcp(t) = state {
            if let Some((at, r)) = t.due(self.orig()) {
                if at < best.0 {
                    best = (at, r);
                }
            }
        }
        let interim_at = self.interim_at(cfg);
        if interim_at < best.0 {
            best = (interim_at, EndReason::Active);
        }
        best
    }

    /// The end reason for a connection ended from outside (end of input,
    /// shutdown): a connection already closed by FIN or RST says so.
    pub(crate) fn flush_reason(&self, state: StateRef<'_>, reason: EndReason) -> EndReason {
        match state {
            StateRef::Tcp(t) => t.close_reason().unwrap_or(reason),
            StateRef::Small(_) => reason,
        }
    }

    /// Schedules the next interim record after the one due was emitted.
    pub(crate) fn interim_emitted(&mut self) {
        self.interims = self.interims.saturating_add(1);
    }

    /// The history string.
    fn history(&self, state: StateRef<'_>, slab: &SideSlab) -> String {
        self.history_letters(state, slab).as_str().to_owned()
    }

    /// The history's letters, without allocating.
    fn history_letters(&self, state: StateRef<'_>, slab: &SideSlab) -> Letters {
        let mut s = Letters::default();
        match state {
            StateRef::Tcp(t) => {
                let h = t.history(self.side, slab);
                for i in 0..h.len() {
                    s.push(h.letter(i));
                }
            }
            StateRef::Small(_) => {
                let h = self.bits;
                if h & small_hist::FLIPPED != 0 {
                    s.push(b'^');
                }
                let (o, r) = (h & small_hist::ORIG != 0, h & small_hist::RESP != 0);
                if h & small_hist::RESP_FIRST != 0 {
                    s.push(b'd');
                    if o {
                        s.push(b'D');
                    }
                } else if o {
                    s.push(b'D');
                    if r {
                        s.push(b'd');
                    }
                } else if r {
                    s.push(b'd');
                }
            }
        }
        s
    }

    /// Zeek's conn_state.
    fn conn_state(
        &self,
        state: StateRef<'_>,
        tcp: Option<&TcpConn>,
        slab: &SideSlab,
        history: &str,
    ) -> ConnState {
        let (o, r) = (self.orig(), 1 - self.orig());
        match (state, tcp) {
            (StateRef::Tcp(_), Some(t)) => {
                use EpState::*;
                let os = t.ep[o].state;
                let rs = t.ep[r].state;
                let o_inactive = matches!(os, Inactive | Partial);
                let r_inactive = matches!(rs, Inactive | Partial);
                if rs == Reset {
                    if matches!(os, SynSent | SynAckSent)
                        || (os == Reset && t.size(o) == 0 && t.size(r) == 0)
                    {
                        ConnState::REJ
                    } else if o_inactive {
                        ConnState::RSTRH
                    } else {
                        ConnState::RSTR
                    }
                } else if os == Reset {
                    if r_inactive {
                        if rstos0_history(history) {
                            ConnState::RSTOS0
                        } else {
                            ConnState::OTH
                        }
                    } else {
                        ConnState::RSTO
                    }
                } else if rs == Closed && os == Closed {
                    ConnState::SF
                } else if os == Closed {
                    if r_inactive {
                        ConnState::SH
                    } else {
                        ConnState::S2
                    }
                } else if rs == Closed {
                    if o_inactive {
                        ConnState::SHR
                    } else {
                        ConnState::S3
                    }
                } else if os == SynSent && rs == Inactive {
                    ConnState::S0
                } else if os == Established && rs == Established {
                    ConnState::S1
                } else {
                    ConnState::OTH
                }
            }
            (StateRef::Small(s), _) if matches!(s.kind, SmallKind::Udp | SmallKind::UdpDns) => {
                match (self.pkts(o, slab) > 0, self.pkts(r, slab) > 0) {
                    (true, true) => ConnState::SF,
                    (true, false) => ConnState::S0,
                    (false, true) => ConnState::SHR,
                    (false, false) => ConnState::OTH,
                }
            }
            _ => ConnState::OTH,
        }
    }

    /// The originator's and the responder's end of `key`, the protocol, and
    /// the ports as records show them (none for protocols without ports).
    fn ends(&self, key: &FlowKey) -> (Endpoint, Endpoint, Proto, u16, u16) {
        let ends = [key.lo, key.hi];
        let (orig_ep, resp_ep) = (ends[self.orig()], ends[1 - self.orig()]);
        let proto = Proto::from_ip_proto(key.proto);
        let (op, rp) = match proto {
            Proto::Unknown => (0, 0),
            _ => (orig_ep.port, resp_ep.port),
        };
        (orig_ep, resp_ep, proto, op, rp)
    }

    /// The start record of a connection just created, in its compact form
    /// (nothing allocated); `None` when it does not fit one (a tunnelled
    /// connection, a history longer than [`HISTORY_BYTES`]). Equal to
    /// [`Conn::record`] with [`EndReason::Start`] ([`ConnStart::record`]).
    pub(crate) fn start_record(
        &self,
        state: StateRef<'_>,
        slab: &SideSlab,
        key: &FlowKey,
        emitted: Timestamp,
    ) -> Option<ConnStart> {
        let tunnelled = self
            .extra(slab)
            .is_some_and(|x| x.tunnels.iter().any(|id| *id != 0));
        let letters = self.history_letters(state, slab);
        if tunnelled || letters.len > HISTORY_BYTES || self.last() != self.start() {
            return None;
        }
        let tcp = match state {
            StateRef::Tcp(t) => Some(t.unpack(self.side, slab)),
            StateRef::Small(_) => None,
        };
        if tcp.as_ref().is_some_and(|t| t.missed_bytes != 0) {
            return None;
        }
        let (o, r) = (self.orig(), 1 - self.orig());
        let (orig_ep, resp_ep, proto, op, rp) = self.ends(key);
        let mut uid = [0u8; UID_BYTES];
        let conn_uid = conn_uid_bytes(key, self.start(), self.uid_seq(slab));
        uid[..conn_uid.len()].copy_from_slice(&conn_uid);
        let mut history = [0u8; HISTORY_BYTES];
        history[..letters.len].copy_from_slice(letters.as_bytes());
        Some(ConnStart {
            ts: self.start(),
            emitted,
            orig_h: orig_ep.addr,
            resp_h: resp_ep.addr,
            orig_pkts: self.pkts(o, slab),
            orig_ip_bytes: self.ip_bytes(o, slab),
            resp_pkts: self.pkts(r, slab),
            resp_ip_bytes: self.ip_bytes(r, slab),
            orig_p: op,
            resp_p: rp,
            vlan: key.vlan,
            inner_vlan: key.inner_vlan,
            proto,
            conn_state: self.conn_state(state, tcp.as_ref(), slab, letters.as_str()),
            ip_proto: key.proto,
            uid_len: conn_uid.len() as u8,
            history_len: letters.len as u8,
            uid,
            history,
        })
    }

    /// Builds the record for this connection as it stands.
    pub(crate) fn record(
        &self,
        state: StateRef<'_>,
        slab: &SideSlab,
        key: &FlowKey,
        reason: EndReason,
        emitted: Timestamp,
    ) -> ConnRecord {
        let tcp = match state {
            StateRef::Tcp(t) => Some(t.unpack(self.side, slab)),
            StateRef::Small(_) => None,
        };
        let (o, r) = (self.orig(), 1 - self.orig());
        let (orig_ep, resp_ep, proto, op, rp) = self.ends(key);
        let duration = self.last().since(self.start());
        let has_duration = duration > Duration::ZERO;
        let (ob, rb, missed, one_way) = match (state, &tcp) {
            (_, Some(t)) => (t.size(o), t.size(r), t.missed_bytes, false),
            (StateRef::Small(s), _) => match s.kind {
                SmallKind::Other => (0, 0, 0, false),
                k => (
                    self.payload(s, o, slab),
                    self.payload(s, r, slab),
                    0,
                    k == SmallKind::IcmpOneWay,
                ),
            },
            (StateRef::Tcp(_), None) => (0, 0, 0, false),
        };
        let tunnel_parents = self
            .extra(slab)
            .map_or(&[][..], |x| &x.tunnels[..])
            .iter()
            .filter(|id| **id != 0)
            .map(|id| tunnel_uid_of_id(*id))
            .collect();
        let history = self.history(state, slab);
        ConnRecord {
            ts: self.start(),
            uid: conn_uid(key, self.start(), self.uid_seq(slab)),
            orig_h: orig_ep.addr,
            orig_p: op,
            resp_h: resp_ep.addr,
            resp_p: rp,
            proto,
            service: None,
            duration: has_duration.then_some(duration),
            orig_bytes: has_duration.then_some(ob),
            resp_bytes: has_duration.then_some(rb),
            conn_state: self.conn_state(state, tcp.as_ref(), slab, &history),
            local_orig: None,
            local_resp: None,
            missed_bytes: missed,
            history,
            orig_pkts: self.pkts(o, slab),
            orig_ip_bytes: self.ip_bytes(o, slab),
            resp_pkts: self.pkts(r, slab),
            resp_ip_bytes: self.ip_bytes(r, slab),
            tunnel_parents,
            vlan: key.vlan,
            inner_vlan: key.inner_vlan,
            ip_proto: key.proto,
            // Start records are for detectors, which compute it only for
            // the few that alert (ConnRecord::computed_community_id).
            community_id: if reason == EndReason::Start {
                String::new()
            } else {
                community_id(orig_ep, resp_ep, key.proto, one_way)
            },
            end_reason: reason,
            emitted,
            orig_enclave: None,
            resp_enclave: None,
            orig_host_group: None,
            resp_host_group: None,
        }
    }
}

/// Zeek's RSTOS0 test: `^?S[^HAFGIQ]*R.*` over the whole history.
fn rstos0_history(h: &str) -> bool {
    let h = h.strip_prefix('^').unwrap_or(h);
    let Some(rest) = h.strip_prefix('S') else {
        return false;
    };
    match rest.find('R') {
        Some(i) => !rest[..i].chars().any(|c| "HAFGIQ".contains(c)),
        None => false,
    }
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// 62 to the 5th: five base62 digits fit in a `u32` below it.
const BASE62_5: u64 = 62 * 62 * 62 * 62 * 62;

/// Writes the base62 digits of `n` (least significant first) to `out`,
/// as many as it holds; 11 hold any `u64`. Five digits at a time in
/// 32-bit arithmetic, which is much cheaper than a 64-bit step per digit.
fn base62(mut n: u64, out: &mut [u8]) {
    for chunk in out.chunks_mut(5) {
        let mut part = (n % BASE62_5) as u32;
        n /= BASE62_5;
        for digit in chunk {
            *digit = BASE62[(part % 62) as usize];
            part /= 62;
        }
    }
}

/// An 18-character uid: `prefix`, the 11 digits of `a`, the first 6 of `b`
/// (least significant first).
/// Built in a byte array, then one allocation (a uid is made for every
/// record; compact start records keep the array).
fn uid_string(prefix: u8, a: u64, b: u64) -> String {
    uid_text(&uid_bytes(prefix, a, b))
}

/// A uid's bytes as text.
fn uid_text(s: &[u8; 18]) -> String {
    // Base62 digits are ASCII: this never falls back to the empty string.
    std::str::from_utf8(s).map_or_else(|_| String::new(), str::to_owned)
}

/// The 18 ASCII bytes of a uid: `prefix`, then `a` and `b` in base62.
fn uid_bytes(prefix: u8, a: u64, b: u64) -> [u8; 18] {
    let mut s = [0u8; 18];
    s[0] = prefix;
    base62(a, &mut s[1..12]);
    base62(b, &mut s[12..]);
    s
}

/// A connection's uid: "C" + base62 of a hash of its key, start time and
/// `seq`, so the same input always yields the same uids, whatever the
/// worker count. `seq` counts the earlier connections on the same key that
/// started at the same instant (0 almost always; a 5-tuple reused within
/// one timestamp gets 1, 2, ...), so no two connections share a uid.
pub fn conn_uid(key: &FlowKey, start: Timestamp, seq: u32) -> String {
    uid_text(&conn_uid_bytes(key, start, seq))
}

/// [`conn_uid`]'s bytes, without allocating.
fn conn_uid_bytes(key: &FlowKey, start: Timestamp, seq: u32) -> [u8; 18] {
    let h = key.symmetric_hash();
    // seq 0 leaves the hash as it always was.
    let salt = u64::from(seq).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let a = crate::key::mix64(h ^ start.0 as u64 ^ salt);
    let b = crate::key::mix64(a ^ 0x5bd1_e995);
    uid_bytes(b'C', a, b >> 24)
}

/// A history's letters, inline (at most [`history::MAX_LEN`] and a flip
/// marker).
#[derive(Clone, Copy)]
struct Letters {
    bytes: [u8; history::MAX_LEN + 1],
    len: usize,
}

impl Default for Letters {
    fn default() -> Self {
        Letters {
            bytes: [0; history::MAX_LEN + 1],
            len: 0,
        }
    }
}

impl Letters {
    fn push(&mut self, letter: u8) {
        if let Some(b) = self.bytes.get_mut(self.len) {
            *b = letter;
            self.len += 1;
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    fn as_str(&self) -> &str {
        // History letters are ASCII.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}

/// A tunnel's uid: derived from the outer addresses, ports and protocol
/// only, so every packet of one tunnel, in either direction, names the same
/// parent.
pub fn tunnel_uid(t: &Tunnel) -> String {
    tunnel_uid_of_id(tunnel_id(t))
}

fn tunnel_uid_of_id(id: u64) -> String {
    uid_string(b'T', id, crate::key::mix64(id) >> 24)
}

/// A tunnel's 64-bit id (never 0): a hash of its canonical outer key.
fn tunnel_id(t: &Tunnel) -> u64 {
    let (key, _) = FlowKey::new(
        Endpoint {
            addr: t.src,
            port: t.src_port,
        },
        Endpoint {
            addr: t.dst,
            port: t.dst_port,
        },
        t.proto,
        None,
        None,
    );
    crate::key::mix64(key.symmetric_hash() ^ 0x7475_6e6e_656c).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rstos0_pattern_follows_zeek() {
        assert!(rstos0_history("SR"));
        assert!(rstos0_history("^SdR"));
        assert!(!rstos0_history("SAR"));
        assert!(!rstos0_history("Sr"));
        assert!(!rstos0_history("DR"));
    }

    /// The uid as first defined: the prefix, then base62 digits (least
    /// significant first) of `a` and of `b`, cut to 18 characters.
    fn uid_by_definition(prefix: char, a: u64, b: u64) -> String {
        let mut s = String::from(prefix);
        for mut n in [a, b] {
            for _ in 0..11 {
                s.push(char::from(BASE62[(n % 62) as usize]));
                n /= 62;
            }
        }
        s.truncate(18);
        s
    }

    #[test]
    fn uids_built_in_a_byte_array_equal_their_definition() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for edge in [0, 1, 61, 62, u64::MAX, u64::MAX >> 24] {
            assert_eq!(
                uid_string(b'C', edge, edge >> 24),
                uid_by_definition('C', edge, edge >> 24)
            );
        }
        for _ in 0..10_000 {
            x = crate::key::mix64(x);
            let y = crate::key::mix64(x ^ 0x5bd1_e995) >> 24;
            assert_eq!(uid_string(b'C', x, y), uid_by_definition('C', x, y));
            assert_eq!(uid_string(b'T', y, x), uid_by_definition('T', y, x));
        }
    }
}
