//! One synthetic conversation: its description, the Ethernet frames it
//! produces (lazily, one at a time), and the Zeek conn.log ground truth those
//! frames should give.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use etherparse::{IpHeaders, PacketBuilder, PacketBuilderStep, TcpOptionElement, VlanId};
use flowlib::Timestamp;

use crate::rng::{mix, SplitMix64};

/// The transport of a conversation.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// A TCP session with handshake, data, and a [`Close`] style.
    Tcp,
    /// UDP request/response pairs (DNS-, SNMP-, NTP-like).
    Udp,
    /// ICMP (or ICMPv6) echo request/reply pairs.
    IcmpEcho,
}

/// How a TCP conversation ends (ignored for UDP and ICMP).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Close {
    /// Handshake, data, then FIN from the client, FIN from the server, last
    /// ACK. Zeek `SF`.
    Fin,
    /// Handshake, data, then the client aborts with RST. Zeek `RSTO`.
    RstByClient,
    /// Handshake, data, then the server aborts with RST. Zeek `RSTR`.
    RstByServer,
    /// The server answers the SYN with RST+ACK (closed port). Zeek `REJ`.
    Rejected,
    /// The SYN is never answered (filtered port, dead host); the client sends
    /// [`Conversation::syn_attempts`] SYNs with the same sequence number. Zeek `S0`.
    NoAnswer,
    /// Handshake and data, never closed (still open at the end of the
    /// capture). Zeek `S1`.
    Open,
}

/// Description of one conversation between a client (the originator) and a
/// server.
///
/// For TCP, `rounds` request/response exchanges are made: in each, the client
/// sends its share of `client_bytes` in MSS-sized segments, the server
/// acknowledges every second segment, then the server sends its share of
/// `server_bytes` likewise. For UDP, each round is one request (and, when
/// `server_bytes > 0`, one response). For ICMP echo, each round is an echo
/// request of the round's share of `client_bytes` and, when `server_bytes > 0`,
/// an echo reply carrying the same payload (so the reply size follows the
/// request, not `server_bytes`); the client port is the echo identifier.
///
/// If client and server addresses are of different families, the IPv4 one is
/// used as an IPv4-mapped IPv6 address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Conversation {
    /// Originator address and port.
    pub client: SocketAddr,
    /// Responder address and port.
    pub server: SocketAddr,
    /// Transport.
    pub protocol: Protocol,
    /// Application payload bytes sent by the client, over all rounds.
    pub client_bytes: u64,
    /// Application payload bytes sent by the server, over all rounds.
    pub server_bytes: u64,
    /// Number of request/response exchanges (at least 1 is used).
    pub rounds: u32,
    /// Time of the first packet.
    pub start: Timestamp,
    /// Mean gap between consecutive packets (each gap is jittered by +-25%).
    pub spacing: Duration,
    /// How a TCP session ends.
    pub close: Close,
    /// SYNs sent when [`Close::NoAnswer`] (at least 1; retransmissions 1 s,
    /// 2 s, 4 s ... apart).
    pub syn_attempts: u8,
    /// 802.1Q VLAN id (1..=4094) to tag every frame with, if any.
    pub vlan: Option<u16>,
    /// TCP maximum segment size (clamped to 536..=8960).
    pub mss: u16,
    /// Seed for initial sequence numbers and timing jitter.
    pub seed: u64,
}

impl Conversation {
    fn base(client: SocketAddr, server: SocketAddr, protocol: Protocol, start: Timestamp) -> Self {
        let v6 = client.is_ipv6() || server.is_ipv6();
        let seed =
            mix(start.0 as u64 ^ mix(u64::from(client.port()) << 16 | u64::from(server.port())))
                ^ match client.ip() {
                    IpAddr::V4(a) => u64::from(u32::from(a)),
                    IpAddr::V6(a) => u128::from(a) as u64,
                };
        Conversation {
            client,
            server,
            protocol,
            client_bytes: 0,
            server_bytes: 0,
            rounds: 1,
            start,
            spacing: Duration::from_millis(10),
            close: Close::Fin,
            syn_attempts: 3,
            vlan: None,
            mss: if v6 { 1440 } else { 1460 },
            seed,
        }
    }

    /// A TCP session from `client` to `server` starting at `start`, with no
    /// payload yet, a FIN close, 10 ms spacing and a seed derived from the
    /// endpoints and start time.
    pub fn tcp(client: SocketAddr, server: SocketAddr, start: Timestamp) -> Self {
        Self::base(client, server, Protocol::Tcp, start)
    }

