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
use history::{bit, History};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use tcp::{EpState, TcpConn};

pub use ports::is_likely_server_port;

/// UDP ports Zeek's DNS analyzer is attached to (DNS, NetBIOS name
/// service, mDNS, LLMNR).
const DNS_PORTS: [u16; 4] = [53, 137, 5353, 5355];

/// Most tunnel parents remembered per connection.
const MAX_TUNNEL_PARENTS: usize = 4;

/// Counters of one direction.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
struct SideCounters {
    pkts: u64,
    ip_bytes: u64,
    /// Payload bytes for UDP / ICMP (TCP's come from sequence numbers).
    payload: u64,
    /// At least one packet seen (UDP_ACTIVE).
    active: bool,
}

/// Protocol-specific state. TCP's is the largest and the most common, so it
/// is kept inline rather than boxed: no allocation per connection.
#[allow(clippy::large_enum_variant)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum ProtoState {
    Tcp(TcpConn),
    /// `dns`: a port Zeek's DNS analyzer claims, which ends the connection
    /// after `dns_session_timeout` of silence.
    Udp {
        dns: bool,
    },
    Icmp {
        one_way: bool,
    },
    Other,
}

/// A live connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conn {
    /// Side (0 = key.lo, 1 = key.hi) of the originator.
    orig: usize,
    start: Timestamp,
    last: Timestamp,
    /// Time of the last packet of any kind (for eviction choice).
    pub(crate) last_packet: Timestamp,
    sides: [SideCounters; 2],
    history: History,
    proto: ProtoState,
    /// Removal time after a complete close (FIN exchange or RST).
    close_at: Option<(Timestamp, EndReason)>,
    /// When an unanswered attempt is given up.
    attempt_at: Option<Timestamp>,
    /// When the next interim record is due.
    interim_at: Option<Timestamp>,
    /// Ids of the tunnels that carried this connection ([`Tunnel::id`]), 0 = free slot.
    tunnel_parents: [u64; MAX_TUNNEL_PARENTS],
    /// The timer-wheel slot this connection is currently filed under.
    pub(crate) timer_slot: i64,
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
    ) -> Conn {
        let sender = side_of(src_is_lo);
        let mut history = History::default();
        let (src, dst, one_way) = packet_endpoints(p);
        let mut flip = false;
        let proto = match p.transport {
            Transport::Tcp(ref seg) => {
                if seg.flags.syn() {
                    // A SYN-ACK seen first comes from the responder.
                    flip = seg.flags.ack();
                } else {
                    let ls = is_likely_server_port(6, src.port);
                    let ld = is_likely_server_port(6, dst.port);
                    flip = ls && (!ld || src.port < dst.port);
                }
                ProtoState::Tcp(TcpConn::default())
            }
            Transport::Udp { .. } => {
                flip = is_likely_server_port(17, src.port)
                    && !is_likely_server_port(17, dst.port)
                    && dst.addr != IpAddr::V4(Ipv4Addr::BROADCAST);
                let dns = [src.port, dst.port].iter().any(|p| DNS_PORTS.contains(p));
                ProtoState::Udp { dns }
            }
            // ICMP never flips: the first sender is the originator, as in Zeek.
            Transport::Icmp { .. } => ProtoState::Icmp { one_way },
            _ => ProtoState::Other,
        };
        let orig = if flip { 1 - sender } else { sender };
        if flip {
            history.flip();
        }
        let interim_at = cfg.active_timeout.map(|d| ts.plus(d));
        Conn {
            orig,
            start: ts,
            last: ts,
            last_packet: ts,
            sides: [SideCounters::default(); 2],
            history,
            proto,
            close_at: None,
            attempt_at: None,
            interim_at,
            tunnel_parents: [0; MAX_TUNNEL_PARENTS],
            timer_slot: i64::MIN,
        }
    }

    /// Time of the first packet.
    pub(crate) fn start(&self) -> Timestamp {
        self.start
    }

    /// Whether this packet starts a new connection on the same key (Zeek's
    /// TCP connection reuse: a SYN with a new initial sequence number).
    pub(crate) fn is_reuse(&self, p: &FlowPacket<'_>) -> bool {
        match (&self.proto, &p.transport) {
            (ProtoState::Tcp(t), Transport::Tcp(seg)) => t.is_reuse(seg, self.orig),
            _ => false,
        }
    }

    /// Applies one packet sent by the key side given by `src_is_lo`.
    /// `complete` says its payload was fully captured.
    pub(crate) fn update(
        &mut self,
        p: &FlowPacket<'_>,
        src_is_lo: bool,
        ts: Timestamp,
        complete: bool,
        cfg: &TableConfig,
    ) {
        let s = side_of(src_is_lo);
        self.last_packet = self.last_packet.max(ts);
        if let Some(t) = p.tunnel {
            self.add_tunnel_parent(t);
        }
        let mut touch = true;
        match (&mut self.proto, &p.transport) {
            (ProtoState::Tcp(tcp), Transport::Tcp(seg)) => {
                let out = tcp.segment(seg, s, &mut self.orig, complete, &mut self.history);
                touch = out.touch;
                if touch {
                    self.last = self.last.max(ts);
                }
                if self.attempt_at.is_none() && tcp.is_attempt(self.orig) {
                    self.attempt_at = Some(ts.plus(cfg.tcp_attempt_delay));
                }
                if out.close_complete && self.close_at.is_none() {
                    let reset = tcp.ep.iter().any(|e| e.state == EpState::Reset);
                    let reason = if reset {
                        EndReason::Rst
                    } else {
                        EndReason::Fin
                    };
                    self.close_at = Some((self.last.plus(cfg.tcp_close_delay), reason));
                }
            }
            (ProtoState::Udp { .. }, Transport::Udp { payload_len, .. }) => {
                let is_orig = s == self.orig;
                self.history.check(is_orig, bit::DATA, b'D');
                self.sides[s].payload += u64::from(*payload_len);
            }
            (ProtoState::Icmp { .. }, Transport::Icmp { payload_len, .. }) => {
                self.sides[s].payload += u64::from(*payload_len);
            }
            _ => {}
        }
        if touch {
            self.last = self.last.max(ts);
        }
        let side = &mut self.sides[s];
        side.pkts += 1;
        side.ip_bytes += u64::from(p.ip.ip_len);
        side.active = true;
    }

    /// Counts a non-first IP fragment attributed to this connection. Like
    /// Zeek, which counts a reassembled datagram once, the datagram is one
    /// packet (its first fragment) and its IP bytes are the reassembled
    /// length: the first fragment's, plus each later fragment's data.
    pub(crate) fn add_fragment(&mut self, src_is_lo: bool, data_len: u32, ts: Timestamp) {
        let side = &mut self.sides[side_of(src_is_lo)];
        side.ip_bytes += u64::from(data_len);
        self.last = self.last.max(ts);
        self.last_packet = self.last_packet.max(ts);
    }

    fn add_tunnel_parent(&mut self, t: Tunnel) {
        let id = tunnel_id(&t);
        for slot in &mut self.tunnel_parents {
            if *slot == id {
                return;
            }
            if *slot == 0 {
                *slot = id;
                return;
            }
        }
    }

    /// Idle timeout in force: TCP uses UDP's until the handshake completes,
    /// as Zeek does.
    fn idle_timeout(&self, cfg: &TableConfig) -> Duration {
        match &self.proto {
            ProtoState::Tcp(t) if t.past_handshake() => cfg.tcp_idle,
            ProtoState::Udp { dns: true } => cfg.udp_idle.min(cfg.dns_idle),
            ProtoState::Tcp(_) | ProtoState::Udp { .. } => cfg.udp_idle,
            ProtoState::Icmp { .. } => cfg.icmp_idle,
            ProtoState::Other => cfg.other_idle,
        }
    }

    /// When the connection is due to end (or to report an interim record)
    /// if no further packet arrives, and why.
    pub(crate) fn deadline(&self, cfg: &TableConfig) -> (Timestamp, EndReason) {
        let mut best = (self.last.plus(self.idle_timeout(cfg)), EndReason::Idle);
        if let Some(c) = self.close_at {
            if c.0 < best.0 {
                best = c;
            }
        }
        if let (Some(a), ProtoState::Tcp(t)) = (self.attempt_at, &self.proto) {
            if t.is_attempt(self.orig) && a < best.0 {
                best = (a, EndReason::Idle);
            }
        }
        if let Some(i) = self.interim_at {
            if i < best.0 {
                best = (i, EndReason::Active);
            }
        }
        best
    }

    /// The end reason for a connection ended from outside (end of input,
    /// shutdown): a connection already closed by FIN or RST says so.
    pub(crate) fn flush_reason(&self, reason: EndReason) -> EndReason {
        self.close_at.map_or(reason, |(_, r)| r)
    }

    /// Schedules the next interim record after one was emitted at `now`.
    pub(crate) fn interim_emitted(&mut self, now: Timestamp, cfg: &TableConfig) {
        self.interim_at = cfg.active_timeout.map(|d| now.plus(d));
    }

    /// Zeek's conn_state.
    fn conn_state(&self) -> ConnState {
        let (o, r) = (self.orig, 1 - self.orig);
        match &self.proto {
            ProtoState::Tcp(t) => {
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
                        if rstos0_history(self.history.as_str()) {
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
            ProtoState::Udp { .. } => match (self.sides[o].active, self.sides[r].active) {
                (true, true) => ConnState::SF,
                (true, false) => ConnState::S0,
                (false, true) => ConnState::SHR,
                (false, false) => ConnState::OTH,
            },
            _ => ConnState::OTH,
        }
    }

    /// Builds the record for this connection as it stands.
    pub(crate) fn record(
        &self,
        key: &FlowKey,
        reason: EndReason,
        emitted: Timestamp,
    ) -> ConnRecord {
        let (o, r) = (self.orig, 1 - self.orig);
        let ends = [key.lo, key.hi];
        let (orig_ep, resp_ep) = (ends[o], ends[r]);
        let duration = self.last.since(self.start);
        let has_duration = duration > Duration::ZERO;
        let (ob, rb, missed) = match &self.proto {
            ProtoState::Tcp(t) => (t.size(o), t.size(r), t.missed_bytes),
            ProtoState::Other => (0, 0, 0),
            _ => (self.sides[o].payload, self.sides[r].payload, 0),
        };
        let one_way = matches!(self.proto, ProtoState::Icmp { one_way: true });
        let tunnel_parents = self
            .tunnel_parents
            .iter()
            .filter(|id| **id != 0)
            .map(|id| tunnel_uid_of_id(*id))
            .collect();
        let proto = Proto::from_ip_proto(key.proto);
        let (op, rp) = match proto {
            Proto::Unknown => (0, 0),
            _ => (orig_ep.port, resp_ep.port),
        };
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
            conn_state: self.conn_state(),
            local_orig: None,
            local_resp: None,
            missed_bytes: missed,
            history: self.history.as_str().to_owned(),
            orig_pkts: self.sides[o].pkts,
            orig_ip_bytes: self.sides[o].ip_bytes,
            resp_pkts: self.sides[r].pkts,
            resp_ip_bytes: self.sides[r].ip_bytes,
            tunnel_parents,
            vlan: key.vlan,
            inner_vlan: key.inner_vlan,
            ip_proto: key.proto,
            community_id: community_id(orig_ep, resp_ep, key.proto, one_way),
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

fn base62(mut n: u64, out: &mut String) {
    for _ in 0..11 {
        out.push(char::from(BASE62[(n % 62) as usize]));
        n /= 62;
    }
}

/// A connection's uid: "C" + base62 of a hash of its key and start time,
/// so the same input always yields the same uids, whatever the worker count.
pub fn conn_uid(key: &FlowKey, start: Timestamp) -> String {
    let h = key.symmetric_hash();
    let a = crate::key::mix64(h ^ start.0 as u64);
    let b = crate::key::mix64(a ^ 0x5bd1_e995);
    let mut s = String::with_capacity(18);
    s.push('C');
    base62(a, &mut s);
    base62(b >> 24, &mut s);
    s.truncate(18);
    s
}

/// A tunnel's uid: derived from the outer addresses, ports and protocol
/// only, so every packet of one tunnel, in either direction, names the same
/// parent.
pub fn tunnel_uid(t: &Tunnel) -> String {
    tunnel_uid_of_id(tunnel_id(t))
}

fn tunnel_uid_of_id(id: u64) -> String {
    let mut s = String::with_capacity(18);
    s.push('T');
    base62(id, &mut s);
    base62(crate::key::mix64(id) >> 24, &mut s);
    s.truncate(18);
    s
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
}
