//! Many conversations interleaved by timestamp (a k-way merge), and a
//! realistic enterprise-link mix to feed it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::iter::Peekable;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use flowlib::Timestamp;

use crate::conversation::{render, Close, Conversation, Machine, Spec};
use crate::rng::{mix, SplitMix64};

/// 2026-03-02 08:00:00 UTC, the default start of generated traffic.
pub const DEFAULT_START: Timestamp = Timestamp(1_772_438_400 * 1_000_000_000);

struct Live {
    conv: Conversation,
    machine: Machine,
    next: Spec,
}

/// Merges the frames of many conversations into one timestamp-ordered stream,
/// generating each frame only when it is due.
///
/// Conversations are pulled from the source iterator as their start time
/// comes up, so memory holds only the conversations that are live at the
/// current point of the stream (about 200 bytes each), never their frames. The
/// source must yield conversations in non-decreasing `start` order; otherwise
/// the output is still complete but not fully ordered. Ties are broken by the
/// order conversations were admitted, so the stream is deterministic.
pub struct Interleave<I: Iterator<Item = Conversation>> {
    source: Peekable<I>,
    heap: BinaryHeap<Reverse<(Timestamp, u64, usize)>>,
    slots: Vec<Option<Live>>,
    free: Vec<usize>,
    order: u64,
    scratch: Vec<u8>,
    admitted: u64,
}

impl<I: Iterator<Item = Conversation>> Interleave<I> {
    /// A merge over `source` (sorted by start time).
    pub fn new(source: I) -> Self {
        Interleave {
            source: source.peekable(),
            heap: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            order: 0,
            scratch: Vec::new(),
            admitted: 0,
        }
    }

    /// Conversations started so far.
    pub fn conversations_started(&self) -> u64 {
        self.admitted
    }

    /// Conversations currently live (started and not finished).
    pub fn live(&self) -> usize {
        self.heap.len()
    }

    fn admit(&mut self, conv: Conversation) {
        let mut machine = Machine::new(&conv);
        self.admitted += 1;
        let Some(next) = machine.next_spec(&conv) else {
            return;
        };
        let live = Live {
            conv,
            machine,
            next,
        };
        let slot = match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(live);
                i
            }
            None => {
                self.slots.push(Some(live));
                self.slots.len() - 1
            }
        };
        self.heap.push(Reverse((next.ts, self.order, slot)));
        self.order += 1;
    }

    /// Writes the next frame into `out` (cleared first) and returns its
    /// timestamp, or `None` at the end. Reusing `out` avoids an allocation
    /// per packet.
    pub fn next_into(&mut self, out: &mut Vec<u8>) -> Option<Timestamp> {
        loop {
            let due = self.heap.peek().map(|Reverse((ts, _, _))| *ts);
            match self.source.peek() {
                Some(c) if due.is_none_or(|d| c.start <= d) => {
                    if let Some(c) = self.source.next() {
                        self.admit(c);
                    }
                }
                _ => break,
            }
        }
        let Reverse((ts, _, slot)) = self.heap.pop()?;
        let live = self.slots[slot].as_mut()?;
        render(&live.conv, &live.next, &mut self.scratch, out);
        match live.machine.next_spec(&live.conv) {
            Some(next) => {
                live.next = next;
                self.heap.push(Reverse((next.ts, self.order, slot)));
                self.order += 1;
            }
            None => {
                self.slots[slot] = None;
                self.free.push(slot);
            }
        }
        Some(ts)
    }
}

impl<I: Iterator<Item = Conversation>> Iterator for Interleave<I> {
    type Item = (Timestamp, Vec<u8>);

    fn next(&mut self) -> Option<Self::Item> {
        let mut out = Vec::new();
        let ts = self.next_into(&mut out)?;
        Some((ts, out))
    }
}

/// An owned set of conversations, for hand-built scenarios and moderate
/// sizes. For millions of flows, feed [`RealisticFlows`] to [`Interleave`]
/// directly so the conversation list is never materialised either.
#[derive(Clone, Debug, Default)]
pub struct TrafficMix {
    conversations: Vec<Conversation>,
}

impl TrafficMix {
    /// An empty mix.
    pub fn new() -> Self {
        Self::default()
    }

    /// `n_flows` conversations of [`RealisticFlows`] with the default
    /// [`MixConfig`] for `seed`.
    pub fn realistic(seed: u64, n_flows: usize) -> Self {
        RealisticFlows::new(MixConfig::new(seed, n_flows)).collect()
    }

    /// Adds a conversation.
    pub fn push(&mut self, conv: Conversation) {
        self.conversations.push(conv);
    }

    /// The conversations, in insertion order (sorted by start once
    /// [`TrafficMix::frames`] has been called).
    pub fn conversations(&self) -> &[Conversation] {
        &self.conversations
    }