    /// UDP request/response pairs from `client` to `server`.
    pub fn udp(client: SocketAddr, server: SocketAddr, start: Timestamp) -> Self {
        Self::base(client, server, Protocol::Udp, start)
    }

    /// ICMP echo from `client` to `server` with echo identifier `id`: one
    /// 56-byte ping answered by default.
    pub fn icmp_echo(client: IpAddr, server: IpAddr, id: u16, start: Timestamp) -> Self {
        let mut c = Self::base(
            SocketAddr::new(client, id),
            SocketAddr::new(server, 0),
            Protocol::IcmpEcho,
            start,
        );
        c.client_bytes = 56;
        c.server_bytes = 56;
        c
    }

    /// Sets the payload bytes each way.
    pub fn bytes(mut self, client_bytes: u64, server_bytes: u64) -> Self {
        self.client_bytes = client_bytes;
        self.server_bytes = server_bytes;
        self
    }

    /// Sets the number of request/response exchanges.
    pub fn rounds(mut self, rounds: u32) -> Self {
        self.rounds = rounds;
        self
    }

    /// Sets the mean packet spacing.
    pub fn spacing(mut self, spacing: Duration) -> Self {
        self.spacing = spacing;
        self
    }

    /// Sets the close style.
    pub fn close(mut self, close: Close) -> Self {
        self.close = close;
        self
    }

    /// Sets how many SYNs an unanswered connection attempt sends.
    pub fn syn_attempts(mut self, n: u8) -> Self {
        self.syn_attempts = n;
        self
    }

    /// Tags every frame with 802.1Q VLAN `id`.
    pub fn vlan(mut self, id: u16) -> Self {
        self.vlan = Some(id);
        self
    }

    /// Sets the TCP MSS.
    pub fn mss(mut self, mss: u16) -> Self {
        self.mss = mss;
        self
    }

    /// Sets the seed (ISNs and jitter).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// A lazy iterator over this conversation's frames.
    pub fn frames(&self) -> Frames {
        Frames {
            machine: Machine::new(self),
            conv: self.clone(),
            scratch: Vec::new(),
        }
    }

    /// What Zeek's conn.log should say about this conversation.
    pub fn expected(&self) -> Expected {
        let mut m = Machine::new(self);
        let mut e = Expected {
            orig_pkts: 0,
            orig_bytes: 0,
            orig_ip_bytes: 0,
            resp_pkts: 0,
            resp_bytes: 0,
            resp_ip_bytes: 0,
            conn_state: conn_state(self),
            history: String::new(),
            first_ts: self.start,
            last_ts: self.start,
        };
        let mut seen = [0u16; 2];
        let v6 = self.is_ipv6();
        while let Some(s) = m.next_spec(self) {
            let ip_len = ip_len(v6, &s);
            e.last_ts = s.ts;
            if s.from_client {
                e.orig_pkts += 1;
                e.orig_bytes += u64::from(s.payload_len);
                e.orig_ip_bytes += ip_len;
            } else {
                e.resp_pkts += 1;
                e.resp_bytes += u64::from(s.payload_len);
                e.resp_ip_bytes += ip_len;
            }
            if let Some((bit, ch)) = history_event(self.protocol, &s) {
                let d = usize::from(!s.from_client);
                if seen[d] & bit == 0 {
                    seen[d] |= bit;
                    e.history.push(if s.from_client {
                        ch
                    } else {
                        ch.to_ascii_lowercase()
                    });
                }
            }
        }
        e
    }

    /// Whether frames carry IPv6 (true if either endpoint is IPv6).
    pub fn is_ipv6(&self) -> bool {
        self.client.is_ipv6() || self.server.is_ipv6()
    }
}

/// All frames of one conversation, materialised. Use [`Conversation::frames`]
/// to generate them lazily instead.
pub fn packets(conv: &Conversation) -> Vec<(Timestamp, Vec<u8>)> {
    conv.frames().collect()
}

