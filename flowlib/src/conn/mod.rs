//! One connection's state: counters per direction, Zeek's history, the
//! protocol-specific state machine, and when the connection ends.

mod history;
mod ports;
mod tcp;

use crate::config::TableConfig;
use crate::decode::{FlowPacket, Transport, Tunnel};
use crate::key::{community_id, icmp_ports, Endpoint, FlowKey};
use crate::record::{ConnRecord, ConnState, EndReason, Proto};
use crate::time::Timestamp;
use history::History;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
pub(crate) use tcp::OooSlab;
use tcp::{EpState, TcpConn};

pub use ports::is_likely_server_port;

/// UDP ports Zeek's DNS analyzer is attached to (DNS, NetBIOS name
/// service, mDNS, LLMNR).
const DNS_PORTS: [u16; 4] = [53, 137, 5353, 5355];

/// Most tunnel parents remembered per connection.
const MAX_TUNNEL_PARENTS: usize = 4;

/// How a non-TCP connection is metered.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum SmallKind {
    Udp,
    /// UDP on a port Zeek's DNS analyzer claims, which ends the connection
    /// after `dns_session_timeout` of silence.
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
    /// Payload bytes per key side (TCP's come from sequence numbers).
    payload: [u64; 2],
}

/// Protocol state of a connection, as it is stored: TCP's out of line in
/// the table's TCP slab, everything else next to the common part.
pub(crate) enum NewState {
    /// A TCP connection and its history.
    Tcp(TcpConn, History),
    /// Any other protocol.
    Small(Small),
}

/// Mutable access to a connection's protocol state.
pub(crate) enum StateMut<'a> {
    /// TCP: state machine, history, and the table's out-of-order blocks.
    Tcp(&'a mut TcpConn, &'a mut History, &'a mut OooSlab),
    /// Any other protocol.
    Small(&'a mut Small),
}

/// Read access to a connection's protocol state.
#[derive(Copy, Clone)]
pub(crate) enum StateRef<'a> {
    /// TCP: state machine and history.
    Tcp(&'a TcpConn, &'a History),
    /// Any other protocol.
    Small(&'a Small),
}

/// A TCP connection's protocol state as the table stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TcpState {
    tcp: TcpConn,
    history: History,
}

impl TcpState {
    /// Wraps a new connection's state.
    pub(crate) fn new(tcp: TcpConn, history: History) -> TcpState {
        TcpState { tcp, history }
    }

    /// Read access.
    pub(crate) fn as_ref(&self) -> StateRef<'_> {
        StateRef::Tcp(&self.tcp, &self.history)
    }

    /// Write access, with the table's out-of-order block slab.
    pub(crate) fn as_mut<'a>(&'a mut self, ooo: &'a mut OooSlab) -> StateMut<'a> {
        StateMut::Tcp(&mut self.tcp, &mut self.history, ooo)
    }

    /// Gives side state back when the connection ends.
    pub(crate) fn release(&mut self, ooo: &mut OooSlab) {
        self.tcp.release(ooo);
    }
}

/// Bits of [`Conn::hist`] (the history of a non-TCP connection, which only
/// ever holds `^`, `D` and `d`).
mod small_hist {
    /// Roles were flipped at the start (`^` first).
    pub const FLIPPED: u8 = 1;
    /// The originator sent (`D`).
    pub const ORIG: u8 = 2;
    /// The responder sent (`d`).
    pub const RESP: u8 = 4;
    /// The responder's `d` came before the originator's `D`.
    pub const RESP_FIRST: u8 = 8;
}

/// The part of a live connection every protocol has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conn {
    start: Timestamp,
    last: Timestamp,
    /// When the next interim record is due; `Timestamp(i64::MAX)` = never.
    interim_at: Timestamp,
    /// The timer-wheel slot this connection is currently filed under.
    pub(crate) timer_slot: i64,
    /// Packets per key side (0 = key.lo, 1 = key.hi).
    pkts: [u64; 2],
    /// IP bytes per key side.
    ip_bytes: [u64; 2],
    /// Tunnel parents in the table's [`TunnelSlab`] (slot + 1), 0 = none.
    pub(crate) tunnels: u32,
    /// Side (0 = key.lo, 1 = key.hi) of the originator.
    orig: u8,
    /// History of a non-TCP connection ([`small_hist`] bits).
    hist: u8,
}