    /// Number of conversations.
    pub fn len(&self) -> usize {
        self.conversations.len()
    }

    /// Whether there are no conversations.
    pub fn is_empty(&self) -> bool {
        self.conversations.is_empty()
    }

    /// All frames of all conversations, merged by timestamp and generated
    /// lazily. Sorts the conversations by start time (stably) first.
    pub fn frames(&mut self) -> Interleave<std::iter::Cloned<std::slice::Iter<'_, Conversation>>> {
        self.conversations.sort_by_key(|c| c.start);
        Interleave::new(self.conversations.iter().cloned())
    }
}

impl FromIterator<Conversation> for TrafficMix {
    fn from_iter<T: IntoIterator<Item = Conversation>>(iter: T) -> Self {
        TrafficMix {
            conversations: iter.into_iter().collect(),
        }
    }
}

impl Extend<Conversation> for TrafficMix {
    fn extend<T: IntoIterator<Item = Conversation>>(&mut self, iter: T) {
        self.conversations.extend(iter);
    }
}

/// Parameters of [`RealisticFlows`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MixConfig {
    /// Seed; the same config always gives the same conversations.
    pub seed: u64,
    /// Number of conversations.
    pub flows: usize,
    /// Start of the first conversation.
    pub start: Timestamp,
    /// Conversations start evenly spread (with jitter) over this window. To
    /// have N flows live at once, make it short compared with
    /// `spacing_scale` times the flows' packet spacing.
    pub arrival_window: Duration,
    /// Multiplier for every conversation's packet spacing, in percent (100 =
    /// realistic LAN/WAN round trips; 10_000 stretches flows 100x so many more
    /// are live at once).
    pub spacing_percent: u32,
}

impl MixConfig {
    /// `flows` conversations starting at [`DEFAULT_START`] over 60 s, realistic
    /// spacing.
    pub fn new(seed: u64, flows: usize) -> Self {
        MixConfig {
            seed,
            flows,
            start: DEFAULT_START,
            arrival_window: Duration::from_secs(60),
            spacing_percent: 100,
        }
    }

    /// The mix of the whole-process benchmark capture
    /// (`examples/make_bench_capture.rs`): `flows` conversations arriving at
    /// 10 000 a second (20 s per 200 000 flows, at any size) with WAN round
    /// trips (spacing doubled).
    pub fn benchmark(seed: u64, flows: usize) -> Self {
        MixConfig {
            arrival_window: Duration::from_nanos(
                (20_000_000_000u128 * flows as u128 / 200_000) as u64,
            )
            .max(Duration::from_millis(1)),
            spacing_percent: 200,
            ..MixConfig::new(seed, flows)
        }
    }
}

/// A lazy, start-ordered stream of conversations like an enterprise
/// internet/WAN link: mostly short TLS and HTTP flows (some over IPv6, some on
/// VLAN 100), DNS and NTP, ICMP pings, a few long SSH/RDP/SMB sessions, and
/// failed connection attempts (rejected and unanswered SYNs, resets).
///
/// Client 5-tuples are unique for up to 100 million flows: the flow index
/// picks the client host (4096 of them) and its ephemeral port.
#[derive(Clone, Debug)]
pub struct RealisticFlows {
    cfg: MixConfig,
    i: usize,
    rng: SplitMix64,
}

impl RealisticFlows {
    /// The stream for `cfg`.
    pub fn new(cfg: MixConfig) -> Self {
        let rng = SplitMix64::new(mix(cfg.seed ^ 0x5eed_f10b));
        RealisticFlows { cfg, i: 0, rng }
    }
}

const HOSTS: usize = 4096;

fn client_addr(i: usize, v6: bool) -> SocketAddr {
    let h = (i % HOSTS) as u32;
    let port = 32_768 + ((i / HOSTS) % 28_000) as u16;
    let ip = if v6 {
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0x1,
            0,
            0,
            0,
            0,
            0x100 + h as u16,
        ))
    } else {
        IpAddr::V4(Ipv4Addr::from(
            u32::from(Ipv4Addr::new(10, 1, 0, 0)) + 256 + h,
        ))
    };
    SocketAddr::new(ip, port)
}

fn internet_server(rng: &mut SplitMix64, v6: bool, port: u16) -> SocketAddr {
    let ip = if v6 {
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0xffff,
            0,
            0,
            0,
            0,
            1 + rng.below(500) as u16,
        ))
    } else if rng.permille(500) {
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1 + rng.below(254) as u8))
    } else {
        IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1 + rng.below(254) as u8))
    };
    SocketAddr::new(ip, port)
}