/// Ground truth for one conversation, with the meaning of the same-named
/// fields of Zeek's conn.log.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Expected {
    /// Packets sent by the originator.
    pub orig_pkts: u64,
    /// Payload bytes sent by the originator (TCP/UDP payload; for ICMP the
    /// bytes after the 8-byte ICMP header).
    pub orig_bytes: u64,
    /// Sum of the IP total lengths of the originator's packets.
    pub orig_ip_bytes: u64,
    /// Packets sent by the responder.
    pub resp_pkts: u64,
    /// Payload bytes sent by the responder.
    pub resp_bytes: u64,
    /// Sum of the IP total lengths of the responder's packets.
    pub resp_ip_bytes: u64,
    /// Zeek `conn_state`: `SF`, `S0`, `S1`, `REJ`, `RSTO`, `RSTR` or `OTH`.
    pub conn_state: &'static str,
    /// Zeek `history` (empty where Zeek logs `-`, e.g. ICMP).
    pub history: String,
    /// Timestamp of the first packet (Zeek `ts`).
    pub first_ts: Timestamp,
    /// Timestamp of the last packet (`duration` = last - first).
    pub last_ts: Timestamp,
}

impl Expected {
    /// Zeek `duration`.
    pub fn duration(&self) -> Duration {
        self.last_ts.since(self.first_ts)
    }
}

fn conn_state(c: &Conversation) -> &'static str {
    match c.protocol {
        Protocol::Tcp => match c.close {
            Close::Fin => "SF",
            Close::RstByClient => "RSTO",
            Close::RstByServer => "RSTR",
            Close::Rejected => "REJ",
            Close::NoAnswer => "S0",
            Close::Open => "S1",
        },
        Protocol::Udp => {
            if c.server_bytes > 0 {
                "SF"
            } else {
                "S0"
            }
        }
        Protocol::IcmpEcho => "OTH",
    }
}

// TCP flag bits as on the wire.
const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

/// Zeek's per-direction history event for a packet (bit, uppercase letter), as
/// in its TCP analyzer: one of SYN/FIN/RST decides the letter (SYN+ACK is `H`),
/// otherwise payload gives `D`, otherwise a bare ACK gives `A`. UDP records
/// `D` for payload; ICMP records nothing.
fn history_event(proto: Protocol, s: &Spec) -> Option<(u16, char)> {
    match (proto, s.kind) {
        (Protocol::Tcp, Kind::Tcp { flags, .. }) => {
            if flags & SYN != 0 {
                Some(if flags & ACK != 0 {
                    (1 << 1, 'H')
                } else {
                    (1, 'S')
                })
            } else if flags & FIN != 0 {
                Some((1 << 2, 'F'))
            } else if flags & RST != 0 {
                Some((1 << 3, 'R'))
            } else if s.payload_len > 0 {
                Some((1 << 4, 'D'))
            } else if flags & ACK != 0 {
                Some((1 << 5, 'A'))
            } else {
                None
            }
        }
        (Protocol::Udp, _) if s.payload_len > 0 => Some((1 << 4, 'D')),
        _ => None,
    }
}

fn ip_len(v6: bool, s: &Spec) -> u64 {
    let ip = if v6 { 40 } else { 20 };
    let l4 = match s.kind {
        Kind::Tcp { flags, .. } if flags & SYN != 0 => 24,
        Kind::Tcp { .. } => 20,
        Kind::Udp | Kind::Echo { .. } => 8,
    };
    ip + l4 + u64::from(s.payload_len)
}

#[derive(Copy, Clone, Debug)]
enum Kind {
    Tcp { flags: u8, seq: u32, ack: u32 },
    Udp,
    Echo { seq: u16 },
}

/// One packet to emit, before rendering to bytes.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Spec {
    pub(crate) ts: Timestamp,
    from_client: bool,
    kind: Kind,
    payload_len: u32,
    /// Offset of the payload in its direction's byte stream.
    stream_off: u64,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Phase {
    Syn,
    Reject,
    SynAck,
    HandshakeAck,
    /// Sending a burst; `next_burst` says what comes after it.
    Burst,
    /// A pure ACK from the receiver of the current burst, then `after_ack`.
    Ack,
    CloseStart,
    Fin2,
    Fin3,
    Request,
    Response,
    Done,
}

/// The per-conversation generator state: small and `Copy`-sized, so a million
/// live conversations fit in memory.
#[derive(Clone, Debug)]
pub(crate) struct Machine {
    rng: SplitMix64,
    ts: Timestamp,
    phase: Phase,
    /// Next sequence number of each side (client, server).
    next_seq: [u32; 2],
    /// Payload bytes sent so far by each side.
    sent: [u64; 2],
    /// Burst index: 2 * round + (1 if server).
    burst: u32,
    left: u64,
    unacked: u8,
    /// Phase after a pure ACK.
    after_ack: Phase,
    ack_from_client: bool,
    syns: u8,
    round: u32,
}