/// Ids of the tunnels that carried each connection ([`Tunnel`] ids, 0 =
/// free slot), for the few connections that came through tunnels.
#[derive(Debug, Default)]
pub(crate) struct TunnelSlab {
    sets: Vec<[u64; MAX_TUNNEL_PARENTS]>,
    free: Vec<u32>,
}

impl TunnelSlab {
    /// Bytes held, for accounting.
    pub(crate) fn capacity_bytes(&self) -> usize {
        self.sets.capacity() * std::mem::size_of::<[u64; MAX_TUNNEL_PARENTS]>()
            + self.free.capacity() * std::mem::size_of::<u32>()
    }

    fn add(&mut self, set: &mut u32, id: u64) {
        if *set == 0 {
            *set = match self.free.pop() {
                Some(i) => {
                    self.sets[i as usize] = [0; MAX_TUNNEL_PARENTS];
                    i + 1
                }
                None => {
                    self.sets.push([0; MAX_TUNNEL_PARENTS]);
                    self.sets.len() as u32
                }
            };
        }
        let Some(ids) = self.sets.get_mut(*set as usize - 1) else {
            return;
        };
        for slot in ids {
            if *slot == id {
                return;
            }
            if *slot == 0 {
                *slot = id;
                return;
            }
        }
    }

    fn get(&self, set: u32) -> &[u64] {
        match set.checked_sub(1).and_then(|i| self.sets.get(i as usize)) {
            Some(ids) => ids,
            None => &[],
        }
    }