fn internal_server(rng: &mut SplitMix64, v6: bool, port: u16) -> SocketAddr {
    let n = 1 + rng.below(40) as u16;
    let ip = if v6 {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, n))
    } else {
        IpAddr::V4(Ipv4Addr::new(10, 0, 1, n as u8))
    };
    SocketAddr::new(ip, port)
}

impl Iterator for RealisticFlows {
    type Item = Conversation;

    fn next(&mut self) -> Option<Conversation> {
        if self.i >= self.cfg.flows {
            return None;
        }
        let i = self.i;
        self.i += 1;
        let r = &mut self.rng;
        // Even arrivals with jitter inside each slot keep starts sorted.
        let window = self.cfg.arrival_window.as_nanos() as u64;
        let slot = window / self.cfg.flows.max(1) as u64;
        let start = Timestamp(
            self.cfg.start.0
                + (window as u128 * i as u128 / self.cfg.flows as u128) as i64
                + r.below(slot.max(1)) as i64,
        );
        let v6 = r.permille(120);
        let client = client_addr(i, v6);
        let ms = |r: &mut SplitMix64, lo: u64, hi: u64| {
            Duration::from_micros(r.range(lo * 1000, hi * 1000))
        };
        let kind = r.below(1000);
        let mut conv = match kind {
            // TLS web: the bulk of an enterprise link.
            0..=479 => {
                let close = match r.below(100) {
                    0..=89 => Close::Fin,
                    90..=96 => Close::RstByClient,
                    _ => Close::RstByServer,
                };
                Conversation::tcp(client, internet_server(r, v6, 443), start)
                    .bytes(r.range(400, 4_000), r.range(1_500, 40_000))
                    .rounds(r.range(1, 3) as u32)
                    .spacing(ms(r, 2, 40))
                    .close(close)
            }
            // Plain HTTP.
            480..=549 => Conversation::tcp(client, internet_server(r, v6, 80), start)
                .bytes(r.range(200, 900), r.range(300, 20_000))
                .spacing(ms(r, 2, 40)),
            // DNS to the internal resolver; a few unanswered.
            550..=779 => {
                let server = if v6 {
                    SocketAddr::new(
                        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x53)),
                        53,
                    )
                } else {
                    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 53)), 53)
                };
                let resp = if r.permille(30) { 0 } else { r.range(60, 300) };
                Conversation::udp(client, server, start)
                    .bytes(r.range(28, 60), resp)
                    .spacing(ms(r, 1, 15))
            }
            // NTP.
            780..=809 => Conversation::udp(client, internet_server(r, v6, 123), start)
                .bytes(48, 48)
                .spacing(ms(r, 5, 60)),
            // ICMP echo.
            810..=849 => {
                let server = internet_server(r, v6, 0);
                let n = r.range(1, 4) as u32;
                Conversation::icmp_echo(client.ip(), server.ip(), client.port(), start)
                    .bytes(56 * u64::from(n), 56 * u64::from(n))
                    .rounds(n)
                    .spacing(ms(r, 10, 300))
            }
            // Internal services: LDAP, Kerberos, SMB.
            850..=909 => {
                let port = [389u16, 88, 445][r.below(3) as usize];
                Conversation::tcp(client, internal_server(r, v6, port), start)
                    .bytes(r.range(200, 3_000), r.range(200, 8_000))
                    .rounds(r.range(1, 4) as u32)
                    .spacing(ms(r, 1, 10))
            }
            // Long interactive or bulk sessions.
            910..=949 => {
                let port = [22u16, 3389, 445][r.below(3) as usize];
                Conversation::tcp(client, internal_server(r, v6, port), start)
                    .bytes(r.range(5_000, 60_000), r.range(20_000, 400_000))
                    .rounds(r.range(10, 60) as u32)
                    .spacing(ms(r, 20, 400))
                    .close(if r.permille(200) {
                        Close::Open
                    } else {
                        Close::Fin
                    })
            }
            // Rejected connection attempts.
            950..=974 => {
                let port = [135u16, 139, 8080][r.below(3) as usize];
                Conversation::tcp(client, internal_server(r, v6, port), start)
                    .close(Close::Rejected)
            }
            // Unanswered SYNs.
            _ => {
                let port = [443u16, 8443, 25][r.below(3) as usize];
                Conversation::tcp(client, internet_server(r, v6, port), start)
                    .close(Close::NoAnswer)
                    .syn_attempts(r.range(1, 3) as u8)
            }
        };
        if !v6 && r.permille(150) {
            conv = conv.vlan(100);
        }
        conv.spacing = conv.spacing * self.cfg.spacing_percent.max(1) / 100;
        conv.seed = mix(self.cfg.seed ^ mix(i as u64));
        Some(conv)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.cfg.flows - self.i;
        (n, Some(n))
    }
}