fn share(total: u64, rounds: u32, r: u32) -> u64 {
    let n = u64::from(rounds.max(1));
    total / n + u64::from(u64::from(r) < total % n)
}

impl Machine {
    pub(crate) fn new(c: &Conversation) -> Self {
        let mut rng = SplitMix64::new(mix(c.seed));
        let isn = [rng.next_u32(), rng.next_u32()];
        Machine {
            rng,
            ts: c.start,
            phase: match c.protocol {
                Protocol::Tcp => Phase::Syn,
                _ => Phase::Request,
            },
            next_seq: isn,
            sent: [0, 0],
            burst: 0,
            left: 0,
            unacked: 0,
            after_ack: Phase::Done,
            ack_from_client: false,
            syns: 0,
            round: 0,
        }
    }

    fn rounds(c: &Conversation) -> u32 {
        c.rounds.max(1)
    }

    fn gap(&mut self, c: &Conversation) {
        let base = c.spacing.as_nanos().min(u128::from(u64::MAX / 2048)) as u64;
        let jittered = base / 1024 * (768 + self.rng.below(513));
        self.ts = Timestamp(self.ts.0.saturating_add(jittered as i64));
    }

    fn burst_bytes(c: &Conversation, burst: u32) -> u64 {
        let r = burst / 2;
        if burst % 2 == 0 {
            share(c.client_bytes, Self::rounds(c), r)
        } else {
            share(c.server_bytes, Self::rounds(c), r)
        }
    }

    /// Finds the first non-empty burst at or after `from`; sets `burst`/`left`
    /// and returns `Phase::Burst`, or `Phase::CloseStart` when none is left.
    fn seek_burst(&mut self, c: &Conversation, from: u32) -> Phase {
        let end = 2 * Self::rounds(c);
        let mut b = from;
        while b < end {
            let n = Self::burst_bytes(c, b);
            if n > 0 {
                self.burst = b;
                self.left = n;
                self.unacked = 0;
                return Phase::Burst;
            }
            b += 1;
        }
        self.burst = end;
        Phase::CloseStart
    }

    fn tcp(&mut self, from_client: bool, flags: u8, payload: u32) -> Spec {
        let (me, peer) = if from_client { (0, 1) } else { (1, 0) };
        let seq = self.next_seq[me];
        let ack = if flags & ACK != 0 {
            self.next_seq[peer]
        } else {
            0
        };
        let off = self.sent[me];
        self.sent[me] += u64::from(payload);
        self.next_seq[me] = seq
            .wrapping_add(payload)
            .wrapping_add(u32::from(flags & (SYN | FIN) != 0));
        Spec {
            ts: self.ts,
            from_client,
            kind: Kind::Tcp { flags, seq, ack },
            payload_len: payload,
            stream_off: off,
        }
    }