    /// Frees a connection's set (when it ends).
    pub(crate) fn release(&mut self, set: &mut u32) {
        if *set != 0 {
            self.free.push(*set - 1);
            *set = 0;
        }
    }
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
    pub(crate) fn new(
        p: &FlowPacket<'_>,
        src_is_lo: bool,
        ts: Timestamp,
        cfg: &TableConfig,
    ) -> (Conn, NewState) {
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
                NewState::Tcp(TcpConn::default(), History::default())
            }
            Transport::Udp { .. } => {
                flip = is_likely_server_port(17, src.port)
                    && !is_likely_server_port(17, dst.port)
                    && dst.addr != IpAddr::V4(Ipv4Addr::BROADCAST);
                let dns = [src.port, dst.port].iter().any(|p| DNS_PORTS.contains(p));
                small(if dns {
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
        let mut hist = 0;
        if flip {
            match &mut state {
                NewState::Tcp(_, history) => history.flip(),
                NewState::Small(_) => hist |= small_hist::FLIPPED,
            }
        }
        let interim_at = match cfg.active_timeout {
            Some(d) => ts.plus(d),
            None => Timestamp(i64::MAX),
        };
        let conn = Conn {
            start: ts,
            last: ts,
            interim_at,
            timer_slot: i64::MIN,
            pkts: [0; 2],
            ip_bytes: [0; 2],
            tunnels: 0,
            orig: orig as u8,
            hist,
        };
        (conn, state)
    }

    /// Whether this is a half-open connection: an unanswered attempt (the
    /// originator sent a SYN, the responder has said nothing).
    pub(crate) fn is_attempt(&self, state: StateRef<'_>) -> bool {
        matches!(state, StateRef::Tcp(t, _) if t.is_attempt(self.orig()))
    }

    /// Time of the first packet.
    pub(crate) fn start(&self) -> Timestamp {
        self.start
    }

    /// Time of the last packet.
    pub(crate) fn last(&self) -> Timestamp {
        self.last
    }

    fn orig(&self) -> usize {
        usize::from(self.orig)
    }

    /// Whether this packet starts a new connection on the same key (Zeek's
    /// TCP connection reuse: a SYN with a new initial sequence number).
    pub(crate) fn is_reuse(&self, state: StateRef<'_>, p: &FlowPacket<'_>) -> bool {
        match (state, &p.transport) {
            (StateRef::Tcp(t, _), Transport::Tcp(seg)) => t.is_reuse(seg, self.orig()),
            _ => false,
        }
    }

    /// Applies one packet sent by the key side given by `src_is_lo`.
    /// `complete` says its payload was fully captured.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn update(
        &mut self,
        state: StateMut<'_>,
        tunnels: &mut TunnelSlab,
        p: &FlowPacket<'_>,
        src_is_lo: bool,
        ts: Timestamp,
        complete: bool,
        cfg: &TableConfig,
    ) {
        let s = side_of(src_is_lo);
        if let Some(t) = p.tunnel {
            tunnels.add(&mut self.tunnels, tunnel_id(&t));
        }
        let mut touch = true;
        match (state, &p.transport) {
            (StateMut::Tcp(tcp, history, ooo), Transport::Tcp(seg)) => {
                let mut orig = self.orig();
                let out = tcp.segment(seg, s, &mut orig, complete, history, ooo);
                self.orig = orig as u8;
                touch = out.touch;
                if touch {
                    self.last = self.last.max(ts);
                }
                if tcp.attempt_at.0 == i64::MAX && tcp.is_attempt(orig) {
                    tcp.attempt_at = ts.plus(cfg.tcp_attempt_delay);
                }
                if out.close_complete && tcp.close_reason.is_none() {
                    let reset = tcp.ep.iter().any(|e| e.state == EpState::Reset);
                    let reason = if reset {
                        EndReason::Rst
                    } else {
                        EndReason::Fin
                    };
                    tcp.close_at = self.last.plus(cfg.tcp_close_delay);
                    tcp.close_reason = Some(reason);
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
                if self.hist & (small_hist::ORIG | small_hist::RESP) == 0 && !is_orig {
                    self.hist |= small_hist::RESP_FIRST;
                }
                self.hist |= bit;
                small.payload[s] += u64::from(*payload_len);
            }
            (StateMut::Small(small), Transport::Icmp { payload_len, .. })
                if matches!(small.kind, SmallKind::Icmp | SmallKind::IcmpOneWay) =>
            {
                small.payload[s] += u64::from(*payload_len);
            }
            _ => {}
        }
        if touch {
            self.last = self.last.max(ts);
        }
        self.pkts[s] += 1;
        self.ip_bytes[s] += u64::from(p.ip.ip_len);
    }

    /// Counts a non-first IP fragment attributed to this connection. Like
    /// Zeek, which counts a reassembled datagram once, the datagram is one
    /// packet (its first fragment) and its IP bytes are the reassembled
    /// length: the first fragment's, plus each later fragment's data.
    pub(crate) fn add_fragment(&mut self, src_is_lo: bool, data_len: u32, ts: Timestamp) {
        self.ip_bytes[side_of(src_is_lo)] += u64::from(data_len);
        self.last = self.last.max(ts);
    }

    /// Idle timeout in force: TCP uses UDP's until the handshake completes,
    /// as Zeek does.
    fn idle_timeout(&self, state: StateRef<'_>, cfg: &TableConfig) -> Duration {
        match state {
            StateRef::Tcp(t, _) if t.past_handshake() => cfg.tcp_idle,
            StateRef::Tcp(..) => cfg.udp_idle,
            StateRef::Small(s) => match s.kind {
                SmallKind::UdpDns => cfg.udp_idle.min(cfg.dns_idle),
                SmallKind::Udp => cfg.udp_idle,
                SmallKind::Icmp | SmallKind::IcmpOneWay => cfg.icmp_idle,
                SmallKind::Other => cfg.other_idle,
            },
        }
    }

    /// When the connection is due to end (or to report an interim record)
    /// if no further packet arrives, and why.
    pub(crate) fn deadline(
        &self,
        state: StateRef<'_>,
        cfg: &TableConfig,
    ) -> (Timestamp, EndReason) {
        let mut best = (
            self.last.plus(self.idle_timeout(state, cfg)),
            EndReason::Idle,
        );
        if let StateRef::Tcp(t, _) = state {
            if let Some(r) = t.close_reason {
                if t.close_at < best.0 {
                    best = (t.close_at, r);
                }
            }
            if t.attempt_at.0 != i64::MAX && t.is_attempt(self.orig()) && t.attempt_at < best.0 {
                best = (t.attempt_at, EndReason::Idle);
            }
        }
        if self.interim_at < best.0 {
            best = (self.interim_at, EndReason::Active);
        }
        best
    }

    /// The end reason for a connection ended from outside (end of input,
    /// shutdown): a connection already closed by FIN or RST says so.
    pub(crate) fn flush_reason(&self, state: StateRef<'_>, reason: EndReason) -> EndReason {
        match state {
            StateRef::Tcp(t, _) => t.close_reason.unwrap_or(reason),
            StateRef::Small(_) => reason,
        }
    }

    /// Schedules the next interim record after one was emitted at `now`.
    pub(crate) fn interim_emitted(&mut self, now: Timestamp, cfg: &TableConfig) {
        self.interim_at = match cfg.active_timeout {
            Some(d) => now.plus(d),
            None => Timestamp(i64::MAX),
        };
    }

    /// The history string.
    fn history(&self, state: StateRef<'_>) -> String {
        match state {
            StateRef::Tcp(_, h) => h.render(),
            StateRef::Small(_) => {
                let mut s = String::new();
                let h = self.hist;
                if h & small_hist::FLIPPED != 0 {
                    s.push('^');
                }
                let (o, r) = (h & small_hist::ORIG != 0, h & small_hist::RESP != 0);
                if h & small_hist::RESP_FIRST != 0 {
                    s.push('d');
                    if o {
                        s.push('D');
                    }
                } else if o {
                    s.push('D');
                    if r {
                        s.push('d');
                    }
                } else if r {
                    s.push('d');
                }
                s
            }
        }
    }

    /// Zeek's conn_state.
    fn conn_state(&self, state: StateRef<'_>, history: &str) -> ConnState {
        let (o, r) = (self.orig(), 1 - self.orig());
        match state {
            StateRef::Tcp(t, _) => {
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
            StateRef::Small(s) if matches!(s.kind, SmallKind::Udp | SmallKind::UdpDns) => {
                match (self.pkts[o] > 0, self.pkts[r] > 0) {
                    (true, true) => ConnState::SF,
                    (true, false) => ConnState::S0,
                    (false, true) => ConnState::SHR,
                    (false, false) => ConnState::OTH,
                }
            }
            StateRef::Small(_) => ConnState::OTH,
        }
    }

    /// Builds the record for this connection as it stands.
    pub(crate) fn record(
        &self,
        state: StateRef<'_>,
        tunnels: &TunnelSlab,
        key: &FlowKey,
        reason: EndReason,
        emitted: Timestamp,
    ) -> ConnRecord {
        let (o, r) = (self.orig(), 1 - self.orig());
        let ends = [key.lo, key.hi];
        let (orig_ep, resp_ep) = (ends[o], ends[r]);
        let duration = self.last.since(self.start);
        let has_duration = duration > Duration::ZERO;
        let (ob, rb, missed, one_way) = match state {
            StateRef::Tcp(t, _) => (t.size(o), t.size(r), t.missed_bytes, false),
            StateRef::Small(s) => match s.kind {
                SmallKind::Other => (0, 0, 0, false),
                k => (s.payload[o], s.payload[r], 0, k == SmallKind::IcmpOneWay),
            },
        };
        let tunnel_parents = tunnels
            .get(self.tunnels)
            .iter()
            .filter(|id| **id != 0)
            .map(|id| tunnel_uid_of_id(*id))
            .collect();
        let proto = Proto::from_ip_proto(key.proto);
        let (op, rp) = match proto {
            Proto::Unknown => (0, 0),
            _ => (orig_ep.port, resp_ep.port),
        };
        let history = self.history(state);
        ConnRecord {
            ts: self.start,
            uid: conn_uid(key, self.start),
            orig_h: orig_ep.addr,
            orig_p: op,
            resp_h: resp_ep.addr,
            resp_p: rp,
            proto,
            service: None,
            duration: has_duration.then_some(duration),
            orig_bytes: has_duration.then_some(ob),
            resp_bytes: has_duration.then_some(rb),
            conn_state: self.conn_state(state, &history),
            local_orig: None,
            local_resp: None,
            missed_bytes: missed,
            history,
            orig_pkts: self.pkts[o],
            orig_ip_bytes: self.ip_bytes[o],
            resp_pkts: self.pkts[r],
            resp_ip_bytes: self.ip_bytes[r],
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
/// record, start records included).
fn uid_string(prefix: u8, a: u64, b: u64) -> String {
    let mut s = [0u8; 18];
    s[0] = prefix;
    base62(a, &mut s[1..12]);
    base62(b, &mut s[12..]);
    // Base62 digits are ASCII: this never falls back to the empty string.
    std::str::from_utf8(&s).map_or_else(|_| String::new(), str::to_owned)
}

/// A connection's uid: "C" + base62 of a hash of its key and start time,
/// so the same input always yields the same uids, whatever the worker count.
pub fn conn_uid(key: &FlowKey, start: Timestamp) -> String {
    let h = key.symmetric_hash();
    let a = crate::key::mix64(h ^ start.0 as u64);
    let b = crate::key::mix64(a ^ 0x5bd1_e995);
    uid_string(b'C', a, b >> 24)
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