    /// The next packet, or `None` when the conversation is over.
    pub(crate) fn next_spec(&mut self, c: &Conversation) -> Option<Spec> {
        let spec = match self.phase {
            Phase::Done => return None,
            Phase::Syn => {
                // Retransmitted SYNs reuse the ISN.
                let isn = self.next_seq[0];
                let s = self.tcp(true, SYN, 0);
                self.syns += 1;
                self.phase = match c.close {
                    Close::Rejected => Phase::Reject,
                    Close::NoAnswer => {
                        self.next_seq[0] = isn;
                        if self.syns >= c.syn_attempts.max(1) {
                            Phase::Done
                        } else {
                            let backoff = 1u64 << (self.syns - 1).min(6);
                            self.ts = self.ts.plus(Duration::from_secs(backoff));
                            return Some(s);
                        }
                    }
                    _ => Phase::SynAck,
                };
                s
            }
            Phase::Reject => {
                // A closed port answers RST+ACK with sequence number 0.
                self.next_seq[1] = 0;
                self.phase = Phase::Done;
                self.tcp(false, RST | ACK, 0)
            }
            Phase::SynAck => {
                self.phase = Phase::HandshakeAck;
                self.tcp(false, SYN | ACK, 0)
            }
            Phase::HandshakeAck => {
                self.phase = self.seek_burst(c, 0);
                self.tcp(true, ACK, 0)
            }
            Phase::Burst => {
                let from_client = self.burst % 2 == 0;
                let mss = u64::from(c.mss.clamp(536, 8960));
                let len = self.left.min(mss);
                self.left -= len;
                self.unacked += 1;
                let last = self.left == 0;
                let flags = if last { ACK | PSH } else { ACK };
                let s = self.tcp(from_client, flags, len as u32);
                if last {
                    let next = self.seek_burst(c, self.burst + 1);
                    let other_side_talks_next =
                        next == Phase::Burst && (self.burst % 2 == 0) != from_client;
                    if other_side_talks_next {
                        // The reply carries the acknowledgement.
                        self.phase = next;
                    } else {
                        // The receiver acknowledges before anything else
                        // happens; restore the burst it acknowledges.
                        self.after_ack = next;
                        self.phase = Phase::Ack;
                        self.ack_from_client = !from_client;
                    }
                } else if self.unacked >= 2 {
                    self.after_ack = Phase::Burst;
                    self.phase = Phase::Ack;
                    self.ack_from_client = !from_client;
                }
                s
            }
            Phase::Ack => {
                self.unacked = 0;
                self.phase = self.after_ack;
                self.tcp(self.ack_from_client, ACK, 0)
            }
            Phase::CloseStart => match c.close {
                Close::Fin => {
                    self.phase = Phase::Fin2;
                    self.tcp(true, FIN | ACK, 0)
                }
                Close::RstByClient => {
                    self.phase = Phase::Done;
                    self.tcp(true, RST | ACK, 0)
                }
                Close::RstByServer => {
                    self.phase = Phase::Done;
                    self.tcp(false, RST | ACK, 0)
                }
                _ => {
                    self.phase = Phase::Done;
                    return None;
                }
            },
            Phase::Fin2 => {
                self.phase = Phase::Fin3;
                self.tcp(false, FIN | ACK, 0)
            }
            Phase::Fin3 => {
                self.phase = Phase::Done;
                self.tcp(true, ACK, 0)
            }
            Phase::Request => {
                let len = share(c.client_bytes, Self::rounds(c), self.round);
                let s = self.datagram(c, true, len);
                self.phase = if c.server_bytes > 0 {
                    Phase::Response
                } else {
                    self.next_round(c)
                };
                s
            }
            Phase::Response => {
                let len = if c.protocol == Protocol::IcmpEcho {
                    share(c.client_bytes, Self::rounds(c), self.round)
                } else {
                    share(c.server_bytes, Self::rounds(c), self.round)
                };
                let s = self.datagram(c, false, len);
                self.phase = self.next_round(c);
                s
            }
        };
        self.gap(c);
        Some(spec)
    }

    fn next_round(&mut self, c: &Conversation) -> Phase {
        self.round += 1;
        if self.round >= Self::rounds(c) {
            Phase::Done
        } else {
            Phase::Request
        }
    }

    fn datagram(&mut self, c: &Conversation, from_client: bool, len: u64) -> Spec {
        let me = usize::from(!from_client);
        let off = self.sent[me];
        self.sent[me] += len;
        let kind = match c.protocol {
            Protocol::IcmpEcho => Kind::Echo {
                seq: (self.round + 1) as u16,
            },
            _ => Kind::Udp,
        };
        Spec {
            ts: self.ts,
            from_client,
            kind,
            // Datagrams are limited to what fits in one IP packet.
            payload_len: len.min(65_000) as u32,
            stream_off: off,
        }
    }
}

/// Lazy iterator over one conversation's frames; see [`Conversation::frames`].
#[derive(Clone, Debug)]
pub struct Frames {
    conv: Conversation,
    machine: Machine,
    scratch: Vec<u8>,
}

impl Frames {
    /// Writes the next frame into `out` (cleared first) and returns its
    /// timestamp, or `None` when the conversation is over. Reusing `out`
    /// avoids an allocation per packet.
    pub fn next_into(&mut self, out: &mut Vec<u8>) -> Option<Timestamp> {
        let s = self.machine.next_spec(&self.conv)?;
        render(&self.conv, &s, &mut self.scratch, out);
        Some(s.ts)
    }
}

impl Iterator for Frames {
    type Item = (Timestamp, Vec<u8>);

    fn next(&mut self) -> Option<Self::Item> {
        let mut out = Vec::new();
        let ts = self.next_into(&mut out)?;
        Some((ts, out))
    }
}

fn mac_for(ip: IpAddr) -> [u8; 6] {
    let h = match ip {
        IpAddr::V4(a) => mix(u64::from(u32::from(a))),
        IpAddr::V6(a) => mix(u128::from(a) as u64 ^ (u128::from(a) >> 64) as u64),
    }
    .to_be_bytes();
    // Locally administered, unicast.
    [0x02, h[0], h[1], h[2], h[3], h[4]]
}

fn to_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// Recognisable first bytes of each application stream, so service detection
/// has something to look at.
fn greeting(port: u16, from_client: bool) -> &'static [u8] {
    match (port, from_client) {
        (22, true) => b"SSH-2.0-OpenSSH_9.6\r\n",
        (22, false) => b"SSH-2.0-OpenSSH_8.9p1 Ubuntu-3\r\n",
        (80, true) => b"GET / HTTP/1.1\r\nHost: www.example.com\r\n\r\n",
        (80, false) => b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n",
        (3389, _) => b"\x03\x00\x00\x13\x0e\xe0\x00\x00\x00\x00\x00\x01\x00\x08\x00",
        _ => b"",
    }
}

fn fill_payload(c: &Conversation, s: &Spec, buf: &mut Vec<u8>) {
    buf.clear();
    let len = s.payload_len as usize;
    let port = c.server.port();
    match (c.protocol, port) {
        (Protocol::Udp, 53) => dns_message(s.from_client, s.stream_off as u16, len, buf),
        (Protocol::Udp, 161) if len < 128 => snmp_message(s.from_client, len, buf),
        (Protocol::Tcp, 443 | 8443) => {
            // A stream of TLS application-data records of 16 KiB each.
            const PERIOD: u64 = 16_384 + 5;
            for i in 0..len as u64 {
                let k = (s.stream_off + i) % PERIOD;
                buf.push(match k {
                    0 => 0x17,
                    1 | 2 => 0x03,
                    3 => 0x40,
                    4 => 0x00,
                    _ => b'a' + (k % 26) as u8,
                });
            }
        }
        _ => {
            if s.stream_off == 0 {
                let g = greeting(port, s.from_client);
                buf.extend_from_slice(&g[..g.len().min(len)]);
            }
        }
    }
    let mut x = (s.stream_off as u8).wrapping_add(u8::from(s.from_client));
    while buf.len() < len {
        // Printable filler, cheap to produce.
        buf.push(b'a' + x % 26);
        x = x.wrapping_add(1);
    }
    buf.truncate(len);
}

/// A well-formed DNS query (or answer) of exactly `len` bytes when `len >= 17`
/// (33 with an answer record): the query name is sized to fit.
fn dns_message(query: bool, id: u16, len: usize, buf: &mut Vec<u8>) {
    if len < 17 {
        return;
    }
    let answer = !query && len >= 33;
    let qname_len = len - 16 - if answer { 16 } else { 0 };
    buf.extend_from_slice(&id.wrapping_add(0x1234).to_be_bytes());
    buf.extend_from_slice(if query { &[0x01, 0x00] } else { &[0x81, 0x80] });
    buf.extend_from_slice(&[0, 1, 0, u8::from(answer), 0, 0, 0, 0]);
    // Labels filling qname_len - 1 bytes, then the root label.
    let mut rem = qname_len - 1;
    let mut ch = 0u8;
    while rem > 0 {
        let mut l = (rem - 1).min(63);
        if rem - (l + 1) == 1 {
            l -= 1;
        }
        buf.push(l as u8);
        for _ in 0..l {
            buf.push(b'a' + ch % 26);
            ch = ch.wrapping_add(1);
        }
        rem -= l + 1;
    }
    buf.push(0);
    buf.extend_from_slice(&[0, 1, 0, 1]);
    if answer {
        buf.extend_from_slice(&[
            0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 192, 0, 2, 10,
        ]);
    }
}

/// A well-formed SNMPv2c get (or response) of exactly `len` bytes when
/// `42 <= len < 128`; the varbind value absorbs the size.
fn snmp_message(request: bool, len: usize, buf: &mut Vec<u8>) {
    // 30 L | 02 01 01 | 04 06 public | PDU L | 02 04 id | 02 01 00 | 02 01 00 |
    // 30 L | 30 L | 06 08 oid | 04 L value
    const FIXED: usize = 2 + 3 + 8 + 2 + 6 + 3 + 3 + 2 + 2 + 10 + 2;
    if !(FIXED..128).contains(&len) {
        return;
    }
    let v = len - FIXED;
    let vb = 10 + 2 + v;
    let vbl = vb + 2;
    let pdu = 6 + 3 + 3 + vbl + 2;
    let msg = 3 + 8 + pdu + 2;
    buf.extend_from_slice(&[0x30, msg as u8, 0x02, 0x01, 0x01, 0x04, 0x06]);
    buf.extend_from_slice(b"public");
    buf.extend_from_slice(&[if request { 0xa0 } else { 0xa2 }, pdu as u8]);
    buf.extend_from_slice(&[
        0x02, 0x04, 0x00, 0x00, 0x12, 0x34, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00,
    ]);
    buf.extend_from_slice(&[0x30, vbl as u8, 0x30, vb as u8]);
    buf.extend_from_slice(&[0x06, 0x08, 0x2b, 0x06, 0x01, 0x02, 0x01, 0x01, 0x05, 0x00]);
    buf.extend_from_slice(&[0x04, v as u8]);
    buf.extend(std::iter::repeat_n(b'x', v));
}

pub(crate) fn render(c: &Conversation, s: &Spec, scratch: &mut Vec<u8>, out: &mut Vec<u8>) {
    out.clear();
    fill_payload(c, s, scratch);
    let (src, dst) = if s.from_client {
        (c.client, c.server)
    } else {
        (c.server, c.client)
    };
    let ttl = if s.from_client { 64 } else { 57 };
    let eth = PacketBuilder::ethernet2(mac_for(src.ip()), mac_for(dst.ip()));
    let vlan = c
        .vlan
        .and_then(|v| VlanId::try_new(v).ok())
        .filter(|v| v.value() != 0);
    let v6 = c.is_ipv6();
    let ip: PacketBuilderStep<IpHeaders> = match (vlan, src.ip(), dst.ip()) {
        (Some(id), IpAddr::V4(a), IpAddr::V4(b)) if !v6 => {
            eth.single_vlan(id).ipv4(a.octets(), b.octets(), ttl)
        }
        (Some(id), a, b) => eth
            .single_vlan(id)
            .ipv6(to_v6(a).octets(), to_v6(b).octets(), ttl),
        (None, IpAddr::V4(a), IpAddr::V4(b)) if !v6 => eth.ipv4(a.octets(), b.octets(), ttl),
        (None, a, b) => eth.ipv6(to_v6(a).octets(), to_v6(b).octets(), ttl),
    };
    let payload = &scratch[..];
    let res = match s.kind {
        Kind::Tcp { flags, seq, ack } => {
            let window = if s.from_client { 64_240 } else { 65_160 };
            let mut t = ip.tcp(src.port(), dst.port(), seq, window);
            if flags & SYN != 0 {
                t = t.syn();
            }
            if flags & FIN != 0 {
                t = t.fin();
            }
            if flags & RST != 0 {
                t = t.rst();
            }
            if flags & PSH != 0 {
                t = t.psh();
            }
            if flags & ACK != 0 {
                t = t.ack(ack);
            }
            if flags & SYN != 0 {
                let mss = c.mss.clamp(536, 8960);
                t = t
                    .options(&[TcpOptionElement::MaximumSegmentSize(mss)])
                    .expect("a 4-byte MSS option always fits");
            }
            t.write(out, payload).map_err(|e| e.to_string())
        }
        Kind::Udp => ip
            .udp(src.port(), dst.port())
            .write(out, payload)
            .map_err(|e| e.to_string()),
        Kind::Echo { seq } => {
            let id = c.client.port();
            match (v6, s.from_client) {
                (false, true) => ip.icmpv4_echo_request(id, seq).write(out, payload),
                (false, false) => ip.icmpv4_echo_reply(id, seq).write(out, payload),
                (true, true) => ip.icmpv6_echo_request(id, seq).write(out, payload),
                (true, false) => ip.icmpv6_echo_reply(id, seq).write(out, payload),
            }
            .map_err(|e| e.to_string())
        }
    };
    // Payloads are at most 65 000 bytes (MSS <= 8960, datagrams capped), so
    // writing into a Vec cannot fail.
    if let Err(e) = res {
        unreachable!("building a generated frame failed: {e}");
    }
}
